// SMTP command parsing: one line (CRLF already removed) → verb + argument, and the MAIL/RCPT parameter
// grammars of RFC 5321 §4.1.2 with the ESMTP parameters Tern supports: SIZE (RFC 1870), BODY (RFC 6152,
// RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461), AUTH= (RFC 4954 §5, ignored).
// Pure and total: every function returns a result and never throws on client input.

import { parsePath, type Mailbox } from '../../core/address.ts';
import type { BodyType, DsnNotify, Orcpt } from '../../core/envelope.ts';
import { Replies, type Reply } from '../../core/reply.ts';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reply: Reply };

export interface CommandLine {
  /** Upper-cased verb, e.g. "MAIL". */
  readonly verb: string;
  /** Everything after the verb and one space, untrimmed on the right except trailing spaces. */
  readonly arg: string;
}

export function parseCommandLine(line: string): CommandLine {
  const sp = line.indexOf(' ');
  const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
  const arg = sp < 0 ? '' : line.slice(sp + 1).replace(/ +$/, '');
  return { verb, arg };
}

export interface MailParams {
  readonly sizeBytes: number | null;
  readonly body: BodyType;
  readonly smtputf8: boolean;
  readonly ret: 'FULL' | 'HDRS' | null;
  readonly envid: string | null;
  /** RFC 8689: the message must travel only over authenticated TLS (REQUIRETLS). */
  readonly requireTls?: boolean;
  /** RFC 6710 MT-PRIORITY: -9 (lowest) to 9 (highest); absent: not given (0). */
  readonly priority?: number;
  /** RFC 2852 DELIVERBY: BY=<seconds>;R|N[T]. */
  readonly by?: DeliverBy;
  /** RFC 4865 FUTURERELEASE: HOLDFOR=<seconds>, or HOLDUNTIL as epoch milliseconds. */
  readonly hold?:
    { readonly kind: 'for'; readonly seconds: number } | { readonly kind: 'until'; readonly atMs: number };
}

/** RFC 2852 §4: the by-time (seconds, may be negative for N), the by-mode, and the trace flag. */
export interface DeliverBy {
  readonly seconds: number;
  readonly mode: 'R' | 'N';
  readonly trace: boolean;
}

export interface MailCommand {
  /** null for the null reverse-path "<>". */
  readonly sender: Mailbox | null;
  readonly params: MailParams;
}

export interface RcptCommand {
  readonly recipient: Mailbox;
  readonly hadSourceRoute: boolean;
  readonly notify: readonly DsnNotify[] | null;
  readonly orcpt: Orcpt | null;
}

/** Split "KEY=VALUE KEY2" into pairs; keys upper-cased. */
function splitParams(s: string): Array<{ key: string; value: string | null }> | null {
  if (s.trim() === '') return [];
  const out: Array<{ key: string; value: string | null }> = [];
  for (const token of s.split(' ')) {
    if (token === '') continue; // tolerate double spaces
    const eq = token.indexOf('=');
    const key = (eq < 0 ? token : token.slice(0, eq)).toUpperCase();
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key)) return null;
    const value = eq < 0 ? null : token.slice(eq + 1);
    // esmtp-value: any CHAR except "=", SP and control characters (RFC 5321 §4.1.2); UTF-8 allowed (RFC 6531).
    if (value !== null && (value === '' || /[\x00-\x20=\x7f]/.test(value))) return null;
    out.push({ key, value });
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The octets of xtext (RFC 3461 §4): "+" and two upper-case hex digits is one octet; null when malformed. */
function xtextOctets(s: string): Uint8Array | null {
  const out = new Uint8Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const cp = ch.charCodeAt(0);
    if (ch === '+') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return null;
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else if (cp < 33 || cp > 126 || ch === '=') return null;
    else out[n++] = cp;
  }
  return out.subarray(0, n);
}

/**
 * xtext decoded to text: the octets first, then UTF-8 (an address or ENVID is UTF-8 text, RFC 6531/6533),
 * so "jos+C3+A9" is "josé". Octets that are not UTF-8 give null: such a value could not be said again in
 * a DSN or passed on, so it is refused rather than mangled.
 */
export function decodeXtext(s: string): string | null {
  const octets = xtextOctets(s);
  if (octets === null) return null;
  try {
    return utf8.decode(octets);
  } catch {
    return null;
  }
}

/** utf-8-addr-xtext / unitext decoding for ORCPT=utf-8;... (RFC 6533 §3): "\x{HEX}" escapes. */
function decodeUtf8AddrXtext(s: string): string | null {
  let out = '';
  for (let i = 0; i < s.length;) {
    if (s.startsWith('\\x{', i)) {
      const end = s.indexOf('}', i);
      const hex = end < 0 ? '' : s.slice(i + 3, end);
      if (!/^[0-9A-F]{1,6}$/.test(hex)) return null;
      const cp = parseInt(hex, 16);
      // A surrogate is not a character (it would become U+FFFD as UTF-8); controls are in no address.
      if (cp > 0x10ffff || cp < 0x20 || cp === 0x7f || (cp >= 0xd800 && cp <= 0xdfff)) return null;
      out += String.fromCodePoint(cp);
      i = end + 1;
      continue;
    }
    const cp = s.codePointAt(i)!;
    if (cp < 33 || cp === 0x7f || s[i] === '=' || s[i] === '+' || s[i] === '\\') return null;
    out += String.fromCodePoint(cp);
    i += cp > 0xffff ? 2 : 1;
  }
  return out;
}

/** "FROM:<path> params" — `esmtp` says whether EHLO was used (parameters are refused after HELO). */
export function parseMail(arg: string, esmtp: boolean): Parsed<MailCommand> {
  const m = /^FROM: ?(.*)$/i.exec(arg); // a space after the colon is common and tolerated
  if (!m) return { ok: false, reply: Replies.syntaxError };
  const rest = m[1]!;
  // Peek at the parameters first: SMTPUTF8 decides whether a UTF-8 path is acceptable.
  const close = rest.lastIndexOf('>');
  const paramText = close < 0 ? '' : rest.slice(close + 1);
  const smtputf8Asked = / SMTPUTF8(?: |$)/i.test(paramText) && esmtp;
  const path = parsePath(rest, { allowNull: true, utf8: smtputf8Asked });
  if (!path.ok)
    return { ok: false, reply: path.error === 'utf8' ? Replies.needUtf8 : Replies.badSenderSyntax };
  const pairs = splitParams(path.rest);
  if (pairs === null) return { ok: false, reply: Replies.syntaxError };
  if (pairs.length > 0 && !esmtp) return { ok: false, reply: Replies.badParameter };
  let sizeBytes: number | null = null;
  let body: BodyType = '7BIT';
  let smtputf8 = false;
  let ret: 'FULL' | 'HDRS' | null = null;
  let envid: string | null = null;
  let requireTls = false;
  let priority: number | null = null;
  let by: DeliverBy | null = null;
  let hold: MailParams['hold'] | null = null;
  const seen = new Map<string, string | null>();
  for (const { key, value } of pairs) {
    // Python's smtplib adds SMTPUTF8 (and BODY=8BITMIME) even when its caller already did: an identical
    // repeat is harmless and accepted; the same keyword with another value is a syntax error.
    if (seen.has(key) && seen.get(key) !== value) return { ok: false, reply: Replies.syntaxError };
    seen.set(key, value);
    switch (key) {
      case 'SIZE':
        if (value === null || !/^\d{1,20}$/.test(value)) return { ok: false, reply: Replies.syntaxError };
        sizeBytes = Number(value);
        break;
      case 'BODY': {
        const v = value?.toUpperCase();
        if (v !== '7BIT' && v !== '8BITMIME' && v !== 'BINARYMIME')
          return { ok: false, reply: Replies.badParameter };
        body = v;
        break;
      }
      case 'SMTPUTF8':
        if (value !== null) return { ok: false, reply: Replies.syntaxError };
        smtputf8 = true;
        break;
      case 'RET': {
        const v = value?.toUpperCase();
        if (v !== 'FULL' && v !== 'HDRS') return { ok: false, reply: Replies.syntaxError };
        ret = v;
        break;
      }
      case 'ENVID': {
        const decoded = value === null ? null : decodeXtext(value);
        if (decoded === null || value!.length > 100) return { ok: false, reply: Replies.syntaxError };
        envid = decoded;
        break;
      }
      case 'REQUIRETLS':
        if (value !== null) return { ok: false, reply: Replies.syntaxError };
        requireTls = true;
        break;
      case 'MT-PRIORITY':
        // RFC 6710 §3: an integer from -9 to 9, an optional sign.
        if (value === null || !/^[+-]?\d$/.test(value)) return { ok: false, reply: Replies.syntaxError };
        priority = Number(value);
        break;
      case 'BY': {
        // RFC 2852 §4: by-time ";" by-mode [by-trace]; by-time is at most 9 digits with a sign.
        const m = value === null ? null : /^([+-]?\d{1,9});([RN])(T?)$/i.exec(value);
        if (m === null) return { ok: false, reply: Replies.syntaxError };
        const seconds = Number(m[1]);
        const mode = m[2]!.toUpperCase() as 'R' | 'N';
        // §4.1: with R the time must be positive: the message would have expired already.
        if (mode === 'R' && seconds <= 0) return { ok: false, reply: Replies.syntaxError };
        by = { seconds, mode, trace: m[3] !== '' };
        break;
      }
      case 'HOLDFOR':
        if (value === null || !/^\d{1,9}$/.test(value)) return { ok: false, reply: Replies.syntaxError };
        hold = { kind: 'for', seconds: Number(value) };
        break;
      case 'HOLDUNTIL': {
        const atMs = value === null ? null : parseRfc3339(value);
        if (atMs === null) return { ok: false, reply: Replies.syntaxError };
        hold = { kind: 'until', atMs };
        break;
      }
      case 'AUTH':
        // RFC 4954 §5: accepted from unauthenticated clients and not passed on; validated as xtext.
        if (value === null || (value !== '<>' && xtextOctets(value) === null))
          return { ok: false, reply: Replies.syntaxError };
        break;
      default:
        return { ok: false, reply: Replies.badParameter };
    }
  }
  // RFC 4865 §4: HOLDFOR and HOLDUNTIL together, or with BY, are an error.
  if (seen.has('HOLDFOR') && seen.has('HOLDUNTIL')) return { ok: false, reply: Replies.syntaxError };
  if (hold !== null && by !== null) return { ok: false, reply: Replies.syntaxError };
  return {
    ok: true,
    value: {
      sender: path.mailbox,
      params: {
        sizeBytes,
        body,
        smtputf8,
        ret,
        envid,
        ...(requireTls ? { requireTls } : {}),
        ...(priority === null ? {} : { priority }),
        ...(by === null ? {} : { by }),
        ...(hold === null ? {} : { hold }),
      },
    },
  };
}

/**
 * RFC 3339 date-time (RFC 4865 §3 HOLDUNTIL), e.g. "2026-12-24T18:00:00Z" or "…T18:00:00.5+01:00";
 * epoch milliseconds, or null when it is not one.
 */
export function parseRfc3339(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/.exec(s);
  if (m === null) return null;
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(sec) > 60)
    return null;
  const utc = Date.UTC(Number(y), month - 1, day, Number(h), Number(mi), Math.min(59, Number(sec)));
  // Date.UTC rolls 31 February into March: such a date is not one.
  if (new Date(utc).getUTCDate() !== day) return null;
  const ms = frac === undefined ? 0 : Math.floor(Number(`0${frac}`) * 1000);
  let offsetMin = 0;
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    offsetMin = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  return utc + ms - offsetMin * 60_000;
}

/** "TO:<path> params". `smtputf8`: whether the transaction's MAIL carried SMTPUTF8. */
export function parseRcpt(arg: string, esmtp: boolean, smtputf8: boolean): Parsed<RcptCommand> {
  const m = /^TO: ?(.*)$/i.exec(arg);
  if (!m) return { ok: false, reply: Replies.syntaxError };
  const rest = m[1]!;
  // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted.
  const postmaster = /^<postmaster>( |$)/i.exec(rest);
  const path = postmaster
    ? ({
        ok: true,
        mailbox: { local: 'postmaster', quoted: false, domain: '', utf8: false },
        hadSourceRoute: false,
        rest: rest.slice(postmaster[0].length).trimStart(),
      } as const)
    : parsePath(rest, { allowNull: false, utf8: smtputf8 });
  if (!path.ok)
    return { ok: false, reply: path.error === 'utf8' ? Replies.needUtf8 : Replies.badAddressSyntax };
  const pairs = splitParams(path.rest);
  if (pairs === null) return { ok: false, reply: Replies.syntaxError };
  if (pairs.length > 0 && !esmtp) return { ok: false, reply: Replies.badParameter };
  let notify: DsnNotify[] | null = null;
  let orcpt: Orcpt | null = null;
  const seen = new Set<string>();
  for (const { key, value } of pairs) {
    if (seen.has(key)) return { ok: false, reply: Replies.syntaxError };
    seen.add(key);
    switch (key) {
      case 'NOTIFY': {
        if (value === null) return { ok: false, reply: Replies.syntaxError };
        const items = value.toUpperCase().split(',');
        if (items.length === 1 && items[0] === 'NEVER') {
          notify = [];
          break;
        }
        const set = new Set<DsnNotify>();
        for (const item of items) {
          if (item !== 'SUCCESS' && item !== 'FAILURE' && item !== 'DELAY')
            return { ok: false, reply: Replies.syntaxError };
          if (set.has(item)) return { ok: false, reply: Replies.syntaxError };
          set.add(item);
        }
        notify = [...set];
        break;
      }
      case 'ORCPT': {
        if (value === null) return { ok: false, reply: Replies.syntaxError };
        const semi = value.indexOf(';');
        if (semi <= 0) return { ok: false, reply: Replies.syntaxError };
        const addrType = value.slice(0, semi).toLowerCase();
        if (!/^[a-z0-9][a-z0-9-]*$/.test(addrType)) return { ok: false, reply: Replies.syntaxError };
        const raw = value.slice(semi + 1);
        const address = addrType === 'utf-8' ? decodeUtf8AddrXtext(raw) : decodeXtext(raw);
        if (address === null || address === '' || raw.length > 500)
          return { ok: false, reply: Replies.syntaxError };
        orcpt = { addrType, address };
        break;
      }
      default:
        return { ok: false, reply: Replies.badParameter };
    }
  }
  return {
    ok: true,
    value: { recipient: path.mailbox!, hadSourceRoute: path.hadSourceRoute, notify, orcpt },
  };
}

/** "BDAT <size> [LAST]" (RFC 3030 §2). */
export function parseBdat(arg: string): Parsed<{ sizeBytes: number; last: boolean }> {
  const m = /^(\d{1,15})(?: +(LAST))?$/i.exec(arg);
  if (!m) return { ok: false, reply: Replies.syntaxError };
  return { ok: true, value: { sizeBytes: Number(m[1]), last: m[2] !== undefined } };
}

/** EHLO/HELO argument: a domain or an address literal (RFC 5321 §4.1.1.1). Lenient on label syntax:
 * real clients send underscores and single labels; what matters is that it is one printable token. */
export function isAcceptableHelo(arg: string): boolean {
  if (arg.length === 0 || arg.length > 255) return false;
  if (arg.startsWith('[')) return /^\[[0-9A-Fa-f:.]+\]$|^\[IPv6:[0-9A-Fa-f:.]+\]$/i.test(arg);
  return /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/.test(arg) || /^[^\x00-\x20\x7f"\\<>()[\];@,]+$/u.test(arg);
}
