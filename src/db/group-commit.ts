// Group commit: write operations that arrive within the same event-loop turn (or a short window) run
// in ONE SQLite transaction, so one COMMIT (one WAL fsync under synchronous=FULL) makes all of them
// durable; each caller's promise resolves only after that COMMIT. This is what lets the queue answer
// "250 queued" only after fsync without paying one fsync per message.
// Each operation runs inside its own SAVEPOINT: an operation that throws (a constraint, a bug) is
// rolled back alone and only its caller sees the error. When SQLite drops the whole transaction
// (SQLITE_FULL, I/O errors) or COMMIT fails, every operation of the batch fails: none of it is visible.
// XXX: node:sqlite is synchronous, so the COMMIT's fsync blocks the event loop for its duration; the
// batching keeps that to one fsync per turn. A worker thread would remove it if it ever shows in profiles.

import type { DatabaseSync } from 'node:sqlite';

export interface GroupCommitOptions {
  /** Extra time to gather operations before committing; 0 commits on the next event-loop turn. */
  readonly windowMs?: number | undefined;
}

export interface GroupCommitStats {
  /** Transactions committed. */
  readonly transactions: number;
  /** Operations that ran, successful or not. */
  readonly operations: number;
}

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

  constructor(db: DatabaseSync, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#windowMs = options.windowMs ?? 0;
  }

  get stats(): GroupCommitStats {
    return { transactions: this.#transactions, operations: this.#operations };
  }

  /** Queue op for the next group transaction; resolves with its result once that transaction committed. */
  run<T>(op: (db: DatabaseSync) => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('group commit: closed'));
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Commit what is pending now and refuse new work. */
  close(): void {
    this.#flush();
    this.#closed = true;
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
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      db.exec('BEGIN IMMEDIATE');
      for (const item of batch) {
        this.#operations++;
        db.exec('SAVEPOINT op');
        try {
          results.push({ ok: true, value: item.op(db) });
          db.exec('RELEASE op');
        } catch (error) {
          // SQLITE_FULL and I/O errors roll back the whole transaction: the batch is lost.
          if (!db.isTransaction) throw error;
          db.exec('ROLLBACK TO op');
          db.exec('RELEASE op');
          results.push({ ok: false, error });
        }
      }
      db.exec('COMMIT');
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
    batch.forEach((item, i) => {
      const r = results[i]!;
      if (r.ok) item.resolve(r.value);
      else item.reject(r.error);
    });
  }
}
