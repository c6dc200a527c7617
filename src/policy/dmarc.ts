// DMARC (RFC 7489, with the DMARCbis changes of RFC 9989 where they differ): policy record discovery,
// record parsing, identifier alignment of the SPF and DKIM results with the RFC5322.From domain, and the
// disposition a receiver applies (p / sp / np, pct sampling, t=y).
// Two discovery methods:
// - 'psl' (default): RFC 7489 §6.6.3 — _dmarc.<author domain>, then _dmarc.<organizational domain>, the
//   organizational domain taken from the Public Suffix List (psl.ts, RFC 7489 §3.2). Two DNS queries at most.
// - 'tree-walk': RFC 9989 §4.10 — walk up the DNS tree (at most 8 queries, names of 8 or more labels cut to
//   7 first), the organizational domain found from psd= tags or the shortest name with a record. Used for
//   the author domain and for every identifier relaxed alignment has to compare.
// DMARCbis changes followed in both modes: several DMARC records at one name are discarded and discovery
// goes on (not "stop"); np= for non-existent subdomains (NXDOMAIN, RFC 8020); t=y lowers the policy one
// step the way a pct= miss does; psd= is parsed (and used by the tree walk only).
// A DKIM signature with l= never aligns: the part of the body after l= is not covered, so anyone may append
// to a signed message (RFC 6376 §8.2).
// An SPF or aligned-DKIM temperror with nothing aligned passing is 'temperror', not 'fail': the missing
// answer might have passed (RFC 9989 §4.8, "cannot conclude").
// Deliberately not here: aggregate and failure reports (rua/ruf are parsed only), the decision what to do
// with 'reject' (the caller's config).

import type { Resolver } from '../core/dns.ts';
import { extractAddresses } from '../protocol/address-list.ts';
import type { DkimResult } from './dkim/verifier.ts';
import { canonicalDomain, organizationalDomain } from './psl.ts';
import type { SpfResult } from './spf.ts';

export type DmarcResultKind = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';
export type DmarcAlignmentMode = 'r' | 's';
export type DmarcDiscovery = 'psl' | 'tree-walk';

/** A reporting URI of rua= / ruf= with its optional size limit (RFC 7489 §6.2 "!10m"). */
export interface DmarcReportUri {
  readonly uri: string;
  readonly maxBytes?: number;
}

export interface DmarcRecord {
  /** The policy for the domain itself; 'none' also when p= was missing or invalid but rua= valid (§6.3). */
  readonly p: DmarcPolicy;
  /** For subdomains; undefined means "same as p". */
  readonly sp?: DmarcPolicy;
  /** For non-existent subdomains (RFC 9989); undefined means "same as sp". */
  readonly np?: DmarcPolicy;
  readonly pct: number;
  readonly adkim: DmarcAlignmentMode;
  readonly aspf: DmarcAlignmentMode;
  readonly rua: readonly DmarcReportUri[];
  readonly ruf: readonly DmarcReportUri[];
  readonly fo: readonly string[];
  readonly rf: readonly string[];
  readonly ri: number;
  /** RFC 9989 public suffix domain flag; 'u' when absent. */
  readonly psd: 'y' | 'n' | 'u';
  /** RFC 9989 t=y: the owner is testing and asks for the policy not to be applied in full. */
  readonly testing: boolean;
}

/** A tag that was missing, repeated or malformed; the record may still be usable with a default. */
export interface DmarcTagProblem {
  readonly tag: string;
  readonly value: string | null;
  readonly problem: 'missing' | 'bad-value' | 'duplicate' | 'syntax';
}

export type DmarcRecordParse =
  | { readonly ok: true; readonly record: DmarcRecord; readonly problems: readonly DmarcTagProblem[] }
  | {
      readonly ok: false;
      /**
       * - `empty`: nothing there. `not-dmarc`: does not start with exactly "v=DMARC1" (such TXT records are
       *   ignored in discovery). `no-policy`: p= missing or invalid, or sp=/np= invalid, and no valid rua= to
       *   fall back on p=none with: no DMARC processing (RFC 7489 §6.3).
       */
      readonly error: 'empty' | 'not-dmarc' | 'no-policy';
      readonly problems: readonly DmarcTagProblem[];
    };

/**
 * The author domains of a message: the domain of every address in every From: field value (unfolded,
 * encoded-words left alone). Several fields or addresses give several domains, which evaluateDmarc checks
 * each (RFC 7489 §6.6.1); none gives [], a permerror there.
 */
export function authorDomains(fromValues: readonly string[]): string[] {
  const domains: string[] = [];
  for (const value of fromValues) {
    for (const address of extractAddresses(value)) domains.push(address.slice(address.lastIndexOf('@') + 1));
  }
  return domains;
}

const policies: ReadonlySet<string> = new Set(['none', 'quarantine', 'reject']);

function parsePolicy(value: string): DmarcPolicy | null {
  const v = value.toLowerCase();
  return policies.has(v) ? (v as DmarcPolicy) : null;
}

// RFC 3986 scheme ":" something; commas and "!" inside a URI are %-encoded (RFC 7489 §6.2).
const uriPattern = /^([A-Za-z][A-Za-z0-9+.-]*:[^\s!,]+)(?:!(\d+)([kmgt])?)?$/i;
const sizeUnits: Readonly<Record<string, number>> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** The valid URIs of a rua=/ruf= list; `bad` when some entry was not a URI at all. */
function parseUris(value: string): { uris: DmarcReportUri[]; bad: boolean } {
  const uris: DmarcReportUri[] = [];
  let bad = false;
  for (const part of value.split(',')) {
    const m = uriPattern.exec(part.trim());
    if (!m) {
      bad = true;
      continue;
    }
    const uri = m[1]!;
    if (m[2] === undefined) uris.push({ uri });
    else uris.push({ uri, maxBytes: Number(m[2]) * (sizeUnits[(m[3] ?? '').toLowerCase()] ?? 1) });
  }
  return { uris, bad };
}

interface Tag {
  readonly name: string;
  readonly value: string;
}

/** tag-list of RFC 7489 §6.4: "name = value" separated by ";", WSP allowed around both. */
function splitTags(text: string): { tags: Tag[]; malformed: string[] } {
  const tags: Tag[] = [];
  const malformed: string[] = [];
  for (const part of text.split(';')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const name = eq === -1 ? '' : item.slice(0, eq).trim();
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
      malformed.push(item);
      continue;
    }
    tags.push({ name: name.toLowerCase(), value: item.slice(eq + 1).trim() });
  }
  return { tags, malformed };
}

/** Whether a TXT string is a DMARC record at all: its first tag is v with exactly "DMARC1" (§6.3). */
export function isDmarcRecord(text: string): boolean {
  const first = splitTags(text.split(';', 1)[0] ?? '').tags[0];
  return first !== undefined && first.name === 'v' && first.value === 'DMARC1';
}

/**
 * Parse a DMARC policy record (RFC 7489 §6.3/§6.4, RFC 9989 §4.7). Total: never throws. Invalid optional
 * tags fall back to their defaults and are listed in `problems` ("syntax errors in the remainder of the
 * record SHOULD be discarded in favor of default values"); unknown tags are ignored.
 */
export function parseDmarcRecord(text: string): DmarcRecordParse {
  if (text.trim() === '') return { ok: false, error: 'empty', problems: [] };
  if (!isDmarcRecord(text)) return { ok: false, error: 'not-dmarc', problems: [] };
  const { tags, malformed } = splitTags(text);
  const problems: DmarcTagProblem[] = malformed.map((m) => ({ tag: '', value: m, problem: 'syntax' }));
  const seen = new Map<string, string>();
  for (const tag of tags.slice(1)) {
    if (seen.has(tag.name)) problems.push({ tag: tag.name, value: tag.value, problem: 'duplicate' });
    else seen.set(tag.name, tag.value);
  }
  const bad = (tag: string): void => {
    problems.push({ tag, value: seen.get(tag) ?? null, problem: 'bad-value' });
  };

  const pValue = seen.get('p');
  let p = pValue === undefined ? null : parsePolicy(pValue);
  if (pValue === undefined) problems.push({ tag: 'p', value: null, problem: 'missing' });
  else if (p === null) bad('p');
  let policyUsable = p !== null;
  const optionalPolicy = (tag: 'sp' | 'np'): DmarcPolicy | undefined => {
    const value = seen.get(tag);
    if (value === undefined) return undefined;
    const parsed = parsePolicy(value);
    if (parsed === null) {
      bad(tag);
      // An invalid sp= makes the record's policy unusable just as an invalid p= does (RFC 7489 §6.3).
      policyUsable = false;
      return undefined;
    }
    return parsed;
  };
  let sp = optionalPolicy('sp');
  let np = optionalPolicy('np');

  const alignment = (tag: 'adkim' | 'aspf'): DmarcAlignmentMode => {
    const value = seen.get(tag)?.toLowerCase();
    if (value === undefined) return 'r';
    if (value === 'r' || value === 's') return value;
    bad(tag);
    return 'r';
  };
  const adkim = alignment('adkim');
  const aspf = alignment('aspf');

  let pct = 100;
  const pctValue = seen.get('pct');
  if (pctValue !== undefined) {
    if (/^\d{1,3}$/.test(pctValue) && Number(pctValue) <= 100) pct = Number(pctValue);
    else bad('pct');
  }

  let ri = 86400;
  const riValue = seen.get('ri');
  if (riValue !== undefined) {
    if (/^\d{1,10}$/.test(riValue) && Number(riValue) <= 0xffffffff) ri = Number(riValue);
    else bad('ri');
  }

  const list = (tag: string, allowed: RegExp, fallback: string[]): string[] => {
    const value = seen.get(tag);
    if (value === undefined) return fallback;
    const items = value.split(':').map((s) => s.trim().toLowerCase());
    if (items.every((s) => allowed.test(s))) return items;
    bad(tag);
    return fallback;
  };
  const fo = list('fo', /^[01ds]$/, ['0']);
  // afrf is the only failure report format ever registered (RFC 7489 §6.3, IANA "DMARC Report Formats").
  const rf = list('rf', /^afrf$/, ['afrf']);

  const uriList = (tag: 'rua' | 'ruf'): DmarcReportUri[] => {
    const value = seen.get(tag);
    if (value === undefined) return [];
    const { uris, bad: someBad } = parseUris(value);
    if (someBad) bad(tag);
    return uris;
  };
  const rua = uriList('rua');
  const ruf = uriList('ruf');

  let psd: 'y' | 'n' | 'u' = 'u';
  const psdValue = seen.get('psd')?.toLowerCase();
  if (psdValue === 'y' || psdValue === 'n' || psdValue === 'u') psd = psdValue;
  else if (psdValue !== undefined) bad('psd');

  let testing = false;
  const tValue = seen.get('t')?.toLowerCase();
  if (tValue === 'y') testing = true;
  else if (tValue !== undefined && tValue !== 'n') bad('t');

  if (!policyUsable) {
    // RFC 7489 §6.3: with a usable rua= act as if the record said p=none, else apply no DMARC at all.
    if (rua.length === 0) return { ok: false, error: 'no-policy', problems };
    p = 'none';
    sp = undefined;
    np = undefined;
  }
  const record: DmarcRecord = {
    p: p ?? 'none',
    ...(sp === undefined ? {} : { sp }),
    ...(np === undefined ? {} : { np }),
    pct,
    adkim,
    aspf,
    rua,
    ruf,
    fo,
    rf,
    ri,
    psd,
    testing,
  };
  return { ok: true, record, problems };
}

/**
 * What DMARC needs of the SPF check of the MAIL FROM identity (checkSpf().mfrom: for the null reverse-path
 * that is the HELO identity, RFC 7208 §2.4).
 */
export type DmarcSpfInput = Pick<SpfResult, 'result' | 'domain'>;

/** What DMARC needs of each DKIM signature's result. */
export type DmarcDkimInput = Pick<DkimResult, 'result' | 'domain' | 'bodyLengthLimited'>;

export interface DmarcInput {
  /** The domain(s) of the RFC5322.From addresses; several distinct ones are each evaluated (§6.6.1). */
  readonly fromDomain: string | readonly string[];
  readonly spf: DmarcSpfInput | null;
  readonly dkim: readonly DmarcDkimInput[];
  readonly resolver: Pick<Resolver, 'txt' | 'a'>;
  /** In [0, 1); for pct= sampling. Defaults to Math.random. */
  readonly random?: () => number;
  readonly discovery?: DmarcDiscovery;
}

export interface DmarcEvaluation {
  readonly result: DmarcResultKind;
  /** The policy the record asks for this domain (p, sp or np); 'none' without a record. */
  readonly policy: DmarcPolicy;
  /** What to do with this message: `policy` when the result is fail, lowered by pct= or t=y; else 'none'. */
  readonly disposition: DmarcPolicy;
  /** The author domain evaluated (lower-case A-labels). */
  readonly domain: string;
  readonly orgDomain: string;
  readonly alignment: { readonly spf: boolean; readonly dkim: boolean };
  readonly record?: DmarcRecord;
  /** Where the record was found ("example.com", not "_dmarc.example.com"). */
  readonly recordDomain?: string;
  /** True when pct= sampling lowered the disposition. */
  readonly sampledOut?: boolean;
  /** For the log and Authentication-Results comments; never for SMTP replies. */
  readonly reason: string;
}

type Lookup =
  | { readonly kind: 'none' }
  | { readonly kind: 'error'; readonly reason: string }
  | { readonly kind: 'found'; readonly name: string; readonly parse: DmarcRecordParse };

class Discovery {
  readonly #resolver: Pick<Resolver, 'txt' | 'a'>;
  readonly #cache = new Map<string, Promise<Lookup>>();
  readonly #orgCache = new Map<string, Promise<string | { error: string }>>();
  readonly mode: DmarcDiscovery;

  constructor(resolver: Pick<Resolver, 'txt' | 'a'>, mode: DmarcDiscovery) {
    this.#resolver = resolver;
    this.mode = mode;
  }

  /** The single DMARC record at _dmarc.<name>; several are discarded as none (RFC 9989 §4.10 step 2). */
  lookup(name: string): Promise<Lookup> {
    let answer = this.#cache.get(name);
    if (answer === undefined) {
      answer = this.#query(name);
      this.#cache.set(name, answer);
    }
    return answer;
  }

  async #query(name: string): Promise<Lookup> {
    let answer: Awaited<ReturnType<Resolver['txt']>>;
    try {
      answer = await this.#resolver.txt(`_dmarc.${name}`);
    } catch (err) {
      // The port promises not to throw; if it does anyway, a DNS problem is temporary, never a crash.
      return { kind: 'error', reason: `_dmarc.${name}: ${String(err)}` };
    }
    switch (answer.kind) {
      case 'nxdomain':
      case 'nodata':
        return { kind: 'none' };
      case 'error':
        return { kind: 'error', reason: `_dmarc.${name}: ${answer.reason}` };
      case 'ok': {
        const dmarc = answer.records.filter(isDmarcRecord);
        if (dmarc.length !== 1) return { kind: 'none' };
        return { kind: 'found', name, parse: parseDmarcRecord(dmarc[0]!) };
      }
    }
  }

  /** The policy record for an author domain: the first found walking up (psl: the domain, then its org). */
  async policyRecord(domain: string): Promise<Lookup> {
    for (const name of this.#policyTargets(domain)) {
      const found = await this.lookup(name);
      if (found.kind !== 'none') return found;
    }
    return { kind: 'none' };
  }

  #policyTargets(domain: string): string[] {
    if (this.mode === 'tree-walk') return walkTargets(domain);
    const org = organizationalDomain(domain);
    return org === domain || org === '' ? [domain] : [domain, org];
  }

  organizational(domain: string): Promise<string | { error: string }> {
    if (this.mode === 'psl') return Promise.resolve(organizationalDomain(domain));
    let org = this.#orgCache.get(domain);
    if (org === undefined) {
      org = this.#walkOrganizational(domain);
      this.#orgCache.set(domain, org);
    }
    return org;
  }

  /** RFC 9989 §4.10.2: psd=n marks the org domain, psd=y the one below it; else the shortest with a record. */
  async #walkOrganizational(domain: string): Promise<string | { error: string }> {
    let previous = domain;
    let shortest: string | null = null;
    for (const name of walkTargets(domain)) {
      const found = await this.lookup(name);
      if (found.kind === 'error') return { error: found.reason };
      if (found.kind === 'found') {
        const psd = found.parse.ok ? found.parse.record.psd : 'u';
        if (psd === 'n') return name;
        if (psd === 'y') return previous;
        shortest = name;
      }
      previous = name;
    }
    return shortest ?? domain;
  }

  /** Whether a domain exists for np= (RFC 9989 §3.2: NXDOMAIN per RFC 8020); unknown counts as existing. */
  async exists(domain: string): Promise<boolean> {
    try {
      return (await this.#resolver.a(domain)).kind !== 'nxdomain';
    } catch {
      return true;
    }
  }
}

/** The names the RFC 9989 §4.10 tree walk queries, in order: at most 8. */
export function walkTargets(domain: string): string[] {
  const labels = domain.split('.');
  const targets = [domain];
  let n = labels.length >= 8 ? 7 : labels.length - 1;
  for (; n >= 1; n--) targets.push(labels.slice(labels.length - n).join('.'));
  return targets;
}

function lowerPolicy(policy: DmarcPolicy): DmarcPolicy {
  return policy === 'reject' ? 'quarantine' : 'none';
}

const severityOfResult: Readonly<Record<DmarcResultKind, number>> = {
  pass: 0,
  none: 1,
  permerror: 2,
  temperror: 3,
  fail: 4,
};
const severityOfPolicy: Readonly<Record<DmarcPolicy, number>> = { none: 0, quarantine: 1, reject: 2 };

/**
 * Evaluate DMARC for a message. Several distinct From domains are each evaluated and the most severe
 * outcome returned (RFC 7489 §6.6.1: "apply the most strict policy selected among the checks that fail";
 * RFC 9989 exempts such messages instead, which would let a forger add a second address to escape a
 * reject policy). No From domain at all is a permerror (RFC 5322 requires exactly one From:).
 */
export async function evaluateDmarc(input: DmarcInput): Promise<DmarcEvaluation> {
  const raw = typeof input.fromDomain === 'string' ? [input.fromDomain] : input.fromDomain;
  const domains = [...new Set(raw.map(canonicalDomain))];
  if (domains.length === 0) {
    return {
      result: 'permerror',
      policy: 'none',
      disposition: 'none',
      domain: '',
      orgDomain: '',
      alignment: { spf: false, dkim: false },
      reason: 'no RFC5322.From domain',
    };
  }
  const discovery = new Discovery(input.resolver, input.discovery ?? 'psl');
  let worst: DmarcEvaluation | null = null;
  for (const domain of domains) {
    const evaluation = await evaluateOne(domain, input, discovery);
    if (
      worst === null ||
      severityOfPolicy[evaluation.disposition] > severityOfPolicy[worst.disposition] ||
      (evaluation.disposition === worst.disposition &&
        severityOfResult[evaluation.result] > severityOfResult[worst.result])
    ) {
      worst = evaluation;
    }
  }
  return worst!;
}

async function evaluateOne(
  domain: string,
  input: DmarcInput,
  discovery: Discovery,
): Promise<DmarcEvaluation> {
  const base = { domain, alignment: { spf: false, dkim: false } };
  if (domain === '') {
    return {
      ...base,
      result: 'permerror',
      policy: 'none',
      disposition: 'none',
      orgDomain: '',
      reason: 'bad From domain',
    };
  }
  const found = await discovery.policyRecord(domain);
  if (found.kind === 'error') {
    return {
      ...base,
      result: 'temperror',
      policy: 'none',
      disposition: 'none',
      orgDomain: domain,
      reason: found.reason,
    };
  }
  const org = await discovery.organizational(domain);
  if (typeof org !== 'string') {
    return {
      ...base,
      result: 'temperror',
      policy: 'none',
      disposition: 'none',
      orgDomain: domain,
      reason: org.error,
    };
  }
  if (found.kind === 'none') {
    return {
      ...base,
      result: 'none',
      policy: 'none',
      disposition: 'none',
      orgDomain: org,
      reason: 'no DMARC record',
    };
  }
  if (!found.parse.ok) {
    const what = found.parse.problems.map((p) => `${p.tag}: ${p.problem}`).join(', ');
    return {
      ...base,
      result: 'permerror',
      policy: 'none',
      disposition: 'none',
      orgDomain: org,
      recordDomain: found.name,
      reason: `unusable DMARC record at _dmarc.${found.name} (${what})`,
    };
  }
  const record = found.parse.record;

  const aligned = async (
    identifier: string,
    mode: DmarcAlignmentMode,
  ): Promise<boolean | { error: string }> => {
    const id = canonicalDomain(identifier);
    if (id === '') return false;
    if (id === domain) return true;
    if (mode === 's') return false;
    // Relaxed alignment needs a shared parent; names with none cannot have the same organizational domain.
    if (!id.endsWith(`.${org}`) && id !== org) return false;
    const other = await discovery.organizational(id);
    return typeof other === 'string' ? other === org : other;
  };

  let spfAligned = false;
  let temporary: string | null = null;
  if (input.spf !== null && (input.spf.result === 'pass' || input.spf.result === 'temperror')) {
    const a = await aligned(input.spf.domain, record.aspf);
    if (typeof a !== 'boolean') temporary = a.error;
    else if (a && input.spf.result === 'pass') spfAligned = true;
    else if (a) temporary = `SPF temperror for aligned ${input.spf.domain}`;
  }
  let dkimAligned = false;
  for (const sig of input.dkim) {
    if (sig.bodyLengthLimited || (sig.result !== 'pass' && sig.result !== 'temperror')) continue;
    const a = await aligned(sig.domain, record.adkim);
    if (typeof a !== 'boolean') temporary ??= a.error;
    else if (a && sig.result === 'pass') dkimAligned = true;
    else if (a) temporary ??= `DKIM temperror for aligned ${sig.domain}`;
  }

  let policy = record.p;
  if (found.name !== domain) {
    policy = record.sp ?? record.p;
    if (record.np !== undefined && !(await discovery.exists(domain))) policy = record.np;
  }
  const common = {
    domain,
    orgDomain: org,
    alignment: { spf: spfAligned, dkim: dkimAligned },
    record,
    recordDomain: found.name,
    policy,
  };
  if (spfAligned || dkimAligned) {
    return {
      ...common,
      result: 'pass',
      disposition: 'none',
      reason: spfAligned ? 'SPF aligned' : 'DKIM aligned',
    };
  }
  if (temporary !== null) return { ...common, result: 'temperror', disposition: 'none', reason: temporary };

  // RFC 7489 §6.6.4: a message not sampled by pct= gets the next less strict policy; RFC 9989 t=y likewise.
  const sampledOut = record.pct < 100 && (input.random ?? Math.random)() * 100 >= record.pct;
  const disposition = sampledOut || record.testing ? lowerPolicy(policy) : policy;
  return {
    ...common,
    result: 'fail',
    disposition,
    ...(sampledOut ? { sampledOut } : {}),
    reason: 'no aligned SPF or DKIM pass',
  };
}
