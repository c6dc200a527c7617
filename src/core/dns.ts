// The Resolver port: the DNS questions a mail server asks (MX routing, A/AAAA for hosts, TXT for SPF,
// DKIM and DMARC, PTR for the client's name), answered as a small typed union. The implementation is
// src/net/dns.ts; tests use test/support/dns-server.ts behind the real implementation, or a fake.
// Deliberately NOT here: how answers are found, cached or retried, and DNSSEC.

/**
 * - `ok`: at least one record; `ttlMs` is how long the answer may be trusted (the smallest TTL involved,
 *   capped by dns.max_cache_ttl); 0 means it was not cacheable.
 * - `nxdomain`: the name does not exist (RFC 8020: nor does anything below it).
 * - `nodata`: the name exists but has no record of this type (RFC 2308 §2.2), e.g. no MX: use the A/AAAA.
 * - `error`: no usable answer (timeout, SERVFAIL, REFUSED, malformed); always temporary, so mail is
 *   deferred, never bounced, on a DNS outage. `reason` is for the log, not for replies.
 */
export type DnsAnswer<T> =
  | { readonly kind: 'ok'; readonly records: readonly T[]; readonly ttlMs: number }
  | { readonly kind: 'nxdomain' }
  | { readonly kind: 'nodata' }
  | { readonly kind: 'error'; readonly temporary: true; readonly reason: string };

/** RFC 5321 §5.1. An exchange of "" (the root) with preference 0 is a null MX (RFC 7505): no mail accepted. */
export interface MxRecord {
  readonly preference: number;
  /** Lower-case A-label host name, no trailing dot. */
  readonly exchange: string;
}

/**
 * Names may be U-labels or A-labels, with or without a trailing dot, in any case; a name that cannot be a
 * domain name answers `nxdomain` without a query. Names in answers (MX exchange, PTR target) are lower-case
 * A-labels without the trailing dot; addresses are in canonical text form (RFC 5952 for IPv6).
 */
export interface Resolver {
  mx(domain: string): Promise<DnsAnswer<MxRecord>>;
  a(name: string): Promise<DnsAnswer<string>>;
  aaaa(name: string): Promise<DnsAnswer<string>>;
  /** One string per TXT record: its character-strings joined without separator (RFC 7208 §3.3). */
  txt(name: string): Promise<DnsAnswer<string>>;
  /** The names of an IPv4 or IPv6 address ("192.0.2.1"); anything that is not an address gets `nxdomain`. */
  ptr(address: string): Promise<DnsAnswer<string>>;
}
