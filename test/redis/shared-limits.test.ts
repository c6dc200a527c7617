// The limits several nodes share through Redis (policy/shared-limits.ts) against the real Redis every
// machine here runs (127.0.0.1:6379; TERN_TEST_REDIS_URL overrides), each test under its own key prefix:
// AUTH failures on two "nodes" add up to one lockout seen by both, an account sprayed from many addresses
// is locked, hourly sending counts are one for the cluster, and with Redis gone each node falls back to
// its own counting (never to no limit), logging the outage once.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import type { LogFields, Logger } from '../../src/core/ports.ts';
import { openRedis, redisReady } from '../../src/net/redis.ts';
import { SharedAuthLimits, SharedConnectionCounts, SharedSendRates } from '../../src/policy/shared-limits.ts';

const URL = process.env['TERN_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

function recordingLogger(): Logger & { lines: { event: string; fields: LogFields }[] } {
  const lines: { event: string; fields: LogFields }[] = [];
  const log = (event: string, fields: LogFields = {}): void => void lines.push({ event, fields });
  const logger = {
    lines,
    trace: log,
    debug: log,
    info: log,
    event: log,
    warn: log,
    error: log,
    child: () => logger,
  };
  return logger;
}

async function redisSkip(): Promise<string | false> {
  const r = openRedis(URL);
  r.on('error', () => undefined);
  try {
    return (await redisReady(r, 3000)) ? false : `Redis is not reachable at ${URL}`;
  } finally {
    r.disconnect();
  }
}

const skip = await redisSkip();

describe('limits shared through Redis', { skip }, () => {
  let redis: Redis;
  let now = Date.UTC(2026, 11, 7, 12);
  const clock = { nowMs: () => now };
  const options = { lockoutThreshold: 3, lockoutWindowMs: 600_000, lockoutMs: 900_000 };
  const prefix = (): string => `tern-test:${randomBytes(4).toString('hex')}:`;
  before(async () => {
    redis = openRedis(URL);
    assert.ok(await redisReady(redis, 3000));
  });
  after(() => redis?.disconnect());

  test('failures on two nodes add up to one lockout, seen by both', async () => {
    const p = prefix();
    const a = new SharedAuthLimits(options, { redis, clock, logger: recordingLogger(), prefix: p });
    const b = new SharedAuthLimits(options, { redis, clock, logger: recordingLogger(), prefix: p });
    assert.deepEqual(await a.recordFailure('192.0.2.7', 'alice@example.test'), { locked: false });
    assert.deepEqual(await b.recordFailure('192.0.2.7', 'alice@example.test'), { locked: false });
    const third = await a.recordFailure('192.0.2.7', 'alice@example.test');
    assert.equal(third.locked, true);
    const seen = await b.check('192.0.2.7', null);
    assert.equal(seen.locked, true);
    assert.ok(seen.locked && seen.by === 'ip' && seen.untilMs > now);
    assert.equal((await b.check('198.51.100.1', null)).locked, false, 'another address is not locked');
  });

  test('an account sprayed from many addresses is locked for all of them (jürgen@ twin)', async () => {
    const p = prefix();
    const nodes = [0, 1, 2].map(
      () => new SharedAuthLimits(options, { redis, clock, logger: recordingLogger(), prefix: p }),
    );
    for (let i = 0; i < 3; i++) await nodes[i]!.recordFailure(`203.0.113.${i + 1}`, 'jürgen@example.test');
    const s = await nodes[0]!.check('203.0.113.99', 'jürgen@example.test');
    assert.ok(s.locked && s.by === 'account');
  });

  test('a success clears the address’s failures, not a lock in force', async () => {
    const p = prefix();
    const a = new SharedAuthLimits(options, { redis, clock, logger: recordingLogger(), prefix: p });
    await a.recordFailure('192.0.2.8', null);
    await a.recordFailure('192.0.2.8', null);
    await a.recordSuccess('192.0.2.8');
    assert.deepEqual(await a.recordFailure('192.0.2.8', null), { locked: false }, 'the count started again');
  });

  test('hourly sending counts are the cluster’s; an hour later they are gone', async () => {
    const p = prefix();
    const a = new SharedSendRates({ redis, clock, logger: recordingLogger(), prefix: p });
    const b = new SharedSendRates({ redis, clock, logger: recordingLogger(), prefix: p });
    const limits = { maxMessages: 3, maxRecipients: 100 };
    await a.record('日本@example.test', 10);
    await b.record('日本@example.test', 10);
    assert.equal(await a.allows('日本@example.test', limits, { messages: 1, recipients: 1 }), true);
    await b.record('日本@example.test', 10);
    assert.equal(await a.allows('日本@example.test', limits, { messages: 1, recipients: 1 }), false);
    assert.equal(
      await b.allows(
        '日本@example.test',
        { maxMessages: 0, maxRecipients: 30 },
        { messages: 0, recipients: 1 },
      ),
      false,
    );
    now += 3_600_000 + 120_000;
    assert.equal(await a.allows('日本@example.test', limits, { messages: 1, recipients: 1 }), true);
  });

  test('Redis gone: each node counts alone (never no limit), the outage logged once', async () => {
    const dead = openRedis('redis://127.0.0.1:1');
    dead.on('error', () => undefined);
    const logger = recordingLogger();
    const a = new SharedAuthLimits(options, { redis: dead, clock, logger, prefix: prefix() });
    for (let i = 0; i < 2; i++) assert.equal((await a.recordFailure('192.0.2.9', null)).locked, false);
    assert.equal((await a.recordFailure('192.0.2.9', null)).locked, true, 'the local guard locked it');
    assert.equal((await a.check('192.0.2.9', null)).locked, true);
    assert.equal(logger.lines.filter((l) => l.event === 'redis.unavailable').length, 1);
    const rates = new SharedSendRates({ redis: dead, clock, logger, prefix: prefix() });
    await rates.record('u@example.test', 5);
    assert.equal(
      await rates.allows(
        'u@example.test',
        { maxMessages: 1, maxRecipients: 0 },
        { messages: 1, recipients: 0 },
      ),
      false,
    );
    dead.disconnect();
  });

  test('connections per client address are counted across nodes; a release frees a place', async () => {
    const p = prefix();
    const a = new SharedConnectionCounts({ redis, clock, logger: recordingLogger(), prefix: p });
    const b = new SharedConnectionCounts({ redis, clock, logger: recordingLogger(), prefix: p });
    assert.equal(await a.acquire('2001:db8::1', 2, 'a1'), true);
    assert.equal(await b.acquire('2001:db8::1', 2, 'b1'), true);
    assert.equal(await a.acquire('2001:db8::1', 2, 'a2'), false);
    assert.equal(await b.acquire('192.0.2.1', 2, 'b2'), true, 'another address has its own count');
    await b.release('2001:db8::1', 'b1');
    assert.equal(await a.acquire('2001:db8::1', 2, 'a3'), true);
    // A node that died stops renewing: its entries run out (90 s) and free their places.
    now += 91_000;
    assert.equal(await b.acquire('2001:db8::1', 1, 'b3'), true);
  });
});
