// The i;unicode-casemap collation (RFC 5051) that IMAP SEARCH, SORT and THREAD compare strings with:
// each character is mapped to its simple titlecase and the result fully decomposed for compatibility
// (NFKD, RFC 5051 §2), so "Jürgen", "JÜRGEN" and "jürgen" are equal and "ﬁ" equals "fi". Substring
// matching ("contains", RFC 5051 §2 "substring") and ordering (code point order of the keys) both work on
// the key.
// XXX: JavaScript has no simple titlecase mapping. The upper case of a single character, kept only when
// it is a single character too, is the simple titlecase for every character outside the few digraphs
// (ǅ, ǈ, ǋ, ǲ), and those decompose under NFKD before mapping. So ß stays ß (its upper case is "SS"),
// ß and ẞ differ, σ, ς and Σ are equal, and keys sort the way the RFC's do (letters before "_").
// PURE and total. Deliberately not here: the i;ascii-casemap or i;octet collations (COMPARATOR,
// RFC 5255, is not offered), and diacritic-insensitive matching ("jurgen" does not match "Jürgen").

/**
 * Runs of characters whose upper case is one character: every BMP character but the hundred or so
 * whose upper case grows (ß → SS, ŉ → ʼN, ﬁ → FI...), which keep their own form (see XXX above).
 */
let singleUpperRun: RegExp | null = null;

/** Built on first use, not at start-up: a scan of the BMP costs milliseconds nobody needs for ASCII. */
function singleUpperRuns(): RegExp {
  if (singleUpperRun !== null) return singleUpperRun;
  let cls = '';
  for (let c = 0; c < 0x10000; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    if (String.fromCharCode(c).toUpperCase().length > 1) cls += `\\u${c.toString(16).padStart(4, '0')}`;
  }
  singleUpperRun = new RegExp(`[^${cls}]+`, 'gu');
  return singleUpperRun;
}

/** The comparison key of `s` under i;unicode-casemap. */
export function casemapKey(s: string): string {
  // ASCII only: upper-casing is the whole mapping, and it is by far the common case.
  if (/^[\x00-\x7f]*$/.test(s)) return s.toUpperCase();
  const nfkd = s.normalize('NFKD');
  const upper = nfkd.toUpperCase();
  // No character grew: every one mapped to its single-character upper case.
  if (upper.length === nfkd.length) return upper === nfkd ? upper : upper.normalize('NFKD');
  // Some did: upper-case the runs between them natively, keep those as they are.
  const out = nfkd.replace(singleUpperRuns(), (run) => run.toUpperCase());
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
