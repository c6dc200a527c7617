// Tests of the header field filters: dropHeaderFields on a held header block, withoutHeaderFields on a
// stream cut anywhere (every split point gives the same bytes), Bcc:/Resent-Bcc: and Return-Path:
// recognised whatever their case and folding, octets that are not UTF-8 kept exactly, and a header
// section larger than the limit passed on unchanged rather than held.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  dropHeaderFields,
  HeaderCapture,
  isBlindCopyField,
  isReturnPathField,
  withoutHeaderFields,
} from './header-capture.ts';

async function* stream(...parts: Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const p of parts) {
    await Promise.resolve();
    yield p;
  }
}

async function collect(content: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const c of content) out.push(c);
  return Buffer.concat(out);
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('field names', () => {
  test('Bcc: and Resent-Bcc: in any case, with space before the colon; nothing else', () => {
    for (const f of [
      'Bcc: a@b\r\n',
      'bcc:\r\n a@b\r\n',
      'BCC :x\r\n',
      'Resent-Bcc: a@b\r\n',
      'resent-BCC:\r\n',
    ])
      assert.ok(isBlindCopyField(f), f);
    for (const f of ['Cc: a@b\r\n', 'X-Bcc: a@b\r\n', 'Bccx: a\r\n', 'Subject: Bcc: a\r\n'])
      assert.ok(!isBlindCopyField(f), f);
  });

  test('Return-Path: in any case; nothing else', () => {
    for (const f of ['Return-Path: <a@b>\r\n', 'return-path:\r\n <a@b>\r\n', 'RETURN-PATH :<>\r\n'])
      assert.ok(isReturnPathField(f), f);
    for (const f of ['X-Return-Path: <a@b>\r\n', 'Return-Paths: x\r\n']) assert.ok(!isReturnPathField(f), f);
  });
});

describe('withoutHeaderFields', () => {
  const message = utf8(
    'Return-Path: <old@example.net>\r\nFrom: Jürgen <jürgen@example.org>\r\nreturn-path:\r\n' +
      '\t<folded@example.net>\r\nSubject: 日本\r\n\r\nReturn-Path: <in the body, kept>\r\n',
  );
  const expected = utf8(
    'From: Jürgen <jürgen@example.org>\r\nSubject: 日本\r\n\r\nReturn-Path: <in the body, kept>\r\n',
  );

  test('drops the fields (folds and all), keeps the body, whatever the chunking', async () => {
    for (let cut = 0; cut <= message.length; cut++) {
      const got = await collect(
        withoutHeaderFields(stream(message.subarray(0, cut), message.subarray(cut)), isReturnPathField),
      );
      assert.deepEqual(got, expected, `cut at ${cut}`);
    }
  });

  test('octets that are not UTF-8 pass exactly', async () => {
    const latin = Buffer.concat([
      utf8('Return-Path: <x@y>\r\nSubject: caf'),
      Buffer.from([0xe9]),
      utf8('\r\n\r\nb\r\n'),
    ]);
    const got = await collect(withoutHeaderFields(stream(latin), isReturnPathField));
    assert.deepEqual(got, Buffer.concat([utf8('Subject: caf'), Buffer.from([0xe9]), utf8('\r\n\r\nb\r\n')]));
  });

  test('a message that is all header fields, with no empty line, is filtered too', async () => {
    const got = await collect(
      withoutHeaderFields(stream(utf8('Subject: x\r\nReturn-Path: <a@b>\r\n')), isReturnPathField),
    );
    assert.deepEqual(got, utf8('Subject: x\r\n'));
  });

  test('a header section past the limit is passed on unchanged, not held', async () => {
    const big = utf8(`Return-Path: <a@b>\r\nX-Long: ${'x'.repeat(200)}\r\n\r\nbody\r\n`);
    const got = await collect(
      withoutHeaderFields(stream(big.subarray(0, 100), big.subarray(100)), isReturnPathField, 64),
    );
    assert.deepEqual(got, big);
  });

  test('nothing to drop: the same bytes', async () => {
    const plain = utf8('Subject: x\r\n\r\nbody\r\n');
    assert.deepEqual(await collect(withoutHeaderFields(stream(plain), isReturnPathField)), plain);
    assert.deepEqual(await collect(withoutHeaderFields(stream(), isReturnPathField)), Buffer.alloc(0));
  });
});

describe('dropHeaderFields', () => {
  test('Bcc: with folded lines goes whole; the next field stays', () => {
    const held = utf8('To: a@b\r\nBcc: c@d,\r\n e@f\r\nbcc:\r\n\t日本@example.org\r\nSubject: s\r\n\r\nbo');
    assert.deepEqual(dropHeaderFields(held, isBlindCopyField), utf8('To: a@b\r\nSubject: s\r\n\r\nbo'));
  });
});

describe('HeaderCapture: the Message-ID for the log and the trace', () => {
  const facts = (header: string): ReturnType<HeaderCapture['finish']>['facts'] => {
    const c = new HeaderCapture();
    return c.push(utf8(`${header}\r\nbody\r\n`))?.facts ?? c.finish().facts;
  };
  test('the msg-id, unfolded and without comments; UTF-8 kept; none when absent', () => {
    assert.equal(facts('Message-ID: <a1@example.net>\r\n').messageId, '<a1@example.net>');
    assert.equal(facts('message-id:\r\n  <a2@example.net> (a comment)\r\n').messageId, '<a2@example.net>');
    assert.equal(facts('Message-ID: <日本.3@例え.jp>\r\n').messageId, '<日本.3@例え.jp>');
    assert.equal(facts('Subject: x\r\n').messageId, null);
    assert.equal(facts('Subject: x\r\n').hasMessageId, false);
    // Two: the first counts.
    assert.equal(facts('Message-ID: <one@x>\r\nMessage-ID: <two@x>\r\n').messageId, '<one@x>');
  });
});
