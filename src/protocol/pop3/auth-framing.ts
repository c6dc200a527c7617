// POP3's framing of a SASL exchange (RFC 5034 §4, response codes RFC 2449 §8 and RFC 3206): "+ " and the
// base64 challenge, "+OK" on success, "-ERR" on failure with [AUTH] where the credentials were wrong
// (the client should ask its user again) and [SYS/TEMP] where trying later may work (AUTH-RESP-CODE).
// Texts are generic on purpose, as for SMTP: a failure's detail goes to the log.
// Pure. Deliberately NOT here: reading the client's lines and "*" (the session feeds them to the drive),
// when AUTH may be used (before TLS only on loopback, by option: the session).

import { assertNever } from '../../core/assert-never.ts';
import { encodeBase64 } from '../sasl/codec.ts';
import type { SaslFailure, SaslFraming } from '../sasl/framing.ts';

export function pop3AuthFailureLine(reason: SaslFailure): string {
  switch (reason) {
    case 'credentials':
    case 'authorization':
    case 'channel-binding':
    case 'unsupported':
      // One reply for all of them, as in SMTP: a client learns nothing about which part was wrong.
      return '-ERR [AUTH] Authentication failed\r\n';
    case 'temporary':
      return '-ERR [SYS/TEMP] Temporary authentication failure\r\n';
    case 'locked-out':
      return '-ERR [SYS/TEMP] Too many failed authentications, try again later\r\n';
    case 'cancelled':
      return '-ERR Authentication cancelled\r\n';
    case 'malformed':
    case 'bad-base64':
      return '-ERR Malformed authentication response\r\n';
    case 'line-too-long':
      return '-ERR Authentication exchange line is too long\r\n';
    case 'unknown-mechanism':
      return '-ERR Unrecognized authentication type\r\n';
    case 'needs-tls':
      return '-ERR Encryption required for requested authentication mechanism\r\n';
    case 'syntax':
      return '-ERR Syntax error in AUTH arguments\r\n';
    case 'bad-sequence':
      return '-ERR Bad sequence of commands\r\n';
    default:
      return assertNever(reason);
  }
}

/** Each result is one complete line with its CRLF, ready to write. */
export const pop3AuthFraming: SaslFraming<string> = {
  // RFC 5034 §4: "+" SP base64; an empty challenge is "+ " alone.
  challenge: (data) => `+ ${encodeBase64(data)}\r\n`,
  success: () => '+OK Authentication successful\r\n',
  failure: pop3AuthFailureLine,
};
