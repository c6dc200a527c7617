// The replies an SMTP AUTH exchange ends with (RFC 4954 §4 and §6, enhanced codes RFC 5248 / RFC 3463),
// taken from the catalogue in src/core/reply.ts, and the mapping from a failure
// reason to its reply. Texts are generic on purpose; the failure's detail goes to the log.

import { assertNever } from '../../core/assert-never.ts';
import { Replies, type Reply } from '../../core/reply.ts';
import { encodeBase64 } from './codec.ts';
import type { FailureReason } from './mechanism.ts';

/** The AUTH replies live in the one catalogue (src/core/reply.ts); this alias keeps SASL code readable. */
export const AuthReplies = Replies;

/** Why an AUTH exchange failed: the mechanism's reasons plus what the SMTP framing adds. */
export type AuthFailureReason = FailureReason | 'cancelled' | 'bad-base64' | 'line-too-long';

export function replyForAuthFailure(reason: AuthFailureReason): Reply {
  switch (reason) {
    case 'malformed':
      return AuthReplies.authMalformed;
    case 'credentials':
    case 'authorization':
    case 'channel-binding':
    case 'unsupported':
      // One reply for all of them: a client learns nothing about which part of its attempt was wrong.
      return AuthReplies.authFailed;
    case 'temporary':
      return AuthReplies.authTemporaryFailure;
    case 'cancelled':
      return AuthReplies.authCancelled;
    case 'bad-base64':
      return AuthReplies.authBadBase64;
    case 'line-too-long':
      return AuthReplies.authLineTooLong;
    default:
      return assertNever(reason);
  }
}

/** A server challenge as a reply: 334 with the base64 text and no enhanced code (RFC 4954 §4). */
export function challengeReply(data: Uint8Array): Reply {
  return { code: 334, enhanced: '', text: encodeBase64(data) };
}
