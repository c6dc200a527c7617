// Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3, kept by RFC 9051 §5.1 for IMAP4rev1
// clients) and plain UTF-8 once a client is IMAP4rev2 or has enabled UTF8=ACCEPT (RFC 6855 §3). Both
// directions, total: encoding always succeeds, decoding returns null for what no client may send
// (malformed base64, a non-shortest or adjacent encoded run, an encoded printable character, raw
// non-ASCII in modified UTF-7, control characters in UTF-8 names).
// Deliberately NOT here: hierarchy separators, INBOX's case, which names the store accepts.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,';

/** Any string → modified UTF-7: printable ASCII stays, "&" is "&-", the rest is UTF-16 base64 runs. */
export function encodeModifiedUtf7(name: string): string {
  let out = '';
  let run: number[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    let bits = 0;
    let acc = 0;
    out += '&';
    for (const unit of run) {
      acc = (acc << 16) | unit;
      bits += 16;
      while (bits >= 6) {
        bits -= 6;
        out += B64[(acc >> bits) & 0x3f];
      }
      acc &= (1 << bits) - 1;
    }
    if (bits > 0) out += B64[(acc << (6 - bits)) & 0x3f];
    out += '-';
    run = [];
  };
  for (let i = 0; i < name.length; i++) {
    const unit = name.charCodeAt(i);
    if (unit >= 0x20 && unit <= 0x7e) {
      flush();
      out += unit === 0x26 ? '&-' : name[i];
    } else run.push(unit);
  }
  flush();
  return out;
}

/** Modified UTF-7 → the name, or null when it is not valid modified UTF-7. */
export function decodeModifiedUtf7(wire: string): string | null {
  let out = '';
  let lastEncodedEnd = -2;
  for (let i = 0; i < wire.length; i++) {
    const c = wire.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return null;
    if (c !== 0x26) {
      out += wire[i];
      continue;
    }
    const end = wire.indexOf('-', i + 1);
    if (end < 0) return null;
    if (end === i + 1) {
      out += '&';
      i = end;
      continue;
    }
    // RFC 3501: encoded runs are never adjacent (they would be one run).
    if (lastEncodedEnd === i - 1) return null;
    let acc = 0;
    let bits = 0;
    const units: number[] = [];
    for (let k = i + 1; k < end; k++) {
      const v = B64.indexOf(wire[k]!);
      if (v < 0) return null;
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 16) {
        bits -= 16;
        units.push((acc >> bits) & 0xffff);
        acc &= (1 << bits) - 1;
      }
    }
    // Leftover bits must be zero padding of fewer than 6 bits... of the last base64 character.
    if (bits >= 6 || acc !== 0 || units.length === 0) return null;
    for (const u of units) if (u >= 0x20 && u <= 0x7e) return null; // must have been written directly
    const text = String.fromCharCode(...units);
    if (!text.isWellFormed()) return null;
    out += text;
    lastEncodedEnd = end;
    i = end;
  }
  return out;
}

/** A name as this client must see it: UTF-8 when `utf8` (IMAP4rev2, UTF8=ACCEPT), else modified UTF-7. */
export function encodeMailboxName(name: string, utf8: boolean): string {
  return utf8 ? name : encodeModifiedUtf7(name);
}

/** A name as the client wrote it → the name, or null when it is malformed for the client's mode. */
export function decodeMailboxName(wire: string, utf8: boolean): string | null {
  if (!utf8) return decodeModifiedUtf7(wire);

  return /[\x00-\x1f\x7f]/.test(wire) || !wire.isWellFormed() ? null : wire;
}
