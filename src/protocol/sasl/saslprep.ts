// SASLprep (RFC 4013, a profile of stringprep RFC 3454) for SCRAM passwords (RFC 5802 §2.2): the client
// and `tern user add` must turn the same typed password into the same bytes.
// Steps: map non-ASCII spaces (C.1.2) to SPACE and "commonly mapped to nothing" (B.1) to nothing,
// normalize NFKC, refuse the prohibited tables (C.1.2 through C.9).
// XXX: the bidirectional rule (RFC 3454 §6) and the Unicode 3.2 unassigned-code-point table (A.1) are not
// checked: JavaScript offers no Bidi_Class property, and a password with such characters still derives
// the same bytes on both sides as long as the client does not refuse it either.

// B.1: commonly mapped to nothing.
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;
// C.1.2: non-ASCII space characters (U+200B is also in B.1, which already removed it).
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu;
// C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9; C.1.2 again because NFKC cannot bring it back but a
// table check is cheap insurance.
const PROHIBITED = new RegExp(
  [
    '[\\u0000-\\u001F\\u007F]', // C.2.1 ASCII control
    '[\\u0080-\\u009F\\u06DD\\u070F\\u180E\\u200C\\u200D\\u2028\\u2029\\u2060-\\u2063\\u206A-\\u206F\\uFEFF\\uFFF9-\\uFFFC]', // C.2.2
    '[\\u{1D173}-\\u{1D17A}]', // C.2.2 musical symbols formatting
    '[\\uE000-\\uF8FF\\u{F0000}-\\u{FFFFD}\\u{100000}-\\u{10FFFD}]', // C.3 private use
    '[\\uFDD0-\\uFDEF\\uFFFE\\uFFFF]', // C.4 non-characters (BMP)
    '[\\u{1FFFE}\\u{1FFFF}\\u{2FFFE}\\u{2FFFF}\\u{3FFFE}\\u{3FFFF}\\u{4FFFE}\\u{4FFFF}\\u{5FFFE}\\u{5FFFF}]', // C.4
    '[\\u{6FFFE}\\u{6FFFF}\\u{7FFFE}\\u{7FFFF}\\u{8FFFE}\\u{8FFFF}\\u{9FFFE}\\u{9FFFF}\\u{AFFFE}\\u{AFFFF}]', // C.4
    '[\\u{BFFFE}\\u{BFFFF}\\u{CFFFE}\\u{CFFFF}\\u{DFFFE}\\u{DFFFF}\\u{EFFFE}\\u{EFFFF}\\u{FFFFE}\\u{FFFFF}]', // C.4
    '[\\u{10FFFE}\\u{10FFFF}]', // C.4
    '[\\uD800-\\uDFFF]', // C.5 surrogates (lone ones; with the u flag pairs are code points, not matched)
    '[\\uFFF9-\\uFFFD]', // C.6 inappropriate for plain text
    '[\\u2FF0-\\u2FFB]', // C.7 inappropriate for canonical representation
    '[\\u0340\\u0341\\u200E\\u200F\\u202A-\\u202E\\u206A-\\u206F]', // C.8 change display properties
    '[\\u{E0001}\\u{E0020}-\\u{E007F}]', // C.9 tagging characters
    '[\\u00A0\\u1680\\u2000-\\u200B\\u202F\\u205F\\u3000]', // C.1.2
  ].join('|'),
  'u',
);

/** The SASLprep form of `text`, or null when it holds a prohibited character. */
export function saslprep(text: string): string | null {
  const mapped = text.replace(MAPPED_TO_NOTHING, '').replace(NON_ASCII_SPACE, ' ').normalize('NFKC');
  return PROHIBITED.test(mapped) ? null : mapped;
}
