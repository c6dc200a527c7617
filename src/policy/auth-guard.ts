// Abuse limits around SMTP AUTH and authenticated sending (issue 3):
// - failed authentications counted per client IP and per account in a sliding window; past the threshold
//   the IP or account is locked out for a while (454 4.7.0) — brute force and password spraying both hit
//   a wall, and every lockout is logged as a security event by the caller;
// - messages and recipients per authenticated user per hour (451 4.7.1 when exceeded).
// In memory, in one thread: counters reset on restart, which is acceptable for rate limiting. Sessions
// see them through AuthLimits and SendRates, whose answers may come later: with sessions on worker
// threads the one instance lives on the main thread (server/coordinator.ts) and every thread asks it, so
// counts stay exact across threads; a cluster mode would put them in the shared store. Time comes from
// the Clock port.

import type { Clock } from '../core/ports.ts';

/** What sessions ask about AUTH failures: AuthGuard itself, or a proxy to the one that counts. */
export interface AuthLimits {
  check(ip: string, account: string | null): LockState | Promise<LockState>;
  recordFailure(ip: string, account: string | null): LockState | Promise<LockState>;
  recordSuccess(ip: string): void | Promise<void>;
}

/** What sessions ask about hourly sending rates: SendRateLimiter itself, or a proxy to it. */
export interface SendRates {
  allows(
    user: string,
    limits: { maxMessages: number; maxRecipients: number },
    add: { messages: number; recipients: number },
  ): boolean | Promise<boolean>;
  record(user: string, recipients: number): void | Promise<void>;
}

export interface AuthGuardOptions {
  readonly lockoutThreshold: number;
  readonly lockoutWindowMs: number;
  readonly lockoutMs: number;
}

interface FailureRecord {
  times: number[];
  lockedUntilMs: number;
}

/** Sliding-window counter keyed by string; old entries are pruned as they are touched and periodically. */
class Window {
  private readonly entries = new Map<string, FailureRecord>();
  private readonly windowMs: number;
  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }
  get(key: string, nowMs: number): FailureRecord {
    let r = this.entries.get(key);
    if (!r) {
      r = { times: [], lockedUntilMs: 0 };
      this.entries.set(key, r);
    }
    const cutoff = nowMs - this.windowMs;
    while (r.times.length > 0 && r.times[0]! <= cutoff) r.times.shift();
    return r;
  }
  peek(key: string): FailureRecord | undefined {
    return this.entries.get(key);
  }
  delete(key: string): void {
    this.entries.delete(key);
  }
  prune(nowMs: number): void {
    const cutoff = nowMs - this.windowMs;
    for (const [key, r] of this.entries) {
      if (r.lockedUntilMs <= nowMs && (r.times.length === 0 || r.times.at(-1)! <= cutoff))
        this.entries.delete(key);
    }
  }
  get size(): number {
    return this.entries.size;
  }
}

export type LockState =
  | { readonly locked: false }
  | { readonly locked: true; readonly untilMs: number; readonly by: 'ip' | 'account' };

export class AuthGuard implements AuthLimits {
  private readonly options: AuthGuardOptions;
  private readonly clock: Clock;
  private readonly byIp: Window;
  private readonly byAccount: Window;
  private lastPruneMs = 0;

  constructor(options: AuthGuardOptions, clock: Clock) {
    this.options = options;
    this.clock = clock;
    this.byIp = new Window(options.lockoutWindowMs);
    this.byAccount = new Window(options.lockoutWindowMs);
  }

  /** Is this IP (or, when known, this account) locked out right now? */
  check(ip: string, account: string | null): LockState {
    const now = this.clock.nowMs();
    const ipRec = this.byIp.peek(ip);
    if (ipRec && ipRec.lockedUntilMs > now) return { locked: true, untilMs: ipRec.lockedUntilMs, by: 'ip' };
    if (account !== null) {
      const accRec = this.byAccount.peek(account);
      if (accRec && accRec.lockedUntilMs > now)
        return { locked: true, untilMs: accRec.lockedUntilMs, by: 'account' };
    }
    return { locked: false };
  }

  /** Record a failure; returns the lock it caused, if any. `account` null when no username was given. */
  recordFailure(ip: string, account: string | null): LockState {
    const now = this.clock.nowMs();
    this.maybePrune(now);
    let result: LockState = { locked: false };
    const bump = (w: Window, key: string, by: 'ip' | 'account'): void => {
      const r = w.get(key, now);
      r.times.push(now);
      if (r.times.length >= this.options.lockoutThreshold && r.lockedUntilMs <= now) {
        r.lockedUntilMs = now + this.options.lockoutMs;
        r.times = [];
        result = { locked: true, untilMs: r.lockedUntilMs, by };
      }
    };
    bump(this.byIp, ip, 'ip');
    if (account !== null) bump(this.byAccount, account, 'account');
    return result;
  }

  /** A success clears the IP's failure history (not the account's: spraying from many IPs still counts). */
  recordSuccess(ip: string): void {
    const r = this.byIp.peek(ip);
    if (r && r.lockedUntilMs <= this.clock.nowMs()) this.byIp.delete(ip);
  }

  private maybePrune(now: number): void {
    if (now - this.lastPruneMs < 60_000) return;
    this.lastPruneMs = now;
    this.byIp.prune(now);
    this.byAccount.prune(now);
  }

  /** Entries held (for tests and metrics: memory stays bounded by activity in one window). */
  get trackedKeys(): number {
    return this.byIp.size + this.byAccount.size;
  }
}

/** Messages and recipients per user per hour, as a sliding window of (time, count) events. */
export class SendRateLimiter implements SendRates {
  private readonly clock: Clock;
  private readonly events = new Map<string, Array<{ atMs: number; messages: number; recipients: number }>>();
  private static readonly HOUR_MS = 3_600_000;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  private usage(user: string, now: number): { messages: number; recipients: number } {
    const list = this.events.get(user);
    if (!list) return { messages: 0, recipients: 0 };
    const cutoff = now - SendRateLimiter.HOUR_MS;
    while (list.length > 0 && list[0]!.atMs <= cutoff) list.shift();
    if (list.length === 0) this.events.delete(user);
    let messages = 0;
    let recipients = 0;
    for (const e of list) {
      messages += e.messages;
      recipients += e.recipients;
    }
    return { messages, recipients };
  }

  /** Would one more message (at MAIL) or one more recipient (at RCPT) exceed the limits? 0 = unlimited. */
  allows(
    user: string,
    limits: { maxMessages: number; maxRecipients: number },
    add: { messages: number; recipients: number },
  ): boolean {
    const u = this.usage(user, this.clock.nowMs());
    if (limits.maxMessages > 0 && u.messages + add.messages > limits.maxMessages) return false;
    if (limits.maxRecipients > 0 && u.recipients + add.recipients > limits.maxRecipients) return false;
    return true;
  }

  /** Count a message accepted for delivery. */
  record(user: string, recipients: number): void {
    const now = this.clock.nowMs();
    const list = this.events.get(user) ?? [];
    list.push({ atMs: now, messages: 1, recipients });
    this.events.set(user, list);
  }
}
