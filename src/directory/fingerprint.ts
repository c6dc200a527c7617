// Client-certificate fingerprints as the directory keys them: SHA-256 over the DER certificate, written
// as 64 lower-case hex digits without separators. Operators paste the colon form that OpenSSL and Node
// print ("AB:CD:…", `openssl x509 -noout -fingerprint -sha256`), so both are accepted.
// Not here: checking a certificate's chain, dates or names (the TLS layer does that against the
// configured CA); this only names a certificate.

import { X509Certificate } from 'node:crypto';

const PLAIN = /^[0-9a-f]{64}$/i;
const COLONS = /^[0-9a-f]{2}(?::[0-9a-f]{2}){31}$/i;
// What `openssl x509 -fingerprint -sha256` prints before the digits.
const OPENSSL_PREFIX = /^sha-?256\s+fingerprint\s*=\s*/i;

/** The key form of a SHA-256 fingerprint, or null when text is not one (wrong length, other digest). */
export function normalizeFingerprint(text: string): string | null {
  const s = text.trim().replace(OPENSSL_PREFIX, '');
  if (PLAIN.test(s)) return s.toLowerCase();
  if (COLONS.test(s)) return s.replaceAll(':', '').toLowerCase();
  return null;
}

/** The fingerprint of the first certificate in PEM (or DER) data; throws when it is not a certificate. */
export function certificateFingerprint(certificate: string | Uint8Array): string {
  const fingerprint = normalizeFingerprint(new X509Certificate(certificate).fingerprint256);
  // X509Certificate always yields 32 colon-separated pairs; anything else is a Node change to notice.
  if (fingerprint === null) throw new Error('unexpected fingerprint format from node:crypto');
  return fingerprint;
}
