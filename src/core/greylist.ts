// The greylisting store port (RFC 6647): what the greylist filter (policy/filters/greylist.ts) remembers
// about each triplet — client network, normalised sender, recipient — and the small in-memory
// implementation its tests and a store-less setup use. The durable one is store/greylist-sqlite.ts
// (data/greylist.sqlite). The types live here because policy may not import store, nor store policy.
// Deliberately NOT here: what a triplet is made of (normalisation) and when it passes (the state
// machine): both are the filter's; the store only keeps entries, atomically per update.

/** One triplet, as the filter keys it: client network ("192.0.2.0/24"), sender, recipient. */
export interface GreylistTriplet {
  readonly network: string;
  readonly sender: string;
  readonly recipient: string;
}

/** What is remembered about a triplet. */
export interface GreylistEntry extends GreylistTriplet {
  /** When the current greylisting round began (first sight, or first sight after the window). */
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
  /** Deliveries seen in this round (deferred ones included). */
  readonly attempts: number;
  /** When the triplet passed (a retry after the delay); null while it is greylisted. */
  readonly passedMs: number | null;
  /** From when the entry is forgotten: the retry window's end, or the pass lifetime's. */
  readonly expiresMs: number;
}

export interface GreylistStore {
  /**
   * Atomically read the triplet's entry (null when unknown; an expired entry not yet swept is given as
   * it is, the caller judges `expiresMs`) and store what `next` returns. Returning `prev` itself
   * writes nothing. Resolves with the entry stored.
   */
  update(
    triplet: GreylistTriplet,
    next: (prev: GreylistEntry | null) => GreylistEntry,
  ): Promise<GreylistEntry>;
  /** How many of the network's triplets have passed and not expired at `nowMs`, counting up to `atMost`. */
  passedCount(network: string, nowMs: number, atMost: number): Promise<number>;
  /** Forget entries expired at `nowMs` (and the oldest greylisted ones past a size cap); how many. */
  expire(nowMs: number): Promise<number>;
  close(): Promise<void>;
}

/** A store in a Map: for tests, and for a server that may forget greylisting state on restart. */
export class MemoryGreylistStore implements GreylistStore {
  readonly #entries = new Map<string, GreylistEntry>();
  readonly #maxEntries: number;

  constructor(opts: { readonly maxEntries?: number } = {}) {
    this.#maxEntries = opts.maxEntries ?? 100_000;
  }

  get size(): number {
    return this.#entries.size;
  }

  update(
    triplet: GreylistTriplet,
    next: (prev: GreylistEntry | null) => GreylistEntry,
  ): Promise<GreylistEntry> {
    const key = keyOf(triplet);
    const prev = this.#entries.get(key) ?? null;
    let entry: GreylistEntry;
    try {
      entry = next(prev);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (entry !== prev) {
      this.#entries.delete(key); // re-inserted last: Map order is then least recently written first
      this.#entries.set(key, { ...entry, ...pick(triplet) });
    }
    return Promise.resolve(entry);
  }

  passedCount(network: string, nowMs: number, atMost: number): Promise<number> {
    let n = 0;
    for (const e of this.#entries.values()) {
      if (n >= atMost) break;
      if (e.network === network && e.passedMs !== null && e.expiresMs > nowMs) n++;
    }
    return Promise.resolve(n);
  }

  expire(nowMs: number): Promise<number> {
    let n = 0;
    for (const [key, e] of this.#entries) {
      if (e.expiresMs <= nowMs) {
        this.#entries.delete(key);
        n++;
      }
    }
    // Over the cap, greylisted entries written longest ago go first: passed ones are worth keeping.
    for (const [key, e] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries) break;
      if (e.passedMs === null) {
        this.#entries.delete(key);
        n++;
      }
    }
    return Promise.resolve(n);
  }

  close(): Promise<void> {
    this.#entries.clear();
    return Promise.resolve();
  }
}

function pick(t: GreylistTriplet): GreylistTriplet {
  return { network: t.network, sender: t.sender, recipient: t.recipient };
}

function keyOf(t: GreylistTriplet): string {
  return JSON.stringify([t.network, t.sender, t.recipient]);
}
