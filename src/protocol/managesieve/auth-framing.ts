// ManageSieve's framing of a SASL exchange (RFC 5804 §2.1): a server challenge is a string of base64 on a
// line of its own (quoted; a literal when long), the exchange ends with OK on success and NO on failure,
// with a response code where a client can act on it: ENCRYPT-NEEDED (the mechanism needs TLS first),
// TRYLATER (a temporary failure or a lockout). The results are what the ManageSieve session takes back
// (a challenge to send, or the response that ends the exchange), every text from the one catalogue
// (replies.ts); formatSieveAuthStep() gives the wire bytes.
// AUTH-TOO-WEAK and TRANSITION-NEEDED are deliberately never sent: both would tell an attacker that the
// account exists and what it holds. Wrong credentials, a refused authorization identity, a channel-binding
// mismatch and an unsupported mechanism feature all get one answer, as in SMTP, POP3 and IMAP. The final
// SCRAM data goes out as one more challenge (exchange.ts), so success carries no (SASL "...") code.
// Pure. Deliberately NOT here: reading the client's responses and "*" (the session), when AUTHENTICATE
// may be used (the session), delays and lockouts (the SASL drive).

import { assertNever } from '../../core/assert-never.ts';
import { encodeBase64 } from '../sasl/codec.ts';
import type { SaslFailure, SaslFraming } from '../sasl/framing.ts';
import { formatChallenge, formatReply, type SieveResponse } from './format.ts';
import { SieveReplies } from './replies.ts';

export type SieveAuthStep =
  /** Base64, sent as a string on its own line. */
  | { readonly kind: 'challenge'; readonly challenge: string }
  /** The response that ends the exchange: OK on success, NO otherwise. */
  | { readonly kind: 'reply'; readonly reply: SieveResponse };

export function sieveAuthFailure(reason: SaslFailure): SieveResponse {
  switch (reason) {
    case 'credentials':
    case 'authorization':
    case 'channel-binding':
    case 'unsupported':
      return SieveReplies.authFailed;
    case 'temporary':
      return SieveReplies.authTemporaryFailure;
    case 'locked-out':
      return SieveReplies.authLockedOut;
    case 'cancelled':
      return SieveReplies.authCancelled;
    case 'malformed':
    case 'bad-base64':
      return SieveReplies.authMalformed;
    case 'line-too-long':
      return SieveReplies.authLineTooLong;
    case 'unknown-mechanism':
      return SieveReplies.authUnknownMechanism;
    case 'needs-tls':
      return SieveReplies.authNeedsTls;
    case 'syntax':
      return SieveReplies.authSyntax;
    case 'bad-sequence':
      return SieveReplies.authBadSequence;
    default:
      return assertNever(reason);
  }
}

export const sieveAuthFraming: SaslFraming<SieveAuthStep> = {
  challenge: (data) => ({ kind: 'challenge', challenge: encodeBase64(data) }),
  success: () => ({ kind: 'reply', reply: SieveReplies.authSucceeded }),
  failure: (reason) => ({ kind: 'reply', reply: sieveAuthFailure(reason) }),
};

/** The bytes a step puts on the wire, as text (CRLF included). */
export function formatSieveAuthStep(step: SieveAuthStep): string {
  const bytes = step.kind === 'challenge' ? formatChallenge(step.challenge) : formatReply(step.reply);
  return new TextDecoder().decode(bytes);
}
