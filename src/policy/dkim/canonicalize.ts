// DKIM canonicalization (RFC 6376 §3.4): "simple" and "relaxed" for header fields and for the body, and
// the streaming body hash (§3.7) with the l= limit. The body side is a byte-level state machine that
// holds back only what it must (a pending CR, a count of trailing empty lines, one pending space), so a
// 100 MiB body is hashed in constant memory, whatever the chunk boundaries.
// Header fields are byte strings (latin1: one char per octet) that end in CRLF, as split by
// header-fields.ts. Lines end in CRLF here: the verifier and signer turn bare LF into CRLF before.
// Deliberately NOT here: which fields are signed (header-fields.ts) and any crypto beyond the hash.

import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';

export type Canonicalization = 'simple' | 'relaxed';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;

function asciiLower(s: string): string {
  // Only ASCII letters: a latin1 "À" in a (malformed) name must stay the octet it was.
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/**
 * One header field, canonicalized, ending in CRLF (§3.4.1, §3.4.2). `raw` is the field as it appears in
 * the message, name through the CRLF that ends it.
 */
export function canonicalizeHeaderField(raw: string, c: Canonicalization): string {
  const withCrlf = raw.endsWith('\r\n') ? raw : `${raw}\r\n`;
  if (c === 'simple') return withCrlf;
  const colon = withCrlf.indexOf(':');
  // A field without a colon cannot be named in h=; it is canonicalized as a name with an empty value.
  const name = colon < 0 ? withCrlf.slice(0, -2) : withCrlf.slice(0, colon);
  const value = colon < 0 ? '' : withCrlf.slice(colon + 1, -2);
  const relaxedValue = value
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');
  return `${asciiLower(name.replace(/[ \t]+$/, ''))}:${relaxedValue}\r\n`;
}

export interface ByteSink {
  update(bytes: Uint8Array): void;
}

const OUT_SIZE = 64 * 1024;

/** Collects output bytes and hands them to the sink in blocks (hashing one byte at a time is slow). */
class Out {
  readonly #sink: ByteSink;
  readonly #buf = Buffer.allocUnsafe(OUT_SIZE);
  #n = 0;
  constructor(sink: ByteSink) {
    this.#sink = sink;
  }
  byte(b: number): void {
    if (this.#n === OUT_SIZE) this.flush();
    this.#buf[this.#n++] = b;
  }
  bytes(src: Uint8Array, start: number, end: number): void {
    if (end - start > OUT_SIZE - this.#n) {
      this.flush();
      this.#sink.update(src.subarray(start, end));
      return;
    }
    this.#buf.set(src.subarray(start, end), this.#n);
    this.#n += end - start;
  }
  crlfs(count: number): void {
    for (let i = 0; i < count; i++) {
      this.byte(CR);
      this.byte(LF);
    }
  }
  flush(): void {
    if (this.#n > 0) this.#sink.update(this.#buf.subarray(0, this.#n));
    this.#n = 0;
  }
}

/** The body canonicalization of §3.4.3 (simple) or §3.4.4 (relaxed), fed in chunks of any size. */
export interface BodyCanonicalizer {
  write(chunk: Uint8Array): void;
  /** Flush what was held back; the canonical body is complete after this. */
  end(): void;
}

export function createBodyCanonicalizer(c: Canonicalization, sink: ByteSink): BodyCanonicalizer {
  return c === 'simple' ? new SimpleBody(sink) : new RelaxedBody(sink);
}

/** Simple: the body as is, except that trailing empty lines go and exactly one CRLF ends it. */
class SimpleBody implements BodyCanonicalizer {
  readonly #out: Out;
  /** CRLFs seen but not yet written: they may be the trailing empty lines that simple removes. */
  #pendingCrlfs = 0;
  #pendingCr = false;
  constructor(sink: ByteSink) {
    this.#out = new Out(sink);
  }
  write(chunk: Uint8Array): void {
    const out = this.#out;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.#pendingCr) {
        this.#pendingCr = false;
        if (chunk[i] === LF) {
          this.#pendingCrlfs++;
          i++;
          continue;
        }
        this.#releaseCrlfs();
        out.byte(CR);
        continue;
      }
      if (chunk[i] === CR) {
        this.#pendingCr = true;
        i++;
        continue;
      }
      // A run of ordinary bytes up to the next CR is copied whole.
      let end = chunk.indexOf(CR, i);
      if (end < 0) end = n;
      this.#releaseCrlfs();
      out.bytes(chunk, i, end);
      i = end;
    }
  }
  #releaseCrlfs(): void {
    this.#out.crlfs(this.#pendingCrlfs);
    this.#pendingCrlfs = 0;
  }
  end(): void {
    if (this.#pendingCr) {
      this.#pendingCr = false;
      this.#releaseCrlfs();
      this.#out.byte(CR);
    }
    // Whether the body ended in one CRLF, many, or none (or was empty): one CRLF ends it (§3.4.3).
    this.#pendingCrlfs = 0;
    this.#out.crlfs(1);
    this.#out.flush();
  }
}

/**
 * Relaxed: whitespace runs within a line become one SP, whitespace at line ends goes, trailing empty
 * lines go, and a non-empty body ends in CRLF. An empty body stays empty (RFC 6376 erratum 1384).
 */
class RelaxedBody implements BodyCanonicalizer {
  readonly #out: Out;
  /** Complete lines that were empty (or only whitespace) and are not written until content follows. */
  #emptyLines = 0;
  /** Whitespace seen since the last content byte of this line; written as one SP if content follows. */
  #pendingSpace = false;
  #lineHasContent = false;
  #pendingCr = false;
  constructor(sink: ByteSink) {
    this.#out = new Out(sink);
  }
  write(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.#pendingCr) {
        this.#pendingCr = false;
        if (b === LF) {
          this.#endLine();
          continue;
        }
        this.#content(CR);
      }
      if (b === CR) this.#pendingCr = true;
      else if (b === SP || b === HT) this.#pendingSpace = true;
      else this.#content(b);
    }
  }
  #content(b: number): void {
    const out = this.#out;
    if (this.#emptyLines > 0) {
      out.crlfs(this.#emptyLines);
      this.#emptyLines = 0;
    }
    if (this.#pendingSpace) {
      out.byte(SP);
      this.#pendingSpace = false;
    }
    out.byte(b);
    this.#lineHasContent = true;
  }
  #endLine(): void {
    if (this.#lineHasContent) this.#out.crlfs(1);
    else this.#emptyLines++;
    this.#lineHasContent = false;
    this.#pendingSpace = false;
  }
  end(): void {
    if (this.#pendingCr) {
      this.#pendingCr = false;
      this.#content(CR);
    }
    if (this.#lineHasContent) this.#out.crlfs(1);
    this.#lineHasContent = false;
    this.#emptyLines = 0;
    this.#out.flush();
  }
}

export interface BodyHashResult {
  /** SHA-256 of the canonical body, cut at l= when given. */
  readonly digest: Buffer;
  /** Octets of the canonical body (all of it, not only the hashed part). */
  readonly canonicalLength: number;
  /** Octets that went into the hash: min(l, canonicalLength), or canonicalLength without l=. */
  readonly hashedLength: number;
}

/** SHA-256 over a canonical body, counting octets, stopping the hash (not the count) at `limit`. */
export class BodyHash {
  readonly #hash: Hash = createHash('sha256');
  readonly #limit: number | null;
  readonly #canon: BodyCanonicalizer;
  #canonicalLength = 0;
  #hashedLength = 0;
  #result: BodyHashResult | null = null;

  constructor(c: Canonicalization, limit: number | null = null) {
    this.#limit = limit;
    this.#canon = createBodyCanonicalizer(c, { update: (bytes) => this.#take(bytes) });
  }

  #take(bytes: Uint8Array): void {
    this.#canonicalLength += bytes.length;
    let take = bytes.length;
    if (this.#limit !== null) take = Math.max(0, Math.min(take, this.#limit - this.#hashedLength));
    if (take === 0) return;
    this.#hash.update(take === bytes.length ? bytes : bytes.subarray(0, take));
    this.#hashedLength += take;
  }

  write(chunk: Uint8Array): void {
    if (this.#result !== null) throw new Error('BodyHash: write after digest');
    this.#canon.write(chunk);
  }

  digest(): BodyHashResult {
    if (this.#result === null) {
      this.#canon.end();
      this.#result = {
        digest: this.#hash.digest(),
        canonicalLength: this.#canonicalLength,
        hashedLength: this.#hashedLength,
      };
    }
    return this.#result;
  }
}

/**
 * Turns bare LF into CRLF across chunk boundaries (dkimpy and OpenDKIM do the same), so a message kept
 * with Unix line ends verifies as it did on the wire. CRLF input passes through without a copy.
 */
export class CrlfNormalizer {
  #lastWasCr = false;
  push(chunk: Uint8Array): Uint8Array {
    if (chunk.length === 0) return chunk;
    let bare = 0;
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
      const prev = i === 0 ? this.#lastWasCr : chunk[i - 1] === CR;
      if (!prev) bare++;
    }
    const prevLast = this.#lastWasCr;
    this.#lastWasCr = chunk[chunk.length - 1] === CR;
    if (bare === 0) return chunk;
    const out = Buffer.allocUnsafe(chunk.length + bare);
    let o = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === LF && !(i === 0 ? prevLast : chunk[i - 1] === CR)) out[o++] = CR;
      out[o++] = b;
    }
    return out;
  }
}
