// The greylisting triplets (RFC 6647, core/greylist.ts's GreylistStore) on PostgreSQL (issue 19), shared
// by every node, so a sender deferred by one node passes when it retries at another. Each update is one
// READ COMMITTED transaction: a known triplet's row is read FOR UPDATE (a racing update on any node waits
// for this one's commit, then reads what it wrote); an unknown one is inserted ON CONFLICT DO NOTHING, and
// when another node inserted it first the update starts over on that row. So `next` runs once, except in
// that race on a brand-new triplet, where it runs again on the winner's entry and only its last answer is
// stored and returned. Commits are not waited for on disk (synchronous_commit off for these transactions
// only), as the SQLite store skips its fsync: a crash may lose the last moment's entries, which costs those
// senders one more deferral, never a message.
// Bounded: expire() deletes expired entries, then past `maxEntries` the greylisted ones closest to the end
// of their window; both skip rows another transaction holds, so sweeps never wait or deadlock.
// Deliberately NOT here: the state machine and the triplet's normalisation (policy/filters/greylist.ts),
// ending the pool (the caller owns it).

import type { GreylistEntry, GreylistStore, GreylistTriplet } from '../core/greylist.ts';
import { inTransaction, migratePostgres, pgInt, pgText, type PgPool, type PgRow } from '../db/postgres.ts';

// COLLATE "C": keys compare byte for byte, the cheapest way.
export const STEPS: readonly string[] = [
  `CREATE TABLE greylist_triplets (
     network TEXT COLLATE "C" NOT NULL,
     sender TEXT COLLATE "C" NOT NULL,
     recipient TEXT COLLATE "C" NOT NULL,
     first_seen_ms BIGINT NOT NULL,
     last_seen_ms BIGINT NOT NULL,
     attempts INTEGER NOT NULL,
     passed_ms BIGINT,
     expires_ms BIGINT NOT NULL,
     PRIMARY KEY (network, sender, recipient)
   );
   CREATE INDEX greylist_triplets_expiry ON greylist_triplets (expires_ms);
   CREATE INDEX greylist_triplets_greylisted ON greylist_triplets (expires_ms) WHERE passed_ms IS NULL;
   CREATE INDEX greylist_triplets_passed ON greylist_triplets (network, expires_ms) WHERE passed_ms IS NOT NULL;`,
];

/** Rows one expire() step deletes at most: a sweep never holds many row locks for long. */
const SWEEP_ROWS = 10_000;

const COLUMNS = 'network, sender, recipient, first_seen_ms, last_seen_ms, attempts, passed_ms, expires_ms';

export class PostgresGreylistStore implements GreylistStore {
  readonly #pool: PgPool;
  readonly #maxEntries: number;

  private constructor(pool: PgPool, maxEntries: number) {
    this.#pool = pool;
    this.#maxEntries = maxEntries;
  }

  /** `maxEntries`: the table's cap (default 1,000,000 rows). */
  static async open(options: {
    readonly pool: PgPool;
    readonly maxEntries?: number;
  }): Promise<PostgresGreylistStore> {
    await migratePostgres(options.pool, 'greylist', STEPS);
    return new PostgresGreylistStore(options.pool, options.maxEntries ?? 1_000_000);
  }

  update(
    triplet: GreylistTriplet,
    next: (prev: GreylistEntry | null) => GreylistEntry,
  ): Promise<GreylistEntry> {
    const key = [triplet.network, triplet.sender, triplet.recipient];
    return inTransaction(this.#pool, async (client) => {
      await client.query('SET LOCAL synchronous_commit = off');
      for (;;) {
        const r = await client.query(
          `SELECT ${COLUMNS} FROM greylist_triplets
            WHERE network = $1 AND sender = $2 AND recipient = $3 FOR UPDATE`,
          key,
        );
        const row = r.rows[0] as PgRow | undefined;
        if (row !== undefined) {
          const prev = entryOf(row);
          const entry = next(prev);
          if (entry === prev) return entry;
          await client.query(
            `UPDATE greylist_triplets SET first_seen_ms = $4, last_seen_ms = $5, attempts = $6, passed_ms = $7,
               expires_ms = $8 WHERE network = $1 AND sender = $2 AND recipient = $3`,
            [...key, ...values(entry)],
          );
          return entry;
        }
        const entry = next(null);
        const inserted = await client.query(
          `INSERT INTO greylist_triplets (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (network, sender, recipient) DO NOTHING RETURNING 1`,
          [...key, ...values(entry)],
        );
        if (inserted.rows.length > 0) return entry;
        // Another node inserted this triplet since the SELECT (READ COMMITTED: the next statement sees it).
      }
    });
  }

  async passedCount(network: string, nowMs: number, atMost: number): Promise<number> {
    const r = await this.#pool.query(
      `SELECT count(*) AS n FROM (SELECT 1 FROM greylist_triplets
         WHERE network = $1 AND passed_ms IS NOT NULL AND expires_ms > $2 LIMIT $3) AS live`,
      [network, nowMs, atMost],
    );
    return pgInt(r.rows[0] as PgRow, 'n');
  }

  expire(nowMs: number): Promise<number> {
    return inTransaction(this.#pool, async (client) => {
      await client.query('SET LOCAL synchronous_commit = off');
      // SKIP LOCKED: a row an update holds is left for the next sweep; two nodes sweeping split the rows.
      const expired = await client.query(
        `DELETE FROM greylist_triplets WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM greylist_triplets WHERE expires_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))`,
        [nowMs, SWEEP_ROWS],
      );
      let n = expired.rowCount ?? 0;
      const count = pgInt(
        (await client.query('SELECT count(*) AS n FROM greylist_triplets')).rows[0] as PgRow,
        'n',
      );
      const over = Math.min(count - this.#maxEntries, SWEEP_ROWS);
      if (over > 0) {
        // Greylisted entries closest to their window's end are the oldest first sights.
        const capped = await client.query(
          `DELETE FROM greylist_triplets WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM greylist_triplets WHERE passed_ms IS NULL
              ORDER BY expires_ms LIMIT $1 FOR UPDATE SKIP LOCKED))`,
          [over],
        );
        n += capped.rowCount ?? 0;
      }
      return n;
    });
  }

  /** The pool is the caller's: nothing to release here. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function values(e: GreylistEntry): (number | null)[] {
  return [e.firstSeenMs, e.lastSeenMs, e.attempts, e.passedMs, e.expiresMs];
}

function entryOf(row: PgRow): GreylistEntry {
  return {
    network: pgText(row, 'network'),
    sender: pgText(row, 'sender'),
    recipient: pgText(row, 'recipient'),
    firstSeenMs: pgInt(row, 'first_seen_ms'),
    lastSeenMs: pgInt(row, 'last_seen_ms'),
    attempts: pgInt(row, 'attempts'),
    passedMs: row['passed_ms'] === null ? null : pgInt(row, 'passed_ms'),
    expiresMs: pgInt(row, 'expires_ms'),
  };
}
