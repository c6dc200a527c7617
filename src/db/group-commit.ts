// Group commit: write operations that arrive within the same event-loop turn (or a short window) run
// in ONE SQLite transaction, and each caller's promise resolves only once that transaction is durable.
// This is what lets the queue answer "250 queued" only after fsync without paying one fsync per message.
// Each operation runs inside its own SAVEPOINT: an operation that throws (a constraint, a bug) is
// rolled back alone and only its caller sees the error. When SQLite drops the whole transaction
// (SQLITE_FULL, I/O errors) or COMMIT fails, every operation of the batch fails: none of it is visible.
//
// Durability, for a database in a file ('background', the default): node:sqlite is synchronous, and
// under synchronous=FULL every COMMIT's fsync blocked the event loop (35-40 % of the busy time under
// load, bench/). So the connection runs synchronous=NORMAL (COMMIT only writes the WAL) and the WAL is
// fsynced here, on the libuv thread pool; callers resolve when the fsync that began after their COMMIT
// ends. One fsync is in flight at a time and every transaction committed meanwhile waits for the next:
// the slower the disk, the bigger the groups. This is as durable as FULL: WAL frames carry cumulative
// checksums, so recovery keeps exactly the transactions whose frames reached the disk, and the fsync
// covers every frame written before it began. Checkpoints run on a worker thread (checkpointer.ts,
// wal_autocheckpoint=0 here); NORMAL makes them fsync the WAL before and the database after copying.
// Reads on this connection see a transaction as soon as it commits, before it is durable: the delivery
// side may start on a message whose 250 is still waiting for its fsync (a crash then loses the 250,
// and the client's retry is the RFC 5321 §6.1 duplicate). In-memory databases use 'commit'.

import { channel } from 'node:diagnostics_channel';
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { Checkpointer } from './checkpointer.ts';

/** Operations committed between two checkpoint requests (about 3-4 WAL pages each for a queued message). */
const CHECKPOINT_EVERY_OPS = 1000;
const CHECKPOINT_EVERY_MS = 1000;
/**
 * Each WAL fsync's duration and how many commits it covered, for whoever subscribes (the server's metrics,
 * src/admin/metrics.ts): a diagnostics channel costs one property read when nobody does.
 */
export const fsyncChannel = channel('tern.db.fsync');

/** What fsyncChannel carries. */
export interface FsyncObservation {
  readonly seconds: number;
  readonly commits: number;
}

/** Least time between the starts of two WAL fsyncs (group-commit latency traded for fewer fsyncs). */
const MIN_SYNC_INTERVAL_MS = 2;
/** WAL length (frames, 4 KiB pages) from which this thread finishes a checkpoint the worker began. */
const CATCH_UP_FRAMES = 1024;

export interface GroupCommitOptions {
  /** Extra time to gather operations before committing; 0 commits on the next event-loop turn. */
  readonly windowMs?: number | undefined;
  /**
   * 'background' (default for a database in a file): COMMIT writes the WAL and the WAL is fsynced off
   * the event loop. 'commit': synchronous=FULL, COMMIT itself fsyncs (always so in memory). 'none':
   * synchronous=NORMAL and no WAL fsync at all (callers resolve at COMMIT): consistent after any crash,
   * the last transactions may be lost to a power failure; checkpoints still run off the event loop.
   * For what is kept for people, not promised to anyone (the message trace).
   */
  readonly sync?: 'background' | 'commit' | 'none' | undefined;
}

export interface GroupCommitStats {
  /** Transactions committed. */
  readonly transactions: number;
  /** Operations that ran, successful or not. */
  readonly operations: number;
  /** WAL fsyncs done by this class ('background'); 0 when COMMIT syncs. */
  readonly syncs: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface Pending {
  readonly op: (db: DatabaseSync) => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

export class GroupCommit {
  readonly #db: DatabaseSync;
  readonly #windowMs: number;
  #pending: Pending[] = [];
  #timer: NodeJS.Immediate | NodeJS.Timeout | null = null;
  #closed = false;
  #transactions = 0;
  #operations = 0;
  #syncs = 0;
  /** The database file when this class fsyncs its WAL, null when COMMIT does. */
  readonly #path: string | null;
  /** 'none': commits resolve at COMMIT, nothing is fsynced here. */
  readonly #noSync: boolean;
  #walFd: number | null = null;
  /** Committed, not yet covered by an fsync. */
  #unsynced: Array<{ item: Pending; outcome: Outcome }> = [];
  #syncing = false;
  #opsSinceCheckpoint = 0;
  #lastCheckpointMs = Date.now();
  #checkpointing = false;
  #syncTimer: NodeJS.Timeout | null = null;
  #lastSyncStart = -Infinity;
  #lastGroupSize = 0;
  /** Transaction control, prepared once: two savepoint statements per operation add up under load. */
  readonly #control: Record<'begin' | 'savepoint' | 'release' | 'rollbackTo' | 'commit', StatementSync>;

  constructor(db: DatabaseSync, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#control = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      savepoint: db.prepare('SAVEPOINT op'),
      release: db.prepare('RELEASE op'),
      rollbackTo: db.prepare('ROLLBACK TO op'),
      commit: db.prepare('COMMIT'),
    };
    this.#windowMs = options.windowMs ?? 0;
    const location = db.location();
    const sync = options.sync ?? 'background';
    this.#noSync = sync === 'none' && location !== null;
    this.#path = sync === 'background' || this.#noSync ? location : null;
    if (this.#path !== null) {
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec('PRAGMA wal_autocheckpoint = 0');
    }
  }

  get stats(): GroupCommitStats {
    return { transactions: this.#transactions, operations: this.#operations, syncs: this.#syncs };
  }

  /** Queue op for the next group transaction; resolves with its result once that transaction committed. */
  run<T>(op: (db: DatabaseSync) => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('group commit: closed'));
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Commit what is pending now, make it durable (blocking) and refuse new work. */
  close(): void {
    this.#flush();
    this.#closed = true;
    if (this.#syncTimer !== null) clearTimeout(this.#syncTimer);
    this.#syncTimer = null;
    if (this.#path === null) return;
    const waiting = this.#unsynced;
    this.#unsynced = [];
    Checkpointer.started()?.forget(this.#path);
    if (waiting.length === 0) {
      if (!this.#syncing) this.#closeWal();
      return;
    }
    let error: unknown = null;
    try {
      const fd = this.#wal();
      fsyncSync(fd);
      // An fsync still in flight closes the descriptor when it ends.
      if (!this.#syncing) this.#closeWal();
    } catch (err) {
      error = err;
    }
    settle(waiting, error);
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    this.#timer =
      this.#windowMs > 0
        ? setTimeout(() => this.#flush(), this.#windowMs)
        : setImmediate(() => this.#flush());
  }

  #flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer as NodeJS.Timeout);
      clearImmediate(this.#timer as NodeJS.Immediate);
      this.#timer = null;
    }
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    const db = this.#db;
    const results: Outcome[] = [];
    try {
      this.#control.begin.run();
      for (const item of batch) {
        this.#operations++;
        this.#control.savepoint.run();
        try {
          results.push({ ok: true, value: item.op(db) });
          this.#control.release.run();
        } catch (error) {
          // SQLITE_FULL and I/O errors roll back the whole transaction: the batch is lost.
          if (!db.isTransaction) throw error;
          this.#control.rollbackTo.run();
          this.#control.release.run();
          results.push({ ok: false, error });
        }
      }
      this.#control.commit.run();
      this.#transactions++;
    } catch (error) {
      try {
        if (db.isTransaction) db.exec('ROLLBACK');
      } catch {
        // The original error is the one worth reporting; a failed ROLLBACK leaves SQLite to recover.
      }
      for (const item of batch) item.reject(error);
      return;
    }
    if (this.#path === null) {
      settle(
        batch.map((item, i) => ({ item, outcome: results[i]! })),
        null,
      );
      return;
    }
    this.#opsSinceCheckpoint += batch.length;
    if (this.#noSync) {
      settle(
        batch.map((item, i) => ({ item, outcome: results[i]! })),
        null,
      );
      this.#maybeCheckpoint();
      return;
    }
    batch.forEach((item, i) => {
      const outcome = results[i]!;
      // A failed operation wrote nothing: its caller need not wait for the disk.
      if (outcome.ok) this.#unsynced.push({ item, outcome });
      else item.reject(outcome.error);
    });
    this.#startSync();
  }

  #wal(): number {
    if (this.#walFd === null) {
      // WAL mode made the file when the database was opened; its directory entry is made durable once.
      this.#walFd = openSync(`${this.#path!}-wal`, 'r');
      const dir = openSync(dirname(this.#path!), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    return this.#walFd;
  }

  #closeWal(): void {
    if (this.#walFd !== null) closeSync(this.#walFd);
    this.#walFd = null;
  }

  #startSync(): void {
    if (this.#syncing || this.#syncTimer !== null || this.#unsynced.length === 0) return;
    // Back-to-back fsyncs each cost the event loop a thread-pool round trip (~0.1 ms of this thread's
    // time) whatever they cover: under load (the last fsync covered several callers) spacing their
    // starts gathers more under each; a lone writer never waits.
    const waitMs = this.#lastSyncStart + MIN_SYNC_INTERVAL_MS - performance.now();
    if (waitMs > 0 && this.#lastGroupSize > 1 && !this.#closed) {
      this.#syncTimer = setTimeout(() => {
        this.#syncTimer = null;
        this.#startSync();
      }, waitMs);
      return;
    }
    this.#lastSyncStart = performance.now();
    const group = this.#unsynced;
    this.#lastGroupSize = group.length;
    this.#unsynced = [];
    let fd: number;
    try {
      fd = this.#wal();
    } catch (err) {
      settle(group, err);
      return;
    }
    this.#syncing = true;
    const started = this.#lastSyncStart;
    fsync(fd, (err) => {
      this.#syncing = false;
      this.#syncs++;
      if (fsyncChannel.hasSubscribers) {
        const seen: FsyncObservation = {
          seconds: (performance.now() - started) / 1000,
          commits: group.length,
        };
        fsyncChannel.publish(seen);
      }
      // An fsync error may have dropped the dirty pages (a later fsync could then "succeed" without
      // them): the waiting callers fail, so no 250 is given for data that may not be on disk.
      settle(group, err);
      if (this.#closed) {
        this.#closeWal();
        return;
      }
      this.#maybeCheckpoint();
      this.#startSync();
    });
  }

  #maybeCheckpoint(): void {
    if (this.#checkpointing || this.#opsSinceCheckpoint === 0) return;
    const now = Date.now();
    if (
      this.#opsSinceCheckpoint < CHECKPOINT_EVERY_OPS &&
      now - this.#lastCheckpointMs < CHECKPOINT_EVERY_MS
    ) {
      return;
    }
    this.#opsSinceCheckpoint = 0;
    this.#lastCheckpointMs = now;
    this.#checkpointing = true;
    const path = this.#path!;
    Checkpointer.shared()
      .checkpoint(path)
      .then(
        ({ walFrames }) => {
          // Under steady writes the worker never catches up with the WAL's end, and SQLite reuses the
          // WAL from its start only once every frame is copied: the frames added since the worker's
          // checkpoint began are copied here (a few, plus two short fsyncs on this thread).
          if (walFrames >= CATCH_UP_FRAMES && !this.#closed) {
            this.#db.exec('PRAGMA wal_checkpoint(PASSIVE)');
          }
        },
        () => {
          // No worker: checkpoint here rather than let the WAL grow without bound.
          if (!this.#closed) this.#db.exec('PRAGMA wal_checkpoint(PASSIVE)');
        },
      )
      .catch(() => {
        // A busy or failed checkpoint is retried at the next request; the WAL keeps every frame.
      })
      .finally(() => {
        this.#checkpointing = false;
      });
  }
}

function settle(group: ReadonlyArray<{ item: Pending; outcome: Outcome }>, error: unknown): void {
  for (const { item, outcome } of group) {
    if (error !== null && error !== undefined) item.reject(error);
    else if (outcome.ok) item.resolve(outcome.value);
    else item.reject(outcome.error);
  }
}
