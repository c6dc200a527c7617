// The stub resolver behind the Resolver port (src/core/dns.ts): it asks a recursive resolver (from
// [dns].servers, else /etc/resolv.conf, else 127.0.0.1) over UDP, falls back to TCP when the answer is
// truncated (RFC 1035 §4.2, RFC 7766), follows CNAME chains (RFC 1034 §3.6.2, bounded), and caches
// answers for their TTL (capped by dns.max_cache_ttl) and negative answers for the SOA's negative TTL
// (RFC 2308 §5). Node's own resolver reports no TTL for MX or TXT, hence this one.
//
// SECURITY: answers are accepted only from the asked server's address and port, on a connected socket
// with a fresh OS-chosen (randomised) source port, with a random 16-bit id and the exact question echoed
// (RFC 5452 §9.1); anything else is ignored and logged, and the wait goes on until the timeout. Decoding is
// the total, bounds-checked codec of src/protocol/dns. Every failure (timeout, SERVFAIL, REFUSED, garbage)
// is a temporary `error`: mail is deferred on a DNS outage, never bounced.
//
// Deliberately NOT here: DNSSEC validation (trust the AD bit of a local validating resolver, if ever),
// EDNS fallback for resolvers that reject OPT (DNS Flag Day 2019 ended such workarounds), caching of
// server failures (RFC 2308 §7), search lists and ndots (mail routing uses fully qualified names only).

import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect, isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { DnsConfig } from '../config/config.ts';
import type { DnsAnswer, MxRecord, Resolver, TlsaRecord } from '../core/dns.ts';
import { Events } from '../core/events.ts';
import { nullLogger, systemClock } from '../core/ports.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { formatIPv4, formatIPv6, parseIPv6, reverseName } from '../protocol/dns/address.ts';
import {
  CLASS_IN,
  Rcode,
  RecordType,
  decodeMessage,
  encodeQuery,
  recordTypeName,
} from '../protocol/dns/message.ts';
import type { DnsMessage, RecordData } from '../protocol/dns/message.ts';

export interface ResolverOptions {
  /** Cache time only; network timeouts use real timers. */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Where to find nameservers when config.servers is empty (tests point it elsewhere). */
  readonly resolvConfPath?: string;
  /** Cached answers kept at most; the oldest is dropped first. Default 10,000. */
  readonly maxCacheEntries?: number;
}

export interface DnsEndpoint {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** How many CNAMEs one lookup follows (BIND and Unbound stop around 8–12). */
export const MAX_CNAME_HOPS = 8;
/** resolv.conf(5): glibc uses the first three nameservers only. */
const MAX_RESOLV_CONF_SERVERS = 3;
const DEFAULT_MAX_CACHE_ENTRIES = 10_000;

/**
 * "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:5353", "fe80::1%eth0"; null if not an IP
 * address (a resolver named by host name would need a resolver first).
 */
export function parseServerAddress(text: string): DnsEndpoint | null {
  let host = text.trim();
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::([0-9]{1,5}))?$/.exec(host);
  if (bracketed !== null) {
    host = bracketed[1]!;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else {
    const v4port = /^([0-9.]+):([0-9]{1,5})$/.exec(host);
    if (v4port !== null) {
      host = v4port[1]!;
      port = Number(v4port[2]);
    }
  }
  if (port < 1 || port > 65535) return null;
  const family = isIP(host);
  if (family === 4) return { host, port, family };
  if (family === 6) return { host, port, family };
  return null;
}

/** The `nameserver` lines of resolv.conf(5), at most three, in order; invalid entries are skipped. */
export function parseResolvConf(text: string): DnsEndpoint[] {
  const out: DnsEndpoint[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m === null) continue;
    // The address is bare in resolv.conf ("::1", no brackets or port), so a port would be misread.
    const ep = isIP(m[1]!.split('%')[0]!) !== 0 ? parseServerAddress(m[1]!) : null;
    if (ep !== null) out.push(ep);
    if (out.length === MAX_RESOLV_CONF_SERVERS) break;
  }
  return out;
}

const LOCALHOST: DnsEndpoint = { host: '127.0.0.1', port: 53, family: 4 };

/** The system's nameservers from resolv.conf; 127.0.0.1 when it names none or cannot be read (resolv.conf(5)). */
export async function readSystemServers(
  path = '/etc/resolv.conf',
  log: Logger = nullLogger,
): Promise<DnsEndpoint[]> {
  try {
    const found = parseResolvConf(await readFile(path, 'utf8'));
    return found.length > 0 ? found : [LOCALHOST];
  } catch (err) {
    log.warn(Events.dnsResolvConfUnreadable, { path, err });
    return [LOCALHOST];
  }
}

/**
 * A name as the caller gave it → the lower-case A-label name to query, or null if it cannot be a domain
 * name. ASCII names skip domainToASCII on purpose: its WHATWG host rules would rewrite "0x7f.1" into
 * "127.0.0.1" and cut names at a backslash. Labels allow letters, digits, '-' and '_' (SRV, DKIM, DMARC).
 */
export function toQueryName(input: string): string | null {
  let name = input.endsWith('.') ? input.slice(0, -1) : input;
  if (/[^\p{ASCII}]/u.test(name)) name = domainToASCII(name);
  name = name.toLowerCase();
  if (name === '' || name.length > 253) return null;
  for (const label of name.split('.')) {
    if (!/^[a-z0-9_-]{1,63}$/.test(label)) return null;
  }
  return name;
}

/** Canonical text of an address for comparison ("::0001" = "::1"); zone ids dropped. */
function normalizeAddress(address: string): string {
  const bare = address.split('%')[0]!;
  const v6 = parseIPv6(bare);
  return v6 === null ? bare : formatIPv6(v6);
}

type Exchange = { ok: true; message: DnsMessage } | { ok: false; reason: string };

interface Question {
  readonly name: string;
  readonly type: number;
}

function matchesQuestion(m: DnsMessage, id: number, q: Question): boolean {
  const mq = m.questions[0];
  return (
    m.id === id &&
    m.qr &&
    m.opcode === 0 &&
    m.questions.length === 1 &&
    mq !== undefined &&
    mq.type === q.type &&
    mq.class === CLASS_IN &&
    mq.name.toLowerCase() === q.name
  );
}

/** The internal answer: record data of the asked type, with cache lifetimes in seconds. */
type Resolved =
  | {
      readonly kind: 'ok';
      readonly records: readonly RecordData[];
      readonly ttlS: number;
      readonly secure: boolean;
      /** The owner of the records, after CNAMEs. */
      readonly name: string;
    }
  | { readonly kind: 'nxdomain' | 'nodata'; readonly negativeTtlS: number | null; readonly secure: boolean }
  | { readonly kind: 'error'; readonly temporary: true; readonly reason: string };

interface CacheEntry {
  readonly expiresAtMs: number;
  readonly answer: Resolved;
}

/** The production Resolver. `config.attempts` is rounds over the server list, like resolv.conf's attempts. */
export function createResolver(config: DnsConfig, opts: ResolverOptions = {}): Resolver {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger ?? nullLogger;
  const maxEntries = opts.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES;
  const configured = config.servers.map((s) => {
    const ep = parseServerAddress(s);
    if (ep === null)
      throw new Error(`dns.servers: not an IP address with optional port: ${JSON.stringify(s)}`);
    return ep;
  });
  let servers: Promise<DnsEndpoint[]> | null = configured.length > 0 ? Promise.resolve(configured) : null;
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<Resolved>>();

  const getServers = (): Promise<DnsEndpoint[]> => {
    servers ??= readSystemServers(opts.resolvConfPath, log);
    return servers;
  };

  const udpExchange = (ep: DnsEndpoint, q: Question): Promise<Exchange> => {
    const id = randomInt(0, 0x10000);
    // With [dns] dnssec, AD in the query asks the (validating) resolver to say what it authenticated.
    const query = encodeQuery({ id, name: q.name, type: q.type, authenticData: config.dnssec });
    if (!query.ok) return Promise.resolve({ ok: false, reason: `cannot encode query: ${query.error}` });
    const expected = normalizeAddress(ep.host);
    return new Promise<Exchange>((resolve) => {
      // Port 0: the kernel picks a random ephemeral source port for each query (RFC 5452 §4.5).
      const socket = createSocket(ep.family === 6 ? 'udp6' : 'udp4');
      let done = false;
      const finish = (result: Exchange): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.removeAllListeners('message');
        socket.on('error', () => {});
        try {
          socket.close();
        } catch {
          // already closed by an error: nothing left to release
        }
        resolve(result);
      };
      const timer = setTimeout(
        () => finish({ ok: false, reason: `timeout after ${config.timeoutMs} ms` }),
        config.timeoutMs,
      );
      socket.on('error', (err) => finish({ ok: false, reason: `udp: ${err.message}` }));
      socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
        const fromServer = rinfo.port === ep.port && normalizeAddress(rinfo.address) === expected;
        const decoded = fromServer ? decodeMessage(new Uint8Array(msg)) : null;
        if (decoded?.ok === true && matchesQuestion(decoded.message, id, q)) {
          finish({ ok: true, message: decoded.message });
          return;
        }
        // A stray, spoofed or malformed datagram: ignore it and keep waiting for the real answer.
        log.warn(Events.dnsAnswerIgnored, {
          server: `${ep.host}:${ep.port}`,
          from: `${rinfo.address}:${rinfo.port}`,
          name: q.name,
          type: recordTypeName(q.type),
          why: !fromServer
            ? 'wrong source'
            : decoded?.ok === false
              ? decoded.error
              : 'id or question mismatch',
        });
      });
      // The typings say the callback takes no argument; at run time a failed connect(2) passes its error.
      socket.connect(ep.port, ep.host, (connectError?: unknown) => {
        if (connectError instanceof Error) {
          finish({ ok: false, reason: `udp connect: ${connectError.message}` });
          return;
        }
        socket.send(query.bytes, (err) => {
          if (err) finish({ ok: false, reason: `udp send: ${err.message}` });
        });
      });
    });
  };

  const tcpExchange = (ep: DnsEndpoint, q: Question): Promise<Exchange> => {
    const id = randomInt(0, 0x10000);
    // Over TCP the answer may be large, so the OPT size is irrelevant; keep it for the server's benefit.
    // With [dns] dnssec, AD in the query asks the (validating) resolver to say what it authenticated.
    const query = encodeQuery({ id, name: q.name, type: q.type, authenticData: config.dnssec });
    if (!query.ok) return Promise.resolve({ ok: false, reason: `cannot encode query: ${query.error}` });
    return new Promise<Exchange>((resolve) => {
      const socket = tcpConnect({ host: ep.host, port: ep.port });
      let received = Buffer.alloc(0);
      let done = false;
      const finish = (result: Exchange): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      const timer = setTimeout(
        () => finish({ ok: false, reason: `tcp timeout after ${config.timeoutMs} ms` }),
        config.timeoutMs,
      );
      socket.on('error', (err) => finish({ ok: false, reason: `tcp: ${err.message}` }));
      socket.on('close', () => finish({ ok: false, reason: 'tcp: closed before a whole answer' }));
      socket.on('connect', () => {
        const frame = Buffer.alloc(2 + query.bytes.length);
        frame.writeUInt16BE(query.bytes.length, 0);
        frame.set(query.bytes, 2);
        socket.write(frame);
      });
      socket.on('data', (chunk: Buffer) => {
        // The 2-octet length prefix bounds what we hold: at most 65,537 octets.
        received = Buffer.concat([received, chunk]);
        if (received.length < 2) return;
        const length = received.readUInt16BE(0);
        if (received.length < 2 + length) return;
        const decoded = decodeMessage(new Uint8Array(received.subarray(2, 2 + length)));
        if (!decoded.ok) finish({ ok: false, reason: `tcp: malformed answer: ${decoded.error}` });
        else if (!matchesQuestion(decoded.message, id, q))
          finish({ ok: false, reason: 'tcp: answer to another question' });
        else finish({ ok: true, message: decoded.message });
      });
    });
  };

  /** One question, asked of the servers in turn until one gives a usable answer. */
  const ask = async (q: Question): Promise<Exchange> => {
    const eps = await getServers();
    const reasons: string[] = [];
    for (let round = 0; round < Math.max(1, config.attempts); round++) {
      for (const ep of eps) {
        const server = ep.family === 6 ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
        let result = await udpExchange(ep, q);
        if (result.ok && result.message.tc) result = await tcpExchange(ep, q);
        if (!result.ok) {
          reasons.push(`${server}: ${result.reason}`);
          continue;
        }
        const rcode = result.message.rcode;
        if (rcode === Rcode.noError || rcode === Rcode.nxDomain) return result;
        // SERVFAIL, REFUSED, FORMERR, NOTIMP…: this server cannot answer; another one may.
        reasons.push(`${server}: rcode ${rcodeName(rcode)}`);
      }
    }
    return { ok: false, reason: reasons.join('; ') };
  };

  /** Read the answer for q out of a response (RFC 1034 §3.6.2, RFC 2308, RFC 6604), following CNAMEs. */
  const interpret = (
    m: DnsMessage,
    q: Question,
  ): Resolved | { kind: 'follow'; target: string; ttlS: number; hops: number; secure: boolean } => {
    // The AD bit covers the whole answer, CNAMEs included; believed only from a validating resolver.
    const secure = config.dnssec && m.ad;
    let name = q.name;
    let ttlS = Number.MAX_SAFE_INTEGER;
    let hops = 0;
    const owned = (type: number) =>
      m.answers.filter((r) => r.type === type && r.class === CLASS_IN && r.name.toLowerCase() === name);
    for (;;) {
      const records = owned(q.type);
      if (records.length > 0) {
        for (const r of records) ttlS = Math.min(ttlS, r.ttl);
        return { kind: 'ok', records: records.map((r) => r.data), ttlS, secure, name };
      }
      const cname = owned(RecordType.CNAME)[0];
      if (cname === undefined || cname.data.kind !== 'CNAME' || hops >= MAX_CNAME_HOPS) break;
      ttlS = Math.min(ttlS, cname.ttl);
      name = cname.data.target.toLowerCase();
      hops++;
    }
    if (hops >= MAX_CNAME_HOPS && owned(RecordType.CNAME).length > 0) {
      return { kind: 'error', temporary: true, reason: `CNAME chain longer than ${MAX_CNAME_HOPS}` };
    }
    const soa = m.authorities.find((r) => r.data.kind === 'SOA');
    // RFC 2308 §5: the negative TTL is the smaller of the SOA's own TTL and its MINIMUM field.
    const negativeTtlS = soa?.data.kind === 'SOA' ? Math.min(soa.ttl, soa.data.minimum) : null;
    // RFC 6604 §3: after a CNAME chain the RCODE describes the last name of the chain.
    if (m.rcode === Rcode.nxDomain) return { kind: 'nxdomain', negativeTtlS, secure };
    // A chain that stops at a name with neither data nor an SOA was not followed by the server: ask on.
    if (hops > 0 && soa === undefined) return { kind: 'follow', target: name, ttlS, hops, secure };
    return { kind: 'nodata', negativeTtlS, secure };
  };

  const lookupUncached = async (q: Question, hopsSoFar: number): Promise<Resolved> => {
    const result = await ask(q);
    if (!result.ok) {
      log.warn(Events.dnsQueryFailed, { name: q.name, type: recordTypeName(q.type), reason: result.reason });
      return { kind: 'error', temporary: true, reason: result.reason };
    }
    const r = interpret(result.message, q);
    if (r.kind !== 'follow') return r;
    if (hopsSoFar + r.hops >= MAX_CNAME_HOPS) {
      return { kind: 'error', temporary: true, reason: `CNAME chain longer than ${MAX_CNAME_HOPS}` };
    }
    // The rest of the chain is another question; its answer lives no longer than the CNAMEs leading to it.
    const rest = await lookupUncached({ name: r.target, type: q.type }, hopsSoFar + r.hops);
    if (rest.kind === 'ok')
      return { ...rest, ttlS: Math.min(rest.ttlS, r.ttlS), secure: rest.secure && r.secure };
    if (rest.kind === 'error') return rest;
    return {
      kind: rest.kind,
      negativeTtlS: rest.negativeTtlS === null ? null : Math.min(rest.negativeTtlS, r.ttlS),
      secure: rest.secure && r.secure,
    };
  };

  const cacheMs = (r: Resolved): number => {
    const s = r.kind === 'ok' ? r.ttlS : r.kind === 'error' ? 0 : (r.negativeTtlS ?? 0);
    return Math.max(0, Math.min(s * 1000, config.maxCacheTtlMs));
  };

  const store = (key: string, answer: Resolved): void => {
    const ttlMs = cacheMs(answer);
    if (ttlMs <= 0) return;
    cache.delete(key);
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done !== true) cache.delete(oldest.value);
    }
    cache.set(key, { expiresAtMs: clock.nowMs() + ttlMs, answer });
  };

  /** Cached or in-flight answer for q, else a new lookup; with the answer's remaining lifetime. */
  const lookup = async (q: Question): Promise<{ answer: Resolved; ttlMs: number }> => {
    const key = `${q.type}/${q.name}`;
    const now = clock.nowMs();
    const hit = cache.get(key);
    if (hit !== undefined) {
      if (hit.expiresAtMs > now) return { answer: hit.answer, ttlMs: hit.expiresAtMs - now };
      cache.delete(key);
    }
    let pending = inFlight.get(key);
    if (pending === undefined) {
      // Cached before it leaves inFlight, so no caller can slip between the two and ask again.
      pending = lookupUncached(q, 0)
        .then((answer) => {
          store(key, answer);
          return answer;
        })
        .finally(() => inFlight.delete(key));
      inFlight.set(key, pending);
    }
    const answer = await pending;
    return { answer, ttlMs: cacheMs(answer) };
  };

  async function resolve<T>(
    input: string | null,
    type: number,
    pick: (d: RecordData) => T | null,
  ): Promise<DnsAnswer<T>> {
    // A name that cannot exist cannot have records: answered without asking anyone.
    if (input === null) return { kind: 'nxdomain' };
    const { answer, ttlMs } = await lookup({ name: input, type });
    const secure = answer.kind !== 'error' && answer.secure ? { secure: true } : {};
    switch (answer.kind) {
      case 'ok': {
        const records = answer.records.map(pick).filter((x): x is T => x !== null);
        const canonical = answer.name !== input ? { canonical: answer.name } : {};
        return records.length > 0
          ? { kind: 'ok', records, ttlMs, ...secure, ...canonical }
          : { kind: 'nodata', ...secure };
      }
      case 'nxdomain':
        return { kind: 'nxdomain', ...secure };
      case 'nodata':
        return { kind: 'nodata', ...secure };
      case 'error':
        return answer;
    }
  }

  return {
    mx: (domain) =>
      resolve<MxRecord>(toQueryName(domain), RecordType.MX, (d) =>
        d.kind === 'MX' ? { preference: d.preference, exchange: d.exchange.toLowerCase() } : null,
      ),
    a: (name) => resolve(toQueryName(name), RecordType.A, (d) => (d.kind === 'A' ? d.address : null)),
    aaaa: (name) =>
      resolve(toQueryName(name), RecordType.AAAA, (d) => (d.kind === 'AAAA' ? d.address : null)),
    txt: (name) => resolve(toQueryName(name), RecordType.TXT, (d) => (d.kind === 'TXT' ? d.text : null)),
    ptr: (address) =>
      resolve(ptrName(address), RecordType.PTR, (d) => (d.kind === 'PTR' ? d.target.toLowerCase() : null)),
    tlsa: (name) => resolve(toQueryName(name), RecordType.TLSA, tlsaRecord),
    validating: config.dnssec,
  };
}

/** RFC 6698 §2.1: usage, selector and matching type (one octet each), then the association data. */
function tlsaRecord(d: RecordData): TlsaRecord | null {
  if (d.kind !== 'raw' || d.bytes.length < 3) return null;
  return { usage: d.bytes[0]!, selector: d.bytes[1]!, matchingType: d.bytes[2]!, data: d.bytes.slice(3) };
}

/**
 * The reverse name of an address. IPv4-mapped IPv6 ("::ffff:192.0.2.1", what a dual-stack listener
 * reports for IPv4 clients) is looked up under in-addr.arpa, where its PTR records are.
 */
function ptrName(address: string): string | null {
  const bare = address.split('%')[0]!;
  const v6 = parseIPv6(bare);
  if (v6 !== null && v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) {
    return reverseName(formatIPv4(v6.subarray(12, 16)));
  }
  return reverseName(bare);
}

function rcodeName(rcode: number): string {
  const names: Record<number, string> = {
    [Rcode.formErr]: 'FORMERR',
    [Rcode.servFail]: 'SERVFAIL',
    [Rcode.notImp]: 'NOTIMP',
    [Rcode.refused]: 'REFUSED',
    [Rcode.badVers]: 'BADVERS',
  };
  return names[rcode] ?? String(rcode);
}
