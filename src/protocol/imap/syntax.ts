// The IMAP formal syntax's building blocks (RFC 9051 §4 and §9, with RFC 3501's forms): a cursor over one
// command already split by the reader into text pieces and literals, and the primitives every command
// parser uses: atoms, quoted strings (UTF-8 allowed, RFC 9051 / RFC 6855), literals, astrings, nstrings,
// list-mailbox patterns, numbers (32-bit and 63-bit), sequence sets (with "$", RFC 5182), flags, dates and
// date-times.
// Pure and total at its edges: inside a parse a failure unwinds with a private exception that
// parseWith() turns into a result; nothing escapes to a caller. Deliberately NOT here: what a command
// means (parse-command.ts), framing and literal streaming (reader.ts), mailbox name encodings.

export type ImapErrorKind =
  /** The command line does not follow the grammar. */
  | 'syntax'
  /** A command name nobody defines. */
  | 'unknown-command'
  /** A command Tern knows but does not implement (none at present; kept for the next one). */
  | 'unsupported'
  /** A line, a literal or a whole command over its limit: answered with [TOOBIG]. */
  | 'too-big'
  /** Text that is not UTF-8, or a NUL where only text may be. */
  | 'bad-text'
  /** Nesting (parentheses, NOT, OR) deeper than the parser follows. */
  | 'too-deep';

/** A parse failure: the session answers it with a BAD (tagged when the tag was readable). */
export interface ImapParseError {
  readonly kind: ImapErrorKind;
  /** Generic text for the BAD line, safe to send. */
  readonly text: string;
}

/** One piece of a command as the reader assembled it. */
export type Item =
  | { readonly kind: 'text'; readonly text: string }
  /** A small literal (a string), decoded as UTF-8. */
  | { readonly kind: 'literal'; readonly value: string }
  /** A message literal streamed to the driver (APPEND): its bytes are not here, only its place. */
  | { readonly kind: 'stream'; readonly index: number; readonly sizeBytes: number; readonly binary: boolean }
  /** A literal announced and not yet read: a parse reaching it says what role it plays. */
  | { readonly kind: 'pending'; readonly sizeBytes: number; readonly binary: boolean };

/** Where a pending literal sits: a string argument, or the data of an APPEND message. */
export type LiteralRole = 'string' | 'message';

export class ParseFail {
  readonly error: ImapParseError;
  constructor(error: ImapParseError) {
    this.error = error;
  }
}

export class PendingLiteral {
  readonly role: LiteralRole;
  /** For a message: what the command said about it before its data (flags, date). */
  readonly head: unknown;
  constructor(role: LiteralRole, head: unknown) {
    this.role = role;
    this.head = head;
  }
}

export const MAX_NESTING = 64;
const MAX_U32 = 0xffff_ffff;
const MAX_63 = (1n << 63n) - 1n;

export function fail(text: string, kind: ImapErrorKind = 'syntax'): never {
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- unwinds to parseWith(), never further
  throw new ParseFail({ kind, text });
}

/** Run a parser over items: its value, a parse error, or the role of the pending literal it reached. */
export function parseWith<T>(
  items: readonly Item[],
  parse: (c: Cursor) => T,
):
  | { ok: true; value: T }
  | { ok: false; error: ImapParseError }
  | { ok: 'pending'; role: LiteralRole; head: unknown } {
  try {
    return { ok: true, value: parse(new Cursor(items)) };
  } catch (e) {
    if (e instanceof ParseFail) return { ok: false, error: e.error };
    if (e instanceof PendingLiteral) return { ok: 'pending', role: e.role, head: e.head };
    if (e instanceof RangeError)
      return { ok: false, error: { kind: 'too-deep', text: 'Command nested too deeply' } };
    throw e;
  }
}

/** ATOM-CHAR excludes atom-specials: "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]". */
function isAtomChar(c: string): boolean {
  const cp = c.charCodeAt(0);
  if (cp <= 0x20 || cp === 0x7f) return false;
  // XXX: non-ASCII is tolerated in atoms: clients with UTF8=ACCEPT send bare UTF-8 mailbox names.
  return !'(){%*"\\]'.includes(c);
}
const isAstringChar = (c: string): boolean => isAtomChar(c) || c === ']';
const isListChar = (c: string): boolean => isAstringChar(c) || c === '%' || c === '*';
/** A tag is ASCII astring characters without "+": it is echoed in replies, so no UTF-8 leniency. */
const isTagChar = (c: string): boolean => c < '\x7f' && isAstringChar(c) && c !== '+';

export interface ImapDate {
  readonly year: number;
  readonly month: number; // 1-12
  readonly day: number;
}

export interface ImapDateTime extends ImapDate {
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  /** The zone's offset from UTC in minutes (+0100 → 60). */
  readonly zoneMinutes: number;
  /** The instant, in ms since the epoch. */
  readonly epochMs: number;
}

export const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

/** A sequence number or UID in a set; "*" is the largest in use. */
export type SeqNumber = number | '*';
export type SequenceSet =
  | { readonly kind: 'set'; readonly ranges: readonly { readonly from: SeqNumber; readonly to: SeqNumber }[] }
  /** "$": the result saved by SEARCH RETURN (SAVE) (RFC 5182). */
  | { readonly kind: 'saved' };

/**
 * Whether a UID set names this UID, whether or not such a message exists (QRESYNC's known UIDs and
 * VANISHED name gone ones). `*` is taken as unbounded; `$` names nothing here.
 */
export function uidSetNames(set: SequenceSet, uid: number): boolean {
  if (set.kind === 'saved') return false;
  return set.ranges.some((r) => {
    const a = r.from === '*' ? Infinity : r.from;
    const b = r.to === '*' ? Infinity : r.to;
    return uid >= Math.min(a, b) && uid <= Math.max(a, b);
  });
}

export class Cursor {
  private readonly items: readonly Item[];
  private i = 0;
  private p = 0;
  depth = 0;

  constructor(items: readonly Item[]) {
    this.items = items;
  }

  private norm(): Item | undefined {
    for (;;) {
      const item = this.items[this.i];
      if (item === undefined) return undefined;
      if (item.kind !== 'text' || this.p < item.text.length) return item;
      this.i++;
      this.p = 0;
    }
  }

  atEnd(): boolean {
    return this.norm() === undefined;
  }

  /** The next character, or '' at the end or at a literal. */
  ch(): string {
    const item = this.norm();
    return item?.kind === 'text' ? item.text[this.p]! : '';
  }

  /** Upcoming text of the current piece (for keyword look-ahead). */
  rest(): string {
    const item = this.norm();
    return item?.kind === 'text' ? item.text.slice(this.p) : '';
  }

  advance(n: number): void {
    this.p += n;
  }

  expect(c: string): void {
    if (this.ch() !== c) fail(c === ' ' ? 'Expected a space' : `Expected "${c}"`);
    this.p++;
  }

  sp(): void {
    this.expect(' ');
  }

  /** Consume c if it is next. */
  eat(c: string): boolean {
    if (this.ch() !== c) return false;
    this.p++;
    return true;
  }

  end(): void {
    if (!this.atEnd()) fail('Unexpected characters at the end of the command');
  }

  private takeWhile(pred: (c: string) => boolean): string {
    const item = this.norm();
    if (item?.kind !== 'text') return '';
    let q = this.p;
    while (q < item.text.length && pred(item.text[q]!)) q++;
    const s = item.text.slice(this.p, q);
    this.p = q;
    return s;
  }

  tag(): string {
    const t = this.takeWhile(isTagChar);
    if (t === '') fail('Missing or invalid tag');
    return t;
  }

  atom(): string {
    const a = this.takeWhile(isAtomChar);
    if (a === '') fail('Expected an atom');
    return a;
  }

  /** An atom upper-cased, for command names and keywords (case-insensitive, RFC 9051 §9 note 2). */
  word(): string {
    return this.atom().toUpperCase();
  }

  /** A keyword with characters atoms may not hold ("BODY[" is read as BODY then section). */
  peekWord(): string {
    const item = this.norm();
    if (item?.kind !== 'text') return '';
    let q = this.p;
    while (q < item.text.length && isAtomChar(item.text[q]!) && item.text[q] !== '[') q++;
    return item.text.slice(this.p, q).toUpperCase();
  }

  /** Consume a keyword (case-insensitive) if it is next and ends there. */
  eatWord(w: string): boolean {
    const r = this.rest();
    if (r.length < w.length || r.slice(0, w.length).toUpperCase() !== w) return false;
    const after = r[w.length];
    if (after !== undefined && isAtomChar(after) && after !== '[' && after !== '<') return false;
    this.p += w.length;
    return true;
  }

  quoted(): string {
    this.expect('"');
    let out = '';
    for (;;) {
      const item = this.norm();
      if (item?.kind !== 'text') fail('Unterminated quoted string');
      const c = item.text[this.p]!;
      this.p++;
      if (c === '"') return out;
      if (c === '\\') {
        const e = this.ch();
        if (e !== '"' && e !== '\\') fail('Invalid escape in quoted string');
        out += e;
        this.p++;
        continue;
      }
      if (c === '\0') fail('NUL in a quoted string', 'bad-text');
      out += c;
    }
  }

  /** A literal in a string's place: its value; a pending one stops the parse (role "string"). */
  private literal(): string | null {
    const item = this.norm();
    if (item === undefined || item.kind === 'text') return null;
    if (item.kind === 'pending') {
      if (item.binary) fail('literal8 is allowed only for message data');
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- unwinds to parseWith()
      throw new PendingLiteral('string', null);
    }
    if (item.kind === 'stream') fail('Unexpected message literal');
    this.i++;
    this.p = 0;
    return item.value;
  }

  string(): string {
    if (this.ch() === '"') return this.quoted();
    const lit = this.literal();
    if (lit === null) fail('Expected a string');
    return lit;
  }

  astring(): string {
    if (this.ch() === '"') return this.quoted();
    const lit = this.literal();
    if (lit !== null) return lit;
    const a = this.takeWhile(isAstringChar);
    if (a === '') fail('Expected an atom or a string');
    return a;
  }

  /** NIL or a string; null for NIL. */
  nstring(): string | null {
    if (this.eatWord('NIL')) return null;
    return this.string();
  }

  /** A mailbox: an astring, with "INBOX" in any case meaning INBOX (RFC 9051 §5.1). */
  mailbox(): string {
    const m = this.astring();
    return m.toUpperCase() === 'INBOX' ? 'INBOX' : m;
  }

  /** list-mailbox: list characters (with the wildcards "%" and "*") or a string. */
  listMailbox(): string {
    if (this.ch() === '"') return this.quoted();
    const lit = this.literal();
    if (lit !== null) return lit;
    const a = this.takeWhile(isListChar);
    if (a === '') fail('Expected a mailbox pattern');
    return a;
  }

  /** The data of an APPEND message: a streamed literal, or a pending one (role "message", with head). */
  messageData(head: unknown, binaryAllowed: boolean): { index: number; sizeBytes: number; binary: boolean } {
    const item = this.norm();
    if (item?.kind === 'pending') {
      if (item.binary && !binaryAllowed) fail('literal8 is not allowed here');
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- unwinds to parseWith()
      throw new PendingLiteral('message', head);
    }
    if (item?.kind !== 'stream') fail('Expected a message literal');
    this.i++;
    this.p = 0;
    return { index: item.index, sizeBytes: item.sizeBytes, binary: item.binary };
  }

  private digits(): string {
    const d = this.takeWhile((c) => c >= '0' && c <= '9');
    if (d === '') fail('Expected a number');
    if (d.length > 19) fail('Number out of range');
    return d;
  }

  /** number: 0 ≤ n < 2^32. */
  number(): number {
    const n = Number(this.digits());
    if (n > MAX_U32) fail('Number out of range');
    return n;
  }

  nzNumber(): number {
    const n = this.number();
    if (n === 0) fail('Expected a non-zero number');
    return n;
  }

  /** number64 (RFC 9051): 0 ≤ n < 2^63, kept as a JS number up to 2^53 (sizes, offsets). */
  number64(): number {
    const n = BigInt(this.digits());
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) fail('Number out of range');
    return Number(n);
  }

  /** mod-sequence-value (RFC 7162): 0 ≤ n < 2^63, as a bigint. */
  modSeq(): bigint {
    const n = BigInt(this.digits());
    if (n > MAX_63) fail('Mod-sequence out of range');
    return n;
  }

  private seqNumber(): SeqNumber {
    if (this.eat('*')) return '*';
    return this.nzNumber();
  }

  /** sequence-set: ranges in either order ("4:2" is "2:4"), "*", or "$" alone. */
  sequenceSet(): SequenceSet {
    if (this.eat('$')) return { kind: 'saved' };
    const ranges: { from: SeqNumber; to: SeqNumber }[] = [];
    do {
      const a = this.seqNumber();
      const b = this.eat(':') ? this.seqNumber() : a;
      // Keep the order the client gave for "*": its value is known only to the session.
      ranges.push(a !== '*' && b !== '*' && a > b ? { from: b, to: a } : { from: a, to: b });
    } while (this.eat(','));
    return { kind: 'set', ranges };
  }

  /** flag: "\" atom (system flag or flag-extension) or a keyword atom. */
  flag(): string {
    if (this.eat('\\')) return '\\' + this.atom();
    return this.atom();
  }

  /** "(" [flag *(SP flag)] ")". */
  flagList(): string[] {
    this.expect('(');
    const flags: string[] = [];
    if (this.eat(')')) return flags;
    do flags.push(this.flag());
    while (this.eat(' '));
    this.expect(')');
    return flags;
  }

  /** Open a parenthesized group, tracking depth so hostile nesting is refused, not a stack overflow. */
  open(): void {
    this.expect('(');
    if (++this.depth > MAX_NESTING) fail('Command nested too deeply', 'too-deep');
  }

  close(): void {
    this.expect(')');
    this.depth--;
  }

  /** date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year. */
  date(): ImapDate {
    const q = this.eat('"');
    const dayText = this.takeWhile((c) => c >= '0' && c <= '9');
    if (dayText.length < 1 || dayText.length > 2) fail('Invalid date');
    this.expect('-');
    const month = this.month();
    this.expect('-');
    const yearText = this.takeWhile((c) => c >= '0' && c <= '9');
    if (yearText.length !== 4) fail('Invalid date');
    if (q) this.expect('"');
    const date = { year: Number(yearText), month, day: Number(dayText) };
    if (!validDay(date)) fail('Invalid date');
    return date;
  }

  private month(): number {
    const m = this.rest().slice(0, 3).toUpperCase();
    const i = MONTHS.indexOf(m);
    if (i < 0) fail('Invalid month');
    this.p += 3;
    return i + 1;
  }

  /** date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE. */
  dateTime(): ImapDateTime {
    this.expect('"');
    const r = this.rest();
    const m = /^([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"/.exec(r);
    if (m === null) fail('Invalid date-time');
    const month = MONTHS.indexOf(m[2]!.toUpperCase()) + 1;
    const day = Number(m[1]!.trim());
    const [year, hour, minute, second] = [m[3], m[4], m[5], m[6]].map(Number) as [
      number,
      number,
      number,
      number,
    ];
    const zoneMinutes = (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
    if (month === 0 || !validDay({ year, month, day }) || hour > 23 || minute > 59 || second > 60)
      fail('Invalid date-time');
    if (Number(m[9]) > 59) fail('Invalid time zone');
    this.p += m[0].length;
    const epochMs = Date.UTC(year, month - 1, day, hour, minute, second) - zoneMinutes * 60_000;
    return { year, month, day, hour, minute, second, zoneMinutes, epochMs };
  }
}

function validDay(d: ImapDate): boolean {
  if (d.day < 1 || d.month < 1 || d.month > 12) return false;
  const leap = (d.year % 4 === 0 && d.year % 100 !== 0) || d.year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][d.month - 1]!;
  return d.day <= days;
}

/** Items for a command with no literals (tests, and lines already known to be complete). */
export function textItems(text: string): Item[] {
  return [{ kind: 'text', text }];
}
