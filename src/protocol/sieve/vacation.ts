// The vacation action's two pure halves (RFC 5230): whether a reply may be sent at all (§4.5 "was it
// sent to me", §4.6 no replies to lists, bulk mail, automatic mail or daemons; RFC 3834 §2), and the
// reply itself (§5: From, To, Subject, In-Reply-To / References, Auto-Submitted: auto-replied; a
// text/plain UTF-8 body, or the :mime entity as the script gives it; CRLF line ends throughout).
// The caller sends it with a null envelope sender and remembers (handle, sender) for the action's
// period; both are its business, as is the clock.
// PURE. Deliberately NOT here: deciding on the action (interpret.ts), the reply store, the queue.

import { formatMailbox, parseMailbox } from '../../core/address.ts';
import { extractAddresses } from '../address-list.ts';
import type { SieveAction } from './actions.ts';
import { encodeHeaderText } from './encode-words.ts';
import type { SieveInput } from './interpret.ts';
import { readFields, type Field } from './message.ts';
import { bareAddress } from './validate-commands.ts';

export type VacationAction = Extract<SieveAction, { kind: 'vacation' }>;

export type VacationVerdict = { readonly ok: true } | { readonly ok: false; readonly why: string };

/** Senders that are programs, not people (RFC 5230 §4.6, RFC 3834 §2): never answered. */
const DAEMON_LOCAL =
  /^(mailer-daemon|postmaster|listserv|majordomo|owner-.*|.*-owner|.*-request|.*-bounces?|no-?reply)$/i;
const LIST_FIELDS = [
  'list-id',
  'list-help',
  'list-subscribe',
  'list-unsubscribe',
  'list-post',
  'list-owner',
  'list-archive',
];
const RECIPIENT_FIELDS = ['to', 'cc', 'bcc', 'resent-to', 'resent-cc', 'resent-bcc'];

/** Case-folded "local@domain" for comparing addresses. */
function addressKey(address: string): string {
  return bareAddress(address).toLowerCase();
}

function values(fields: readonly Field[], name: string): string[] {
  return fields.filter((f) => f.name.toLowerCase() === name).map((f) => f.value);
}

/** May a vacation reply go to this message's sender? */
export function vacationAllowed(input: SieveInput, action: VacationAction): VacationVerdict {
  const sender = input.envelope.from;
  if (sender === '') return { ok: false, why: 'null envelope sender' };
  const at = sender.lastIndexOf('@');
  if (DAEMON_LOCAL.test(at < 0 ? sender : sender.slice(0, at))) {
    return { ok: false, why: `sender ${sender} is a mailer daemon or list address` };
  }
  const fields = readFields(input.headerBlock);
  const auto = values(fields, 'auto-submitted')[0];
  if (auto !== undefined && auto.split(';')[0]!.trim().toLowerCase() !== 'no') {
    return { ok: false, why: `Auto-Submitted: ${auto}` };
  }
  const list = LIST_FIELDS.find((name) => values(fields, name).length > 0);
  if (list !== undefined) return { ok: false, why: `mailing list message (${list})` };
  const precedence = values(fields, 'precedence')[0]?.trim().toLowerCase();
  if (precedence === 'bulk' || precedence === 'list' || precedence === 'junk') {
    return { ok: false, why: `Precedence: ${precedence}` };
  }
  if (values(fields, 'x-auto-response-suppress').some((v) => /\b(all|oof|autoreply)\b/i.test(v))) {
    return { ok: false, why: 'X-Auto-Response-Suppress asks for no automatic reply' };
  }
  const mine = new Set(
    [...input.userAddresses, ...action.addresses, input.envelope.to].filter((a) => a !== '').map(addressKey),
  );
  if (mine.has(addressKey(sender))) return { ok: false, why: 'the sender is the recipient' };
  const addressed = RECIPIENT_FIELDS.flatMap((name) =>
    values(fields, name).flatMap((v) => extractAddresses(v)),
  );
  if (!addressed.some((a) => mine.has(addressKey(a)))) {
    return { ok: false, why: "none of the recipient's addresses is in To, Cc, Bcc, Resent-To or Resent-Cc" };
  }
  return { ok: true };
}

export interface ReplyOptions {
  /** With or without angle brackets; "@" + hostname is added when it has no "@". */
  readonly messageId: string;
  /** An RFC 5322 date-time (the caller's clock). */
  readonly date: string;
  readonly hostname: string;
}

/** A header field value that cannot start another field. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').trim();
}

function crlf(text: string): string {
  return text.replace(/\r\n|\r|\n/g, '\r\n');
}

/** The From: of the reply: the :from as written (it may carry a display name), else the recipient. */
function replyFrom(input: SieveInput, action: VacationAction): string {
  if (action.from !== null) {
    const from = oneLine(action.from);
    return /[<>]/.test(from) ? encodeDisplayName(from) : `<${from}>`;
  }
  const to = input.envelope.to;
  const m = parseMailbox(to, true);
  return `<${m ? formatMailbox(m) : to}>`;
}

/** "Name <addr>" with a non-ASCII name encoded (RFC 2047 §5(3)); the address is left alone. */
function encodeDisplayName(nameAddr: string): string {
  const lt = nameAddr.lastIndexOf('<');
  const name = nameAddr.slice(0, lt).trim();
  return `${name === '' ? '' : `${encodeHeaderText(name.replace(/^"(.*)"$/, '$1'))} `}${nameAddr.slice(lt)}`;
}

/** Message-IDs in a field value, brackets included. */
function messageIds(value: string): string[] {
  return value.match(/<[^<>\s]+>/g) ?? [];
}

const QP_SAFE = /^[\x20-\x3c\x3e-\x7e]$/;

/** quoted-printable (RFC 2045 §6.7) of UTF-8 text with CRLF lines, soft breaks before 76 columns. */
function quotedPrintable(text: string): string {
  return text
    .split('\r\n')
    .map((line) => {
      let out = '';
      let width = 0;
      const bytes = new TextEncoder().encode(line);
      bytes.forEach((b, i) => {
        const last = i === bytes.length - 1;
        const ch = String.fromCharCode(b);
        // A space or tab at the end of a line would be lost in transport: encode it.
        const piece =
          QP_SAFE.test(ch) && !(last && (b === 0x20 || b === 0x09))
            ? ch
            : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
        if (width + piece.length > 75) {
          out += '=\r\n';
          width = 0;
        }
        out += piece;
        width += piece.length;
      });
      return out;
    })
    .join('\r\n');
}

/** The reply message, CRLF line ends, ready for the queue (sent with a null envelope sender). */
export function vacationReply(input: SieveInput, action: VacationAction, options: ReplyOptions): Uint8Array {
  const fields = readFields(input.headerBlock);
  const id = options.messageId.replace(/^<|>$/g, '');
  const messageId = `<${id.includes('@') ? id : `${id}@${options.hostname}`}>`;
  const original = messageIds(values(fields, 'message-id')[0] ?? '')[0];
  const references = messageIds(values(fields, 'references').join(' '));
  const head = [
    `From: ${replyFrom(input, action)}`,
    `To: <${input.envelope.from}>`,
    `Subject: ${encodeHeaderText(oneLine(action.subject))}`,
    `Date: ${oneLine(options.date)}`,
    `Message-ID: ${messageId}`,
  ];
  if (original !== undefined) {
    head.push(`In-Reply-To: ${original}`, `References: ${[...references.slice(-10), original].join(' ')}`);
  }
  head.push('Auto-Submitted: auto-replied (vacation)', 'MIME-Version: 1.0');
  let message: string;
  if (action.mime) {
    // :mime: the reason is a MIME entity, header fields first (RFC 5230 §4.4).
    message = `${head.join('\r\n')}\r\n${crlf(action.reason).replace(/^(?:\r\n)+/, '')}`;
  } else {
    const body = crlf(action.reason);
    const plain = /^[\x00-\x7f]*$/.test(body) && body.split('\r\n').every((l) => l.length <= 998);
    head.push(
      'Content-Type: text/plain; charset=utf-8',
      `Content-Transfer-Encoding: ${plain ? '7bit' : 'quoted-printable'}`,
    );
    message = `${head.join('\r\n')}\r\n\r\n${plain ? body : quotedPrintable(body)}`;
  }
  if (!message.endsWith('\r\n')) message += '\r\n';
  return new TextEncoder().encode(message);
}
