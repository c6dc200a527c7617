// The trace store (data/trace.sqlite): every trace event (trace.ts) in arrival order, and one row per
// queue id with what it is searched by (Message-ID, sender, recipients, first seen). Written in batches
// through a group commit whose promise nobody waits for: a trace is kept for the operator, not part of
// any 250, so it never costs a session a fsync wait (SQLite's WAL keeps it consistent after a crash; the
// last few events may be missing). Each thread of the server writes through its own connection; only
// the owner (the main thread) prunes what is older than `[trace] retention_days`.
// Deliberately NOT here: which log records become events (trace.ts), output formats (the CLI).

import type { DatabaseSync } from 'node:sqlite';
import { GroupCommit } from '../db/group-commit.ts';
import { integer, openDatabase, Statements, text, textOrNull } from '../db/sqlite.ts';
import type { TraceEvent, TraceWriter } from './trace.ts';

const MIGRATIONS = [
  `CREATE TABLE events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     at_ms INTEGER NOT NULL,
     queue_id TEXT NOT NULL,
     event TEXT NOT NULL,
     source TEXT NOT NULL,
     detail TEXT NOT NULL
   ) STRICT;
   CREATE INDEX events_queue ON events (queue_id, seq);
   CREATE INDEX events_time ON events (at_ms);
   CREATE TABLE messages (
     queue_id TEXT PRIMARY KEY,
     first_ms INTEGER NOT NULL,
     message_id TEXT,
     sender TEXT,
     recipients TEXT NOT NULL DEFAULT '[]'
   ) STRICT;
   CREATE INDEX messages_message_id ON messages (message_id);
   CREATE INDEX messages_sender ON messages (sender);
   CREATE INDEX messages_first ON messages (first_ms);`,
];

/** How often the owner prunes events past the retention. */
const PRUNE_EVERY_MS = 3_600_000;
/** Rows deleted per statement (per event-loop turn) when pruning. */
const PRUNE_CHUNK = 2000;
/** How long a trace write waits for another connection's lock. */
const TRACE_BUSY_MS = 100;

export interface SqliteTraceStoreOptions {
  /** The database file, e.g. data/trace.sqlite. */
  readonly path: string;
  /** Events older than this are deleted (0: nothing is written or kept). */
  readonly retentionMs: number;
  readonly nowMs: () => number;
  /** 'owner' prunes (at open and hourly); 'session' only writes; 'reader' (the CLI) only reads. */
  readonly role?: 'owner' | 'session' | 'reader';
}

/** What `tern trace` looks for; every given part must match. */
export interface TraceQuery {
  readonly queueId?: string;
  readonly messageId?: string;
  /** The envelope sender (lower-cased for the search). */
  readonly from?: string;
  /** An envelope recipient. */
  readonly to?: string;
  readonly sinceMs?: number;
  readonly untilMs?: number;
  /** Most queue ids (the newest first seen). */
  readonly limit?: number;
}

export class SqliteTraceStore implements TraceWriter {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #commits: GroupCommit | null;
  readonly #o: SqliteTraceStoreOptions;
  #pending: TraceEvent[] = [];
  #scheduled = false;
  #pruneTimer: NodeJS.Timeout | null = null;
  #pruning = false;
  #closed = false;

  private constructor(db: DatabaseSync, options: SqliteTraceStoreOptions) {
    this.#db = db;
    this.#sql = new Statements(db);
    this.#o = options;
    // No fsync: a trace is consistent after any crash and may lose its last events to a power failure.
    this.#commits = (options.role ?? 'owner') === 'reader' ? null : new GroupCommit(db, { sync: 'none' });
  }

  static open(options: SqliteTraceStoreOptions): SqliteTraceStore {
    // A short busy wait: a writer that finds the file locked (a prune) drops a batch rather than stall.
    const db = openDatabase(options.path, { migrations: MIGRATIONS, busyTimeoutMs: TRACE_BUSY_MS });
    let store: SqliteTraceStore;
    try {
      store = new SqliteTraceStore(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
    if ((options.role ?? 'owner') === 'owner') {
      // retention 0 keeps nothing, also nothing kept before it was set.
      void store.prune();
      if (options.retentionMs > 0) {
        store.#pruneTimer = setInterval(() => void store.prune(), PRUNE_EVERY_MS);
        store.#pruneTimer.unref();
      }
    }
    return store;
  }

  write(event: TraceEvent): void {
    if (this.#closed || this.#commits === null || this.#o.retentionMs <= 0) return;
    this.#pending.push(event);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0 || this.#commits === null || this.#closed) return;
    this.#commits
      .run(() => {
        const insert = this.#sql.sql(
          'INSERT INTO events (at_ms, queue_id, event, source, detail) VALUES (?, ?, ?, ?, ?)',
        );
        const upsert = this.#sql.sql(
          `INSERT INTO messages (queue_id, first_ms, message_id, sender, recipients) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (queue_id) DO UPDATE SET
             message_id = coalesce(messages.message_id, excluded.message_id),
             sender = coalesce(messages.sender, excluded.sender),
             recipients = CASE WHEN excluded.recipients = '[]' THEN messages.recipients ELSE excluded.recipients END`,
        );
        for (const e of batch) {
          let detail: string;
          try {
            detail = JSON.stringify(e.detail);
          } catch {
            // A field JSON cannot hold (a BigInt, a cycle) costs that event its details, not the batch.
            detail = '{"unserializable":true}';
          }
          insert.run(e.atMs, e.queueId, e.event, e.source, detail);
          const d = e.detail;
          const messageId = typeof d['messageId'] === 'string' ? d['messageId'] : null;
          const sender = typeof d['sender'] === 'string' ? d['sender'].toLowerCase() : null;
          const to = Array.isArray(d['to']) ? d['to'].filter((a): a is string => typeof a === 'string') : [];
          // Only what a search can use makes a row (most attempts name none of it).
          if (messageId === null && sender === null && to.length === 0 && e.event !== 'received') continue;
          upsert.run(e.queueId, e.atMs, messageId, sender, JSON.stringify(to.map((a) => a.toLowerCase())));
        }
      })
      // A full disk or a locked file costs the trace a batch, never the message.
      .catch(() => undefined);
  }

  /**
   * Delete what is older than the retention, a chunk per event-loop turn: a month of a busy server is
   * millions of rows, and one DELETE of them would hold the thread (and the file's write lock) for
   * seconds.
   */
  async prune(): Promise<void> {
    if (this.#pruning) return;
    this.#pruning = true;
    try {
      const cutoff = this.#o.nowMs() - this.#o.retentionMs;
      for (const [table, column, key] of [
        ['events', 'at_ms', 'seq'],
        ['messages', 'first_ms', 'queue_id'],
      ] as const) {
        for (;;) {
          if (this.#closed) return;
          const r = this.#sql
            .sql(
              `DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${column} < ? LIMIT ${PRUNE_CHUNK})`,
            )
            .run(cutoff);
          if (Number(r.changes) < PRUNE_CHUNK) break;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } catch {
      // Busy or full: the next prune tries again.
    } finally {
      this.#pruning = false;
    }
  }

  /** The queue ids matching the query, newest first seen first. */
  find(q: TraceQuery): string[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.queueId !== undefined) {
      where.push('queue_id = ?');
      args.push(q.queueId);
    }
    if (q.messageId !== undefined) {
      // Stored as the header gives it; found with or without the angle brackets.
      const bare = q.messageId.replace(/^<|>$/g, '');
      where.push('(message_id = ? OR message_id = ?)');
      args.push(bare, `<${bare}>`);
    }
    if (q.from !== undefined) {
      where.push('sender = ?');
      args.push(q.from.toLowerCase());
    }
    if (q.to !== undefined) {
      where.push('EXISTS (SELECT 1 FROM json_each(recipients) WHERE value = ?)');
      args.push(q.to.toLowerCase());
    }
    if (q.sinceMs !== undefined) {
      where.push('first_ms >= ?');
      args.push(q.sinceMs);
    }
    if (q.untilMs !== undefined) {
      where.push('first_ms <= ?');
      args.push(q.untilMs);
    }
    const sql =
      `SELECT queue_id FROM messages${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}` +
      ' ORDER BY first_ms DESC, queue_id DESC LIMIT ?';
    args.push(q.limit ?? 100);
    const ids = this.#db
      .prepare(sql)
      .all(...args)
      .map((r) => text(r, 'queue_id'));
    // A queue id asked for alone that has events but no search row (only attempts were traced) counts.
    const alone = Object.entries(q).every(([k, v]) => k === 'queueId' || k === 'limit' || v === undefined);
    if (ids.length === 0 && alone && q.queueId !== undefined && this.events([q.queueId]).length > 0) {
      return [q.queueId];
    }
    return ids;
  }

  /**
   * Every event of these queue ids, in the order they happened, except that a message's `received` and
   * `checked` come first: the session logs them once it has stored the local copies (whose `delivered`
   * events are written first), but they describe what happened before.
   */
  events(queueIds: readonly string[]): TraceEvent[] {
    if (queueIds.length === 0) return [];
    const rank = (e: TraceEvent): number => (e.event === 'received' ? 0 : e.event === 'checked' ? 1 : 2);
    const rows = this.#sql
      .sql(
        `SELECT at_ms, queue_id, event, source, detail FROM events
         WHERE queue_id IN (SELECT value FROM json_each(?)) ORDER BY seq`,
      )
      .all(JSON.stringify(queueIds))
      .map((r) => ({
        atMs: integer(r, 'at_ms'),
        queueId: text(r, 'queue_id'),
        event: text(r, 'event'),
        source: text(r, 'source'),
        detail: JSON.parse(textOrNull(r, 'detail') ?? '{}') as Record<string, unknown>,
      }));
    // Stable: within a rank, and across messages, the stored order stays.
    return rows.toSorted((a, b) => (a.queueId === b.queueId ? rank(a) - rank(b) : 0));
  }

  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    if (this.#pruneTimer !== null) clearInterval(this.#pruneTimer);
    this.#commits?.close();
    this.#db.close();
  }
}
