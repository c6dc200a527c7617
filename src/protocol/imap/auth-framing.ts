// IMAP's framing of a SASL exchange (AUTHENTICATE, RFC 9051 §6.2.2 and §7.1; response codes RFC 5530):
// a "+ " continuation with the base64 challenge, then the tagged completion: OK on success, NO with
// [AUTHENTICATIONFAILED] / [UNAVAILABLE] / [PRIVACYREQUIRED] when refused, BAD for a cancelled exchange
// or a line that is not base64 ("the server MUST reject the AUTHENTICATE command by sending a tagged BAD").
// Texts are generic on purpose, as for SMTP: a failure's detail goes to the log.
// Pure. Deliberately NOT here: the tag's syntax (the IMAP parser), capabilities sent with the OK.

import { assertNever } from '../../core/assert-never.ts';
import { encodeBase64 } from '../sasl/codec.ts';
import type { SaslFailure, SaslFraming } from '../sasl/framing.ts';

export function imapAuthFailureText(reason: SaslFailure): string {
  switch (reason) {
    case 'credentials':
    case 'authorization':
    case 'channel-binding':
    case 'unsupported':
      // One reply for all of them (not AUTHORIZATIONFAILED): nothing tells which part was wrong.
      return 'NO [AUTHENTICATIONFAILED] Authentication failed';
    case 'temporary':
      return 'NO [UNAVAILABLE] Temporary authentication failure';
    case 'locked-out':
      return 'NO [UNAVAILABLE] Too many failed authentications, try again later';
    case 'unknown-mechanism':
      return 'NO [CANNOT] Unrecognized authentication type';
    case 'needs-tls':
      return 'NO [PRIVACYREQUIRED] Encryption required for requested authentication mechanism';
    case 'cancelled':
      return 'BAD Authentication cancelled';
    case 'malformed':
    case 'bad-base64':
      return 'BAD Malformed authentication response';
    case 'line-too-long':
      return 'BAD [TOOBIG] Authentication exchange line is too long';
    case 'syntax':
      return 'BAD Syntax error in AUTHENTICATE arguments';
    case 'bad-sequence':
      return 'BAD Bad sequence of commands';
    default:
      return assertNever(reason);
  }
}

/**
 * What one step of an exchange writes: a continuation line, or the completion's text without its tag
 * ("OK ...", "NO [...] ..."), which the driver tags with the AUTHENTICATE (or LOGIN) command's tag.
 */
export type ImapAuthStep =
  { readonly kind: 'continue'; readonly line: string } | { readonly kind: 'complete'; readonly text: string };

/** The framing one SASL drive per connection uses; the tag is added when the step is written. */
export const imapSaslFraming: SaslFraming<ImapAuthStep> = {
  challenge: (data) => ({ kind: 'continue', line: `+ ${encodeBase64(data)}\r\n` }),
  success: () => ({ kind: 'complete', text: 'OK Authentication successful' }),
  failure: (reason) => ({ kind: 'complete', text: imapAuthFailureText(reason) }),
};

/** A step as bytes for the command tagged `tag`: each result is a line with CRLF. */
export function formatAuthStep(tag: string, step: ImapAuthStep): string {
  return step.kind === 'continue' ? step.line : `${tag} ${step.text}\r\n`;
}

/** The framing for one AUTHENTICATE command: completions carry its tag. Each result is a line with CRLF. */
export function imapAuthFraming(tag: string): SaslFraming<string> {
  return {
    challenge: (data) => formatAuthStep(tag, imapSaslFraming.challenge(data)),
    success: () => formatAuthStep(tag, imapSaslFraming.success()),
    failure: (reason) => formatAuthStep(tag, imapSaslFraming.failure(reason)),
  };
}
