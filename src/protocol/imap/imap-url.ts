// IMAP URLs (RFC 5092) that name one message or one section of it, as CATENATE (RFC 4469 §3: relative
// "/mailbox;uidvalidity=n/;uid=n/;section=s/;partial=o.l") and URLAUTH (RFC 4467 §3: absolute
// "imap://user@host/mailbox/;uid=n;expire=t;urlauth=access:mech:token") use them, and the pieces URLAUTH
// signs: the rump (the URL up to and including ";urlauth=<access>", RFC 4467 §2) and the verifier.
// Choices: the scheme and the keywords (";UID=", ";SECTION=", ...) are case-insensitive, mailbox and
// section are %-decoded UTF-8 (RFC 5092 §3.5 and §6); a URL's user without "@" takes the URL's host as
// its domain, since Tern's login names are addresses ("imap://jürgen@example.org/..." names the user
// jürgen@example.org, as imaptest writes its URLs; "imap://j%40example.org@mail.example.org/" works too).
// PURE and total: text in, a value or null out; no clock (the caller compares EXPIRE with its time).
// Deliberately NOT here: message lists and searches ("?"), ";AUTH=" (only parsed away), ports, the
// HMAC (server/imap/urlauth.ts), whether the host is this server.

export interface ImapUrl {
  /** Absolute URLs only: the owner's login name, %-decoded; null for a relative URL. */
  readonly user: string | null;
  readonly host: string | null;
  /** The mailbox name, %-decoded (UTF-8, not modified UTF-7). */
  readonly mailbox: string;
  readonly uidValidity: number | null;
  readonly uid: number;
  /** The section text ("1.2", "HEADER", "HEADER.FIELDS (From)"), %-decoded; null for the whole message. */
  readonly section: string | null;
  readonly partial: { readonly offset: number; readonly length: number | null } | null;
  /** ";EXPIRE=" (RFC 4467 §3) in epoch ms, or null. */
  readonly expireMs: number | null;
  /** ";URLAUTH=" access identifier ("user+jürgen@example.org", "authuser", ...), null without one. */
  readonly access: UrlAccess | null;
  /** The URL up to and including the access identifier: what the token signs. */
  readonly rump: string | null;
  /** ":mechanism:token" after the rump, the mechanism upper-cased and the token as written. */
  readonly verifier: { readonly mechanism: string; readonly token: string } | null;
}

export type UrlAccess =
  { readonly kind: 'user' | 'submit'; readonly user: string } | { readonly kind: 'authuser' | 'anonymous' };

const NZ = '([1-9][0-9]{0,9})';
const PATH = new RegExp(
  `^/([^;?]*?)(?:;UIDVALIDITY=${NZ})?/;UID=${NZ}` +
    `(?:/;SECTION=([^;]*?))?` +
    `(?:/;PARTIAL=([0-9]{1,10})(?:\\.${NZ})?)?` +
    `(?:;EXPIRE=([^;]+))?` +
    `(?:;URLAUTH=([^:;]+)(?::([A-Za-z0-9_-]+):([0-9A-Fa-f]{32,}))?)?$`,
  'i',
);

/** %XX-decoded UTF-8, or null when the escapes are broken or the bytes are not UTF-8. */
export function percentDecode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** UTF-8 %-encoded where RFC 5092's bchar does not allow the character as it is. */
export function percentEncode(s: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(s)) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~!$'()*+,&=:@/]/.test(ch)
      ? ch
      : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function parseAccess(s: string): UrlAccess | null {
  const lower = s.toLowerCase();
  if (lower === 'authuser' || lower === 'anonymous') return { kind: lower };
  const m = /^(user|submit)\+(.+)$/i.exec(s);
  if (!m) return null;
  const user = percentDecode(m[2]!);
  if (user === null) return null;
  return { kind: m[1]!.toLowerCase() === 'user' ? 'user' : 'submit', user };
}

/** RFC 3339 date-time ("2026-12-07T01:02:03Z", "...+01:00") in epoch ms, or null. */
function parseExpire(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.exec(s);
  if (!m) return null;
  const ms = Date.parse(s.toUpperCase());
  return Number.isNaN(ms) ? null : ms;
}

/** An IMAP URL naming a message or a section; null when it is not one this server reads. */
export function parseImapUrl(text: string): ImapUrl | null {
  let user: string | null = null;
  let host: string | null = null;
  let path = text;
  if (/^imap:\/\//i.test(text)) {
    const rest = text.slice('imap://'.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return null;
    const authority = rest.slice(0, slash);
    path = rest.slice(slash);
    const at = authority.lastIndexOf('@');
    if (at < 0) return null;
    const userinfo = authority.slice(0, at).replace(/;AUTH=.*$/i, '');
    host = authority.slice(at + 1).replace(/:[0-9]*$/, '');
    user = percentDecode(userinfo);
    if (user === null || user === '' || host === '') return null;
  } else if (!text.startsWith('/')) return null;
  const m = PATH.exec(path);
  if (!m) return null;
  const mailbox = percentDecode(m[1]!);
  if (mailbox === null || mailbox === '') return null;
  const section = m[4] === undefined ? null : percentDecode(m[4]);
  if (section === null && m[4] !== undefined) return null;
  const expireMs = m[7] === undefined ? null : parseExpire(m[7]);
  if (m[7] !== undefined && expireMs === null) return null;
  const access = m[8] === undefined ? null : parseAccess(m[8]);
  if (m[8] !== undefined && access === null) return null;
  // URLAUTH belongs to absolute URLs only (RFC 4467 §3).
  if (access !== null && user === null) return null;
  const verifier = m[9] === undefined ? null : { mechanism: m[9].toUpperCase(), token: m[10]! };
  const rump =
    access === null
      ? null
      : verifier === null
        ? text
        : text.slice(0, text.length - m[9]!.length - m[10]!.length - 2);
  return {
    user,
    host,
    mailbox,
    uidValidity: m[2] === undefined ? null : Number(m[2]),
    uid: Number(m[3]),
    section: section === '' ? null : section,
    partial:
      m[5] === undefined ? null : { offset: Number(m[5]), length: m[6] === undefined ? null : Number(m[6]) },
    expireMs,
    access,
    rump,
    verifier,
  };
}

/** The login name an absolute URL's user names: itself when it is an address, else user@host. */
export function urlOwner(url: Pick<ImapUrl, 'user' | 'host'>): string | null {
  if (url.user === null) return null;
  if (url.user.includes('@') || url.host === null) return url.user;
  return `${url.user}@${url.host}`;
}

/** Whether an access identifier's user names `login` (the same rule as urlOwner, with the URL's host). */
export function accessNames(accessUser: string, login: string, host: string | null): boolean {
  const full = accessUser.includes('@') || host === null ? accessUser : `${accessUser}@${host}`;
  return full.normalize('NFC').toLowerCase() === login.normalize('NFC').toLowerCase();
}
