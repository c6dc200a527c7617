// How each MX host of a destination must be reached (RFC 7672 DANE, RFC 8461 MTA-STS, the configured
// policy), decided before connecting:
// - DANE first (RFC 8461 §2: it wins where both exist), when `[dns] dnssec` says the resolver validates
//   and the MX RRset is authenticated: per host whose addresses are authenticated, its TLSA records at
//   `_25._tcp.<host>`; usable ones → TLS authenticated by them; authenticated but none usable → TLS,
//   unauthenticated (RFC 7672 §2.2); a TLSA lookup failure → that host is not tried now (it may be a
//   DNSSEC "bogus" answer, RFC 7672 §2.2: treat as temporary).
// - Else MTA-STS (`[outbound] mta_sts`, on by default): `enforce` tries only MX hosts the policy names,
//   with TLS and a certificate valid for the host name (`verify`); `testing` delivers as before and the
//   worker reports what enforce would have refused.
// - Else the configured policy (`tls_policy`/`outbound.tls`); `dane-only` refuses hosts without DANE.
// A smart host or transport is not MX delivery: its own `tls` applies, nothing here.
// Deliberately NOT here: connecting and the certificate checks themselves (smtp-client.ts, dane.ts).

import type { DestinationTlsPolicy, OutboundTlsPolicy } from '../config/config.ts';
import type { Resolver, TlsaRecord } from '../core/dns.ts';
import { usableTlsa } from './dane.ts';
import type { MtaSts, MtaStsPolicy } from './mta-sts.ts';
import { mxMatches } from './mta-sts.ts';
import type { RouteOk, Target } from './route.ts';

export type TlsMechanism = 'dane' | 'dane-no-usable' | 'mta-sts' | 'mta-sts-testing' | 'policy';

export interface HostPlan {
  readonly target: Target;
  /** How to connect (no plaintext fallback unless "may"). */
  readonly tls: OutboundTlsPolicy;
  readonly dane: { readonly records: readonly TlsaRecord[]; readonly names: readonly string[] } | null;
  /** Why this host is not to be tried now; null when it is. */
  readonly refused: string | null;
  /** Which rule decided: for logs, the trace and `tern queue show`. */
  readonly mechanism: TlsMechanism;
}

export interface TlsPlan {
  readonly hosts: readonly HostPlan[];
  /** The MTA-STS policy in force for the domain, when one was applied (enforce or testing). */
  readonly sts: MtaStsPolicy | null;
}

export interface TlsPlanDeps {
  readonly resolver: Resolver;
  /** Null when `[outbound] mta_sts = false`, or for a message marked `TLS-Required: No`. */
  readonly mtaSts: MtaSts | null;
  /** False for a message marked `TLS-Required: No` (RFC 8689 §5): DANE does not stop it either. */
  readonly dane?: boolean;
}

/**
 * REQUIRETLS (RFC 8689 §5): the hosts this message may go to — TLS authenticated by DANE, or by an
 * MTA-STS policy naming the host (testing counts as enforce here), or a relay verified by its
 * certificate — with TLS made mandatory. Empty when none can be.
 */
export function requireTlsHosts(plan: TlsPlan, viaRelay: boolean): HostPlan[] {
  return plan.hosts
    .filter((h) => h.refused === null)
    .filter((h) => {
      if (h.mechanism === 'dane') return h.dane !== null;
      if (h.mechanism === 'mta-sts') return true;
      if (h.mechanism === 'mta-sts-testing')
        return plan.sts !== null && mxMatches(h.target.host, plan.sts.mx);
      return viaRelay && h.tls === 'verify';
    })
    .map((h) =>
      h.mechanism === 'mta-sts-testing' ? { ...h, tls: 'verify' as const, mechanism: 'mta-sts' as const } : h,
    );
}

/** The plan for MX delivery of `domain` along `route` (not for relays: their `tls` is used as it is). */
export async function planTls(domain: string, route: RouteOk, deps: TlsPlanDeps): Promise<TlsPlan> {
  const policy: DestinationTlsPolicy = route.tls;
  const plain = (target: Target, tls: OutboundTlsPolicy, mechanism: TlsMechanism = 'policy'): HostPlan => ({
    target,
    tls,
    dane: null,
    refused: null,
    mechanism,
  });
  const fallback: OutboundTlsPolicy = policy === 'dane' ? 'may' : policy === 'dane-only' ? 'encrypt' : policy;
  if (route.viaRelay) return { hosts: route.targets.map((t) => plain(t, fallback)), sts: null };

  const { resolver } = deps;
  const daneCapable =
    deps.dane !== false &&
    resolver.validating === true &&
    resolver.tlsa !== undefined &&
    route.secure === true &&
    policy !== 'none';
  const daneHosts = new Map<string, HostPlan>();
  if (daneCapable) {
    for (const target of route.targets) {
      if (target.secure !== true) continue;
      // RFC 7672 §2.2.2: an MX host name that is an alias (its CNAME chain authenticated): the TLSA
      // records of the expanded name first, then those of the name itself.
      let answer = await resolver.tlsa!(`_${target.port}._tcp.${target.canonical ?? target.host}`);
      if (target.canonical !== undefined && (answer.kind === 'nodata' || answer.kind === 'nxdomain')) {
        answer = await resolver.tlsa!(`_${target.port}._tcp.${target.host}`);
      }
      const names = target.canonical === undefined ? [target.host] : [target.canonical, target.host];
      if (answer.kind === 'error') {
        daneHosts.set(target.host, {
          ...plain(target, 'encrypt', 'dane'),
          refused: `TLSA lookup for ${target.host} failed (${answer.reason}): not tried without DANE`,
        });
      } else if (answer.kind === 'ok' && answer.secure === true) {
        const usable = answer.records.filter(usableTlsa);
        daneHosts.set(
          target.host,
          usable.length > 0
            ? { ...plain(target, 'encrypt', 'dane'), dane: { records: usable, names } }
            : plain(target, 'encrypt', 'dane-no-usable'),
        );
      }
    }
  }
  if (daneHosts.size > 0) {
    // DANE for the domain: hosts without TLSA records get the configured policy (dane-only: none).
    return {
      hosts: route.targets.map(
        (t) =>
          daneHosts.get(t.host) ??
          (policy === 'dane-only'
            ? {
                ...plain(t, 'encrypt', 'dane'),
                refused: `${t.host} has no DNSSEC-authenticated TLSA record (dane-only)`,
              }
            : plain(t, fallback)),
      ),
      sts: null,
    };
  }
  if (policy === 'dane-only') {
    const why = daneCapable
      ? 'no MX host has a DNSSEC-authenticated TLSA record (dane-only)'
      : route.secure === true
        ? 'DANE needs [dns] dnssec = true (a validating resolver)'
        : `the MX records of ${domain} are not DNSSEC-authenticated (dane-only)`;
    return { hosts: route.targets.map((t) => ({ ...plain(t, 'encrypt', 'dane'), refused: why })), sts: null };
  }

  const answer = policy === 'none' || deps.mtaSts === null ? null : await deps.mtaSts.policyFor(domain);
  const sts = answer?.policy ?? null;
  if (sts === null || sts.mode === 'none')
    return { hosts: route.targets.map((t) => plain(t, fallback)), sts: null };
  if (sts.mode === 'testing') {
    return { hosts: route.targets.map((t) => plain(t, fallback, 'mta-sts-testing')), sts };
  }
  return {
    hosts: route.targets.map((t) =>
      mxMatches(t.host, sts.mx)
        ? plain(t, 'verify', 'mta-sts')
        : {
            ...plain(t, 'verify', 'mta-sts'),
            refused: `MX host ${t.host} is not named by ${domain}'s MTA-STS policy (id ${sts.id})`,
          },
    ),
    sts,
  };
}
