// SMTP client side: the content encoder for DATA and BDAT. It makes text CRLF-clean (every bare CR and
// every bare LF becomes CRLF; CRLF stays), dot-stuffs line starts for DATA (RFC 5321 §4.5.2), ends the
// content with CRLF and, for DATA, appends the end-of-data line ".CRLF" (RFC 5321 §4.1.1.4).
// SECURITY: a bare CR or LF is never passed on, whatever the input: a next hop that reads "\n.\n" or
// "\r.\r" as the end of data must never see one (SMTP smuggling, CVE-2023-51764 class).
// Incremental and streaming: any fragmentation of the input gives the same output; it holds at most
// one CR between chunks, never a line. Deliberately NOT here: BINARYMIME content, which goes out
// byte for byte in BDAT chunks and is never touched; line length limits (RFC 5321 §4.5.3.1.6).

const CR = 13;
const LF = 10;
const DOT = 46;

export class ContentEncoder {
  /** DATA: stuff dots and end with ".CRLF". BDAT: CRLF-clean only. */
  readonly dotStuff: boolean;
  private atLineStart = true;
  private pendingCR = false;
  private ended = false;
  /** Bytes produced so far (what the next hop receives). */
  outputBytes = 0;

  constructor(options: { dotStuff: boolean }) {
    this.dotStuff = options.dotStuff;
  }

  push(input: Uint8Array): Uint8Array {
    if (this.ended) throw new Error('ContentEncoder: push after end');
    // Worst case: every byte a bare CR/LF (two bytes) or a line-start dot (two bytes), plus a held CR.
    const out = new Uint8Array(input.length * 2 + 2);
    let o = 0;
    for (let i = 0; i < input.length; i++) {
      const b = input[i]!;
      if (b === LF) {
        out[o++] = CR;
        out[o++] = LF;
        this.pendingCR = false;
        this.atLineStart = true;
        continue;
      }
      if (this.pendingCR) {
        // The held CR was bare: it ends a line of its own.
        out[o++] = CR;
        out[o++] = LF;
        this.pendingCR = false;
        this.atLineStart = true;
      }
      if (b === CR) {
        this.pendingCR = true;
        continue;
      }
      if (b === DOT && this.atLineStart && this.dotStuff) out[o++] = DOT;
      out[o++] = b;
      this.atLineStart = false;
    }
    this.outputBytes += o;
    return out.subarray(0, o);
  }

  /** The tail: a held CR as CRLF, a final CRLF when the content did not end with one, and ".CRLF". */
  end(): Uint8Array {
    if (this.ended) return new Uint8Array(0);
    this.ended = true;
    const out: number[] = [];
    if (this.pendingCR || !this.atLineStart) out.push(CR, LF);
    if (this.dotStuff) out.push(DOT, CR, LF);
    this.outputBytes += out.length;
    return Uint8Array.from(out);
  }
}
