// The i;unicode-casemap collation (RFC 5051) that IMAP SEARCH, SORT and THREAD compare strings with:
// each character is mapped to its simple titlecase and the result fully decomposed for compatibility
// (NFKD, RFC 5051 §2), so "Jürgen", "JÜRGEN" and "jürgen" are equal and "ﬁ" equals "fi". Substring
// matching ("contains", RFC 5051 §2 "substring") and ordering (code point order of the keys) both work on
// the key.
// XXX: JavaScript has no simple titlecase mapping; upper then lower case of a single character, kept only
// when each step maps one code point to one code point, is the same as titlecase-then-fold for every
// character where it matters to matching (ß, the final sigma and the Cherokee letters stay as they are
// instead of expanding). Keys are compared, never shown.
// PURE and total. Deliberately not here: the i;ascii-casemap or i;octet collations (COMPARATOR,
// RFC 5255, is not offered), and diacritic-insensitive matching ("jurgen" does not match "Jürgen").

const cache = new Map<string, string>();

function mapChar(ch: string): string {
  let mapped = cache.get(ch);
  if (mapped === undefined) {
    const upper = ch.toUpperCase();
    const u = upper.length === ch.length || [...upper].length === 1 ? upper : ch;
    const lower = u.toLowerCase();
    mapped = [...lower].length === 1 ? lower : u;
    // The alphabet of mail is large but finite; the cap keeps a hostile message from growing it forever.
    if (cache.size < 65536) cache.set(ch, mapped);
  }
  return mapped;
}

/** The comparison key of `s` under i;unicode-casemap. */
export function casemapKey(s: string): string {
  // ASCII only: a plain lower-casing is the whole mapping, and it is by far the common case.
  if (/^[\x00-\x7f]*$/.test(s)) return s.toLowerCase();
  let out = '';
  for (const ch of s.normalize('NFKD')) out += mapChar(ch);
  // Case mapping can produce characters that decompose further (compatibility forms of capitals).
  return out.normalize('NFKD');
}

/** Does `haystack` contain `needle` under i;unicode-casemap? The empty needle is in every string. */
export function casemapContains(haystack: string, needle: string): boolean {
  return casemapKey(haystack).includes(casemapKey(needle));
}

/** Order two keys made by casemapKey: code point order, as RFC 5051 §2 asks (not UTF-16 unit order). */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate (U+D800-DFFF) stands for a code point above U+FFFF: it sorts after U+E000-FFFF.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** Order two strings under i;unicode-casemap. */
export function compareCasemap(a: string, b: string): number {
  return compareKeys(casemapKey(a), casemapKey(b));
}
