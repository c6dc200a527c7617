// IP addresses as A/AAAA record data: text ↔ octets, and the reverse-lookup name of an address
// (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5 ip6.arpa). IPv6 text follows RFC 5952 (lower case, the
// longest run of two or more zero groups shortened to "::", IPv4-mapped addresses in dotted form).
// Pure and total. Deliberately NOT here: zone ids ("%eth0"), which have no meaning in DNS data.

/** Strict dotted quad: four decimal octets, no leading zeros, no shorthand ("127.1"). */
export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** RFC 4291 §2.2 text forms, including "::" and a trailing dotted IPv4 part. */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length === 0 || text.length > 45) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (part: string): number[] | null => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece);
        if (v4 === null) return null;
        groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return null;
        groups.push(parseInt(piece, 16));
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === null || tail === null) return null;
  // A dotted IPv4 part may only end the address, so it cannot sit before a "::".
  if (halves.length === 2 && halves[0]!.includes('.')) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    if (head.length !== 8) return null;
    groups = head;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

export function formatIPv4(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 4)).join('.');
}

export function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  // RFC 5952 §5: IPv4-mapped addresses keep the dotted form.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return '::ffff:' + formatIPv4(bytes.subarray(12, 16));
  }
  // RFC 5952 §4.2: shorten the longest run of ≥ 2 zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}

/** The PTR query name for an address ("192.0.2.1" → "1.2.0.192.in-addr.arpa"); null if not an address. */
export function reverseName(address: string): string | null {
  const v4 = parseIPv4(address);
  if (v4 !== null) return `${v4[3]}.${v4[2]}.${v4[1]}.${v4[0]}.in-addr.arpa`;
  const v6 = parseIPv6(address);
  if (v6 === null) return null;
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) {
    const b = v6[i]!;
    nibbles.push((b & 0xf).toString(16), (b >> 4).toString(16));
  }
  return nibbles.join('.') + '.ip6.arpa';
}
