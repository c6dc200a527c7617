// Tests of the client's reply parser: single and multiline replies (RFC 5321 §4.2.1), enhanced codes
// (RFC 2034), hostile input (over-long lines, garbage, code changes, floods) and fragmentation: any
// cut of the same bytes gives the same replies. Replies written by Tern's own formatReply parse back.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatReply } from '../../../core/reply.ts';
import { formatRemoteReply, makeReply, ReplyParser } from './reply-parser.ts';

const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');

function parseAll(s: string, parser = new ReplyParser()) {
  return parser.push(enc(s));
}

describe('ReplyParser', () => {
  test('a one-line reply with an enhanced code', () => {
    const { replies, error } = parseAll('250 2.1.5 Recipient OK\r\n');
    assert.equal(error, null);
    assert.deepEqual(replies, [
      { code: 250, enhanced: '2.1.5', text: 'Recipient OK', lines: ['2.1.5 Recipient OK'] },
    ]);
  });

  test('a multiline reply keeps its lines and joins the texts without repeated enhanced codes', () => {
    const { replies } = parseAll('550-5.1.1 No such\r\n550-5.1.1 user\r\n550 5.1.1 here\r\n');
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.code, 550);
    assert.equal(replies[0]!.enhanced, '5.1.1');
    assert.equal(replies[0]!.text, 'No such user here');
    assert.deepEqual(replies[0]!.lines, ['5.1.1 No such', '5.1.1 user', '5.1.1 here']);
    assert.equal(formatRemoteReply(replies[0]!), '550 5.1.1 No such user here');
  });

  test('an enhanced code of another class is text, not a status', () => {
    assert.deepEqual(makeReply(550, ['2.0.0 odd']).enhanced, null);
    assert.equal(makeReply(550, ['2.0.0 odd']).text, '2.0.0 odd');
    assert.equal(makeReply(451, ['4.07.001 x']).enhanced, '4.7.1');
    assert.equal(makeReply(250, ['2.0.0']).text, '');
  });

  test('a bare code line and a bare LF line end are accepted', () => {
    const { replies, error } = parseAll('250\n354 go\r\n');
    assert.equal(error, null);
    assert.deepEqual(
      replies.map((r) => [r.code, r.text]),
      [
        [250, ''],
        [354, 'go'],
      ],
    );
  });

  test('several replies in one chunk (pipelining) come out in order', () => {
    const { replies } = parseAll('250 ok\r\n250 ok2\r\n550 no\r\n354 go\r\n');
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250, 550, 354],
    );
  });

  test('garbage is an error, and the parser stays dead', () => {
    const parser = new ReplyParser();
    const first = parser.push(enc('250 ok\r\nHTTP/1.1 400 Bad Request\r\n'));
    assert.equal(first.replies.length, 1);
    assert.match(first.error!, /malformed reply line/);
    const later = parser.push(enc('250 fine\r\n'));
    assert.deepEqual(later.replies, []);
    assert.equal(later.error, first.error);
  });

  test('codes outside 2xx-5xx and a code change inside a multiline reply are errors', () => {
    assert.match(parseAll('199 x\r\n').error!, /malformed/);
    assert.match(parseAll('600 x\r\n').error!, /malformed/);
    assert.match(parseAll('2500 x\r\n').error!, /malformed/);
    assert.match(parseAll('250-a\r\n550 b\r\n').error!, /code changed/);
  });

  test('an over-long line is an error before it is buffered whole', () => {
    const parser = new ReplyParser({ maxLineBytes: 100, maxLines: 10, maxPendingReplies: 10 });
    const r1 = parser.push(enc(`250 ${'x'.repeat(60)}`));
    assert.equal(r1.error, null);
    const r2 = parser.push(enc('y'.repeat(60)));
    assert.match(r2.error!, /longer than 100 bytes/);
    assert.equal(parser.bufferedBytes, 0);
  });

  test('the default limit is 8 KiB per line', () => {
    assert.equal(parseAll(`250 ${'a'.repeat(8000)}\r\n`).error, null);
    assert.match(parseAll(`250 ${'a'.repeat(8200)}\r\n`).error!, /8192/);
  });

  test('too many lines in one reply, or too many unread replies, is an error', () => {
    const p1 = new ReplyParser({ maxLineBytes: 100, maxLines: 3, maxPendingReplies: 10 });
    assert.match(p1.push(enc('250-a\r\n250-b\r\n250-c\r\n250 d\r\n')).error!, /3 lines/);
    const p2 = new ReplyParser({ maxLineBytes: 100, maxLines: 3, maxPendingReplies: 2 });
    assert.equal(p2.push(enc('250 a\r\n250 b\r\n')).error, null);
    p2.taken(1);
    assert.equal(p2.push(enc('250 c\r\n')).error, null);
    assert.match(p2.push(enc('250 d\r\n')).error!, /unsolicited/);
  });

  test('non-UTF-8 bytes do not throw', () => {
    const { replies, error } = new ReplyParser().push(
      Uint8Array.of(0x32, 0x35, 0x30, 0x20, 0xff, 0xfe, 13, 10),
    );
    assert.equal(error, null);
    assert.equal(replies[0]!.code, 250);
  });

  test('discard() forgets a partial line and a partial multiline reply', () => {
    const parser = new ReplyParser();
    parser.push(enc('250-first\r\n250 sec'));
    assert.ok(parser.bufferedBytes > 0);
    parser.discard();
    assert.equal(parser.bufferedBytes, 0);
    const { replies } = parser.push(enc('220 fresh\r\n'));
    assert.deepEqual(
      replies.map((r) => [r.code, r.text]),
      [[220, 'fresh']],
    );
  });

  const lineText = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
  const replyArb = fc.record({
    code: fc.integer({ min: 200, max: 599 }),
    enhanced: fc.boolean(),
    lines: fc.array(lineText, { minLength: 1, maxLength: 4 }),
  });

  test('property: Tern-formatted replies parse back to their code, enhanced code and lines', () => {
    fc.assert(
      fc.property(replyArb, ({ code: anyCode, enhanced, lines }) => {
        // Enhanced codes exist for classes 2, 4 and 5 only (RFC 3463 §3.1).
        const code = anyCode >= 300 && anyCode < 400 ? anyCode + 100 : anyCode;
        const cls = Math.floor(code / 100);
        const status = `${cls}.1.2`;
        const wire = formatReply({ code, enhanced: status, text: lines[0]! }, enhanced, lines.slice(1));
        const { replies, error } = parseAll(wire);
        assert.equal(error, null);
        assert.equal(replies.length, 1);
        assert.equal(replies[0]!.code, code);
        if (enhanced) {
          assert.equal(replies[0]!.enhanced, status);
          assert.equal(
            replies[0]!.text,
            lines
              .map((l) => l.replace(/^ +/, ''))
              .join(' ')
              .trim(),
          );
        }
        assert.equal(replies[0]!.lines.length, lines.length);
      }),
    );
  });

  test('property: any fragmentation gives the same replies and the same error', () => {
    const streamArb = fc.array(
      fc.oneof(
        replyArb.map(({ code, lines }) =>
          lines.map((l, i) => `${code}${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join(''),
        ),
        fc.constant('garbage\r\n'),
        fc.constant('250 bare lf\n'),
      ),
      { maxLength: 8 },
    );
    fc.assert(
      fc.property(streamArb, fc.array(fc.nat(), { maxLength: 10 }), (parts, cutSeeds) => {
        const bytes = enc(parts.join(''));
        const whole = new ReplyParser().push(bytes);
        const parser = new ReplyParser();
        const cuts = [...new Set(cutSeeds.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort(
          (a, b) => a - b,
        );
        const got: unknown[] = [];
        let error: string | null = null;
        let start = 0;
        for (const cut of [...cuts, bytes.length]) {
          const r = parser.push(bytes.subarray(start, cut));
          got.push(...r.replies);
          error = r.error;
          start = cut;
        }
        assert.deepEqual(got, whole.replies);
        assert.equal(error, whole.error);
      }),
    );
  });
});
