// End to end: temporary failures over time (RFC 5321 §4.5.4.1, RFC 3464). A receiver that answers 451 at
// RCPT or after DATA once, then 250: the message is retried on the [queue] schedule (1 s, then 2 s here)
// and arrives exactly once; a receiver that keeps answering 451: one delay warning (Action: delayed,
// Will-Retry-Until) after delay_warning_seconds and no second one; and with a short lifetime the message
// bounces with status 4.4.7 and the receiver's last reply as the diagnostic. DSNs are read with Python's
// email package.
// Deliberately NOT here: routing (outbound-mx), permanent failures (outbound-dsn).

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, ParsedDsn, Receiver } from './outbound-helpers.ts';
import { havePython, message, parseDsn, startOutboundTern, startReceiver } from './outbound-helpers.ts';
import { waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const SENDER = 'alice@example.test';

/** A zone whose MX is 127.0.0.1 (receivers listen on their own ephemeral port, [outbound] port). */
function zoneFor(dns: DnsServer, domain: string): void {
  dns.setZone(domain, {
    '@': [{ type: 'MX', preference: 10, exchange: `mx.${domain}` }],
    mx: [{ type: 'A', address: '127.0.0.1' }],
  });
}

async function dsnsFor(tern: OutboundTern, address: string, skipFirst: number): Promise<ParsedDsn[]> {
  const list = (await tern.storedMessages(address)).slice(skipFirst);
  return Promise.all(list.map(async (m) => parseDsn(await tern.storedMessage(address, m.id))));
}

describe('temporary failure, then success', { skip }, () => {
  let dns: DnsServer;
  let rx: Receiver;
  let tern: OutboundTern;
  before(async () => {
    dns = await startDnsServer({ zones: {} });
    zoneFor(dns, 'later.test');
    rx = await startReceiver({
      // The first RCPT of rcpt-451@ and the first DATA of a "retry at DATA" message get 451.
      onRcpt: (address, n) =>
        address.startsWith('rcpt-451@') && n === 1
          ? { code: 451, text: '4.2.1 Greylisted, come back' }
          : undefined,
      onData: (m) => {
        const text = m.data.toString();
        if (!text.includes('Subject: retry at DATA')) return undefined;
        const earlier = rx.dataSeen.filter((x) => x.data.toString().includes('Subject: retry at DATA'));
        return earlier.length === 1 ? { code: 451, text: '4.3.0 Temporary local problem' } : undefined;
      },
    });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port: rx.port },
      // The retry comes retry_min_seconds after the deferral (a timer, not the poll): long enough for the
      // test to see the deferred state through `tern queue list` on a busy machine (3 s was seen to be
      // too short when each `tern` process took over a second to start).
      queue: { retry_min_seconds: 8, retry_max_seconds: 9 },
      users: [SENDER],
    });
  });
  after(async () => {
    await tern?.stop();
    await rx?.close();
    await dns?.close();
  });

  test('451 at RCPT the first time: retried, delivered once, queue drained', async () => {
    const to = 'rcpt-451@later.test';
    const r = await tern.send({
      action: 'sendmail',
      from: SENDER,
      to: [to],
      raw: message(SENDER, to, 'retry at RCPT'),
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    // The first attempt is deferred and visible as such, with the receiver's reply.
    const deferred = await waitFor('the first attempt deferred', async () => {
      const m = (await tern.queueList()).find((q) => q.recipients.some((x) => x.address === to));
      const rc = m?.recipients.find((x) => x.address === to);
      return rc?.status === 'deferred' ? rc : undefined;
    });
    assert.match(deferred.lastReply ?? '', /^451 4\.2\.1 /);
    assert.equal(deferred.attempts, 1);
    await waitFor(
      'delivery on the retry',
      () => (rx.accepted.some((m) => m.rcptTo.some((a) => a.address === to)) ? true : undefined),
      15_000,
    );
    await tern.waitForEmptyQueue(5000);
    await sleep(1500); // a second copy would come on the next retry
    assert.equal(rx.accepted.filter((m) => m.rcptTo.some((a) => a.address === to)).length, 1);
    assert.equal(rx.rcpts.filter((a) => a === to).length, 2, 'one refused RCPT, one accepted');
  });

  test('451 after DATA the first time: retried, delivered once, queue drained', async () => {
    const to = 'data-451@later.test';
    const r = await tern.send({
      action: 'sendmail',
      from: SENDER,
      to: [to],
      raw: message(SENDER, to, 'retry at DATA'),
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    await waitFor(
      'delivery on the retry',
      () => (rx.accepted.some((m) => m.rcptTo.some((a) => a.address === to)) ? true : undefined),
      15_000,
    );
    await tern.waitForEmptyQueue(5000);
    await sleep(1500);
    const seen = rx.dataSeen.filter((m) => m.rcptTo.some((a) => a.address === to));
    assert.equal(seen.length, 2, 'refused once after DATA, then accepted');
    assert.equal(rx.accepted.filter((m) => m.rcptTo.some((a) => a.address === to)).length, 1);
    // No DSN for a message that was delivered in the end (no NOTIFY asked, no delay warning due).
    assert.equal((await tern.storedMessages(SENDER)).length, 0);
  });
});

describe('a receiver that keeps answering 451', { skip }, () => {
  let dns: DnsServer;
  let rx: Receiver;
  before(async () => {
    dns = await startDnsServer({ zones: {} });
    zoneFor(dns, 'stuck.test');
    rx = await startReceiver({ onRcpt: () => ({ code: 451, text: '4.7.1 Still greylisted' }) });
  });
  after(async () => {
    await rx?.close();
    await dns?.close();
  });

  test('one delay warning after delay_warning_seconds, not more', async () => {
    const tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port: rx.port },
      queue: { retry_min_seconds: 1, retry_max_seconds: 1, delay_warning_seconds: 2, lifetime_seconds: 3600 },
      users: [SENDER],
    });
    try {
      const to = 'slow@stuck.test';
      const r = await tern.send({
        action: 'sendmail',
        from: SENDER,
        to: [to],
        raw: message(SENDER, to, 'delayed'),
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      // Retries every second on their own; the warning is due 2 s after arrival.
      await tern.waitForMessages(SENDER, 1, 10_000);
      // Several more attempts after the warning, none of which may warn again.
      const attemptsThen = rx.rcpts.length;
      await waitFor(
        'three more attempts',
        () => (rx.rcpts.length >= attemptsThen + 3 ? true : undefined),
        10_000,
      );
      const dsns = await dsnsFor(tern, SENDER, 0);
      assert.equal(dsns.length, 1, 'exactly one delay warning');
      const dsn = dsns[0]!;
      assert.equal(dsn.contentType, 'multipart/report');
      assert.equal(dsn.reportType, 'delivery-status');
      const rc = dsn.perRecipient[0]!;
      assert.equal(rc['action'], 'delayed');
      assert.match(rc['status'] ?? '', /^4\./);
      const until = rc['will-retry-until'];
      assert.ok(until, `Will-Retry-Until present: ${JSON.stringify(rc)}`);
      assert.ok(!Number.isNaN(Date.parse(until)), 'Will-Retry-Until is a date');
      // Arrival plus the queue lifetime (3600 s), give or take the seconds this test took.
      const leftSeconds = (Date.parse(until) - Date.now()) / 1000;
      assert.ok(leftSeconds > 3500 && leftSeconds <= 3600, `Will-Retry-Until ${until} is the lifetime's end`);
      assert.match(rc['diagnostic-code'] ?? '', /^smtp;\s*451 4\.7\.1 Still greylisted/i);
      // Still queued, marked as warned.
      const [queued] = await tern.queueList();
      assert.equal(queued?.recipients[0]?.status, 'deferred');
      assert.equal(queued?.recipients[0]?.delayWarned, true);
    } finally {
      await tern.stop();
    }
  });

  test('lifetime over: bounced with status 4.4.7 and the last reply', async () => {
    const tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port: rx.port },
      queue: { retry_min_seconds: 1, retry_max_seconds: 1, delay_warning_seconds: 0, lifetime_seconds: 3 },
      users: [SENDER],
    });
    try {
      const to = 'never@stuck.test';
      const r = await tern.send({
        action: 'sendmail',
        from: SENDER,
        to: [to],
        raw: message(SENDER, to, 'expires'),
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      await tern.waitForMessages(SENDER, 1, 10_000);
      await tern.waitForEmptyQueue(5000);
      const dsns = await dsnsFor(tern, SENDER, 0);
      assert.equal(dsns.length, 1, 'one failure DSN and no delay warning (delay_warning_seconds = 0)');
      const rc = dsns[0]!.perRecipient[0]!;
      assert.equal(rc['action'], 'failed');
      assert.equal(rc['status'], '4.4.7');
      assert.match(rc['final-recipient'] ?? '', /never@stuck\.test/);
      assert.match(rc['remote-mta'] ?? '', /^dns;\s*mx\.stuck\.test/i);
      assert.match(rc['diagnostic-code'] ?? '', /^smtp;\s*451 4\.7\.1 Still greylisted/i);
      assert.ok(rx.rcpts.filter((a) => a === to).length >= 2, 'retried before giving up');
    } finally {
      await tern.stop();
    }
  });
});
