import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Events } from '../core/events.ts';
import type { Observed } from '../core/observe.ts';
import type { QueueStats } from '../queue/queue.ts';
import { ServerMetrics } from './metrics.ts';

const T0 = Date.UTC(2026, 11, 7, 10, 0, 0);

function metrics(stats: QueueStats | null = null): { m: ServerMetrics; clock: { now: number } } {
  const clock = { now: T0 };
  const m = new ServerMetrics({
    queueStats: () => Promise.resolve(stats),
    connectionsByService: () => new Map([['smtp', 3]]),
    nowMs: () => clock.now,
  });
  return { m, clock };
}

const ev = (event: string, fields: Observed['fields'], atMs = T0): Observed => ({ event, atMs, fields });

function sample(text: string, line: string): number | null {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? null : Number(found.slice(line.length + 1));
}

test('each observed record counts where it belongs', async () => {
  const { m } = metrics({
    messages: 2,
    held: 1,
    recipients: { queued: 1, deferred: 2, delivered: 0, bounced: 0 },
    pendingByAge: { '5m': 1, '1h': 1, '1d': 0, older: 0 },
    oldestPendingMs: T0 - 120_000,
  });
  m.observe(ev(Events.smtpConnect, { service: 'smtp' }));
  m.observe(ev(Events.imapConnect, { service: 'imaps' }));
  m.observe(ev(Events.smtpQueued, { queueId: 'Q1', user: null, sizeBytes: 100, queued: 1 }));
  m.observe(ev(Events.smtpQueued, { queueId: 'Q2', user: 'jürgen@example.org', sizeBytes: 50, queued: 1 }));
  m.observe(ev(Events.smtpRcptRejected, { code: 550 }));
  m.observe(
    ev(
      Events.deliveryRemote,
      { queueId: 'Q1', recipients: ['日本@example.jp delivered', 'x@example.jp temporary'] },
      T0 + 2000,
    ),
  );
  m.observe(ev(Events.deliveryDeferred, { queueId: 'Q1', rcpt: 'x@example.jp' }));
  m.observe(ev(Events.deliveryLocal, { queueId: 'Q3', stage: 'accept' }));
  m.observe(ev(Events.dsnQueued, { kind: 'failure' }));
  m.observe(ev(Events.smtpAuthFailed, { mechanism: 'PLAIN' }));
  m.observe(ev(Events.smtpAuthSucceeded, { mechanism: 'SCRAM-SHA-256' }));
  m.observe(ev(Events.tlsHandshake, { version: 'TLSv1.3' }));
  m.observe(
    ev(Events.smtpAuthChecks, {
      spf: 'pass',
      dkim: ['fail:example.net'],
      dmarc: 'fail:example.net:reject',
      arc: null,
    }),
  );
  m.observeFsync({ seconds: 0.002, commits: 3 });
  const text = await m.text();
  assert.equal(sample(text, 'tern_connections_total{service="smtp"}'), 1);
  assert.equal(sample(text, 'tern_connections_total{service="imaps"}'), 1);
  assert.equal(sample(text, 'tern_connections_open{service="smtp"}'), 3);
  assert.equal(sample(text, 'tern_messages_received_total{via="inbound"}'), 1);
  assert.equal(sample(text, 'tern_messages_received_total{via="submission"}'), 1);
  assert.equal(sample(text, 'tern_received_bytes_total'), 150);
  assert.equal(sample(text, 'tern_transactions_refused_total{stage="rcpt",code="550"}'), 1);
  assert.equal(sample(text, 'tern_delivery_attempts_total{result="delivered",domain="example.jp"}'), 1);
  assert.equal(sample(text, 'tern_delivery_attempts_total{result="deferred",domain="example.jp"}'), 1);
  assert.equal(sample(text, 'tern_delivery_attempts_total{result="delivered",domain="local"}'), 1);
  assert.equal(sample(text, 'tern_delivery_latency_seconds_count{kind="remote"}'), 1);
  assert.equal(sample(text, 'tern_delivery_latency_seconds_sum{kind="remote"}'), 2);
  assert.equal(sample(text, 'tern_delivery_latency_seconds_count{kind="local"}'), 1);
  assert.equal(sample(text, 'tern_dsn_total{kind="failure"}'), 1);
  assert.equal(sample(text, 'tern_auth_total{result="failure",mechanism="PLAIN"}'), 1);
  assert.equal(sample(text, 'tern_auth_total{result="success",mechanism="SCRAM-SHA-256"}'), 1);
  assert.equal(sample(text, 'tern_tls_handshakes_total{version="TLSv1.3"}'), 1);
  assert.equal(sample(text, 'tern_authchecks_total{check="spf",result="pass"}'), 1);
  assert.equal(sample(text, 'tern_authchecks_total{check="dkim",result="fail"}'), 1);
  assert.equal(sample(text, 'tern_authchecks_total{check="dmarc",result="fail"}'), 1);
  assert.equal(sample(text, 'tern_fsync_seconds_count'), 1);
  assert.equal(sample(text, 'tern_queue_messages{state="held"}'), 1);
  assert.equal(sample(text, 'tern_queue_recipients{status="deferred"}'), 2);
  assert.equal(sample(text, 'tern_queue_pending_messages{age="1h"}'), 1);
  assert.equal(sample(text, 'tern_queue_oldest_pending_seconds'), 120);
  assert.ok(sample(text, 'nodejs_eventloop_lag_seconds') !== null);
});

test('label sets stay bounded: unknown values become "other", domains past the first 100 too', async () => {
  const { m } = metrics();
  for (let i = 0; i < 150; i++) m.observe(ev(Events.deliveryDeferred, { rcpt: `u@d${i}.example` }));
  m.observe(ev(Events.smtpConnect, { service: 'bogus"\n' }));
  m.observe(ev(Events.smtpAuthFailed, { mechanism: 'X-EVIL' }));
  m.observe(ev(Events.tlsHandshake, { version: 'SSLv2' }));
  m.observe(ev(Events.dsnQueued, { kind: 'Evil Kind!' }));
  const text = await m.text();
  const domains = text.split('\n').filter((l) => l.startsWith('tern_delivery_attempts_total{'));
  assert.equal(domains.length, 101);
  assert.equal(sample(text, 'tern_delivery_attempts_total{result="deferred",domain="other"}'), 50);
  assert.equal(sample(text, 'tern_connections_total{service="other"}'), 1);
  assert.equal(sample(text, 'tern_auth_total{result="failure",mechanism="other"}'), 1);
  assert.equal(sample(text, 'tern_tls_handshakes_total{version="other"}'), 1);
  assert.equal(sample(text, 'tern_dsn_total{kind="other"}'), 1);
  assert.equal(sample(text, 'tern_queue_messages{state="all"}'), null, 'no queue: no queue samples');
});

test('the per-minute series: minutes in order, a late record counted in its own minute, an hour kept', () => {
  const { m } = metrics();
  m.observe(ev(Events.smtpQueued, { queueId: 'a' }, T0 + 5_000));
  m.observe(ev(Events.smtpQueued, { queueId: 'b' }, T0 + 65_000));
  m.observe(ev(Events.deliveryLocal, { stage: 'accept' }, T0 + 30_000));
  m.observe(ev(Events.smtpAuthFailed, {}, T0 + 70_000));
  assert.deepEqual(
    m.series().map((s) => [s.minuteMs - T0, s.received, s.delivered, s.authFailures]),
    [
      [0, 1, 1, 0],
      [60_000, 1, 0, 1],
    ],
  );
  for (let i = 2; i < 70; i++) m.observe(ev(Events.smtpQueued, { queueId: `q${i}` }, T0 + i * 60_000));
  assert.equal(m.series().length, 60);
});
