// SMTP AUTH end to end with Python's smtplib (an independent client): login() after STARTTLS on the
// submission listener (RFC 6409, RFC 3207) and on implicit-TLS submissions (RFC 8314), the mechanism
// smtplib picks from the EHLO AUTH line (RFC 4954 §3), LOGIN asked for by name, a wrong password, then
// mail from the authenticated user: relayed to a remote domain (queued, see `tern queue list --json`) and
// delivered to a local user with "ESMTPSA" in Received (RFC 3848).
// Deliberately NOT here: SCRAM (auth-scram), refusals and limits (auth-negative, auth-limits).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuthClientResult, AuthTern } from './auth-helpers.ts';
import { authClient, expectRelayQueued, havePythonSsl, startAuthTern } from './auth-helpers.ts';
import { splitTrace, waitFor } from './harness.ts';

const skip = havePythonSsl() ? false : 'python3 with smtplib and ssl is not available on this machine';

function message(from: string, to: string, subject: string): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\n` +
      `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.test>\r\n` +
      `\r\nHello from smtplib.\r\n`,
  );
}

function assertOk(r: AuthClientResult): void {
  assert.equal(r.ok, true, `auth_client failed: ${JSON.stringify(r)}`);
}

describe('SMTP AUTH with smtplib', { skip }, () => {
  let tern: AuthTern;
  before(async () => {
    tern = await startAuthTern({
      users: [
        { address: 'alice@example.test', password: 'alice pass 1' },
        { address: 'sam@example.test', password: 'sam-pass-2' },
        { address: 'lena@example.test', password: 'lena:pass:3' },
        { address: 'bob@example.test' },
      ],
    });
  });
  after(() => tern?.stop());

  /** The mechanism the server logged for this user's successful AUTH. */
  const mechanismOf = async (user: string): Promise<unknown> =>
    (
      await tern.waitForLog(
        `auth succeeded for ${user}`,
        (l) => l.event === 'smtp.auth.succeeded' && l['user'] === user,
      )
    )['mechanism'];

  test('submission + STARTTLS: login() picks PLAIN; relay to a remote domain is queued, local mail delivered', async () => {
    const raw = message('alice@example.test', 'dave@remote.test', 'starttls login');
    const r = await authClient({
      port: tern.ports.submission,
      mode: 'starttls',
      steps: [
        ['login', 'alice@example.test', 'alice pass 1'],
        ['sendmail', 'alice@example.test', ['dave@remote.test', 'bob@example.test'], raw],
      ],
    });
    assertOk(r);
    assert.equal(r.tls, 'TLSv1.3');
    // After STARTTLS the AUTH line lists what smtplib chose from (no EXTERNAL: no client certificates).
    assert.equal(r.features['auth'], 'SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN');
    assert.deepEqual(r.steps[0], [235, '2.7.0 Authentication successful']);
    assert.deepEqual(r.steps[1], [250, '', {}]);
    assert.equal(await mechanismOf('alice@example.test'), 'PLAIN');

    // Relayed because authenticated: the remote recipient was queued; the local one is delivered.
    const queued = await tern.waitForLog(
      "alice's message queued",
      (l) => l.event === 'smtp.queued' && l['sender'] === 'alice@example.test',
    );
    assert.equal(queued['recipients'], 2);
    await expectRelayQueued(tern, String(queued['queueId']), 'dave@remote.test');

    const [stored] = await tern.waitForMessages('bob@example.test', 1);
    const trace = splitTrace(await tern.mailboxCat('bob@example.test', stored!.id));
    assert.equal(trace.returnPath, 'alice@example.test');
    // RFC 3848: ESMTPSA = ESMTP with STARTTLS and AUTH.
    assert.match(trace.received, /\bwith ESMTPSA id /);
    assert.ok(trace.rest.toString('utf8').includes('Subject: starttls login\r\n'));
  });

  test('submissions (implicit TLS, SMTP_SSL): login() and a local delivery', async () => {
    const raw = message('sam@example.test', 'bob@example.test', 'ssl login');
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [
        ['login', 'sam@example.test', 'sam-pass-2'],
        ['sendmail', 'sam@example.test', ['bob@example.test'], raw],
      ],
    });
    assertOk(r);
    assert.equal(r.tls, 'TLSv1.3');
    assert.equal(r.features['auth'], 'SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN');
    assert.equal(r.steps[0]![0], 235);
    assert.deepEqual(r.steps[1], [250, '', {}]);
    assert.equal(await mechanismOf('sam@example.test'), 'PLAIN');
    const list = await waitFor('the ssl message', async () => {
      const all = await tern.mailboxList('bob@example.test');
      return all.some((m) => m.subject === 'ssl login') ? all : undefined;
    });
    const entry = list.find((m) => m.subject === 'ssl login')!;
    assert.equal(entry.from, 'sam@example.test');
    const trace = splitTrace(await tern.mailboxCat('bob@example.test', entry.id));
    assert.match(trace.received, /\bwith ESMTPSA id /);
  });

  test('LOGIN by name (smtplib auth_login, a password with colons)', async () => {
    const r = await authClient({
      port: tern.ports.submission,
      mode: 'starttls',
      steps: [
        ['auth', 'LOGIN', 'lena@example.test', 'lena:pass:3'],
        ['mail', 'lena@example.test'],
      ],
    });
    assertOk(r);
    assert.deepEqual(r.steps[0], [235, '2.7.0 Authentication successful']);
    assert.equal(r.steps[1]![0], 250);
    assert.equal(await mechanismOf('lena@example.test'), 'LOGIN');
  });

  test('a user name in another case logs in as the same account', async () => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [
        ['auth', 'PLAIN', 'Alice@Example.TEST', 'alice pass 1'],
        ['mail', 'alice@example.test'],
      ],
    });
    assertOk(r);
    assert.equal(r.steps[0]![0], 235);
    assert.equal(r.steps[1]![0], 250);
  });

  test('a wrong password: login() tries PLAIN then LOGIN, both 535 5.7.8, and MAIL is still refused', async () => {
    const before = tern.events('security.auth.failed').length;
    const r = await authClient({
      port: tern.ports.submission,
      mode: 'starttls',
      steps: [
        ['login', 'alice@example.test', 'not the password'],
        ['cmd', 'MAIL FROM:<alice@example.test>'],
      ],
    });
    assertOk(r);
    assert.deepEqual(r.steps[0], [535, '5.7.8 Authentication credentials invalid']);
    assert.deepEqual(r.steps[1], [530, '5.7.0 Authentication required']);
    const failures = await waitFor('two failures logged', () => {
      const f = tern.events('security.auth.failed').slice(before);
      return f.length >= 2 ? f : undefined;
    });
    assert.deepEqual(
      failures.map((f) => f['mechanism']),
      ['PLAIN', 'LOGIN'],
    );
    // The log names the account and the reason; the client saw one generic text.
    assert.equal(failures[0]!['account'], 'alice@example.test');
  });

  test('a user without a password cannot log in (same reply as a wrong password)', async () => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [['auth', 'PLAIN', 'bob@example.test', 'anything']],
    });
    assertOk(r);
    assert.deepEqual(r.steps[0], [535, '5.7.8 Authentication credentials invalid']);
  });
});
