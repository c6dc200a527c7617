// SORT (RFC 5256 §3, RFC 5957) and base subject extraction (RFC 5256 §2.1), with i;unicode-casemap
// comparisons, UTF-8 display names and broken dates; plus the collation and sent-date helpers under it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scanMessage } from '../mime/structure.ts';
import { casemapContains, casemapKey, compareCasemap } from './collation.ts';
import type { SortCriterion } from './command.ts';
import {
  addressSearchText,
  addressSortKey,
  displaySortKey,
  messageIds,
  parseSentDate,
} from './message-fields.ts';
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

  // imaptest sort-addresses: a group first in Cc sorts by its name ("user2"), equal to user2@domain2.org,
  // and the tie keeps sequence order whether or not the sort is reversed.
  const addresses = [
    message(
      1,
      'From: user2@domain2.org\nTo: foo bar <user2@domain2.org>\nCc: user2@domain2.org (foo bar)',
      1,
      0,
    ),
    message(2, 'From: user2@domain1.org\nTo: user2@domain1.org\nCc: user2: blah@domain1.org;', 1, 1),
    message(3, 'From: user1@domain1.org\nTo: user1@domain1.org\nCc: user1@domain1.org', 1, 2),
  ];
  const addressesUtf8 = [
    message(
      1,
      'From: jürgen2@bücher.example\nTo: foo bar <jürgen2@bücher.example>\nCc: jürgen2@x (日本)',
      1,
      0,
    ),
    message(2, 'From: jürgen2@x\nTo: jürgen2@x\nCc: Jürgen2: blah@x;', 1, 1),
    message(3, 'From: jürgen1@x\nTo: jürgen1@x\nCc: =?utf-8?q?j=C3=BCrgen1?=@x', 1, 2),
  ];

  it('FROM/TO/CC: a leading group counts as its name (imaptest sort-addresses); UTF-8 twin', () => {
    for (const m of [addresses, addressesUtf8]) {
      for (const k of ['FROM', 'TO', 'CC']) {
        assert.deepEqual(order(m, k), [3, 1, 2], k);
        assert.deepEqual(order(m, `REVERSE ${k}`), [1, 2, 3], k);
        assert.deepEqual(order(m, `${k} REVERSE ARRIVAL`), [3, 2, 1], k);
      }
    }
  });

  // imaptest sort-display-to: groups sort by their name, a bare "d" by itself, names decoded.
  const displayTo = [
    'foo bar <a@b.c>',
    'b@c.d',
    'd',
    '=?iso-8859-1?q?foo_aar?= <e@f.g>',
    '=?iso-8859-1?q?foo_car?= <f@g.h>',
    'a: xx@xx.org, yy@yy.org;',
    'z: aa@aa.org, bb@bb.org;',
    'empty:;',
  ];
  const displayToUtf8 = [
    'föö bar <a@b.c>',
    'b@日本.example',
    'd',
    '=?iso-8859-1?q?f=F6=F6_aar?= <e@f.g>',
    '=?utf-8?q?f=C3=B6=C3=B6_car?= <f@g.h>',
    'a: jürgen@xx.org, yy@yy.org;',
    '日本: aa@aa.org, bb@bb.org;',
    'empty:;',
  ];

  it('DISPLAYTO/DISPLAYFROM: groups by name, no domain as written (imaptest sort-display-to); UTF-8 twin', () => {
    for (const values of [displayTo, displayToUtf8]) {
      const tos = values.map((v, i) => message(i + 1, `To: ${v}`));
      assert.deepEqual(order(tos, 'DISPLAYTO'), [6, 2, 3, 8, 4, 1, 5, 7]);
      assert.deepEqual(order(tos, 'REVERSE DISPLAYTO'), [7, 5, 1, 4, 8, 3, 2, 6]);
      const froms = values.map((v, i) => message(i + 1, `From: ${v}`));
      assert.deepEqual(order(froms, 'DISPLAYFROM'), [6, 2, 3, 8, 4, 1, 5, 7]);
    }
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

  it('first addresses for FROM and DISPLAYFROM; a leading group is its name', () => {
    assert.equal(addressSortKey('Team: ; "Jürgen" <jürgen@bücher.example>, b@x'), 'Team');
    assert.equal(addressSortKey('"Jürgen" <jürgen@bücher.example>, Team: ;'), 'jürgen');
    assert.equal(addressSortKey('日本: a@x;'), '日本');
    assert.equal(addressSortKey('user@x (Real)'), 'user');
    assert.equal(displaySortKey('Team: a@x;'), 'Team');
    assert.equal(displaySortKey('Jürgen: a@x;'), 'Jürgen');
    assert.equal(displaySortKey('=?utf-8?b?5pel5pys?= <a@x>'), '日本');
    assert.equal(displaySortKey('user@x (Jürgen)'), 'Jürgen');
    assert.equal(displaySortKey('""  <a@x>'), 'a@x');
    assert.equal(displaySortKey('""  <jürgen@bücher.example>'), 'jürgen@bücher.example');
    assert.equal(displaySortKey('garbage'), 'garbage');
    assert.equal(displaySortKey('jürgen'), 'jürgen');
    assert.equal(addressSortKey(null), '');
    assert.equal(addressSortKey(''), '');
    assert.equal(displaySortKey(''), '');
  });

  it('address lists in normal form for SEARCH: comments, quotes and encoded-words resolved', () => {
    const cases: [string, string][] = [
      ['user-from@domain.org', 'user-from@domain.org'],
      ['RealFrom <user-from@domain.org>', 'RealFrom <user-from@domain.org>'],
      ['<user-from (comment)@ (comment) domain.org>', 'user-from@domain.org'],
      ['user-from@domain.org (RealFrom)', 'RealFrom <user-from@domain.org>'],
      ['user-from1@domain.org, user-from2@domain.org', 'user-from1@domain.org, user-from2@domain.org'],
      [
        'groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n  groupname2: groupuser3@domain.org;',
        'groupname: groupuser1@domain.org, groupuser2@domain.org;, groupname2: groupuser3@domain.org;',
      ],
      ['groupname:;', 'groupname: ;'],
      ['"Müller, Jürgen" <jürgen@bücher.example>', 'Müller, Jürgen <jürgen@bücher.example>'],
      ['=?utf-8?b?5pel5pys?= <a@x>, b@x (日本)', '日本 <a@x>, 日本 <b@x>'],
      ['<@route.example:a@x>', '<@route.example:a@x>'],
      ['d', 'd'],
      ['', ''],
      ['<>', ''],
    ];
    for (const [value, text] of cases) assert.equal(addressSearchText(value), text, value);
  });

  it('msg-id lists', () => {
    assert.deepEqual(messageIds('<a@x> (c) <b@y>\r\n <c @z>'), ['a@x', 'b@y', 'c@z']);
    assert.deepEqual(messageIds('<日本@例え.jp>'), ['日本@例え.jp']);
    assert.deepEqual(messageIds('no ids <>'), []);
  });
});
