// The RFC 5267 contexts one session keeps (CONTEXT=SEARCH, CONTEXT=SORT): SEARCH/SORT RETURN (UPDATE)
// opens one under the command's tag, and from then on the client is told, by untagged ESEARCH ADDTO and
// REMOVEFROM (§4.3.3, §4.3.4), how the result changes as flags change, messages arrive and messages are
// expunged, until CANCELUPDATE (§4.3.5) or the folder is closed. The driver calls refresh() each time
// it has brought the client's view up to date (after the FETCH/EXISTS that caused a change, as §4.3.2
// expects) and beforeExpunge() through the view, so REMOVEFROM goes out while the expunged messages'
// numbers are still valid.
// A refresh evaluates only the messages whose modseq rose since the context last looked (one
// changesSince read, then their metadata, and their bodies only when the program searches bodies);
// a SORT context keeps each result's sort keys, so a change re-sorts without reading the others.
// Deliberately NOT here: the diff and wire format (protocol/imap/search-context.ts), evaluating a
// program (search.ts findMatches), which responses the driver may send when.

import type { SearchKey, SortCriterion } from '../../protocol/imap/command.ts';
import { formatString, formatUntagged } from '../../protocol/imap/format.ts';
import {
  diffResults,
  formatContextUpdates,
  pinSequenceKeys,
  removeResults,
  type ContextUpdate,
} from '../../protocol/imap/search-context.ts';
import type { SelectedView } from '../../protocol/imap/selected.ts';
import { sortMessages, type SortMessage } from '../../protocol/imap/sort.ts';
import type { MessageMeta } from '../../store/mailbox-store.ts';
import type { ImapContext } from './context.ts';
import { findMatches, type Found } from './search.ts';

/** Updating contexts per session; RFC 5267 §4.3.1 asks for at least one and lets the server refuse more. */
export const MAX_UPDATE_CONTEXTS = 16;

/** A result's sort keys; `seq` holds the UID, which orders ties as sequence numbers do. */
type SortEntry = SortMessage & { readonly uid: number };

interface UpdateContext {
  readonly tag: string;
  /** UID SEARCH/SORT: updates carry UIDs, else sequence numbers. */
  readonly uid: boolean;
  /** The program, message numbers pinned to the messages they named at the command. */
  readonly key: SearchKey;
  /** SORT's criteria; null for SEARCH (mailbox order, position 0). */
  readonly criteria: readonly SortCriterion[] | null;
  /** The result as the client holds it: UIDs in the requested order. */
  results: number[];
  /** SORT only: each result's keys. */
  readonly sortKeys: Map<number, SortEntry>;
  /** Changes at or below this modseq are reflected in `results`. */
  checkedModseq: number;
}

export class SearchContexts {
  private readonly contexts = new Map<string, UpdateContext>();

  /** A context under this tag updates now (a second UPDATE with it is BAD, §4.3). */
  has(tag: string): boolean {
    return this.contexts.has(tag);
  }

  get size(): number {
    return this.contexts.size;
  }

  /**
   * Open a context for a SEARCH or SORT that asked RETURN (UPDATE), with the result it just gave
   * (`found` in requested order). Past the limit the client is told `NO [NOUPDATE "tag"]` (§4.3.1) and
   * the command's other options still stand.
   */
  open(
    ctx: ImapContext,
    view: SelectedView,
    cmd: {
      readonly tag: string;
      readonly uid: boolean;
      readonly key: SearchKey;
      readonly criteria: readonly SortCriterion[] | null;
    },
    found: readonly Found[],
  ): void {
    if (this.contexts.size >= MAX_UPDATE_CONTEXTS) {
      ctx.write(
        formatUntagged(`NO [NOUPDATE ${formatString(cmd.tag, { utf8: false })}] Too many updating searches`),
      );
      return;
    }
    const sortKeys = new Map<number, SortEntry>();
    if (cmd.criteria !== null) for (const f of found) sortKeys.set(f.meta.uid, sortEntry(f));
    this.contexts.set(cmd.tag, {
      tag: cmd.tag,
      uid: cmd.uid,
      key: pinSequenceKeys(cmd.key, (set, uid) => view.resolve(set, uid, ctx.savedResult).uids),
      criteria: cmd.criteria,
      results: found.map((f) => f.meta.uid),
      sortKeys,
      // What the search read reflects at least what the view does; later changes are re-evaluated.
      checkedModseq: view.highestModseq,
    });
  }

  /** CANCELUPDATE: no more updates for these tags (unknown ones are ignored, as nothing updates). */
  cancel(tags: readonly string[]): void {
    for (const tag of tags) this.contexts.delete(tag);
  }

  /** The folder is closed: every context ends (§4.3). */
  clear(): void {
    this.contexts.clear();
  }

  /**
   * REMOVEFROM responses for results about to be told expunged; called by the view before it removes
   * them, so sequence numbers are still the client's (§4.3.4).
   */
  beforeExpunge(view: SelectedView, uids: readonly number[]): string[] {
    if (this.contexts.size === 0) return [];
    const gone = new Set(uids);
    const lines: string[] = [];
    for (const c of this.contexts.values()) {
      const { updates, rest } = removeResults(c.results, gone, c.criteria !== null);
      if (updates.length === 0) continue;
      for (const uid of uids) c.sortKeys.delete(uid);
      c.results = rest;
      lines.push(this.format(c, view, updates));
    }
    return lines;
  }

  /** Re-evaluate what changed since each context last looked; write ADDTO/REMOVEFROM where results moved. */
  async refresh(ctx: ImapContext): Promise<void> {
    const view = ctx.view;
    if (this.contexts.size === 0 || view === null) return;
    const since = Math.min(...[...this.contexts.values()].map((c) => c.checkedModseq));
    let changes;
    try {
      changes = await ctx.store.changesSince(ctx.user, view.folder, since);
    } catch {
      return; // gone: the driver ends the session at its next update
    }
    if (changes.uidValidity !== view.uidValidity || ctx.view !== view) return;
    // Messages the client does not number yet wait for their EXISTS: look again from below them.
    let checked = changes.highestModseq;
    const modseqOf = new Map<number, number>();
    for (const m of changes.changed) {
      if (view.seqOf(m.uid) > 0 && !view.isPendingExpunge(m.uid)) modseqOf.set(m.uid, m.modseq);
      else if (m.uid > view.maxUid) checked = Math.min(checked, m.modseq - 1);
    }
    let metas: MessageMeta[] = [];
    try {
      if (modseqOf.size > 0) metas = await ctx.store.messages(ctx.user, view.folder, [...modseqOf.keys()]);
    } catch {
      return; // as above
    }
    for (const c of this.contexts.values()) {
      const relevant = metas.filter((m) => (modseqOf.get(m.uid) ?? 0) > c.checkedModseq);
      c.checkedModseq = Math.max(c.checkedModseq, checked);
      if (relevant.length === 0) continue;
      const found = await findMatches(ctx, view, c.key, relevant, null);
      const matched = new Set(found.map((f) => f.meta.uid));
      const looked = new Set(relevant.map((m) => m.uid));
      const kept = c.results.filter((u) => !looked.has(u) || matched.has(u));
      const had = new Set(c.results);
      let next: number[];
      if (c.criteria === null) {
        next = [...kept, ...found.filter((f) => !had.has(f.meta.uid)).map((f) => f.meta.uid)].sort(
          (a, b) => a - b,
        );
      } else {
        for (const u of looked) if (!matched.has(u)) c.sortKeys.delete(u);
        for (const f of found) if (!c.sortKeys.has(f.meta.uid)) c.sortKeys.set(f.meta.uid, sortEntry(f));
        next = sortMessages([...c.sortKeys.values()], c.criteria).map((e) => e.uid);
      }
      const updates = diffResults(c.results, next, c.criteria !== null);
      c.results = next;
      if (updates.length > 0) ctx.write(this.format(c, view, updates));
    }
  }

  private format(c: UpdateContext, view: SelectedView, updates: readonly ContextUpdate[]): string {
    return formatContextUpdates(c.tag, c.uid, updates, (uid) => (c.uid ? uid : view.seqOf(uid)));
  }
}

function sortEntry(f: Found): SortEntry {
  return {
    uid: f.meta.uid,
    seq: f.meta.uid,
    sizeBytes: f.meta.sizeBytes,
    internalDateMs: f.meta.internalDateMs,
    envelope: f.message.structure?.root.envelope ?? null,
  };
}
