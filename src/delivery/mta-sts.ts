// MTA-STS (RFC 8461) as a sender: does a destination domain ask that its mail arrive only over TLS with
// a valid certificate, to MX hosts it names? The `_mta-sts.<domain>` TXT record says a policy exists
// and its id (§3.1); the policy is fetched over HTTPS from `mta-sts.<domain>` (§3.2, §3.3: no redirects,
// 200 only, text/plain, certificate checked against the system's CAs and `[outbound] tls_ca`), through
// Tern's own resolver (`[dns] servers`, like every lookup), with a timeout and a size limit. Policies are
// cached durably per max_age (§5.1: a cached, unexpired policy stands when DNS or HTTPS fail — that is
// what defeats an attacker who strips the TXT record), refreshed when the TXT id changes.
// Deliberately NOT here: applying a policy to a delivery (remote.ts), DANE (dane.ts, which wins when both
// exist: RFC 8461 §2), reporting (TLS-RPT).

import { domainToASCII } from 'node:url';
import { type Agent, request } from 'undici';
import { httpAgent } from './http-agent.ts';
import type { Resolver } from '../core/dns.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';

/** RFC 8461 §3.2: the policy file; larger answers are refused (the RFC suggests 64 KiB). */
export const MAX_POLICY_BYTES = 64 * 1024;
/** §3.3: "a timeout on the order of one minute"; shorter keeps a delivery attempt bounded. */
const FETCH_TIMEOUT_MS = 15_000;
/** §3.2: max_age is at most 31557600 seconds (about a year). */
const MAX_AGE_LIMIT_S = 31_557_600;

export type StsMode = 'enforce' | 'testing' | 'none';

export interface MtaStsPolicy {
  readonly id: string;
  readonly mode: StsMode;
  /** Patterns: "mx.example.org" or "*.example.org" (one leftmost label), lower case. */
  readonly mx: readonly string[];
  readonly maxAgeS: number;
}

/** What the cache keeps per domain. */
export interface CachedPolicy {
  readonly domain: string;
  readonly policy: MtaStsPolicy;
  readonly fetchedMs: number;
}

/** Where policies are kept between deliveries and restarts. */
export interface PolicyCache {
  get(domain: string): CachedPolicy | null;
  put(entry: CachedPolicy): void;
  delete(domain: string): void;
}

/** The TXT record (§3.1): `v=STSv1; id=...;` with the id 1–32 alphanumerics. Null when not one. */
export function parseStsRecord(text: string): { id: string } | null {
  const fields = text
    .split(';')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (fields[0] !== 'v=STSv1') return null;
  let id: string | null = null;
  for (const f of fields.slice(1)) {
    const eq = f.indexOf('=');
    if (eq < 0) return null;
    if (f.slice(0, eq).trim() === 'id') id = f.slice(eq + 1).trim();
  }
  return id !== null && /^[A-Za-z0-9]{1,32}$/.test(id) ? { id } : null;
}

/**
 * The policy file (§3.2): `key: value` lines (CRLF or LF), version STSv1, a mode, max_age, and mx lines
 * unless the mode is none. Unknown keys are ignored. Null (with why) when it is not a valid policy.
 */
export function parseStsPolicy(text: string, id: string): MtaStsPolicy | string {
  let version: string | null = null;
  let mode: string | null = null;
  let maxAge: number | null = null;
  const mx: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon < 0) return `a line without a colon: ${JSON.stringify(line.slice(0, 80))}`;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'version') version = value;
    else if (key === 'mode') mode = value;
    else if (key === 'max_age') maxAge = /^\d{1,10}$/.test(value) ? Number(value) : -1;
    else if (key === 'mx') mx.push(value.toLowerCase().replace(/\.$/, ''));
  }
  if (version !== 'STSv1') return 'version is not STSv1';
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return `mode ${JSON.stringify(mode)}`;
  if (maxAge === null || maxAge < 0) return 'max_age missing or not a number';
  if (mode !== 'none' && mx.length === 0) return 'no mx lines';
  if (mx.some((m) => !/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)+$/.test(m)))
    return 'an mx line is not a host name pattern';
  return { id, mode, mx, maxAgeS: Math.min(maxAge, MAX_AGE_LIMIT_S) };
}

/** §4.1: an MX host matches a pattern exactly, or "*.example.org" matches one leftmost label. */
export function mxMatches(host: string, patterns: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return patterns.some((p) => {
    if (!p.startsWith('*.')) return h === p;
    const rest = p.slice(2);
    const dot = h.indexOf('.');
    return dot > 0 && h.slice(dot + 1) === rest;
  });
}

export interface MtaStsDeps {
  readonly resolver: Resolver;
  readonly cache: PolicyCache;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Extra trusted CAs (PEM) beside the system's: `[outbound] tls_ca`. */
  readonly tlsCa: string | null;
  /** The HTTPS port of policy hosts (443; tests use another). */
  readonly httpsPort?: number;
}

/** The policy that applies to a domain now, with where it came from (for the logs and the trace). */
export interface PolicyAnswer {
  readonly policy: MtaStsPolicy;
  readonly source: 'fetched' | 'cache';
}

export class MtaSts {
  readonly #deps: MtaStsDeps;
  readonly #agent: Agent;
  /** One fetch per domain at a time: concurrent deliveries wait for the same one. */
  readonly #inFlight = new Map<string, Promise<PolicyAnswer | null>>();

  constructor(deps: MtaStsDeps) {
    this.#deps = deps;
    this.#agent = httpAgent(deps.resolver, deps.tlsCa, {
      timeoutMs: FETCH_TIMEOUT_MS,
      maxResponseBytes: MAX_POLICY_BYTES,
    });
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  /** The policy for mail to `domain` (RFC 8461 §5), or null when it has none. Never throws. */
  policyFor(domainIn: string): Promise<PolicyAnswer | null> {
    const domain = (domainToASCII(domainIn) || domainIn).toLowerCase().replace(/\.$/, '');
    let pending = this.#inFlight.get(domain);
    if (pending === undefined) {
      pending = this.#discover(domain).finally(() => this.#inFlight.delete(domain));
      this.#inFlight.set(domain, pending);
    }
    return pending;
  }

  async #discover(domain: string): Promise<PolicyAnswer | null> {
    const now = this.#deps.clock.nowMs();
    const log = this.#deps.logger.child({ domain });
    const cached = this.#deps.cache.get(domain);
    const fresh = cached !== null && cached.fetchedMs + cached.policy.maxAgeS * 1000 > now ? cached : null;
    if (cached !== null && fresh === null) this.#deps.cache.delete(domain);
    const txt = await this.#deps.resolver.txt(`_mta-sts.${domain}`);
    const records = txt.kind === 'ok' ? txt.records.map(parseStsRecord).filter((r) => r !== null) : [];
    // §3.1: more than one STS record, or none: as if there were none (the cache may still hold one).
    const record = records.length === 1 ? records[0]! : null;
    if (record === null) return fresh === null ? null : { policy: fresh.policy, source: 'cache' };
    if (fresh !== null && fresh.policy.id === record.id) return { policy: fresh.policy, source: 'cache' };
    const fetched = await this.#fetch(domain, record.id);
    if (typeof fetched === 'string') {
      log.warn(Events.mtaStsFetchFailed, { reason: fetched, cached: fresh !== null });
      // §5.1: a failed refresh keeps the unexpired cached policy in force.
      return fresh === null ? null : { policy: fresh.policy, source: 'cache' };
    }
    this.#deps.cache.put({ domain, policy: fetched, fetchedMs: now });
    log.event(Events.mtaStsPolicy, {
      id: fetched.id,
      mode: fetched.mode,
      mx: [...fetched.mx],
      maxAge: fetched.maxAgeS,
    });
    return { policy: fetched, source: 'fetched' };
  }

  async #fetch(domain: string, id: string): Promise<MtaStsPolicy | string> {
    const port = this.#deps.httpsPort ?? 443;
    const url = `https://mta-sts.${domain}${port === 443 ? '' : `:${port}`}/.well-known/mta-sts.txt`;
    try {
      const res = await request(url, {
        dispatcher: this.#agent,
        method: 'GET',
        headers: { accept: 'text/plain', 'user-agent': 'Tern MTA-STS' },
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return `HTTP ${res.statusCode} from ${url}`;
      }
      const type = String(res.headers['content-type'] ?? '');
      if (!/^text\/plain\b/i.test(type)) {
        await res.body.dump();
        return `content type ${JSON.stringify(type)} from ${url} (not text/plain)`;
      }
      const text = await res.body.text();
      if (Buffer.byteLength(text) > MAX_POLICY_BYTES) return `policy larger than ${MAX_POLICY_BYTES} bytes`;
      const policy = parseStsPolicy(text, id);
      return typeof policy === 'string' ? `invalid policy at ${url}: ${policy}` : policy;
    } catch (err) {
      const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
      return `fetching ${url}: ${e.cause?.code ?? e.code ?? ''} ${e.cause?.message ?? e.message ?? String(err)}`.trim();
    }
  }
}
