// The FETCH response of one message (RFC 9051 §6.4.5 and §7.5.2; RFC 3501 §6.4.5 and §7.4.2 for the
// IMAP4rev1 items RFC822, RFC822.HEADER, RFC822.TEXT; BINARY RFC 3516; CONDSTORE MODSEQ RFC 7162 §3.1.4;
// OBJECTID EMAILID/THREADID RFC 8474 §5; SAVEDATE RFC 8514; PREVIEW RFC 8970; UTF8=ACCEPT RFC 6855).
// Two phases, so the driver reads only what it must and streams big literals:
//   fetchNeeds(items, structure) → the octet ranges this builder must see in memory (the header of a
//     HEADER.FIELDS[.NOT] section; the body of a base64 or quoted-printable part for BINARY/BINARY.SIZE);
//   renderFetch(seq, items, message, loaded, options) → chunks whose concatenation is the whole line
//     `* 12 FETCH (...)\r\n`: text as bytes, and 'raw' ranges of the stored message the driver copies
//     in verbatim (BODY[...] is never held in memory here; its `{n}\r\n` is already in the bytes before).
// Choices where the RFCs leave one: items answer in the client's order, each response name once (BODY[]
// and BODY.PEEK[] are one); message data always goes as a literal ("" when empty), so a raw range never
// needs quoting; a section that does not exist answers ""; BINARY of a multipart or of a parsed
// message/rfc822 part sends its octets as they are (Dovecot and imaptest's fetch-binary-mime do), and
// BINARY[] of a one-part encoded message sends its header as stored and its body decoded; literal8
// (`~{n}`) when the decoded data holds a NUL, or when raw data may (a part declared "binary");
// INTERNALDATE and SAVEDATE in UTC; PREVIEW "" (never NIL) when there is no text; with CONDSTORE on,
// MODSEQ is added to every response that lacks it. IMAP4rev2 clients read UTF-8 in quoted strings.
// PURE and total: a broken structure or a missing loaded range answers an error result, never throws.
// Deliberately not here: setting \Seen (the driver, told by fetchSetsSeen), reading the store, choosing
// which messages answer, CHANGEDSINCE filtering, the tagged reply.

import { assertNever } from '../../core/assert-never.ts';
import { renderBodyStructure } from '../mime/bodystructure.ts';
import { renderEnvelope } from '../mime/envelope.ts';
import { filterHeaderFields, resolveSection, type SectionSpec } from '../mime/section.ts';
import type { EnvelopeFields, MessageStructure, MimePart } from '../mime/structure.ts';
import { decodeTransferStrict, transferCoding } from '../mime/transfer.ts';
import type { FetchItem, Section } from './command.ts';
import {
  formatAstring,
  formatDateTime,
  formatFlagList,
  formatString,
  type ResponseCode,
  type WireOptions,
} from './format.ts';

/** An octet range [start, end) of the stored message (the store's ByteRange has the same shape). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** Octets the driver read for a range fetchNeeds asked for. */
export interface LoadedRange extends ByteRange {
  readonly bytes: Uint8Array;
}

/** What FETCH answers about one message: the store's MessageMeta with its structure decoded. */
export interface FetchMessage {
  readonly uid: number;
  readonly flags: readonly string[];
  readonly modseq: number | bigint;
  readonly sizeBytes: number;
  readonly internalDateMs: number;
  /** RFC 8514: null where the save date is not known (SAVEDATE NIL). */
  readonly saveDateMs: number | null;
  readonly emailId: string;
  readonly threadId: string | null;
  readonly structure: MessageStructure;
}

export interface FetchOptions {
  /** UTF8=ACCEPT enabled (RFC 6855): UTF-8 in quoted strings. */
  readonly utf8: boolean;
  /** CONDSTORE enabled or implied (RFC 7162 §3.1): every FETCH response carries MODSEQ. */
  readonly condstore: boolean;
  /** IMAP4rev2 enabled: its quoted strings may hold UTF-8 too (RFC 9051 §4.3). */
  readonly imap4rev2: boolean;
}

/** Part of the response: octets to send, or stored octets [start, end) the driver copies in here. */
export type FetchChunk =
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'raw'; readonly start: number; readonly end: number };

/** The response, or why the whole command fails: the driver answers `NO [code] text`. */
export type FetchResult =
  | { readonly ok: true; readonly chunks: readonly FetchChunk[] }
  | { readonly ok: false; readonly code: ResponseCode; readonly text: string };

/** Items whose non-PEEK form sets \Seen (RFC 9051 §6.4.5): BODY[...], BINARY[...], RFC822, RFC822.TEXT. */
export function fetchSetsSeen(items: readonly FetchItem[]): boolean {
  return items.some(
    (i) => (i.kind === 'section' && !i.peek) || i.kind === 'rfc822' || i.kind === 'rfc822.text',
  );
}

/** The items plus FLAGS when they lack it: what the driver renders when the fetch changed \Seen. */
export function withFlags(items: readonly FetchItem[]): readonly FetchItem[] {
  return items.some((i) => i.kind === 'flags') ? items : [...items, { kind: 'flags' }];
}

// --- Sections resolved to what they send --------------------------------------------------------

/** Where one item's message data comes from. */
type Source =
  /** The section does not exist: "". */
  | { readonly kind: 'missing' }
  | { readonly kind: 'raw'; readonly range: ByteRange; readonly mayHoldNul: boolean }
  | {
      readonly kind: 'fields';
      readonly range: ByteRange;
      readonly names: readonly string[];
      readonly not: boolean;
    }
  /** `prefix` (stored octets, sent as they are) then `body` decoded from `encoding`. */
  | {
      readonly kind: 'decode';
      readonly prefix: ByteRange | null;
      readonly body: ByteRange;
      readonly encoding: string;
    }
  | { readonly kind: 'unknown-cte'; readonly encoding: string };

function toSpec(section: Section): SectionSpec {
  const t = section.text;
  if (t === null) return { part: section.part, text: { kind: 'none' } };
  switch (t.kind) {
    case 'header':
    case 'text':
    case 'mime':
      return { part: section.part, text: { kind: t.kind } };
    case 'fields':
      return { part: section.part, text: { kind: 'fields', not: t.not, names: t.fields } };
    default:
      return assertNever(t);
  }
}

function bodySource(structure: MessageStructure, section: Section): Source {
  const r = resolveSection(structure, toSpec(section));
  if (r === null || !validRange(structure, r)) return { kind: 'missing' };
  if (r.fields !== null) {
    return { kind: 'fields', range: r, names: r.fields.names, not: r.fields.not };
  }
  return { kind: 'raw', range: { start: r.start, end: r.end }, mayHoldNul: false };
}

/** A structure from the store is trusted only as far as its offsets are inside the message. */
function validRange(structure: MessageStructure, r: ByteRange): boolean {
  return r.start >= 0 && r.start <= r.end && r.end <= structure.size;
}

/** A part declared "binary" (RFC 3516 §4) may hold NUL: its raw octets go as literal8. */
function declaresBinary(part: MimePart): boolean {
  if (part.encoding.toLowerCase() === 'binary') return true;
  if (part.message !== null && declaresBinary(part.message)) return true;
  return part.parts.some(declaresBinary);
}

function binarySource(structure: MessageStructure, part: readonly number[]): Source {
  const r = resolveSection(structure, { part, text: { kind: 'none' } });
  if (r === null || !validRange(structure, r)) return { kind: 'missing' };
  const p = r.part;
  const container = p.type === 'multipart' || p.message !== null;
  if (container) return { kind: 'raw', range: { start: r.start, end: r.end }, mayHoldNul: declaresBinary(p) };
  const coding = transferCoding(p.encoding);
  if (coding === null) return { kind: 'unknown-cte', encoding: p.encoding };
  if (coding === 'identity') {
    return { kind: 'raw', range: { start: r.start, end: r.end }, mayHoldNul: declaresBinary(p) };
  }
  const body = { start: p.bodyStart, end: p.bodyEnd };
  if (!validRange(structure, body)) return { kind: 'missing' };
  // BINARY[] of a one-part message: its header as stored, then its body decoded.
  const prefix = part.length === 0 ? { start: 0, end: p.bodyStart } : null;
  return { kind: 'decode', prefix, body, encoding: p.encoding };
}

function itemSource(structure: MessageStructure, item: FetchItem): Source | null {
  switch (item.kind) {
    case 'section':
      return item.binary ? binarySource(structure, item.section.part) : bodySource(structure, item.section);
    case 'binary.size':
      return binarySource(structure, item.part);
    case 'rfc822':
      return bodySource(structure, { part: [], text: null });
    case 'rfc822.header':
      return bodySource(structure, { part: [], text: { kind: 'header' } });
    case 'rfc822.text':
      return bodySource(structure, { part: [], text: { kind: 'text' } });
    case 'envelope':
    case 'flags':
    case 'internaldate':
    case 'rfc822.size':
    case 'bodystructure':
    case 'body':
    case 'uid':
    case 'modseq':
    case 'emailid':
    case 'threadid':
    case 'savedate':
    case 'preview':
      return null;
    default:
      return assertNever(item);
  }
}

/**
 * The octet ranges renderFetch must be given for these items, sorted and merged. Plain BODY[...] is
 * absent: it is sent as 'raw' chunks the driver streams from the store.
 */
export function fetchNeeds(items: readonly FetchItem[], structure: MessageStructure): ByteRange[] {
  const ranges: ByteRange[] = [];
  for (const item of items) {
    const s = itemSource(structure, item);
    if (s === null) continue;
    if (s.kind === 'fields') ranges.push(s.range);
    else if (s.kind === 'decode') ranges.push(s.body);
  }
  ranges.sort((a, b) => a.start - b.start || a.end - b.end);
  const merged: { start: number; end: number }[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last !== undefined && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else merged.push({ start: r.start, end: r.end });
  }
  return merged;
}

// --- Message data as segments, sliced for partials --------------------------------------------

type Segment = FetchChunk;

function segmentLength(s: Segment): number {
  return s.kind === 'bytes' ? s.bytes.length : s.end - s.start;
}

/** Octets [offset, offset + length) of the concatenation of `segments`. */
function sliceSegments(segments: readonly Segment[], offset: number, length: number): Segment[] {
  const out: Segment[] = [];
  let pos = 0;
  const stop = offset + length;
  for (const s of segments) {
    const len = segmentLength(s);
    const from = Math.max(offset, pos) - pos;
    const to = Math.min(stop, pos + len) - pos;
    if (from < to) {
      out.push(
        s.kind === 'bytes'
          ? { kind: 'bytes', bytes: s.bytes.subarray(from, to) }
          : { kind: 'raw', start: s.start + from, end: s.start + to },
      );
    }
    pos += len;
  }
  return out;
}

function findLoaded(loaded: readonly LoadedRange[], r: ByteRange): Uint8Array | null {
  if (r.start === r.end) return new Uint8Array(0);
  for (const l of loaded) {
    if (l.start <= r.start && r.end <= l.end && l.bytes.length === l.end - l.start) {
      return l.bytes.subarray(r.start - l.start, r.end - l.start);
    }
  }
  return null;
}

type Data =
  | { readonly ok: true; readonly segments: readonly Segment[]; readonly mayHoldNul: boolean }
  | { readonly ok: false; readonly code: ResponseCode; readonly text: string };

function sourceData(source: Source, loaded: readonly LoadedRange[]): Data {
  const missingBytes: Data = {
    ok: false,
    code: { kind: 'SERVERBUG' },
    text: 'FETCH data was not read',
  };
  switch (source.kind) {
    case 'missing':
      return { ok: true, segments: [], mayHoldNul: false };
    case 'raw':
      return {
        ok: true,
        segments: source.range.start === source.range.end ? [] : [{ kind: 'raw', ...source.range }],
        mayHoldNul: source.mayHoldNul,
      };
    case 'fields': {
      const header = findLoaded(loaded, source.range);
      if (header === null) return missingBytes;
      const bytes = filterHeaderFields(header, source.names, source.not);
      return { ok: true, segments: [{ kind: 'bytes', bytes }], mayHoldNul: false };
    }
    case 'decode': {
      const body = findLoaded(loaded, source.body);
      if (body === null) return missingBytes;
      const decoded = decodeTransferStrict(source.encoding, body);
      if (decoded === null) return unknownCte(source.encoding);
      const segments: Segment[] = [];
      if (source.prefix !== null && source.prefix.start < source.prefix.end) {
        segments.push({ kind: 'raw', ...source.prefix });
      }
      if (decoded.length > 0) segments.push({ kind: 'bytes', bytes: decoded });
      return { ok: true, segments, mayHoldNul: false };
    }
    case 'unknown-cte':
      return unknownCte(source.encoding);
    default:
      return assertNever(source);
  }
}

function unknownCte(encoding: string): Data {
  const shown = encoding.replace(/[^\x21-\x7e]/g, '?').slice(0, 64);
  return { ok: false, code: { kind: 'UNKNOWN-CTE' }, text: `Unknown Content-Transfer-Encoding ${shown}` };
}

// --- Response names -------------------------------------------------------------------------

function sectionName(section: Section, wire: WireOptions): string {
  const part = section.part.join('.');
  const t = section.text;
  if (t === null) return part;
  let text: string;
  switch (t.kind) {
    case 'header':
      text = 'HEADER';
      break;
    case 'text':
      text = 'TEXT';
      break;
    case 'mime':
      text = 'MIME';
      break;
    case 'fields':
      // The field list is echoed as the client wrote it (RFC 9051 §7.5.2 example: HEADER.FIELDS (DATE FROM)).
      text = `HEADER.FIELDS${t.not ? '.NOT' : ''} (${t.fields.map((f) => formatAstring(f, wire)).join(' ')})`;
      break;
    default:
      return assertNever(t);
  }
  return part === '' ? text : `${part}.${text}`;
}

/** The name an item answers under ("BODY[1.MIME]<0>", "RFC822.SIZE", ...): one answer per name. */
export function fetchItemName(item: FetchItem, wire: WireOptions = { utf8: false }): string {
  switch (item.kind) {
    case 'section': {
      const name = item.binary
        ? `BINARY[${item.section.part.join('.')}]`
        : `BODY[${sectionName(item.section, wire)}]`;
      return item.partial === null ? name : `${name}<${item.partial.offset}>`;
    }
    case 'binary.size':
      return `BINARY.SIZE[${item.part.join('.')}]`;
    case 'envelope':
    case 'flags':
    case 'internaldate':
    case 'rfc822.size':
    case 'bodystructure':
    case 'body':
    case 'uid':
    case 'modseq':
    case 'emailid':
    case 'threadid':
    case 'savedate':
    case 'rfc822':
    case 'rfc822.header':
    case 'rfc822.text':
    case 'preview':
      return item.kind.toUpperCase();
    default:
      return assertNever(item);
  }
}

// --- Rendering -----------------------------------------------------------------------------

const encoder = new TextEncoder();

/** Collects text and raw ranges into chunks, joining neighbouring text. */
class ChunkWriter {
  readonly chunks: FetchChunk[] = [];
  private text = '';

  write(s: string): void {
    this.text += s;
  }

  segment(s: Segment): void {
    this.flush();
    this.chunks.push(s);
  }

  flush(): void {
    if (this.text === '') return;
    this.chunks.push({ kind: 'bytes', bytes: encoder.encode(this.text) });
    this.text = '';
  }
}

const EMPTY_ENVELOPE: EnvelopeFields = {
  date: null,
  subject: null,
  from: null,
  sender: null,
  replyTo: null,
  to: null,
  cc: null,
  bcc: null,
  inReplyTo: null,
  messageId: null,
};

function holdsNul(segments: readonly Segment[]): boolean {
  return segments.some((s) => s.kind === 'bytes' && s.bytes.includes(0));
}

/** A simple item's value as text. */
function simpleValue(item: FetchItem, message: FetchMessage, wire: WireOptions): string | null {
  switch (item.kind) {
    case 'envelope':
      return renderEnvelope(message.structure.root.envelope ?? EMPTY_ENVELOPE, wire);
    case 'flags':
      return formatFlagList(message.flags);
    case 'internaldate':
      return formatDateTime(message.internalDateMs);
    case 'rfc822.size':
      return String(message.sizeBytes);
    case 'bodystructure':
      return renderBodyStructure(message.structure.root, true, wire);
    case 'body':
      return renderBodyStructure(message.structure.root, false, wire);
    case 'uid':
      return String(message.uid);
    case 'modseq':
      return `(${message.modseq})`;
    case 'emailid':
      return `(${message.emailId})`;
    case 'threadid':
      return message.threadId === null ? 'NIL' : `(${message.threadId})`;
    case 'savedate':
      return message.saveDateMs === null ? 'NIL' : formatDateTime(message.saveDateMs);
    case 'preview':
      // RFC 8970 §3.2: "" when there is no text; NIL only for a preview not yet made (never here).
      return formatString(message.structure.preview, wire);
    case 'section':
    case 'binary.size':
    case 'rfc822':
    case 'rfc822.header':
    case 'rfc822.text':
      return null;
    default:
      return assertNever(item);
  }
}

/** `* seq FETCH (...)\r\n` for one message, or the error the whole command fails with. */
export function renderFetch(
  seq: number,
  items: readonly FetchItem[],
  message: FetchMessage,
  loaded: readonly LoadedRange[],
  options: FetchOptions,
): FetchResult {
  const wire: WireOptions = { utf8: options.utf8 || options.imap4rev2 };
  const all: FetchItem[] = [...items];
  if (options.condstore && !all.some((i) => i.kind === 'modseq')) all.push({ kind: 'modseq' });
  const out = new ChunkWriter();
  out.write(`* ${seq} FETCH (`);
  const seen = new Set<string>();
  for (const item of all) {
    const name = fetchItemName(item, wire);
    if (seen.has(name)) continue;
    if (seen.size > 0) out.write(' ');
    seen.add(name);
    out.write(`${name} `);
    const simple = simpleValue(item, message, wire);
    if (simple !== null) {
      out.write(simple);
      continue;
    }
    const source = itemSource(message.structure, item);
    if (source === null) return { ok: false, code: { kind: 'SERVERBUG' }, text: 'FETCH item without data' };
    const data = sourceData(source, loaded);
    if (!data.ok) return data;
    const total = data.segments.reduce((n, s) => n + segmentLength(s), 0);
    if (item.kind === 'binary.size') {
      out.write(String(total));
      continue;
    }
    const partial = item.kind === 'section' ? item.partial : null;
    // RFC 9051 §6.4.5: a partial whose origin is past the end is an empty string.
    const segments =
      partial === null ? data.segments : sliceSegments(data.segments, partial.offset, partial.length);
    const length = segments.reduce((n, s) => n + segmentLength(s), 0);
    if (length === 0) {
      out.write('""');
      continue;
    }
    const binary = item.kind === 'section' && item.binary;
    const literal8 = binary && (data.mayHoldNul || holdsNul(segments));
    out.write(`${literal8 ? '~' : ''}{${length}}\r\n`);
    for (const s of segments) out.segment(s);
  }
  out.write(')\r\n');
  out.flush();
  return { ok: true, chunks: out.chunks };
}
