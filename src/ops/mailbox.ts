// Mailbox views shared by `tern mailbox` and the admin API: the JSON of a stored message's summary and of
// a folder with its counters (documented contracts of `tern mailbox list|folders --json`).

import type { ImapMailboxStore, MessageSummary } from '../store/mailbox-store.ts';
import { INBOX } from '../store/mailbox-store.ts';

/** The JSON shape of one message in `mailbox list --json` (a stable, documented contract). */
export function messageJson(m: MessageSummary): Record<string, unknown> {
  return {
    id: m.id,
    uid: m.uid,
    mailbox: m.mailbox,
    from: m.from,
    subject: m.subject,
    size: m.sizeBytes,
    date: m.date,
    flags: [...m.flags],
    internalDate: new Date(m.internalDateMs).toISOString(),
  };
}

/** One folder as `mailbox folders --json` shows it (a stable, documented contract). */
export interface FolderRow {
  readonly name: string;
  readonly messages: number;
  readonly size: number;
  readonly unseen: number;
  readonly specialUse: string | null;
  readonly subscribed: boolean;
  /** False for a \Noselect placeholder that only holds other folders (its counters are 0). */
  readonly selectable: boolean;
  readonly uidValidity: number | null;
  readonly uidNext: number | null;
}

export async function folderRows(store: ImapMailboxStore, user: string): Promise<FolderRow[]> {
  const rows: FolderRow[] = [];
  for (const f of await store.folders(user)) {
    const selectable = !f.attributes.includes('\\Noselect');
    const status = selectable ? await store.status(user, f.name) : null;
    // A whole-folder flag read: the store has no unseen counter (messages() is not there yet).
    const unseen =
      status === null || status.messages === 0
        ? 0
        : (await store.changesSince(user, f.name, 0)).changed.filter((m) => !m.flags.includes('\\Seen'))
            .length;
    rows.push({
      name: f.name,
      messages: status?.messages ?? 0,
      size: status?.sizeBytes ?? 0,
      unseen,
      specialUse: f.specialUse,
      subscribed: f.subscribed,
      selectable: selectable && (status !== null || f.name === INBOX),
      uidValidity: status?.uidValidity ?? null,
      uidNext: status?.uidNext ?? null,
    });
  }
  return rows;
}
