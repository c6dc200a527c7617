// IMAP ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) from the header fields kept in the structure:
// date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id. Sender and Reply-To
// default to From. Addresses are (name adl mailbox host) lists; a group is (NIL NIL "name" NIL), its
// members, then (NIL NIL NIL NIL). Encoded-words are sent as written: IMAP clients decode them. A
// mailbox without a domain gets host ".MISSING-HOST-NAME." as UW imapd and Dovecot send.
// Strings go through the one IMAP string writer (imap/format.ts formatString).
// PURE and total. Deliberately not here: decoding names for display.

import type { EnvelopeFields } from './structure.ts';
import { formatNstring, formatString, type WireOptions } from '../imap/format.ts';

export interface ImapAddress {
  readonly name: string | null;
  readonly adl: string | null;
  readonly mailbox: string | null;
  readonly host: string | null;
}

export const MISSING_HOST = '.MISSING-HOST-NAME.';

type Token =
  | { readonly kind: 'word'; readonly text: string; readonly quoted: boolean }
  | { readonly kind: 'comment'; readonly text: string }
  | { readonly kind: 'special'; readonly text: string };

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let text = '';
      for (i++; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        text += s[i];
      }
      i++;
      out.push({ kind: 'word', text, quoted: true });
    } else if (c === '(') {
      let depth = 0;
      let text = '';
      for (; i < s.length; i++) {
        const d = s[i]!;
        if (d === '\\' && i + 1 < s.length) {
          text += s[++i];
          continue;
        }
        if (d === '(' && depth++ === 0) continue;
        if (d === ')' && --depth === 0) {
          i++;
          break;
        }
        text += d;
      }
      out.push({ kind: 'comment', text: text.trim() });
    } else if ('<>,:;@.[]'.includes(c)) {
      if (c === '[') {
        const end = s.indexOf(']', i);
        const stop = end < 0 ? s.length : end + 1;
        out.push({ kind: 'word', text: s.slice(i, stop), quoted: false });
        i = stop;
      } else {
        out.push({ kind: 'special', text: c });
        i++;
      }
    } else {
      const start = i;
      while (i < s.length && !/[\s"(<>,:;@.[\]]/.test(s[i]!)) i++;
      out.push({ kind: 'word', text: s.slice(start, i), quoted: false });
    }
  }
  return out;
}

/** local-part "@" domain from tokens (dots rejoined); the first "@" splits. */
function addrSpec(tokens: readonly Token[]): { mailbox: string | null; host: string | null } {
  let local = '';
  let domain: string | null = null;
  for (const t of tokens) {
    if (t.kind === 'comment') continue;
    if (t.kind === 'special' && t.text === '@' && domain === null) {
      domain = '';
      continue;
    }
    const text = t.kind === 'word' && t.quoted && domain === null ? quoteLocal(t.text) : t.text;
    if (domain === null) local += text;
    else domain += text;
  }
  if (local === '' && !domain) return { mailbox: null, host: null };
  return { mailbox: local, host: domain || MISSING_HOST };
}

/** A quoted local part keeps its quotes where it needs them (RFC 5322 §3.4.1). */
function quoteLocal(s: string): string {
  return /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\uffff]+$/.test(s) ? s : `"${s.replace(/[\\"]/g, '\\$&')}"`;
}

function phrase(tokens: readonly Token[]): string | null {
  const words = tokens.filter((t) => t.kind !== 'comment').map((t) => t.text);
  const s = words.join(' ').replace(/ \. /g, '.').trim();
  return s === '' ? null : s;
}

/** One mailbox (name-addr or addr-spec) from its tokens; null when there is no address in it. */
function mailbox(tokens: readonly Token[]): ImapAddress | null {
  const open = tokens.findIndex((t) => t.kind === 'special' && t.text === '<');
  if (open >= 0) {
    let close = tokens.findIndex((t, i) => i > open && t.kind === 'special' && t.text === '>');
    if (close < 0) close = tokens.length;
    let inner = tokens.slice(open + 1, close);
    // obs-route: "@a,@b:" before the address.
    let adl: string | null = null;
    const colon = inner.findIndex((t) => t.kind === 'special' && t.text === ':');
    if (colon >= 0 && inner[0]?.kind === 'special' && inner[0].text === '@') {
      adl = inner
        .slice(0, colon)
        .map((t) => t.text)
        .join('');
      inner = inner.slice(colon + 1);
    }
    const { mailbox: mb, host } = addrSpec(inner);
    if (mb === null) return null;
    return { name: phrase(tokens.slice(0, open)), adl, mailbox: mb, host };
  }
  const { mailbox: mb, host } = addrSpec(tokens);
  if (mb === null) return null;
  // "user@host (Real Name)": the comment is the name, as UW imapd and Dovecot read it.
  const comment = tokens.findLast((t) => t.kind === 'comment' && t.text !== '');
  return { name: comment ? comment.text : null, adl: null, mailbox: mb, host };
}

/** An address-list header value as IMAP address structures, groups included (RFC 9051 §9 "address"). */
export function parseAddressList(value: string): ImapAddress[] {
  const tokens = tokenize(value);
  const out: ImapAddress[] = [];
  let current: Token[] = [];
  let inGroup = false;
  let inAngle = false;
  const flush = (): void => {
    const a = mailbox(current);
    if (a) out.push(a);
    current = [];
  };
  for (const t of tokens) {
    if (t.kind === 'special' && t.text === '<') inAngle = true;
    if (t.kind === 'special' && t.text === '>') inAngle = false;
    if (t.kind !== 'special' || inAngle) {
      current.push(t);
      continue;
    }
    if (t.text === ',') flush();
    else if (t.text === ':' && !inGroup) {
      out.push({ name: null, adl: null, mailbox: phrase(current) ?? '', host: null });
      current = [];
      inGroup = true;
    } else if (t.text === ';' && inGroup) {
      flush();
      out.push({ name: null, adl: null, mailbox: null, host: null });
      inGroup = false;
    } else current.push(t);
  }
  flush();
  if (inGroup) out.push({ name: null, adl: null, mailbox: null, host: null });
  return out;
}

function renderAddresses(value: string | null, opts: WireOptions): string {
  if (value === null) return 'NIL';
  const list = parseAddressList(value);
  if (list.length === 0) return 'NIL';
  const one = (a: ImapAddress): string =>
    `(${formatNstring(a.name, opts)} ${formatNstring(a.adl, opts)} ${formatNstring(a.mailbox, opts)} ${formatNstring(a.host, opts)})`;
  return `(${list.map(one).join('')})`;
}

/** An empty field is NIL too: clients treat "" and NIL alike, and Dovecot sends NIL. */
function nstr(s: string | null, opts: WireOptions): string {
  return s === null || s === '' ? 'NIL' : formatString(s, opts);
}

/** The ENVELOPE of a message whose header fields are `env`. */
export function renderEnvelope(env: EnvelopeFields, opts: WireOptions = { utf8: true }): string {
  const from = renderAddresses(env.from, opts);
  const or = (v: string | null): string => {
    const r = renderAddresses(v, opts);
    return r === 'NIL' ? from : r;
  };
  return `(${[
    nstr(env.date, opts),
    nstr(env.subject, opts),
    from,
    or(env.sender),
    or(env.replyTo),
    renderAddresses(env.to, opts),
    renderAddresses(env.cc, opts),
    renderAddresses(env.bcc, opts),
    nstr(env.inReplyTo, opts),
    nstr(env.messageId, opts),
  ].join(' ')})`;
}
