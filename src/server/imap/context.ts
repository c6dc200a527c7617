// What an IMAP command handler is given: the logged-in user, the store, the selected view, what the
// client has enabled, and a way to write untagged responses. Handlers (mailboxes.ts, messages.ts,
// append.ts) return a Completion; the driver writes it tagged, after any pending updates, and is the
// only one that changes the session's state. Store refusals (MailboxError) map to response codes in
// one place: completionOf() below.

import { assertNever } from '../../core/assert-never.ts';
import type { Logger } from '../../core/ports.ts';
import type { ImapCommand } from '../../protocol/imap/command.ts';
import { decodeMailboxName } from '../../protocol/imap/mailbox-name.ts';
import type { ResponseCode, Status, WireOptions } from '../../protocol/imap/format.ts';
import type { SelectedView } from '../../protocol/imap/selected.ts';
import type { ImapState } from '../../protocol/imap/session.ts';
import type { Directory } from '../../directory/directory.ts';
import { overQuota } from '../../directory/quota.ts';
import { MailboxError, type ImapMailboxStore } from '../../store/mailbox-store.ts';
import type { SharedUids } from './shared-uids.ts';

/** The AST member a command kind belongs to (several kinds share one shape, e.g. delete/subscribe). */
export type CommandOf<K extends ImapCommand['kind']> = ImapCommand extends infer C
  ? C extends { readonly kind: infer CK }
    ? K extends CK
      ? C
      : never
    : never
  : never;

export interface Completion {
  readonly status: Status;
  readonly code: ResponseCode | null;
  readonly text: string;
  /** The state after the command, when it changes. */
  readonly state?: ImapState;
}

export function ok(text: string, code: ResponseCode | null = null, state?: ImapState): Completion {
  return state === undefined ? { status: 'OK', code, text } : { status: 'OK', code, text, state };
}

export function no(text: string, code: ResponseCode | null = null): Completion {
  return { status: 'NO', code, text };
}

export function bad(text: string, code: ResponseCode | null = null): Completion {
  return { status: 'BAD', code, text };
}

/** What the client turned on (ENABLE, or implied by use: RFC 7162 §3.1). */
export interface Enabled {
  condstore: boolean;
  qresync: boolean;
  /** UTF8=ACCEPT or IMAP4rev2 enabled: UTF-8 in quoted strings and mailbox names. */
  utf8: boolean;
  imap4rev2: boolean;
}

export interface ImapContext {
  readonly user: string;
  readonly store: ImapMailboxStore;
  /** Quota limits per user (RFC 9208). */
  readonly directory: Pick<Directory, 'getQuota'>;
  /** One UID array per folder state for every session of the process (shared-uids.ts). */
  readonly sharedUids: SharedUids;
  readonly log: Logger;
  readonly enabled: Enabled;
  readonly nowMs: () => number;
  /** The selected folder, or null. Handlers that select or close set it through select()/deselect(). */
  readonly view: SelectedView | null;
  /** Queue an untagged response (or any bytes) in order. */
  write(text: string | Uint8Array): void;
  /** Write with backpressure (large FETCH literals). */
  send(data: string | Uint8Array): Promise<void>;
  /** The saved SEARCHRES result (RFC 5182 `$`), UIDs. */
  savedResult: readonly number[] | null;
  readonly appendLimitBytes: number;
}

export function wire(ctx: Pick<ImapContext, 'enabled'>): WireOptions {
  return { utf8: ctx.enabled.utf8 };
}

/**
 * The client's mailbox argument as a store name. A name that is not valid modified UTF-7 (a stray `&`)
 * is taken as written, as Dovecot does: it names nothing that exists, so SELECT answers NO and LIST
 * finds nothing, rather than BAD. Null only for what no folder name may hold (controls, broken UTF-8).
 */
export function mailboxArg(ctx: Pick<ImapContext, 'enabled'>, name: string): string | null {
  const decoded = decodeMailboxName(name, ctx.enabled.utf8);
  if (decoded !== null) return decoded;
  return /[\x00-\x1f\x7f]/.test(name) || !name.isWellFormed() ? null : name;
}

/** A name a client may create: valid in its mode (CREATE, RENAME's target), else null. */
export function newMailboxArg(ctx: Pick<ImapContext, 'enabled'>, name: string): string | null {
  return decodeMailboxName(name, ctx.enabled.utf8);
}

/**
 * The refusals several commands give, in one place (the texts are generic; the log has the detail).
 * A Completion is a value, so each entry is shared as it is.
 */
export const Refusals = {
  /** BAD: not a mailbox name in this client's mode (modified UTF-7, or UTF-8 once enabled). */
  badName: bad('Mailbox name is not valid in this client mode'),
  /** NO [CANNOT]: a name no new folder may take (CREATE, RENAME's target). */
  cannotName: no('Mailbox name is not valid in this client mode', { kind: 'CANNOT' }),
  nonexistent: no('Mailbox does not exist', { kind: 'NONEXISTENT' }),
  /** An APPEND/COPY/MOVE target that is missing (RFC 9051 §6.3.12). */
  tryCreate: no('Mailbox does not exist', { kind: 'TRYCREATE' }),
  readOnly: no('Mailbox is read-only', { kind: 'READ-ONLY' }),
  tooBig: no('Message too large', { kind: 'TOOBIG' }),
  invalidFlag: bad('Invalid flag'),
} as const satisfies Record<string, Completion>;

/**
 * A store refusal as a tagged NO. `target` marks an APPEND/COPY/MOVE destination: a missing one is
 * [TRYCREATE] (RFC 9051 §6.3.12), elsewhere [NONEXISTENT] (RFC 5530).
 */
export function completionOf(err: unknown, target = false): Completion {
  if (!(err instanceof MailboxError)) throw err;
  switch (err.code) {
    case 'nonexistent':
      return target ? Refusals.tryCreate : Refusals.nonexistent;
    case 'alreadyexists':
      return no('Mailbox already exists', { kind: 'ALREADYEXISTS' });
    case 'noselect':
      return no('Mailbox cannot hold messages (\\Noselect)', { kind: 'CANNOT' });
    case 'cannot':
      return no('Not allowed', { kind: 'CANNOT' });
    case 'invalid':
      return no('Invalid mailbox name or flag', { kind: 'CANNOT' });
    default:
      return assertNever(err.code);
  }
}

/** NO [OVERQUOTA] when adding this much would pass the user's limits (RFC 9208 §4.3), else null. */
export async function quotaRefusal(
  ctx: Pick<ImapContext, 'user' | 'store' | 'directory'>,
  adding: { readonly bytes: number; readonly messages: number },
): Promise<Completion | null> {
  const limits = await ctx.directory.getQuota(ctx.user);
  if (limits === null || (limits.storageBytes === null && limits.messages === null)) return null;
  const over = overQuota(limits, await ctx.store.quota(ctx.user), adding);
  return over === null ? null : no(`Quota exceeded (${over})`, { kind: 'OVERQUOTA' });
}
