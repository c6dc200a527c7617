// The replies an SMTP AUTH exchange ends with (RFC 4954 §4 and §6, enhanced codes RFC 5248 / RFC 3463),
// kept here as data until they join the catalogue in src/core/reply.ts, and the mapping from a failure
// reason to its reply. Texts are generic on purpose; the failure's detail goes to the log.

import { assertNever } from '../../core/assert-never.ts';
import type { Reply } from '../../core/reply.ts';
import { encodeBase64 } from './codec.ts';
import type { FailureReason } from './mechanism.ts';

export const AuthReplies = {
  authSucceeded: { code: 235, enhanced: '2.7.0', text: 'Authentication successful' },
  authFailed: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  authBadBase64: { code: 501, enhanced: '5.5.2', text: 'Cannot Base64-decode client response' },
  authMalformed: { code: 501, enhanced: '5.5.2', text: 'Malformed authentication response' },
  authCancelled: { code: 501, enhanced: '5.7.0', text: 'Authentication cancelled' },
  authUnknownMechanism: { code: 504, enhanced: '5.5.4', text: 'Unrecognized authentication type' },
  authNeedsEncryption: {
    code: 538,
    enhanced: '5.7.11',
    text: 'Encryption required for requested authentication mechanism',
  },
  authTemporaryFailure: { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure' },
  authLineTooLong: { code: 500, enhanced: '5.5.6', text: 'Authentication exchange line is too long' },
  authMechanismTooWeak: { code: 534, enhanced: '5.7.9', text: 'Authentication mechanism is too weak' },
  /** RFC 4954 §4: no second AUTH after a successful one. */
  authAlreadyDone: { code: 503, enhanced: '5.5.1', text: 'Already authenticated' },
  /** RFC 4954 §4: AUTH is not permitted during a mail transaction. */
  authInTransaction: { code: 503, enhanced: '5.5.1', text: 'AUTH not permitted during a mail transaction' },
} as const satisfies Record<string, Reply>;

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
