// DNS messages on the wire (RFC 1035 §4): header, questions, resource records, name compression
// (§4.1.4), the record types a mail server needs (A, NS, CNAME, SOA, PTR, MX, TXT from RFC 1035 §3.3,
// AAAA from RFC 3596 §2) and the EDNS(0) OPT pseudo-record (RFC 6891 §6). Both directions: the resolver
// encodes queries and decodes responses; the test DNS server does the reverse.
//
// SECURITY: every response comes from the network and may be hostile. Decoding is bounds-checked
// everywhere and total (a result, never an exception); compression pointers must point strictly backwards,
// so a pointer loop cannot exist, and a name may not exceed 255 octets however it was assembled.
// Record data of a known type must fill its RDLENGTH exactly; anything else is a format error for the
// whole message (a resolver must not act on half-understood data). Unknown types are kept raw.
// Tolerated: octets after the last record (nothing reads them), TTLs with the top bit set (= 0,
// RFC 2181 §8).
//
// Deliberately NOT here: sockets, timers, retries, caching, DNSSEC validation (see src/net/dns.ts).

import { MAX_NAME_OCTETS, formatName, parseName } from './name.ts';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from './address.ts';

export const RecordType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  OPT: 41,
  /** RFC 6698: decoded as raw bytes here (usage, selector, matching type, data); net/dns.ts reads them. */
  TLSA: 52,
} as const;
export type RecordTypeName = keyof typeof RecordType;

/** RFC 1035 §4.1.1, RFC 6891 §9 (BADVERS needs EDNS's extended bits). */
export const Rcode = {
  noError: 0,
  formErr: 1,
  servFail: 2,
  nxDomain: 3,
  notImp: 4,
  refused: 5,
  badVers: 16,
} as const;

export const CLASS_IN = 1;
/** RFC 1035 §4.2.1: a UDP message without EDNS carries at most 512 octets. */
export const MAX_UDP_PLAIN_OCTETS = 512;
/** DNS Flag Day 2020: the EDNS buffer size that avoids IP fragmentation on nearly every path. */
export const DEFAULT_EDNS_PAYLOAD = 1232;
/** A DNS message can never exceed what TCP's 2-octet length prefix can frame (RFC 1035 §4.2.2). */
export const MAX_MESSAGE_OCTETS = 65535;

const TYPE_NAMES = new Map<number, RecordTypeName>(
  Object.entries(RecordType).map(([k, v]) => [v, k as RecordTypeName]),
);

/** "MX" for 15, "TYPE65" (RFC 3597 §5) for types this codec does not know. */
export function recordTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `TYPE${type}`;
}

export type RecordData =
  | { readonly kind: 'A'; readonly address: string }
  | { readonly kind: 'AAAA'; readonly address: string }
  | { readonly kind: 'NS'; readonly target: string }
  | { readonly kind: 'CNAME'; readonly target: string }
  | { readonly kind: 'PTR'; readonly target: string }
  | { readonly kind: 'MX'; readonly preference: number; readonly exchange: string }
  /**
   * RFC 1035 §3.3.14: one or more <character-string>s. Each octet is one char (latin1), so nothing is
   * lost; `text` is the strings joined without separator, as SPF (RFC 7208 §3.3) and DKIM read them.
   */
  | { readonly kind: 'TXT'; readonly strings: readonly string[]; readonly text: string }
  | {
      readonly kind: 'SOA';
      readonly mname: string;
      readonly rname: string;
      readonly serial: number;
      readonly refresh: number;
      readonly retry: number;
      readonly expire: number;
      /** RFC 2308 §4: the negative-caching TTL. */
      readonly minimum: number;
    }
  /** Any other type (or, when encoding, any bytes at all: the test server can send malformed data). */
  | { readonly kind: 'raw'; readonly bytes: Uint8Array };

export interface ResourceRecord {
  /** Owner name in presentation form, no trailing dot. */
  readonly name: string;
  readonly type: number;
  readonly class: number;
  /** Seconds, 0 … 2^31-1. */
  readonly ttl: number;
  readonly data: RecordData;
}

export interface Question {
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface EdnsOption {
  readonly code: number;
  readonly data: Uint8Array;
}

/** The OPT pseudo-record, lifted out of the additional section (RFC 6891 §6.1.2). */
export interface Edns {
  readonly payloadSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
  readonly options: readonly EdnsOption[];
}

export interface DnsMessage {
  readonly id: number;
  /** true in responses. */
  readonly qr: boolean;
  readonly opcode: number;
  readonly aa: boolean;
  /** Truncated: the answer did not fit; ask again over TCP. */
  readonly tc: boolean;
  readonly rd: boolean;
  readonly ra: boolean;
  readonly ad: boolean;
  readonly cd: boolean;
  /** The full response code: header RCODE plus EDNS's extended bits when an OPT record is present. */
  readonly rcode: number;
  readonly questions: readonly Question[];
  readonly answers: readonly ResourceRecord[];
  readonly authorities: readonly ResourceRecord[];
  /** Without the OPT record, which is in `edns`. */
  readonly additionals: readonly ResourceRecord[];
  readonly edns: Edns | null;
}

export type Encoded = { ok: true; bytes: Uint8Array } | { ok: false; error: string };
export type Decoded = { ok: true; message: DnsMessage } | { ok: false; error: string };

// ---------------------------------------------------------------------------------------------------------
// Decoding

/** Internal only: decodeMessage catches it and returns a result, so nothing escapes the module. */
class FormatError extends Error {}

class Reader {
  readonly buf: Uint8Array;
  pos = 0;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new FormatError(`truncated ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) >>> 0) + (b[p + 1]! << 16) + (b[p + 2]! << 8) + b[p + 3]!;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  /**
   * RFC 1035 §4.1.4. A pointer must point strictly before the octet where the pointer itself sits, so
   * each jump moves backwards and a loop is impossible; the assembled name is still capped at 255 octets.
   */
  name(what: string): string {
    const labels: Uint8Array[] = [];
    let wireLength = 1;
    let pos = this.pos;
    let resumeAt = -1;
    for (;;) {
      if (pos >= this.buf.length) throw new FormatError(`truncated ${what}`);
      const len = this.buf[pos]!;
      if (len === 0) {
        pos += 1;
        break;
      }
      const tag = len & 0xc0;
      if (tag === 0xc0) {
        if (pos + 1 >= this.buf.length) throw new FormatError(`truncated ${what}`);
        const target = ((len & 0x3f) << 8) | this.buf[pos + 1]!;
        if (target >= pos) throw new FormatError(`compression pointer not backwards in ${what}`);
        if (resumeAt < 0) resumeAt = pos + 2;
        pos = target;
        continue;
      }
      if (tag !== 0) throw new FormatError(`unsupported label type in ${what}`);
      if (pos + 1 + len > this.buf.length) throw new FormatError(`truncated ${what}`);
      wireLength += 1 + len;
      if (wireLength > MAX_NAME_OCTETS) throw new FormatError(`${what} longer than 255 octets`);
      labels.push(this.buf.slice(pos + 1, pos + 1 + len));
      pos += 1 + len;
    }
    this.pos = resumeAt >= 0 ? resumeAt : pos;
    return formatName(labels);
  }
}

function decodeRecordData(r: Reader, type: number, rdlength: number): RecordData {
  const end = r.pos + rdlength;
  r.need(rdlength, 'record data');
  let data: RecordData;
  switch (type) {
    case RecordType.A:
      if (rdlength !== 4) throw new FormatError('A record data is not 4 octets');
      data = { kind: 'A', address: formatIPv4(r.bytes(4, 'A')) };
      break;
    case RecordType.AAAA:
      if (rdlength !== 16) throw new FormatError('AAAA record data is not 16 octets');
      data = { kind: 'AAAA', address: formatIPv6(r.bytes(16, 'AAAA')) };
      break;
    case RecordType.NS:
    case RecordType.CNAME:
    case RecordType.PTR: {
      const kind = type === RecordType.NS ? 'NS' : type === RecordType.CNAME ? 'CNAME' : 'PTR';
      data = { kind, target: r.name(`${kind} target`) };
      break;
    }
    case RecordType.MX: {
      const preference = r.u16('MX preference');
      data = { kind: 'MX', preference, exchange: r.name('MX exchange') };
      break;
    }
    case RecordType.TXT: {
      const strings: string[] = [];
      while (r.pos < end) {
        const len = r.u8('TXT string length');
        if (r.pos + len > end) throw new FormatError('TXT string overruns its record');
        strings.push(latin1(r.bytes(len, 'TXT string')));
      }
      data = { kind: 'TXT', strings, text: strings.join('') };
      break;
    }
    case RecordType.SOA:
      data = {
        kind: 'SOA',
        mname: r.name('SOA mname'),
        rname: r.name('SOA rname'),
        serial: r.u32('SOA serial'),
        refresh: r.u32('SOA refresh'),
        retry: r.u32('SOA retry'),
        expire: r.u32('SOA expire'),
        minimum: r.u32('SOA minimum'),
      };
      break;
    default:
      data = { kind: 'raw', bytes: r.bytes(rdlength, 'record data') };
  }
  if (r.pos !== end) throw new FormatError(`${recordTypeName(type)} record data does not fill its length`);
  return data;
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

type OptRecord = { readonly opt: Edns; readonly extendedRcode: number; readonly name: string };

function decodeRecord(r: Reader): ResourceRecord | OptRecord {
  const name = r.name('owner name');
  const type = r.u16('type');
  const cls = r.u16('class');
  const ttlRaw = r.u32('TTL');
  const rdlength = r.u16('RDLENGTH');
  if (type === RecordType.OPT) {
    const end = r.pos + rdlength;
    r.need(rdlength, 'OPT data');
    const options: EdnsOption[] = [];
    while (r.pos < end) {
      const code = r.u16('OPT option code');
      const len = r.u16('OPT option length');
      if (r.pos + len > end) throw new FormatError('OPT option overruns its record');
      options.push({ code, data: r.bytes(len, 'OPT option') });
    }
    // The OPT TTL field: extended RCODE (8 bits) | version (8) | DO (1) | zero (15); CLASS is the payload size.
    return {
      name,
      extendedRcode: ttlRaw >>> 24,
      opt: { payloadSize: cls, version: (ttlRaw >>> 16) & 0xff, dnssecOk: (ttlRaw & 0x8000) !== 0, options },
    };
  }
  // RFC 2181 §8: a TTL with the top bit set is treated as zero.
  const ttl = ttlRaw > 0x7fffffff ? 0 : ttlRaw;
  return { name, type, class: cls, ttl, data: decodeRecordData(r, type, rdlength) };
}

/** Decode one DNS message. Total: malformed input gives `{ ok: false, error }`, never an exception. */
export function decodeMessage(bytes: Uint8Array): Decoded {
  try {
    return { ok: true, message: decodeOrThrow(bytes) };
  } catch (err) {
    if (err instanceof FormatError) return { ok: false, error: err.message };
    throw err;
  }
}

function decodeOrThrow(bytes: Uint8Array): DnsMessage {
  if (bytes.length > MAX_MESSAGE_OCTETS) throw new FormatError('message longer than 65535 octets');
  const r = new Reader(bytes);
  const id = r.u16('header');
  const flags = r.u16('header');
  const counts = [r.u16('header'), r.u16('header'), r.u16('header'), r.u16('header')] as const;
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]; i++) {
    questions.push({ name: r.name('question name'), type: r.u16('question'), class: r.u16('question') });
  }
  const sections: ResourceRecord[][] = [[], [], []];
  let opt: OptRecord | null = null;
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const rec = decodeRecord(r);
      if ('opt' in rec) {
        // RFC 6891 §6.1.1: one OPT, in the additional section, owned by the root.
        if (s !== 2) throw new FormatError('OPT record outside the additional section');
        if (opt !== null) throw new FormatError('more than one OPT record');
        if (rec.name !== '') throw new FormatError('OPT record not owned by the root');
        opt = rec;
      } else {
        sections[s]!.push(rec);
      }
    }
  }
  const headerRcode = flags & 0xf;
  return {
    id,
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    ad: (flags & 0x0020) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: opt === null ? headerRcode : (opt.extendedRcode << 4) | headerRcode,
    questions,
    answers: sections[0]!,
    authorities: sections[1]!,
    additionals: sections[2]!,
    edns: opt === null ? null : opt.opt,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

class EncodeError extends Error {}

class Writer {
  private buf = new Uint8Array(512);
  length = 0;
  /** Name suffix (presentation form) → offset of its first occurrence, for compression. */
  private readonly suffixes = new Map<string, number>();
  private readonly compress: boolean;
  constructor(compress: boolean) {
    this.compress = compress;
  }
  private grow(n: number): void {
    if (this.length + n > MAX_MESSAGE_OCTETS) throw new EncodeError('message longer than 65535 octets');
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.min(MAX_MESSAGE_OCTETS, Math.max(this.buf.length * 2, this.length + n)));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  u8(v: number): void {
    this.grow(1);
    this.buf[this.length++] = v & 0xff;
  }
  u16(v: number): void {
    this.grow(2);
    this.buf[this.length++] = (v >> 8) & 0xff;
    this.buf[this.length++] = v & 0xff;
  }
  u32(v: number): void {
    this.u16(Math.floor(v / 0x10000) & 0xffff);
    this.u16(v & 0xffff);
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  setU16(at: number, v: number): void {
    this.buf[at] = (v >> 8) & 0xff;
    this.buf[at + 1] = v & 0xff;
  }
  /** RFC 1035 §4.1.4; only names the RFC allows to be compressed (RFC 3597 §4) should pass compress=true. */
  name(text: string, what: string, compressible: boolean): void {
    const parsed = parseName(text);
    if (!parsed.ok) throw new EncodeError(`${what}: ${parsed.error}`);
    const labels = parsed.labels;
    for (let i = 0; i < labels.length; i++) {
      // Exact (case-sensitive) suffixes only: a pointer must not change the case of what it stands for.
      const key = formatName(labels.slice(i));
      const at = this.suffixes.get(key);
      if (this.compress && compressible && at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (at === undefined && this.length < 0x4000) this.suffixes.set(key, this.length);
      this.u8(labels[i]!.length);
      this.bytes(labels[i]!);
    }
    this.u8(0);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function checkU(v: number, bits: 16 | 32, what: string): number {
  const max = bits === 16 ? 0xffff : 0xffffffff;
  if (!Number.isInteger(v) || v < 0 || v > max)
    throw new EncodeError(`${what} is not a ${bits}-bit unsigned`);
  return v;
}

function encodeTextOctets(s: string, what: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new EncodeError(`${what}: character above U+00FF (TXT strings are octets)`);
    out[i] = c;
  }
  return out;
}

function encodeRecordData(w: Writer, data: RecordData): void {
  switch (data.kind) {
    case 'A': {
      const b = parseIPv4(data.address);
      if (b === null) throw new EncodeError(`A: not an IPv4 address: ${data.address}`);
      w.bytes(b);
      return;
    }
    case 'AAAA': {
      const b = parseIPv6(data.address);
      if (b === null) throw new EncodeError(`AAAA: not an IPv6 address: ${data.address}`);
      w.bytes(b);
      return;
    }
    case 'NS':
    case 'CNAME':
    case 'PTR':
      w.name(data.target, `${data.kind} target`, true);
      return;
    case 'MX':
      w.u16(checkU(data.preference, 16, 'MX preference'));
      w.name(data.exchange, 'MX exchange', true);
      return;
    case 'TXT':
      for (const s of data.strings) {
        const b = encodeTextOctets(s, 'TXT');
        if (b.length > 255) throw new EncodeError('TXT: a character-string is longer than 255 octets');
        w.u8(b.length);
        w.bytes(b);
      }
      return;
    case 'SOA':
      w.name(data.mname, 'SOA mname', true);
      w.name(data.rname, 'SOA rname', true);
      w.u32(checkU(data.serial, 32, 'SOA serial'));
      w.u32(checkU(data.refresh, 32, 'SOA refresh'));
      w.u32(checkU(data.retry, 32, 'SOA retry'));
      w.u32(checkU(data.expire, 32, 'SOA expire'));
      w.u32(checkU(data.minimum, 32, 'SOA minimum'));
      return;
    case 'raw':
      w.bytes(data.bytes);
      return;
  }
}

function encodeRecord(w: Writer, rec: ResourceRecord): void {
  w.name(rec.name, 'owner name', true);
  w.u16(checkU(rec.type, 16, 'type'));
  w.u16(checkU(rec.class, 16, 'class'));
  w.u32(checkU(rec.ttl, 32, 'TTL'));
  const at = w.length;
  w.u16(0);
  encodeRecordData(w, rec.data);
  const rdlength = w.length - at - 2;
  if (rdlength > 0xffff) throw new EncodeError('record data longer than 65535 octets');
  w.setU16(at, rdlength);
}

export interface EncodeOptions {
  /** Compress names (RFC 1035 §4.1.4); default true. */
  readonly compress?: boolean;
}

/** Encode a whole message (query or response). Fails on values that do not fit the wire, never throws. */
export function encodeMessage(message: DnsMessage, options: EncodeOptions = {}): Encoded {
  try {
    return { ok: true, bytes: encodeOrThrow(message, options.compress ?? true) };
  } catch (err) {
    if (err instanceof EncodeError) return { ok: false, error: err.message };
    throw err;
  }
}

function encodeOrThrow(m: DnsMessage, compress: boolean): Uint8Array {
  const w = new Writer(compress);
  checkU(m.id, 16, 'id');
  if (!Number.isInteger(m.opcode) || m.opcode < 0 || m.opcode > 15) throw new EncodeError('opcode');
  if (!Number.isInteger(m.rcode) || m.rcode < 0 || m.rcode > 0xfff) throw new EncodeError('rcode');
  if (m.rcode > 15 && m.edns === null) throw new EncodeError('an rcode above 15 needs EDNS');
  const flags =
    (m.qr ? 0x8000 : 0) |
    (m.opcode << 11) |
    (m.aa ? 0x0400 : 0) |
    (m.tc ? 0x0200 : 0) |
    (m.rd ? 0x0100 : 0) |
    (m.ra ? 0x0080 : 0) |
    (m.ad ? 0x0020 : 0) |
    (m.cd ? 0x0010 : 0) |
    (m.rcode & 0xf);
  const arcount = m.additionals.length + (m.edns === null ? 0 : 1);
  for (const n of [m.questions.length, m.answers.length, m.authorities.length, arcount]) {
    if (n > 0xffff) throw new EncodeError('section with more than 65535 entries');
  }
  w.u16(m.id);
  w.u16(flags);
  w.u16(m.questions.length);
  w.u16(m.answers.length);
  w.u16(m.authorities.length);
  w.u16(arcount);
  for (const q of m.questions) {
    w.name(q.name, 'question name', true);
    w.u16(checkU(q.type, 16, 'question type'));
    w.u16(checkU(q.class, 16, 'question class'));
  }
  for (const rec of m.answers) encodeRecord(w, rec);
  for (const rec of m.authorities) encodeRecord(w, rec);
  for (const rec of m.additionals) encodeRecord(w, rec);
  if (m.edns !== null) {
    const e = m.edns;
    if (!Number.isInteger(e.version) || e.version < 0 || e.version > 255)
      throw new EncodeError('EDNS version');
    w.u8(0); // owner: the root
    w.u16(RecordType.OPT);
    w.u16(checkU(e.payloadSize, 16, 'EDNS payload size'));
    w.u8(m.rcode >> 4);
    w.u8(e.version);
    w.u16(e.dnssecOk ? 0x8000 : 0);
    const at = w.length;
    w.u16(0);
    for (const o of e.options) {
      w.u16(checkU(o.code, 16, 'EDNS option code'));
      w.u16(checkU(o.data.length, 16, 'EDNS option length'));
      w.bytes(o.data);
    }
    const rdlength = w.length - at - 2;
    if (rdlength > 0xffff) throw new EncodeError('OPT data longer than 65535 octets');
    w.setU16(at, rdlength);
  }
  return w.result();
}

export interface QuerySpec {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  /** Recursion desired; default true (Tern asks a recursive resolver). */
  readonly recursionDesired?: boolean;
  /** The EDNS UDP payload size to advertise; null sends no OPT record. Default 1232. */
  readonly ednsPayloadSize?: number | null;
  /** Set AD in the query: asks a validating resolver to say whether the answer is authenticated (RFC 6840 §5.7). */
  readonly authenticData?: boolean;
}

/** A standard query (opcode 0) for one name, type and class IN. */
export function encodeQuery(q: QuerySpec): Encoded {
  const payload = q.ednsPayloadSize === undefined ? DEFAULT_EDNS_PAYLOAD : q.ednsPayloadSize;
  return encodeMessage(
    {
      id: q.id,
      qr: false,
      opcode: 0,
      aa: false,
      tc: false,
      rd: q.recursionDesired ?? true,
      ra: false,
      ad: q.authenticData ?? false,
      cd: false,
      rcode: 0,
      questions: [{ name: q.name, type: q.type, class: CLASS_IN }],
      answers: [],
      authorities: [],
      additionals: [],
      edns: payload === null ? null : { payloadSize: payload, version: 0, dnssecOk: false, options: [] },
    },
    { compress: false },
  );
}

/**
 * Split text into <character-string>s of at most 255 octets (RFC 7208 §3.3 does the same for long SPF
 * records); "" stays one empty string, since a TXT record holds at least one.
 */
export function splitTxt(text: string): string[] {
  if (text.length === 0) return [''];
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 255) out.push(text.slice(i, i + 255));
  return out;
}
