// The Redis connection several Tern nodes share (issue 19, `[redis] url`, docs/scaling.md): one client
// per process whose commands fail fast while Redis is away (the shared limits then fall back to this
// node's own, policy/shared-limits.ts).
// Deliberately NOT here: what is counted in Redis (policy/shared-limits.ts).

import { Redis } from 'ioredis';

/** One connection per process, with commands that fail fast instead of queueing while Redis is away. */
export function openRedis(url: string): Redis {
  return new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    // Keep trying in the background: the fallback serves meanwhile.
    retryStrategy: (times) => Math.min(times * 200, 5000),
  });
}

/** Resolves true once the client is connected, false after `timeoutMs` (it keeps trying meanwhile). */
export function redisReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}
