// DKIM tag=value lists (RFC 6376 §3.2): the syntax of the DKIM-Signature header field value and of the
// key records published in DNS (§3.6.1). Values are returned with surrounding folding whitespace removed
// and inner whitespace kept; callers that need a whitespace-free value (b=, bh=, p=) strip it themselves.
// PURE and total: a malformed list is a result, never an exception.
// Deliberately lenient in one place: empty segments (";;", a trailing ";") are skipped, as deployed
// verifiers do. Duplicate tags are an error (§3.2: "MUST be interpreted as a permanent failure").
// Input strings are byte strings (latin1: one char per octet), so 8-bit values survive untouched.

export type ParsedTagList =
  | { readonly ok: true; readonly tags: ReadonlyMap<string, string>; readonly order: readonly string[] }
  | { readonly ok: false; readonly reason: string };

const FWS_EDGES = /^[ \t\r\n]+|[ \t\r\n]+$/g;
const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
// VALCHAR is %x21-3A / %x3C-7E; whitespace (FWS) may separate tvals; 8-bit octets are accepted for the
// UTF-8 domains and local parts of RFC 8616.
const TAG_VALUE = /^[\x21-\x3a\x3c-\x7e\x80-\xff \t\r\n]*$/;

export function trimFws(s: string): string {
  return s.replace(FWS_EDGES, '');
}

/** Remove every whitespace character (FWS inside base64 values: b=, bh=, p=). */
export function stripWhitespace(s: string): string {
  return s.replace(/[ \t\r\n]+/g, '');
}

export function parseTagList(text: string): ParsedTagList {
  const tags = new Map<string, string>();
  const order: string[] = [];
  for (const segment of text.split(';')) {
    if (trimFws(segment) === '') continue;
    const eq = segment.indexOf('=');
    if (eq < 0) return { ok: false, reason: `tag without "=": "${printable(trimFws(segment))}"` };
    const name = trimFws(segment.slice(0, eq));
    if (!TAG_NAME.test(name)) return { ok: false, reason: `bad tag name "${printable(name)}"` };
    const value = trimFws(segment.slice(eq + 1));
    if (!TAG_VALUE.test(value)) return { ok: false, reason: `bad characters in the value of ${name}=` };
    if (tags.has(name)) return { ok: false, reason: `duplicate tag ${name}=` };
    tags.set(name, value);
    order.push(name);
  }
  return { ok: true, tags, order };
}

/** A short, log-safe rendering of attacker-supplied text. */
export function printable(s: string, max = 40): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
