// The durable cache of MTA-STS policies (RFC 8461 §5.1: kept across restarts, so a policy an attacker
// hides from DNS later still protects the domain until its max_age ends), in data/tls-policies.sqlite.
// Deliberately NOT here: what a policy means (mta-sts.ts).

import type { DatabaseSync } from 'node:sqlite';
import { integer, openDatabase, Statements, text } from '../db/sqlite.ts';
import type { CachedPolicy, MtaStsPolicy, PolicyCache } from './mta-sts.ts';

const MIGRATIONS = [
  `CREATE TABLE mta_sts (
     domain TEXT PRIMARY KEY,
     policy TEXT NOT NULL,
     fetched_ms INTEGER NOT NULL
   ) STRICT;`,
];

export class SqlitePolicyCache implements PolicyCache {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    this.#sql = new Statements(db);
  }

  static open(path: string): SqlitePolicyCache {
    return new SqlitePolicyCache(openDatabase(path, { migrations: MIGRATIONS }));
  }

  get(domain: string): CachedPolicy | null {
    const row = this.#sql.sql('SELECT policy, fetched_ms FROM mta_sts WHERE domain = ?').get(domain);
    if (row === undefined) return null;
    try {
      return {
        domain,
        policy: JSON.parse(text(row, 'policy')) as MtaStsPolicy,
        fetchedMs: integer(row, 'fetched_ms'),
      };
    } catch {
      return null;
    }
  }

  put(entry: CachedPolicy): void {
    this.#sql
      .sql('INSERT OR REPLACE INTO mta_sts (domain, policy, fetched_ms) VALUES (?, ?, ?)')
      .run(entry.domain, JSON.stringify(entry.policy), entry.fetchedMs);
  }

  delete(domain: string): void {
    this.#sql.sql('DELETE FROM mta_sts WHERE domain = ?').run(domain);
  }

  /** Every cached policy (`tern queue show`'s neighbours: the admin and tests look). */
  all(): CachedPolicy[] {
    return this.#sql
      .sql('SELECT domain FROM mta_sts ORDER BY domain')
      .all()
      .map((r) => this.get(text(r, 'domain')))
      .filter((p) => p !== null);
  }

  close(): void {
    this.#db.close();
  }
}

/** A cache in memory (tests; a server without a data directory never exists). */
export class MemoryPolicyCache implements PolicyCache {
  readonly #map = new Map<string, CachedPolicy>();
  get(domain: string): CachedPolicy | null {
    return this.#map.get(domain) ?? null;
  }
  put(entry: CachedPolicy): void {
    this.#map.set(entry.domain, entry);
  }
  delete(domain: string): void {
    this.#map.delete(domain);
  }
}
