// The UIDs of a selected mailbox in sequence order, built for thousands of sessions on one folder: a
// base array that sessions in the same state share (never written to), plus this session's own
// changes since it was built: positions removed from it (expunges) and UIDs added after it (new mail).
// seqOf/uidAt are binary searches over the base and the small change lists; when those lists grow past
// COMPACT_AT the sequence is rebuilt, and the owner may swap the new array for an equal one another
// session already built (share()), so 10,000 IDLE sessions on one INBOX hold one copy of its UIDs.
// Pure. Deliberately NOT here: which UIDs changed (selected.ts), caching arrays across sessions.

/** Changes kept beside the base before it is rebuilt. */
export const COMPACT_AT = 256;

export class UidSequence {
  private base: Uint32Array;
  /** Indices into base that are gone, ascending. */
  private removed: number[] = [];
  /** UIDs after the base, ascending. */
  private tail: number[] = [];

  constructor(base: Uint32Array) {
    this.base = base;
  }

  get length(): number {
    return this.base.length - this.removed.length + this.tail.length;
  }

  /** Whether nothing was changed since the base was built (it may then be shared as it is). */
  get pristine(): boolean {
    return this.removed.length === 0 && this.tail.length === 0;
  }

  get max(): number {
    if (this.tail.length > 0) return this.tail[this.tail.length - 1]!;
    for (let i = this.base.length - 1; i >= 0; i--) if (!this.isRemoved(i)) return this.base[i]!;
    return 0;
  }

  private get baseLive(): number {
    return this.base.length - this.removed.length;
  }

  /** Removed base indices below i. */
  private removedBelow(i: number): number {
    let lo = 0;
    let hi = this.removed.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.removed[mid]! < i) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private isRemoved(i: number): boolean {
    const k = this.removedBelow(i);
    return k < this.removed.length && this.removed[k] === i;
  }

  /** First base index whose UID is ≥ uid. */
  private baseLowerBound(uid: number): number {
    let lo = 0;
    let hi = this.base.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.base[mid]! < uid) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The base index of the seq-th live base entry (1-based seq ≤ baseLive). */
  private baseIndexOf(seq: number): number {
    // Smallest i with i + 1 - removedBelow(i + 1) ≥ seq, and i not removed.
    let lo = seq - 1;
    let hi = this.base.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (mid + 1 - this.removedBelow(mid + 1) >= seq) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  uidAt(seq: number): number | undefined {
    if (seq < 1 || seq > this.length) return undefined;
    const live = this.baseLive;
    if (seq > live) return this.tail[seq - live - 1];
    return this.base[this.baseIndexOf(seq)];
  }

  /** The sequence number of a UID, or 0. */
  seqOf(uid: number): number {
    const i = this.baseLowerBound(uid);
    if (i < this.base.length && this.base[i] === uid) {
      const k = this.removedBelow(i);
      if (k < this.removed.length && this.removed[k] === i) return 0;
      return i + 1 - k;
    }
    const t = lowerBound(this.tail, uid);
    return t < this.tail.length && this.tail[t] === uid ? this.baseLive + t + 1 : 0;
  }

  /** The position (0-based) of the first UID ≥ uid, in sequence order. */
  lowerBound(uid: number): number {
    const i = this.baseLowerBound(uid);
    if (i < this.base.length) return i - this.removedBelow(i);
    return this.baseLive + lowerBound(this.tail, uid);
  }

  /** New mail: UIDs only grow. */
  push(uid: number): void {
    this.tail.push(uid);
  }

  /** Drop the message at this sequence number. */
  removeAt(seq: number): void {
    const live = this.baseLive;
    if (seq > live) {
      this.tail.splice(seq - live - 1, 1);
      return;
    }
    const i = this.baseIndexOf(seq);
    this.removed.splice(this.removedBelow(i), 0, i);
  }

  /** Every UID in order (for SEARCH ALL and rebuilding). */
  toArray(): Uint32Array {
    if (this.pristine) return this.base;
    const out = new Uint32Array(this.length);
    let n = 0;
    let r = 0;
    for (let i = 0; i < this.base.length; i++) {
      if (r < this.removed.length && this.removed[r] === i) {
        r++;
        continue;
      }
      out[n++] = this.base[i]!;
    }
    for (const uid of this.tail) out[n++] = uid;
    return out;
  }

  /** Rebuild when the change lists are long; `share` may swap in an equal array. */
  compact(share: (built: Uint32Array) => Uint32Array): void {
    if (this.removed.length + this.tail.length < COMPACT_AT) return;
    this.base = share(this.toArray());
    this.removed = [];
    this.tail = [];
  }

  /** The base array, for sharing when pristine. */
  get baseArray(): Uint32Array {
    return this.base;
  }
}

function lowerBound(a: readonly number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
