// The retry schedule, pure: when a recipient that failed temporarily is tried again, when a message has
// been in the queue too long (it then bounces, RFC 5321 §4.5.4.1 "give up" time), and when the sender
// gets a delay warning (RFC 3464 Action: delayed). Times are inputs and randomness is injected, so every
// decision is reproducible in tests. Defaults follow Postfix (minimal_backoff_time 300 s,
// maximal_backoff_time 4000 s, maximal_queue_lifetime 5 d, delay_warning_time 4 h).
// Deliberately not here: reading the clock, touching the queue, or choosing between 4xx and 5xx (the
// delivery worker does that and records the outcome with Queue.settle).

import type { QueueConfig } from '../config/config.ts';

/** Retries spread by up to this fraction either way, so a burst of failures does not retry in lockstep. */
export const RETRY_JITTER = 0.1;

/** Doubling stops here: 2^30 times any sane retryMinMs is far past any cap, and never Infinity. */
const MAX_EXPONENT = 30;

/**
 * When to try again after `attempts` failed tries (1 after the first failure): retryMinMs, doubling per
 * failure, capped at retryMaxMs, ±10 % jitter from `random` (a number in [0, 1), e.g. Math.random).
 * The cap applies after the jitter, so at the cap retries still spread (over 90–100 % of retryMaxMs)
 * and never wait longer than the operator allowed.
 */
export function nextAttemptMs(
  attempts: number,
  nowMs: number,
  cfg: Pick<QueueConfig, 'retryMinMs' | 'retryMaxMs'>,
  random: () => number,
): number {
  const failures = Number.isFinite(attempts) ? Math.max(1, Math.floor(attempts)) : MAX_EXPONENT + 1;
  const exponent = Math.min(failures - 1, MAX_EXPONENT);
  const minMs = Math.max(0, cfg.retryMinMs);
  const maxMs = Math.max(minMs, cfg.retryMaxMs);
  const baseMs = Math.min(minMs * 2 ** exponent, maxMs);
  const r = Math.min(Math.max(random(), 0), 1);
  const jitteredMs = baseMs * (1 + RETRY_JITTER * (2 * r - 1));
  return nowMs + Math.round(Math.min(jitteredMs, maxMs));
}

/** The time after which the message is given up on (also the DSN's Will-Retry-Until). */
export function giveUpAtMs(arrivalMs: number, cfg: Pick<QueueConfig, 'lifetimeMs'>): number {
  return arrivalMs + cfg.lifetimeMs;
}

/**
 * The message has been queued for lifetimeMs or longer: a recipient that fails temporarily now bounces
 * (Status 4.4.7, Action: failed) instead of being deferred.
 */
export function expired(arrivalMs: number, nowMs: number, cfg: Pick<QueueConfig, 'lifetimeMs'>): boolean {
  return nowMs >= giveUpAtMs(arrivalMs, cfg);
}

/**
 * A delay warning is due: warnings are on (delayWarningMs > 0), this recipient has not had one, it has
 * waited delayWarningMs, and the message has not expired (then it bounces, and a warning would only
 * arrive beside the bounce).
 */
export function needsDelayWarning(
  arrivalMs: number,
  nowMs: number,
  warnedAlready: boolean,
  cfg: Pick<QueueConfig, 'delayWarningMs' | 'lifetimeMs'>,
): boolean {
  if (warnedAlready || cfg.delayWarningMs <= 0) return false;
  return nowMs - arrivalMs >= cfg.delayWarningMs && !expired(arrivalMs, nowMs, cfg);
}
