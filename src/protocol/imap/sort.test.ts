// SORT (RFC 5256 §3, RFC 5957) and base subject extraction (RFC 5256 §2.1), with i;unicode-casemap
// comparisons, UTF-8 display names and broken dates; plus the collation and sent-date helpers under it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scanMessage } from '../mime/structure.ts';
import { casemapContains, casemapKey, compareCasemap } from './collation.ts';
import type { SortCriterion } from './command.ts';
import { addressSortKey, displaySortKey, messageIds, parseSentDate } from './message-fields.ts';
import { baseSubject, baseSubjectOf, formatSortResponse, sortMessages, type SortMessage } from './sort.ts';
import { parseOne } from './test-support.ts';

function criteria(text: string): readonly SortCriterion[] {
  const cmd = parseOne(`a SORT (${text}) UTF-8 ALL`);
  assert.equal(cmd.kind, 'sort');
  return cmd.criteria;
}

function message(seq: number, header: string, sizeBytes = 100, internalDateMs = seq * 1000): SortMessage {
  const raw = Buffer.from(`${header.replace(/\n/g, '\r\n')}\r\n\r\nbody\r\n`, 'utf8');
  return { seq, sizeBytes, internalDateMs, envelope: scanMessage(raw).root.envelope };
}

function order(messages: readonly SortMessage[], text: string): number[] {
  return sortMessages(messages, criteria(text)).map((m) => m.seq);
}

describe('baseSubject (RFC 5256 §2.1)', () => {
  it('removes Re/Fw/Fwd leaders, blobs, (fwd) trailers and [fwd: ] wrappers', () => {
    const cases: [string, string, boolean][] = [
      ['hello', 'hello', false],
      ['Re: hello', 'hello', true],
      ['RE:hello', 'hello', true],
      ['Re: Re: Fwd: FW: hello', 'hello', true],
      ['Re [2]: hello', 'hello', true],
      ['Re[2]: hello', 'hello', true],
      ['[PATCH] Re: hello', 'hello', true],
      ['[PATCH 1/2] hello', 'hello', false],
      ['Re: [list] Re: [list] hello', 'hello', true],
      ['[blob]', '[blob]', false],
      ['[a][b]', '[b]', false],
      ['hello (fwd)', 'hello', true],
      ['hello (FWD) (fwd)  ', 'hello', true],
      ['[Fwd: Re: hello (fwd)]', 'hello', true],
      ['[fwd: [fwd: hello]]', 'hello', true],
      ['  hello\t  world  ', 'hello world', false],
      ['Re:', '', true],
      ['re: (fwd)', '', true],
      ['Reply: hello', 'Reply: hello', false],
      ['Fwdx: hello', 'Fwdx: hello', false],
      ['', '', false],
    ];
    for (const [subject, base, reply] of cases) {
      assert.deepEqual(baseSubjectOf(subject), { base, replyOrForward: reply }, subject);
    }
  });

  it('decodes encoded-words first; UTF-8 twins', () => {
    assert.equal(baseSubject('=?utf-8?q?Re:_Gr=C3=BC=C3=9Fe?='), 'Grüße');
    assert.equal(baseSubject('Re: Grüße aus 日本 (fwd)'), 'Grüße aus 日本');
    assert.equal(baseSubject('=?UTF-8?B?UmU6IOaXpeacrA==?='), '日本');
    assert.equal(baseSubject('[日本] jürgen'), 'jürgen');
  });
});

describe('SORT', () => {
  const box = [
    message(
      1,
      'From: Zed <zed@example.org>\nTo: b@x\nCc: m@x\nSubject: Re: beta\nDate: 3 Jan 2024 00:00 +0000',
      300,
    ),
    message(
      2,
      'From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.de>\nTo: a@x\nSubject: alpha\nDate: 2 Jan 2024 23:00 -0500',
      100,
    ),
    message(
      3,
      'From: adam@example.org\nTo: "日本" <c@x>\nCc: a@x\nSubject: [list] Alpha\nDate: 3 Jan 2024 01:00 +0200',
      200,
    ),
    message(4, 'From: "BOB" <Bob@example.org>\nSubject: gamma\nDate: not a date', 100, 500),
  ];

  it('ARRIVAL, SIZE and ties in sequence order', () => {
    assert.deepEqual(order(box, 'ARRIVAL'), [4, 1, 2, 3]);
    assert.deepEqual(order(box, 'SIZE'), [2, 4, 3, 1]);
    assert.deepEqual(order(box, 'REVERSE SIZE'), [1, 3, 2, 4]);
    assert.deepEqual(order(box, 'SIZE ARRIVAL'), [4, 2, 3, 1]);
  });

  it('DATE uses the sent instant, the internal date when Date: is unreadable', () => {
    // 2: 3 Jan 04:00 UTC; 1: 3 Jan 00:00 UTC; 3: 2 Jan 23:00 UTC; 4: internal date 1970.
    assert.deepEqual(order(box, 'DATE'), [4, 3, 1, 2]);
    assert.deepEqual(order(box, 'REVERSE DATE'), [2, 1, 3, 4]);
  });

  it('SUBJECT sorts base subjects under i;unicode-casemap; equal ones keep sequence order', () => {
    assert.deepEqual(order(box, 'SUBJECT'), [2, 3, 1, 4]);
    assert.deepEqual(order(box, 'REVERSE SUBJECT'), [4, 1, 2, 3]);
    assert.deepEqual(order(box, 'SUBJECT REVERSE SIZE'), [3, 2, 1, 4]);
  });

  it('FROM/TO/CC sort the first mailbox local part; missing sorts first', () => {
    assert.deepEqual(order(box, 'FROM'), [3, 4, 2, 1]);
    assert.deepEqual(order(box, 'TO'), [4, 2, 1, 3]);
    assert.deepEqual(order(box, 'CC'), [2, 4, 3, 1]);
  });

  it('DISPLAYFROM/DISPLAYTO sort decoded display names, else the address (RFC 5957)', () => {
    // adam@example.org, BOB, Jürgen, Zed
    assert.deepEqual(order(box, 'DISPLAYFROM'), [3, 4, 2, 1]);
    // (none), a@x, b@x, 日本
    assert.deepEqual(order(box, 'DISPLAYTO'), [4, 2, 1, 3]);
    assert.deepEqual(order(box, 'REVERSE DISPLAYTO'), [3, 1, 2, 4]);
  });

  it('messages without an envelope sort as empty', () => {
    const bare: SortMessage = { seq: 9, sizeBytes: 1, internalDateMs: 0, envelope: null };
    assert.deepEqual(order([...box, bare], 'FROM'), [9, 3, 4, 2, 1]);
    assert.deepEqual(order([bare, ...box], 'SUBJECT'), [9, 2, 3, 1, 4]);
  });

  it('is n log n: 20,000 messages in well under a second', () => {
    const many = Array.from({ length: 20_000 }, (_, i) =>
      message(
        i + 1,
        `From: user${(i * 7919) % 20_000}@x\nSubject: Re: topic ${(i * 31) % 500}\nDate: ${(i % 28) + 1} Feb 2024 10:00 +0000`,
      ),
    );
    const start = performance.now();
    const sorted = sortMessages(many, criteria('SUBJECT REVERSE DATE FROM'));
    assert.ok(performance.now() - start < 1000);
    assert.equal(sorted.length, 20_000);
  });

  it('formats "* SORT" (RFC 5256 §4) with CONDSTORE MODSEQ', () => {
    assert.equal(formatSortResponse([2, 84, 882]), '* SORT 2 84 882\r\n');
    assert.equal(formatSortResponse([]), '* SORT\r\n');
    assert.equal(formatSortResponse([5], 917162500n), '* SORT 5 (MODSEQ 917162500)\r\n');
  });
});

describe('i;unicode-casemap (RFC 5051)', () => {
  it('folds case and decomposes; ASCII and UTF-8 twins', () => {
    assert.equal(casemapKey('Hello'), 'HELLO');
    assert.equal(casemapKey('JÜRGEN'), casemapKey('jürgen'));
    assert.equal(casemapKey('Ｆｕｌｌ'), 'FULL', 'fullwidth letters are compatibility forms');
    assert.equal(casemapKey('ﬁle'), 'FILE');
    assert.notEqual(casemapKey('ß'), casemapKey('ẞ'), 'ß has no single-character titlecase');
    assert.equal(casemapKey('ı'), casemapKey('i'), 'dotless i titlecases to I');
    assert.equal(casemapKey('ΣΑΣ'), casemapKey('σας'), 'final sigma folds like sigma');
    assert.ok(casemapContains('Grüße aus 日本', 'GRÜSSE') === false);
    assert.ok(casemapContains('Grüße aus 日本', '日本'));
    assert.ok(casemapContains('precomposed é', 'E\u0301'));
    assert.ok(!casemapContains('Jürgen', 'jurgen'));
  });

  it('orders by code point, astral characters after the BMP', () => {
    assert.ok(compareCasemap('a', 'B') < 0);
    assert.ok(compareCasemap('B', 'a') > 0);
    assert.equal(compareCasemap('ÄBC', 'äbc'), 0);
    assert.ok(compareCasemap('\uffe0', '\u{1f600}') < 0);
    assert.ok(compareCasemap('ab', 'abc') < 0);
    assert.ok(compareCasemap('_', 'a') > 0, 'titlecase keys: A (0x41) before _ (0x5F)');
  });
});

describe('message fields', () => {
  it('reads RFC 5322 dates, obsolete forms and zones', () => {
    assert.deepEqual(parseSentDate('Mon, 1 Jan 2024 23:30:00 -0500'), {
      year: 2024,
      month: 1,
      day: 1,
      epochMs: Date.UTC(2024, 0, 2, 4, 30),
    });
    assert.equal(parseSentDate('1 Jan 24 10:00 GMT')?.epochMs, Date.UTC(2024, 0, 1, 10));
    assert.equal(parseSentDate('1 Jan 99 10:00 EST')?.epochMs, Date.UTC(1999, 0, 1, 15));
    assert.equal(parseSentDate('Thu, 13 Feb 1969 23:32 (comment) +0330')?.day, 13);
    assert.equal(parseSentDate('(c) 5 March 2020 1:02:03')?.epochMs, Date.UTC(2020, 2, 5, 1, 2, 3));
    for (const bad of ['', 'yesterday', '31 Feb 2024 10:00', '1 Foo 2024 10:00', '1 Jan 2024 25:00', null])
      assert.equal(parseSentDate(bad), null, String(bad));
  });

  it('first addresses for FROM and DISPLAYFROM, groups skipped', () => {
    assert.equal(addressSortKey('Team: ; "Jürgen" <jürgen@bücher.example>, b@x'), 'jürgen');
    assert.equal(displaySortKey('=?utf-8?b?5pel5pys?= <a@x>'), '日本');
    assert.equal(displaySortKey('""  <a@x>'), 'a@x');
    assert.equal(displaySortKey('garbage'), 'garbage@.MISSING-HOST-NAME.');
    assert.equal(addressSortKey(null), '');
  });

  it('msg-id lists', () => {
    assert.deepEqual(messageIds('<a@x> (c) <b@y>\r\n <c @z>'), ['a@x', 'b@y', 'c@z']);
    assert.deepEqual(messageIds('<日本@例え.jp>'), ['日本@例え.jp']);
    assert.deepEqual(messageIds('no ids <>'), []);
  });
});
