// SPF macros (RFC 7208 §7): parsing a macro-string, a domain-spec or an explanation string into parts,
// and expanding the parts with the letters' values (transformers, delimiters, reversal, URL escaping of
// upper-case letters). Pure and total: parse functions return a result, never throw.
// Deliberately NOT here: where the values come from (the "p" letter needs DNS; spf.ts computes it) and
// what happens to an expanded name (trailing dot, truncation to 253 octets: spf.ts, §7.3).

export type MacroLetter = 's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'c' | 'r' | 't' | 'v';

export type MacroPart =
  /** Literal characters, and the escapes "%%", "%_" and "%-" already replaced by what they stand for. */
  | { readonly kind: 'text'; readonly text: string; readonly escape: boolean }
  | {
      readonly kind: 'macro';
      readonly letter: MacroLetter;
      /** Written in upper case: the expansion is URL-escaped (§7.3). */
      readonly urlEscape: boolean;
      /** How many right-hand parts to keep; null keeps all. Never 0 (§7.3: "MUST be nonzero"). */
      readonly keep: number | null;
      readonly reverse: boolean;
      /** Characters to split on; "." when none were written. */
      readonly delimiters: string;
    };

export type MacroString = readonly MacroPart[];

export type MacroParse = { ok: true; value: MacroString } | { ok: false; error: string };

/**
 * Where a macro-string appears decides what it may contain:
 * - `domain`: a domain-spec (mechanisms, redirect=, exp=): no "c", "r", "t" (§7.1), no spaces;
 * - `modifier`: the value of an unknown modifier: any letter (it is never expanded), no spaces;
 * - `explanation`: the TXT record an exp= points at: any letter, and spaces (explain-string, §6.2).
 */
export type MacroContext = 'domain' | 'modifier' | 'explanation';

const LETTERS = 'slodiphcrtv';
const DOMAIN_LETTERS = 'slodiphv';
const DELIMITERS = '.-+,/_=';

function isMacroLiteral(code: number, allowSpace: boolean): boolean {
  // macro-literal = %x21-24 / %x26-7E (visible characters except "%"); explain-string adds SP.
  return (code >= 0x21 && code <= 0x7e && code !== 0x25) || (allowSpace && code === 0x20);
}

export function parseMacroString(s: string, where: MacroContext): MacroParse {
  const parts: MacroPart[] = [];
  let literal = '';
  const flush = (): void => {
    if (literal !== '') parts.push({ kind: 'text', text: literal, escape: false });
    literal = '';
  };
  let i = 0;
  while (i < s.length) {
    const ch = s[i]!;
    if (ch !== '%') {
      if (!isMacroLiteral(ch.charCodeAt(0), where === 'explanation')) {
        return { ok: false, error: `character ${JSON.stringify(ch)} is not allowed at offset ${i}` };
      }
      literal += ch;
      i++;
      continue;
    }
    const next = s[i + 1];
    const escape = next === '%' ? '%' : next === '_' ? ' ' : next === '-' ? '%20' : null;
    if (escape !== null) {
      flush();
      parts.push({ kind: 'text', text: escape, escape: true });
      i += 2;
      continue;
    }
    if (next !== '{')
      return { ok: false, error: `"%" must be followed by "{", "%", "_" or "-" (offset ${i})` };
    const close = s.indexOf('}', i + 2);
    if (close < 0) return { ok: false, error: `unterminated macro at offset ${i}` };
    const macro = parseMacroExpand(s.slice(i + 2, close), where);
    if (!macro.ok) return macro;
    flush();
    parts.push(macro.value);
    i = close + 1;
  }
  flush();
  return { ok: true, value: parts };
}

// Inside "%{...}": macro-letter transformers *delimiter, transformers = *DIGIT [ "r" ].
function parseMacroExpand(
  body: string,
  where: MacroContext,
): { ok: true; value: MacroPart } | { ok: false; error: string } {
  const m = /^([A-Za-z])([0-9]*)([rR]?)(.*)$/s.exec(body);
  const bad = { ok: false, error: `invalid macro "%{${body}}"` } as const;
  if (m === null) return bad;
  const [, rawLetter, digits, reverse, delimiters] = m as unknown as [string, string, string, string, string];
  const letter = rawLetter.toLowerCase();
  if (!LETTERS.includes(letter)) return { ok: false, error: `unknown macro letter in "%{${body}}"` };
  if (where === 'domain' && !DOMAIN_LETTERS.includes(letter)) {
    return { ok: false, error: `macro "%{${body}}" is only allowed in explanation text` };
  }
  if ([...delimiters].some((d) => !DELIMITERS.includes(d))) return bad;
  const keep = digits === '' ? null : Number(digits);
  if (keep === 0) return { ok: false, error: `macro "%{${body}}" keeps zero parts` };
  return {
    ok: true,
    value: {
      kind: 'macro',
      letter: letter as MacroLetter,
      urlEscape: rawLetter !== letter,
      keep,
      reverse: reverse !== '',
      delimiters: delimiters === '' ? '.' : delimiters,
    },
  };
}

// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ), matched
// greedily over the whole last label: "xn--zckzah" is one toplabel, "123" and "-com" are none.
const DOMAIN_END = /\.(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9])\.?$/;

/**
 * domain-spec = macro-string domain-end, domain-end = ( "." toplabel [ "." ] ) / macro-expand (§7.1).
 * Checked before expansion, as the grammar says: "a:%{h}" is valid whatever the HELO name turns out to be.
 */
export function parseDomainSpec(s: string): MacroParse {
  if (s === '') return { ok: false, error: 'empty domain-spec' };
  const parsed = parseMacroString(s, 'domain');
  if (!parsed.ok) return parsed;
  const last = parsed.value[parsed.value.length - 1]!;
  if (last.kind === 'text' && !last.escape && !DOMAIN_END.test(last.text)) {
    return { ok: false, error: `"${s}" does not end in a macro or a valid top-level label` };
  }
  return parsed;
}

export function usesLetter(ms: MacroString, letter: MacroLetter): boolean {
  return ms.some((p) => p.kind === 'macro' && p.letter === letter);
}

export type MacroValues = Readonly<Record<MacroLetter, string>>;

export function expandMacroString(ms: MacroString, values: MacroValues): string {
  let out = '';
  for (const part of ms) {
    if (part.kind === 'text') {
      out += part.text;
      continue;
    }
    const value = values[part.letter];
    let pieces = value.split(new RegExp(`[${part.delimiters.replace(/[-\\\]^]/g, '\\$&')}]`));
    if (part.reverse) pieces = pieces.reverse();
    if (part.keep !== null && part.keep < pieces.length) pieces = pieces.slice(pieces.length - part.keep);
    const joined = pieces.join('.');
    out += part.urlEscape ? urlEscape(joined) : joined;
  }
  return out;
}

// §7.3: upper-case macros are URL-escaped: every octet outside unreserved (RFC 3986) becomes %XX.
function urlEscape(s: string): string {
  let out = '';
  for (const byte of new TextEncoder().encode(s)) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
