// Messages whose mailbox delivery failed on a full disk, waiting for the free-space reserve
// (limits.min_free_bytes, Postfix's queue_minfree) to be met again: while any wait, free space is polled
// every pollMs, and once the reserve is met they are handed back (the worker makes them due at once)
// instead of sleeping until their next retry on the schedule, minutes or hours away.
// A message waits only when the reserve was short right after its failure: a write that failed while
// space looked plentiful (a quota, a message larger than the room left) would fail again at once, so it
// keeps its scheduled retry rather than spinning on a retry per poll.
// Deliberately NOT here: what "due at once" means (the worker flushes the message in the queue), and
// refusing new mail below the reserve (the SMTP session driver does that at MAIL).
// XXX: only for the life of the process; after a restart such messages wait for their scheduled retry.

/** Free space of the filesystem that mailbox deliveries write to (net/disk-space.ts DiskSpace). */
export interface FreeSpace {
  /** Bytes available, or null when the filesystem cannot say. */
  freeBytes(): Promise<number | null>;
}

export interface SpaceWaitOptions {
  readonly space: FreeSpace;
  readonly reserveBytes: number;
  readonly pollMs: number;
  /** The reserve is met again: these messages may be tried now. */
  readonly onSpace: (ids: readonly string[]) => void;
}

export class SpaceWait {
  readonly #options: SpaceWaitOptions;
  readonly #waiting = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #polling = false;
  #stopped = false;

  constructor(options: SpaceWaitOptions) {
    this.#options = options;
  }

  /** Message `id` failed on a full disk: wait for space, if space is what it lacks. */
  async add(id: string): Promise<void> {
    if (this.#stopped) return;
    const free = await this.#free();
    if (free === null || this.#met(free)) return;
    this.again(id);
  }

  /** Hand `id` back at the next poll that finds the reserve met (it was busy when handed back). */
  again(id: string): void {
    if (this.#stopped) return;
    this.#waiting.add(id);
    if (this.#timer === null) {
      this.#timer = setInterval(() => void this.#poll(), this.#options.pollMs);
      // The listeners keep the process alive; this timer should not.
      this.#timer.unref();
    }
  }

  /** How many messages wait (tests, logs). */
  get size(): number {
    return this.#waiting.size;
  }

  stop(): void {
    this.#stopped = true;
    this.#clear();
    this.#waiting.clear();
  }

  async #poll(): Promise<void> {
    // A statfs slower than the interval must not pile up polls.
    if (this.#polling) return;
    this.#polling = true;
    try {
      const free = await this.#free();
      if (free === null || !this.#met(free) || this.#stopped) return;
      const ids = [...this.#waiting];
      this.#waiting.clear();
      this.#clear();
      this.#options.onSpace(ids);
    } finally {
      this.#polling = false;
    }
  }

  #met(free: number): boolean {
    return free >= this.#options.reserveBytes && free > 0;
  }

  async #free(): Promise<number | null> {
    return this.#options.space.freeBytes().catch(() => null);
  }

  #clear(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
