// SMTP AUTH end to end with swaks (an independent SMTP client in Perl, the operator's usual tool):
// `--auth PLAIN` and `--auth LOGIN`, with `--tls` (STARTTLS on submission, RFC 3207) and `--tlsc`
// (implicit TLS on submissions, RFC 8314); a wrong password ends swaks with its AUTH exit code (28);
// `--auth` without TLS on submission finds no AUTH offered (RFC 4954 §4: not before TLS here).
// Deliberately NOT here: AUTH EXTERNAL (swaks 20201014 has no EXTERNAL: auth-external.test.ts drives it
// with smtplib, and swaks only for client certificates on a `require` listener).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuthTern } from './auth-helpers.ts';
import { startAuthTern, swaks, swaksSkipReason } from './auth-helpers.ts';
import { splitTrace, waitFor } from './harness.ts';

const skip = swaksSkipReason();

describe('SMTP AUTH with swaks', { skip }, () => {
  let tern: AuthTern;
  before(async () => {
    tern = await startAuthTern({
      users: [{ address: 'sw@example.test', password: 'swaks pass' }, { address: 'rcpt@example.test' }],
      auth: { lockout_threshold: 100 },
    });
  });
  after(() => tern?.stop());

  for (const [mech, tlsFlag] of [
    ['PLAIN', '--tls'],
    ['LOGIN', '--tls'],
    ['PLAIN', '--tlsc'],
    ['LOGIN', '--tlsc'],
  ] as const) {
    const implicit = tlsFlag === '--tlsc';
    test(`--auth ${mech} ${tlsFlag}: 235, then the message is delivered`, async () => {
      const subject = `swaks ${mech} ${tlsFlag}`;
      const r = await swaks(implicit ? tern.ports.submissions : tern.ports.submission, [
        tlsFlag,
        '--auth',
        mech,
        '--auth-user',
        'sw@example.test',
        '--auth-password',
        'swaks pass',
        '--from',
        'sw@example.test',
        '--to',
        'rcpt@example.test',
        '--header',
        `Subject: ${subject}`,
      ]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      // swaks marks TLS-protected lines with "~": AUTH and the message went over TLS.
      assert.match(r.stdout, new RegExp(` ~> AUTH ${mech}`));
      assert.match(r.stdout, /<~ {2}235 2\.7\.0 Authentication successful/);
      assert.match(r.stdout, /<~ {2}250 2\.0\.0 OK: queued as \S+/);
      const entry = await waitFor('the swaks message', async () =>
        (await tern.mailboxList('rcpt@example.test')).find((m) => m.subject === subject),
      );
      const trace = splitTrace(await tern.mailboxCat('rcpt@example.test', entry.id));
      assert.equal(trace.returnPath, 'sw@example.test');
      assert.match(trace.received, /\bwith ESMTPSA id /);
      const ok = await tern.waitForLog(
        `${mech} success`,
        (l) => l.event === 'smtp.auth.succeeded' && l['mechanism'] === mech,
      );
      assert.equal(ok['user'], 'sw@example.test');
    });
  }

  test('a wrong password: 535 5.7.8 and swaks exits with its AUTH error (28)', async () => {
    const r = await swaks(tern.ports.submissions, [
      '--tlsc',
      '--auth',
      'PLAIN',
      '--auth-user',
      'sw@example.test',
      '--auth-password',
      'wrong',
      '--from',
      'sw@example.test',
      '--to',
      'rcpt@example.test',
    ]);
    assert.equal(r.code, 28, r.stdout + r.stderr);
    assert.match(r.stdout, /<~\* {1,2}535 5\.7\.8 Authentication credentials invalid/);
  });

  test('--auth without TLS on submission: no AUTH is offered, swaks gives up before MAIL', async () => {
    const r = await swaks(tern.ports.submission, [
      '--auth',
      'PLAIN',
      '--auth-user',
      'sw@example.test',
      '--auth-password',
      'swaks pass',
      '--from',
      'sw@example.test',
      '--to',
      'rcpt@example.test',
    ]);
    assert.equal(r.code, 28, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout, /-> AUTH /);
    assert.doesNotMatch(r.stdout, /-> MAIL FROM/);
    assert.match(r.stdout, /250-STARTTLS/);
    assert.doesNotMatch(r.stdout, /250[- ]AUTH/);
  });
});
