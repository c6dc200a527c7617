// The counts SELECT and STATUS report for one folder, from the store's folderStatus().

import { normalizeMailboxName, type FolderStatus, type ImapMailboxStore } from '../../store/mailbox-store.ts';

export interface FolderCounts extends FolderStatus {
  /** The folder's name as the store spells it (INBOX in capitals, NFC). */
  readonly name: string;
}

/** Throws MailboxError('nonexistent' | 'noselect') as the store does. */
export async function folderStatus(
  store: ImapMailboxStore,
  user: string,
  folder: string,
): Promise<FolderCounts> {
  const name = normalizeMailboxName(folder);
  return { ...(await store.folderStatus(user, name)), name };
}
