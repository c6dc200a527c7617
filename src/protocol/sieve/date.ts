// Dates for the date extension (RFC 5260): reading an RFC 5322 §3.3 date-time (with the obsolete forms
// of §4.3: two-digit years, named zones, no seconds, comments), moving it to another zone, and the date
// parts of §4.2 (year month day date julian hour minute second time iso8601 std11 zone weekday), written
// the way Pigeonhole writes them ("2008-04-01T11:14:15Z", "Tue, 01 Apr 2008 13:14:15 +0200").
// PURE: no clock; the current time is an input.

export interface ZonedTime {
  /** UTC milliseconds. */
  readonly epochMs: number;
  /** Offset east of UTC in minutes. */
  readonly offsetMinutes: number;
}

export const DATE_PARTS: ReadonlySet<string> = new Set([
  'year', 'month', 'day', 'date', 'julian', 'hour', 'minute', 'second', 'time', 'iso8601', 'std11', 'zone',
  'weekday',
]); // prettier-ignore

export function isDatePart(part: string): boolean {
  return DATE_PARTS.has(part.toLowerCase());
}

/** "+hhmm" / "-hhmm" → minutes east of UTC; null when it is not a zone. */
export function parseZone(zone: string): number | null {
  const m = /^([+-])([0-9]{2})([0-9]{2})$/.exec(zone);
  if (!m) return null;
  const hours = Number(m[2]);
  const minutes = Number(m[3]);
  if (hours > 23 || minutes > 59) return null;
  return (m[1] === '-' ? -1 : 1) * (hours * 60 + minutes);
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// RFC 5322 §4.3 obs-zone; military letters other than Z carry no reliable offset and read as -0000.
const NAMED_ZONES: Readonly<Record<string, number>> = {
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

function stripComments(s: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && depth > 0) i++;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out;
}

/** An RFC 5322 date-time, or null when the value does not hold one. */
export function parseDateTime(value: string): ZonedTime | null {
  const s = stripComments(value).replace(/\s+/g, ' ').trim();
  const m =
    /^(?:[A-Za-z]{3} ?, ?)?([0-9]{1,2}) ([A-Za-z]{3}) ([0-9]{2,4}) ([0-9]{1,2}) ?: ?([0-9]{2})(?: ?: ?([0-9]{2}))?(?: ([+-][0-9]{4}|[A-Za-z]{1,5}))?$/.exec(
      s,
    );
  if (!m) return null;
  const day = Number(m[1]);
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  let year = Number(m[3]);
  // RFC 5322 §4.3: two digits are 19xx from 50, 20xx below; three digits add 1900.
  if (m[3]!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3]!.length === 3) year += 1900;
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (month < 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  const zoneText = m[7] ?? '-0000';
  let offset = parseZone(zoneText);
  if (offset === null) {
    if (/^[+-]/.test(zoneText)) return null;
    offset = NAMED_ZONES[zoneText.toLowerCase()] ?? 0;
  }
  const local = Date.UTC(year, month, day, hour, minute, Math.min(second, 59));
  // A day past the month's end (31 Feb) rolls over in Date.UTC: refuse it instead.
  if (new Date(local).getUTCDate() !== day) return null;
  return { epochMs: local - offset * 60000, offsetMinutes: offset };
}

/** The date-time after the last ";" of a Received field (RFC 5322 §3.6.7), or the whole value. */
export function dateTextOf(fieldName: string, value: string): string {
  if (fieldName.toLowerCase() !== 'received') return value;
  const semi = value.lastIndexOf(';');
  return semi < 0 ? '' : value.slice(semi + 1);
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function formatZone(offsetMinutes: number, colon: boolean): string {
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${sign}${pad(Math.floor(abs / 60))}${colon ? ':' : ''}${pad(abs % 60)}`;
}

/** The value of date part `part` (any case) of `t`; null for an unknown part. */
export function datePart(t: ZonedTime, part: string): string | null {
  const d = new Date(t.epochMs + t.offsetMinutes * 60000);
  if (Number.isNaN(d.getTime())) return null;
  const year = pad(d.getUTCFullYear(), 4);
  const month = pad(d.getUTCMonth() + 1);
  const day = pad(d.getUTCDate());
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  switch (part.toLowerCase()) {
    case 'year':
      return year;
    case 'month':
      return month;
    case 'day':
      return day;
    case 'date':
      return `${year}-${month}-${day}`;
    case 'julian':
      // Modified Julian Day: 1970-01-01 is day 40587 (RFC 5260 §4.2).
      return String(Math.floor(d.getTime() / 86400000) + 40587);
    case 'hour':
      return pad(d.getUTCHours());
    case 'minute':
      return pad(d.getUTCMinutes());
    case 'second':
      return pad(d.getUTCSeconds());
    case 'time':
      return time;
    case 'iso8601':
      return `${year}-${month}-${day}T${time}${t.offsetMinutes === 0 ? 'Z' : formatZone(t.offsetMinutes, true)}`;
    case 'std11':
      return `${DAY_NAMES[d.getUTCDay()]}, ${day} ${MONTH_NAMES[d.getUTCMonth()]} ${year} ${time} ${formatZone(t.offsetMinutes, false)}`;
    case 'zone':
      return formatZone(t.offsetMinutes, false);
    case 'weekday':
      return String(d.getUTCDay());
    default:
      return null;
  }
}
