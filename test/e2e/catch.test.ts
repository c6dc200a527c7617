// End to end: catcher mode (`tern serve --catch`, docs/catch.md). An application's mail library
// (nodemailer, logging in with whatever credentials it has) and Python's smtplib (no login, port 25)
// send to local, remote and UTF-8 addresses; every copy is kept in a mailbox per original recipient
// (`tern mailbox list ADDRESS --json`, the admin API), nothing reaches the relay, and a kept message is
// released for real on request (CLI and API) to an independent SMTP server (aiosmtpd).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { AdminClient, addAdmin, newToken, startAdminTern } from './admin-helpers.ts';
import type { Tern } from './harness.ts';
import { smtplib, waitFor } from './harness.ts';
import { closedPort, findPython, startPythonPeer, type ExternalPeer } from './outbound-helpers.ts';

const python = findPython('aiosmtpd');

describe('catcher mode', { skip: python === null && 'aiosmtpd is not installed' }, () => {
  let peer: ExternalPeer;
  let tern: Tern;
  let admin: AdminClient;

  before(async () => {
    const port = await closedPort();
    peer = await startPythonPeer('aiosmtpd', python!, '127.0.0.1', port);
    tern = await startAdminTern({
      catchMode: 'flag',
      tables: {
        outbound: { relay: `[127.0.0.1]:${port}`, tls: 'none', connect_timeout_seconds: 2 },
        queue: { retry_min_seconds: 600 },
      },
    });
    await addAdmin(tern, 'ops', 'catch-admin-pw');
    admin = new AdminClient(tern.ports.admin!);
    admin.token = await newToken(tern, 'ops');
  });
  after(async () => {
    await tern?.stop();
    await peer?.close();
  });

  test('nodemailer with any login: each recipient (remote, UTF-8, Bcc) gets its own kept copy', async () => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: tern.ports.submission,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'my-app', pass: 'whatever' },
    });
    const info = await transport.sendMail({
      from: 'app@shop.example',
      to: 'bob@remote.test',
      cc: '日本@例え.jp',
      bcc: 'jürgen@example.test',
      subject: 'Your order 42',
      text: 'Thanks for your order.',
    });
    transport.close();
    assert.deepEqual(info.rejected, []);
    for (const rcpt of ['bob@remote.test', '日本@例え.jp', 'jürgen@example.test']) {
      const [m] = await waitFor(`the copy for ${rcpt}`, async () => {
        const r = await tern.tern(['mailbox', 'list', rcpt, '--json']);
        if (r.code !== 0) return undefined;
        const list = JSON.parse(r.stdout) as { subject: string }[];
        return list.length > 0 ? list : undefined;
      });
      assert.equal(m!.subject, 'Your order 42');
    }
    const bcc = (await tern.mailboxCat('jürgen@example.test', '1')).toString('utf8');
    assert.doesNotMatch(bcc, /^Bcc:/im, 'no Bcc: field in what was kept');
    assert.match(bcc, /^Return-Path: <app@shop\.example>\r\nDelivered-To: jürgen@example\.test\r\n/);
  });

  test('port 25 without a login, to any address; nothing reaches the relay', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'cron@build.example',
      to: ['nobody@nowhere.invalid'],
      raw: 'From: cron@build.example\r\nSubject: nightly build\r\n\r\nok\r\n',
    });
    assert.ok(r.ok, JSON.stringify(r));
    await waitFor('kept', async () => {
      const r2 = await tern.tern(['mailbox', 'list', 'nobody@nowhere.invalid', '--json']);
      return r2.code === 0 && (JSON.parse(r2.stdout) as unknown[]).length === 1 ? true : undefined;
    });
    const queue = JSON.parse((await tern.tern(['queue', 'list', '--json'])).stdout) as unknown[];
    assert.deepEqual(queue, []);
    assert.equal((await peer.messages()).length, 0, 'the relay saw nothing');
    assert.equal(tern.logs().filter((l) => String(l.event).startsWith('delivery.remote')).length, 0);
  });

  test('the admin API lists the recipients with kept mail', async () => {
    const r = await admin.get('/api/catch/recipients');
    assert.equal(r.status, 200, r.text);
    const body = r.json as { catch: boolean; recipients: { user: string; messages: number }[] };
    assert.equal(body.catch, true);
    const users = body.recipients.map((x) => x.user);
    for (const u of ['bob@remote.test', '日本@例え.jp', 'nobody@nowhere.invalid'])
      assert.ok(users.includes(u), u);
  });

  test('released with the CLI to another address: delivered for real, from the original sender', async () => {
    const r = await tern.tern([
      'mailbox',
      'release',
      'bob@remote.test',
      '1',
      '--to',
      'carol@elsewhere.test',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const released = JSON.parse(r.stdout) as { queueId: string; sender: string; recipients: string[] };
    assert.equal(released.sender, 'app@shop.example');
    assert.deepEqual(released.recipients, ['carol@elsewhere.test']);
    const got = await waitFor('the relay has it', async () =>
      (await peer.messages()).find((m) => m.rcptTos.includes('carol@elsewhere.test')),
    );
    assert.equal(got.mailFrom, 'app@shop.example');
    const text = got.data.toString('utf8');
    assert.match(text, /Subject: Your order 42/);
    assert.doesNotMatch(text, /^Delivered-To:/m, 'the kept copy’s trace fields are not sent on');
  });

  test('released through the admin API to its own recipient', async () => {
    const r = await admin.post('/api/mailboxes/nobody@nowhere.invalid/message/release', { id: '1' });
    assert.equal(r.status, 200, r.text);
    await waitFor('the relay has it', async () =>
      (await peer.messages()).find((m) => m.rcptTos.includes('nobody@nowhere.invalid')),
    );
    const missing = await admin.post('/api/mailboxes/nobody@nowhere.invalid/message/release', { id: '99' });
    assert.equal(missing.status, 404);
  });
});
