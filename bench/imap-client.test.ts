// Tests of the IMAP benchmark's own parts that need no server: the response framing of the raw client
// (any split of the bytes gives the same responses, literals counted or kept, UTF-8 text decoded) and
// the corpus (the same bytes every time, sizes in range, search words exactly where expected, exact
// fixed-size messages). The measurements themselves run in `npm run bench -- --only imap`.
// Not part of `npm test` (bench/ is outside its globs): `npx node --test bench/imap-client.test.ts`.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { quoted, ResponseReader } from './imap-client.ts';
import type { ImapResponse } from './imap-client.ts';
import { corpusMessage, expectedHits, fixedMessage, imapDateTime, SEARCH_WORDS } from './imap-corpus.ts';

const simplify = (rs: readonly ImapResponse[]) =>
  rs.map((r) => ({
    text: r.text,
    literalBytes: r.literalBytes,
    literals: r.literals.map((l) => l.toString('utf8')),
  }));

function feedAll(bytes: Buffer, cuts: readonly number[], keep: boolean): ImapResponse[] {
  const reader = new ResponseReader(() => keep);
  const out: ImapResponse[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...reader.feed(bytes.subarray(from, cut)));
    from = cut;
  }
  return out;
}

const STREAM = Buffer.from(
  '* 2 EXISTS\r\n' +
    '* 1 FETCH (UID 7 BODY[] {12}\r\nhello\r\nworld FLAGS (\\Seen))\r\n' +
    '+ idling\r\n' +
    '* 3 FETCH (ENVELOPE ("date" {14}\r\nJürgen 日本 NIL))\r\n' +
    '* 4 FETCH (BODY[] {0}\r\n)\r\n' +
    'b1 OK done\r\n',
  'utf8',
);

test('responses with literals, kept: text around them, the literal bytes whole, UTF-8 decoded', () => {
  const rs = simplify(feedAll(STREAM, [], true));
  assert.deepEqual(rs, [
    { text: '* 2 EXISTS', literalBytes: 0, literals: [] },
    {
      text: '* 1 FETCH (UID 7 BODY[] {12}\r\n FLAGS (\\Seen))',
      literalBytes: 12,
      literals: ['hello\r\nworld'],
    },
    { text: '+ idling', literalBytes: 0, literals: [] },
    // 14 bytes: "Jürgen 日本" is 7 + 1 + 6 UTF-8 bytes.
    { text: '* 3 FETCH (ENVELOPE ("date" {14}\r\n NIL))', literalBytes: 14, literals: ['Jürgen 日本'] },
    { text: '* 4 FETCH (BODY[] {0}\r\n)', literalBytes: 0, literals: [''] },
    { text: 'b1 OK done', literalBytes: 0, literals: [] },
  ]);
});

test('literals only counted when not kept', () => {
  const rs = simplify(feedAll(STREAM, [], false));
  assert.equal(rs[1]!.literalBytes, 12);
  assert.deepEqual(rs[1]!.literals, []);
  assert.equal(rs.length, 6);
});

test('any split of the stream gives the same responses (every single cut, and byte by byte)', () => {
  const whole = simplify(feedAll(STREAM, [], true));
  for (let cut = 1; cut < STREAM.length; cut++)
    assert.deepEqual(simplify(feedAll(STREAM, [cut], true)), whole, `cut at ${cut}`);
  const every = Array.from({ length: STREAM.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(simplify(feedAll(STREAM, every, true)), whole);
});

test('a LITERAL+ marker {n+} in a response is framed too; bare LF line ends are tolerated', () => {
  const rs = simplify(feedAll(Buffer.from('* 1 FETCH (X {3+}\r\nabc)\n* OK\n'), [], true));
  assert.deepEqual(rs, [
    { text: '* 1 FETCH (X {3+}\r\n)', literalBytes: 3, literals: ['abc'] },
    { text: '* OK', literalBytes: 0, literals: [] },
  ]);
});

test('quoted strings escape backslash and double quote, and refuse CR/LF', () => {
  assert.equal(quoted('user@bench.test'), '"user@bench.test"');
  assert.equal(quoted('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(quoted('jürgen@例え.jp'), '"jürgen@例え.jp"');
  assert.throws(() => quoted('a\r\nb'));
});

test('the corpus is deterministic, 1–100 KiB, CRLF only, with UTF-8 headers in encoded and raw form', () => {
  const a = corpusMessage(1234);
  assert.ok(a.raw.equals(corpusMessage(1234).raw));
  assert.ok(!a.raw.equals(corpusMessage(1234, 2).raw));
  const sizes: number[] = [];
  let encoded = 0;
  let raw8 = 0;
  const kinds = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const m = corpusMessage(i);
    sizes.push(m.raw.length);
    const text = m.raw.toString('utf8');
    assert.ok(!/(^|[^\r])\n/.test(text), `bare LF in message ${i}`);
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    if (head.includes('=?UTF-8?B?')) encoded += 1;
    if (/[^\x00-\x7f]/.test(head)) raw8 += 1;
    const kind = /Content-Type: ([a-z/]+)/.exec(head)?.[1] ?? '?';
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    assert.ok(m.messageId.endsWith('@corpus.bench.test>'));
  }
  assert.ok(
    Math.min(...sizes) >= 900 && Math.max(...sizes) <= 110 * 1024,
    `${Math.min(...sizes)}…${Math.max(...sizes)}`,
  );
  assert.ok(encoded > 100, `encoded words in ${encoded}`);
  assert.ok(raw8 >= 5, `raw UTF-8 headers in ${raw8}`);
  for (const kind of ['text/plain', 'multipart/alternative', 'multipart/mixed'])
    assert.ok((kinds.get(kind) ?? 0) > 30, `${kind}: ${kinds.get(kind)}`);
  // The UTF-8 sender decodes back to the name it encodes.
  const jürgen = corpusMessage(5 * 5 + 2).raw.toString('utf8');
  const b64 = /From: =\?UTF-8\?B\?([^?]+)\?=/.exec(jürgen)?.[1];
  assert.ok(b64 !== undefined);
  assert.equal(Buffer.from(b64, 'base64').toString('utf8'), 'Jürgen Weiß');
});

test('each search word is in exactly the messages expectedHits names', () => {
  for (const [id, w] of Object.entries(SEARCH_WORDS) as [
    keyof typeof SEARCH_WORDS,
    (typeof SEARCH_WORDS)[keyof typeof SEARCH_WORDS],
  ][]) {
    const found: number[] = [];
    for (let i = 0; i < 500; i++)
      if (corpusMessage(i).raw.includes(Buffer.from(w.word, 'utf8'))) found.push(i);
    assert.deepEqual(found, expectedHits(id, 500), id);
  }
  assert.equal(expectedHits('ascii', 10_000).length, 100);
  assert.equal(expectedHits('utf8', 10_000).length, 100);
});

test('fixed-size messages are exactly the size asked, CRLF only; dates in IMAP form', () => {
  for (const n of [300, 1024, 1025, 4096, 100 * 1024])
    for (const tag of ['a', 'r1-1024-1999', 'jürgen-日本']) {
      const m = fixedMessage(n, tag);
      assert.equal(m.length, n, `${n} ${tag}`);
      assert.ok(!/(^|[^\r])\n/.test(m.toString('utf8')));
    }
  assert.equal(imapDateTime(new Date(Date.UTC(2026, 0, 5, 8, 3, 9))), '05-Jan-2026 08:03:09 +0000');
});
