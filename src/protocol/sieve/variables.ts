// The variables extension's string side (RFC 5229): "${name}" and "${0}".."${9}" references expanded in
// one left-to-right pass (an inserted value is never expanded again, §3), the set modifiers applied in
// their precedence order (§4.1), variable names (§3) and their size bound. Letters fold as ASCII only,
// the way Pigeonhole does (:upper of "jürgen" is "JüRGEN").
// PURE. Deliberately NOT here: where variables live during a run (interpret.ts), compile-time checks.

import type { SetModifier } from './ast.ts';

// A reference: a number (match variable) or a name, perhaps namespaced ("env.x"): RFC 5229 §3 grammar.
const REFERENCE = /\$\{(?:([0-9]+)|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*))\}/g;
// Without the g flag: test() on a global regex moves its lastIndex, which matchAll would then inherit.
const ANY_REFERENCE = new RegExp(REFERENCE.source);
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isVariableName(name: string): boolean {
  return NAME.test(name);
}

/** Namespaces ("foo" in "${foo.bar}") that `text` refers to; Tern supports none (RFC 5229 §3 error). */
export function referencedNamespaces(text: string): string[] {
  const out: string[] = [];
  if (!text.includes('${')) return out;
  for (const m of text.matchAll(REFERENCE)) {
    const name = m[2];
    if (name?.includes('.')) out.push(name.slice(0, name.indexOf('.')));
  }
  return out;
}

/** Does `text` refer to any variable? (Then its value is only known at run time.) */
export function hasReference(text: string): boolean {
  return text.includes('${') && ANY_REFERENCE.test(text);
}

export interface VariableScope {
  /** Lower-case name → value. */
  readonly named: ReadonlyMap<string, string>;
  /** ${0}..${9}; missing ones are empty. */
  readonly matched: readonly string[];
}

/**
 * Replace every reference in `text`; unknown variables are empty (RFC 5229 §3). The result is cut at
 * `maxChars` UTF-16 units: a short script that repeats a long variable must not build a huge string.
 */
export function expandVariables(text: string, scope: VariableScope, maxChars = Infinity): string {
  if (!text.includes('${')) return text;
  let out = '';
  let last = 0;
  for (const m of text.matchAll(REFERENCE)) {
    out += text.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[1] !== undefined) {
      const n = Number(m[1]);
      out += n <= 9 ? (scope.matched[n] ?? '') : '';
    } else out += scope.named.get(m[2]!.toLowerCase()) ?? '';
    if (out.length > maxChars) return out.slice(0, maxChars);
  }
  out += text.slice(last);
  return out.length > maxChars ? out.slice(0, maxChars) : out;
}

function upperFirst(s: string): string {
  const c = s[0];
  return c !== undefined && c >= 'a' && c <= 'z' ? c.toUpperCase() + s.slice(1) : s;
}

function lowerFirst(s: string): string {
  const c = s[0];
  return c !== undefined && c >= 'A' && c <= 'Z' ? c.toLowerCase() + s.slice(1) : s;
}

/** Apply modifiers, already in precedence order. */
export function applyModifiers(value: string, modifiers: readonly SetModifier[]): string {
  let v = value;
  for (const m of modifiers) {
    switch (m) {
      case 'lower':
        v = v.replace(/[A-Z]+/g, (s) => s.toLowerCase());
        break;
      case 'upper':
        v = v.replace(/[a-z]+/g, (s) => s.toUpperCase());
        break;
      case 'lowerfirst':
        v = lowerFirst(v);
        break;
      case 'upperfirst':
        v = upperFirst(v);
        break;
      case 'quotewildcard':
        v = v.replace(/[*?\\]/g, (c) => `\\${c}`);
        break;
      case 'length':
        v = String([...v].length);
        break;
    }
  }
  return v;
}

/** RFC 5229 §4.1 precedence: the larger applies first; modifiers of one rank exclude each other. */
export const MODIFIER_RANK: Readonly<Record<SetModifier, number>> = {
  lower: 40,
  upper: 40,
  lowerfirst: 30,
  upperfirst: 30,
  quotewildcard: 20,
  length: 10,
};

const utf8 = new TextEncoder();

/** `s` cut to at most `maxBytes` of UTF-8, at a character boundary. */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (s.length * 3 <= maxBytes) return s;
  const bytes = utf8.encode(s);
  if (bytes.length <= maxBytes) return s;
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
