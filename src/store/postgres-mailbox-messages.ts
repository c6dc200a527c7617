// Message rows of the PostgreSQL mailbox store, changed inside the store's transaction with the folder
// row already locked: a new message at UIDNEXT under a new modseq, removal (expunged UIDs kept with the
// modseq that removed them, for QRESYNC), flag changes (one new modseq for all that changed, RFC 7162),
// and COPY/MOVE (rows referencing the same blob; COPY adds references, MOVE hands them over). Each
// records what it changed for the change feed.
// Deliberately NOT here: bodies (postgres-mailbox-blobs.ts), folder rows, reads, transactions.

import { pgInt } from '../db/postgres.ts';
import type { CopyResult, FlagChange, MessageFlags, StoreFlagsResult } from './mailbox-store.ts';
import { applyFlagChange, MailboxError } from './mailbox-store.ts';
import { addRefs, countBlobs, releaseRefs } from './postgres-mailbox-blobs.ts';
import type { RowContext } from './postgres-mailbox-folders.ts';
import { checkSelectable, selectable } from './postgres-mailbox-folders.ts';
import type { Tx } from './postgres-mailbox-schema.ts';
import { FOLDER_COLUMNS, flagsOf, row, rows, toFolderRow } from './postgres-mailbox-schema.ts';

export interface NewMessage {
  readonly internalDateMs: number;
  readonly flags: readonly string[];
  readonly summary: { readonly from: string; readonly subject: string; readonly date: string };
  /** Header fields stored in front of the blob (deliverAccepted), or null. */
  readonly head: Uint8Array | null;
  /** head and blob together. */
  readonly sizeBytes: number;
  readonly blobId: number;
  readonly structure: string | null;
}

/** One message at UIDNEXT under a new modseq (the folder row locked); returns its UID. */
export async function insertMessage(
  tx: Tx,
  ctx: RowContext,
  folderId: number,
  m: NewMessage,
): Promise<number> {
  const counters = await row(
    tx.client,
    `UPDATE mail_folders SET uidnext = uidnext + 1, modseq = modseq + 1, message_count = message_count + 1,
       total_bytes = total_bytes + $2 WHERE id = $1 RETURNING uidnext - 1 AS uid, modseq`,
    [folderId, m.sizeBytes],
  );
  if (counters === null) throw new MailboxError('nonexistent', 'mailbox store: folder is gone');
  const uid = pgInt(counters, 'uid');
  const nowMs = ctx.clock.nowMs();
  await tx.client.query(
    `INSERT INTO mail_messages (folder_id, uid, modseq, size_bytes, internal_date_ms, save_date_ms, flags,
       from_header, subject, date_header, head, blob_id, email_id, structure)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [
      folderId,
      uid,
      pgInt(counters, 'modseq'),
      m.sizeBytes,
      m.internalDateMs,
      nowMs,
      m.flags,
      m.summary.from,
      m.summary.subject,
      m.summary.date,
      m.head,
      m.blobId,
      `M${ctx.ids.next(nowMs)}`,
      m.structure,
    ],
  );
  await addKeywords(tx, folderId, m.flags);
  return uid;
}

/** Keywords (not system flags) join the folder's FLAGS list; it only grows, as clients expect. */
async function addKeywords(tx: Tx, folderId: number, flags: readonly string[]): Promise<void> {
  const keywords = flags.filter((f) => !f.startsWith('\\'));
  if (keywords.length === 0) return;
  await tx.client.query(
    `INSERT INTO mail_folder_keywords (folder_id, keyword) SELECT $1, k FROM unnest($2::text[]) AS k
     ON CONFLICT DO NOTHING`,
    [folderId, keywords],
  );
}

/**
 * Remove messages under one new modseq, remembering their UIDs as expunged; returns the UIDs removed.
 * `release`: drop their body references (false for MOVE, whose copies keep them).
 */
export async function removeMessages(
  tx: Tx,
  ctx: RowContext,
  folderId: number,
  uids: readonly number[],
  release: boolean,
): Promise<number[]> {
  const gone = await rows(
    tx.client,
    'DELETE FROM mail_messages WHERE folder_id = $1 AND uid = ANY($2::bigint[]) RETURNING uid, size_bytes, blob_id',
    [folderId, uids],
  );
  if (gone.length === 0) return [];
  const removed = gone.map((r) => pgInt(r, 'uid')).sort((a, b) => a - b);
  const bytes = gone.reduce((n, r) => n + pgInt(r, 'size_bytes'), 0);
  const counters = await row(
    tx.client,
    `UPDATE mail_folders SET modseq = modseq + 1, message_count = message_count - $2,
       total_bytes = total_bytes - $3 WHERE id = $1 RETURNING modseq`,
    [folderId, removed.length, bytes],
  );
  await tx.client.query(
    `INSERT INTO mail_expunged (folder_id, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) AS u
     ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq`,
    [folderId, removed, pgInt(counters!, 'modseq')],
  );
  if (release) {
    tx.orphaned += await releaseRefs(
      tx.client,
      countBlobs(gone.map((r) => ({ blobId: pgInt(r, 'blob_id') }))),
      ctx.clock.nowMs(),
    );
  }
  return removed;
}

/** The same flags, whatever their order and case. */
function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  const key = (f: readonly string[]): string => JSON.stringify(f.map((x) => x.toLowerCase()).sort());
  return key(a) === key(b);
}

/** STORE: `flags` normalized, `uids` distinct and ascending. */
export async function storeFlagsIn(
  tx: Tx,
  user: string,
  name: string,
  uids: readonly number[],
  change: FlagChange,
  unchangedSince: number | undefined,
): Promise<StoreFlagsResult> {
  const box = await selectable(tx.client, user, name, true);
  const modseq = box.modseq + 1;
  const messages: (MessageFlags & { changed: boolean })[] = [];
  const modified: number[] = [];
  const updates: { uid: number; f: string[] }[] = [];
  const found = await rows(
    tx.client,
    'SELECT uid, flags, modseq FROM mail_messages WHERE folder_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid',
    [box.id, uids],
  );
  for (const r of found) {
    const uid = pgInt(r, 'uid');
    const before = pgInt(r, 'modseq');
    if (unchangedSince !== undefined && before > unchangedSince) {
      modified.push(uid);
      continue;
    }
    const current = flagsOf(r);
    const next = applyFlagChange(current, change);
    if (sameFlags(current, next)) {
      // RFC 7162 §3.1: a STORE that changes nothing leaves the modseq alone.
      messages.push({ uid, flags: current, modseq: before, changed: false });
      continue;
    }
    updates.push({ uid, f: next });
    messages.push({ uid, flags: next, modseq, changed: true });
  }
  if (updates.length === 0) return { messages, modified, highestModseq: box.modseq };
  // One statement whatever the number of messages: the new flags go in as one JSON array.
  await tx.client.query(
    `UPDATE mail_messages m SET modseq = $2,
       flags = ARRAY(SELECT e FROM jsonb_array_elements_text(d.f) WITH ORDINALITY AS x(e, i) ORDER BY i)
     FROM jsonb_to_recordset($3::jsonb) AS d(uid bigint, f jsonb) WHERE m.folder_id = $1 AND m.uid = d.uid`,
    [box.id, modseq, JSON.stringify(updates)],
  );
  await tx.client.query('UPDATE mail_folders SET modseq = $1 WHERE id = $2', [modseq, box.id]);
  if (change.mode !== 'remove') await addKeywords(tx, box.id, change.flags);
  tx.changes.folder(user, name);
  return { messages, modified, highestModseq: modseq };
}

/** COPY or MOVE: `uids` distinct and ascending; flags, dates, EMAILIDs and structures kept. */
export async function copyIn(
  tx: Tx,
  ctx: RowContext,
  user: string,
  source: string,
  target: string,
  uids: readonly number[],
  move: boolean,
): Promise<CopyResult> {
  const c = tx.client;
  // Both rows locked, in id order.
  const both = (
    await rows(
      c,
      `SELECT ${FOLDER_COLUMNS} FROM mail_folders WHERE owner = $1 AND name = ANY($2::text[]) ORDER BY id FOR UPDATE`,
      [user, [source, target]],
    )
  ).map(toFolderRow);
  const src = checkSelectable(
    both.find((b) => b.name === source),
    source,
  );
  const dst = checkSelectable(
    both.find((b) => b.name === target),
    target,
  );
  const found = (
    await rows(
      c,
      'SELECT uid FROM mail_messages WHERE folder_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid',
      [src.id, uids],
    )
  ).map((r) => pgInt(r, 'uid'));
  if (found.length === 0) return { uidValidity: dst.uidValidity, mapping: [] };
  const counters = await row(
    c,
    `UPDATE mail_folders SET uidnext = uidnext + $2, modseq = modseq + 1 WHERE id = $1
     RETURNING uidnext - $2 AS first, modseq`,
    [dst.id, found.length],
  );
  const first = pgInt(counters!, 'first');
  const mapping = found.map((uid, i) => ({ from: uid, to: first + i }));
  const copied = await rows(
    c,
    `INSERT INTO mail_messages (folder_id, uid, modseq, size_bytes, internal_date_ms, save_date_ms, flags,
       from_header, subject, date_header, head, blob_id, email_id, structure)
     SELECT $1, u.to_uid, $2, m.size_bytes, m.internal_date_ms, $3, m.flags, m.from_header, m.subject,
       m.date_header, m.head, m.blob_id, m.email_id, m.structure
     FROM unnest($5::bigint[], $6::bigint[]) AS u(from_uid, to_uid)
     JOIN mail_messages m ON m.folder_id = $4 AND m.uid = u.from_uid
     RETURNING size_bytes, blob_id`,
    [dst.id, pgInt(counters!, 'modseq'), ctx.clock.nowMs(), src.id, found, mapping.map((m) => m.to)],
  );
  const bytes = copied.reduce((n, r) => n + pgInt(r, 'size_bytes'), 0);
  await c.query(
    'UPDATE mail_folders SET message_count = message_count + $2, total_bytes = total_bytes + $3 WHERE id = $1',
    [dst.id, copied.length, bytes],
  );
  await c.query(
    `INSERT INTO mail_folder_keywords (folder_id, keyword)
     SELECT $1, keyword FROM mail_folder_keywords WHERE folder_id = $2 ON CONFLICT DO NOTHING`,
    [dst.id, src.id],
  );
  // MOVE hands the originals' references to the copies: no count changes.
  if (move) await removeMessages(tx, ctx, src.id, found, false);
  else await addRefs(c, countBlobs(copied.map((r) => ({ blobId: pgInt(r, 'blob_id') }))));
  tx.changes.folder(user, ...(move ? [source, target] : [target]));
  return { uidValidity: dst.uidValidity, mapping };
}
