// The actions a Sieve run decides on, and the rules that hold between them (RFC 5228 §2.10, §4): the
// implicit keep is cancelled by keep, fileinto, redirect and discard, and by reject (RFC 5429 §2.1),
// but not by :copy (RFC 3894 §2) nor vacation (RFC 5230 §4.7); storing into the same mailbox twice is
// one store (§2.10.3; the later :flags win, as in Pigeonhole), redirecting to one address twice is one
// redirect; reject excludes keep, fileinto, redirect and vacation and a second reject, and vacation a
// second vacation (runtime errors, so the message falls back to the implicit keep). Limits on redirects
// and on the number of actions make a runaway script an error too.
// PURE. Deliberately NOT here: carrying the actions out (delivery), vacation rules (vacation.ts).

import { assertNever } from '../../core/assert-never.ts';

export type SieveAction =
  | { readonly kind: 'keep'; readonly flags: readonly string[] }
  | {
      readonly kind: 'fileinto';
      readonly mailbox: string;
      readonly flags: readonly string[];
      /** RFC 5490 :create: make the mailbox when it is missing. */
      readonly create: boolean;
      /** RFC 3894 :copy: the implicit keep was left alone. */
      readonly copy: boolean;
    }
  | { readonly kind: 'redirect'; readonly address: string; readonly copy: boolean }
  | { readonly kind: 'reject'; readonly reason: string; readonly extended: boolean }
  | { readonly kind: 'discard' }
  | {
      readonly kind: 'vacation';
      /** Who has been answered is remembered per (handle, sender) for `seconds` (RFC 5230 §4.2). */
      readonly handle: string;
      readonly seconds: number;
      readonly subject: string;
      /** The :from address, or null: reply from the recipient. */
      readonly from: string | null;
      /** The reply text, or with `mime` a whole MIME entity (its header fields, empty line, body). */
      readonly reason: string;
      readonly mime: boolean;
      readonly addresses: readonly string[];
    };

/** A Sieve runtime error (RFC 5228 §2.10.6): the run's actions are dropped and the implicit keep done. */
export class SieveRuntimeError extends Error {}

export interface ActionLimits {
  readonly maxActions: number;
  readonly maxRedirects: number;
  /** Where keep stores: a fileinto of this name is the same store. */
  readonly defaultMailbox: string;
}

type Store = Extract<SieveAction, { kind: 'keep' | 'fileinto' }>;

function mailboxKey(name: string): string {
  // INBOX is case-insensitive in IMAP (RFC 9051 §5.1); other names are not.
  return name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
}

function addressKey(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(0, at) + address.slice(at).toLowerCase();
}

export class ActionList {
  readonly #limits: ActionLimits;
  readonly #actions: SieveAction[] = [];
  #implicitKeep = true;
  #redirects = 0;

  constructor(limits: ActionLimits) {
    this.#limits = limits;
  }

  get actions(): readonly SieveAction[] {
    return this.#actions;
  }

  get implicitKeep(): boolean {
    return this.#implicitKeep;
  }

  #find<K extends SieveAction['kind']>(kind: K): Extract<SieveAction, { kind: K }> | undefined {
    return this.#actions.find((a) => a.kind === kind) as Extract<SieveAction, { kind: K }> | undefined;
  }

  #push(action: SieveAction): void {
    if (this.#actions.length >= this.#limits.maxActions) {
      throw new SieveRuntimeError(`too many actions (limit ${this.#limits.maxActions})`);
    }
    this.#actions.push(action);
  }

  #noReject(kind: string): void {
    if (this.#find('reject')) throw new SieveRuntimeError(`${kind} conflicts with the reject action`);
  }

  add(action: SieveAction): void {
    switch (action.kind) {
      case 'keep':
      case 'fileinto':
        this.#noReject(action.kind);
        this.#store(action);
        if (action.kind === 'keep' || !action.copy) this.#implicitKeep = false;
        return;
      case 'redirect': {
        this.#noReject('redirect');
        if (!action.copy) this.#implicitKeep = false;
        const key = addressKey(action.address);
        const seen = this.#actions.findIndex((a) => a.kind === 'redirect' && addressKey(a.address) === key);
        if (seen >= 0) {
          const before = this.#actions[seen] as Extract<SieveAction, { kind: 'redirect' }>;
          this.#actions[seen] = { ...before, copy: before.copy && action.copy };
          return;
        }
        if (this.#redirects >= this.#limits.maxRedirects) {
          throw new SieveRuntimeError(`too many redirect actions (limit ${this.#limits.maxRedirects})`);
        }
        this.#redirects++;
        this.#push(action);
        return;
      }
      case 'reject': {
        const other = this.#actions.find((a) => a.kind !== 'discard');
        if (other) throw new SieveRuntimeError(`reject conflicts with the ${other.kind} action`);
        this.#implicitKeep = false;
        this.#push(action);
        return;
      }
      case 'discard':
        this.#implicitKeep = false;
        if (!this.#find('discard')) this.#push(action);
        return;
      case 'vacation':
        this.#noReject('vacation');
        if (this.#find('vacation')) throw new SieveRuntimeError('only one vacation action is allowed');
        this.#push(action);
        return;
      default:
        assertNever(action);
    }
  }

  #store(action: Store): void {
    const mailbox = action.kind === 'keep' ? this.#limits.defaultMailbox : action.mailbox;
    const key = mailboxKey(mailbox);
    const seen = this.#actions.findIndex(
      (a) =>
        (a.kind === 'keep' || a.kind === 'fileinto') &&
        mailboxKey(a.kind === 'keep' ? this.#limits.defaultMailbox : a.mailbox) === key,
    );
    if (seen < 0) {
      this.#push(action);
      return;
    }
    const before = this.#actions[seen] as Store;
    if (before.kind === 'keep') this.#actions[seen] = { ...before, flags: action.flags };
    else {
      this.#actions[seen] = {
        ...before,
        flags: action.flags,
        create: before.create || (action.kind === 'fileinto' && action.create),
        copy: before.copy && action.kind === 'fileinto' && action.copy,
      };
    }
  }
}
