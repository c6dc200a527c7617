// IMAP SEARCH evaluation: does a message match a search key (RFC 9051 §6.4.4, RFC 3501 §6.4.4), and what
// must be loaded to tell. Every key: flags and keywords (case-insensitive), NEW/OLD/RECENT as IMAP4rev1
// defines them over a store without \Recent (RECENT and NEW never match, OLD matches all), sequence and
// UID sets with "*" and "$" (SEARCHRES, RFC 5182), BEFORE/ON/SINCE on the internal date,
// SENTBEFORE/SENTON/SENTSINCE on the Date: header's own calendar date, SAVEDBEFORE/SAVEDON/SAVEDSINCE and
// SAVEDATESUPPORTED (RFC 8514), MODSEQ (RFC 7162 §3.1.5), OLDER/YOUNGER (RFC 5032), EMAILID/THREADID
// (RFC 8474), LARGER/SMALLER, header fields, BODY and TEXT, nested with AND/OR/NOT.
// Strings match as substrings under i;unicode-casemap (RFC 5051, collation.ts) on decoded text: header
// values with RFC 2047 encoded-words decoded (FROM/TO/CC/BCC also the address list in a normal form,
// comments and quoting gone, as Dovecot matches them), bodies decoded from base64/quoted-printable and,
// for text/* parts, from their charset; other parts are searched as their decoded octets read as Latin-1.
// CHARSET (RFC 9051 §6.4.4): UTF-8 and US-ASCII, both already decoded by the parser; any other is for the
// driver to refuse with NO [BADCHARSET (UTF-8 US-ASCII)] (searchCharsets).
// PURE and total. Deliberately not here: loading messages (the driver asks searchNeeds which it must
// read), ESEARCH formatting (format.ts; the result computation is esearchResults below), fuzzy search.

import { assertNever } from '../../core/assert-never.ts';
import { decodeEncodedWords, parseHeaderBlock, type HeaderField } from '../headers.ts';
import { decodeTransfer } from '../mime/transfer.ts';
import { scanMessage, type EnvelopeFields, type MessageStructure, type MimePart } from '../mime/structure.ts';
import { casemapKey } from './collation.ts';
import type { PartialRange, SearchKey, SearchReturnOption } from './command.ts';
import { addressSearchText, parseSentDate } from './message-fields.ts';
import { formatPartial, partialOf } from './search-context.ts';
import type { ImapDate, SequenceSet } from './syntax.ts';

/** The charsets SEARCH accepts, in the order BADCHARSET lists them. */
export const searchCharsets = ['UTF-8', 'US-ASCII'] as const;

/** Is `charset` (as the client wrote it; null for none) one SEARCH accepts? */
export function isSupportedCharset(charset: string | null): boolean {
  return charset === null || (searchCharsets as readonly string[]).includes(charset.toUpperCase());
}

/**
 * What the driver must load to evaluate a key: 'meta' the store's MessageMeta with its decoded structure
 * (the ENVELOPE fields answer FROM/TO/CC/BCC/SUBJECT, SENT* and HEADER on an envelope field), 'header'
 * the message's header section too (HEADER on any other field), 'full' the whole message (BODY, TEXT).
 */
export type SearchNeeds = 'meta' | 'header' | 'full';

const ENVELOPE_FIELDS: Record<string, keyof EnvelopeFields> = {
  date: 'date',
  subject: 'subject',
  from: 'from',
  sender: 'sender',
  'reply-to': 'replyTo',
  to: 'to',
  cc: 'cc',
  bcc: 'bcc',
  'in-reply-to': 'inReplyTo',
  'message-id': 'messageId',
};

/**
 * The fields SEARCH FROM/TO/CC/BCC name. Dovecot matches those keys against the address list written
 * back in a normal form (message-fields.ts addressSearchText) and HEADER against the value as written;
 * SearchKey does not tell the two apart, so a field here matches either.
 */
const ADDRESS_FIELDS: ReadonlySet<string> = new Set(['from', 'to', 'cc', 'bcc']);

const RANK: Record<SearchNeeds, number> = { meta: 0, header: 1, full: 2 };

function most(a: SearchNeeds, b: SearchNeeds): SearchNeeds {
  return RANK[a] >= RANK[b] ? a : b;
}

export function searchNeeds(key: SearchKey): SearchNeeds {
  switch (key.kind) {
    case 'and':
      return key.keys.reduce<SearchNeeds>((n, k) => most(n, searchNeeds(k)), 'meta');
    case 'or':
      return most(searchNeeds(key.left), searchNeeds(key.right));
    case 'not':
      return searchNeeds(key.key);
    case 'header':
      return ENVELOPE_FIELDS[key.field.toLowerCase()] === undefined ? 'header' : 'meta';
    case 'body':
    case 'text':
      return 'full';
    case 'all':
    case 'flag':
    case 'date':
    case 'size':
    case 'sequence':
    case 'uid':
    case 'modseq':
    case 'age':
    case 'savedatesupported':
    case 'emailid':
    case 'threadid':
      return 'meta';
    default:
      return assertNever(key);
  }
}

/**
 * Does the key use MODSEQ anywhere? Then SEARCH and SORT answer with the highest modseq of the messages
 * found ("(MODSEQ n)", ESEARCH "MODSEQ n"), and the session has CONDSTORE enabled (RFC 7162 §3.1.5).
 */
export function usesModseq(key: SearchKey): boolean {
  switch (key.kind) {
    case 'modseq':
      return true;
    case 'and':
      return key.keys.some(usesModseq);
    case 'or':
      return usesModseq(key.left) || usesModseq(key.right);
    case 'not':
      return usesModseq(key.key);
    case 'all':
    case 'flag':
    case 'header':
    case 'body':
    case 'text':
    case 'date':
    case 'size':
    case 'sequence':
    case 'uid':
    case 'age':
    case 'savedatesupported':
    case 'emailid':
    case 'threadid':
      return false;
    default:
      return assertNever(key);
  }
}

/** One message as SEARCH sees it. */
export interface SearchMessage {
  readonly seq: number;
  readonly uid: number;
  readonly flags: readonly string[];
  readonly modseq: number | bigint;
  readonly sizeBytes: number;
  readonly internalDateMs: number;
  readonly saveDateMs: number;
  readonly emailId: string;
  readonly threadId: string | null;
  /** The decoded structure (codec.ts decodeStructure, or scanMessage for a message stored without one). */
  readonly structure: MessageStructure | null;
  /**
   * The message's octets from its start: the header section at least where searchNeeds said 'header',
   * the whole message where it said 'full'; null where 'meta' was enough. When present, header keys read
   * every occurrence of a field from it rather than the first from the envelope.
   */
  readonly raw: Uint8Array | null;
}

export interface SearchContext {
  /** Messages in the mailbox: "*" in a sequence set (0 when empty). */
  readonly maxSeq: number;
  /** The highest UID in use: "*" in a UID set (0 when empty). */
  readonly maxUid: number;
  /** The UIDs saved by SEARCH RETURN (SAVE) for "$" (RFC 5182), null when nothing is saved. */
  readonly savedResult: Iterable<number> | null;
  /** Now, for OLDER/YOUNGER (time is an input). */
  readonly nowMs: number;
  /**
   * The offset from UTC, in minutes, of the server's zone: whose calendar day the internal and save dates
   * fall on for BEFORE/ON/SINCE and SAVED*. 0 (UTC) when not given.
   */
  readonly zoneMinutes?: number;
}

const DAY_MS = 86_400_000;

function dayNumber(d: ImapDate): number {
  return Date.UTC(d.year, d.month - 1, d.day) / DAY_MS;
}

/** Sorted, merged, inclusive ranges: membership by binary search, so big sets are not quadratic. */
function compileSet(set: Extract<SequenceSet, { kind: 'set' }>, max: number): (n: number) => boolean {
  const ranges = set.ranges
    .map(({ from, to }): [number, number] => {
      const a = from === '*' ? max : from;
      const b = to === '*' ? max : to;
      return a <= b ? [a, b] : [b, a];
    })
    .sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of ranges) {
    const last = merged.at(-1);
    if (last !== undefined && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  return (n) => {
    let lo = 0;
    let hi = merged.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = merged[mid]!;
      if (n < a) hi = mid - 1;
      else if (n > b) lo = mid + 1;
      else return true;
    }
    return false;
  };
}

/** What is found once per message and shared by every key of one evaluation. */
class MessageView {
  private headerFields: HeaderField[] | null = null;
  private bodyText: string | null = null;
  private headerText: string | null = null;
  private lowerFlags: Set<string> | null = null;

  readonly m: SearchMessage;

  constructor(m: SearchMessage) {
    this.m = m;
  }

  get envelope(): EnvelopeFields | null {
    return this.m.structure?.root.envelope ?? null;
  }

  hasFlag(flag: string): boolean {
    this.lowerFlags ??= new Set(this.m.flags.map((f) => f.toLowerCase()));
    return this.lowerFlags.has(flag.toLowerCase());
  }

  /** Values of every occurrence of the field (lower-case name), unfolded, encoded-words as written. */
  rawFieldValues(name: string): string[] {
    if (this.m.raw !== null) {
      this.headerFields ??= parseHeaderBlock(this.m.raw);
      return this.headerFields.filter((f) => f.name.toLowerCase() === name).map((f) => f.value);
    }
    const env = this.envelope;
    const key = ENVELOPE_FIELDS[name];
    const value = env === null || key === undefined ? null : env[key];
    return value === null ? [] : [value];
  }

  /** Decoded values of every occurrence of the field (lower-case name). */
  fieldValues(name: string): string[] {
    return this.rawFieldValues(name).map(decodeEncodedWords);
  }

  /** The header section as decoded text ("Name: value" lines), its key under i;unicode-casemap. */
  headerKey(): string {
    if (this.headerText === null) {
      this.headerFields ??= this.m.raw === null ? [] : parseHeaderBlock(this.m.raw);
      this.headerText = casemapKey(
        this.headerFields.map((f) => `${f.name}: ${decodeEncodedWords(f.value)}`).join('\n'),
      );
    }
    return this.headerText;
  }

  /** The body's decoded text, its key under i;unicode-casemap. */
  bodyKey(): string {
    if (this.bodyText === null) {
      const raw = this.m.raw;
      // A message stored without a structure is scanned here (pure, one pass) rather than not searched.
      const s = raw === null ? null : (this.m.structure ?? scanMessage(raw));
      this.bodyText = s === null || raw === null ? '' : partKey(s.root, raw, false);
    }
    return this.bodyText;
  }
}

const latin1 = new TextDecoder('latin1');

function decodeCharset(charset: string, bytes: Uint8Array): string {
  // US-ASCII bodies often hold UTF-8 all the same; UTF-8 reads true ASCII unchanged.
  const label = charset.toLowerCase() === 'us-ascii' ? 'utf-8' : charset;
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

function headerText(bytes: Uint8Array): string {
  return parseHeaderBlock(bytes)
    .map((f) => `${f.name}: ${decodeEncodedWords(f.value)}`)
    .join('\n');
}

/**
 * The search key of a part: its leaves decoded, a message/rfc822 with its own header. Text leaves (and
 * headers) are keyed under i;unicode-casemap; any other leaf (an image, a PDF) is its decoded octets as
 * Latin-1, upper-cased: normalizing binary data would cost much and match nothing more.
 */
function partKey(root: MimePart, raw: Uint8Array, withHeader: boolean): string {
  const out: string[] = [];
  // An explicit stack: nesting depth comes from the message, not from us.
  const stack: { part: MimePart; header: boolean }[] = [{ part: root, header: withHeader }];
  while (stack.length > 0) {
    const { part, header } = stack.pop()!;
    if (header)
      out.push(casemapKey(headerText(raw.subarray(part.headerStart, Math.min(part.bodyStart, raw.length)))));
    if (part.parts.length > 0) {
      for (let i = part.parts.length - 1; i >= 0; i--) stack.push({ part: part.parts[i]!, header: false });
      continue;
    }
    if (part.message !== null) {
      stack.push({ part: part.message, header: true });
      continue;
    }
    const body = decodeTransfer(
      part.encoding,
      raw.subarray(part.bodyStart, Math.min(part.bodyEnd, raw.length)),
    );
    if (part.type === 'text') {
      out.push(
        casemapKey(decodeCharset(part.params.find((p) => p.name === 'charset')?.value ?? 'us-ascii', body)),
      );
    } else out.push(latin1.decode(body).toUpperCase());
  }
  return out.join('\n');
}

type Predicate = (v: MessageView) => boolean;

function compile(key: SearchKey, ctx: SearchContext, saved: () => ReadonlySet<number>): Predicate {
  switch (key.kind) {
    case 'all':
    case 'savedatesupported':
      return () => true;
    case 'and': {
      const ps = key.keys.map((k) => compile(k, ctx, saved));
      return (v) => ps.every((p) => p(v));
    }
    case 'or': {
      const l = compile(key.left, ctx, saved);
      const r = compile(key.right, ctx, saved);
      return (v) => l(v) || r(v);
    }
    case 'not': {
      const p = compile(key.key, ctx, saved);
      return (v) => !p(v);
    }
    case 'flag': {
      // \Recent is in the flags the driver passes for an IMAP4rev1 client (none for IMAP4rev2).
      return (v) => v.hasFlag(key.flag) === key.present;
    }
    case 'header': {
      const name = key.field.toLowerCase();
      const needle = casemapKey(key.value);
      if (!ADDRESS_FIELDS.has(name)) {
        return (v) => v.fieldValues(name).some((value) => casemapKey(value).includes(needle));
      }
      // FROM/TO/CC/BCC and HEADER on those fields (one key kind for both): the decoded value as written,
      // or the address list in its normal form, so "user@x" is found in "<user (c)@ (c) x>".
      return (v) =>
        v
          .rawFieldValues(name)
          .some(
            (value) =>
              casemapKey(decodeEncodedWords(value)).includes(needle) ||
              casemapKey(addressSearchText(value)).includes(needle),
          );
    }
    case 'body': {
      const needle = casemapKey(key.value);
      return (v) => v.bodyKey().includes(needle);
    }
    case 'text': {
      const needle = casemapKey(key.value);
      return (v) => v.headerKey().includes(needle) || v.bodyKey().includes(needle);
    }
    case 'date': {
      const { field, op } = key;
      const want = dayNumber(key.date);
      const zoneMs = (ctx.zoneMinutes ?? 0) * 60_000;
      const dayOf = (v: MessageView): number | null => {
        switch (field) {
          case 'internal':
            return Math.floor((v.m.internalDateMs + zoneMs) / DAY_MS);
          case 'saved':
            return Math.floor((v.m.saveDateMs + zoneMs) / DAY_MS);
          case 'sent': {
            // The Date: header's own calendar day, whatever its zone (RFC 9051 §6.4.4 SENTON).
            const d = parseSentDate(v.envelope?.date ?? v.fieldValues('date')[0] ?? null);
            return d === null ? null : dayNumber(d);
          }
          default:
            return assertNever(field);
        }
      };
      return (v) => {
        const day = dayOf(v);
        if (day === null) return false;
        switch (op) {
          case 'before':
            return day < want;
          case 'on':
            return day === want;
          case 'since':
            return day >= want;
          default:
            return assertNever(op);
        }
      };
    }
    case 'size':
      return key.op === 'larger' ? (v) => v.m.sizeBytes > key.bytes : (v) => v.m.sizeBytes < key.bytes;
    case 'sequence':
      if (key.set.kind === 'saved') return (v) => saved().has(v.m.uid);
      return (
        (inSet) => (v: MessageView) =>
          inSet(v.m.seq)
      )(compileSet(key.set, ctx.maxSeq));
    case 'uid':
      if (key.set.kind === 'saved') return (v) => saved().has(v.m.uid);
      return (
        (inSet) => (v: MessageView) =>
          inSet(v.m.uid)
      )(compileSet(key.set, ctx.maxUid));
    case 'modseq':
      // One modseq per message: it is the highest of its per-flag ones, so the entry name changes nothing.
      return (v) => BigInt(v.m.modseq) >= key.modSeq;
    case 'age': {
      const edgeMs = ctx.nowMs - key.seconds * 1000;
      return key.op === 'older' ? (v) => v.m.internalDateMs <= edgeMs : (v) => v.m.internalDateMs > edgeMs;
    }
    case 'emailid':
      return (v) => v.m.emailId === key.id;
    case 'threadid':
      return (v) => v.m.threadId !== null && v.m.threadId === key.id;
    default:
      return assertNever(key);
  }
}

/** A key compiled once for many messages (sets sorted, needles mapped). */
export function compileSearch(key: SearchKey, context: SearchContext): (message: SearchMessage) => boolean {
  let savedSet: ReadonlySet<number> | null = null;
  const saved = (): ReadonlySet<number> => (savedSet ??= new Set(context.savedResult ?? []));
  const p = compile(key, context, saved);
  return (message) => p(new MessageView(message));
}

/** Does one message match? (compileSearch for many.) */
export function matches(key: SearchKey, message: SearchMessage, context: SearchContext): boolean {
  return compileSearch(key, context)(message);
}

export type EsearchResult =
  | readonly ['MIN' | 'MAX' | 'COUNT', number]
  | readonly ['ALL', readonly number[]]
  | readonly ['PARTIAL', string];

/**
 * The ESEARCH/ESORT result items (RFC 4731 §3.1, RFC 5267 §3.2) for the matching numbers (sequence numbers
 * or UIDs, ascending for SEARCH, in sort order for SORT), and what SAVE keeps (RFC 5182 §2.4: only the
 * MIN and/or MAX message when those are all that was asked besides SAVE, else everything) as UIDs, in
 * ascending order. `uids` runs parallel to `numbers`.
 * RETURN () means ALL. MIN/MAX/ALL are left out when nothing matched; COUNT 0 is not. PARTIAL m:n (RFC
 * 5267 §4.4) gives the results at those positions, and SAVE with it saves only those; UPDATE asks no
 * item by itself (the context is the server's business: server/imap/search-context.ts).
 * `emit` is false when SAVE is the only option: then no ESEARCH response is sent (RFC 5182 §2.1).
 */
export function esearchResults(
  numbers: readonly number[],
  uids: readonly number[],
  returns: readonly SearchReturnOption[],
  sorted: boolean,
  partial: PartialRange | null = null,
): { readonly items: EsearchResult[]; readonly saved: readonly number[] | null; readonly emit: boolean } {
  // CONTEXT is a hint (RFC 5267 §4.2): RETURN (CONTEXT) asks for what RETURN () does.
  const asked = returns.filter((o) => o !== 'CONTEXT');
  const opts: readonly SearchReturnOption[] = asked.length === 0 ? ['ALL'] : asked;
  const has = (o: SearchReturnOption): boolean => opts.includes(o);
  // SORT's MIN/MAX are the first and last in sort order; SEARCH's the lowest and highest.
  let minAt = -1;
  let maxAt = -1;
  if (numbers.length > 0) {
    if (sorted) {
      minAt = 0;
      maxAt = numbers.length - 1;
    } else {
      minAt = 0;
      maxAt = 0;
      numbers.forEach((n, i) => {
        if (n < numbers[minAt]!) minAt = i;
        if (n > numbers[maxAt]!) maxAt = i;
      });
    }
  }
  const items: EsearchResult[] = [];
  if (has('MIN') && minAt >= 0) items.push(['MIN', numbers[minAt]!]);
  if (has('MAX') && maxAt >= 0) items.push(['MAX', numbers[maxAt]!]);
  if (has('ALL') && numbers.length > 0) items.push(['ALL', numbers]);
  if (has('COUNT')) items.push(['COUNT', numbers.length]);
  // PARTIAL (RFC 5267 §4.4): the window's positions, so SAVE can keep their UIDs.
  const window = partial === null ? null : partialOf([...numbers.keys()], partial);
  if (partial !== null && window !== null) {
    const inWindow = window.map((i) => numbers[i]!);
    items.push(['PARTIAL', formatPartial(partial, inWindow)]);
  }
  let saved: number[] | null = null;
  if (has('SAVE') && window !== null) {
    // SAVE with PARTIAL keeps the window (as RFC 9394 §3.1 later wrote down).
    saved = window.map((i) => uids[i]!).sort((a, b) => a - b);
  } else if (has('SAVE')) {
    // MIN/MAX narrow what is saved only when no option asks for the whole result (as Dovecot reads
    // RFC 5182 §2.4: SAVE with MIN and COUNT keeps everything).
    if ((has('MIN') || has('MAX')) && !has('ALL') && !has('COUNT')) {
      const at = new Set<number>();
      if (has('MIN') && minAt >= 0) at.add(minAt);
      if (has('MAX') && maxAt >= 0) at.add(maxAt);
      saved = [...at].map((i) => uids[i]!).sort((a, b) => a - b);
    } else saved = [...uids];
  }
  const emit = !(opts.length === 1 && opts[0] === 'SAVE');
  return { items, saved, emit };
}
