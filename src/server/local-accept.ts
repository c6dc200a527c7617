// Local mail in one durable step (issue 14): the recipients of a message that the SMTP session stores
// itself, before its 250, instead of queueing them for the delivery worker. The rule it keeps
// (docs/architecture.md): at every instant each accepted copy is in exactly one durable place, and the
// 250 comes after it is there. The body the queue writer holds (inline, or a fsynced spool file that the
// store links: one copy on disk from DATA to mailbox) goes to the store with each copy's trace fields
// in front, in one group-committed transaction for all of them.
// Which recipients: those the directory resolves to local users only (an alias with forwards, and a
// recipient asking NOTIFY=SUCCESS, go through the queue, whose worker forwards and reports), each user
// under quota now. A message whose recipients are all over quota is refused (552 5.2.2) instead of
// bounced: the sender's server tells its user, and nobody receives a bounce it did not ask for. When
// only some are, those go to the queue, whose worker bounces them as before (one reply after DATA
// cannot refuse some recipients and accept the others).
// Deliberately not here: the reply, the queue commit of the other recipients (message-intake.ts).

import type { EnvelopeRecipient } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import type { StoredBody } from '../db/body-sink.ts';
import type { Directory, QuotaLimits } from '../directory/directory.ts';
import { deliveryOverQuota, overQuotaFields } from '../directory/quota.ts';
import type { HeaderSummary } from '../protocol/headers.ts';
import { encodeStructure } from '../protocol/mime/codec.ts';
import { withFieldsInFront, type MessageStructure } from '../protocol/mime/structure.ts';
import { acceptDeliveryKey, finalDeliveryHead, storedSizeBytes } from '../store/final-delivery.ts';
import { INBOX, type AcceptedCopy, type MailboxStore } from '../store/mailbox-store.ts';

/** Quota limits read once per transaction (RCPT, then end of data): the user's limits, by user. */
export type QuotaLimitsMemo = Map<string, QuotaLimits | null>;

/** The users a recipient reaches when it reaches nothing else (no forwards); null: not for the session. */
export type LocalUsers = readonly string[] | null;

export interface LocalPlan {
  /** Recipient index → the users the session stores the message for. */
  readonly direct: ReadonlyMap<number, readonly string[]>;
  /** Set when the message must be refused: every recipient is over quota. */
  readonly overQuota: boolean;
  /** Recipient indexes with a user over quota (LMTP refuses those alone). */
  readonly full: ReadonlySet<number>;
}

export async function planLocal(
  deps: { readonly directory: Directory; readonly store: MailboxStore; readonly log: Logger },
  args: {
    readonly limits: QuotaLimitsMemo;
    readonly recipients: readonly EnvelopeRecipient[];
    readonly usersOf: (recipient: EnvelopeRecipient) => LocalUsers;
    readonly sender: string;
    readonly sizeBytes: number;
  },
): Promise<LocalPlan> {
  const direct = new Map<number, readonly string[]>();
  const full = new Set<number>();
  for (const [index, rcpt] of args.recipients.entries()) {
    const users = args.usersOf(rcpt);
    if (users === null || users.length === 0) continue;
    // The worker sends the success DSN; a copy stored here would go unreported.
    if (rcpt.notify?.includes('SUCCESS') === true) continue;
    let anyFull = false;
    for (const user of users) {
      const size = storedSizeBytes(args.sizeBytes, args.sender, user);
      if (await isOverQuota({ ...deps, limits: args.limits }, user, size, rcpt.address)) {
        anyFull = true;
      }
    }
    if (anyFull) {
      full.add(index);
      continue;
    }
    direct.set(index, users);
  }
  return { direct, overQuota: full.size > 0 && full.size === args.recipients.length, full };
}

/** Whether storing `sizeBytes` more (and one message) would take the user over a quota; logged when so. */
export async function isOverQuota(
  deps: {
    readonly directory: Directory;
    readonly store: MailboxStore;
    readonly log: Logger;
    readonly limits: QuotaLimitsMemo;
  },
  user: string,
  sizeBytes: number,
  rcpt: string,
  stage: 'rcpt' | 'accept' = 'accept',
): Promise<boolean> {
  const exceeded = await deliveryOverQuota(
    async () => {
      let limits = deps.limits.get(user);
      if (limits === undefined) {
        limits = await deps.directory.getQuota(user);
        deps.limits.set(user, limits);
      }
      return limits;
    },
    () => deps.store.quota(user),
    sizeBytes,
  );
  if (exceeded === null) return false;
  deps.log.warn(Events.deliveryOverQuota, { rcpt, user, ...overQuotaFields(exceeded, sizeBytes), stage });
  return true;
}

/** Store the planned copies in one durable commit; throws when the store failed (nothing stored). */
export async function storeLocal(
  deps: { readonly store: MailboxStore; readonly log: Logger; readonly nowMs: number },
  args: {
    readonly messageId: string;
    readonly plan: LocalPlan;
    readonly recipients: readonly EnvelopeRecipient[];
    readonly sender: string;
    readonly folder: string | undefined;
    /** Authentication-Results: and the like, known at end of data; stored in front of the body. */
    readonly prefix: Uint8Array | undefined;
    readonly body: StoredBody;
    /** The body's structure as it streamed in, or null when it was not scanned. */
    readonly structure: MessageStructure | null;
    readonly summary: HeaderSummary;
  },
): Promise<void> {
  const copies: (AcceptedCopy & { readonly rcpt: string })[] = [];
  for (const [index, users] of args.plan.direct) {
    for (const user of users) {
      const head = finalDeliveryHead(args.sender, user, args.prefix ?? null);
      const shifted = args.structure === null ? null : withFieldsInFront(args.structure, head.byteLength);
      copies.push({
        rcpt: args.recipients[index]!.address,
        user,
        mailbox: args.folder ?? INBOX,
        deliveryKey: acceptDeliveryKey(args.messageId, index, user),
        flags: [],
        head,
        structure: shifted === null ? null : encodeStructure(shifted),
      });
    }
  }
  const stored = await deps.store.deliverAccepted({
    body: args.body,
    // IMAP INTERNALDATE of delivered mail is the time of final delivery (RFC 3501 §2.3.3).
    internalDateMs: deps.nowMs,
    summary: args.summary,
    copies,
  });
  for (const [i, c] of copies.entries()) {
    deps.log.event(Events.deliveryLocal, {
      queueId: args.messageId,
      rcpt: c.rcpt,
      user: c.user,
      uid: stored[i]!.uid,
      id: stored[i]!.id,
      messageId: args.summary.messageId,
      sizeBytes: args.body.sizeBytes,
      stage: 'accept',
    });
  }
}
