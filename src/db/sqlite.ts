// Opening an embedded SQLite database the way every Tern service wants it: WAL (readers in other
// processes, e.g. the CLI, never block the server), synchronous=FULL (COMMIT fsyncs the WAL, so a
// resolved commit survives power loss), a busy timeout, foreign keys on, and the schema migrated on open
// (versioned with PRAGMA user_version). Also: typed row accessors and a statement cache.
// Deliberately not here: any service's schema (each service owns its own file and migrations) and
// asynchronous access (node:sqlite is synchronous; group-commit.ts switches the queue's and the mailbox
// store's connections to synchronous=NORMAL and fsyncs their WAL itself, off the event loop).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { SQLOutputValue, StatementSync } from 'node:sqlite';

export type Row = Record<string, SQLOutputValue>;

export interface OpenDatabaseOptions {
  /** Schema steps: migrations[i] brings the database from user_version i to i + 1. Never edit a shipped step. */
  readonly migrations: readonly string[];
  /** How long a writer waits for another process's write lock before SQLITE_BUSY. */
  readonly busyTimeoutMs?: number | undefined;
}

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** Open (creating the file and its folder when missing) and migrate. Throws when the file is newer than the code. */
export function openDatabase(path: string, options: OpenDatabaseOptions): DatabaseSync {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS });
  try {
    const mode = db.prepare('PRAGMA journal_mode = WAL').get();
    if (path !== ':memory:' && mode?.['journal_mode'] !== 'wal') {
      throw new Error(
        `sqlite: ${path}: cannot switch to WAL (journal_mode=${String(mode?.['journal_mode'])})`,
      );
    }
    db.exec('PRAGMA synchronous = FULL');
    // A checkpointed WAL is truncated back to this size, so it cannot keep the disk space a burst took.
    db.exec('PRAGMA journal_size_limit = 4194304');
    db.exec('PRAGMA foreign_keys = ON');
    migrate(db, path, options.migrations);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function userVersion(db: DatabaseSync): number {
  return integer(db.prepare('PRAGMA user_version').get() ?? {}, 'user_version');
}

function migrate(db: DatabaseSync, path: string, migrations: readonly string[]): void {
  if (userVersion(db) === migrations.length) return;
  // IMMEDIATE takes the write lock first, so two processes opening a fresh file migrate it once.
  db.exec('BEGIN IMMEDIATE');
  try {
    const from = userVersion(db);
    if (from > migrations.length) {
      throw new Error(
        `sqlite: ${path} has schema version ${from}, this version of Tern knows up to ${migrations.length}`,
      );
    }
    for (let v = from; v < migrations.length; v++) {
      db.exec(migrations[v]!);
      // PRAGMA takes no bound parameters; v is a loop integer, not input.
      db.exec(`PRAGMA user_version = ${v + 1}`);
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/** Run fn in one write transaction (BEGIN IMMEDIATE … COMMIT), rolled back when it throws. */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    // Some errors (SQLITE_FULL, SQLITE_IOERR) have already rolled the transaction back.
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/**
 * Run a synchronous database body behind an async API: a throw becomes a rejection, as callers of a
 * Promise-returning method expect (node:sqlite is synchronous, the service interfaces are not).
 */
export function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** Prepared statements, prepared once per database and SQL text. */
export class Statements {
  readonly #db: DatabaseSync;
  readonly #cache = new Map<string, StatementSync>();
  constructor(db: DatabaseSync) {
    this.#db = db;
  }
  sql(text: string): StatementSync {
    let stmt = this.#cache.get(text);
    if (stmt === undefined) {
      stmt = this.#db.prepare(text);
      this.#cache.set(text, stmt);
    }
    return stmt;
  }
}

// Typed accessors: a wrong column type is a schema bug, so they throw rather than coerce.

export function text(row: Row, column: string): string {
  const v = row[column];
  if (typeof v !== 'string') throw new TypeError(`sqlite: column ${column} is not text`);
  return v;
}

export function textOrNull(row: Row, column: string): string | null {
  const v = row[column];
  if (v === null || v === undefined) return null;
  return text(row, column);
}

export function integer(row: Row, column: string): number {
  const v = row[column];
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'number') throw new TypeError(`sqlite: column ${column} is not an integer`);
  return v;
}

export function bytesOrNull(row: Row, column: string): Uint8Array | null {
  const v = row[column];
  if (v === null || v === undefined) return null;
  if (!(v instanceof Uint8Array)) throw new TypeError(`sqlite: column ${column} is not a blob`);
  return v;
}

/** SQLite's primary result code of an error thrown by node:sqlite, or null for other errors. */
export function sqliteResultCode(err: unknown): number | null {
  if (typeof err !== 'object' || err === null) return null;
  const code = (err as { errcode?: unknown }).errcode;
  // Extended result codes carry the primary code in the low byte.
  return typeof code === 'number' ? code & 0xff : null;
}

export const SQLITE_BUSY = 5;
export const SQLITE_FULL = 13;
