// data/sieve.sqlite: the Sieve script store (sieve-scripts.ts) in one SQLite file. Writes are few and
// small (a user saving a filter), so each runs in its own BEGIN IMMEDIATE transaction on a
// synchronous=FULL connection (db/sqlite.ts): resolved means fsynced, with no group commit to wait for.
// Every check and its write share that transaction, so two connections (two ManageSieve sessions, the CLI
// in another process) can never together pass a quota or leave two scripts active; a partial unique index
// holds the one-active rule even against a bug here. Reads go to the database every time (WAL: readers
// never block), so a script saved by one process is what the next delivery in another runs.
// Deliberately NOT here: name and Sieve syntax rules beyond what storing needs (the session and the
// validator), running scripts.

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config/config.ts';
import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../core/ports.ts';
import { systemClock } from '../core/ports.ts';
import { attempt, integer, openDatabase, Statements, text, transaction } from '../db/sqlite.ts';
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

const MIGRATIONS = [
  `CREATE TABLE scripts (
     owner TEXT NOT NULL,
     name TEXT NOT NULL,
     script TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
     created_ms INTEGER NOT NULL,
     updated_ms INTEGER NOT NULL,
     PRIMARY KEY (owner, name)
   ) STRICT;
   CREATE UNIQUE INDEX scripts_one_active ON scripts (owner) WHERE active = 1;`,
  // Vacation replies sent: one row per (user, handle, sender), the time of the last reply.
  `CREATE TABLE vacation_replies (
     owner TEXT NOT NULL,
     handle TEXT NOT NULL,
     sender TEXT NOT NULL,
     replied_ms INTEGER NOT NULL,
     PRIMARY KEY (owner, handle, sender)
   ) STRICT, WITHOUT ROWID;
   CREATE INDEX vacation_replies_age ON vacation_replies (replied_ms);`,
];

/** Vacation rows older than this are forgotten (RFC 5230 §4.1 caps a period at a few months). */
const VACATION_MEMORY_MS = 120 * 86_400_000;

export interface SqliteSieveScriptStoreOptions {
  /** The quotas; a function is asked on every write, so a reloaded configuration applies at once. */
  readonly limits?: SieveScriptLimits | (() => SieveScriptLimits);
  readonly clock?: Clock;
  readonly busyTimeoutMs?: number;
}

const OK = { ok: true } as const;

export class SqliteSieveScriptStore implements SieveScriptStore {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #limits: () => SieveScriptLimits;
  readonly #clock: Clock;

  private constructor(db: DatabaseSync, options: SqliteSieveScriptStoreOptions) {
    this.#db = db;
    this.#sql = new Statements(db);
    const limits = options.limits ?? DEFAULT_SIEVE_SCRIPT_LIMITS;
    this.#limits = typeof limits === 'function' ? limits : () => limits;
    this.#clock = options.clock ?? systemClock;
  }

  static open(path: string, options: SqliteSieveScriptStoreOptions = {}): SqliteSieveScriptStore {
    mkdirSync(dirname(path), { recursive: true });
    return new SqliteSieveScriptStore(
      openDatabase(path, { migrations: MIGRATIONS, busyTimeoutMs: options.busyTimeoutMs }),
      options,
    );
  }

  list(user: string): Promise<SieveScriptEntry[]> {
    return attempt(() =>
      this.#sql
        .sql('SELECT name, active FROM scripts WHERE owner = ? ORDER BY name')
        .all(normalizeUser(user))
        .map((row) => ({ name: text(row, 'name'), active: integer(row, 'active') === 1 })),
    );
  }

  get(user: string, name: string): Promise<string | null> {
    return attempt(() => {
      const row = this.#sql
        .sql('SELECT script FROM scripts WHERE owner = ? AND name = ?')
        .get(normalizeUser(user), checkSieveScriptName(name));
      return row === undefined ? null : text(row, 'script');
    });
  }

  haveSpace(user: string, name: string, sizeBytes: number): Promise<SieveWrite<'max-scripts' | 'max-size'>> {
    return attempt(() => this.#fits(normalizeUser(user), checkSieveScriptName(name), sizeBytes));
  }

  put(user: string, name: string, script: string): Promise<SieveWrite<'max-scripts' | 'max-size'>> {
    return attempt(() => {
      const owner = normalizeUser(user);
      const key = checkSieveScriptName(name);
      const sizeBytes = Buffer.byteLength(script, 'utf8');
      return transaction(this.#db, () => {
        const fits = this.#fits(owner, key, sizeBytes);
        if (!fits.ok) return fits;
        const now = this.#clock.nowMs();
        this.#sql
          .sql(
            `INSERT INTO scripts (owner, name, script, size_bytes, created_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (owner, name) DO UPDATE SET
               script = excluded.script, size_bytes = excluded.size_bytes, updated_ms = excluded.updated_ms`,
          )
          .run(owner, key, script, sizeBytes, now, now);
        return OK;
      });
    });
  }

  delete(user: string, name: string): Promise<SieveWrite<'nonexistent' | 'active'>> {
    return attempt(() => {
      const owner = normalizeUser(user);
      const key = checkSieveScriptName(name);
      return transaction(this.#db, (): SieveWrite<'nonexistent' | 'active'> => {
        const row = this.#sql.sql('SELECT active FROM scripts WHERE owner = ? AND name = ?').get(owner, key);
        if (row === undefined) return { ok: false, refusal: 'nonexistent' };
        if (integer(row, 'active') === 1) return { ok: false, refusal: 'active' };
        this.#sql.sql('DELETE FROM scripts WHERE owner = ? AND name = ?').run(owner, key);
        return OK;
      });
    });
  }

  rename(user: string, from: string, to: string): Promise<SieveWrite<'nonexistent' | 'already-exists'>> {
    return attempt(() => {
      const owner = normalizeUser(user);
      const fromKey = checkSieveScriptName(from);
      const toKey = checkSieveScriptName(to);
      return transaction(this.#db, (): SieveWrite<'nonexistent' | 'already-exists'> => {
        if (!this.#exists(owner, fromKey)) return { ok: false, refusal: 'nonexistent' };
        if (this.#exists(owner, toKey)) return { ok: false, refusal: 'already-exists' };
        this.#sql
          .sql('UPDATE scripts SET name = ?, updated_ms = ? WHERE owner = ? AND name = ?')
          .run(toKey, this.#clock.nowMs(), owner, fromKey);
        return OK;
      });
    });
  }

  setActive(user: string, name: string | null): Promise<SieveWrite<'nonexistent'>> {
    return attempt(() => {
      const owner = normalizeUser(user);
      const key = name === null ? null : checkSieveScriptName(name);
      return transaction(this.#db, (): SieveWrite<'nonexistent'> => {
        if (key !== null && !this.#exists(owner, key)) return { ok: false, refusal: 'nonexistent' };
        // Off first, then on: the one-active index is checked per statement.
        this.#sql
          .sql('UPDATE scripts SET active = 0 WHERE owner = ? AND active = 1 AND name IS NOT ?')
          .run(owner, key);
        if (key !== null)
          this.#sql.sql('UPDATE scripts SET active = 1 WHERE owner = ? AND name = ?').run(owner, key);
        return OK;
      });
    });
  }

  getActive(user: string): Promise<ActiveSieveScript | null> {
    return attempt(() => {
      const row = this.#sql
        .sql('SELECT name, script FROM scripts WHERE owner = ? AND active = 1')
        .get(normalizeUser(user));
      return row === undefined ? null : { name: text(row, 'name'), script: text(row, 'script') };
    });
  }

  vacationDue(
    user: string,
    handle: string,
    sender: string,
    nowMs: number,
    periodMs: number,
  ): Promise<boolean> {
    return attempt(() =>
      transaction(this.#db, () => {
        const owner = normalizeUser(user);
        const key = sender.toLowerCase();
        const row = this.#sql
          .sql('SELECT replied_ms FROM vacation_replies WHERE owner = ? AND handle = ? AND sender = ?')
          .get(owner, handle, key);
        if (row !== undefined && nowMs - integer(row, 'replied_ms') < periodMs) return false;
        this.#sql
          .sql(
            `INSERT INTO vacation_replies (owner, handle, sender, replied_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT (owner, handle, sender) DO UPDATE SET replied_ms = excluded.replied_ms`,
          )
          .run(owner, handle, key, nowMs);
        this.#sql.sql('DELETE FROM vacation_replies WHERE replied_ms < ?').run(nowMs - VACATION_MEMORY_MS);
        return true;
      }),
    );
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }

  #exists(owner: string, name: string): boolean {
    return this.#sql.sql('SELECT 1 FROM scripts WHERE owner = ? AND name = ?').get(owner, name) !== undefined;
  }

  /** The quota check put() makes; a replaced script does not count against maxScripts. */
  #fits(owner: string, name: string, sizeBytes: number): SieveWrite<'max-scripts' | 'max-size'> {
    const { maxScripts, maxScriptBytes } = this.#limits();
    if (maxScriptBytes > 0 && sizeBytes > maxScriptBytes) return { ok: false, refusal: 'max-size' };
    if (maxScripts > 0 && !this.#exists(owner, name)) {
      const count = integer(
        this.#sql.sql('SELECT count(*) AS n FROM scripts WHERE owner = ?').get(owner) ?? {},
        'n',
      );
      if (count >= maxScripts) return { ok: false, refusal: 'max-scripts' };
    }
    return OK;
  }
}

/** Where a data directory keeps its users' Sieve scripts. */
export function sieveScriptsPath(config: Pick<Config, 'dataDir'>): string {
  return join(resolve(config.dataDir), 'sieve.sqlite');
}
