// ManageSieve output on the wire (RFC 5804 §1.2-§1.4, §4): a response is zero or more data lines (strings
// and atoms separated by SP) followed by one status line, `OK` / `NO` / `BYE`, an optional response code in
// parentheses and an optional human-readable string. Strings go out quoted when they are short and plain,
// otherwise as a literal `{n}` CRLF and n octets (literal-s2c: no "+", the server never waits).
// Pure. Deliberately NOT here: which response a command gets (replies.ts, session.ts), reading client
// strings (reader.ts, parse.ts).

/** RFC 5804 §1.2: the three status words. */
export type SieveStatus = 'OK' | 'NO' | 'BYE';

/** RFC 5804 §1.3 response codes (the ones a server sends; REFERRAL is not used by Tern). */
export type SieveResponseCode =
  | 'AUTH-TOO-WEAK'
  | 'ENCRYPT-NEEDED'
  | 'QUOTA'
  | 'QUOTA/MAXSCRIPTS'
  | 'QUOTA/MAXSIZE'
  | 'SASL'
  | 'TRANSITION-NEEDED'
  | 'TRYLATER'
  | 'ACTIVE'
  | 'NONEXISTENT'
  | 'ALREADYEXISTS'
  | 'TAG'
  | 'WARNINGS';

export interface SieveResponse {
  readonly status: SieveStatus;
  readonly code: SieveResponseCode | null;
  /** The code's string argument: the TAG echo of NOOP, the base64 data of SASL. */
  readonly codeArg?: string;
  /** The human-readable string; '' sends none. */
  readonly text: string;
}

/** One item of a data line before the status: a string (quoted or literal as fits), a forced literal, an atom. */
export type DataItem =
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'atom'; readonly value: string };

export type DataLine = readonly DataItem[];

/** Strings longer than this (UTF-8 octets) go out as literals, whatever they contain. */
export const MAX_QUOTED_BYTES = 1024;

const encoder = new TextEncoder();

/** Octets of a string in UTF-8. */
export function utf8Length(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/** A literal-s2c: `{n}` CRLF and the n octets of the UTF-8 text. */
export function formatLiteral(value: string): string {
  return `{${utf8Length(value)}}\r\n${value}`;
}

/**
 * A string as RFC 5804 §4 allows it: quoted when it holds no CR, LF, NUL, `"` or `\` and is short,
 * otherwise a literal. (Quoted strings could escape `"` and `\`; a literal is simpler for every client.)
 */
export function formatString(value: string): string {
  if (/[\r\n\0"\\]/.test(value) || utf8Length(value) > MAX_QUOTED_BYTES) return formatLiteral(value);
  return `"${value}"`;
}

function formatItem(item: DataItem): string {
  switch (item.kind) {
    case 'string':
      return formatString(item.value);
    case 'literal':
      return formatLiteral(item.value);
    case 'atom':
      return item.value;
    default:
      return item satisfies never;
  }
}

/** The status line without its final CRLF (it may contain a literal's CRLF). */
export function formatStatusLine(response: SieveResponse): string {
  let line: string = response.status;
  if (response.code !== null) {
    const arg = response.codeArg === undefined ? '' : ` ${formatString(response.codeArg)}`;
    line += ` (${response.code}${arg})`;
  }
  if (response.text !== '') line += ` ${formatString(response.text)}`;
  return line;
}

/** A response as text: its data lines, then the status line, each ending in CRLF. */
export function formatResponseText(response: SieveResponse, lines?: readonly DataLine[]): string {
  let text = '';
  for (const line of lines ?? []) text += `${line.map(formatItem).join(' ')}\r\n`;
  return `${text}${formatStatusLine(response)}\r\n`;
}

/** Wire bytes of a response (data lines first, then the status). */
export function formatReply(response: SieveResponse, lines?: readonly DataLine[]): Uint8Array {
  return encoder.encode(formatResponseText(response, lines));
}

/** A SASL server challenge (RFC 5804 §2.1): the base64 text as a string on its own line. */
export function formatChallenge(challenge: string): Uint8Array {
  return encoder.encode(`${formatString(challenge)}\r\n`);
}
