// Domain names between their presentation form ("mail.example.com") and their labels (RFC 1035 §2.3.4,
// §3.1, §5.1). Labels are octets: any byte may appear in a label on the wire, so the text form escapes
// '.', '\' and every byte outside 0x21–0x7E as \DDD, which makes label → text → label lossless and gives
// each name one canonical spelling. The root is "" (Node's convention too: a null MX exchange is "").
// Pure and total: parse failures are results, never exceptions.
// Deliberately NOT here: IDNA (names reaching the codec are A-labels already; net/ converts U-labels),
// host-name syntax (LDH) checks, which belong to the callers that need them.

/** RFC 1035 §2.3.4. */
export const MAX_LABEL_OCTETS = 63;
/** RFC 1035 §2.3.4: the wire form, length octets and the root's zero included. */
export const MAX_NAME_OCTETS = 255;

export type ParsedName = { ok: true; labels: Uint8Array[] } | { ok: false; error: string };

/** Wire length of a name made of these labels: one length octet per label, plus the root's zero. */
export function nameWireLength(labels: readonly Uint8Array[]): number {
  let n = 1;
  for (const label of labels) n += 1 + label.length;
  return n;
}

/**
 * Presentation text → labels. A trailing dot is optional ("example.com." = "example.com"), "" and "." are
 * the root. Escapes: \DDD (decimal, ≤ 255) and \X for any other character. Characters above U+007F are
 * refused: a U-label must be converted to its A-label before it gets here.
 */
export function parseName(text: string): ParsedName {
  if (text === '' || text === '.') return { ok: true, labels: [] };
  const labels: Uint8Array[] = [];
  let current: number[] = [];
  let i = 0;
  const endLabel = (): string | null => {
    if (current.length === 0) return 'empty label';
    if (current.length > MAX_LABEL_OCTETS) return 'label longer than 63 octets';
    labels.push(Uint8Array.from(current));
    current = [];
    return null;
  };
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return { ok: false, error: 'non-ASCII character (not an A-label)' };
    if (c === 0x2e /* . */) {
      const err = endLabel();
      if (err !== null) return { ok: false, error: err };
      i++;
      // A dot at the very end is the (optional) root; nothing may follow it.
      if (i === text.length) break;
      continue;
    }
    if (c === 0x5c /* \ */) {
      const d = text.slice(i + 1, i + 4);
      if (/^[0-9]{3}$/.test(d)) {
        const v = Number(d);
        if (v > 255) return { ok: false, error: 'escape \\DDD above 255' };
        current.push(v);
        i += 4;
        continue;
      }
      const next = text.charCodeAt(i + 1);
      if (Number.isNaN(next)) return { ok: false, error: 'dangling backslash' };
      if (next > 0x7f) return { ok: false, error: 'non-ASCII character (not an A-label)' };
      if (next >= 0x30 && next <= 0x39) return { ok: false, error: 'escape \\D needs three digits' };
      current.push(next);
      i += 2;
      continue;
    }
    current.push(c);
    i++;
  }
  if (current.length > 0 || text.charCodeAt(text.length - 1) !== 0x2e) {
    const err = endLabel();
    if (err !== null) return { ok: false, error: err };
  }
  if (nameWireLength(labels) > MAX_NAME_OCTETS) return { ok: false, error: 'name longer than 255 octets' };
  return { ok: true, labels };
}

function formatLabel(label: Uint8Array): string {
  let out = '';
  for (const b of label) {
    if (b === 0x2e || b === 0x5c) out += '\\' + String.fromCharCode(b);
    else if (b > 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += '\\' + String(b).padStart(3, '0');
  }
  return out;
}

/** Labels → canonical presentation text, without a trailing dot; the root is "". */
export function formatName(labels: readonly Uint8Array[]): string {
  return labels.map(formatLabel).join('.');
}

/** DNS names compare case-insensitively in ASCII only (RFC 4343 §3). */
export function lowerLabel(label: Uint8Array): Uint8Array {
  const out = new Uint8Array(label.length);
  for (let i = 0; i < label.length; i++) {
    const b = label[i]!;
    out[i] = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
  }
  return out;
}

/** The one canonical spelling of a name (ASCII lower case, escapes normalised, no trailing dot); null if invalid. */
export function canonicalName(text: string): string | null {
  const parsed = parseName(text);
  return parsed.ok ? formatName(parsed.labels.map(lowerLabel)) : null;
}

/** Case-insensitive name equality (RFC 4343); an invalid name equals nothing. */
export function namesEqual(a: string, b: string): boolean {
  const ca = canonicalName(a);
  return ca !== null && ca === canonicalName(b);
}
