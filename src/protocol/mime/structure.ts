// The MIME structure of a stored message, found once when the message is stored and kept beside it,
// so that IMAP FETCH (ENVELOPE, BODYSTRUCTURE, BODY[section], BINARY, PREVIEW) never parses the whole
// message again. MimeScanner takes the message's bytes in chunks of any size (any split gives the same
// result) and builds a tree of parts with byte offsets: header section [headerStart, bodyStart), body
// [bodyStart, bodyEnd). RFC 2045/2046: multiparts by boundary, where the line break before a delimiter
// belongs to the delimiter (§5.1.1) and an outer boundary also ends the parts inside it; a missing close
// delimiter ends the parts at the end of the message; message/rfc822 and message/global bodies are
// messages with their own header and structure. Broken input is read the way Dovecot and Python read
// it: an unreadable or missing Content-Type is text/plain; charset=us-ascii (message/rfc822 inside
// multipart/digest, RFC 2046 §5.1.5); a multipart or message whose body is base64 or quoted-printable
// is a leaf (RFC 2045 §6.4 forbids the encoding, so its inside is not structure); a part whose header
// never ends has an empty body.
// Memory is bounded whatever the input: each header section is kept only while it is read and only up
// to maxHeaderBytes, lines only up to their first LINE_HEAD_BYTES, nesting beyond maxDepth is a leaf,
// and after maxParts parts no new part begins. The tree itself holds a few short strings per part.
// PURE and total. Deliberately not here: IMAP rendering (bodystructure.ts, envelope.ts), section
// lookup (section.ts), the preview text (preview.ts).

import { parseHeaderBlock, type HeaderField } from '../headers.ts';
import { previewText } from './preview.ts';
import { parseContentType, parseDisposition, stripComments, type MimeParam } from './params.ts';

/** The RFC 5322 fields IMAP's ENVELOPE reports (RFC 9051 §7.5.2), unfolded, encoded-words as they are. */
export interface EnvelopeFields {
  readonly date: string | null;
  readonly subject: string | null;
  readonly from: string | null;
  readonly sender: string | null;
  readonly replyTo: string | null;
  readonly to: string | null;
  readonly cc: string | null;
  readonly bcc: string | null;
  readonly inReplyTo: string | null;
  readonly messageId: string | null;
}

export interface Disposition {
  /** Lower case ("inline", "attachment"). */
  readonly type: string;
  readonly params: readonly MimeParam[];
}

export interface MimePart {
  readonly headerStart: number;
  /** First octet of the body: the header section, with its empty line, is [headerStart, bodyStart). */
  readonly bodyStart: number;
  /** The body is [bodyStart, bodyEnd); a delimiter's preceding line break is not in it. */
  readonly bodyEnd: number;
  /** Lower case. */
  readonly type: string;
  readonly subtype: string;
  readonly params: readonly MimeParam[];
  readonly id: string | null;
  readonly description: string | null;
  /** As written, comments removed; "7BIT" when absent (RFC 2045 §6.1). */
  readonly encoding: string;
  readonly md5: string | null;
  readonly disposition: Disposition | null;
  readonly language: readonly string[] | null;
  readonly location: string | null;
  /** Lines in the body (IMAP body-fld-lines): a last line without a line break counts. */
  readonly lines: number;
  /** The parts of a multipart, in order. */
  readonly parts: readonly MimePart[];
  /** The message inside a message/rfc822 or message/global part. */
  readonly message: MimePart | null;
  /** Set on a message's top part: the whole message, or one inside message/rfc822. */
  readonly envelope: EnvelopeFields | null;
}

export interface MessageStructure {
  /** Octets in the message. */
  readonly size: number;
  readonly root: MimePart;
  /** Decoded start of the first text part (RFC 8970), "" when there is none. */
  readonly preview: string;
}

export interface ScanLimits {
  readonly maxHeaderBytes: number;
  readonly maxDepth: number;
  readonly maxParts: number;
}

export const defaultScanLimits: ScanLimits = { maxHeaderBytes: 64 * 1024, maxDepth: 50, maxParts: 5000 };

/** Longest line held to classify it: a delimiter is at most 2 + 70 + 2 octets, plus trailing space. */
const LINE_HEAD_BYTES = 1024;
/** Raw body octets kept of a preview candidate: enough for 200 characters after decoding and tags. */
const PREVIEW_RAW_BYTES = 16 * 1024;

const LF = 10;
const CR = 13;
const DASH = 45;
const SP = 32;
const TAB = 9;

/** A part while it is read; frozen into MimePart when the scan finishes. */
interface Node {
  headerStart: number;
  bodyStart: number;
  bodyEnd: number;
  /** LFs seen before the body began: lines are counted as a difference. */
  lfAtBody: number;
  depth: number;
  isMessage: boolean;
  inDigest: boolean;
  fields: PartFields | null;
  lines: number;
  parts: Node[];
  message: Node | null;
  /** The body's first octets, kept for a preview candidate. */
  capture: Uint8Array[] | null;
  captured: number;
}

interface PartFields {
  type: string;
  subtype: string;
  params: readonly MimeParam[];
  id: string | null;
  description: string | null;
  encoding: string;
  md5: string | null;
  disposition: Disposition | null;
  language: string[] | null;
  location: string | null;
  envelope: EnvelopeFields | null;
}

interface Frame {
  /** "--" + boundary. */
  readonly delimiter: Uint8Array;
  readonly node: Node;
}

type State =
  | { readonly kind: 'header'; readonly node: Node }
  | { readonly kind: 'body'; readonly node: Node }
  | { readonly kind: 'preamble'; readonly node: Node }
  | { readonly kind: 'epilogue'; readonly node: Node };

const encoder = new TextEncoder();

export class MimeScanner {
  readonly #limits: ScanLimits;
  /** Offset of the next octet pushed. */
  #pos = 0;
  /** LFs in the lines already classified. */
  #lf = 0;
  // The line being read: its start, its first octets, and its last two octets (for CR LF).
  #lineStart = 0;
  readonly #head = new Uint8Array(LINE_HEAD_BYTES);
  #headLen = 0;
  #lineLen = 0;
  #lastByte = -1;
  #prevByte = -1;
  // The previous line: where its line break began, how long its content was, whether it had an LF.
  #prevEolStart = 0;
  #prevContentLen = 0;
  #prevHadLf = false;
  // The header section being read.
  #header: Uint8Array[] = [];
  #headerBytes = 0;
  #headerBytesAtLine = 0;
  readonly #root: Node;
  /** Parts whose end is not known yet, outermost first. */
  readonly #open: Node[];
  readonly #frames: Frame[] = [];
  #state: State;
  #partCount = 1;
  #plainCandidate: Node | null = null;
  #htmlCandidate: Node | null = null;
  #finished: MessageStructure | null = null;
  readonly #previewOf: (part: MimePart, body: Uint8Array) => string;

  constructor(
    limits: Partial<ScanLimits> = {},
    previewOf: (part: MimePart, body: Uint8Array) => string = previewText,
  ) {
    this.#limits = { ...defaultScanLimits, ...limits };
    this.#previewOf = previewOf;
    this.#root = newNode(0, 0, true, false);
    this.#open = [this.#root];
    this.#state = { kind: 'header', node: this.#root };
  }

  push(chunk: Uint8Array): void {
    if (this.#finished) return;
    let i = 0;
    while (i < chunk.length) {
      const lf = chunk.indexOf(LF, i);
      const end = lf < 0 ? chunk.length : lf + 1;
      this.#take(chunk.subarray(i, end));
      i = end;
      if (lf >= 0) this.#endLine(true);
    }
  }

  finish(): MessageStructure {
    if (this.#finished) return this.#finished;
    if (this.#lineLen > 0) this.#endLine(false);
    const end = this.#pos;
    const extra = !this.#prevHadLf && this.#prevContentLen > 0 ? 1 : 0;
    for (let k = this.#open.length - 1; k >= 0; k--) {
      const node = this.#open[k]!;
      if (node.fields === null) this.#endHeader(node, end, true);
      node.bodyEnd = end;
      node.lines = this.#lf - node.lfAtBody + extra;
      if (end === node.bodyStart) node.lines = 0;
      this.#endCapture(node);
    }
    this.#open.length = 0;
    const root = freeze(this.#root);
    const candidate = this.#plainCandidate ?? this.#htmlCandidate;
    let preview = '';
    if (candidate?.capture) {
      const body = concat(candidate.capture);
      preview = this.#previewOf(freeze(candidate), body);
    }
    this.#finished = { size: end, root, preview };
    return this.#finished;
  }

  #take(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const room = LINE_HEAD_BYTES - this.#headLen;
    if (room > 0) {
      const n = Math.min(room, bytes.length);
      this.#head.set(bytes.subarray(0, n), this.#headLen);
      this.#headLen += n;
    }
    const state = this.#state;
    if (state.kind === 'header') {
      const room = this.#limits.maxHeaderBytes - this.#headerBytes;
      if (room > 0) {
        const piece = bytes.subarray(0, room).slice();
        this.#header.push(piece);
        this.#headerBytes += piece.length;
      }
    } else if (state.kind === 'body' && state.node.capture) {
      const node = state.node;
      const room = PREVIEW_RAW_BYTES - node.captured;
      if (room > 0) {
        const piece = bytes.subarray(0, room).slice();
        node.capture!.push(piece);
        node.captured += piece.length;
      }
    }
    this.#prevByte = bytes.length >= 2 ? bytes[bytes.length - 2]! : this.#lastByte;
    this.#lastByte = bytes[bytes.length - 1]!;
    this.#lineLen += bytes.length;
    this.#pos += bytes.length;
  }

  #endLine(hasLf: boolean): void {
    const eolLen = hasLf ? (this.#prevByte === CR && this.#lineLen >= 2 ? 2 : 1) : 0;
    const contentLen = this.#lineLen - eolLen;
    const lineStart = this.#lineStart;
    const lineEnd = this.#pos;
    if (contentLen <= LINE_HEAD_BYTES) {
      const line = this.#head.subarray(0, contentLen);
      const match = this.#matchDelimiter(line);
      if (match !== null) this.#delimiter(match.frame, match.close, lineEnd);
      else if (contentLen === 0 && this.#state.kind === 'header') this.#endHeader(this.#state.node, lineEnd);
    }
    this.#prevEolStart = lineStart + contentLen;
    this.#prevContentLen = contentLen;
    this.#prevHadLf = hasLf;
    if (hasLf) this.#lf++;
    this.#lineStart = lineEnd;
    this.#headLen = 0;
    this.#lineLen = 0;
    this.#lastByte = -1;
    this.#prevByte = -1;
    this.#headerBytesAtLine = this.#headerBytes;
  }

  #matchDelimiter(line: Uint8Array): { frame: number; close: boolean } | null {
    if (line.length < 3 || line[0] !== DASH || line[1] !== DASH) return null;
    for (let f = this.#frames.length - 1; f >= 0; f--) {
      const d = this.#frames[f]!.delimiter;
      if (line.length < d.length || !startsWith(line, d)) continue;
      let rest = line.subarray(d.length);
      const close = rest.length >= 2 && rest[0] === DASH && rest[1] === DASH;
      if (close) rest = rest.subarray(2);
      // Transport padding (RFC 2046 §5.1.1); anything else makes it a line that merely starts alike.
      if (!rest.every((b) => b === SP || b === TAB)) continue;
      return { frame: f, close };
    }
    return null;
  }

  /** A delimiter line of frame `f`: the parts inside that multipart end before its line break. */
  #delimiter(f: number, close: boolean, lineEnd: number): void {
    const frame = this.#frames[f]!;
    if (!close && this.#partCount >= this.#limits.maxParts) return;
    if (this.#state.kind === 'header') {
      // The delimiter line went into the header buffer; it is no part of the header.
      this.#trimHeader();
    }
    const owner = this.#open.indexOf(frame.node);
    // Every part inside ends before the delimiter's line break (RFC 2046 §5.1.1), even one whose header
    // began or ended with that very line break: it shrinks so that it stays inside its parent.
    const end = this.#prevEolStart;
    for (let k = this.#open.length - 1; k > owner; k--) {
      const node = this.#open[k]!;
      if (node.headerStart > end) node.headerStart = end;
      if (node.fields === null) {
        // A header that never ended: the part has no body.
        this.#endHeader(node, end, true);
        node.bodyEnd = end;
        node.lines = 0;
      } else this.#endBody(node, end);
    }
    this.#open.length = owner + 1;
    if (close) {
      this.#frames.length = f;
      this.#state = { kind: 'epilogue', node: frame.node };
      return;
    }
    this.#frames.length = f + 1;
    const child = newNode(lineEnd, frame.node.depth + 1, false, frame.node.fields?.subtype === 'digest');
    this.#partCount++;
    frame.node.parts.push(child);
    this.#open.push(child);
    this.#beginHeader(child);
  }

  #endBody(node: Node, end: number): void {
    // When the header's empty line is also the delimiter's line break, the delimiter has it: the header
    // ends without it and the body is empty.
    if (end < node.bodyStart) node.bodyStart = end;
    node.bodyEnd = end;
    node.lines = end > node.bodyStart ? this.#lf - 1 - node.lfAtBody + (this.#prevContentLen > 0 ? 1 : 0) : 0;
    this.#endCapture(node);
  }

  #endCapture(node: Node): void {
    if (!node.capture) return;
    // The capture ran to the delimiter's line break; the body ends before it.
    const keep = Math.min(node.captured, node.bodyEnd - node.bodyStart);
    node.capture = [concat(node.capture).subarray(0, keep)];
    node.captured = keep;
  }

  #trimHeader(): void {
    let keep = this.#headerBytesAtLine;
    const kept: Uint8Array[] = [];
    for (const piece of this.#header) {
      if (keep <= 0) break;
      kept.push(piece.subarray(0, keep));
      keep -= piece.length;
    }
    this.#header = kept;
    this.#headerBytes = this.#headerBytesAtLine;
  }

  #beginHeader(node: Node): void {
    this.#header = [];
    this.#headerBytes = 0;
    this.#headerBytesAtLine = 0;
    this.#state = { kind: 'header', node };
  }

  /** The header section of `node` ended at `bodyStart`: its fields decide what its body is. */
  #endHeader(node: Node, bodyStart: number, leafOnly = false): void {
    const fields = readFields(parseHeaderBlock(concat(this.#header), this.#limits.maxHeaderBytes), node);
    this.#header = [];
    this.#headerBytes = 0;
    node.fields = fields;
    node.bodyStart = bodyStart;
    node.lfAtBody = this.#lf + (bodyStart === this.#pos && this.#lineLen > 0 ? 1 : 0);
    const deeper = !leafOnly && node.depth < this.#limits.maxDepth && this.#partCount < this.#limits.maxParts;
    const opaque = /^(base64|quoted-printable)$/i.test(fields.encoding);
    const boundary =
      fields.type === 'multipart' ? fields.params.find((p) => p.name === 'boundary')?.value : '';
    if (leafOnly) {
      this.#state = { kind: 'body', node };
      return;
    }
    if (fields.type === 'multipart' && !(boundary && boundary.length <= 200 && deeper && !opaque)) {
      // A multipart that cannot be split is read as text, the way Dovecot and Python read it.
      Object.assign(fields, textPlain());
    }
    if (fields.type === 'multipart') {
      this.#frames.push({ delimiter: encoder.encode(`--${boundary}`), node });
      this.#state = { kind: 'preamble', node };
    } else if (
      fields.type === 'message' &&
      (fields.subtype === 'rfc822' || fields.subtype === 'global') &&
      deeper &&
      !opaque
    ) {
      const inner = newNode(bodyStart, node.depth + 1, true, false);
      inner.lfAtBody = node.lfAtBody;
      this.#partCount++;
      node.message = inner;
      this.#open.push(inner);
      this.#beginHeader(inner);
    } else {
      this.#state = { kind: 'body', node };
      const attachment = fields.disposition?.type === 'attachment';
      if (fields.type === 'text' && !attachment) {
        if (fields.subtype === 'plain' && this.#plainCandidate === null) this.#plainCandidate = node;
        else if (fields.subtype === 'html' && this.#htmlCandidate === null) this.#htmlCandidate = node;
        else return;
        node.capture = [];
      }
    }
  }
}

function newNode(headerStart: number, depth: number, isMessage: boolean, inDigest: boolean): Node {
  return {
    headerStart,
    bodyStart: headerStart,
    bodyEnd: headerStart,
    lfAtBody: 0,
    depth,
    isMessage,
    inDigest,
    fields: null,
    lines: 0,
    parts: [],
    message: null,
    capture: null,
    captured: 0,
  };
}

function textPlain(): Pick<PartFields, 'type' | 'subtype' | 'params'> {
  return { type: 'text', subtype: 'plain', params: [{ name: 'charset', value: 'us-ascii' }] };
}

function readFields(fields: readonly HeaderField[], node: Node): PartFields {
  const get = (name: string): string | null => {
    const f = fields.find((x) => x.name.toLowerCase() === name);
    return f ? f.value : null;
  };
  const ct = get('content-type');
  const parsed = ct === null ? null : parseContentType(ct);
  let media: Pick<PartFields, 'type' | 'subtype' | 'params'>;
  if (parsed && parsed.value.includes('/')) {
    const [type, subtype] = parsed.value.split('/') as [string, string];
    // Dovecot and UW imapd send the default charset of a text part (RFC 2045 §5.2) when none is given.
    const noCharset = type === 'text' && !parsed.params.some((p) => p.name === 'charset');
    media = { type, subtype, params: noCharset ? [...parsed.params, ...textPlain().params] : parsed.params };
  } else if (ct === null && node.inDigest) {
    media = { type: 'message', subtype: 'rfc822', params: [] };
  } else media = textPlain();
  const cte = get('content-transfer-encoding');
  const dispValue = get('content-disposition');
  const disp = dispValue === null ? null : parseDisposition(dispValue);
  const lang = get('content-language');
  const languages =
    lang === null
      ? []
      : stripComments(lang)
          .split(/\s*,\s*/)
          .filter(Boolean);
  return {
    ...media,
    id: get('content-id'),
    description: get('content-description'),
    encoding: cte === null || stripComments(cte) === '' ? '7BIT' : stripComments(cte),
    md5: get('content-md5'),
    disposition: disp && disp.value !== '' ? { type: disp.value, params: disp.params } : null,
    language: languages.length > 0 ? languages : null,
    location: get('content-location'),
    envelope: node.isMessage
      ? {
          date: get('date'),
          subject: get('subject'),
          from: get('from'),
          sender: get('sender'),
          replyTo: get('reply-to'),
          to: get('to'),
          cc: get('cc'),
          bcc: get('bcc'),
          inReplyTo: get('in-reply-to'),
          messageId: get('message-id'),
        }
      : null,
  };
}

function freeze(node: Node): MimePart {
  const f = node.fields ?? { ...readFields([], node) };
  return {
    headerStart: node.headerStart,
    bodyStart: node.bodyStart,
    bodyEnd: node.bodyEnd,
    type: f.type,
    subtype: f.subtype,
    params: f.params,
    id: f.id,
    description: f.description,
    encoding: f.encoding,
    md5: f.md5,
    disposition: f.disposition,
    language: f.language,
    location: f.location,
    lines: node.lines,
    parts: node.parts.map(freeze),
    message: node.message ? freeze(node.message) : null,
    envelope: f.envelope,
  };
}

function startsWith(a: Uint8Array, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Scan a message held in memory (tests, small messages); the store streams with MimeScanner. */
export function scanMessage(
  bytes: Uint8Array,
  previewOf?: (part: MimePart, body: Uint8Array) => string,
): MessageStructure {
  const s = new MimeScanner({}, previewOf);
  s.push(bytes);
  return s.finish();
}

/**
 * The structure of `octets` more bytes of complete header fields written in front of the message
 * `s` describes (Return-Path:, Delivered-To:, Authentication-Results: added at final delivery): every
 * offset moves by that much but the top header's start. So a message scanned once as it streamed in
 * serves each of its copies, whatever their own fields in front. Null when the longer top header would
 * pass the scan's header limit (a scan of the whole could then differ: readers scan it again).
 * The message must begin with a header field (the session's scan begins with Tern's own Received:):
 * in front of an mbox "From " line or a continuation line, the new fields would change how it reads.
 */
export function withFieldsInFront(
  s: MessageStructure,
  octets: number,
  limits: ScanLimits = defaultScanLimits,
): MessageStructure | null {
  if (octets === 0) return s;
  if (s.root.bodyStart - s.root.headerStart + octets > limits.maxHeaderBytes) return null;
  const shift = (p: MimePart, top: boolean): MimePart => ({
    ...p,
    headerStart: top ? p.headerStart : p.headerStart + octets,
    bodyStart: p.bodyStart + octets,
    bodyEnd: p.bodyEnd + octets,
    parts: p.parts.map((c) => shift(c, false)),
    message: p.message === null ? null : shift(p.message, false),
  });
  return { ...s, size: s.size + octets, root: shift(s.root, true) };
}
