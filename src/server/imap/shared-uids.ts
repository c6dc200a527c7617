// One copy of a folder's UID list for all the sessions that have it selected in the same state: the
// key is (user, folder, UIDVALIDITY, HIGHESTMODSEQ), which fixes the list exactly (every change raises
// the modseq), so an array built by one session is the array every other session at that modseq would
// build. SELECT takes it instead of reading every UID again, and a view that rebuilds its sequence
// (selected.ts) swaps in the copy others hold. 10,000 IDLE clients on one INBOX hold its UIDs once.
// Bounded: the latest state of at most MAX_FOLDERS folders; older arrays live as long as a view holds them.

const MAX_FOLDERS = 4096;

interface Entry {
  readonly uidValidity: number;
  readonly modseq: number;
  readonly uids: Uint32Array;
}

export class SharedUids {
  private readonly folders = new Map<string, Entry>();

  private static key(user: string, folder: string): string {
    return `${user}\u0000${folder}`;
  }

  /** The UIDs of the folder at exactly this state, when some session built them. */
  get(user: string, folder: string, uidValidity: number, modseq: number): Uint32Array | null {
    const e = this.folders.get(SharedUids.key(user, folder));
    return e !== undefined && e.uidValidity === uidValidity && e.modseq === modseq ? e.uids : null;
  }

  /** Offer a list built at this state; returns the one to keep (an equal, already shared one if any). */
  share(user: string, folder: string, uidValidity: number, modseq: number, uids: Uint32Array): Uint32Array {
    const key = SharedUids.key(user, folder);
    const e = this.folders.get(key);
    if (e !== undefined && e.uidValidity === uidValidity && e.modseq === modseq) return e.uids;
    if (e === undefined || e.uidValidity !== uidValidity || modseq > e.modseq) {
      this.folders.delete(key);
      this.folders.set(key, { uidValidity, modseq, uids });
      if (this.folders.size > MAX_FOLDERS) {
        const oldest = this.folders.keys().next();
        if (oldest.done !== true) this.folders.delete(oldest.value);
      }
    }
    return uids;
  }
}

/**
 * How many IMAP connections each user holds ([imap] max_connections_per_user). The count must be one
 * for the process: with sessions on worker threads the counter lives on the main thread and sessions
 * reach it through this interface (server/coordinator.ts).
 */
export interface UserSlots {
  /** Take one of the user's `max` slots; false when all are taken. */
  acquire(user: string, max: number): boolean | Promise<boolean>;
  /** Give back a slot acquire() granted. */
  release(user: string): void;
}

export class UserSlotCounter implements UserSlots {
  readonly #held = new Map<string, number>();

  acquire(user: string, max: number): boolean {
    const n = this.#held.get(user) ?? 0;
    if (n >= max) return false;
    this.#held.set(user, n + 1);
    return true;
  }

  release(user: string): void {
    const n = (this.#held.get(user) ?? 1) - 1;
    if (n <= 0) this.#held.delete(user);
    else this.#held.set(user, n);
  }

  /** Slots held by a user now (tests, leak checks). */
  held(user: string): number {
    return this.#held.get(user) ?? 0;
  }
}

/**
 * What the IMAP sessions of one thread share, across listeners and reload generations: the UID arrays
 * above (a cache: one per thread is only a question of memory), and the per-user connection slots.
 */
export interface ImapSharedState {
  readonly sharedUids: SharedUids;
  readonly userSlots: UserSlots;
}

export function imapSharedState(userSlots: UserSlots = new UserSlotCounter()): ImapSharedState {
  return { sharedUids: new SharedUids(), userSlots };
}
