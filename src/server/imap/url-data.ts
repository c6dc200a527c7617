// The octets an IMAP URL (RFC 5092, parsed by protocol/imap/imap-url.ts) names in a user's own store:
// the message, or its section (BODY[section] rules, RFC 9051 §6.4.5), cut by ";partial=" (RFC 5092
// §3.6: an offset past the end gives no octets), or the section decoded from its transfer encoding
// (URLFETCH BINARY, RFC 5524 §4). Shared by CATENATE (RFC 4469 §5) and URLFETCH (RFC 4467 §6.3).
// Big sections stream from the store (openRange); only a HEADER.FIELDS section and a part to be
// decoded are held in memory, as FETCH does.
// Deliberately NOT here: who may read the URL (urlauth.ts checks the URLAUTH token and access first;
// CATENATE reads only the session's own user), formatting responses.

import type { ImapUrl } from '../../protocol/imap/imap-url.ts';
import { decodeStructure } from '../../protocol/mime/codec.ts';
import { filterHeaderFields, parseSectionSpec, resolveSection } from '../../protocol/mime/section.ts';
import { MimeScanner, type MessageStructure, type MimePart } from '../../protocol/mime/structure.ts';
import { decodeTransferStrict, transferCoding } from '../../protocol/mime/transfer.ts';
import { MailboxError, type ImapMailboxStore } from '../../store/mailbox-store.ts';

/** A URL's message and section, found. */
export interface UrlTarget {
  readonly owner: string;
  readonly folder: string;
  readonly uid: number;
  /** The part the section names (the whole message's top part for none). */
  readonly part: MimePart;
  /** [start, end) of the section in the stored message, before ;partial. */
  readonly start: number;
  readonly end: number;
  readonly fields: { readonly not: boolean; readonly names: readonly string[] } | null;
  /** Whether the section is a part number alone (or empty): what BINARY can decode. */
  readonly wholePart: boolean;
  readonly partial: ImapUrl['partial'];
}

/** Octets to send: their count first, then the octets (streamed from the store where they can be). */
export interface UrlData {
  readonly sizeBytes: number;
  /** Read with `for await`: held octets come as a plain array, stored ones stream. */
  content(): AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/**
 * The message and section a URL names in `owner`'s folder, or null when there is none: no such
 * folder, a UIDVALIDITY that is not the folder's, no such UID, a section the message does not have.
 */
export async function locateUrl(
  store: ImapMailboxStore,
  owner: string,
  url: ImapUrl,
): Promise<UrlTarget | null> {
  try {
    const status = await store.folderStatus(owner, url.mailbox);
    if (url.uidValidity !== null && url.uidValidity !== status.uidValidity) return null;
    const [meta] = await store.messages(owner, url.mailbox, [url.uid]);
    if (meta === undefined) return null;
    const structure = await structureOf(store, owner, url.mailbox, url.uid, meta.structure);
    if (structure === null) return null;
    const spec =
      url.section === null ? { part: [], text: { kind: 'none' as const } } : parseSectionSpec(url.section);
    if (spec === null) return null;
    const r = resolveSection(structure, spec);
    if (r === null || r.start < 0 || r.start > r.end || r.end > structure.size) return null;
    return {
      owner,
      folder: url.mailbox,
      uid: url.uid,
      part: r.part,
      start: r.start,
      end: r.end,
      fields: r.fields,
      wholePart: spec.text.kind === 'none',
      partial: url.partial,
    };
  } catch (err) {
    if (err instanceof MailboxError) return null;
    throw err;
  }
}

/** The section's octets as BODY[section] would give them, cut by ;partial. */
export async function urlData(store: ImapMailboxStore, t: UrlTarget): Promise<UrlData | null> {
  if (t.fields !== null) {
    const header = await readAll(store, t, t.start, t.end);
    if (header === null) return null;
    return inMemory(cut(filterHeaderFields(header, t.fields.names, t.fields.not), t.partial));
  }
  const { start, end } = cutRange(t.start, t.end, t.partial);
  if (end <= start) return inMemory(new Uint8Array(0));
  return {
    sizeBytes: end - start,
    async *content() {
      const stored = await store.openRange(t.owner, t.folder, t.uid, { start, end });
      if (stored === null) throw new Error(`message ${t.uid} vanished while its URL was read`);
      try {
        yield* stored.content;
      } finally {
        await stored.close();
      }
    },
  };
}

/**
 * The section decoded from its Content-Transfer-Encoding (URLFETCH BINARY, RFC 5524 §4: as FETCH
 * BINARY[part], RFC 3516): 'unknown-cte' for an encoding this server cannot decode. A multipart or
 * message part, or a section with HEADER/TEXT, is sent as it is stored.
 */
export async function urlBinary(
  store: ImapMailboxStore,
  t: UrlTarget,
): Promise<{ data: UrlData; decoded: Uint8Array | null } | 'unknown-cte' | null> {
  const p = t.part;
  // The whole message (start 0, its header included) is sent as stored, as are containers and parts
  // that are not encoded.
  const asStored = !t.wholePart || t.start !== p.bodyStart || p.type === 'multipart' || p.message !== null;
  if (asStored || transferCoding(p.encoding) === 'identity') {
    const data = await urlData(store, t);
    return data === null ? null : { data, decoded: null };
  }
  if (transferCoding(p.encoding) === null) return 'unknown-cte';
  const body = await readAll(store, t, t.start, t.end);
  if (body === null) return null;
  const decoded = decodeTransferStrict(p.encoding, body);
  if (decoded === null) return 'unknown-cte';
  return { data: inMemory(cut(decoded, t.partial)), decoded };
}

function inMemory(bytes: Uint8Array): UrlData {
  return {
    sizeBytes: bytes.length,
    content: () => (bytes.length > 0 ? [bytes] : []),
  };
}

function cutRange(start: number, end: number, partial: UrlTarget['partial']): { start: number; end: number } {
  if (partial === null) return { start, end };
  const from = Math.min(end, start + partial.offset);
  const to = partial.length === null ? end : Math.min(end, from + partial.length);
  return { start: from, end: to };
}

function cut(bytes: Uint8Array, partial: UrlTarget['partial']): Uint8Array {
  const r = cutRange(0, bytes.length, partial);
  return bytes.subarray(r.start, r.end);
}

async function readAll(
  store: ImapMailboxStore,
  t: UrlTarget,
  start: number,
  end: number,
): Promise<Uint8Array | null> {
  if (end <= start) return new Uint8Array(0);
  const stored = await store.openRange(t.owner, t.folder, t.uid, { start, end });
  if (stored === null) return null;
  const chunks: Uint8Array[] = [];
  try {
    for await (const chunk of stored.content) chunks.push(chunk);
  } finally {
    await stored.close();
  }
  return Buffer.concat(chunks);
}

/** The stored structure, or one scanned now (not saved: FETCH saves it the first time it needs it). */
async function structureOf(
  store: ImapMailboxStore,
  owner: string,
  folder: string,
  uid: number,
  encoded: string | null,
): Promise<MessageStructure | null> {
  if (encoded !== null) {
    const decoded = decodeStructure(encoded);
    if (decoded !== null) return decoded;
  }
  const stored = await store.openMessage(owner, folder, uid);
  if (stored === null) return null;
  const scanner = new MimeScanner();
  try {
    for await (const chunk of stored.content) scanner.push(chunk);
  } finally {
    await stored.close();
  }
  return scanner.finish();
}
