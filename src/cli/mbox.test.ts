import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import {
  flagsFromMboxFields,
  fromLineDate,
  parseFromLineDate,
  readMbox,
  toCrlf,
  writeMboxMessage,
} from './mbox.ts';

/** Feed bytes in awkward chunk sizes, so line and From_ detection must work across chunks. */
function chunked(bytes: Buffer, size: number): AsyncIterable<Uint8Array> {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of source) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function readAllMessages(bytes: Buffer, size: number) {
  const out: { fromLine: string; date: number | null; flags: readonly string[]; bytes: string }[] = [];
  for await (const m of readMbox(chunked(bytes, size))) {
    out.push({
      fromLine: m.fromLine,
      date: m.internalDateMs,
      flags: m.flags,
      bytes: (await collect(m.content)).toString('utf8'),
    });
  }
  return out;
}

// What Dovecot 2.3.19 wrote (doveadm import into mbox:): Content-Length, unquoted From lines in the
// body, bookkeeping fields, and a message without a final newline given one.
const DOVECOT = Buffer.from(
  'From mb@vm  Mon Dec 07 00:32:15 2026\n' +
    'From: a@b\nSubject: hi\nX-IMAPbase: 1796603540 0000000001 $Forwarded custom1 $Junk\nX-UID: 1\n' +
    'Status: R\nX-Status: AFTD\nX-Keywords: $Forwarded custom1 $Junk                      \n' +
    'Content-Length: 33\n\nbody\nFrom the start\n>From quoted\n\n' +
    'From mb@vm  Mon Dec 07 00:32:16 2026\nFrom: c@d\nSubject: 日本\nX-UID: 2\nStatus: \n' +
    'X-Keywords:                      \nContent-Length: 6\n\nbody2\n\n',
);

describe('mbox', () => {
  for (const size of [1, 7, 4096]) {
    test(`reads Dovecot's mbox by Content-Length, flags from Status/X-Status/X-Keywords (chunks of ${size})`, async () => {
      const messages = await readAllMessages(DOVECOT, size);
      assert.deepEqual(messages, [
        {
          fromLine: 'mb@vm  Mon Dec 07 00:32:15 2026',
          date: Date.UTC(2026, 11, 7, 0, 32, 15),
          flags: [
            '\\Seen',
            '\\Answered',
            '\\Flagged',
            '\\Draft',
            '\\Deleted',
            '$Forwarded',
            'custom1',
            '$Junk',
          ],
          bytes: 'From: a@b\nSubject: hi\n\nbody\nFrom the start\n>From quoted\n',
        },
        {
          fromLine: 'mb@vm  Mon Dec 07 00:32:16 2026',
          date: Date.UTC(2026, 11, 7, 0, 32, 16),
          flags: [],
          bytes: 'From: c@d\nSubject: 日本\n\nbody2\n',
        },
      ]);
    });

    test(`reads mboxrd: >From unquoted once, empty separator lines dropped (chunks of ${size})`, async () => {
      const mbox = Buffer.from(
        'From jürgen@example.org Thu Jan 15 12:00:05 2026\nSubject: a\n\n>From here\n>>From there\nFrom: x\n\n\n' +
          'From MAILER-DAEMON Fri Jan 16 13:00:00 2026 +0100\r\nSubject: b\r\n\r\n\r\nline\r\n\n',
      );
      const messages = await readAllMessages(mbox, size);
      assert.deepEqual(
        messages.map((m) => [m.date, m.bytes]),
        [
          [Date.UTC(2026, 0, 15, 12, 0, 5), 'Subject: a\n\nFrom here\n>From there\nFrom: x\n\n'],
          [Date.UTC(2026, 0, 16, 12, 0, 0), 'Subject: b\r\n\r\n\r\nline\r\n'],
        ],
      );
    });
  }

  test('a message left unread is skipped, and an empty stream has no messages', async () => {
    const dates: (number | null)[] = [];
    for await (const m of readMbox(chunked(DOVECOT, 5))) dates.push(m.internalDateMs);
    assert.equal(dates.length, 2);
    assert.deepEqual(await readAllMessages(Buffer.alloc(0), 1), []);
    await assert.rejects(
      readAllMessages(Buffer.from('Subject: x\n\nno From_ line\n'), 10),
      /does not start with a "From " line/,
    );
  });

  test('writes mboxrd that reads back byte for byte, flags in Status/X-Status/X-Keywords', async () => {
    const originals = [
      Buffer.from(
        'Return-Path: <jürgen@example.org>\r\nSubject: 日本\r\nStatus: RO\r\n\r\nFrom me\r\n>From you\r\n\r\n',
      ),
      Buffer.from('Subject: x\n\nno final newline'),
    ];
    const flags = [
      ['\\Seen', '\\Answered', '$Later'],
      ['\\Flagged', '\\Draft', '\\Deleted'],
    ];
    const parts: Buffer[] = [];
    for (const [i, original] of originals.entries()) {
      for await (const b of writeMboxMessage(
        { sender: 'jürgen@example.org', internalDateMs: Date.UTC(2026, 0, 5, 1, 2, 3), flags: flags[i]! },
        chunked(original, 3),
      ))
        parts.push(b);
    }
    const mbox = Buffer.concat(parts);
    assert.match(mbox.toString('utf8'), /^From jürgen@example\.org Mon Jan  5 01:02:03 2026\n/);
    assert.match(mbox.toString('utf8'), /\r\n>From me\r\n>>From you\r\n/);
    const back = await readAllMessages(mbox, 2);
    assert.deepEqual(
      back.map((m) => m.flags),
      flags,
    );
    // The stored Status: field is replaced by the flags; a missing final newline is added.
    assert.equal(
      back[0]!.bytes,
      'Return-Path: <jürgen@example.org>\r\nSubject: 日本\r\n\r\nFrom me\r\n>From you\r\n\r\n',
    );
    assert.equal(back[1]!.bytes, 'Subject: x\n\nno final newline\n');
    assert.deepEqual(
      back.map((m) => m.date),
      [Date.UTC(2026, 0, 5, 1, 2, 3), Date.UTC(2026, 0, 5, 1, 2, 3)],
    );
  });

  test('streams: a message is handed on before the rest of the file is read', async () => {
    let produced = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 1_000_000; i++) {
        await Promise.resolve();
        produced++;
        yield Buffer.from(`From a@b Thu Jan 15 12:00:05 2026\nSubject: ${i}\n\n${'x'.repeat(1000)}\n\n`);
      }
    }
    let seen = 0;
    for await (const m of readMbox(endless())) {
      for await (const chunk of m.content) assert.ok(chunk.length > 0);
      if (++seen === 3) break;
    }
    assert.ok(produced < 10, `read ${produced} chunks for 3 messages`);
  });

  test('From_ dates: asctime both ways, zones, nonsense', () => {
    assert.equal(fromLineDate(Date.UTC(2026, 0, 15, 12, 0, 5)), 'Thu Jan 15 12:00:05 2026');
    assert.equal(parseFromLineDate('From a@b Thu Jan 15 12:00:05 2026'), Date.UTC(2026, 0, 15, 12, 0, 5));
    assert.equal(
      parseFromLineDate('From a@b Thu Jan 15 12:00:05 -0500 2026'),
      Date.UTC(2026, 0, 15, 17, 0, 5),
    );
    assert.equal(
      parseFromLineDate('From 日本@example.org Sat Feb  7 09:08 2026'),
      Date.UTC(2026, 1, 7, 9, 8, 0),
    );
    assert.equal(parseFromLineDate('From a@b yesterday'), null);
  });

  test('flags: keywords split on spaces or commas, non-atoms dropped', () => {
    assert.deepEqual(flagsFromMboxFields('RO', 'FA', 'work, $Later 日本'), {
      flags: ['\\Seen', '\\Answered', '\\Flagged', 'work', '$Later'],
      dropped: ['日本'],
    });
  });

  test('toCrlf turns bare LF into CRLF across chunks and leaves CRLF alone', async () => {
    const input = Buffer.from('a\nb\r\nc\r\n\nd日本\n');
    for (const size of [1, 2, 100]) {
      assert.equal(
        (await collect(toCrlf(chunked(input, size)))).toString('utf8'),
        'a\r\nb\r\nc\r\n\r\nd日本\r\n',
      );
    }
  });
});
