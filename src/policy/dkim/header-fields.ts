// The raw header section as DKIM sees it (RFC 6376 §5.4.2, §3.7): a streaming splitter that keeps the
// header section (bounded) and hands the body on, header fields kept byte for byte (latin1 strings, one
// char per octet, each ending in CRLF), the bottom-up selection of the fields that h= names, the b= value
// removed from a signature field, and the data the header hash covers.
// Deliberately NOT here: decoding values (src/protocol/headers.ts does that for display) — DKIM signs
// octets, not characters.

import type { Canonicalization } from './canonicalize.ts';
import { CrlfNormalizer, canonicalizeHeaderField } from './canonicalize.ts';

export interface RawHeaderField {
  /** The field name as written, whitespace before the colon removed. */
  readonly name: string;
  /** Lower-case ASCII name, for comparisons (field names are case-insensitive). */
  readonly key: string;
  /** Name, colon, value and every fold, through the CRLF that ends the field. */
  readonly raw: string;
}

/** Split a header section (latin1, CRLF line ends) into fields; continuation lines join the field above. */
export function splitHeaderFields(section: string): RawHeaderField[] {
  const fields: { name: string; raw: string }[] = [];
  let pos = 0;
  while (pos < section.length) {
    let end = section.indexOf('\r\n', pos);
    end = end < 0 ? section.length : end + 2;
    const line = section.slice(pos, end);
    pos = end;
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      last.raw += line;
      continue;
    }
    const colon = line.indexOf(':');
    fields.push({
      name: (colon < 0 ? line.replace(/\r\n$/, '') : line.slice(0, colon)).trimEnd(),
      raw: line,
    });
  }
  return fields.map((f) => ({ name: f.name, key: f.name.toLowerCase(), raw: f.raw }));
}

/**
 * The fields h= names, in h= order, each name taking the lowest not-yet-taken instance (§5.4.2). An
 * instance that does not exist is `undefined` (it contributes nothing: that is how oversigning works).
 * `exclude` is the index of the signature field being verified, which never signs itself.
 */
export function selectSignedFields(
  fields: readonly RawHeaderField[],
  names: readonly string[],
  exclude = -1,
): (RawHeaderField | undefined)[] {
  const nextFrom = new Map<string, number>();
  return names.map((name) => {
    const key = name.toLowerCase();
    let i = nextFrom.get(key) ?? fields.length - 1;
    while (i >= 0 && (fields[i]!.key !== key || i === exclude)) i--;
    nextFrom.set(key, i - 1);
    return i >= 0 ? fields[i] : undefined;
  });
}

/** The signature field with the value of its b= tag (and the whitespace around it) removed (§3.7). */
export function removeSignatureValue(raw: string): string {
  const colon = raw.indexOf(':');
  if (colon < 0) return raw;
  const crlf = raw.endsWith('\r\n') ? '\r\n' : '';
  const value = raw.slice(colon + 1, raw.length - crlf.length);
  const segments = value.split(';').map((segment) => {
    const eq = segment.indexOf('=');
    if (eq < 0 || segment.slice(0, eq).replace(/[ \t\r\n]+/g, '') !== 'b') return segment;
    return segment.slice(0, eq + 1);
  });
  return `${raw.slice(0, colon + 1)}${segments.join(';')}${crlf}`;
}

/**
 * The octets the header hash covers (§3.7): the selected fields canonicalized, then the signature field
 * itself with b= emptied and without its final CRLF.
 */
export function headerHashInput(
  selected: readonly (RawHeaderField | undefined)[],
  signatureRaw: string,
  c: Canonicalization,
): Buffer {
  let data = '';
  for (const field of selected) if (field !== undefined) data += canonicalizeHeaderField(field.raw, c);
  data += canonicalizeHeaderField(removeSignatureValue(signatureRaw), c).slice(0, -2);
  return Buffer.from(data, 'latin1');
}

/**
 * Splits a message, fed in chunks, into its header section (kept, up to `maxHeaderBytes`) and its body
 * (handed back chunk by chunk, never kept). Bare LF becomes CRLF on the way in.
 */
export class HeaderBodySplitter {
  readonly #maxHeaderBytes: number;
  readonly #crlf = new CrlfNormalizer();
  #buf: Buffer = Buffer.allocUnsafe(4096);
  #len = 0;
  #section: string | null = null;
  #overflow = false;

  constructor(maxHeaderBytes: number) {
    this.#maxHeaderBytes = maxHeaderBytes;
  }

  /** True once the header section has been found (or the message ended without a body). */
  get headerDone(): boolean {
    return this.#section !== null;
  }

  /** True when the header section grew past the limit: nothing more is kept. */
  get overflow(): boolean {
    return this.#overflow;
  }

  /** The header section through the CRLF of its last field (not the empty line); "" when there is none. */
  get section(): string | null {
    return this.#section;
  }

  /** Feed one chunk; returns the body bytes it contained (none, one or two pieces). */
  push(input: Uint8Array): Uint8Array[] {
    const chunk = this.#crlf.push(input);
    if (this.#section !== null) return [chunk];
    if (this.#overflow) return [];
    // Never copy more than the limit (and the empty line after it) of a large chunk into the buffer.
    const room = this.#maxHeaderBytes + 4 - this.#len;
    const head = chunk.length > room ? chunk.subarray(0, room) : chunk;
    const rest = chunk.length > room ? chunk.subarray(room) : null;
    const searchFrom = Math.max(0, this.#len - 3);
    this.#append(head);
    const buf = this.#buf.subarray(0, this.#len);
    let bodyStart = -1;
    if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
      this.#section = '';
      bodyStart = 2;
    } else {
      const blank = buf.indexOf('\r\n\r\n', searchFrom, 'latin1');
      if (blank >= 0 && blank + 2 <= this.#maxHeaderBytes) {
        this.#section = buf.toString('latin1', 0, blank + 2);
        bodyStart = blank + 4;
      }
    }
    if (bodyStart < 0) {
      if (rest !== null || this.#len > this.#maxHeaderBytes + 2) this.#drop(true);
      return [];
    }
    const pieces: Uint8Array[] = [];
    if (bodyStart < buf.length) pieces.push(Buffer.from(buf.subarray(bodyStart)));
    if (rest !== null && rest.length > 0) pieces.push(rest);
    this.#drop(false);
    return pieces;
  }

  /** The message ended: without an empty line, all of it was header section. */
  end(): void {
    if (this.#section !== null || this.#overflow) return;
    let section = this.#buf.toString('latin1', 0, this.#len);
    if (section !== '' && !section.endsWith('\r\n')) section += '\r\n';
    this.#section = section;
    this.#drop(false);
  }

  #append(chunk: Uint8Array): void {
    const need = this.#len + chunk.length;
    if (need > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(grown, 0, 0, this.#len);
      this.#buf = grown;
    }
    this.#buf.set(chunk, this.#len);
    this.#len = need;
  }

  #drop(overflow: boolean): void {
    this.#overflow = overflow;
    this.#buf = Buffer.alloc(0);
    this.#len = 0;
  }
}
