// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4), the pure part: PARTIAL result windows (§4.4), the
// ADDTO/REMOVEFROM updates that turn one result list into the next (§4.3.2-§4.3.4), their ESEARCH
// responses, and pinning the message sequence numbers of a search program to the messages they named
// when the command arrived (§4.3: "evaluated at the time the command is received"), so that a kept
// program never follows renumbering.
// Results are lists of UIDs in the requested order: mailbox (UID) order for SEARCH, sort order for SORT.
// A SEARCH context's updates carry position 0 and sets in mailbox order (§4.3.3 RECOMMENDED); a SORT
// context's carry real positions, so the client can replay them in order.
// PURE. Deliberately NOT here: which contexts a session holds, reading messages, when updates are sent
// (server/imap/search-context.ts).

import type { PartialRange, SearchKey } from './command.ts';
import { formatEsearchResponse, formatUidSet } from './format.ts';
import type { SequenceSet } from './syntax.ts';

/** The results at positions first..last (from 1) of a result list; fewer or none past its end. */
export function partialOf<T>(results: readonly T[], range: PartialRange): T[] {
  return results.slice(range.first - 1, range.last);
}

/** PARTIAL's payload, "(2:4 2,4:5)", or "(6:6 NIL)" when the range holds no result (RFC 5267 §4.4). */
export function formatPartial(range: PartialRange, numbers: readonly number[]): string {
  const set = numbers.length === 0 ? 'NIL' : formatUidSet(numbers);
  return `(${range.first}:${range.last} ${set})`;
}

/** One ADDTO or REMOVEFROM pair: a context position (0 for SEARCH) and the UIDs, in requested order. */
export interface ContextUpdate {
  readonly kind: 'ADDTO' | 'REMOVEFROM';
  readonly position: number;
  readonly uids: readonly number[];
}

/**
 * The updates that make `before` into `after`, applied in order: every REMOVEFROM, then every ADDTO.
 * Unsorted (SEARCH): one REMOVEFROM and one ADDTO at position 0, each in UID order. Sorted (SORT): runs at
 * their positions; the messages both lists hold must keep their relative order (sort keys never change
 * for a stored message, so a re-sort only inserts and removes).
 */
export function diffResults(
  before: readonly number[],
  after: readonly number[],
  sorted: boolean,
): ContextUpdate[] {
  const keep = new Set(after);
  const had = new Set(before);
  if (!sorted) {
    const removed = before.filter((u) => !keep.has(u)).sort((a, b) => a - b);
    const added = after.filter((u) => !had.has(u)).sort((a, b) => a - b);
    const out: ContextUpdate[] = [];
    if (removed.length > 0) out.push({ kind: 'REMOVEFROM', position: 0, uids: removed });
    if (added.length > 0) out.push({ kind: 'ADDTO', position: 0, uids: added });
    return out;
  }
  const out: ContextUpdate[] = [];
  const current = [...before];
  // Removals: each run of removed results, at its position in the list as the earlier runs left it.
  for (let i = 0; i < current.length;) {
    if (keep.has(current[i]!)) {
      i++;
      continue;
    }
    let j = i;
    while (j < current.length && !keep.has(current[j]!)) j++;
    out.push({ kind: 'REMOVEFROM', position: i + 1, uids: current.slice(i, j) });
    current.splice(i, j - i);
  }
  // Additions: walking the new order, a result the list lacks is inserted where it belongs; the ones
  // before it are already in place.
  for (let i = 0; i < after.length;) {
    if (had.has(after[i]!)) {
      i++;
      continue;
    }
    let j = i;
    while (j < after.length && !had.has(after[j]!)) j++;
    out.push({ kind: 'ADDTO', position: i + 1, uids: after.slice(i, j) });
    i = j;
  }
  return out;
}

/**
 * The REMOVEFROM updates for results that are going away (expunged), before they go, so the numbers
 * are still valid (RFC 5267 §4.3.4), and the results left.
 */
export function removeResults(
  results: readonly number[],
  gone: ReadonlySet<number>,
  sorted: boolean,
): { readonly updates: ContextUpdate[]; readonly rest: number[] } {
  const rest = results.filter((u) => !gone.has(u));
  if (rest.length === results.length) return { updates: [], rest };
  return { updates: diffResults(results, rest, sorted), rest };
}

/**
 * "* ESEARCH (TAG "B01") UID REMOVEFROM (0 4) ADDTO (0 7:8)". `numberOf` gives the number the client
 * knows a UID by (the UID itself for UID SEARCH/SORT, else its sequence number now).
 */
export function formatContextUpdates(
  tag: string,
  uid: boolean,
  updates: readonly ContextUpdate[],
  numberOf: (uid: number) => number,
): string {
  return formatEsearchResponse(
    tag,
    uid,
    updates.map((u) => [u.kind, `(${u.position} ${formatUidSet(u.uids.map(numberOf))})`] as const),
  );
}

/** A UID set naming exactly these UIDs (none: a set that matches nothing). */
export function uidSetOf(uids: readonly number[]): SequenceSet {
  const sorted = [...uids].sort((a, b) => a - b);
  const ranges: { from: number; to: number }[] = [];
  for (const u of sorted) {
    const last = ranges.at(-1);
    if (last !== undefined && u <= last.to + 1) last.to = Math.max(last.to, u);
    else ranges.push({ from: u, to: u });
  }
  return { kind: 'set', ranges };
}

/**
 * The program with every message-number key, and every `$` (the saved result, RFC 5182), turned into
 * the UIDs it names now: a kept context goes on meaning those messages. `resolve` names the UIDs of a
 * set (`uid` false: sequence numbers) in the client's present view.
 */
export function pinSequenceKeys(
  key: SearchKey,
  resolve: (set: SequenceSet, uid: boolean) => readonly number[],
): SearchKey {
  switch (key.kind) {
    case 'sequence':
      return { kind: 'uid', set: uidSetOf(resolve(key.set, false)) };
    case 'uid':
      return key.set.kind === 'saved' ? { kind: 'uid', set: uidSetOf(resolve(key.set, true)) } : key;
    case 'and':
      return { kind: 'and', keys: key.keys.map((k) => pinSequenceKeys(k, resolve)) };
    case 'or':
      return {
        kind: 'or',
        left: pinSequenceKeys(key.left, resolve),
        right: pinSequenceKeys(key.right, resolve),
      };
    case 'not':
      return { kind: 'not', key: pinSequenceKeys(key.key, resolve) };
    default:
      return key;
  }
}
