// The embedded queue: one SQLite file (<dir>/queue.db) for envelopes and per-recipient state, bodies
// inline as BLOBs when small, spooled to <dir>/spool/<id> when large (written as they arrive, never
// held whole in memory). commit() fsyncs the spool file and its directory, then inserts the rows in a
// group-committed transaction (one WAL fsync for every commit of the same event-loop turn); it resolves
// only after that COMMIT, so "250 queued" always means on disk. Before that nothing of the message is
// visible. A full disk (ENOSPC, EDQUOT, SQLITE_FULL) becomes 452 4.3.1 and leaves nothing behind.
// A message (rows and spool file) is removed once every recipient is delivered or bounced.
// Other processes (the CLI) may open the same dir and read while the server runs (WAL).
// Operator changes (hold, release, remove, flush, bounceNow) also bump the one-row `wakeups` counter in
// the same transaction: a second process (the CLI) cannot call the server's listeners, so the server's
// worker polls changeCounter() instead; the row is cheaper to read than any scan and, unlike
// PRAGMA data_version, also moves for changes made through this same connection (testable in-process).
// The `change_log` table says what such a change was (recordChange), for the running server's log.
// Deliberately not here: retry schedules (schedule.ts; delivery decides nextAttemptMs), DSNs, claiming
// work across several workers (one delivery worker per server).

import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import type { Envelope } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { nullLogger } from '../core/ports.ts';
import { BodySink, DEFAULT_SPILL_BYTES } from '../db/body-sink.ts';
import type { StoredBody } from '../db/body-sink.ts';
import type { GroupCommitStats } from '../db/group-commit.ts';
import { GroupCommit } from '../db/group-commit.ts';
import { SORTABLE_ID_PATTERN, SortableIds } from '../db/sortable-id.ts';
import type { Row } from '../db/sqlite.ts';
import { attempt, bytesOrNull, integer, openDatabase, Statements, text, textOrNull } from '../db/sqlite.ts';
import type { StorageFs } from '../db/storage-fs.ts';
import { nodeStorageFs, removeQuietly, storageError } from '../db/storage-fs.ts';
import { SpooledMessageWriter } from './spooled-writer.ts';
import type {
  MessageWriter,
  Queue,
  QueueAge,
  QueueChange,
  QueuedMessage,
  QueueStats,
  QueuedRecipient,
  RecipientOutcome,
  RecipientStatus,
} from './queue.ts';
import { CHANGE_LOG_KEEP, QUEUE_AGES } from './queue.ts';

/** A change-log detail as stored; a row written by hand that is not an object is kept, wrapped. */
function parseDetail(json: string): Readonly<Record<string, unknown>> {
  try {
    const value: unknown = JSON.parse(json);
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // fall through: shown as stored
  }
  return { detail: json };
}

export interface SqliteQueueOptions {
  /** The queue's folder (e.g. data/queue): queue.db and spool/ live here. */
  readonly dir: string;
  readonly clock: Clock;
  readonly logger?: Logger | undefined;
  /** Bodies larger than this go to a spool file instead of a BLOB. */
  readonly spillBytes?: number | undefined;
  /** Extra time to gather commits into one transaction; 0 (default) means the next event-loop turn. */
  readonly groupCommitWindowMs?: number | undefined;
  /**
   * On open, spool files with no row (a crash before commit) are deleted once untouched for this long.
   * The grace keeps a second process (the CLI) from deleting the running server's messages in progress,
   * which look exactly like orphans; every write touches the file, and DATA times out long before.
   */
  readonly orphanGraceMs?: number | undefined;
  /**
   * 'owner' (default) looks for orphans at open. 'session': another connection of this process owns the
   * spool (a session thread beside the main thread) and this one never sweeps it.
   */
  readonly role?: 'owner' | 'session' | undefined;
  /** File operations for spool files; tests inject a full disk here. */
  readonly fs?: StorageFs | undefined;
  /** Test seam: sees the database once open (e.g. to make it "full" with PRAGMA max_page_count). */
  readonly onDatabase?: ((db: DatabaseSync) => void) | undefined;
}

const SPOOL = 'spool';
export const DEFAULT_ORPHAN_GRACE_MS = 60 * 60 * 1000;

const MIGRATIONS = [
  `CREATE TABLE messages (
     id TEXT PRIMARY KEY,
     envelope TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     body_file TEXT,
     held INTEGER NOT NULL DEFAULT 0,
     created_ms INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE bodies (
     message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
     data BLOB NOT NULL
   ) STRICT;
   CREATE TABLE recipients (
     message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
     idx INTEGER NOT NULL,
     address TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('queued', 'deferred', 'delivered', 'bounced')),
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_ms INTEGER NOT NULL,
     last_reply TEXT,
     PRIMARY KEY (message_id, idx)
   ) STRICT, WITHOUT ROWID;
   CREATE INDEX recipients_due ON recipients (next_attempt_ms) WHERE status IN ('queued', 'deferred');`,
  `ALTER TABLE recipients ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE recipients ADD COLUMN bounce_requested INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE recipients ADD COLUMN remote_mta TEXT;
   ALTER TABLE recipients ADD COLUMN diagnostic TEXT;
   CREATE TABLE wakeups (id INTEGER PRIMARY KEY CHECK (id = 1), counter INTEGER NOT NULL) STRICT;
   INSERT INTO wakeups (id, counter) VALUES (1, 0);`,
  `ALTER TABLE messages ADD COLUMN prefix BLOB;`,
  // due() walks this index in order and stops at its LIMIT instead of grouping every pending recipient.
  `CREATE INDEX recipients_due_order ON recipients (next_attempt_ms, message_id) WHERE status IN ('queued', 'deferred');
   DROP INDEX IF EXISTS recipients_due;`,
  // What the CLI changed, for the running server's log (recordChange); detail is a JSON object.
  `CREATE TABLE change_log (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     at_ms INTEGER NOT NULL,
     event TEXT NOT NULL,
     detail TEXT NOT NULL
   ) STRICT;`,
  // MT-PRIORITY (RFC 6710): messages with a priority other than 0 are few; due() reads them first/last.
  `ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX messages_priority ON messages (priority) WHERE priority != 0;`,
];

/** Most bytes of fresh bodies kept in memory for the delivery worker's first read. */
const FRESH_MAX_BYTES = 8 * 1024 * 1024;

const PENDING = `status IN ('queued', 'deferred')`;

export class SqliteQueue implements Queue {
  readonly #dir: string;
  readonly #spoolDir: string;
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #commits: GroupCommit;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #fs: StorageFs;
  readonly #spillBytes: number;
  readonly #ids = new SortableIds();
  readonly #listeners = new Set<(id: string) => void>();
  /**
   * Bodies of messages just committed, kept until their first settle: the delivery worker reads a new
   * message back within milliseconds, and this spares the read (small bodies only, bounded in all).
   */
  readonly #fresh = new Map<string, { readonly prefix: Uint8Array | null; readonly data: Uint8Array }>();
  #freshBytes = 0;
  #closed = false;

  private constructor(options: SqliteQueueOptions, db: DatabaseSync) {
    this.#dir = options.dir;
    this.#spoolDir = join(options.dir, SPOOL);
    this.#db = db;
    this.#sql = new Statements(db);
    this.#commits = new GroupCommit(db, { windowMs: options.groupCommitWindowMs });
    this.#clock = options.clock;
    this.#log = options.logger ?? nullLogger;
    this.#fs = options.fs ?? nodeStorageFs;
    this.#spillBytes = options.spillBytes ?? DEFAULT_SPILL_BYTES;
  }

  static async open(options: SqliteQueueOptions): Promise<SqliteQueue> {
    const fs = options.fs ?? nodeStorageFs;
    await fs.mkdir(join(options.dir, SPOOL));
    const db = openDatabase(join(options.dir, 'queue.db'), { migrations: MIGRATIONS });
    const queue = new SqliteQueue(options, db);
    try {
      options.onDatabase?.(db);
      if ((options.role ?? 'owner') === 'owner')
        await queue.#removeOrphans(options.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS);
    } catch (err) {
      db.close();
      throw err;
    }
    return queue;
  }

  /** How many transactions the commits and settles took (group commit makes it far fewer than calls). */
  get commitStats(): GroupCommitStats {
    return this.#commits.stats;
  }

  begin(): MessageWriter {
    if (this.#closed) throw new Error('queue: closed');
    const id = this.#ids.next(this.#clock.nowMs());
    const sink = new BodySink({ path: join(this.#spoolDir, id), spillBytes: this.#spillBytes, fs: this.#fs });
    return new SpooledMessageWriter(id, sink, {
      store: async (envelope, body, prefix) => {
        // The spool file is the queue's now: its name must survive a crash before the rows point at it.
        await sink.nameDurable();
        await this.#insert(id, envelope, body, prefix);
      },
      failure: storageError,
    });
  }

  /** Called by a writer once its body is durable: insert the rows in the next group transaction. */
  async #insert(id: string, envelope: Envelope, body: StoredBody, prefix: Uint8Array | null): Promise<void> {
    if (this.#closed) throw new Error('queue: closed');
    if (envelope.recipients.length === 0) throw new Error('queue: an envelope needs at least one recipient');
    const nowMs = this.#clock.nowMs();
    const envelopeJson = JSON.stringify(envelope);
    await this.#commits.run(() => {
      this.#sql
        .sql(
          'INSERT INTO messages (id, envelope, size_bytes, body_file, created_ms, prefix, priority) VALUES (?, ?, ?, ?, ?, ?, ?)',
        )
        .run(
          id,
          envelopeJson,
          body.sizeBytes + (prefix?.length ?? 0),
          body.kind === 'file' ? join(SPOOL, id) : null,
          nowMs,
          prefix,
          envelope.priority ?? 0,
        );
      if (body.kind === 'inline') {
        this.#sql.sql('INSERT INTO bodies (message_id, data) VALUES (?, ?)').run(id, body.bytes);
      }
      const rcpt = this.#sql.sql(
        `INSERT INTO recipients (message_id, idx, address, status, next_attempt_ms) VALUES (?, ?, ?, 'queued', ?)`,
      );
      // FUTURERELEASE (RFC 4865): a held message's first attempt is its release time.
      const firstAttemptMs = Math.max(nowMs, envelope.holdUntilMs ?? nowMs);
      envelope.recipients.forEach((r, idx) => rcpt.run(id, idx, r.address, firstAttemptMs));
    });
    if (body.kind === 'inline' && this.#freshBytes + body.sizeBytes <= FRESH_MAX_BYTES) {
      this.#fresh.set(id, { prefix, data: body.bytes });
      this.#freshBytes += body.sizeBytes;
    }
    this.#log.event(Events.queueCommitted, {
      queueId: id,
      sizeBytes: body.sizeBytes,
      recipients: envelope.recipients.length,
      spooled: body.kind === 'file',
    });
    for (const listener of this.#listeners) {
      try {
        listener(id);
      } catch (err) {
        this.#log.error(Events.queueListenerFailed, { queueId: id, err });
      }
    }
  }

  get(id: string): Promise<QueuedMessage | null> {
    return attempt(() => this.#get(id, false));
  }

  #get(id: string, dueAt: number | false): QueuedMessage | null {
    const row = this.#sql.sql('SELECT id, envelope, size_bytes, held FROM messages WHERE id = ?').get(id);
    if (row === undefined) return null;
    const rows =
      dueAt === false
        ? this.#sql.sql('SELECT * FROM recipients WHERE message_id = ? ORDER BY idx').all(id)
        : this.#sql
            .sql(
              `SELECT * FROM recipients WHERE message_id = ? AND ${PENDING} AND next_attempt_ms <= ? ORDER BY idx`,
            )
            .all(id, dueAt);
    return toMessage(row, rows.map(toRecipient));
  }

  list(): Promise<QueuedMessage[]> {
    return attempt(() => this.#list());
  }

  stats(nowMs: number): Promise<QueueStats> {
    return attempt(() => {
      const totals =
        this.#sql.sql('SELECT count(*) AS n, coalesce(sum(held), 0) AS held FROM messages').get() ?? {};
      const recipients: Record<RecipientStatus, number> = {
        queued: 0,
        deferred: 0,
        delivered: 0,
        bounced: 0,
      };
      for (const r of this.#sql.sql('SELECT status, count(*) AS n FROM recipients GROUP BY status').all()) {
        recipients[text(r, 'status') as RecipientStatus] = integer(r, 'n');
      }
      const pendingByAge: Record<QueueAge, number> = { '5m': 0, '1h': 0, '1d': 0, older: 0 };
      let oldest: number | null = null;
      const pending = this.#sql.sql(
        `SELECT created_ms FROM messages m WHERE EXISTS (SELECT 1 FROM recipients r
           WHERE r.message_id = m.id AND r.status IN ('queued', 'deferred'))`,
      );
      for (const r of pending.iterate()) {
        const created = integer(r, 'created_ms');
        oldest = oldest === null ? created : Math.min(oldest, created);
        const age = nowMs - created;
        const bucket = QUEUE_AGES.find(([, maxMs]) => age < maxMs)?.[0] ?? 'older';
        pendingByAge[bucket]++;
      }
      return {
        messages: integer(totals, 'n'),
        held: integer(totals, 'held'),
        recipients,
        pendingByAge,
        oldestPendingMs: oldest,
      };
    });
  }

  #list(): QueuedMessage[] {
    const byMessage = new Map<string, QueuedRecipient[]>();
    for (const r of this.#sql.sql('SELECT * FROM recipients ORDER BY message_id, idx').all()) {
      const id = text(r, 'message_id');
      let list = byMessage.get(id);
      if (list === undefined) byMessage.set(id, (list = []));
      list.push(toRecipient(r));
    }
    const rows = this.#sql.sql('SELECT id, envelope, size_bytes, held FROM messages ORDER BY id').all();
    return rows.map((row) => toMessage(row, byMessage.get(text(row, 'id')) ?? []));
  }

  bodyFile(id: string): Promise<{
    readonly path: string;
    readonly sizeBytes: number;
    readonly prefix: Uint8Array | null;
  } | null> {
    return attempt(() => {
      if (this.#fresh.has(id)) return null;
      const row = this.#sql.sql('SELECT body_file, prefix, size_bytes FROM messages WHERE id = ?').get(id);
      const file = row === undefined ? null : textOrNull(row, 'body_file');
      if (row === undefined || file === null) return null;
      const prefix = bytesOrNull(row, 'prefix');
      // size_bytes counts the prefix too (what a DSN reports as the message's size).
      const sizeBytes = integer(row, 'size_bytes') - (prefix?.length ?? 0);
      return {
        path: join(this.#dir, file),
        sizeBytes,
        prefix: prefix !== null && prefix.length > 0 ? prefix : null,
      };
    });
  }

  async *readBody(id: string): AsyncIterable<Uint8Array> {
    const fresh = this.#fresh.get(id);
    if (fresh !== undefined) {
      if (fresh.prefix !== null && fresh.prefix.length > 0) yield fresh.prefix;
      yield fresh.data;
      return;
    }
    const row = this.#sql
      .sql(
        'SELECT m.body_file, m.prefix, b.data FROM messages m LEFT JOIN bodies b ON b.message_id = m.id WHERE m.id = ?',
      )
      .get(id);
    if (row === undefined) throw new Error(`queue: no message ${id}`);
    const prefix = bytesOrNull(row, 'prefix');
    if (prefix !== null && prefix.length > 0) yield prefix;
    const data = bytesOrNull(row, 'data');
    if (data !== null) {
      yield data;
      return;
    }
    const file = text(row, 'body_file');
    for await (const chunk of createReadStream(join(this.#dir, file), { highWaterMark: 64 * 1024 })) {
      yield chunk as Buffer;
    }
  }

  /** Messages with recipients due at nowMs (not held), oldest due first; each lists only its due recipients. */
  due(nowMs: number, limit: number, skip?: ReadonlySet<string>): Promise<QueuedMessage[]> {
    return attempt(() => this.#due(nowMs, limit, skip));
  }

  nextAttemptAfter(nowMs: number): Promise<number | null> {
    return attempt(() => {
      const row = this.#sql
        .sql(
          `SELECT min(r.next_attempt_ms) AS at FROM recipients r JOIN messages m ON m.id = r.message_id
           WHERE r.${PENDING} AND r.next_attempt_ms > ? AND m.held = 0`,
        )
        .get(nowMs);
      const at = row?.['at'];
      return typeof at === 'number' || typeof at === 'bigint' ? Number(at) : null;
    });
  }

  #due(nowMs: number, limit: number, skip: ReadonlySet<string> | undefined): QueuedMessage[] {
    const want = Math.max(0, Math.floor(limit));
    const out: QueuedMessage[] = [];
    if (want === 0) return out;
    const seen = new Set<string>();
    const take = (id: string): boolean => {
      if (seen.has(id) || skip?.has(id) === true) return false;
      seen.add(id);
      const m = this.#get(id, nowMs);
      if (m !== null) out.push(m);
      return out.length === want;
    };
    // MT-PRIORITY (RFC 6710): due messages above 0 first, highest first; those below 0 after the rest.
    const prioritized = (sign: '>' | '<'): string[] =>
      this.#sql
        .sql(
          `SELECT m.id AS id FROM messages m WHERE m.priority ${sign} 0 AND m.held = 0
             AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.${PENDING} AND r.next_attempt_ms <= ?)
           ORDER BY m.priority DESC, m.id LIMIT ?`,
        )
        .all(nowMs, want + (skip?.size ?? 0))
        .map((row) => text(row, 'id'));
    for (const id of prioritized('>')) if (take(id)) return out;
    // Recipients in due order, straight off the index; a message shows up once per due recipient, so
    // read in pages until `want` distinct messages (each is listed where its earliest recipient is).
    const page = this.#sql.sql(
      `SELECT r.message_id AS id, r.next_attempt_ms AS at FROM recipients r JOIN messages m ON m.id = r.message_id
       WHERE r.${PENDING} AND r.next_attempt_ms <= ? AND m.held = 0 AND m.priority = 0
         AND (r.next_attempt_ms, r.message_id) > (?, ?)
       ORDER BY r.next_attempt_ms, r.message_id LIMIT ?`,
    );
    let after: [number, string] = [-Infinity, ''];
    const pageSize = Math.max(16, want * 2);
    for (;;) {
      const rows = page.all(nowMs, after[0], after[1], pageSize);
      for (const row of rows) {
        const id = text(row, 'id');
        after = [integer(row, 'at'), id];
        if (take(id)) return out;
      }
      if (rows.length < pageSize) break;
    }
    for (const id of prioritized('<')) if (take(id)) return out;
    return out;
  }

  #forget(id: string): void {
    const fresh = this.#fresh.get(id);
    if (fresh === undefined) return;
    this.#fresh.delete(id);
    this.#freshBytes -= fresh.data.byteLength;
  }

  async settle(id: string, index: number, outcome: RecipientOutcome): Promise<void> {
    if (this.#closed) throw new Error('queue: closed');
    // The first attempt is over (or under way for its last recipients, which read the body already).
    this.#forget(id);
    const removedFile = await this.#commits.run(() => {
      const changed = this.#sql
        .sql(
          `UPDATE recipients SET status = ?, attempts = attempts + 1, last_reply = ?,
             next_attempt_ms = coalesce(?, next_attempt_ms), remote_mta = ?, diagnostic = ?
           WHERE message_id = ? AND idx = ? AND ${PENDING}`,
        )
        .run(
          outcome.status,
          outcome.reply,
          outcome.status === 'deferred' ? outcome.nextAttemptMs : null,
          outcome.remoteMta ?? null,
          outcome.diagnostic ?? null,
          id,
          index,
        );
      if (changed.changes === 0) {
        const exists = this.#sql
          .sql('SELECT status FROM recipients WHERE message_id = ? AND idx = ?')
          .get(id, index);
        throw new Error(
          exists === undefined
            ? `queue: no recipient ${index} of message ${id}`
            : `queue: recipient ${index} of message ${id} is already ${text(exists, 'status')}`,
        );
      }
      const left = this.#sql
        .sql(`SELECT count(*) AS n FROM recipients WHERE message_id = ? AND ${PENDING}`)
        .get(id);
      if (integer(left!, 'n') > 0) return undefined;
      return this.#deleteRows(id);
    });
    if (removedFile === undefined) return;
    this.#log.event(Events.queueRemoved, { queueId: id });
    await this.#unlinkSpool(id, removedFile.file);
  }

  /** Inside a transaction: delete the message's rows; undefined when there was no such message. */
  #deleteRows(id: string): { file: string | null } | undefined {
    const msg = this.#sql.sql('SELECT body_file FROM messages WHERE id = ?').get(id);
    if (msg === undefined) return undefined;
    this.#sql.sql('DELETE FROM messages WHERE id = ?').run(id);
    return { file: textOrNull(msg, 'body_file') };
  }

  /** After COMMIT: a crash before this unlink leaves an orphan that the next open removes. */
  async #unlinkSpool(id: string, file: string | null): Promise<void> {
    if (file === null) return;
    const err = await removeQuietly(this.#fs, join(this.#dir, file));
    if (err !== null) this.#log.warn(Events.queueUnlinkFailed, { queueId: id, err });
  }

  #bumpChangeCounter(): void {
    this.#sql.sql('UPDATE wakeups SET counter = counter + 1 WHERE id = 1').run();
  }

  /** Run an operator change in the next group transaction, bumping the change counter with it. */
  #change<T>(op: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('queue: closed'));
    return this.#commits.run(() => {
      const result = op();
      this.#bumpChangeCounter();
      return result;
    });
  }

  async hold(id: string): Promise<boolean> {
    const found = await this.#change(
      () => this.#sql.sql('UPDATE messages SET held = 1 WHERE id = ?').run(id).changes > 0,
    );
    if (found) this.#log.event(Events.queueHeld, { queueId: id });
    return found;
  }

  async release(id: string): Promise<boolean> {
    const found = await this.#change(
      () => this.#sql.sql('UPDATE messages SET held = 0 WHERE id = ?').run(id).changes > 0,
    );
    if (found) this.#log.event(Events.queueReleased, { queueId: id });
    return found;
  }

  async remove(id: string): Promise<boolean> {
    this.#forget(id);
    const removed = await this.#change(() => this.#deleteRows(id));
    if (removed === undefined) return false;
    this.#log.event(Events.queueDeleted, { queueId: id });
    await this.#unlinkSpool(id, removed.file);
    return true;
  }

  async flush(id?: string): Promise<number> {
    const nowMs = this.#clock.nowMs();
    const changed = await this.#change(() => {
      // min(): a recipient already due keeps its place in the due() order.
      const held = id === undefined ? 'held = 0' : 'held = 0 AND id = ?';
      const stmt = this.#sql.sql(
        `UPDATE recipients SET next_attempt_ms = min(next_attempt_ms, ?)
         WHERE ${PENDING} AND message_id IN (SELECT id FROM messages WHERE ${held})`,
      );
      return Number((id === undefined ? stmt.run(nowMs) : stmt.run(nowMs, id)).changes);
    });
    this.#log.event(Events.queueFlushed, { queueId: id ?? null, recipients: changed });
    return changed;
  }

  async bounceNow(id: string): Promise<number> {
    const nowMs = this.#clock.nowMs();
    const marked = await this.#change(() => {
      const n = this.#sql
        .sql(
          `UPDATE recipients SET bounce_requested = 1, next_attempt_ms = min(next_attempt_ms, ?)
           WHERE message_id = ? AND ${PENDING}`,
        )
        .run(nowMs, id).changes;
      if (n > 0) this.#sql.sql('UPDATE messages SET held = 0 WHERE id = ?').run(id);
      return Number(n);
    });
    if (marked > 0) this.#log.event(Events.queueBounceRequested, { queueId: id, recipients: marked });
    return marked;
  }

  async markDelayWarned(id: string, index: number): Promise<void> {
    if (this.#closed) throw new Error('queue: closed');
    await this.#commits.run(() => {
      const changed = this.#sql
        .sql('UPDATE recipients SET delay_warned = 1 WHERE message_id = ? AND idx = ?')
        .run(id, index);
      if (changed.changes === 0) throw new Error(`queue: no recipient ${index} of message ${id}`);
    });
  }

  changeCounter(): Promise<number> {
    return attempt(() =>
      integer(this.#sql.sql('SELECT counter FROM wakeups WHERE id = 1').get()!, 'counter'),
    );
  }

  async recordChange(event: string, detail: Readonly<Record<string, unknown>>): Promise<void> {
    const atMs = this.#clock.nowMs();
    await this.#change(() => {
      const { lastInsertRowid } = this.#sql
        .sql('INSERT INTO change_log (at_ms, event, detail) VALUES (?, ?, ?)')
        .run(atMs, event, JSON.stringify(detail));
      this.#sql.sql('DELETE FROM change_log WHERE seq <= ?').run(Number(lastInsertRowid) - CHANGE_LOG_KEEP);
    });
  }

  changesSince(afterSeq: number, limit: number): Promise<QueueChange[]> {
    return attempt(() =>
      this.#sql
        .sql('SELECT seq, at_ms, event, detail FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?')
        .all(afterSeq, limit)
        .map((r) => ({
          seq: integer(r, 'seq'),
          atMs: integer(r, 'at_ms'),
          event: text(r, 'event'),
          detail: parseDetail(text(r, 'detail')),
        })),
    );
  }

  lastChangeSeq(): Promise<number> {
    return attempt(() =>
      integer(this.#sql.sql('SELECT coalesce(max(seq), 0) AS seq FROM change_log').get()!, 'seq'),
    );
  }

  onCommit(listener: (id: string) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#commits.close();
    this.#listeners.clear();
    this.#db.close();
    return Promise.resolve();
  }

  async #removeOrphans(graceMs: number): Promise<void> {
    const known = new Set(
      this.#sql
        .sql('SELECT body_file FROM messages WHERE body_file IS NOT NULL')
        .all()
        .map((r) => text(r, 'body_file')),
    );
    // File times come from the file system's clock, so compare with the wall clock, not the injected one.
    const cutoffMs = Date.now() - graceMs;
    for (const name of await readdir(this.#spoolDir)) {
      if (known.has(join(SPOOL, name))) continue;
      const info = await stat(join(this.#spoolDir, name)).catch(() => null);
      if (info === null || !info.isFile() || info.mtimeMs > cutoffMs) continue;
      const err = await removeQuietly(this.#fs, join(this.#spoolDir, name));
      if (err === null)
        this.#log.warn(Events.queueOrphanRemoved, {
          file: name,
          queueId: SORTABLE_ID_PATTERN.test(name) ? name : null,
        });
      else this.#log.warn(Events.queueUnlinkFailed, { file: name, err });
    }
  }
}

function toRecipient(r: Row): QueuedRecipient {
  const remoteMta = textOrNull(r, 'remote_mta');
  const diagnostic = textOrNull(r, 'diagnostic');
  return {
    index: integer(r, 'idx'),
    address: text(r, 'address'),
    status: text(r, 'status') as RecipientStatus,
    attempts: integer(r, 'attempts'),
    nextAttemptMs: integer(r, 'next_attempt_ms'),
    lastReply: textOrNull(r, 'last_reply'),
    delayWarned: integer(r, 'delay_warned') !== 0,
    bounceRequested: integer(r, 'bounce_requested') !== 0,
    ...(remoteMta === null ? {} : { remoteMta }),
    ...(diagnostic === null ? {} : { diagnostic }),
  };
}

function toMessage(row: Row, recipients: QueuedRecipient[]): QueuedMessage {
  const envelope = JSON.parse(text(row, 'envelope')) as Envelope;
  return {
    id: text(row, 'id'),
    envelope,
    sizeBytes: integer(row, 'size_bytes'),
    recipients,
    held: integer(row, 'held') !== 0,
    arrivalMs: envelope.receivedAtMs,
  };
}
