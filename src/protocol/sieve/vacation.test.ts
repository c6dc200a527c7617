import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SieveAction } from './actions.ts';
import type { SieveInput } from './interpret.ts';
import { makeInput, run } from './test-helpers.ts';
import { vacationAllowed, vacationReply, type VacationAction } from './vacation.ts';

function vacationOf(script: string, input: SieveInput = makeInput(), options = {}): VacationAction {
  const r = run(script, input, options);
  assert.deepEqual(r.errors, []);
  const v = r.actions.find((a): a is Extract<SieveAction, { kind: 'vacation' }> => a.kind === 'vacation');
  assert.ok(v, 'a vacation action');
  return v;
}

const msg = (headers: string): string => `${headers}\n\nbody\n`;
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

describe('sieve vacation action (RFC 5230)', () => {
  test('parameters resolved: the default handle, period, subject and from', () => {
    assert.deepEqual(vacationOf('require "vacation"; vacation "I am away";'), {
      kind: 'vacation',
      handle: 'I am away<default-subject><default-from><NO-MIME>',
      seconds: 7 * 86400,
      subject: 'Auto: Hello there',
      from: null,
      reason: 'I am away',
      mime: false,
      addresses: [],
    });
    const v = vacationOf(
      'require "vacation"; vacation :days 3 :subject "Away" :from "Me <me@example.com>" :addresses ["alias@example.com"] :mime "Content-Type: text/plain\r\n\r\nx";',
    );
    assert.equal(v.handle, 'Content-Type: text/plain\r\n\r\nxAwayMe <me@example.com><MIME>');
    assert.equal(v.seconds, 3 * 86400);
    assert.deepEqual(v.addresses, ['alias@example.com']);
    assert.equal(vacationOf('require "vacation"; vacation :handle "h1" "x";').handle, 'h1');
  });

  test('the period is clamped to the configured range; :seconds with vacation-seconds', () => {
    assert.equal(vacationOf('require "vacation"; vacation :days 0 "x";').seconds, 86400);
    assert.equal(vacationOf('require "vacation"; vacation :days 1000 "x";').seconds, 90 * 86400);
    assert.equal(vacationOf('require "vacation-seconds"; vacation :seconds 60 "x";').seconds, 86400);
    const short = { vacation: { minSeconds: 0 } };
    assert.equal(
      vacationOf('require "vacation-seconds"; vacation :seconds 0 "x";', makeInput(), short).seconds,
      0,
    );
  });

  test('no subject: "Automated reply"; a UTF-8 subject is kept decoded', () => {
    assert.equal(
      vacationOf('require "vacation"; vacation "x";', makeInput(msg('From: a@b.example'))).subject,
      'Automated reply',
    );
    assert.equal(
      vacationOf(
        'require "vacation"; vacation "x";',
        makeInput(msg('Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus 日本')),
      ).subject,
      'Auto: Grüße aus 日本',
    );
  });

  test('one vacation per run; an invalid :from built at run time is an error', () => {
    assert.deepEqual(run('require "vacation"; vacation "a"; vacation "b";').errors, [
      'only one vacation action is allowed',
    ]);
    assert.deepEqual(
      run('require ["vacation", "variables"]; set "f" "nobody"; vacation :from "${f}" "x";').errors,
      ["vacation: invalid :from address 'nobody'"],
    );
  });
});

describe('vacationAllowed (RFC 5230 §4.5-4.6)', () => {
  const action = vacationOf('require "vacation"; vacation :addresses ["alias@example.com"] "away";');
  const base = 'From: jo@example.org\nTo: me@example.com\nSubject: hi';
  const check = (headers: string, overrides: Partial<SieveInput> = {}): string | true => {
    const v = vacationAllowed(makeInput(msg(headers), overrides), action);
    return v.ok ? true : v.why;
  };

  test('a message to me from a person is answered', () => {
    assert.equal(check(base), true);
    assert.equal(check('From: jo@example.org\nCc: Me <ME@Example.COM>'), true);
    assert.equal(check('From: jo@example.org\nTo: alias@example.com'), true, ':addresses count as mine');
    assert.equal(check('From: jo@example.org\nResent-To: me@example.com'), true);
    assert.equal(check(`${base}\nAuto-Submitted: no`), true);
  });

  test('not to me: no reply', () => {
    assert.match(
      String(check('From: jo@example.org\nTo: list@example.net')),
      /none of the recipient's addresses/,
    );
  });

  test('null sender, daemons and list addresses: no reply', () => {
    assert.equal(check(base, { envelope: { from: '', to: 'me@example.com' } }), 'null envelope sender');
    for (const sender of [
      'MAILER-DAEMON@example.org',
      'owner-list@example.org',
      'list-request@example.org',
      'LISTSERV@example.org',
    ]) {
      assert.match(
        String(check(base, { envelope: { from: sender, to: 'me@example.com' } })),
        /mailer daemon or list/,
        sender,
      );
    }
  });

  test('automatic, bulk and list mail: no reply', () => {
    assert.equal(check(`${base}\nAuto-Submitted: auto-replied`), 'Auto-Submitted: auto-replied');
    assert.equal(check(`${base}\nList-Id: <l.example.org>`), 'mailing list message (list-id)');
    assert.equal(
      check(`${base}\nList-Unsubscribe: <mailto:u@example.org>`),
      'mailing list message (list-unsubscribe)',
    );
    assert.equal(check(`${base}\nPrecedence: bulk`), 'Precedence: bulk');
    assert.equal(check(`${base}\nPrecedence: Junk`), 'Precedence: junk');
  });

  test('never to myself', () => {
    assert.equal(
      check(base, { envelope: { from: 'me@example.com', to: 'me@example.com' } }),
      'the sender is the recipient',
    );
  });

  test('UTF-8 addresses: jürgen@example.org and 日本@example.jp', () => {
    const utf8 = {
      envelope: { from: 'jürgen@example.org', to: '日本@example.jp' },
      userAddresses: ['日本@example.jp'],
    };
    assert.equal(check('From: Jürgen <jürgen@example.org>\nTo: 日本 <日本@example.jp>', utf8), true);
    assert.match(String(check('From: jürgen@example.org\nTo: other@example.jp', utf8)), /none of/);
  });
});

describe('vacationReply (RFC 5230 §5)', () => {
  const options = { messageId: 'v1', date: 'Sat, 15 Jun 2024 12:30:00 +0000', hostname: 'mx.example.com' };
  const original =
    'From: Jo <jo@example.org>\nTo: me@example.com\nSubject: Grüße\nMessage-ID: <m1@example.org>\nReferences: <r0@example.org>';

  test('a plain reply: headers, threading, Auto-Submitted, CRLF only', () => {
    const input = makeInput(msg(original));
    const reply = text(
      vacationReply(
        input,
        vacationOf('require "vacation"; vacation "I am away.\nBack soon.";', input),
        options,
      ),
    );
    assert.equal(
      reply,
      [
        'From: <me@example.com>',
        'To: <jo@example.org>',
        'Subject: Auto: =?utf-8?q?Gr=C3=BC=C3=9Fe?=',
        'Date: Sat, 15 Jun 2024 12:30:00 +0000',
        'Message-ID: <v1@mx.example.com>',
        'In-Reply-To: <m1@example.org>',
        'References: <r0@example.org> <m1@example.org>',
        'Auto-Submitted: auto-replied (vacation)',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 7bit',
        '',
        'I am away.',
        'Back soon.',
        '',
      ].join('\r\n'),
    );
    assert.ok(!/[^\r]\n/.test(reply));
  });

  test('a UTF-8 reason is quoted-printable; :from with a UTF-8 name is encoded', () => {
    const input = makeInput(msg(original));
    const v = vacationOf(
      'require "vacation"; vacation :from "Jürgen <jürgen@example.org>" :subject "Außer Haus" "Bin weg — 日本";',
      input,
    );
    const reply = text(vacationReply(input, v, { ...options, messageId: '<x@y>' }));
    assert.match(reply, /^From: =\?utf-8\?q\?J=C3=BCrgen\?= <jürgen@example.org>\r\n/);
    assert.match(reply, /\r\nSubject: =\?utf-8\?q\?Au=C3=9Fer\?= Haus\r\n/);
    assert.match(reply, /\r\nMessage-ID: <x@y>\r\n/);
    assert.match(
      reply,
      /\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nBin weg =E2=80=94 =E6=97=A5=E6=9C=AC\r\n$/,
    );
  });

  test(':mime: the reason is the MIME entity', () => {
    const input = makeInput(msg('From: jo@example.org\nTo: me@example.com'));
    const v = vacationOf(
      'require "vacation"; vacation :mime text:\nContent-Type: text/html; charset=utf-8\n\n<p>away</p>\n.\n;',
      input,
    );
    const reply = text(vacationReply(input, v, options));
    assert.match(
      reply,
      /\r\nMIME-Version: 1\.0\r\nContent-Type: text\/html; charset=utf-8\r\n\r\n<p>away<\/p>\r\n$/,
    );
    assert.ok(!reply.includes('In-Reply-To'), 'no Message-ID, no threading');
  });

  test('the From is the recipient when no :from is given, whatever the user addresses', () => {
    const input = makeInput(msg(original), { envelope: { from: 'jo@example.org', to: '日本@example.jp' } });
    const reply = text(vacationReply(input, vacationOf('require "vacation"; vacation "x";', input), options));
    assert.match(reply, /^From: <日本@example.jp>\r\n/);
  });
});
