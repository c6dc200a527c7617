// End to end: Tern's LMTP transport delivering to a real mailbox server, a private Dovecot (its lmtp
// service on TCP and on a Unix socket). Mail for a local domain whose users live in Dovecot, and for
// another domain on the socket, goes over LMTP and lands in Dovecot's Maildirs, never in Tern's store;
// Dovecot's own refusal of one recipient (a user Tern knows and Dovecot does not) bounces that one alone.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type DnsServer } from '../support/dns-server.ts';
import { dovecotSkip, startDovecot, type Dovecot } from '../support/dovecot.ts';
import { waitFor } from './harness.ts';
import { havePython, startOutboundTern, type OutboundTern } from './outbound-helpers.ts';

const skip = havePython() ? dovecotSkip('lmtp') : 'python3 is not available';

describe('LMTP transport to Dovecot', { skip }, () => {
  let dovecot: Dovecot;
  let dns: DnsServer;
  let tern: OutboundTern;

  before(async () => {
    dovecot = await startDovecot({
      protocols: ['lmtp'],
      users: { 'alice@example.test': 'pw', 'jürgen@example.test': 'pw', 'bob@other.test': 'pw' },
    });
    dns = await startDnsServer({ zones: {} });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      users: ['alice@example.test', 'jürgen@example.test', 'ghost@example.test'],
      transports: [
        { domain: 'example.test', transport: `lmtp:[127.0.0.1]:${dovecot.lmtpPort}` },
        { domain: 'other.test', transport: `lmtp:unix:${dovecot.lmtpPath}` },
      ],
      queue: { retry_min_seconds: 600, retry_max_seconds: 600 },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
    await dovecot?.stop();
  });

  test('a local domain served by Dovecot: delivered over LMTP on TCP, nothing in our store', async () => {
    const r = await tern.send({
      action: 'sendmail',
      from: 'carol@remote.test',
      to: ['alice@example.test'],
      raw: 'From: carol@remote.test\r\nSubject: to dovecot\r\n\r\nhello over LMTP\r\n',
    });
    assert.ok(r.ok, JSON.stringify(r));
    const [stored] = await waitFor('the message in Dovecot', async () => {
      const m = await dovecot.messages('alice@example.test');
      return m.length > 0 ? m : undefined;
    });
    const text = stored!.toString('utf8');
    assert.match(text, /Subject: to dovecot/);
    assert.match(text, /hello over LMTP/);
    assert.match(text, /by mx\.example\.test \(Tern\)/, 'our Received: is there');
    assert.equal((await tern.storedMessages('alice@example.test')).length, 0);
    await tern.waitForEmptyQueue();
    const done = tern.events('delivery.remote').at(-1);
    assert.ok(done !== undefined, 'logged as a remote delivery');
  });

  test('the UTF-8 twin: Dovecot 2.3 LMTP offers no SMTPUTF8, so jürgen@ is bounced 5.6.7, not mangled', async () => {
    const r = await tern.send({
      action: 'sendmail',
      from: 'carol@remote.test',
      to: ['jürgen@example.test'],
      raw: 'From: carol@remote.test\r\nSubject: =?UTF-8?Q?f=C3=BCr_j=C3=BCrgen?=\r\n\r\nhallo\r\n',
      mail_options: ['SMTPUTF8'],
    });
    assert.ok(r.ok, JSON.stringify(r));
    const bounced = await waitFor('jürgen bounced', () =>
      tern.events('delivery.bounced').find((l) => JSON.stringify(l).includes('jürgen@example.test')),
    );
    // RFC 6531 §3.5: a non-ASCII address cannot be downgraded; the next hop's lack of SMTPUTF8 is final.
    assert.match(JSON.stringify(bounced), /5\.6\.7/);
    assert.equal((await dovecot.messages('jürgen@example.test')).length, 0);
  });

  test('another domain on the Unix socket; a recipient Dovecot refuses is bounced alone', async () => {
    const r = await tern.send({
      action: 'sendmail',
      from: 'carol@remote.test',
      to: ['bob@other.test', 'ghost@example.test', 'alice@example.test'],
      raw: 'From: carol@remote.test\r\nSubject: mixed\r\n\r\nthree recipients\r\n',
    });
    assert.ok(r.ok, JSON.stringify(r));
    await waitFor('bob has it in Dovecot', async () => {
      const m = await dovecot.messages('bob@other.test');
      return m.some((b) => b.includes('Subject: mixed')) ? true : undefined;
    });
    await waitFor('alice has it', async () => {
      const m = await dovecot.messages('alice@example.test');
      return m.some((b) => b.includes('Subject: mixed')) ? true : undefined;
    });
    const ghost = await waitFor('ghost bounced', () =>
      tern.events('delivery.bounced').find((l) => JSON.stringify(l).includes('ghost@example.test')),
    );
    assert.match(JSON.stringify(ghost), /55\d/);
  });
});
