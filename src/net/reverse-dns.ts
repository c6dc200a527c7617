// The client's name for Received: and the logs: forward-confirmed reverse DNS (FCrDNS, "paranoid" in
// tcp_wrappers' words; Postfix's verified client name). PTR of the address, then A (or AAAA) of each name
// found; a name counts only when its addresses include the client's, since anyone controlling a PTR zone
// can claim any name. Asked through the Resolver port ([dns] servers), bounded in time, cached briefly.
//
// SECURITY: the name is client-controlled text until confirmed, and even then it is only a hint (never
// used for relay decisions). Lookups are bounded: at most MAX_PTR_NAMES forward queries per address, a
// deadline, a bounded cache, and one lookup in flight per address however many connections it opens.
// Deliberately NOT here: relay or reject decisions on the name (Postfix's reject_unknown_client_hostname),
// and DNSBLs.

import type { DnsAnswer, Resolver } from '../core/dns.ts';
import type { Clock } from '../core/ports.ts';
import { formatIPv6, parseIPv6 } from '../protocol/dns/address.ts';

/**
 * - `confirmed`: `name` is a PTR name whose A/AAAA records include the address.
 * - `none`: no PTR record (NXDOMAIN or NODATA).
 * - `unconfirmed`: PTR names exist, none resolves back to the address.
 * - `temporary`: a DNS error or the deadline; not cached, the next connection asks again.
 */
export type ClientNameStatus = 'confirmed' | 'none' | 'unconfirmed' | 'temporary';

export interface ClientName {
  /** Lower-case A-label host name, without the trailing dot; null unless confirmed. */
  readonly name: string | null;
  readonly status: ClientNameStatus;
}

export interface ClientNameLookup {
  /** Never rejects; resolves within the deadline. */
  lookup(ip: string): Promise<ClientName>;
}

export interface ClientNameOptions {
  readonly clock: Clock;
  /** The whole lookup (PTR and forward checks) gives up after this. Default 2500 ms. */
  readonly timeoutMs?: number;
  /** Upper bound on how long a result is kept; 0 = no cache. Default 10 minutes (the DNS TTLs may be less). */
  readonly maxCacheTtlMs?: number;
  /** Addresses remembered at most; the oldest is dropped first. Default 1000. */
  readonly maxCacheEntries?: number;
}

/** Forward checks per address: a PTR RRset with more names is unusual and only costs queries. */
export const MAX_PTR_NAMES = 3;
const DEFAULT_TIMEOUT_MS = 2500;
const DEFAULT_MAX_CACHE_TTL_MS = 600_000;
const DEFAULT_MAX_CACHE_ENTRIES = 1000;
/** How long "no name" is remembered when the answer carries no TTL we can see (NXDOMAIN, NODATA). */
const NEGATIVE_TTL_MS = 60_000;

interface Found {
  readonly result: ClientName;
  /** How long the answers involved may be trusted. */
  readonly ttlMs: number;
}

export function createClientNameLookup(resolver: Resolver, options: ClientNameOptions): ClientNameLookup {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxTtlMs = options.maxCacheTtlMs ?? DEFAULT_MAX_CACHE_TTL_MS;
  const maxEntries = options.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES;
  const cache = new Map<string, { readonly expiresAtMs: number; readonly result: ClientName }>();
  const inFlight = new Map<string, Promise<ClientName>>();

  const remember = (ip: string, found: Found): void => {
    const ttlMs = Math.min(found.ttlMs, maxTtlMs);
    if (found.result.status === 'temporary' || ttlMs <= 0) return;
    cache.delete(ip);
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done !== true) cache.delete(oldest.value);
    }
    cache.set(ip, { expiresAtMs: options.clock.nowMs() + ttlMs, result: found.result });
  };

  const withDeadline = async (ip: string): Promise<ClientName> => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<ClientName>((resolve) => {
      timer = setTimeout(() => resolve({ name: null, status: 'temporary' }), timeoutMs);
      // A lookup must never keep a stopping server alive.
      timer.unref();
    });
    const work = findName(resolver, ip).then(
      (found) => {
        remember(ip, found);
        return found.result;
      },
      (): ClientName => ({ name: null, status: 'temporary' }),
    );
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    lookup(ip: string): Promise<ClientName> {
      const hit = cache.get(ip);
      if (hit !== undefined) {
        if (hit.expiresAtMs > options.clock.nowMs()) return Promise.resolve(hit.result);
        cache.delete(ip);
      }
      let pending = inFlight.get(ip);
      if (pending === undefined) {
        pending = withDeadline(ip).finally(() => inFlight.delete(ip));
        inFlight.set(ip, pending);
      }
      return pending;
    },
  };
}

async function findName(resolver: Resolver, ip: string): Promise<Found> {
  const ptr = await resolver.ptr(ip);
  if (ptr.kind === 'nxdomain' || ptr.kind === 'nodata')
    return { result: { name: null, status: 'none' }, ttlMs: NEGATIVE_TTL_MS };
  if (ptr.kind === 'error') return { result: { name: null, status: 'temporary' }, ttlMs: 0 };
  const wanted = canonicalIp(ip);
  const v6 = ip.includes(':');
  let ttlMs = ptr.ttlMs;
  let temporary = false;
  for (const name of ptr.records.slice(0, MAX_PTR_NAMES)) {
    const forward: DnsAnswer<string> = v6 ? await resolver.aaaa(name) : await resolver.a(name);
    if (forward.kind === 'error') {
      temporary = true;
      continue;
    }
    if (forward.kind !== 'ok') continue;
    if (forward.records.some((address) => canonicalIp(address) === wanted)) {
      return { result: { name, status: 'confirmed' }, ttlMs: Math.min(ttlMs, forward.ttlMs) };
    }
    ttlMs = Math.min(ttlMs, forward.ttlMs);
  }
  if (temporary) return { result: { name: null, status: 'temporary' }, ttlMs: 0 };
  return { result: { name: null, status: 'unconfirmed' }, ttlMs: Math.min(ttlMs, NEGATIVE_TTL_MS) };
}

/** IPv6 in its one RFC 5952 spelling, so "2001:DB8:0::1" from a record matches "2001:db8::1". */
function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  const bytes = parseIPv6(ip);
  return bytes === null ? ip : formatIPv6(bytes);
}
