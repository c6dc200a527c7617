// Content-Transfer-Encoding decoding (RFC 2045 §6): base64 (§6.8), quoted-printable (§6.7) and the
// identity encodings 7bit, 8bit and binary (§6.2), for IMAP BINARY[] / BINARY.SIZE (RFC 3516, RFC 9051
// §6.4.5) and the PREVIEW text. Quoted-printable is decoded as §6.7 asks of a robust decoder, the way
// Dovecot's imaptest expects: trailing white space of a line is transport padding and dropped, "="
// followed by white space and the line end is a soft line break, "=" not followed by two hex digits
// is kept as it is, lower-case hex digits are accepted. Line breaks are kept as written (CRLF or LF).
// PURE and total: any octets decode to something. Deliberately not here: charsets (the caller's),
// streaming a part larger than memory (XXX: BINARY[] of a huge encoded attachment is decoded whole).

import { assertNever } from '../../core/assert-never.ts';

export type TransferCoding = 'identity' | 'base64' | 'quoted-printable';

/** How `encoding` (a Content-Transfer-Encoding value, any case) decodes; null when it is unknown. */
export function transferCoding(encoding: string): TransferCoding | null {
  switch (encoding.trim().toLowerCase()) {
    case '7bit':
    case '8bit':
    case 'binary':
    case '':
      return 'identity';
    case 'base64':
      return 'base64';
    case 'quoted-printable':
      return 'quoted-printable';
    default:
      return null;
  }
}

/** base64 body octets; what is not base64 (line breaks, padding white space, junk) is skipped. */
export function decodeBase64(body: Uint8Array): Uint8Array {
  // Buffer's decoder skips what is not in the alphabet and decodes an unpadded or cut-off tail as far
  // as it goes, which is what RFC 2045 §6.8 asks ("any characters outside the base64 alphabet are to
  // be ignored"). latin1 maps each octet to one character, so no octet is lost before the decoder.
  const decoded = Buffer.from(
    Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1'),
    'base64',
  );
  return new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength);
}

const EQ = 0x3d;
const CR = 0x0d;
const LF = 0x0a;

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

/** quoted-printable body octets (RFC 2045 §6.7). */
export function decodeQuotedPrintable(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length);
  let n = 0;
  let pos = 0;
  while (pos < body.length) {
    const nl = body.indexOf(LF, pos);
    const lineEnd = nl < 0 ? body.length : nl;
    let contentEnd = lineEnd > pos && body[lineEnd - 1] === CR && nl >= 0 ? lineEnd - 1 : lineEnd;
    const breakStart = contentEnd;
    // Rule 3: white space at the end of a line was added in transport (or is padding after a soft "=").
    while (contentEnd > pos && (body[contentEnd - 1] === 0x20 || body[contentEnd - 1] === 0x09)) contentEnd--;
    const soft = contentEnd > pos && body[contentEnd - 1] === EQ;
    if (soft) contentEnd--;
    for (let i = pos; i < contentEnd; i++) {
      const b = body[i]!;
      if (b === EQ) {
        const hi = hexValue(body[i + 1]);
        const lo = i + 2 < contentEnd ? hexValue(body[i + 2]) : -1;
        if (hi >= 0 && lo >= 0 && i + 1 < contentEnd) {
          out[n++] = hi * 16 + lo;
          i += 2;
          continue;
        }
      }
      out[n++] = b;
    }
    if (nl < 0) break;
    if (!soft) for (let i = breakStart; i <= nl; i++) out[n++] = body[i]!;
    pos = nl + 1;
  }
  return out.subarray(0, n);
}

/** Body octets decoded from `encoding`; null when the encoding is unknown (IMAP's UNKNOWN-CTE). */
export function decodeTransferStrict(encoding: string, body: Uint8Array): Uint8Array | null {
  const coding = transferCoding(encoding);
  if (coding === null) return null;
  switch (coding) {
    case 'identity':
      return body;
    case 'base64':
      return decodeBase64(body);
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    default:
      return assertNever(coding);
  }
}

/** Body octets decoded from base64 or quoted-printable; those of any other encoding as they are. */
export function decodeTransfer(encoding: string, body: Uint8Array): Uint8Array {
  return decodeTransferStrict(encoding, body) ?? body;
}
