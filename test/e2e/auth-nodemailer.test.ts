// SMTP AUTH end to end with nodemailer (an independent SMTP client in JavaScript): AUTH PLAIN and AUTH
// LOGIN chosen with `authMethod`, over STARTTLS on submission (RFC 6409, RFC 3207) and over implicit TLS
// (RFC 8314); a wrong password surfaces as nodemailer's EAUTH with 535; XOAUTH2 with an HS256 JWT (RFC 7519)
// signed with [auth.oauth] hmac_secret, refused when signed with another key or made out to another user.
// Deliberately NOT here: SCRAM (nodemailer has no SCRAM), refusals and limits (auth-negative, auth-limits).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createTransport } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type { AuthTern } from './auth-helpers.ts';
import { expectRelayQueued, startAuthTern } from './auth-helpers.ts';
import { queueIdOf, splitTrace, waitFor } from './harness.ts';

const HMAC_SECRET = 'e2e-oauth-shared-secret-of-at-least-32-bytes';

/** A compact HS256 JWT (RFC 7519) for `email`, valid for five minutes. */
function jwt(claims: Record<string, unknown>, secret = HMAC_SECRET): string {
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iat: now, exp: now + 300, ...claims })}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

describe('SMTP AUTH with nodemailer', () => {
  let tern: AuthTern;
  before(async () => {
    tern = await startAuthTern({
      users: [
        { address: 'nina@example.test', password: 'nina secret' },
        { address: 'otto@example.test', password: 'otto-secret' },
        { address: 'olga@example.test' },
        { address: 'inbox@example.test' },
      ],
      auth: {
        mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'XOAUTH2'],
        lockout_threshold: 100,
      },
      oauth: { hmac_secret: HMAC_SECRET },
    });
  });
  after(() => tern?.stop());

  const transport = (
    options: SMTPTransport.Options,
  ): ReturnType<typeof createTransport<SMTPTransport.SentMessageInfo>> =>
    createTransport({
      host: '127.0.0.1',
      name: 'nodemailer.example',
      connectionTimeout: 5000,
      greetingTimeout: 5000,
      socketTimeout: 5000,
      tls: { rejectUnauthorized: false },
      ...options,
    });

  const lastSuccess = (user: string): Promise<unknown> =>
    tern
      .waitForLog(`auth success for ${user}`, (l) => l.event === 'smtp.auth.succeeded' && l['user'] === user)
      .then((l) => l['mechanism']);

  for (const [method, user, password, secure] of [
    ['PLAIN', 'nina@example.test', 'nina secret', false],
    ['LOGIN', 'otto@example.test', 'otto-secret', true],
  ] as const) {
    const where = secure ? 'submissions (implicit TLS)' : 'submission + STARTTLS';
    test(`AUTH ${method} on ${where}: a local delivery and a relayed recipient`, async () => {
      const t = transport({
        port: secure ? tern.ports.submissions : tern.ports.submission,
        secure,
        requireTLS: !secure,
        authMethod: method,
        auth: { user, pass: password },
      });
      try {
        await t.verify();
        const info = await t.sendMail({
          from: user,
          to: ['inbox@example.test', 'far@remote.test'],
          subject: `nodemailer ${method}`,
          text: `Sent with AUTH ${method}.\n`,
        });
        assert.deepEqual(info.accepted, ['inbox@example.test', 'far@remote.test']);
        assert.deepEqual(info.rejected, []);
        const queueId = queueIdOf(info.response);
        await expectRelayQueued(tern, queueId, 'far@remote.test');
      } finally {
        t.close();
      }
      assert.equal(await lastSuccess(user), method);
      const list = await waitFor('the delivered message', async () => {
        const all = await tern.mailboxList('inbox@example.test');
        return all.find((m) => m.subject === `nodemailer ${method}`);
      });
      const trace = splitTrace(await tern.mailboxCat('inbox@example.test', list.id));
      assert.equal(trace.returnPath, user);
      assert.match(trace.received, /\bwith ESMTPSA id /);
    });
  }

  test('a wrong password: EAUTH with 535 5.7.8', async () => {
    const t = transport({
      port: tern.ports.submissions,
      secure: true,
      authMethod: 'PLAIN',
      auth: { user: 'nina@example.test', pass: 'wrong' },
    });
    try {
      await assert.rejects(t.verify(), (err: Error & { code?: string; responseCode?: number }) => {
        assert.equal(err.code, 'EAUTH');
        assert.equal(err.responseCode, 535);
        assert.match(err.message, /5\.7\.8/);
        return true;
      });
    } finally {
      t.close();
    }
  });

  test('XOAUTH2 with a token signed by someone else is refused', async () => {
    const t = transport({
      port: tern.ports.submissions,
      secure: true,
      auth: {
        type: 'OAuth2',
        user: 'olga@example.test',
        accessToken: jwt({ email: 'olga@example.test' }, 'not-the-configured-secret-not-at-all'),
      },
    });
    try {
      await assert.rejects(t.verify(), (err: Error & { code?: string; responseCode?: number }) => {
        assert.equal(err.code, 'EAUTH');
        assert.equal(err.responseCode, 535);
        return true;
      });
    } finally {
      t.close();
    }
  });

  test('XOAUTH2 with a valid HS256 token logs in and sends', async () => {
    const t = transport({
      port: tern.ports.submissions,
      secure: true,
      auth: { type: 'OAuth2', user: 'olga@example.test', accessToken: jwt({ email: 'olga@example.test' }) },
    });
    try {
      const info = await t.sendMail({
        from: 'olga@example.test',
        to: 'inbox@example.test',
        subject: 'nodemailer XOAUTH2',
        text: 'Sent with a bearer token.\n',
      });
      assert.deepEqual(info.accepted, ['inbox@example.test']);
    } finally {
      t.close();
    }
    assert.equal(await lastSuccess('olga@example.test'), 'XOAUTH2');
  });

  test('XOAUTH2: a valid token for another user than the one named is refused', async () => {
    const t = transport({
      port: tern.ports.submissions,
      secure: true,
      auth: { type: 'OAuth2', user: 'olga@example.test', accessToken: jwt({ email: 'nina@example.test' }) },
    });
    try {
      await assert.rejects(t.verify(), (err: Error & { code?: string }) => err.code === 'EAUTH');
    } finally {
      t.close();
    }
  });
});
