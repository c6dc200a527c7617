// The counts SELECT and STATUS report for one folder, read from the store.
// XXX: built from changesSince(0) (every message's flags) until the store's folderStatus() lands on main;
// then this becomes one call.

import { normalizeMailboxName, type ImapMailboxStore } from '../../store/mailbox-store.ts';

export interface FolderCounts {
  readonly name: string;
  readonly messages: number;
  readonly uidNext: number;
  readonly uidValidity: number;
  readonly highestModseq: number;
  readonly sizeBytes: number;
  readonly unseen: number;
  readonly deleted: number;
  readonly firstUnseenUid: number | null;
  readonly mailboxId: string;
}

/** Throws MailboxError('nonexistent' | 'noselect') as the store does. */
export async function folderStatus(
  store: ImapMailboxStore,
  user: string,
  folder: string,
): Promise<FolderCounts> {
  const name = normalizeMailboxName(folder);
  const changes = await store.changesSince(user, name, 0);
  const status = await store.status(user, name);
  let unseen = 0;
  let deleted = 0;
  let firstUnseenUid: number | null = null;
  for (const m of changes.changed) {
    const lower = m.flags.map((f) => f.toLowerCase());
    if (!lower.includes('\\seen')) {
      unseen++;
      firstUnseenUid ??= m.uid;
    }
    if (lower.includes('\\deleted')) deleted++;
  }
  return {
    name,
    messages: changes.changed.length,
    uidNext: status?.uidNext ?? 1,
    uidValidity: changes.uidValidity,
    highestModseq: changes.highestModseq,
    sizeBytes: status?.sizeBytes ?? 0,
    unseen,
    deleted,
    firstUnseenUid,
    mailboxId: `F${changes.uidValidity}`,
  };
}
