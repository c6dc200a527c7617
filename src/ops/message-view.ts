// A message taken apart for a person to read (the admin page's message viewer): its header fields
// decoded (RFC 2047 encoded-words, RFC 6532 UTF-8), the Authentication-Results fields, the text and HTML
// bodies decoded from their transfer encoding and charset, and the attachments. Built on the MIME scanner
// IMAP uses (protocol/mime), so the viewer and IMAP's BODYSTRUCTURE agree on what the parts are.
// Deliberately NOT here: making HTML safe to show. The admin page never puts message HTML in its own
// document: it is served alone, with a CSP `sandbox` and no script, image or other remote load allowed,
// into an iframe with an empty sandbox attribute (src/admin/routes/messages.ts).

import { decodeEncodedWords, parseHeaderBlock } from '../protocol/headers.ts';
import type { MimePart } from '../protocol/mime/structure.ts';
import { scanMessage } from '../protocol/mime/structure.ts';
import { decodeTransfer } from '../protocol/mime/transfer.ts';

/** Messages larger than this are shown as headers and raw source only (a viewer holds it in memory). */
export const MAX_VIEW_BYTES = 32 * 1024 * 1024;
/** Text bodies longer than this are cut in the view (the raw source has them whole). */
const MAX_TEXT_CHARS = 2 * 1024 * 1024;

export interface MessageAttachment {
  /** The part's number as IMAP writes it ("2", "1.3"). */
  readonly part: string;
  readonly filename: string | null;
  readonly contentType: string;
  /** Decoded size in octets. */
  readonly size: number;
}

export interface MessageView {
  readonly size: number;
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  readonly subject: string;
  readonly from: string;
  readonly to: string;
  readonly date: string;
  readonly messageId: string;
  readonly authenticationResults: readonly string[];
  /** The first text/plain body outside attachments, decoded; null when there is none. */
  readonly text: string | null;
  /** Part number of the first text/html body; null when there is none. */
  readonly htmlPart: string | null;
  readonly attachments: readonly MessageAttachment[];
  /** True when the message was too large to take apart (headers only). */
  readonly tooLarge: boolean;
}

function decodeCharset(charset: string, bytes: Uint8Array): string {
  const label = charset.toLowerCase() === 'us-ascii' || charset === '' ? 'utf-8' : charset;
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

function param(part: MimePart, name: string): string | null {
  return part.params.find((p) => p.name === name)?.value ?? null;
}

function filenameOf(part: MimePart): string | null {
  const fromDisposition = part.disposition?.params.find((p) => p.name === 'filename')?.value;
  const name = fromDisposition ?? param(part, 'name');
  return name === undefined || name === null ? null : decodeEncodedWords(name);
}

interface Leaf {
  readonly path: string;
  readonly part: MimePart;
}

/** Every leaf part with its IMAP part number; a message/rfc822 inside counts as one attachment. */
function leaves(root: MimePart): Leaf[] {
  const out: Leaf[] = [];
  const walk = (p: MimePart, path: string): void => {
    if (p.type === 'multipart' && p.parts.length > 0) {
      p.parts.forEach((child, i) => walk(child, path === '' ? String(i + 1) : `${path}.${i + 1}`));
      return;
    }
    out.push({ path: path === '' ? '1' : path, part: p });
  };
  walk(root, '');
  return out;
}

function isAttachment(p: MimePart): boolean {
  if (p.disposition?.type === 'attachment') return true;
  return p.type !== 'text' || filenameOf(p) !== null;
}

function decodedBody(bytes: Uint8Array, p: MimePart): Uint8Array {
  return decodeTransfer(p.encoding, bytes.subarray(p.bodyStart, p.bodyEnd));
}

function decodedText(bytes: Uint8Array, p: MimePart): string {
  const text = decodeCharset(param(p, 'charset') ?? 'utf-8', decodedBody(bytes, p));
  return text.length > MAX_TEXT_CHARS ? `${text.slice(0, MAX_TEXT_CHARS)}\n[cut]` : text;
}

export function viewMessage(bytes: Uint8Array): MessageView {
  const fields = parseHeaderBlock(bytes, 256 * 1024).map((f) => ({
    name: f.name,
    value: decodeEncodedWords(f.value),
  }));
  const first = (name: string): string =>
    fields.find((f) => f.name.toLowerCase() === name.toLowerCase())?.value ?? '';
  const base = {
    size: bytes.byteLength,
    headers: fields,
    subject: first('Subject'),
    from: first('From'),
    to: first('To'),
    date: first('Date'),
    messageId: first('Message-ID'),
    authenticationResults: fields
      .filter((f) => f.name.toLowerCase() === 'authentication-results')
      .map((f) => f.value),
  };
  if (bytes.byteLength > MAX_VIEW_BYTES) {
    return { ...base, text: null, htmlPart: null, attachments: [], tooLarge: true };
  }
  const structure = scanMessage(bytes);
  let text: string | null = null;
  let htmlPart: string | null = null;
  const attachments: MessageAttachment[] = [];
  for (const { path, part } of leaves(structure.root)) {
    if (!isAttachment(part)) {
      if (part.subtype === 'plain' && text === null) text = decodedText(bytes, part);
      else if (part.subtype === 'html' && htmlPart === null) htmlPart = path;
      continue;
    }
    attachments.push({
      part: path,
      filename: filenameOf(part),
      contentType: `${part.type}/${part.subtype}`,
      size: decodedBody(bytes, part).byteLength,
    });
  }
  return { ...base, text, htmlPart, attachments, tooLarge: false };
}

/** One leaf part, decoded from its transfer encoding, with its type and name; null when there is none. */
export function messagePart(
  bytes: Uint8Array,
  path: string,
): { body: Uint8Array; contentType: string; charset: string | null; filename: string | null } | null {
  if (bytes.byteLength > MAX_VIEW_BYTES || !/^\d+(\.\d+)*$/.test(path)) return null;
  const leaf = leaves(scanMessage(bytes).root).find((l) => l.path === path);
  if (leaf === undefined) return null;
  const p = leaf.part;
  return {
    body: decodedBody(bytes, p),
    contentType: `${p.type}/${p.subtype}`,
    charset: param(p, 'charset'),
    filename: filenameOf(p),
  };
}

/** The HTML body of a part as text (its charset decoded), for the sandboxed frame. */
export function messageHtml(bytes: Uint8Array, path: string): string | null {
  const part = messagePart(bytes, path);
  if (part === null || part.contentType !== 'text/html') return null;
  return decodeCharset(part.charset ?? 'utf-8', part.body);
}
