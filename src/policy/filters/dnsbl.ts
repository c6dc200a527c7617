// DNS blocklists (RFC 5782) for the client's IP address: the address's reversed octets (IPv4) or
// nibbles (IPv6) under each zone; an A record in 127.0.0.0/8 means listed (127.0.0.1 is never a
// listing: RFC 5782 §5 reserves it for "not listed"/errors, and Spamhaus answers 127.255.255.x for
// refused queries: a failure, not a listing). Each zone has a weight; a client whose weights add up to
// the threshold is refused with 554 5.7.1, naming the zones. A zone may list only some return codes
// (`zen.example=127.0.0.2`), and a Spamhaus DQS key is put in front of the zone as Spamhaus asks.
// Deliberately NOT here: DNSWL and domain (DBL/URIBL) lists, which are the next part.

import { parseIp } from '../networks.ts';
import type { Resolver } from '../../core/dns.ts';
import type { DnsblZone } from '../../core/dnsbl-zone.ts';
import { Replies, withText } from '../../core/reply.ts';
import { StatelessFilter, type FilterContext, type FilterStage, type Verdict } from './filter.ts';

export { parseZone, type DnsblZone } from '../../core/dnsbl-zone.ts';

/** The name to look up for an address in a zone (RFC 5782 §2.1 and §2.4). Null for what is no address. */
export function dnsblName(ip: string, zone: string): string | null {
  const v = parseIp(ip);
  if (v === null) return null;
  // IPv4 (also as ::ffff:a.b.c.d): its four octets, reversed.
  if (v >> 32n === 0xffffn) {
    const n = Number(v & 0xffffffffn);
    return `${[n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.')}.${zone}`;
  }
  return `${[...v.toString(16).padStart(32, '0')].reverse().join('.')}.${zone}`;
}

function counts(answer: string, zone: DnsblZone): boolean {
  if (zone.codes.length > 0) return zone.codes.includes(answer);
  return answer.startsWith('127.') && answer !== '127.0.0.1' && !answer.startsWith('127.255.255.');
}

export class DnsblFilter extends StatelessFilter {
  readonly name = 'dnsbl';
  readonly stages: readonly FilterStage[] = ['mail'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #zones: readonly DnsblZone[];
  readonly #threshold: number;
  readonly #resolver: Pick<Resolver, 'a'>;
  readonly #dqsKey: string | null;

  constructor(opts: {
    readonly zones: readonly DnsblZone[];
    readonly threshold: number;
    readonly resolver: Pick<Resolver, 'a'>;
    readonly timeoutMs: number;
    readonly onFailure: 'tempfail' | 'accept';
    readonly dqsKey: string | null;
  }) {
    super();
    this.#zones = opts.zones;
    this.#threshold = opts.threshold;
    this.#resolver = opts.resolver;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#dqsKey = opts.dqsKey;
  }

  async check(_stage: FilterStage, ctx: FilterContext): Promise<Verdict> {
    if (ctx.facts.allowListed !== undefined)
      return { kind: 'accept', reason: `allow-listed (${ctx.facts.allowListed})` };
    const hits: string[] = [];
    let weight = 0;
    let errors = 0;
    await Promise.all(
      this.#zones.map(async (z) => {
        const zone = this.#dqsKey === null ? z.zone : `${this.#dqsKey}.${z.zone}`;
        const name = dnsblName(ctx.client.ip, zone);
        if (name === null) return;
        const a = await this.#resolver.a(name);
        if (a.kind === 'error') errors++;
        if (a.kind !== 'ok') return;
        const listed = a.records.filter((r) => counts(r, z));
        if (listed.length === 0) return;
        hits.push(`${z.zone} (${listed.join(',')})`);
        weight += z.weight;
      }),
    );
    if (weight >= this.#threshold && hits.length > 0) {
      return {
        kind: 'reject',
        reply: withText(
          Replies.clientBlocked,
          `Service unavailable; client [${ctx.client.ip}] blocked using ${hits[0]!.split(' ')[0]!}`,
        ),
        reason: `listed in ${hits.sort().join(', ')}`,
      };
    }
    if (errors === this.#zones.length && errors > 0) throw new Error('every DNSBL lookup failed');
    return { kind: 'accept' };
  }
}
