// POP3 message content on the wire (RFC 1939 §3, §5 RETR, §7 TOP): the stored bytes, byte-stuffed, then
// the ".CRLF" line that ends a multi-line response; for TOP only the header section, the blank line and
// the first n body lines. Streaming and chunk-boundary safe: any split of the stored message gives the
// same output; nothing is buffered beyond the encoder's one held CR.
// The stuffing is the SMTP client's ContentEncoder (same rule, RFC 5321 §4.5.2 = RFC 1939 §3): it also
// turns a bare CR or LF into CRLF, so a stored "\n.\n" can never end the response early in a lenient
// client; stored mail came through Tern's SMTP server, which refuses or normalizes bare line endings, so
// for it the bytes go out exactly as stored.
// Deliberately NOT here: reading the store (the driver), RFC 6857 downgrading of UTF-8 headers.

import { ContentEncoder } from '../smtp/client/dot-stuffer.ts';

const CR = 13;
const LF = 10;

/**
 * TOP's cut: passes the header section up to and including the empty line that ends it, then `bodyLines`
 * lines of the body. A line ends at LF. A message without an empty line is all header and passes whole.
 */
export class TopCutter {
  private inBody = false;
  private bodyLinesLeft: number;
  /** Bytes of the current line so far (only whether it is 0, 1 or more matters). */
  private lineBytes = 0;
  private lineStartsWithCR = false;
  done = false;

  constructor(bodyLines: number) {
    this.bodyLinesLeft = bodyLines;
  }

  /** The part of `chunk` that belongs to the output; empty once done. */
  push(chunk: Uint8Array): Uint8Array {
    if (this.done) return chunk.subarray(0, 0);
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (!this.inBody) {
        if (b === LF) {
          const empty = this.lineBytes === 0 || (this.lineBytes === 1 && this.lineStartsWithCR);
          this.lineBytes = 0;
          this.lineStartsWithCR = false;
          if (empty) {
            this.inBody = true;
            if (this.bodyLinesLeft === 0) return this.finish(chunk, i + 1);
          }
        } else {
          if (this.lineBytes === 0) this.lineStartsWithCR = b === CR;
          this.lineBytes++;
        }
      } else if (b === LF && --this.bodyLinesLeft === 0) {
        return this.finish(chunk, i + 1);
      }
    }
    return chunk;
  }

  private finish(chunk: Uint8Array, end: number): Uint8Array {
    this.done = true;
    return chunk.subarray(0, end);
  }
}

/**
 * One RETR or TOP response body: push the stored message's chunks in order, write what comes back, stop
 * reading when `done` (TOP), and write end() last (a CRLF if the content did not end with one, then ".").
 */
export class MessageEncoder {
  private readonly cutter: TopCutter | null;
  private readonly stuffer = new ContentEncoder({ dotStuff: true });

  /** `topLines`: null for RETR, the body line count for TOP. */
  constructor(topLines: number | null) {
    this.cutter = topLines === null ? null : new TopCutter(topLines);
  }

  /** TOP has all it needs; the rest of the message need not be read. */
  get done(): boolean {
    return this.cutter?.done ?? false;
  }

  push(chunk: Uint8Array): Uint8Array {
    return this.stuffer.push(this.cutter ? this.cutter.push(chunk) : chunk);
  }

  end(): Uint8Array {
    return this.stuffer.end();
  }
}
