// IMAP response formatting and mailbox name encodings: RFC examples, UTF-8 names, and format → parse
// round trips (strings through the command reader, names through both encodings).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  formatAstring,
  formatDateTime,
  formatListResponse,
  formatNstring,
  formatParseError,
  formatResponseCode,
  formatStatusResponse,
  formatString,
  formatTagged,
  formatUidSet,
  formatUntaggedStatus,
  formatEsearchResponse,
  formatVanished,
} from './format.ts';
import {
  decodeMailboxName,
  decodeModifiedUtf7,
  encodeMailboxName,
  encodeModifiedUtf7,
} from './mailbox-name.ts';
import { collect } from './test-support.ts';

const rev1 = { utf8: false };
const rev2 = { utf8: true };

describe('IMAP modified UTF-7 (RFC 3501 §5.1.3)', () => {
  it('encodes and decodes the RFC example and UTF-8 names', () => {
    const name = '~peter/mail/台北/日本語';
    assert.equal(encodeModifiedUtf7(name), '~peter/mail/&U,BTFw-/&ZeVnLIqe-');
    assert.equal(decodeModifiedUtf7('~peter/mail/&U,BTFw-/&ZeVnLIqe-'), name);
    assert.equal(encodeModifiedUtf7('Entwürfe & Co'), 'Entw&APw-rfe &- Co');
    assert.equal(decodeModifiedUtf7('Entw&APw-rfe &- Co'), 'Entwürfe & Co');
    assert.equal(encodeModifiedUtf7('😀'), '&2D3eAA-');
    assert.equal(decodeModifiedUtf7('&ZeVnLA-/x'), '日本/x');
  });

  it('refuses what no client may send', () => {
    for (const bad of ['&', '&Jjo', '&Jjo!-', '&AGE-', '&U,BTFw-&ZeVnLIqe-', 'ü', '&2D0-', '&AAAA-x'])
      assert.equal(decodeModifiedUtf7(bad), null, bad);
  });

  it('UTF-8 mode leaves names alone and refuses control characters', () => {
    assert.equal(encodeMailboxName('日本/jürgen', true), '日本/jürgen');
    assert.equal(decodeMailboxName('日本/jürgen', true), '日本/jürgen');
    assert.equal(decodeMailboxName('Entw&APw-rfe', true), 'Entw&APw-rfe');
    assert.equal(decodeMailboxName('a\tb', true), null);
  });

  it('round trips any name in both modes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (name) => {
        assert.equal(decodeMailboxName(encodeMailboxName(name, false), false), name);

        if (!/[\x00-\x1f\x7f]/.test(name))
          assert.equal(decodeMailboxName(encodeMailboxName(name, true), true), name);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('IMAP strings out', () => {
  it('quoted when safe, literal otherwise; UTF-8 quoted only for UTF-8 clients', () => {
    assert.equal(formatString('hello "world" \\', rev1), '"hello \\"world\\" \\\\"');
    assert.equal(formatString('jürgen', rev2), '"jürgen"');
    assert.equal(formatString('jürgen', rev1), '{7}\r\njürgen');
    assert.equal(formatString('日本', rev1), '{6}\r\n日本');
    assert.equal(formatString('a\r\nb', rev2), '{4}\r\na\r\nb');
    assert.equal(formatString('x'.repeat(2000), rev2).slice(0, 7), '{2000}\r');
    assert.equal(formatAstring('INBOX', rev1), 'INBOX');
    assert.equal(formatAstring('NIL', rev1), '"NIL"');
    assert.equal(formatAstring('', rev1), '""');
    assert.equal(formatAstring('a b', rev1), '"a b"');
    assert.equal(formatNstring(null, rev1), 'NIL');
  });

  it('round trip through the command reader', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), fc.boolean(), (s, utf8) => {
        fc.pre(!s.includes('\0'));
        const events = collect([`a LOGIN ${formatAstring(s, { utf8 })} x\r\n`]);
        const last = events.at(-1);
        assert.equal(last?.kind, 'command');
        assert.deepEqual(last.command, { kind: 'login', user: s, password: 'x' });
      }),
      { numRuns: 2000 },
    );
  });
});

describe('IMAP responses', () => {
  it('tagged and untagged status responses with codes', () => {
    assert.equal(
      formatTagged('A142', 'OK', { kind: 'READ-WRITE' }, 'SELECT completed'),
      'A142 OK [READ-WRITE] SELECT completed\r\n',
    );
    assert.equal(
      formatTagged('A003', 'OK', { kind: 'APPENDUID', uidValidity: 38505, uids: [3955] }, 'APPEND completed'),
      'A003 OK [APPENDUID 38505 3955] APPEND completed\r\n',
    );
    assert.equal(
      formatResponseCode({
        kind: 'COPYUID',
        uidValidity: 38505,
        from: [304, 319, 320, 321],
        to: [3956, 3957, 3958, 3959],
      }),
      'COPYUID 38505 304,319:321 3956:3959',
    );
    // RFC 4469 §6: the URL as text, a "]" (which would end the code) and line ends dropped.
    assert.equal(
      formatResponseCode({ kind: 'BADURL', url: '/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9' }),
      'BADURL /INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9',
    );
    assert.equal(
      formatTagged(
        'a',
        'NO',
        { kind: 'BADURL', url: '/%E6%97%A5%E6%9C%AC/;uid=1]\r\n' },
        'URL names nothing',
      ),
      'a NO [BADURL /%E6%97%A5%E6%9C%AC/;uid=1] URL names nothing\r\n',
    );
    assert.equal(
      formatResponseCode({ kind: 'HIGHESTMODSEQ', value: 715194045007n }),
      'HIGHESTMODSEQ 715194045007',
    );
    assert.equal(
      formatUntaggedStatus(
        'OK',
        { kind: 'PERMANENTFLAGS', flags: ['\\Deleted', '\\Seen', '\\*'] },
        'Limited',
      ),
      '* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n',
    );
    assert.equal(formatTagged('a', 'NO', null, 'line\r\nbreak'), 'a NO line break\r\n');
    assert.equal(formatTagged('a', 'OK', null, ''), 'a OK Done\r\n');
    assert.equal(formatUidSet([1, 2, 3, 5, 7, 8]), '1:3,5,7:8');
  });

  it('parse errors become BAD, tagged when the tag was readable, with TOOBIG for limits', () => {
    assert.equal(
      formatParseError('a1', { kind: 'syntax', text: 'Expected a space' }),
      'a1 BAD Expected a space\r\n',
    );
    assert.equal(
      formatParseError(null, { kind: 'too-big', text: 'Command line too long' }),
      '* BAD [TOOBIG] Command line too long\r\n',
    );
  });

  it('LIST, STATUS, ESEARCH, VANISHED with UTF-8 names in both modes', () => {
    assert.equal(
      formatListResponse('LIST', ['\\HasNoChildren'], '/', 'Entwürfe', rev1),
      '* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n',
    );
    assert.equal(
      formatListResponse('LIST', ['\\Sent'], '/', '日本 Sent', rev2),
      '* LIST (\\Sent) "/" "日本 Sent"\r\n',
    );
    assert.equal(
      formatStatusResponse(
        '日本',
        [
          ['MESSAGES', 231],
          ['HIGHESTMODSEQ', 7011231777n],
        ],
        rev1,
      ),
      '* STATUS &ZeVnLA- (MESSAGES 231 HIGHESTMODSEQ 7011231777)\r\n',
    );
    assert.equal(
      formatEsearchResponse('A282', true, [
        ['MIN', 2],
        ['ALL', [2, 10, 11]],
        ['COUNT', 3],
      ]),
      '* ESEARCH (TAG "A282") UID MIN 2 ALL 2,10:11 COUNT 3\r\n',
    );
    assert.equal(formatVanished([41, 43, 44, 45], true), '* VANISHED (EARLIER) 41,43:45\r\n');
  });
});

describe('date-time', () => {
  it('is the RFC 9051 form in UTC, a one-digit day led by a space, and parses back', () => {
    assert.equal(formatDateTime(Date.UTC(1996, 6, 17, 9, 44, 25)), '"17-Jul-1996 09:44:25 +0000"');
    assert.equal(formatDateTime(Date.UTC(2026, 11, 7, 0, 0, 0)), '" 7-Dec-2026 00:00:00 +0000"');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4102444800 }), (s) => {
        const text = formatDateTime(s * 1000).slice(1, -1);
        assert.equal(Date.parse(text.replace(/^ /, '').replace(/-/g, ' ')), s * 1000);
      }),
    );
  });
});
