// Domain names: presentation text ↔ labels, escapes, limits, canonical form.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalName, formatName, nameWireLength, namesEqual, parseName } from './name.ts';

const ascii = (labels: Uint8Array[]): string[] => labels.map((l) => Buffer.from(l).toString('latin1'));

describe('parseName', () => {
  it('splits on dots; the trailing dot and the root are optional spellings', () => {
    for (const text of ['mail.example.com', 'mail.example.com.']) {
      const p = parseName(text);
      assert.ok(p.ok);
      assert.deepEqual(ascii(p.labels), ['mail', 'example', 'com']);
    }
    for (const root of ['', '.']) {
      const p = parseName(root);
      assert.ok(p.ok);
      assert.deepEqual(p.labels, []);
    }
  });

  it('reads \\DDD and \\X escapes, so a label may hold a dot or any octet', () => {
    const p = parseName('a\\.b.c\\\\d.\\000\\255x');
    assert.ok(p.ok);
    assert.deepEqual(ascii(p.labels), ['a.b', 'c\\d', '\u0000\u00ffx']);
  });

  it('refuses what cannot be a name', () => {
    const cases: [string, RegExp][] = [
      ['a..b', /empty label/],
      ['.a', /empty label/],
      ['a.b..', /empty label/],
      ['x'.repeat(64) + '.com', /63/],
      [Array.from({ length: 128 }, () => 'a').join('.'), /255/],
      ['bücher.de', /A-label/],
      ['a\\', /dangling/],
      ['a\\256', /255/],
      ['a\\12', /three digits/],
    ];
    for (const [text, why] of cases) {
      const p = parseName(text);
      assert.equal(p.ok, false, text);
      if (!p.ok) assert.match(p.error, why, text);
    }
  });

  it('accepts exactly 63-octet labels and 255-octet names', () => {
    assert.ok(parseName('x'.repeat(63) + '.com').ok);
    // 4 × (1 + 62) + 1 + 1 + 1 = 255 with a final 1-octet label.
    const name = [...Array.from({ length: 4 }, () => 'y'.repeat(62)), 'z'].join('.');
    const p = parseName(name);
    assert.ok(p.ok);
    assert.equal(nameWireLength(p.labels), 255);
    assert.equal(parseName(name + 'z').ok, false);
  });
});

describe('formatName and canonicalName', () => {
  it('escapes dots, backslashes and non-printable octets, nothing else', () => {
    const labels = [Uint8Array.of(0x61, 0x2e, 0x62), Uint8Array.of(0x5c, 0x20, 0x7f, 0x5f, 0x2a)];
    assert.equal(formatName(labels), 'a\\.b.\\\\\\032\\127_*');
  });

  it('labels → text → labels is the identity for any labels', () => {
    const label = fc.uint8Array({ minLength: 1, maxLength: 63 });
    fc.assert(
      fc.property(fc.array(label, { maxLength: 4 }), (labels) => {
        const p = parseName(formatName(labels));
        assert.ok(p.ok);
        assert.deepEqual(p.labels, labels);
      }),
    );
  });

  it('canonicalName lower-cases ASCII only and normalises escapes; namesEqual uses it (RFC 4343)', () => {
    assert.equal(canonicalName('Mail.EXAMPLE.com.'), 'mail.example.com');
    assert.equal(canonicalName('\\077ail.example.com'), 'mail.example.com');
    assert.equal(canonicalName('\\200X'), '\\200x');
    assert.equal(canonicalName('a..b'), null);
    assert.ok(namesEqual('Example.COM.', 'example.com'));
    assert.ok(!namesEqual('example.com', 'example.org'));
    assert.ok(!namesEqual('a..b', 'a..b'));
  });
});
