// The Resolver port: the DNS questions a mail server asks (MX routing, A/AAAA for hosts, TXT for SPF,
// DKIM and DMARC, PTR for the client's name), answered as a small typed union. The implementation is
// src/net/dns.ts; tests use test/support/dns-server.ts behind the real implementation, or a fake.
// DNSSEC is one flag: `secure` on an answer says the configured resolver (trusted to validate only when
// `[dns] dnssec = true`, like Postfix's smtp_dns_support_level = dnssec) authenticated it (the AD bit).
// Deliberately NOT here: how answers are found, cached or retried; validating signatures ourselves.

/**
 * - `ok`: at least one record; `ttlMs` is how long the answer may be trusted (the smallest TTL involved,
 *   capped by dns.max_cache_ttl); 0 means it was not cacheable.
 * - `nxdomain`: the name does not exist (RFC 8020: nor does anything below it).
 * - `nodata`: the name exists but has no record of this type (RFC 2308 §2.2), e.g. no MX: use the A/AAAA.
 * - `error`: no usable answer (timeout, SERVFAIL, REFUSED, malformed); always temporary, so mail is
 *   deferred, never bounced, on a DNS outage. `reason` is for the log, not for replies.
 */
export type DnsAnswer<T> =
  | {
      readonly kind: 'ok';
      readonly records: readonly T[];
      readonly ttlMs: number;
      readonly secure?: boolean;
      /** The name the records belong to after following CNAMEs, when it is not the name asked. */
      readonly canonical?: string;
    }
  | { readonly kind: 'nxdomain'; readonly secure?: boolean }
  | { readonly kind: 'nodata'; readonly secure?: boolean }
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
  /** TLSA records (RFC 6698) at a name such as `_25._tcp.mx.example.org`; resolvers without DANE omit it. */
  tlsa?(name: string): Promise<DnsAnswer<TlsaRecord>>;
  /** Whether answers' `secure` flags can be trusted ([dns] dnssec = true). */
  readonly validating?: boolean;
}

/** One TLSA record (RFC 6698 §2.1): certificate usage, selector, matching type, association data. */
export interface TlsaRecord {
  /** 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE (RFC 7218). */
  readonly usage: number;
  /** 0 the full certificate, 1 its SubjectPublicKeyInfo. */
  readonly selector: number;
  /** 0 the data itself, 1 SHA-256, 2 SHA-512. */
  readonly matchingType: number;
  readonly data: Uint8Array;
}
