// CIDR matching for trusted networks, pure (no node:net): IPv4, IPv6 and IPv4-mapped IPv6 addresses.

function parseIpv4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return null; // no leading zeros: octal to some tools
    v = (v << 8n) | BigInt(Number(p));
  }
  return v;
}

function parseIpv6(s: string): bigint | null {
  let tail: bigint | null = null;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail = parseIpv4(s.slice(lastColon + 1));
    if (tail === null) return null;
    text = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null; // "::" is one or more groups (RFC 4291 §2.2)
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail !== null) v = (v & ~0xffffffffn) | tail;
  return v;
}

/** An address as 128-bit value; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d) so both forms match. */
export function parseIp(s: string): bigint | null {
  const v4 = parseIpv4(s);
  if (v4 !== null) return 0xffff00000000n | v4;
  const v6 = parseIpv6(s.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  return v6;
}

export interface Network {
  readonly base: bigint;
  readonly prefix: number; // on the 128-bit scale
}

export function parseCidr(cidr: string): Network | null {
  const [addr, len, extra] = cidr.split('/');
  if (addr === undefined || extra !== undefined) return null;
  const isV4 = parseIpv4(addr) !== null;
  const ip = parseIp(addr);
  if (ip === null) return null;
  const max = isV4 ? 32 : 128;
  const bits = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(bits >= 0 && bits <= max)) return null;
  const prefix = isV4 ? 96 + bits : bits;
  return { base: mask(ip, prefix), prefix };
}

function mask(ip: bigint, prefix: number): bigint {
  if (prefix === 0) return 0n;
  const hostBits = BigInt(128 - prefix);
  return (ip >> hostBits) << hostBits;
}

export function inNetworks(ip: string, networks: readonly Network[]): boolean {
  const v = parseIp(ip);
  if (v === null) return false;
  return networks.some((n) => mask(v, n.prefix) === n.base);
}
