// Delivery status notifications: which recipients a DSN reports on (RFC 3461 §4.1 NOTIFY, never a DSN
// about a DSN) and the DSN itself as bytes: multipart/report; report-type=delivery-status (RFC 6522)
// with a human-readable text/plain part, a machine-readable message/delivery-status part (RFC 3464 §2)
// and the original message or its headers (RFC 3461 §4.3 RET). For a message that needed SMTPUTF8 the
// internationalized types of RFC 6533 are used: message/global-delivery-status, message/global,
// message/global-headers; addresses that are not ASCII use the "utf-8" address type (§3).
// Sent from the null sender to the original sender (or, for a double bounce, the postmaster), with
// Auto-Submitted: auto-replied (RFC 3834 §5) so that well-behaved responders stay quiet.
// SECURITY: remote servers' replies, ENVID and ORCPT come from strangers; every value that goes into a
// header line is stripped of control characters (no header or part injection), made ASCII where the
// part is ASCII-only, and folded well under 998 octets. The boundary is random, so an original message
// cannot end the report early by containing it.
// Deliberately not here: deciding when a DSN is due (schedule.ts, the worker), enqueueing it, reading the
// queue: the caller passes the original's header section and a way to stream the whole message.

import { randomBytes } from 'node:crypto';
import { formatRfc5322Date } from '../core/date.ts';
import type { BodyType, DsnNotify, Envelope, Orcpt } from '../core/envelope.ts';

export type DsnKind = 'failure' | 'delay' | 'success';
/** RFC 3464 §2.3.3. */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnRecipient {
  /** The recipient as it was delivered to (Final-Recipient). */
  readonly address: string;
  /** ORCPT from the envelope (Original-Recipient), null when the client gave none. */
  readonly orcpt: Orcpt | null;
  readonly action: DsnAction;
  /** Enhanced status code "x.y.z" (RFC 3463); a malformed one becomes the kind's generic code. */
  readonly status: string;
  /** DNS name of the remote MTA that gave `diagnostic`. */
  readonly remoteMta?: string | undefined;
  /** The SMTP reply that decided it (Diagnostic-Code: smtp; ...), e.g. "550 5.1.1 no such user". */
  readonly diagnostic?: string | undefined;
  readonly lastAttemptMs?: number | undefined;
}

export interface DsnOriginal {
  /** The original's header section, without the empty line that ends it. */
  readonly headers: Uint8Array;
  /** The whole original message as queued (headers included); streamed only when returned in full. */
  readonly body?: (() => AsyncIterable<Uint8Array>) | undefined;
  /** Its size, to fall back to headers only above maxReturnBytes. */
  readonly sizeBytes?: number | undefined;
}

export interface DsnRequest {
  readonly kind: DsnKind;
  /** This server's name: Reporting-MTA and the From: address. */
  readonly hostname: string;
  readonly nowMs: number;
  /** The original message's envelope: sender, ENVID, RET, arrival, SMTPUTF8, body type. */
  readonly envelope: Envelope;
  readonly recipients: readonly DsnRecipient[];
  readonly original: DsnOriginal;
  /** Will-Retry-Until for "delayed" recipients (arrival + queue lifetime). */
  readonly willRetryUntilMs?: number | undefined;
  /** The original's queue id, reported as X-Tern-Queue-ID (an extension field, RFC 3464 §2.4). */
  readonly queueId?: string | undefined;
  /**
   * Where the DSN goes; default the original sender. A double bounce (the original was itself a DSN,
   * sender "") must name the postmaster here: there is never a DSN to the null sender.
   */
  readonly to?: string | undefined;
  /** A full original larger than this is returned as headers only (Postfix bounce_size_limit). */
  readonly maxReturnBytes?: number | undefined;
  /** Fixed for golden tests; random otherwise. */
  readonly messageId?: string | undefined;
  readonly boundary?: string | undefined;
}

export interface Dsn {
  /** The DSN's own envelope: always from the null sender (RFC 3461 §6.2, RFC 5321 §4.5.5). */
  readonly sender: '';
  readonly recipient: string;
  /** What the DSN needs of the next hop: 8BITMIME when it carries 8-bit text. */
  readonly bodyType: BodyType;
  readonly smtputf8: boolean;
  /** What of the original it carries. */
  readonly returned: 'full' | 'headers';
  readonly messageId: string;
  /** The message, CRLF lines; each call streams it anew (the original is read again). */
  content(): AsyncIterable<Uint8Array>;
}

/** Postfix's bounce_size_limit is 50 kB; a little more generous, still far below any size limit. */
export const DEFAULT_MAX_RETURN_BYTES = 10 * 1024 * 1024;

const NOTIFY_FOR_KIND: Record<DsnKind, DsnNotify> = {
  failure: 'FAILURE',
  delay: 'DELAY',
  success: 'SUCCESS',
};

/**
 * The outcomes a DSN of this kind reports (RFC 3461 §4.1): none for a message from the null sender
 * (never bounce a bounce: the caller sends a failure to the postmaster instead, a "double bounce");
 * NOTIFY=NEVER asks for none; without NOTIFY, failures and delays are reported (the default is
 * FAILURE,DELAY at the MTA's discretion) and successes are not; with NOTIFY, exactly what it lists.
 * `index` is the recipient's position in the envelope.
 */
export function dsnRecipientsFor<T extends { readonly index: number }>(
  kind: DsnKind,
  envelope: Envelope,
  outcomes: readonly T[],
): T[] {
  if (envelope.sender === '') return [];
  return outcomes.filter((o) => {
    const rcpt = envelope.recipients[o.index];
    if (rcpt === undefined) return false;
    if (rcpt.notify === null) return kind !== 'success';
    return rcpt.notify.includes(NOTIFY_FOR_KIND[kind]);
  });
}

/**
 * The header section of a stored message with its last line ending, without the empty line that ends
 * it; read only that far, and at most maxBytes (cut at a line end) when the empty line never comes.
 */
export async function readHeaderBytes(
  body: AsyncIterable<Uint8Array>,
  maxBytes = 256 * 1024,
): Promise<Uint8Array> {
  let buf = Buffer.alloc(0);
  for await (const chunk of body) {
    // The end may straddle two chunks: look again from just before the join.
    const from = Math.max(0, buf.length - 3);
    buf = Buffer.concat([buf, chunk]);
    if (buf[0] === 0x0a || (buf[0] === 0x0d && buf[1] === 0x0a)) return new Uint8Array(0);
    const crlf = buf.indexOf('\r\n\r\n', from);
    const lf = buf.indexOf('\n\n', from);
    const end = Math.min(crlf < 0 ? Infinity : crlf + 2, lf < 0 ? Infinity : lf + 1);
    if (end <= maxBytes && end !== Infinity) return new Uint8Array(buf.subarray(0, end));
    if (buf.length >= maxBytes) return new Uint8Array(buf.subarray(0, cutAtLine(buf, maxBytes)));
  }
  return new Uint8Array(buf);
}

/** Cut at the last line end within maxBytes, so a cut header section never ends mid-line. */
function cutAtLine(buf: Buffer, maxBytes: number): number {
  const at = buf.lastIndexOf(0x0a, maxBytes - 1);
  return at < 0 ? maxBytes : at + 1;
}

const SUBJECTS: Record<DsnKind, string> = {
  failure: 'Undelivered Mail Returned to Sender',
  delay: 'Delayed Mail (still being retried)',
  success: 'Successful Mail Delivery Report',
};

const GENERIC_STATUS: Record<DsnKind, string> = { failure: '5.0.0', delay: '4.0.0', success: '2.0.0' };

const enc = new TextEncoder();
const CONTROL = /[\u0000-\u001f\u007f]/g;
const NON_ASCII = /[^\u0000-\u007f]/;

function isAscii(s: string): boolean {
  return !NON_ASCII.test(s);
}

function has8bit(bytes: Uint8Array): boolean {
  return bytes.some((b) => b >= 0x80);
}

/** One line of header text: control characters become spaces, runs of space collapse. */
function oneLine(s: string): string {
  return s.replace(CONTROL, ' ').replace(/ {2,}/g, ' ').trim();
}

/** ASCII only: anything else becomes "?" (Diagnostic-Code in message/delivery-status, RFC 3464 §2.3.6). */
function asciiOnly(s: string): string {
  return s.replace(/[^\u0020-\u007e]/g, '?');
}

/** An SMTP reply as one line of text: lines joined by a space, hostile bytes gone, at most 900 chars. */
function diagnosticText(reply: string): string {
  const joined = oneLine(reply.split(/\r?\n|\r/).join(' '));
  return asciiOnly(joined.length > 900 ? `${joined.slice(0, 897)}...` : joined);
}

/**
 * "Name: value" folded at spaces so that lines stay under 78 characters where the value allows it
 * (RFC 5322 §2.2.3); a run without spaces stays whole (values here are limited to well under 998).
 */
function field(name: string, value: string): string {
  const words = value.split(' ');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const word of words) {
    if (line.length + 1 + word.length > 78 && line.length > name.length + 1 && line.trim() !== '') {
      lines.push(line);
      // Fold before the space that was there: unfolding (removing CRLF) gives the value back exactly.
      line = ` ${word}`;
    } else {
      line = `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.map((l) => `${l}\r\n`).join('');
}

/** RFC 6533 §3 EmbeddedUnicodeChar: \x{HEX}, upper-case hex without leading zeros. */
function embedded(ch: string): string {
  return `\\x{${ch.codePointAt(0)!.toString(16).toUpperCase()}}`;
}

/**
 * An address of type "utf-8" (RFC 6533 §3): utf-8-addr-xtext in message/delivery-status (ASCII
 * only), utf-8-addr-unitext in message/global-delivery-status (UTF-8 kept). Either way "+", "=", "\",
 * space and controls are written as \x{HEX}: they are not QCHARs.
 */
function utf8Addr(address: string, global: boolean): string {
  let out = '';
  for (const ch of address) {
    const cp = ch.codePointAt(0)!;
    const qchar = cp > 0x20 && cp < 0x7f && ch !== '+' && ch !== '=' && ch !== '\\';
    out += qchar || (global && cp > 0x7f) ? ch : embedded(ch);
  }
  return out;
}

/** "rfc822; addr" for an ASCII address, "utf-8; ..." otherwise. */
function typedAddress(address: string, global: boolean): string {
  const clean = address.replace(CONTROL, '');
  return isAscii(clean) ? `rfc822; ${clean}` : `utf-8; ${utf8Addr(clean, global)}`;
}

function originalRecipient(orcpt: Orcpt, global: boolean): string {
  const type = orcpt.addrType.toLowerCase();
  if (type === 'utf-8') return `utf-8; ${utf8Addr(orcpt.address.replace(CONTROL, ''), global)}`;
  // Any other type passes through as given; one that is not plain ASCII is re-typed rather than mangled.
  const clean = orcpt.address.replace(CONTROL, '');
  if (!isAscii(clean)) return `utf-8; ${utf8Addr(clean, global)}`;
  return `${oneLine(orcpt.addrType)}; ${clean}`;
}

/** ENVID, decoded from xtext by the session: printable ASCII stays, anything else is xtext again. */
function envelopeId(envid: string): string {
  let out = '';
  for (const ch of envid) {
    const cp = ch.codePointAt(0)!;
    if (cp > 0x20 && cp < 0x7f && ch !== '+') out += ch;
    else for (const b of enc.encode(ch)) out += `+${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function validStatus(status: string, kind: DsnKind): string {
  return /^[245]\.\d{1,3}\.\d{1,3}$/.test(status) ? status : GENERIC_STATUS[kind];
}

/** Header section lines with CRLF endings (a bare CR or LF in stored headers becomes CRLF). */
function crlfLines(bytes: Uint8Array): Buffer {
  const text = Buffer.from(bytes)
    .toString('latin1')
    .replace(/\r\n|\r|\n/g, '\r\n');
  const withEnd = text === '' || text.endsWith('\r\n') ? text : `${text}\r\n`;
  return Buffer.from(withEnd, 'latin1');
}

/** Word-wrap one line of the human-readable part at 76 columns, continuation lines indented. */
function wrap(line: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const word of line.split(' ')) {
    if (current !== '' && current.length + 1 + word.length > 76) {
      out.push(current);
      current = `    ${word}`;
    } else {
      current = current === '' ? word : `${current} ${word}`;
    }
  }
  out.push(current);
  return out;
}

function humanText(req: DsnRequest, returned: 'full' | 'headers', cutForSize: boolean): string {
  const host = req.hostname;
  const intro: Record<DsnKind, string[]> = {
    failure: [
      `This is the mail system at ${host}.`,
      '',
      'Your message could not be delivered to one or more of its recipients:',
      'the mail system has given up on the recipients listed below.',
    ],
    delay: [
      `This is the mail system at ${host}.`,
      '',
      'Your message has not yet been delivered to the recipients listed below.',
      req.willRetryUntilMs === undefined
        ? 'The mail system will keep trying; there is no need to send it again.'
        : `The mail system will keep trying until ${formatRfc5322Date(req.willRetryUntilMs)};`,
      ...(req.willRetryUntilMs === undefined ? [] : ['there is no need to send it again.']),
    ],
    success: [
      `This is the mail system at ${host}.`,
      '',
      'Your message was delivered to the recipients listed below, as you asked to be told.',
    ],
  };
  const attached =
    returned === 'full'
      ? 'The message is attached.'
      : cutForSize
        ? 'It is too large to return in full; its headers are attached.'
        : "The message's headers are attached.";
  const lines = [...intro[req.kind], attached, ''];
  for (const r of req.recipients) {
    const who = `<${oneLine(r.address)}>`;
    const detail =
      r.diagnostic !== undefined
        ? r.remoteMta !== undefined
          ? `host ${asciiOnly(oneLine(r.remoteMta))} said: ${diagnosticText(r.diagnostic)}`
          : diagnosticText(r.diagnostic)
        : `${r.action} (status ${validStatus(r.status, req.kind)})`;
    lines.push(...wrap(`${who}: ${detail}`));
  }
  if (req.kind === 'failure') {
    lines.push('', ...wrap(`If you need help, write to the postmaster of ${host} and include this report.`));
  }
  return `${lines.join('\r\n')}\r\n`;
}

function deliveryStatus(req: DsnRequest, global: boolean): string {
  const e = req.envelope;
  let out = field('Reporting-MTA', `dns; ${oneLine(req.hostname)}`);
  if (req.queueId !== undefined) out += field('X-Tern-Queue-ID', oneLine(req.queueId));
  if (e.envid !== null) out += field('Original-Envelope-Id', envelopeId(e.envid));
  out += field('Arrival-Date', formatRfc5322Date(e.receivedAtMs));
  for (const r of req.recipients) {
    out += '\r\n';
    if (r.orcpt !== null) out += field('Original-Recipient', originalRecipient(r.orcpt, global));
    out += field('Final-Recipient', typedAddress(r.address, global));
    out += field('Action', r.action);
    out += field('Status', validStatus(r.status, req.kind));
    if (r.remoteMta !== undefined) out += field('Remote-MTA', `dns; ${asciiOnly(oneLine(r.remoteMta))}`);
    // RFC 3464 §2.3.6: "smtp" only for what a remote SMTP server said; what Tern decided itself (a route,
    // a size or SMTPUTF8 check, a local user) carries Tern's own type, as Postfix writes "X-Postfix".
    if (r.diagnostic !== undefined) {
      const type = r.remoteMta !== undefined ? 'smtp' : 'X-Tern';
      out += field('Diagnostic-Code', `${type}; ${diagnosticText(r.diagnostic)}`);
    }
    if (r.lastAttemptMs !== undefined) out += field('Last-Attempt-Date', formatRfc5322Date(r.lastAttemptMs));
    if (r.action === 'delayed' && req.willRetryUntilMs !== undefined) {
      out += field('Will-Retry-Until', formatRfc5322Date(req.willRetryUntilMs));
    }
  }
  return out;
}

function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * Build the DSN. Throws RangeError when it would go to the null sender (pass `to`, the postmaster, for
 * a double bounce) or reports on no recipient: both are the caller's bugs, not input errors.
 */
export function buildDsn(req: DsnRequest): Dsn {
  const e = req.envelope;
  const to = req.to ?? e.sender;
  if (to === '')
    throw new RangeError('dsn: never to the null sender (send a double bounce to the postmaster)');
  if (req.recipients.length === 0) throw new RangeError('dsn: no recipient to report on');
  const hostname = oneLine(req.hostname);
  const global = e.smtputf8;
  const maxReturn = req.maxReturnBytes ?? DEFAULT_MAX_RETURN_BYTES;
  const tooLarge = req.original.sizeBytes !== undefined && req.original.sizeBytes > maxReturn;
  // XXX: a BINARYMIME original is never returned in full: it would need BINARYMIME (and CHUNKING) of
  // every hop back to the sender; its headers say which message it was.
  const wantsFull = req.kind === 'failure' && e.ret !== 'HDRS' && e.body !== 'BINARYMIME';
  const body = req.original.body;
  const returned = wantsFull && !tooLarge && body !== undefined ? 'full' : 'headers';
  const headers = crlfLines(req.original.headers);

  const text = humanText(req, returned, wantsFull && tooLarge);
  const textAscii = isAscii(text);
  const originalIs8bit = returned === 'full' ? e.body !== '7BIT' || has8bit(headers) : has8bit(headers);
  const smtputf8 = global || !isAscii(to);
  const eightBit = !textAscii || originalIs8bit || smtputf8;

  const messageId = req.messageId ?? `<${req.nowMs.toString(36)}.${randomToken(9)}@${hostname}>`;
  const boundary = req.boundary ?? `${randomToken(18)}/${hostname}`;
  const [statusType, originalType] = global
    ? ['message/global-delivery-status', returned === 'full' ? 'message/global' : 'message/global-headers']
    : ['message/delivery-status', returned === 'full' ? 'message/rfc822' : 'text/rfc822-headers'];
  const description: Record<DsnKind, string> = {
    failure: returned === 'full' ? 'Undelivered Message' : 'Undelivered Message Headers',
    delay: 'Delayed Message Headers',
    success: 'Delivered Message Headers',
  };
  const toHeader = to.replace(CONTROL, '');

  const head =
    field('From', `"Mail Delivery System" <MAILER-DAEMON@${hostname}>`) +
    field('To', `<${toHeader}>`) +
    field('Subject', SUBJECTS[req.kind]) +
    field('Date', formatRfc5322Date(req.nowMs)) +
    field('Message-ID', messageId) +
    field('Auto-Submitted', 'auto-replied') +
    field('MIME-Version', '1.0') +
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"\r\n` +
    (eightBit ? field('Content-Transfer-Encoding', '8bit') : '') +
    '\r\n' +
    'This is a MIME-encapsulated message.\r\n' +
    `\r\n--${boundary}\r\n` +
    field('Content-Description', 'Notification') +
    field('Content-Type', `text/plain; charset=${textAscii ? 'us-ascii' : 'utf-8'}`) +
    (textAscii ? '' : field('Content-Transfer-Encoding', '8bit')) +
    '\r\n' +
    text +
    `\r\n--${boundary}\r\n` +
    field('Content-Description', 'Delivery report') +
    field('Content-Type', statusType) +
    (global ? field('Content-Transfer-Encoding', '8bit') : '') +
    '\r\n' +
    deliveryStatus(req, global) +
    `\r\n--${boundary}\r\n` +
    field('Content-Description', description[req.kind]) +
    field('Content-Type', originalType) +
    (originalIs8bit || global ? field('Content-Transfer-Encoding', '8bit') : '') +
    '\r\n';
  const tail = `\r\n--${boundary}--\r\n`;

  return {
    sender: '',
    recipient: to,
    bodyType: eightBit ? '8BITMIME' : '7BIT',
    smtputf8,
    returned,
    messageId,
    async *content() {
      yield enc.encode(head);
      if (returned === 'full' && body !== undefined) {
        for await (const chunk of body()) yield chunk;
      } else {
        yield headers;
      }
      yield enc.encode(tail);
    },
  };
}

/** The whole DSN in memory (tests, small messages). */
export async function dsnBytes(dsn: Dsn): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of dsn.content()) chunks.push(c);
  return Buffer.concat(chunks);
}
