// SECURITY: the IMAP command reader. It sees every byte a client sends before login.
//
// Bytes in → commands out: it frames lines (LineFramer), follows literal announcements at line ends
// ({n} synchronizing, {n+} non-synchronizing of LITERAL+ / LITERAL- RFC 7888, ~{n} literal8 of BINARY
// RFC 3516), collects small literals (strings) up to maxLiteralBytes, and streams APPEND message literals
// to the driver in pieces, never whole. A complete command is parsed (parse-command.ts) into the AST.
// Pull model: push(bytes), then next() until null. Between next() calls the driver may switch the reader
// to raw lines (expectLine: IDLE's DONE, AUTHENTICATE responses), refuse the literal it was just asked
// for (refuseLiteral), or drop everything buffered (discard: STARTTLS).
// Pure and total: no I/O, timers or clocks; never throws on input. Memory: the framer's line buffer
// (< maxLineBytes after next() returns null) plus one command's text and small literals
// (≤ maxCommandBytes); message literals are passed through. RFC 9051 §4.3 and §7.5 (continuation).
// Deliberately NOT here: "+ Ready" itself, states, which literals a client may send non-synchronizing
// (LITERAL- limits are the session's: it sees each literal-wanted event first).

import type { AppendMessageHead, AppendPosition, ImapCommand } from './command.ts';
import { LineFramer } from '../framing.ts';
import { parseCommand, readTag } from './parse-command.ts';
import type { ImapParseError, Item } from './syntax.ts';

export interface ImapReaderLimits {
  /** One line with its CRLF (command text between literals). */
  readonly maxLineBytes: number;
  /** One string literal (not an APPEND message). */
  readonly maxLiteralBytes: number;
  /** One APPEND message (APPENDLIMIT). */
  readonly maxMessageBytes: number;
  /** A whole command's text and string literals, message literals not counted. */
  readonly maxCommandBytes: number;
  /** Literals of all kinds in one command (bounds the re-parse an announcement costs). */
  readonly maxLiteralsPerCommand: number;
}

export const DEFAULT_READER_LIMITS: ImapReaderLimits = {
  maxLineBytes: 64 * 1024,
  maxLiteralBytes: 64 * 1024,
  maxMessageBytes: 64 * 1024 * 1024,
  maxCommandBytes: 256 * 1024,
  maxLiteralsPerCommand: 1000,
};

export type ReaderEvent =
  /** A complete command. An APPEND's messages were streamed before it (append-data events). */
  | { readonly kind: 'command'; readonly tag: string; readonly command: ImapCommand }
  /** A bad command: answer BAD (tagged when tag is not null); the command is over. */
  | { readonly kind: 'error'; readonly tag: string | null; readonly error: ImapParseError }
  /**
   * A literal of sizeBytes is announced. sync: the client waits for "+ " before sending it. message
   * (APPEND data): non-null, its bytes follow as append-data events (none when sizeBytes is 0).
   * The driver may call refuseLiteral() now (quota, APPENDLIMIT of the mailbox) and answer NO.
   */
  | {
      readonly kind: 'literal-wanted';
      readonly tag: string;
      readonly sizeBytes: number;
      readonly sync: boolean;
      readonly binary: boolean;
      readonly message: AppendMessageHead | null;
      /** For a message: the APPEND's target mailbox as the client wrote it. */
      readonly mailbox: string | null;
      /** Counts the command's message literals from 0 (StreamRef.index). */
      readonly index: number;
      /** For a message: where it sits in the command (CATENATE parts, RFC 4469). */
      readonly position?: AppendPosition | null;
    }
  | { readonly kind: 'append-data'; readonly chunk: Uint8Array; readonly last: boolean }
  /** A raw line after expectLine(), without its line ending; `tooLong`: over the limit, dropped (empty). */
  | { readonly kind: 'line'; readonly line: Uint8Array; readonly tooLong: boolean };

type Mode =
  | { readonly kind: 'line' }
  | { kind: 'string-literal'; readonly buffer: Uint8Array; filled: number }
  | { readonly kind: 'stream' }
  /** A refused or broken command: its literals and lines are dropped until it ends. */
  | { readonly kind: 'skip-literal' }
  | { readonly kind: 'skip-lines' };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const lenient = new TextDecoder('utf-8');

interface Announcement {
  /** Where "{" (or "~") starts. */
  readonly start: number;
  readonly sizeBytes: number;
  readonly sync: boolean;
  readonly binary: boolean;
}

/** A literal announcement at a line's end: "{n}", "{n+}" or "~{n}" (the last only synchronizing). */
export function literalAnnouncement(line: Uint8Array): Announcement | null | 'invalid' {
  let q = line.length - 1;
  if (q < 2 || line[q] !== 0x7d) return null;
  q--;
  const sync = line[q] !== 0x2b;
  if (!sync) q--;
  const digitsEnd = q + 1;
  while (q >= 0 && line[q]! >= 0x30 && line[q]! <= 0x39) q--;
  if (q < 0 || line[q] !== 0x7b || q + 1 === digitsEnd) return null;
  if (digitsEnd - q - 1 > 19) return 'invalid';
  let size = 0;
  for (let k = q + 1; k < digitsEnd; k++) size = size * 10 + (line[k]! - 0x30);
  const binary = q > 0 && line[q - 1] === 0x7e;
  return { start: binary ? q - 1 : q, sizeBytes: size, sync, binary };
}

export class ImapCommandReader {
  private readonly limits: ImapReaderLimits;
  private readonly framer: LineFramer;
  private items: Item[] = [];
  private commandBytes = 0;
  private literals = 0;
  private streams = 0;
  private mode: Mode = { kind: 'line' };
  private rawLine = false;
  /** The last literal-wanted event, while refuseLiteral() may still apply to it. */
  private refusable: { readonly sync: boolean; readonly sizeBytes: number } | null = null;

  constructor(limits: Partial<ImapReaderLimits> = {}) {
    this.limits = { ...DEFAULT_READER_LIMITS, ...limits };
    this.framer = new LineFramer({ maxLineBytes: this.limits.maxLineBytes });
  }

  push(bytes: Uint8Array): void {
    this.framer.push(bytes);
  }

  /** Bytes held: the framer's buffer, the command so far and a string literal being read. */
  get bufferedBytes(): number {
    const literal = this.mode.kind === 'string-literal' ? this.mode.buffer.length : 0;
    return this.framer.bufferedBytes + this.commandBytes + literal;
  }

  /** The next line is returned raw (IDLE's DONE, an AUTHENTICATE response), not parsed as a command. */
  expectLine(): void {
    this.rawLine = true;
  }

  /**
   * Refuse the literal of the last literal-wanted event: a synchronizing one is never sent (the client
   * abandons the command when it gets the NO); a non-synchronizing one is read and dropped with the rest
   * of its command (RFC 7888 §4). Returns false when there is nothing to refuse.
   */
  refuseLiteral(): boolean {
    const r = this.refusable;
    if (r === null) return false;
    this.refusable = null;
    this.resetCommand();
    if (r.sync) {
      this.framer.expectLiteral(0);
      this.mode = { kind: 'line' };
    } else {
      this.framer.expectLiteral(r.sizeBytes);
      this.mode = r.sizeBytes > 0 ? { kind: 'skip-literal' } : { kind: 'skip-lines' };
    }
    return true;
  }

  /** Drop everything buffered (STARTTLS: bytes read before the handshake are never parsed). */
  discard(): number {
    const n = this.framer.discard();
    this.resetCommand();
    this.mode = { kind: 'line' };
    this.rawLine = false;
    this.refusable = null;
    return n;
  }

  next(): ReaderEvent | null {
    for (;;) {
      const frame = this.framer.next();
      if (frame === null) return null;
      this.refusable = null;
      switch (frame.kind) {
        case 'literal': {
          const m = this.mode;
          if (m.kind === 'stream') {
            if (frame.last) this.mode = { kind: 'line' };
            return { kind: 'append-data', chunk: frame.chunk, last: frame.last };
          }
          if (m.kind === 'string-literal') {
            m.buffer.set(frame.chunk, m.filled);
            m.filled += frame.chunk.length;
            if (frame.last) {
              this.mode = { kind: 'line' };
              const value = decodeText(m.buffer);
              if (value === null) {
                const ev = this.fail({ kind: 'bad-text', text: 'Literal is not UTF-8 text' });
                this.mode = { kind: 'skip-lines' };
                return ev;
              }
              this.items.push({ kind: 'literal', value });
            }
            continue;
          }
          if (m.kind === 'skip-literal' && frame.last) this.mode = { kind: 'skip-lines' };
          continue;
        }
        case 'overlong': {
          if (this.rawLine) {
            // IDLE's DONE or a SASL response that is far too long: the driver ends that command.
            this.rawLine = false;
            return { kind: 'line', line: new Uint8Array(0), tooLong: true };
          }
          // The tag is the line's first word, whether the command began on an earlier line or here
          // (RFC 9051 §7.1.3 keeps the untagged BAD for lines whose command cannot be told).
          const head = lenient.decode(frame.head);
          // A head without a space is no tag followed by a command: nothing to answer it by.
          const items: Item[] | null =
            this.items.length > 0 ? this.items : / /.test(head) ? [{ kind: 'text', text: head }] : null;
          const tag = items === null ? null : readTag(items);
          this.resetCommand();
          this.mode = { kind: 'line' };
          return { kind: 'error', tag, error: { kind: 'too-big', text: 'Command line too long' } };
        }
        case 'line': {
          if (this.rawLine) {
            this.rawLine = false;
            return { kind: 'line', line: frame.line, tooLong: false };
          }
          const ev = this.onLine(frame.line);
          if (ev !== null) return ev;
          continue;
        }
        default:
          return frame satisfies never;
      }
    }
  }

  private resetCommand(): void {
    this.items = [];
    this.commandBytes = 0;
    this.literals = 0;
    this.streams = 0;
  }

  /** Report an error for the command so far and drop it. */
  private fail(error: ImapParseError): ReaderEvent {
    const tag = readTag(this.items);
    this.resetCommand();
    return { kind: 'error', tag, error };
  }

  /** After an error on a line announcing a literal: a non-synchronizing one must still be read. */
  private skipAfter(ann: Announcement | null): void {
    if (ann !== null && !ann.sync && ann.sizeBytes > 0) {
      this.framer.expectLiteral(ann.sizeBytes);
      this.mode = { kind: 'skip-literal' };
    } else if (ann !== null && !ann.sync) this.mode = { kind: 'skip-lines' };
    else this.mode = { kind: 'line' };
  }

  private onLine(line: Uint8Array): ReaderEvent | null {
    const found = literalAnnouncement(line);
    const ann = found === 'invalid' ? null : found;
    if (this.mode.kind === 'skip-lines') {
      // The broken command goes on while its lines announce non-synchronizing literals.
      this.skipAfter(ann);
      return null;
    }
    // Empty lines between commands are ignored, as most servers do.
    if (line.length === 0 && this.items.length === 0) return null;
    const text = decodeText(ann === null ? line : line.subarray(0, ann.start));
    this.commandBytes += line.length + 2;
    // A line that is not text still gives its tag for the BAD, when the tag itself is readable.
    this.items.push({ kind: 'text', text: text ?? lenient.decode(line) });
    if (text === null) {
      const ev = this.fail({ kind: 'bad-text', text: 'Command is not UTF-8 text' });
      this.skipAfter(ann);
      return ev;
    }
    if (found === 'invalid') return this.fail({ kind: 'too-big', text: 'Literal too large' });
    if (this.commandBytes > this.limits.maxCommandBytes) {
      const ev = this.fail({ kind: 'too-big', text: 'Command too long' });
      this.skipAfter(ann);
      return ev;
    }
    if (ann === null) {
      const r = parseCommand(this.items);
      this.resetCommand();
      if (r.ok === true) return { kind: 'command', tag: r.tag, command: r.command };
      if (r.ok === false) return { kind: 'error', tag: r.tag, error: r.error };
      return { kind: 'error', tag: r.tag, error: { kind: 'syntax', text: 'Missing literal' } };
    }
    if (++this.literals > this.limits.maxLiteralsPerCommand) {
      const ev = this.fail({ kind: 'too-big', text: 'Too many literals in one command' });
      this.skipAfter(ann);
      return ev;
    }
    const r = parseCommand([
      ...this.items,
      { kind: 'pending', sizeBytes: ann.sizeBytes, binary: ann.binary },
    ]);
    if (r.ok !== 'pending') {
      const error: ImapParseError = r.ok === false ? r.error : { kind: 'syntax', text: 'Unexpected literal' };
      const ev = this.fail(error);
      this.skipAfter(ann);
      return ev;
    }
    if (r.role === 'message') {
      if (ann.sizeBytes > this.limits.maxMessageBytes) {
        const ev = this.fail({ kind: 'too-big', text: 'Message too large' });
        this.skipAfter(ann);
        return ev;
      }
      const index = this.streams++;
      this.items.push({ kind: 'stream', index, sizeBytes: ann.sizeBytes, binary: ann.binary });
      this.framer.expectLiteral(ann.sizeBytes);
      this.mode = ann.sizeBytes > 0 ? { kind: 'stream' } : { kind: 'line' };
      this.refusable = { sync: ann.sync, sizeBytes: ann.sizeBytes };
      return {
        kind: 'literal-wanted',
        tag: r.tag,
        sizeBytes: ann.sizeBytes,
        sync: ann.sync,
        binary: ann.binary,
        message: r.head ?? { flags: null, date: null },
        mailbox: r.mailbox,
        index,
        position: r.position ?? null,
      };
    }
    if (
      ann.sizeBytes > this.limits.maxLiteralBytes ||
      this.commandBytes + ann.sizeBytes > this.limits.maxCommandBytes
    ) {
      const ev = this.fail({ kind: 'too-big', text: 'Literal too large' });
      this.skipAfter(ann);
      return ev;
    }
    this.commandBytes += ann.sizeBytes;
    this.framer.expectLiteral(ann.sizeBytes);
    if (ann.sizeBytes > 0)
      this.mode = { kind: 'string-literal', buffer: new Uint8Array(ann.sizeBytes), filled: 0 };
    else this.items.push({ kind: 'literal', value: '' });
    this.refusable = { sync: ann.sync, sizeBytes: ann.sizeBytes };
    return {
      kind: 'literal-wanted',
      tag: r.tag,
      sizeBytes: ann.sizeBytes,
      sync: ann.sync,
      binary: false,
      message: null,
      mailbox: null,
      index: -1,
    };
  }
}

/** UTF-8 text without NUL (RFC 9051 §4.3: CHAR8 excludes NUL), or null. */
function decodeText(bytes: Uint8Array): string | null {
  if (bytes.includes(0)) return null;
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}
