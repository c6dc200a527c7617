// How a DNSBL zone is written in `[filters.dnsbl] zones`: shared by the config loader (to report a bad
// one with its line) and the check (policy/filters/dnsbl.ts).

import { isIP } from 'node:net';

export interface DnsblZone {
  readonly zone: string;
  readonly weight: number;
  /** Answers that count as a listing; empty: any 127.0.0.0/8 answer but 127.0.0.1 and 127.255.255.x. */
  readonly codes: readonly string[];
}

/** `zone`, `zone*2` (weight), `zone=127.0.0.2,127.0.0.3` (only those codes), or both. Null when not one. */
export function parseZone(spec: string): DnsblZone | null {
  const m = /^([a-z0-9._-]+?)(?:=([0-9.,]+))?(?:\*(\d+))?$/i.exec(spec.trim());
  if (m === null || !m[1]!.includes('.')) return null;
  const codes = m[2] === undefined ? [] : m[2].split(',').filter((c) => c !== '');
  if (codes.some((c) => isIP(c) !== 4 || !c.startsWith('127.'))) return null;
  return {
    zone: m[1]!.toLowerCase().replace(/\.$/, ''),
    weight: m[3] === undefined ? 1 : Number(m[3]),
    codes,
  };
}
