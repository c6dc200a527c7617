// Domain blocklists (RFC 5782 §2.3: an A lookup of `<domain>.<zone>`, as Spamhaus DBL, URIBL, SURBL):
// at MAIL, the registered domains (Public Suffix List) of the MAIL FROM address and of the HELO name;
// at the end of data (optionally), those of the http(s) URLs in the message. Each zone has a weight; the
// zones that list any of the domains add up, and reaching the threshold refuses with 554 5.7.1 naming
// the first domain and zone. As in dnsbl.ts: a zone may count only some codes, 127.0.0.1 and
// 127.255.255.x are no listing (nor DBL's 127.0.1.255, "IP queries prohibited"), a Spamhaus DQS key
// goes in front of every zone, and a check whose every lookup failed is a failure (its mode decides).
// The message is read as a stream with a bounded carry-over between chunks: at most `maxScanBytes` of
// it, at most `maxBodyDomains` distinct domains; quoted-printable soft line breaks are joined so a URL
// cut by one is still found. Not looked up: IP literals, names without a registered domain (a bare
// public suffix, single labels), and `skipDomains` (ours) and their subdomains.
// Deliberately NOT here: decoding base64 parts or HTML entities (a URL only there is not seen), the full
// host names (only registered domains are asked, as URIBL asks them; DBL's listed subdomains are
// missed), the client IP (dnsbl.ts).

import type { Resolver } from '../../core/dns.ts';
import type { DnsblZone } from '../../core/dnsbl-zone.ts';
import { Replies, withText } from '../../core/reply.ts';
import { parseIp } from '../networks.ts';
import { canonicalDomain, organizationalDomain, publicSuffix } from '../psl.ts';
import { StatelessFilter, type FilterContext, type FilterStage, type Verdict } from './filter.ts';

export { parseZone, type DnsblZone } from '../../core/dnsbl-zone.ts';

export interface DblOptions {
  readonly zones: readonly DnsblZone[];
  readonly threshold: number;
  readonly resolver: Pick<Resolver, 'a'>;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly dqsKey: string | null;
  /** Check the URLs of the message too (at `message`); default true. */
  readonly bodyDomains?: boolean;
  /** Our own domains: they and their subdomains are never looked up. */
  readonly skipDomains?: readonly string[];
  /** Distinct registered domains of URLs looked up per message; default 20. */
  readonly maxBodyDomains?: number;
  /** Octets of the message scanned for URLs; default 2 MiB. */
  readonly maxScanBytes?: number;
}

function counts(answer: string, zone: DnsblZone): boolean {
  if (zone.codes.length > 0) return zone.codes.includes(answer);
  return (
    answer.startsWith('127.') &&
    answer !== '127.0.0.1' &&
    answer !== '127.0.1.255' &&
    !answer.startsWith('127.255.255.')
  );
}

/**
 * The registered domain to look up for a host name or an address's domain, lower-case A-labels; null
 * for IP literals, single labels, bare public suffixes and what is no domain.
 */
export function lookupDomain(host: string): string | null {
  const h = host.trim().replace(/\.$/, '');
  if (h === '' || h.startsWith('[') || parseIp(h) !== null || !h.includes('.')) return null;
  const domain = organizationalDomain(h);
  if (domain === '' || domain === publicSuffix(domain) || !domain.includes('.')) return null;
  return domain;
}

/**
 * Collects the hosts of http(s) URLs from a message fed in chunks, bounded: a carry-over of CARRY
 * characters between chunks (enough for a scheme, user info and a host), and at most `max` hosts.
 */
export class UrlHostScanner {
  /** Characters after a match that must be there before it is taken (user info is up to 64, then "@"). */
  static readonly LOOKAHEAD = 80;
  /** The longest match (8 + 65 + 253) plus the look-ahead, and a margin. */
  static readonly CARRY = 512;
  readonly hosts = new Set<string>();
  readonly #max: number;
  readonly #accept: (host: string) => string | null;
  readonly #decoder = new TextDecoder('utf-8');
  #carry = '';

  /** `accept` maps a host to what is collected (null: skip it). */
  constructor(max: number, accept: (host: string) => string | null = (h) => h) {
    this.#max = max;
    this.#accept = accept;
  }

  get full(): boolean {
    return this.hosts.size >= this.#max;
  }

  feed(chunk: Uint8Array): void {
    this.#scan(this.#carry + this.#decoder.decode(chunk, { stream: true }), false);
  }

  end(): void {
    this.#scan(this.#carry + this.#decoder.decode(), true);
    this.#carry = '';
  }

  #scan(raw: string, final: boolean): void {
    // Quoted-printable soft line breaks ("=" at a line's end) join the lines they split.
    const text = raw.replace(/=\r?\n/g, '');
    const re = /https?:\/\/(?:[^\s/?#@"'<>[\]]{1,64}@)?([\p{L}\p{N}._-]{1,253})/giu;
    for (const m of text.matchAll(re)) {
      if (this.full) break;
      // A match near the end may be cut (a host going on, user info whose "@" is yet to come, a soft
      // break's "=" without its CRLF): the carry-over holds it, and the next chunk's scan judges it whole.
      if (!final && m.index + m[0].length + UrlHostScanner.LOOKAHEAD > text.length) continue;
      const host = m[1]!.replace(/[.-]+$/, '').toLowerCase();
      const kept = this.#accept(host);
      if (kept !== null) this.hosts.add(kept);
    }
    // The tail is scanned again with the next chunk (hosts are a set: found twice is found once); a
    // soft break cut after its "=" joins there too.
    this.#carry = final ? '' : text.slice(-UrlHostScanner.CARRY);
  }
}

export class DblFilter extends StatelessFilter {
  readonly name = 'dbl';
  readonly stages: readonly FilterStage[];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #zones: readonly DnsblZone[];
  readonly #threshold: number;
  readonly #resolver: Pick<Resolver, 'a'>;
  readonly #dqsKey: string | null;
  readonly #skipDomains: readonly string[];
  readonly #maxBodyDomains: number;
  readonly #maxScanBytes: number;

  constructor(opts: DblOptions) {
    super();
    this.#zones = opts.zones;
    this.#threshold = opts.threshold;
    this.#resolver = opts.resolver;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#dqsKey = opts.dqsKey;
    // What is looked up is a registered domain: ours are compared in that form (A-labels), and a host of
    // ours (mail.example.org) keeps its whole registered domain from being looked up.
    this.#skipDomains = (opts.skipDomains ?? []).map(
      (d) => lookupDomain(d) ?? canonicalDomain(d.replace(/^\*\./, '')),
    );
    this.#maxBodyDomains = opts.maxBodyDomains ?? 20;
    this.#maxScanBytes = opts.maxScanBytes ?? 2 * 1024 * 1024;
    this.stages = (opts.bodyDomains ?? true) ? ['mail', 'message'] : ['mail'];
  }

  /** The domain to look up for a host, or null when it is not looked up (see lookupDomain, skipDomains). */
  domainOf(host: string): string | null {
    const d = lookupDomain(host);
    if (d === null) return null;
    return this.#skipDomains.some((s) => d === s || d.endsWith(`.${s}`)) ? null : d;
  }

  async check(stage: FilterStage, ctx: FilterContext, signal?: AbortSignal): Promise<Verdict> {
    const domains = new Set<string>();
    if (stage === 'message') {
      if (ctx.message === undefined) return { kind: 'accept' };
      const scanner = new UrlHostScanner(this.#maxBodyDomains, (h) => this.domainOf(h));
      let read = 0;
      for await (const chunk of ctx.message.read()) {
        // Leaving the loop closes the spool file (the iterator's return()).
        if (signal?.aborted === true) throw new Error('dbl: aborted while reading the message');
        const room = this.#maxScanBytes - read;
        scanner.feed(chunk.byteLength > room ? chunk.subarray(0, room) : chunk);
        read += Math.min(chunk.byteLength, room);
        if (read >= this.#maxScanBytes || scanner.full) break;
      }
      scanner.end();
      for (const d of scanner.hosts) domains.add(d);
    } else {
      const at = ctx.mailFrom.lastIndexOf('@');
      const from = at < 0 ? null : this.domainOf(ctx.mailFrom.slice(at + 1));
      if (from !== null) domains.add(from);
      const helo = this.domainOf(ctx.client.helo);
      if (helo !== null) domains.add(helo);
    }
    if (domains.size === 0 || this.#zones.length === 0) return { kind: 'accept' };
    return this.#judge([...domains]);
  }

  async #judge(domains: readonly string[]): Promise<Verdict> {
    const hits: { zone: DnsblZone; domain: string; codes: string }[] = [];
    let lookups = 0;
    let errors = 0;
    await Promise.all(
      this.#zones.flatMap((z) =>
        domains.map(async (domain) => {
          const zone = this.#dqsKey === null ? z.zone : `${this.#dqsKey}.${z.zone}`;
          lookups++;
          const a = await this.#resolver.a(`${domain}.${zone}`);
          if (a.kind === 'error') errors++;
          if (a.kind !== 'ok') return;
          const listed = a.records.filter((r) => counts(r, z));
          if (listed.length > 0) hits.push({ zone: z, domain, codes: listed.join(',') });
        }),
      ),
    );
    // Config order, then the order the domains were found in: the reply names the first.
    hits.sort(
      (a, b) =>
        this.#zones.indexOf(a.zone) - this.#zones.indexOf(b.zone) ||
        domains.indexOf(a.domain) - domains.indexOf(b.domain),
    );
    const zones = new Set(hits.map((h) => h.zone));
    const weight = [...zones].reduce((sum, z) => sum + z.weight, 0);
    const first = hits[0];
    if (first !== undefined && weight >= this.#threshold) {
      return {
        kind: 'reject',
        reply: withText(
          Replies.domainBlocked,
          `Service unavailable; domain ${first.domain} listed in ${first.zone.zone}`,
        ),
        reason: `listed: ${hits.map((h) => `${h.domain} in ${h.zone.zone} (${h.codes})`).join(', ')}`,
      };
    }
    if (errors === lookups && errors > 0) throw new Error('every DBL lookup failed');
    if (first !== undefined) {
      return { kind: 'accept', reason: `listed below the threshold: ${first.domain} in ${first.zone.zone}` };
    }
    return { kind: 'accept' };
  }
}
