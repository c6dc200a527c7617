// The directory in PostgreSQL (issue 19, `[storage] backend = "postgres"`): the same users, credentials,
// aliases (catch-all "@domain" included), certificate mappings, send-as grants, policies and quotas as
// sqlite-directory.ts, for several nodes sharing one schema. Behaviour is SqliteDirectory's (the contract
// in directory.contract.ts decides): keys are normalized here, in TypeScript, exactly as SQLite's side
// does, and every text column is COLLATE "C" so equality and ORDER BY compare UTF-8 bytes as SQLite's
// BINARY does, whatever the database's locale (jürgen@, 日本@例え.jp sort and match the same).
// Nothing is cached between lookups: a user or alias written on one node resolves on every node at once.
// Resolution reads each address's targets and user row in one round trip, with the next candidates
// (tag-less base, catch-all, postmaster, an alias's local targets) fetched in the same batch.
// Local domains: the config's, plus rows of a `domains` table (addDomain/deleteDomain, an addition of
// this backend: SQLite's domains are the config's only). isLocalDomain() is synchronous, so it answers
// from a set held in memory: loaded at open, refreshed at once on this node after its own domain writes,
// on other nodes by LISTEN/NOTIFY (a trigger notifies at commit, so psql edits count too), and in any case
// by a poll every `domainRefreshMs` (default 5 s) of a version the same trigger bumps: the bound that
// still holds behind a transaction-mode pooler, or while the listening connection is down. A write that
// needs a domain the set lacks reads the table first, so no node refuses a domain another just added.
// Concurrent writers: unique rules are primary keys (INSERT … ON CONFLICT DO NOTHING gives the loser
// SQLite's 'exists'); addAlias locks the aliases table against other alias writers (SHARE ROW EXCLUSIVE;
// readers go on) for its loop check, so two nodes cannot each close half of a loop; read-modify-writes
// are single UPDATE statements.
// Not here: the pool (db/postgres.ts; close() leaves it open), password hashing, SCRAM, quota usage.

import pg from 'pg';
import { normalizeDomain } from '../core/address.ts';
import type { Clock } from '../core/ports.ts';
import { systemClock } from '../core/ports.ts';
import type { PgPool, PgRow } from '../db/postgres.ts';
import { inTransaction, migratePostgres, pgInt, pgText, pgTextOrNull } from '../db/postgres.ts';
import type {
  Alias,
  CertificateMapping,
  Credentials,
  Directory,
  QuotaChange,
  QuotaLimits,
  Resolution,
  SendAsGrant,
  User,
  UserPolicy,
} from './directory.ts';
import { DEFAULT_USER_POLICY, UNLIMITED_QUOTA } from './directory.ts';
import { normalizeFingerprint } from './fingerprint.ts';
import type { SqliteDirectoryOptions } from './sqlite-directory.ts';
// The address and quota rules are SQLite's own: one definition for both backends.
import {
  appliedQuota,
  checkLimit,
  DEFAULT_MAX_ALIAS_DEPTH,
  DirectoryError,
  domainOf,
  localPartOf,
  normalizeAddress,
  normalizeCatchAll,
  normalizeSendAs,
  storedQuota,
} from './sqlite-directory.ts';

/** What SqliteDirectory takes from the config, less its file. */
export type PostgresDirectoryConfig = Omit<SqliteDirectoryOptions, 'path'>;

export interface PostgresDirectoryOptions {
  /** The process's pool (openPool); its search_path names the schema. */
  readonly pool: PgPool;
  readonly config: PostgresDirectoryConfig;
  /**
   * How often the stored domains are polled: the longest another node's domain change stays unseen here
   * when no notification arrives (default DEFAULT_DOMAIN_REFRESH_MS).
   */
  readonly domainRefreshMs?: number | undefined;
  /**
   * LISTEN for domain changes on one connection of its own, outside the pool (default true). Off behind
   * a pooler that cannot LISTEN (PgBouncer in transaction mode): the poll alone bounds staleness then.
   */
  readonly listen?: boolean | undefined;
}

export const DEFAULT_DOMAIN_REFRESH_MS = 5000;

/** The channel the domains trigger notifies, with the schema as payload (channels span the database). */
export const DOMAINS_CHANNEL = 'tern_directory_domains';

/** Migration steps of the 'directory' component (never edit a shipped one). */
export const DIRECTORY_STEPS: readonly string[] = [
  // 1: SqliteDirectory's three steps at once, plus stored local domains.
  `CREATE TABLE users (
     address TEXT COLLATE "C" PRIMARY KEY,
     password_hash TEXT,
     scram TEXT,
     created_ms BIGINT NOT NULL,
     sender_check BOOLEAN NOT NULL DEFAULT true,
     max_messages_per_hour BIGINT CHECK (max_messages_per_hour >= 0),
     max_recipients_per_hour BIGINT CHECK (max_recipients_per_hour >= 0),
     quota_bytes BIGINT CHECK (quota_bytes >= 0),
     quota_messages BIGINT CHECK (quota_messages >= 0)
   );
   CREATE TABLE aliases (
     alias TEXT COLLATE "C" NOT NULL,
     target TEXT COLLATE "C" NOT NULL,
     created_ms BIGINT NOT NULL,
     -- SQLite's rowid: the order of targets added within one millisecond.
     seq BIGINT GENERATED ALWAYS AS IDENTITY,
     PRIMARY KEY (alias, target)
   );
   CREATE TABLE certificates (
     fingerprint TEXT COLLATE "C" PRIMARY KEY,
     address TEXT COLLATE "C" NOT NULL REFERENCES users (address) ON DELETE CASCADE,
     created_ms BIGINT NOT NULL
   );
   CREATE INDEX certificates_by_address ON certificates (address);
   CREATE TABLE send_as (
     address TEXT COLLATE "C" NOT NULL REFERENCES users (address) ON DELETE CASCADE,
     pattern TEXT COLLATE "C" NOT NULL,
     created_ms BIGINT NOT NULL,
     PRIMARY KEY (address, pattern)
   );
   CREATE TABLE domains (
     domain TEXT COLLATE "C" PRIMARY KEY,
     created_ms BIGINT NOT NULL
   );
   CREATE TABLE domains_version (
     one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
     version BIGINT NOT NULL
   );
   INSERT INTO domains_version (version) VALUES (0);
   -- search_path FROM CURRENT: the trigger finds its schema's tables whoever writes (psql included).
   CREATE FUNCTION domains_changed() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
   BEGIN
     UPDATE domains_version SET version = version + 1;
     PERFORM pg_notify('${DOMAINS_CHANNEL}', TG_TABLE_SCHEMA);
     RETURN NULL;
   END $$;
   CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
     FOR EACH STATEMENT EXECUTE FUNCTION domains_changed();`,
];

/** A domain as the domains table keys it (a fully qualified trailing dot dropped), or null. */
function storedDomainKey(domain: string): string | null {
  return normalizeCatchAll(`@${domain.trim().replace(/\.$/, '')}`)?.slice(1) ?? null;
}

function intOrNull(row: PgRow, key: string): number | null {
  return row[key] === null || row[key] === undefined ? null : pgInt(row, key);
}

/** A text[] column (pg parses arrays of text into string arrays). */
function textArray(row: PgRow, key: string): string[] {
  const v = row[key];
  if (!Array.isArray(v) || !v.every((e) => typeof e === 'string')) {
    throw new Error(`postgres: column ${key} is not text[]`);
  }
  return v;
}

function policyOf(row: PgRow): UserPolicy {
  return {
    senderCheck: row['sender_check'] === true,
    maxMessagesPerHour: intOrNull(row, 'max_messages_per_hour'),
    maxRecipientsPerHour: intOrNull(row, 'max_recipients_per_hour'),
  };
}

/** A pool or one of its clients (inside a transaction). */
interface Sql {
  query(text: string, values?: unknown[]): Promise<{ rows: PgRow[]; rowCount: number | null }>;
}

async function rowsOf(sql: Sql, text: string, values: unknown[] = []): Promise<PgRow[]> {
  return (await sql.query(text, values)).rows;
}

async function changed(sql: Sql, text: string, values: unknown[]): Promise<number> {
  return (await sql.query(text, values)).rowCount ?? 0;
}

/** What one address is: its alias targets (in the order SQLite gives them) and whether a user has it. */
interface Entry {
  readonly targets: readonly string[];
  readonly isUser: boolean;
}

/** What an expansion collects, and what it has seen (as SqliteDirectory's). */
interface Expansion {
  readonly users: Set<string>;
  readonly forward: Set<string>;
  readonly seen: Set<string>;
  readonly catchAll: boolean;
  /** Entries read during this expansion: each address costs one read, batched with its neighbours. */
  readonly entries: Map<string, Entry>;
}

const SELECT_ENTRIES = `SELECT k.key,
  EXISTS (SELECT 1 FROM users u WHERE u.address = k.key) AS is_user,
  ARRAY (SELECT a.target FROM aliases a WHERE a.alias = k.key ORDER BY a.created_ms, a.target) AS targets
  FROM unnest($1::text[]) AS k (key)`;

const USER_EXISTS = 'SELECT 1 FROM users WHERE address = $1';

export class PostgresDirectory implements Directory {
  readonly #pool: PgPool;
  readonly #configDomains: ReadonlySet<string>;
  /** The config's domains and the stored ones, as last read: what isLocalDomain answers from. */
  #localDomains: ReadonlySet<string>;
  #domainsVersion: number | null = null;
  #refreshing: Promise<void> | null = null;
  #refreshQueued: Promise<void> | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #listener: pg.Client | null = null;
  #schema = '';
  #closed = false;
  readonly #listen: boolean;
  readonly #clock: Clock;
  readonly #maxDepth: number;
  readonly #postmaster: string | null;
  readonly #delimiter: string;
  readonly #defaultQuota: () => QuotaLimits;

  private constructor(options: PostgresDirectoryOptions) {
    const config = options.config;
    this.#pool = options.pool;
    this.#configDomains = new Set(config.localDomains.map(normalizeDomain));
    this.#localDomains = this.#configDomains;
    this.#listen = options.listen ?? true;
    this.#clock = config.clock ?? systemClock;
    this.#maxDepth = config.maxAliasDepth ?? DEFAULT_MAX_ALIAS_DEPTH;
    this.#postmaster = config.postmaster == null ? null : normalizeAddress(config.postmaster);
    this.#delimiter = config.recipientDelimiter ?? '';
    const quota = config.defaultQuota ?? UNLIMITED_QUOTA;
    this.#defaultQuota = typeof quota === 'function' ? quota : () => quota;
  }

  /** Migrate the schema, load the stored domains and start following their changes. */
  static async open(options: PostgresDirectoryOptions): Promise<PostgresDirectory> {
    await migratePostgres(options.pool, 'directory', DIRECTORY_STEPS);
    const directory = new PostgresDirectory(options);
    try {
      const [row] = await rowsOf(options.pool, 'SELECT current_schema() AS schema');
      directory.#schema = row === undefined ? '' : pgText(row, 'schema');
      await directory.#loadDomains();
      if (directory.#listen) await directory.#startListening();
    } catch (err) {
      await directory.close();
      throw err;
    }
    const refreshMs = options.domainRefreshMs ?? DEFAULT_DOMAIN_REFRESH_MS;
    directory.#timer = setInterval(() => directory.#tick(), refreshMs);
    // A forgotten close() must not keep the process alive; the poll is only a bound.
    directory.#timer.unref();
    return directory;
  }

  isLocalDomain(domain: string): boolean {
    return this.#localDomains.has(normalizeDomain(domain));
  }

  // --- local domains ------------------------------------------------------------------------------

  /** Reads the stored domains when their version moved (one round trip, one snapshot). */
  async #loadDomains(): Promise<void> {
    const [row] = await rowsOf(
      this.#pool,
      `SELECT v.version, CASE WHEN v.version IS DISTINCT FROM $1::bigint
         THEN ARRAY (SELECT domain FROM domains) END AS domains
       FROM domains_version v`,
      [this.#domainsVersion],
    );
    if (row === undefined) return;
    const version = pgInt(row, 'version');
    // NULL when the version has not moved: nothing more was read.
    if (version === this.#domainsVersion || row['domains'] === null) return;
    this.#localDomains = new Set([...this.#configDomains, ...textArray(row, 'domains')]);
    this.#domainsVersion = version;
  }

  /**
   * One read at a time. A caller arriving during one gets the next: the read under way may have started
   * before what the caller waits for (its own commit, a notification) and missed it.
   */
  #refreshDomains(): Promise<void> {
    if (this.#refreshing !== null) {
      this.#refreshQueued ??= this.#refreshing
        .catch(() => undefined)
        .then(() => {
          this.#refreshQueued = null;
          return this.#refreshDomains();
        });
      return this.#refreshQueued;
    }
    const refreshing = this.#loadDomains().finally(() => {
      this.#refreshing = null;
    });
    this.#refreshing = refreshing;
    return refreshing;
  }

  #tick(): void {
    if (this.#closed) return;
    // XXX: a failed poll keeps the last known domains; the next tick tries again (no logger here).
    this.#refreshDomains().catch(() => undefined);
    if (this.#listen && this.#listener === null) this.#startListening().catch(() => undefined);
  }

  async #startListening(): Promise<void> {
    // Keepalive: a connection dropped silently (NAT, failover) is noticed, not waited on forever.
    const client = new pg.Client({ ...this.#pool.options, keepAlive: true });
    this.#listener = client;
    const lost = (): void => {
      if (this.#listener !== client) return;
      // The next tick connects again; until then the poll bounds staleness.
      this.#listener = null;
      void client.end().catch(() => undefined);
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.payload === this.#schema) this.#refreshDomains().catch(() => undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${DOMAINS_CHANNEL}`);
    } catch {
      lost();
      return;
    }
    if (this.#closed) {
      lost();
      return;
    }
    // A change committed between the open's read and LISTEN sent no notification to us.
    await this.#refreshDomains();
  }

  /** The set to check a write against: read again when it lacks the domain (another node may have it). */
  async #domainsFor(domain: string): Promise<ReadonlySet<string>> {
    if (!this.#localDomains.has(domain)) await this.#refreshDomains();
    return this.#localDomains;
  }

  /** Store a local domain (beside the config's); 'exists' when it is local already. */
  async addDomain(domain: string): Promise<void> {
    const key = storedDomainKey(domain);
    if (key === null) throw new DirectoryError('invalid', `not a valid domain: ${domain}`);
    if (this.#configDomains.has(key)) {
      throw new DirectoryError('exists', `domain ${key} is already local (configured)`);
    }
    const inserted = await changed(
      this.#pool,
      'INSERT INTO domains (domain, created_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [key, this.#clock.nowMs()],
    );
    await this.#refreshDomains();
    if (inserted === 0) throw new DirectoryError('exists', `domain ${key} already exists`);
  }

  /**
   * Remove a stored domain (its users and aliases stay, unreachable until it is local again); false when
   * none was stored. A configured domain stays local: the config is not the directory's to change.
   */
  async deleteDomain(domain: string): Promise<boolean> {
    const key = storedDomainKey(domain);
    if (key === null) return false;
    const deleted = await changed(this.#pool, 'DELETE FROM domains WHERE domain = $1', [key]);
    await this.#refreshDomains();
    return deleted > 0;
  }

  /** The stored domains (not the config's), in byte order. */
  async listDomains(): Promise<string[]> {
    const rows = await rowsOf(this.#pool, 'SELECT domain FROM domains ORDER BY domain');
    return rows.map((r) => pgText(r, 'domain'));
  }

  // --- resolution ---------------------------------------------------------------------------------

  async resolve(address: string): Promise<Resolution> {
    const key = normalizeAddress(address);
    if (key === null) return { kind: 'unknown' };
    if (!this.#localDomains.has(domainOf(key))) return { kind: 'remote' };
    const x = this.#expansion(true);
    await this.#expand(key, 0, new Set(), x);
    if (x.users.size === 0 && x.forward.size === 0) return { kind: 'unknown' };
    return Object.freeze({
      kind: 'local',
      users: Object.freeze([...x.users]),
      forward: Object.freeze([...x.forward]),
    });
  }

  #expansion(catchAll: boolean): Expansion {
    return { users: new Set(), forward: new Set(), seen: new Set(), catchAll, entries: new Map() };
  }

  /** The entry of key, reading it together with the other keys given (those not read yet). */
  async #entry(x: Expansion, key: string, alongWith: readonly string[] = []): Promise<Entry> {
    const known = x.entries.get(key);
    if (known !== undefined) return known;
    const wanted = [...new Set([key, ...alongWith])].filter((k) => !x.entries.has(k));
    for (const row of await rowsOf(this.#pool, SELECT_ENTRIES, [wanted])) {
      x.entries.set(pgText(row, 'key'), {
        targets: textArray(row, 'targets'),
        isUser: row['is_user'] === true,
      });
    }
    return x.entries.get(key)!;
  }

  /**
   * SqliteDirectory's #expand, step for step (see there): alias first, then user, then the configured
   * postmaster, then the address without its subaddress tag, then the domain's catch-all.
   */
  async #expand(key: string, depth: number, path: ReadonlySet<string>, x: Expansion): Promise<void> {
    if (depth > this.#maxDepth) return;
    if (path.has(key)) {
      if ((await this.#entry(x, key)).isUser) x.users.add(key);
      return;
    }
    if (x.seen.has(key)) return;
    x.seen.add(key);
    const entry = await this.#entry(x, key, this.#neighbours(key));
    if (entry.targets.length > 0) {
      await this.#expandTargets(entry.targets, depth, new Set(path).add(key), x);
      return;
    }
    if (entry.isUser) {
      x.users.add(key);
      return;
    }
    if (this.#postmaster !== null && this.#postmaster !== key && localPartOf(key) === 'postmaster') {
      await this.#expand(this.#postmaster, depth + 1, new Set(path).add(key), x);
      return;
    }
    const base = this.#withoutTag(key);
    if (base !== null) {
      const before = x.users.size + x.forward.size;
      await this.#expand(base, depth + 1, new Set(path).add(key), x);
      if (x.users.size + x.forward.size > before) return;
    }
    const catchAll = `@${domainOf(key)}`;
    if (!x.catchAll || x.seen.has(catchAll)) return;
    x.seen.add(catchAll);
    const targets = (await this.#entry(x, catchAll)).targets;
    await this.#expandTargets(targets, depth, new Set(path).add(key), x);
  }

  /** What #expand may read after key's own entry: worth fetching in the same round trip. */
  #neighbours(key: string): string[] {
    const next = [`@${domainOf(key)}`];
    const base = this.#withoutTag(key);
    if (base !== null) next.push(base);
    if (this.#postmaster !== null && localPartOf(key) === 'postmaster') next.push(this.#postmaster);
    return next;
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

  async #expandTargets(
    targets: readonly string[],
    depth: number,
    path: ReadonlySet<string>,
    x: Expansion,
  ): Promise<void> {
    const local = targets.filter((t) => this.#localDomains.has(domainOf(t)));
    // The first local target's read brings its siblings' (and what they may ask next) too.
    const along = local.flatMap((t) => [t, ...this.#neighbours(t)]);
    for (const target of targets) {
      if (this.#localDomains.has(domainOf(target))) {
        await this.#entry(x, target, along);
        await this.#expand(target, depth + 1, path, x);
      } else x.forward.add(target);
    }
  }

  async #isUser(sql: Sql, key: string): Promise<boolean> {
    return (await rowsOf(sql, USER_EXISTS, [key])).length > 0;
  }

  async #targets(sql: Sql, alias: string): Promise<string[]> {
    const rows = await rowsOf(
      sql,
      'SELECT target FROM aliases WHERE alias = $1 ORDER BY created_ms, target',
      [alias],
    );
    return rows.map((r) => pgText(r, 'target'));
  }

  /** SqliteDirectory's #loopThrough: the loop alias -> target would close, as "a -> b -> a", or null. */
  async #loopThrough(sql: Sql, aliasKey: string, targetKey: string): Promise<string | null> {
    const visited = new Set<string>();
    const find = async (chain: readonly string[]): Promise<readonly string[] | null> => {
      const key = chain[chain.length - 1]!;
      if (key === aliasKey) return chain;
      if (visited.has(key) || chain.length > this.#maxDepth + 2) return null;
      visited.add(key);
      for (const next of await this.#targets(sql, key)) {
        if (next === key) continue;
        const found = await find([...chain, next]);
        if (found !== null) return found;
      }
      return null;
    };
    return (await find([aliasKey, targetKey]))?.join(' -> ') ?? null;
  }

  // --- users --------------------------------------------------------------------------------------

  async #localKey(address: string, what: string): Promise<string> {
    const key = normalizeAddress(address, false);
    if (key === null) throw new DirectoryError('invalid', `not a valid address: ${address}`);
    const domains = await this.#domainsFor(domainOf(key));
    if (!domains.has(domainOf(key))) {
      throw new DirectoryError(
        'invalid',
        `${what} ${key} is not in a local domain (${[...domains].join(', ')})`,
      );
    }
    return key;
  }

  /** The key of an existing user (the key form accepted), or 'not-found'; `lock` keeps it until commit. */
  async #requireUser(sql: Sql, address: string, lock = false): Promise<string> {
    const key = normalizeAddress(address);
    const found =
      key !== null && (await rowsOf(sql, `${USER_EXISTS}${lock ? ' FOR KEY SHARE' : ''}`, [key])).length > 0;
    if (!found) throw new DirectoryError('not-found', `no user ${key ?? address}`);
    return key;
  }

  async addUser(address: string, passwordHash: string | null, scram: string | null = null): Promise<void> {
    const key = await this.#localKey(address, 'user');
    const inserted = await changed(
      this.#pool,
      'INSERT INTO users (address, password_hash, scram, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
      [key, passwordHash, scram, this.#clock.nowMs()],
    );
    if (inserted === 0) throw new DirectoryError('exists', `user ${key} already exists`);
  }

  async setPasswordHash(address: string, passwordHash: string): Promise<void> {
    const key = normalizeAddress(address);
    const updated =
      key === null
        ? 0
        : await changed(this.#pool, 'UPDATE users SET password_hash = $1, scram = NULL WHERE address = $2', [
            passwordHash,
            key,
          ]);
    if (updated === 0) throw new DirectoryError('not-found', `no user ${key ?? address}`);
  }

  async deleteUser(address: string): Promise<boolean> {
    const key = normalizeAddress(address);
    return key !== null && (await changed(this.#pool, 'DELETE FROM users WHERE address = $1', [key])) > 0;
  }

  async listUsers(): Promise<User[]> {
    const rows = await rowsOf(
      this.#pool,
      'SELECT address, password_hash IS NOT NULL AS has_password, scram IS NOT NULL AS has_scram, created_ms ' +
        'FROM users ORDER BY address',
    );
    return rows.map((r) => ({
      address: pgText(r, 'address'),
      createdMs: pgInt(r, 'created_ms'),
      hasPassword: r['has_password'] === true,
      hasScram: r['has_scram'] === true,
    }));
  }

  async getPasswordHash(address: string): Promise<string | null> {
    const key = normalizeAddress(address);
    if (key === null) return null;
    const [row] = await rowsOf(this.#pool, 'SELECT password_hash FROM users WHERE address = $1', [key]);
    return row === undefined ? null : pgTextOrNull(row, 'password_hash');
  }

  // --- aliases ------------------------------------------------------------------------------------

  async addAlias(alias: string, target: string): Promise<void> {
    const aliasKey = normalizeCatchAll(alias) ?? (await this.#localKey(alias, 'alias'));
    if (!(await this.#domainsFor(domainOf(aliasKey))).has(domainOf(aliasKey))) {
      throw new DirectoryError('invalid', `alias ${aliasKey} is not in a local domain`);
    }
    const targetKey = normalizeAddress(target, false);
    if (targetKey === null) throw new DirectoryError('invalid', `not a valid target address: ${target}`);
    await inTransaction(this.#pool, async (client) => {
      // Alias writers one at a time (across nodes; readers go on), so the loop check sees every
      // committed alias and no two writers each close half of a loop.
      await client.query('LOCK TABLE aliases IN SHARE ROW EXCLUSIVE MODE');
      if (targetKey === aliasKey && !(await this.#isUser(client, aliasKey))) {
        throw new DirectoryError(
          'invalid',
          `alias ${aliasKey} cannot point at itself (only a user's alias may list the user, to keep a copy)`,
        );
      }
      const loop = targetKey === aliasKey ? null : await this.#loopThrough(client, aliasKey, targetKey);
      if (loop !== null) throw new DirectoryError('invalid', `alias loop: ${loop}`);
      const inserted = await changed(
        client,
        'INSERT INTO aliases (alias, target, created_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
        [aliasKey, targetKey, this.#clock.nowMs()],
      );
      if (inserted === 0)
        throw new DirectoryError('exists', `alias ${aliasKey} -> ${targetKey} already exists`);
    });
  }

  async deleteAlias(alias: string, target?: string): Promise<boolean> {
    const aliasKey = normalizeCatchAll(alias) ?? normalizeAddress(alias);
    if (aliasKey === null) return false;
    if (target === undefined) {
      return (await changed(this.#pool, 'DELETE FROM aliases WHERE alias = $1', [aliasKey])) > 0;
    }
    const targetKey = normalizeAddress(target);
    if (targetKey === null) return false;
    return (
      (await changed(this.#pool, 'DELETE FROM aliases WHERE alias = $1 AND target = $2', [
        aliasKey,
        targetKey,
      ])) > 0
    );
  }

  async listAliases(): Promise<Alias[]> {
    const rows = await rowsOf(
      this.#pool,
      'SELECT alias, target FROM aliases ORDER BY alias, created_ms, seq',
    );
    return rows.map((r) => ({ alias: pgText(r, 'alias'), target: pgText(r, 'target') }));
  }

  // --- credentials --------------------------------------------------------------------------------

  async getCredentials(address: string): Promise<Credentials | null> {
    const key = normalizeAddress(address);
    if (key === null) return null;
    const [row] = await rowsOf(this.#pool, 'SELECT password_hash, scram FROM users WHERE address = $1', [
      key,
    ]);
    if (row === undefined) return null;
    return { passwordHash: pgTextOrNull(row, 'password_hash'), scram: pgTextOrNull(row, 'scram') };
  }

  async setCredentials(address: string, credentials: Credentials): Promise<void> {
    const key = normalizeAddress(address);
    const updated =
      key === null
        ? 0
        : await changed(this.#pool, 'UPDATE users SET password_hash = $1, scram = $2 WHERE address = $3', [
            credentials.passwordHash,
            credentials.scram,
            key,
          ]);
    if (updated === 0) throw new DirectoryError('not-found', `no user ${key ?? address}`);
  }

  // --- certificates -------------------------------------------------------------------------------

  async addCertificate(address: string, fingerprint: string): Promise<void> {
    const fp = normalizeFingerprint(fingerprint);
    if (fp === null) {
      throw new DirectoryError(
        'invalid',
        `not a SHA-256 fingerprint: ${fingerprint} (expected 64 hex digits, colons allowed)`,
      );
    }
    await inTransaction(this.#pool, async (client) => {
      // Locked: a user deleted on another node meanwhile would leave the insert without its row.
      const key = await this.#requireUser(client, address, true);
      const inserted = await changed(
        client,
        'INSERT INTO certificates (fingerprint, address, created_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
        [fp, key, this.#clock.nowMs()],
      );
      if (inserted > 0) return;
      const owner = await this.#certificateOwner(client, fp);
      throw new DirectoryError(
        'exists',
        owner === key
          ? `certificate ${fp} is already mapped to ${key}`
          : `certificate ${fp} is already mapped to another user (${owner ?? '?'})`,
      );
    });
  }

  async #certificateOwner(sql: Sql, fingerprint: string): Promise<string | null> {
    const [row] = await rowsOf(sql, 'SELECT address FROM certificates WHERE fingerprint = $1', [fingerprint]);
    return row === undefined ? null : pgText(row, 'address');
  }

  async deleteCertificate(address: string, fingerprint: string): Promise<boolean> {
    const key = normalizeAddress(address);
    const fp = normalizeFingerprint(fingerprint);
    if (key === null || fp === null) return false;
    return (
      (await changed(this.#pool, 'DELETE FROM certificates WHERE address = $1 AND fingerprint = $2', [
        key,
        fp,
      ])) > 0
    );
  }

  async listCertificates(address?: string): Promise<CertificateMapping[]> {
    const select = 'SELECT address, fingerprint, created_ms FROM certificates';
    let rows: PgRow[];
    if (address === undefined) rows = await rowsOf(this.#pool, `${select} ORDER BY address, fingerprint`);
    else {
      const key = normalizeAddress(address);
      if (key === null) return [];
      rows = await rowsOf(this.#pool, `${select} WHERE address = $1 ORDER BY fingerprint`, [key]);
    }
    return rows.map((r) => ({
      address: pgText(r, 'address'),
      fingerprint: pgText(r, 'fingerprint'),
      createdMs: pgInt(r, 'created_ms'),
    }));
  }

  async findUserByCertificate(fingerprint: string): Promise<string | null> {
    const fp = normalizeFingerprint(fingerprint);
    return fp === null ? null : this.#certificateOwner(this.#pool, fp);
  }

  // --- sender rights ------------------------------------------------------------------------------

  async ownsAddress(user: string, address: string): Promise<boolean> {
    const userKey = normalizeAddress(user);
    const key = normalizeAddress(address);
    if (userKey === null || key === null) return false;
    // One round trip: is user a user, is address one, does a grant cover it.
    const [row] = await rowsOf(
      this.#pool,
      `SELECT EXISTS (${USER_EXISTS}) AS user_exists,
              EXISTS (SELECT 1 FROM users WHERE address = $2) AS address_is_user,
              EXISTS (SELECT 1 FROM send_as WHERE address = $1 AND pattern IN ($2, $3)) AS granted`,
      [userKey, key, `@${domainOf(key)}`],
    );
    if (row?.['user_exists'] !== true) return false;
    if (key === userKey || row['granted'] === true) return true;
    // Another user's own address is never ours, even when that user's alias sends its mail to us.
    if (!this.#localDomains.has(domainOf(key)) || row['address_is_user'] === true) return false;
    const x = this.#expansion(false);
    await this.#expand(key, 0, new Set(), x);
    return x.users.has(userKey);
  }

  async addSendAs(user: string, pattern: string): Promise<void> {
    const patternKey = normalizeSendAs(pattern, false);
    if (patternKey === null) throw new DirectoryError('invalid', `not an address or @domain: ${pattern}`);
    await inTransaction(this.#pool, async (client) => {
      const key = await this.#requireUser(client, user, true);
      if (patternKey === key) throw new DirectoryError('invalid', `${key} may always send as itself`);
      const inserted = await changed(
        client,
        'INSERT INTO send_as (address, pattern, created_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
        [key, patternKey, this.#clock.nowMs()],
      );
      if (inserted === 0) throw new DirectoryError('exists', `${key} may already send as ${patternKey}`);
    });
  }

  async deleteSendAs(user: string, pattern?: string): Promise<boolean> {
    const key = normalizeAddress(user);
    if (key === null) return false;
    if (pattern === undefined) {
      return (await changed(this.#pool, 'DELETE FROM send_as WHERE address = $1', [key])) > 0;
    }
    const patternKey = normalizeSendAs(pattern, true);
    if (patternKey === null) return false;
    return (
      (await changed(this.#pool, 'DELETE FROM send_as WHERE address = $1 AND pattern = $2', [
        key,
        patternKey,
      ])) > 0
    );
  }

  async listSendAs(user?: string): Promise<SendAsGrant[]> {
    const select = 'SELECT address, pattern, created_ms FROM send_as';
    let rows: PgRow[];
    if (user === undefined) rows = await rowsOf(this.#pool, `${select} ORDER BY address, pattern`);
    else {
      const key = normalizeAddress(user);
      if (key === null) return [];
      rows = await rowsOf(this.#pool, `${select} WHERE address = $1 ORDER BY pattern`, [key]);
    }
    return rows.map((r) => ({
      user: pgText(r, 'address'),
      pattern: pgText(r, 'pattern'),
      createdMs: pgInt(r, 'created_ms'),
    }));
  }

  // --- policy and quota ---------------------------------------------------------------------------

  async getUserPolicy(address: string): Promise<UserPolicy> {
    const key = normalizeAddress(address);
    if (key === null) return DEFAULT_USER_POLICY;
    const [row] = await rowsOf(
      this.#pool,
      'SELECT sender_check, max_messages_per_hour, max_recipients_per_hour FROM users WHERE address = $1',
      [key],
    );
    return row === undefined ? DEFAULT_USER_POLICY : policyOf(row);
  }

  async setUserPolicy(address: string, policy: Partial<UserPolicy>): Promise<UserPolicy> {
    const messages =
      policy.maxMessagesPerHour === undefined
        ? undefined
        : checkLimit(policy.maxMessagesPerHour, 'max messages per hour');
    const recipients =
      policy.maxRecipientsPerHour === undefined
        ? undefined
        : checkLimit(policy.maxRecipientsPerHour, 'max recipients per hour');
    const key = normalizeAddress(address);
    // One statement: a field left out keeps what is stored at that moment, whichever node wrote it.
    const [row] =
      key === null
        ? []
        : await rowsOf(
            this.#pool,
            `UPDATE users SET
               sender_check = COALESCE($2::boolean, sender_check),
               max_messages_per_hour = CASE WHEN $3::boolean THEN $4::bigint ELSE max_messages_per_hour END,
               max_recipients_per_hour = CASE WHEN $5::boolean THEN $6::bigint ELSE max_recipients_per_hour END
             WHERE address = $1
             RETURNING sender_check, max_messages_per_hour, max_recipients_per_hour`,
            [
              key,
              policy.senderCheck ?? null,
              messages !== undefined,
              messages ?? null,
              recipients !== undefined,
              recipients ?? null,
            ],
          );
    if (row === undefined) throw new DirectoryError('not-found', `no user ${key ?? address}`);
    return policyOf(row);
  }

  async getQuota(address: string): Promise<QuotaLimits | null> {
    const key = normalizeAddress(address);
    if (key === null) return null;
    const [row] = await rowsOf(
      this.#pool,
      'SELECT quota_bytes, quota_messages FROM users WHERE address = $1',
      [key],
    );
    return row === undefined ? null : this.#quotaOf(row);
  }

  #quotaOf(row: PgRow): QuotaLimits {
    const fallback = this.#defaultQuota();
    return {
      storageBytes: appliedQuota(intOrNull(row, 'quota_bytes'), fallback.storageBytes),
      messages: appliedQuota(intOrNull(row, 'quota_messages'), fallback.messages),
    };
  }

  async setQuota(address: string, change: QuotaChange): Promise<QuotaLimits> {
    const bytes =
      change.storageBytes === undefined ? undefined : storedQuota(change.storageBytes, 'a storage limit');
    const messages =
      change.messages === undefined ? undefined : storedQuota(change.messages, 'a message limit');
    const key = normalizeAddress(address);
    const [row] =
      key === null
        ? []
        : await rowsOf(
            this.#pool,
            `UPDATE users SET
               quota_bytes = CASE WHEN $2::boolean THEN $3::bigint ELSE quota_bytes END,
               quota_messages = CASE WHEN $4::boolean THEN $5::bigint ELSE quota_messages END
             WHERE address = $1
             RETURNING quota_bytes, quota_messages`,
            [key, bytes !== undefined, bytes ?? null, messages !== undefined, messages ?? null],
          );
    if (row === undefined) throw new DirectoryError('not-found', `no user ${key ?? address}`);
    return this.#quotaOf(row);
  }

  /** Stops following domain changes; the pool stays open (it is the process's). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    const listener = this.#listener;
    this.#listener = null;
    await listener?.end().catch(() => undefined);
    await this.#refreshQueued?.catch(() => undefined);
    await this.#refreshing?.catch(() => undefined);
  }
}
