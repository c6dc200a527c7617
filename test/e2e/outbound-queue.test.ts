// End to end: the outbound queue across a restart and under the operator's hand. Ten messages deferred
// while the receiver is down survive SIGTERM and are all delivered, once each, when Tern starts again on
// the same data directory with the receiver up; a SIGKILL while a delivery waits for its final reply loses
// nothing (the message goes again after the restart: at most one duplicate); and the `tern queue` commands steer a running server
// (Postfix's postsuper/postqueue): hold keeps a message from delivery even through a flush, release +
// flush deliver it within seconds, bounce sends the sender a failure DSN, delete removes it silently.
// Deliberately NOT here: CLI output formats (src/cli tests), retry timing (outbound-retry).

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, QueuedJson, Receiver } from './outbound-helpers.ts';
import {
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

function mxZone(domain: string, ip: string) {
  return {
    '@': [{ type: 'MX' as const, preference: 10, exchange: `mx.${domain}` }],
    mx: [{ type: 'A' as const, address: ip }],
  };
}

async function sendOne(tern: OutboundTern, to: string, subject: string): Promise<void> {
  const r = await tern.send({
    action: 'sendmail',
    from: SENDER,
    to: [to],
    raw: message(SENDER, to, subject),
  });
  assert.equal(r.ok, true, `submission failed: ${JSON.stringify(r)}`);
}

/** The queued message for `to`, once its recipient is deferred. */
function deferredMessage(tern: OutboundTern, to: string): Promise<QueuedJson> {
  return waitFor(`the message to ${to} deferred`, async () => {
    const m = (await tern.queueList()).find((q) => q.recipients.some((r) => r.address === to));
    return m?.recipients.every((r) => r.status === 'deferred') ? m : undefined;
  });
}

describe('restart with a full queue', { skip }, () => {
  test('ten deferred messages survive SIGTERM and are delivered once each after the restart', async () => {
    const port = await closedPort();
    const dns = await startDnsServer({ zones: { 'restart.test': mxZone('restart.test', '127.0.0.61') } });
    const tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port },
      queue: { retry_min_seconds: 1, retry_max_seconds: 1 },
      users: [SENDER],
    });
    let rx: Receiver | null = null;
    try {
      const steps: unknown[][] = [];
      const rcpts: string[] = [];
      for (let i = 0; i < 10; i++) {
        const to = `r${i}@restart.test`;
        rcpts.push(to);
        steps.push(['mail', SENDER], ['rcpt', to], ['data', message(SENDER, to, `restart ${i}`)]);
      }
      const r = await tern.send({ action: 'steps', steps });
      assert.equal(r.ok, true, JSON.stringify(r));
      await waitFor('ten messages deferred', async () => {
        const list = await tern.queueList();
        return list.length === 10 && list.every((m) => m.recipients[0]?.status === 'deferred')
          ? true
          : undefined;
      });
      const exit = await tern.kill('SIGTERM');
      assert.equal(exit.code, 0, `clean exit: ${JSON.stringify(exit)}`);
      // The queue is on disk, readable by the CLI with the server down.
      assert.equal((await tern.queueList()).length, 10);

      rx = await startReceiver({ host: '127.0.0.61', port });
      // Past every recipient's next attempt (retry 1 s), so the restart alone makes them due.
      await sleep(1200);
      await tern.restart();
      const got = rx;
      await waitFor('ten deliveries', () => (got.accepted.length >= 10 ? true : undefined), 10_000);
      await tern.waitForEmptyQueue();
      await sleep(500);
      const delivered = rx.accepted.flatMap((m) => m.rcptTo.map((a) => a.address)).sort();
      assert.deepEqual(delivered, [...rcpts].sort(), 'each of the ten exactly once');
      assert.equal((await tern.storedMessages(SENDER)).length, 0, 'no DSN');
    } finally {
      await tern.stop();
      await rx?.close();
      await dns.close();
    }
  });
});

describe('a crash during delivery', { skip }, () => {
  test('SIGKILL while the receiver holds the final reply: delivered after the restart, at most twice', async () => {
    const port = await closedPort();
    const dns = await startDnsServer({ zones: { 'crash.test': mxZone('crash.test', '127.0.0.64') } });
    // The first DATA is answered only after 20 s: Tern is killed while it waits.
    let first = true;
    const rx = await startReceiver({
      host: '127.0.0.64',
      port,
      dataReplyDelayMs: () => (first ? ((first = false), 20_000) : 0),
    });
    const tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port },
      queue: { retry_min_seconds: 1, retry_max_seconds: 1 },
      users: [SENDER],
    });
    try {
      const to = 'kim@crash.test';
      await sendOne(tern, to, 'in flight at the crash');
      await waitFor('the data at the receiver', () => (rx.dataSeen.length > 0 ? true : undefined));
      const exit = await tern.kill('SIGKILL');
      assert.equal(exit.signal, 'SIGKILL');
      const [queued] = await tern.queueList();
      assert.equal(queued?.recipients[0]?.address, to, 'the recipient is still queued after the crash');
      await sleep(1200);
      await tern.restart();
      await waitFor('delivery after the restart', () => (rx.accepted.length > 0 ? true : undefined), 10_000);
      await tern.waitForEmptyQueue();
      assert.ok(rx.accepted.length <= 2, `at most the one in flight again: ${rx.accepted.length}`);
    } finally {
      await tern.stop();
      await rx.close();
      await dns.close();
    }
  });
});

describe('steering the queue from the CLI', { skip }, () => {
  let dns: DnsServer;
  let port: number;
  let tern: OutboundTern;
  let rx: Receiver | null = null;
  before(async () => {
    port = await closedPort();
    dns = await startDnsServer({
      zones: {
        // Nothing ever listens for down.test; later.test's receiver starts during the hold test.
        'down.test': mxZone('down.test', '127.0.0.62'),
        'later.test': mxZone('later.test', '127.0.0.63'),
      },
    });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port },
      // Deferred mail waits: only the operator's commands move it.
      queue: { retry_min_seconds: 600, retry_max_seconds: 600 },
      users: [SENDER],
    });
  });
  after(async () => {
    await tern?.stop();
    await rx?.close();
    await dns?.close();
  });

  const cli = async (...args: string[]): Promise<string> => {
    const r = await tern.tern(args);
    assert.equal(r.code, 0, `tern ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  test('hold keeps a message through a flush; release + flush deliver it within seconds', async () => {
    const to = 'held@later.test';
    await sendOne(tern, to, 'held message');
    const { id } = await deferredMessage(tern, to);
    assert.match(await cli('queue', 'hold', id), /held/);
    rx = await startReceiver({ host: '127.0.0.63', port });
    await cli('queue', 'flush');
    await sleep(2500); // the running server notices queue changes within about a second
    assert.equal(rx.connections(), 0, 'a held message is not delivered');
    const held = (await tern.queueList()).find((m) => m.id === id);
    assert.equal(held?.held, true);

    await cli('queue', 'release', id);
    await cli('queue', 'flush', id);
    const got = rx;
    await waitFor('delivery after release', () => (got.accepted.length > 0 ? true : undefined), 5000);
    await waitFor('the message gone from the queue', async () =>
      (await tern.queueList()).some((m) => m.id === id) ? undefined : true,
    );
    assert.equal(rx.accepted[0]!.rcptTo[0]?.address, to);
  });

  test('bounce: the sender gets a failure DSN, the message leaves the queue', async () => {
    const to = 'bounced@down.test';
    const before = (await tern.storedMessages(SENDER)).length;
    await sendOne(tern, to, 'bounced by the operator');
    const { id } = await deferredMessage(tern, to);
    await cli('queue', 'bounce', id);
    const list = await tern.waitForMessages(SENDER, before + 1, 5000);
    await waitFor('the message gone from the queue', async () =>
      (await tern.queueList()).some((m) => m.id === id) ? undefined : true,
    );
    const raw = await tern.storedMessage(SENDER, list[before]!.id);
    assert.equal(headerValue(raw, 'Return-Path'), '<>');
    const dsn = await parseDsn(raw);
    assert.equal(dsn.contentType, 'multipart/report');
    assert.equal(dsn.reportType, 'delivery-status');
    const rc = dsn.perRecipient[0]!;
    assert.equal(rc['action'], 'failed');
    assert.match(rc['status'] ?? '', /^5\./);
    assert.match(rc['final-recipient'] ?? '', /bounced@down\.test/);
    assert.equal(dsn.original?.headers['subject'], 'bounced by the operator');
  });

  test('delete: gone from the queue, and nobody is told', async () => {
    const to = 'deleted@down.test';
    const before = (await tern.storedMessages(SENDER)).length;
    await sendOne(tern, to, 'deleted by the operator');
    const { id } = await deferredMessage(tern, to);
    assert.match(await cli('queue', 'delete', id), /deleted/);
    assert.ok(!(await tern.queueList()).some((m) => m.id === id), 'gone at once');
    await sleep(2000); // time for a DSN, were one (wrongly) sent
    assert.equal((await tern.storedMessages(SENDER)).length, before, 'no DSN for a deleted message');
    const again = await tern.tern(['queue', 'show', id]);
    assert.notEqual(again.code, 0, 'queue show knows it no more');
  });
});
