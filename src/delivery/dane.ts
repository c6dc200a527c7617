// DANE for SMTP (RFC 7672, with RFC 6698 and RFC 7671): does the certificate chain an MX host presented
// match its DNSSEC-authenticated TLSA records? Only DANE-TA(2) and DANE-EE(3) are usable for SMTP
// (RFC 7672 §3.1.3: PKIX-TA/PKIX-EE are not); selector full certificate(0) or SubjectPublicKeyInfo(1);
// matching type exact(0), SHA2-256(1), SHA2-512(2).
// - DANE-EE(3): the server's own certificate (or key) matches; no name check, no dates (RFC 7672 §3.1.1).
// - DANE-TA(2): a certificate of the presented chain matches, the chain from the leaf up to it verifies,
//   and the leaf names the MX host (or the TLSA base domain) (RFC 7672 §3.1.2, §3.2.2); dates checked.
// Deliberately NOT here: finding the records (remote.ts asks the resolver), when DANE applies (remote.ts).

import { createHash, X509Certificate } from 'node:crypto';
import type { TlsaRecord } from '../core/dns.ts';

export function usableTlsa(r: TlsaRecord): boolean {
  return (r.usage === 2 || r.usage === 3) && (r.selector === 0 || r.selector === 1) && r.matchingType <= 2;
}

function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

function matches(cert: X509Certificate, r: TlsaRecord): boolean {
  const data = selected(cert, r.selector);
  const digest =
    r.matchingType === 0
      ? data
      : createHash(r.matchingType === 1 ? 'sha256' : 'sha512')
          .update(data)
          .digest();
  return Buffer.compare(digest, Buffer.from(r.data)) === 0;
}

export type DaneResult =
  { readonly ok: true; readonly matched: string } | { readonly ok: false; readonly reason: string };

/**
 * Check a presented chain (leaf first, as the server sent it) against TLSA records, for an MX host
 * known by `names` (the MX host name; RFC 7672 §3.2.2 also allows the TLSA base domain).
 */
export function verifyDane(
  chain: readonly X509Certificate[],
  records: readonly TlsaRecord[],
  names: readonly string[],
  nowMs: number,
): DaneResult {
  const leaf = chain[0];
  if (leaf === undefined) return { ok: false, reason: 'the server presented no certificate' };
  const usable = records.filter(usableTlsa);
  for (const r of usable.filter((x) => x.usage === 3)) {
    if (matches(leaf, r)) return { ok: true, matched: `DANE-EE(3) ${r.selector} ${r.matchingType}` };
  }
  for (const r of usable.filter((x) => x.usage === 2)) {
    const at = chain.findIndex((c) => matches(c, r));
    if (at < 0) continue;
    const why = chainProblem(chain.slice(0, at + 1), names, nowMs);
    if (why === null) return { ok: true, matched: `DANE-TA(2) ${r.selector} ${r.matchingType}` };
    return { ok: false, reason: `DANE-TA(2) matched a certificate of the chain, but ${why}` };
  }
  return {
    ok: false,
    reason: `no TLSA record matches the certificate chain (${usable.length} usable record${usable.length === 1 ? '' : 's'})`,
  };
}

/** Null when each certificate is issued and signed by the next, all are current, and the leaf names a host. */
function chainProblem(
  path: readonly X509Certificate[],
  names: readonly string[],
  nowMs: number,
): string | null {
  for (let i = 0; i + 1 < path.length; i++) {
    const cert = path[i]!;
    const issuer = path[i + 1]!;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      return `certificate ${i} is not signed by certificate ${i + 1}`;
    }
  }
  for (const [i, c] of path.entries()) {
    if (Date.parse(c.validFrom) > nowMs || Date.parse(c.validTo) < nowMs)
      return `certificate ${i} is not valid now`;
  }
  const leaf = path[0]!;
  const named = names.some(
    (n) => leaf.checkHost(n, { wildcards: true, partialWildcards: false }) !== undefined,
  );
  return named ? null : `the server's certificate names none of ${names.join(', ')}`;
}

/** The chain a TLS socket's peer presented, leaf first (node's getPeerCertificate(true) links). */
interface PeerCert {
  readonly raw?: Buffer;
  readonly fingerprint256?: string;
  readonly issuerCertificate?: unknown;
}

export function presentedChain(peer: PeerCert | null): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: PeerCert | null | undefined = peer;
  while (c !== null && c !== undefined && c.raw !== undefined && chain.length < 10) {
    const key = c.fingerprint256 ?? c.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    chain.push(new X509Certificate(c.raw));
    c = c.issuerCertificate as PeerCert | undefined;
  }
  return chain;
}
