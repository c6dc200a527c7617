// The embedded directory: users (address key, password hash, SCRAM secret, submission policy), aliases,
// client-certificate mappings and send-as grants in one SQLite file (e.g. data/directory.sqlite); local
// domains come from the config. Every lookup reads the database,
// so users and aliases added by the CLI in another process apply at once (WAL lets both run).
// resolve() order, as in Postfix's virtual(5): an alias wins, even over a user of the same name (the
// user keeps a copy only when the alias lists it: carol -> carol, dave); its targets are expanded (local
// targets recursively, remote ones forwarded), loop-safe and to a depth limit; otherwise a user; otherwise
// postmaster@<any local domain> is the configured postmaster (RFC 5321 §4.5.1); otherwise the domain's
// catch-all "@domain"; otherwise unknown. A non-local domain is remote.
// addAlias refuses an alias that would close a loop (a self-reference only for a user's own name), but
// resolution never trusts that: older databases or two racing writers may hold one.
// Addresses are compared by key: local part and domain lower-cased (RFC 5321 §2.4 lets us fold the
// local part of our own users).
// Sender ownership (ownsAddress) follows aliases like resolve() but never a catch-all (a catch-all
// delivers unknown addresses to someone, it does not let them sign as every address of the domain), and
// never grants one user another user's own address, whatever that user's alias says.
// Deleting a user cascades (foreign keys) to its certificate mappings and send-as grants.
// Quota limits are two columns of the user's row: NULL follows the default given at open (the config's
// [limits] mailbox_quota_*, read through a function so a caller may hand in a fresh snapshot), 0 is
// unlimited, anything else the limit.
// Not here: password hashing (password.ts), SCRAM math (src/protocol/sasl/), quota usage (the mailbox
// store) and the check (quota.ts), counting sends.

import type { DatabaseSync, StatementSync } from 'node:sqlite';
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
import type { Row } from '../db/sqlite.ts';
import { attempt, integer, openDatabase, Statements, text, textOrNull, transaction } from '../db/sqlite.ts';
import type {
  Alias,
  CertificateMapping,
  Credentials,
  Directory,
  QuotaChange,
  QuotaLimits,
  QuotaSetting,
  Resolution,
  SendAsGrant,
  User,
  UserPolicy,
} from './directory.ts';
import { DEFAULT_USER_POLICY, UNLIMITED_QUOTA } from './directory.ts';
import { normalizeFingerprint } from './fingerprint.ts';

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
  /**
   * Where postmaster@<every local domain> goes when that address is no alias or user of its own (config
   * queue.postmaster, default postmaster@<first local domain>: see postmasterAddress()).
   */
  readonly postmaster?: string | null | undefined;
  /** Subaddressing (RFC 5233): characters that start a tag in a local part; "" or absent: none. */
  readonly recipientDelimiter?: string | undefined;
  /**
   * The quota of a user with no limits of its own (configQuota(config.limits), quota.ts); a function is
   * asked on every lookup. Default: unlimited.
   */
  readonly defaultQuota?: QuotaLimits | (() => QuotaLimits) | undefined;
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
  // 2: credentials for SCRAM, submission policy, client certificates, send-as grants.
  `ALTER TABLE users ADD COLUMN scram TEXT;
   ALTER TABLE users ADD COLUMN sender_check INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE users ADD COLUMN max_messages_per_hour INTEGER;
   ALTER TABLE users ADD COLUMN max_recipients_per_hour INTEGER;
   CREATE TABLE certificates (
     fingerprint TEXT PRIMARY KEY,
     address TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE,
     created_ms INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX certificates_by_address ON certificates (address);
   CREATE TABLE send_as (
     address TEXT NOT NULL REFERENCES users (address) ON DELETE CASCADE,
     pattern TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     PRIMARY KEY (address, pattern)
   ) STRICT;`,
  // 3: mailbox quota limits per user (NULL: the default; 0: unlimited).
  `ALTER TABLE users ADD COLUMN quota_bytes INTEGER CHECK (quota_bytes >= 0);
   ALTER TABLE users ADD COLUMN quota_messages INTEGER CHECK (quota_messages >= 0);`,
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
export function normalizeCatchAll(alias: string): string | null {
  const s = alias.trim();
  if (!s.startsWith('@')) return null;
  const domain = s.slice(1);
  if (!(isValidDomain(domain, true) || isValidAddressLiteral(domain))) return null;
  return `@${normalizeDomain(domain)}`;
}

/** A send-as pattern: "@domain" (a fully qualified trailing dot is dropped) or an address; null if neither. */
export function normalizeSendAs(pattern: string, acceptKeyForm: boolean): string | null {
  return normalizeCatchAll(pattern.trim().replace(/\.$/, '')) ?? normalizeAddress(pattern, acceptKeyForm);
}

export function domainOf(key: string): string {
  return key.slice(key.lastIndexOf('@') + 1);
}

export function localPartOf(key: string): string {
  return key.slice(0, key.lastIndexOf('@'));
}

/** What an expansion collects, and what it has seen. */
interface Expansion {
  readonly users: Set<string>;
  readonly forward: Set<string>;
  /** Addresses whose expansion is done (or under way): not expanded twice. */
  readonly seen: Set<string>;
  /** Whether an address nothing else matches may fall to its domain's catch-all. */
  readonly catchAll: boolean;
}

/** A per-hour limit as stored: null (the global default) or a non-negative safe integer. */
export function checkLimit(value: number | null, what: string): number | null {
  if (value === null || (Number.isSafeInteger(value) && value >= 0)) return value;
  throw new DirectoryError('invalid', `${what} must be a whole number of 0 or more, or the default`);
}

/** A quota setting as stored: NULL (the default), 0 (unlimited) or the limit. */
export function storedQuota(setting: QuotaSetting, what: string): number | null {
  if (setting === 'default') return null;
  if (setting === null) return 0;
  if (Number.isSafeInteger(setting) && setting >= 0) return setting;
  throw new DirectoryError(
    'invalid',
    `${what} must be a whole number of 0 or more, unlimited or the default`,
  );
}

/** The limit that applies, from a stored setting and the default. */
export function appliedQuota(stored: number | null, fallback: number | null): number | null {
  if (stored === null) return fallback;
  return stored === 0 ? null : stored;
}

function policyOf(row: Row): UserPolicy {
  const limit = (column: string): number | null => (row[column] === null ? null : integer(row, column));
  return {
    senderCheck: integer(row, 'sender_check') !== 0,
    maxMessagesPerHour: limit('max_messages_per_hour'),
    maxRecipientsPerHour: limit('max_recipients_per_hour'),
  };
}

/** Entries of the lookup cache before it starts again empty. */
const CACHE_ENTRIES = 10_000;

export class SqliteDirectory implements Directory {
  readonly #db: DatabaseSync;
  readonly #sql: Pick<Statements, 'sql'>;
  readonly #dataVersion: StatementSync;
  readonly #localDomains: ReadonlySet<string>;
  readonly #clock: Clock;
  readonly #maxDepth: number;
  readonly #postmaster: string | null;
  readonly #delimiter: string;
  readonly #defaultQuota: () => QuotaLimits;
  /**
   * What the SMTP session asks at every RCPT (resolve), kept until the directory changes: an alias
   * expansion's statements become one. Our own writes clear it (any statement that is not a SELECT,
   * below); another connection's commits (the `tern` CLI) move PRAGMA data_version, read at each lookup.
   */
  readonly #cache = new Map<string, unknown>();
  #cacheVersion: number | null = null;

  private constructor(options: SqliteDirectoryOptions, db: DatabaseSync) {
    this.#db = db;
    const statements = new Statements(db);
    const cache = this.#cache;
    this.#sql = {
      sql(text: string): StatementSync {
        if (!/^\s*SELECT\b/i.test(text)) cache.clear();
        return statements.sql(text);
      },
    };
    this.#dataVersion = db.prepare('PRAGMA data_version');
    this.#localDomains = new Set(options.localDomains.map(normalizeDomain));
    this.#clock = options.clock ?? systemClock;
    this.#maxDepth = options.maxAliasDepth ?? DEFAULT_MAX_ALIAS_DEPTH;
    this.#postmaster = options.postmaster == null ? null : normalizeAddress(options.postmaster);
    this.#delimiter = options.recipientDelimiter ?? '';
    const quota = options.defaultQuota ?? UNLIMITED_QUOTA;
    this.#defaultQuota = typeof quota === 'function' ? quota : () => quota;
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
      return this.#cached(`r:${key}`, (): Resolution => {
        const x: Expansion = { users: new Set(), forward: new Set(), seen: new Set(), catchAll: true };
        this.#expand(key, 0, new Set(), x);
        if (x.users.size === 0 && x.forward.size === 0) return { kind: 'unknown' };
        return Object.freeze({
          kind: 'local',
          users: Object.freeze([...x.users]),
          forward: Object.freeze([...x.forward]),
        });
      });
    });
  }

  #cached<T>(key: string, compute: () => T): T {
    // One statement instead of the lookup's several; exact: a commit of another connection moves it.
    const version = integer(this.#dataVersion.get()!, 'data_version');
    if (version !== this.#cacheVersion) {
      this.#cache.clear();
      this.#cacheVersion = version;
    }
    if (this.#cache.has(key)) return this.#cache.get(key) as T;
    const value = compute();
    // Bounded: a flood of distinct recipients costs lookups, never memory.
    if (this.#cache.size >= CACHE_ENTRIES) this.#cache.clear();
    this.#cache.set(key, value);
    return value;
  }

  /**
   * Adds what key (an address in a local domain) delivers to. `path` holds the aliases being expanded
   * above it: meeting one again is a self-reference (carol -> carol), which delivers to that user's
   * mailbox if there is one and goes no further, so a loop ends there. Too deep a chain adds nothing.
   */
  #expand(key: string, depth: number, path: ReadonlySet<string>, x: Expansion): void {
    if (depth > this.#maxDepth) return;
    if (path.has(key)) {
      if (this.#isUser(key)) x.users.add(key);
      return;
    }
    // Reached again by another branch: what it delivers to is already collected.
    if (x.seen.has(key)) return;
    x.seen.add(key);
    const targets = this.#targets(key);
    if (targets.length > 0) {
      this.#expandTargets(targets, depth, new Set(path).add(key), x);
      return;
    }
    if (this.#isUser(key)) {
      x.users.add(key);
      return;
    }
    if (this.#postmaster !== null && this.#postmaster !== key && localPartOf(key) === 'postmaster') {
      this.#expand(this.#postmaster, depth + 1, new Set(path).add(key), x);
      return;
    }
    // RFC 5233: user+tag@domain is user@domain's when nothing has the whole address (before the
    // catch-all, as Postfix looks up user+tag, then user, then @domain).
    const base = this.#withoutTag(key);
    if (base !== null) {
      const before = x.users.size + x.forward.size;
      this.#expand(base, depth + 1, new Set(path).add(key), x);
      if (x.users.size + x.forward.size > before) return;
    }
    const catchAll = `@${domainOf(key)}`;
    // A catch-all is taken once per resolution: its target may itself be unknown in the domain.
    if (!x.catchAll || x.seen.has(catchAll)) return;
    x.seen.add(catchAll);
    this.#expandTargets(this.#targets(catchAll), depth, new Set(path).add(key), x);
  }

  /** The address without its subaddress tag, or null when it has none (or the part before it is empty). */
  #withoutTag(key: string): string | null {
    if (this.#delimiter === '') return null;
    const local = localPartOf(key);
    let cut = -1;
    for (const d of this.#delimiter) {
      const i = local.indexOf(d);
      if (i > 0 && (cut < 0 || i < cut)) cut = i;
    }
    return cut < 0 ? null : `${local.slice(0, cut)}@${domainOf(key)}`;
  }

  #expandTargets(targets: readonly string[], depth: number, path: ReadonlySet<string>, x: Expansion): void {
    for (const target of targets) {
      if (this.#localDomains.has(domainOf(target))) this.#expand(target, depth + 1, path, x);
      else x.forward.add(target);
    }
  }

  #isUser(key: string): boolean {
    return this.#sql.sql('SELECT 1 FROM users WHERE address = ?').get(key) !== undefined;
  }

  /**
   * The loop that alias -> target would close, as "a -> b -> a", or null. Only stored aliases count
   * (catch-alls apply to unknown addresses only, and the postmaster mapping to an address with no alias).
   */
  #loopThrough(aliasKey: string, targetKey: string): string | null {
    const visited = new Set<string>();
    const find = (chain: readonly string[]): readonly string[] | null => {
      const key = chain[chain.length - 1]!;
      if (key === aliasKey) return chain;
      // Visited once is enough (a stored loop must not hold us); past the depth limit mail stops anyway.
      if (visited.has(key) || chain.length > this.#maxDepth + 2) return null;
      visited.add(key);
      for (const next of this.#targets(key)) {
        if (next === key) continue; // a user's self-reference keeps a copy; it leads nowhere else
        const found = find([...chain, next]);
        if (found !== null) return found;
      }
      return null;
    };
    return find([aliasKey, targetKey])?.join(' -> ') ?? null;
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

  /** The key of an existing user, or null (a lookup: the key form is accepted). */
  #existingUser(address: string): string | null {
    const key = normalizeAddress(address);
    if (key === null) return null;
    return this.#sql.sql('SELECT 1 FROM users WHERE address = ?').get(key) === undefined ? null : key;
  }

  #requireUser(address: string): string {
    const key = this.#existingUser(address);
    if (key === null)
      throw new DirectoryError('not-found', `no user ${normalizeAddress(address) ?? address}`);
    return key;
  }

  addUser(address: string, passwordHash: string | null, scram: string | null = null): Promise<void> {
    return attempt(() => {
      const key = this.#localKey(address, 'user');
      const inserted = this.#sql
        .sql(
          'INSERT INTO users (address, password_hash, scram, created_ms) VALUES (?, ?, ?, ?) ' +
            'ON CONFLICT DO NOTHING',
        )
        .run(key, passwordHash, scram, this.#clock.nowMs());
      if (inserted.changes === 0) throw new DirectoryError('exists', `user ${key} already exists`);
    });
  }

  setPasswordHash(address: string, passwordHash: string): Promise<void> {
    return attempt(() => {
      const key = normalizeAddress(address);
      const changed =
        key === null
          ? 0
          : this.#sql
              .sql('UPDATE users SET password_hash = ?, scram = NULL WHERE address = ?')
              .run(passwordHash, key).changes;
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
        .sql('SELECT address, password_hash, scram, created_ms FROM users ORDER BY address')
        .all()
        .map((r) => ({
          address: text(r, 'address'),
          createdMs: integer(r, 'created_ms'),
          hasPassword: textOrNull(r, 'password_hash') !== null,
          hasScram: textOrNull(r, 'scram') !== null,
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
      // Check and insert in one write transaction, so two writers cannot each close half of a loop.
      transaction(this.#db, () => {
        if (targetKey === aliasKey && !this.#isUser(aliasKey)) {
          throw new DirectoryError(
            'invalid',
            `alias ${aliasKey} cannot point at itself (only a user's alias may list the user, to keep a copy)`,
          );
        }
        const loop = targetKey === aliasKey ? null : this.#loopThrough(aliasKey, targetKey);
        if (loop !== null) throw new DirectoryError('invalid', `alias loop: ${loop}`);
        const inserted = this.#sql
          .sql('INSERT INTO aliases (alias, target, created_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
          .run(aliasKey, targetKey, this.#clock.nowMs());
        if (inserted.changes === 0)
          throw new DirectoryError('exists', `alias ${aliasKey} -> ${targetKey} already exists`);
      });
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
        .sql('SELECT alias, target FROM aliases ORDER BY alias, created_ms, rowid')
        .all()
        .map((r) => ({ alias: text(r, 'alias'), target: text(r, 'target') })),
    );
  }

  getCredentials(address: string): Promise<Credentials | null> {
    return attempt(() => {
      const key = normalizeAddress(address);
      if (key === null) return null;
      const row = this.#sql.sql('SELECT password_hash, scram FROM users WHERE address = ?').get(key);
      if (row === undefined) return null;
      return { passwordHash: textOrNull(row, 'password_hash'), scram: textOrNull(row, 'scram') };
    });
  }

  setCredentials(address: string, credentials: Credentials): Promise<void> {
    return attempt(() => {
      const key = this.#requireUser(address);
      this.#sql
        .sql('UPDATE users SET password_hash = ?, scram = ? WHERE address = ?')
        .run(credentials.passwordHash, credentials.scram, key);
    });
  }

  addCertificate(address: string, fingerprint: string): Promise<void> {
    return attempt(() => {
      const fp = normalizeFingerprint(fingerprint);
      if (fp === null) {
        throw new DirectoryError(
          'invalid',
          `not a SHA-256 fingerprint: ${fingerprint} (expected 64 hex digits, colons allowed)`,
        );
      }
      const key = this.#requireUser(address);
      const inserted = this.#sql
        .sql(
          'INSERT INTO certificates (fingerprint, address, created_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
        )
        .run(fp, key, this.#clock.nowMs());
      if (inserted.changes > 0) return;
      const owner = this.#certificateOwner(fp);
      throw new DirectoryError(
        'exists',
        owner === key
          ? `certificate ${fp} is already mapped to ${key}`
          : `certificate ${fp} is already mapped to another user (${owner ?? '?'})`,
      );
    });
  }

  #certificateOwner(fingerprint: string): string | null {
    const row = this.#sql.sql('SELECT address FROM certificates WHERE fingerprint = ?').get(fingerprint);
    return row === undefined ? null : text(row, 'address');
  }

  deleteCertificate(address: string, fingerprint: string): Promise<boolean> {
    return attempt(() => {
      const key = normalizeAddress(address);
      const fp = normalizeFingerprint(fingerprint);
      if (key === null || fp === null) return false;
      return (
        this.#sql.sql('DELETE FROM certificates WHERE address = ? AND fingerprint = ?').run(key, fp).changes >
        0
      );
    });
  }

  listCertificates(address?: string): Promise<CertificateMapping[]> {
    return attempt(() => {
      const select = 'SELECT address, fingerprint, created_ms FROM certificates';
      let rows: Row[];
      if (address === undefined) rows = this.#sql.sql(`${select} ORDER BY address, fingerprint`).all();
      else {
        const key = normalizeAddress(address);
        if (key === null) return [];
        rows = this.#sql.sql(`${select} WHERE address = ? ORDER BY fingerprint`).all(key);
      }
      return rows.map((r) => ({
        address: text(r, 'address'),
        fingerprint: text(r, 'fingerprint'),
        createdMs: integer(r, 'created_ms'),
      }));
    });
  }

  findUserByCertificate(fingerprint: string): Promise<string | null> {
    return attempt(() => {
      const fp = normalizeFingerprint(fingerprint);
      return fp === null ? null : this.#certificateOwner(fp);
    });
  }

  ownsAddress(user: string, address: string): Promise<boolean> {
    return attempt(() => {
      const userKey = this.#existingUser(user);
      const key = normalizeAddress(address);
      if (userKey === null || key === null) return false;
      if (key === userKey) return true;
      const granted = this.#sql
        .sql('SELECT 1 FROM send_as WHERE address = ? AND pattern IN (?, ?)')
        .get(userKey, key, `@${domainOf(key)}`);
      if (granted !== undefined) return true;
      // Another user's own address is never ours, even when that user's alias sends its mail to us.
      if (!this.#localDomains.has(domainOf(key)) || this.#isUser(key)) return false;
      const x: Expansion = { users: new Set(), forward: new Set(), seen: new Set(), catchAll: false };
      this.#expand(key, 0, new Set(), x);
      return x.users.has(userKey);
    });
  }

  addSendAs(user: string, pattern: string): Promise<void> {
    return attempt(() => {
      const patternKey = normalizeSendAs(pattern, false);
      if (patternKey === null) {
        throw new DirectoryError('invalid', `not an address or @domain: ${pattern}`);
      }
      const key = this.#requireUser(user);
      if (patternKey === key) throw new DirectoryError('invalid', `${key} may always send as itself`);
      const inserted = this.#sql
        .sql('INSERT INTO send_as (address, pattern, created_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
        .run(key, patternKey, this.#clock.nowMs());
      if (inserted.changes === 0) {
        throw new DirectoryError('exists', `${key} may already send as ${patternKey}`);
      }
    });
  }

  deleteSendAs(user: string, pattern?: string): Promise<boolean> {
    return attempt(() => {
      const key = normalizeAddress(user);
      if (key === null) return false;
      if (pattern === undefined)
        return this.#sql.sql('DELETE FROM send_as WHERE address = ?').run(key).changes > 0;
      const patternKey = normalizeSendAs(pattern, true);
      if (patternKey === null) return false;
      return (
        this.#sql.sql('DELETE FROM send_as WHERE address = ? AND pattern = ?').run(key, patternKey).changes >
        0
      );
    });
  }

  listSendAs(user?: string): Promise<SendAsGrant[]> {
    return attempt(() => {
      const select = 'SELECT address, pattern, created_ms FROM send_as';
      let rows: Row[];
      if (user === undefined) rows = this.#sql.sql(`${select} ORDER BY address, pattern`).all();
      else {
        const key = normalizeAddress(user);
        if (key === null) return [];
        rows = this.#sql.sql(`${select} WHERE address = ? ORDER BY pattern`).all(key);
      }
      return rows.map((r) => ({
        user: text(r, 'address'),
        pattern: text(r, 'pattern'),
        createdMs: integer(r, 'created_ms'),
      }));
    });
  }

  getUserPolicy(address: string): Promise<UserPolicy> {
    return attempt(() => this.#policy(normalizeAddress(address)) ?? DEFAULT_USER_POLICY);
  }

  #policy(key: string | null): UserPolicy | null {
    if (key === null) return null;
    const row = this.#sql
      .sql('SELECT sender_check, max_messages_per_hour, max_recipients_per_hour FROM users WHERE address = ?')
      .get(key);
    return row === undefined ? null : policyOf(row);
  }

  setUserPolicy(address: string, policy: Partial<UserPolicy>): Promise<UserPolicy> {
    return attempt(() => {
      const maxMessagesPerHour =
        policy.maxMessagesPerHour === undefined
          ? undefined
          : checkLimit(policy.maxMessagesPerHour, 'max messages per hour');
      const maxRecipientsPerHour =
        policy.maxRecipientsPerHour === undefined
          ? undefined
          : checkLimit(policy.maxRecipientsPerHour, 'max recipients per hour');
      return transaction(this.#db, () => {
        const key = this.#requireUser(address);
        const current = this.#policy(key) ?? DEFAULT_USER_POLICY;
        const next: UserPolicy = {
          senderCheck: policy.senderCheck ?? current.senderCheck,
          maxMessagesPerHour:
            maxMessagesPerHour === undefined ? current.maxMessagesPerHour : maxMessagesPerHour,
          maxRecipientsPerHour:
            maxRecipientsPerHour === undefined ? current.maxRecipientsPerHour : maxRecipientsPerHour,
        };
        this.#sql
          .sql(
            'UPDATE users SET sender_check = ?, max_messages_per_hour = ?, max_recipients_per_hour = ? ' +
              'WHERE address = ?',
          )
          .run(next.senderCheck ? 1 : 0, next.maxMessagesPerHour, next.maxRecipientsPerHour, key);
        return next;
      });
    });
  }

  getQuota(address: string): Promise<QuotaLimits | null> {
    return attempt(() => this.#quota(normalizeAddress(address)));
  }

  #quota(key: string | null): QuotaLimits | null {
    if (key === null) return null;
    const row = this.#sql.sql('SELECT quota_bytes, quota_messages FROM users WHERE address = ?').get(key);
    if (row === undefined) return null;
    const stored = (column: string): number | null => (row[column] === null ? null : integer(row, column));
    const fallback = this.#defaultQuota();
    return {
      storageBytes: appliedQuota(stored('quota_bytes'), fallback.storageBytes),
      messages: appliedQuota(stored('quota_messages'), fallback.messages),
    };
  }

  setQuota(address: string, change: QuotaChange): Promise<QuotaLimits> {
    return attempt(() => {
      const bytes =
        change.storageBytes === undefined ? undefined : storedQuota(change.storageBytes, 'a storage limit');
      const messages =
        change.messages === undefined ? undefined : storedQuota(change.messages, 'a message limit');
      return transaction(this.#db, () => {
        const key = this.#requireUser(address);
        if (bytes !== undefined) {
          this.#sql.sql('UPDATE users SET quota_bytes = ? WHERE address = ?').run(bytes, key);
        }
        if (messages !== undefined) {
          this.#sql.sql('UPDATE users SET quota_messages = ? WHERE address = ?').run(messages, key);
        }
        return this.#quota(key)!;
      });
    });
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }
}
