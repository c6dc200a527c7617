// The selected mailbox as one client sees it: its message sequence numbers (RFC 9051 §2.3.1.2), which
// change only when this client is told (EXPUNGE/VANISHED, EXISTS), and the modseq its view reflects:
// a change above it is news, except the ones this client made itself and was told of at once (a small
// map, pruned as the view moves past them), so a flag change reaches it once and its own STORE is not
// echoed twice. The UIDs live in a UidSequence whose base array sessions on one folder share
// (uid-sequence.ts): memory per selected session does not grow with the folder.
// Changes found in the store (another session, delivery, the CLI) are applied by applyChanges(), which
// returns the untagged responses in the order that keeps numbers right: expunges first (highest number
// first, so each number is read against the view the previous one left), then EXISTS, then FETCH
// (FLAGS) of changed messages. RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH
// (the sequence-number forms); those expunges wait in `pending` and the messages keep their numbers.
// With QRESYNC enabled, VANISHED replaces EXPUNGE (RFC 7162 §3.2.10).
// Pure. Deliberately NOT here: reading the store, the SELECT responses, FETCH data.

import { formatFlagList, formatUntagged, formatVanished } from './format.ts';
import type { SequenceSet } from './syntax.ts';
import { UidSequence } from './uid-sequence.ts';

/**
 * Swaps a freshly built UID array for an equal one other sessions already hold (same folder, same
 * modseq, nothing pending), or keeps it for them. Identity when nothing is shared.
 */
export type ShareUids = (uids: Uint32Array, highestModseq: number) => Uint32Array;

export interface ViewChanges {
  readonly highestModseq: number;
  /** Messages whose modseq rose (new ones included), UID order. */
  readonly changed: readonly {
    readonly uid: number;
    readonly flags: readonly string[];
    readonly modseq: number;
  }[];
  /** UIDs gone (expunged or moved away), ascending. */
  readonly vanished: readonly number[];
}

export interface ViewOutput {
  /** The client has CONDSTORE on: FETCH responses carry MODSEQ. */
  readonly condstore: boolean;
  /** The client has QRESYNC on: VANISHED instead of EXPUNGE, and UID in every FETCH. */
  readonly qresync: boolean;
}

export class SelectedView {
  readonly folder: string;
  readonly uidValidity: number;
  readonly readOnly: boolean;
  /** UIDs in sequence order. */
  private readonly uids: UidSequence;
  /** Modseqs this client was told of by its own STORE/FETCH, above highestModseq: not echoed. */
  private readonly toldModseq = new Map<number, number>();
  private readonly share: ShareUids;
  /** What the client's view reflects of the folder: changes above it are news. */
  highestModseq: number;
  /** Expunged in the store, not yet told (kept in the view until an EXPUNGE may be sent). */
  private readonly pending = new Set<number>();
  /** IMAP4rev1 \Recent: messages this session is the first to see (RFC 3501 §2.3.2). */
  private readonly recent = new Set<number>();
  /** Show \Recent (an IMAP4rev1 client; IMAP4rev2 has no such flag). */
  showRecent = true;
  /**
   * Responses owed before expunges are told, while these messages still have their numbers (RFC 5267
   * §4.3.4: REMOVEFROM precedes the EXPUNGE); their lines go out first.
   */
  beforeExpunge: ((uids: readonly number[]) => string[]) | null = null;

  constructor(
    folder: string,
    uidValidity: number,
    readOnly: boolean,
    /** The folder's UIDs at highestModseq, ascending (shared: never written to). */
    uids: Uint32Array | readonly { readonly uid: number }[],
    highestModseq: number,
    share: ShareUids = (u) => u,
  ) {
    this.folder = folder;
    this.uidValidity = uidValidity;
    this.readOnly = readOnly;
    this.uids = new UidSequence(uids instanceof Uint32Array ? uids : Uint32Array.from(uids, (m) => m.uid));
    this.highestModseq = highestModseq;
    this.share = share;
  }

  get exists(): number {
    return this.uids.length;
  }

  get maxUid(): number {
    return this.uids.max;
  }

  /** Messages with UID in (from, to] are recent to this session. */
  markRecent(from: number, to: number): void {
    const n = this.uids.length;
    for (let s = this.uids.lowerBound(from + 1) + 1; s <= n; s++) {
      const uid = this.uids.uidAt(s)!;
      if (uid > to) break;
      this.recent.add(uid);
    }
  }

  /** The last n messages are recent (EXAMINE: shown, not claimed). */
  markLastRecent(n: number): void {
    const total = this.uids.length;
    for (let s = Math.max(1, total - n + 1); s <= total; s++) this.recent.add(this.uids.uidAt(s)!);
  }

  get recentCount(): number {
    return this.recent.size;
  }

  /** The flags as this client sees them: with \Recent where it applies. */
  flagsOf(uid: number, flags: readonly string[]): readonly string[] {
    return this.showRecent && this.recent.has(uid) ? [...flags, '\\Recent'] : flags;
  }

  /** Expunges wait to be told (held back while FETCH, STORE or SEARCH answered). */
  get hasPendingExpunges(): boolean {
    return this.pending.size > 0;
  }

  /** Whether the message is expunged in the store but still numbered here. */
  isPendingExpunge(uid: number): boolean {
    return this.pending.has(uid);
  }

  uidAt(seq: number): number | undefined {
    return this.uids.uidAt(seq);
  }

  /** The sequence number of a UID, or 0 when it is not in the view. */
  seqOf(uid: number): number {
    return this.uids.seqOf(uid);
  }

  /** Every UID of the view, in order (SEARCH ALL, SORT input). */
  allUids(): readonly number[] {
    return [...this.uids.toArray()];
  }

  /**
   * The UIDs a sequence set names, ascending, each once; only messages in the view. A UID set names
   * UIDs (`*` is the highest UID; a range over a gap takes what exists, RFC 9051 §6.4.9); a sequence
   * set names numbers (`*` the last; numbers beyond it are absent: the caller answers BAD when
   * `invalidSeq` is set).
   */
  resolve(
    set: SequenceSet,
    uid: boolean,
    saved: readonly number[] | null,
  ): { uids: number[]; invalidSeq: boolean } {
    if (set.kind === 'saved') {
      // SEARCHRES `$`: the saved UIDs that are still here.
      return { uids: (saved ?? []).filter((u) => this.seqOf(u) > 0), invalidSeq: false };
    }
    const n = this.uids.length;
    const out = new Set<number>();
    let invalidSeq = false;
    for (const range of set.ranges) {
      if (uid) {
        const top = this.maxUid;
        let a = range.from === '*' ? top : range.from;
        let b = range.to === '*' ? top : range.to;
        if (a > b) [a, b] = [b, a];
        // An empty mailbox, or `*` over one: nothing; "N:*" with N above the top names the top.
        if (n === 0) continue;
        if (range.from === '*' || range.to === '*') a = Math.min(a, top);
        for (let s = this.uids.lowerBound(a) + 1; s <= n; s++) {
          const u = this.uids.uidAt(s)!;
          if (u > b) break;
          out.add(u);
        }
      } else {
        let a = range.from === '*' ? n : range.from;
        let b = range.to === '*' ? n : range.to;
        if (a > b) [a, b] = [b, a];
        if (b > n || a < 1) invalidSeq = true;
        for (let s = Math.max(1, a); s <= Math.min(b, n); s++) out.add(this.uids.uidAt(s)!);
      }
    }
    return { uids: [...out].sort((x, y) => x - y), invalidSeq };
  }

  /** This client's own FETCH/STORE told it these flags: no unsolicited echo later. */
  told(uid: number, modseq: number): void {
    if (modseq <= this.highestModseq || this.seqOf(uid) === 0) return;
    if ((this.toldModseq.get(uid) ?? 0) < modseq) this.toldModseq.set(uid, modseq);
  }

  /**
   * Apply what changed in the store. `allowExpunge` is false while answering FETCH/STORE/SEARCH (and
   * the other sequence-number commands): expunges then wait. Returns the untagged responses, in order.
   */
  applyChanges(changes: ViewChanges, allowExpunge: boolean, out: ViewOutput): string[] {
    const lines: string[] = [];
    for (const uid of changes.vanished) if (this.seqOf(uid) > 0) this.pending.add(uid);
    if (allowExpunge && this.pending.size > 0) lines.push(...this.flushExpunges(out));
    const top = this.maxUid;
    let added = false;
    for (const m of changes.changed) {
      if (m.uid > top) {
        if (this.pending.has(m.uid)) continue;
        this.uids.push(m.uid);
        added = true;
      }
    }
    if (added) lines.push(formatUntagged(`${this.uids.length} EXISTS`));
    for (const m of changes.changed) {
      if (m.uid > top) continue;
      const seq = this.seqOf(m.uid);
      if (seq === 0 || this.pending.has(m.uid) || (this.toldModseq.get(m.uid) ?? 0) >= m.modseq) continue;
      lines.push(this.flagsLine(seq, m.uid, m.flags, m.modseq, out));
    }
    if (changes.highestModseq > this.highestModseq) this.highestModseq = changes.highestModseq;
    for (const [uid, modseq] of this.toldModseq)
      if (modseq <= this.highestModseq) this.toldModseq.delete(uid);
    // Rebuilt in the state every session at this modseq shares, when nothing is held back.
    if (this.pending.size === 0) this.uids.compact((built) => this.share(built, this.highestModseq));
    return lines;
  }

  /** An unsolicited or STORE FETCH response with the flags (and UID, MODSEQ as enabled). */
  flagsLine(seq: number, uid: number, flags: readonly string[], modseq: number, out: ViewOutput): string {
    const items = [`FLAGS ${formatFlagList(this.flagsOf(uid, flags))}`];
    if (out.qresync) items.push(`UID ${uid}`);
    if (out.condstore || out.qresync) items.push(`MODSEQ (${modseq})`);
    return formatUntagged(`${seq} FETCH (${items.join(' ')})`);
  }

  /** Remove messages this client itself expunged or moved (EXPUNGE, MOVE): told at once. */
  expungeNow(uids: readonly number[], out: ViewOutput): string[] {
    for (const uid of uids) if (this.seqOf(uid) > 0) this.pending.add(uid);
    return this.flushExpunges(out);
  }

  private flushExpunges(out: ViewOutput): string[] {
    const gone = [...this.pending].sort((a, b) => a - b);
    this.pending.clear();
    const lines: string[] = gone.length > 0 && this.beforeExpunge !== null ? this.beforeExpunge(gone) : [];
    if (out.qresync) {
      for (const uid of gone) this.removeAt(this.seqOf(uid));
      if (gone.length > 0) lines.push(formatVanished(gone, false));
      return lines;
    }
    for (let i = gone.length - 1; i >= 0; i--) {
      const seq = this.seqOf(gone[i]!);
      if (seq === 0) continue;
      this.removeAt(seq);
      lines.push(formatUntagged(`${seq} EXPUNGE`));
    }
    return lines;
  }

  private removeAt(seq: number): void {
    if (seq <= 0) return;
    const uid = this.uids.uidAt(seq);
    if (uid !== undefined) {
      this.recent.delete(uid);
      this.toldModseq.delete(uid);
    }
    this.uids.removeAt(seq);
  }
}
