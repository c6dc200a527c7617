// SPF record syntax (RFC 7208 §4.5, §4.6, §5, §6, §12): which TXT strings are SPF records, and the whole
// record parsed up front into directives and modifiers, because a syntax error anywhere makes the result
// "permerror" before anything is evaluated (§4.6). Pure and total.
// Deliberately NOT here: evaluation and DNS (spf.ts), macro expansion (spf-macro.ts).

import type { MacroString } from './spf-macro.ts';
import { parseDomainSpec, parseMacroString } from './spf-macro.ts';
import { parseIpv4, parseIpv6 } from './spf-ip.ts';

export type Qualifier = '+' | '-' | '~' | '?';

export type Mechanism =
  | { readonly kind: 'all' }
  | { readonly kind: 'include' | 'exists'; readonly domain: MacroString }
  | {
      readonly kind: 'a' | 'mx';
      /** null: the current domain. */
      readonly domain: MacroString | null;
      readonly prefix4: number;
      readonly prefix6: number;
    }
  | { readonly kind: 'ptr'; readonly domain: MacroString | null }
  | { readonly kind: 'ip4' | 'ip6'; readonly network: bigint; readonly prefix: number };

export interface Directive {
  readonly qualifier: Qualifier;
  readonly mechanism: Mechanism;
  /** The term as published, for logs and Authentication-Results comments. */
  readonly text: string;
}

export interface SpfRecord {
  readonly directives: readonly Directive[];
  readonly redirect: MacroString | null;
  readonly exp: MacroString | null;
}

export type RecordParse = { ok: true; record: SpfRecord } | { ok: false; error: string };

/** §4.5: "v=spf1" in any case, then a space or the end. "v=spf10" and "v=spf1mx" are not SPF records. */
export function isSpfRecord(txt: string): boolean {
  return /^v=spf1(?: |$)/i.test(txt);
}

const MODIFIER = /^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$/s;
const DIRECTIVE = /^([-+~?]?)([A-Za-z][A-Za-z0-9]*)(.*)$/s;
// Lazy head, then the optional CIDR lengths: "/24//64" has an empty head, "/24/64" keeps "/24" in it.
const DUAL_CIDR = /^(.*?)(?:\/(0|[1-9][0-9]*))?(?:\/\/(0|[1-9][0-9]*))?$/s;
const SINGLE_CIDR = /^(.*?)(?:\/(0|[1-9][0-9]*))?$/s;

export function parseRecord(txt: string): RecordParse {
  if (!isSpfRecord(txt)) return { ok: false, error: 'not an SPF record' };
  const directives: Directive[] = [];
  let redirect: MacroString | null = null;
  let exp: MacroString | null = null;
  // terms = *( 1*SP ( directive / modifier ) ): only spaces separate terms; tabs and CR are errors.
  for (const term of txt.slice(6).split(' ')) {
    if (term === '') continue;
    const modifier = MODIFIER.exec(term);
    if (modifier !== null) {
      const name = modifier[1]!.toLowerCase();
      const value = modifier[2]!;
      if (name === 'redirect' || name === 'exp') {
        // §6: each at most once; their values are domain-specs ("exp=" alone is an error, errata 2, §6.2).
        if ((name === 'redirect' ? redirect : exp) !== null) return fail(term, `${name}= appears twice`);
        const spec = parseDomainSpec(value);
        if (!spec.ok) return fail(term, spec.error);
        if (name === 'redirect') redirect = spec.value;
        else exp = spec.value;
      } else {
        // Unknown modifiers are ignored (§6), but their value must still be a macro-string (§12).
        const value_ = parseMacroString(value, 'modifier');
        if (!value_.ok) return fail(term, value_.error);
      }
      continue;
    }
    const directive = parseDirective(term);
    if (!directive.ok) return fail(term, directive.error);
    directives.push(directive.value);
  }
  return { ok: true, record: { directives, redirect, exp } };
}

function fail(term: string, why: string): RecordParse {
  // JSON quoting shows control characters and stray bytes that would otherwise hide in a log line.
  return { ok: false, error: `${JSON.stringify(term)}: ${why}` };
}

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function parseDirective(term: string): Parsed<Directive> {
  const m = DIRECTIVE.exec(term);
  if (m === null) return { ok: false, error: 'neither a mechanism nor a modifier' };
  const qualifier = (m[1] === '' ? '+' : m[1]) as Qualifier;
  const mechanism = parseMechanism(m[2]!.toLowerCase(), m[3]!);
  if (!mechanism.ok) return mechanism;
  return { ok: true, value: { qualifier, mechanism: mechanism.value, text: term } };
}

function parseMechanism(name: string, rest: string): Parsed<Mechanism> {
  switch (name) {
    case 'all':
      return rest === ''
        ? { ok: true, value: { kind: 'all' } }
        : { ok: false, error: '"all" takes no argument' };
    case 'include':
    case 'exists': {
      if (!rest.startsWith(':')) return { ok: false, error: `"${name}" needs ":" and a domain` };
      const spec = parseDomainSpec(rest.slice(1));
      return spec.ok ? { ok: true, value: { kind: name, domain: spec.value } } : spec;
    }
    case 'ptr': {
      const spec = optionalDomain(rest);
      return spec.ok ? { ok: true, value: { kind: 'ptr', domain: spec.value } } : spec;
    }
    case 'a':
    case 'mx': {
      const [, head, v4, v6] = DUAL_CIDR.exec(rest) ?? [];
      const spec = optionalDomain(head ?? rest);
      if (!spec.ok) return spec;
      const prefix4 = v4 === undefined ? 32 : Number(v4);
      const prefix6 = v6 === undefined ? 128 : Number(v6);
      if (prefix4 > 32 || prefix6 > 128) return { ok: false, error: 'CIDR length out of range' };
      return { ok: true, value: { kind: name, domain: spec.value, prefix4, prefix6 } };
    }
    case 'ip4':
    case 'ip6': {
      if (!rest.startsWith(':')) return { ok: false, error: `"${name}" needs ":" and a network` };
      const [, address = '', length] = SINGLE_CIDR.exec(rest.slice(1)) ?? [];
      const network = name === 'ip4' ? parseIpv4(address) : parseIpv6(address);
      if (network === null)
        return { ok: false, error: `invalid ${name === 'ip4' ? 'IPv4' : 'IPv6'} network` };
      const max = name === 'ip4' ? 32 : 128;
      const prefix = length === undefined ? max : Number(length);
      if (prefix > max) return { ok: false, error: 'CIDR length out of range' };
      return { ok: true, value: { kind: name, network, prefix } };
    }
    default:
      return { ok: false, error: `unknown mechanism "${name}"` };
  }
}

// [ ":" domain-spec ]: nothing at all, or a colon and a non-empty domain-spec ("a:" is an error).
function optionalDomain(rest: string): Parsed<MacroString | null> {
  if (rest === '') return { ok: true, value: null };
  if (!rest.startsWith(':')) return { ok: false, error: 'unexpected text after the mechanism name' };
  const spec = parseDomainSpec(rest.slice(1));
  return spec.ok ? spec : { ok: false, error: spec.error };
}
