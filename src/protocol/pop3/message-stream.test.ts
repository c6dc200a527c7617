// RETR and TOP content on the wire: byte-stuffing, the terminating line, TOP's cut after the header
// section and n body lines, and that any split of the stored message gives the same bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MessageEncoder, TopCutter } from './message-stream.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function encode(message: string, topLines: number | null, cuts: readonly number[] = []): string {
  const input = bytes(message);
  const enc = new MessageEncoder(topLines);
  const points = [...new Set(cuts.filter((c) => c > 0 && c < input.length))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let start = 0;
  for (const p of [...points, input.length]) {
    if (enc.done) break;
    out.push(enc.push(input.subarray(start, p)));
    start = p;
  }
  out.push(enc.end());
  return text(Buffer.concat(out));
}

/** Reference cut on the whole message: lines end at LF; the header section ends at an empty line. */
function referenceTop(message: string, n: number): string {
  const lines = message.split(/(?<=\n)/);
  let i = 0;
  while (i < lines.length && !/^\r?\n$/.test(lines[i]!)) i++;
  if (i === lines.length) return message;
  return lines.slice(0, i + 1 + n).join('');
}

/** Reference stuffing: CRLF line endings, a "." before every line that starts with one, then ".". */
function referenceStuff(content: string): string {
  const t = content.replace(/\r\n|\r|\n/g, '\r\n');
  const ended = t === '' || t.endsWith('\r\n') ? t : `${t}\r\n`;
  return ended.replace(/^\./gm, '..') + '.\r\n';
}

describe('MessageEncoder: RETR', () => {
  it('examples', () => {
    assert.equal(encode('', null), '.\r\n');
    assert.equal(encode('a', null), 'a\r\n.\r\n');
    assert.equal(encode('a\r\n', null), 'a\r\n.\r\n');
    assert.equal(encode('.\r\n', null), '..\r\n.\r\n');
    assert.equal(encode('a\r\n.\r\n..b\r\n', null), 'a\r\n..\r\n...b\r\n.\r\n');
    assert.equal(encode('Subject: Grüße 日本\r\n\r\nx\r\n', null), 'Subject: Grüße 日本\r\n\r\nx\r\n.\r\n');
  });

  it('a bare LF never ends the response early: "\\n.\\n" goes out as CRLF ".." CRLF', () => {
    assert.equal(encode('a\n.\nb', null), 'a\r\n..\r\nb\r\n.\r\n');
  });

  it('a CRLF-clean message goes out exactly as stored, stuffed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', '.', 'ü', ' ', '\r\n', '..', 'From: x'), { maxLength: 40 }),
        fc.array(fc.nat(200), { maxLength: 10 }),
        (parts, cuts) => {
          const message = parts.join('');
          assert.equal(encode(message, null, cuts), referenceStuff(message));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('TopCutter and MessageEncoder: TOP', () => {
  const message = 'A: 1\r\nB: 2\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n';

  it('examples', () => {
    assert.equal(encode(message, 0), 'A: 1\r\nB: 2\r\n\r\n.\r\n');
    assert.equal(encode(message, 1), 'A: 1\r\nB: 2\r\n\r\nline 1\r\n.\r\n');
    assert.equal(encode(message, 2), 'A: 1\r\nB: 2\r\n\r\nline 1\r\n..line 2\r\n.\r\n');
    assert.equal(encode(message, 99), `A: 1\r\nB: 2\r\n\r\nline 1\r\n..line 2\r\nline 3\r\n.\r\n`);
    assert.equal(encode('A: 1\r\nB: 2\r\n', 0), 'A: 1\r\nB: 2\r\n.\r\n');
    assert.equal(encode('A: 1\n\nbody\nmore\n', 1), 'A: 1\r\n\r\nbody\r\n.\r\n');
    assert.equal(encode('\r\nbody\r\n', 0), '\r\n.\r\n');
  });

  it('is done after the last wanted line, so the driver can stop reading', () => {
    const cutter = new TopCutter(1);
    assert.equal(text(cutter.push(bytes('A: 1\r\n\r\nfirst\r\nsec'))), 'A: 1\r\n\r\nfirst\r\n');
    assert.equal(cutter.done, true);
    assert.equal(cutter.push(bytes('ond\r\n')).length, 0);
  });

  it('any split gives the reference cut, stuffed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('H: v', 'a', '.', '\r\n', '\n', '\r', 'ü'), { maxLength: 40 }),
        fc.nat(6),
        fc.array(fc.nat(200), { maxLength: 10 }),
        (parts, n, cuts) => {
          const message = parts.join('');
          assert.equal(encode(message, n, cuts), referenceStuff(referenceTop(message, n)));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
