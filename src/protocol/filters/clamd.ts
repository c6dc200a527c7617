// clamd's INSTREAM exchange (clamd(8), "INSTREAM"), as bytes: the `zINSTREAM\0` command, the message
// in chunks each prefixed by its length as a 4-byte big-endian integer, a zero-length chunk to end the
// stream, and the one NUL-terminated answer (the `z` prefix asks for NUL rather than newline):
//   stream: OK\0                                  clean
//   stream: Eicar-Test-Signature FOUND\0          a virus, by its signature's name
//   INSTREAM size limit exceeded. ERROR\0         more than clamd's StreamMaxLength: not scanned
//   <anything> ERROR\0                            any other failure
// Pure and total: no I/O, no timers; the answer reader never throws and holds at most MAX_ANSWER_BYTES.
// Deliberately NOT here: the socket and the verdicts (policy/filters/clamav.ts), clamd's other commands
// (SCAN, FILDES, IDSESSION: Tern never shares files or sessions with clamd), the newline (`n`) form.

/** The command, with the `z` prefix: the answer ends in NUL, which no answer text can contain. */
export const INSTREAM_COMMAND: Uint8Array = new TextEncoder().encode('zINSTREAM\0');

/** The zero-length chunk that ends the stream. */
export const END_OF_STREAM: Uint8Array = new Uint8Array(4);

/** Octets per chunk: clamd reads any size, this bounds what one write holds. */
export const DEFAULT_CHUNK_BYTES = 64 * 1024;

/** An answer longer than this is no clamd answer (virus names are well under 200 characters). */
export const MAX_ANSWER_BYTES = 4096;

/** Characters of a virus name or error text kept for replies and logs. */
export const MAX_NAME_CHARS = 100;

export type ClamdAnswer =
  | { readonly kind: 'clean' }
  /** `name` is sanitised: printable ASCII, at most MAX_NAME_CHARS (and an ellipsis). */
  | { readonly kind: 'virus'; readonly name: string }
  /** The stream was longer than clamd's StreamMaxLength: clamd stopped reading and scanned nothing. */
  | { readonly kind: 'too-large' }
  | { readonly kind: 'error'; readonly message: string }
  /** Not a clamd answer (garbage, no NUL before the end, too long); `why` is safe to log. */
  | { readonly kind: 'malformed'; readonly why: string };

/** The 4-byte big-endian length in front of a chunk. */
export function chunkHeader(length: number): Uint8Array {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, length, false);
  return header;
}

/**
 * `data` framed as INSTREAM chunks of at most `maxChunkBytes`, each as its header and its piece. The
 * pieces are views of `data`, not copies. Empty data gives nothing (a zero-length chunk would end the
 * stream).
 */
export function* frameChunks(
  data: Uint8Array,
  maxChunkBytes: number = DEFAULT_CHUNK_BYTES,
): Generator<readonly [header: Uint8Array, piece: Uint8Array], void, undefined> {
  const size = Math.max(1, Math.floor(maxChunkBytes));
  for (let at = 0; at < data.length; at += size) {
    const piece = data.subarray(at, Math.min(at + size, data.length));
    yield [chunkHeader(piece.length), piece];
  }
}

/** Printable ASCII only, bounded: a name from clamd goes into an SMTP reply and the log. */
export function sanitizeName(raw: string, empty = 'unnamed'): string {
  const printable = raw.replace(/[^\x20-\x7e]/g, '?').trim();
  if (printable.length === 0) return empty;
  return printable.length > MAX_NAME_CHARS ? `${printable.slice(0, MAX_NAME_CHARS)}...` : printable;
}

const FOUND = /^stream: (.*) FOUND$/s;
const TOO_LARGE = 'INSTREAM size limit exceeded. ERROR';

/** One answer's text (without its NUL). */
export function parseClamdAnswer(text: string): ClamdAnswer {
  // clamd's newline form, or a proxy in front of it, may leave a line ending: it means nothing here.
  const line = text.replace(/[\r\n]+$/, '');
  if (line === 'stream: OK') return { kind: 'clean' };
  if (line === TOO_LARGE) return { kind: 'too-large' };
  const found = FOUND.exec(line);
  if (found !== null) return { kind: 'virus', name: sanitizeName(found[1]!) };
  if (line.endsWith(' ERROR')) {
    const message = line.slice(0, -' ERROR'.length).replace(/^stream: /, '');
    return { kind: 'error', message: sanitizeName(message, 'unspecified') };
  }
  return { kind: 'malformed', why: `unexpected answer "${sanitizeName(line, '')}"` };
}

/**
 * Collects the answer from the bytes clamd sends, in whatever pieces they arrive. Bytes after the NUL
 * are ignored (with AllMatchScanning clamd may send a FOUND per signature: the first decides).
 */
export class ClamdAnswerReader {
  #parts: Uint8Array[] = [];
  #bytes = 0;
  #answer: ClamdAnswer | null = null;

  /** The answer once it is complete (or cannot be one); null while more is needed. */
  push(chunk: Uint8Array): ClamdAnswer | null {
    if (this.#answer !== null) return this.#answer;
    const nul = chunk.indexOf(0);
    const take = nul === -1 ? chunk : chunk.subarray(0, nul);
    if (this.#bytes + take.length > MAX_ANSWER_BYTES) {
      this.#answer = { kind: 'malformed', why: `answer longer than ${MAX_ANSWER_BYTES} bytes` };
      this.#parts = [];
      return this.#answer;
    }
    this.#parts.push(take);
    this.#bytes += take.length;
    if (nul === -1) return null;
    this.#answer = parseClamdAnswer(this.#text());
    this.#parts = [];
    return this.#answer;
  }

  /** The connection ended: the answer, or why there is none. */
  end(): ClamdAnswer {
    if (this.#answer !== null) return this.#answer;
    this.#answer =
      this.#bytes === 0
        ? { kind: 'malformed', why: 'closed without answering' }
        : { kind: 'malformed', why: `answer without its NUL: "${sanitizeName(this.#text())}"` };
    this.#parts = [];
    return this.#answer;
  }

  #text(): string {
    const all = new Uint8Array(this.#bytes);
    let at = 0;
    for (const p of this.#parts) {
      all.set(p, at);
      at += p.length;
    }
    // Not fatal: a stray byte becomes U+FFFD, which sanitizeName turns into '?'.
    return new TextDecoder('utf-8').decode(all);
  }
}
