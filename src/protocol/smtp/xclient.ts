// XCLIENT (Postfix's extension, XCLIENT_README): a trusted proxy or test client tells the server whom it
// speaks for — the client's address, port, name, HELO, protocol, login, and the address it connected to —
// and the session starts over as if that client had connected (a new 220 greeting; EHLO again).
// PURE: the command's attributes decoded (xtext, "[UNAVAILABLE]"/"[TEMPUNAVAIL]" as unknown). Deliberately
// NOT here: who may send it (the driver, from [smtp] xclient_from), checking that ADDR is an IP address
// (the driver's IP module), what the values change (the driver).

import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../dns/address.ts';
import { decodeXtext } from './command.ts';

/** The attributes Tern takes, as EHLO advertises them. */
export const XCLIENT_ATTRIBUTES = [
  'NAME',
  'ADDR',
  'PORT',
  'PROTO',
  'HELO',
  'LOGIN',
  'DESTADDR',
  'DESTPORT',
] as const;

export type XclientAttribute = (typeof XCLIENT_ATTRIBUTES)[number];

/** Each attribute given: its value, or null for "[UNAVAILABLE]" / "[TEMPUNAVAIL]" (not known). */
export type XclientAttributes = ReadonlyMap<XclientAttribute, string | null>;

export type ParsedXclient = { ok: true; attributes: XclientAttributes } | { ok: false; error: string };

const KNOWN: ReadonlySet<string> = new Set(XCLIENT_ATTRIBUTES);

/** "NAME=spike.porcupine.org ADDR=168.100.189.2 …" (xtext values, names case-insensitive). */
export function parseXclient(arg: string): ParsedXclient {
  const tokens = arg.split(' ').filter((t) => t !== '');
  if (tokens.length === 0) return { ok: false, error: 'XCLIENT needs at least one attribute' };
  const out = new Map<XclientAttribute, string | null>();
  for (const token of tokens) {
    const eq = token.indexOf('=');
    if (eq <= 0) return { ok: false, error: `bad XCLIENT attribute ${JSON.stringify(token)}` };
    const name = token.slice(0, eq).toUpperCase();
    if (!KNOWN.has(name)) return { ok: false, error: `unknown XCLIENT attribute ${name}` };
    const raw = token.slice(eq + 1);
    if (raw.toUpperCase() === '[UNAVAILABLE]' || raw.toUpperCase() === '[TEMPUNAVAIL]') {
      out.set(name as XclientAttribute, null);
      continue;
    }
    const value = decodeXtext(raw);
    if (value === null || value === '' || /[\x00-\x1f\x7f]/.test(value))
      return { ok: false, error: `bad XCLIENT ${name} value` };
    out.set(name as XclientAttribute, value);
  }
  const port = out.get('PORT');
  const destPort = out.get('DESTPORT');
  for (const p of [port, destPort]) {
    if (p !== undefined && p !== null && !(/^\d{1,5}$/.test(p) && Number(p) <= 65_535))
      return { ok: false, error: 'bad XCLIENT port' };
  }
  const proto = out.get('PROTO');
  if (proto !== undefined && proto !== null && !/^E?SMTP$/i.test(proto))
    return { ok: false, error: 'XCLIENT PROTO is SMTP or ESMTP' };
  return { ok: true, attributes: out };
}

/**
 * ADDR or DESTADDR as Postfix writes it (IPv6 with an "IPV6:" prefix) in the spelling the connection
 * shell uses (dotted IPv4, IPv4-mapped as IPv4, RFC 5952 IPv6); null when it is not an address.
 */
export function parseXclientAddress(value: string): string | null {
  const text = /^ipv6:/i.test(value) ? value.slice(5) : value;
  const v4 = parseIPv4(text);
  if (v4 !== null) return formatIPv4(v4);
  const v6 = parseIPv6(text);
  if (v6 === null) return null;
  const formatted = formatIPv6(v6);
  return formatted.startsWith('::ffff:') && formatted.includes('.') ? formatted.slice(7) : formatted;
}
