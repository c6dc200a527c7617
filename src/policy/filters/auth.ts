// SPF, DKIM, ARC and DMARC (policy/inbound-auth.ts) as a filter of the pipeline, named "auth": SPF at
// MAIL (its result shared as a fact, for greylisting), DKIM and ARC fed the content as it streams, DMARC
// at the end of data. Its verdicts: the Authentication-Results: field added on top, Junk for DMARC
// quarantine (or reject with dmarc_reject = "junk"), a refusal for DMARC reject, a 451 where DNS failed
// and dns_failure = "tempfail". It logs what it found (smtp.authchecks) and, for domains that ask for
// aggregate reports (RFC 7489 §7.2), the message's DMARC row (smtp.dmarc.observed).
// Deliberately NOT here: the checks themselves (spf.ts, dkim/, arc/, dmarc.ts, inbound-auth.ts).

import type { ChecksConfig } from '../../config/config.ts';
import type { Resolver } from '../../core/dns.ts';
import { Events } from '../../core/events.ts';
import type { Clock, Logger } from '../../core/ports.ts';
import type { DmarcObservation } from '../../reports/dmarc-report.ts';
import { InboundAuth, type InboundVerdict } from '../inbound-auth.ts';
import type { Filter, FilterClient, FilterContext, FilterSession, FilterStage, Verdict } from './filter.ts';

export const AUTH_FILTER = 'auth';

export interface AuthFilterDeps {
  readonly resolver: Resolver;
  readonly checks: ChecksConfig;
  readonly hostname: string;
  readonly clock: Clock;
}

export class AuthFilter implements Filter {
  readonly name = AUTH_FILTER;
  readonly stages: readonly FilterStage[] = ['mail', 'message'];
  // Its checks keep their own limits ([checks] spf/data timeouts) and never throw; this is a backstop.
  readonly timeoutMs: number;
  readonly onFailure = 'accept' as const;
  readonly #deps: AuthFilterDeps;

  constructor(deps: AuthFilterDeps) {
    this.#deps = deps;
    this.timeoutMs = Math.max(deps.checks.spfTimeoutMs, deps.checks.dataTimeoutMs) + 5000;
  }

  open(_client: FilterClient, log: Logger): FilterSession {
    return new AuthSession(this.#deps, log);
  }
}

class AuthSession implements FilterSession {
  readonly #deps: AuthFilterDeps;
  readonly #log: Logger;
  #inbound: InboundAuth | null = null;

  constructor(deps: AuthFilterDeps, log: Logger) {
    this.#deps = deps;
    this.#log = log;
  }

  async check(stage: FilterStage, ctx: FilterContext): Promise<Verdict> {
    if (stage === 'mail') return this.#atMail(ctx);
    if (stage === 'message') return this.#atEnd(ctx);
    return { kind: 'accept' };
  }

  content(chunk: Uint8Array): void {
    this.#inbound?.push(chunk);
  }

  reset(): void {
    this.#inbound = null;
  }

  async #atMail(ctx: FilterContext): Promise<Verdict> {
    const inbound = new InboundAuth(this.#deps);
    this.#inbound = inbound;
    const reply = await inbound.atMail({ ip: ctx.client.ip, helo: ctx.client.helo, mailFrom: ctx.mailFrom });
    const spf = inbound.spf;
    if (spf !== null) ctx.facts.spf = { result: spf.result, domain: spf.domain };
    if (reply !== null) {
      this.#log.warn(Events.smtpAuthChecks, { stage: 'mail', reply: reply.enhanced });
      return { kind: 'defer', reply, reason: 'SPF: DNS failed (temperror)' };
    }
    return { kind: 'accept', reason: `spf=${spf?.result ?? 'none'}` };
  }

  async #atEnd(ctx: FilterContext): Promise<Verdict> {
    const inbound = this.#inbound;
    this.#inbound = null;
    if (inbound === null) return { kind: 'accept' };
    const verdict = await inbound.atEnd(ctx.message?.fromAddresses ?? [], {
      smtputf8: ctx.mailParams.has('SMTPUTF8'),
    });
    this.#logVerdict(ctx, verdict);
    const reason = summary(verdict);
    if (verdict.reply !== null)
      return verdict.reply.code < 500
        ? { kind: 'defer', reply: verdict.reply, reason }
        : { kind: 'reject', reply: verdict.reply, reason };
    const colon = verdict.header.indexOf(':');
    const actions = {
      headers: [
        {
          op: 'add' as const,
          name: verdict.header.slice(0, colon),
          value: verdict.header
            .slice(colon + 1)
            .replace(/^ /, '')
            .replace(/\r\n$/, ''),
        },
      ],
    };
    return verdict.junk ? { kind: 'quarantine', reason, actions } : { kind: 'accept', reason, actions };
  }

  #logVerdict(ctx: FilterContext, verdict: InboundVerdict): void {
    const queueId = ctx.queueId;
    this.#log.event(Events.smtpAuthChecks, {
      queueId,
      spf: verdict.spf?.result ?? null,
      dkim: verdict.dkim.map((d) => `${d.result}:${d.domain}`),
      arc: verdict.arc?.cv ?? null,
      dmarc: verdict.dmarc
        ? `${verdict.dmarc.result}:${verdict.dmarc.domain}:${verdict.dmarc.disposition}`
        : null,
      junk: verdict.junk,
      refused: verdict.reply?.enhanced ?? null,
    });
    const dmarc = verdict.dmarc;
    if (dmarc?.record === undefined || dmarc.recordDomain === undefined || dmarc.record.rua.length === 0)
      return;
    // The domain asks for aggregate reports (RFC 7489 §7.2): this message's row (reports/dmarc-store.ts).
    const report: DmarcObservation = {
      policyDomain: dmarc.recordDomain,
      headerFrom: dmarc.domain,
      sourceIp: ctx.client.ip,
      disposition: dmarc.disposition,
      dkimAligned: dmarc.alignment.dkim,
      spfAligned: dmarc.alignment.spf,
      spf: verdict.spf === null ? null : { domain: verdict.spf.domain, result: verdict.spf.result },
      dkim: verdict.dkim
        .filter((d) => d.domain !== '')
        .map((d) => ({ domain: d.domain, selector: d.selector, result: d.result })),
      policy: {
        p: dmarc.record.p,
        ...(dmarc.record.sp === undefined ? {} : { sp: dmarc.record.sp }),
        pct: dmarc.record.pct,
        adkim: dmarc.record.adkim,
        aspf: dmarc.record.aspf,
      },
      rua: dmarc.record.rua.map((r) => ({
        uri: r.uri,
        ...(r.maxBytes === undefined ? {} : { maxBytes: r.maxBytes }),
      })),
    };
    this.#log.debug(Events.dmarcObserved, { queueId, report });
  }
}

function summary(v: InboundVerdict): string {
  const dkim = v.dkim.length === 0 ? 'none' : v.dkim.map((d) => d.result).join(',');
  return `spf=${v.spf?.result ?? 'none'} dkim=${dkim} dmarc=${v.dmarc?.result ?? 'none'}${v.arc === null ? '' : ` arc=${v.arc.cv}`}`;
}
