// Helpers the mechanisms share: strict UTF-8, saslname escaping (RFC 5802 §5.1), identity comparison,
// the usual ending of a credential check, and the error for a driver that calls a mechanism out of turn.
// Pure; never throws on client input.

import { assertNever } from '../../core/assert-never.ts';
import type { FailureReason, MechanismName, Step, VerifyAnswer } from './mechanism.ts';

// ignoreBOM: a leading U+FEFF is part of what the client sent, not a byte-order mark to drop silently.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

export const EMPTY = new Uint8Array(0);

/** Strict UTF-8 decoding: null for invalid sequences (overlongs, surrogates, truncation). */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function challenge(data: Uint8Array | string): Step {
  return { kind: 'challenge', data: typeof data === 'string' ? encodeUtf8(data) : data };
}

export function failure(reason: FailureReason, detail: string): Step {
  return { kind: 'failure', reason, detail };
}

/**
 * Decode a saslname (RFC 5802 §5.1, RFC 5801 §4): "=2C" is ",", "=3D" is "=", any other "=" is an error,
 * as are "," and NUL. Null when invalid or empty.
 */
export function decodeSaslName(text: string): string | null {
  if (text === '' || text.includes(',') || text.includes('\0')) return null;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch !== '=') {
      out += ch;
      continue;
    }
    const escape = text.slice(i + 1, i + 3);
    if (escape === '2C') out += ',';
    else if (escape === '3D') out += '=';
    else return null;
    i += 2;
  }
  return out;
}

export function encodeSaslName(name: string): string {
  return name.replaceAll('=', '=3D').replaceAll(',', '=2C');
}

/**
 * Whether an authorization identity names the authenticated user: equal after Unicode NFC and lower-casing,
 * the way the directory keys users (RFC 8265 UsernameCaseMapped, approximately). Acting as a different
 * user is not offered, so any other authzid is refused.
 */
export function sameIdentity(a: string, b: string): boolean {
  return normalizeIdentity(a) === normalizeIdentity(b);
}

function normalizeIdentity(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

/** A text field from a client: valid UTF-8, no NUL. */
export function decodeField(bytes: Uint8Array): string | null {
  const text = decodeUtf8(bytes);
  if (text === null || text.includes('\0')) return null;
  return text;
}

/** The end of a check whose answer is accept / reject / temporary. */
export function settle(mechanism: MechanismName, answer: VerifyAnswer): Step {
  switch (answer.kind) {
    case 'accept':
      return { kind: 'success', identity: answer.identity };
    case 'reject':
      return failure('credentials', `${mechanism}: credentials rejected`);
    case 'temporary':
      return failure('temporary', `${mechanism}: credential check unavailable`);
    case 'scram-secrets':
      return outOfTurn(mechanism, `resume(${answer.kind})`);
    default:
      return assertNever(answer);
  }
}

/** A driver bug, not client input: the mechanism was called in a state that does not expect the call. */
export function outOfTurn(mechanism: MechanismName, call: string): never {
  throw new Error(`SASL ${mechanism}: ${call} called out of turn`);
}
