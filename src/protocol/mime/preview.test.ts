import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { firstChars } from './preview.ts';
import { scanMessage } from './structure.ts';

function preview(s: string): string {
  return scanMessage(Buffer.from(s.replace(/\n/g, '\r\n'), 'utf8')).preview;
}

test('PREVIEW: quoted-printable, charset, white space collapsed', () => {
  assert.equal(
    preview(
      'Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe,\n\n  J=FCr=\ngen\n',
    ),
    'Grüße, Jürgen',
  );
});

test('PREVIEW: base64 UTF-8 日本語 inside multipart, attachments skipped, html only as fallback', () => {
  const b64 = Buffer.from('日本語のテキスト\n二行目').toString('base64');
  const m = `Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Disposition: attachment\n\nnot this\n--b\nContent-Type: text/html\n\n<p>html&amp;co</p>\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n${b64}\n--b--\n`;
  assert.equal(preview(m), '日本語のテキスト 二行目');
  assert.equal(
    preview('Content-Type: text/html\n\n<style>x{}</style><p>Hello &amp; <b>bye</b></p>'),
    'Hello & bye',
  );
});

test('PREVIEW: at most 200 characters; none without a text part', () => {
  assert.equal(preview(`Subject: x\n\n${'ü'.repeat(500)}`).length, 200);
  assert.equal(preview('Content-Type: image/png\n\nxx'), '');
});

test('PREVIEW: looking at the start first gives what the whole text gives', () => {
  // The plain definition: collapse the whole text, drop a trailing U+FFFD run, trim, 200 characters.
  const whole = (t: string): string =>
    Array.from(
      t
        .replace(/[\x00-\x1f\x7f\s]+/g, ' ')
        .replace(/\uFFFD+$/, '')
        .trim(),
    )
      .slice(0, 200)
      .join('')
      .trimEnd();
  const piece = fc.constantFrom('a', ' ', '\t', '\r\n', 'ü', '日本', '😀', '\uFFFD', '\u0000', 'word ');
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 3000 }), fc.nat(200), (parts, lead) => {
      const text = ' '.repeat(lead) + parts.join('');
      assert.equal(firstChars(text), whole(text));
    }),
    { numRuns: 300 },
  );
  const long = `${' \r\n'.repeat(2000)}${'x'.repeat(5000)}`;
  assert.equal(firstChars(long), whole(long));
});
