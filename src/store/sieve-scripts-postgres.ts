// The Sieve script store (sieve-scripts.ts) on PostgreSQL (issue 19), shared by every node. Each write
// runs in one READ COMMITTED transaction that first takes a transaction-scoped advisory lock on its
// owner: every writer of one user's scripts (any node, any pool) then queues behind the others, and each
// statement after the lock sees what the previous holder committed, so the quota check and its write
// can never interleave with another's (no phantoms, no serialization failures to retry). A partial
// unique index holds the one-active rule even against a bug here. Reads take no lock.
// Vacation memory is one INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING: the conflicting row is
// locked and the WHERE judged on its newest version, so racing deliveries answer true exactly once.
// Deliberately NOT here: name and Sieve syntax rules beyond what storing needs, running scripts, ending
// the pool (the caller owns it).

import type { Clock } from '../core/ports.ts';
import { systemClock } from '../core/ports.ts';
import { inTransaction, migratePostgres, pgInt, pgText, type PgClient, type PgPool } from '../db/postgres.ts';
import { normalizeUser } from './mailbox-store.ts';
import {
  checkSieveScriptName,
  DEFAULT_SIEVE_SCRIPT_LIMITS,
  type ActiveSieveScript,
  type SieveScriptEntry,
  type SieveScriptLimits,
  type SieveScriptStore,
  type SieveWrite,
} from './sieve-scripts.ts';

// COLLATE "C": names compare and sort by code point (the UTF-8 bytes), as the contract wants.
export const STEPS: readonly string[] = [
  `CREATE TABLE sieve_scripts (
     owner TEXT COLLATE "C" NOT NULL,
     name TEXT COLLATE "C" NOT NULL,
     script TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     active BOOLEAN NOT NULL DEFAULT false,
     created_ms BIGINT NOT NULL,
     updated_ms BIGINT NOT NULL,
     PRIMARY KEY (owner, name)
   );
   CREATE UNIQUE INDEX sieve_scripts_one_active ON sieve_scripts (owner) WHERE active;
   CREATE TABLE sieve_vacation_replies (
     owner TEXT COLLATE "C" NOT NULL,
     handle TEXT COLLATE "C" NOT NULL,
     sender TEXT COLLATE "C" NOT NULL,
     replied_ms BIGINT NOT NULL,
     PRIMARY KEY (owner, handle, sender)
   );
   CREATE INDEX sieve_vacation_replies_age ON sieve_vacation_replies (replied_ms);`,
];

/** Vacation rows older than this are forgotten (RFC 5230 §4.1 caps a period at a few months). */
const VACATION_MEMORY_MS = 120 * 86_400_000;
/** Least time between two sweeps of old vacation rows by one instance. */
const VACATION_SWEEP_INTERVAL_MS = 3_600_000;
/** Rows one sweep deletes at most. */
const SWEEP_ROWS = 10_000;
/** First key of the two-key advisory lock ("siev"): its own space, apart from other components' locks. */
const OWNER_LOCK_CLASS = 0x73696576;

export interface PostgresSieveScriptStoreOptions {
  readonly pool: PgPool;
  /** The quotas; a function is asked on every write, so a reloaded configuration applies at once. */
  readonly limits?: SieveScriptLimits | (() => SieveScriptLimits);
  readonly clock?: Clock;
}

const OK = { ok: true } as const;

export class PostgresSieveScriptStore implements SieveScriptStore {
  readonly #pool: PgPool;
  readonly #limits: () => SieveScriptLimits;
  readonly #clock: Clock;
  #lastSweepMs = -Infinity;

  private constructor(options: PostgresSieveScriptStoreOptions) {
    this.#pool = options.pool;
    const limits = options.limits ?? DEFAULT_SIEVE_SCRIPT_LIMITS;
    this.#limits = typeof limits === 'function' ? limits : () => limits;
    this.#clock = options.clock ?? systemClock;
  }

  static async open(options: PostgresSieveScriptStoreOptions): Promise<PostgresSieveScriptStore> {
    await migratePostgres(options.pool, 'sieve', STEPS);
    return new PostgresSieveScriptStore(options);
  }

  async list(user: string): Promise<SieveScriptEntry[]> {
    const r = await this.#pool.query(
      'SELECT name, active FROM sieve_scripts WHERE owner = $1 ORDER BY name',
      [normalizeUser(user)],
    );
    return r.rows.map((row: Record<string, unknown>) => ({
      name: pgText(row, 'name'),
      active: row['active'] === true,
    }));
  }

  async get(user: string, name: string): Promise<string | null> {
    const key = checkSieveScriptName(name);
    const r = await this.#pool.query('SELECT script FROM sieve_scripts WHERE owner = $1 AND name = $2', [
      normalizeUser(user),
      key,
    ]);
    const row = r.rows[0] as Record<string, unknown> | undefined;
    return row === undefined ? null : pgText(row, 'script');
  }

  async haveSpace(
    user: string,
    name: string,
    sizeBytes: number,
  ): Promise<SieveWrite<'max-scripts' | 'max-size'>> {
    const key = checkSieveScriptName(name);
    const client = await this.#pool.connect();
    try {
      return await this.#fits(client, normalizeUser(user), key, sizeBytes);
    } finally {
      client.release();
    }
  }

  async put(user: string, name: string, script: string): Promise<SieveWrite<'max-scripts' | 'max-size'>> {
    const owner = normalizeUser(user);
    const key = checkSieveScriptName(name);
    const sizeBytes = Buffer.byteLength(script, 'utf8');
    return this.#write(owner, async (client) => {
      const fits = await this.#fits(client, owner, key, sizeBytes);
      if (!fits.ok) return fits;
      const now = this.#clock.nowMs();
      await client.query(
        `INSERT INTO sieve_scripts (owner, name, script, size_bytes, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (owner, name) DO UPDATE SET
           script = excluded.script, size_bytes = excluded.size_bytes, updated_ms = excluded.updated_ms`,
        [owner, key, script, sizeBytes, now],
      );
      return OK;
    });
  }

  async delete(user: string, name: string): Promise<SieveWrite<'nonexistent' | 'active'>> {
    const owner = normalizeUser(user);
    const key = checkSieveScriptName(name);
    return this.#write(owner, async (client): Promise<SieveWrite<'nonexistent' | 'active'>> => {
      const r = await client.query('SELECT active FROM sieve_scripts WHERE owner = $1 AND name = $2', [
        owner,
        key,
      ]);
      const row = r.rows[0] as Record<string, unknown> | undefined;
      if (row === undefined) return { ok: false, refusal: 'nonexistent' };
      if (row['active'] === true) return { ok: false, refusal: 'active' };
      await client.query('DELETE FROM sieve_scripts WHERE owner = $1 AND name = $2', [owner, key]);
      return OK;
    });
  }

  async rename(
    user: string,
    from: string,
    to: string,
  ): Promise<SieveWrite<'nonexistent' | 'already-exists'>> {
    const owner = normalizeUser(user);
    const fromKey = checkSieveScriptName(from);
    const toKey = checkSieveScriptName(to);
    return this.#write(owner, async (client): Promise<SieveWrite<'nonexistent' | 'already-exists'>> => {
      if (!(await this.#exists(client, owner, fromKey))) return { ok: false, refusal: 'nonexistent' };
      if (await this.#exists(client, owner, toKey)) return { ok: false, refusal: 'already-exists' };
      await client.query(
        'UPDATE sieve_scripts SET name = $1, updated_ms = $2 WHERE owner = $3 AND name = $4',
        [toKey, this.#clock.nowMs(), owner, fromKey],
      );
      return OK;
    });
  }

  async setActive(user: string, name: string | null): Promise<SieveWrite<'nonexistent'>> {
    const owner = normalizeUser(user);
    const key = name === null ? null : checkSieveScriptName(name);
    return this.#write(owner, async (client): Promise<SieveWrite<'nonexistent'>> => {
      if (key !== null && !(await this.#exists(client, owner, key)))
        return { ok: false, refusal: 'nonexistent' };
      // Off first, then on: a unique index is checked row by row, not at the end of the statement.
      await client.query(
        'UPDATE sieve_scripts SET active = false WHERE owner = $1 AND active AND name IS DISTINCT FROM $2',
        [owner, key],
      );
      if (key !== null)
        await client.query('UPDATE sieve_scripts SET active = true WHERE owner = $1 AND name = $2', [
          owner,
          key,
        ]);
      return OK;
    });
  }

  async getActive(user: string): Promise<ActiveSieveScript | null> {
    const r = await this.#pool.query('SELECT name, script FROM sieve_scripts WHERE owner = $1 AND active', [
      normalizeUser(user),
    ]);
    const row = r.rows[0] as Record<string, unknown> | undefined;
    return row === undefined ? null : { name: pgText(row, 'name'), script: pgText(row, 'script') };
  }

  async vacationDue(
    user: string,
    handle: string,
    sender: string,
    nowMs: number,
    periodMs: number,
  ): Promise<boolean> {
    const r = await this.#pool.query(
      `INSERT INTO sieve_vacation_replies (owner, handle, sender, replied_ms) VALUES ($1, $2, $3, $4::bigint)
       ON CONFLICT (owner, handle, sender) DO UPDATE SET replied_ms = excluded.replied_ms
         WHERE $4::bigint - sieve_vacation_replies.replied_ms >= $5::bigint
       RETURNING 1`,
      [normalizeUser(user), handle, sender.toLowerCase(), nowMs, periodMs],
    );
    const due = r.rows.length > 0;
    if (due && nowMs - this.#lastSweepMs >= VACATION_SWEEP_INTERVAL_MS) {
      this.#lastSweepMs = nowMs;
      // Housekeeping after the answer is committed: a failed sweep must not turn a remembered reply into
      // an error (the caller would then not send it), and the next sweep deletes what this one left.
      // SKIP LOCKED: two nodes sweeping at once never wait for, or deadlock on, each other's rows.
      await this.#pool
        .query(
          `DELETE FROM sieve_vacation_replies WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM sieve_vacation_replies WHERE replied_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))`,
          [nowMs - VACATION_MEMORY_MS, SWEEP_ROWS],
        )
        .catch(() => undefined);
    }
    return due;
  }

  /** The pool is the caller's: nothing to release here. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** One write transaction, after every other writer of `owner`'s scripts (the lock ends with it). */
  #write<T>(owner: string, fn: (client: PgClient) => Promise<T>): Promise<T> {
    return inTransaction(this.#pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [OWNER_LOCK_CLASS, owner]);
      return fn(client);
    });
  }

  async #exists(client: PgClient, owner: string, name: string): Promise<boolean> {
    const r = await client.query('SELECT 1 FROM sieve_scripts WHERE owner = $1 AND name = $2', [owner, name]);
    return r.rows.length > 0;
  }

  /** The quota check put() makes; a replaced script does not count against maxScripts. */
  async #fits(
    client: PgClient,
    owner: string,
    name: string,
    sizeBytes: number,
  ): Promise<SieveWrite<'max-scripts' | 'max-size'>> {
    const { maxScripts, maxScriptBytes } = this.#limits();
    if (maxScriptBytes > 0 && sizeBytes > maxScriptBytes) return { ok: false, refusal: 'max-size' };
    if (maxScripts > 0) {
      // One round trip: the count, and whether `name` is among them (a replacement).
      const r = await client.query(
        `SELECT count(*) AS n, count(*) FILTER (WHERE name = $2) AS same
           FROM sieve_scripts WHERE owner = $1`,
        [owner, name],
      );
      const row = r.rows[0] as Record<string, unknown>;
      if (pgInt(row, 'same') === 0 && pgInt(row, 'n') >= maxScripts)
        return { ok: false, refusal: 'max-scripts' };
    }
    return OK;
  }
}
