// SMTP's framing of a SASL exchange (RFC 4954 §4 and §6, enhanced codes RFC 5248 / RFC 3463): 334 with the
// base64 challenge, 235 2.7.0, and the reply for each failure, all from the one catalogue
// (src/core/reply.ts). Texts are generic on purpose; a failure's detail goes to the log.
// Pure. Deliberately NOT here: the 334 line itself for challenges the session writes (session.ts puts the
// challenge text after "334 "), when AUTH may be used (session.ts).

import { assertNever } from '../../core/assert-never.ts';
import { Replies, type Reply } from '../../core/reply.ts';
import { encodeBase64 } from '../sasl/codec.ts';
import type { SaslFailure, SaslFraming } from '../sasl/framing.ts';

export function smtpAuthFailureReply(reason: SaslFailure): Reply {
  switch (reason) {
    case 'malformed':
      return Replies.authMalformed;
    case 'credentials':
    case 'authorization':
    case 'channel-binding':
    case 'unsupported':
      // One reply for all of them: a client learns nothing about which part of its attempt was wrong.
      return Replies.authFailed;
    case 'temporary':
      return Replies.authTemporaryFailure;
    case 'cancelled':
      return Replies.authCancelled;
    case 'bad-base64':
      return Replies.authBadBase64;
    case 'line-too-long':
      return Replies.authLineTooLong;
    case 'unknown-mechanism':
      return Replies.authUnknownMechanism;
    case 'needs-tls':
      return Replies.authNeedsEncryption;
    case 'syntax':
      return Replies.syntaxError;
    case 'locked-out':
      return Replies.authLockedOut;
    case 'bad-sequence':
      return Replies.badSequence;
    default:
      return assertNever(reason);
  }
}

/** A server challenge as a reply: 334 with the base64 text and no enhanced code (RFC 4954 §4). */
export function smtpChallengeReply(data: Uint8Array): Reply {
  return { code: 334, enhanced: '', text: encodeBase64(data) };
}

export const smtpAuthFraming: SaslFraming<Reply> = {
  challenge: smtpChallengeReply,
  success: () => Replies.authSucceeded,
  failure: smtpAuthFailureReply,
};
