// The Received: trace header (RFC 5321 §4.4, protocol names from RFC 3848 and RFC 6531 §3.7.3).
// SECURITY: the EHLO argument and reverse DNS name are client-controlled; they are escaped so that no
// client text can end the header, open a new one or break out of a comment.

import { formatRfc5322Date } from '../../core/date.ts';
import type { ClientInfo } from '../../core/envelope.ts';

export interface ReceivedInput {
  readonly client: ClientInfo;
  readonly hostname: string;
  readonly queueId: string;
  /** The single recipient, when there is exactly one (more would leak the envelope, §7.2). */
  readonly forRecipient: string | null;
  readonly smtputf8: boolean;
  readonly nowMs: number;
}

/** Printable ASCII except what would end a comment or header; everything else becomes "?" or is quoted. */
export function escapeHeaderText(s: string, allowUtf8 = false): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '(' || ch === ')' || ch === '\\') out += `\\${ch}`;
    else if (cp >= 0x21 && cp <= 0x7e) out += ch;
    else if (allowUtf8 && cp >= 0xa0) out += ch;
    else out += '?';
  }
  return out.slice(0, 255);
}

export function protocolName(client: ClientInfo, smtputf8: boolean): string {
  // RFC 3848 and RFC 6531 §3.7.3: LMTP, UTF8LMTP (with S for TLS, A for AUTH) on an LMTP listener.
  if (client.service === 'lmtp') return `${smtputf8 ? 'UTF8LMTP' : 'LMTP'}${client.tls ? 'S' : ''}`;
  if (!client.esmtp) return 'SMTP';
  const base = smtputf8 ? 'UTF8SMTP' : 'ESMTP';
  return `${base}${client.tls ? 'S' : ''}${client.authUser ? 'A' : ''}`;
}

/** The header, folded, CRLF-terminated. */
export function formatReceived(input: ReceivedInput): string {
  const { client } = input;
  // Outside a comment a backslash escapes nothing (RFC 5322 §3.2.1): specials are replaced, not escaped;
  // so is white space, which would split the one token "from" takes into two.
  const helo = escapeHeaderText(client.helo.replace(/[()<>;@\\",\s]/g, '?'), input.smtputf8);
  // RFC 5321 §4.4 TCP-info: the verified name (forward-confirmed reverse DNS) and the address; "unknown"
  // when there is none, as Postfix writes it, so a reader never takes the HELO name for a checked one.
  const rdns = client.hostname ? escapeHeaderText(client.hostname) : 'unknown';
  const ip = client.ip.includes(':') ? `IPv6:${client.ip}` : client.ip;
  const lines = [`Received: from ${helo} (${rdns} [${ip}])`];
  lines.push(
    `\tby ${input.hostname} (Tern) with ${protocolName(client, input.smtputf8)} id ${input.queueId}`,
  );
  if (client.tls) {
    lines.push(
      `\t(version=${escapeHeaderText(client.tls.version)} cipher=${escapeHeaderText(client.tls.cipher)})`,
    );
  }
  // The recipient is formatMailbox text, quoted where needed: escaping again would unbalance its quotes.
  const rcpt = input.forRecipient?.replace(
    input.smtputf8 ? /[^\x21-\x7e\u{a0}-\u{10ffff}]/gu : /[^\x21-\x7e]/g,
    '?',
  );
  const forPart = rcpt ? `for <${rcpt}>` : '';
  const date = formatRfc5322Date(input.nowMs);
  lines.push(forPart ? `\t${forPart}; ${date}` : `\t; ${date}`);
  return lines.join('\r\n') + '\r\n';
}
