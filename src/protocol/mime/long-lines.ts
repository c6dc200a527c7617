// Making a message whose lines exceed 998 octets fit for SMTP (RFC 5321 §4.5.3.1.6: 1000 octets with
// CRLF; RFC 5322 §2.1.1 and RFC 2045 §2.7-2.8 say the same of messages and of 7bit/8bit content), without
// changing what it says. Two passes over the same bytes, each streaming with bounded memory:
//   1. LongLineScan walks the MIME structure (RFC 2045/2046: multiparts by boundary, message/rfc822 and
//      message/global bodies as nested messages) and records, per part, whether a body line is too long
//      and what its bytes look like; plan() turns that into a LongLinePlan.
//   2. LongLineEncoder walks the same structure again and writes the message out with each part that had
//      a long line encoded: quoted-printable for mostly-text text/* parts, base64 otherwise, its
//      Content-Transfer-Encoding replaced (RFC 2045 §6). A part that already says quoted-printable or
//      base64 keeps its encoding and gets line breaks its decoders ignore (QP soft breaks not splitting an
//      =XX escape; line breaks in base64). A message that is not MIME becomes a text/plain
//      quoted-printable body with MIME-Version: and Content-Type: added. Header lines are folded before
//      white space (RFC 5322 §2.2.3), which unfolding undoes.
// Decoding each part gives back exactly the bytes it had; boundaries and every part that had no long
// line stay byte for byte, so nothing but the offending parts changes.
// Memory: one line head (LINE_HEAD_BYTES) and a few field values per part; lines themselves stream.
// XXX: what cannot be encoded without loss is broken with CRLF SP (a header run of 998 octets without
// white space, a part in an unknown transfer encoding, a preamble or epilogue): Tern never sends an
// over-long line, and no such break can start a line with "--" (a boundary).
// Deliberately NOT here: deciding whether a message needs this (the SMTP session marks the envelope,
// data-scanner.ts measures lines), reading the queue and DKIM signing (delivery/long-lines.ts).

import { assertNever } from '../../core/assert-never.ts';

/** Longest line content allowed, CRLF excluded (RFC 5321 §4.5.3.1.6). */
export const MAX_LINE_OCTETS = 998;
/** Line content held to classify a line (boundary, header field): any longer line is too long anyway. */
const LINE_HEAD_BYTES = MAX_LINE_OCTETS + 3;
/** Of a Content-Type, Content-Transfer-Encoding or MIME-Version value, this much is kept to parse. */
const MAX_FIELD_VALUE = 4096;
/** Multiparts nested deeper are one leaf: boundary checks cost a look at each enclosing one. */
const MAX_NESTING = 50;
/** Quoted-printable and base64 lines (RFC 2045 §6.7 rule 5, §6.8). */
const ENCODED_LINE = 76;

const CR = 13;
const LF = 10;
const SP = 32;
const TAB = 9;
const EQ = 61;
const DASH = 45;
const CRLF = Uint8Array.of(CR, LF);
const EMPTY = new Uint8Array(0);
const HEX = '0123456789ABCDEF';

/** What happens to a part's body in the encoding pass. */
export type BodyAction = 'keep' | 'quoted-printable' | 'base64' | 'rewrap-qp' | 'rewrap-base64' | 'break';

export interface PartPlan {
  readonly action: BodyAction;
  /** Header fields added to the part's header section (non-MIME message: MIME-Version, Content-Type). */
  readonly addFields: readonly string[];
}

export interface LongLinePlan {
  /** Some line is too long: the message needs the encoding pass. */
  readonly needed: boolean;
  /** By part number, in the order parts begin (0: the message itself). */
  readonly parts: readonly PartPlan[];
}

interface PartInfo {
  readonly index: number;
  /** The enclosing multipart is multipart/digest: the default type is message/rfc822 (RFC 2046 §5.1.5). */
  readonly inDigest: boolean;
  /** The header section is a message's (the whole one, or one inside message/rfc822): MIME-Version belongs. */
  readonly messageTop: boolean;
  contentType: string | null;
  cte: string | null;
  mimeVersion: boolean;
}

interface Frame {
  /** "--" + boundary. */
  readonly delimiter: Uint8Array;
  readonly part: PartInfo;
}

type Region =
  | { readonly kind: 'header'; readonly part: PartInfo }
  | { readonly kind: 'leaf'; readonly part: PartInfo }
  | { readonly kind: 'filler'; readonly part: PartInfo };

/** "type/subtype" in lower case, or null when the field is missing or unreadable. */
function mediaType(part: PartInfo): string {
  const value = part.contentType;
  const m =
    value === null ? null : /^\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+)/.exec(value);
  if (m) return m[1]!.toLowerCase();
  return part.inDigest ? 'message/rfc822' : 'text/plain';
}

function boundaryOf(value: string | null): string | null {
  if (value === null) return null;
  const m = /;\s*boundary\s*=\s*(?:"((?:[^"\\\r\n]|\\.)*)"|([^\s;"]+))/i.exec(value);
  const b = m ? (m[1]?.replace(/\\(.)/g, '$1') ?? m[2] ?? '') : '';
  return b.length >= 1 && b.length <= 200 ? b : null;
}

function mechanism(part: PartInfo): string {
  return (part.cte ?? '')
    .trim()
    .toLowerCase()
    .replace(/\s*\(.*$/, '');
}

const decoder = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/**
 * The MIME walk both passes share: lines (streamed past their first LINE_HEAD_BYTES), the header
 * sections and body regions they form, and where boundaries are. A subclass sees header lines, the end
 * of each header section, body bytes (a body's last line break before a boundary belongs to the
 * boundary, RFC 2046 §5.1.1, and is passed as structure) and structure.
 */
abstract class MimeWalk {
  // The line being read.
  readonly #head = new Uint8Array(LINE_HEAD_BYTES);
  #headLen = 0;
  /** The line outgrew the head: its remaining bytes stream through #more. */
  #streaming = false;
  /** While streaming, a CR at the end of a piece: part of CRLF if an LF follows. */
  #heldCR = false;
  // The structure.
  readonly #frames: Frame[] = [];
  #region: Region;
  #parts = 0;
  /** A body line's line break, held until the next line says whether it is content or a boundary's. */
  #pendingEol: Uint8Array | null = null;
  /** The header field the current header line belongs to, lower case; null for none. */
  #field: string | null = null;
  #fieldValue = '';

  constructor() {
    this.#region = { kind: 'header', part: this.#newPart(false, true) };
  }

  protected abstract headerLine(
    part: PartInfo,
    field: string | null,
    piece: Uint8Array,
    first: boolean,
  ): void;
  protected abstract headerEol(part: PartInfo, field: string | null, eol: Uint8Array): void;
  protected abstract headerEnd(part: PartInfo, eol: Uint8Array): void;
  protected abstract bodyBytes(region: Region, bytes: Uint8Array): void;
  protected abstract bodyEnd(region: Region, atEnd: boolean): void;
  protected abstract structure(bytes: Uint8Array): void;
  /** The line that just began in `region` is longer than MAX_LINE_OCTETS. */
  protected abstract longLine(region: Region): void;

  protected walk(input: Uint8Array): void {
    const n = input.length;
    let i = 0;
    while (i < n) {
      const lf = input.indexOf(LF, i);
      const end = lf < 0 ? n : lf;
      if (!this.#streaming) {
        const take = Math.min(end - i, LINE_HEAD_BYTES - this.#headLen);
        this.#head.set(input.subarray(i, i + take), this.#headLen);
        this.#headLen += take;
        i += take;
        if (i === end && lf >= 0) {
          i++;
          const cr = this.#headLen > 0 && this.#head[this.#headLen - 1] === CR;
          const line = this.#head.slice(0, this.#headLen - (cr ? 1 : 0));
          this.#headLen = 0;
          this.#line(line, cr ? CRLF : Uint8Array.of(LF));
        } else if (this.#headLen === LINE_HEAD_BYTES) {
          // Too long to be a boundary or a well-formed anything: the rest streams.
          this.#streaming = true;
          this.#heldCR = this.#head[LINE_HEAD_BYTES - 1] === CR;
          const line = this.#head.slice(0, LINE_HEAD_BYTES - (this.#heldCR ? 1 : 0));
          this.#headLen = 0;
          this.#line(line, null);
        }
        continue;
      }
      let piece = input.subarray(i, end);
      const ends = lf >= 0;
      i = ends ? end + 1 : end;
      const held = this.#heldCR;
      let eolCR = false;
      if (ends) {
        if (piece.length > 0 && piece[piece.length - 1] === CR) {
          piece = piece.subarray(0, piece.length - 1);
          eolCR = true;
          if (held) this.#more(Uint8Array.of(CR));
        } else if (piece.length === 0 && held) {
          eolCR = true;
        } else if (held) this.#more(Uint8Array.of(CR));
        this.#heldCR = false;
        if (piece.length > 0) this.#more(piece);
        this.#streaming = false;
        this.#lineEnd(eolCR ? CRLF : Uint8Array.of(LF));
      } else {
        if (held) this.#more(Uint8Array.of(CR));
        this.#heldCR = piece.length > 0 && piece[piece.length - 1] === CR;
        if (this.#heldCR) piece = piece.subarray(0, piece.length - 1);
        if (piece.length > 0) this.#more(piece);
      }
    }
  }

  protected endWalk(): void {
    if (this.#streaming) {
      if (this.#heldCR) this.#more(Uint8Array.of(CR));
      this.#streaming = false;
      this.#heldCR = false;
      this.#lineEnd(EMPTY);
    } else if (this.#headLen > 0) {
      const line = this.#head.slice(0, this.#headLen);
      this.#headLen = 0;
      this.#line(line, EMPTY);
    }
    const region = this.#region;
    if (region.kind === 'header') return;
    if (this.#pendingEol !== null) this.bodyBytes(region, this.#pendingEol);
    this.#pendingEol = null;
    this.bodyEnd(region, true);
  }

  #newPart(inDigest: boolean, messageTop: boolean): PartInfo {
    return { index: this.#parts++, inDigest, messageTop, contentType: null, cte: null, mimeVersion: false };
  }

  /** A line begins: `eol` null when it is longer than the head and goes on in #more. */
  #line(head: Uint8Array, eol: Uint8Array | null): void {
    const region = this.#region;
    const whole = eol !== null;
    if (whole && head.length <= MAX_LINE_OCTETS && this.#boundary(head)) {
      if (eol.length > 0) this.structure(eol);
      return;
    }
    if (!whole || head.length > MAX_LINE_OCTETS) this.longLine(region);
    if (region.kind === 'header') {
      if (whole && head.length === 0) {
        this.#endHeader(region.part, eol);
        return;
      }
      if (head[0] !== SP && head[0] !== TAB) {
        const colon = head.indexOf(58);
        this.#field = colon > 0 ? decoder.decode(head.subarray(0, colon)).trim().toLowerCase() : null;
        this.#fieldValue = '';
        this.#noteValue(colon > 0 ? head.subarray(colon + 1) : EMPTY);
      } else this.#noteValue(head);
      this.headerLine(region.part, this.#field, head, true);
      if (whole) this.headerEol(region.part, this.#field, eol);
      return;
    }
    if (this.#pendingEol !== null) this.bodyBytes(region, this.#pendingEol);
    this.#pendingEol = null;
    this.bodyBytes(region, head);
    if (whole) this.#pendingEol = eol.length > 0 ? eol : null;
  }

  #more(bytes: Uint8Array): void {
    const region = this.#region;
    if (region.kind === 'header') {
      this.#noteValue(bytes);
      this.headerLine(region.part, this.#field, bytes, false);
    } else this.bodyBytes(region, bytes);
  }

  #lineEnd(eol: Uint8Array): void {
    const region = this.#region;
    if (region.kind === 'header') this.headerEol(region.part, this.#field, eol);
    else this.#pendingEol = eol.length > 0 ? eol : null;
  }

  #noteValue(bytes: Uint8Array): void {
    const f = this.#field;
    if (f !== 'content-type' && f !== 'content-transfer-encoding' && f !== 'mime-version') return;
    if (this.#fieldValue.length >= MAX_FIELD_VALUE) return;
    this.#fieldValue += decoder.decode(bytes.subarray(0, MAX_FIELD_VALUE - this.#fieldValue.length));
    const part = this.#region.part;
    if (f === 'content-type') part.contentType = this.#fieldValue;
    else if (f === 'content-transfer-encoding') part.cte = this.#fieldValue;
    else part.mimeVersion = true;
  }

  /** The header section of `part` ended: what its body is decides what comes next. */
  #endHeader(part: PartInfo, eol: Uint8Array): void {
    this.headerEnd(part, eol);
    this.#field = null;
    const type = mediaType(part);
    const cte = mechanism(part);
    // An encoded body is opaque: a multipart or message in base64 is one leaf (RFC 2045 §6.4 forbids it).
    const opaque = cte === 'base64' || cte === 'quoted-printable';
    const boundary =
      type.startsWith('multipart/') && !opaque && this.#frames.length < MAX_NESTING
        ? boundaryOf(part.contentType)
        : null;
    if (boundary !== null) {
      this.#frames.push({ delimiter: encoder.encode(`--${boundary}`), part });
      this.#region = { kind: 'filler', part };
    } else if ((type === 'message/rfc822' || type === 'message/global') && !opaque) {
      this.#region = { kind: 'header', part: this.#newPart(false, true) };
    } else this.#region = { kind: 'leaf', part };
  }

  /** Whether `line` is a boundary of an enclosing multipart; if so, the walk moves past it. */
  #boundary(line: Uint8Array): boolean {
    if (line.length < 3 || line[0] !== DASH || line[1] !== DASH || this.#frames.length === 0) return false;
    for (let f = this.#frames.length - 1; f >= 0; f--) {
      const frame = this.#frames[f]!;
      const d = frame.delimiter;
      if (line.length < d.length || !startsWith(line, d)) continue;
      let rest = line.subarray(d.length);
      const close = rest.length >= 2 && rest[0] === DASH && rest[1] === DASH;
      if (close) rest = rest.subarray(2);
      if (!rest.every((b) => b === SP || b === TAB)) continue;
      // A boundary: the line break before it is part of it, and the region it ends is over.
      const region = this.#region;
      if (region.kind !== 'header') {
        this.bodyEnd(region, false);
      } else if (region.part.index !== frame.part.index) {
        // A part whose header section never ended (no empty line): it had no body.
        this.headerEnd(region.part, EMPTY);
      }
      if (this.#pendingEol !== null) this.structure(this.#pendingEol);
      this.#pendingEol = null;
      this.#frames.length = f + 1;
      this.structure(line);
      if (close) {
        this.#frames.pop();
        this.#region = { kind: 'filler', part: frame.part };
      } else {
        this.#region = {
          kind: 'header',
          part: this.#newPart(mediaType(frame.part) === 'multipart/digest', false),
        };
      }
      this.#field = null;
      return true;
    }
    return false;
  }
}

function startsWith(a: Uint8Array, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}

interface PartFacts {
  info: PartInfo;
  leaf: boolean;
  long: boolean;
  bytes: number;
  /** Bytes quoted-printable would have to write as =XX. */
  escapes: number;
  eightBit: boolean;
  utf8: boolean;
  utf8Decoder: InstanceType<typeof TextDecoder>;
  /** A NUL octet in the body (only looked for with encodeNul). */
  nul: boolean;
}

/**
 * Pass 1: push the message, then plan(). With `encodeNul`, a part whose body holds a NUL octet is
 * encoded too (IMAP APPEND of a literal8, RFC 3516 §4.4: NUL cannot be stored in a 7bit/8bit part).
 */
export class LongLineScan extends MimeWalk {
  readonly #facts = new Map<number, PartFacts>();
  #needed = false;
  readonly #encodeNul: boolean;

  constructor(options: { readonly encodeNul?: boolean } = {}) {
    super();
    this.#encodeNul = options.encodeNul === true;
  }

  push(chunk: Uint8Array): void {
    this.walk(chunk);
  }

  plan(): LongLinePlan {
    this.endWalk();
    const parts: PartPlan[] = [];
    for (const f of [...this.#facts.values()].sort((a, b) => a.info.index - b.info.index)) {
      parts[f.info.index] = planPart(f);
    }
    for (let i = 0; i < parts.length; i++) parts[i] ??= { action: 'keep', addFields: [] };
    return { needed: this.#needed, parts };
  }

  #of(part: PartInfo): PartFacts {
    let f = this.#facts.get(part.index);
    if (f === undefined) {
      f = {
        info: part,
        leaf: false,
        long: false,
        bytes: 0,
        escapes: 0,
        eightBit: false,
        utf8: true,
        utf8Decoder: new TextDecoder('utf-8', { fatal: true }),
        nul: false,
      };
      this.#facts.set(part.index, f);
    }
    return f;
  }

  protected headerLine(part: PartInfo): void {
    this.#of(part);
  }
  protected headerEol(): void {}
  protected headerEnd(part: PartInfo): void {
    this.#of(part);
  }
  protected structure(): void {}

  protected bodyBytes(region: Region, bytes: Uint8Array): void {
    if (region.kind !== 'leaf') return;
    const f = this.#of(region.part);
    f.leaf = true;
    f.bytes += bytes.length;
    for (const b of bytes) {
      if (b > 126 || (b < 32 && b !== TAB && b !== CR && b !== LF) || b === EQ) f.escapes++;
      if (b > 127) f.eightBit = true;
    }
    if (this.#encodeNul && !f.nul && bytes.includes(0)) {
      f.nul = true;
      this.#needed = true;
    }
    if (f.utf8) {
      try {
        f.utf8Decoder.decode(bytes, { stream: true });
      } catch {
        f.utf8 = false;
      }
    }
  }

  protected bodyEnd(region: Region): void {
    if (region.kind !== 'leaf') return;
    const f = this.#of(region.part);
    f.leaf = true;
    if (f.utf8) {
      try {
        f.utf8Decoder.decode();
      } catch {
        f.utf8 = false;
      }
    }
  }

  protected longLine(region: Region): void {
    this.#needed = true;
    if (region.kind === 'leaf') this.#of(region.part).long = true;
  }
}

function planPart(f: PartFacts): PartPlan {
  if (!f.leaf || !(f.long || f.nul)) return { action: 'keep', addFields: [] };
  const cte = mechanism(f.info);
  switch (cte) {
    case 'quoted-printable':
      return { action: 'rewrap-qp', addFields: [] };
    case 'base64':
      return { action: 'rewrap-base64', addFields: [] };
    case '':
    case '7bit':
    case '8bit':
    case 'binary':
      break;
    default:
      // An encoding we cannot decode cannot be re-encoded without loss of its label.
      return { action: 'break', addFields: [] };
  }
  const text = mediaType(f.info).startsWith('text/');
  // Quoted-printable spends 3 octets per escape, base64 4 per 3: past one escape in six, base64 is smaller.
  const action: BodyAction = text && !f.nul && f.escapes * 6 <= f.bytes ? 'quoted-printable' : 'base64';
  const addFields: string[] = [];
  if (f.info.messageTop && !f.info.mimeVersion) {
    addFields.push('MIME-Version: 1.0');
    if (f.info.contentType === null) {
      const charset = !f.eightBit ? 'us-ascii' : f.utf8 ? 'utf-8' : 'unknown-8bit';
      addFields.push(`Content-Type: text/plain; charset=${charset}`);
    }
  }
  addFields.push(`Content-Transfer-Encoding: ${action}`);
  return { action, addFields };
}

/** Collects output bytes of one push. */
class Out {
  #buf = new Uint8Array(1024);
  #n = 0;

  byte(b: number): void {
    if (this.#n === this.#buf.length) this.#grow(1);
    this.#buf[this.#n++] = b;
  }

  bytes(bytes: Uint8Array): void {
    if (this.#n + bytes.length > this.#buf.length) this.#grow(bytes.length);
    this.#buf.set(bytes, this.#n);
    this.#n += bytes.length;
  }

  take(): Uint8Array {
    const out = this.#buf.slice(0, this.#n);
    this.#n = 0;
    if (this.#buf.length > 1 << 20) this.#buf = new Uint8Array(1024);
    return out;
  }

  #grow(need: number): void {
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#n + need));
    next.set(this.#buf.subarray(0, this.#n));
    this.#buf = next;
  }
}

/** A body transform of the encoding pass. */
interface BodyCoder {
  push(bytes: Uint8Array, out: Out): void;
  /** `atEnd`: the message ends here, so the last line gets its line break. */
  end(out: Out, atEnd: boolean): void;
}

/** Quoted-printable (RFC 2045 §6.7): CRLF is a hard line break; lines of at most 76 octets. */
class QpEncoder implements BodyCoder {
  #lineLen = 0;
  #pendingWs = -1;
  #pendingCR = false;

  push(bytes: Uint8Array, out: Out): void {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.#pendingCR) {
        this.#pendingCR = false;
        if (b === LF) {
          // White space before a line break would be taken for transport padding (rule 3).
          if (this.#pendingWs >= 0) this.#escaped(this.#pendingWs, out);
          this.#pendingWs = -1;
          out.bytes(CRLF);
          this.#lineLen = 0;
          continue;
        }
        this.#flushWs(out);
        this.#escaped(CR, out);
      }
      if (b === CR) {
        this.#pendingCR = true;
        continue;
      }
      this.#flushWs(out);
      if (b === SP || b === TAB) this.#pendingWs = b;
      // A "-" never starts a line: no encoded line can look like a boundary.
      else if (b >= 33 && b <= 126 && b !== EQ && !(b === DASH && this.#lineLen === 0)) this.#literal(b, out);
      else this.#escaped(b, out);
    }
  }

  end(out: Out, atEnd: boolean): void {
    if (this.#pendingCR) {
      this.#flushWs(out);
      this.#escaped(CR, out);
      this.#pendingCR = false;
    }
    if (this.#pendingWs >= 0) this.#escaped(this.#pendingWs, out);
    this.#pendingWs = -1;
    if (atEnd && this.#lineLen > 0) out.bytes(encoder.encode('=\r\n'));
    this.#lineLen = 0;
  }

  #flushWs(out: Out): void {
    if (this.#pendingWs >= 0) this.#literal(this.#pendingWs, out);
    this.#pendingWs = -1;
  }

  #literal(b: number, out: Out): void {
    if (this.#lineLen + 1 > ENCODED_LINE - 1) this.#softBreak(out);
    out.byte(b);
    this.#lineLen++;
  }

  #escaped(b: number, out: Out): void {
    if (this.#lineLen + 3 > ENCODED_LINE - 1) this.#softBreak(out);
    out.byte(EQ);
    out.byte(HEX.charCodeAt(b >> 4));
    out.byte(HEX.charCodeAt(b & 15));
    this.#lineLen += 3;
  }

  #softBreak(out: Out): void {
    out.byte(EQ);
    out.bytes(CRLF);
    this.#lineLen = 0;
  }
}

/** Base64 (RFC 2045 §6.8) in lines of 76 characters. */
class Base64Encoder implements BodyCoder {
  #carry: Uint8Array = EMPTY;
  #lines = 0;

  push(bytes: Uint8Array, out: Out): void {
    const all = this.#carry.length === 0 ? bytes : concat(this.#carry, bytes);
    const whole = all.length - (all.length % 57);
    for (let i = 0; i < whole; i += 57) this.#line(all.subarray(i, i + 57), out);
    this.#carry = all.slice(whole);
  }

  end(out: Out, atEnd: boolean): void {
    if (this.#carry.length > 0) this.#line(this.#carry, out);
    this.#carry = EMPTY;
    if (atEnd && this.#lines > 0) out.bytes(CRLF);
    this.#lines = 0;
  }

  #line(bytes: Uint8Array, out: Out): void {
    // Line breaks between lines only: the one after the last belongs to the boundary that follows.
    if (this.#lines++ > 0) out.bytes(CRLF);
    out.bytes(encoder.encode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64')));
  }
}

/**
 * Content passed through as it is, with a break added where a line would grow past its limit: for
 * quoted-printable a soft line break that never splits an =XX escape, for base64 a plain line break
 * (decoders skip both), for anything else CRLF SP (a change, but never a line starting with "--").
 */
class LineBreaker implements BodyCoder {
  readonly #kind: 'qp' | 'base64' | 'other';
  readonly #max: number;
  #lineLen = 0;
  /** Octets left of an =XX escape (quoted-printable). */
  #escapeLeft = 0;
  #afterBreak = false;

  constructor(kind: 'qp' | 'base64' | 'other') {
    this.#kind = kind;
    this.#max = kind === 'base64' ? ENCODED_LINE : MAX_LINE_OCTETS;
  }

  push(bytes: Uint8Array, out: Out): void {
    let i = 0;
    const n = bytes.length;
    while (i < n) {
      // Fast path: the rest of this line fits as it is.
      const lf = bytes.indexOf(LF, i);
      const lineEnd = lf < 0 ? n : lf + 1;
      if (!this.#afterBreak && this.#escapeLeft === 0 && this.#lineLen + (lineEnd - i) <= this.#max) {
        out.bytes(bytes.subarray(i, lineEnd));
        this.#lineLen = lf < 0 ? this.#lineLen + (lineEnd - i) : 0;
        if (lf < 0 && this.#kind === 'qp') this.#escapeLeft = trailingEscape(bytes, i, lineEnd);
        i = lineEnd;
        continue;
      }
      const b = bytes[i++]!;
      if (b === CR || b === LF) {
        out.byte(b);
        if (b === LF) this.#lineLen = 0;
        this.#escapeLeft = 0;
        this.#afterBreak = false;
        continue;
      }
      this.#one(b, out);
    }
  }

  end(out: Out, atEnd: boolean): void {
    if (atEnd && this.#lineLen > 0 && this.#kind === 'base64') out.bytes(CRLF);
    this.#lineLen = 0;
    this.#escapeLeft = 0;
    this.#afterBreak = false;
  }

  #one(b: number, out: Out): void {
    switch (this.#kind) {
      case 'qp': {
        if (this.#escapeLeft > 0) {
          this.#escapeLeft--;
          break;
        }
        const token = b === EQ ? 3 : 1;
        if (this.#lineLen + token > this.#max - 1) {
          out.byte(EQ);
          out.bytes(CRLF);
          this.#lineLen = 0;
          this.#afterBreak = true;
        }
        if (b === EQ) this.#escapeLeft = 2;
        else if (b === DASH && this.#afterBreak) {
          // "=2D" decodes to the same "-" and keeps the new line from looking like a boundary.
          out.bytes(encoder.encode('=2D'));
          this.#lineLen += 3;
          this.#afterBreak = false;
          return;
        }
        this.#afterBreak = false;
        break;
      }
      case 'base64':
        if (this.#lineLen >= this.#max) {
          out.bytes(CRLF);
          this.#lineLen = 0;
        }
        break;
      case 'other':
        if (this.#lineLen >= this.#max) {
          out.bytes(CRLF);
          out.byte(SP);
          this.#lineLen = 1;
        }
        break;
      default:
        return assertNever(this.#kind);
    }
    out.byte(b);
    this.#lineLen++;
  }
}

/** Octets of an =XX escape still to come after bytes[from, to) (quoted-printable). */
function trailingEscape(bytes: Uint8Array, from: number, to: number): number {
  if (to - 1 >= from && bytes[to - 1] === EQ) return 2;
  if (to - 2 >= from && bytes[to - 2] === EQ) return 1;
  return 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Pass 2: push the same message again; each push returns the output so far. */
export class LongLineEncoder extends MimeWalk {
  readonly #plan: LongLinePlan;
  readonly #out = new Out();
  /** The header line being written, for folding. */
  readonly #fold = new Uint8Array(MAX_LINE_OCTETS);
  #foldLen = 0;
  /** The current header field is dropped (the Content-Transfer-Encoding of a part being re-encoded). */
  #dropping = false;
  #coder: BodyCoder | null = null;
  #coderPart = -1;

  constructor(plan: LongLinePlan) {
    super();
    this.#plan = plan;
  }

  push(chunk: Uint8Array): Uint8Array {
    this.walk(chunk);
    return this.#out.take();
  }

  finish(): Uint8Array {
    this.endWalk();
    return this.#out.take();
  }

  #partPlan(part: PartInfo): PartPlan {
    return this.#plan.parts[part.index] ?? { action: 'keep', addFields: [] };
  }

  protected headerLine(part: PartInfo, field: string | null, piece: Uint8Array, first: boolean): void {
    if (first) {
      const action = this.#partPlan(part).action;
      const reencoded = action === 'quoted-printable' || action === 'base64';
      // A continuation line keeps the decision of the field it continues.
      if (piece[0] !== SP && piece[0] !== TAB) {
        this.#dropping = reencoded && field === 'content-transfer-encoding';
      }
    }
    if (this.#dropping) return;
    for (let i = 0; i < piece.length;) {
      if (this.#foldLen === MAX_LINE_OCTETS) this.#foldOnce();
      const take = Math.min(MAX_LINE_OCTETS - this.#foldLen, piece.length - i);
      this.#fold.set(piece.subarray(i, i + take), this.#foldLen);
      this.#foldLen += take;
      i += take;
    }
  }

  /** The held header line is full and more follows: break it before its last white space. */
  #foldOnce(): void {
    const line = this.#fold;
    let at = this.#foldLen - 1;
    while (at > 0 && line[at] !== SP && line[at] !== TAB) at--;
    if (at > 0) {
      this.#out.bytes(line.subarray(0, at));
      this.#out.bytes(CRLF);
      line.copyWithin(0, at, this.#foldLen);
      this.#foldLen -= at;
    } else {
      // No white space to fold at: the value gains one space here.
      this.#out.bytes(line.subarray(0, this.#foldLen));
      this.#out.bytes(CRLF);
      line[0] = SP;
      this.#foldLen = 1;
    }
  }

  protected headerEol(_part: PartInfo, _field: string | null, eol: Uint8Array): void {
    if (this.#dropping) return;
    this.#out.bytes(this.#fold.subarray(0, this.#foldLen));
    this.#foldLen = 0;
    this.#out.bytes(eol);
  }

  protected headerEnd(part: PartInfo, eol: Uint8Array): void {
    this.#dropping = false;
    if (this.#foldLen > 0) {
      this.#out.bytes(this.#fold.subarray(0, this.#foldLen));
      this.#out.bytes(CRLF);
      this.#foldLen = 0;
    }
    for (const f of this.#partPlan(part).addFields) {
      this.#out.bytes(encoder.encode(f));
      this.#out.bytes(CRLF);
    }
    this.#out.bytes(eol);
  }

  protected structure(bytes: Uint8Array): void {
    this.#out.bytes(bytes);
  }

  protected longLine(): void {}

  protected bodyBytes(region: Region, bytes: Uint8Array): void {
    this.#coderFor(region).push(bytes, this.#out);
  }

  protected bodyEnd(region: Region, atEnd: boolean): void {
    this.#coderFor(region).end(this.#out, atEnd);
    this.#coder = null;
    this.#coderPart = -1;
  }

  #coderFor(region: Region): BodyCoder {
    const key = region.kind === 'leaf' ? region.part.index : -2 - region.part.index;
    if (this.#coder !== null && this.#coderPart === key) return this.#coder;
    let coder: BodyCoder;
    if (region.kind !== 'leaf') coder = new LineBreaker('other');
    else {
      const action = this.#partPlan(region.part).action;
      switch (action) {
        case 'quoted-printable':
          coder = new QpEncoder();
          break;
        case 'base64':
          coder = new Base64Encoder();
          break;
        case 'rewrap-qp':
          coder = new LineBreaker('qp');
          break;
        case 'rewrap-base64':
          coder = new LineBreaker('base64');
          break;
        case 'keep':
        case 'break':
          // 'keep' had no long line in the first pass; breaking is still the guard if it has now.
          coder = new LineBreaker('other');
          break;
        default:
          return assertNever(action);
      }
    }
    this.#coder = coder;
    this.#coderPart = key;
    return coder;
  }
}
