// Tests of SMTP command-line parsing: MAIL/RCPT paths and every ESMTP parameter Tern knows (SIZE RFC 1870,
// BODY RFC 6152/3030, SMTPUTF8 RFC 6531, RET/ENVID/NOTIFY/ORCPT RFC 3461, ORCPT utf-8 RFC 6533, AUTH=
// RFC 4954 §5), BDAT (RFC 3030), xtext, and the EHLO argument check. Error replies are compared with the
// catalogue entries themselves, so a changed reply is a visible change here.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Replies, type Reply } from '../../core/reply.ts';
import {
  decodeXtext,
  isAcceptableHelo,
  parseBdat,
  parseCommandLine,
  parseMail,
  parseRfc3339,
  parseRcpt,
  type MailCommand,
  type Parsed,
  type RcptCommand,
} from './command.ts';

function value<T>(p: Parsed<T>): T {
  assert.ok(p.ok, `expected success, got ${JSON.stringify(p)}`);
  return p.value;
}

function reply<T>(p: Parsed<T>): Reply {
  assert.ok(!p.ok, `expected an error reply, got ${JSON.stringify(p)}`);
  return p.reply;
}

const mail = (arg: string, esmtp = true): MailCommand => value(parseMail(arg, esmtp));
const rcpt = (arg: string, esmtp = true, utf8 = false): RcptCommand => value(parseRcpt(arg, esmtp, utf8));

describe('parseCommandLine', () => {
  test('verb upper-cased, argument after one space, trailing spaces dropped', () => {
    assert.deepEqual(parseCommandLine('mail FROM:<a@example.org>  '), {
      verb: 'MAIL',
      arg: 'FROM:<a@example.org>',
    });
    assert.deepEqual(parseCommandLine('QUIT'), { verb: 'QUIT', arg: '' });
    assert.deepEqual(parseCommandLine('noop '), { verb: 'NOOP', arg: '' });
    assert.deepEqual(parseCommandLine(''), { verb: '', arg: '' });
  });
});

describe('parseMail: the reverse-path', () => {
  test('plain, null, case-insensitive FROM, one space after the colon tolerated', () => {
    assert.deepEqual(mail('FROM:<a@example.org>'), {
      sender: { local: 'a', quoted: false, domain: 'example.org', utf8: false },
      params: { sizeBytes: null, body: '7BIT', smtputf8: false, ret: null, envid: null },
    });
    assert.equal(mail('FROM:<>').sender, null);
    assert.equal(mail('from:<a@example.org>').sender?.local, 'a');
    assert.equal(mail('FROM: <a@example.org>').sender?.local, 'a');
    assert.equal(mail('FROM:<@relay.example:a@example.org>').sender?.domain, 'example.org');
  });

  test('not "FROM:" at all is a generic syntax error', () => {
    for (const arg of ['', 'FROM', 'FROM <a@example.org>', 'TO:<a@example.org>', 'FROMX:<a@example.org>']) {
      assert.equal(reply(parseMail(arg, true)), Replies.syntaxError, arg);
    }
  });

  test('a bad path is 501 5.1.7', () => {
    for (const arg of [
      'FROM:a@example.org',
      'FROM:<a@example.org',
      'FROM:  <a@example.org>',
      'FROM:<a@@example.org>',
      'FROM:<a@example.org>SIZE=1',
    ]) {
      assert.equal(reply(parseMail(arg, true)), Replies.badSenderSyntax, arg);
    }
  });

  test('non-ASCII needs SMTPUTF8 on this very command, and EHLO', () => {
    assert.equal(reply(parseMail('FROM:<jöran@example.org>', true)), Replies.needUtf8);
    const ok = mail('FROM:<jöran@bücher.example> SMTPUTF8');
    assert.equal(ok.sender?.local, 'jöran');
    assert.equal(ok.params.smtputf8, true);
    assert.equal(mail('FROM:<a@example.org> smtputf8').params.smtputf8, true);
    // After HELO there is no SMTPUTF8, so the address is refused as non-ASCII.
    assert.equal(reply(parseMail('FROM:<jöran@example.org> SMTPUTF8', false)), Replies.needUtf8);
  });

  test('after HELO parameters are refused with 555', () => {
    assert.equal(reply(parseMail('FROM:<a@example.org> SIZE=10', false)), Replies.badParameter);
    assert.equal(mail('FROM:<a@example.org>', false).sender?.local, 'a');
  });
});

describe('parseMail: parameters', () => {
  test('SIZE', () => {
    assert.equal(mail('FROM:<a@example.org> SIZE=0').params.sizeBytes, 0);
    assert.equal(mail('FROM:<a@example.org> size=26214400').params.sizeBytes, 26214400);
    for (const bad of [
      'SIZE',
      'SIZE=',
      'SIZE=-1',
      'SIZE=1.5',
      'SIZE=1e6',
      'SIZE=0x10',
      `SIZE=${'9'.repeat(21)}`,
    ]) {
      assert.equal(reply(parseMail(`FROM:<a@example.org> ${bad}`, true)), Replies.syntaxError, bad);
    }
  });

  test('BODY', () => {
    assert.equal(mail('FROM:<a@example.org> BODY=7BIT').params.body, '7BIT');
    assert.equal(mail('FROM:<a@example.org> BODY=8bitmime').params.body, '8BITMIME');
    assert.equal(mail('FROM:<a@example.org> BODY=BINARYMIME').params.body, 'BINARYMIME');
    for (const bad of ['BODY', 'BODY=8BIT', 'BODY=BINARY', 'BODY=QUOTED-PRINTABLE']) {
      assert.equal(reply(parseMail(`FROM:<a@example.org> ${bad}`, true)), Replies.badParameter, bad);
    }
  });

  test('SMTPUTF8 takes no value', () => {
    assert.equal(reply(parseMail('FROM:<a@example.org> SMTPUTF8=yes', true)), Replies.syntaxError);
  });

  test('RET', () => {
    assert.equal(mail('FROM:<a@example.org> RET=FULL').params.ret, 'FULL');
    assert.equal(mail('FROM:<a@example.org> RET=hdrs').params.ret, 'HDRS');
    for (const bad of ['RET', 'RET=BODY', 'RET=']) {
      assert.equal(reply(parseMail(`FROM:<a@example.org> ${bad}`, true)), Replies.syntaxError, bad);
    }
  });

  test('ENVID: xtext decoded, at most 100 characters', () => {
    assert.equal(mail('FROM:<a@example.org> ENVID=QQ314159').params.envid, 'QQ314159');
    assert.equal(mail('FROM:<a@example.org> ENVID=a+2Bb+3Dc').params.envid, 'a+b=c');
    assert.equal(mail(`FROM:<a@example.org> ENVID=${'x'.repeat(100)}`).params.envid, 'x'.repeat(100));
    for (const bad of [
      'ENVID',
      `ENVID=${'x'.repeat(101)}`,
      'ENVID=a+2bb',
      'ENVID=a+',
      'ENVID=a+G0',
      'ENVID=é',
    ]) {
      assert.equal(reply(parseMail(`FROM:<a@example.org> ${bad}`, true)), Replies.syntaxError, bad);
    }
  });

  test('ENVID: xtext octets are UTF-8 (RFC 3461 §4), not one character per octet', () => {
    assert.equal(mail('FROM:<a@example.org> ENVID=caf+C3+A9').params.envid, 'café');
    assert.equal(mail('FROM:<a@example.org> ENVID=+E6+97+A5+E6+9C+AC').params.envid, '日本');
    // A lone octet that is not UTF-8 cannot be said again in a DSN: refused, not mangled.
    for (const bad of ['ENVID=caf+E9', 'ENVID=+C3', 'ENVID=+ED+A0+80']) {
      assert.equal(reply(parseMail(`FROM:<a@example.org> ${bad}`, true)), Replies.syntaxError, bad);
    }
  });

  test('AUTH= is accepted (and dropped) when it is xtext or <>', () => {
    const m = mail('FROM:<a@example.org> AUTH=<>');
    assert.deepEqual(m.params, { sizeBytes: null, body: '7BIT', smtputf8: false, ret: null, envid: null });
    mail('FROM:<a@example.org> AUTH=user+40example.org');
    for (const bad of ['AUTH', 'AUTH=a+zz']) {
      assert.equal(reply(parseMail(`FROM:<a@example.org> ${bad}`, true)), Replies.syntaxError, bad);
    }
  });

  test('all parameters together, any order, extra spaces tolerated', () => {
    const m = mail('FROM:<> ret=hdrs  SIZE=1000 BODY=8BITMIME ENVID=id1 SMTPUTF8');
    assert.deepEqual(m, {
      sender: null,
      params: { sizeBytes: 1000, body: '8BITMIME', smtputf8: true, ret: 'HDRS', envid: 'id1' },
    });
  });

  test('a keyword repeated with another value (any case) is a syntax error', () => {
    assert.equal(reply(parseMail('FROM:<a@example.org> SIZE=1 size=2', true)), Replies.syntaxError);
    assert.equal(reply(parseMail('FROM:<a@example.org> BODY=7BIT BODY=8BITMIME', true)), Replies.syntaxError);
    assert.equal(reply(parseMail('FROM:<a@example.org> SMTPUTF8 SMTPUTF8=x', true)), Replies.syntaxError);
  });

  test('an identical repeat is accepted (Python smtplib sends "SMTPUTF8 SMTPUTF8 BODY=8BITMIME")', () => {
    const m = mail('FROM:<jöran@example.org> SMTPUTF8 BODY=8BITMIME SMTPUTF8 BODY=8BITMIME');
    assert.equal(m.params.smtputf8, true);
    assert.equal(m.params.body, '8BITMIME');
    assert.equal(mail('FROM:<a@example.org> SIZE=10 SIZE=10').params.sizeBytes, 10);
  });

  test('unknown keywords are 555; malformed keywords and values are 501', () => {
    assert.equal(reply(parseMail('FROM:<a@example.org> X-FOO=bar', true)), Replies.badParameter);
    assert.equal(reply(parseMail('FROM:<a@example.org> NOTIFY=NEVER', true)), Replies.badParameter);
    for (const bad of ['=x', '-A=1', 'SIZE==1', 'X=', 'X=a=b', 'X=\x01', 'A_B=1']) {
      assert.equal(reply(parseMail(`FROM:<a@example.org> ${bad}`, true)), Replies.syntaxError, bad);
    }
  });
});

describe('parseMail: MT-PRIORITY, DELIVERBY and FUTURERELEASE', () => {
  const params = (arg: string) => {
    const r = parseMail(`FROM:<a@example.org> ${arg}`, true);
    return r.ok ? r.value.params : r.reply;
  };
  test('MT-PRIORITY (RFC 6710): -9 to 9 with an optional sign', () => {
    assert.equal((params('MT-PRIORITY=5') as { priority?: number }).priority, 5);
    assert.equal((params('mt-priority=-9') as { priority?: number }).priority, -9);
    assert.equal((params('MT-PRIORITY=+3') as { priority?: number }).priority, 3);
    for (const bad of ['MT-PRIORITY=10', 'MT-PRIORITY=x', 'MT-PRIORITY', 'MT-PRIORITY=1.5'])
      assert.deepEqual(params(bad), Replies.syntaxError, bad);
  });
  test('BY (RFC 2852): time;mode[T], R needs a positive time', () => {
    assert.deepEqual((params('BY=120;R') as { by?: unknown }).by, { seconds: 120, mode: 'R', trace: false });
    assert.deepEqual((params('BY=-30;nt') as { by?: unknown }).by, { seconds: -30, mode: 'N', trace: true });
    for (const bad of ['BY=0;R', 'BY=-5;R', 'BY=10', 'BY=10;X', 'BY=1234567890;N', 'BY=;R'])
      assert.deepEqual(params(bad), Replies.syntaxError, bad);
  });
  test('HOLDFOR and HOLDUNTIL (RFC 4865), not both, not with BY', () => {
    assert.deepEqual((params('HOLDFOR=3600') as { hold?: unknown }).hold, { kind: 'for', seconds: 3600 });
    assert.deepEqual((params('HOLDUNTIL=2026-12-24T18:00:00+01:00') as { hold?: unknown }).hold, {
      kind: 'until',
      atMs: Date.UTC(2026, 11, 24, 17, 0, 0),
    });
    for (const bad of [
      'HOLDFOR=-1',
      'HOLDFOR=1 HOLDUNTIL=2026-12-24T18:00:00Z',
      'HOLDFOR=10 BY=100;R',
      'HOLDUNTIL=2026-02-30T00:00:00Z',
      'HOLDUNTIL=tomorrow',
    ])
      assert.deepEqual(params(bad), Replies.syntaxError, bad);
  });
  test('parseRfc3339: zones, fractions, leap second clamp, nonsense refused', () => {
    assert.equal(parseRfc3339('2026-01-01T00:00:00Z'), Date.UTC(2026, 0, 1));
    assert.equal(parseRfc3339('2026-01-01T00:00:00.250-00:30'), Date.UTC(2026, 0, 1, 0, 30, 0, 250));
    assert.equal(parseRfc3339('2026-13-01T00:00:00Z'), null);
    assert.equal(parseRfc3339('2026-01-01 00:00:00Z'), null);
    fc.assert(fc.property(fc.string(), (s) => void parseRfc3339(s)));
  });
});

describe('parseRcpt', () => {
  test('a plain forward-path', () => {
    assert.deepEqual(rcpt('TO:<u@example.test>'), {
      recipient: { local: 'u', quoted: false, domain: 'example.test', utf8: false },
      hadSourceRoute: false,
      notify: null,
      orcpt: null,
    });
    assert.equal(rcpt('to: <u@example.test>').recipient.local, 'u');
    assert.equal(rcpt('TO:<@hop.example:u@example.test>').hadSourceRoute, true);
  });

  test('<Postmaster> without a domain, any case, with parameters (RFC 5321 §4.1.1.3)', () => {
    const p = rcpt('TO:<Postmaster>');
    assert.deepEqual(p.recipient, { local: 'postmaster', quoted: false, domain: '', utf8: false });
    assert.deepEqual(rcpt('TO:<POSTMASTER> NOTIFY=NEVER').notify, []);
    assert.equal(reply(parseRcpt('TO:<postmaster>x', true, false)), Replies.badAddressSyntax);
    assert.equal(rcpt('TO:<postmaster@example.test>').recipient.domain, 'example.test');
  });

  test('bad paths: 501 5.1.3; not "TO:": 501 5.5.4; the null path is not a recipient', () => {
    assert.equal(reply(parseRcpt('TO:<>', true, false)), Replies.badAddressSyntax);
    assert.equal(reply(parseRcpt('TO:u@example.test', true, false)), Replies.badAddressSyntax);
    assert.equal(reply(parseRcpt('TO:<u@example.test', true, false)), Replies.badAddressSyntax);
    assert.equal(reply(parseRcpt('TO <u@example.test>', true, false)), Replies.syntaxError);
    assert.equal(reply(parseRcpt('FROM:<u@example.test>', true, false)), Replies.syntaxError);
  });

  test('UTF-8 recipients only when the MAIL command carried SMTPUTF8', () => {
    assert.equal(reply(parseRcpt('TO:<jöran@example.test>', true, false)), Replies.needUtf8);
    assert.equal(rcpt('TO:<jöran@example.test>', true, true).recipient.utf8, true);
  });

  test('after HELO parameters are refused with 555', () => {
    assert.equal(reply(parseRcpt('TO:<u@example.test> NOTIFY=NEVER', false, false)), Replies.badParameter);
  });

  test('NOTIFY', () => {
    assert.deepEqual(rcpt('TO:<u@example.test> NOTIFY=NEVER').notify, []);
    assert.deepEqual(rcpt('TO:<u@example.test> NOTIFY=never').notify, []);
    assert.deepEqual(rcpt('TO:<u@example.test> NOTIFY=SUCCESS').notify, ['SUCCESS']);
    assert.deepEqual(rcpt('TO:<u@example.test> NOTIFY=failure,Delay,SUCCESS').notify, [
      'FAILURE',
      'DELAY',
      'SUCCESS',
    ]);
    for (const bad of [
      'NOTIFY',
      'NOTIFY=',
      'NOTIFY=NEVER,SUCCESS',
      'NOTIFY=SUCCESS,SUCCESS',
      'NOTIFY=SUCCESS,',
      'NOTIFY=ALWAYS',
    ]) {
      assert.equal(reply(parseRcpt(`TO:<u@example.test> ${bad}`, true, false)), Replies.syntaxError, bad);
    }
  });

  test('ORCPT: address type lower-cased, xtext decoded', () => {
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=rfc822;u+40example.test').orcpt, {
      addrType: 'rfc822',
      address: 'u@example.test',
    });
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=RFC822;a+2Bb@example.test').orcpt, {
      addrType: 'rfc822',
      address: 'a+b@example.test',
    });
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=x-custom;abc').orcpt, {
      addrType: 'x-custom',
      address: 'abc',
    });
  });

  test('ORCPT=rfc822: xtext octets are UTF-8, decoded once (jos+C3+A9 is josé, not josÃ©)', () => {
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=rfc822;jos+C3+A9@example.test').orcpt, {
      addrType: 'rfc822',
      address: 'josé@example.test',
    });
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=rfc822;j+C3+BCrgen@example.test').orcpt, {
      addrType: 'rfc822',
      address: 'jürgen@example.test',
    });
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=rfc822;+E6+97+A5+E6+9C+AC@example.test').orcpt, {
      addrType: 'rfc822',
      address: '日本@example.test',
    });
    for (const bad of ['ORCPT=rfc822;jos+E9@example.test', 'ORCPT=rfc822;+C3@example.test']) {
      assert.equal(reply(parseRcpt(`TO:<u@example.test> ${bad}`, true, false)), Replies.syntaxError, bad);
    }
  });

  test('ORCPT=utf-8 uses \\x{HEX} escapes (RFC 6533 §3)', () => {
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=utf-8;j\\x{F6}ran@example.test').orcpt, {
      addrType: 'utf-8',
      address: 'jöran@example.test',
    });
    assert.deepEqual(rcpt('TO:<u@example.test> ORCPT=utf-8;\\x{1F600}@example.test').orcpt, {
      addrType: 'utf-8',
      address: '😀@example.test',
    });
    assert.equal(
      rcpt('TO:<u@example.test> ORCPT=utf-8;jöran@example.test', true, true).orcpt?.address,
      'jöran@example.test',
    );
    for (const bad of [
      'ORCPT=utf-8;a\\x{}b',
      'ORCPT=utf-8;a\\x{f6}b',
      'ORCPT=utf-8;a\\x{110000}b',
      'ORCPT=utf-8;a\\x{F6',
      // A surrogate is no character; controls are no part of an address.
      'ORCPT=utf-8;a\\x{D800}b',
      'ORCPT=utf-8;a\\x{0}b',
      'ORCPT=utf-8;a\\x{7F}b',
      'ORCPT=utf-8;a+b',
      // "\" is not a QCHAR: it is only allowed as the start of an escape.
      'ORCPT=utf-8;a\\b',
    ]) {
      assert.equal(reply(parseRcpt(`TO:<u@example.test> ${bad}`, true, true)), Replies.syntaxError, bad);
    }
  });

  test('ORCPT syntax errors', () => {
    for (const bad of [
      'ORCPT',
      'ORCPT=rfc822',
      'ORCPT=;u@example.test',
      'ORCPT=rfc822;',
      'ORCPT=rfc_822;u',
      'ORCPT=rfc822;u+4',
      `ORCPT=rfc822;${'x'.repeat(501)}`,
    ]) {
      assert.equal(reply(parseRcpt(`TO:<u@example.test> ${bad}`, true, false)), Replies.syntaxError, bad);
    }
    assert.ok(parseRcpt(`TO:<u@example.test> ORCPT=rfc822;${'x'.repeat(500)}`, true, false).ok);
  });

  test('repeated and unknown parameters', () => {
    assert.equal(
      reply(parseRcpt('TO:<u@example.test> NOTIFY=NEVER notify=NEVER', true, false)),
      Replies.syntaxError,
    );
    assert.equal(reply(parseRcpt('TO:<u@example.test> SIZE=10', true, false)), Replies.badParameter);
    assert.equal(reply(parseRcpt('TO:<u@example.test> RET=FULL', true, false)), Replies.badParameter);
  });
});

describe('parseBdat (RFC 3030 §2)', () => {
  test('size and LAST', () => {
    assert.deepEqual(value(parseBdat('0')), { sizeBytes: 0, last: false });
    assert.deepEqual(value(parseBdat('1024 LAST')), { sizeBytes: 1024, last: true });
    assert.deepEqual(value(parseBdat('7 last')), { sizeBytes: 7, last: true });
    assert.deepEqual(value(parseBdat('7   LAST')), { sizeBytes: 7, last: true });
    assert.deepEqual(value(parseBdat('999999999999999')), { sizeBytes: 999999999999999, last: false });
  });

  for (const bad of [
    '',
    'LAST',
    '-1',
    '1.0',
    '10 FIRST',
    '10LAST',
    ' 10',
    '1234567890123456',
    '0x10',
    '10 LAST x',
  ]) {
    test(`syntax error: ${JSON.stringify(bad)}`, () => {
      assert.equal(reply(parseBdat(bad)), Replies.syntaxError);
    });
  }
});

describe('decodeXtext (RFC 3461 §4)', () => {
  test('decodes +HH, passes printable ASCII', () => {
    assert.equal(decodeXtext(''), '');
    assert.equal(decodeXtext('abc'), 'abc');
    assert.equal(decodeXtext('a+2Bb'), 'a+b');
    assert.equal(decodeXtext('+3D+20+41'), '= A');
    assert.equal(decodeXtext('~!#'), '~!#');
  });

  test('the octets are UTF-8: +C3+A9 is one character, a lone 8-bit octet is refused', () => {
    assert.equal(decodeXtext('jos+C3+A9'), 'josé');
    assert.equal(decodeXtext('+E6+97+A5+E6+9C+AC'), '日本');
    assert.equal(decodeXtext('+F0+9F+98+80'), '😀');
    for (const bad of ['+E9', '+C3', '+C3+28', '+ED+A0+80', '+FF']) {
      assert.equal(decodeXtext(bad), null, bad);
    }
  });

  test('refuses lower-case hex, short escapes, "=", spaces, controls and non-ASCII', () => {
    for (const bad of ['+2b', '+2', '+', 'a+G1', 'a=b', 'a b', 'a\x7fb', 'a\tb', 'é']) {
      assert.equal(decodeXtext(bad), null, JSON.stringify(bad));
    }
  });

  test('property: decoding what we encode gives the original back', () => {
    const encode = (s: string): string =>
      [...Buffer.from(s, 'utf8')]
        .map((b) =>
          b < 33 || b > 126 || b === 0x2b || b === 0x3d
            ? `+${b.toString(16).toUpperCase().padStart(2, '0')}`
            : String.fromCharCode(b),
        )
        .join('');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        assert.equal(decodeXtext(encode(s)), s);
      }),
    );
  });
});

describe('isAcceptableHelo (RFC 5321 §4.1.1.1, leniently)', () => {
  for (const good of [
    'mail.example.org',
    'localhost',
    'host_name.example',
    'mail.example.org.',
    '[192.0.2.1]',
    '[IPv6:2001:db8::1]',
    'bücher.example',
    'x',
  ]) {
    test(`accepted: ${good}`, () => assert.equal(isAcceptableHelo(good), true));
  }

  for (const bad of [
    '',
    'two words',
    'tab\there',
    'cr\rlf',
    'lf\nx',
    'a(b)',
    'a"b',
    'a\\b',
    'a<b>',
    'a;b',
    'a@b',
    'a,b',
    '[foo]',
    '[192.0.2.1',
    '192.0.2.1]',
    'del\x7f',
    'nul\x00',
    'a'.repeat(256),
  ]) {
    test(`refused: ${JSON.stringify(bad.length > 20 ? bad.slice(0, 20) + '…' : bad)}`, () =>
      assert.equal(isAcceptableHelo(bad), false));
  }

  test('255 characters is the longest accepted', () => {
    assert.equal(isAcceptableHelo('a'.repeat(255)), true);
  });
});

// --- properties -------------------------------------------------------------------------------------

const catalogue = new Set<Reply>(Object.values(Replies));

const commandish = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.string({
    unit: fc.constantFrom(
      'FROM:',
      'TO:',
      '<',
      '>',
      '<>',
      'a@example.org',
      'jö@example.org',
      '"',
      '\\',
      ' ',
      '=',
      '+',
      '+2B',
      ';',
      ',',
      'SIZE',
      'BODY',
      'SMTPUTF8',
      'NOTIFY',
      'ORCPT',
      'utf-8;',
      '\\x{',
      '}',
      'RET',
      'ENVID',
      'AUTH',
      'NEVER',
      'LAST',
      '1',
      '\r',
      '\x00',
      '\uD800',
    ),
    maxLength: 30,
  }),
);

test('property: every parser is total and every error reply comes from the catalogue', () => {
  fc.assert(
    fc.property(commandish, fc.boolean(), fc.boolean(), (s, esmtp, utf8) => {
      for (const r of [parseMail(s, esmtp), parseRcpt(s, esmtp, utf8), parseBdat(s)]) {
        if (!r.ok) assert.ok(catalogue.has(r.reply), JSON.stringify(r.reply));
      }
      decodeXtext(s);
      isAcceptableHelo(s);
      parseCommandLine(s);
    }),
    { numRuns: 5000 },
  );
});

test('property: a parsed MAIL or RCPT never carries a non-ASCII address without SMTPUTF8', () => {
  fc.assert(
    fc.property(commandish, (s) => {
      const m = parseMail(s, true);
      if (m.ok && m.value.sender !== null && !m.value.params.smtputf8)
        assert.equal(m.value.sender.utf8, false);
      const r = parseRcpt(s, true, false);
      if (r.ok) assert.equal(r.value.recipient.utf8, false);
    }),
    { numRuns: 3000 },
  );
});
