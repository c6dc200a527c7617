// data/dmarc.sqlite: the rows of DMARC aggregate reports (RFC 7489 §7.2), counted per UTC day as inbound
// messages are checked, on whichever thread checked them; read by the daily reporter and
// `tern dmarc reports`. Writes are batched per event-loop turn with no fsync of their own (GroupCommit
// 'none', as the trace): a crash may lose the last moment's counts, never a message.
// Also the logger decorator that records: every `smtp.dmarc.observed` record (a debug line the intake
// writes when the sender's DMARC record asks for reports: not shown at info level, not traced) is one count.
// Deliberately NOT here: the report's XML (dmarc-report.ts), sending (delivery/dmarc-reporter.ts).

import type { DatabaseSync } from 'node:sqlite';
import { Events } from '../core/events.ts';
import type { LogFields, Logger } from '../core/ports.ts';
import { GroupCommit } from '../db/group-commit.ts';
import { integer, openDatabase, Statements, text } from '../db/sqlite.ts';
import type { DmarcObservation, DmarcRow } from './dmarc-report.ts';

const MIGRATIONS = [
  `CREATE TABLE rows (
     day TEXT NOT NULL,
     policy_domain TEXT NOT NULL,
     observation TEXT NOT NULL,
     count INTEGER NOT NULL,
     reported INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (day, policy_domain, observation)
   ) STRICT;`,
];

export class SqliteDmarcStore {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #commits: GroupCommit;
  readonly #nowMs: () => number;

  private constructor(db: DatabaseSync, nowMs: () => number) {
    this.#db = db;
    this.#sql = new Statements(db);
    this.#commits = new GroupCommit(db, { sync: 'none' });
    this.#nowMs = nowMs;
  }

  static open(path: string, nowMs: () => number): SqliteDmarcStore {
    // A short busy wait: another thread's batch or the reporter holding the lock costs one batch at most.
    return new SqliteDmarcStore(openDatabase(path, { migrations: MIGRATIONS, busyTimeoutMs: 100 }), nowMs);
  }

  /** Count one message; never throws (a report is worth less than the message). */
  record(o: DmarcObservation): void {
    const day = new Date(this.#nowMs()).toISOString().slice(0, 10);
    const observation = JSON.stringify(o);
    void this.#commits
      .run(() => {
        this.#sql
          .sql(
            `INSERT INTO rows (day, policy_domain, observation, count) VALUES (?, ?, ?, 1)
             ON CONFLICT DO UPDATE SET count = count + 1`,
          )
          .run(day, o.policyDomain, observation);
      })
      .catch(() => undefined);
  }

  /** Rows not yet reported, of days before `beforeDay`, oldest first. */
  unreported(beforeDay: string): DmarcRow[] {
    return this.#sql
      .sql(
        'SELECT day, observation, count FROM rows WHERE reported = 0 AND day < ? ORDER BY day, policy_domain',
      )
      .all(beforeDay)
      .map((r) => ({
        ...(JSON.parse(text(r, 'observation')) as DmarcObservation),
        day: text(r, 'day'),
        count: integer(r, 'count'),
      }));
  }

  markReported(day: string, domain: string): void {
    this.#sql.sql('UPDATE rows SET reported = 1 WHERE day = ? AND policy_domain = ?').run(day, domain);
  }

  prune(beforeDay: string): void {
    this.#sql.sql('DELETE FROM rows WHERE day < ?').run(beforeDay);
  }

  /** Writes the last batch, then closes (async for the callers' sake: a future store may need it). */
  close(): Promise<void> {
    this.#commits.close();
    this.#db.close();
    return Promise.resolve();
  }
}

/** A logger that logs as `inner` does and counts every smtp.dmarc.observed record's `report`. */
export function dmarcRecordingLogger(inner: Logger, store: Pick<SqliteDmarcStore, 'record'>): Logger {
  return {
    event: (n, f) => inner.event(n, f),
    warn: (n, f) => inner.warn(n, f),
    error: (n, f) => inner.error(n, f),
    debug: (name: string, fields?: LogFields) => {
      inner.debug(name, fields);
      const report = fields?.['report'];
      if (name === Events.dmarcObserved && typeof report === 'object' && report !== null)
        store.record(report as DmarcObservation);
    },
    child: (fields) => dmarcRecordingLogger(inner.child(fields), store),
  };
}
