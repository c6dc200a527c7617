// Mailbox and path syntax of RFC 5321 §4.1.2, with the UTF-8 extension of RFC 6531 §3.3.
// Pure and total: parse functions return a result, never throw. Source routes (A-d-l) are accepted and
// dropped as §4.1.1.3 / Appendix C require. Deliberately NOT here: relay decisions (percent hack, bang
// paths): those are policy, which looks at the parsed parts.

export interface Mailbox {
  /** Local part as it appears on the wire, quotes removed and quoted-pairs unescaped. */
  readonly local: string;
  /** True when the local part was a Quoted-string: policy treats it with suspicion. */
  readonly quoted: boolean;
  /** Domain as received (an A-label, U-label or address literal like "[192.0.2.1]"). */
  readonly domain: string;
  /** True when the address needs SMTPUTF8 (non-ASCII octets anywhere). */
  readonly utf8: boolean;
}

export type AddressResult =
  | { ok: true; mailbox: Mailbox | null; hadSourceRoute: boolean; rest: string }
  | { ok: false; error: 'syntax' | 'utf8' };

// RFC 5321 §4.5.3.1 limits are in octets; with SMTPUTF8 a character can take up to four.
const octets = (s: string): number => new TextEncoder().encode(s).length;

const ATEXT_ASCII = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]$/;
const LDH_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function isAtext(ch: string, utf8: boolean): boolean {
  if (ATEXT_ASCII.test(ch)) return true;
  // RFC 6531 §3.3: UTF8-non-ascii is allowed in atext when SMTPUTF8 is used.
  return utf8 && ch.codePointAt(0)! > 0x7f;
}

/** Domain per RFC 5321 §4.1.2 (sub-domains of letters, digits, hyphens), U-labels allowed with SMTPUTF8. */
export function isValidDomain(domain: string, utf8: boolean): boolean {
  if (domain.length === 0 || domain.length > 255) return false;
  const labels = domain.split('.');
  for (const label of labels) {
    if (LDH_LABEL.test(label)) continue;
    if (!utf8) return false;
    // U-label: reject ASCII specials and control characters; leave IDNA details to the DNS side.
    if (label.length === 0 || label.length > 63) return false;
    for (const ch of label) {
      const cp = ch.codePointAt(0)!;
      if (cp < 0x80 ? !/[A-Za-z0-9-]/.test(ch) : cp < 0xa0) return false;
    }
    if (label.startsWith('-') || label.endsWith('-')) return false;
  }
  return true;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
function isValidIpv6(s: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return false;
  if (/\..*:/.test(s)) return false; // an IPv4 part is only allowed as the last 32 bits
  const parts = s.split('::');
  if (parts.length > 2) return false;
  const count = (p: string): number | null => {
    if (p === '') return 0;
    let n = 0;
    const groups = p.split(':');
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (i === groups.length - 1 && g.includes('.')) {
        if (!IPV4.test(g)) return null;
        n += 2;
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) n += 1;
      else return null;
    }
    return n;
  };
  const a = count(parts[0]!);
  const b = parts.length === 2 ? count(parts[1]!) : 0;
  if (a === null || b === null) return false;
  return parts.length === 2 ? a + b <= 7 : a === 8;
}

/** Address literal per RFC 5321 §4.1.3: "[1.2.3.4]" or "[IPv6:...]". General literals are refused. */
export function isValidAddressLiteral(lit: string): boolean {
  if (!lit.startsWith('[') || !lit.endsWith(']')) return false;
  const inner = lit.slice(1, -1);
  if (IPV4.test(inner)) return true;
  if (/^IPv6:/i.test(inner)) return isValidIpv6(inner.slice(5));
  return false;
}

function parseLocalPart(s: string, utf8: boolean): { local: string; quoted: boolean; end: number } | null {
  if (s.startsWith('"')) {
    let out = '';
    for (let i = 1; i < s.length; i++) {
      const ch = s[i]!;
      if (ch === '\\') {
        const next = s[i + 1];
        if (next === undefined) return null;
        const cp = next.codePointAt(0)!;
        if (cp < 0x20 || cp === 0x7f || (cp > 0x7f && !utf8)) return null;
        out += next;
        i++;
      } else if (ch === '"') {
        if (out.length === 0) return null;
        return { local: out, quoted: true, end: i + 1 };
      } else {
        const cp = ch.codePointAt(0)!;
        // qtextSMTP: %d32-33 / %d35-91 / %d93-126 (plus UTF-8 with SMTPUTF8)
        if (cp < 0x20 || cp === 0x7f || (cp > 0x7f && !utf8)) return null;
        out += ch;
      }
    }
    return null;
  }
  // Dot-string: Atom *("." Atom)
  let i = 0;
  let atomLen = 0;
  for (; i < s.length;) {
    const cp = s.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    if (ch === '.') {
      if (atomLen === 0) return null;
      atomLen = 0;
      i++;
      continue;
    }
    if (!isAtext(ch, utf8)) break;
    atomLen++;
    i += ch.length;
  }
  if (atomLen === 0) return null;
  return { local: s.slice(0, i), quoted: false, end: i };
}

/**
 * Parse `Mailbox` (no angle brackets), as found after "@"-split in a path or a config value.
 * utf8 = whether non-ASCII is allowed (SMTPUTF8 in effect).
 */
export function parseMailbox(s: string, utf8: boolean): Mailbox | null {
  const lp = parseLocalPart(s, utf8);
  if (!lp || s[lp.end] !== '@') return null;
  if (octets(s.slice(0, lp.end)) > 64) return null; // §4.5.3.1.1: octets as sent, quotes included
  const domain = s.slice(lp.end + 1);
  if (domain.startsWith('[')) {
    if (!isValidAddressLiteral(domain)) return null;
  } else if (!isValidDomain(domain, utf8)) return null;
  return {
    local: lp.local,
    quoted: lp.quoted,
    domain,
    utf8: /[^\x00-\x7f]/.test(s),
  };
}

/**
 * Parse a Reverse-path or Forward-path at the start of `s` ("<...>" then optional parameters).
 * allowNull: "<>" permitted (MAIL FROM only). Returns the remaining text (parameters).
 */
export function parsePath(s: string, opts: { allowNull: boolean; utf8: boolean }): AddressResult {
  if (!s.startsWith('<')) return { ok: false, error: 'syntax' };
  const close = findClosingBracket(s);
  if (close < 0) return { ok: false, error: 'syntax' };
  let inner = s.slice(1, close);
  const rest = s.slice(close + 1);
  if (rest !== '' && !rest.startsWith(' ')) return { ok: false, error: 'syntax' };
  if (inner === '') {
    return opts.allowNull
      ? { ok: true, mailbox: null, hadSourceRoute: false, rest: rest.trimStart() }
      : { ok: false, error: 'syntax' };
  }
  let hadSourceRoute = false;
  if (inner.startsWith('@')) {
    // A-d-l ":" — a source route. Validate loosely and drop (RFC 5321 §4.1.1.3).
    const colon = inner.indexOf(':');
    if (colon < 0) return { ok: false, error: 'syntax' };
    const adl = inner.slice(0, colon).split(',');
    for (const hop of adl) {
      if (!hop.startsWith('@') || !isValidDomain(hop.slice(1), opts.utf8))
        return { ok: false, error: 'syntax' };
    }
    hadSourceRoute = true;
    inner = inner.slice(colon + 1);
  }
  if (/[^\x00-\x7f]/.test(inner) && !opts.utf8) return { ok: false, error: 'utf8' };
  const mailbox = parseMailbox(inner, opts.utf8);
  if (!mailbox) return { ok: false, error: 'syntax' };
  if (octets(inner) > 254) return { ok: false, error: 'syntax' }; // §4.5.3.1.3 path 256 incl. brackets
  return { ok: true, mailbox, hadSourceRoute, rest: rest.trimStart() };
}

function findClosingBracket(s: string): number {
  let inQuote = false;
  for (let i = 1; i < s.length; i++) {
    const ch = s[i];
    if (inQuote) {
      if (ch === '\\') i++;
      else if (ch === '"') inQuote = false;
    } else if (ch === '"') inQuote = true;
    else if (ch === '>') return i;
    else if (ch === '<') return -1;
  }
  return -1;
}

/** Canonical text of a mailbox: the local part re-quoted when it needs quotes (RFC 5321 §4.1.2). */
export function formatMailbox(m: Pick<Mailbox, 'local' | 'domain'>): string {
  const dotAtom = /^[^\s"(),.:;<>@[\\\]]+(\.[^\s"(),.:;<>@[\\\]]+)*$/u;
  const local = dotAtom.test(m.local) ? m.local : `"${m.local.replace(/(["\\])/g, '\\$1')}"`;
  return `${local}@${m.domain}`;
}

/** Lower-cased domain for lookups (domains are case-insensitive, RFC 5321 §2.4). */
export function normalizeDomain(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, '');
}

/** Lookup key of an address: local part kept as is except ASCII case folded, domain lower-cased. */
export function addressKey(m: Pick<Mailbox, 'local' | 'domain'>): string {
  return `${m.local.toLowerCase()}@${normalizeDomain(m.domain)}`;
}
