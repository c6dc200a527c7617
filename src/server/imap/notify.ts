// NOTIFY (RFC 5465) for one connection: NOTIFY SET checks the request (protocol/imap/notify.ts), sends the
// initial STATUS responses (§3.1 STATUS), and watches the store: each non-selected folder a filter covers
// with message events through the store's change feed (watch()), and the user's folder list through
// watchFolderList(). What it hears is queued and written by flush(), which the driver calls at any point
// where untagged data may go out, between commands too (§5): STATUS for new, expunged and flag-changed
// mail in non-selected folders (§5.2, §5.3, §5.1), LIST for created, deleted and renamed folders
// (§5.4, with OLDNAME) and for subscription changes (§5.5).
// Deliberately NOT here: the selected folder's updates (the driver's sendUpdates(), which asks
// `selected` whether to push them at once and which fetch attributes follow a new message), METADATA and
// ANNOTATE events (refused with NO [BADEVENT]), NOTIFICATIONOVERFLOW (changes are coalesced per folder,
// so the queue is bounded by the number of folders and folder list changes).

import { assertNever } from '../../core/assert-never.ts';
import type { CommandOf, Completion, ImapContext } from './context.ts';
import { bad, mailboxArg, no, ok, wire } from './context.ts';
import { folderStatus, type FolderCounts } from './status.ts';
import {
  checkNotify,
  eventsFor,
  statusItems,
  SUPPORTED_EVENTS,
  type NotifyEvents,
  type NotifyPlan,
} from '../../protocol/imap/notify.ts';
import { formatListResponse, formatMailbox, formatStatusResponse } from '../../protocol/imap/format.ts';
import {
  MailboxError,
  normalizeMailboxName,
  SEPARATOR,
  type FolderInfo,
  type FolderListEvent,
  type ImapMailboxStore,
} from '../../store/mailbox-store.ts';

export interface NotifyHost {
  readonly user: string;
  readonly store: ImapMailboxStore;
  /** The selected folder as the store names it, or null: it is never reported by STATUS (§5.2). */
  selectedFolder(): string | null;
  /** Something waits to be sent: the driver calls flush() at the next point that allows it. */
  wake(): void;
}

/** What a STATUS response last told the client of a folder. */
interface Told {
  readonly messages: number;
  readonly uidNext: number;
  readonly uidValidity: number;
  readonly highestModseq: number;
}

export class Notifier {
  readonly #host: NotifyHost;
  #plan: NotifyPlan | null = null;
  /** Folders watched for message events, with their unwatch functions. */
  readonly #watched = new Map<string, () => void>();
  #unwatchList: (() => void) | null = null;
  #subscribed = new Set<string>();
  readonly #told = new Map<string, Told>();
  /** Folders whose STATUS may have changed since last told. */
  readonly #pendingStatus = new Set<string>();
  readonly #pendingList: FolderListEvent[] = [];
  #listChanged = false;

  constructor(host: NotifyHost) {
    this.#host = host;
  }

  /** SELECTED / SELECTED-DELAYED (§6.1), or null: the selected folder is updated only at commands. */
  get selected(): NotifyPlan['selected'] {
    return this.#plan?.selected ?? null;
  }

  /** Notifications wait for flush(). */
  get pending(): boolean {
    return this.#pendingStatus.size > 0 || this.#pendingList.length > 0 || this.#listChanged;
  }

  /** NOTIFY SET or NOTIFY NONE (§3.1). */
  async command(ctx: ImapContext, cmd: CommandOf<'notify'>): Promise<Completion> {
    if (cmd.set === null) {
      this.stop();
      return ok('NOTIFY completed');
    }
    const decode = (name: string): string | null => {
      const decoded = mailboxArg(ctx, name);
      return decoded === null ? null : normalizeMailboxName(decoded);
    };
    const checked = checkNotify(cmd.set.status, cmd.set.groups, decode);
    if (!checked.ok) {
      return checked.status === 'BAD'
        ? bad(checked.text)
        : no(checked.text, { kind: 'BADEVENT', events: SUPPORTED_EVENTS });
    }
    this.stop();
    this.#plan = checked.plan;
    if (checked.plan.others.length > 0) {
      this.#unwatchList = this.#host.store.watchFolderList(this.#host.user, (e) => this.#onList(e));
    }
    const folders = await this.#resync();
    if (checked.plan.status) {
      const selected = this.#host.selectedFolder();
      for (const f of folders) {
        if (!this.#watched.has(f.name) || f.name === selected) continue;
        await this.#sendStatus(ctx, f.name, true);
      }
    }
    return ok('NOTIFY completed');
  }

  /** NOTIFY NONE, UNAUTHENTICATE, the connection's end: no more watching. */
  stop(): void {
    this.#plan = null;
    for (const unwatch of this.#watched.values()) unwatch();
    this.#watched.clear();
    this.#unwatchList?.();
    this.#unwatchList = null;
    this.#told.clear();
    this.#pendingStatus.clear();
    this.#pendingList.length = 0;
    this.#listChanged = false;
  }

  /** Write what is queued: LIST responses for folder list changes, then STATUS for changed folders. */
  async flush(ctx: ImapContext): Promise<void> {
    const plan = this.#plan;
    if (plan === null) return;
    if (this.#listChanged || this.#pendingList.length > 0) {
      this.#listChanged = false;
      const events = this.#pendingList.splice(0);
      const subscribedBefore = this.#subscribed;
      const folders = await this.#resync();
      for (const e of events) {
        const line = this.#listLine(ctx, plan, e, folders, subscribedBefore);
        if (line !== null) ctx.write(line);
      }
    }
    const names = [...this.#pendingStatus];
    this.#pendingStatus.clear();
    for (const name of names) await this.#sendStatus(ctx, name, false);
  }

  #eventsOf(plan: NotifyPlan, name: string): NotifyEvents | null {
    return eventsFor(plan, name, this.#subscribed.has(name));
  }

  /** Watch exactly the folders a filter covers with message events; returns the folder list read. */
  async #resync(): Promise<FolderInfo[]> {
    const plan = this.#plan;
    const { store, user } = this.#host;
    const [folders, subscriptions] = await Promise.all([store.folders(user), store.subscriptions(user)]);
    this.#subscribed = new Set(subscriptions);
    if (plan !== this.#plan || plan === null) return folders;
    const want = new Set(
      folders
        .filter((f) => f.mailboxId !== null && !f.attributes.includes('\\Noselect'))
        .filter((f) => {
          const events = this.#eventsOf(plan, f.name);
          return events !== null && statusItems(events).length > 0;
        })
        .map((f) => f.name),
    );
    for (const [name, unwatch] of [...this.#watched]) {
      if (want.has(name)) continue;
      unwatch();
      this.#watched.delete(name);
      this.#told.delete(name);
    }
    for (const name of want) {
      if (this.#watched.has(name)) continue;
      this.#watched.set(
        name,
        store.watch(user, name, (e) => {
          if (e.kind !== 'changed' || name === this.#host.selectedFolder()) return;
          this.#pendingStatus.add(name);
          this.#host.wake();
        }),
      );
    }
    return folders;
  }

  #onList(event: FolderListEvent): void {
    this.#pendingList.push(event);
    this.#listChanged = true;
    this.#host.wake();
  }

  /** STATUS with the items the folder's filter asks for, when they changed since last told (or `force`). */
  async #sendStatus(ctx: ImapContext, name: string, force: boolean): Promise<void> {
    const plan = this.#plan;
    if (plan === null || name === this.#host.selectedFolder()) return;
    const events = this.#eventsOf(plan, name);
    if (events === null) return;
    const items = statusItems(events);
    if (items.length === 0) return;
    let s: FolderCounts;
    try {
      s = await folderStatus(ctx.store, ctx.user, name);
    } catch (err) {
      // Deleted meanwhile: the MailboxName event (if asked for) tells the client.
      if (err instanceof MailboxError) return;
      throw err;
    }
    const before = this.#told.get(name);
    const now: Told = {
      messages: s.messages,
      uidNext: s.uidNext,
      uidValidity: s.uidValidity,
      highestModseq: s.highestModseq,
    };
    this.#told.set(name, now);
    const changed =
      before === undefined ||
      before.uidValidity !== now.uidValidity ||
      before.messages !== now.messages ||
      before.uidNext !== now.uidNext ||
      (events.flagChange && before.highestModseq !== now.highestModseq);
    if (!force && !changed) return;
    const values = items.map((item): [string, number] => {
      switch (item) {
        case 'MESSAGES':
          return [item, now.messages];
        case 'UIDNEXT':
          return [item, now.uidNext];
        case 'UIDVALIDITY':
          return [item, now.uidValidity];
        default:
          return [item, now.highestModseq];
      }
    });
    ctx.write(formatStatusResponse(name, values, wire(ctx)));
  }

  /** The LIST response for one folder list change, or null when no filter asked for it (§5.4, §5.5). */
  #listLine(
    ctx: ImapContext,
    plan: NotifyPlan,
    e: FolderListEvent,
    folders: readonly FolderInfo[],
    subscribedBefore: ReadonlySet<string>,
  ): string | null {
    const wants = (name: string, what: 'mailboxName' | 'subscriptionChange'): boolean => {
      const subscribed = this.#subscribed.has(name) || subscribedBefore.has(name);
      return eventsFor(plan, name, subscribed)?.[what] === true;
    };
    const attributes = (name: string): string[] => {
      const f = folders.find((x) => x.name === name);
      // RFC 5258 §3: a folder that is gone is \NonExistent (and so \Noselect, RFC 9051 §7.3.1).
      const attrs = f === undefined ? ['\\NonExistent', '\\Noselect'] : [...f.attributes];
      if (f === undefined && this.#subscribed.has(name)) attrs.push('\\Subscribed');
      return attrs;
    };
    const w = wire(ctx);
    switch (e.kind) {
      case 'created':
      case 'deleted':
        if (!wants(e.name, 'mailboxName')) return null;
        return formatListResponse('LIST', attributes(e.name), SEPARATOR, e.name, w);
      case 'renamed':
        if (!wants(e.from, 'mailboxName') && !wants(e.to, 'mailboxName')) return null;
        return formatListResponse('LIST', attributes(e.to), SEPARATOR, e.to, w, [
          `"OLDNAME" (${formatMailbox(e.from, w)})`,
        ]);
      case 'subscribed':
      case 'unsubscribed':
        if (!wants(e.name, 'subscriptionChange')) return null;
        return formatListResponse('LIST', attributes(e.name), SEPARATOR, e.name, w);
      default:
        return assertNever(e);
    }
  }
}
