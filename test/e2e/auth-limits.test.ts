// Abuse limits around SMTP AUTH, end to end with Python's smtplib: per-IP and per-account lockouts
// across connections (454 4.7.0 even for the right password; other loopback addresses, 127.0.0.x, stand
// in for other clients), the growing delay before a failed AUTH is answered, and per-user hourly limits
// on messages and recipients (451 4.7.1) from [submission] and from `tern user policy`, which can also
// turn the sender check off for one user.
// Deliberately NOT here: the per-connection failure limit and single refusals (auth-negative), timing of
// unknown user versus wrong password (auth-timing).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuthClientResult, AuthTern, ScramInfo } from './auth-helpers.ts';
import {
  authClient,
  havePythonSsl,
  plainResponse,
  rawAuthed,
  rawSession,
  startAuthTern,
} from './auth-helpers.ts';

const skip = havePythonSsl() ? false : 'python3 with smtplib and ssl is not available on this machine';

function assertRan(r: AuthClientResult): void {
  assert.equal(r.ok, true, `auth_client failed: ${JSON.stringify(r)}`);
}

describe('AUTH lockouts (lockout_threshold = 3)', { skip }, () => {
  let tern: AuthTern;
  before(async () => {
    tern = await startAuthTern({
      users: [
        { address: 'alice@example.test', password: 'alice pw' },
        { address: 'bob@example.test', password: 'bob pw' },
      ],
      auth: { lockout_threshold: 3, lockout_window_seconds: 600, lockout_seconds: 600 },
    });
  });
  after(() => tern?.stop());

  /** One connection from `source` with one PLAIN attempt. */
  const attempt = async (
    source: string,
    user: string,
    password: string,
  ): Promise<readonly [number, string]> => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      source,
      steps: [['auth', 'PLAIN', user, password]],
    });
    assertRan(r);
    return [r.steps[0]![0], r.steps[0]![1]];
  };

  test('three failures from one IP (three connections, three accounts): that IP gets 454 4.7.0, even with the right password', async () => {
    for (const user of ['x1@example.test', 'x2@example.test', 'alice@example.test']) {
      assert.deepEqual(await attempt('127.0.0.2', user, 'guess'), [
        535,
        '5.7.8 Authentication credentials invalid',
      ]);
    }
    const locked = await attempt('127.0.0.2', 'alice@example.test', 'alice pw');
    assert.deepEqual(locked, [454, '4.7.0 Too many failed authentications, try again later']);
    // Another account from the same IP: the IP is what is locked.
    assert.equal((await attempt('127.0.0.2', 'bob@example.test', 'bob pw'))[0], 454);
    // alice from another address is fine: one failure for her account is below the threshold.
    assert.equal((await attempt('127.0.0.3', 'alice@example.test', 'alice pw'))[0], 235);
    const event = await tern.waitForLog(
      'the IP lockout',
      (l) => l.event === 'security.auth.locked' && l['by'] === 'ip' && l['ip'] === '127.0.0.2',
    );
    assert.equal(event['level'], 'warn');
  });

  test('three failures for one account from three IPs: the account gets 454 4.7.0 from anywhere; others are unaffected', async () => {
    for (const source of ['127.0.0.4', '127.0.0.5', '127.0.0.6']) {
      assert.equal((await attempt(source, 'bob@example.test', 'spray'))[0], 535);
    }
    const locked = await attempt('127.0.0.7', 'bob@example.test', 'bob pw');
    assert.deepEqual(locked, [454, '4.7.0 Temporary authentication failure']);
    assert.equal((await attempt('127.0.0.7', 'alice@example.test', 'alice pw'))[0], 235);
    await tern.waitForLog(
      'the account lockout',
      (l) =>
        l.event === 'security.auth.locked' && l['by'] === 'account' && l['account'] === 'bob@example.test',
    );
  });

  test('a locked account is refused for SCRAM too, before any proof: 454 4.7.0', async () => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      source: '127.0.0.8',
      steps: [['scram', 'bob@example.test', 'bob pw']],
    });
    assertRan(r);
    const info = r.steps[0]![2] as ScramInfo;
    assert.deepEqual(info.replies, [[454, '4.7.0 Temporary authentication failure']]);
  });
});

describe('growing delay and hourly limits', { skip }, () => {
  let tern: AuthTern;
  before(async () => {
    tern = await startAuthTern({
      users: [
        { address: 'alice@example.test', password: 'alice pw' },
        { address: 'bob@example.test', password: 'bob pw' },
        { address: 'carol@example.test', password: 'carol pw' },
        { address: 'box@example.test' },
      ],
      auth: { failure_delay_seconds: 0.2, max_failures_per_connection: 3, lockout_threshold: 100 },
      submission: { max_messages_per_hour: 2 },
    });
  });
  after(() => tern?.stop());

  test('each failure on a connection waits longer (0.2 s, then 0.4 s) before its 535', async () => {
    const { client } = await rawSession(tern.ports.submissions, 'tls');
    try {
      const times: number[] = [];
      for (let i = 0; i < 2; i++) {
        const started = performance.now();
        const r = await client.command(`AUTH PLAIN ${plainResponse('alice@example.test', 'wrong')}`, 10_000);
        times.push(performance.now() - started);
        assert.equal(r.code, 535);
      }
      assert.ok(times[0]! >= 190, `first failure answered after ${times[0]} ms`);
      assert.ok(times[1]! >= 390, `second failure answered after ${times[1]} ms`);
    } finally {
      client.close();
    }
  });

  test('max_messages_per_hour = 2: the third MAIL gets 451 4.7.1, on a new connection too', async () => {
    const message = (n: number): string =>
      `From: alice@example.test\r\nSubject: rate ${n}\r\n\r\nBody ${n}.\r\n`;
    const r = await authClient({
      port: tern.ports.submission,
      mode: 'starttls',
      steps: [
        ['auth', 'PLAIN', 'alice@example.test', 'alice pw'],
        ['sendmail', 'alice@example.test', ['box@example.test'], message(1)],
        ['sendmail', 'alice@example.test', ['box@example.test'], message(2)],
        ['cmd', 'MAIL FROM:<alice@example.test>'],
      ],
    });
    assertRan(r);
    assert.deepEqual(r.steps[1], [250, '', {}]);
    assert.deepEqual(r.steps[2], [250, '', {}]);
    assert.deepEqual(r.steps[3], [451, '4.7.1 Sending rate limit exceeded, try again later']);
    const again = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [
        ['auth', 'PLAIN', 'alice@example.test', 'alice pw'],
        ['cmd', 'MAIL FROM:<alice@example.test>'],
      ],
    });
    assertRan(again);
    assert.equal(again.steps[1]![0], 451);
    await tern.waitForLog('the rate event', (l) => l.event === 'security.rate.limited');
    // Another user has a budget of their own.
    const bob = await rawAuthed(tern.ports.submissions, 'tls', 'bob@example.test', 'bob pw');
    try {
      assert.equal((await bob.command('MAIL FROM:<bob@example.test>')).code, 250);
    } finally {
      bob.close();
    }
  });

  test('`tern user policy --max-recipients-per-hour 3`: the fourth recipient gets 451 4.7.1', async () => {
    const set = await tern.tern(['user', 'policy', 'carol@example.test', '--max-recipients-per-hour', '3']);
    assert.equal(set.code, 0, set.stderr);
    const client = await rawAuthed(tern.ports.submissions, 'tls', 'carol@example.test', 'carol pw');
    try {
      assert.equal((await client.command('MAIL FROM:<carol@example.test>')).code, 250);
      for (const n of [1, 2, 3]) {
        assert.equal((await client.command(`RCPT TO:<r${n}@remote.test>`)).code, 250);
      }
      const fourth = await client.command('RCPT TO:<r4@remote.test>');
      assert.equal(`${fourth.code} ${fourth.enhanced}`, '451 4.7.1', fourth.raw);
    } finally {
      client.close();
    }
  });

  test('`tern user policy --sender-check off` lets that user send as anyone; others are still checked', async () => {
    const set = await tern.tern(['user', 'policy', 'bob@example.test', '--sender-check', 'off']);
    assert.equal(set.code, 0, set.stderr);
    const bob = await rawAuthed(tern.ports.submissions, 'tls', 'bob@example.test', 'bob pw');
    try {
      assert.equal((await bob.command('MAIL FROM:<newsletter@elsewhere.test>')).code, 250);
    } finally {
      bob.close();
    }
    const carol = await rawAuthed(tern.ports.submissions, 'tls', 'carol@example.test', 'carol pw');
    try {
      assert.equal((await carol.command('MAIL FROM:<newsletter@elsewhere.test>')).code, 553);
    } finally {
      carol.close();
    }
  });
});
