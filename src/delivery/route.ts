// Where mail for a domain goes (RFC 5321 §5.1): the transport map or smart host when configured, else the
// domain's MX records ordered by preference with random order among equals, else its A/AAAA records
// (the implicit MX), never for a null MX (RFC 7505: bounce 556 5.1.10). Address literals ("[192.0.2.1]")
// go to that address. IDN domains are looked up by their A-labels (RFC 5890).
// Deliberately NOT here: connecting and sending (remote.ts, smtp-client.ts), retries (queue/schedule.ts).

import { domainToASCII } from 'node:url';
import type { DestinationTlsPolicy, OutboundConfig, RelayHost } from '../config/config.ts';
import { transportFor } from '../config/transports.ts';

export { transportFor } from '../config/transports.ts';
import type { DnsAnswer, Resolver } from '../core/dns.ts';

/** One host to try, with its addresses in the order to try them. */
export interface Target {
  /** The host name (for TLS SNI and certificate checks) or the literal address. */
  readonly host: string;
  readonly addresses: readonly string[];
  readonly port: number;
  readonly preference: number;
  /** Its addresses came from DNSSEC-authenticated answers (a validating resolver said so). */
  readonly secure?: boolean;
  /** The host name after CNAMEs, when the MX host name is an alias (RFC 7672 §2.2.2). */
  readonly canonical?: string;
  /** A Unix socket to connect to (an LMTP transport on this host); `addresses` then holds the path. */
  readonly path?: string;
}

export interface RouteOk {
  readonly kind: 'ok';
  /** Hosts in the order to try them. */
  readonly targets: readonly Target[];
  /** The destination's policy (MX delivery), or the relay's (`viaRelay`). */
  readonly tls: DestinationTlsPolicy;
  readonly auth: RelayHost['auth'];
  /** Relayed through a smart host (DSN Action "relayed" semantics belong to the next hop). */
  readonly viaRelay: boolean;
  /** The next hop speaks LMTP: final delivery, a reply per recipient (RFC 2033). */
  readonly lmtp?: boolean;
  /** Some hosts of the route could not be resolved right now (worth a retry if all others fail). */
  readonly partial: boolean;
  /** The MX RRset (or the implicit MX's denial) was DNSSEC-authenticated: DANE may apply (RFC 7672 §2.2.1). */
  readonly secure?: boolean;
}

export interface RouteError {
  readonly kind: 'error';
  readonly temporary: boolean;
  /** SMTP-style status for the DSN and the queue, e.g. "556 5.1.10 Recipient address has null MX". */
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

export type Route = RouteOk | RouteError;

export interface RouteOptions {
  readonly outbound: OutboundConfig;
  /** Our own host name: an MX pointing at us (with nothing better) would loop. */
  readonly hostname: string;
  readonly random?: () => number;
}

const temp = (enhanced: string, text: string): RouteError => ({
  kind: 'error',
  temporary: true,
  code: 451,
  enhanced,
  text,
});
const perm = (code: number, enhanced: string, text: string): RouteError => ({
  kind: 'error',
  temporary: false,
  code,
  enhanced,
  text,
});

/** The TLS policy for a domain: a per-domain entry (exact, then "*.parent"), else the default. */
export function tlsPolicyFor(domain: string, outbound: OutboundConfig): DestinationTlsPolicy {
  const d = domain.toLowerCase();
  const labels = d.split('.');
  for (let i = 0; i < labels.length; i++) {
    const key = i === 0 ? d : `*.${labels.slice(i).join('.')}`;
    const p = outbound.tlsPolicies.get(key);
    if (p) return p;
  }
  return outbound.tls;
}

export async function resolveRoute(domainIn: string, resolver: Resolver, opts: RouteOptions): Promise<Route> {
  const { outbound } = opts;
  const random = opts.random ?? Math.random;
  if (domainIn.startsWith('[')) return literalRoute(domainIn, outbound);
  const domain = toALabel(domainIn);
  if (domain === null) return perm(550, '5.1.2', `Bad destination domain ${domainIn}`);

  const relay = transportFor(domain, outbound.transports) ?? outbound.relay;
  if (relay?.path !== undefined) {
    const target: Target = {
      host: 'localhost',
      addresses: [relay.path],
      port: 0,
      preference: 0,
      path: relay.path,
    };
    return {
      kind: 'ok',
      targets: [target],
      partial: false,
      tls: relay.tls,
      auth: relay.auth,
      viaRelay: true,
      lmtp: true,
    };
  }
  if (relay) {
    const relayTargets = relay.mx
      ? await mxTargets(relay.host, resolver, opts, relay.port, random)
      : await hostTargets([{ host: relay.host, preference: 0 }], resolver, relay.port);
    if (relayTargets.kind === 'error') return relayTargets;
    return {
      ...relayTargets,
      tls: relay.tls,
      auth: relay.auth,
      viaRelay: true,
      ...(relay.lmtp === true ? { lmtp: true } : {}),
    };
  }
  const direct = await mxTargets(domain, resolver, opts, outbound.port, random);
  if (direct.kind === 'error') return direct;
  return { ...direct, tls: tlsPolicyFor(domain, outbound), auth: null, viaRelay: false };
}

type Targets = { kind: 'ok'; targets: Target[]; partial: boolean; secure?: boolean } | RouteError;

async function mxTargets(
  domain: string,
  resolver: Resolver,
  opts: RouteOptions,
  port: number,
  random: () => number,
): Promise<Targets> {
  const mx = await resolver.mx(domain);
  switch (mx.kind) {
    case 'ok': {
      if (mx.records.some((r) => r.exchange === '' || r.exchange === '.')) {
        // RFC 7505 §3: a null MX means the domain accepts no mail.
        return perm(556, '5.1.10', `Domain ${domain} does not accept mail (null MX)`);
      }
      let records = shuffleByPreference(mx.records, random);
      const self = opts.hostname.toLowerCase().replace(/\.$/, '');
      const ours = records.find((r) => r.exchange.toLowerCase().replace(/\.$/, '') === self);
      if (ours) {
        // RFC 5321 §5.1: only hosts more preferred than ourselves may be tried.
        records = records.filter((r) => r.preference < ours.preference);
        if (records.length === 0) return perm(554, '5.4.6', `Mail for ${domain} loops back to myself`);
      }
      const hosts = await hostTargets(
        records.map((r) => ({ host: r.exchange.replace(/\.$/, ''), preference: r.preference })),
        resolver,
        port,
      );
      return hosts.kind === 'ok' && mx.secure === true ? { ...hosts, secure: true } : hosts;
    }
    case 'nodata': {
      // RFC 5321 §5.1: no MX — the domain itself is the implicit MX.
      const hosts = await hostTargets([{ host: domain, preference: 0 }], resolver, port, true);
      return hosts.kind === 'ok' && mx.secure === true ? { ...hosts, secure: true } : hosts;
    }
    case 'nxdomain':
      return perm(550, '5.1.2', `Domain ${domain} does not exist`);
    case 'error':
      return temp('4.4.3', `DNS lookup of MX for ${domain} failed: ${mx.reason}`);
    default:
      return mx satisfies never;
  }
}

async function hostTargets(
  hosts: ReadonlyArray<{ host: string; preference: number }>,
  resolver: Resolver,
  port: number,
  implicit = false,
): Promise<Targets> {
  const targets: Target[] = [];
  let temporaryFailures = 0;
  let missing = 0;
  for (const { host, preference } of hosts) {
    const literal = literalAddress(host);
    if (literal) {
      targets.push({ host, addresses: [literal], port, preference });
      continue;
    }
    const [a, aaaa] = await Promise.all([resolver.a(host), resolver.aaaa(host)]);
    const addresses = [...addressesOf(a), ...addressesOf(aaaa)];
    // Both answers authenticated (records, or an authenticated denial of the other family).
    const secure = a.kind !== 'error' && aaaa.kind !== 'error' && a.secure === true && aaaa.secure === true;
    if (addresses.length > 0)
      targets.push({ host, addresses, port, preference, ...(secure ? { secure } : {}) });
    else if (a.kind === 'error' || aaaa.kind === 'error') temporaryFailures++;
    else missing++;
  }
  if (targets.length > 0) return { kind: 'ok', targets, partial: temporaryFailures > 0 };
  if (temporaryFailures > 0)
    return temp('4.4.3', `DNS lookup of ${hosts.map((h) => h.host).join(', ')} failed`);
  return implicit || missing === hosts.length
    ? perm(550, '5.1.2', `No address for ${hosts.map((h) => h.host).join(', ')}`)
    : temp('4.4.3', 'No usable mail exchanger');
}

function addressesOf(answer: DnsAnswer<string>): readonly string[] {
  return answer.kind === 'ok' ? answer.records : [];
}

function literalRoute(literal: string, outbound: OutboundConfig): Route {
  const address = literalAddress(literal);
  if (!address) return perm(550, '5.1.2', `Bad address literal ${literal}`);
  return {
    kind: 'ok',
    targets: [{ host: address, addresses: [address], port: outbound.port, preference: 0 }],
    tls: outbound.tls,
    auth: null,
    viaRelay: false,
    partial: false,
  };
}

/** "[192.0.2.1]" or "[IPv6:2001:db8::1]" or a bare IP → the address; otherwise null. */
export function literalAddress(s: string): string | null {
  const inner = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  const v6 = /^IPv6:/i.test(inner) ? inner.slice(5) : inner;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(inner)) return inner;
  if (v6.includes(':') && /^[0-9A-Fa-f:.]+$/.test(v6)) return v6;
  return null;
}

/** The A-label form of a domain (RFC 5891), or null when it cannot be one. */
export function toALabel(domain: string): string | null {
  const ascii = domainToASCII(domain.replace(/\.$/, ''));
  return ascii === '' ? null : ascii.toLowerCase();
}

/** Sort by preference; equal preferences in random order (RFC 5321 §5.1). */
export function shuffleByPreference<T extends { preference: number }>(
  records: readonly T[],
  random: () => number,
): T[] {
  const keyed = records.map((r) => ({ r, k: random() }));
  keyed.sort((x, y) => x.r.preference - y.r.preference || x.k - y.k);
  return keyed.map((x) => x.r);
}
