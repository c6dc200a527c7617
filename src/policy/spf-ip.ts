// IP addresses as SPF sees them: strict text forms for ip4:/ip6: (RFC 7208 §5.6: no leading zeros, no
// shortened IPv4), the client address with IPv4-mapped IPv6 taken as IPv4 (§5 ¶9), prefix matching, and
// the two macro forms (§7.3: "i" dotted or nibbles, "c" dotted or RFC 5952).
// Pure; deliberately no node:net (policy code does not touch sockets) and no zone ids or brackets: SPF
// never sees them.

export interface SpfIp {
  readonly version: 4 | 6;
  /** 32 bits for IPv4, 128 bits for IPv6. */
  readonly value: bigint;
}

// qnum of RFC 7208 §12: 0-255 without leading zeros (some tools read them as octal).
const QNUM = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const IPV4 = new RegExp(`^${QNUM}\\.${QNUM}\\.${QNUM}\\.${QNUM}$`);

export function parseIpv4(s: string): bigint | null {
  if (!IPV4.test(s)) return null;
  return s.split('.').reduce((v, part) => (v << 8n) | BigInt(Number(part)), 0n);
}

/** The text forms of RFC 4291 §2.2, hex digits in either case, with an optional dotted-quad tail. */
export function parseIpv6(s: string): bigint | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return null;
  let text = s;
  let tail: bigint | null = null;
  if (s.includes('.')) {
    const lastColon = s.lastIndexOf(':');
    if (lastColon < 0) return null;
    tail = parseIpv4(s.slice(lastColon + 1));
    if (tail === null) return null;
    text = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : [];
  const missing = 8 - head.length - rest.length;
  // "::" stands for one or more zero groups; without it there must be exactly eight.
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  let v = 0n;
  for (const group of [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest]) {
    if (!/^[0-9A-Fa-f]{1,4}$/.test(group)) return null;
    v = (v << 16n) | BigInt(parseInt(group, 16));
  }
  return tail === null ? v : (v & ~0xffffffffn) | tail;
}

const MAPPED_PREFIX = 0xffffn; // ::ffff:0:0/96 shifted right by 32 bits

/** The client address; an IPv4-mapped IPv6 address is IPv4 for every SPF purpose (RFC 7208 §5 ¶9). */
export function parseClientIp(s: string): SpfIp | null {
  const v4 = parseIpv4(s);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = parseIpv6(s);
  if (v6 === null) return null;
  if (v6 >> 32n === MAPPED_PREFIX) return { version: 4, value: v6 & 0xffffffffn };
  return { version: 6, value: v6 };
}

/** Whether `ip` lies in `network`/`prefixBits`; both are of `ip.version`'s width. */
export function inNetwork(ip: SpfIp, network: bigint, prefixBits: number): boolean {
  const hostBits = BigInt((ip.version === 4 ? 32 : 128) - prefixBits);
  return ip.value >> hostBits === network >> hostBits;
}

/** An address from a DNS answer, in the client's family, or null if it is of the other family or bad. */
export function parseAnswerAddress(s: string, version: 4 | 6): bigint | null {
  return version === 4 ? parseIpv4(s) : parseIpv6(s);
}

/** The "c" macro: dotted quad, or RFC 5952 text (lower case, longest run of two or more zero groups as "::"). */
export function formatIp(ip: SpfIp): string {
  if (ip.version === 4) return ipv4Text(ip.value);
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not compressed (RFC 5952 §4.2.2)
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (g: number[]): string => g.map((n) => n.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/**
 * The "i" macro: the dotted quad, or 32 dot-separated nibbles for IPv6. RFC 7208 leaves the case of the
 * nibbles open (DNS does not care); they are upper case as in pyspf, whose explanation text the RFC 7208
 * test suite asserts ("v-macro-ip6").
 */
export function dottedIp(ip: SpfIp): string {
  if (ip.version === 4) return ipv4Text(ip.value);
  return ip.value.toString(16).toUpperCase().padStart(32, '0').split('').join('.');
}

function ipv4Text(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((v >> shift) & 0xffn)).join('.');
}
