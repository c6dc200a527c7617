// SECURITY: the ManageSieve command reader. It sees every byte a client sends before authentication.
//
// Bytes in → commands (lists of items) out. It frames lines (LineFramer), follows a literal announcement at
// a line's end ("{n+}", and "{n}" which RFC 5804 clients should not send but servers in practice accept:
// ManageSieve has no continuation response, so both are read at once), collects the literal's octets as
// UTF-8 text, and goes on with the command on the line after it. Limits: every line (maxLineBytes), every
// literal (the caller's literalLimit for the position and state: a script, a SASL response, anything
// else), items per command. A literal over its limit is read and dropped with the rest of its command (an
// error event the session answers NO), unless it is larger than its maxSkipBytes or its size is beyond
// 32 bits: then its end is not worth finding and a fatal event asks the session to say BYE.
// Pull model: push(bytes), then next() until null. Pure and total: no I/O, timers or clocks; never throws
// on input. Memory: the framer's line buffer plus one command's items and one literal (each bounded).
// Deliberately NOT here: what a command means (parse.ts), states and answers (session.ts).

import { LineFramer } from '../framing.ts';
import { literalAnnouncement, tokenizeLine, type Announcement, type Item } from './parse.ts';

export interface LiteralLimit {
  /** The largest literal accepted here. */
  readonly maxBytes: number;
  /** The largest literal read and dropped when over maxBytes; a larger one ends the connection. */
  readonly maxSkipBytes: number;
}

export interface SieveReaderLimits {
  /** One line with its CRLF. */
  readonly maxLineBytes: number;
  /** The limits for a literal that would be the next item of a command whose items so far are `items`. */
  readonly literalLimit: (items: readonly Item[]) => LiteralLimit;
}

/** Items in one command: the longest command (RENAMESCRIPT, PUTSCRIPT) has three. */
export const MAX_ITEMS_PER_COMMAND = 8;

export type ReadError =
  /** A line over maxLineBytes. */
  | 'line-too-long'
  /** A line or string literal that is not UTF-8 text, or holds NUL. */
  | 'not-utf8'
  /** Tokens that are not ManageSieve syntax. */
  | 'syntax'
  /** A literal over its limit; it is being skipped. */
  | 'literal-too-large'
  | 'too-many-items';

export type ReaderEvent =
  | { readonly kind: 'command'; readonly items: readonly Item[] }
  /** A broken command: answer NO; `items` is what came before the fault (the verb, for the answer). */
  | { readonly kind: 'error'; readonly error: ReadError; readonly items: readonly Item[] }
  /** A literal that cannot be skipped: answer BYE and close. */
  | { readonly kind: 'fatal'; readonly items: readonly Item[] };

type Mode =
  | { readonly kind: 'line' }
  | { readonly kind: 'literal'; readonly chunks: Uint8Array[]; filled: number }
  /** A refused or broken command: its literals and lines are dropped until it ends. */
  | { readonly kind: 'skip-literal' }
  | { readonly kind: 'skip-lines' };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 text without NUL, or null. */
export function decodeText(bytes: Uint8Array): string | null {
  if (bytes.includes(0)) return null;
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

export class SieveReader {
  private readonly limits: SieveReaderLimits;
  private readonly framer: LineFramer;
  private items: Item[] = [];
  /** The command's next line continues it after a literal. */
  private continued = false;
  private mode: Mode = { kind: 'line' };

  constructor(limits: SieveReaderLimits) {
    this.limits = limits;
    this.framer = new LineFramer({ maxLineBytes: limits.maxLineBytes });
  }

  push(bytes: Uint8Array): void {
    this.framer.push(bytes);
  }

  /** Bytes held: the framer's buffer and a literal being collected. */
  get bufferedBytes(): number {
    return this.framer.bufferedBytes + (this.mode.kind === 'literal' ? this.mode.filled : 0);
  }

  /** Drop everything buffered (STARTTLS: bytes read before the handshake are never parsed). */
  discard(): number {
    const n = this.framer.discard() + (this.mode.kind === 'literal' ? this.mode.filled : 0);
    this.reset();
    this.mode = { kind: 'line' };
    return n;
  }

  next(): ReaderEvent | null {
    for (;;) {
      const frame = this.framer.next();
      if (frame === null) return null;
      switch (frame.kind) {
        case 'literal': {
          const m = this.mode;
          if (m.kind === 'literal') {
            // A copy: the framer's chunk is a view of the caller's buffer.
            m.chunks.push(frame.chunk.slice());
            m.filled += frame.chunk.length;
            if (!frame.last) continue;
            this.mode = { kind: 'line' };
            const value = decodeText(concatAll(m.chunks, m.filled));
            if (value === null) {
              const ev = this.fail('not-utf8');
              this.mode = { kind: 'skip-lines' };
              return ev;
            }
            this.items.push({ kind: 'string', value, literal: true });
            this.continued = true;
            continue;
          }
          if (m.kind === 'skip-literal' && frame.last) this.mode = { kind: 'skip-lines' };
          continue;
        }
        case 'overlong': {
          if (this.mode.kind === 'skip-lines') {
            // Still the broken command, already answered.
            this.mode = { kind: 'line' };
            continue;
          }
          // The framer drops the rest of the line; a literal it may have announced is lost with it, and
          // its octets will be read as lines (each answered, counted as errors, until the limit).
          const ev = this.fail('line-too-long');
          this.mode = { kind: 'line' };
          return ev;
        }
        case 'line': {
          const ev = this.onLine(frame.line);
          if (ev !== null) return ev;
          continue;
        }
        default:
          return frame satisfies never;
      }
    }
  }

  private reset(): void {
    this.items = [];
    this.continued = false;
  }

  private fail(error: ReadError): ReaderEvent {
    const items = this.items;
    this.reset();
    return { kind: 'error', error, items };
  }

  /** After an error on a line announcing a literal: its octets must still be read past. */
  private skipAfter(ann: Announcement | null): void {
    if (ann !== null && ann.sizeBytes > 0) {
      this.framer.expectLiteral(ann.sizeBytes);
      this.mode = { kind: 'skip-literal' };
    } else if (ann !== null) this.mode = { kind: 'skip-lines' };
    else this.mode = { kind: 'line' };
  }

  private onLine(line: Uint8Array): ReaderEvent | null {
    const found = literalAnnouncement(line);
    if (this.mode.kind === 'skip-lines') {
      // The broken command goes on while its lines announce literals.
      if (found === 'invalid') return this.fatal();
      this.skipAfter(found);
      return null;
    }
    // Empty lines between commands are ignored, as most servers do.
    if (line.length === 0 && this.items.length === 0 && !this.continued) return null;
    if (found === 'invalid') return this.fatal();
    const ann = found;
    const text = decodeText(ann === null ? line : line.subarray(0, ann.start));
    if (text === null) return this.skipped(this.fail('not-utf8'), ann);
    const tokens = tokenizeLine(text, this.continued, ann !== null);
    if (tokens === null) return this.skipped(this.fail('syntax'), ann);
    this.items.push(...tokens);
    if (this.items.length + (ann === null ? 0 : 1) > MAX_ITEMS_PER_COMMAND)
      return this.skipped(this.fail('too-many-items'), ann);
    if (ann === null) {
      const items = this.items;
      this.reset();
      return { kind: 'command', items };
    }
    const limit = this.limits.literalLimit(this.items);
    if (ann.sizeBytes > limit.maxBytes) {
      if (ann.sizeBytes > limit.maxSkipBytes) return this.fatal();
      return this.skipped(this.fail('literal-too-large'), ann);
    }
    this.framer.expectLiteral(ann.sizeBytes);
    if (ann.sizeBytes > 0) this.mode = { kind: 'literal', chunks: [], filled: 0 };
    else {
      this.items.push({ kind: 'string', value: '', literal: true });
      this.continued = true;
    }
    return null;
  }

  private skipped(ev: ReaderEvent, ann: Announcement | null): ReaderEvent {
    this.skipAfter(ann);
    return ev;
  }

  private fatal(): ReaderEvent {
    const items = this.items;
    this.reset();
    // Nothing after this is read: the session closes.
    this.framer.discard();
    this.mode = { kind: 'line' };
    return { kind: 'fatal', items };
  }
}

function concatAll(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
