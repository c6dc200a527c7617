import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeBase64,
  decodeQuotedPrintable,
  decodeTransfer,
  decodeTransferStrict,
  transferCoding,
} from './transfer.ts';

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

test('transfer codings: identity, base64, quoted-printable in any case; others unknown', () => {
  assert.equal(transferCoding('7BIT'), 'identity');
  assert.equal(transferCoding('8bit'), 'identity');
  assert.equal(transferCoding('Binary'), 'identity');
  assert.equal(transferCoding(' Base64 '), 'base64');
  assert.equal(transferCoding('Quoted-Printable'), 'quoted-printable');
  assert.equal(transferCoding('x-uuencode'), null);
  assert.equal(decodeTransferStrict('x-uuencode', bytes('abc')), null);
  assert.equal(text(decodeTransfer('x-uuencode', bytes('abc'))), 'abc');
});

test('base64 decodes as Buffer does, skipping line breaks and padding white space', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 1, max: 80 }), (raw, width) => {
      const b64 = Buffer.from(raw).toString('base64');
      const wrapped = (b64.match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join(' \r\n\t');
      assert.deepEqual(Buffer.from(decodeBase64(bytes(wrapped))), Buffer.from(raw));
    }),
  );
  // imaptest fetch-binary-mime-base64 part 2: white space around every line.
  assert.equal(
    text(decodeBase64(bytes('  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n\r\n'))),
    'hello world',
  );
});

/** An independent quoted-printable encoder (RFC 2045 §6.7 rules 1-5), lines ≤ 76, CRLF kept as breaks. */
function encodeQp(raw: Uint8Array): string {
  let out = '';
  let line = '';
  const push = (tok: string): void => {
    if (line.length + tok.length > 75) {
      out += `${line}=\r\n`;
      line = '';
    }
    line += tok;
  };
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (b === 13 && raw[i + 1] === 10) {
      out += `${line}\r\n`;
      line = '';
      i++;
      continue;
    }
    const atLineEnd = i + 1 === raw.length || (raw[i + 1] === 13 && raw[i + 2] === 10);
    const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !atLineEnd);
    push(literal ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`);
  }
  return out + line;
}

test('quoted-printable: round trip through an independent encoder', () => {
  const octets = fc.oneof(fc.constantFrom(13, 10, 32, 9, 61, 0, 255), fc.integer({ min: 0, max: 255 }));
  fc.assert(
    fc.property(fc.array(octets, { maxLength: 400 }), (arr) => {
      const raw = Uint8Array.from(arr);
      assert.deepEqual(Buffer.from(decodeQuotedPrintable(bytes(encodeQp(raw)))), Buffer.from(raw));
    }),
  );
});

test('quoted-printable: the robust-decoder rules of RFC 2045 §6.7 as Dovecot applies them', () => {
  // imaptest fetch-binary-mime-qp: padding dropped, "= <ws>" a soft break, lower-case hex accepted.
  const body =
    'hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n';
  const want = 'hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n';
  assert.equal(text(decodeQuotedPrintable(bytes(body))), want);
  assert.equal(want.length, 65);
  // Goldens that Python's quopri gives too: hex pairs, "=" not before hex kept, a final soft break.
  assert.equal(text(decodeQuotedPrintable(bytes('caf=C3=A9 =3D=3d ok'))), 'caf\xc3\xa9 == ok');
  assert.equal(
    text(decodeQuotedPrintable(bytes('end=4\r\n=ZZ =\r\n\tx\r\nlast='))),
    'end=4\r\n=ZZ \tx\r\nlast',
  );
  // Bare LF line breaks are kept as LF.
  assert.equal(text(decodeQuotedPrintable(bytes('a=\nb\nc'))), 'ab\nc');
  // UTF-8 twin: jürgen and 日本 encoded octet by octet.
  const utf8 = Buffer.from('jürgen 日本\r\n', 'utf8');
  assert.equal(Buffer.from(decodeQuotedPrintable(bytes(encodeQp(utf8)))).toString('utf8'), 'jürgen 日本\r\n');
  assert.equal(encodeQp(Buffer.from('ü', 'utf8')), '=C3=BC');
});
