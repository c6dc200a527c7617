// SMTP client side: command lines as the client writes them, CRLF-terminated: EHLO/HELO, MAIL with
// SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID (RFC 3461 §4.3-4.4);
// RCPT with NOTIFY/ORCPT (RFC 3461 §4.1-4.2, utf-8 addr-type of RFC 6533 §3); BDAT (RFC 3030 §2);
// AUTH PLAIN (RFC 4616) and LOGIN initial lines (RFC 4954); xtext encoding (RFC 3461 §4).
// Also the address preparation: domains become A-labels when SMTPUTF8 is not in use (RFC 5890).
// SECURITY: every value that reaches a command line is checked for CR, LF and other controls here, so
// nothing a sender chose can end a command early and smuggle another one in.
// Pure: no I/O. IDN conversion uses the WHATWG URL parser that every JS runtime has (no import).

import type { BodyType, DsnNotify, Orcpt } from '../../../core/envelope.ts';

/** True when s holds a character that may never appear inside a command line. */
export function hasControl(s: string): boolean {
  return /[\x00-\x1f\x7f]/.test(s);
}

const utf8 = new TextEncoder();

/**
 * xtext (RFC 3461 §4): "+" and "=" and anything outside "!".."~" become "+HH", one per octet of the
 * text's UTF-8 (upper-case hex); the server side (command.ts decodeXtext) reads the octets back as UTF-8.
 */
export function encodeXtext(s: string): string {
  let out = '';
  for (const b of utf8.encode(s)) {
    if (b >= 33 && b <= 126 && b !== 0x2b && b !== 0x3d) out += String.fromCharCode(b);
    else out += `+${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** utf-8-addr-xtext (RFC 6533 §3): ASCII only, anything else and "+", "=", "\\" as "\x{HEX}". */
export function encodeUtf8AddrXtext(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 33 && cp <= 126 && ch !== '+' && ch !== '=' && ch !== '\\') out += ch;
    else out += `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

const isAscii = (s: string): boolean => !/[^\x00-\x7f]/.test(s);

/** The domain as A-labels ("bücher.example" → "xn--bcher-kva.example"); literals as they are. */
export function toAsciiDomain(domain: string): string | null {
  if (domain.startsWith('[') || isAscii(domain)) return domain;
  // Only a host may reach the URL parser: nothing that would start a port, path, query or userinfo.
  if (/[\s/?#@:%\\[\]]/.test(domain)) return null;
  try {
    // A special scheme ("http") makes the parser apply IDNA (UTS #46); "smtp:" would not.
    const host = new URL(`http://${domain}/`).hostname;
    return host === '' || !/^[a-z0-9.-]+$/.test(host) ? null : host;
  } catch {
    return null;
  }
}

/**
 * The address as it goes on the wire. With SMTPUTF8 in use it is sent as it is; without, the domain
 * becomes A-labels and a non-ASCII local part cannot be sent at all (null).
 */
export function wireAddress(address: string, smtputf8: boolean): string | null {
  if (hasControl(address)) return null;
  if (address === '' || smtputf8) return address;
  const at = address.lastIndexOf('@');
  if (at < 0) return isAscii(address) ? address : null;
  const local = address.slice(0, at);
  if (!isAscii(local)) return null;
  const domain = toAsciiDomain(address.slice(at + 1));
  return domain === null ? null : `${local}@${domain}`;
}

/** Needs SMTPUTF8 whatever the domain: a non-ASCII local part (domains can become A-labels). */
export function needsUtf8LocalPart(address: string): boolean {
  const at = address.lastIndexOf('@');
  return !isAscii(at < 0 ? address : address.slice(0, at));
}

export function formatEhlo(helo: string): string {
  return `EHLO ${helo}\r\n`;
}

export function formatHelo(helo: string): string {
  return `HELO ${helo}\r\n`;
}

/** RFC 3461 §4.4: ENVID is at most 100 characters; a longer one is dropped rather than refused. */
const MAX_ENVID_CHARS = 100;
/** RFC 3461 §4.2: the ORCPT value is at most 500 characters. */
const MAX_ORCPT_CHARS = 500;

export interface MailOptions {
  /** Wire form of the reverse-path ("" for the null sender). */
  readonly sender: string;
  /** SIZE= value, or null to leave it out (server has no SIZE). */
  readonly sizeBytes: number | null;
  /** BODY= value, or null to leave it out. */
  readonly body: BodyType | null;
  readonly smtputf8: boolean;
  /** RET and ENVID: given only when the server offers DSN. */
  readonly ret: 'FULL' | 'HDRS' | null;
  readonly envid: string | null;
  /** RFC 8689: pass REQUIRETLS on. */
  readonly requireTls?: boolean;
  /** RFC 6710: MT-PRIORITY=n, only to a server that offers it. */
  readonly priority?: number;
  /** RFC 2852: BY=<seconds left>;R|N[T], only to a server that offers DELIVERBY. */
  readonly by?: { readonly seconds: number; readonly mode: 'R' | 'N'; readonly trace: boolean };
}

export function formatMail(o: MailOptions): string {
  const params: string[] = [];
  if (o.sizeBytes !== null) params.push(`SIZE=${Math.max(0, Math.floor(o.sizeBytes))}`);
  if (o.body !== null) params.push(`BODY=${o.body}`);
  if (o.smtputf8) params.push('SMTPUTF8');
  if (o.ret !== null) params.push(`RET=${o.ret}`);
  if (o.envid !== null) {
    const envid = encodeXtext(o.envid);
    if (envid.length <= MAX_ENVID_CHARS) params.push(`ENVID=${envid}`);
  }
  if (o.requireTls === true) params.push('REQUIRETLS');
  if (o.priority !== undefined && o.priority !== 0) params.push(`MT-PRIORITY=${o.priority}`);
  if (o.by !== undefined) params.push(`BY=${o.by.seconds};${o.by.mode}${o.by.trace ? 'T' : ''}`);
  return `MAIL FROM:<${o.sender}>${params.map((p) => ` ${p}`).join('')}\r\n`;
}

export interface RcptOptions {
  /** Wire form of the forward-path. */
  readonly recipient: string;
  /** NOTIFY and ORCPT: given only when the server offers DSN. */
  readonly notify: readonly DsnNotify[] | null;
  readonly orcpt: Orcpt | null;
}

/** ORCPT value, or null when it cannot be said within the limits. */
export function formatOrcpt(orcpt: Orcpt): string | null {
  const type = orcpt.addrType.toLowerCase();
  if (!/^[a-z0-9][a-z0-9-]*$/.test(type)) return null;
  let value: string;
  if (type === 'rfc822' && isAscii(orcpt.address)) value = `rfc822;${encodeXtext(orcpt.address)}`;
  // utf-8 (RFC 6533): the xtext form is plain ASCII and valid whether or not SMTPUTF8 is in use.
  else if (type === 'rfc822' || type === 'utf-8') value = `utf-8;${encodeUtf8AddrXtext(orcpt.address)}`;
  else if (isAscii(orcpt.address)) value = `${type};${encodeXtext(orcpt.address)}`;
  else return null;
  return value.length <= MAX_ORCPT_CHARS ? value : null;
}

export function formatRcpt(o: RcptOptions): string {
  const params: string[] = [];
  if (o.notify !== null) params.push(`NOTIFY=${o.notify.length === 0 ? 'NEVER' : o.notify.join(',')}`);
  if (o.orcpt !== null) {
    const orcpt = formatOrcpt(o.orcpt);
    if (orcpt !== null) params.push(`ORCPT=${orcpt}`);
  }
  return `RCPT TO:<${o.recipient}>${params.map((p) => ` ${p}`).join('')}\r\n`;
}

export function formatBdat(sizeBytes: number, last: boolean): string {
  return `BDAT ${sizeBytes}${last ? ' LAST' : ''}\r\n`;
}

const base64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** AUTH PLAIN with the initial response (RFC 4616 §2: no authorization identity, NUL-separated). */
export function formatAuthPlain(username: string, password: string): string {
  return `AUTH PLAIN ${base64(`\u0000${username}\u0000${password}`)}\r\n`;
}

/** The client's answer to one LOGIN challenge: the base64 line (the challenge text is not trusted). */
export function formatSaslResponse(value: string): string {
  return `${base64(value)}\r\n`;
}
