// The limits several Tern nodes share through Redis (issue 19, `[redis] url`, docs/scaling.md): AUTH
// failures and lockouts per client address and per account, and each user's hourly sending counts. The
// same rules as the in-process AuthGuard and SendRateLimiter (auth-guard.ts), counted once for the whole
// cluster, so an attacker cannot multiply their guesses by the number of nodes.
// When Redis does not answer (down, partitioned, slower than REDIS_TIMEOUT_MS) each limit falls back to
// this node's own in-process counter — never to "no limit": lockouts and rates then hold per node, as
// they did before clustering, and the log says so once per outage (`redis.unavailable`/`redis.back`).
// Redis is reached only through the RedisPort below (net/redis.ts opens the client).
// Deliberately NOT here: what the limits are (config), connection counts (listeners).

import { randomBytes } from 'node:crypto';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import {
  AuthGuard,
  SendRateLimiter,
  type AuthGuardOptions,
  type AuthLimits,
  type LockState,
  type SendRates,
} from './auth-guard.ts';

/** The Redis commands the shared limits use (ioredis's client has them). */
export interface RedisPort {
  pttl(key: string): Promise<number>;
  del(key: string): Promise<number>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** A Redis command slower than this counts as Redis being unavailable for that call. */
export const REDIS_TIMEOUT_MS = 250;

const HOUR_MS = 3_600_000;
/** Sending counts are kept per minute: the hour is the sum of the last 60 buckets. */
const BUCKET_MS = 60_000;

/**
 * Records a failure in a sliding window and locks the key when the window holds `threshold` failures:
 * KEYS[1] the window (sorted set), KEYS[2] the lock; ARGV now, window, threshold, lockout, member.
 * Returns the lock's end in ms, or 0.
 */
const RECORD_FAILURE = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
local locked = redis.call('PTTL', KEYS[2])
if locked > 0 then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[4]))
  redis.call('DEL', KEYS[1])
  return now + tonumber(ARGV[4])
end
return 0`;

/** The messages and recipients of the buckets named by KEYS (hashes with fields m and r). */
const SUM_BUCKETS = `
local m = 0
local r = 0
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'm', 'r')
  m = m + (tonumber(v[1]) or 0)
  r = r + (tonumber(v[2]) or 0)
end
return {m, r}`;

/** Adds one message and ARGV[1] recipients to the bucket KEYS[1], kept ARGV[2] ms. */
const ADD_TO_BUCKET = `
redis.call('HINCRBY', KEYS[1], 'm', 1)
redis.call('HINCRBY', KEYS[1], 'r', tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1`;

/** Whether Redis answers, told once per change. */
class Health {
  #down = false;
  readonly #log: Logger;
  constructor(log: Logger) {
    this.#log = log;
  }
  ok(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#log.event(Events.redisBack, {});
  }
  failed(err: unknown): void {
    if (this.#down) return;
    this.#down = true;
    this.#log.warn(Events.redisUnavailable, { error: String(err), fallback: 'per-node limits' });
  }
}

async function timed<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`redis: no answer within ${REDIS_TIMEOUT_MS} ms`)),
      REDIS_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface SharedLimitsOptions {
  readonly redis: RedisPort;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Key prefix (tests use their own); default "tern:". */
  readonly prefix?: string;
}

/** AUTH lockouts for the cluster; this node's AuthGuard when Redis is away. */
export class SharedAuthLimits implements AuthLimits {
  readonly #redis: RedisPort;
  readonly #clock: Clock;
  readonly #options: AuthGuardOptions;
  readonly #local: AuthGuard;
  readonly #prefix: string;
  readonly #health: Health;

  constructor(options: AuthGuardOptions, shared: SharedLimitsOptions) {
    this.#redis = shared.redis;
    this.#clock = shared.clock;
    this.#options = options;
    this.#local = new AuthGuard(options, shared.clock);
    this.#prefix = shared.prefix ?? 'tern:';
    this.#health = new Health(shared.logger);
  }

  #key(kind: 'fail' | 'lock', by: 'ip' | 'account', id: string): string {
    return `${this.#prefix}auth:${kind}:${by}:${id}`;
  }

  async check(ip: string, account: string | null): Promise<LockState> {
    try {
      const keys = [
        this.#key('lock', 'ip', ip),
        ...(account === null ? [] : [this.#key('lock', 'account', account)]),
      ];
      const ttls = await timed(Promise.all(keys.map((k) => this.#redis.pttl(k))));
      this.#health.ok();
      const now = this.#clock.nowMs();
      if (ttls[0]! > 0) return { locked: true, untilMs: now + ttls[0]!, by: 'ip' };
      if (ttls[1] !== undefined && ttls[1] > 0)
        return { locked: true, untilMs: now + ttls[1], by: 'account' };
      return { locked: false };
    } catch (err) {
      this.#health.failed(err);
      return this.#local.check(ip, account);
    }
  }

  async recordFailure(ip: string, account: string | null): Promise<LockState> {
    // Counted here too, so a Redis outage starts from what this node saw rather than from nothing.
    const local = this.#local.recordFailure(ip, account);
    try {
      const now = this.#clock.nowMs();
      const o = this.#options;
      // Unique across nodes and processes: two failures at the same millisecond are two members.
      const member = `${now}:${randomBytes(8).toString('hex')}`;
      const run = (by: 'ip' | 'account', id: string): Promise<unknown> =>
        this.#redis.eval(
          RECORD_FAILURE,
          2,
          this.#key('fail', by, id),
          this.#key('lock', by, id),
          now,
          o.lockoutWindowMs,
          o.lockoutThreshold,
          o.lockoutMs,
          member,
        );
      const [byIp, byAccount] = await timed(
        Promise.all([run('ip', ip), account === null ? Promise.resolve(0) : run('account', account)]),
      );
      this.#health.ok();
      if (Number(byIp) > 0) return { locked: true, untilMs: Number(byIp), by: 'ip' };
      if (Number(byAccount) > 0) return { locked: true, untilMs: Number(byAccount), by: 'account' };
      return { locked: false };
    } catch (err) {
      this.#health.failed(err);
      return local;
    }
  }

  async recordSuccess(ip: string): Promise<void> {
    this.#local.recordSuccess(ip);
    try {
      // Like AuthGuard: a success clears the address's failures, never a lock in force.
      await timed(this.#redis.del(this.#key('fail', 'ip', ip)));
      this.#health.ok();
    } catch (err) {
      this.#health.failed(err);
    }
  }
}

/** Hourly sending counts for the cluster; this node's SendRateLimiter when Redis is away. */
export class SharedSendRates implements SendRates {
  readonly #redis: RedisPort;
  readonly #clock: Clock;
  readonly #local: SendRateLimiter;
  readonly #prefix: string;
  readonly #health: Health;

  constructor(shared: SharedLimitsOptions) {
    this.#redis = shared.redis;
    this.#clock = shared.clock;
    this.#local = new SendRateLimiter(shared.clock);
    this.#prefix = shared.prefix ?? 'tern:';
    this.#health = new Health(shared.logger);
  }

  #bucketKeys(user: string, now: number): string[] {
    const last = Math.floor(now / BUCKET_MS);
    const count = HOUR_MS / BUCKET_MS;
    return Array.from({ length: count }, (_, i) => `${this.#prefix}rate:${user}:${last - i}`);
  }

  async allows(
    user: string,
    limits: { maxMessages: number; maxRecipients: number },
    add: { messages: number; recipients: number },
  ): Promise<boolean> {
    const local = this.#local.allows(user, limits, add);
    if (limits.maxMessages === 0 && limits.maxRecipients === 0) return true;
    try {
      const keys = this.#bucketKeys(user, this.#clock.nowMs());
      const sums = (await timed(this.#redis.eval(SUM_BUCKETS, keys.length, ...keys))) as [number, number];
      this.#health.ok();
      const [messages, recipients] = [Number(sums[0]), Number(sums[1])];
      const overMessages = limits.maxMessages > 0 && messages + add.messages > limits.maxMessages;
      const overRecipients = limits.maxRecipients > 0 && recipients + add.recipients > limits.maxRecipients;
      return !overMessages && !overRecipients;
    } catch (err) {
      this.#health.failed(err);
      return local;
    }
  }

  async record(user: string, recipients: number): Promise<void> {
    this.#local.record(user, recipients);
    try {
      const [key] = this.#bucketKeys(user, this.#clock.nowMs());
      await timed(this.#redis.eval(ADD_TO_BUCKET, 1, key!, recipients, HOUR_MS + BUCKET_MS));
      this.#health.ok();
    } catch (err) {
      this.#health.failed(err);
    }
  }
}

/** How long a connection's entry lives without renewal: a node that died frees its counts after this. */
const CONNECTION_TTL_MS = 90_000;

/**
 * Takes a place for a connection when the address has fewer than ARGV[2] live ones: KEYS[1] the
 * address's set of connections (scores: when each entry runs out); ARGV now, max, ttl, connection id.
 */
const ACQUIRE_CONNECTION = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1`;

/** Keeps a live connection's entry (ZADD XX: an entry already gone is not brought back). */
const RENEW_CONNECTION = `
redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1`;

const RELEASE_CONNECTION = `return redis.call('ZREM', KEYS[1], ARGV[1])`;

/**
 * limits.max_connections_per_ip for the cluster: each connection is an entry in its client address's
 * set, renewed while it lasts, removed when it ends; a node that dies frees its entries within
 * CONNECTION_TTL_MS. When Redis is away each node's own count (the listeners') is the limit.
 */
export class SharedConnectionCounts {
  readonly #redis: RedisPort;
  readonly #clock: Clock;
  readonly #prefix: string;
  readonly #health: Health;
  /** Live connections of this node: id → client address. */
  readonly #live = new Map<string, string>();
  #timer: NodeJS.Timeout | null = null;

  constructor(shared: SharedLimitsOptions) {
    this.#redis = shared.redis;
    this.#clock = shared.clock;
    this.#prefix = shared.prefix ?? 'tern:';
    this.#health = new Health(shared.logger);
  }

  #key(ip: string): string {
    return `${this.#prefix}conn:${ip}`;
  }

  /** True when the address may open one more connection (or Redis is away: the local count decides). */
  async acquire(ip: string, max: number, id: string): Promise<boolean> {
    try {
      const ok = await timed(
        this.#redis.eval(
          ACQUIRE_CONNECTION,
          1,
          this.#key(ip),
          this.#clock.nowMs(),
          max,
          CONNECTION_TTL_MS,
          id,
        ),
      );
      this.#health.ok();
      if (Number(ok) !== 1) return false;
      this.#live.set(id, ip);
      this.#timer ??= setInterval(() => void this.#renew(), CONNECTION_TTL_MS / 3);
      this.#timer.unref();
      return true;
    } catch (err) {
      this.#health.failed(err);
      return true;
    }
  }

  async release(ip: string, id: string): Promise<void> {
    if (!this.#live.delete(id)) return;
    if (this.#live.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
    try {
      await timed(this.#redis.eval(RELEASE_CONNECTION, 1, this.#key(ip), id));
      this.#health.ok();
    } catch (err) {
      // The entry runs out by itself within CONNECTION_TTL_MS.
      this.#health.failed(err);
    }
  }

  async #renew(): Promise<void> {
    const until = this.#clock.nowMs() + CONNECTION_TTL_MS;
    for (const [id, ip] of this.#live) {
      try {
        await timed(this.#redis.eval(RENEW_CONNECTION, 1, this.#key(ip), until, id, CONNECTION_TTL_MS));
      } catch (err) {
        this.#health.failed(err);
        return;
      }
    }
  }
}
