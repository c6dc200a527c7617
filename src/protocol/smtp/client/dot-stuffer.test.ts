// Tests of the content encoder: CRLF-cleanliness (no bare CR or LF ever leaves), dot-stuffing, the
// end-of-data line, and fragmentation. The property checks go through Tern's own receiving scanner
// (data-scanner.ts, policy "reject"): stuffing then unstuffing gives back the CRLF-clean text, the end
// of data is found exactly at the end, and the scanner never sees a bare line ending.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DataScanner } from '../data-scanner.ts';
import { ContentEncoder } from './dot-stuffer.ts';

const latin1 = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

function encode(input: string, dotStuff: boolean, cuts: readonly number[] = []): string {
  const enc = new ContentEncoder({ dotStuff });
  const bytes = latin1(input);
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
  let out = '';
  let start = 0;
  for (const p of [...points, bytes.length]) {
    out += text(enc.push(bytes.subarray(start, p)));
    start = p;
  }
  return out + text(enc.end());
}

/** The reference: every line ending form becomes CRLF, and non-empty content ends with CRLF. */
function crlfClean(s: string): string {
  const t = s.replace(/\r\n|\r|\n/g, '\r\n');
  return t === '' || t.endsWith('\r\n') ? t : `${t}\r\n`;
}

describe('ContentEncoder for DATA', () => {
  test('examples', () => {
    assert.equal(encode('', true), '.\r\n');
    assert.equal(encode('a', true), 'a\r\n.\r\n');
    assert.equal(encode('a\r\n', true), 'a\r\n.\r\n');
    assert.equal(encode('.\r\n', true), '..\r\n.\r\n');
    assert.equal(encode('a\r\n.b\r\n..c', true), 'a\r\n..b\r\n...c\r\n.\r\n');
    assert.equal(encode('x.y\r\n', true), 'x.y\r\n.\r\n');
  });

  test('bare LF and bare CR become CRLF, so smuggling shapes turn into plain stuffed lines', () => {
    assert.equal(encode('a\n.\nb', true), 'a\r\n..\r\nb\r\n.\r\n');
    assert.equal(encode('a\r.\rb', true), 'a\r\n..\r\nb\r\n.\r\n');
    assert.equal(encode('a\r\n.\rMAIL FROM:<x>\r\n', true), 'a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n');
    assert.equal(encode('a\r\r\n', true), 'a\r\n\r\n.\r\n');
    assert.equal(encode('a\n\r', true), 'a\r\n\r\n.\r\n');
    assert.equal(encode('a\r', true), 'a\r\n.\r\n');
  });

  test('a CR at the end of one chunk and LF at the start of the next is one CRLF', () => {
    assert.equal(encode('a\r\nb', true, [2]), 'a\r\nb\r\n.\r\n');
    assert.equal(encode('a\r\n.b', true, [2, 3]), 'a\r\n..b\r\n.\r\n');
  });

  test('push after end is a programming error; end twice adds nothing', () => {
    const enc = new ContentEncoder({ dotStuff: true });
    enc.push(latin1('x'));
    assert.equal(text(enc.end()), '\r\n.\r\n');
    assert.equal(enc.end().length, 0);
    assert.equal(enc.outputBytes, 6);
    assert.throws(() => enc.push(latin1('y')));
  });
});

describe('ContentEncoder for BDAT', () => {
  test('CRLF-clean, no stuffing, no end line', () => {
    assert.equal(encode('', false), '');
    assert.equal(encode('.a\n.\r', false), '.a\r\n.\r\n');
    assert.equal(encode('abc', false), 'abc\r\n');
  });
});

const contentArb = fc.string({
  unit: fc.constantFrom('a', 'b', '.', '\r', '\n', ' ', '\u00e9', '\u0000'),
  maxLength: 200,
});
const cutsArb = fc.array(fc.nat({ max: 250 }), { maxLength: 12 });

describe('properties', () => {
  test('stuffed content, unstuffed by the receiving scanner, is the CRLF-clean text, ending exactly at the end', () => {
    fc.assert(
      fc.property(contentArb, cutsArb, (content, cuts) => {
        const wire = latin1(encode(content, true, cuts));
        const scanner = new DataScanner({
          bareLineEndings: 'reject',
          maxLineBytes: 100_000,
          dotStuffed: true,
        });
        const r = scanner.scan(wire);
        assert.equal(r.endIndex, wire.length, 'the end of data is the very last byte, never earlier');
        assert.equal(scanner.bareLineEnding, false);
        assert.equal(text(r.output), crlfClean(content));
      }),
    );
  });

  test('no bare CR or LF ever leaves the encoder, in either mode, however the input is cut', () => {
    fc.assert(
      fc.property(contentArb, cutsArb, fc.boolean(), (content, cuts, dotStuff) => {
        const out = encode(content, dotStuff, cuts);
        assert.equal(out.replace(/\r\n/g, '').search(/[\r\n]/), -1);
        assert.equal(out, encode(content, dotStuff));
      }),
    );
  });

  test('BDAT output is exactly the CRLF-clean text', () => {
    fc.assert(
      fc.property(contentArb, cutsArb, (content, cuts) => {
        assert.equal(encode(content, false, cuts), crlfClean(content));
      }),
    );
  });
});
