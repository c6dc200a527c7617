import assert from 'node:assert/strict';
import { test } from 'node:test';
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
