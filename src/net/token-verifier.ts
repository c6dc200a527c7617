// Bearer token verification for OAUTHBEARER (RFC 7628) and XOAUTH2: the 'token' request of the SASL
// mechanisms ends here. Two ways, chosen by [auth.oauth]:
//   - local JWT (RFC 7519) in compact JWS form (RFC 7515), signed with a key from a JWKS file
//     (RFC 7517: RS256, PS256, ES256, EdDSA per RFC 7518 §3 and RFC 8037) or with the HS256 shared secret;
//   - RFC 7662 token introspection, when introspection_url is set (then instead of the local check).
// Deliberately NOT here: JWE, nested JWTs, unencoded payloads (RFC 7797), fetching keys from the network
// (jku, x5u, discovery documents, JWKS refresh), algorithms beyond the five above, revocation lists.
//
// SECURITY: the algorithm comes from the token, so it is never trusted on its own. "none" is never
// accepted; an HMAC algorithm only ever meets the configured shared secret and never a public key
// (algorithm confusion, RFC 8725 §2.1 and §3.1); a JWKS key is only used for the algorithms its type (and
// its own "alg", when given) allows. Keys embedded in the token header (jwk, jku, x5c) are ignored.
// A verdict's reason is for the log only: it never holds the token, and the client sees a generic error.

import { createHash, createHmac, createPublicKey, constants, timingSafeEqual, verify } from 'node:crypto';
import type { JsonWebKey, KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { OAuthConfig } from '../config/config.ts';
import { systemClock } from '../core/ports.ts';
import type { Clock } from '../core/ports.ts';

export type TokenVerdict =
  | { readonly ok: true; readonly username: string }
  | { readonly ok: false; readonly reason: string; readonly temporary: boolean };

export interface TokenVerifier {
  /** `claimedUser` is the identity the client named (XOAUTH2 user=, OAUTHBEARER a=), or null. Never throws. */
  verify(token: string, claimedUser: string | null): Promise<TokenVerdict>;
}

export interface TokenVerifierOptions {
  readonly clock?: Clock;
  /** The HTTP client for introspection (tests pass their own); default the global fetch. */
  readonly fetch?: typeof fetch;
  /** Bound on one introspection request, response body included. Default 5000. */
  readonly timeoutMs?: number;
}

/** The [auth.oauth] key that cannot be used, and why; thrown by createTokenVerifier at start. */
export class TokenVerifierConfigError extends Error {
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(`${key}: ${message}`, options);
    this.name = 'TokenVerifierConfigError';
    this.key = key;
  }
}

/** Clock skew allowed on exp, nbf and iat (RFC 7519 §4.1.4 leaves it to us: "a few minutes" at most). */
export const CLOCK_LEEWAY_S = 60;
/** The longest an introspection answer is reused; a revoked token stops working within this. */
export const INTROSPECTION_CACHE_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 5000;
/** Far above any real access token; bounds the work one AUTH line can cause. */
const MAX_TOKEN_CHARS = 16_384;
const MAX_JWKS_BYTES = 1_048_576;
const MAX_INTROSPECTION_BYTES = 65_536;
const MAX_CACHE_ENTRIES = 10_000;
/** RFC 7518 §3.3 and §3.5: RSA keys for RS256/PS256 are 2048 bits or more. */
const MIN_RSA_BITS = 2048;

const invalid = (reason: string): TokenVerdict => ({ ok: false, reason, temporary: false });
const unavailable = (reason: string): TokenVerdict => ({ ok: false, reason, temporary: true });

/**
 * Build the verifier [auth.oauth] describes. Reads the JWKS file now (a bad file stops the start, it does
 * not fail every login later); throws TokenVerifierConfigError naming the key at fault.
 */
export async function createTokenVerifier(
  config: OAuthConfig,
  opts: TokenVerifierOptions = {},
): Promise<TokenVerifier> {
  const clock = opts.clock ?? systemClock;
  if (config.introspectionUrl !== null) {
    return introspectionVerifier(config, config.introspectionUrl, {
      clock,
      fetch: opts.fetch ?? globalThis.fetch,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
  }
  const keys = config.jwksFile === null ? [] : await loadJwks(config.jwksFile);
  const hmacKey = config.hmacSecret === null ? null : Buffer.from(config.hmacSecret, 'utf8');
  if (keys.length === 0 && hmacKey === null) {
    throw new TokenVerifierConfigError(
      'auth.oauth',
      'no key to verify tokens with (jwks_file or hmac_secret)',
    );
  }
  return {
    verify: (token, claimedUser) =>
      Promise.resolve(guard(() => verifyJwt(token, claimedUser, config, keys, hmacKey, clock))),
  };
}

function guard(check: () => TokenVerdict): TokenVerdict {
  try {
    return check();
  } catch {
    // Unknown means temporary: a bug here must not read to the client as "your token is bad".
    return unavailable('internal error while verifying the token');
  }
}

// ---------------------------------------------------------------------------------------------------
// JWKS

type JwsAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA' | 'HS256';

interface VerificationKey {
  readonly kid: string | null;
  readonly algs: readonly JwsAlg[];
  readonly key: KeyObject;
}

/** The JWS algorithm names we accept, mapped to ours; RFC 9864 names Ed25519 on its own. A Map, so a
 *  name such as "toString" finds nothing rather than something inherited. */
const ALG_NAMES: ReadonlyMap<string, JwsAlg> = new Map([
  ['RS256', 'RS256'],
  ['PS256', 'PS256'],
  ['ES256', 'ES256'],
  ['EdDSA', 'EdDSA'],
  ['Ed25519', 'EdDSA'],
  ['HS256', 'HS256'],
]);

function algorithmOf(value: unknown): JwsAlg | undefined {
  return typeof value === 'string' ? ALG_NAMES.get(value) : undefined;
}

async function loadJwks(path: string): Promise<VerificationKey[]> {
  const key = 'auth.oauth.jwks_file';
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new TokenVerifierConfigError(key, `cannot read ${path}`, { cause: err });
  }
  if (bytes.length > MAX_JWKS_BYTES) {
    throw new TokenVerifierConfigError(key, `${path} is larger than ${MAX_JWKS_BYTES} bytes`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new TokenVerifierConfigError(key, `${path} is not JSON`, { cause: err });
  }
  if (!isObject(doc) || !Array.isArray(doc['keys'])) {
    throw new TokenVerifierConfigError(key, `${path} is not a JWKS document (no "keys" array)`);
  }
  const keys: VerificationKey[] = [];
  for (const jwk of doc['keys'] as unknown[]) {
    const usable = isObject(jwk) ? toVerificationKey(jwk) : null;
    if (usable !== null) keys.push(usable);
  }
  if (keys.length === 0) {
    throw new TokenVerifierConfigError(
      key,
      `${path} holds no usable signing key (RSA of ${MIN_RSA_BITS}+ bits, EC P-256 or Ed25519)`,
    );
  }
  return keys;
}

/** A JWKS entry as a public key with the algorithms it may verify, or null when it cannot sign for us. */
function toVerificationKey(jwk: Record<string, unknown>): VerificationKey | null {
  // RFC 7517 §4.2/§4.3: a key published for encryption, or without "verify", is not a signing key.
  if (jwk['use'] !== undefined && jwk['use'] !== 'sig') return null;
  const ops = jwk['key_ops'];
  if (ops !== undefined && !(Array.isArray(ops) && ops.includes('verify'))) return null;
  let algs: JwsAlg[];
  if (jwk['kty'] === 'RSA') algs = ['RS256', 'PS256'];
  else if (jwk['kty'] === 'EC' && jwk['crv'] === 'P-256') algs = ['ES256'];
  else if (jwk['kty'] === 'OKP' && jwk['crv'] === 'Ed25519') algs = ['EdDSA'];
  else return null; // other curves, "oct" (the shared secret has its own key), unknown types
  if (jwk['alg'] !== undefined) {
    const pinned = algorithmOf(jwk['alg']);
    if (pinned === undefined || !algs.includes(pinned)) return null;
    algs = [pinned];
  }
  let key: KeyObject;
  try {
    // Only the public members: a JWKS that carries "d" by mistake must not make us hold a private key.
    const { kty, crv, n, e, x, y } = jwk;
    const pub = Object.fromEntries(
      Object.entries({ kty, crv, n, e, x, y }).filter(([, v]) => v !== undefined),
    ) as JsonWebKey;
    key = createPublicKey({ key: pub, format: 'jwk' });
  } catch {
    return null;
  }
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    return null;
  }
  const kid = typeof jwk['kid'] === 'string' ? jwk['kid'] : null;
  return { kid, algs, key };
}

// ---------------------------------------------------------------------------------------------------
// JWT (compact JWS)

const B64URL = /^[A-Za-z0-9_-]*$/;

function decodeB64url(part: string): Buffer | null {
  if (!B64URL.test(part) || part.length % 4 === 1) return null;
  return Buffer.from(part, 'base64url');
}

function decodeJsonObject(part: string): Record<string, unknown> | null {
  const bytes = decodeB64url(part);
  if (bytes === null) return null;
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

function verifyJwt(
  token: string,
  claimedUser: string | null,
  config: OAuthConfig,
  keys: readonly VerificationKey[],
  hmacKey: Buffer | null,
  clock: Clock,
): TokenVerdict {
  if (token.length > MAX_TOKEN_CHARS) return invalid('token too long');
  const parts = token.split('.');
  // Five parts would be JWE (RFC 7516), which we do not decrypt.
  if (parts.length !== 3) return invalid('not a compact JWS');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeJsonObject(headerPart);
  if (header === null) return invalid('malformed JWS header');
  const alg = algorithmOf(header['alg']);
  if (alg === undefined) return invalid(`algorithm not accepted: ${describe(header['alg'])}`);
  // RFC 7515 §4.1.11: extensions marked critical that we do not understand (we understand none) fail.
  if (header['crit'] !== undefined) return invalid('critical header extensions are not supported');
  if (typeof header['cty'] === 'string' && header['cty'].toUpperCase() === 'JWT') {
    return invalid('nested JWT is not supported');
  }
  const signature = decodeB64url(signaturePart);
  if (signature === null || signature.length === 0) return invalid('malformed signature');
  const signingInput = Buffer.from(`${headerPart}.${payloadPart}`, 'ascii');

  if (alg === 'HS256') {
    if (hmacKey === null) return invalid('HS256 token but no hmac_secret configured');
    const expected = createHmac('sha256', hmacKey).update(signingInput).digest();
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      return invalid('bad signature');
    }
  } else {
    const kid = typeof header['kid'] === 'string' ? header['kid'] : null;
    const candidates = keys.filter((k) => k.algs.includes(alg) && (kid === null || k.kid === kid));
    if (candidates.length === 0) {
      return invalid(kid === null ? `no key for ${alg}` : `no ${alg} key with kid ${JSON.stringify(kid)}`);
    }
    if (!candidates.some((k) => verifySignature(alg, k.key, signingInput, signature))) {
      return invalid('bad signature');
    }
  }

  // Claims are read only once the signature holds: nothing unauthenticated reaches the log or a decision.
  const claims = decodeJsonObject(payloadPart);
  if (claims === null) return invalid('malformed JWT claims');
  // RFC 7519 makes exp optional; a bearer token that never expires is a password we cannot rotate.
  if (claims['exp'] === undefined) return invalid('no exp claim');
  const timeCheck = checkTimes(claims, clock.nowMs() / 1000);
  if (timeCheck !== null) return invalid(timeCheck);
  const audienceCheck = checkIssuerAudience(claims, config);
  if (audienceCheck !== null) return invalid(audienceCheck);
  return checkUser(stringClaim(claims, config.usernameClaim), config.usernameClaim, claimedUser);
}

function verifySignature(alg: Exclude<JwsAlg, 'HS256'>, key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    switch (alg) {
      case 'RS256':
        return verify('sha256', data, key, sig);
      case 'PS256':
        // RFC 7518 §3.5: MGF1 with SHA-256 and a salt as long as the hash.
        return verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
      case 'ES256':
        // RFC 7518 §3.4: the signature is R || S, 32 octets each, not DER.
        return sig.length === 64 && verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
      case 'EdDSA':
        return key.asymmetricKeyType === 'ed25519' && verify(null, data, key, sig);
      default:
        return assertNeverAlg(alg);
    }
  } catch {
    return false;
  }
}

function assertNeverAlg(alg: never): never {
  throw new Error(`unexpected algorithm ${String(alg)}`);
}

/** exp (when present), nbf and iat as RFC 7519 §4.1.4-6 NumericDates, with leeway; a reason or null. */
function checkTimes(claims: Record<string, unknown>, nowS: number): string | null {
  const exp = claims['exp'];
  if (exp !== undefined) {
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'exp is not a number';
    if (nowS > exp + CLOCK_LEEWAY_S) return 'token expired';
  }
  const nbf = claims['nbf'];
  if (nbf !== undefined) {
    if (typeof nbf !== 'number' || !Number.isFinite(nbf)) return 'nbf is not a number';
    if (nowS + CLOCK_LEEWAY_S < nbf) return 'token not yet valid';
  }
  const iat = claims['iat'];
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) return 'iat is not a number';
    if (nowS + CLOCK_LEEWAY_S < iat) return 'token issued in the future';
  }
  return null;
}

/** iss and aud as configured: when asked for, a token (or introspection answer) must carry them. */
function checkIssuerAudience(claims: Record<string, unknown>, config: OAuthConfig): string | null {
  if (config.issuer !== null && claims['iss'] !== config.issuer) return 'wrong issuer';
  if (config.audience.length > 0) {
    const aud = claims['aud'];
    // RFC 7519 §4.1.3: one string or an array of them.
    const values = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!values.some((v) => typeof v === 'string' && config.audience.includes(v))) return 'wrong audience';
  }
  return null;
}

function checkUser(username: string | null, claim: string, claimedUser: string | null): TokenVerdict {
  if (username === null) return invalid(`no ${claim} claim naming the user`);
  // The token names the user; what the client claims may only agree with it, never choose another.
  if (claimedUser !== null && claimedUser.toLowerCase() !== username.toLowerCase()) {
    return invalid('claimed user does not match the token');
  }
  return { ok: true, username };
}

function stringClaim(claims: Record<string, unknown>, name: string): string | null {
  const value = claims[name];
  return typeof value === 'string' && value !== '' ? value : null;
}

// ---------------------------------------------------------------------------------------------------
// Introspection (RFC 7662)

interface CachedAnswer {
  readonly username: string;
  readonly untilMs: number;
}

function introspectionVerifier(
  config: OAuthConfig,
  url: string,
  deps: { clock: Clock; fetch: typeof fetch; timeoutMs: number },
): TokenVerifier {
  // Keyed by a hash so the cache never holds a usable token.
  const cache = new Map<string, CachedAnswer>();
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (config.introspectionClientId !== null && config.introspectionClientSecret !== null) {
    // RFC 6749 §2.3.1: id and secret are form-encoded before they go into the Basic credentials.
    const basic = `${formEncode(config.introspectionClientId)}:${formEncode(config.introspectionClientSecret)}`;
    headers['authorization'] = `Basic ${Buffer.from(basic, 'utf8').toString('base64')}`;
  }

  const remember = (key: string, username: string, exp: unknown): void => {
    const nowMs = deps.clock.nowMs();
    const untilMs = Math.min(
      nowMs + INTROSPECTION_CACHE_MS,
      typeof exp === 'number' ? exp * 1000 : Number.POSITIVE_INFINITY,
    );
    if (untilMs <= nowMs) return;
    if (cache.size >= MAX_CACHE_ENTRIES) {
      for (const [k, v] of cache) if (v.untilMs <= nowMs) cache.delete(k);
      // Still full: drop the oldest (a Map iterates in insertion order).
      const oldest = cache.keys().next();
      if (cache.size >= MAX_CACHE_ENTRIES && oldest.done !== true) cache.delete(oldest.value);
    }
    cache.set(key, { username, untilMs });
  };

  const ask = async (
    token: string,
  ): Promise<{ answer: Record<string, unknown> } | { failed: TokenVerdict }> => {
    let response: Response;
    let text: string | null;
    try {
      response = await deps.fetch(url, {
        method: 'POST',
        headers,
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        // A redirect would resend the token and our client secret somewhere we were not told of.
        redirect: 'manual',
        signal: AbortSignal.timeout(deps.timeoutMs),
      });
      text = await readLimited(response, MAX_INTROSPECTION_BYTES);
    } catch (err) {
      const name = isObject(err) ? err['name'] : undefined;
      const timedOut = name === 'TimeoutError' || name === 'AbortError';
      return {
        failed: unavailable(timedOut ? 'introspection timed out' : 'introspection endpoint unreachable'),
      };
    }
    // RFC 7662 §2.2: a bad token is a 200 with active false. Any other status is the endpoint refusing
    // us (our credentials, its outage), which says nothing about the token: temporary.
    if (response.status !== 200) {
      return { failed: unavailable(`introspection endpoint answered ${response.status}`) };
    }
    if (text === null) return { failed: unavailable('introspection answer too large') };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { failed: unavailable('introspection answer is not JSON') };
    }
    if (!isObject(body)) return { failed: unavailable('introspection answer is not a JSON object') };
    return { answer: body };
  };

  return {
    async verify(token, claimedUser) {
      try {
        if (token.length > MAX_TOKEN_CHARS) return invalid('token too long');
        const key = createHash('sha256').update(token, 'utf8').digest('base64url');
        const cached = cache.get(key);
        if (cached !== undefined) {
          if (cached.untilMs > deps.clock.nowMs()) return checkUser(cached.username, '', claimedUser);
          cache.delete(key);
        }
        const result = await ask(token);
        if ('failed' in result) return result.failed;
        const claims = result.answer;
        if (claims['active'] !== true) return invalid('token not active');
        const timeCheck = checkTimes(claims, deps.clock.nowMs() / 1000);
        if (timeCheck !== null) return invalid(timeCheck);
        const audienceCheck = checkIssuerAudience(claims, config);
        if (audienceCheck !== null) return invalid(audienceCheck);
        const username =
          stringClaim(claims, config.usernameClaim) ??
          stringClaim(claims, 'username') ??
          stringClaim(claims, 'sub');
        if (username === null) return invalid(`no ${config.usernameClaim}, username or sub in the answer`);
        // Cached before the claimed-user check: the answer is about the token, whoever presents it.
        remember(key, username, claims['exp']);
        return checkUser(username, config.usernameClaim, claimedUser);
      } catch {
        return unavailable('internal error while verifying the token');
      }
    },
  };
}

/** The body as text, or null when it is longer than `limit` bytes (then the rest is not read). */
async function readLimited(response: Response, limit: number): Promise<string | null> {
  if (response.body === null) return '';
  // Typed here because lib.dom-less @types/node leaves a fetch body's chunks as any.
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A header value for the log, bounded, since it came from the client. */
function describe(value: unknown): string {
  return JSON.stringify(value ?? null).slice(0, 40);
}
