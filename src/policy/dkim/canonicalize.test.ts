import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Canonicalization } from './canonicalize.ts';
import {
  BodyHash,
  CrlfNormalizer,
  canonicalizeHeaderField,
  createBodyCanonicalizer,
} from './canonicalize.ts';

function canonBody(c: Canonicalization, chunks: readonly string[]): string {
  const out: Buffer[] = [];
  const canon = createBodyCanonicalizer(c, { update: (b) => out.push(Buffer.from(b)) });
  for (const chunk of chunks) canon.write(Buffer.from(chunk, 'latin1'));
  canon.end();
  return Buffer.concat(out).toString('latin1');
}

function sha256b64(s: string): string {
  return createHash('sha256').update(Buffer.from(s, 'latin1')).digest('base64');
}

describe('header canonicalization (§3.4.1, §3.4.2)', () => {
  test('RFC 6376 §3.4.5 example, relaxed', () => {
    assert.equal(canonicalizeHeaderField('A: X\r\n', 'relaxed'), 'a:X\r\n');
    assert.equal(canonicalizeHeaderField('B : Y\t\r\n\tZ  \r\n', 'relaxed'), 'b:Y Z\r\n');
  });

  test('RFC 6376 §3.4.5 example, simple: unchanged', () => {
    assert.equal(canonicalizeHeaderField('B : Y\t\r\n\tZ  \r\n', 'simple'), 'B : Y\t\r\n\tZ  \r\n');
  });

  test('relaxed keeps the octets of 8-bit values and lower-cases only ASCII names', () => {
    const raw = Buffer.from('Subject:  Grüße \r\n', 'utf8').toString('latin1');
    assert.equal(
      canonicalizeHeaderField(raw, 'relaxed'),
      Buffer.from('subject:Grüße\r\n', 'utf8').toString('latin1'),
    );
  });

  test('an empty value', () => {
    assert.equal(canonicalizeHeaderField('X-Empty:   \r\n', 'relaxed'), 'x-empty:\r\n');
  });
});

describe('body canonicalization (§3.4.3, §3.4.4)', () => {
  test('RFC 6376 §3.4.5 example body', () => {
    const body = ' C \r\nD \t E\r\n\r\n\r\n';
    assert.equal(canonBody('relaxed', [body]), ' C\r\nD E\r\n');
    assert.equal(canonBody('simple', [body]), ' C \r\nD \t E\r\n');
  });

  test('empty bodies: simple is one CRLF, relaxed is nothing', () => {
    assert.equal(canonBody('simple', []), '\r\n');
    assert.equal(canonBody('simple', ['\r\n\r\n']), '\r\n');
    assert.equal(canonBody('relaxed', []), '');
    assert.equal(canonBody('relaxed', [' \r\n\t\r\n']), '');
  });

  test('a last line without CRLF gets one', () => {
    assert.equal(canonBody('simple', ['abc']), 'abc\r\n');
    assert.equal(canonBody('relaxed', ['abc  ']), 'abc\r\n');
  });

  test('empty lines inside the body are kept; whitespace-only lines become empty in relaxed', () => {
    assert.equal(canonBody('relaxed', ['a\r\n  \r\n\r\nb\r\n']), 'a\r\n\r\n\r\nb\r\n');
    assert.equal(canonBody('simple', ['a\r\n  \r\n\r\nb\r\n']), 'a\r\n  \r\n\r\nb\r\n');
  });

  test('a bare CR is content, not a line end', () => {
    assert.equal(canonBody('simple', ['a\rb\r\n\r']), 'a\rb\r\n\r\r\n');
    assert.equal(canonBody('relaxed', ['a \r b']), 'a \r b\r\n');
  });

  test('mailauth vectors: empty-body hashes', () => {
    assert.equal(sha256b64(canonBody('relaxed', [])), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    assert.equal(sha256b64(canonBody('simple', [])), 'frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=');
  });

  for (const c of ['simple', 'relaxed'] as const) {
    test(`${c}: any split into chunks gives the same canonical body`, () => {
      const alphabet = fc.constantFrom('a', 'b', ' ', '\t', '\r', '\n', '\r\n', '\r\n\r\n', 'é');
      fc.assert(
        fc.property(fc.array(alphabet, { maxLength: 60 }), fc.array(fc.nat(60)), (parts, cuts) => {
          const body = parts.join('');
          const points = [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((x, y) => x - y);
          const chunks: string[] = [];
          let prev = 0;
          for (const p of points) {
            chunks.push(body.slice(prev, p));
            prev = p;
          }
          chunks.push(body.slice(prev));
          assert.equal(canonBody(c, chunks), canonBody(c, [body]));
        }),
        { numRuns: 500 },
      );
    });
  }
});

describe('BodyHash (§3.7) with l=', () => {
  test('mailauth vector: relaxed, l=20 hashes "tere tere\\r\\n\\r\\nvana ke"', () => {
    const hash = new BodyHash('relaxed', 20);
    hash.write(Buffer.from('tere tere\r\n \r\nvana kere\r\n\r\n'));
    const result = hash.digest();
    assert.equal(result.digest.toString('base64'), sha256b64('tere tere\r\n\r\nvana ke'));
    assert.equal(result.hashedLength, 20);
    assert.equal(result.canonicalLength, 'tere tere\r\n\r\nvana kere\r\n'.length);
  });

  test('l=0 hashes nothing (the relaxed empty-body hash)', () => {
    const hash = new BodyHash('simple', 0);
    hash.write(Buffer.from('anything\r\n'));
    assert.equal(hash.digest().digest.toString('base64'), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
  });

  test('without l= everything is hashed, and digest() can be asked twice', () => {
    const hash = new BodyHash('simple');
    hash.write(Buffer.from('x\r\n\r\n'));
    const first = hash.digest();
    assert.equal(first.digest.toString('base64'), sha256b64('x\r\n'));
    assert.equal(hash.digest(), first);
    assert.throws(() => hash.write(Buffer.from('more')));
  });
});

describe('CrlfNormalizer', () => {
  function run(chunks: readonly string[]): string {
    const n = new CrlfNormalizer();
    return chunks.map((c) => Buffer.from(n.push(Buffer.from(c, 'latin1'))).toString('latin1')).join('');
  }

  test('bare LF becomes CRLF, CRLF stays, also across chunks', () => {
    assert.equal(run(['a\nb\r\nc\n']), 'a\r\nb\r\nc\r\n');
    assert.equal(run(['a\r', '\nb', '\n']), 'a\r\nb\r\n');
    assert.equal(run(['\n', '\n']), '\r\n\r\n');
  });

  test('CRLF-only input is passed through without a copy', () => {
    const n = new CrlfNormalizer();
    const chunk = Buffer.from('a\r\nb\r\n');
    assert.equal(n.push(chunk), chunk);
  });
});
