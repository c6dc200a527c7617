// The Sendmail/Postfix milter protocol, version 6, MTA side: frames (a 4-byte big-endian length, a
// command byte, its data), a streaming frame decoder with a bounded frame size, the commands Tern sends
// (option negotiation, macros, connect, HELO, MAIL, RCPT, DATA, header, end of header, body chunk, end
// of body, abort, quit), the replies a milter sends (decisions, SMTP reply codes, the end-of-message
// modifications), the OPTNEG reply with its optional per-stage macro lists, and the splitting of a
// stored message into the header fields and body bytes a milter is sent, as Sendmail does (one space
// after the colon eaten unless the milter asked for SMFIP_HDR_LEADSPC, folded lines separated by LF).
// Learned from libmilter's mfdef.h and Postfix's milter8.c (the protocol has no RFC).
// PURE and total: bytes in, values out; decoders return errors, never throw on what a milter sends.
// Deliberately NOT here: sockets, timers, which command is sent when and what a reply means for the
// SMTP transaction (policy/filters/milter.ts), SMFIC_UNKNOWN (Tern never forwards unknown commands).

/** The protocol version Tern speaks (Sendmail 8.14 and later, Postfix 2.6 and later). */
export const MILTER_VERSION = 6;
/** The largest SMFIC_BODY payload libmilter accepts (MILTER_CHUNK_SIZE). */
export const MAX_BODY_CHUNK_BYTES = 65535;
/** A frame larger than this is refused: a milter has no reason to send one (REPLBODY comes in chunks). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/** Commands from the MTA to the milter (SMFIC_*). */
export const Command = {
  abort: 'A',
  body: 'B',
  connect: 'C',
  macro: 'D',
  bodyEob: 'E',
  helo: 'H',
  quitNewConnection: 'K',
  header: 'L',
  mail: 'M',
  eoh: 'N',
  optneg: 'O',
  quit: 'Q',
  rcpt: 'R',
  data: 'T',
} as const;
export type CommandCode = (typeof Command)[keyof typeof Command];

/** What a milter may ask to do to a message (SMFIF_*), offered by the MTA and chosen by the milter. */
export const Action = {
  addHeaders: 0x01,
  changeBody: 0x02,
  addRecipient: 0x04,
  deleteRecipient: 0x08,
  changeHeaders: 0x10,
  quarantine: 0x20,
  changeFrom: 0x40,
  addRecipientWithArgs: 0x80,
  setMacroList: 0x100,
} as const;
export const ALL_ACTIONS = 0x1ff;

/** Protocol flags (SMFIP_*): steps the milter does not want, replies it will not send, extensions. */
export const Flag = {
  noConnect: 0x1,
  noHelo: 0x2,
  noMail: 0x4,
  noRcpt: 0x8,
  noBody: 0x10,
  noHeaders: 0x20,
  noEoh: 0x40,
  noReplyHeader: 0x80,
  noUnknown: 0x100,
  noData: 0x200,
  /** The MTA understands SMFIR_SKIP. */
  skip: 0x400,
  /** The MTA sends rejected recipients too (Tern does not offer it: it only sends those it accepts). */
  rcptRejected: 0x800,
  noReplyConnect: 0x1000,
  noReplyHelo: 0x2000,
  noReplyMail: 0x4000,
  noReplyRcpt: 0x8000,
  noReplyData: 0x10000,
  noReplyUnknown: 0x20000,
  noReplyEoh: 0x40000,
  noReplyBody: 0x80000,
  /** Header values are sent and returned with their leading whitespace. */
  headerLeadingSpace: 0x100000,
} as const;
/** Every protocol flag of version 6. */
export const ALL_FLAGS = 0x1fffff;

/** The stages a milter may name its own macro list for in OPTNEG (SMFIM_*), in wire order. */
export const MACRO_STAGES = ['connect', 'helo', 'mail', 'rcpt', 'data', 'eom', 'eoh'] as const;
export type MacroStage = (typeof MACRO_STAGES)[number];

export interface Frame {
  /** The command or reply byte. */
  readonly command: number;
  readonly data: Uint8Array;
}

export type Decoded<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8');

/**
 * Frames out of a byte stream. A length of 0 (no command byte) or over the bound is an error after
 * which the decoder stays failed: the stream is out of step and only a new connection recovers.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #buffer: Uint8Array = new Uint8Array(0);
  #error: string | null = null;

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for a frame not yet complete. */
  get pendingBytes(): number {
    return this.#buffer.length;
  }

  push(chunk: Uint8Array): Decoded<Frame[]> {
    if (this.#error !== null) return { ok: false, error: this.#error };
    this.#buffer = this.#buffer.length === 0 ? new Uint8Array(chunk) : concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    let at = 0;
    while (this.#buffer.length - at >= 4) {
      const length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset + at, 4).getUint32(0);
      if (length < 1 || length > this.#maxFrameBytes) {
        this.#error =
          length < 1 ? 'frame of length 0' : `frame of ${length} bytes exceeds ${this.#maxFrameBytes}`;
        this.#buffer = new Uint8Array(0);
        return { ok: false, error: this.#error };
      }
      if (this.#buffer.length - at - 4 < length) break;
      const command = this.#buffer[at + 4]!;
      frames.push({ command, data: this.#buffer.slice(at + 5, at + 4 + length) });
      at += 4 + length;
    }
    this.#buffer = at === 0 ? this.#buffer : this.#buffer.slice(at);
    return { ok: true, value: frames };
  }
}

// --- Encoders: the MTA's commands -----------------------------------------------------------------

type Part = Uint8Array | string;

function bytesOf(p: Part): Uint8Array {
  return typeof p === 'string' ? encoder.encode(p) : p;
}

/** A NUL would end the string early on the milter's side and shift every later field: drop it. */
function cString(p: Part): Uint8Array {
  const b = bytesOf(p);
  const out = b.includes(0) ? b.filter((x) => x !== 0) : b;
  return concat([out, new Uint8Array([0])]);
}

function uint32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One frame: length (command byte included), command, data. */
export function encodeFrame(command: CommandCode, ...data: readonly Uint8Array[]): Uint8Array {
  const body = concat(data);
  return concat([uint32(body.length + 1), new Uint8Array([command.charCodeAt(0)]), body]);
}

export function encodeOptneg(o: {
  readonly version: number;
  readonly actions: number;
  readonly flags: number;
}): Uint8Array {
  return encodeFrame(Command.optneg, uint32(o.version), uint32(o.actions), uint32(o.flags));
}

/** SMFIC_MACRO: the values for the command that follows (`for`), as name NUL value NUL pairs. */
export function encodeMacros(
  forCommand: CommandCode,
  macros: readonly (readonly [string, Part])[],
): Uint8Array {
  return encodeFrame(
    Command.macro,
    encoder.encode(forCommand),
    ...macros.flatMap(([name, value]) => [cString(name), cString(value)]),
  );
}

/** The address family of SMFIC_CONNECT: IPv4, IPv6, a Unix socket, or unknown (no port nor address). */
export type ConnectFamily = '4' | '6' | 'L' | 'U';

export function encodeConnect(c: {
  readonly hostname: Part;
  readonly family: ConnectFamily;
  readonly port: number;
  readonly address: Part;
}): Uint8Array {
  if (c.family === 'U') return encodeFrame(Command.connect, cString(c.hostname), encoder.encode('U'));
  const port = new Uint8Array(2);
  new DataView(port.buffer).setUint16(0, c.family === 'L' ? 0 : c.port & 0xffff);
  return encodeFrame(
    Command.connect,
    cString(c.hostname),
    encoder.encode(c.family),
    port,
    cString(c.address),
  );
}

export function encodeHelo(name: Part): Uint8Array {
  return encodeFrame(Command.helo, cString(name));
}

/** SMFIC_MAIL: `<sender>` first, then each ESMTP parameter as `NAME=value`. */
export function encodeMail(args: readonly Part[]): Uint8Array {
  return encodeFrame(Command.mail, ...args.map(cString));
}

/** SMFIC_RCPT: `<recipient>` first, then each ESMTP parameter. */
export function encodeRcpt(args: readonly Part[]): Uint8Array {
  return encodeFrame(Command.rcpt, ...args.map(cString));
}

export function encodeData(): Uint8Array {
  return encodeFrame(Command.data);
}

export function encodeHeader(name: Part, value: Part): Uint8Array {
  return encodeFrame(Command.header, cString(name), cString(value));
}

export function encodeEoh(): Uint8Array {
  return encodeFrame(Command.eoh);
}

/** SMFIC_BODY frames for `bytes`, each at most MAX_BODY_CHUNK_BYTES (none for no bytes). */
export function encodeBody(bytes: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += MAX_BODY_CHUNK_BYTES) {
    frames.push(encodeFrame(Command.body, bytes.subarray(at, at + MAX_BODY_CHUNK_BYTES)));
  }
  return frames;
}

export function encodeEob(): Uint8Array {
  return encodeFrame(Command.bodyEob);
}

export function encodeAbort(): Uint8Array {
  return encodeFrame(Command.abort);
}

export function encodeQuit(): Uint8Array {
  return encodeFrame(Command.quit);
}

/** SMFIC_QUIT_NC: end this connection's session but keep the socket for a new one. */
export function encodeQuitNewConnection(): Uint8Array {
  return encodeFrame(Command.quitNewConnection);
}

// --- Decoders: the milter's replies ---------------------------------------------------------------

export interface Negotiated {
  readonly version: number;
  readonly actions: number;
  readonly flags: number;
  /** The macros the milter wants per stage, where it named them (SMFIF_SETSYMLIST). */
  readonly macros: ReadonlyMap<MacroStage, readonly string[]>;
}

/** The milter's SMFIC_OPTNEG reply: version, actions, flags, then (stage uint32, names NUL) pairs. */
export function parseOptneg(frame: Frame): Decoded<Negotiated> {
  if (frame.command !== Command.optneg.charCodeAt(0)) {
    return { ok: false, error: `expected OPTNEG, got ${describeCommand(frame.command)}` };
  }
  const d = frame.data;
  if (d.length < 12) return { ok: false, error: `OPTNEG of ${d.length} bytes is too short` };
  const view = new DataView(d.buffer, d.byteOffset, d.length);
  const version = view.getUint32(0);
  const actions = view.getUint32(4);
  const flags = view.getUint32(8);
  if (version < 2 || version > MILTER_VERSION)
    return { ok: false, error: `unsupported milter version ${version}` };
  if ((actions & ~ALL_ACTIONS) !== 0)
    return { ok: false, error: `unknown actions 0x${actions.toString(16)}` };
  const macros = new Map<MacroStage, string[]>();
  let at = 12;
  while (at < d.length) {
    if (d.length - at < 5) return { ok: false, error: 'truncated macro list in OPTNEG' };
    const stage = view.getUint32(at);
    const end = d.indexOf(0, at + 4);
    if (end < 0) return { ok: false, error: 'macro list without NUL in OPTNEG' };
    const names = utf8
      .decode(d.subarray(at + 4, end))
      .split(/[\s,]+/)
      .filter((n) => n !== '');
    const name = MACRO_STAGES[stage];
    // An unknown stage is skipped, as Postfix does: a newer milter may know more stages than we do.
    if (name !== undefined) macros.set(name, names);
    at = end + 1;
  }
  return { ok: true, value: { version, actions, flags, macros } };
}

export type MilterReply =
  | { readonly kind: 'continue' }
  | { readonly kind: 'accept' }
  | { readonly kind: 'reject' }
  | { readonly kind: 'tempfail' }
  | { readonly kind: 'discard' }
  | { readonly kind: 'skip' }
  | { readonly kind: 'progress' }
  /** SMFIR_SHUTDOWN ('4'): 421, close the SMTP connection. */
  | { readonly kind: 'shutdown' }
  /** SMFIR_CONN_FAIL ('f'): fail the connection. */
  | { readonly kind: 'connectionFailure' }
  /** SMFIR_REPLYCODE: the raw reply text ("550 5.7.1 text", maybe multi-line); see parseReplyText. */
  | { readonly kind: 'replyCode'; readonly text: string }
  | { readonly kind: 'quarantine'; readonly reason: string }
  /** Append a field at the end of the header block. */
  | { readonly kind: 'addHeader'; readonly name: string; readonly value: string }
  /** Insert a field at a 0-based position. */
  | { readonly kind: 'insertHeader'; readonly index: number; readonly name: string; readonly value: string }
  /** Change the index'th (1-based) field of that name; an empty value deletes it. */
  | { readonly kind: 'changeHeader'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly kind: 'replaceBody'; readonly chunk: Uint8Array }
  | { readonly kind: 'addRecipient'; readonly recipient: string; readonly args: string | null }
  | { readonly kind: 'deleteRecipient'; readonly recipient: string }
  | { readonly kind: 'changeFrom'; readonly sender: string; readonly args: string | null };

const NO_DATA_REPLIES: Readonly<Record<string, MilterReply['kind']>> = {
  c: 'continue',
  a: 'accept',
  r: 'reject',
  t: 'tempfail',
  d: 'discard',
  s: 'skip',
  p: 'progress',
  '4': 'shutdown',
  f: 'connectionFailure',
};

/** `n` NUL-terminated strings, exactly filling `data` (the last may be optional). */
function cStrings(data: Uint8Array, min: number, max: number): string[] | null {
  const out: string[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf(0, at);
    if (end < 0) return null;
    out.push(utf8.decode(data.subarray(at, end)));
    at = end + 1;
  }
  return out.length >= min && out.length <= max ? out : null;
}

function describeCommand(c: number): string {
  return c >= 0x21 && c <= 0x7e ? `'${String.fromCharCode(c)}'` : `0x${c.toString(16).padStart(2, '0')}`;
}

/** A reply frame (anything but OPTNEG) as a value, or why it is malformed. */
export function parseReply(frame: Frame): Decoded<MilterReply> {
  const c = String.fromCharCode(frame.command);
  const d = frame.data;
  const bad = (why: string): Decoded<MilterReply> => ({
    ok: false,
    error: `${describeCommand(frame.command)}: ${why}`,
  });
  const simple = NO_DATA_REPLIES[c];
  if (simple !== undefined) {
    if (d.length !== 0) return bad(`${d.length} unexpected data bytes`);
    return { ok: true, value: { kind: simple } as MilterReply };
  }
  switch (c) {
    case 'y': {
      const s = cStrings(d, 1, 1);
      if (s === null) return bad('reply code is not one NUL-terminated string');
      return { ok: true, value: { kind: 'replyCode', text: s[0]! } };
    }
    case 'q': {
      const s = cStrings(d, 1, 1);
      if (s === null) return bad('quarantine reason is not one NUL-terminated string');
      return { ok: true, value: { kind: 'quarantine', reason: s[0]! } };
    }
    case 'h': {
      const s = cStrings(d, 2, 2);
      if (s === null || s[0] === '') return bad('expected header name and value');
      return { ok: true, value: { kind: 'addHeader', name: s[0]!, value: s[1]! } };
    }
    case 'i':
    case 'm': {
      if (d.length < 4) return bad('too short for an index');
      const index = new DataView(d.buffer, d.byteOffset, 4).getUint32(0);
      const s = cStrings(d.subarray(4), 2, 2);
      if (s === null || s[0] === '') return bad('expected index, header name and value');
      return {
        ok: true,
        value:
          c === 'i'
            ? { kind: 'insertHeader', index, name: s[0]!, value: s[1]! }
            : { kind: 'changeHeader', index, name: s[0]!, value: s[1]! },
      };
    }
    case 'b':
      return { ok: true, value: { kind: 'replaceBody', chunk: d } };
    case '+':
    case '-': {
      const s = cStrings(d, 1, 1);
      if (s === null || s[0] === '') return bad('expected one recipient');
      return {
        ok: true,
        value:
          c === '+'
            ? { kind: 'addRecipient', recipient: s[0]!, args: null }
            : { kind: 'deleteRecipient', recipient: s[0]! },
      };
    }
    case '2':
    case 'e': {
      const s = cStrings(d, 1, 2);
      if (s === null || (c === '2' && s[0] === ''))
        return bad('expected an address and optional ESMTP arguments');
      const args = s[1] ?? null;
      return {
        ok: true,
        value:
          c === '2'
            ? { kind: 'addRecipient', recipient: s[0]!, args }
            : { kind: 'changeFrom', sender: s[0]!, args },
      };
    }
    default:
      return bad('unknown reply');
  }
}

export interface ReplyText {
  readonly code: number;
  /** The enhanced status code (RFC 3463) when the milter gave one. */
  readonly enhanced: string | null;
  /** Each line's text, without code and enhanced code. */
  readonly lines: readonly string[];
}

/**
 * An SMFIR_REPLYCODE text: "550 5.7.1 text", or several CRLF-separated lines ("550-5.7.1 a\r\n550 5.7.1
 * b"). Only 4xx and 5xx, one code on every line, an enhanced code of the same class, printable text.
 * Sendmail uses the text as a format string, so milters double '%': "%%" becomes "%". Null for anything
 * else (the caller then answers with its generic reply).
 */
export function parseReplyText(raw: string): ReplyText | null {
  const rawLines = raw.replace(/\r?\n$/, '').split(/\r?\n/);
  let code: number | null = null;
  let enhanced: string | null = null;
  const lines: string[] = [];
  for (const [i, line] of rawLines.entries()) {
    const m = /^([45][0-9][0-9])([ -])(?:([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$))?(.*)$/.exec(line);
    if (m === null) return null;
    const c = Number(m[1]);
    const last = i === rawLines.length - 1;
    // One code throughout, and only the last line with a space after it (RFC 5321 §4.2.1).
    if ((code !== null && c !== code) || (m[2] === ' ') !== last) return null;
    code = c;
    const e = m[3] ?? null;
    if (e !== null && e[0] !== m[1]![0]) return null;
    if (i === 0) enhanced = e;
    const text = m[4]!.replace(/%%/g, '%');
    // Printable: no control characters (UTF-8 text is allowed, as SMTPUTF8 replies may carry it).
    if (/[\u0000-\u001f\u007f]/.test(text)) return null;
    lines.push(text);
  }
  if (code === null) return null;
  return { code, enhanced, lines };
}

// --- The message as a milter is sent it -----------------------------------------------------------

export type MessagePart =
  /** One header field, exactly as stored: name, colon, value, folding, without the last line end. */
  | { readonly kind: 'field'; readonly raw: Uint8Array }
  /** The header block ended (the empty line, or a line that is no header field). */
  | { readonly kind: 'endOfHeaders' }
  /** Body bytes as stored. */
  | { readonly kind: 'body'; readonly bytes: Uint8Array };

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;

/** A line that may start a header field: a name of printable ASCII, optional blanks, then a colon. */
function isFieldStart(line: Uint8Array): boolean {
  let i = 0;
  while (i < line.length && line[i]! > SP && line[i]! < 0x7f && line[i] !== COLON) i++;
  if (i === 0) return false;
  while (i < line.length && (line[i] === SP || line[i] === HT)) i++;
  return line[i] === COLON;
}

function isEmptyLine(line: Uint8Array): boolean {
  if (line.length === 0) return true;
  if (line.length === 1) return line[0] === LF || line[0] === CR;
  return line.length === 2 && line[0] === CR && line[1] === LF;
}

/**
 * Splits a stored message, fed in chunks, into header fields and body bytes, holding at most one field
 * (bounded by `maxFieldBytes`; a longer one is an error) and never the body.
 */
export class MessageSplitter {
  readonly #maxFieldBytes: number;
  #inBody = false;
  /** Bytes of the line being read (not yet ended). */
  #line: Uint8Array = new Uint8Array(0);
  /** The field being gathered: its lines so far, line ends included. */
  #field: Uint8Array | null = null;
  #error: string | null = null;

  constructor(maxFieldBytes = 1024 * 1024) {
    this.#maxFieldBytes = maxFieldBytes;
  }

  push(chunk: Uint8Array): Decoded<MessagePart[]> {
    if (this.#error !== null) return { ok: false, error: this.#error };
    if (this.#inBody) return { ok: true, value: chunk.length > 0 ? [{ kind: 'body', bytes: chunk }] : [] };
    const out: MessagePart[] = [];
    let at = 0;
    while (at < chunk.length && !this.#inBody) {
      const nl = chunk.indexOf(LF, at);
      if (nl < 0) {
        this.#line = concat([this.#line, chunk.subarray(at)]);
        at = chunk.length;
        break;
      }
      const line = concat([this.#line, chunk.subarray(at, nl + 1)]);
      this.#line = new Uint8Array(0);
      at = nl + 1;
      const r = this.#onLine(line, out);
      if (r !== null) return this.#fail(r);
    }
    if (this.#line.length + (this.#field?.length ?? 0) > this.#maxFieldBytes) {
      return this.#fail(`a header field exceeds ${this.#maxFieldBytes} bytes`);
    }
    if (this.#inBody && at < chunk.length) out.push({ kind: 'body', bytes: chunk.subarray(at) });
    return { ok: true, value: out };
  }

  /** The message ended: a last line without its line end, a header block without a body. */
  end(): Decoded<MessagePart[]> {
    if (this.#error !== null) return { ok: false, error: this.#error };
    const out: MessagePart[] = [];
    if (!this.#inBody) {
      if (this.#line.length > 0) {
        const r = this.#onLine(this.#line, out);
        if (r !== null) return this.#fail(r);
        this.#line = new Uint8Array(0);
      }
      if (!this.#inBody) {
        this.#flushField(out);
        this.#inBody = true;
        out.push({ kind: 'endOfHeaders' });
      }
    }
    return { ok: true, value: out };
  }

  #fail(error: string): Decoded<MessagePart[]> {
    this.#error = error;
    return { ok: false, error };
  }

  #onLine(line: Uint8Array, out: MessagePart[]): string | null {
    const first = line[0];
    if (first === SP || first === HT) {
      if (this.#field !== null) {
        this.#field = concat([this.#field, line]);
        return this.#field.length > this.#maxFieldBytes
          ? `a header field exceeds ${this.#maxFieldBytes} bytes`
          : null;
      }
      // A continuation with no field before it: not a header block, so the body starts here.
    } else if (isFieldStart(line)) {
      this.#flushField(out);
      this.#field = line;
      return line.length > this.#maxFieldBytes ? `a header field exceeds ${this.#maxFieldBytes} bytes` : null;
    }
    this.#flushField(out);
    this.#inBody = true;
    out.push({ kind: 'endOfHeaders' });
    // The empty line separates; any other line that ends the header block is the body's first line.
    if (!isEmptyLine(line)) out.push({ kind: 'body', bytes: line });
    return null;
  }

  #flushField(out: MessagePart[]): void {
    if (this.#field === null) return;
    let end = this.#field.length;
    if (end > 0 && this.#field[end - 1] === LF) end--;
    if (end > 0 && this.#field[end - 1] === CR) end--;
    out.push({ kind: 'field', raw: this.#field.subarray(0, end) });
    this.#field = null;
  }
}

/**
 * A stored field as SMFIC_HEADER carries it: the name (blanks before the colon dropped), the value after
 * the colon with one leading space eaten unless `leadingSpace` (SMFIP_HDR_LEADSPC; Sendmail eats a space,
 * never a tab), and folded lines joined with a bare LF, as Sendmail and Postfix send them.
 */
export function milterHeader(
  raw: Uint8Array,
  leadingSpace: boolean,
): { name: Uint8Array; value: Uint8Array } {
  const colon = raw.indexOf(COLON);
  let nameEnd = colon;
  while (nameEnd > 0 && (raw[nameEnd - 1] === SP || raw[nameEnd - 1] === HT)) nameEnd--;
  let start = colon + 1;
  if (!leadingSpace && raw[start] === SP) start++;
  const value = raw.subarray(start);
  const out: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === CR && value[i + 1] === LF) continue;
    out.push(value[i]!);
  }
  return { name: raw.subarray(0, nameEnd), value: Uint8Array.from(out) };
}
