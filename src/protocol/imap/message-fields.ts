// The header values IMAP SEARCH, SORT and THREAD reason about, read from a message's ENVELOPE fields:
// the sent date (RFC 5322 §3.3 date-time, obsolete forms of §4.3 included: two-digit years, named zones,
// missing seconds or zone), the first address of From/To/Cc as SORT keys (RFC 5256 §3 "addr-mailbox",
// RFC 5957 display names), and message identifiers (RFC 5322 §3.6.4 msg-id lists, as RFC 5256 THREAD
// REFERENCES reads them).
// PURE and total: broken values give null or empty lists, never an exception. Deliberately not here:
// header parsing and encoded-word decoding (protocol/headers.ts), address-list parsing
// (protocol/mime/envelope.ts).

import { decodeEncodedWords } from '../headers.ts';
import { parseAddressList } from '../mime/envelope.ts';
import type { ImapDate } from './syntax.ts';

export interface SentDate extends ImapDate {
  /** The instant, in ms since the epoch (the zone applied; a missing zone is read as UTC). */
  readonly epochMs: number;
}

const MONTH_INDEX: Record<string, number> = {
  jan: 1,
  feb: 2,
  mar: 3,
  apr: 4,
  may: 5,
  jun: 6,
  jul: 7,
  aug: 8,
  sep: 9,
  oct: 10,
  nov: 11,
  dec: 12,
};

// Named zones of RFC 5322 §4.3; military single letters are read as +0000 as §4.3 advises.
const ZONES: Record<string, number> = {
  ut: 0,
  gmt: 0,
  z: 0,
  est: -300,
  edt: -240,
  cst: -360,
  cdt: -300,
  mst: -420,
  mdt: -360,
  pst: -480,
  pdt: -420,
};

const DATE_RE =
  /^(?:[a-z]+\s*,?\s*)?(\d{1,2})[\s-]+([a-z]{3})[a-z]*\.?[\s-]+(\d{2,4})\s+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?(?:\.\d+)?\s*([+-]\d{4}|[a-z]+)?/i;

/** Comments removed (one nesting level is all real mail uses) and whitespace collapsed. */
function withoutComments(s: string): string {
  return s
    .replace(/\([^()]*\)/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The date of a Date: header value, in the header's own zone, or null when it cannot be read. */
export function parseSentDate(value: string | null): SentDate | null {
  if (value === null) return null;
  const m = DATE_RE.exec(withoutComments(value));
  if (m === null) return null;
  const day = Number(m[1]);
  const month = MONTH_INDEX[m[2]!.toLowerCase()];
  let year = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (month === undefined) return null;
  // RFC 5322 §4.3: a two-digit year below 50 is 20xx, others 19xx; three digits add 1900.
  if (m[3]!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3]!.length === 3) year += 1900;
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  const local = Date.UTC(year, month - 1, day, hour, minute, second);
  // An invalid day of the month (31 Feb) would roll over; such a date cannot be read.
  if (new Date(Date.UTC(year, month - 1, day)).getUTCDate() !== day) return null;
  const zone = m[7];
  let zoneMinutes = 0;
  if (zone !== undefined) {
    if (zone[0] === '+' || zone[0] === '-') {
      const hh = Number(zone.slice(1, 3));
      const mm = Number(zone.slice(3, 5));
      zoneMinutes = (zone[0] === '-' ? -1 : 1) * (hh * 60 + mm);
    } else zoneMinutes = ZONES[zone.toLowerCase()] ?? 0;
  }
  return { year, month, day, epochMs: local - zoneMinutes * 60_000 };
}

/** The first real mailbox of an address-list value (group names and group ends skipped), or null. */
export function firstAddress(
  value: string | null,
): { readonly name: string | null; readonly mailbox: string; readonly host: string } | null {
  if (value === null) return null;
  for (const a of parseAddressList(value)) {
    if (a.mailbox !== null && a.host !== null) return { name: a.name, mailbox: a.mailbox, host: a.host };
  }
  return null;
}

/** RFC 5256 §3 FROM/TO/CC: the addr-mailbox (local part) of the first address, "" when there is none. */
export function addressSortKey(value: string | null): string {
  return firstAddress(value)?.mailbox ?? '';
}

/**
 * RFC 5957 §3 DISPLAYFROM/DISPLAYTO: the decoded display name of the first address; when it has none
 * (or only white space), its addr-spec; "" when there is no address.
 */
export function displaySortKey(value: string | null): string {
  const a = firstAddress(value);
  if (a === null) return '';
  const name = a.name === null ? '' : decodeEncodedWords(a.name).trim();
  return name !== '' ? name : `${a.mailbox}@${a.host}`;
}

/** The msg-ids of a References/In-Reply-To/Message-ID value, without their angle brackets or spaces. */
export function messageIds(value: string | null): string[] {
  if (value === null) return [];
  const out: string[] = [];
  for (const m of withoutComments(value).matchAll(/<([^<>]*)>/g)) {
    const id = m[1]!.replace(/\s+/g, '');
    if (id !== '') out.push(id);
  }
  return out;
}
