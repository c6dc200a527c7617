// Exclusive access to a maildrop: a POP3 session holds its maildrop from login to QUIT (RFC 1939 §8,
// "the POP3 server then acquires an exclusive-access lock on the maildrop"), and a second login is
// refused with -ERR [IN-USE] (RFC 2449 §8.1.1) instead of both sessions numbering and deleting the same
// messages. The lock is advisory and POP3's alone: delivery and IMAP never take it (an IMAP expunge
// during a POP3 session is safe, the store's snapshot and open files see to that).
// The in-process implementation is enough while one `tern serve` owns a data directory (data-dir-lock.ts
// enforces that); a multi-node store puts another implementation (Redis SET NX PX with a token and a
// renewed lease) behind the same interface. Maildrops are named as the store names them: the owner
// without case, INBOX without case, other mailbox names as given.

import { normalizeMailboxName, normalizeUser } from './mailbox-store.ts';

export interface MaildropLock {
  /** Give the maildrop back; safe to call more than once (later calls do nothing). */
  release(): Promise<void>;
}

export interface MaildropLocks {
  /** The lock, or null when another session holds this maildrop now. Never waits for a holder. */
  acquire(user: string, mailbox: string): Promise<MaildropLock | null>;
}

export function maildropKey(user: string, mailbox: string): string {
  // JSON keeps the pair unambiguous whatever characters either part holds.
  return JSON.stringify([normalizeUser(user), normalizeMailboxName(mailbox)]);
}

export class InProcessMaildropLocks implements MaildropLocks {
  readonly #held = new Set<string>();

  /** Maildrops held now (for tests and leak checks). */
  get held(): number {
    return this.#held.size;
  }

  acquire(user: string, mailbox: string): Promise<MaildropLock | null> {
    const key = maildropKey(user, mailbox);
    if (this.#held.has(key)) return Promise.resolve(null);
    this.#held.add(key);
    let released = false;
    return Promise.resolve({
      release: () => {
        // Only the first release frees the key: a stale handle must not free a later holder's lock.
        if (!released) this.#held.delete(key);
        released = true;
        return Promise.resolve();
      },
    });
  }
}
