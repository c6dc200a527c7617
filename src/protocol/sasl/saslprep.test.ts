// SASLprep (RFC 4013): the examples of RFC 4013 §3 and the prohibited tables.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { saslprep } from './saslprep.ts';

describe('saslprep', () => {
  it('follows the RFC 4013 §3 examples', () => {
    assert.equal(saslprep('I\u00ADX'), 'IX'); // SOFT HYPHEN mapped to nothing
    assert.equal(saslprep('user'), 'user');
    assert.equal(saslprep('USER'), 'USER'); // case preserved
    assert.equal(saslprep('\u00AA'), 'a'); // NFKC
    assert.equal(saslprep('\u2168'), 'IX'); // NFKC
    assert.equal(saslprep('\u0007'), null); // prohibited
  });

  it('maps non-ASCII spaces to SPACE', () => {
    assert.equal(saslprep('a\u00A0b\u3000c'), 'a b c');
  });

  it('refuses controls, private use, non-characters, lone surrogates and tagging characters', () => {
    for (const bad of [
      'a\u0000',
      'a\u007F',
      '\u0085',
      '\uE000',
      '\uFFFF',
      '\uFDD0',
      '\uD800',
      '\u{E0041}',
      '\u200E',
    ]) {
      assert.equal(saslprep(bad), null, JSON.stringify(bad));
    }
  });

  it('leaves ordinary non-ASCII text alone (NFC already)', () => {
    assert.equal(saslprep('p\u00e4ssw\u00f6rd'), 'p\u00e4ssw\u00f6rd');
    assert.equal(saslprep('pa\u0308ss'), 'p\u00e4ss');
    assert.equal(saslprep('\u{1F600}'), '\u{1F600}');
  });
});
