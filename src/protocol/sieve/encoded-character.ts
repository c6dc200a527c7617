// The encoded-character extension (RFC 5228 §2.4.2.4): "${hex:40 41}" and "${unicode:1F600}" in a string
// stand for the octets / code points they name; a sequence that does not fit the grammar stays as it
// is written. Decoded once, when the script is validated, in quoted and multi-line strings alike.
// Strings here are text, so hex octets must form UTF-8 (stricter than Pigeonhole, which keeps bytes).
// PURE and total.

const ENCODED = /\$\{(hex|unicode):([0-9A-Fa-f \t\r\n]*)\}/gi;
const HEX_PAIRS = /^[ \t\r\n]*[0-9A-Fa-f]{1,2}(?:[ \t\r\n]+[0-9A-Fa-f]{1,2})*[ \t\r\n]*$/;
const UNICODE_SEQ = /^[ \t\r\n]*[0-9A-Fa-f]+(?:[ \t\r\n]+[0-9A-Fa-f]+)*[ \t\r\n]*$/;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export type Decoded =
  { readonly ok: true; readonly value: string } | { readonly ok: false; readonly message: string };

export function decodeEncodedCharacters(text: string): Decoded {
  if (!text.includes('${')) return { ok: true, value: text };
  let error: string | null = null;
  const value = text.replace(ENCODED, (whole, kind: string, body: string) => {
    const items = body.trim().split(/[ \t\r\n]+/);
    if (kind.toLowerCase() === 'hex') {
      if (!HEX_PAIRS.test(body)) return whole;
      try {
        return strictUtf8.decode(Uint8Array.from(items, (h) => parseInt(h, 16)));
      } catch {
        error ??= `encoded characters ${JSON.stringify(whole)} are not valid UTF-8`;
        return whole;
      }
    }
    if (!UNICODE_SEQ.test(body)) return whole;
    let out = '';
    for (const h of items) {
      const cp = h.replace(/^0+(?=.)/, '').length > 6 ? Infinity : parseInt(h, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        error ??= `invalid unicode character 0x${h.toUpperCase()} in encoded character`;
        return whole;
      }
      out += String.fromCodePoint(cp);
    }
    return out;
  });
  return error === null ? { ok: true, value } : { ok: false, message: error };
}
