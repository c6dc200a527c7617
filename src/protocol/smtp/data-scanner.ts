// SECURITY: this file decides where a message ends. Only <CRLF>.<CRLF> ends DATA (RFC 5321 §4.1.1.4);
// a bare LF or bare CR never forms a line ending that can end DATA, whatever the policy — the defence
// against SMTP smuggling (CVE-2023-51764 class). With policy "reject" any bare CR/LF marks the message
// bad (it is consumed to the real end and refused); with "normalize" each bare CR or LF becomes CRLF in
// the stored content, but the end of data is still only the raw <CRLF>.<CRLF>.
//
// The scanner is incremental: any fragmentation of the same byte stream gives the same output. It never
// buffers a line: memory use is one output buffer per input chunk.
// Also used for BDAT chunks (no dot handling, no end marker) of 7BIT/8BITMIME bodies.

export interface ScanOptions {
  readonly bareLineEndings: 'reject' | 'normalize';
  /** Longest line including CRLF; longer lines set `longLine`. */
  readonly maxLineBytes: number;
  /** DATA mode: dot-unstuffing and end-of-data detection. False for BDAT. */
  readonly dotStuffed: boolean;
}

export interface ScanResult {
  /** Unstuffed content bytes of this chunk (may be empty). */
  readonly output: Uint8Array;
  /** Index in the input just after the end-of-data line, or -1 when the end was not reached. */
  readonly endIndex: number;
}

const CR = 13;
const LF = 10;
const DOT = 46;
/** RFC 5321 §4.5.3.1.6: 1000 octets with CRLF. */
const SMTP_LINE_CONTENT = 998;

export class DataScanner {
  readonly options: ScanOptions;
  /** A bare CR or LF was seen (with policy reject the message must be refused). */
  bareLineEnding = false;
  longLine = false;
  /**
   * A line was over RFC 5321's 998 octets (§4.5.3.1.6), whatever maxLineBytes allows: the message must
   * be encoded before it is relayed.
   */
  overSmtpLine = false;
  /** Content bytes produced so far. */
  outputBytes = 0;
  // At the start of a line that followed a real CRLF (or the start of data): only here can "." end DATA.
  private properLineStart = true;
  // Bytes in the current line so far (content only, CR/LF excluded), counting a stuffed dot.
  private lineLen = 0;
  // The line so far is exactly one "." that we have not emitted (it may be the end marker or stuffing).
  private pendingDot = false;
  // The previous chunk ended in a CR whose meaning depends on the next byte.
  private pendingCR = false;

  constructor(options: ScanOptions) {
    this.options = options;
  }

  scan(input: Uint8Array): ScanResult {
    const normalize = this.options.bareLineEndings === 'normalize';
    const dotStuffed = this.options.dotStuffed;
    const maxContent = this.options.maxLineBytes - 2;
    // Worst case growth: a held CR and a held dot from the last chunk, and with normalize each bare CR
    // or LF becomes two bytes.
    const out = new Uint8Array((normalize ? input.length * 2 : input.length) + 2);
    let o = 0;
    let i = 0;
    const n = input.length;
    // Where the next CR and LF are (n: none), found with indexOf and looked for again only once passed,
    // so a run of ordinary bytes is copied at once and the whole chunk is searched O(n).
    let nextCR = -1;
    let nextLF = -1;
    while (i < n) {
      const b = input[i]!;
      if (this.pendingCR) {
        this.pendingCR = false;
        if (b === LF) {
          i++;
          if (this.pendingDot && this.properLineStart && dotStuffed) {
            // "<CRLF>.<CRLF>": end of data. The dot line itself is not content.
            this.pendingDot = false;
            this.outputBytes += o;
            return { output: out.subarray(0, o), endIndex: i };
          }
          if (this.pendingDot) out[o++] = DOT; // a lone "." line that cannot end data is content
          this.pendingDot = false;
          out[o++] = CR;
          out[o++] = LF;
          this.endLine(true);
          continue;
        }
        // Bare CR: not a line ending.
        this.bareLineEnding = true;
        if (this.pendingDot) out[o++] = DOT;
        this.pendingDot = false;
        if (normalize) {
          out[o++] = CR;
          out[o++] = LF;
          this.endLine(false);
        } else {
          out[o++] = CR;
          this.lineLen++;
        }
        continue; // reprocess b
      }
      if (b === CR) {
        this.pendingCR = true;
        i++;
        continue;
      }
      if (b === LF) {
        this.bareLineEnding = true;
        if (this.pendingDot) out[o++] = DOT;
        this.pendingDot = false;
        if (normalize) out[o++] = CR;
        out[o++] = LF;
        this.endLine(false);
        i++;
        continue;
      }
      if (this.lineLen === 0 && b === DOT && dotStuffed && !this.pendingDot) {
        // First dot of a line: either stuffing (dropped) or, alone before CRLF, the end marker.
        this.pendingDot = true;
        this.lineLen = 1;
        i++;
        continue;
      }
      this.pendingDot = false; // a stuffed dot is dropped (RFC 5321 §4.5.2)
      // b and every byte up to the next CR or LF are ordinary content (a dot after the line's first
      // byte is just a dot).
      if (nextCR < i) nextCR = indexOrEnd(input, CR, i);
      if (nextLF < i) nextLF = indexOrEnd(input, LF, i);
      const end = nextCR < nextLF ? nextCR : nextLF;
      out.set(input.subarray(i, end), o);
      o += end - i;
      this.lineLen += end - i;
      if (this.lineLen > maxContent) this.longLine = true;
      if (this.lineLen > SMTP_LINE_CONTENT) this.overSmtpLine = true;
      i = end;
    }
    this.outputBytes += o;
    return { output: out.subarray(0, o), endIndex: -1 };
  }

  /** For BDAT: bytes still held (a trailing CR) at the end of the last chunk. */
  flush(): Uint8Array {
    if (!this.pendingCR) return new Uint8Array(0);
    this.pendingCR = false;
    this.bareLineEnding = true;
    this.outputBytes += this.options.bareLineEndings === 'normalize' ? 2 : 1;
    return this.options.bareLineEndings === 'normalize' ? Uint8Array.of(CR, LF) : Uint8Array.of(CR);
  }

  private endLine(proper: boolean): void {
    if (this.lineLen > maxOf(this.options)) this.longLine = true;
    if (this.lineLen > SMTP_LINE_CONTENT) this.overSmtpLine = true;
    this.lineLen = 0;
    this.properLineStart = proper;
  }
}

function indexOrEnd(input: Uint8Array, byte: number, from: number): number {
  const at = input.indexOf(byte, from);
  return at < 0 ? input.length : at;
}

function maxOf(o: ScanOptions): number {
  return o.maxLineBytes - 2;
}
