// IMAP flag lists for the imap4flags extension (RFC 5232 §3): a flag list is a set of space-separated
// flags; setflag replaces, addflag adds what is not there yet, removeflag takes away, all comparing
// flags without regard to case (IMAP flags are case-insensitive, RFC 9051 §2.3.2). Flags that cannot be
// IMAP flags (atom-specials, or "\" anywhere but first) are dropped, as Pigeonhole drops them.
// PURE.

/** An IMAP flag or keyword: "\" + atom for system flags, else an atom (RFC 9051 §9 flag-keyword). */
function isFlag(flag: string): boolean {
  return /^\\?[^\x00-\x20\x7f(){%*"\\\]]+$/.test(flag);
}

/** The flags of some strings, each split at white space; invalid ones and duplicates dropped. */
export function parseFlags(strings: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const s of strings) {
    for (const f of s.split(/[ \t\r\n]+/)) {
      if (f === '' || !isFlag(f)) continue;
      const key = f.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(f);
    }
  }
  return out;
}

export function addFlags(current: readonly string[], more: readonly string[]): string[] {
  return parseFlags([...current, ...more]);
}

export function removeFlags(current: readonly string[], less: readonly string[]): string[] {
  const drop = new Set(parseFlags(less).map((f) => f.toLowerCase()));
  return current.filter((f) => !drop.has(f.toLowerCase()));
}

/** A variable's value for a flag list. */
export function formatFlags(flags: readonly string[]): string {
  return flags.join(' ');
}
