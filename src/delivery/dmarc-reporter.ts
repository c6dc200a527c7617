// Sending DMARC aggregate reports (RFC 7489 §7.2): once a UTC day is over, per domain whose DMARC record
// had rua=, one report of that day's rows, gzipped XML mailed to each `mailto:` address (through the
// queue: DKIM-signed when Tern holds a key for the From domain). An address outside the domain's
// organization is used only when its owner agrees (§7.1: a `<domain>._report._dmarc.<its domain>` TXT
// record starting with v=DMARC1); a report larger than an address's size limit (`!10m`) is not sent to it.
// Failure reports (ruf=) are never sent: they would carry other people's messages (privacy).
// Deliberately NOT here: what is counted (reports/dmarc-store.ts), the XML (reports/dmarc-report.ts).

import type { Config } from '../config/config.ts';
import type { Resolver } from '../core/dns.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { postmasterAddress } from '../directory/postmaster.ts';
import { organizationalDomain } from '../policy/psl.ts';
import type { Queue } from '../queue/queue.ts';
import { queueReport } from './self-message.ts';
import {
  buildDmarcReport,
  dmarcReportMessage,
  gzipDmarcReport,
  mailtoTargets,
  type DmarcRow,
} from '../reports/dmarc-report.ts';

export interface DmarcRowSource {
  unreported(beforeDay: string): DmarcRow[];
  markReported(day: string, domain: string): void;
}

export interface DmarcReporterDeps {
  readonly store: DmarcRowSource;
  readonly resolver: Resolver;
  readonly queue: Queue;
  readonly config: Pick<Config, 'hostname' | 'localDomains' | 'queue'>;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** What `tern dmarc reports` shows, and what a run did. */
export interface DmarcReportPlan {
  readonly domain: string;
  readonly day: string;
  readonly messages: number;
  readonly rows: number;
  /** Each rua address and what happens to it: "send", "queued <id>", or why not. */
  readonly to: readonly { readonly address: string; readonly outcome: string }[];
}

export class DmarcReporter {
  readonly #deps: DmarcReporterDeps;

  constructor(deps: DmarcReporterDeps) {
    this.#deps = deps;
  }

  /** Without `send`: what would be sent (nothing changes). With it: queue the reports, mark the days. */
  async run(options: {
    readonly send: boolean;
    readonly includeToday?: boolean;
  }): Promise<DmarcReportPlan[]> {
    const now = this.#deps.clock.nowMs();
    const today = new Date(now).toISOString().slice(0, 10);
    const before =
      options.includeToday === true ? new Date(now + 86_400_000).toISOString().slice(0, 10) : today;
    const groups = new Map<string, DmarcRow[]>();
    for (const r of this.#deps.store.unreported(before)) {
      const key = `${r.day} ${r.policyDomain}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const plans: DmarcReportPlan[] = [];
    for (const rows of groups.values()) {
      const { day, policyDomain: domain } = rows[0]!;
      try {
        plans.push(await this.#one(domain, day, rows, now, options.send));
        if (options.send) this.#deps.store.markReported(day, domain);
      } catch (err) {
        this.#deps.logger.warn(Events.dmarcReportFailed, { domain, day, err });
      }
    }
    return plans;
  }

  async #one(
    domain: string,
    day: string,
    rows: readonly DmarcRow[],
    now: number,
    send: boolean,
  ): Promise<DmarcReportPlan> {
    const { config } = this.#deps;
    const receiver = config.hostname.replace(/\.$/, '');
    const from = postmasterAddress(config);
    const report = buildDmarcReport(rows, { domain, day, orgName: receiver, email: from });
    const gz = gzipDmarcReport(report);
    const to: { address: string; outcome: string }[] = [];
    const targets = mailtoTargets(rows.at(-1)!.rua);
    for (const t of targets) {
      const refusal = await this.#refusal(domain, t.address);
      if (refusal !== null) to.push({ address: t.address, outcome: refusal });
      else if (t.maxBytes !== null && gz.byteLength > t.maxBytes) {
        to.push({
          address: t.address,
          outcome: `report of ${gz.byteLength} bytes over its limit of ${t.maxBytes}`,
        });
      } else if (!send) to.push({ address: t.address, outcome: 'send' });
      else {
        const id = await this.#queue(t.address, from, domain, receiver, report, gz, now);
        to.push({ address: t.address, outcome: `queued ${id}` });
      }
    }
    if (send)
      this.#deps.logger.event(Events.dmarcReportSent, {
        domain,
        day,
        reportId: report.reportId,
        to: to.map((t) => `${t.address}: ${t.outcome}`),
      });
    return { domain, day, messages: rows.reduce((n, r) => n + r.count, 0), rows: rows.length, to };
  }

  /** §7.1: null when the address may get the domain's reports, else why not. */
  async #refusal(domain: string, address: string): Promise<string | null> {
    const at = address.lastIndexOf('@');
    if (at < 1) return 'not an address';
    const dest = address.slice(at + 1).toLowerCase();
    if (organizationalDomain(dest) === organizationalDomain(domain)) return null;
    const txt = await this.#deps.resolver.txt(`${domain}._report._dmarc.${dest}`);
    if (txt.kind === 'error') throw new Error(`checking ${address}: ${txt.reason}`);
    const ok = txt.kind === 'ok' && txt.records.some((r) => /^v=DMARC1(;|$)/.test(r.trim()));
    return ok
      ? null
      : `${dest} has not agreed to receive ${domain}'s reports (no ${domain}._report._dmarc.${dest} record)`;
  }

  async #queue(
    to: string,
    from: string,
    domain: string,
    receiver: string,
    report: ReturnType<typeof buildDmarcReport>,
    gz: Buffer,
    now: number,
  ): Promise<string> {
    const bytes = dmarcReportMessage(report, gz, { from, to, domain, receiver, nowMs: now });
    return queueReport(this.#deps.queue, { from, to, bytes, service: 'dmarc-report', nowMs: now });
  }
}
