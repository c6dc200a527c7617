// IMAP SORT (RFC 5256 §3) with SORT=DISPLAY (RFC 5957): the order of messages by ARRIVAL (internal
// date), CC, DATE (the sent date with its zone applied, the internal date when Date: is missing or
// unreadable), FROM, SIZE, SUBJECT (the base subject, RFC 5256 §2.1, baseSubject below), TO, DISPLAYFROM,
// DISPLAYTO, each maybe REVERSE; messages equal under every criterion keep mailbox (sequence) order.
// Strings compare under i;unicode-casemap (RFC 5051). Keys are found once per message, so a sort is
// O(n log n) comparisons of ready keys.
// PURE and total. Deliberately not here: which messages are sorted (search.ts), loading them (the driver:
// SORT needs only MessageMeta and the ENVELOPE fields of the structure), ESORT results (search.ts
// esearchResults).

import { assertNever } from '../../core/assert-never.ts';
import { decodeEncodedWords } from '../headers.ts';
import type { EnvelopeFields } from '../mime/structure.ts';
import { casemapKey, compareKeys } from './collation.ts';
import type { SortCriterion, SortKey } from './command.ts';
import { formatUntagged } from './format.ts';
import { addressSortKey, displaySortKey, parseSentDate } from './message-fields.ts';

export interface BaseSubject {
  /** The base subject (RFC 5256 §2.1 step 7), encoded-words decoded, white space collapsed. */
  readonly base: string;
  /** Did extraction remove a Re:/Fw:/Fwd: leader, a "(fwd)" trailer or a [fwd: ...] wrapper? */
  readonly replyOrForward: boolean;
}

// subj-leader = (*subj-blob subj-refwd) / WSP; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":";
// subj-blob = "[" *BLOBCHAR "]" *WSP where BLOBCHAR is any character but "[" and "]" (RFC 5256 §5).
const REFWD = /^(?:\[[^[\]]*\] *)*(?:re|fwd?) *(?:\[[^[\]]*\] *)?:/i;
const BLOB = /^\[[^[\]]*\] */;

/** RFC 5256 §2.1: the base subject of a Subject: value, and whether it was a reply or forward. */
export function baseSubjectOf(subject: string): BaseSubject {
  // (1) Decode encoded-words; tabs, line breaks and runs of white space become one space.
  let s = decodeEncodedWords(subject).replace(/[ \t\r\n]+/g, ' ');
  let replyOrForward = false;
  for (;;) {
    // (2) Trailers: "(fwd)" or white space at the end, as often as they occur.
    for (;;) {
      if (s.endsWith(' ')) s = s.slice(0, -1);
      else if (s.slice(-5).toLowerCase() === '(fwd)') {
        s = s.slice(0, -5);
        replyOrForward = true;
      } else break;
    }
    // (3)-(5) Leaders, and blobs that leave a subject behind, until none remain.
    for (;;) {
      const m = REFWD.exec(s);
      if (m !== null) {
        s = s.slice(m[0].length);
        replyOrForward = true;
        continue;
      }
      if (s.startsWith(' ')) {
        s = s.slice(1);
        continue;
      }
      const b = BLOB.exec(s);
      if (b !== null && s.slice(b[0].length).trim() !== '') {
        s = s.slice(b[0].length);
        continue;
      }
      break;
    }
    // (6) "[fwd: subject]": unwrap and start over from (2).
    if (s.slice(0, 5).toLowerCase() === '[fwd:' && s.endsWith(']')) {
      s = s.slice(5, -1);
      replyOrForward = true;
      continue;
    }
    return { base: s, replyOrForward };
  }
}

/** RFC 5256 §2.1: the base subject of a Subject: value. */
export function baseSubject(subject: string): string {
  return baseSubjectOf(subject).base;
}

/** What SORT needs of a message: MessageMeta's numbers and the ENVELOPE fields of its structure. */
export interface SortMessage {
  readonly seq: number;
  readonly sizeBytes: number;
  readonly internalDateMs: number;
  /** The top part's envelope (structure.root.envelope); null when unknown: every field is then empty. */
  readonly envelope: EnvelopeFields | null;
}

/** The sent date as SORT DATE reads it: the Date: header's instant, else the internal date. */
export function sentDateMs(envelope: EnvelopeFields | null, internalDateMs: number): number {
  return parseSentDate(envelope?.date ?? null)?.epochMs ?? internalDateMs;
}

function keyOf(key: SortKey, m: SortMessage): number | string {
  const env = m.envelope;
  switch (key) {
    case 'ARRIVAL':
      return m.internalDateMs;
    case 'DATE':
      return sentDateMs(env, m.internalDateMs);
    case 'SIZE':
      return m.sizeBytes;
    case 'CC':
      return casemapKey(decodeEncodedWords(addressSortKey(env?.cc ?? null)));
    case 'FROM':
      return casemapKey(decodeEncodedWords(addressSortKey(env?.from ?? null)));
    case 'TO':
      return casemapKey(decodeEncodedWords(addressSortKey(env?.to ?? null)));
    case 'SUBJECT':
      return casemapKey(baseSubject(env?.subject ?? ''));
    case 'DISPLAYFROM':
      return casemapKey(displaySortKey(env?.from ?? null));
    case 'DISPLAYTO':
      return casemapKey(displaySortKey(env?.to ?? null));
    default:
      return assertNever(key);
  }
}

function compareValues(a: number | string, b: number | string): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return compareKeys(String(a), String(b));
}

/** The messages in SORT order (a new array); equal ones stay in sequence-number order. */
export function sortMessages<T extends SortMessage>(
  messages: readonly T[],
  criteria: readonly SortCriterion[],
): T[] {
  const rows = messages.map((m) => ({ m, keys: criteria.map((c) => keyOf(c.key, m)) }));
  rows.sort((x, y) => {
    for (let i = 0; i < criteria.length; i++) {
      const c = compareValues(x.keys[i]!, y.keys[i]!);
      if (c !== 0) return criteria[i]!.reverse ? -c : c;
    }
    return x.m.seq - y.m.seq;
  });
  return rows.map((r) => r.m);
}

/** "* SORT 2 84 882\r\n" (RFC 5256 §4), with "(MODSEQ n)" when CONDSTORE asked (RFC 7162 §3.1.5). */
export function formatSortResponse(numbers: readonly number[], modSeq: bigint | null = null): string {
  const list = numbers.length === 0 ? '' : ` ${numbers.join(' ')}`;
  return formatUntagged(`SORT${list}${modSeq === null ? '' : ` (MODSEQ ${modSeq})`}`);
}
