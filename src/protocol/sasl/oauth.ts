// OAuth 2.0 bearer tokens over SASL: OAUTHBEARER (RFC 7628) and Google's XOAUTH2.
//
//   OAUTHBEARER  gs2-header ^A *(key "=" value ^A) ^A      e.g. "n,a=u@example.org,^Aauth=Bearer t^A^A"
//   XOAUTH2      "user=" user ^A "auth=Bearer " token ^A ^A
//
// The token is checked by the driver (the 'token' request). On rejection the server sends a JSON error
// as a challenge (RFC 7628 §3.2.2; Google's {"status":"401",...} for XOAUTH2), the client answers with a
// dummy response (^A for OAUTHBEARER, empty for XOAUTH2), and only then does the exchange fail.
// SECURITY: a bearer token is a password for as long as it lives; offer these only under TLS (index.ts).
// Deliberately NOT here: token validation, discovery documents, channel binding (RFC 7628 has none).

import { assertNever } from '../../core/assert-never.ts';
import { challenge, decodeField, EMPTY, failure, outOfTurn, settle } from './common.ts';
import { parseGs2Header } from './gs2.ts';
import type { Mechanism, OAuthError, Step, VerifyAnswer } from './mechanism.ts';

const SEP = '\x01';
const KEY = /^[A-Za-z]+$/;
// RFC 7628 §3.1 value: *(VCHAR / SP / HTAB / CR / LF). Non-ASCII is tolerated too: XOAUTH2's user may
// be an internationalized address (RFC 6531), and no other control character gets through.
const VALUE = /^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$/u;
// RFC 6750 §2.1: "Bearer" 1*SP b64token; the scheme name is case-insensitive (RFC 7235 §2.1).
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

export type KvParse =
  | { readonly ok: true; readonly pairs: ReadonlyMap<string, string> }
  | { readonly ok: false; readonly detail: string };

/**
 * Parse `*(key "=" value ^A) ^A`: the key-value list that follows the gs2 header (OAUTHBEARER, after its
 * leading ^A) or makes the whole message (XOAUTH2). Duplicate keys are refused.
 */
export function parseKvPairs(text: string): KvParse {
  if (!text.endsWith(SEP)) return { ok: false, detail: 'key-value list does not end with ^A' };
  const body = text.slice(0, -1);
  const pairs = new Map<string, string>();
  if (body === '') return { ok: true, pairs };
  if (!body.endsWith(SEP)) return { ok: false, detail: 'key-value list lacks its final ^A' };
  for (const field of body.slice(0, -1).split(SEP)) {
    const eq = field.indexOf('=');
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (eq < 0 || !KEY.test(key) || !VALUE.test(value)) return { ok: false, detail: 'bad key-value pair' };
    if (pairs.has(key)) return { ok: false, detail: `duplicate key ${key}` };
    pairs.set(key, value);
  }
  return { ok: true, pairs };
}

/** The token of an `auth` value, or null when it is not a bearer credential. */
function bearerToken(auth: string | undefined): string | null {
  if (auth === undefined) return null;
  return BEARER.exec(auth)?.[1] ?? null;
}

export interface OAuthRequest {
  readonly user: string | null;
  readonly token: string;
}

export type OAuthParse =
  | { readonly ok: true; readonly value: OAuthRequest }
  | { readonly ok: false; readonly reason: 'malformed' | 'unsupported'; readonly detail: string };

/** Parse an OAUTHBEARER client response (RFC 7628 §3.1). */
export function parseOAuthBearerMessage(message: Uint8Array): OAuthParse {
  const text = decodeField(message);
  if (text === null) return { ok: false, reason: 'malformed', detail: 'OAUTHBEARER: not UTF-8 or holds NUL' };
  const gs2 = parseGs2Header(text);
  if (!gs2.ok) return { ok: false, reason: 'malformed', detail: `OAUTHBEARER: ${gs2.detail}` };
  if (gs2.header.binding.kind === 'p') {
    return { ok: false, reason: 'unsupported', detail: 'OAUTHBEARER: channel binding is not defined for it' };
  }
  if (!gs2.rest.startsWith(SEP))
    return { ok: false, reason: 'malformed', detail: 'OAUTHBEARER: no ^A after gs2' };
  const kv = parseKvPairs(gs2.rest.slice(1));
  if (!kv.ok) return { ok: false, reason: 'malformed', detail: `OAUTHBEARER: ${kv.detail}` };
  const token = bearerToken(kv.pairs.get('auth'));
  if (token === null)
    return { ok: false, reason: 'malformed', detail: 'OAUTHBEARER: no auth=Bearer <token>' };
  return { ok: true, value: { user: gs2.header.authzid, token } };
}

/** Parse an XOAUTH2 client response (user=...^Aauth=Bearer ...^A^A). */
export function parseXOAuth2Message(message: Uint8Array): OAuthParse {
  const text = decodeField(message);
  if (text === null) return { ok: false, reason: 'malformed', detail: 'XOAUTH2: not UTF-8 or holds NUL' };
  const kv = parseKvPairs(text);
  if (!kv.ok) return { ok: false, reason: 'malformed', detail: `XOAUTH2: ${kv.detail}` };
  const user = kv.pairs.get('user');
  if (user === undefined || user === '')
    return { ok: false, reason: 'malformed', detail: 'XOAUTH2: no user=' };
  const token = bearerToken(kv.pairs.get('auth'));
  if (token === null) return { ok: false, reason: 'malformed', detail: 'XOAUTH2: no auth=Bearer <token>' };
  return { ok: true, value: { user, token } };
}

/** The JSON error challenge; key order is fixed so the bytes are stable. */
export function oauthErrorJson(mechanism: 'OAUTHBEARER' | 'XOAUTH2', error: OAuthError = {}): string {
  const body: Record<string, string> = {
    status: error.status ?? (mechanism === 'OAUTHBEARER' ? 'invalid_token' : '401'),
  };
  if (mechanism === 'XOAUTH2') body.schemes = 'bearer';
  if (error.scope !== undefined) body.scope = error.scope;
  if (error.openidConfiguration !== undefined) body['openid-configuration'] = error.openidConfiguration;
  return JSON.stringify(body);
}

function createOAuthMechanism(mechanism: 'OAUTHBEARER' | 'XOAUTH2'): Mechanism {
  let phase: 'start' | 'message' | 'verify' | 'error-ack' | 'done' = 'start';
  const parse = mechanism === 'OAUTHBEARER' ? parseOAuthBearerMessage : parseXOAuth2Message;

  const receive = (message: Uint8Array): Step => {
    phase = 'done';
    const parsed = parse(message);
    if (!parsed.ok) return failure(parsed.reason, parsed.detail);
    phase = 'verify';
    return { kind: 'verify', request: { kind: 'token', mechanism, ...parsed.value } };
  };

  return {
    name: mechanism,
    start(initialResponse: Uint8Array | null): Step {
      if (phase !== 'start') return outOfTurn(mechanism, 'start');
      if (initialResponse !== null) return receive(initialResponse);
      phase = 'message';
      return challenge(EMPTY);
    },
    next(response: Uint8Array): Step {
      if (phase === 'message') return receive(response);
      if (phase !== 'error-ack') return outOfTurn(mechanism, 'next');
      phase = 'done';
      // RFC 7628 §3.2.3: the client acknowledges with a lone ^A (XOAUTH2 clients send an empty line). The
      // exchange fails either way; a different answer is only worth noting in the log.
      const expected = mechanism === 'OAUTHBEARER' ? [0x01] : [];
      const acked = response.length === expected.length && response.every((b, i) => b === expected[i]);
      return failure(
        'credentials',
        `${mechanism}: token rejected${acked ? '' : ' (unexpected acknowledgement)'}`,
      );
    },
    resume(answer: VerifyAnswer): Step {
      if (phase !== 'verify') return outOfTurn(mechanism, 'resume');
      switch (answer.kind) {
        case 'reject':
          phase = 'error-ack';
          return challenge(oauthErrorJson(mechanism, answer.oauth));
        case 'accept':
        case 'temporary':
        case 'scram-secrets':
          phase = 'done';
          return settle(mechanism, answer);
        default:
          return assertNever(answer);
      }
    },
  };
}

export function createOAuthBearerMechanism(): Mechanism {
  return createOAuthMechanism('OAUTHBEARER');
}

export function createXOAuth2Mechanism(): Mechanism {
  return createOAuthMechanism('XOAUTH2');
}
