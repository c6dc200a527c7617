// Greylisting (RFC 6647) at RCPT: the first delivery of a triplet — client network, normalised sender,
// recipient — is deferred with 451 4.7.1; a retry once `delay` has passed, and within the retry window,
// passes, and the triplet is then known for the pass lifetime (refreshed as it keeps sending). A
// client network with `autoAllowAfter` passed triplets is let through for every sender (§2.2, as
// postgrey's --auto-whitelist-clients). Skipped: authenticated clients, allow-listed ones (a DNSWL
// listing in facts.allowListed), networks of `skipNetworks`, and senders whose SPF passed for a domain
// of `skipSpfDomains` (big senders that retry from other pools).
// The triplet's parts (RFC 6647 §4.1):
// - the client's network, not its address (§4.1.1: large senders retry from other hosts of a pool):
//   an IPv4 /24 and an IPv6 /64 by default;
// - the sender with what changes from one try to the next taken out: a `+tag` subaddress, BATV
//   (`prvs=tag=user@`, `btv1==tag==user@`, `msprvs1=tag=user@`), SRS (SRS0/SRS1 decoded back to the
//   original address, whose hash and timestamp change daily), VERP-style numbers (runs of digits
//   standing alone become '#', as postgrey does);
// - the recipient.
// Case: domains are lower-cased whole (DNS names are case-insensitive; a U-label is lower-cased as
// IDNA would map it), local parts are NFC-normalised and lower-cased in ASCII only: RFC 5321 §2.4 lets
// a local part be case-sensitive, and Unicode case mapping is no identity (ß, final sigma, dotted i),
// while the MTA that retries sends the same bytes anyway: the key only has to be stable, not canonical.
// The null sender is NOT greylisted (by default): other sites' sender verification probes (MAIL
// FROM:<> and RCPT, never DATA: Postfix's reject_unverified_sender, Exim's callouts) would be deferred,
// which defers our own users' outbound mail to those sites; and a DSN reports a failure its sender is
// waiting to hear about. Backscatter is left to the content and reputation checks.
// Deliberately NOT here: where entries are kept (core/greylist.ts port; store/greylist-sqlite.ts),
// greylisting at DATA (a multi-recipient message is judged per RCPT, each recipient its own triplet).

import type { GreylistEntry, GreylistStore, GreylistTriplet } from '../../core/greylist.ts';
import { Replies, withText } from '../../core/reply.ts';
import { inNetworks, parseCidr, parseIp, type Network } from '../networks.ts';
import { StatelessFilter, type FilterContext, type FilterStage, type Verdict } from './filter.ts';

export interface GreylistOptions {
  readonly store: GreylistStore;
  readonly nowMs: () => number;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  /** Least time before a retry passes; default 300 s (postgrey's default). */
  readonly delaySeconds?: number;
  /** How long after its first sight a retry still passes; later, it starts over. Default 24 h. */
  readonly retryWindowHours?: number;
  /** How long a passed triplet stays known since its last delivery. Default 36 days. */
  readonly passLifetimeDays?: number;
  /** Passed triplets after which the client network passes for everyone; 0 never. Default 5. */
  readonly autoAllowAfter?: number;
  /** Prefix length of the client network, IPv4 (default 24) and IPv6 (default 64). */
  readonly ipv4Prefix?: number;
  readonly ipv6Prefix?: number;
  /** Domains whose SPF pass skips greylisting; `*.example.com` is any name below example.com. */
  readonly skipSpfDomains?: readonly string[];
  /** Client networks never greylisted (CIDR). */
  readonly skipNetworks?: readonly string[];
  /** Greylist the null sender too (default false: see the header comment). */
  readonly greylistNullSender?: boolean;
}

/** Least time between two sweeps of expired entries. */
const SWEEP_INTERVAL_MS = 60_000;
/** A passed triplet's lifetime is refreshed at most this often (each refresh is a write). */
const REFRESH_AFTER_MS = 3_600_000;

/** The client's network in CIDR notation ("192.0.2.0/24", "2001:db8:1:2::/64"); the input when no address. */
export function clientNetwork(ip: string, ipv4Prefix = 24, ipv6Prefix = 64): string {
  const v = parseIp(ip);
  if (v === null) return ip;
  if (v >> 32n === 0xffffn) {
    const n = Number(v & 0xffffffffn);
    const bits = Math.max(0, Math.min(32, ipv4Prefix));
    const masked = bits === 0 ? 0 : (n >>> (32 - bits)) * 2 ** (32 - bits);
    return `${[masked >>> 24, (masked >>> 16) & 255, (masked >>> 8) & 255, masked & 255].join('.')}/${bits}`;
  }
  const bits = Math.max(0, Math.min(128, ipv6Prefix));
  const host = BigInt(128 - bits);
  const masked = bits === 0 ? 0n : (v >> host) << host;
  return `${formatIpv6(masked)}/${bits}`;
}

/** RFC 5952 text: lower-case groups without leading zeros, the longest run of 2+ zero groups as "::". */
function formatIpv6(v: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** An address's local part and domain (split at the last '@'); a bare local part has domain "". */
function split(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  if (at < 0) return { local: address, domain: '' };
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

const asciiLower = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

function normalizeParts(local: string, domain: string): { local: string; domain: string } {
  return {
    local: asciiLower(local.normalize('NFC')),
    domain: domain.normalize('NFC').toLowerCase().replace(/\.$/, ''),
  };
}

/** The recipient as keyed: domain lower-case, local part NFC and ASCII lower-case. */
export function normalizeRecipient(address: string): string {
  const { local, domain } = split(address);
  const n = normalizeParts(local, domain);
  return n.domain === '' ? n.local : `${n.local}@${n.domain}`;
}

/**
 * The sender as keyed: what stays the same from one try of a message to the next. SRS addresses become
 * the address they rewrite; BATV tags, `+` subaddresses and lone digit runs (VERP) go.
 */
export function normalizeSender(address: string): string {
  if (address === '') return '';
  let { local, domain } = normalizeParts(split(address).local, split(address).domain);
  // BATV (draft-levine-smtp-batv: prvs=KDDDSSSSSS=user) and its vendor variants.
  local = local.replace(/^(?:prvs|msprvs\d*)=[^=]{1,40}=(?=.)/, '').replace(/^btv1==[^=]{0,40}==(?=.)/, '');
  // SRS (Shevek's SRS: SRS0=HHH=TT=domain=local, SRS1=HHH=forwarder==HHH=TT=domain=local): the separator
  // after SRS0/SRS1 may be '=', '+' or '-'.
  const srs = /^srs[01][=+-]/.test(local) ? decodeSrs(local) : null;
  if (srs !== null) ({ local, domain } = normalizeParts(srs.local, srs.domain));
  const plus = local.indexOf('+');
  if (plus > 0) local = local.slice(0, plus);
  local = local.replace(/(?<![\p{L}\p{N}_])\d+(?![\p{L}\p{N}_])/gu, '#');
  return domain === '' ? local : `${local}@${domain}`;
}

function decodeSrs(local: string): { local: string; domain: string } | null {
  let body = local;
  if (body.startsWith('srs1')) {
    // SRS1=HHH=forwarder==HHH=TT=domain=local: the original SRS0 part follows "==".
    const i = body.indexOf('==');
    if (i < 0) return null;
    body = body.slice(i + 2);
  } else {
    body = body.slice(5);
  }
  const parts = body.split('=');
  // HHH, TT, domain, then the local part (which may itself hold '=').
  if (parts.length < 4 || parts[2] === '' || parts.slice(3).join('=') === '') return null;
  return { local: parts.slice(3).join('='), domain: parts[2]! };
}

function matchesDomain(domain: string, patterns: readonly string[]): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  return patterns.some((p) => {
    const q = p.toLowerCase().replace(/\.$/, '');
    return q.startsWith('*.') ? d.endsWith(q.slice(1)) && d.length > q.length - 1 : d === q;
  });
}

export class GreylistFilter extends StatelessFilter {
  readonly name = 'greylist';
  readonly stages: readonly FilterStage[] = ['rcpt'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #store: GreylistStore;
  readonly #nowMs: () => number;
  readonly #delayMs: number;
  readonly #windowMs: number;
  readonly #lifetimeMs: number;
  readonly #autoAllowAfter: number;
  readonly #ipv4Prefix: number;
  readonly #ipv6Prefix: number;
  readonly #skipSpfDomains: readonly string[];
  readonly #skipNetworks: readonly Network[];
  readonly #greylistNullSender: boolean;
  #lastSweepMs = -Infinity;

  constructor(opts: GreylistOptions) {
    super();
    this.#store = opts.store;
    this.#nowMs = opts.nowMs;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#delayMs = (opts.delaySeconds ?? 300) * 1000;
    this.#windowMs = (opts.retryWindowHours ?? 24) * 3_600_000;
    this.#lifetimeMs = (opts.passLifetimeDays ?? 36) * 86_400_000;
    this.#autoAllowAfter = opts.autoAllowAfter ?? 5;
    this.#ipv4Prefix = opts.ipv4Prefix ?? 24;
    this.#ipv6Prefix = opts.ipv6Prefix ?? 64;
    this.#skipSpfDomains = opts.skipSpfDomains ?? [];
    this.#skipNetworks = (opts.skipNetworks ?? []).map((c) => {
      const n = parseCidr(c);
      if (n === null) throw new Error(`greylist: skip_networks: not a network: ${JSON.stringify(c)}`);
      return n;
    });
    this.#greylistNullSender = opts.greylistNullSender ?? false;
  }

  async check(_stage: FilterStage, ctx: FilterContext, signal?: AbortSignal): Promise<Verdict> {
    const skip = this.#skipReason(ctx);
    if (skip !== null) return { kind: 'accept', reason: skip };
    const rcpt = ctx.rcpt;
    if (rcpt === undefined) return { kind: 'accept', reason: 'no recipient' };
    const now = this.#nowMs();
    const triplet: GreylistTriplet = {
      network: clientNetwork(ctx.client.ip, this.#ipv4Prefix, this.#ipv6Prefix),
      sender: normalizeSender(ctx.mailFrom),
      recipient: normalizeRecipient(rcpt),
    };
    signal?.throwIfAborted();
    if (this.#autoAllowAfter > 0) {
      const passed = await this.#store.passedCount(triplet.network, now, this.#autoAllowAfter);
      if (passed >= this.#autoAllowAfter) {
        // Still recorded as passed, so that the network's count stays alive while it keeps sending.
        await this.#store.update(triplet, (prev) => this.#passed(prev, triplet, now));
        this.#sweep(now);
        return { kind: 'accept', reason: `greylist: client network ${triplet.network} auto-allowed` };
      }
    }
    signal?.throwIfAborted();
    let verdict: Verdict = { kind: 'accept' };
    await this.#store.update(triplet, (prev) => {
      const step = this.#step(prev, triplet, now);
      verdict = step.verdict;
      return step.entry;
    });
    this.#sweep(now);
    return verdict;
  }

  #skipReason(ctx: FilterContext): string | null {
    if (ctx.client.authUser !== null) return 'greylist: authenticated client';
    if (ctx.facts.allowListed !== undefined)
      return `greylist: client allow-listed (${ctx.facts.allowListed})`;
    if (this.#skipNetworks.length > 0 && inNetworks(ctx.client.ip, this.#skipNetworks))
      return 'greylist: client in skip_networks';
    if (ctx.mailFrom === '' && !this.#greylistNullSender) return 'greylist: null sender not greylisted';
    const spf = ctx.facts.spf;
    if (spf?.result.toLowerCase() === 'pass' && matchesDomain(spf.domain, this.#skipSpfDomains))
      return `greylist: SPF pass for ${spf.domain}`;
    return null;
  }

  /** The state machine: an entry (or none) and a delivery at `now` → the new entry and the verdict. */
  #step(
    prev: GreylistEntry | null,
    triplet: GreylistTriplet,
    now: number,
  ): { entry: GreylistEntry; verdict: Verdict } {
    if (prev === null || prev.expiresMs <= now) {
      const entry: GreylistEntry = {
        ...triplet,
        firstSeenMs: now,
        lastSeenMs: now,
        attempts: 1,
        passedMs: null,
        expiresMs: now + this.#windowMs,
      };
      return { entry, verdict: this.#defer(this.#delayMs, 'greylisted (first seen)') };
    }
    if (prev.passedMs !== null) {
      return {
        entry: this.#passed(prev, triplet, now),
        verdict: { kind: 'accept', reason: 'greylist: known triplet' },
      };
    }
    const waited = now - prev.firstSeenMs;
    if (waited < this.#delayMs) {
      // Not reset: an early retry keeps its first sight (a sender that retries every minute gets in).
      const entry = { ...prev, lastSeenMs: now, attempts: prev.attempts + 1 };
      return {
        entry,
        verdict: this.#defer(
          this.#delayMs - waited,
          `greylisted (retried too early, after ${Math.floor(waited / 1000)}s)`,
        ),
      };
    }
    return {
      entry: {
        ...prev,
        lastSeenMs: now,
        attempts: prev.attempts + 1,
        passedMs: now,
        expiresMs: now + this.#lifetimeMs,
      },
      verdict: { kind: 'accept', reason: `greylist passed (retried after ${Math.floor(waited / 1000)}s)` },
    };
  }

  /** A passed entry refreshed at `now` (or `prev` itself when a refresh is not due yet: no write). */
  #passed(prev: GreylistEntry | null, triplet: GreylistTriplet, now: number): GreylistEntry {
    if (
      prev !== null &&
      prev.passedMs !== null &&
      prev.expiresMs > now &&
      now - prev.lastSeenMs < REFRESH_AFTER_MS
    )
      return prev;
    const live = prev !== null && prev.expiresMs > now;
    return {
      ...triplet,
      firstSeenMs: live ? prev.firstSeenMs : now,
      lastSeenMs: now,
      attempts: live ? prev.attempts + 1 : 1,
      passedMs: live && prev.passedMs !== null ? prev.passedMs : now,
      expiresMs: now + this.#lifetimeMs,
    };
  }

  #defer(leftMs: number, reason: string): Verdict {
    const seconds = Math.max(1, Math.ceil(leftMs / 1000));
    return {
      kind: 'defer',
      reply: withText(Replies.greylisted, `Greylisted, please try again in ${seconds} seconds`),
      reason,
    };
  }

  /** Expired entries go on write, at most once a minute; a failed sweep is tried again next time. */
  #sweep(now: number): void {
    if (now - this.#lastSweepMs < SWEEP_INTERVAL_MS) return;
    this.#lastSweepMs = now;
    this.#store.expire(now).catch(() => {
      this.#lastSweepMs = -Infinity;
    });
  }
}
