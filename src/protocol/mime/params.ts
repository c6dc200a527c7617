// MIME header values with parameters: Content-Type (RFC 2045 §5.1) and Content-Disposition (RFC 2183),
// with RFC 2231 parameter value continuations, charsets and languages (`name*0*=utf-8''%E6%97%A5;
// name*1=.pdf`) merged into one decoded UTF-8 value. Comments (RFC 5322 §3.2.2) are skipped.
// Tolerant the way receivers are: unquoted values with spaces, missing ";" and stray characters are read
// as well as they can be, and a value that cannot be read is dropped rather than failing the field.
// PURE and total. Deliberately not here: RFC 2047 encoded-words inside parameters (IMAP sends them as
// they are; clients decode them).

export interface MimeParam {
  /** Lower case, without any RFC 2231 "*" or section suffix. */
  readonly name: string;
  /** Decoded to UTF-8 (RFC 2231 values from their charset); quoted-string escapes removed. */
  readonly value: string;
}

export interface ParsedValue {
  /** The leading token ("text/plain", "attachment"), lower case; "" when absent. */
  readonly value: string;
  readonly params: readonly MimeParam[];
}

const TSPECIAL_OR_SPACE = /[()<>@,;:\\"/[\]?=\s]/;

type Decoder = InstanceType<typeof TextDecoder>;

function decoderFor(charset: string): Decoder {
  try {
    return new TextDecoder(charset.trim().toLowerCase() || 'utf-8');
  } catch {
    return new TextDecoder('utf-8');
  }
}

/** Skip white space and comments from `i`; the index of the next other character. */
function skipCfws(s: string, i: number): number {
  for (;;) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (s[i] !== '(') return i;
    let depth = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')' && --depth === 0) {
        i++;
        break;
      }
    }
  }
}

function readQuoted(s: string, i: number): { text: string; next: number } {
  let text = '';
  for (i++; i < s.length && s[i] !== '"'; i++) {
    if (s[i] === '\\' && i + 1 < s.length) i++;
    text += s[i];
  }
  return { text, next: i + 1 };
}

function readToken(s: string, i: number): { text: string; next: number } {
  const start = i;
  while (i < s.length && !TSPECIAL_OR_SPACE.test(s[i]!)) i++;
  return { text: s.slice(start, i), next: i };
}

interface RawParam {
  readonly name: string;
  readonly value: string;
}

/** The leading value of `s` (what `leading` matches), then the raw parameters. */
function split(s: string, leading: RegExp): { value: string; raw: RawParam[] } {
  let i = skipCfws(s, 0);
  const m = leading.exec(s.slice(i));
  const value = m ? m[0].toLowerCase() : '';
  if (m) i += m[0].length;
  const raw: RawParam[] = [];
  while (i < s.length) {
    const semi = s.indexOf(';', i);
    if (semi < 0) break;
    i = skipCfws(s, semi + 1);
    const name = readToken(s, i);
    // "name*0*" keeps its stars: they carry RFC 2231 meaning.
    let n = name.text;
    i = name.next;
    while (s[i] === '*') {
      n += '*';
      i++;
    }
    i = skipCfws(s, i);
    if (n === '' || s[i] !== '=') continue;
    i = skipCfws(s, i + 1);
    let v: string;
    if (s[i] === '"') {
      const q = readQuoted(s, i);
      v = q.text;
      i = q.next;
    } else {
      // Senders write `name=my file.pdf`: an unquoted value runs to the next ";".
      const end = s.indexOf(';', i);
      v = s
        .slice(i, end < 0 ? s.length : end)
        .replace(/\([^()]*\)/g, '')
        .trim();
      i = end < 0 ? s.length : end;
    }
    raw.push({ name: n.toLowerCase(), value: v });
  }
  return { value, raw };
}

function percentDecode(s: string): number[] {
  const out: number[] = [];
  const bytes = new TextEncoder().encode(s);
  for (let i = 0; i < bytes.length; i++) {
    const pair = String.fromCharCode(bytes[i + 1] ?? 0, bytes[i + 2] ?? 0);
    if (bytes[i] === 0x25 && /^[0-9A-Fa-f]{2}$/.test(pair)) {
      out.push(parseInt(pair, 16));
      i += 2;
    } else out.push(bytes[i]!);
  }
  return out;
}

/** RFC 2231 §3-4: sections of one parameter joined, extended ones decoded from their charset. */
function mergeParams(raw: readonly RawParam[]): MimeParam[] {
  interface Group {
    plain: string | null;
    sections: Map<number, { value: string; extended: boolean }>;
    single: { value: string } | null;
  }
  const groups = new Map<string, Group>();
  for (const p of raw) {
    const m = /^(.*?)\*(?:(\d{1,3})(\*)?)?$/.exec(p.name);
    const base = m ? m[1]! : p.name;
    if (base === '') continue;
    let g = groups.get(base);
    if (!g) {
      g = { plain: null, sections: new Map(), single: null };
      groups.set(base, g);
    }
    if (!m) {
      if (g.plain === null) g.plain = p.value;
    } else if (m[2] === undefined) {
      if (g.single === null) g.single = { value: p.value };
    } else {
      const n = Number(m[2]);
      if (!g.sections.has(n)) g.sections.set(n, { value: p.value, extended: m[3] === '*' });
    }
  }
  const out: MimeParam[] = [];
  for (const [name, g] of groups) {
    if (g.single !== null) {
      out.push({ name, value: decodeExtended(g.single.value) });
    } else if (g.sections.size > 0) {
      out.push({ name, value: joinSections(g.sections) });
    } else if (g.plain !== null) out.push({ name, value: g.plain });
  }
  return out;
}

/** An unsectioned `name*=charset'language'percent-encoded` value (RFC 2231 §4). */
function decodeExtended(value: string): string {
  const m = /^([^']*)'[^']*'(.*)$/s.exec(value);
  if (!m) return new TextDecoder().decode(Uint8Array.from(percentDecode(value)));
  return decoderFor(m[1]!).decode(Uint8Array.from(percentDecode(m[2]!)));
}

function joinSections(sections: Map<number, { value: string; extended: boolean }>): string {
  // Sections in number order, stopping at the first gap (RFC 2231 §3: they must be consecutive).
  let charset = 'utf-8';
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let n = 0; sections.has(n); n++) {
    const s = sections.get(n)!;
    if (!s.extended) {
      bytes.push(...enc.encode(s.value));
      continue;
    }
    let v = s.value;
    if (n === 0) {
      const m = /^([^']*)'[^']*'(.*)$/s.exec(v);
      if (m) {
        charset = m[1]! || 'utf-8';
        v = m[2]!;
      }
    }
    bytes.push(...percentDecode(v));
  }
  return decoderFor(charset).decode(Uint8Array.from(bytes));
}

const MEDIA_TYPE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\s*\/\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/** A Content-Type value; `value` is "type/subtype" without spaces, or "" when it cannot be read. */
export function parseContentType(s: string): ParsedValue {
  const { value, raw } = split(s, MEDIA_TYPE);
  return { value: value.replace(/\s+/g, ''), params: mergeParams(raw) };
}

/** A Content-Disposition value (RFC 2183): its type token and parameters. */
export function parseDisposition(s: string): ParsedValue {
  const { value, raw } = split(s, TOKEN);
  return { value, params: mergeParams(raw) };
}

/** Strip comments and fold white space: Content-Transfer-Encoding, Content-Language and the like. */
export function stripComments(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const j = skipCfws(s, i);
    if (j > i) {
      out += ' ';
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out.replace(/\s+/g, ' ').trim();
}
