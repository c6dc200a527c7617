// Header fields of an RFC 5322 message: the header block split into fields (§2.2), unfolded (§2.2.3),
// RFC 2047 encoded-words decoded, and the summary the mailbox store keeps (From, Subject, Date,
// Message-ID). Tolerant the way a receiver must be: bare LF line ends, 8-bit UTF-8 header values
// (RFC 6532 §3.2), legacy 8-bit values (read as windows-1252), an mbox "From " line, a body that starts
// without the empty line.
// PURE and total: bytes in, values out, never throws. Deliberately not here: structured parsing of
// address lists or dates, MIME parameters (RFC 2231), body parts.

export interface HeaderField {
  /** The field name as written (case kept). */
  readonly name: string;
  /** Unfolded value with surrounding whitespace trimmed; encoded-words left as they are. */
  readonly value: string;
}

export interface HeaderSummary {
  /** Decoded values; "" when the field is absent. */
  readonly from: string;
  readonly subject: string;
  readonly date: string;
  readonly messageId: string;
}

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const legacy8bit = new TextDecoder('windows-1252');

/** UTF-8 when it is (RFC 6532); otherwise the bytes are some legacy charset, most often Latin-1 / cp1252. */
function decodeFieldBytes(bytes: Uint8Array): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return legacy8bit.decode(bytes);
  }
}

/** Where a field name ends (the colon), or -1 when the line is not a header field. */
function fieldNameEnd(line: Uint8Array): number {
  let i = 0;
  // ftext: printable US-ASCII except ":" (RFC 5322 §3.6.8).
  while (i < line.length && line[i]! > SP && line[i]! < 0x7f && line[i] !== COLON) i++;
  if (i === 0) return -1;
  // obs-optional allows whitespace between the name and the colon (RFC 5322 §4.5).
  let j = i;
  while (j < line.length && (line[j] === SP || line[j] === HT)) j++;
  return line[j] === COLON ? j : -1;
}

function startsWithFromSpace(line: Uint8Array): boolean {
  return legacy8bit.decode(line.subarray(0, 5)) === 'From ';
}

/**
 * Split the header block at the start of `bytes` into fields, stopping at the first empty line (or at the
 * first line that is neither a field nor a continuation: the body began without one). At most `maxBytes`
 * are looked at; a line cut by that limit is dropped rather than returned half.
 */
export function parseHeaderBlock(bytes: Uint8Array, maxBytes = 65536): HeaderField[] {
  const limit = Math.min(bytes.length, maxBytes);
  const truncated = bytes.length > maxBytes;
  const fields: { name: string; chunks: Uint8Array[] }[] = [];
  let pos = 0;
  let first = true;
  while (pos < limit) {
    const nl = bytes.indexOf(LF, pos);
    let lineEnd: number;
    let next: number;
    if (nl === -1 || nl >= limit) {
      if (truncated) break;
      lineEnd = limit;
      next = limit;
    } else {
      lineEnd = nl;
      next = nl + 1;
    }
    const end = lineEnd > pos && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    if (end === pos) break;
    const line = bytes.subarray(pos, end);
    pos = next;
    const wasFirst = first;
    first = false;
    if (line[0] === SP || line[0] === HT) {
      // Unfolding removes only the line break; the whitespace that follows it stays (§2.2.3).
      // A continuation with nothing to continue is dropped.
      fields.at(-1)?.chunks.push(line);
      continue;
    }
    const colon = fieldNameEnd(line);
    if (colon < 0) {
      if (wasFirst && startsWithFromSpace(line)) continue; // mbox separator
      break;
    }
    const name = legacy8bit.decode(line.subarray(0, colon)).trimEnd();
    fields.push({ name, chunks: [line.subarray(colon + 1)] });
  }
  return fields.map(({ name, chunks }) => ({ name, value: trimWsp(decodeFieldBytes(concat(chunks))) }));
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function trimWsp(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, '');
}

// encoded-word = "=?" charset ["*" language] "?" encoding "?" encoded-text "?=" (RFC 2047 §2, RFC 2231 §5)
const ENCODED_WORD = /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g;
// lib es2024 has no DOM types; the global TextDecoder comes from @types/node as a value only.
type Decoder = InstanceType<typeof TextDecoder>;
const decoders = new Map<string, Decoder | null>();

/** A decoder for the charset label, or null when the runtime does not know it. */
function decoderFor(charset: string): Decoder | null {
  const label = charset.toLowerCase();
  let decoder = decoders.get(label);
  if (decoder === undefined) {
    try {
      decoder = new TextDecoder(label);
    } catch {
      decoder = null;
    }
    // Labels come from mail, so the cache is kept small rather than grown by whatever senders invent.
    if (decoders.size < 64) decoders.set(label, decoder);
  }
  return decoder;
}

const encoder = new TextEncoder();

function decodeQ(text: string): Uint8Array {
  const out: number[] = [];
  // Odd parts are "=XX" escapes; the rest is literal text where "_" stands for a space (RFC 2047 §4.2).
  text.split(/(=[0-9A-Fa-f]{2})/).forEach((part, i) => {
    if (i % 2 === 1) out.push(parseInt(part.slice(1), 16));
    else out.push(...encoder.encode(part.replaceAll('_', ' ')));
  });
  return Uint8Array.from(out);
}

/** The octets of an encoded-word, or null when its text is not valid for its encoding. */
function wordBytes(encoding: string, text: string): Uint8Array | null {
  if (encoding === 'Q' || encoding === 'q') return decodeQ(text);
  // atob is forgiving of missing padding (senders often drop it) and refuses anything else.
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

interface DecodedRun {
  readonly charset: string;
  readonly decoder: Decoder;
  readonly chunks: Uint8Array[];
}

/**
 * Decode RFC 2047 encoded-words ("=?utf-8?Q?caf=C3=A9?=", "=?iso-8859-1?B?...?="). Whitespace between two
 * adjacent encoded-words is dropped (§6.2); adjacent words in the same charset are joined before decoding
 * so a character split across two words survives. A word in a charset the runtime cannot decode, or with
 * broken base64, is left as it is.
 */
export function decodeEncodedWords(s: string): string {
  if (!s.includes('=?')) return s;
  let out = '';
  let run: DecodedRun | null = null;
  let last = 0;
  const flush = (): void => {
    if (run) out += run.decoder.decode(concat(run.chunks));
    run = null;
  };
  for (const m of s.matchAll(ENCODED_WORD)) {
    const [word, charset, encoding, text] = m as unknown as [string, string, string, string];
    const gap = s.slice(last, m.index);
    last = m.index + word.length;
    const decoder = decoderFor(charset);
    const bytes = decoder ? wordBytes(encoding, text) : null;
    if (!decoder || !bytes) {
      flush();
      out += gap + word;
      continue;
    }
    const afterWord = run !== null && /^[ \t\r\n]*$/.test(gap);
    if (afterWord && run!.charset === charset.toLowerCase()) {
      run!.chunks.push(bytes);
      continue;
    }
    flush();
    if (!afterWord) out += gap;
    run = { charset: charset.toLowerCase(), decoder, chunks: [bytes] };
  }
  flush();
  return out + s.slice(last);
}

/** C0 controls and DEL become spaces: the summary ends up in listings and logs, one line per message. */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, ' ');
}

/** From, Subject, Date and Message-ID of the message whose bytes start with `bytes`; first field wins. */
export function headerSummary(bytes: Uint8Array): HeaderSummary {
  const fields = parseHeaderBlock(bytes);
  const get = (name: string): string => fields.find((f) => f.name.toLowerCase() === name)?.value ?? '';
  return {
    from: oneLine(decodeEncodedWords(get('from'))),
    subject: oneLine(decodeEncodedWords(get('subject'))),
    date: oneLine(get('date')),
    messageId: oneLine(get('message-id')),
  };
}
