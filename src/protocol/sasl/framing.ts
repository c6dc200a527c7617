// The one thing a protocol adds to a SASL exchange: how a challenge, a success and each failure look on its
// wire. The SASL drive (server/sasl-drive.ts) runs the exchange, the delays and the lockouts, and asks the
// protocol's framing for the bytes (or reply) to send: SMTP in protocol/smtp/auth-replies.ts (334 / 235 /
// 535...), POP3 in protocol/pop3/auth-framing.ts (+ / +OK / -ERR [AUTH], RFC 5034), IMAP in
// protocol/imap/auth-framing.ts (+ / tagged OK / NO / BAD, RFC 9051). ManageSieve will add its own.
// Pure. Deliberately NOT here: reading the client's lines (the session), when AUTH may be used.

import type { AuthFailureReason } from './exchange.ts';
import type { MechanismRefusal } from './index.ts';

/** Every way an AUTH command can end without success, whoever decided it. */
export type SaslFailure =
  /** The exchange itself: the mechanism, or the line framing (cancel, bad base64, overlong line). */
  | AuthFailureReason
  /** The mechanism named cannot be used here (see index.ts). */
  | MechanismRefusal
  /** The client address or the named account is locked out (policy/auth-guard.ts). */
  | 'locked-out'
  /** A response line came when no exchange was running. */
  | 'bad-sequence';

export interface SaslFraming<Out> {
  /** A server challenge; `data` is raw, the framing base64-encodes it (empty data: an empty challenge). */
  challenge(data: Uint8Array): Out;
  success(): Out;
  failure(reason: SaslFailure): Out;
}

/** Every SaslFailure, for tests that check a framing answers each one. */
export const SASL_FAILURES = [
  'malformed',
  'credentials',
  'authorization',
  'channel-binding',
  'unsupported',
  'temporary',
  'cancelled',
  'bad-base64',
  'line-too-long',
  'unknown-mechanism',
  'needs-tls',
  'syntax',
  'locked-out',
  'bad-sequence',
] as const satisfies readonly SaslFailure[];

// Both ways: a reason added to SaslFailure and not listed above fails to compile here.
export type UnlistedSaslFailure = Exclude<SaslFailure, (typeof SASL_FAILURES)[number]>;
const allListed: UnlistedSaslFailure extends never ? true : false = true;
void allListed;
