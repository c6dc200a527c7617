import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatSpamdRequest,
  parseSpamdReply,
  parseSpamField,
  parseSymbols,
  type SpamdParse,
} from './spamd.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

// What spamd 4.0.1 answered SYMBOLS for a GTUBE message (test/filters/spamassassin.test.ts runs it).
const GTUBE_REPLY =
  'SPAMD/1.1 0 EX_OK\r\nContent-length: 68\r\nSpam: True ; 1003.3 / 5.0\r\n\r\n' +
  'GTUBE,MISSING_DATE,MISSING_MID,NO_RECEIVED,NO_RELAYS,TVD_SPACE_RATIO';

function reply(p: SpamdParse) {
  assert.equal(p.kind, 'reply', JSON.stringify(p));
  if (p.kind !== 'reply') throw new Error('unreachable');
  return p.reply;
}
function error(p: SpamdParse): string {
  assert.equal(p.kind, 'error', JSON.stringify(p));
  return p.kind === 'error' ? p.reason : '';
}

describe('spamd protocol (SPAMC/1.5)', () => {
  test('request head: command, Content-length, optional User; UTF-8 user names as UTF-8', () => {
    assert.equal(
      text(formatSpamdRequest({ command: 'SYMBOLS', contentLength: 1234, user: null })!),
      'SYMBOLS SPAMC/1.5\r\nContent-length: 1234\r\n\r\n',
    );
    assert.equal(
      text(formatSpamdRequest({ command: 'SYMBOLS', contentLength: 0, user: 'mail' })!),
      'SYMBOLS SPAMC/1.5\r\nContent-length: 0\r\nUser: mail\r\n\r\n',
    );
    const utf8 = formatSpamdRequest({ command: 'SYMBOLS', contentLength: 5, user: 'jürgen' })!;
    assert.ok(Buffer.from(utf8).includes(Buffer.from('User: j\xc3\xbcrgen\r\n', 'latin1')));
    assert.match(
      text(formatSpamdRequest({ command: 'REPORT', contentLength: 5, user: '日本' })!),
      /User: 日本\r\n/,
    );
  });

  test('request head: a user with a line break, an empty user, a bad length are refused', () => {
    assert.equal(formatSpamdRequest({ command: 'SYMBOLS', contentLength: 1, user: 'a\r\nUser: root' }), null);
    assert.equal(formatSpamdRequest({ command: 'SYMBOLS', contentLength: 1, user: '' }), null);
    assert.equal(formatSpamdRequest({ command: 'SYMBOLS', contentLength: -1, user: null }), null);
    assert.equal(formatSpamdRequest({ command: 'SYMBOLS', contentLength: 1.5, user: null }), null);
  });

  test('SYMBOLS reply: verdict, score, threshold, rule names', () => {
    const r = reply(parseSpamdReply(enc(GTUBE_REPLY), false));
    assert.deepEqual([r.isSpam, r.score, r.threshold], [true, 1003.3, 5]);
    assert.deepEqual(parseSymbols(r.body), [
      'GTUBE',
      'MISSING_DATE',
      'MISSING_MID',
      'NO_RECEIVED',
      'NO_RELAYS',
      'TVD_SPACE_RATIO',
    ]);
    const ham = reply(
      parseSpamdReply(
        enc(
          'SPAMD/1.1 0 EX_OK\r\nContent-length: 33\r\nSpam: False ; -0.0 / 5.0\r\n\r\nMSGID_SHORT,NO_RECEIVED,NO_RELAYS',
        ),
        false,
      ),
    );
    assert.deepEqual([ham.isSpam, ham.score, ham.threshold], [false, -0, 5]);
  });

  test('every split of a reply is `more` until its last octet, then the same reply', () => {
    const whole = enc(GTUBE_REPLY);
    for (let i = 0; i < whole.length; i++)
      assert.deepEqual(parseSpamdReply(whole.subarray(0, i), false), { kind: 'more' }, `at ${i}`);
    assert.equal(reply(parseSpamdReply(whole, false)).score, 1003.3);
  });

  test('truncated: a reply cut anywhere and then closed is an error, never a verdict', () => {
    const whole = enc(GTUBE_REPLY);
    for (let i = 0; i < whole.length; i++) {
      const p = parseSpamdReply(whole.subarray(0, i), true);
      assert.equal(p.kind, 'error', `cut at ${i}: ${JSON.stringify(p)}`);
    }
  });

  test('CHECK: no body, complete when the connection ends', () => {
    const bytes = enc('SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1003.3 / 5.0\r\n\r\n');
    assert.deepEqual(parseSpamdReply(bytes, false), { kind: 'more' });
    const r = reply(parseSpamdReply(bytes, true));
    assert.equal(r.body.length, 0);
    assert.equal(r.isSpam, true);
  });

  test('older Spam: Yes/No form and bare LF line ends', () => {
    const r = reply(
      parseSpamdReply(enc('SPAMD/1.0 0 EX_OK\nSpam: Yes ; 6.5 / 5.0\nContent-length: 0\n\n'), false),
    );
    assert.deepEqual([r.isSpam, r.score, r.threshold], [true, 6.5, 5]);
    assert.deepEqual(parseSpamField('No ; 1 / 5'), { isSpam: false, score: 1, threshold: 5 });
  });

  test('EX_ codes other than 0 are errors naming the code, without waiting for the close', () => {
    const cases: [string, number, RegExp][] = [
      ['SPAMD/1.0 76 Bad header line: Content-length: x\r\n', 76, /EX_PROTOCOL \(76\): Bad header line/],
      ['SPAMD/1.0 64 EX_USAGE\r\n', 64, /EX_USAGE/],
      ['SPAMD/1.1 75 EX_TEMPFAIL\r\n', 75, /EX_TEMPFAIL/],
      ['SPAMD/1.1 99 something odd\r\n', 99, /unknown status \(99\)/],
    ];
    for (const [wire, status, reason] of cases) {
      const p = parseSpamdReply(enc(wire), false);
      assert.equal(p.kind, 'error');
      if (p.kind === 'error') {
        assert.equal(p.status, status);
        assert.match(p.reason, reason);
      }
    }
  });

  test('garbage and hostile replies are errors', () => {
    const bad: [string, RegExp][] = [
      ['HTTP/1.1 200 OK\r\n\r\n', /not a spamd status line/],
      ['\x00\x01\x02\x03\r\n', /not a spamd status line: \?\?\?\?/],
      ['SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n', /no Spam header/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: maybe ; 1 / 5\r\nContent-length: 0\r\n\r\n', /bad Spam header/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: True ; lots / 5\r\nContent-length: 0\r\n\r\n', /bad Spam header/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1e400 / 5\r\nContent-length: 0\r\n\r\n', /bad Spam header/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6 / 5\r\nContent-length: -3\r\n\r\n', /bad Content-length/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6 / 5\r\nContent-length: 0x10\r\n\r\n', /bad Content-length/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6 / 5\r\nnot a header\r\n\r\n', /bad reply header line/],
      ['SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6 / 5\r\nSpam: False ; 0 / 5\r\n\r\n', /repeated reply header/],
    ];
    for (const [wire, reason] of bad) assert.match(error(parseSpamdReply(enc(wire), false)), reason, wire);
  });

  test('oversize: a huge declared body, an endless status line or header block', () => {
    assert.match(
      error(
        parseSpamdReply(
          enc('SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6 / 5\r\nContent-length: 99999999\r\n\r\n'),
          false,
          65536,
        ),
      ),
      /longer than 65536/,
    );
    assert.match(
      error(parseSpamdReply(enc('SPAMD/1.1 0 ' + 'x'.repeat(9000)), false)),
      /status line too long/,
    );
    assert.match(
      error(parseSpamdReply(enc('SPAMD/1.1 0 EX_OK\r\nX-Junk: ' + 'y'.repeat(9000)), false)),
      /header block too long/,
    );
    const manyHeaders =
      'SPAMD/1.1 0 EX_OK\r\n' + Array.from({ length: 2000 }, (_, i) => `X-A${i}: b\r\n`).join('');
    assert.match(error(parseSpamdReply(enc(manyHeaders), false)), /header block too long/);
    // No length, body running on: bounded too.
    assert.match(
      error(
        parseSpamdReply(
          enc('SPAMD/1.1 0 EX_OK\r\nSpam: True ; 6 / 5\r\n\r\n' + 'z'.repeat(70000)),
          false,
          65536,
        ),
      ),
      /longer than 65536/,
    );
  });

  test('symbols: junk that is no rule name is dropped (it would land in a header)', () => {
    assert.deepEqual(parseSymbols(enc('A_1,__META,\r\nX-Evil: yes,C\r\n')), ['A_1', '__META', 'yes', 'C']);
    assert.deepEqual(parseSymbols(enc('')), []);
    assert.deepEqual(parseSymbols(enc('GOOD,b\xe4d,' + 'L'.repeat(200))), ['GOOD']);
  });
});
