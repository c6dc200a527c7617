// data/tls-policies.sqlite: the durable cache of MTA-STS policies (RFC 8461 §5.1: kept across restarts,
// so a policy an attacker hides from DNS later still protects the domain until its max_age ends), and
// the TLS results of delivery sessions per day and domain that TLS-RPT reports are made of (RFC 8460).
// Deliberately NOT here: what a policy means (mta-sts.ts), what a report says (tls-rpt.ts).

import type { DatabaseSync } from 'node:sqlite';
import { integer, openDatabase, Statements, text } from '../db/sqlite.ts';
import type { CachedPolicy, MtaStsPolicy, PolicyCache } from './mta-sts.ts';
import type { TlsResultRow, TlsSessionResult } from './tls-rpt.ts';

/** Where session results wait for their day's report. */
export interface TlsResultStore {
  record(result: TlsSessionResult): void;
  /** Rows not yet reported, of days before `beforeDay` ("2026-12-07"), oldest first. */
  unreported(beforeDay: string): TlsResultRow[];
  markReported(day: string, domain: string): void;
}

const MIGRATIONS = [
  `CREATE TABLE mta_sts (
     domain TEXT PRIMARY KEY,
     policy TEXT NOT NULL,
     fetched_ms INTEGER NOT NULL
   ) STRICT;`,
  `CREATE TABLE tls_results (
     day TEXT NOT NULL,
     policy_domain TEXT NOT NULL,
     policy_type TEXT NOT NULL,
     policy_strings TEXT NOT NULL,
     mx_host TEXT NOT NULL,
     receiving_ip TEXT NOT NULL,
     result TEXT NOT NULL,
     count INTEGER NOT NULL,
     reported INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (day, policy_domain, policy_type, policy_strings, mx_host, receiving_ip, result)
   ) STRICT;`,
];

export class SqlitePolicyCache implements PolicyCache, TlsResultStore {
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

  record(r: TlsSessionResult): void {
    this.#sql
      .sql(
        `INSERT INTO tls_results (day, policy_domain, policy_type, policy_strings, mx_host, receiving_ip, result, count)
         VALUES (?, ?, ?, ?, ?, ?, ?, 1)
         ON CONFLICT DO UPDATE SET count = count + 1`,
      )
      .run(
        r.day,
        r.policyDomain,
        r.policyType,
        JSON.stringify(r.policyStrings),
        r.mxHost,
        r.receivingIp,
        r.result,
      );
  }

  unreported(beforeDay: string): TlsResultRow[] {
    return this.#sql
      .sql('SELECT * FROM tls_results WHERE reported = 0 AND day < ? ORDER BY day, policy_domain')
      .all(beforeDay)
      .map((row) => ({
        day: text(row, 'day'),
        policyDomain: text(row, 'policy_domain'),
        policyType: text(row, 'policy_type') as TlsResultRow['policyType'],
        policyStrings: JSON.parse(text(row, 'policy_strings')) as string[],
        mxHost: text(row, 'mx_host'),
        receivingIp: text(row, 'receiving_ip'),
        result: text(row, 'result') as TlsResultRow['result'],
        count: integer(row, 'count'),
      }));
  }

  markReported(day: string, domain: string): void {
    this.#sql.sql('UPDATE tls_results SET reported = 1 WHERE day = ? AND policy_domain = ?').run(day, domain);
  }

  /** Results older than `beforeDay` are dropped (reported or not: a report is of one day). */
  prune(beforeDay: string): void {
    this.#sql.sql('DELETE FROM tls_results WHERE day < ?').run(beforeDay);
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
