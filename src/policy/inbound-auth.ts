// Inbound mail authentication as policy stages (issue 5): SPF at MAIL FROM (RFC 7208), then — fed with the
// message as it streams — DKIM (RFC 6376/8463) and ARC (RFC 8617), and DMARC (RFC 7489) at end of data.
// The outcome is one Authentication-Results: header (RFC 8601) and a decision: accept, deliver to Junk,
// refuse (550 5.7.1), or ask the client to retry (451) when DNS failed and dns_failure = "tempfail".
// Each stage has its own time limit; a check that runs out of time is a temperror, never a crash.
// The header is text: UTF-8 where the message is SMTPUTF8 (RFC 6532), plain ASCII otherwise (domains as
// A-labels, anything else non-ASCII as "?"); the caller writes it as UTF-8, never one octet per char.
// I/O only through the Resolver port; time from the Clock.

import { domainToASCII } from 'node:url';
import type { ChecksConfig } from '../config/config.ts';
import type { Resolver } from '../core/dns.ts';
import type { Clock } from '../core/ports.ts';
import { Replies, type Reply } from '../core/reply.ts';
import { ArcVerifier, type ArcVerification } from './arc/verify.ts';
import { DkimVerifier, type DkimResult } from './dkim/verifier.ts';
import { evaluateDmarc, type DmarcEvaluation } from './dmarc.ts';
import { checkSpf, type SpfResult } from './spf.ts';

export interface InboundAuthDeps {
  readonly resolver: Resolver;
  readonly checks: ChecksConfig;
  readonly hostname: string;
  readonly clock: Clock;
}

export interface InboundVerdict {
  /** null: accept. Otherwise refuse the message with this reply. */
  readonly reply: Reply | null;
  /** Deliver into the Junk mailbox (DMARC quarantine, or reject with dmarc_reject = "junk"). */
  readonly junk: boolean;
  /**
   * The Authentication-Results: field, CRLF-terminated, to put on top of the message: text to write as
   * UTF-8 (ASCII only unless the message is SMTPUTF8).
   */
  readonly header: string;
  readonly spf: SpfResult | null;
  readonly dkim: readonly DkimResult[];
  readonly arc: ArcVerification | null;
  readonly dmarc: DmarcEvaluation | null;
}

/** One transaction's checks. */
export class InboundAuth {
  readonly #deps: InboundAuthDeps;
  #ip = '';
  #helo = '';
  #mailFrom = '';
  #spf: { mfrom: SpfResult; helo: SpfResult } | null = null;
  #dkim: DkimVerifier | null = null;
  #arc: ArcVerifier | null = null;

  constructor(deps: InboundAuthDeps) {
    this.#deps = deps;
  }

  /** SPF's result for the MAIL FROM identity, once atMail ran. */
  get spf(): SpfResult | null {
    return this.#spf?.mfrom ?? null;
  }

  get authservId(): string {
    return this.#deps.checks.authservId ?? this.#deps.hostname;
  }

  /** At MAIL FROM: SPF for the MAIL FROM and HELO identities. Returns a reply only to ask for a retry. */
  async atMail(input: { ip: string; helo: string; mailFrom: string }): Promise<Reply | null> {
    const { checks, resolver, hostname, clock } = this.#deps;
    this.#ip = input.ip;
    this.#helo = input.helo;
    this.#mailFrom = input.mailFrom;
    this.#spf = await checkSpf({
      ip: input.ip,
      mailFrom: input.mailFrom,
      helo: input.helo,
      receivingHost: hostname,
      resolver,
      nowMs: clock.nowMs(),
      signal: AbortSignal.timeout(checks.spfTimeoutMs),
    });
    if (this.#spf.mfrom.result === 'temperror' && checks.dnsFailure === 'tempfail')
      return Replies.spfTempError;
    return null;
  }

  /** The message as it arrives (the bytes the client sent, before any header of ours). */
  push(chunk: Uint8Array): void {
    const nowMs = this.#deps.clock.nowMs();
    this.#dkim ??= new DkimVerifier({ resolver: this.#deps.resolver, nowMs });
    this.#arc ??= new ArcVerifier({ resolver: this.#deps.resolver });
    this.#dkim.push(chunk);
    this.#arc.push(chunk);
  }

  /**
   * End of data: DKIM, ARC and DMARC for the author domains in From:. `smtputf8`: the transaction's
   * MAIL carried SMTPUTF8, so the header may hold UTF-8.
   */
  async atEnd(fromAddresses: readonly string[], opts: { smtputf8: boolean }): Promise<InboundVerdict> {
    const { checks, resolver } = this.#deps;
    const signal = AbortSignal.timeout(checks.dataTimeoutMs);
    this.#dkim ??= new DkimVerifier({ resolver, nowMs: this.#deps.clock.nowMs() });
    this.#arc ??= new ArcVerifier({ resolver });
    const [dkim, arc] = await Promise.all([
      this.#dkim.finish(signal).catch((): DkimResult[] => []),
      this.#arc.finish(signal).catch(() => null),
    ]);
    const fromDomains = [
      ...new Set(fromAddresses.map((a) => a.slice(a.lastIndexOf('@') + 1).toLowerCase())),
    ].filter((d) => d !== '');
    const spf = this.#spf?.mfrom ?? null;
    let dmarc: DmarcEvaluation | null = null;
    if (fromDomains.length > 0) {
      dmarc = await evaluateDmarc({
        fromDomain: fromDomains.length === 1 ? fromDomains[0]! : fromDomains,
        spf: spf ? { result: spf.result, domain: spf.domain } : null,
        dkim: dkim.map((d) => ({
          result: d.result,
          domain: d.domain,
          bodyLengthLimited: d.bodyLengthLimited,
        })),
        resolver,
      }).catch(() => null);
    }
    const dnsTrouble =
      dkim.some((d) => d.result === 'temperror') || dmarc?.result === 'temperror' || arc?.temperror === true;
    let reply: Reply | null = null;
    let junk = false;
    if (dnsTrouble && checks.dnsFailure === 'tempfail') reply = Replies.authDnsTempError;
    else if (dmarc?.result === 'fail') {
      const action =
        dmarc.disposition === 'reject'
          ? checks.dmarcReject
          : dmarc.disposition === 'quarantine'
            ? checks.dmarcQuarantine
            : 'none';
      if (action === 'reject') reply = Replies.dmarcReject;
      else if (action === 'junk') junk = true;
    }
    const header = this.#header(dkim, arc, dmarc, opts.smtputf8);
    return { reply, junk, header, spf, dkim, arc, dmarc };
  }

  /** RFC 8601 §2.2: authserv-id, then one resinfo per method, each with its properties. */
  #header(
    dkim: readonly DkimResult[],
    arc: ArcVerification | null,
    dmarc: DmarcEvaluation | null,
    utf8: boolean,
  ): string {
    const value = (v: string): string => propertyValue(v, utf8);
    const comment = (reason: string): string => reasonComment(reason, utf8);
    const parts: string[] = [];
    const spf = this.#spf;
    if (spf) {
      const mailfrom = this.#mailFrom === '' ? `postmaster@${this.#helo}` : this.#mailFrom;
      parts.push(`spf=${spf.mfrom.result} ${comment(spf.mfrom.reason)}smtp.mailfrom=${value(mailfrom)}`);
      parts.push(`spf=${spf.helo.result} ${comment(spf.helo.reason)}smtp.helo=${value(this.#helo)}`);
    }
    if (dkim.length === 0) parts.push('dkim=none');
    for (const d of dkim) {
      if (d.result === 'none') {
        parts.push('dkim=none');
        continue;
      }
      const l = d.bodyLengthLimited ? '(l= body length limit) ' : '';
      parts.push(
        `dkim=${d.result} ${l}${comment(d.reason)}header.d=${value(d.domain)} header.s=${value(d.selector)} ` +
          `header.a=${value(d.algorithm)} header.b=${value(d.headerB)}`,
      );
    }
    if (arc) {
      const op = arc.cv === 'pass' ? ` header.oldest-pass=${arc.oldestPass}` : '';
      parts.push(`arc=${arc.cv}${op} smtp.remote-ip=${value(this.#ip)}`);
    }
    if (dmarc) {
      // Without a record there is no policy to report: "(p=none dis=none)" would claim one.
      const policy = dmarc.record === undefined ? '' : `(p=${dmarc.policy} dis=${dmarc.disposition}) `;
      parts.push(`dmarc=${dmarc.result} ${policy}header.from=${value(dmarc.domain)}`);
    } else parts.push('dmarc=none');
    return `Authentication-Results: ${this.authservId};\r\n\t${parts.join(';\r\n\t')}\r\n`;
  }
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * ASCII for a message that is not SMTPUTF8: the domain (after the last "@", or the whole value) as
 * A-labels (RFC 5890), anything still not ASCII as "?".
 */
function asciiText(v: string): string {
  if (!NON_ASCII.test(v)) return v;
  const at = v.lastIndexOf('@');
  const domain = v.slice(at + 1);
  const ascii = NON_ASCII.test(domain) ? domainToASCII(domain) : domain;
  const joined = `${v.slice(0, at + 1)}${ascii === '' ? domain : ascii}`;
  return joined.replace(/[^\x00-\x7f]/gu, '?');
}

/** A property value: a token as is, anything else quoted (RFC 2045 value). */
function propertyValue(v: string, utf8: boolean): string {
  const safe = (utf8 ? v : asciiText(v)).replace(/[\r\n]/g, ' ');
  return /^[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]+$/.test(safe) && safe !== ''
    ? safe
    : `"${safe.replace(/(["\\])/g, '\\$1')}"`;
}

/** A CFWS comment with the reason, escaped so client-influenced text cannot end it early. */
function reasonComment(reason: string, utf8: boolean): string {
  // Cut before escaping and by code point: a cut escape would leave a "\" that quotes the ")".
  const text = [...(utf8 ? reason : reason.replace(/[^\x00-\x7f]/gu, '?'))]
    .slice(0, 200)
    .join('')
    .replace(/[\r\n]/g, ' ')
    .replace(/[()\\]/g, (c) => `\\${c}`);
  return text === '' ? '' : `(${text}) `;
}

/**
 * Remove Authentication-Results: fields that claim our authserv-id (RFC 8601 §5): a message must not
 * arrive already carrying results in our name. `section` is the raw header section (latin1 string).
 */
export function isForgedAuthResults(rawField: string, authservId: string): boolean {
  const m = /^authentication-results\s*:\s*(?:\([^)]*\)\s*)*([^\s;(]+)/i.exec(rawField);
  return m !== null && m[1]!.toLowerCase() === authservId.toLowerCase();
}
