// The envelope of one SMTP transaction as it travels: session → queue → delivery.
// DSN parameters (RFC 3461 §4) are kept parsed and validated so the outbound side can honour them.

export type BodyType = '7BIT' | '8BITMIME' | 'BINARYMIME';
export type DsnNotify = 'SUCCESS' | 'FAILURE' | 'DELAY';

export interface Orcpt {
  /** addr-type, e.g. "rfc822" or "utf-8" (RFC 6533). */
  readonly addrType: string;
  /** The original recipient, xtext/utf-8-addr decoded. */
  readonly address: string;
}

export interface EnvelopeRecipient {
  /** Forward-path as the client gave it (canonical text, no brackets). */
  readonly address: string;
  /** NOTIFY=NEVER is an empty list; null when the client gave no NOTIFY. */
  readonly notify: readonly DsnNotify[] | null;
  readonly orcpt: Orcpt | null;
}

export interface ClientInfo {
  readonly ip: string;
  readonly port: number;
  /** Forward-confirmed reverse DNS name (src/net/reverse-dns.ts); null when there is none. */
  readonly hostname: string | null;
  /** The EHLO/HELO argument, exactly as sent (escape before putting it in a header). */
  readonly helo: string;
  readonly esmtp: boolean;
  /** TLS protocol and cipher when the session is encrypted, e.g. { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }. */
  readonly tls: { readonly version: string; readonly cipher: string } | null;
  readonly authUser: string | null;
  /** Listener service name ("smtp", "submission", ...). */
  readonly service: string;
}

export interface Envelope {
  /** Reverse-path without brackets; "" for the null sender. */
  readonly sender: string;
  readonly body: BodyType;
  readonly smtputf8: boolean;
  /** RET=FULL|HDRS or null. */
  readonly ret: 'FULL' | 'HDRS' | null;
  /** ENVID, xtext decoded, or null. */
  readonly envid: string | null;
  readonly recipients: readonly EnvelopeRecipient[];
  readonly client: ClientInfo;
  /** Milliseconds since the epoch when end of data was reached. */
  readonly receivedAtMs: number;
  /** Local delivery into this mailbox instead of INBOX (e.g. "Junk" after a DMARC quarantine). */
  readonly folder?: string;
  /**
   * The content has lines over 998 octets (accepted with limits.long_lines = "accept"): it is encoded
   * before it leaves for another host (delivery/long-lines.ts). Absent when it has none.
   */
  readonly longLines?: boolean;
  /**
   * The header block was complete at intake, so any Return-Path: it carried is gone (RFC 5321 §4.4):
   * local delivery may then store the queued body as it is, behind its trace fields, and the mailbox
   * store can take a spooled file over instead of copying it. Absent on mail queued before issue 14.
   */
  readonly returnPathDropped?: boolean;
  /**
   * RFC 8689 REQUIRETLS: the message leaves only over TLS authenticated by MTA-STS or DANE, to a next hop
   * that offers REQUIRETLS, or it bounces at once. Absent when not asked.
   */
  readonly requireTls?: boolean;
  /** `TLS-Required: No` (RFC 8689 §5) without REQUIRETLS: recipients' MTA-STS and DANE do not stop it. */
  readonly tlsOptional?: boolean;
  /** RFC 6710 MT-PRIORITY from a trusted sender (-9..9): higher goes first in the queue. Absent: 0. */
  readonly priority?: number;
  /**
   * RFC 2852 DELIVERBY: delivered by `deadlineMs`, else returned (mode R: a failure DSN, 5.4.7) or
   * reported (mode N: a delay DSN); passed on with the time left to a next hop that offers DELIVERBY.
   */
  readonly deliverBy?: { readonly deadlineMs: number; readonly mode: 'R' | 'N'; readonly trace: boolean };
  /** RFC 4865 FUTURERELEASE: not delivered before this time. */
  readonly holdUntilMs?: number;
  /** Released from catcher mode (`tern mailbox release`): delivered for real even while catching. */
  readonly released?: boolean;
}
