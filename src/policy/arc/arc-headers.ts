// The three ARC header fields (RFC 8617 §4.1): ARC-Seal (AS), ARC-Message-Signature (AMS) and
// ARC-Authentication-Results (AAR), parsed strictly, and grouped into ARC Sets by instance with the
// structural checks of §5.2 steps 1-3 (at most 50 sets, one of each field per instance, instances 1..N
// without gaps, cv=none on the first seal and cv=pass on the others, no h= on a seal).
// Tag lists here are stricter than DKIM's (RFC 6376 §3.2 ABNF): an empty tag-spec (";;") is an error, only
// one trailing ";" is allowed; tag names are case-sensitive and may not repeat.
// PURE and total: bad fields are results with a reason, never exceptions. Deliberately NOT here: any
// crypto or DNS (verify.ts), building new fields (seal.ts).

import type { Canonicalization } from '../dkim/canonicalize.ts';
import { canonicalizeHeaderField } from '../dkim/canonicalize.ts';
import type { RawHeaderField } from '../dkim/header-fields.ts';
import { removeSignatureValue } from '../dkim/header-fields.ts';
import type { DkimAlgorithm } from '../dkim/signature.ts';
import { normalizeDkimDomain } from '../dkim/signature.ts';
import { printable, stripWhitespace, trimFws } from '../dkim/tag-list.ts';

/** RFC 8617 §4.2.1: more ARC Sets than this is a failed chain. */
export const MAX_ARC_SETS = 50;

export type ArcChainStatus = 'none' | 'pass' | 'fail';

type Tags = ReadonlyMap<string, string>;
type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const TAG_VALUE = /^[\x21-\x3a\x3c-\x7e\x80-\xff \t\r\n]*$/;

/** tag-list = tag-spec *( ";" tag-spec ) [ ";" ] (RFC 6376 §3.2), read strictly. */
export function parseStrictTagList(text: string): Parsed<Tags> {
  const tags = new Map<string, string>();
  const segments = text.split(';');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (trimFws(segment) === '') {
      if (i === segments.length - 1 && i > 0) break; // the one optional trailing ";"
      return { ok: false, reason: 'empty tag-spec (";;" or a leading ";")' };
    }
    const eq = segment.indexOf('=');
    if (eq < 0) return { ok: false, reason: `tag without "=": "${printable(trimFws(segment))}"` };
    const name = trimFws(segment.slice(0, eq));
    if (!TAG_NAME.test(name)) return { ok: false, reason: `bad tag name "${printable(name)}"` };
    const value = trimFws(segment.slice(eq + 1));
    if (!TAG_VALUE.test(value)) return { ok: false, reason: `bad characters in the value of ${name}=` };
    if (tags.has(name)) return { ok: false, reason: `duplicate tag ${name}=` };
    tags.set(name, value);
  }
  return { ok: true, value: tags };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64(text: string | undefined): Buffer | null {
  if (text === undefined) return null;
  const clean = stripWhitespace(text);
  if (clean.length === 0 || clean.length % 4 !== 0 || !BASE64.test(clean)) return null;
  return Buffer.from(clean, 'base64');
}

/** i= of an AS or AMS: 1..50 (§4.2.1). */
function instanceOf(text: string | undefined): number | null {
  if (text === undefined || !/^[0-9]{1,3}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= MAX_ARC_SETS ? n : null;
}

function timestamp(tags: Tags): Parsed<number | null> {
  const t = tags.get('t');
  if (t === undefined) return { ok: true, value: null };
  if (!/^[0-9]{1,12}$/.test(t)) return { ok: false, reason: 't= is not a timestamp' };
  return { ok: true, value: Number(t) };
}

/** What the AS and the AMS share: algorithm, signature, signing domain and selector. */
export interface ArcSignatureCommon {
  readonly instance: number;
  readonly algorithm: DkimAlgorithm;
  readonly keyType: 'rsa' | 'ed25519';
  /** b= without whitespace. */
  readonly b: string;
  readonly signature: Buffer;
  readonly domain: string;
  readonly selector: string;
  readonly timestampS: number | null;
}

export interface ArcSealFields extends ArcSignatureCommon {
  readonly cv: ArcChainStatus;
}

export interface ArcMessageSignatureFields extends ArcSignatureCommon {
  readonly bodyHash: Buffer;
  readonly headerCanon: Canonicalization;
  readonly bodyCanon: Canonicalization;
  readonly signedHeaders: readonly string[];
  readonly bodyLength: number | null;
}

export interface ArcAuthResultsFields {
  readonly instance: number;
  readonly authservId: string;
  /** The resinfo part after the authserv-id, unfolded. */
  readonly results: string;
}

function common(tags: Tags, required: readonly string[]): Parsed<ArcSignatureCommon> {
  for (const name of required) {
    if (!tags.has(name)) return { ok: false, reason: `lacks the required ${name}= tag` };
  }
  const instance = instanceOf(tags.get('i'));
  if (instance === null)
    return { ok: false, reason: `i=${printable(tags.get('i')!)} is not an instance 1..50` };
  const a = tags.get('a')!.toLowerCase();
  if (a !== 'rsa-sha256' && a !== 'ed25519-sha256')
    return { ok: false, reason: `unsupported a=${printable(a)}` };
  const signature = base64(tags.get('b'));
  if (signature === null) return { ok: false, reason: 'b= is empty or not base64' };
  const domain = normalizeDkimDomain(tags.get('d')!);
  if (domain === null) return { ok: false, reason: `d= is not a domain: "${printable(tags.get('d')!)}"` };
  const selector = normalizeDkimDomain(tags.get('s')!);
  if (selector === null) return { ok: false, reason: `s= is not a selector: "${printable(tags.get('s')!)}"` };
  const t = timestamp(tags);
  if (!t.ok) return t;
  return {
    ok: true,
    value: {
      instance,
      algorithm: a,
      keyType: a === 'rsa-sha256' ? 'rsa' : 'ed25519',
      b: stripWhitespace(tags.get('b')!),
      signature,
      domain,
      selector,
      timestampS: t.value,
    },
  };
}

/** The value of an ARC-Seal field (after the colon). */
export function parseArcSeal(value: string): Parsed<ArcSealFields> {
  const list = parseStrictTagList(value);
  if (!list.ok) return list;
  const tags = list.value;
  const base = common(tags, ['i', 'a', 'b', 'cv', 'd', 's']);
  if (!base.ok) return base;
  // §4.1.3: the seal covers the ARC Sets, never a list of header fields.
  if (tags.has('h')) return { ok: false, reason: 'ARC-Seal carries h=' };
  const cv = tags.get('cv')!.toLowerCase();
  if (cv !== 'none' && cv !== 'pass' && cv !== 'fail')
    return { ok: false, reason: `bad cv=${printable(cv)}` };
  return { ok: true, value: { ...base.value, cv } };
}

/** The value of an ARC-Message-Signature field (after the colon). */
export function parseArcMessageSignature(value: string): Parsed<ArcMessageSignatureFields> {
  const list = parseStrictTagList(value);
  if (!list.ok) return list;
  const tags = list.value;
  const base = common(tags, ['i', 'a', 'b', 'bh', 'd', 'h', 's']);
  if (!base.ok) return base;
  const bodyHash = base64(tags.get('bh'));
  if (bodyHash === null) return { ok: false, reason: 'bh= is empty or not base64' };
  const c = (tags.get('c') ?? 'simple/simple').toLowerCase().split('/');
  const headerCanon = c[0];
  const bodyCanon = c[1] ?? 'simple';
  if (
    c.length > 2 ||
    (headerCanon !== 'simple' && headerCanon !== 'relaxed') ||
    (bodyCanon !== 'simple' && bodyCanon !== 'relaxed')
  ) {
    return { ok: false, reason: `bad c=${printable(tags.get('c')!)}` };
  }
  const signedHeaders = tags
    .get('h')!
    .split(':')
    .map(stripWhitespace)
    .filter((name) => name !== '');
  // §4.1.2: an AMS that signs an ARC-Seal could never be sealed over consistently.
  if (signedHeaders.some((name) => name.toLowerCase() === 'arc-seal')) {
    return { ok: false, reason: 'h= includes ARC-Seal' };
  }
  let bodyLength: number | null = null;
  const l = tags.get('l');
  if (l !== undefined) {
    if (!/^[0-9]{1,76}$/.test(l)) return { ok: false, reason: 'l= is not a number' };
    bodyLength = Number(l);
  }
  return { ok: true, value: { ...base.value, bodyHash, headerCanon, bodyCanon, signedHeaders, bodyLength } };
}

/** The value of an ARC-Authentication-Results field: "i=N;" then an RFC 8601 authserv-id and results. */
export function parseArcAuthResults(value: string): Parsed<ArcAuthResultsFields> {
  const unfolded = value.replace(/\r\n/g, '');
  const m = /^[ \t]*i[ \t]*=[ \t]*([0-9]{1,3})[ \t]*;(.*)$/s.exec(unfolded);
  if (!m) return { ok: false, reason: 'does not start with "i=<instance>;"' };
  const instance = instanceOf(m[1]);
  if (instance === null) return { ok: false, reason: `i=${m[1]!} is not an instance 1..50` };
  const rest = m[2]!.trim();
  const semi = rest.indexOf(';');
  const authservId = (semi < 0 ? rest : rest.slice(0, semi)).trim();
  if (authservId === '') return { ok: false, reason: 'no authserv-id' };
  return { ok: true, value: { instance, authservId, results: semi < 0 ? '' : rest.slice(semi + 1).trim() } };
}

/** One header field of an ARC Set with where it sits among all header fields. */
export interface Located<T> {
  readonly index: number;
  readonly field: RawHeaderField;
  readonly value: T;
}

export interface ArcSet {
  readonly instance: number;
  readonly seal: Located<ArcSealFields>;
  readonly signature: Located<ArcMessageSignatureFields>;
  readonly results: Located<ArcAuthResultsFields>;
}

export type ArcChain =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'fail';
      readonly reason: string;
      readonly instance: number;
      /** The newest seal itself says cv=fail: no set may be added any more. */
      readonly declaredFailed: boolean;
    }
  /** `sets[k]` is instance k + 1; structure checked (§5.2 steps 1-3). */
  | { readonly kind: 'chain'; readonly sets: readonly ArcSet[] };

const ARC_NAMES = {
  'arc-seal': 'seal',
  'arc-message-signature': 'signature',
  'arc-authentication-results': 'results',
} as const;

function valueOf(field: RawHeaderField): string {
  const colon = field.raw.indexOf(':');
  return field.raw.slice(colon + 1).replace(/\r\n$/, '');
}

/** Group the ARC header fields of a message into ARC Sets and check the chain's structure. */
export function collectArcSets(fields: readonly RawHeaderField[]): ArcChain {
  const seals = new Map<number, Located<ArcSealFields>>();
  const signatures = new Map<number, Located<ArcMessageSignatureFields>>();
  const results = new Map<number, Located<ArcAuthResultsFields>>();
  let count = 0;
  let highest = 0;
  const problems: string[] = [];
  fields.forEach((field, index) => {
    const kind = (ARC_NAMES as Record<string, 'seal' | 'signature' | 'results' | undefined>)[field.key];
    if (kind === undefined) return;
    count++;
    const value = valueOf(field);
    const put = <T extends { instance: number }>(map: Map<number, Located<T>>, parsed: Parsed<T>): void => {
      if (!parsed.ok) {
        problems.push(`${field.name}: ${parsed.reason}`);
        return;
      }
      const n = parsed.value.instance;
      highest = Math.max(highest, n);
      if (map.has(n)) problems.push(`two ${field.name} fields with i=${n}`);
      else map.set(n, { index, field, value: parsed.value });
    };
    if (kind === 'seal') put(seals, parseArcSeal(value));
    else if (kind === 'signature') put(signatures, parseArcMessageSignature(value));
    else put(results, parseArcAuthResults(value));
  });
  if (count === 0) return { kind: 'none' };
  const fail = (reason: string): ArcChain => ({
    kind: 'fail',
    reason,
    instance: highest,
    declaredFailed: false,
  });
  // §5.2 step 2: a chain its last sealer already declared failed stays failed.
  if (seals.get(highest)?.value.cv === 'fail') {
    return {
      kind: 'fail',
      reason: `ARC-Seal i=${highest} says cv=fail`,
      instance: highest,
      declaredFailed: true,
    };
  }
  if (problems.length > 0) return fail(problems[0]!);
  const sets: ArcSet[] = [];
  for (let n = 1; n <= highest; n++) {
    const seal = seals.get(n);
    const signature = signatures.get(n);
    const result = results.get(n);
    if (seal === undefined || signature === undefined || result === undefined) {
      const missing = [
        seal ? '' : 'ARC-Seal',
        signature ? '' : 'ARC-Message-Signature',
        result ? '' : 'ARC-Authentication-Results',
      ];
      return fail(`ARC Set i=${n} lacks ${missing.filter(Boolean).join(', ')}`);
    }
    const expected = n === 1 ? 'none' : 'pass';
    if (seal.value.cv !== expected) {
      return fail(`ARC-Seal i=${n} has cv=${seal.value.cv}, not ${expected}`);
    }
    sets.push({ instance: n, seal, signature, results: result });
  }
  return { kind: 'chain', sets };
}

/** The three raw fields of one ARC Set. */
export interface ArcSetFields {
  readonly seal: RawHeaderField;
  readonly signature: RawHeaderField;
  readonly results: RawHeaderField;
}

/**
 * The octets the ARC-Seal of instance `upTo` signs (RFC 8617 §5.1.1): ARC Sets 1..upTo in order, each as
 * AAR, AMS, AS, relaxed; the last seal with its b= emptied and without its final CRLF.
 */
export function sealHashInput(sets: readonly ArcSetFields[], upTo: number): Buffer {
  let data = '';
  for (let n = 1; n <= upTo; n++) {
    const set = sets[n - 1]!;
    data += canonicalizeHeaderField(set.results.raw, 'relaxed');
    data += canonicalizeHeaderField(set.signature.raw, 'relaxed');
    data +=
      n === upTo
        ? canonicalizeHeaderField(removeSignatureValue(set.seal.raw), 'relaxed').slice(0, -2)
        : canonicalizeHeaderField(set.seal.raw, 'relaxed');
  }
  return Buffer.from(data, 'latin1');
}
