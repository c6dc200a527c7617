// data/greylist.sqlite: the greylisting triplets (RFC 6647), kept across restarts so that a sender
// deferred before a restart is not deferred again when it retries after it, and a triplet that passed
// stays passed for its lifetime. Every session thread opens its own connection (WAL: readers never
// block); each update is one read-and-write inside a group-committed transaction (db/group-commit.ts,
// sync 'none': no fsync of its own, as the DMARC counts: a power failure may lose the last moment's
// entries, which costs those senders one more deferral, never a message).
// Bounded: expired entries are deleted by expire() (the filter calls it on write, at most once a
// minute), and past `maxEntries` the greylisted entries written longest ago go first.
// Deliberately NOT here: the state machine and the triplet's normalisation (policy/filters/greylist.ts).

import type { DatabaseSync } from 'node:sqlite';
import type { GreylistEntry, GreylistStore, GreylistTriplet } from '../core/greylist.ts';
import { GroupCommit } from '../db/group-commit.ts';
import { integer, openDatabase, Statements, text, type Row } from '../db/sqlite.ts';

const MIGRATIONS = [
  `CREATE TABLE triplets (
     network TEXT NOT NULL,
     sender TEXT NOT NULL,
     recipient TEXT NOT NULL,
     first_seen_ms INTEGER NOT NULL,
     last_seen_ms INTEGER NOT NULL,
     attempts INTEGER NOT NULL,
     passed_ms INTEGER,
     expires_ms INTEGER NOT NULL,
     UNIQUE (network, sender, recipient)
   ) STRICT;
   CREATE INDEX triplets_expiry ON triplets (expires_ms);
   CREATE INDEX triplets_passed ON triplets (network, expires_ms) WHERE passed_ms IS NOT NULL;`,
];

/** Rows one expire() deletes at most: a sweep never holds the write lock for long. */
const SWEEP_ROWS = 10_000;

export class SqliteGreylistStore implements GreylistStore {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #commits: GroupCommit;
  readonly #maxEntries: number;

  private constructor(db: DatabaseSync, maxEntries: number) {
    this.#db = db;
    this.#sql = new Statements(db);
    this.#commits = new GroupCommit(db, { sync: 'none' });
    this.#maxEntries = maxEntries;
  }

  /** `maxEntries`: the table's cap (default 1,000,000 rows, some 150 MB). */
  static open(path: string, opts: { readonly maxEntries?: number } = {}): SqliteGreylistStore {
    // A short busy wait: another thread's batch holds the lock for one batch at most.
    return new SqliteGreylistStore(
      openDatabase(path, { migrations: MIGRATIONS, busyTimeoutMs: 100 }),
      opts.maxEntries ?? 1_000_000,
    );
  }

  update(
    triplet: GreylistTriplet,
    next: (prev: GreylistEntry | null) => GreylistEntry,
  ): Promise<GreylistEntry> {
    return this.#commits.run(() => {
      const row = this.#sql
        .sql('SELECT * FROM triplets WHERE network = ? AND sender = ? AND recipient = ?')
        .get(triplet.network, triplet.sender, triplet.recipient);
      const prev = row === undefined ? null : entryOf(row);
      const entry = next(prev);
      if (entry === prev) return entry;
      this.#sql
        .sql(
          `INSERT INTO triplets (network, sender, recipient, first_seen_ms, last_seen_ms, attempts, passed_ms, expires_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (network, sender, recipient) DO UPDATE SET
             first_seen_ms = excluded.first_seen_ms, last_seen_ms = excluded.last_seen_ms,
             attempts = excluded.attempts, passed_ms = excluded.passed_ms, expires_ms = excluded.expires_ms`,
        )
        .run(
          triplet.network,
          triplet.sender,
          triplet.recipient,
          entry.firstSeenMs,
          entry.lastSeenMs,
          entry.attempts,
          entry.passedMs,
          entry.expiresMs,
        );
      return entry;
    });
  }

  passedCount(network: string, nowMs: number, atMost: number): Promise<number> {
    try {
      const row = this.#sql
        .sql(
          `SELECT count(*) AS n FROM (SELECT 1 FROM triplets
             WHERE network = ? AND passed_ms IS NOT NULL AND expires_ms > ? LIMIT ?)`,
        )
        .get(network, nowMs, atMost);
      return Promise.resolve(row === undefined ? 0 : integer(row, 'n'));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  expire(nowMs: number): Promise<number> {
    return this.#commits.run(() => {
      let n = Number(
        this.#sql
          .sql(
            'DELETE FROM triplets WHERE rowid IN (SELECT rowid FROM triplets WHERE expires_ms <= ? LIMIT ?)',
          )
          .run(nowMs, SWEEP_ROWS).changes,
      );
      const count = integer(this.#sql.sql('SELECT count(*) AS n FROM triplets').get() ?? {}, 'n');
      const over = Math.min(count - this.#maxEntries, SWEEP_ROWS);
      if (over > 0) {
        // Greylisted entries closest to their window's end are the oldest first sights.
        n += Number(
          this.#sql
            .sql(
              `DELETE FROM triplets WHERE rowid IN
                 (SELECT rowid FROM triplets WHERE passed_ms IS NULL ORDER BY expires_ms LIMIT ?)`,
            )
            .run(over).changes,
        );
      }
      return n;
    });
  }

  /** Writes the last batch, then closes. */
  close(): Promise<void> {
    this.#commits.close();
    this.#db.close();
    return Promise.resolve();
  }
}

function entryOf(row: Row): GreylistEntry {
  const passed = row['passed_ms'];
  return {
    network: text(row, 'network'),
    sender: text(row, 'sender'),
    recipient: text(row, 'recipient'),
    firstSeenMs: integer(row, 'first_seen_ms'),
    lastSeenMs: integer(row, 'last_seen_ms'),
    attempts: integer(row, 'attempts'),
    passedMs: passed === null || passed === undefined ? null : integer(row, 'passed_ms'),
    expiresMs: integer(row, 'expires_ms'),
  };
}
