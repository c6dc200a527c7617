// End to end: how outbound connections are used and where mail goes besides MX. Connection reuse as the
// receiver counts it (smtp-server's onConnect): messages sent one after another share one connection,
// messages queued at once use fewer connections than there are messages, also under a per-destination
// limit of one. A smart host ([outbound] relay = "[127.0.0.1]:PORT") takes every remote domain with no
// MX lookup (the DNS server sees none), and a [[outbound.transport]] entry sends one domain elsewhere.
// Deliberately NOT here: the pool's unit behaviour (src/delivery), TLS to relays (outbound-tls).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, Receiver } from './outbound-helpers.ts';
import { closedPort, havePython, message, startOutboundTern, startReceiver } from './outbound-helpers.ts';
import { waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const SENDER = 'alice@example.test';

function mxZone(domain: string, ip: string) {
  return {
    '@': [{ type: 'MX' as const, preference: 10, exchange: `mx.${domain}` }],
    mx: [{ type: 'A' as const, address: ip }],
  };
}

/** smtplib steps for `count` transactions in one session, one recipient each. */
function batch(domain: string, count: number, tag: string): unknown[][] {
  const steps: unknown[][] = [];
  for (let i = 0; i < count; i++) {
    const to = `${tag}${i}@${domain}`;
    steps.push(['mail', SENDER], ['rcpt', to], ['data', message(SENDER, to, `${tag} ${i}`)]);
  }
  return steps;
}

/**
 * Queue `count` messages while nothing listens on `host`:`port` (they are deferred, retry far away), then
 * start the receiver there and `tern queue flush`: all of them come due at the same moment.
 */
async function queueAtOnce(
  tern: OutboundTern,
  domain: string,
  host: string,
  port: number,
  count: number,
  tag: string,
): Promise<Receiver> {
  const r = await tern.send({ action: 'steps', steps: batch(domain, count, tag) });
  assert.equal(r.ok, true, JSON.stringify(r));
  await waitFor(`${count} messages deferred`, async () => {
    const mine = (await tern.queueList()).filter((m) => m.recipients[0]?.address.endsWith(`@${domain}`));
    return mine.length === count && mine.every((m) => m.recipients[0]?.status === 'deferred')
      ? true
      : undefined;
  });
  const rx = await startReceiver({ host, port });
  const flushed = await tern.tern(['queue', 'flush']);
  assert.equal(flushed.code, 0, flushed.stderr);
  return rx;
}

describe('connection reuse', { skip }, () => {
  let dns: DnsServer;
  let port: number;
  let tern: OutboundTern;
  const receivers: Receiver[] = [];
  before(async () => {
    port = await closedPort();
    dns = await startDnsServer({
      zones: {
        'seq.test': mxZone('seq.test', '127.0.0.51'),
        'burst.test': mxZone('burst.test', '127.0.0.52'),
      },
    });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port, connection_idle_seconds: 5 },
      queue: { retry_min_seconds: 600, retry_max_seconds: 600 },
      users: [SENDER],
    });
  });
  after(async () => {
    await tern?.stop();
    await Promise.all(receivers.map((r) => r.close()));
    await dns?.close();
  });

  test('messages one after another share one connection', async () => {
    const rx = await startReceiver({ host: '127.0.0.51', port });
    receivers.push(rx);
    for (let i = 1; i <= 3; i++) {
      const to = `seq${i}@seq.test`;
      const r = await tern.send({
        action: 'sendmail',
        from: SENDER,
        to: [to],
        raw: message(SENDER, to, `seq ${i}`),
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      await waitFor(`message ${i} delivered`, () => (rx.accepted.length >= i ? true : undefined));
    }
    assert.equal(rx.connections(), 1, 'one TCP connection for three messages');
    assert.equal(new Set(rx.accepted.map((m) => m.session)).size, 1, 'one SMTP session');
    // The receiver can hold the third message a moment before the worker logs its attempt.
    const reused = await waitFor('three delivery.remote lines', () => {
      const lines = tern.events('delivery.remote').filter((l) => l['domain'] === 'seq.test');
      return lines.length >= 3 ? lines.map((l) => l['reused']) : undefined;
    });
    assert.deepEqual(reused, [false, true, true]);
  });

  test('twelve messages queued at once: fewer connections than messages', async () => {
    const rx = await queueAtOnce(tern, 'burst.test', '127.0.0.52', port, 12, 'burst');
    receivers.push(rx);
    await waitFor('twelve deliveries', () => (rx.accepted.length >= 12 ? true : undefined), 10_000);
    await tern.waitForEmptyQueue();
    assert.equal(rx.accepted.length, 12, 'each message once');
    assert.ok(rx.connections() < 12, `${rx.connections()} connections for 12 messages`);
  });
});

describe('connection reuse under max_connections_per_destination = 1', { skip }, () => {
  test('five messages queued at once go over one connection, without waiting for the idle timeout', async () => {
    const port = await closedPort();
    const dns = await startDnsServer({ zones: { 'one.test': mxZone('one.test', '127.0.0.53') } });
    const tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port, max_connections_per_destination: 1, connection_idle_seconds: 5 },
      queue: { retry_min_seconds: 600, retry_max_seconds: 600 },
      users: [SENDER],
    });
    let rx: Receiver | null = null;
    try {
      rx = await queueAtOnce(tern, 'one.test', '127.0.0.53', port, 5, 'one');
      const started = Date.now();
      const r = rx;
      // Well under one idle timeout (5 s) for all five.
      await waitFor('five deliveries', () => (r.accepted.length >= 5 ? true : undefined), 4000);
      assert.ok(Date.now() - started < 4000);
      assert.equal(rx.connections(), 1);
    } finally {
      await tern.stop();
      await rx?.close();
      await dns.close();
    }
  });
});

describe('smart host and transport map', { skip }, () => {
  let dns: DnsServer;
  let tern: OutboundTern;
  let smart: Receiver;
  let mapped: Receiver;
  let mx: Receiver;
  before(async () => {
    smart = await startReceiver({ name: 'smarthost.test' });
    mapped = await startReceiver({ name: 'mapped.test' });
    const port = await closedPort();
    mx = await startReceiver({ host: '127.0.0.54', port });
    // by-mx.test has an MX, which a relay setting must ignore; mapped.test and the rest have no zone.
    dns = await startDnsServer({ zones: { 'by-mx.test': mxZone('by-mx.test', '127.0.0.54') } });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port, relay: `[127.0.0.1]:${smart.port}` },
      transports: [{ domain: 'mapped.test', relay: `[127.0.0.1]:${mapped.port}` }],
      users: [SENDER],
    });
  });
  after(async () => {
    await tern?.stop();
    await Promise.all([smart, mapped, mx].map((r) => r?.close()));
    await dns?.close();
  });

  test('relay = "[127.0.0.1]:PORT": every remote domain goes to the smart host, no MX lookup', async () => {
    dns.clearQueries();
    const to = ['a@by-mx.test', 'b@nowhere.test', 'c@elsewhere.example'];
    for (const rcpt of to) {
      const r = await tern.send({
        action: 'sendmail',
        from: SENDER,
        to: [rcpt],
        raw: message(SENDER, rcpt, 'via smart host'),
      });
      assert.equal(r.ok, true, JSON.stringify(r));
    }
    await waitFor('three messages at the smart host', () => (smart.accepted.length >= 3 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.deepEqual(smart.accepted.map((m) => m.rcptTo[0]?.address).sort(), [...to].sort());
    assert.equal(mx.connections(), 0, "by-mx.test's own MX is not used");
    assert.deepEqual(
      dns.queries.filter((q) => q.type === 'MX'),
      [],
      'no MX lookup with a bracketed relay',
    );
  });

  test('[[outbound.transport]] for one domain wins over relay', async () => {
    const rcpt = 'd@mapped.test';
    const before = smart.accepted.length;
    const r = await tern.send({
      action: 'sendmail',
      from: SENDER,
      to: [rcpt],
      raw: message(SENDER, rcpt, 'via transport'),
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    await waitFor('delivery through the transport', () => (mapped.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.equal(mapped.accepted[0]!.rcptTo[0]?.address, rcpt);
    assert.equal(smart.accepted.length, before, 'not through the smart host');
  });

  test('a message to both: each recipient its own next hop', async () => {
    const rcpts = ['e@mapped.test', 'f@by-mx.test'];
    const beforeSmart = smart.accepted.length;
    const beforeMapped = mapped.accepted.length;
    const r = await tern.send({
      action: 'sendmail',
      from: SENDER,
      to: rcpts,
      raw: message(SENDER, rcpts[0]!, 'split'),
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    await waitFor('both delivered', () =>
      smart.accepted.length > beforeSmart && mapped.accepted.length > beforeMapped ? true : undefined,
    );
    await tern.waitForEmptyQueue();
    assert.deepEqual(
      smart.accepted.at(-1)!.rcptTo.map((a) => a.address),
      ['f@by-mx.test'],
    );
    assert.deepEqual(
      mapped.accepted.at(-1)!.rcptTo.map((a) => a.address),
      ['e@mapped.test'],
    );
  });
});
