// Folders of the PostgreSQL mailbox store: rows read and made (with a UIDVALIDITY unique in the schema),
// and the folder tree IMAP changes: the defaults of a first login, CREATE, DELETE (a parent stays as a
// \Noselect placeholder), RENAME (children and subscriptions follow; INBOX's messages move out), and the
// LIST view. Each write function runs inside the store's transaction (`Tx`) and records what it changed
// for the change feed; the store runs the transaction.
// Deliberately NOT here: messages (postgres-mailbox-messages.ts), transactions, the change feed itself.

import type { Clock } from '../core/ports.ts';
import { pgInt, pgText } from '../db/postgres.ts';
import type { SortableIds } from '../db/sortable-id.ts';
import type { FolderInfo, FolderListEvent, SpecialUse } from './mailbox-store.ts';
import { DEFAULT_FOLDERS, INBOX, MailboxError, parentNames } from './mailbox-store.ts';
import { countBlobs, releaseRefs } from './postgres-mailbox-blobs.ts';
import type { FolderRow, Queryable, Tx } from './postgres-mailbox-schema.ts';
import { FOLDER_COLUMNS, row, rows, toFolderRow } from './postgres-mailbox-schema.ts';

/** What new rows take from the store: the time and its id generator (MAILBOXID, EMAILID). */
export interface RowContext {
  readonly clock: Clock;
  readonly ids: SortableIds;
}

export async function folderRow(
  db: Queryable,
  user: string,
  name: string,
  lock = false,
): Promise<FolderRow | null> {
  const r = await row(
    db,
    `SELECT ${FOLDER_COLUMNS} FROM mail_folders WHERE owner = $1 AND name = $2${lock ? ' FOR UPDATE' : ''}`,
    [user, name],
  );
  return r === null ? null : toFolderRow(r);
}

/** A folder messages can be read from or put in, or the MailboxError a client should see. */
export async function selectable(
  db: Queryable,
  user: string,
  name: string,
  lock = false,
): Promise<FolderRow> {
  const r = await folderRow(db, user, name, lock);
  return checkSelectable(r, name);
}

export function checkSelectable(r: FolderRow | null | undefined, name: string): FolderRow {
  if (r === null || r === undefined) {
    throw new MailboxError('nonexistent', `mailbox store: no folder ${JSON.stringify(name)}`);
  }
  if (r.noselect) throw new MailboxError('noselect', `mailbox store: ${JSON.stringify(name)} is \\Noselect`);
  return r;
}

/** In a write: the folder row, locked, made on first delivery (a \Noselect placeholder becomes a folder). */
export async function deliveryFolder(
  tx: Tx,
  ctx: RowContext,
  user: string,
  name: string,
): Promise<FolderRow> {
  const found = await folderRow(tx.client, user, name, true);
  if (found !== null) {
    if (!found.noselect) return found;
    await tx.client.query('UPDATE mail_folders SET noselect = false WHERE id = $1', [found.id]);
    return { ...found, noselect: false };
  }
  return createRow(tx, ctx, user, name, { noselect: false, specialUse: null, raced: 'take' });
}

/**
 * In a write: a new folder row, locked, with a UIDVALIDITY never handed out before in this schema. When
 * another node made the name meanwhile: its row (`raced: 'take'`), or 'alreadyexists' ('refuse').
 */
async function createRow(
  tx: Tx,
  ctx: RowContext,
  user: string,
  name: string,
  o: { noselect: boolean; specialUse: SpecialUse | null; raced: 'take' | 'refuse' },
): Promise<FolderRow> {
  // The meta row is the one lock every folder creation takes: held, it also makes a concurrent
  // creation of this name visible to the check below (READ COMMITTED reads what committed before).
  const meta = await row(tx.client, `SELECT value FROM mail_meta WHERE key = 'last_uidvalidity' FOR UPDATE`);
  const raced = await folderRow(tx.client, user, name, true);
  if (raced !== null) {
    if (o.raced === 'take') return raced;
    throw new MailboxError('alreadyexists', `mailbox store: ${JSON.stringify(name)} exists`);
  }
  // Creation time in seconds, but always above any value handed out before, so a folder deleted and
  // created again within one second still gets a new one (RFC 9051 §2.3.1.1).
  const nowMs = ctx.clock.nowMs();
  const uidValidity = Math.max(Math.floor(nowMs / 1000), pgInt(meta!, 'value') + 1);
  await tx.client.query(`UPDATE mail_meta SET value = $1 WHERE key = 'last_uidvalidity'`, [uidValidity]);
  const r = await row(
    tx.client,
    `INSERT INTO mail_folders (owner, name, uidvalidity, noselect, special_use, objectid)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${FOLDER_COLUMNS}`,
    [user, name, uidValidity, o.noselect, o.specialUse, `F${ctx.ids.next(nowMs)}`],
  );
  return toFolderRow(r!);
}

/** Rows for the missing parents of a name (real, selectable folders, as Dovecot makes them). */
async function createParents(tx: Tx, ctx: RowContext, user: string, name: string): Promise<void> {
  for (const parent of parentNames(name)) {
    if ((await folderRow(tx.client, user, parent)) === null) {
      await createRow(tx, ctx, user, parent, { noselect: false, specialUse: null, raced: 'take' });
    }
  }
}

function subscribeIn(tx: Tx, user: string, name: string): Promise<unknown> {
  return tx.client.query(
    'INSERT INTO mail_subscriptions (owner, name) VALUES ($1, $2) ON CONFLICT DO NOTHING',
    [user, name],
  );
}

/** INBOX and the special-use folders, subscribed, once per user (a user who deletes one keeps it gone). */
export async function ensureDefaultsIn(tx: Tx, ctx: RowContext, user: string): Promise<void> {
  const c = tx.client;
  if ((await row(c, 'SELECT 1 FROM mail_user_defaults WHERE owner = $1', [user])) !== null) return;
  await deliveryFolder(tx, ctx, user, INBOX);
  await subscribeIn(tx, user, INBOX);
  for (const { name, specialUse } of DEFAULT_FOLDERS) {
    const taken = await row(c, 'SELECT 1 FROM mail_folders WHERE owner = $1 AND special_use = $2', [
      user,
      specialUse,
    ]);
    if (taken !== null) continue;
    const existing = await folderRow(c, user, name, true);
    if (existing === null)
      await createRow(tx, ctx, user, name, { noselect: false, specialUse, raced: 'take' });
    else if (existing.specialUse === null) {
      // Mail delivered to "Archive" before the first login: that folder takes the role.
      await c.query('UPDATE mail_folders SET special_use = $1, noselect = false WHERE id = $2', [
        specialUse,
        existing.id,
      ]);
    } else continue;
    await subscribeIn(tx, user, name);
  }
  await c.query('INSERT INTO mail_user_defaults (owner) VALUES ($1)', [user]);
}

/** CREATE: the folder and any missing parents; a \Noselect placeholder becomes a folder again. */
export async function createFolderIn(
  tx: Tx,
  ctx: RowContext,
  user: string,
  folder: string,
  specialUse: SpecialUse | null,
): Promise<void> {
  const existing = await folderRow(tx.client, user, folder, true);
  if (existing !== null && !existing.noselect) {
    throw new MailboxError('alreadyexists', `mailbox store: ${JSON.stringify(folder)} exists`);
  }
  await createParents(tx, ctx, user, folder);
  if (existing === null) {
    await createRow(tx, ctx, user, folder, { noselect: false, specialUse, raced: 'refuse' });
  } else {
    // The placeholder's UIDVALIDITY was new when it became one and no message ever had it.
    await tx.client.query('UPDATE mail_folders SET noselect = false, special_use = $1 WHERE id = $2', [
      specialUse,
      existing.id,
    ]);
  }
  tx.changes.folder(user, folder);
  tx.changes.list(user, { kind: 'created', name: folder });
}

/** DELETE: its messages go (their bodies released); with children it stays as \Noselect. */
export async function deleteFolderIn(tx: Tx, ctx: RowContext, user: string, folder: string): Promise<void> {
  const existing = await folderRow(tx.client, user, folder, true);
  if (existing === null) {
    throw new MailboxError('nonexistent', `mailbox store: no folder ${JSON.stringify(folder)}`);
  }
  const child = await row(
    tx.client,
    'SELECT 1 FROM mail_folders WHERE owner = $1 AND starts_with(name, $2) LIMIT 1',
    [user, `${folder}/`],
  );
  const hasChildren = child !== null;
  // RFC 9051 §6.3.5: a \Noselect name with inferiors cannot be deleted.
  if (existing.noselect && hasChildren) {
    throw new MailboxError('cannot', `mailbox store: ${JSON.stringify(folder)} has children`);
  }
  const gone = await rows(tx.client, 'DELETE FROM mail_messages WHERE folder_id = $1 RETURNING blob_id', [
    existing.id,
  ]);
  tx.orphaned += await releaseRefs(
    tx.client,
    countBlobs(gone.map((r) => ({ blobId: pgInt(r, 'blob_id') }))),
    ctx.clock.nowMs(),
  );
  // Its expunged UIDs, keywords and access key go with the row (ON DELETE CASCADE).
  await tx.client.query('DELETE FROM mail_folders WHERE id = $1', [existing.id]);
  // A new row for the placeholder, so a later CREATE cannot revive the old UIDVALIDITY.
  if (hasChildren) {
    await createRow(tx, ctx, user, folder, { noselect: true, specialUse: null, raced: 'take' });
  }
  tx.changes.folder(user, folder);
  tx.changes.list(user, { kind: 'deleted', name: folder });
}

/** RENAME (names checked by the caller); INBOX's messages move to the target and INBOX stays. */
export async function renameFolderIn(
  tx: Tx,
  ctx: RowContext,
  user: string,
  source: string,
  target: string,
): Promise<void> {
  if (source === INBOX) {
    await renameInbox(tx, ctx, user, target);
    tx.changes.folder(user, INBOX, target);
    tx.changes.list(user, { kind: 'created', name: target });
    return;
  }
  const renamed = await renameTree(tx, ctx, user, source, target);
  tx.changes.folder(user, ...renamed.map((r) => r.from), ...renamed.map((r) => r.to));
  tx.changes.list(
    user,
    ...renamed.map((r): FolderListEvent => ({ kind: 'renamed', from: r.from, to: r.to })),
  );
}

async function renameTree(
  tx: Tx,
  ctx: RowContext,
  user: string,
  source: string,
  target: string,
): Promise<{ from: string; to: string }[]> {
  const c = tx.client;
  // Every folder of the user locked: a concurrent create of a clashing name waits for this rename.
  const all = (
    await rows(c, `SELECT ${FOLDER_COLUMNS} FROM mail_folders WHERE owner = $1 ORDER BY id FOR UPDATE`, [
      user,
    ])
  ).map(toFolderRow);
  const moving = all.filter((r) => r.name === source || r.name.startsWith(`${source}/`));
  if (!moving.some((r) => r.name === source)) {
    throw new MailboxError('nonexistent', `mailbox store: no folder ${JSON.stringify(source)}`);
  }
  const renamed = moving.map((r) => ({ id: r.id, from: r.name, to: target + r.name.slice(source.length) }));
  const existing = new Set(all.map((r) => r.name));
  const clash = renamed.find((r) => existing.has(r.to));
  if (clash !== undefined) {
    throw new MailboxError('alreadyexists', `mailbox store: ${JSON.stringify(clash.to)} exists`);
  }
  await createParents(tx, ctx, user, target);
  await c.query(
    `UPDATE mail_folders f SET name = r.name FROM unnest($1::bigint[], $2::text[]) AS r(id, name) WHERE f.id = r.id`,
    [renamed.map((r) => r.id), renamed.map((r) => r.to)],
  );
  // Subscriptions follow the folders (clients would otherwise lose them on every rename).
  const subscribed = await rows(c, 'SELECT name FROM mail_subscriptions WHERE owner = $1', [user]);
  for (const s of subscribed.map((r) => pgText(r, 'name'))) {
    if (s !== source && !s.startsWith(`${source}/`)) continue;
    await c.query('DELETE FROM mail_subscriptions WHERE owner = $1 AND name = $2', [user, s]);
    await subscribeIn(tx, user, target + s.slice(source.length));
  }
  return renamed;
}

/**
 * RFC 9051 §6.3.6: renaming INBOX moves its messages to a new folder and leaves INBOX empty; its
 * children stay where they are. The messages keep their UIDs under the new folder's UIDVALIDITY, and
 * INBOX records them as expunged, so its QRESYNC clients see them vanish.
 */
async function renameInbox(tx: Tx, ctx: RowContext, user: string, target: string): Promise<void> {
  const c = tx.client;
  const inbox = await deliveryFolder(tx, ctx, user, INBOX);
  if ((await folderRow(c, user, target)) !== null) {
    throw new MailboxError('alreadyexists', `mailbox store: ${JSON.stringify(target)} exists`);
  }
  await createParents(tx, ctx, user, target);
  const made = await createRow(tx, ctx, user, target, { noselect: false, specialUse: null, raced: 'refuse' });
  const modseq = inbox.modseq + 1;
  await c.query(
    'UPDATE mail_folders SET uidnext = $1, modseq = $2, message_count = $3, total_bytes = $4 WHERE id = $5',
    [inbox.uidNext, modseq, inbox.messages, inbox.sizeBytes, made.id],
  );
  await c.query(
    `INSERT INTO mail_expunged (folder_id, uid, modseq) SELECT folder_id, uid, $1 FROM mail_messages
     WHERE folder_id = $2 ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq`,
    [modseq, inbox.id],
  );
  await c.query('UPDATE mail_messages SET folder_id = $1 WHERE folder_id = $2', [made.id, inbox.id]);
  await c.query(
    `INSERT INTO mail_folder_keywords (folder_id, keyword)
     SELECT $1, keyword FROM mail_folder_keywords WHERE folder_id = $2 ON CONFLICT DO NOTHING`,
    [made.id, inbox.id],
  );
  await c.query('UPDATE mail_folders SET modseq = $1, message_count = 0, total_bytes = 0 WHERE id = $2', [
    modseq,
    inbox.id,
  ]);
}

/** LIST: every folder of the user by name; parents that exist only as a path are \NonExistent. */
export async function listFolders(db: Queryable, user: string): Promise<FolderInfo[]> {
  const byName = new Map(
    (await rows(db, `SELECT ${FOLDER_COLUMNS} FROM mail_folders WHERE owner = $1`, [user]))
      .map(toFolderRow)
      .map((r) => [r.name, r]),
  );
  const subscribed = new Set(
    (await rows(db, 'SELECT name FROM mail_subscriptions WHERE owner = $1', [user])).map((r) =>
      pgText(r, 'name'),
    ),
  );
  // Parents of folders made by delivery alone ("a/b" with no "a") are listed as placeholders.
  const names = new Set([INBOX, ...byName.keys()]);
  for (const name of [...names]) for (const p of parentNames(name)) names.add(p);
  const withChildren = new Set([...names].flatMap((n) => parentNames(n)));
  return [...names]
    .sort((a, b) => (a === INBOX ? -1 : b === INBOX ? 1 : a < b ? -1 : a > b ? 1 : 0))
    .map((name) => {
      const r = byName.get(name);
      const attributes: string[] = [];
      if (r === undefined && name !== INBOX) attributes.push('\\NonExistent', '\\Noselect');
      else if (r?.noselect === true) attributes.push('\\Noselect');
      attributes.push(withChildren.has(name) ? '\\HasChildren' : '\\HasNoChildren');
      if (subscribed.has(name)) attributes.push('\\Subscribed');
      const specialUse = r?.specialUse ?? null;
      if (specialUse !== null) attributes.push(specialUse);
      return {
        name,
        attributes,
        specialUse,
        subscribed: subscribed.has(name),
        mailboxId: r?.mailboxId ?? null,
      };
    });
}
