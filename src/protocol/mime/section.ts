// BODY[section] and BINARY[section] (RFC 9051 §6.4.5, "section" in §9) resolved to byte ranges of the
// stored message, so FETCH reads only those octets from the file. Part numbers follow the RFC: a
// non-multipart message has part 1 (its body); a message/rfc822 part's numbers go on into the message
// inside it; HEADER, HEADER.FIELDS[.NOT] and TEXT apply to the whole message or to a message/rfc822
// part, MIME to a numbered part. HEADER.FIELDS answers the header range plus the field names: the
// caller filters the header octets with filterHeaderFields.
// PURE and total: a section that does not exist resolves to null (the server sends an empty string).

import { assertNever } from '../../core/assert-never.ts';
import type { MessageStructure, MimePart } from './structure.ts';

export type SectionText =
  | { readonly kind: 'none' }
  | { readonly kind: 'header' }
  | { readonly kind: 'text' }
  | { readonly kind: 'mime' }
  | { readonly kind: 'fields'; readonly not: boolean; readonly names: readonly string[] };

export interface SectionSpec {
  readonly part: readonly number[];
  readonly text: SectionText;
}

export interface SectionRange {
  /** [start, end) in the stored message. */
  readonly start: number;
  readonly end: number;
  /** The part the range belongs to: its encoding decodes BINARY[]. */
  readonly part: MimePart;
  /** HEADER.FIELDS[.NOT]: keep (or drop) these fields of the range. */
  readonly fields: { readonly not: boolean; readonly names: readonly string[] } | null;
}

/** "1.2.HEADER.FIELDS (From To)" → SectionSpec; null when it is not a section-spec. */
export function parseSectionSpec(s: string): SectionSpec | null {
  const nums: number[] = [];
  let rest = s.trim();
  for (;;) {
    const m = /^([1-9]\d{0,8})(\.|$)/.exec(rest);
    if (!m) break;
    nums.push(Number(m[1]));
    rest = rest.slice(m[0].length);
    if (m[2] === '') break;
    if (!/^[1-9]/.test(rest)) {
      if (rest === '') return null;
      break;
    }
  }
  const upper = rest.toUpperCase();
  if (rest === '') return { part: nums, text: { kind: 'none' } };
  if (upper === 'HEADER') return { part: nums, text: { kind: 'header' } };
  if (upper === 'TEXT') return { part: nums, text: { kind: 'text' } };
  if (upper === 'MIME') return nums.length > 0 ? { part: nums, text: { kind: 'mime' } } : null;
  const f = /^HEADER\.FIELDS(\.NOT)?\s*\(([^()]*)\)$/is.exec(rest);
  if (!f) return null;
  const names = f[2]!
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((n) => n.replace(/^"(.*)"$/, '$1'));
  if (names.length === 0) return null;
  return { part: nums, text: { kind: 'fields', not: f[1] !== undefined, names } };
}

/** The part `path` names, starting from the message's top part. */
function findPart(root: MimePart, path: readonly number[]): MimePart | null {
  let cur = root;
  for (let i = 0; i < path.length; i++) {
    const n = path[i]!;
    // After the first number, a message/rfc822 part's numbers address the message inside it.
    const container = i > 0 && cur.message !== null ? cur.message : cur;
    if (container.type === 'multipart') {
      const next = container.parts[n - 1];
      if (!next) return null;
      cur = next;
    } else if (n === 1 && (i === 0 || container !== cur)) {
      cur = container;
    } else return null;
  }
  return cur;
}

/** The byte range BODY[spec] (or BINARY[spec]) reads; null when the section does not exist. */
export function resolveSection(structure: MessageStructure, spec: SectionSpec): SectionRange | null {
  const part = spec.part.length === 0 ? structure.root : findPart(structure.root, spec.part);
  if (!part) return null;
  const text = spec.text;
  const range = (
    p: MimePart,
    start: number,
    end: number,
    fields: SectionRange['fields'] = null,
  ): SectionRange => ({
    start,
    end,
    part: p,
    fields,
  });
  if (text.kind === 'none') {
    return spec.part.length === 0
      ? range(part, 0, structure.size)
      : range(part, part.bodyStart, part.bodyEnd);
  }
  if (text.kind === 'mime') return range(part, part.headerStart, part.bodyStart);
  // HEADER/TEXT/FIELDS address a message: the whole one, or the one inside a message/rfc822 part.
  const message = spec.part.length === 0 ? structure.root : part.message;
  if (!message) return null;
  switch (text.kind) {
    case 'header':
      return range(message, message.headerStart, message.bodyStart);
    case 'text':
      return range(message, message.bodyStart, message.bodyEnd);
    case 'fields':
      return range(message, message.headerStart, message.bodyStart, { not: text.not, names: text.names });
    default:
      return assertNever(text);
  }
}

const LF = 10;

/**
 * The fields of a header section named in `names` (or not named, with `not`), in their order and as
 * written, followed by the empty line (RFC 9051 §6.4.5: the subset still ends with a blank line).
 */
export function filterHeaderFields(header: Uint8Array, names: readonly string[], not: boolean): Uint8Array {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const out: Uint8Array[] = [];
  let keep = false;
  let pos = 0;
  while (pos < header.length) {
    const nl = header.indexOf(LF, pos);
    const end = nl < 0 ? header.length : nl + 1;
    const line = header.subarray(pos, end);
    pos = end;
    const content = line.length - (line.at(-1) === LF ? (line.at(-2) === 13 ? 2 : 1) : 0);
    if (content === 0) break;
    if (line[0] !== 0x20 && line[0] !== 0x09) {
      const colon = line.indexOf(0x3a);
      const name = colon > 0 ? new TextDecoder().decode(line.subarray(0, colon)).trim().toLowerCase() : '';
      keep = name !== '' && wanted.has(name) !== not;
    }
    if (keep) out.push(line);
  }
  out.push(Uint8Array.of(13, 10));
  const total = new Uint8Array(out.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of out) {
    total.set(c, at);
    at += c.length;
  }
  return total;
}
