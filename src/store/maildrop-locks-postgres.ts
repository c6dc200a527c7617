// POP3's exclusive maildrop locks (maildrop-locks.ts) shared by every node on one PostgreSQL (issue 19):
// a row per held maildrop with the holder's random token and a lease the holder renews while its
// session lasts. No connection is held for a lock (a POP3 session may last minutes; a pool is small),
// and a node that dies frees its maildrops when their leases run out (LEASE_MS), as RFC 1939 §8 wants a
// maildrop to come back after a session that never QUIT.
// Deliberately NOT here: when POP3 takes the lock (pop3-connection.ts), the mailbox store.

import { randomBytes } from 'node:crypto';
import { migratePostgres, type PgPool } from '../db/postgres.ts';
import { maildropKey, type MaildropLock, type MaildropLocks } from './maildrop-locks.ts';

/** A holder that stopped renewing (a crashed node) loses its maildrops after this. */
export const LEASE_MS = 30_000;
const RENEW_MS = 10_000;

export const STEPS: readonly string[] = [
  `CREATE TABLE maildrop_locks (
     key TEXT COLLATE "C" PRIMARY KEY,
     token TEXT NOT NULL,
     until_ms BIGINT NOT NULL
   )`,
];

export class PostgresMaildropLocks implements MaildropLocks {
  readonly #pool: PgPool;
  readonly #nowMs: () => number;
  readonly #leaseMs: number;

  private constructor(pool: PgPool, nowMs: () => number, leaseMs: number) {
    this.#pool = pool;
    this.#nowMs = nowMs;
    this.#leaseMs = leaseMs;
  }

  static async open(options: {
    readonly pool: PgPool;
    readonly nowMs?: () => number;
    readonly leaseMs?: number;
  }): Promise<PostgresMaildropLocks> {
    await migratePostgres(options.pool, 'maildrop', STEPS);
    return new PostgresMaildropLocks(options.pool, options.nowMs ?? Date.now, options.leaseMs ?? LEASE_MS);
  }

  async acquire(user: string, mailbox: string): Promise<MaildropLock | null> {
    const key = maildropKey(user, mailbox);
    const token = randomBytes(12).toString('hex');
    const now = this.#nowMs();
    // One statement: a free key, or one whose holder's lease ran out, becomes ours; a live one does not.
    const r = await this.#pool.query(
      `INSERT INTO maildrop_locks (key, token, until_ms) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET token = excluded.token, until_ms = excluded.until_ms
         WHERE maildrop_locks.until_ms < $4
       RETURNING token`,
      [key, token, now + this.#leaseMs, now],
    );
    if (r.rows.length === 0) return null;
    let released = false;
    const timer = setInterval(
      () => {
        void this.#pool
          .query('UPDATE maildrop_locks SET until_ms = $3 WHERE key = $1 AND token = $2', [
            key,
            token,
            this.#nowMs() + this.#leaseMs,
          ])
          .catch(() => undefined);
      },
      Math.min(RENEW_MS, Math.floor(this.#leaseMs / 3)),
    );
    timer.unref();
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        // The token: a stale holder's release never frees the lock someone took after its lease ran out.
        await this.#pool.query('DELETE FROM maildrop_locks WHERE key = $1 AND token = $2', [key, token]);
      },
    };
  }
}
