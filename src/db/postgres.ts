// PostgreSQL the way every Tern service wants it (issue 19, `[storage] backend = "postgres"`): one pool
// per process, each connection with synchronous_commit on (a resolved COMMIT is on the server's disk, so
// a 250 after it keeps RFC 5321's promise), a schema chosen by the URL's `search_path` (tests use one
// schema each), versioned migrations per component applied under an advisory lock (several nodes may
// start at once), and transactions that roll back on any error. Also: typed row accessors.
// Deliberately NOT here: any service's schema (each owns its migrations), Redis, SQLite.

import pg from 'pg';

export type PgPool = pg.Pool;
export type PgClient = pg.PoolClient;
export type PgRow = Record<string, unknown>;

export interface PgOptions {
  /** postgres://user@host:port/db[?options=-c%20search_path%3Dx] */
  readonly url: string;
  /** Connections this process may hold (default 10). */
  readonly max?: number;
  /** A schema to use instead of the URL's (tests: one schema per test run). */
  readonly schema?: string;
}

/** 64-bit key of the advisory lock migrations take (any constant; "tern" in ASCII). */
const MIGRATION_LOCK = 0x7465726e;

export function openPool(options: PgOptions): PgPool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    // A node that lost its database answers 4xx quickly instead of holding sessions open.
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // A 250 means the commit is durable on the server (and its synchronous standbys, if any): set at
    // connection start, before any query can run.
    options: [
      '-c synchronous_commit=on',
      ...(options.schema === undefined ? [] : [`-c search_path=${quoteIdent(options.schema)}`]),
    ].join(' '),
  });
  // An idle client's error (the server restarted) must not take the process down; the next query fails.
  pool.on('error', () => undefined);
  return pool;
}

/** A quoted SQL identifier (schema names of tests). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Run `fn` in one transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws. */
export async function inTransaction<T>(pool: PgPool, fn: (client: PgClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Bring `component`'s tables to the latest of `migrations` (steps[i] takes version i to i + 1; never edit
 * a shipped step). Each step commits with its version; an advisory lock keeps two nodes from migrating at
 * once. Throws when the database is newer than this code.
 */
export async function migratePostgres(
  pool: PgPool,
  component: string,
  migrations: readonly string[],
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS tern_migrations (
           component TEXT PRIMARY KEY,
           version INTEGER NOT NULL,
           applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )`,
      );
      const r = await client.query('SELECT version FROM tern_migrations WHERE component = $1', [component]);
      const current = r.rows.length === 0 ? 0 : Number((r.rows[0] as PgRow)['version']);
      if (current > migrations.length) {
        throw new Error(
          `postgres: ${component} schema is version ${current}, newer than this Tern (${migrations.length}): upgrade Tern`,
        );
      }
      for (let v = current; v < migrations.length; v++) {
        await client.query('BEGIN');
        try {
          await client.query(migrations[v]!);
          await client.query(
            `INSERT INTO tern_migrations (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_at = now()`,
            [component, v + 1],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new Error(`postgres: ${component} migration ${v + 1} failed: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

export function pgText(row: PgRow, key: string): string {
  const v = row[key];
  if (typeof v !== 'string') throw new Error(`postgres: column ${key} is not text`);
  return v;
}

export function pgTextOrNull(row: PgRow, key: string): string | null {
  const v = row[key];
  return v === null || v === undefined ? null : pgText(row, key);
}

/** BIGINT comes back as a string (pg keeps 64 bits exact); Tern's values fit in a double. */
export function pgInt(row: PgRow, key: string): number {
  const v = row[key];
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  if (typeof v === 'bigint') return Number(v);
  throw new Error(`postgres: column ${key} is not an integer`);
}

export function pgBytes(row: PgRow, key: string): Buffer | null {
  const v = row[key];
  if (v === null || v === undefined) return null;
  if (!Buffer.isBuffer(v)) throw new Error(`postgres: column ${key} is not bytea`);
  return v;
}
