// SEARCH evaluation: every key of RFC 9051 §6.4.4 / RFC 3501 §6.4.4 and the extensions, parsed from real
// command lines, over small messages with ASCII and UTF-8 (raw and encoded-word) headers and bodies.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { scanMessage } from '../mime/structure.ts';
import type { SearchKey, SearchProgram } from './command.ts';
import { formatEsearchResponse } from './format.ts';
import {
  compileSearch,
  esearchResults,
  isSupportedCharset,
  matches,
  searchCharsets,
  searchNeeds,
  usesModseq,
  type SearchContext,
  type SearchMessage,
} from './search.ts';
import { parseOne } from './test-support.ts';

const DAY = 86_400_000;

function program(criteria: string): SearchProgram {
  const cmd = parseOne(`a SEARCH ${criteria}`);
  assert.equal(cmd.kind, 'search');
  return cmd.program;
}

function key(criteria: string): SearchKey {
  return program(criteria).key;
}

function message(
  n: number,
  text: string,
  extra: Partial<Omit<SearchMessage, 'seq' | 'uid' | 'structure' | 'raw'>> = {},
): SearchMessage {
  const raw = Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf8');
  return {
    seq: n,
    uid: n * 10,
    flags: [],
    modseq: n,
    sizeBytes: raw.length,
    internalDateMs: Date.UTC(2024, 0, n, 12),
    saveDateMs: Date.UTC(2024, 1, n, 12),
    emailId: `M${n}`,
    threadId: `T${n}`,
    structure: scanMessage(raw),
    raw,
    ...extra,
  };
}

const ctx: SearchContext = {
  maxSeq: 5,
  maxUid: 50,
  savedResult: null,
  nowMs: Date.UTC(2024, 0, 6, 12),
};

const box: SearchMessage[] = [
  message(
    1,
    'From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: Hello there\nDate: Mon, 1 Jan 2024 23:30:00 -0500\n\nPlain body text\n',
    { flags: ['\\Seen', '$Important'] },
  ),
  message(
    2,
    'From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.de>\nTo: "日本" <nihon@example.jp>\nSubject: =?UTF-8?B?5pel5pys6Kqe44Gu5Lu25ZCN?=\nDate: 2 Jan 2024 10:00 +0900\nX-Tag: one\nX-Tag: two\n\nbody\n',
    { flags: ['\\Answered', '\\Flagged'] },
  ),
  message(
    3,
    'From: Jürgen <jürgen@bücher.example>\nSubject: Grüße aus 日本\nCc: carol@example.org\n\nPlain\n',
    { flags: ['\\Deleted', '\\Draft'] },
  ),
  message(
    4,
    [
      'From: dave@example.org',
      'Subject: attachment',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Sch=C3=B6ne Gr=C3=BC=C3=9Fe, J=C3=9CRGEN',
      '--b',
      'Content-Type: text/plain; charset=iso-8859-1',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('caf\xe9 cr\xe8me', 'latin1').toString('base64'),
      '--b',
      'Content-Type: message/rfc822',
      '',
      'Subject: inner 日本語',
      '',
      'inner body',
      '--b',
      'Content-Type: application/octet-stream',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('\x00\x01binary needle\xff').toString('base64'),
      '--b--',
      '',
    ].join('\n'),
    { flags: ['$important'] },
  ),
  message(5, 'Broken header without colon\n\nbody 5\n'),
];

function search(criteria: string, context: SearchContext = ctx): number[] {
  const p = compileSearch(key(criteria), context);
  return box.filter(p).map((m) => m.seq);
}

describe('SEARCH flags and keywords', () => {
  it('system flags, their negations and keywords, case-insensitively', () => {
    assert.deepEqual(search('SEEN'), [1]);
    assert.deepEqual(search('UNSEEN'), [2, 3, 4, 5]);
    assert.deepEqual(search('ANSWERED FLAGGED'), [2]);
    assert.deepEqual(search('DELETED'), [3]);
    assert.deepEqual(search('UNDELETED'), [1, 2, 4, 5]);
    assert.deepEqual(search('DRAFT'), [3]);
    assert.deepEqual(search('UNDRAFT UNANSWERED UNFLAGGED'), [1, 4, 5]);
    assert.deepEqual(search('KEYWORD $IMPORTANT'), [1, 4]);
    assert.deepEqual(search('UNKEYWORD $important'), [2, 3, 5]);
  });

  it('without \\Recent: RECENT and NEW never match, OLD matches every message', () => {
    assert.deepEqual(search('RECENT'), []);
    assert.deepEqual(search('NEW'), []);
    assert.deepEqual(search('OLD'), [1, 2, 3, 4, 5]);
    assert.deepEqual(search('NOT RECENT'), [1, 2, 3, 4, 5]);
  });
});

describe('SEARCH sets, sizes, ids and modseq', () => {
  it('sequence sets with * and reversed ranges, UID sets', () => {
    assert.deepEqual(search('2:3'), [2, 3]);
    assert.deepEqual(search('*'), [5]);
    assert.deepEqual(search('4:*'), [4, 5]);
    assert.deepEqual(search('*:4'), [4, 5]);
    assert.deepEqual(search('1,3,5:5'), [1, 3, 5]);
    assert.deepEqual(search('UID 20:30'), [2, 3]);
    assert.deepEqual(search('UID *'), [5]);
    assert.deepEqual(search('UID 45:*'), [5]);
    assert.deepEqual(search('UID 999:*'), [5], 'n:* with n above every UID still names the last');
    assert.deepEqual(search('UID 11:19'), []);
  });

  it('a sequence set of thousands of ranges is not scanned per message', () => {
    const ranges = Array.from({ length: 20_000 }, (_, i) => ({ from: 60_000 - i * 3, to: 60_000 - i * 3 }));
    const p = compileSearch({ kind: 'sequence', set: { kind: 'set', ranges } }, { ...ctx, maxSeq: 60_000 });
    const start = performance.now();
    let n = 0;
    for (let seq = 1; seq <= 60_000; seq++) if (p({ ...box[0]!, seq })) n++;
    assert.equal(n, 20_000);
    assert.ok(performance.now() - start < 1000);
  });

  it('$ is the saved result (UIDs), empty when nothing was saved', () => {
    assert.deepEqual(search('$'), []);
    assert.deepEqual(search('UID $'), []);
    assert.deepEqual(search('$', { ...ctx, savedResult: [20, 40] }), [2, 4]);
    assert.deepEqual(search('UID $ SEEN', { ...ctx, savedResult: new Set([10, 20]) }), [1]);
    assert.deepEqual(search('NOT $', { ...ctx, savedResult: [20, 40] }), [1, 3, 5]);
  });

  it('LARGER and SMALLER are strict', () => {
    const size = box[0]!.sizeBytes;
    assert.deepEqual(search(`LARGER ${size}`).includes(1), false);
    assert.deepEqual(search(`LARGER ${size - 1}`).includes(1), true);
    assert.deepEqual(search(`SMALLER ${size}`).includes(1), false);
    assert.deepEqual(search(`SMALLER ${size + 1}`).includes(1), true);
  });

  it('MODSEQ is "at least" (RFC 7162), with or without an entry', () => {
    assert.deepEqual(search('MODSEQ 4'), [4, 5]);
    assert.deepEqual(search('MODSEQ "/flags/\\\\draft" all 3'), [3, 4, 5]);
  });

  it('EMAILID and THREADID are exact; a message without a thread id never matches THREADID', () => {
    assert.deepEqual(search('EMAILID M3'), [3]);
    assert.deepEqual(search('EMAILID m3'), []);
    assert.deepEqual(search('THREADID T2'), [2]);
    const lone = { ...box[0]!, threadId: null };
    assert.equal(matches(key('THREADID T1'), lone, ctx), false);
    assert.equal(matches(key('NOT THREADID T1'), lone, ctx), true);
  });
});

describe('SEARCH dates', () => {
  it('BEFORE/ON/SINCE compare the internal date day', () => {
    assert.deepEqual(search('ON 3-Jan-2024'), [3]);
    assert.deepEqual(search('BEFORE 3-Jan-2024'), [1, 2]);
    assert.deepEqual(search('SINCE 3-Jan-2024'), [3, 4, 5]);
  });

  it('the internal date falls on the server zone day when one is given', () => {
    // Message 1's internal date is 1 Jan 12:00 UTC: 2 Jan at +13:00.
    assert.deepEqual(search('ON 2-Jan-2024', { ...ctx, zoneMinutes: 13 * 60 }), [1]);
  });

  it('SENTBEFORE/SENTON/SENTSINCE take the Date: header calendar day in its own zone', () => {
    // Message 1 was sent 1 Jan 23:30 -0500 (2 Jan UTC): SENTON reads 1 Jan.
    assert.deepEqual(search('SENTON 1-Jan-2024'), [1]);
    assert.deepEqual(search('SENTON 2-Jan-2024'), [2]);
    assert.deepEqual(search('SENTSINCE 2-Jan-2024'), [2]);
    assert.deepEqual(search('SENTBEFORE 2-Jan-2024'), [1]);
    // No Date: header: no sent date, never matches either way.
    assert.deepEqual(search('OR SENTBEFORE 1-Jan-2100 SENTSINCE 1-Jan-1900'), [1, 2]);
  });

  it('SAVEDBEFORE/SAVEDON/SAVEDSINCE read the save date; SAVEDATESUPPORTED matches all', () => {
    assert.deepEqual(search('SAVEDON 2-Feb-2024'), [2]);
    assert.deepEqual(search('SAVEDBEFORE 3-Feb-2024'), [1, 2]);
    assert.deepEqual(search('SAVEDSINCE 4-Feb-2024'), [4, 5]);
    assert.deepEqual(search('SAVEDATESUPPORTED'), [1, 2, 3, 4, 5]);
  });

  it('OLDER and YOUNGER are measured from now (RFC 5032)', () => {
    // now = 6 Jan 12:00; message n arrived n Jan 12:00.
    assert.deepEqual(search(`OLDER ${2 * 86400}`), [1, 2, 3, 4]);
    assert.deepEqual(search(`YOUNGER ${2 * 86400}`), [5]);
    assert.deepEqual(search(`YOUNGER ${2 * 86400 + 1}`), [4, 5]);
    assert.equal(DAY, 86400 * 1000);
  });
});

describe('SEARCH header fields', () => {
  it('FROM/TO/CC/SUBJECT are casemapped substrings of decoded values', () => {
    assert.deepEqual(search('FROM alice'), [1]);
    assert.deepEqual(search('FROM ALICE@EXAMPLE'), [1]);
    assert.deepEqual(search('TO bob'), [1]);
    assert.deepEqual(search('CC carol'), [3]);
    assert.deepEqual(search('SUBJECT "hello THERE"'), [1]);
    assert.deepEqual(search('SUBJECT attach'), [4]);
  });

  it('UTF-8 twins: jürgen raw and as encoded-words, 日本 in From/To/Subject', () => {
    assert.deepEqual(search('FROM "jürgen"'), [2, 3]);
    assert.deepEqual(search('FROM "JÜRGEN"'), [2, 3]);
    assert.deepEqual(search('FROM "MÜLLER"'), [2]);
    assert.deepEqual(search('FROM "bücher"'), [3]);
    assert.deepEqual(search('TO "日本"'), [2]);
    assert.deepEqual(search('SUBJECT "日本語"'), [2]);
    assert.deepEqual(search('SUBJECT "日本"'), [2, 3]);
    assert.deepEqual(search('SUBJECT "GRÜSSE"'), [], 'ß stays ß under simple case mapping');
    assert.deepEqual(search('SUBJECT "grüße"'), [3]);
    assert.deepEqual(
      search('CHARSET UTF-8 SUBJECT "GRÜẞE"'),
      [],
      'ẞ and ß differ: ß has no simple titlecase',
    );
  });

  it('HEADER reads every occurrence; "" matches any message with the field', () => {
    assert.deepEqual(search('HEADER X-Tag two'), [2]);
    assert.deepEqual(search('HEADER x-tag ONE'), [2]);
    assert.deepEqual(search('HEADER X-Tag ""'), [2]);
    assert.deepEqual(search('HEADER Cc ""'), [3]);
    assert.deepEqual(search('HEADER Subject ""'), [1, 2, 3, 4]);
    assert.deepEqual(search('FROM ""'), [1, 2, 3, 4]);
  });

  it('without raw octets, envelope fields answer header keys', () => {
    const envOnly = box.map((m) => ({ ...m, raw: null }));
    const p = compileSearch(key('FROM "jürgen"'), ctx);
    assert.deepEqual(
      envOnly.filter(p).map((m) => m.seq),
      [2, 3],
    );
    const s = compileSearch(key('SENTON 1-Jan-2024'), ctx);
    assert.deepEqual(
      envOnly.filter(s).map((m) => m.seq),
      [1],
    );
  });

  it('a message with a broken header section does not crash and matches nothing by header', () => {
    assert.equal(matches(key('FROM x'), box[4]!, ctx), false);
    assert.equal(matches(key('TEXT "body 5"'), box[4]!, ctx), true);
    const junk = message(6, '\u0000\u00ff=?utf-8?b?####?= : \n\n');
    assert.equal(matches(key('SUBJECT x'), junk, ctx), false);
    assert.equal(matches(key('BODY x'), junk, ctx), false);
  });
});

describe('SEARCH BODY and TEXT', () => {
  it('BODY searches decoded text parts, their charsets, nested messages and attachments', () => {
    assert.deepEqual(search('BODY "plain"'), [1, 3]);
    assert.deepEqual(search('BODY "schöne grüße"'), [4]);
    assert.deepEqual(search('BODY "jürgen"'), [4], 'quoted-printable UTF-8 "JÜRGEN"');
    assert.deepEqual(search('BODY "CAFÉ CRÈME"'), [4], 'base64 ISO-8859-1');
    assert.deepEqual(search('BODY "inner body"'), [4]);
    assert.deepEqual(search('BODY "日本語"'), [4], 'header of the attached message');
    assert.deepEqual(search('BODY "binary needle"'), [4]);
    assert.deepEqual(search('BODY "Hello"'), [], 'the top-level header is not body');
  });

  it('TEXT searches header and body', () => {
    assert.deepEqual(search('TEXT "Hello"'), [1]);
    assert.deepEqual(search('TEXT "plain body"'), [1]);
    assert.deepEqual(search('TEXT "x-tag: two"'), [2]);
    assert.deepEqual(search('TEXT "MÜLLER"'), [2]);
  });
});

describe('SEARCH without a stored structure', () => {
  it('BODY scans the raw message; header keys read the raw header', () => {
    const m = { ...box[3]!, structure: null };
    assert.equal(matches(key('BODY "café crème"'), m, ctx), true);
    assert.equal(matches(key('FROM dave'), m, ctx), true);
    assert.equal(matches(key('FROM dave'), { ...m, raw: null }, ctx), false);
  });
});

describe('SEARCH nesting', () => {
  it('OR, NOT and parenthesized lists nest', () => {
    assert.deepEqual(search('OR SEEN FLAGGED'), [1, 2]);
    assert.deepEqual(search('NOT OR SEEN FLAGGED'), [3, 4, 5]);
    assert.deepEqual(search('OR (SEEN FROM alice) (DELETED FROM "jürgen")'), [1, 3]);
    assert.deepEqual(search('NOT (NOT (UID 10:30))'), [1, 2, 3]);
    assert.deepEqual(search('OR OR 1 2 OR 3 NOT UNDELETED'), [1, 2, 3]);
    assert.deepEqual(search('(OR SUBJECT hello SUBJECT "日本") NOT 3'), [1, 2]);
  });

  it('RFC 3501 §6.4.4 examples', () => {
    // SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"
    assert.deepEqual(search('FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"'), [2]);
    // SEARCH TEXT "string not in mailbox"
    assert.deepEqual(search('TEXT "string not in mailbox"'), []);
    // SEARCH CHARSET UTF-8 TEXT {6}XXXXXX (here a quoted UTF-8 string)
    assert.deepEqual(search('CHARSET UTF-8 TEXT "grüße"'), [3, 4]);
  });
});

describe('searchNeeds', () => {
  it('loads the least: meta, header, full', () => {
    assert.equal(searchNeeds(key('SEEN UID 1:* LARGER 10 MODSEQ 2 OLDER 5 1:*')), 'meta');
    assert.equal(searchNeeds(key('FROM a SUBJECT b SENTON 1-Jan-2024 HEADER Message-ID x')), 'meta');
    assert.equal(searchNeeds(key('HEADER X-Spam yes')), 'header');
    assert.equal(searchNeeds(key('OR SEEN NOT HEADER Received x')), 'header');
    assert.equal(searchNeeds(key('OR SEEN (FROM a BODY b)')), 'full');
    assert.equal(searchNeeds(key('NOT TEXT x')), 'full');
  });
});

describe('usesModseq', () => {
  it('finds MODSEQ at any depth (RFC 7162 §3.1.5)', () => {
    assert.equal(usesModseq(key('SEEN')), false);
    assert.equal(usesModseq(key('MODSEQ 5')), true);
    assert.equal(usesModseq(key('SEEN OR FLAGGED NOT (UID 1 MODSEQ 5)')), true);
  });
});

describe('CHARSET', () => {
  it('UTF-8 and US-ASCII (any case) or none; others are for BADCHARSET', () => {
    assert.deepEqual([...searchCharsets], ['UTF-8', 'US-ASCII']);
    assert.equal(isSupportedCharset(null), true);
    assert.equal(isSupportedCharset(program('CHARSET utf-8 ALL').charset), true);
    assert.equal(isSupportedCharset('us-ascii'), true);
    assert.equal(isSupportedCharset(program('CHARSET ISO-8859-1 ALL').charset), false);
  });
});

describe('ESEARCH results', () => {
  const uids = [10, 20, 30, 50];
  const seqs = [1, 2, 3, 5];

  it('MIN MAX COUNT ALL (RFC 4731 §3.1) and RETURN () as ALL', () => {
    const r = esearchResults(seqs, uids, ['MIN', 'MAX', 'COUNT', 'ALL'], false);
    assert.deepEqual(r.items, [
      ['MIN', 1],
      ['MAX', 5],
      ['ALL', seqs],
      ['COUNT', 4],
    ]);
    assert.equal(r.saved, null);
    assert.equal(r.emit, true);
    assert.equal(
      formatEsearchResponse('A282', false, r.items),
      '* ESEARCH (TAG "A282") MIN 1 MAX 5 ALL 1:3,5 COUNT 4\r\n',
    );
    assert.equal(
      formatEsearchResponse('A283', true, esearchResults(uids, uids, [], false).items),
      '* ESEARCH (TAG "A283") UID ALL 10,20,30,50\r\n',
    );
  });

  it('no match: only COUNT 0 remains', () => {
    const r = esearchResults([], [], ['MIN', 'MAX', 'ALL', 'COUNT'], false);
    assert.deepEqual(r.items, [['COUNT', 0]]);
    assert.equal(formatEsearchResponse('t', true, r.items), '* ESEARCH (TAG "t") UID COUNT 0\r\n');
  });

  it('SAVE alone keeps all and sends nothing; with MIN/MAX keeps only those (RFC 5182 §2.4)', () => {
    const only = esearchResults(seqs, uids, ['SAVE'], false);
    assert.deepEqual(only.saved, uids);
    assert.equal(only.emit, false);
    assert.deepEqual(esearchResults(seqs, uids, ['SAVE', 'MIN'], false).saved, [10]);
    assert.deepEqual(esearchResults(seqs, uids, ['SAVE', 'MIN', 'MAX'], false).saved, [10, 50]);
    assert.deepEqual(esearchResults([3], [30], ['SAVE', 'MIN', 'MAX'], false).saved, [30]);
    assert.deepEqual(esearchResults(seqs, uids, ['SAVE', 'MAX'], false).saved, [50]);
    assert.deepEqual(esearchResults([3], [30], ['SAVE', 'MAX'], false).saved, [30]);
    assert.deepEqual(esearchResults(seqs, uids, ['SAVE', 'COUNT'], false).saved, uids);
    assert.deepEqual(esearchResults(seqs, uids, ['SAVE', 'MIN', 'COUNT'], false).saved, uids);
    assert.deepEqual(esearchResults(seqs, uids, ['SAVE', 'MIN', 'ALL'], false).saved, uids);
    assert.deepEqual(esearchResults([5, 3, 1], [50, 30, 10], ['SAVE', 'MIN'], true).saved, [50]);
    assert.deepEqual(esearchResults([], [], ['SAVE', 'MIN'], false).saved, []);
  });

  it('ESORT: MIN/MAX are first and last in sort order, ALL keeps the order (RFC 5267 §3.2)', () => {
    const r = esearchResults([5, 3, 1, 2], [50, 30, 10, 20], ['MIN', 'MAX', 'ALL'], true);
    assert.deepEqual(r.items, [
      ['MIN', 5],
      ['MAX', 2],
      ['ALL', [5, 3, 1, 2]],
    ]);
    assert.equal(
      formatEsearchResponse('s', false, r.items),
      '* ESEARCH (TAG "s") MIN 5 MAX 2 ALL 5,3,1:2\r\n',
    );
  });
});

describe('SEARCH on junk', () => {
  it('never throws on arbitrary octets, whatever the key', () => {
    const keys = [
      'TEXT "日本"',
      'BODY "x"',
      'HEADER Received a',
      'FROM "jürgen"',
      'SENTON 1-Jan-2024',
      'OR SUBJECT a NOT CC b',
    ].map(key);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, withStructure) => {
        const raw = Buffer.concat([
          Buffer.from(
            'Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n',
          ),
          Buffer.from(bytes),
        ]);
        const m: SearchMessage = { ...box[0]!, raw, structure: withStructure ? scanMessage(raw) : null };
        for (const k of keys) assert.equal(typeof matches(k, m, ctx), 'boolean');
        const plain: SearchMessage = {
          ...m,
          raw: Buffer.from(bytes),
          structure: scanMessage(Buffer.from(bytes)),
        };
        for (const k of keys) assert.equal(typeof matches(k, plain, ctx), 'boolean');
      }),
      { numRuns: 300 },
    );
  });
});
