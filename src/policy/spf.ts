// SPF, RFC 7208: check_host() for the MAIL FROM and HELO identities. Record selection (§4.5), evaluation
// of mechanisms and modifiers in order (§4.6, §5, §6), the processing limits (§4.6.4: 10 DNS-querying
// terms, 2 void lookups, 10 MX names, 10 PTR names), macros (§7, in spf-macro.ts), exp= explanations
// fetched and expanded only on "fail" (§6.2), IPv4-mapped clients taken as IPv4 (§5 ¶9), and "none" for a
// domain that is malformed or publishes no record (§4.3). DNS errors are "temperror", syntax errors and
// exceeded limits "permerror".
// I/O only through the Resolver port; time only through `nowMs` (the "t" macro) and an AbortSignal that
// bounds the whole check (§4.6.4 asks for a limit of at least 20 s, whose excess is "temperror").
// Deliberately NOT here: what a result does to the SMTP transaction or to DMARC, the Received-SPF and
// Authentication-Results headers, and caching (the resolver's job).

import { domainToASCII } from 'node:url';
import { assertNever } from '../core/assert-never.ts';
import type { DnsAnswer, Resolver } from '../core/dns.ts';
import type { MacroLetter, MacroString } from './spf-macro.ts';
import { expandMacroString, parseMacroString, usesLetter } from './spf-macro.ts';
import type { Mechanism, Qualifier, SpfRecord } from './spf-record.ts';
import { isSpfRecord, parseRecord } from './spf-record.ts';
import type { SpfIp } from './spf-ip.ts';
import { dottedIp, formatIp, inNetwork, parseAnswerAddress, parseClientIp } from './spf-ip.ts';

export type SpfResultCode = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';

export interface SpfResult {
  readonly result: SpfResultCode;
  /** The identity's domain that was checked (not where a redirect= led). */
  readonly domain: string;
  readonly scope: 'mfrom' | 'helo';
  /** Only for "fail", and only when the record's exp= gave one (§6.2); callers supply their default. */
  readonly explanation?: string;
  /** The directive that matched, as published ("-all", "include:_spf.example.net"). */
  readonly mechanism?: string;
  /** What happened, for logs and the Authentication-Results comment; never for SMTP replies. */
  readonly reason: string;
}

export interface CheckHostArgs {
  /** The SMTP client's address; IPv4-mapped IPv6 counts as IPv4. */
  readonly ip: string;
  /** <domain>: the domain whose policy is checked. */
  readonly domain: string;
  /** <sender>: the MAIL FROM address, or postmaster@<helo> for the HELO check and the null sender. */
  readonly sender: string;
  /** The HELO/EHLO name (the "h" macro). */
  readonly helo: string;
  /** Our own host name (the "r" macro). */
  readonly receivingHost: string;
  readonly resolver: Resolver;
  /** Now, for the "t" macro; defaults to the system clock. */
  readonly nowMs?: number;
  /** Aborting ends the check with "temperror" (the time limit of §4.6.4). */
  readonly signal?: AbortSignal;
  readonly scope?: 'mfrom' | 'helo';
}

/** §4.6.4. */
const MAX_DNS_TERMS = 10;
const MAX_VOID_LOOKUPS = 2;
const MAX_MX_NAMES = 10;
const MAX_PTR_NAMES = 10;
/** §7.3: an expanded name longer than this loses labels on the left. */
const MAX_DOMAIN_LENGTH = 253;

/** Ends the whole check_host() at once: errors in nested include/redirect are the top result (§5.2). */
class SpfStop extends Error {
  readonly result: 'temperror' | 'permerror';
  constructor(result: 'temperror' | 'permerror', reason: string) {
    super(reason);
    this.result = result;
  }
}

interface Check {
  readonly ip: SpfIp;
  readonly local: string;
  readonly senderDomain: string;
  readonly helo: string;
  readonly receivingHost: string;
  readonly nowMs: number;
  readonly resolver: Resolver;
  readonly signal: AbortSignal | undefined;
  dnsTerms: number;
  voidLookups: number;
  /** The PTR answer for the client, asked once per check and shared by "ptr" and the "p" macro. */
  ptr: Promise<DnsAnswer<string>> | null;
  validated: Promise<readonly string[]> | null;
}

type Evaluation =
  | { readonly kind: 'none'; readonly reason: string }
  | {
      readonly kind: 'decided';
      readonly result: 'pass' | 'fail' | 'softfail' | 'neutral';
      /** The domain whose record decided (differs from the checked one after redirect=). */
      readonly domain: string;
      readonly mechanism?: string;
      readonly explanation?: string;
    };

const QUALIFIER_RESULT: Readonly<Record<Qualifier, 'pass' | 'fail' | 'softfail' | 'neutral'>> = {
  '+': 'pass',
  '-': 'fail',
  '~': 'softfail',
  '?': 'neutral',
};

/** check_host() of RFC 7208 §4. Never throws: every failure is one of the seven results. */
export async function checkHost(args: CheckHostArgs): Promise<SpfResult> {
  const scope = args.scope ?? 'mfrom';
  const domain = toAsciiDomain(stripDot(args.domain));
  const done = (result: SpfResultCode, reason: string, extra: Partial<SpfResult> = {}): SpfResult => ({
    result,
    domain,
    scope,
    reason,
    ...extra,
  });
  const ip = parseClientIp(args.ip);
  if (ip === null) return done('permerror', `client address "${args.ip}" is not an IP address`);
  // §4.3: a malformed or single-label domain gives "none" without any query.
  if (!isValidDomain(domain)) return done('none', `"${args.domain}" is not a valid domain name`);
  const at = args.sender.lastIndexOf('@');
  const check: Check = {
    ip,
    // §4.3: a sender without a local-part is "postmaster" at the domain.
    local: at > 0 ? args.sender.slice(0, at) : 'postmaster',
    senderDomain: at >= 0 ? toAsciiDomain(stripDot(args.sender.slice(at + 1))) : domain,
    helo: args.helo,
    receivingHost: args.receivingHost === '' ? 'unknown' : args.receivingHost,
    nowMs: args.nowMs ?? Date.now(),
    resolver: args.resolver,
    signal: args.signal,
    dnsTerms: 0,
    voidLookups: 0,
    ptr: null,
    validated: null,
  };
  try {
    const outcome = await evaluate(check, domain, true);
    if (outcome.kind === 'none') return done('none', outcome.reason);
    const where = outcome.domain === domain ? domain : `${domain} (via redirect to ${outcome.domain})`;
    const ipText = formatIp(ip);
    return done(
      outcome.result,
      outcome.mechanism === undefined
        ? `${where}: no mechanism matched ${ipText}, default result`
        : `${where}: ${ipText} matched ${outcome.mechanism}`,
      {
        ...(outcome.mechanism === undefined ? {} : { mechanism: outcome.mechanism }),
        ...(outcome.explanation === undefined ? {} : { explanation: outcome.explanation }),
      },
    );
  } catch (err) {
    if (err instanceof SpfStop) return done(err.result, `${domain}: ${err.message}`);
    // A bug here must not bounce mail: unknown is temporary.
    return done('temperror', `${domain}: internal error: ${String(err)}`);
  }
}

export interface CheckSpfArgs {
  readonly ip: string;
  /** The MAIL FROM address without brackets; '' for the null reverse-path. */
  readonly mailFrom: string;
  readonly helo: string;
  readonly receivingHost: string;
  readonly resolver: Resolver;
  readonly nowMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Both identities (§2.3, §2.4): HELO as postmaster@<helo>, and MAIL FROM; for the null reverse-path the
 * MAIL FROM identity is postmaster@<helo>, so its result is the HELO result in the "mfrom" scope.
 */
export async function checkSpf(args: CheckSpfArgs): Promise<{ mfrom: SpfResult; helo: SpfResult }> {
  const common = {
    ip: args.ip,
    helo: args.helo,
    receivingHost: args.receivingHost,
    resolver: args.resolver,
    ...(args.nowMs === undefined ? {} : { nowMs: args.nowMs }),
    ...(args.signal === undefined ? {} : { signal: args.signal }),
  };
  const heloCheck = checkHost({
    ...common,
    domain: args.helo,
    sender: `postmaster@${args.helo}`,
    scope: 'helo',
  });
  if (args.mailFrom === '') {
    const helo = await heloCheck;
    return { mfrom: { ...helo, scope: 'mfrom' }, helo };
  }
  const at = args.mailFrom.lastIndexOf('@');
  const [helo, mfrom] = await Promise.all([
    heloCheck,
    checkHost({ ...common, domain: at < 0 ? '' : args.mailFrom.slice(at + 1), sender: args.mailFrom }),
  ]);
  return { mfrom, helo };
}

// ---- evaluation -------------------------------------------------------------------------------------

async function evaluate(check: Check, domain: string, wantExplanation: boolean): Promise<Evaluation> {
  const txt = await ask(check, () => check.resolver.txt(domain));
  if (txt.kind === 'error') throw new SpfStop('temperror', `TXT lookup for ${domain} failed: ${txt.reason}`);
  if (txt.kind !== 'ok') return { kind: 'none', reason: `${domain} has no SPF record (${txt.kind})` };
  const records = txt.records.filter(isSpfRecord);
  if (records.length === 0) return { kind: 'none', reason: `${domain} has no SPF record` };
  if (records.length > 1) throw new SpfStop('permerror', `${domain} publishes ${records.length} SPF records`);
  const parsed = parseRecord(records[0]!);
  if (!parsed.ok)
    throw new SpfStop('permerror', `syntax error in the SPF record of ${domain}: ${parsed.error}`);
  const record = parsed.record;

  for (const directive of record.directives) {
    if (!(await matches(check, domain, directive.mechanism))) continue;
    const result = QUALIFIER_RESULT[directive.qualifier];
    const explanation =
      result === 'fail' && wantExplanation && record.exp !== null
        ? await explain(check, domain, record.exp)
        : undefined;
    return {
      kind: 'decided',
      result,
      domain,
      mechanism: directive.text,
      ...(explanation === undefined ? {} : { explanation }),
    };
  }
  return redirectOrNeutral(check, domain, record, wantExplanation);
}

// §6.1: redirect= applies only when no mechanism matched; the target's record (and its exp=) decides.
async function redirectOrNeutral(
  check: Check,
  domain: string,
  record: SpfRecord,
  wantExplanation: boolean,
): Promise<Evaluation> {
  if (record.redirect === null) return { kind: 'decided', result: 'neutral', domain };
  countDnsTerm(check, 'redirect=');
  const target = await targetName(check, domain, record.redirect);
  const outcome =
    target === null
      ? ({ kind: 'none', reason: 'the target is not a valid domain name' } as const)
      : await evaluate(check, target, wantExplanation);
  if (outcome.kind === 'none') throw new SpfStop('permerror', `redirect=${target ?? ''}: ${outcome.reason}`);
  return outcome;
}

async function matches(check: Check, domain: string, mechanism: Mechanism): Promise<boolean> {
  switch (mechanism.kind) {
    case 'all':
      return true;
    case 'ip4':
    case 'ip6':
      return (
        check.ip.version === (mechanism.kind === 'ip4' ? 4 : 6) &&
        inNetwork(check.ip, mechanism.network, mechanism.prefix)
      );
    case 'a': {
      countDnsTerm(check, 'a');
      const name = await targetName(check, domain, mechanism.domain);
      if (name === null) return false;
      const addresses = await addressesOf(check, name, true);
      return addresses.some((a) => inClientNetwork(check, a, mechanism.prefix4, mechanism.prefix6));
    }
    case 'mx':
      countDnsTerm(check, 'mx');
      return matchMx(check, await targetName(check, domain, mechanism.domain), mechanism);
    case 'ptr': {
      countDnsTerm(check, 'ptr');
      const name = await targetName(check, domain, mechanism.domain);
      if (name === null) return false;
      const target = name.toLowerCase();
      const names = await validatedNames(check, true);
      return names.some((n) => n === target || n.endsWith(`.${target}`));
    }
    case 'exists': {
      countDnsTerm(check, 'exists');
      const name = await targetName(check, domain, mechanism.domain);
      if (name === null) return false;
      // §5.7: always an A query, whatever the client's address family.
      const answer = await ask(check, () => check.resolver.a(name));
      if (answer.kind === 'error') throw new SpfStop('temperror', `exists:${name} failed: ${answer.reason}`);
      if (answer.kind !== 'ok') countVoid(check, name);
      return answer.kind === 'ok';
    }
    case 'include': {
      countDnsTerm(check, 'include');
      const name = await targetName(check, domain, mechanism.domain);
      // §5.2: only "pass" matches; temperror and permerror end the check (thrown); "none" is permerror.
      const outcome =
        name === null
          ? ({ kind: 'none', reason: 'the target is not a valid domain name' } as const)
          : await evaluate(check, name, false);
      if (outcome.kind === 'none') throw new SpfStop('permerror', `include:${name ?? ''}: ${outcome.reason}`);
      return outcome.result === 'pass';
    }
    default:
      return assertNever(mechanism);
  }
}

// §5.4: at most 10 MX names (more is permerror, §4.6.4), no implicit MX, null MX (RFC 7505) skipped.
async function matchMx(
  check: Check,
  name: string | null,
  mechanism: { readonly prefix4: number; readonly prefix6: number },
): Promise<boolean> {
  if (name === null) return false;
  const answer = await ask(check, () => check.resolver.mx(name));
  if (answer.kind === 'error')
    throw new SpfStop('temperror', `MX lookup for ${name} failed: ${answer.reason}`);
  if (answer.kind !== 'ok') {
    countVoid(check, name);
    return false;
  }
  if (answer.records.length > MAX_MX_NAMES) {
    throw new SpfStop(
      'permerror',
      `${name} has ${answer.records.length} MX records, more than ${MAX_MX_NAMES}`,
    );
  }
  const exchanges = [...answer.records].sort((x, y) => x.preference - y.preference);
  for (const mx of exchanges) {
    if (mx.exchange === '' || mx.exchange === '.') continue;
    const addresses = await addressesOf(check, mx.exchange, true);
    if (addresses.some((a) => inClientNetwork(check, a, mechanism.prefix4, mechanism.prefix6))) return true;
  }
  return false;
}

/** The A or AAAA records of `name`, in the client's family; a void answer counts towards the limit. */
async function addressesOf(check: Check, name: string, countVoidAnswer: boolean): Promise<bigint[]> {
  const answer = await ask(check, () =>
    check.ip.version === 4 ? check.resolver.a(name) : check.resolver.aaaa(name),
  );
  if (answer.kind === 'error')
    throw new SpfStop('temperror', `address lookup for ${name} failed: ${answer.reason}`);
  if (answer.kind !== 'ok') {
    if (countVoidAnswer) countVoid(check, name);
    return [];
  }
  return answer.records.flatMap((r) => {
    const v = parseAnswerAddress(r, check.ip.version);
    return v === null ? [] : [v];
  });
}

function inClientNetwork(check: Check, address: bigint, prefix4: number, prefix6: number): boolean {
  return inNetwork(check.ip, address, check.ip.version === 4 ? prefix4 : prefix6);
}

/**
 * §5.5: the client's PTR names (the first 10) whose A/AAAA records include the client. A PTR lookup that
 * fails validates nothing; a name whose lookup fails is skipped. Only the "ptr" mechanism's own PTR query
 * counts as a void lookup: the names behind it belong to the client, not to the domain being checked.
 */
async function validatedNames(check: Check, countVoidAnswer: boolean): Promise<readonly string[]> {
  check.ptr ??= ask(check, () => check.resolver.ptr(formatIp(check.ip)));
  const answer = await check.ptr;
  if (answer.kind !== 'ok') {
    if (answer.kind !== 'error' && countVoidAnswer) countVoid(check, `PTR of ${formatIp(check.ip)}`);
    return [];
  }
  check.validated ??= (async () => {
    const names = answer.records.slice(0, MAX_PTR_NAMES).map((n) => stripDot(n).toLowerCase());
    const valid: string[] = [];
    for (const name of names) {
      try {
        const addresses = await addressesOf(check, name, false);
        if (addresses.includes(check.ip.value)) valid.push(name);
      } catch (err) {
        if (!(err instanceof SpfStop) || check.signal?.aborted) throw err;
      }
    }
    return valid;
  })();
  return check.validated;
}

// §6.2: the explanation is fetched after the result is known, does not count towards any limit, and any
// problem (bad domain, DNS error, no or several TXT records, bad syntax, non-ASCII) drops it silently.
async function explain(check: Check, domain: string, spec: MacroString): Promise<string | undefined> {
  try {
    const name = await targetName(check, domain, spec);
    if (name === null) return undefined;
    const answer = await ask(check, () => check.resolver.txt(name));
    if (answer.kind !== 'ok' || answer.records.length !== 1) return undefined;
    const text = parseMacroString(answer.records[0]!, 'explanation');
    if (!text.ok) return undefined;
    return expandMacroString(text.value, await macroValues(check, domain, text.value));
  } catch (err) {
    if (err instanceof SpfStop) return undefined;
    throw err;
  }
}

/** A domain-spec expanded into the name to query (§7.3), or null if that cannot be a domain name. */
async function targetName(check: Check, domain: string, spec: MacroString | null): Promise<string | null> {
  if (spec === null) return domain;
  let name = stripDot(expandMacroString(spec, await macroValues(check, domain, spec)));
  while (name.length > MAX_DOMAIN_LENGTH && name.includes('.')) name = name.slice(name.indexOf('.') + 1);
  // §4.8/§5: RFC 7208 leaves an invalid expanded name undefined; the suite prefers no match to permerror.
  return isValidDomain(name) ? name : null;
}

async function macroValues(
  check: Check,
  domain: string,
  ms: MacroString,
): Promise<Readonly<Record<MacroLetter, string>>> {
  return {
    s: `${check.local}@${check.senderDomain}`,
    l: check.local,
    o: check.senderDomain,
    d: domain,
    i: dottedIp(check.ip),
    p: usesLetter(ms, 'p') ? await validatedName(check, domain) : '',
    v: check.ip.version === 4 ? 'in-addr' : 'ip6',
    h: check.helo,
    c: formatIp(check.ip),
    r: check.receivingHost,
    t: String(Math.floor(check.nowMs / 1000)),
  };
}

// §7.3 "p": the domain itself if validated, else a validated subdomain of it, else any, else "unknown".
async function validatedName(check: Check, domain: string): Promise<string> {
  const names = await validatedNames(check, false);
  const d = domain.toLowerCase();
  return names.find((n) => n === d) ?? names.find((n) => n.endsWith(`.${d}`)) ?? names[0] ?? 'unknown';
}

// ---- limits and DNS ---------------------------------------------------------------------------------

function countDnsTerm(check: Check, term: string): void {
  check.dnsTerms++;
  if (check.dnsTerms > MAX_DNS_TERMS) {
    throw new SpfStop('permerror', `more than ${MAX_DNS_TERMS} DNS-querying terms (at ${term})`);
  }
}

function countVoid(check: Check, name: string): void {
  check.voidLookups++;
  if (check.voidLookups > MAX_VOID_LOOKUPS) {
    throw new SpfStop('permerror', `more than ${MAX_VOID_LOOKUPS} void DNS lookups (at ${name})`);
  }
}

/** One DNS question, ended by the check's AbortSignal; a rejecting resolver counts as a DNS error. */
async function ask<T>(check: Check, question: () => Promise<DnsAnswer<T>>): Promise<DnsAnswer<T>> {
  const signal = check.signal;
  if (signal?.aborted) throw new SpfStop('temperror', TIME_LIMIT);
  let onAbort: (() => void) | undefined;
  try {
    if (signal === undefined) return await question();
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new SpfStop('temperror', TIME_LIMIT));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return await Promise.race([question(), aborted]);
  } catch (err) {
    if (err instanceof SpfStop) throw err;
    return { kind: 'error', temporary: true, reason: err instanceof Error ? err.message : String(err) };
  } finally {
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

const TIME_LIMIT = 'time limit for the SPF check exceeded';

// ---- names ------------------------------------------------------------------------------------------

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** U-labels become A-labels (RFC 8616 §4); ASCII is left alone (domainToASCII would rewrite "1.2.3.0x4"). */
function toAsciiDomain(name: string): string {
  return /[^\p{ASCII}]/u.test(name) ? domainToASCII(name) : name;
}

/**
 * §4.3: at least two labels, each 1..63 octets, 253 in all; not an address literal or a bare IPv4
 * address. Other characters are the resolver's business: "a:foo:bar/baz.example.com" is a valid target.
 */
function isValidDomain(name: string): boolean {
  if (name.length === 0 || name.length > MAX_DOMAIN_LENGTH || name.startsWith('[')) return false;
  const labels = name.split('.');
  const octets = (label: string): number => new TextEncoder().encode(label).length;
  if (labels.length < 2 || labels.some((l) => l.length === 0 || octets(l) > 63)) return false;
  return !/^[0-9.]+$/.test(name);
}
