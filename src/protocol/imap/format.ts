// What an IMAP server writes, as text: strings (quoted when safe, a literal otherwise, UTF-8 aware),
// astrings, nstrings, flag lists, UID sets, mailbox names, tagged and untagged status responses with
// response codes (RFC 9051 §7.1, RFC 5530, UIDPLUS RFC 4315, CONDSTORE RFC 7162, OBJECTID RFC 8474,
// COMPRESS RFC 4978, RFC 4469, RFC 6855), continuation requests and common untagged data.
// Each result is text to encode as UTF-8; literal lengths count UTF-8 bytes. Pure and total.
// Deliberately NOT here: FETCH data (ENVELOPE, BODYSTRUCTURE, message bytes: the FETCH formatter),
// choosing what to send when, capability lists (the session's).

import { assertNever } from '../../core/assert-never.ts';
import { encodeMailboxName } from './mailbox-name.ts';
import type { ImapParseError } from './syntax.ts';

export interface WireOptions {
  /** The client reads UTF-8 in quoted strings (IMAP4rev2, or UTF8=ACCEPT enabled). */
  readonly utf8: boolean;
}

/** Longer strings go out as literals: quoted strings this long are a burden to clients' parsers. */
const MAX_QUOTED_CHARS = 1024;

function quotable(s: string, utf8: boolean): boolean {
  if (s.length > MAX_QUOTED_CHARS) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0) return false;
    if (c > 0x7e && !utf8) return false;
  }
  return true;
}

/** string: quoted when every character may be, else a synchronizing-style literal "{n}\r\n...". */
export function formatString(s: string, options: WireOptions): string {
  // XXX: NUL is no character of a string or a literal (only of literal8): it becomes U+FFFD.
  const text = s.includes('\0') ? s.replaceAll('\0', '\uFFFD') : s;
  if (quotable(text, options.utf8)) return `"${text.replace(/["\\]/g, '\\$&')}"`;
  return `{${Buffer.byteLength(text, 'utf8')}}\r\n${text}`;
}

/** ASTRING-CHAR without the UTF-8 leniency the parser has. */
const ATOM = /^[!#$&'+-[^-z|}~]+$/;

/** astring: a bare atom when it is one (and not NIL, which would read as nothing in an nstring). */
export function formatAstring(s: string, options: WireOptions): string {
  return ATOM.test(s) && s.toUpperCase() !== 'NIL' ? s : formatString(s, options);
}

export function formatNstring(s: string | null, options: WireOptions): string {
  return s === null ? 'NIL' : formatString(s, options);
}

/** A mailbox name for this client: modified UTF-7 unless it reads UTF-8, then an astring. */
export function formatMailbox(name: string, options: WireOptions): string {
  return formatAstring(encodeMailboxName(name, options.utf8), options);
}

export function formatFlagList(flags: readonly string[]): string {
  return `(${flags.join(' ')})`;
}

/** UIDs in the order given, runs of consecutive ones as ranges (COPYUID pairs them by position). */
export function formatUidSet(uids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < uids.length;) {
    let j = i;
    while (j + 1 < uids.length && uids[j + 1] === uids[j]! + 1) j++;
    parts.push(j === i ? `${uids[i]}` : `${uids[i]}:${uids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export type ResponseCode =
  | {
      readonly kind:
        | 'ALERT'
        | 'ALREADYEXISTS'
        | 'AUTHENTICATIONFAILED'
        | 'AUTHORIZATIONFAILED'
        | 'CANNOT'
        | 'CLIENTBUG'
        | 'CLOSED'
        | 'COMPRESSIONACTIVE'
        | 'CONTACTADMIN'
        | 'CORRUPTION'
        | 'EXPIRED'
        | 'EXPUNGEISSUED'
        | 'HASCHILDREN'
        | 'INUSE'
        | 'LIMIT'
        | 'NOMODSEQ'
        | 'NONEXISTENT'
        | 'NOPERM'
        | 'NOTSAVED'
        | 'OVERQUOTA'
        | 'PARSE'
        | 'PRIVACYREQUIRED'
        | 'READ-ONLY'
        | 'READ-WRITE'
        | 'SERVERBUG'
        | 'TOOBIG'
        | 'TRYCREATE'
        | 'UIDNOTSTICKY'
        | 'UNAVAILABLE'
        | 'UNKNOWN-CTE'
        | 'USEATTR';
    }
  | { readonly kind: 'UIDNEXT' | 'UIDVALIDITY' | 'UNSEEN'; readonly value: number }
  | { readonly kind: 'HIGHESTMODSEQ'; readonly value: bigint }
  | { readonly kind: 'APPENDUID'; readonly uidValidity: number; readonly uids: readonly number[] }
  | {
      readonly kind: 'COPYUID';
      readonly uidValidity: number;
      readonly from: readonly number[];
      readonly to: readonly number[];
    }
  | { readonly kind: 'MODIFIED'; readonly numbers: readonly number[] }
  | { readonly kind: 'BADCHARSET'; readonly charsets: readonly string[] }
  | { readonly kind: 'CAPABILITY'; readonly capabilities: readonly string[] }
  | { readonly kind: 'PERMANENTFLAGS'; readonly flags: readonly string[] }
  | { readonly kind: 'MAILBOXID'; readonly id: string }
  /** RFC 5465 §3.1: the events the server supports. */
  | { readonly kind: 'BADEVENT'; readonly events: readonly string[] }
  /** CATENATE (RFC 4469 §6): the URL that named nothing. */
  | { readonly kind: 'BADURL'; readonly url: string };

export function formatResponseCode(code: ResponseCode): string {
  switch (code.kind) {
    case 'UIDNEXT':
    case 'UIDVALIDITY':
    case 'UNSEEN':
      return `${code.kind} ${code.value}`;
    case 'HIGHESTMODSEQ':
      return `HIGHESTMODSEQ ${code.value}`;
    case 'APPENDUID':
      return `APPENDUID ${code.uidValidity} ${formatUidSet(code.uids)}`;
    case 'COPYUID':
      return `COPYUID ${code.uidValidity} ${formatUidSet(code.from)} ${formatUidSet(code.to)}`;
    case 'MODIFIED':
      return `MODIFIED ${formatUidSet(code.numbers)}`;
    case 'BADCHARSET':
      return code.charsets.length === 0 ? 'BADCHARSET' : `BADCHARSET (${code.charsets.join(' ')})`;
    case 'CAPABILITY':
      return `CAPABILITY ${code.capabilities.join(' ')}`;
    case 'PERMANENTFLAGS':
      return `PERMANENTFLAGS ${formatFlagList(code.flags)}`;
    case 'MAILBOXID':
      return `MAILBOXID (${code.id})`;
    case 'BADURL':
      // url-resp-text (RFC 4469 §6) is any text but "]" and line ends.
      return `BADURL ${code.url.replace(/[\]\r\n]/g, '')}`;
    case 'BADEVENT':
      return `BADEVENT (${code.events.join(' ')})`;
    case 'ALERT':
    case 'ALREADYEXISTS':
    case 'AUTHENTICATIONFAILED':
    case 'AUTHORIZATIONFAILED':
    case 'CANNOT':
    case 'CLIENTBUG':
    case 'CLOSED':
    case 'COMPRESSIONACTIVE':
    case 'CONTACTADMIN':
    case 'CORRUPTION':
    case 'EXPIRED':
    case 'EXPUNGEISSUED':
    case 'HASCHILDREN':
    case 'INUSE':
    case 'LIMIT':
    case 'NOMODSEQ':
    case 'NONEXISTENT':
    case 'NOPERM':
    case 'NOTSAVED':
    case 'OVERQUOTA':
    case 'PARSE':
    case 'PRIVACYREQUIRED':
    case 'READ-ONLY':
    case 'READ-WRITE':
    case 'SERVERBUG':
    case 'TOOBIG':
    case 'TRYCREATE':
    case 'UIDNOTSTICKY':
    case 'UNAVAILABLE':
    case 'UNKNOWN-CTE':
    case 'USEATTR':
      return code.kind;
    default:
      return assertNever(code);
  }
}

/** resp-text: one line, never empty (text = 1*TEXT-CHAR). */
function respText(code: ResponseCode | null, text: string): string {
  const clean = text.replace(/[\r\n\0]+/g, ' ').trim() || 'Done';
  return code === null ? clean : `[${formatResponseCode(code)}] ${clean}`;
}

export type Status = 'OK' | 'NO' | 'BAD';

/** "tag OK [CODE] text\r\n". */
export function formatTagged(tag: string, status: Status, code: ResponseCode | null, text: string): string {
  return `${tag} ${status} ${respText(code, text)}\r\n`;
}

/** "* OK|NO|BAD|BYE|PREAUTH [CODE] text\r\n". */
export function formatUntaggedStatus(
  status: Status | 'BYE' | 'PREAUTH',
  code: ResponseCode | null,
  text: string,
): string {
  return `* ${status} ${respText(code, text)}\r\n`;
}

/** A parse error as the BAD it is answered with: tagged when the tag was readable. */
export function formatParseError(tag: string | null, error: ImapParseError): string {
  const code: ResponseCode | null = error.kind === 'too-big' ? { kind: 'TOOBIG' } : null;
  return tag === null
    ? formatUntaggedStatus('BAD', code, error.text)
    : formatTagged(tag, 'BAD', code, error.text);
}

/** "+ text\r\n": the continuation request for a synchronizing literal or IDLE. */
export function formatContinuation(text = 'Ready'): string {
  return `+ ${respText(null, text)}\r\n`;
}

/** "* data\r\n" for untagged data already formatted (EXISTS, FETCH, ...). */
export function formatUntagged(data: string): string {
  return `* ${data}\r\n`;
}

export function formatCapability(capabilities: readonly string[]): string {
  return formatUntagged(`CAPABILITY ${capabilities.join(' ')}`);
}

/** A LIST (or LSUB) response; delimiter null for a flat namespace. */
export function formatListResponse(
  command: 'LIST' | 'LSUB',
  attributes: readonly string[],
  delimiter: string | null,
  name: string,
  options: WireOptions,
  extended: readonly string[] = [],
): string {
  const delim = delimiter === null ? 'NIL' : formatString(delimiter, options);
  const ext = extended.length === 0 ? '' : ` (${extended.join(' ')})`;
  return formatUntagged(
    `${command} ${formatFlagList(attributes)} ${delim} ${formatMailbox(name, options)}${ext}`,
  );
}

/** "* STATUS name (ITEM value ...)". */
export function formatStatusResponse(
  name: string,
  items: readonly (readonly [string, number | bigint | string])[],
  options: WireOptions,
): string {
  const body = items.map(([k, v]) => `${k} ${k === 'MAILBOXID' ? `(${v})` : v}`).join(' ');
  return formatUntagged(`STATUS ${formatMailbox(name, options)} (${body})`);
}

/** "* SEARCH 2 3 5" (with "(MODSEQ n)" when CONDSTORE asked, RFC 7162 §3.1.5). */
export function formatSearchResponse(numbers: readonly number[], modSeq: bigint | null = null): string {
  const list = numbers.length === 0 ? '' : ` ${numbers.join(' ')}`;
  return formatUntagged(`SEARCH${list}${modSeq === null ? '' : ` (MODSEQ ${modSeq})`}`);
}

/** "* ESEARCH (TAG "a") UID MIN 2 COUNT 3" (RFC 4731 / RFC 9051 §7.3.4). */
export function formatEsearchResponse(
  tag: string,
  uid: boolean,
  results: readonly (
    | readonly ['MIN' | 'MAX' | 'COUNT', number]
    | readonly ['ALL', readonly number[]]
    | readonly ['MODSEQ', bigint]
    /** RFC 5267's items, their parenthesized payload already formatted (search-context.ts). */
    | readonly ['PARTIAL' | 'ADDTO' | 'REMOVEFROM', string]
  )[],
): string {
  const parts = results.map(
    ([k, v]) => `${k} ${Array.isArray(v) ? formatUidSet(v as readonly number[]) : String(v)}`,
  );
  return formatUntagged(
    [`ESEARCH (TAG ${formatString(tag, { utf8: false })})`, ...(uid ? ['UID'] : []), ...parts].join(' '),
  );
}

/** "* VANISHED (EARLIER) 41,43:116" (RFC 7162 §3.2.10). */
export function formatVanished(uids: readonly number[], earlier: boolean): string {
  return formatUntagged(`VANISHED ${earlier ? '(EARLIER) ' : ''}${formatUidSet(uids)}`);
}

export function formatEnabled(capabilities: readonly string[]): string {
  return formatUntagged(capabilities.length === 0 ? 'ENABLED' : `ENABLED ${capabilities.join(' ')}`);
}

export function formatFlagsResponse(flags: readonly string[]): string {
  return formatUntagged(`FLAGS ${formatFlagList(flags)}`);
}

const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** date-time (RFC 9051 §9): `"17-Jul-1996 02:44:25 +0000"`, in UTC so output does not depend on the host. */
export function formatDateTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number): string => String(n).padStart(2, '0');
  // date-day-fixed: a one-digit day is led by a space, not a zero.
  const day = String(d.getUTCDate()).padStart(2, ' ');
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `"${day}-${MONTH_NAMES[d.getUTCMonth()]}-${d.getUTCFullYear()} ${time} +0000"`;
}
