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

/** An HTML part's visible text: tags, comments, scripts and styles gone, entities decoded. */
export function htmlText(html: string): string {
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
  return firstChars(text);
}

/** Controls are not text: runs of them and of white space become one space. */
function collapse(text: string): string {
  return text.replace(/[\x00-\x1f\x7f\s]+/g, ' ');
}

/** Where the first PREVIEW_CHARS characters are sought before the whole text is. */
const HEAD_UNITS = 4096;

/**
 * The first PREVIEW_CHARS characters of the collapsed text, trimmed; a U+FFFD run at the very end (a
 * multi-octet sequence cut off with the octets read) is dropped. Looks at the text's start first: a
 * 16 KiB body collapsed and split into characters whole cost ~0.1 ms a message for 200 characters.
 */
export function firstChars(text: string): string {
  if (text.length > HEAD_UNITS) {
    const head = collapse(text.slice(0, HEAD_UNITS)).trimStart();
    // 1,024 UTF-16 units hold at least 200 characters with room to spare; the rest of the text can
    // change only the end (a trailing space or U+FFFD run), unless a U+FFFD run reaches back this far.
    if (head.length > 1024 && !head.slice(0, 1024).includes('\uFFFD')) return takeChars(head);
  }
  return takeChars(
    collapse(text)
      .replace(/\uFFFD+$/, '')
      .trim(),
  );
}

function takeChars(text: string): string {
  let out = '';
  let n = 0;
  for (const ch of text) {
    if (n++ === PREVIEW_CHARS) break;
    out += ch;
  }
  return out.trimEnd();
}
