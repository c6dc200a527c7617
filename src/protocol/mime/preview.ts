// PREVIEW (RFC 8970): up to 200 characters of a message's first text part, decoded from its transfer
// encoding (RFC 2045 §6.7-6.8) and charset into UTF-8, HTML tags and entities dropped, white space
// collapsed. Computed when the message is stored (MimeScanner's previewOf) from the part's first octets.
// PURE and total. Deliberately not here: choosing the part (structure.ts: the first text/plain that is
// not an attachment, else the first text/html), transfer decoding (transfer.ts).

import type { MimePart } from './structure.ts';
import { decodeTransfer } from './transfer.ts';

export const PREVIEW_CHARS = 200;

function decodeCharset(charset: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder(charset || 'utf-8').decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

function htmlText(html: string): string {
  return html
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<[^>]*>?/g, ' ')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, e: string) => {
      if (e[0] === '#') {
        const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ' ';
      }
      return ENTITIES[e.toLowerCase()] ?? whole;
    });
}

/** The preview of a text part from its body's first octets. */
export function previewText(part: MimePart, body: Uint8Array): string {
  const charset = part.params.find((p) => p.name === 'charset')?.value ?? 'us-ascii';
  let text = decodeCharset(
    charset.toLowerCase() === 'us-ascii' ? 'utf-8' : charset,
    decodeTransfer(part.encoding, body),
  );
  if (part.subtype === 'html') text = htmlText(text);
  // Controls are not text, and U+FFFD from a cut-off multi-octet sequence at the end is dropped.
  const collapsed = text
    .replace(/[\x00-\x1f\x7f\s]+/g, ' ')
    .replace(/\uFFFD+$/, '')
    .trim();
  return Array.from(collapsed).slice(0, PREVIEW_CHARS).join('').trimEnd();
}
