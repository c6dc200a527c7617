// LIST and LSUB name matching (RFC 9051 §6.3.9): the reference name and the pattern are joined (the
// reference's trailing separator is not doubled), `*` matches anything including the separator, `%`
// anything but it. INBOX matches without case at the first level, as the store names it. With
// LIST-EXTENDED's RECURSIVEMATCH (RFC 5258 §3), a parent whose child matched is listed with CHILDINFO.
// Pure. Deliberately NOT here: attributes, which folders exist (the store), encoding names.

/** The pattern a reference and a mailbox argument stand for; "" names the separator query. */
export function joinReference(reference: string, pattern: string, separator: string): string {
  if (reference === '' || pattern.startsWith(separator)) return pattern;
  return reference.endsWith(separator) ? reference + pattern : reference + separator + pattern;
}

/** A compiled pattern: test(name) says whether the name matches. */
export function compilePattern(pattern: string, separator: string): RegExp {
  let src = '';
  let i = 0;
  // INBOX's case does not matter at the first level (RFC 9051 §5.1).
  if (/^inbox(?=$|[/*%])/i.test(pattern) && separator === '/') {
    src = 'INBOX';
    i = 5;
  }
  const sep = escapeRegExp(separator);
  for (; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') src += '.*';
    else if (c === '%') src += `(?:(?!${sep}).)*`;
    else src += escapeRegExp(c);
  }
  return new RegExp(`^${src}$`, 'su');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Whether a name is matched by any of the patterns. */
export function matchesAny(name: string, patterns: readonly RegExp[]): boolean {
  return patterns.some((p) => p.test(name));
}
