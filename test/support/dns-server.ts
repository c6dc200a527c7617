// A small authoritative-and-recursive-looking DNS server on loopback for tests, so that no test ever asks
// the outside world. It answers from in-memory zones over UDP and TCP (RFC 1035 §4.2, RFC 7766), sets TC
// when a UDP answer does not fit (512 octets, or the query's EDNS size), follows CNAMEs inside its own
// zones the way a recursive resolver would, and can misbehave on demand: SERVFAIL, REFUSED, silence.
// Built on the production codec (src/protocol/dns), which the tests cross-check against Node's c-ares.
//
//   const dns = await startDnsServer({
//     zones: {
//       'example.com': {
//         '@': [{ type: 'MX', preference: 10, exchange: 'mx1.example.com' }],
//         mx1: [{ type: 'A', address: '127.0.0.1' }, { type: 'AAAA', address: '::1' }],
//         '_dmarc': [{ type: 'TXT', text: 'v=DMARC1; p=reject' }],
//         broken: 'servfail',
//         slow: 'timeout',
//       },
//     },
//   });
//   const resolver = createResolver(dns.config());   // servers: [dns.endpoint], short timeout
//   ...
//   assert.equal(dns.queries.length, 1);
//   await dns.close();
//
// Names in a zone are relative to its apex ('@' is the apex, 'mx1' is mx1.example.com) unless they already
// end with the apex. A name the zone does not hold gets NXDOMAIN (NODATA if names exist below it, RFC 8020);
// a known name without the asked type gets NODATA; both carry the zone's SOA, whose minimum (negativeTtl,
// default 300 s) is the negative-caching TTL. A name outside every zone gets REFUSED.
// DNSSEC is played, not done: names in `secureZones` are answered with the AD bit when the query sets AD
// or DO, as a validating resolver says "authenticated" (RFC 6840 §5.7); nothing is signed. Tests of DANE
// configure this server as the validating resolver ([dns] dnssec = true).
// Deliberately NOT here: wildcards, delegation, real DNSSEC signatures, zone transfers.

import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { DnsConfig } from '../../src/config/config.ts';
import {
  CLASS_IN,
  DEFAULT_EDNS_PAYLOAD,
  MAX_UDP_PLAIN_OCTETS,
  Rcode,
  RecordType,
  decodeMessage,
  encodeMessage,
  recordTypeName,
  splitTxt,
} from '../../src/protocol/dns/message.ts';
import type { DnsMessage, RecordData, ResourceRecord } from '../../src/protocol/dns/message.ts';
import { canonicalName } from '../../src/protocol/dns/name.ts';

/** One record; `ttl` is in seconds (default 300). */
export type RecordSpec = (
  | { readonly type: 'A'; readonly address: string }
  | { readonly type: 'AAAA'; readonly address: string }
  | { readonly type: 'MX'; readonly preference: number; readonly exchange: string }
  /** A string is split into 255-octet character-strings; an array gives the strings exactly. */
  | { readonly type: 'TXT'; readonly text: string | readonly string[] }
  | { readonly type: 'CNAME' | 'PTR' | 'NS'; readonly target: string }
  /** Replaces the zone's generated SOA when put at the apex. */
  | { readonly type: 'SOA'; readonly minimum: number; readonly mname?: string; readonly rname?: string }
  /** RFC 6698: certificate usage, selector, matching type, association data. */
  | {
      readonly type: 'TLSA';
      readonly usage: number;
      readonly selector: number;
      readonly matchingType: number;
      readonly data: Uint8Array;
    }
  /** Any type with raw record data, e.g. a malformed A record or a type the codec does not know. */
  | { readonly type: number; readonly data: Uint8Array }
) & { readonly ttl?: number };

/**
 * What a name does: its records, or a behaviour for every query of it (any type):
 * 'servfail' / 'refused' answer that rcode, 'timeout' never answers, 'nxdomain' denies the name.
 */
export type NameSpec = readonly RecordSpec[] | 'servfail' | 'refused' | 'timeout' | 'nxdomain';

/** Zone apex → (name → spec). */
export type Zones = Readonly<Record<string, Readonly<Record<string, NameSpec>>>>;

/** The function form of `zones`: the spec of any absolute name (lower case); undefined = NXDOMAIN. */
export type NameLookup = (name: string) => NameSpec | undefined;

export interface QueryLogEntry {
  /** The question's name as sent (case kept), without trailing dot. */
  readonly name: string;
  /** 'MX', 'TXT', … or 'TYPE65' for types the codec does not name. */
  readonly type: string;
  readonly transport: 'udp' | 'tcp';
  readonly id: number;
  /** The EDNS payload size the query advertised; null without EDNS. */
  readonly ednsPayloadSize: number | null;
}

export interface DnsServerOptions {
  readonly zones: Zones | NameLookup;
  readonly host?: string;
  /** 0 (default) picks a free port, the same for UDP and TCP. */
  readonly port?: number;
  /** SOA minimum of generated SOAs: the negative-caching TTL, seconds. Default 300. */
  readonly negativeTtl?: number;
  /** Largest UDP answer the server sends to EDNS queries (it also advertises it). Default 1232. */
  readonly udpPayloadSize?: number;
  /** Serve TCP too (default true); false makes TC answers dead ends. */
  readonly tcp?: boolean;
  /** Apexes whose answers (data and denials) carry AD when the query asks (AD or DO set). */
  readonly secureZones?: readonly string[];
  /**
   * Low-level override, asked before anything else: return a message or raw bytes to send instead of the
   * normal answer, 'drop' to stay silent, or undefined for normal handling. For hostile-server tests.
   */
  readonly onQuery?: (
    query: DnsMessage,
    transport: 'udp' | 'tcp',
  ) => DnsMessage | Uint8Array | 'drop' | undefined;
}

export interface DnsServer {
  readonly address: string;
  readonly port: number;
  /** For DnsConfig.servers: "127.0.0.1:5353" or "[::1]:5353". */
  readonly endpoint: string;
  /** Every query received, in order; clear with clearQueries(). */
  readonly queries: QueryLogEntry[];
  clearQueries(): void;
  /** Adds or replaces one zone (a name lookup function, if given, is asked only outside every zone). */
  setZone(apex: string, names: Readonly<Record<string, NameSpec>>): void;
  /** A DnsConfig that uses only this server: 1 attempt, 500 ms timeout unless overridden. */
  config(overrides?: Partial<DnsConfig>): DnsConfig;
  close(): Promise<void>;
}

const DEFAULT_TTL = 300;
const MAX_CNAME_CHAIN = 8;

interface Zone {
  readonly apex: string;
  readonly names: Map<string, NameSpec>;
}

function canonical(name: string): string {
  const c = canonicalName(name);
  if (c === null) throw new Error(`dns-server: invalid name ${JSON.stringify(name)}`);
  return c;
}

function absolute(name: string, apex: string): string {
  if (name === '@') return apex;
  const c = canonical(name);
  if (apex === '' || c === apex || c.endsWith('.' + apex)) return c;
  return `${c}.${apex}`;
}

function buildZone(apex: string, names: Readonly<Record<string, NameSpec>>): Zone {
  const a = canonical(apex);
  const map = new Map<string, NameSpec>();
  for (const [name, spec] of Object.entries(names)) map.set(absolute(name, a), spec);
  return { apex: a, names: map };
}

function recordData(spec: RecordSpec): { type: number; data: RecordData } {
  if (typeof spec.type === 'number') {
    if (!('data' in spec)) throw new Error('dns-server: a numeric type needs data');
    return { type: spec.type, data: { kind: 'raw', bytes: spec.data } };
  }
  if (spec.type === 'TLSA' && 'usage' in spec) {
    const bytes = new Uint8Array(3 + spec.data.length);
    bytes.set([spec.usage, spec.selector, spec.matchingType]);
    bytes.set(spec.data, 3);
    return { type: RecordType.TLSA, data: { kind: 'raw', bytes } };
  }
  switch (spec.type) {
    case 'A':
    case 'AAAA':
      if (!('address' in spec)) break;
      return { type: RecordType[spec.type], data: { kind: spec.type, address: spec.address } };
    case 'MX':
      if (!('exchange' in spec)) break;
      return {
        type: RecordType.MX,
        data: { kind: 'MX', preference: spec.preference, exchange: spec.exchange },
      };
    case 'TXT': {
      if (!('text' in spec)) break;
      const strings = typeof spec.text === 'string' ? splitTxt(spec.text) : [...spec.text];
      return { type: RecordType.TXT, data: { kind: 'TXT', strings, text: strings.join('') } };
    }
    case 'CNAME':
    case 'PTR':
    case 'NS':
      if (!('target' in spec)) break;
      return { type: RecordType[spec.type], data: { kind: spec.type, target: spec.target } };
    case 'SOA':
      if (!('minimum' in spec)) break;
      return {
        type: RecordType.SOA,
        data: {
          kind: 'SOA',
          mname: spec.mname ?? 'ns.invalid',
          rname: spec.rname ?? 'hostmaster.invalid',
          serial: 1,
          refresh: 3600,
          retry: 600,
          expire: 86400,
          minimum: spec.minimum,
        },
      };
  }
  throw new Error(`dns-server: malformed record spec ${JSON.stringify(spec)}`);
}

/** Start a server; resolves once both UDP and TCP are listening. */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const host = options.host ?? '127.0.0.1';
  const negativeTtl = options.negativeTtl ?? DEFAULT_TTL;
  const udpPayloadSize = options.udpPayloadSize ?? DEFAULT_EDNS_PAYLOAD;
  const zones = new Map<string, Zone>();
  let lookupFn: NameLookup | null = null;
  if (typeof options.zones === 'function') lookupFn = options.zones;
  else
    for (const [apex, names] of Object.entries(options.zones))
      zones.set(canonical(apex), buildZone(apex, names));
  const queries: QueryLogEntry[] = [];

  /** The zone holding a name: the longest apex that is the name or a suffix of it. */
  const zoneOf = (
    name: string,
  ): { apex: string; lookup: (n: string) => NameSpec | undefined; below: (n: string) => boolean } | null => {
    let best: Zone | null = null;
    for (const z of zones.values()) {
      if (
        (z.apex === '' || name === z.apex || name.endsWith('.' + z.apex)) &&
        (best === null || z.apex.length > best.apex.length)
      )
        best = z;
    }
    if (best !== null) {
      const z = best;
      return {
        apex: z.apex,
        lookup: (n) => z.names.get(n),
        below: (n) => [...z.names.keys()].some((k) => k.endsWith('.' + n)),
      };
    }
    if (lookupFn !== null) {
      const fn = lookupFn;
      return { apex: '', lookup: (n) => fn(n), below: () => false };
    }
    return null;
  };

  const soaFor = (apex: string, lookup: (n: string) => NameSpec | undefined): ResourceRecord => {
    const spec = lookup(apex);
    const given = Array.isArray(spec)
      ? (spec as readonly RecordSpec[]).find((r) => r.type === 'SOA')
      : undefined;
    const soa: RecordSpec = given ?? {
      type: 'SOA',
      minimum: negativeTtl,
      mname: apex === '' ? 'ns' : `ns.${apex}`,
      rname: apex === '' ? 'hostmaster' : `hostmaster.${apex}`,
      ttl: negativeTtl,
    };
    return { name: apex, class: CLASS_IN, ttl: soa.ttl ?? DEFAULT_TTL, ...recordData(soa) };
  };

  /** The normal answer to a query, or null to stay silent. */
  const answer = (query: DnsMessage): DnsMessage | null => {
    const asked = query.questions[0]?.name.toLowerCase().replace(/\.$/, '') ?? '';
    const authenticated =
      (query.ad || query.edns?.dnssecOk === true) &&
      (options.secureZones ?? []).some((z) => {
        const apex = canonical(z);
        return asked === apex || asked.endsWith(`.${apex}`);
      });
    const base = {
      id: query.id,
      qr: true,
      opcode: query.opcode,
      aa: true,
      tc: false,
      rd: query.rd,
      ra: true,
      ad: authenticated,
      cd: false,
      questions: query.questions,
      answers: [] as ResourceRecord[],
      authorities: [] as ResourceRecord[],
      additionals: [] as ResourceRecord[],
      edns:
        query.edns === null
          ? null
          : { payloadSize: udpPayloadSize, version: 0, dnssecOk: false, options: [] },
    };
    const q = query.questions[0];
    if (query.opcode !== 0) return { ...base, rcode: Rcode.notImp };
    if (q === undefined || query.questions.length !== 1) return { ...base, rcode: Rcode.formErr };
    const answers: ResourceRecord[] = [];
    let owner = q.name;
    for (let hop = 0; ; hop++) {
      const name = canonical(owner);
      const zone = zoneOf(name);
      if (zone === null)
        return hop === 0 ? { ...base, rcode: Rcode.refused } : { ...base, answers, rcode: Rcode.noError };
      const spec = zone.lookup(name);
      if (spec === 'timeout') return hop === 0 ? null : { ...base, answers, rcode: Rcode.noError };
      if (spec === 'servfail') return { ...base, rcode: Rcode.servFail };
      if (spec === 'refused') return { ...base, rcode: Rcode.refused };
      const negative = (rcode: number): DnsMessage => ({
        ...base,
        answers,
        authorities: [soaFor(zone.apex, zone.lookup)],
        rcode,
      });
      if (spec === undefined || spec === 'nxdomain') {
        return negative(spec === undefined && zone.below(name) ? Rcode.noError : Rcode.nxDomain);
      }
      const records = spec.map((r) => ({ spec: r, ...recordData(r) }));
      const matching = records.filter((r) => r.type === q.type);
      const toRecord = (r: (typeof records)[number]): ResourceRecord => ({
        name: owner,
        type: r.type,
        class: CLASS_IN,
        ttl: r.spec.ttl ?? DEFAULT_TTL,
        data: r.data,
      });
      if (matching.length > 0)
        return { ...base, answers: [...answers, ...matching.map(toRecord)], rcode: Rcode.noError };
      const cname = records.find((r) => r.type === RecordType.CNAME);
      if (cname === undefined || cname.data.kind !== 'CNAME' || hop >= MAX_CNAME_CHAIN)
        return negative(Rcode.noError);
      answers.push(toRecord(cname));
      owner = cname.data.target;
    }
  };

  const respond = (query: DnsMessage, transport: 'udp' | 'tcp'): Uint8Array | null => {
    const override = options.onQuery?.(query, transport);
    if (override === 'drop') return null;
    if (override instanceof Uint8Array) return override;
    const message = override ?? answer(query);
    if (message === null) return null;
    const encoded = encodeMessage(message);
    if (!encoded.ok) throw new Error(`dns-server: cannot encode answer: ${encoded.error}`);
    if (transport === 'tcp') return encoded.bytes;
    const limit =
      query.edns === null
        ? MAX_UDP_PLAIN_OCTETS
        : Math.max(MAX_UDP_PLAIN_OCTETS, Math.min(query.edns.payloadSize, udpPayloadSize));
    if (encoded.bytes.length <= limit) return encoded.bytes;
    // RFC 2181 §9: a truncated answer is better sent empty with TC than cut in the middle of a record.
    const truncated = encodeMessage({ ...message, tc: true, answers: [], authorities: [], additionals: [] });
    if (!truncated.ok) throw new Error(`dns-server: cannot encode answer: ${truncated.error}`);
    return truncated.bytes;
  };

  const handle = (bytes: Uint8Array, transport: 'udp' | 'tcp'): Uint8Array | null => {
    const decoded = decodeMessage(bytes);
    if (!decoded.ok || decoded.message.qr) return null;
    const query = decoded.message;
    const q = query.questions[0];
    queries.push({
      name: q?.name ?? '',
      type: q === undefined ? '' : recordTypeName(q.type),
      transport,
      id: query.id,
      ednsPayloadSize: query.edns?.payloadSize ?? null,
    });
    return respond(query, transport);
  };

  const { udp, tcp } = await bind(host, options.port ?? 0, options.tcp ?? true);
  const udpPort = udp.address().port;

  udp.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const out = handle(new Uint8Array(msg), 'udp');
    if (out !== null) udp.send(out, rinfo.port, rinfo.address);
  });

  const sockets = new Set<Socket>();
  tcp?.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      // RFC 7766 §8: each message is preceded by its 2-octet length; several may share a connection.
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const out = handle(new Uint8Array(pending.subarray(2, 2 + len)), 'tcp');
        pending = pending.subarray(2 + len);
        if (out !== null) {
          const frame = Buffer.alloc(2 + out.length);
          frame.writeUInt16BE(out.length, 0);
          frame.set(out, 2);
          socket.write(frame);
        }
      }
    });
  });

  const endpoint = host.includes(':') ? `[${host}]:${udpPort}` : `${host}:${udpPort}`;
  return {
    address: host,
    port: udpPort,
    endpoint,
    queries,
    clearQueries: () => {
      queries.length = 0;
    },
    setZone: (apex, names) => {
      zones.set(canonical(apex), buildZone(apex, names));
    },
    config: (overrides = {}) => ({
      servers: [endpoint],
      timeoutMs: 500,
      attempts: 1,
      maxCacheTtlMs: 3_600_000,
      dnssec: false,
      ...overrides,
    }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        tcp === null ? Promise.resolve() : new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

/** UDP and TCP on one port: with port 0, bind UDP first and retry if TCP finds its number taken. */
async function bind(
  host: string,
  port: number,
  withTcp: boolean,
): Promise<{ udp: UdpSocket; tcp: Server | null }> {
  for (let attempt = 0; ; attempt++) {
    const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    udp.bind(port, host);
    await once(udp, 'listening');
    if (!withTcp) return { udp, tcp: null };
    const tcp = createServer();
    try {
      tcp.listen(udp.address().port, host);
      await once(tcp, 'listening');
      return { udp, tcp };
    } catch (err) {
      udp.close();
      tcp.close();
      if (port !== 0 || attempt >= 20) throw err;
    }
  }
}
