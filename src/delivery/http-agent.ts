// An HTTP client (undici) for what Tern fetches and posts over HTTPS itself (MTA-STS policies, TLS-RPT
// reports): host names resolved through Tern's own resolver (`[dns] servers`, as every lookup), the
// system's CAs plus `[outbound] tls_ca`, timeouts, no redirects, a size limit on answers.

import type { LookupFunction } from 'node:net';
import { getCACertificates } from 'node:tls';
import { Agent } from 'undici';
import type { Resolver } from '../core/dns.ts';

export function resolverLookup(resolver: Resolver): LookupFunction {
  const addresses = async (host: string): Promise<{ address: string; family: number }[]> => {
    const [a, aaaa] = await Promise.all([resolver.a(host), resolver.aaaa(host)]);
    return [
      ...(a.kind === 'ok' ? a.records.map((address) => ({ address, family: 4 })) : []),
      ...(aaaa.kind === 'ok' ? aaaa.records.map((address) => ({ address, family: 6 })) : []),
    ];
  };
  return (hostname, options, callback) => {
    void addresses(hostname).then(
      (found) => {
        if (found.length === 0) {
          callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 4);
        } else if (options.all === true) {
          (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, found);
        } else callback(null, found[0]!.address, found[0]!.family);
      },
      (err: unknown) => callback(err as NodeJS.ErrnoException, '', 4),
    );
  };
}

export function httpAgent(
  resolver: Resolver,
  tlsCa: string | null,
  limits: { readonly timeoutMs: number; readonly maxResponseBytes: number },
): Agent {
  return new Agent({
    connect: {
      lookup: resolverLookup(resolver),
      ca: tlsCa === null ? undefined : [...getCACertificates('default'), tlsCa],
      timeout: limits.timeoutMs,
      rejectUnauthorized: true,
    },
    headersTimeout: limits.timeoutMs,
    bodyTimeout: limits.timeoutMs,
    maxResponseSize: limits.maxResponseBytes,
    maxRedirections: 0,
  } as ConstructorParameters<typeof Agent>[0]);
}
