import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_QUEUE } from '../config/config.ts';
import { expired, giveUpAtMs, needsDelayWarning, nextAttemptMs, RETRY_JITTER } from './schedule.ts';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const HOUR = 3_600_000;
const cfg = DEFAULT_QUEUE;
const middle = (): number => 0.5;

test('without jitter: 300 s after the first failure, doubling, capped at 4000 s', () => {
  const delays = [1, 2, 3, 4, 5, 6, 20, 1000].map((n) => nextAttemptMs(n, NOW, cfg, middle) - NOW);
  assert.deepEqual(
    delays,
    [300_000, 600_000, 1_200_000, 2_400_000, 4_000_000, 4_000_000, 4_000_000, 4_000_000],
  );
});

test('jitter is ±10 % of the delay; the extremes of random give the extremes of the range', () => {
  assert.equal(nextAttemptMs(1, NOW, cfg, () => 0) - NOW, 270_000);
  assert.equal(nextAttemptMs(1, NOW, cfg, () => 0.999_999_999) - NOW, 330_000);
  assert.equal(nextAttemptMs(2, NOW, cfg, () => 0.25) - NOW, 570_000);
  // At the cap the jitter only shortens: never longer than retryMaxMs.
  assert.equal(nextAttemptMs(9, NOW, cfg, () => 0) - NOW, 3_600_000);
  assert.equal(nextAttemptMs(9, NOW, cfg, () => 0.99) - NOW, 4_000_000);
});

test('odd inputs: zero or negative attempts count as the first failure, NaN as very many', () => {
  assert.equal(nextAttemptMs(0, NOW, cfg, middle) - NOW, 300_000);
  assert.equal(nextAttemptMs(-3, NOW, cfg, middle) - NOW, 300_000);
  assert.equal(nextAttemptMs(Number.NaN, NOW, cfg, middle) - NOW, 4_000_000);
  // A minimum above the maximum: the first delay is the minimum, nothing throws.
  assert.equal(nextAttemptMs(1, NOW, { retryMinMs: 10_000, retryMaxMs: 5_000 }, middle) - NOW, 10_000);
  assert.equal(nextAttemptMs(1, NOW, { retryMinMs: 10_000, retryMaxMs: 5_000 }, () => 0) - NOW, 9_000);
});

test('property: the delay stays within jitter of min(min·2^(n-1), max) and never above max', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 200 }),
      fc.integer({ min: 1, max: 10_000_000 }),
      fc.integer({ min: 1, max: 100_000_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempts, minMs, extraMs, r) => {
        const c = { retryMinMs: minMs, retryMaxMs: minMs + extraMs };
        const delay = nextAttemptMs(attempts, NOW, c, () => r) - NOW;
        const base = Math.min(minMs * 2 ** Math.min(attempts - 1, 30), c.retryMaxMs);
        assert.ok(Number.isInteger(delay));
        assert.ok(delay <= c.retryMaxMs, `${delay} > ${c.retryMaxMs}`);
        assert.ok(delay >= Math.floor(base * (1 - RETRY_JITTER)), `${delay} < ${base} - 10 %`);
        assert.ok(delay <= Math.ceil(base * (1 + RETRY_JITTER)));
      },
    ),
  );
});

test('property: more failures never mean an earlier retry (same random)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 0.999, noNaN: true }), (n, r) => {
      assert.ok(nextAttemptMs(n + 1, NOW, cfg, () => r) >= nextAttemptMs(n, NOW, cfg, () => r));
    }),
  );
});

test('expired: at exactly the lifetime and after, not before', () => {
  const arrival = NOW - 5 * 24 * HOUR;
  assert.equal(expired(arrival + 1, NOW, cfg), false);
  assert.equal(expired(arrival, NOW, cfg), true);
  assert.equal(expired(arrival - 1, NOW, cfg), true);
  assert.equal(giveUpAtMs(NOW, cfg), NOW + 5 * 24 * HOUR);
});

test('needsDelayWarning: after delayWarningMs, once, off when 0, never once expired', () => {
  assert.equal(needsDelayWarning(NOW - 4 * HOUR + 1, NOW, false, cfg), false);
  assert.equal(needsDelayWarning(NOW - 4 * HOUR, NOW, false, cfg), true);
  assert.equal(needsDelayWarning(NOW - 4 * HOUR, NOW, true, cfg), false);
  assert.equal(needsDelayWarning(NOW - 100 * HOUR, NOW, false, { ...cfg, delayWarningMs: 0 }), false);
  assert.equal(needsDelayWarning(NOW - 5 * 24 * HOUR, NOW, false, cfg), false);
  assert.equal(needsDelayWarning(NOW - 5 * 24 * HOUR + 1, NOW, false, cfg), true);
});
