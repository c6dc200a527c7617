// RFC 2047 encoding of header text that is not ASCII, for the fields Sieve writes (addheader values,
// RFC 5293 §4, and the vacation reply's Subject, RFC 5230 §5): each run of words holding non-ASCII is
// written as "=?utf-8?q?...?=" words of at most 75 characters (§2), cut at character boundaries; ASCII
// words stay as they are. The space inside a run is encoded ("_") because decoders drop the white space
// between adjacent encoded-words (§6.2).
// PURE. Deliberately NOT here: decoding (headers.ts decodeEncodedWords).

const utf8 = new TextEncoder();
/** Octets of text per encoded-word: "=?utf-8?q?" + 3 × 20 + "?=" stays well under 75. */
const CHUNK_OCTETS = 20;

function qEncodeChar(ch: string): string {
  if (ch === ' ') return '_';
  if (/^[A-Za-z0-9!*+\-/]$/.test(ch)) return ch;
  return [...utf8.encode(ch)].map((b) => `=${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

function encodeRun(run: string): string {
  const words: string[] = [];
  let chunk = '';
  let octets = 0;
  for (const ch of run) {
    const n = utf8.encode(ch).length;
    if (octets + n > CHUNK_OCTETS && chunk !== '') {
      words.push(`=?utf-8?q?${chunk}?=`);
      chunk = '';
      octets = 0;
    }
    chunk += qEncodeChar(ch);
    octets += n;
  }
  if (chunk !== '') words.push(`=?utf-8?q?${chunk}?=`);
  return words.join(' ');
}

/** `text` as an unstructured header value in ASCII. */
export function encodeHeaderText(text: string): string {
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  const tokens = text.split(' ');
  const out: string[] = [];
  let run: string[] = [];
  // "=?" in an ASCII word could be read as an encoded-word: such words join the encoded run too.
  const needs = (t: string): boolean => /[^\x00-\x7f]/.test(t) || t.includes('=?');
  for (const t of tokens) {
    if (needs(t)) run.push(t);
    else {
      if (run.length > 0) out.push(encodeRun(run.join(' ')));
      run = [];
      out.push(t);
    }
  }
  if (run.length > 0) out.push(encodeRun(run.join(' ')));
  return out.join(' ');
}
