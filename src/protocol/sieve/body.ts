// The texts the body test compares against (RFC 5173 §5): :raw is the body after the header, undecoded;
// :content lists the MIME parts whose type matches one of the given types ("text" matches every
// text/*, "text/html" only that, "" every part), each decoded from its transfer encoding and, for text,
// its charset; :text is every text part decoded, HTML with its tags dropped and white space collapsed.
// PURE and total. The message bytes come from the caller, who may cut them to a size cap.
// XXX: the prologue/epilogue of a multipart matched by :content "multipart" (§5.2) is not compared.

import { htmlText } from '../mime/preview.ts';
import { scanMessage, type MimePart } from '../mime/structure.ts';
import { decodeTransfer } from '../mime/transfer.ts';
import type { BodyTransform } from './ast.ts';

const utf8 = new TextDecoder('utf-8');

function decodeCharset(charset: string, bytes: Uint8Array): string {
  try {
    const label = charset.toLowerCase();
    return new TextDecoder(label === '' || label === 'us-ascii' ? 'utf-8' : label).decode(bytes);
  } catch {
    return utf8.decode(bytes);
  }
}

/** Where the body begins: after the first empty line (CRLF or LF), or nowhere. */
function bodyOffset(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i + 1] === 0x0a) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return i + 3;
  }
  return bytes.length;
}

/** Leaf parts in order, looking inside multiparts and attached messages. */
function leaves(part: MimePart, out: MimePart[]): MimePart[] {
  if (part.parts.length > 0) for (const p of part.parts) leaves(p, out);
  else if (part.message) leaves(part.message, out);
  else out.push(part);
  return out;
}

function typeMatches(part: MimePart, types: readonly string[]): boolean {
  return types.some((t) => {
    const want = t.trim().toLowerCase();
    if (want === '') return true;
    return want.includes('/') ? want === `${part.type}/${part.subtype}` : want === part.type;
  });
}

function partText(bytes: Uint8Array, part: MimePart): string {
  const decoded = decodeTransfer(part.encoding, bytes.subarray(part.bodyStart, part.bodyEnd));
  if (part.type !== 'text') return utf8.decode(decoded);
  const text = decodeCharset(part.params.find((p) => p.name === 'charset')?.value ?? '', decoded);
  return part.subtype === 'html' ? htmlText(text).replace(/[ \t\r\n]+/g, ' ') : text;
}

/** The strings a body test with `transform` compares against. */
export function bodyTexts(message: Uint8Array, transform: BodyTransform): string[] {
  if (transform.kind === 'raw') return [utf8.decode(message.subarray(bodyOffset(message)))];
  const parts = leaves(scanMessage(message, () => '').root, []);
  if (transform.kind === 'content')
    return parts.filter((p) => typeMatches(p, transform.types)).map((p) => partText(message, p));
  return parts.filter((p) => p.type === 'text').map((p) => partText(message, p));
}
