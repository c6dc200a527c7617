// POP3's framing of a SASL exchange (RFC 5034 §4, response codes RFC 2449 §8 and RFC 3206): "+ " and the
// base64 challenge, "+OK" on success, "-ERR" on failure with [AUTH] where the credentials were wrong
// (the client should ask its user again) and [SYS/TEMP] where trying later may work (AUTH-RESP-CODE).
// The results are what the POP3 session takes back (a challenge to send, or the reply that ends the
// exchange), with every text from the one POP3 catalogue (replies.ts); formatPop3AuthStep() gives the
// wire bytes. Texts are generic on purpose, as for SMTP: a failure's detail goes to the log.
// Pure. Deliberately NOT here: reading the client's lines and "*" (the session feeds them to the drive),
// when AUTH may be used (before TLS only on loopback, by option: the session).

import { assertNever } from '../../core/assert-never.ts';
import { encodeBase64 } from '../sasl/codec.ts';
import type { SaslFailure, SaslFraming } from '../sasl/framing.ts';
import { formatChallenge, formatReply, Pop3Replies, type Pop3Reply } from './replies.ts';

export type Pop3AuthStep =
  /** Base64, sent as "+ <challenge>". */
  | { readonly kind: 'challenge'; readonly challenge: string }
  /** The reply that ends the exchange: +OK on success, -ERR otherwise. */
  | { readonly kind: 'reply'; readonly reply: Pop3Reply };

export function pop3AuthFailure(reason: SaslFailure): Pop3Reply {
  switch (reason) {
    case 'credentials':
    case 'authorization':
    case 'channel-binding':
    case 'unsupported':
      // One reply for all of them, as in SMTP: a client learns nothing about which part was wrong.
      return Pop3Replies.loginFailed;
    case 'temporary':
      return Pop3Replies.loginTemporaryFailure;
    case 'locked-out':
      return Pop3Replies.loginLockedOut;
    case 'cancelled':
      return Pop3Replies.authCancelled;
    case 'malformed':
    case 'bad-base64':
      return Pop3Replies.authBadBase64;
    case 'line-too-long':
      return Pop3Replies.authLineTooLong;
    case 'unknown-mechanism':
      return Pop3Replies.authUnknownMechanism;
    case 'needs-tls':
      return Pop3Replies.authNeedsTls;
    case 'syntax':
      return Pop3Replies.syntaxError;
    case 'bad-sequence':
      return Pop3Replies.badSequence;
    default:
      return assertNever(reason);
  }
}

export const pop3AuthFraming: SaslFraming<Pop3AuthStep> = {
  // RFC 5034 §4: "+" SP base64; an empty challenge is "+ " alone.
  challenge: (data) => ({ kind: 'challenge', challenge: encodeBase64(data) }),
  success: () => ({ kind: 'reply', reply: Pop3Replies.authSucceeded }),
  failure: (reason) => ({ kind: 'reply', reply: pop3AuthFailure(reason) }),
};

/** The line a step puts on the wire, CRLF included. */
export function formatPop3AuthStep(step: Pop3AuthStep): string {
  const bytes = step.kind === 'challenge' ? formatChallenge(step.challenge) : formatReply(step.reply);
  return new TextDecoder().decode(bytes);
}
