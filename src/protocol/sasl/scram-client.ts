// SECURITY: the client side of SCRAM-SHA-256 (RFC 5802 §3, RFC 7677) without channel binding (gs2
// header "n,,"), for `tern send` and AUTH to a smart host: the password never crosses the wire, and
// the server proves it knows the stored secret (ServerSignature), which PLAIN cannot show.
// Pure: the caller supplies the client nonce and does the I/O. Usernames are SASLprep'd and escaped
// (`=2C`, `=3D`); passwords are prepared as the server side prepares them (scram-secrets.ts).
// Deliberately not here: SCRAM-SHA-256-PLUS (channel binding) on the client; the server side (scram.ts).

import { pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { decodeBase64Strict, encodeBase64 } from './codec.ts';
import { saslprep } from './saslprep.ts';
import {
  hmacSha256,
  MAX_SCRAM_ITERATIONS,
  MIN_SCRAM_ITERATIONS,
  prepareScramPassword,
  sha256,
} from './scram-secrets.ts';

const GS2_HEADER = 'n,,';

export interface ScramClientFirst {
  /** client-first-message, to send (base64) with AUTH SCRAM-SHA-256. */
  readonly message: string;
  /** client-first-message-bare, part of the AuthMessage. */
  readonly bare: string;
  readonly nonce: string;
}

export function scramClientFirst(username: string, nonce: string): ScramClientFirst {
  const name = (saslprep(username) ?? username).replace(/=/g, '=3D').replace(/,/g, '=2C');
  const bare = `n=${name},r=${nonce}`;
  return { message: `${GS2_HEADER}${bare}`, bare, nonce };
}

export type ScramClientFinal =
  | { readonly ok: true; readonly message: string; readonly serverSignature: Uint8Array }
  | { readonly ok: false; readonly reason: string };

/** The client-final-message for the server-first-message, and the ServerSignature to expect back. */
export function scramClientFinal(
  first: ScramClientFirst,
  serverFirst: string,
  password: string,
): ScramClientFinal {
  const attrs = new Map<string, string>();
  for (const part of serverFirst.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) attrs.set(part[0]!, part.slice(2));
  }
  const nonce = attrs.get('r');
  const salt = decodeBase64Strict(attrs.get('s') ?? '');
  const iterations = Number(attrs.get('i'));
  if (serverFirst.startsWith('m='))
    return { ok: false, reason: 'server-first-message asks for an extension' };
  if (nonce === undefined || !nonce.startsWith(first.nonce) || nonce.length <= first.nonce.length) {
    return { ok: false, reason: 'server nonce does not extend the client nonce' };
  }
  if (salt === null || salt.length === 0) return { ok: false, reason: 'no salt in server-first-message' };
  // The upper bound keeps a hostile server from making us hash for minutes.
  if (
    !Number.isInteger(iterations) ||
    iterations < MIN_SCRAM_ITERATIONS ||
    iterations > MAX_SCRAM_ITERATIONS
  ) {
    return { ok: false, reason: `iteration count out of range: ${attrs.get('i') ?? 'none'}` };
  }
  const salted = pbkdf2Sync(prepareScramPassword(password), salt, iterations, 32, 'sha256');
  const clientKey = hmacSha256(salted, 'Client Key');
  const withoutProof = `c=${encodeBase64(new TextEncoder().encode(GS2_HEADER))},r=${nonce}`;
  const authMessage = `${first.bare},${serverFirst},${withoutProof}`;
  const signature = hmacSha256(sha256(clientKey), authMessage);
  const proof = clientKey.map((b, i) => b ^ signature[i]!);
  return {
    ok: true,
    message: `${withoutProof},p=${encodeBase64(proof)}`,
    serverSignature: hmacSha256(hmacSha256(salted, 'Server Key'), authMessage),
  };
}

/** True when the server-final-message carries the expected ServerSignature (`v=`), not an error (`e=`). */
export function scramServerFinalValid(serverFinal: string, expected: Uint8Array): boolean {
  const m = /^v=([A-Za-z0-9+/=]+)(?:,|$)/.exec(serverFinal);
  const got = m === null ? null : decodeBase64Strict(m[1]!);
  return got !== null && got.length === expected.length && timingSafeEqual(got, expected);
}
