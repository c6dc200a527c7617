// The SASL line codec the line protocols share (SMTP RFC 4954 §4, POP3 RFC 5034 §4, IMAP SASL-IR RFC 4959):
// client lines are base64, "*" cancels, "=" is an empty initial response. The challenge prefix ("334 ",
// "+ ") is the protocol's framing, not here.
// Base64 is checked strictly (RFC 4648 §3.3, §3.5): alphabet, padding and the unused bits must all be
// canonical, so one set of bytes has exactly one accepted spelling. Pure and total: never throws.
// Deliberately NOT here: line framing and CRLF handling (the session), what the bytes mean (mechanisms).

/** RFC 4954 §4: servers must accept AUTH lines (command or response) of at least 12288 octets (POP3 too, RFC 5034 §4). */
export const MAX_SASL_LINE_OCTETS = 12288;

export type SaslLine =
  | { readonly kind: 'data'; readonly data: Uint8Array }
  | { readonly kind: 'cancel' }
  /** Not base64, or "*"/"=" where they have no meaning. */
  | { readonly kind: 'malformed' }
  /** Longer than MAX_SASL_LINE_OCTETS. */
  | { readonly kind: 'too-long' };

/** Where the line came from: the argument of the AUTH command, or a line answering a challenge. */
export type SaslLinePosition = 'initial' | 'response';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Canonical base64 only; null for anything else (whitespace, URL alphabet, missing padding, stray bits). */
export function decodeBase64Strict(text: string): Uint8Array | null {
  if (!BASE64.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  // Non-zero unused bits in the last group decode silently to the same bytes: refuse them.
  if (bytes.toString('base64') !== text) return null;
  // A copy, not a view: small Buffers live in a shared pool that a view would keep alive and expose.
  return new Uint8Array(bytes);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Decode one line of an AUTH exchange (without its CRLF).
 * - response: "" is an empty response, "*" cancels (RFC 4954 §4, RFC 5034 §4);
 * - initial: "=" is an empty initial response; "*" and "" mean nothing there.
 */
export function decodeSaslLine(line: string, position: SaslLinePosition = 'response'): SaslLine {
  if (line.length > MAX_SASL_LINE_OCTETS) return { kind: 'too-long' };
  if (position === 'response') {
    if (line === '*') return { kind: 'cancel' };
    if (line === '') return { kind: 'data', data: new Uint8Array(0) };
  } else {
    if (line === '=') return { kind: 'data', data: new Uint8Array(0) };
    if (line === '') return { kind: 'malformed' };
  }
  const data = decodeBase64Strict(line);
  return data === null ? { kind: 'malformed' } : { kind: 'data', data };
}
