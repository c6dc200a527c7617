// How Sieve compares: the comparators i;octet, i;ascii-casemap (RFC 4790 §9.2-9.3) and i;ascii-numeric
// (§9.1), the match types :is :contains :matches (RFC 5228 §2.7.1) and :value / :count (RFC 5231), and
// the match variables a successful :matches leaves (RFC 5229 §3.2).
// :matches is not a backtracking matcher: the pattern is split at its "*"s into segments of literals and
// "?"s; the first segment is anchored at the start, the last at the end, and each middle one is taken at
// its leftmost place, which is both correct and the shortest expansion of every "*" (what Pigeonhole
// and the RFC 5229 examples give). The cost is O(value × pattern) at worst, never exponential, and each
// run of a script spends from one step budget, so a hostile pattern ends in an error, not a stall.
// PURE. Deliberately NOT here: where values come from (interpret.ts), variable expansion.

import { assertNever } from '../../core/assert-never.ts';
import type { Comparator, MatchSpec, Relation } from './ast.ts';

/** Thrown when a run has spent its comparison budget; runSieve turns it into a runtime error. */
export class MatchBudgetExceeded extends Error {}

export interface MatchBudget {
  /** Character comparisons left for this run. */
  steps: number;
}

export interface MatchResult {
  readonly matched: boolean;
  /** For a :matches success: ${0} the whole value, then one string per wildcard. */
  readonly captures: readonly string[] | null;
}

const NO_MATCH: MatchResult = { matched: false, captures: null };
const MATCHED: MatchResult = { matched: true, captures: null };

/** ASCII letters to upper case (RFC 4790 §9.2): the only folding i;ascii-casemap does. */
export function asciiUpper(s: string): string {
  return /[a-z]/.test(s) ? s.replace(/[a-z]+/g, (m) => m.toUpperCase()) : s;
}

/** Order of UTF-8 octets, which is code point order (JS compares UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates encode code points above every BMP unit: move them past U+E000..U+FFFF.
    if (x >= 0xd800) x = x < 0xe000 ? x + 0x2000 : x - 0x800;
    if (y >= 0xd800) y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    return x - y;
  }
  return a.length - b.length;
}

/** The leading digits of s without leading zeros; null for "positive infinity" (RFC 4790 §9.1.1). */
function numericPrefix(s: string): string | null {
  const m = /^[0-9]+/.exec(s);
  if (!m) return null;
  return m[0].replace(/^0+(?=[0-9])/, '');
}

function compareNumeric(a: string, b: string): number {
  const x = numericPrefix(a);
  const y = numericPrefix(b);
  if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The comparator's order: negative, zero or positive. */
export function compareWith(comparator: Comparator, a: string, b: string): number {
  switch (comparator) {
    case 'i;octet':
      return compareCodePoints(a, b);
    case 'i;ascii-casemap':
      return compareCodePoints(asciiUpper(a), asciiUpper(b));
    case 'i;ascii-numeric':
      return compareNumeric(a, b);
  }
}

export function relationHolds(relation: Relation, order: number): boolean {
  switch (relation) {
    case 'gt':
      return order > 0;
    case 'ge':
      return order >= 0;
    case 'lt':
      return order < 0;
    case 'le':
      return order <= 0;
    case 'eq':
      return order === 0;
    case 'ne':
      return order !== 0;
  }
}

type PatternToken = number | 'any' | 'star';

/** "*" and "?" are wildcards; "\" makes the next character literal (RFC 5228 §2.7.1). */
function compilePattern(pattern: string, fold: boolean): PatternToken[] {
  const out: PatternToken[] = [];
  const src = fold ? asciiUpper(pattern) : pattern;
  for (let i = 0; i < src.length;) {
    let cp = src.codePointAt(i)!;
    i += cp > 0xffff ? 2 : 1;
    if (cp === 0x2a) out.push('star');
    else if (cp === 0x3f) out.push('any');
    else {
      if (cp === 0x5c && i < src.length) {
        cp = src.codePointAt(i)!;
        i += cp > 0xffff ? 2 : 1;
      }
      out.push(cp);
    }
  }
  return out;
}

function codePoints(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length;) {
    const cp = s.codePointAt(i)!;
    out.push(cp);
    i += cp > 0xffff ? 2 : 1;
  }
  return out;
}

function spend(budget: MatchBudget, n: number): void {
  budget.steps -= n;
  if (budget.steps < 0) throw new MatchBudgetExceeded('match budget exceeded');
}

/** Does `seg` (no stars) match `value` at `at`? Its "?" positions go to `anys`. */
function segmentAt(value: readonly number[], seg: readonly PatternToken[], at: number): boolean {
  for (let k = 0; k < seg.length; k++) {
    const t = seg[k]!;
    if (t !== 'any' && t !== value[at + k]) return false;
  }
  return true;
}

/**
 * Match `value` against a glob `pattern`; the captures (whole value first) when it matches, else null.
 * `fold` applies i;ascii-casemap.
 */
export function globMatch(
  value: string,
  pattern: string,
  fold: boolean,
  budget: MatchBudget,
): string[] | null {
  const original = codePoints(value);
  const subject = fold ? codePoints(asciiUpper(value)) : original;
  const tokens = compilePattern(pattern, fold);
  const segments: PatternToken[][] = [[]];
  for (const t of tokens) {
    if (t === 'star') segments.push([]);
    else segments.at(-1)!.push(t);
  }
  const n = subject.length;
  // Each wildcard's [start, end) in subject, in pattern order.
  const spans: [number, number][] = [];
  const anys = (seg: readonly PatternToken[], at: number): void => {
    seg.forEach((t, k) => {
      if (t === 'any') spans.push([at + k, at + k + 1]);
    });
  };
  const first = segments[0]!;
  spend(budget, first.length + 1);
  if (segments.length === 1) {
    if (n !== first.length || !segmentAt(subject, first, 0)) return null;
    anys(first, 0);
  } else {
    const last = segments.at(-1)!;
    const end = n - last.length;
    if (end < first.length || !segmentAt(subject, first, 0)) return null;
    spend(budget, last.length);
    if (!segmentAt(subject, last, end)) return null;
    anys(first, 0);
    let pos = first.length;
    for (let s = 1; s < segments.length - 1; s++) {
      const seg = segments[s]!;
      let found = -1;
      for (let p = pos; p + seg.length <= end; p++) {
        spend(budget, seg.length + 1);
        if (segmentAt(subject, seg, p)) {
          found = p;
          break;
        }
      }
      if (found < 0) return null;
      spans.push([pos, found]);
      anys(seg, found);
      pos = found + seg.length;
    }
    spans.push([pos, end]);
    anys(last, end);
  }
  const text = (a: number, b: number): string => String.fromCodePoint(...original.slice(a, b));
  return [value, ...spans.map(([a, b]) => (b - a > 10000 ? sliceLong(original, a, b) : text(a, b)))];
}

/** fromCodePoint with a spread has an argument limit; long captures are built in chunks. */
function sliceLong(cps: readonly number[], a: number, b: number): string {
  let out = '';
  for (let i = a; i < b; i += 8192) out += String.fromCodePoint(...cps.slice(i, Math.min(b, i + 8192)));
  return out;
}

function matchOne(spec: MatchSpec, value: string, key: string, budget: MatchBudget): MatchResult {
  const { type, comparator } = spec;
  switch (type.kind) {
    case 'is':
      spend(budget, Math.min(value.length, key.length) + 1);
      if (comparator === 'i;octet') return value === key ? MATCHED : NO_MATCH;
      return compareWith(comparator, value, key) === 0 ? MATCHED : NO_MATCH;
    case 'contains': {
      spend(budget, value.length + 1);
      const fold = comparator === 'i;ascii-casemap';
      return (fold ? asciiUpper(value).includes(asciiUpper(key)) : value.includes(key)) ? MATCHED : NO_MATCH;
    }
    case 'matches': {
      const captures = globMatch(value, key, comparator === 'i;ascii-casemap', budget);
      return captures ? { matched: true, captures } : NO_MATCH;
    }
    case 'value':
      spend(budget, Math.min(value.length, key.length) + 1);
      return relationHolds(type.relation, compareWith(comparator, value, key)) ? MATCHED : NO_MATCH;
    case 'count':
      // Counting is done over the whole value list in matchValues.
      return NO_MATCH;
    default:
      return assertNever(type);
  }
}

/**
 * RFC 5228 §2.7.1: true when any value matches any key (":count": when the number of values stands in
 * the relation to any key). The captures of the first :matches success are returned.
 */
export function matchValues(
  spec: MatchSpec,
  values: readonly string[],
  keys: readonly string[],
  budget: MatchBudget,
): MatchResult {
  if (spec.type.kind === 'count') {
    const count = String(values.length);
    const relation = spec.type.relation;
    return keys.some((k) => relationHolds(relation, compareWith(spec.comparator, count, k)))
      ? MATCHED
      : NO_MATCH;
  }
  for (const value of values) {
    for (const key of keys) {
      const r = matchOne(spec, value, key, budget);
      if (r.matched) return r;
    }
  }
  return NO_MATCH;
}
