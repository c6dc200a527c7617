// IMAP string forms (RFC 9051 §4.3, §9 formal syntax): NIL, quoted strings and literals, chosen per value.
// A value with CR, LF, NUL or (for a client without UTF8=ACCEPT) 8-bit octets goes as a literal.
// XXX: a local copy until src/protocol/imap/ has its formatter; the lead unifies them at merge time.

export interface ImapStringOptions {
  /** The client enabled UTF8=ACCEPT (RFC 6855) or speaks IMAP4rev2: UTF-8 may go in quoted strings. */
  readonly utf8: boolean;
}

const encoder = new TextEncoder();

/** `s` as an IMAP string: quoted where it may be, else a synchronizing literal. */
export function imapString(s: string, opts: ImapStringOptions = { utf8: true }): string {
  // RFC 9051 quoted: no CR/LF/NUL; 8-bit only as UTF-8 for rev2 / UTF8=ACCEPT clients.
  const ascii = /^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(s);
  const quotable = opts.utf8 ? !/[\r\n\0]/.test(s) : ascii;
  if (quotable && s.length <= 4096) return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return `{${encoder.encode(s).length}}\r\n${s}`;
}

/** nstring: NIL for null. */
export function imapNString(s: string | null, opts?: ImapStringOptions): string {
  return s === null ? 'NIL' : imapString(s, opts);
}
