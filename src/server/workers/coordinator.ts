// The limits that must be exact for the whole process, served to session threads. Each call runs on the
// main thread against the one ProcessLimits and the one maildrop lock table, one after another, so two
// threads get exactly the answers one thread would (two failures from one IP on two threads lock it at
// the threshold, never one later). Per session thread a ledger of what it holds (maildrop locks, IMAP
// user slots): when the thread dies, `releaseAll` gives back everything its sessions held.
// coordinator-client.ts is the other end: the same interfaces (AuthLimits, SendRates, UserSlots,
// MaildropLocks) on the session thread.

import type { MaildropLock, MaildropLocks } from '../../store/maildrop-locks.ts';
import type { ProcessLimits } from '../listeners.ts';
import type { CoordinatorAnswers, CoordinatorCall } from './messages.ts';

export class Coordinator {
  readonly #limits: ProcessLimits;
  readonly #maildrops: MaildropLocks;
  /** Maildrop locks this thread's sessions hold, by the token the thread was given. */
  readonly #locks = new Map<number, MaildropLock>();
  #nextToken = 1;
  /** IMAP user slots this thread's sessions hold. */
  readonly #slots = new Map<string, number>();
  #released = false;

  constructor(limits: ProcessLimits, maildrops: MaildropLocks) {
    this.#limits = limits;
    this.#maildrops = maildrops;
  }

  /** Locks and slots held now (tests, leak checks). */
  get held(): { readonly maildrops: number; readonly slots: number } {
    let slots = 0;
    for (const n of this.#slots.values()) slots += n;
    return { maildrops: this.#locks.size, slots };
  }

  async answer<C extends CoordinatorCall>(call: C): Promise<CoordinatorAnswers[C['op']]> {
    return (await this.#answer(call)) as CoordinatorAnswers[C['op']];
  }

  async #answer(call: CoordinatorCall): Promise<CoordinatorAnswers[CoordinatorCall['op']]> {
    const limits = this.#limits;
    switch (call.op) {
      case 'auth.check':
        return limits.authGuard.check(call.ip, call.account);
      case 'auth.failure':
        return limits.authGuard.recordFailure(call.ip, call.account);
      case 'auth.success':
        await limits.authGuard.recordSuccess(call.ip);
        return null;
      case 'rate.allows':
        return limits.rateLimiter.allows(call.user, call.limits, call.add);
      case 'rate.record':
        await limits.rateLimiter.record(call.user, call.recipients);
        return null;
      case 'slots.acquire': {
        if (this.#released || !limits.userSlots.acquire(call.user, call.max)) return false;
        this.#slots.set(call.user, (this.#slots.get(call.user) ?? 0) + 1);
        return true;
      }
      case 'slots.release': {
        const n = this.#slots.get(call.user) ?? 0;
        // Only what this thread holds: a stale release after releaseAll must not free another's slot.
        if (n === 0) return null;
        if (n === 1) this.#slots.delete(call.user);
        else this.#slots.set(call.user, n - 1);
        limits.userSlots.release(call.user);
        return null;
      }
      case 'maildrop.acquire': {
        if (this.#released) return null;
        const lock = await this.#maildrops.acquire(call.user, call.mailbox);
        if (lock === null) return null;
        if (this.#released) {
          await lock.release();
          return null;
        }
        const token = this.#nextToken++;
        this.#locks.set(token, lock);
        return token;
      }
      case 'maildrop.release': {
        const lock = this.#locks.get(call.token);
        this.#locks.delete(call.token);
        await lock?.release();
        return null;
      }
      default:
        return call satisfies never;
    }
  }

  /** The thread is gone: give back every lock and slot its sessions held; later calls get nothing. */
  async releaseAll(): Promise<void> {
    this.#released = true;
    for (const [user, n] of this.#slots) for (let i = 0; i < n; i++) this.#limits.userSlots.release(user);
    this.#slots.clear();
    const locks = [...this.#locks.values()];
    this.#locks.clear();
    await Promise.all(locks.map((l) => l.release()));
  }
}
