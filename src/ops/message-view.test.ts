import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_VIEW_BYTES, messageHtml, messagePart, viewMessage } from './message-view.ts';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');

const MESSAGE = crlf(`Received: from x by y; Mon, 7 Dec 2026 10:00:00 +0000
Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.net; dkim=fail header.d=example.net
From: =?UTF-8?Q?J=C3=BCrgen?= <jürgen@example.net>
To: 日本 <日本@example.jp>
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=
Date: Mon, 7 Dec 2026 10:00:00 +0000
Message-ID: <m1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe aus M=FCnchen
--inner
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

${Buffer.from('<p>Grüße <b>aus</b> München</p>').toString('base64')}
--inner--
--outer
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt

日本
--outer
Content-Type: image/png
Content-Disposition: inline; filename="dot.png"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--outer--
`);

test('a message taken apart: decoded headers, text, the HTML part, attachments, Authentication-Results', () => {
  const v = viewMessage(MESSAGE);
  assert.equal(v.subject, 'Grüße');
  assert.equal(v.from, 'Jürgen <jürgen@example.net>');
  assert.equal(v.to, '日本 <日本@example.jp>');
  assert.equal(v.messageId, '<m1@example.net>');
  assert.deepEqual(v.authenticationResults, [
    'mx.example.org; spf=pass smtp.mailfrom=example.net; dkim=fail header.d=example.net',
  ]);
  assert.equal(v.text, 'Grüße aus München');
  assert.equal(v.htmlPart, '1.2');
  assert.deepEqual(v.attachments, [
    { part: '2', filename: '日本.txt', contentType: 'text/plain', size: 6 },
    { part: '3', filename: 'dot.png', contentType: 'image/png', size: 8 },
  ]);
  assert.equal(v.tooLarge, false);
  assert.equal(messageHtml(MESSAGE, '1.2'), '<p>Grüße <b>aus</b> München</p>');
  assert.equal(messageHtml(MESSAGE, '1.1'), null, 'a text/plain part is no HTML');
  assert.equal(Buffer.from(messagePart(MESSAGE, '2')!.body).toString('utf8'), '日本');
  assert.equal(messagePart(MESSAGE, '9'), null);
  assert.equal(messagePart(MESSAGE, '../1'), null);
});

test('a message that is not MIME is one text body; one with no body at all has none', () => {
  const plain = viewMessage(crlf('Subject: hi\n\nline one\nline two\n'));
  assert.equal(plain.text, 'line one\r\nline two\r\n');
  assert.deepEqual(plain.attachments, []);
  const bare = viewMessage(crlf('Subject: only headers\n'));
  assert.equal(bare.subject, 'only headers');
});

test('a message over the view limit is shown by its headers only', () => {
  const big = Buffer.concat([crlf('Subject: big\n\n'), Buffer.alloc(MAX_VIEW_BYTES + 1, 0x61)]);
  const v = viewMessage(big);
  assert.equal(v.tooLarge, true);
  assert.equal(v.subject, 'big');
  assert.equal(v.text, null);
  assert.equal(messagePart(big, '1'), null);
});
