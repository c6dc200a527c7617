// Greylisting over SMTP (RFC 6647, issue 17): a client that retries after the delay is let through
// and its message stored; one that retries too soon is deferred again; one that never retries leaves
// nothing behind. delay_seconds is 1 here so that a test can wait it out.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import { message, startAuthTern, startZones, transact } from './authchecks-helpers.ts';

const RCPT = 'rcpt@example.test';
const UTF8_RCPT = '日本@example.test';

describe('greylisting over SMTP', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones({});
    tern = await startAuthTern(dns, {
      users: [RCPT, UTF8_RCPT],
      tables: { 'filters.greylist': { delay_seconds: 1, auto_allow_after: 0 } },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  const send = (from: string, to: string, localAddress: string, subject: string) =>
    transact({
      port: tern.ports.smtp,
      localAddress,
      helo: 'client.example.net',
      from,
      to,
      ...(/[^\x00-\x7f]/.test(from + to) ? { mailParams: 'SMTPUTF8' } : {}),
      message: Buffer.from(message({ from, to, subject }).toString('latin1'), 'latin1'),
    });

  for (const [label, from, to, ip] of [
    ['ASCII', 'sender@example.net', RCPT, '127.0.0.21'],
    ['UTF-8', 'jürgen@example.net', UTF8_RCPT, '127.0.1.21'],
  ] as const) {
    test(`${label}: deferred at RCPT, deferred again too soon, accepted after the delay`, async () => {
      const first = await send(from, to, ip, `greylisted ${label}`);
      assert.equal(first.rcpt?.code, 451, JSON.stringify(first));
      assert.match(first.rcpt?.text ?? '', /^4\.7\.1 Greylisted, please try again in \d+ seconds/);
      const soon = await send(from, to, ip, `greylisted ${label}`);
      assert.equal(soon.rcpt?.code, 451, JSON.stringify(soon));
      await new Promise((r) => setTimeout(r, 1200));
      const retried = await send(from, to, ip, `greylisted ${label}`);
      assert.equal(retried.data?.code, 250, JSON.stringify(retried));
      assert.equal(
        (await tern.messagesIn(to, 'INBOX')).filter((m) => m.subject === `greylisted ${label}`).length,
        1,
      );
      // Known from now on: no delay for the next message of the same triplet.
      const next = await send(from, to, ip, `again ${label}`);
      assert.equal(next.data?.code, 250, JSON.stringify(next));
    });
  }

  test('a client that never retries leaves nothing stored; another sender from the same network is greylisted on its own', async () => {
    const once = await send('bulk@spam.example', RCPT, '127.0.2.21', 'never retried');
    assert.equal(once.rcpt?.code, 451);
    const other = await send('other@example.net', RCPT, '127.0.2.22', 'other sender');
    assert.equal(other.rcpt?.code, 451, 'a triplet of its own');
    assert.equal(
      (await tern.messagesIn(RCPT, 'INBOX')).filter((m) => m.subject === 'never retried').length,
      0,
    );
    const line = await tern.waitForLog(
      'the greylist verdict',
      (l) => l['event'] === 'smtp.filter' && l['filter'] === 'greylist' && l['verdict'] === 'defer',
    );
    assert.match(String(line['reason']), /greylisted/);
  });
});
