// End to end: MX routing of remote mail (RFC 5321 §5.1), with a test DNS server on loopback and
// nodemailer's smtp-server as the receiving MTAs. Preference order (lowest first, whatever the zone's
// order), fallback to the next MX when the preferred one refuses the connection, greets with 421 or 554,
// or has no address; the implicit MX (the domain's A record) when there is no MX; an MX reachable over
// IPv6 only; a null MX (RFC 7505) and a domain that does not exist bounced at once with a DSN the sender
// gets (checked with Python's email package); SERVFAIL deferred, not bounced; and delivery on port 25.
// Deliberately NOT here: retries over time (outbound-retry), DSN contents in depth (outbound-dsn).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, Receiver } from './outbound-helpers.ts';
import {
  canBindPort25,
  closedPort,
  havePython,
  headerValue,
  message,
  parseDsn,
  startOutboundTern,
  startReceiver,
} from './outbound-helpers.ts';
import { waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const SENDER = 'alice@example.test';

describe('MX routing', { skip }, () => {
  let dns: DnsServer;
  let tern: OutboundTern;
  /** Every receiver listens on this port, each on its own 127.0.0.x address. */
  let port: number;
  const receivers: Receiver[] = [];
  const receiver = async (
    host: string,
    opts: Parameters<typeof startReceiver>[0] = {},
  ): Promise<Receiver> => {
    const r = await startReceiver({ ...opts, host, port });
    receivers.push(r);
    return r;
  };

  before(async () => {
    dns = await startDnsServer({ zones: {} });
    port = await closedPort();
    tern = await startOutboundTern({ dns: dns.endpoint, outbound: { port }, users: [SENDER] });
  });
  after(async () => {
    await tern?.stop();
    await Promise.all(receivers.map((r) => r.close()));
    await dns?.close();
  });

  const send = async (to: string, subject: string): Promise<void> => {
    const r = await tern.send({
      action: 'sendmail',
      from: SENDER,
      to: [to],
      raw: message(SENDER, to, subject),
    });
    assert.equal(r.ok, true, `submission failed: ${JSON.stringify(r)}`);
  };

  test('the lowest preference wins, whatever order the zone lists them in', async () => {
    dns.setZone('order.test', {
      '@': [
        { type: 'MX', preference: 20, exchange: 'mx-b.order.test' },
        { type: 'MX', preference: 10, exchange: 'mx-a.order.test' },
      ],
      'mx-a': [{ type: 'A', address: '127.0.0.21' }],
      'mx-b': [{ type: 'A', address: '127.0.0.22' }],
    });
    const preferred = await receiver('127.0.0.21');
    const backup = await receiver('127.0.0.22');
    await send('dora@order.test', 'preference order');
    await waitFor('delivery to the preferred MX', () => (preferred.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.equal(preferred.accepted.length, 1);
    assert.equal(backup.connections(), 0, 'the backup MX was not needed');
    assert.deepEqual(
      preferred.accepted[0]!.rcptTo.map((a) => a.address),
      ['dora@order.test'],
    );
    assert.equal(preferred.accepted[0]!.mailFrom.address, SENDER);
  });

  test('the preferred MX refuses connections: delivered through the second', async () => {
    dns.setZone('refuse.test', {
      '@': [
        { type: 'MX', preference: 10, exchange: 'mx1.refuse.test' },
        { type: 'MX', preference: 20, exchange: 'mx2.refuse.test' },
      ],
      // Nothing listens on 127.0.0.23: the connection is refused.
      mx1: [{ type: 'A', address: '127.0.0.23' }],
      mx2: [{ type: 'A', address: '127.0.0.24' }],
    });
    const second = await receiver('127.0.0.24');
    await send('erin@refuse.test', 'first MX closed');
    await waitFor('delivery through the second MX', () => (second.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.equal(second.accepted.length, 1);
    assert.ok(second.accepted[0]!.data.toString().includes('Subject: first MX closed'));
    const names = dns.queries.map((q) => `${q.type} ${q.name.toLowerCase()}`);
    assert.ok(names.includes('MX refuse.test'), `MX asked: ${names.join(', ')}`);
  });

  test('the preferred MX greets with 421: delivered through the second', async () => {
    dns.setZone('busy.test', {
      '@': [
        { type: 'MX', preference: 5, exchange: 'mx1.busy.test' },
        { type: 'MX', preference: 50, exchange: 'mx2.busy.test' },
      ],
      mx1: [{ type: 'A', address: '127.0.0.25' }],
      mx2: [{ type: 'A', address: '127.0.0.26' }],
    });
    const busy = await receiver('127.0.0.25', {
      greeting: { code: 421, text: '4.3.2 Too busy, try another MX' },
    });
    const second = await receiver('127.0.0.26');
    await send('finn@busy.test', 'first MX busy');
    await waitFor('delivery through the second MX', () => (second.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.ok(busy.connections() >= 1, 'the preferred MX was tried first');
    assert.equal(busy.accepted.length, 0);
    assert.equal(second.accepted.length, 1);
  });

  test('no MX record: the domain A record is the mail exchanger', async () => {
    dns.setZone('bare.test', { '@': [{ type: 'A', address: '127.0.0.27' }] });
    const host = await receiver('127.0.0.27');
    await send('gus@bare.test', 'implicit MX');
    await waitFor('delivery to the A record', () => (host.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.equal(host.accepted.length, 1);
    const asked = dns.queries.filter((q) => q.name.toLowerCase() === 'bare.test').map((q) => q.type);
    assert.ok(asked.includes('MX'), `asked for bare.test: ${asked.join(', ')}`);
    assert.ok(asked.includes('A'), `asked for bare.test: ${asked.join(', ')}`);
  });

  test('null MX: bounced at once, the sender gets a 5.1.10 DSN', async () => {
    dns.setZone('nomail.test', {
      '@': [
        { type: 'MX', preference: 0, exchange: '.' },
        // An A record too: a null MX must win over the implicit MX.
        { type: 'A', address: '127.0.0.28' },
      ],
    });
    const trap = await receiver('127.0.0.28');
    const before = (await tern.storedMessages(SENDER)).length;
    await send('hana@nomail.test', 'to a null MX');
    const [dsnSummary] = (await tern.waitForMessages(SENDER, before + 1)).slice(before);
    await tern.waitForEmptyQueue();
    assert.equal(trap.connections(), 0, 'no connection to a domain that accepts no mail');
    const raw = await tern.storedMessage(SENDER, dsnSummary!.id);
    assert.equal(headerValue(raw, 'Return-Path'), '<>', 'a DSN comes from the null sender');
    const dsn = await parseDsn(raw);
    assert.equal(dsn.contentType, 'multipart/report');
    assert.equal(dsn.reportType, 'delivery-status');
    assert.equal(dsn.parts[1], 'message/delivery-status');
    assert.deepEqual(dsn.defects, []);
    assert.equal(dsn.perRecipient.length, 1);
    const r = dsn.perRecipient[0]!;
    assert.equal(r['action'], 'failed');
    assert.equal(r['status'], '5.1.10');
    assert.match(r['final-recipient'] ?? '', /^rfc822;\s*hana@nomail\.test$/i);
    assert.match(dsn.perMessage['reporting-mta'] ?? '', /^dns;\s*mx\.example\.test$/i);
  });

  test('the preferred MX greets with 554: skipped, delivered through the second', async () => {
    dns.setZone('refusing.test', {
      '@': [
        { type: 'MX', preference: 10, exchange: 'mx1.refusing.test' },
        { type: 'MX', preference: 20, exchange: 'mx2.refusing.test' },
      ],
      mx1: [{ type: 'A', address: '127.0.0.29' }],
      mx2: [{ type: 'A', address: '127.0.0.30' }],
    });
    const refusing = await receiver('127.0.0.29', { greeting: { code: 554, text: '5.7.1 No service here' } });
    const second = await receiver('127.0.0.30');
    await send('ida@refusing.test', 'first MX 554');
    await waitFor('delivery through the second MX', () => (second.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.ok(refusing.connections() >= 1);
    assert.equal(second.accepted.length, 1);
  });

  test('the preferred MX name does not resolve: the next MX is used', async () => {
    dns.setZone('dangling.test', {
      '@': [
        { type: 'MX', preference: 10, exchange: 'gone.dangling.test' },
        { type: 'MX', preference: 20, exchange: 'mx2.dangling.test' },
      ],
      mx2: [{ type: 'A', address: '127.0.0.32' }],
    });
    const second = await receiver('127.0.0.32');
    await send('jo@dangling.test', 'first MX dangling');
    await waitFor('delivery through the second MX', () => (second.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.equal(second.accepted.length, 1);
  });

  test('an MX with only an IPv6 address: delivered over ::1', async () => {
    dns.setZone('six.test', {
      '@': [{ type: 'MX', preference: 10, exchange: 'mx.six.test' }],
      mx: [{ type: 'AAAA', address: '::1' }],
    });
    const v6 = await receiver('::1');
    await send('kai@six.test', 'over IPv6');
    await waitFor('delivery over IPv6', () => (v6.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.equal(v6.accepted[0]!.remoteAddress, '::1');
  });

  test('a domain that does not exist: bounced at once with 5.1.2', async () => {
    dns.setZone('dns.test', { '@': [{ type: 'A', address: '127.0.0.33' }] });
    const before = (await tern.storedMessages(SENDER)).length;
    await send('lou@nothere.dns.test', 'to no domain');
    const list = await tern.waitForMessages(SENDER, before + 1);
    await tern.waitForEmptyQueue();
    const dsn = await parseDsn(await tern.storedMessage(SENDER, list[before]!.id));
    assert.equal(dsn.perRecipient[0]!['action'], 'failed');
    assert.equal(dsn.perRecipient[0]!['status'], '5.1.2');
  });

  test('SERVFAIL on the MX lookup: deferred with 4.4.3, not bounced', async () => {
    dns.setZone('flaky.test', { '@': 'servfail' });
    const before = (await tern.storedMessages(SENDER)).length;
    const to = 'max@flaky.test';
    await send(to, 'dns trouble');
    const queued = await waitFor('the recipient deferred', async () => {
      const m = (await tern.queueList()).find((q) => q.recipients.some((r) => r.address === to));
      return m?.recipients[0]?.status === 'deferred' ? m : undefined;
    });
    assert.match(queued.recipients[0]!.lastReply ?? '', /^4\d\d 4\.4\.3 /);
    assert.equal((await tern.storedMessages(SENDER)).length, before, 'no DSN for a temporary failure');
    // Out of the way of the other tests, which wait for an empty queue.
    assert.equal((await tern.tern(['queue', 'delete', queued.id])).code, 0);
  });
});

// A receiver on the real SMTP port: Tern's default [outbound] port 25, nothing overridden.
const PORT25_HOST = '127.0.0.77';

describe('MX delivery on port 25', async () => {
  const bindable = await canBindPort25(PORT25_HOST);
  const skip25 = bindable ? false : `cannot bind ${PORT25_HOST}:25 here (needs root, or the port is taken)`;

  test('delivered to 127.0.0.77:25 with the default outbound port', { skip: skip25 }, async () => {
    const dns = await startDnsServer({
      zones: {
        'port25.test': {
          '@': [{ type: 'MX', preference: 10, exchange: 'mx.port25.test' }],
          mx: [{ type: 'A', address: PORT25_HOST }],
        },
      },
    });
    const rx = await startReceiver({ host: PORT25_HOST, port: 25 });
    const tern = await startOutboundTern({ dns: dns.endpoint, users: [SENDER] });
    try {
      const r = await tern.send({
        action: 'sendmail',
        from: SENDER,
        to: ['ivy@port25.test'],
        raw: message(SENDER, 'ivy@port25.test', 'port 25'),
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      await waitFor('delivery on port 25', () => (rx.accepted.length > 0 ? true : undefined));
      await tern.waitForEmptyQueue();
      assert.equal(rx.accepted.length, 1);
      assert.deepEqual(
        rx.accepted[0]!.rcptTo.map((a) => a.address),
        ['ivy@port25.test'],
      );
    } finally {
      await tern.stop();
      await rx.close();
      await dns.close();
    }
  });
});
