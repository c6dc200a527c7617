// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), pure: the first bytes of a
// connection in, the client's real address (or "keep the socket's own", or why not) out. A load balancer
// in front of Tern sends it once, in clear, before anything else (before a TLS ClientHello too).
// v1: one text line, at most 107 bytes: "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n".
// v2: a 12-byte signature, version/command, family/transport, a 2-byte length, the addresses and ports,
// then TLVs (skipped, but their framing is checked and the whole block is capped).
// Deliberately NOT here: who may send a header (the listener's proxy_from), reading the socket and the
// deadline (net/connection.ts readProxyHeader), and any meaning of the TLVs (SSL, ALPN, authority).
//
// SECURITY: whatever this returns becomes the client's address for limits, trusted networks, SPF and
// Received:. It is total and strict: every malformed, truncated-then-closed or oversized header is
// `invalid`, never a best guess; UNIX-socket and datagram families are refused rather than mapped to the
// proxy's own address (which may sit in trusted_networks).

export interface ProxyEndpoint {
  /** Dotted IPv4, or IPv6 as RFC 5952 writes it; IPv4-mapped IPv6 is given as IPv4 (as the shell does). */
  readonly ip: string;
  readonly port: number;
}

export type ProxyHeader =
  /** Not enough bytes yet to decide. */
  | { readonly kind: 'need-more' }
  | {
      readonly kind: 'proxied';
      readonly version: 1 | 2;
      readonly source: ProxyEndpoint;
      readonly destination: ProxyEndpoint;
      /** Bytes of the header; what follows belongs to the session (or its TLS handshake). */
      readonly consumed: number;
    }
  /** v2 LOCAL (a health check), v1 UNKNOWN, v2 UNSPEC: keep the socket's own addresses. */
  | { readonly kind: 'local'; readonly version: 1 | 2; readonly consumed: number }
  | { readonly kind: 'invalid'; readonly reason: string };

/** v1's own limit, CRLF included (proxy-protocol.txt §2.1). */
export const PROXY_V1_MAX_BYTES = 107;
/** Our cap on v2's length field (addresses and TLVs): a header is a few dozen bytes, TLVs a few hundred. */
export const PROXY_V2_DEFAULT_MAX_LENGTH = 4096;
const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20); // "PROXY "

export interface ProxyParseOptions {
  /** The largest v2 length field accepted; default PROXY_V2_DEFAULT_MAX_LENGTH. */
  readonly maxV2Length?: number;
}

/** Whether `input` starts like `prefix` as far as both go. */
function startsLike(input: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(input.length, prefix.length);
  for (let i = 0; i < n; i++) if (input[i] !== prefix[i]) return false;
  return true;
}

/** The header at the start of `input`, or need-more, or why it is not one. Never throws. */
export function parseProxyHeader(input: Uint8Array, options: ProxyParseOptions = {}): ProxyHeader {
  if (input.length === 0) return { kind: 'need-more' };
  if (startsLike(input, V1_PREFIX)) return parseV1(input);
  if (startsLike(input, V2_SIGNATURE))
    return parseV2(input, options.maxV2Length ?? PROXY_V2_DEFAULT_MAX_LENGTH);
  return { kind: 'invalid', reason: 'not a PROXY protocol header' };
}

// --- v1 ------------------------------------------------------------------------------------------

function parseV1(input: Uint8Array): ProxyHeader {
  const limit = Math.min(input.length, PROXY_V1_MAX_BYTES);
  let end = -1;
  for (let i = 0; i < limit; i++) {
    const b = input[i]!;
    if (b === 0x0d) {
      if (i + 1 >= PROXY_V1_MAX_BYTES) break;
      if (i + 1 >= input.length) return { kind: 'need-more' };
      if (input[i + 1] !== 0x0a) return { kind: 'invalid', reason: 'v1: CR not followed by LF' };
      end = i;
      break;
    }
    // Printable US-ASCII only: a binary or line-broken blob is refused at its first bad byte.
    if (b < 0x20 || b > 0x7e) return { kind: 'invalid', reason: 'v1: a control or non-ASCII byte' };
  }
  if (end < 0) {
    return input.length >= PROXY_V1_MAX_BYTES
      ? { kind: 'invalid', reason: `v1: no CRLF within ${PROXY_V1_MAX_BYTES} bytes` }
      : { kind: 'need-more' };
  }
  const consumed = end + 2;
  let line = '';
  for (let i = 0; i < end; i++) line += String.fromCharCode(input[i]!);
  const fields = line.split(' ');
  if (fields[1] === 'UNKNOWN') return { kind: 'local', version: 1, consumed };
  if (fields.length !== 6)
    return { kind: 'invalid', reason: 'v1: expected 6 fields separated by single spaces' };
  const [, proto, src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  if (proto !== 'TCP4' && proto !== 'TCP6') return { kind: 'invalid', reason: 'v1: unknown protocol' };
  const parse = proto === 'TCP4' ? parseIpv4Text : parseIpv6Text;
  const srcBytes = parse(src);
  const dstBytes = parse(dst);
  if (srcBytes === null || dstBytes === null) {
    return { kind: 'invalid', reason: `v1: not an ${proto === 'TCP4' ? 'IPv4' : 'IPv6'} address` };
  }
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp === null || dp === null) return { kind: 'invalid', reason: 'v1: not a port number' };
  return {
    kind: 'proxied',
    version: 1,
    source: { ip: formatIp(srcBytes), port: sp },
    destination: { ip: formatIp(dstBytes), port: dp },
    consumed,
  };
}

/** Decimal 0–65535 without leading zeros or signs. */
function parsePort(s: string): number | null {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return null;
  const n = Number(s);
  return n <= 65535 ? n : null;
}

/** Strict dotted quad (no leading zeros: some tools read those as octal). */
function parseIpv4Text(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (const [i, p] of parts.entries()) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** RFC 4291 §2.2 text (with "::" and an IPv4 tail), no zone and no brackets. */
function parseIpv6Text(s: string): Uint8Array | null {
  if (s.length > 45) return null;
  let text = s;
  let tail: Uint8Array | null = null;
  if (s.includes('.')) {
    const at = s.lastIndexOf(':');
    tail = parseIpv4Text(s.slice(at + 1));
    if (tail === null) return null;
    text = `${s.slice(0, at + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const out = new Uint8Array(16);
  for (const [i, g] of groups.entries()) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  if (tail !== null) out.set(tail, 12);
  return out;
}

// --- v2 ------------------------------------------------------------------------------------------

function parseV2(input: Uint8Array, maxLength: number): ProxyHeader {
  if (input.length < 16) {
    // Decide as early as the bytes allow: a wrong version or command need not wait for the rest.
    if (input.length > 12) {
      const early = checkVersionCommand(input[12]!);
      if (early !== null) return early;
    }
    return { kind: 'need-more' };
  }
  const bad = checkVersionCommand(input[12]!);
  if (bad !== null) return bad;
  const command = input[12]! & 0x0f;
  const famTransport = input[13]!;
  const length = (input[14]! << 8) | input[15]!;
  if (length > maxLength)
    return { kind: 'invalid', reason: `v2: length ${length} over the cap of ${maxLength}` };
  const consumed = 16 + length;
  if (input.length < consumed) return { kind: 'need-more' };
  // proxy-protocol.txt §2.2: with LOCAL the receiver ignores the address block, whatever it holds.
  if (command === 0x0) return { kind: 'local', version: 2, consumed };
  const body = input.subarray(16, consumed);
  let addrLength: number;
  switch (famTransport) {
    case 0x00:
      return { kind: 'local', version: 2, consumed };
    case 0x11:
      addrLength = 12;
      break;
    case 0x21:
      addrLength = 36;
      break;
    default:
      return {
        kind: 'invalid',
        reason: `v2: unsupported family/transport 0x${famTransport.toString(16).padStart(2, '0')}`,
      };
  }
  if (length < addrLength) return { kind: 'invalid', reason: 'v2: address block shorter than its family' };
  const half = (addrLength - 4) / 2;
  const src = body.subarray(0, half);
  const dst = body.subarray(half, 2 * half);
  const sport = (body[2 * half]! << 8) | body[2 * half + 1]!;
  const dport = (body[2 * half + 2]! << 8) | body[2 * half + 3]!;
  // TLVs: type (1), length (2), value. Skipped, but one that runs past the block is a broken header.
  let at = addrLength;
  while (at < length) {
    if (at + 3 > length) return { kind: 'invalid', reason: 'v2: truncated TLV' };
    const tlvLength = (body[at + 1]! << 8) | body[at + 2]!;
    at += 3 + tlvLength;
    if (at > length) return { kind: 'invalid', reason: 'v2: TLV longer than the header' };
  }
  return {
    kind: 'proxied',
    version: 2,
    source: { ip: formatIp(src), port: sport },
    destination: { ip: formatIp(dst), port: dport },
    consumed,
  };
}

function checkVersionCommand(b: number): ProxyHeader | null {
  if (b >> 4 !== 2) return { kind: 'invalid', reason: 'v2: version is not 2' };
  if ((b & 0x0f) > 1) return { kind: 'invalid', reason: 'v2: unknown command' };
  return null;
}

// --- addresses -----------------------------------------------------------------------------------

/** 4 bytes → dotted; 16 → RFC 5952 text, or dotted when IPv4-mapped (::ffff:a.b.c.d). */
function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952 §4.2: the longest run of two or more zero groups (the first on a tie) becomes "::".
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (g: number[]): string => g.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLength))}`;
}
