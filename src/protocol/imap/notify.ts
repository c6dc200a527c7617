// NOTIFY (RFC 5465) rules that need no I/O: checking a parsed NOTIFY SET (§3.1, §5, §6) into a plan,
// which filter governs a mailbox (§6), and which STATUS items tell a client about a mailbox that is not
// selected (§5.2-§5.3). Pure.
// Deliberately NOT here: watching the store, writing responses, decoding mailbox names (the driver's
// notify.ts does those and passes names in as the store spells them), METADATA and ANNOTATE events
// (Tern has neither, so they are refused with BADEVENT as §3.1 asks).

import { assertNever } from '../../core/assert-never.ts';
import type { FetchItem, NotifyFilter, NotifyGroup, StatusItem } from './command.ts';

/** The events Tern delivers, in the order BADEVENT lists them. */
export const SUPPORTED_EVENTS = [
  'MessageNew',
  'MessageExpunge',
  'FlagChange',
  'MailboxName',
  'SubscriptionChange',
] as const;
export type SupportedEvent = (typeof SUPPORTED_EVENTS)[number];

/** What one filter asked for. */
export interface NotifyEvents {
  readonly messageNew: boolean;
  readonly messageExpunge: boolean;
  readonly flagChange: boolean;
  readonly mailboxName: boolean;
  readonly subscriptionChange: boolean;
  /** MessageNew's fetch attributes (selected mailbox only); null when none. */
  readonly fetch: readonly FetchItem[] | null;
}

/** A filter with its names as the store spells them. */
export type PlanFilter =
  | { readonly kind: 'personal' | 'inboxes' | 'subscribed' }
  | { readonly kind: 'subtree' | 'mailboxes'; readonly names: readonly string[] };

export interface NotifyPlan {
  /** SET STATUS: STATUS for every matched mailbox at once (§3.1). */
  readonly status: boolean;
  /** SELECTED or SELECTED-DELAYED (§6.1); null when the selected mailbox gets RFC 9051 updates only. */
  readonly selected: { readonly delayed: boolean; readonly events: NotifyEvents } | null;
  /** The other filters in the order given: the first that matches a mailbox governs it. */
  readonly others: readonly { readonly filter: PlanFilter; readonly events: NotifyEvents }[];
}

export type NotifyCheck =
  | { readonly ok: true; readonly plan: NotifyPlan }
  | { readonly ok: false; readonly status: 'BAD'; readonly text: string }
  /** An event Tern does not deliver: NO [BADEVENT (supported events)] (§3.1). */
  | { readonly ok: false; readonly status: 'NO'; readonly badEvent: true; readonly text: string };

const SUPPORTED: ReadonlySet<string> = new Set(SUPPORTED_EVENTS);

/**
 * Check NOTIFY SET's groups. `decode` turns a mailbox argument into the store's name, or null when it
 * cannot name a mailbox (BAD). Grammar errors are BAD (§3.1: MessageNew and MessageExpunge only
 * together, FlagChange only with both, fetch attributes only for the selected mailbox); an event Tern
 * does not support is NO [BADEVENT], checked after them.
 */
export function checkNotify(
  status: boolean,
  groups: readonly NotifyGroup[],
  decode: (name: string) => string | null,
): NotifyCheck {
  let selected: NotifyPlan['selected'] = null;
  const others: { filter: PlanFilter; events: NotifyEvents }[] = [];
  let unsupported: string | null = null;
  for (const group of groups) {
    const names = new Set(group.events.map((e) => e.name));
    const has = (e: string): boolean => names.has(e);
    if (has('MessageNew') !== has('MessageExpunge'))
      return bad('MessageNew and MessageExpunge must be asked for together');
    if ((has('FlagChange') || has('AnnotationChange')) && !has('MessageNew'))
      return bad('FlagChange and AnnotationChange need MessageNew and MessageExpunge');
    const isSelected = group.filter.kind === 'selected' || group.filter.kind === 'selected-delayed';
    const fetch = group.events.find((e) => e.name === 'MessageNew')?.fetch ?? null;
    if (fetch !== null && !isSelected) return bad('MessageNew fetch attributes are for SELECTED only');
    unsupported ??= group.events.find((e) => !SUPPORTED.has(e.name))?.name ?? null;
    const events: NotifyEvents = {
      messageNew: has('MessageNew'),
      messageExpunge: has('MessageExpunge'),
      flagChange: has('FlagChange'),
      mailboxName: has('MailboxName'),
      subscriptionChange: has('SubscriptionChange'),
      fetch,
    };
    if (isSelected) {
      if (selected !== null) return bad('SELECTED given twice');
      selected = { delayed: group.filter.kind === 'selected-delayed', events };
      continue;
    }
    const filter = planFilter(group.filter, decode);
    if (filter === null) return bad('Invalid mailbox name');
    others.push({ filter, events });
  }
  if (unsupported !== null)
    return { ok: false, status: 'NO', badEvent: true, text: `Event not supported: ${unsupported}` };
  return { ok: true, plan: { status, selected, others } };
}

function bad(text: string): NotifyCheck {
  return { ok: false, status: 'BAD', text };
}

function planFilter(filter: NotifyFilter, decode: (name: string) => string | null): PlanFilter | null {
  switch (filter.kind) {
    case 'personal':
    case 'inboxes':
    case 'subscribed':
      return { kind: filter.kind };
    case 'subtree':
    case 'mailboxes': {
      const names: string[] = [];
      for (const m of filter.mailboxes) {
        const name = decode(m);
        if (name === null) return null;
        names.push(name);
      }
      return { kind: filter.kind, names };
    }
    case 'selected':
    case 'selected-delayed':
      return null;
    default:
      return assertNever(filter);
  }
}

/** Does a filter (other than SELECTED) cover this mailbox (§6.2-§6.6)? */
export function filterMatches(filter: PlanFilter, name: string, subscribed: boolean): boolean {
  switch (filter.kind) {
    case 'personal':
      // Tern has one namespace, the personal one.
      return true;
    case 'inboxes':
      // Mail is delivered only into INBOX (no Sieve fileinto yet), so INBOX is the only "inbox".
      return name === 'INBOX';
    case 'subscribed':
      return subscribed;
    case 'mailboxes':
      return filter.names.includes(name);
    case 'subtree':
      return filter.names.some((n) => name === n || name.startsWith(`${n}/`));
    default:
      return assertNever(filter);
  }
}

/** The events for a mailbox that is not selected: the first filter that matches it, or null. */
export function eventsFor(plan: NotifyPlan, name: string, subscribed: boolean): NotifyEvents | null {
  return plan.others.find((o) => filterMatches(o.filter, name, subscribed))?.events ?? null;
}

/**
 * The STATUS items that report a non-selected mailbox's message events (§5.2, §5.3): MESSAGES and
 * UIDNEXT for new and expunged mail, UIDVALIDITY so a client can tell its cache is stale, HIGHESTMODSEQ
 * for flag changes (as Dovecot). Empty when the filter asked for no message events.
 */
export function statusItems(events: NotifyEvents): StatusItem[] {
  if (!events.messageNew && !events.messageExpunge) return [];
  const items: StatusItem[] = ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY'];
  if (events.flagChange) items.push('HIGHESTMODSEQ');
  return items;
}
