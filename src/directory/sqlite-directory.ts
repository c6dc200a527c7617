// The embedded directory: users (address key, password hash) and aliases in one SQLite file
// (e.g. data/directory.sqlite); local domains come from the config. Every lookup reads the database,
// so users and aliases added by the CLI in another process apply at once (WAL lets both run).
// resolve() order, as in Postfix's virtual(5): a user wins; otherwise the alias's targets are expanded
// (local targets recursively, remote ones forwarded), with a visited set against loops and a depth limit;
// otherwise the domain's catch-all "@domain"; otherwise unknown. A non-local domain is remote.
// Addresses are compared by key: local part and domain lower-cased (RFC 5321 §2.4 lets us fold the
// local part of our own users). Not here: password hashing (password.ts), quotas, per-user settings.

import type { DatabaseSync } from 'node:sqlite';
import {
  addressKey,
  formatMailbox,
  isValidAddressLiteral,
  isValidDomain,
  normalizeDomain,
  parseMailbox,
} from '../core/address.ts';
import type { Clock } from '../core/ports.ts';
import { systemClock } from '../core/ports.ts';
import { attempt, integer, openDatabase, Statements, text, textOrNull } from '../db/sqlite.ts';
import type { Alias, Directory, Resolution, User } from './directory.ts';

export type DirectoryErrorCode = 'exists' | 'not-found' | 'invalid';

/** A refused directory change: the message is meant for the operator (the CLI prints it as is). */
export class DirectoryError extends Error {
  readonly code: DirectoryErrorCode;
  constructor(code: DirectoryErrorCode, message: string) {
    super(message);
    this.name = 'DirectoryError';
    this.code = code;
  }
}

export interface SqliteDirectoryOptions {
  /** The database file, e.g. data/directory.sqlite. */
  readonly path: string;
  readonly localDomains: readonly string[];
  readonly clock?: Clock | undefined;
  /** How many alias levels resolve() follows before giving up on a branch. */
  readonly maxAliasDepth?: number | undefined;
}

export const DEFAULT_MAX_ALIAS_DEPTH = 10;

const MIGRATIONS = [
  `CREATE TABLE users (
     address TEXT PRIMARY KEY,
     password_hash TEXT,
     created_ms INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE aliases (
     alias TEXT NOT NULL,
     target TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     PRIMARY KEY (alias, target)
   ) STRICT;`,
];

/**
 * The lookup key of an address, or null when it is not one. Lookups (acceptKeyForm) also take the key
 * form itself, where a quoted local part has lost its quotes ("john smith@x"), so keys round-trip;
 * writes insist on RFC 5321 syntax so a typo with a space is not stored as a user.
 */
export function normalizeAddress(address: string, acceptKeyForm = true): string | null {
  // A fully qualified domain's trailing dot names the same domain.
  const s = address.trim().replace(/(?<=@[^@]+)\.$/, '');
  const parsed = parseMailbox(s, true);
  if (parsed !== null) return addressKey(parsed);
  const at = s.lastIndexOf('@');
  if (!acceptKeyForm || at <= 0 || s.includes('"')) return null;
  const requoted = parseMailbox(formatMailbox({ local: s.slice(0, at), domain: s.slice(at + 1) }), true);
  return requoted === null ? null : addressKey(requoted);
}

/** "@domain" (a catch-all) → its normalized form, or null. */
function normalizeCatchAll(alias: string): string | null {
  const s = alias.trim();
  if (!s.startsWith('@')) return null;
  const domain = s.slice(1);
  if (!(isValidDomain(domain, true) || isValidAddressLiteral(domain))) return null;
  return `@${normalizeDomain(domain)}`;
}

function domainOf(key: string): string {
  return key.slice(key.lastIndexOf('@') + 1);
}

export class SqliteDirectory implements Directory {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #localDomains: ReadonlySet<string>;
  readonly #clock: Clock;
  readonly #maxDepth: number;

  private constructor(options: SqliteDirectoryOptions, db: DatabaseSync) {
    this.#db = db;
    this.#sql = new Statements(db);
    this.#localDomains = new Set(options.localDomains.map(normalizeDomain));
    this.#clock = options.clock ?? systemClock;
    this.#maxDepth = options.maxAliasDepth ?? DEFAULT_MAX_ALIAS_DEPTH;
  }

  static open(options: SqliteDirectoryOptions): Promise<SqliteDirectory> {
    return attempt(
      () => new SqliteDirectory(options, openDatabase(options.path, { migrations: MIGRATIONS })),
    );
  }

  isLocalDomain(domain: string): boolean {
    return this.#localDomains.has(normalizeDomain(domain));
  }

  resolve(address: string): Promise<Resolution> {
    return attempt((): Resolution => {
      const key = normalizeAddress(address);
      if (key === null) return { kind: 'unknown' };
      if (!this.#localDomains.has(domainOf(key))) return { kind: 'remote' };
      const users = new Set<string>();
      const forward = new Set<string>();
      this.#expand(key, 0, new Set(), users, forward);
      if (users.size === 0 && forward.size === 0) return { kind: 'unknown' };
      return { kind: 'local', users: [...users], forward: [...forward] };
    });
  }

  /** Adds what key (an address in a local domain) delivers to; a loop or too deep a chain adds nothing. */
  #expand(key: string, depth: number, visited: Set<string>, users: Set<string>, forward: Set<string>): void {
    if (visited.has(key) || depth > this.#maxDepth) return;
    visited.add(key);
    if (this.#sql.sql('SELECT 1 FROM users WHERE address = ?').get(key) !== undefined) {
      users.add(key);
      return;
    }
    let targets = this.#targets(key);
    if (targets.length === 0) {
      const catchAll = `@${domainOf(key)}`;
      // A catch-all is taken once per resolution: its target may itself be unknown in the domain.
      if (visited.has(catchAll)) return;
      visited.add(catchAll);
      targets = this.#targets(catchAll);
    }
    for (const target of targets) {
      if (this.#localDomains.has(domainOf(target))) this.#expand(target, depth + 1, visited, users, forward);
      else forward.add(target);
    }
  }

  #targets(alias: string): string[] {
    return this.#sql
      .sql('SELECT target FROM aliases WHERE alias = ? ORDER BY created_ms, target')
      .all(alias)
      .map((r) => text(r, 'target'));
  }

  #localKey(address: string, what: string): string {
    const key = normalizeAddress(address, false);
    if (key === null) throw new DirectoryError('invalid', `not a valid address: ${address}`);
    if (!this.#localDomains.has(domainOf(key))) {
      throw new DirectoryError(
        'invalid',
        `${what} ${key} is not in a local domain (${[...this.#localDomains].join(', ')})`,
      );
    }
    return key;
  }

  addUser(address: string, passwordHash: string | null): Promise<void> {
    return attempt(() => {
      const key = this.#localKey(address, 'user');
      const inserted = this.#sql
        .sql('INSERT INTO users (address, password_hash, created_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
        .run(key, passwordHash, this.#clock.nowMs());
      if (inserted.changes === 0) throw new DirectoryError('exists', `user ${key} already exists`);
    });
  }

  setPasswordHash(address: string, passwordHash: string): Promise<void> {
    return attempt(() => {
      const key = normalizeAddress(address);
      const changed =
        key === null
          ? 0
          : this.#sql.sql('UPDATE users SET password_hash = ? WHERE address = ?').run(passwordHash, key)
              .changes;
      if (changed === 0) throw new DirectoryError('not-found', `no user ${key ?? address}`);
    });
  }

  deleteUser(address: string): Promise<boolean> {
    return attempt(() => {
      const key = normalizeAddress(address);
      return key !== null && this.#sql.sql('DELETE FROM users WHERE address = ?').run(key).changes > 0;
    });
  }

  listUsers(): Promise<User[]> {
    return attempt(() =>
      this.#sql
        .sql('SELECT address, password_hash, created_ms FROM users ORDER BY address')
        .all()
        .map((r) => ({
          address: text(r, 'address'),
          createdMs: integer(r, 'created_ms'),
          hasPassword: textOrNull(r, 'password_hash') !== null,
        })),
    );
  }

  getPasswordHash(address: string): Promise<string | null> {
    return attempt(() => {
      const key = normalizeAddress(address);
      if (key === null) return null;
      const row = this.#sql.sql('SELECT password_hash FROM users WHERE address = ?').get(key);
      return row === undefined ? null : textOrNull(row, 'password_hash');
    });
  }

  addAlias(alias: string, target: string): Promise<void> {
    return attempt(() => {
      const aliasKey = normalizeCatchAll(alias) ?? this.#localKey(alias, 'alias');
      if (!this.#localDomains.has(domainOf(aliasKey))) {
        throw new DirectoryError('invalid', `alias ${aliasKey} is not in a local domain`);
      }
      const targetKey = normalizeAddress(target, false);
      if (targetKey === null) throw new DirectoryError('invalid', `not a valid target address: ${target}`);
      if (targetKey === aliasKey)
        throw new DirectoryError('invalid', `alias ${aliasKey} cannot point at itself`);
      const inserted = this.#sql
        .sql('INSERT INTO aliases (alias, target, created_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
        .run(aliasKey, targetKey, this.#clock.nowMs());
      if (inserted.changes === 0)
        throw new DirectoryError('exists', `alias ${aliasKey} -> ${targetKey} already exists`);
    });
  }

  deleteAlias(alias: string, target?: string): Promise<boolean> {
    return attempt(() => {
      const aliasKey = normalizeCatchAll(alias) ?? normalizeAddress(alias);
      if (aliasKey === null) return false;
      if (target === undefined)
        return this.#sql.sql('DELETE FROM aliases WHERE alias = ?').run(aliasKey).changes > 0;
      const targetKey = normalizeAddress(target);
      if (targetKey === null) return false;
      return (
        this.#sql.sql('DELETE FROM aliases WHERE alias = ? AND target = ?').run(aliasKey, targetKey).changes >
        0
      );
    });
  }

  listAliases(): Promise<Alias[]> {
    return attempt(() =>
      this.#sql
        .sql('SELECT alias, target FROM aliases ORDER BY alias, created_ms, target')
        .all()
        .map((r) => ({ alias: text(r, 'alias'), target: text(r, 'target') })),
    );
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }
}
