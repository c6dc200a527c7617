// The session thread's side of coordinator.ts: AuthLimits, SendRates, UserSlots and MaildropLocks whose
// every answer comes from the main thread (a round trip of ~40 µs idle, ~5 µs of the main thread's time
// under load: docs/workers.md M3). A call the main thread cannot answer (it is stopping, the port is
// closed) fails, and the session answers as it does for any failed check (a temporary error).

import type { AuthLimits, SendRates } from '../../policy/auth-guard.ts';
import type { MaildropLock, MaildropLocks } from '../../store/maildrop-locks.ts';
import type { UserSlots } from '../imap/shared-uids.ts';
import type { CoordinatorAnswers, CoordinatorCall } from './messages.ts';

export type PostCall = (id: number, call: CoordinatorCall) => void;

export class CoordinatorClient {
  readonly #post: PostCall;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #closed: string | null = null;

  constructor(post: PostCall) {
    this.#post = post;
  }

  /** An answer from the main thread. */
  settle(id: number, ok: boolean, value: unknown): void {
    const waiter = this.#waiting.get(id);
    if (waiter === undefined) return;
    this.#waiting.delete(id);
    if (ok) waiter.resolve(value);
    else waiter.reject(new Error(`coordinator: ${String(value)}`));
  }

  /** No more answers will come: every call waiting, and every later one, fails. */
  close(reason: string): void {
    this.#closed = reason;
    for (const waiter of this.#waiting.values()) waiter.reject(new Error(`coordinator: ${reason}`));
    this.#waiting.clear();
  }

  call<C extends CoordinatorCall>(call: C): Promise<CoordinatorAnswers[C['op']]> {
    if (this.#closed !== null) return Promise.reject(new Error(`coordinator: ${this.#closed}`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#post(id, call);
    });
  }

  readonly auth: AuthLimits = {
    check: (ip, account) => this.call({ op: 'auth.check', ip, account }),
    recordFailure: (ip, account) => this.call({ op: 'auth.failure', ip, account }),
    recordSuccess: async (ip) => void (await this.call({ op: 'auth.success', ip })),
  };

  readonly rates: SendRates = {
    allows: (user, limits, add) => this.call({ op: 'rate.allows', user, limits, add }),
    record: async (user, recipients) => void (await this.call({ op: 'rate.record', user, recipients })),
  };

  readonly slots: UserSlots = {
    acquire: (user, max) => this.call({ op: 'slots.acquire', user, max }),
    release: (user) => void this.call({ op: 'slots.release', user }).catch(() => undefined),
  };

  readonly maildrops: MaildropLocks = {
    acquire: async (user, mailbox): Promise<MaildropLock | null> => {
      const token = await this.call({ op: 'maildrop.acquire', user, mailbox });
      if (token === null) return null;
      let released = false;
      return {
        release: async () => {
          if (released) return;
          released = true;
          await this.call({ op: 'maildrop.release', token }).catch(() => undefined);
        },
      };
    },
  };
}
