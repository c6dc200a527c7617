// The selected mailbox as one client sees it: its message sequence numbers (RFC 9051 §2.3.1.2), which
// change only when this client is told (EXPUNGE/VANISHED, EXISTS), and the last modseq it was told for
// each message, so that a flag change reaches it once and its own STORE is not echoed twice.
// Changes found in the store (another session, delivery, the CLI) are applied by applyChanges(), which
// returns the untagged responses in the order that keeps numbers right: expunges first (highest number
// first, so each number is read against the view the previous one left), then EXISTS, then FETCH
// (FLAGS) of changed messages. RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH
// (the sequence-number forms); those expunges wait in `pending` and the messages keep their numbers.
// With QRESYNC enabled, VANISHED replaces EXPUNGE (RFC 7162 §3.2.10).
// Pure. Deliberately NOT here: reading the store, the SELECT responses, FETCH data.

import { formatFlagList, formatUntagged, formatVanished } from './format.ts';
import type { SequenceSet } from './syntax.ts';

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
  /** UIDs in sequence order: message n is uids[n - 1]. */
  private uids: number[];
  /** The modseq of each message as last told (or read at SELECT), aligned with uids. */
  private modseqs: number[];
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
    messages: readonly { readonly uid: number; readonly modseq: number }[],
    highestModseq: number,
  ) {
    this.folder = folder;
    this.uidValidity = uidValidity;
    this.readOnly = readOnly;
    this.uids = messages.map((m) => m.uid);
    this.modseqs = messages.map((m) => m.modseq);
    this.highestModseq = highestModseq;
  }

  get exists(): number {
    return this.uids.length;
  }

  get maxUid(): number {
    return this.uids.length === 0 ? 0 : this.uids[this.uids.length - 1]!;
  }

  /** Messages with UID in (from, to] are recent to this session. */
  markRecent(from: number, to: number): void {
    for (let i = this.lowerBound(from + 1); i < this.uids.length && this.uids[i]! <= to; i++) {
      this.recent.add(this.uids[i]!);
    }
  }

  /** The last n messages are recent (EXAMINE: shown, not claimed). */
  markLastRecent(n: number): void {
    for (let i = Math.max(0, this.uids.length - n); i < this.uids.length; i++) this.recent.add(this.uids[i]!);
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
    return this.uids[seq - 1];
  }

  /** The sequence number of a UID, or 0 when it is not in the view. */
  seqOf(uid: number): number {
    let lo = 0;
    let hi = this.uids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.uids[mid]!;
      if (v === uid) return mid + 1;
      if (v < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0;
  }

  /** Every UID of the view, in order (SEARCH ALL, SORT input). */
  allUids(): readonly number[] {
    return this.uids;
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
        const start = this.lowerBound(a);
        for (let i = start; i < n && this.uids[i]! <= b; i++) out.add(this.uids[i]!);
      } else {
        let a = range.from === '*' ? n : range.from;
        let b = range.to === '*' ? n : range.to;
        if (a > b) [a, b] = [b, a];
        if (b > n || a < 1) invalidSeq = true;
        for (let s = Math.max(1, a); s <= Math.min(b, n); s++) out.add(this.uids[s - 1]!);
      }
    }
    return { uids: [...out].sort((x, y) => x - y), invalidSeq };
  }

  private lowerBound(uid: number): number {
    let lo = 0;
    let hi = this.uids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.uids[mid]! < uid) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** This client's own FETCH/STORE told it these flags: no unsolicited echo later. */
  told(uid: number, modseq: number): void {
    const seq = this.seqOf(uid);
    if (seq > 0 && this.modseqs[seq - 1]! < modseq) this.modseqs[seq - 1] = modseq;
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
        this.modseqs.push(m.modseq);
        added = true;
      }
    }
    if (added) lines.push(formatUntagged(`${this.uids.length} EXISTS`));
    for (const m of changes.changed) {
      if (m.uid > top) continue;
      const seq = this.seqOf(m.uid);
      if (seq === 0 || this.pending.has(m.uid) || this.modseqs[seq - 1]! >= m.modseq) continue;
      this.modseqs[seq - 1] = m.modseq;
      lines.push(this.flagsLine(seq, m.uid, m.flags, m.modseq, out));
    }
    if (changes.highestModseq > this.highestModseq) this.highestModseq = changes.highestModseq;
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
    this.recent.delete(this.uids[seq - 1]!);
    this.uids.splice(seq - 1, 1);
    this.modseqs.splice(seq - 1, 1);
  }
}
