// The PostgreSQL mailbox store's tables (component 'mailbox' in tern_migrations) and the small helpers
// its modules share: row mappers, CLI message ids, UID lists, error mapping and transaction retries.
// Tables are prefixed `mail_` because a deployment may put every component in one schema.
// Deliberately NOT here: any query that changes rows (postgres-mailbox-store.ts, postgres-mailbox-blobs.ts).

import { Replies, ReplyError } from '../core/reply.ts';
import type { PgClient, PgRow } from '../db/postgres.ts';
import { pgBytes, pgInt, pgText, pgTextOrNull } from '../db/postgres.ts';
import { storageError } from '../db/storage-fs.ts';
import type { MessageMeta, MessageSummary, SpecialUse } from './mailbox-store.ts';
import { messageId } from './mailbox-store.ts';
import type { Changes } from './postgres-mailbox-feed.ts';

/**
 * Migrations, steps[i] takes version i to i + 1; never edit a shipped step.
 *
 * Bodies: `mail_blobs` is one row per distinct content, found by its SHA-256 (unique), with the bytes in
 * `mail_blob_chunks` rows of at most 256 KiB. The surrogate id exists for the chunks' key and for staging:
 * a body larger than one chunk is uploaded before its hash is known, as a row with a NULL sha256 (staged_ms
 * set), and becomes content-addressed in the delivery's transaction. `refs` counts the message rows using
 * the blob (reference counting, kept in the same transactions as the messages; the foreign key from
 * mail_messages refuses to delete a blob still used, should the count ever drift); a blob whose count
 * reaches 0 gets orphaned_ms and is deleted by the reclaim sweep after a grace period (readers of a large
 * message fetch its chunks one by one, and "opened, then expunged, still reads whole" must hold).
 *
 * Flags are TEXT[] in their canonical spelling, so the partial indexes on `\Seen` and `\Deleted` can serve
 * STATUS UNSEEN/DELETED and SELECT's first unseen without counters that could drift.
 */
export const STEPS: readonly string[] = [
  String.raw`CREATE TABLE mail_meta (
     key TEXT PRIMARY KEY,
     value BIGINT NOT NULL
   );
   INSERT INTO mail_meta (key, value) VALUES ('last_uidvalidity', 0);
   CREATE TABLE mail_folders (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     owner TEXT NOT NULL,
     name TEXT NOT NULL,
     uidvalidity BIGINT NOT NULL,
     uidnext BIGINT NOT NULL DEFAULT 1,
     modseq BIGINT NOT NULL DEFAULT 1,
     message_count BIGINT NOT NULL DEFAULT 0,
     total_bytes BIGINT NOT NULL DEFAULT 0,
     noselect BOOLEAN NOT NULL DEFAULT false,
     special_use TEXT,
     objectid TEXT NOT NULL UNIQUE,
     recent_uid BIGINT NOT NULL DEFAULT 0,
     UNIQUE (owner, name)
   );
   CREATE TABLE mail_blobs (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     sha256 BYTEA UNIQUE,
     size_bytes BIGINT NOT NULL DEFAULT 0,
     refs INTEGER NOT NULL DEFAULT 0 CHECK (refs >= 0),
     orphaned_ms BIGINT,
     staged_ms BIGINT
   );
   CREATE INDEX mail_blobs_orphaned ON mail_blobs (orphaned_ms) WHERE refs = 0 AND sha256 IS NOT NULL;
   CREATE INDEX mail_blobs_staged ON mail_blobs (staged_ms) WHERE sha256 IS NULL;
   CREATE TABLE mail_blob_chunks (
     blob_id BIGINT NOT NULL REFERENCES mail_blobs (id) ON DELETE CASCADE,
     seq INTEGER NOT NULL,
     data BYTEA NOT NULL,
     PRIMARY KEY (blob_id, seq)
   );
   CREATE TABLE mail_messages (
     folder_id BIGINT NOT NULL REFERENCES mail_folders (id) ON DELETE CASCADE,
     uid BIGINT NOT NULL,
     modseq BIGINT NOT NULL,
     size_bytes BIGINT NOT NULL,
     internal_date_ms BIGINT NOT NULL,
     save_date_ms BIGINT NOT NULL,
     flags TEXT[] NOT NULL,
     from_header TEXT NOT NULL,
     subject TEXT NOT NULL,
     date_header TEXT NOT NULL,
     head BYTEA,
     blob_id BIGINT NOT NULL REFERENCES mail_blobs (id),
     email_id TEXT NOT NULL,
     structure TEXT,
     PRIMARY KEY (folder_id, uid)
   );
   CREATE INDEX mail_messages_modseq ON mail_messages (folder_id, modseq);
   CREATE INDEX mail_messages_blob ON mail_messages (blob_id);
   CREATE INDEX mail_messages_email_id ON mail_messages (email_id);
   CREATE INDEX mail_messages_unseen ON mail_messages (folder_id, uid) WHERE NOT (flags @> ARRAY['\Seen']);
   CREATE INDEX mail_messages_deleted ON mail_messages (folder_id, uid) WHERE flags @> ARRAY['\Deleted'];
   CREATE TABLE mail_deliveries (
     delivery_key TEXT PRIMARY KEY,
     folder_id BIGINT NOT NULL,
     uid BIGINT NOT NULL
   );
   CREATE TABLE mail_expunged (
     folder_id BIGINT NOT NULL REFERENCES mail_folders (id) ON DELETE CASCADE,
     uid BIGINT NOT NULL,
     modseq BIGINT NOT NULL,
     PRIMARY KEY (folder_id, uid)
   );
   CREATE INDEX mail_expunged_modseq ON mail_expunged (folder_id, modseq);
   CREATE TABLE mail_subscriptions (
     owner TEXT NOT NULL,
     name TEXT NOT NULL,
     PRIMARY KEY (owner, name)
   );
   CREATE TABLE mail_user_defaults (
     owner TEXT PRIMARY KEY
   );
   CREATE TABLE mail_folder_keywords (
     folder_id BIGINT NOT NULL REFERENCES mail_folders (id) ON DELETE CASCADE,
     keyword TEXT NOT NULL
   );
   CREATE UNIQUE INDEX mail_folder_keywords_key ON mail_folder_keywords (folder_id, lower(keyword));
   CREATE TABLE mail_access_keys (
     folder_id BIGINT PRIMARY KEY REFERENCES mail_folders (id) ON DELETE CASCADE,
     key BYTEA NOT NULL
   );`,
];

// The terms of the partial indexes, written as the index predicates so the planner uses them.
export const UNSEEN = String.raw`NOT (flags @> ARRAY['\Seen'])`;
export const DELETED = String.raw`flags @> ARRAY['\Deleted']`;

/** What the pool and a pooled client share: one statement, rows back. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

/** One running write of the store: its connection and what it changed (told after the commit). */
export interface Tx {
  readonly client: PgClient;
  readonly changes: Changes;
  /** Blobs left without references by this write (without a grace period they go right after it). */
  orphaned: number;
}

export async function rows(db: Queryable, text: string, values: unknown[] = []): Promise<PgRow[]> {
  return (await db.query(text, values)).rows as PgRow[];
}

export async function row(db: Queryable, text: string, values: unknown[] = []): Promise<PgRow | null> {
  return (await rows(db, text, values))[0] ?? null;
}

export interface FolderRow {
  readonly id: number;
  readonly name: string;
  readonly uidValidity: number;
  readonly uidNext: number;
  readonly modseq: number;
  readonly messages: number;
  readonly sizeBytes: number;
  readonly noselect: boolean;
  readonly specialUse: SpecialUse | null;
  readonly mailboxId: string;
  readonly recentUid: number;
}

export const FOLDER_COLUMNS = `id, name, uidvalidity, uidnext, modseq, message_count, total_bytes, noselect,
  special_use, objectid, recent_uid`;

export function toFolderRow(r: PgRow): FolderRow {
  return {
    id: pgInt(r, 'id'),
    name: pgText(r, 'name'),
    uidValidity: pgInt(r, 'uidvalidity'),
    uidNext: pgInt(r, 'uidnext'),
    modseq: pgInt(r, 'modseq'),
    messages: pgInt(r, 'message_count'),
    sizeBytes: pgInt(r, 'total_bytes'),
    noselect: r['noselect'] === true,
    specialUse: pgTextOrNull(r, 'special_use') as SpecialUse | null,
    mailboxId: pgText(r, 'objectid'),
    recentUid: pgInt(r, 'recent_uid'),
  };
}

export function flagsOf(r: PgRow): string[] {
  const v = r['flags'];
  if (!Array.isArray(v) || !v.every((f) => typeof f === 'string')) {
    throw new Error('postgres: column flags is not text[]');
  }
  return v;
}

export const META_COLUMNS = `uid, flags, modseq, size_bytes, internal_date_ms, save_date_ms, email_id, structure`;

export function toMeta(r: PgRow): MessageMeta {
  return {
    uid: pgInt(r, 'uid'),
    flags: flagsOf(r),
    modseq: pgInt(r, 'modseq'),
    sizeBytes: pgInt(r, 'size_bytes'),
    internalDateMs: pgInt(r, 'internal_date_ms'),
    saveDateMs: pgInt(r, 'save_date_ms'),
    emailId: pgText(r, 'email_id'),
    threadId: null,
    structure: pgTextOrNull(r, 'structure'),
  };
}

export function toSummary(r: PgRow, mailbox: string): MessageSummary {
  const uid = pgInt(r, 'uid');
  return {
    id: messageId(mailbox, uid),
    mailbox,
    uid,
    sizeBytes: pgInt(r, 'size_bytes'),
    internalDateMs: pgInt(r, 'internal_date_ms'),
    flags: flagsOf(r),
    from: pgText(r, 'from_header'),
    subject: pgText(r, 'subject'),
    date: pgText(r, 'date_header'),
  };
}

export function bytesOrNull(r: PgRow, key: string): Buffer | null {
  return pgBytes(r, key);
}

function sqlState(err: unknown): string | null {
  if (typeof err !== 'object' || err === null) return null;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : null;
}

/**
 * Worth running the whole transaction again: a serialization failure or deadlock (40001, 40P01), or a
 * unique key another node committed first (23505: the same delivery key, the same new content hash, the
 * same new folder name), which the next attempt finds and takes as it is.
 */
export function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  return code === '40001' || code === '40P01' || code === '23505';
}

/** A write failure as the callers know it: 452 4.3.1 for a full disk (SQLSTATE 53100), else as is. */
export function pgStoreError(err: unknown): unknown {
  if (err instanceof ReplyError) return err;
  if (sqlState(err) === '53100') return new ReplyError(Replies.insufficientStorage, { cause: err });
  return storageError(err);
}
