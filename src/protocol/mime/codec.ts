// The stored form of a MessageStructure: compact JSON for one column beside the message, versioned so
// that a newer Tern can tell an old row from a broken one. Each part is a positional array (field names
// would double the size on a many-part message); decoding checks every field and answers null for
// anything it does not recognise, and the store then scans the message again.
// PURE and total.

import type { MimeParam } from './params.ts';
import type { Disposition, EnvelopeFields, MessageStructure, MimePart } from './structure.ts';

export const STRUCTURE_VERSION = 1;

type Json = null | string | number | Json[] | { [k: string]: Json };

const ENVELOPE_KEYS = [
  'date',
  'subject',
  'from',
  'sender',
  'replyTo',
  'to',
  'cc',
  'bcc',
  'inReplyTo',
  'messageId',
] as const satisfies readonly (keyof EnvelopeFields)[];

function params(ps: readonly MimeParam[]): string[] {
  return ps.flatMap((p) => [p.name, p.value]);
}

function encodePart(p: MimePart): Json {
  return [
    p.headerStart,
    p.bodyStart,
    p.bodyEnd,
    p.type,
    p.subtype,
    params(p.params),
    p.id,
    p.description,
    p.encoding,
    p.md5,
    p.disposition ? [p.disposition.type, params(p.disposition.params)] : null,
    p.language ? [...p.language] : null,
    p.location,
    p.lines,
    p.parts.map(encodePart),
    p.message ? encodePart(p.message) : null,
    p.envelope ? ENVELOPE_KEYS.map((k) => p.envelope![k]) : null,
  ];
}

/** The column value for `s`. */
export function encodeStructure(s: MessageStructure): string {
  return JSON.stringify({ v: STRUCTURE_VERSION, size: s.size, preview: s.preview, root: encodePart(s.root) });
}

class Bad extends Error {}

function num(x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new Bad();
  return x;
}
function str(x: unknown): string {
  if (typeof x !== 'string') throw new Bad();
  return x;
}
function nstr(x: unknown): string | null {
  return x === null ? null : str(x);
}
function arr(x: unknown): unknown[] {
  if (!Array.isArray(x)) throw new Bad();
  return x;
}
function decodeParams(x: unknown): MimeParam[] {
  const a = arr(x);
  if (a.length % 2 !== 0) throw new Bad();
  const out: MimeParam[] = [];
  for (let i = 0; i < a.length; i += 2) out.push({ name: str(a[i]), value: str(a[i + 1]) });
  return out;
}

function decodePart(x: unknown, depth: number): MimePart {
  // Depth is bounded by the scanner's limits; a deeper tree is not one it wrote.
  if (depth > 200) throw new Bad();
  const a = arr(x);
  if (a.length !== 17) throw new Bad();
  const disp = a[10] === null ? null : arr(a[10]);
  const disposition: Disposition | null = disp ? { type: str(disp[0]), params: decodeParams(disp[1]) } : null;
  const env = a[16] === null ? null : arr(a[16]);
  let envelope: EnvelopeFields | null = null;
  if (env) {
    if (env.length !== ENVELOPE_KEYS.length) throw new Bad();
    envelope = Object.fromEntries(
      ENVELOPE_KEYS.map((k, i) => [k, nstr(env[i])]),
    ) as unknown as EnvelopeFields;
  }
  return {
    headerStart: num(a[0]),
    bodyStart: num(a[1]),
    bodyEnd: num(a[2]),
    type: str(a[3]),
    subtype: str(a[4]),
    params: decodeParams(a[5]),
    id: nstr(a[6]),
    description: nstr(a[7]),
    encoding: str(a[8]),
    md5: nstr(a[9]),
    disposition,
    language: a[11] === null ? null : arr(a[11]).map(str),
    location: nstr(a[12]),
    lines: num(a[13]),
    parts: arr(a[14]).map((p) => decodePart(p, depth + 1)),
    message: a[15] === null ? null : decodePart(a[15], depth + 1),
    envelope,
  };
}

/** The structure in a column value; null when it is not one this version wrote (scan again). */
export function decodeStructure(column: string): MessageStructure | null {
  try {
    const o = JSON.parse(column) as unknown;
    if (typeof o !== 'object' || o === null) return null;
    const r = o as Record<string, unknown>;
    if (r['v'] !== STRUCTURE_VERSION) return null;
    return { size: num(r['size']), preview: str(r['preview']), root: decodePart(r['root'], 0) };
  } catch (err) {
    if (err instanceof Bad || err instanceof SyntaxError) return null;
    throw err;
  }
}
