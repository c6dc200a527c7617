// SpamAssassin's spamd protocol (SPAMC/1.5, spamd/PROTOCOL in the SpamAssassin sources): the request
// head a client sends before the message (`SYMBOLS SPAMC/1.5`, `Content-length`, `User`), and the
// reply spamd sends back (`SPAMD/1.1 0 EX_OK`, `Spam: True ; 15.2 / 5.0`, a body as long as its
// `Content-length`), read from the bytes received so far. A non-zero status is one of sysexits.h's
// EX_ codes and means spamd did not judge the message.
// PURE and total: bytes in, a parse out; never throws, no I/O, no timers.
// Deliberately NOT here: the socket (policy/filters/spamassassin.ts), what a score means for the message
// (the filter's verdict), the TELL/PING/SKIP commands and spamd's compressed or SSL variants.

export type SpamdCommand = 'CHECK' | 'SYMBOLS' | 'REPORT' | 'REPORT_IFSPAM' | 'HEADERS' | 'PROCESS';

/** sysexits.h, as spamd names its statuses. */
const EX_NAMES: Readonly<Record<number, string>> = {
  0: 'EX_OK',
  64: 'EX_USAGE',
  65: 'EX_DATAERR',
  66: 'EX_NOINPUT',
  67: 'EX_NOUSER',
  68: 'EX_NOHOST',
  69: 'EX_UNAVAILABLE',
  70: 'EX_SOFTWARE',
  71: 'EX_OSERR',
  72: 'EX_OSFILE',
  73: 'EX_CANTCREAT',
  74: 'EX_IOERR',
  75: 'EX_TEMPFAIL',
  76: 'EX_PROTOCOL',
  77: 'EX_NOPERM',
  78: 'EX_CONFIG',
};

/** The request head; the message's `contentLength` octets follow it. Null when `user` cannot be sent. */
export function formatSpamdRequest(req: {
  readonly command: SpamdCommand;
  readonly contentLength: number;
  readonly user: string | null;
}): Uint8Array | null {
  if (!Number.isSafeInteger(req.contentLength) || req.contentLength < 0) return null;
  // A user name ends at the line's end: one with a line break (or any control) would forge headers.
  if (req.user !== null && (req.user === '' || /[\x00-\x1f\x7f]/.test(req.user))) return null;
  const lines = [`${req.command} SPAMC/1.5`, `Content-length: ${req.contentLength}`];
  if (req.user !== null) lines.push(`User: ${req.user}`);
  return new TextEncoder().encode(`${lines.join('\r\n')}\r\n\r\n`);
}

export interface SpamdReply {
  /** spamd's own verdict: the score reached its `required_score`. */
  readonly isSpam: boolean;
  readonly score: number;
  /** spamd's `required_score` for this user. */
  readonly threshold: number;
  /** The reply's header fields, names lower-cased. */
  readonly headers: ReadonlyMap<string, string>;
  /** SYMBOLS: the rule names; REPORT: the report; HEADERS/PROCESS: the message. Empty for CHECK. */
  readonly body: Uint8Array;
}

export type SpamdParse =
  /** Not all of the reply yet. */
  | { readonly kind: 'more' }
  | { readonly kind: 'reply'; readonly reply: SpamdReply }
  /** A reply spamd should not send, or a status that says it did not judge the message. */
  | { readonly kind: 'error'; readonly reason: string; readonly status?: number };

/** Status line and header fields together: spamd's are a few dozen octets. */
const MAX_HEAD_BYTES = 8192;

const LF = 0x0a;
const latin1 = new TextDecoder('latin1');

/**
 * The reply in `bytes` (all received so far); `ended` once the connection has closed, so that a reply
 * cut short is an error rather than `more`. Never `more` when `ended`. A reply longer than `maxBytes`
 * is an error.
 */
export function parseSpamdReply(bytes: Uint8Array, ended: boolean, maxBytes = 1 << 20): SpamdParse {
  const more = (what: string): SpamdParse =>
    ended ? { kind: 'error', reason: `connection closed within the ${what}` } : { kind: 'more' };

  const statusEnd = bytes.indexOf(LF);
  if (statusEnd < 0) {
    if (bytes.length > MAX_HEAD_BYTES) return { kind: 'error', reason: 'status line too long' };
    return more('status line');
  }
  const status = latin1.decode(bytes.subarray(0, statusEnd)).replace(/\r$/, '');
  const m = /^SPAMD\/(\d+)\.(\d+) +(\d{1,3}) *(.*)$/.exec(status);
  if (m === null) return { kind: 'error', reason: `not a spamd status line: ${printable(status)}` };
  const code = Number(m[3]);
  if (code !== 0) {
    // spamd sends a failure's status line alone and closes: no need to wait for more.
    const name = EX_NAMES[code] ?? 'unknown status';
    return { kind: 'error', reason: `spamd ${name} (${code}): ${printable(m[4]!)}`, status: code };
  }

  const headers = new Map<string, string>();
  let pos = statusEnd + 1;
  for (;;) {
    const nl = bytes.indexOf(LF, pos);
    if (nl < 0) {
      if (bytes.length > MAX_HEAD_BYTES) return { kind: 'error', reason: 'reply header block too long' };
      return more('header block');
    }
    if (nl > MAX_HEAD_BYTES) return { kind: 'error', reason: 'reply header block too long' };
    const line = latin1.decode(bytes.subarray(pos, nl)).replace(/\r$/, '');
    pos = nl + 1;
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0) return { kind: 'error', reason: `bad reply header line: ${printable(line)}` };
    const name = line.slice(0, colon).trim().toLowerCase();
    if (headers.has(name)) return { kind: 'error', reason: `repeated reply header: ${name}` };
    headers.set(name, line.slice(colon + 1).trim());
  }

  const spamField = headers.get('spam');
  if (spamField === undefined) return { kind: 'error', reason: 'no Spam header in the reply' };
  const spam = parseSpamField(spamField);
  if (spam === null) return { kind: 'error', reason: `bad Spam header: ${printable(spamField)}` };

  const lengthField = headers.get('content-length');
  let body: Uint8Array;
  if (lengthField !== undefined) {
    if (!/^\d{1,15}$/.test(lengthField))
      return { kind: 'error', reason: `bad Content-length: ${printable(lengthField)}` };
    const length = Number(lengthField);
    if (pos + length > maxBytes) return { kind: 'error', reason: `reply longer than ${maxBytes} octets` };
    // What follows the body is not read: spamd closes after it, and the reply is complete without it.
    if (bytes.length < pos + length) return more('body');
    body = bytes.subarray(pos, pos + length);
  } else {
    // CHECK's reply has no body; others without a length run to the end of the connection.
    if (bytes.length > maxBytes) return { kind: 'error', reason: `reply longer than ${maxBytes} octets` };
    if (!ended) return { kind: 'more' };
    body = bytes.subarray(pos);
  }
  return { kind: 'reply', reply: { ...spam, headers, body } };
}

/** `True ; 15.2 / 5.0` (spamd 1.1+) or `Yes ; …` (older). Null when it is neither. */
export function parseSpamField(
  value: string,
): { readonly isSpam: boolean; readonly score: number; readonly threshold: number } | null {
  const m = /^(true|false|yes|no) *; *(-?\d{1,9}(?:\.\d{1,9})?) *\/ *(-?\d{1,9}(?:\.\d{1,9})?)$/i.exec(value);
  if (m === null) return null;
  const flag = m[1]!.toLowerCase();
  return { isSpam: flag === 'true' || flag === 'yes', score: Number(m[2]), threshold: Number(m[3]) };
}

/**
 * SYMBOLS' body: the names of the rules that hit, comma-separated. Names that are not rule names
 * (SpamAssassin's are Perl words, at most a few dozen characters) are dropped: they end up in a header.
 */
export function parseSymbols(body: Uint8Array): string[] {
  return latin1
    .decode(body)
    .split(/[,\s]+/)
    .filter((s) => /^\w{1,128}$/.test(s));
}

/** A text from the peer fit for a log line: no controls, bounded. */
function printable(s: string): string {
  const clean = s.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}
