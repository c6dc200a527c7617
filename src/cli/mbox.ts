// mbox files for `tern mailbox import|export`, streamed: a reader that turns a byte stream into one
// message at a time (the header section in memory, bounded; the body streamed to the store as it is read,
// never a whole message or mailbox in memory), and a writer of mboxrd (one `>` added to every line that
// matches /^>*From /, so any reader can undo it exactly). Flags travel in the header fields mutt, Pine and
// Dovecot use: Status: (R = \Seen, O = not new), X-Status: (A = \Answered, F = \Flagged, T = \Draft,
// D = \Deleted) and X-Keywords: (keywords, space- or comma-separated).
//
// Reading: a message starts at a line "From " at the start of the file or after an empty line; the
// From_ line's date is the internal date (asctime, UTC unless the line carries a zone, as Dovecot and
// procmail write it). Where a message has a Content-Length: field that lands exactly on the next From_
// line (or the end), that length is trusted and the body is taken as is (Dovecot writes such files and
// does not quote From lines); otherwise lines of the form ">From ", ">>From "... lose one `>` (mboxrd;
// for an mboxo file this also unquotes lines that were ">From " to begin with: the format cannot tell).
// The empty line before the next From_ line is the separator, not part of the message. The fields
// Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase and Content-Length are mail-store bookkeeping
// (Dovecot hides them from IMAP clients too): they are removed from the imported message.
// Deliberately not here: mboxcl's Content-Length without a following From_ line, MMDF (^A^A^A^A),
// file locking (the file should not be in use by another mail program), and character set conversion.
// RFC 4155 (the application/mbox media type) describes the format family.

/** A header section larger than this is not parsed for flags: it is passed on as body. */
export const MAX_HEADER_BYTES = 1024 * 1024;
/** Lines longer than this are passed on in pieces (a line's start is all the From_ tests need). */
const MAX_PIECE_BYTES = 64 * 1024;

const LF = 0x0a;

/** A piece of a line: the whole line with its line ending, or part of an overlong one. */
interface Piece {
  readonly bytes: Buffer;
  /** The piece starts a line. */
  readonly start: boolean;
}

/** Splits a byte stream into lines (pieces of at most MAX_PIECE_BYTES), with one-deep look-ahead. */
export class LineReader {
  readonly #source: AsyncIterator<Uint8Array>;
  #buffer: Buffer = Buffer.alloc(0);
  #atStart = true;
  #ended = false;
  readonly #pushed: Piece[] = [];

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#source = source[Symbol.asyncIterator]();
  }

  unread(piece: Piece): void {
    this.#pushed.push(piece);
  }

  async next(): Promise<Piece | null> {
    const pushed = this.#pushed.pop();
    if (pushed !== undefined) return pushed;
    for (;;) {
      const eol = this.#buffer.indexOf(LF);
      if (eol >= 0 && eol < MAX_PIECE_BYTES) return this.#take(eol + 1, true);
      if (this.#buffer.length >= MAX_PIECE_BYTES) return this.#take(MAX_PIECE_BYTES, false);
      if (this.#ended) return this.#buffer.length > 0 ? this.#take(this.#buffer.length, false) : null;
      const r = await this.#source.next();
      if (r.done === true) this.#ended = true;
      else
        this.#buffer =
          this.#buffer.length === 0 ? Buffer.from(r.value) : Buffer.concat([this.#buffer, r.value]);
    }
  }

  #take(n: number, lineEnds: boolean): Piece {
    const piece = { bytes: this.#buffer.subarray(0, n), start: this.#atStart };
    this.#buffer = this.#buffer.subarray(n);
    this.#atStart = lineEnds;
    return piece;
  }
}

const isBlank = (p: Piece): boolean =>
  p.start &&
  (p.bytes.length === 1 ? p.bytes[0] === LF : p.bytes.length === 2 && p.bytes.toString('latin1') === '\r\n');
const isFromLine = (p: Piece): boolean => p.start && p.bytes.subarray(0, 5).toString('latin1') === 'From ';
const QUOTED_FROM = /^>+From /;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/**
 * The date of a From_ line ("From sender Mon Dec  7 00:32:15 2026", optionally with a zone before or
 * after the year) in epoch ms, or null when there is none to read.
 */
export function parseFromLineDate(line: string): number | null {
  const m =
    /^From \S*\s+(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+(?:([+-]\d{4}|[A-Z]{2,5})\s+)?(\d{4})(?:\s+([+-]\d{4}))?/.exec(
      line,
    );
  if (m === null) return null;
  const month = MONTHS.findIndex((name) => name.toLowerCase() === m[1]!.toLowerCase());
  if (month < 0) return null;
  const ms = Date.UTC(Number(m[7]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5] ?? '0'));
  const zone = [m[6], m[8]].find((z) => z !== undefined && /^[+-]\d{4}$/.test(z));
  if (zone === undefined) return ms;
  const minutes = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5));
  return ms - (zone.startsWith('-') ? -1 : 1) * minutes * 60_000;
}

/** asctime in UTC, as From_ lines carry it: "Thu Jan 15 12:00:05 2026" (day padded with a space). */
export function fromLineDate(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} ${d.getUTCFullYear()}`
  );
}

/** Fields that describe how an mbox stored the message, not the message. */
const BOOKKEEPING = new Set([
  'status',
  'x-status',
  'x-keywords',
  'x-uid',
  'x-imap',
  'x-imapbase',
  'content-length',
]);

/** One header field: its lower-cased name and its raw lines (first line and continuations). */
interface Field {
  readonly name: string;
  readonly lines: Buffer[];
}

function fieldsOf(lines: readonly Buffer[]): Field[] {
  const fields: Field[] = [];
  for (const line of lines) {
    const first = line[0];
    const last = fields[fields.length - 1];
    if ((first === 0x20 || first === 0x09) && last !== undefined) last.lines.push(line);
    else {
      const colon = line.indexOf(0x3a);
      const name = colon < 0 ? '' : line.subarray(0, colon).toString('latin1').trim().toLowerCase();
      fields.push({ name, lines: [line] });
    }
  }
  return fields;
}

const fieldValue = (f: Field): string => {
  const text = Buffer.concat(f.lines).toString('utf8');
  return text
    .slice(text.indexOf(':') + 1)
    .replace(/\r?\n[ \t]/g, ' ')
    .trim();
};

/** The flags an mbox's Status:, X-Status: and X-Keywords: fields give. Unreadable keywords are returned apart. */
export function flagsFromMboxFields(
  status: string,
  xStatus: string,
  xKeywords: string,
): {
  flags: string[];
  dropped: string[];
} {
  const flags: string[] = [];
  if (status.includes('R')) flags.push('\\Seen');
  if (xStatus.includes('A')) flags.push('\\Answered');
  if (xStatus.includes('F')) flags.push('\\Flagged');
  if (xStatus.includes('T')) flags.push('\\Draft');
  if (xStatus.includes('D')) flags.push('\\Deleted');
  const dropped: string[] = [];
  for (const kw of xKeywords.split(/[\s,]+/).filter((k) => k !== '')) {
    if (/^[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]{1,200}$/.test(kw)) flags.push(kw);
    else dropped.push(kw);
  }
  return { flags, dropped };
}

/** Status:, X-Status: and X-Keywords: lines for flags, with the message's own line ending. */
export function mboxFlagFields(flags: readonly string[], eol: string): string {
  const has = (f: string): boolean => flags.includes(f);
  const xStatus = [
    has('\\Answered') ? 'A' : '',
    has('\\Flagged') ? 'F' : '',
    has('\\Draft') ? 'T' : '',
    has('\\Deleted') ? 'D' : '',
  ].join('');
  const keywords = flags.filter((f) => !f.startsWith('\\'));
  let out = `Status: ${has('\\Seen') ? 'RO' : 'O'}${eol}`;
  if (xStatus !== '') out += `X-Status: ${xStatus}${eol}`;
  if (keywords.length > 0) out += `X-Keywords: ${keywords.join(' ')}${eol}`;
  return out;
}

export interface MboxMessage {
  /** The From_ line without "From " and its line ending. */
  readonly fromLine: string;
  /** From the From_ line; null when it has no readable date. */
  readonly internalDateMs: number | null;
  readonly flags: readonly string[];
  /** Keywords in X-Keywords: that are not IMAP atoms, left out. */
  readonly droppedKeywords: readonly string[];
  /** The header section as it will be stored (bookkeeping fields removed), with its empty line. */
  readonly head: Buffer;
  /**
   * The whole message: head, then the body as it is read. Iterate once; whatever is left unread is
   * skipped when the next message is asked for.
   */
  readonly content: AsyncIterable<Uint8Array>;
}

/** Thrown for a file that is not an mbox; the message names what was wrong. */
export class MboxFormatError extends Error {
  override readonly name = 'MboxFormatError';
}

/** The messages of an mbox stream, one at a time (see the header comment). */
export async function* readMbox(source: AsyncIterable<Uint8Array>): AsyncGenerator<MboxMessage> {
  const lines = new LineReader(source);
  let first = await lines.next();
  while (first !== null && isBlank(first)) first = await lines.next();
  if (first === null) return;
  if (!isFromLine(first)) throw new MboxFormatError('does not start with a "From " line');
  let fromPiece: Piece | null = first;
  while (fromPiece !== null) {
    const fromLine = fromPiece.bytes
      .toString('utf8')
      .replace(/\r?\n$/, '')
      .slice(5);
    // The header section, up to and with its empty line.
    const headLines: Buffer[] = [];
    let headBytes = 0;
    let blank: Buffer | null = null;
    let next: Piece | null = null;
    for (;;) {
      const p = await lines.next();
      if (p === null) break;
      if (isBlank(p)) {
        blank = p.bytes;
        break;
      }
      if (isFromLine(p) || !p.start || headBytes + p.bytes.length > MAX_HEADER_BYTES) {
        next = p;
        break;
      }
      headLines.push(p.bytes);
      headBytes += p.bytes.length;
    }
    const fields = fieldsOf(headLines);
    const value = (name: string): string => {
      const f = fields.find((x) => x.name === name);
      return f === undefined ? '' : fieldValue(f);
    };
    const { flags, dropped } = flagsFromMboxFields(value('status'), value('x-status'), value('x-keywords'));
    const lengthText = value('content-length');
    const contentLength = /^\d{1,15}$/.test(lengthText) ? Number(lengthText) : null;
    const kept = fields.filter((f) => !BOOKKEEPING.has(f.name)).flatMap((f) => f.lines);
    const head = Buffer.concat(blank === null ? kept : [...kept, blank]);
    if (next !== null) {
      // A header section cut short (an overlong or unterminated one): the rest is body, read as such.
      lines.unread(next);
    }
    const body = new BodyReader(lines, contentLength, blank !== null || next === null);
    let headSent = false;
    const content: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        // No return(): a consumer that stops early leaves the reader where it was, for the drain below.
        next: async (): Promise<IteratorResult<Uint8Array>> => {
          if (!headSent) {
            headSent = true;
            if (head.length > 0) return { done: false, value: head };
          }
          const piece = await body.next();
          return piece === null ? { done: true, value: undefined } : { done: false, value: piece };
        },
      }),
    };
    yield {
      fromLine,
      internalDateMs: parseFromLineDate(`From ${fromLine}`),
      flags,
      droppedKeywords: dropped,
      head,
      content,
    };
    while ((await body.next()) !== null);
    fromPiece = body.nextFrom;
  }
}

/** The body of one message: by Content-Length when it proves right, else up to the next From_ line. */
class BodyReader {
  readonly #lines: LineReader;
  /** Bytes still to take on trust from Content-Length; null once scanning for From_ lines. */
  #counted: number | null;
  /** An empty line that ends the message if a From_ line follows it. */
  #pendingBlank: Buffer | null = null;
  /** The previous line was empty (the header's empty line counts). */
  #afterBlank: boolean;
  #done = false;
  /** The From_ line that ended this message, or null at the end of the file. */
  nextFrom: Piece | null = null;

  constructor(lines: LineReader, contentLength: number | null, afterBlank: boolean) {
    this.#lines = lines;
    this.#counted = contentLength;
    this.#afterBlank = afterBlank;
  }

  async next(): Promise<Buffer | null> {
    if (this.#done) return null;
    if (this.#counted !== null) {
      if (this.#counted > 0) {
        const p = await this.#lines.next();
        if (p === null) return this.#end(null);
        if (p.bytes.length > this.#counted) {
          // Content-Length is wrong: from here on, find the end by From_ lines.
          this.#counted = null;
          this.#lines.unread(p);
          return this.next();
        }
        this.#counted -= p.bytes.length;
        return p.bytes;
      }
      // The count is used up: right only if a From_ line (after at most one empty line) or the end follows.
      const p = await this.#lines.next();
      if (p === null) return this.#end(null);
      if (isFromLine(p)) return this.#end(p);
      if (isBlank(p)) {
        const q = await this.#lines.next();
        if (q === null) return this.#end(null);
        if (isFromLine(q)) return this.#end(q);
        this.#lines.unread(q);
      }
      this.#counted = null;
      this.#afterBlank = false;
      this.#lines.unread(p);
      return this.next();
    }
    for (;;) {
      const p = await this.#lines.next();
      if (p === null) return this.#end(null); // a pending empty line is the last separator: dropped
      if (isFromLine(p) && (this.#afterBlank || this.#pendingBlank !== null)) return this.#end(p);
      const held = this.#pendingBlank;
      this.#pendingBlank = null;
      this.#afterBlank = false;
      let out = p.bytes;
      if (isBlank(p)) this.#pendingBlank = p.bytes;
      else if (p.start && QUOTED_FROM.test(p.bytes.subarray(0, 80).toString('latin1')))
        out = p.bytes.subarray(1);
      if (held !== null) return this.#pendingBlank === null ? Buffer.concat([held, out]) : held;
      if (this.#pendingBlank === null) return out;
    }
  }

  #end(from: Piece | null): null {
    this.#done = true;
    this.nextFrom = from;
    return null;
  }
}

/**
 * One message as mboxrd: the From_ line, the header section with Status:/X-Status:/X-Keywords: for its
 * flags (any such fields it had are replaced), the body with From lines quoted, and the empty separator
 * line. A message that does not end with a line ending gets one (mbox cannot say otherwise).
 */
export async function* writeMboxMessage(
  message: {
    sender: string;
    internalDateMs: number;
    flags: readonly string[];
    /**
     * Dovecot's X-UID: (and, on a file's first message, X-IMAPbase: UIDVALIDITY, UIDNEXT and every
     * keyword): Dovecot then keeps the UIDs and accepts the X-Keywords: names.
     */
    dovecot?: { uid: number; base?: { uidValidity: number; uidNext: number; keywords: readonly string[] } };
  },
  content: AsyncIterable<Uint8Array>,
): AsyncGenerator<Buffer> {
  yield Buffer.from(`From ${message.sender} ${fromLineDate(message.internalDateMs)}\n`);
  const lines = new LineReader(content);
  const headLines: Buffer[] = [];
  let headBytes = 0;
  let lastEndsLine = true;
  // mboxrd: every line that a reader would unquote (or take for a From_ line) gets one more `>`.
  const quote = (p: Piece): Buffer =>
    p.start && /^>*From /.test(p.bytes.subarray(0, 80).toString('latin1'))
      ? Buffer.concat([Buffer.from('>'), p.bytes])
      : p.bytes;
  for (;;) {
    const p = await lines.next();
    if (p === null || isBlank(p) || !p.start || headBytes + p.bytes.length > MAX_HEADER_BYTES) {
      const fields = fieldsOf(headLines).filter((f) => !BOOKKEEPING.has(f.name));
      const head = fields.flatMap((f) => f.lines);
      const eol =
        p !== null && isBlank(p)
          ? p.bytes.toString('latin1')
          : headLines[0]?.toString('latin1').endsWith('\r\n')
            ? '\r\n'
            : '\n';
      for (const line of head) yield quote({ bytes: line, start: true });
      const lastHead = head[head.length - 1];
      if (lastHead !== undefined && lastHead[lastHead.length - 1] !== LF) yield Buffer.from(eol);
      const d = message.dovecot;
      if (d?.base !== undefined) {
        const { uidValidity, uidNext, keywords } = d.base;
        const words = [String(uidValidity), String(uidNext).padStart(10, '0'), ...keywords];
        yield Buffer.from(`X-IMAPbase: ${words.join(' ')}${eol}`);
      }
      if (d !== undefined) yield Buffer.from(`X-UID: ${d.uid}${eol}`);
      yield Buffer.from(mboxFlagFields(message.flags, eol));
      if (p !== null) {
        yield quote(p);
        lastEndsLine = p.bytes[p.bytes.length - 1] === LF;
      } else lastEndsLine = true;
      break;
    }
    headLines.push(p.bytes);
    headBytes += p.bytes.length;
  }
  for (;;) {
    const p = await lines.next();
    if (p === null) break;
    yield quote(p);
    lastEndsLine = p.bytes[p.bytes.length - 1] === LF;
  }
  yield Buffer.from(lastEndsLine ? '\n' : '\n\n');
}

/** Bare LF → CRLF (IMAP serves CRLF, RFC 9051 §2.3.4 sizes count it); existing CRLF left alone. */
export async function* toCrlf(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let lastWasCr = false;
  for await (const chunk of source) {
    const buf = Buffer.from(chunk);
    const parts: Buffer[] = [];
    let from = 0;
    for (let i = buf.indexOf(LF); i >= 0; i = buf.indexOf(LF, i + 1)) {
      const before = i === 0 ? lastWasCr : buf[i - 1] === 0x0d;
      if (!before) {
        parts.push(buf.subarray(from, i), Buffer.from('\r'));
        from = i;
      }
    }
    parts.push(buf.subarray(from));
    if (buf.length > 0) lastWasCr = buf[buf.length - 1] === 0x0d;
    yield parts.length === 1 ? buf : Buffer.concat(parts);
  }
}
