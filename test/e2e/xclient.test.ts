// End to end: XCLIENT (Postfix's extension) over real sockets, from swaks (an independent client with
// --xclient-* options) and raw dialogues. Only clients in [smtp] xclient_from see it in EHLO or may use
// it; the client it names is what Received:, relaying and the log see; LOGIN makes the session that
// user's (its sending rules included); [UNAVAILABLE] never lends the proxy's own address.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { swaks, swaksSkipReason } from './auth-helpers.ts';
import type { Tern } from './harness.ts';
import { ehlo, RawSmtpClient, startTern } from './harness.ts';

const USERS = ['alice@example.test', 'jürgen@example.test', '日本@example.test'];

describe('XCLIENT', { skip: swaksSkipReason() }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: USERS, smtp: { xclient_from: ['127.0.0.1/32'] } });
  });
  after(() => tern?.stop());

  test('swaks names a client: its address, name and HELO are in Received:', async () => {
    const r = await swaks(tern.ports.smtp, [
      '--to',
      'alice@example.test',
      '--from',
      'someone@remote.test',
      '--xclient-addr',
      '192.0.2.7',
      '--xclient-name',
      'client.example.net',
      '--xclient-helo',
      'helo.example.net',
      '--header',
      'Subject: via xclient',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /<- {2}220 /, 'the greeting comes again after XCLIENT');
    const [m] = await tern.waitForMessages('alice@example.test', 1);
    const bytes = (await tern.mailboxCat('alice@example.test', m!.id)).toString('utf8');
    // swaks sends EHLO again after XCLIENT: the client's own HELO wins over XCLIENT's (it said it last).
    assert.match(bytes, /Received: from swaks\.example \(client\.example\.net \[192\.0\.2\.7\]\)/);
    const line = await tern.waitForLog(
      'the XCLIENT line',
      (l) => l.event === 'smtp.xclient' && l['ip'] === '192.0.2.7',
    );
    assert.equal(line['realIp'], '127.0.0.1');
  });

  test('EHLO offers XCLIENT only to xclient_from; anyone else gets 550 5.7.0', async () => {
    const trusted = await RawSmtpClient.connect(tern.ports.smtp);
    await trusted.readReply();
    assert.ok((await ehlo(trusted)).some((e) => e.startsWith('XCLIENT ') && e.includes('ADDR')));
    trusted.close();
    const other = await RawSmtpClient.connect(tern.ports.smtp, { localAddress: '127.0.0.2' });
    await other.readReply();
    assert.ok(!(await ehlo(other)).some((e) => e.startsWith('XCLIENT')));
    const r = await other.command('XCLIENT ADDR=10.1.2.3');
    assert.equal(r.code, 550);
    assert.match(r.raw, /5\.7\.0/);
    other.close();
  });

  test('LOGIN makes the session the user’s: relaying allowed, sender rules applied (jürgen@ twin)', async () => {
    const c = await RawSmtpClient.connect(tern.ports.smtp);
    await c.readReply();
    await ehlo(c);
    assert.equal((await c.command('RCPT TO:<x@elsewhere.test>')).code, 503);
    // xtext: "ü" is +C3+BC.
    const x = await c.command('XCLIENT LOGIN=j+C3+BCrgen@example.test ADDR=IPV6:2001:DB8::5');
    assert.equal(x.code, 220, x.raw);
    await ehlo(c);
    assert.equal((await c.command('MAIL FROM:<jürgen@example.test> SMTPUTF8')).code, 250);
    assert.equal(
      (await c.command('RCPT TO:<someone@elsewhere.test>')).code,
      250,
      'an authenticated user relays',
    );
    assert.equal((await c.command('RSET')).code, 250);
    const forged = await c.command('MAIL FROM:<alice@example.test>');
    assert.ok(forged.code >= 500, `a user cannot send as another: ${forged.raw}`);
    c.close();
    const line = await tern.waitForLog(
      'the XCLIENT line',
      (l) => l.event === 'smtp.xclient' && l['ip'] === '2001:db8::5',
    );
    assert.equal(line['login'], 'jürgen@example.test');
  });

  test('ADDR=[UNAVAILABLE] is no address at all: never the proxy’s own', async () => {
    const c = await RawSmtpClient.connect(tern.ports.smtp);
    await c.readReply();
    await ehlo(c);
    assert.equal((await c.command('XCLIENT ADDR=[UNAVAILABLE] NAME=[TEMPUNAVAIL]')).code, 220);
    // The log line for this session (its realIp is ours; no NAME kept).
    await tern.waitForLog('the XCLIENT line', (l) => l.event === 'smtp.xclient' && l['ip'] === '0.0.0.0');
    c.close();
  });

  test('bad attributes get 501; XCLIENT inside a transaction gets 503', async () => {
    const c = await RawSmtpClient.connect(tern.ports.smtp);
    await c.readReply();
    await ehlo(c);
    for (const bad of [
      'XCLIENT',
      'XCLIENT FOO=bar',
      'XCLIENT ADDR=not-an-ip',
      'XCLIENT PORT=99999',
      'XCLIENT NAME=a+ZZ',
    ])
      assert.equal((await c.command(bad)).code, 501, bad);
    assert.equal((await c.command('MAIL FROM:<a@remote.test>')).code, 250);
    assert.equal((await c.command('XCLIENT ADDR=192.0.2.1')).code, 503);
    c.close();
  });
});
