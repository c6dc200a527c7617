// Sending TLS-RPT reports (RFC 8460 §5): once a UTC day is over, for each destination domain with
// recorded sessions that publishes `_smtp._tls.<domain>` (`v=TLSRPTv1; rua=...`), one report: queued as a
// message to each `mailto:` address (the delivery worker sends it and signs it with DKIM when we hold a
// key for the From domain), POSTed to each `https:` address (application/tlsrpt+gzip). A domain without
// the record gets none. Runs hourly in the server; `tern tls-reports send` runs it by hand.
// Deliberately NOT here: what is recorded (remote.ts), the report's format (tls-rpt.ts).

import { type Agent, request } from 'undici';
import { httpAgent } from './http-agent.ts';
import { queueReport } from './self-message.ts';
import type { Config } from '../config/config.ts';
import type { Resolver } from '../core/dns.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { postmasterAddress } from '../directory/postmaster.ts';
import type { Queue } from '../queue/queue.ts';
import type { TlsResultStore } from './policy-cache.ts';
import {
  buildTlsReport,
  gzipReport,
  parseTlsRptRecord,
  tlsReportMessage,
  type TlsResultRow,
} from './tls-rpt.ts';

export interface TlsReporterDeps {
  readonly store: TlsResultStore;
  readonly resolver: Resolver;
  readonly queue: Queue;
  readonly config: Pick<Config, 'hostname' | 'localDomains' | 'queue'>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** `[outbound] tls_ca`, for https: report addresses. */
  readonly tlsCa: string | null;
}

export interface TlsReportSent {
  readonly domain: string;
  readonly day: string;
  /** Where it went: mailto: queue ids, https: statuses; empty when the domain asks for none. */
  readonly to: readonly string[];
  /** Queue ids of the messages made (one per mailto: address). */
  readonly queued: readonly string[];
  readonly policies: number;
}

const HTTPS_TIMEOUT_MS = 30_000;

export class TlsReporter {
  readonly #deps: TlsReporterDeps;
  readonly #agent: Agent;
  #running: Promise<TlsReportSent[]> | null = null;

  constructor(deps: TlsReporterDeps) {
    this.#deps = deps;
    this.#agent = httpAgent(deps.resolver, deps.tlsCa, {
      timeoutMs: HTTPS_TIMEOUT_MS,
      maxResponseBytes: 64 * 1024,
    });
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  /** Report every finished day (with `includeToday`, today so far as well). One run at a time. */
  run(options: { includeToday?: boolean } = {}): Promise<TlsReportSent[]> {
    this.#running ??= this.#run(options.includeToday === true).finally(() => (this.#running = null));
    return this.#running;
  }

  async #run(includeToday: boolean): Promise<TlsReportSent[]> {
    const now = this.#deps.clock.nowMs();
    const today = new Date(now).toISOString().slice(0, 10);
    const before = includeToday ? new Date(now + 86_400_000).toISOString().slice(0, 10) : today;
    const groups = new Map<string, TlsResultRow[]>();
    for (const r of this.#deps.store.unreported(before)) {
      const key = `${r.day} ${r.policyDomain}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const sent: TlsReportSent[] = [];
    for (const rows of groups.values()) {
      const { day, policyDomain: domain } = rows[0]!;
      try {
        sent.push(await this.#report(domain, day, rows, now));
        this.#deps.store.markReported(day, domain);
      } catch (err) {
        this.#deps.logger.warn(Events.tlsReportFailed, { domain, day, err });
      }
    }
    return sent;
  }

  async #report(
    domain: string,
    day: string,
    rows: readonly TlsResultRow[],
    now: number,
  ): Promise<TlsReportSent> {
    const { resolver, config, logger } = this.#deps;
    const txt = await resolver.txt(`_smtp._tls.${domain}`);
    if (txt.kind === 'error') throw new Error(`_smtp._tls.${domain}: ${txt.reason}`);
    const records = txt.kind === 'ok' ? txt.records.map(parseTlsRptRecord).filter((r) => r !== null) : [];
    const record = records.length === 1 ? records[0]! : null;
    if (record === null) return { domain, day, to: [], queued: [], policies: 0 };
    const organization = config.hostname.replace(/\.$/, '');
    const from = postmasterAddress(config);
    const report = buildTlsReport(rows, { domain, day, organization, contact: from });
    const to: string[] = [];
    const queued: string[] = [];
    for (const uri of record.rua) {
      if (uri.toLowerCase().startsWith('mailto:')) {
        const address = decodeURIComponent(uri.slice(7));
        const id = await this.#queueMail(address, from, domain, report, now);
        queued.push(id);
        to.push(`${uri} (queued ${id})`);
      } else {
        const status = await this.#post(uri, report);
        to.push(`${uri} (${status})`);
      }
    }
    logger.event(Events.tlsReportSent, { domain, day, reportId: report.reportId, to });
    return { domain, day, to, queued, policies: (report.json['policies'] as unknown[]).length };
  }

  async #queueMail(
    to: string,
    from: string,
    domain: string,
    report: ReturnType<typeof buildTlsReport>,
    now: number,
  ): Promise<string> {
    const { queue, config } = this.#deps;
    const bytes = tlsReportMessage(report, {
      from,
      to,
      domain,
      submitter: config.hostname.replace(/\.$/, ''),
      nowMs: now,
      hostname: config.hostname,
    });
    return queueReport(queue, { from, to, bytes, service: 'tls-report', nowMs: now });
  }

  async #post(url: string, report: ReturnType<typeof buildTlsReport>): Promise<string> {
    try {
      const res = await request(url, {
        dispatcher: this.#agent,
        method: 'POST',
        headers: { 'content-type': 'application/tlsrpt+gzip' },
        body: gzipReport(report),
        signal: AbortSignal.timeout(HTTPS_TIMEOUT_MS),
      });
      await res.body.dump();
      return `HTTP ${res.statusCode}`;
    } catch (err) {
      return `failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
}
