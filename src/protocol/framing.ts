// Input framing shared by the line protocols (POP3, IMAP, ManageSieve; SMTP's session has its own, with
// the DATA scanner): bytes in, frames out. A frame is a line (up to LF, its CR and LF removed, whether it
// ended in CRLF reported), an overlong line (reported once, its bytes dropped up to the next LF), or a
// piece of a counted literal (IMAP {n}, a BDAT-style chunk) that the caller asked for with
// expectLiteral() after the line announcing it.
// Pure and total: no I/O, no timers, never throws on input; memory is bounded by maxLineBytes (a literal
// is passed through in pieces, never collected). Deliberately NOT here: what a line means, decoding text
// (lines stay bytes: the protocol decides between UTF-8 and refusal), the literal size limits.

export type Frame =
  /** One line without its line ending; `crlf` false when it ended in a bare LF. */
  | { readonly kind: 'line'; readonly line: Uint8Array; readonly crlf: boolean }
  /**
   * A line over maxLineBytes: its bytes up to and including the next LF are dropped (`bytes` so far);
   * `head` keeps its first octets (up to HEAD_BYTES), so a protocol can still read the line's tag.
   */
  | { readonly kind: 'overlong'; readonly bytes: number; readonly head: Uint8Array }
  /** Bytes of the literal asked for; `last` on the piece that completes it. */
  | { readonly kind: 'literal'; readonly chunk: Uint8Array; readonly last: boolean };

/** Octets of an overlong line kept for its head (an IMAP tag is at most this long in practice). */
export const HEAD_BYTES = 128;

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = new Uint8Array(0);

export class LineFramer {
  private readonly maxLineBytes: number;
  private buffer: Uint8Array = EMPTY;
  /** Bytes of a literal still to pass through. */
  private literalLeft = 0;
  /** Inside an overlong line: skip to the next LF. */
  private skipping = false;

  /** `maxLineBytes` counts the line with its CRLF. */
  constructor(options: { readonly maxLineBytes: number }) {
    this.maxLineBytes = options.maxLineBytes;
  }

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.buffer = this.buffer.length === 0 ? bytes : concat(this.buffer, bytes);
  }

  /** The next `bytes` octets are a literal, not lines (call it after the line that announced it). */
  expectLiteral(bytes: number): void {
    this.literalLeft = bytes;
  }

  /** Bytes pushed and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffer.length;
  }

  /** Drop what is buffered (STARTTLS: nothing read before the handshake may be parsed after it). */
  discard(): number {
    const bytes = this.buffer.length;
    this.buffer = EMPTY;
    this.literalLeft = 0;
    this.skipping = false;
    return bytes;
  }

  /** The next complete frame, or null until more bytes are pushed. */
  next(): Frame | null {
    if (this.literalLeft > 0) {
      if (this.buffer.length === 0) return null;
      const n = Math.min(this.literalLeft, this.buffer.length);
      const chunk = this.buffer.subarray(0, n);
      this.buffer = this.buffer.subarray(n);
      this.literalLeft -= n;
      return { kind: 'literal', chunk, last: this.literalLeft === 0 };
    }
    const lf = this.buffer.indexOf(LF);
    if (this.skipping) {
      if (lf < 0) {
        this.buffer = EMPTY;
        return null;
      }
      this.skipping = false;
      this.buffer = this.buffer.subarray(lf + 1);
      return this.next();
    }
    if (lf < 0) {
      // A line that cannot end within the limit is reported now, not when its LF finally comes.
      if (this.buffer.length >= this.maxLineBytes) {
        const bytes = this.buffer.length;
        const head = this.buffer.slice(0, HEAD_BYTES);
        this.buffer = EMPTY;
        this.skipping = true;
        return { kind: 'overlong', bytes, head };
      }
      return null;
    }
    if (lf + 1 > this.maxLineBytes) {
      const head = this.buffer.slice(0, HEAD_BYTES);
      this.buffer = this.buffer.subarray(lf + 1);
      return { kind: 'overlong', bytes: lf + 1, head };
    }
    const crlf = lf > 0 && this.buffer[lf - 1] === CR;
    const line = this.buffer.subarray(0, crlf ? lf - 1 : lf);
    this.buffer = this.buffer.subarray(lf + 1);
    return { kind: 'line', line, crlf };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
