// End to end: MT-PRIORITY (RFC 6710), DELIVERBY (RFC 2852) and FUTURERELEASE (RFC 4865) over real
// sockets with Python's smtplib as the client and aiosmtpd (taught to offer MT-PRIORITY and DELIVERBY,
// test/e2e/py/extension_peer.py) as the next hop: what EHLO offers where, a held message kept in the
// queue until its time and then delivered (UTF-8 twin), HOLDFOR refused where it does not belong, a
// BY=…;R message to a dead destination returned at its deadline with 5.4.7, and both parameters passed
// on to a next hop that offers them (the priority only from a trusted sender).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type DnsServer } from '../support/dns-server.ts';
import type { Tern } from './harness.ts';
import { ehlo, RawSmtpClient, smtplib, startTern, waitFor } from './harness.ts';
import { closedPort, findPython, parseDsn, startPythonPeer, type ExternalPeer } from './outbound-helpers.ts';

const python = findPython('aiosmtpd');
const skip = python === null ? 'aiosmtpd is not installed (python3-aiosmtpd)' : false;
const PASSWORD = 'hold-me-please';
const USERS = ['alice@example.test', 'jürgen@example.test'];

describe('MT-PRIORITY, DELIVERBY and FUTURERELEASE', { skip }, () => {
  let dns: DnsServer;
  let peer: ExternalPeer;
  let tern: Tern;

  before(async () => {
    const port = await closedPort();
    peer = await startPythonPeer('extensions', python!, '127.0.0.1', port);
    dns = await startDnsServer({ zones: {} });
    dns.setZone('peer.test', {
      '@': [{ type: 'MX', preference: 10, exchange: 'mx.peer.test' }],
      mx: [{ type: 'A', address: '127.0.0.1' }],
    });
    // dead.test: its MX is on loopback where nothing listens (the peer's port on another address).
    dns.setZone('dead.test', {
      '@': [{ type: 'MX', preference: 10, exchange: 'mx.dead.test' }],
      mx: [{ type: 'A', address: '127.0.0.9' }],
    });
    tern = await startTern({
      users: USERS.map((address) => ({ address, password: PASSWORD })),
      tables: {
        dns: { servers: [dns.endpoint], timeout_seconds: 1, attempts: 2 },
        auth: { failure_delay_seconds: 0 },
        outbound: { port, tls: 'none', connect_timeout_seconds: 2, command_timeout_seconds: 5 },
        queue: { retry_min_seconds: 60, retry_max_seconds: 60 },
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await peer?.close();
    await dns?.close();
  });

  const submit = (from: string, to: readonly string[], mailOptions: readonly string[], subject: string) =>
    smtplib({
      port: tern.ports.submission,
      mode: 'starttls',
      login: [from, PASSWORD],
      action: 'sendmail',
      from,
      to,
      raw: `From: ${from}\r\nSubject: ${subject}\r\n\r\nbody\r\n`,
      mail_options: [
        ...mailOptions,
        ...([from, ...to].some((a) => /[^\x20-\x7e]/.test(a)) ? ['SMTPUTF8'] : []),
      ],
    });

  test('EHLO: MT-PRIORITY and DELIVERBY everywhere, FUTURERELEASE on submission only', async () => {
    const mx = await RawSmtpClient.connect(tern.ports.smtp);
    await mx.readReply();
    const mxExt = await ehlo(mx);
    mx.close();
    assert.ok(mxExt.includes('MT-PRIORITY MIXER'));
    assert.ok(mxExt.includes('DELIVERBY'));
    assert.ok(!mxExt.some((e) => e.startsWith('FUTURERELEASE')));
    const sub = await RawSmtpClient.connect(tern.ports.submission);
    await sub.readReply();
    const subExt = await ehlo(sub);
    sub.close();
    const fr = subExt.find((e) => e.startsWith('FUTURERELEASE '));
    assert.match(fr ?? '', /^FUTURERELEASE 604800 \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const latest = Date.parse(fr!.split(' ')[2]!);
    assert.ok(
      Math.abs(latest - (Date.now() + 604_800_000)) < 60_000,
      'the latest release date is a week away',
    );
  });

  for (const user of USERS) {
    test(`HOLDFOR=3: kept in the queue, then delivered (${user})`, async () => {
      const before = (await tern.storedMessages(user)).length;
      const sentAt = Date.now();
      // smtplib cannot log in with a UTF-8 name (its AUTH PLAIN encodes ASCII): alice sends to both.
      const r = await submit('alice@example.test', [user], ['HOLDFOR=3'], `held for ${user}`);
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal((await tern.storedMessages(user)).length, before, 'not delivered at once');
      const list = JSON.parse((await tern.tern(['queue', 'list', '--json'])).stdout) as {
        holdUntil?: string;
        recipients: { address: string }[];
      }[];
      const queued = list.find((m) => m.recipients.some((x) => x.address === user));
      assert.ok(queued?.holdUntil !== undefined, 'the queue shows the release time');
      await tern.waitForMessages(user, before + 1, 20_000);
      assert.ok(Date.now() - sentAt >= 3000, 'not before its time');
    });
  }

  test('HOLDFOR is refused on the MX port, past max_hold_seconds, and with BY', async () => {
    const mx = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'x@remote.test',
      to: ['alice@example.test'],
      raw: 'Subject: x\r\n\r\nx\r\n',
      mail_options: ['HOLDFOR=10'],
    });
    assert.equal(mx.ok, false);
    assert.equal(mx.code, 555);
    const long = await submit('alice@example.test', ['alice@example.test'], ['HOLDFOR=604801'], 'too long');
    assert.equal(long.code, 501);
    const both = await submit(
      'alice@example.test',
      ['alice@example.test'],
      ['HOLDFOR=10', 'BY=100;R'],
      'both',
    );
    assert.equal(both.code, 501);
  });

  test('MT-PRIORITY and BY are passed on to a next hop that offers them', async () => {
    const r = await submit('alice@example.test', ['bob@peer.test'], ['MT-PRIORITY=5', 'BY=600;NT'], 'onward');
    assert.ok(r.ok, JSON.stringify(r));
    const got = await waitFor('the peer has it', async () =>
      (await peer.messages()).find((m) => m.rcptTos.includes('bob@peer.test')),
    );
    assert.ok(got.mailArgs.includes('MT-PRIORITY=5'), JSON.stringify(got.mailArgs));
    const logged = await tern.waitForLog(
      'queued',
      (l) => l.event === 'smtp.queued' && JSON.stringify(l).includes('bob@peer.test'),
    );
    assert.equal(logged['priority'], 5, 'an authenticated sender’s priority is kept');
    const by = got.mailArgs.find((a) => a.startsWith('BY='));
    const m = /^BY=(\d+);NT$/.exec(by ?? '');
    assert.ok(m !== null && Number(m[1]) <= 600 && Number(m[1]) > 500, `BY with the time left: ${by}`);
  });

  test('an untrusted sender’s MT-PRIORITY is not honoured (RFC 6710 §5)', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'x@remote.test',
      to: ['alice@example.test'],
      raw: 'Subject: low trust\r\n\r\nx\r\n',
      mail_options: ['MT-PRIORITY=9'],
    });
    assert.ok(r.ok, JSON.stringify(r));
    const logged = await tern.waitForLog(
      'queued',
      (l) => l.event === 'smtp.queued' && JSON.stringify(l).includes('x@remote.test'),
    );
    assert.equal(logged['priority'], undefined);
  });

  test('BY=2;R to a destination that never answers: returned at the deadline with 5.4.7', async () => {
    const before = (await tern.storedMessages('alice@example.test')).length;
    const r = await submit('alice@example.test', ['carol@dead.test'], ['BY=2;R'], 'in a hurry');
    assert.ok(r.ok, JSON.stringify(r));
    const messages = await tern.waitForMessages('alice@example.test', before + 1, 30_000);
    const dsnEntry = messages.at(-1)!;
    const dsn = await parseDsn(await tern.storedMessage('alice@example.test', dsnEntry.id));
    assert.equal(dsn.reportType, 'delivery-status');
    assert.equal(dsn.perRecipient[0]?.['action'], 'failed');
    assert.equal(dsn.perRecipient[0]?.['status'], '5.4.7');
  });
});
