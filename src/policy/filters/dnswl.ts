// DNS allow-lists (RFC 5782 format) for the client's IP address: the same query names as a DNSBL
// (dnsbl.ts), under zones such as list.dnswl.org, whose answers 127.0.C.T encode a category C and a
// trust level T: 0 none, 1 low, 2 medium, 3 high. A listing with trust at least `minTrust` (or one of the
// zone's own codes, `zone=127.0.15.3`) sets `facts.allowListed` to the zone, so that the reputation and
// greylisting checks after it may let the client through; the verdict itself is accept.
// Runs at `connect` (first, in [filters] order) and again at every `mail`: the pipeline starts each
// transaction's facts afresh while it runs the connect checks once per connection, so the listing,
// looked up once per connection, is put back into each transaction's facts.
// A lookup that fails is no listing, and never fails the check: an allow-list that is down must not
// defer mail (the failure mode would), only stop allowing.
// Deliberately NOT here: blocklists (dnsbl.ts, dbl.ts), scores from trust levels.

import type { Resolver } from '../../core/dns.ts';
import type { DnsblZone } from '../../core/dnsbl-zone.ts';
import { dnsblName } from './dnsbl.ts';
import type { Filter, FilterClient, FilterContext, FilterSession, FilterStage, Verdict } from './filter.ts';

export { parseZone, type DnsblZone } from '../../core/dnsbl-zone.ts';

export interface DnswlOptions {
  readonly zones: readonly DnsblZone[];
  readonly resolver: Pick<Resolver, 'a'>;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  /** Least trust (the answer's last octet) that counts when a zone lists no codes; default 1 (low). */
  readonly minTrust?: number;
}

/** Whether an allow-list answer counts: the zone's codes, or a 127.0.C.T answer with T ≥ minTrust. */
export function allowListing(answer: string, zone: DnsblZone, minTrust: number): boolean {
  if (zone.codes.length > 0) return zone.codes.includes(answer);
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(answer);
  if (m === null) return false;
  // 127.0.0.1 is RFC 5782's "not listed" test answer; dnswl.org answers 127.0.0.255 to refused queries;
  // 127.255.255.x is what Spamhaus-style lists answer to refused or malformed ones.
  if (answer === '127.0.0.1' || answer === '127.0.0.255' || m[1] === '255') return false;
  return Number(m[3]) >= minTrust;
}

type Listing = { readonly zone: string; readonly answer: string } | null;

export class DnswlFilter implements Filter {
  readonly name = 'dnswl';
  readonly stages: readonly FilterStage[] = ['connect', 'mail'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #zones: readonly DnsblZone[];
  readonly #resolver: Pick<Resolver, 'a'>;
  readonly #minTrust: number;

  constructor(opts: DnswlOptions) {
    this.#zones = opts.zones;
    this.#resolver = opts.resolver;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#minTrust = opts.minTrust ?? 1;
  }

  /** The zones in config order; the first that lists the address wins. */
  async lookup(ip: string): Promise<{ listing: Listing; errors: number }> {
    let errors = 0;
    const found = await Promise.all(
      this.#zones.map(async (z): Promise<Listing> => {
        const name = dnsblName(ip, z.zone);
        if (name === null) return null;
        const a = await this.#resolver.a(name);
        if (a.kind === 'error') errors++;
        if (a.kind !== 'ok') return null;
        const hit = a.records.find((r) => allowListing(r, z, this.#minTrust));
        return hit === undefined ? null : { zone: z.zone, answer: hit };
      }),
    );
    return { listing: found.find((l) => l !== null) ?? null, errors };
  }

  open(client: FilterClient): FilterSession {
    let known: Promise<{ listing: Listing; errors: number }> | null = null;
    const lookup = (): Promise<{ listing: Listing; errors: number }> => {
      if (known === null) {
        const asked = this.lookup(client.ip);
        known = asked;
        // A lookup that threw is asked again at the next stage rather than remembered.
        asked.catch(() => {
          if (known === asked) known = null;
        });
      }
      return known;
    };
    return {
      check: async (_stage: FilterStage, ctx: FilterContext): Promise<Verdict> => {
        const { listing, errors } = await lookup();
        if (listing === null) {
          return errors > 0
            ? { kind: 'accept', reason: `not allow-listed (${errors} lookup(s) failed)` }
            : { kind: 'accept' };
        }
        ctx.facts.allowListed = listing.zone;
        return { kind: 'accept', reason: `allow-listed in ${listing.zone} (${listing.answer})` };
      },
    };
  }
}
