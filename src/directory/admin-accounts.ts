// Who may use the admin page and HTTP API (issue 15): admin accounts with a password (scrypt, as mail
// users), API tokens, and page login sessions, in data/admin.sqlite. `tern admin ...` writes it, the
// server's admin listener reads it (src/admin). Tokens and session ids are random 256-bit secrets stored
// only as SHA-256 digests: a copy of the file lets nobody in.
// Deliberately NOT here: HTTP, cookies and CSRF (src/admin/auth.ts); lockouts (policy/auth-guard.ts).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { integer, openDatabase, Statements, text, textOrNull } from '../db/sqlite.ts';

const MIGRATIONS = [
  `CREATE TABLE admins (
     name TEXT PRIMARY KEY,
     password TEXT NOT NULL,
     created_ms INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE tokens (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
     digest TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     last_used_ms INTEGER
   ) STRICT;
   CREATE TABLE sessions (
     digest TEXT PRIMARY KEY,
     name TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
     csrf TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     expires_ms INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX sessions_expires ON sessions (expires_ms);`,
];

/** Letters, digits and `._@+-`, 1 to 64 characters (NFC): a name that reads the same in every log. */
const NAME = /^[\p{L}\p{N}._@+-]{1,64}$/u;

export function validAdminName(name: string): boolean {
  return name === name.normalize('NFC') && NAME.test(name);
}

export class AdminAccountError extends Error {
  readonly kind: 'exists' | 'unknown' | 'invalid';
  constructor(kind: AdminAccountError['kind'], message: string) {
    super(message);
    this.name = 'AdminAccountError';
    this.kind = kind;
  }
}

export interface AdminTokenInfo {
  readonly id: string;
  readonly name: string;
  readonly createdMs: number;
  readonly lastUsedMs: number | null;
}

export interface AdminSession {
  readonly name: string;
  /** The value the page sends back in X-CSRF-Token with every state change. */
  readonly csrf: string;
}

const digest = (secret: string): string => createHash('sha256').update(secret).digest('hex');
const secret = (): string => randomBytes(32).toString('base64url');

/** A token reads `tern_<id>_<secret>`: the id finds the row, the secret is compared by digest. */
const TOKEN = /^tern_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export class SqliteAdminAccounts {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #nowMs: () => number;

  private constructor(db: DatabaseSync, nowMs: () => number) {
    this.#db = db;
    this.#sql = new Statements(db);
    this.#nowMs = nowMs;
  }

  static open(options: { readonly path: string; readonly nowMs: () => number }): SqliteAdminAccounts {
    return new SqliteAdminAccounts(openDatabase(options.path, { migrations: MIGRATIONS }), options.nowMs);
  }

  close(): void {
    this.#db.close();
  }

  count(): number {
    return integer(this.#sql.sql('SELECT count(*) AS n FROM admins').get() ?? {}, 'n');
  }

  list(): { name: string; createdMs: number; tokens: number }[] {
    return this.#sql
      .sql(
        `SELECT a.name, a.created_ms, (SELECT count(*) FROM tokens t WHERE t.name = a.name) AS tokens
         FROM admins a ORDER BY a.name`,
      )
      .all()
      .map((r) => ({
        name: text(r, 'name'),
        createdMs: integer(r, 'created_ms'),
        tokens: integer(r, 'tokens'),
      }));
  }

  /** Add an admin with an already hashed password (directory/password.ts). */
  add(name: string, passwordHash: string): void {
    if (!validAdminName(name))
      throw new AdminAccountError(
        'invalid',
        `"${name}" is not an admin name (letters, digits, ._@+-, at most 64)`,
      );
    if (this.passwordHash(name) !== null) throw new AdminAccountError('exists', `admin ${name} exists`);
    this.#sql
      .sql('INSERT INTO admins (name, password, created_ms) VALUES (?, ?, ?)')
      .run(name, passwordHash, this.#nowMs());
  }

  setPassword(name: string, passwordHash: string): void {
    const r = this.#sql.sql('UPDATE admins SET password = ? WHERE name = ?').run(passwordHash, name);
    if (r.changes === 0) throw new AdminAccountError('unknown', `no admin ${name}`);
    // A new password ends every page login of the account (not its API tokens).
    this.#sql.sql('DELETE FROM sessions WHERE name = ?').run(name);
  }

  remove(name: string): void {
    const r = this.#sql.sql('DELETE FROM admins WHERE name = ?').run(name);
    if (r.changes === 0) throw new AdminAccountError('unknown', `no admin ${name}`);
  }

  passwordHash(name: string): string | null {
    const row = this.#sql.sql('SELECT password FROM admins WHERE name = ?').get(name);
    return row === undefined ? null : text(row, 'password');
  }

  /** A new API token for the admin; the token itself is returned once and never stored. */
  createToken(name: string): { id: string; token: string } {
    if (this.passwordHash(name) === null) throw new AdminAccountError('unknown', `no admin ${name}`);
    const id = randomBytes(6).toString('hex');
    const s = secret();
    this.#sql
      .sql('INSERT INTO tokens (id, name, digest, created_ms) VALUES (?, ?, ?, ?)')
      .run(id, name, digest(s), this.#nowMs());
    return { id, token: `tern_${id}_${s}` };
  }

  tokens(name: string | null): AdminTokenInfo[] {
    const rows =
      name === null
        ? this.#sql.sql('SELECT * FROM tokens ORDER BY name, created_ms').all()
        : this.#sql.sql('SELECT * FROM tokens WHERE name = ? ORDER BY created_ms').all(name);
    return rows.map((r) => ({
      id: text(r, 'id'),
      name: text(r, 'name'),
      createdMs: integer(r, 'created_ms'),
      lastUsedMs: r['last_used_ms'] === null ? null : integer(r, 'last_used_ms'),
    }));
  }

  revokeToken(id: string): boolean {
    return this.#sql.sql('DELETE FROM tokens WHERE id = ?').run(id).changes > 0;
  }

  /** The admin a bearer token belongs to, or null. */
  verifyToken(token: string): string | null {
    const m = TOKEN.exec(token);
    if (m === null) return null;
    const row = this.#sql.sql('SELECT name, digest FROM tokens WHERE id = ?').get(m[1]!);
    if (row === undefined) return null;
    const want = Buffer.from(text(row, 'digest'), 'hex');
    const got = Buffer.from(digest(m[2]!), 'hex');
    if (!timingSafeEqual(want, got)) return null;
    this.#sql.sql('UPDATE tokens SET last_used_ms = ? WHERE id = ?').run(this.#nowMs(), m[1]!);
    return text(row, 'name');
  }

  /** A page login: the cookie value (returned once) and the session's CSRF token. */
  createSession(name: string, idleMs: number): { id: string; csrf: string } {
    const now = this.#nowMs();
    this.#sql.sql('DELETE FROM sessions WHERE expires_ms <= ?').run(now);
    const id = secret();
    const csrf = secret();
    this.#sql
      .sql('INSERT INTO sessions (digest, name, csrf, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)')
      .run(digest(id), name, csrf, now, now + idleMs);
    return { id, csrf };
  }

  /** The session of a cookie value, its idle time restarted; null when unknown or expired. */
  session(id: string, idleMs: number): AdminSession | null {
    if (id.length > 100) return null;
    const now = this.#nowMs();
    const d = digest(id);
    const row = this.#sql.sql('SELECT name, csrf, expires_ms FROM sessions WHERE digest = ?').get(d);
    if (row === undefined) return null;
    if (integer(row, 'expires_ms') <= now) {
      this.#sql.sql('DELETE FROM sessions WHERE digest = ?').run(d);
      return null;
    }
    this.#sql.sql('UPDATE sessions SET expires_ms = ? WHERE digest = ?').run(now + idleMs, d);
    return { name: text(row, 'name'), csrf: textOrNull(row, 'csrf') ?? '' };
  }

  endSession(id: string): void {
    this.#sql.sql('DELETE FROM sessions WHERE digest = ?').run(digest(id));
  }
}
