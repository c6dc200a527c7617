// The mailbox store in PostgreSQL (issue 19, `[storage] backend = "postgres"`): the same MailboxStore and
// ImapMailboxStore contract as the SQLite store, for several Tern nodes sharing one database.
//
// Every change is one transaction (READ COMMITTED) that locks the folder rows it touches first: UIDNEXT,
// the modseq and the counters are raised in that row, so two nodes delivering to one mailbox at once
// queue on the row and never hand out a UID twice, and each change still raises the modseq by exactly
// one. A transaction that meets a serialization failure, a deadlock or a unique key another node just
// committed (the same delivery key, the same new content, the same new folder) runs again from the start;
// on its second run it finds what the other committed (a repeated delivery key answers with the first
// UID, as the contract wants). UIDVALIDITY comes from one row (`mail_meta`): the creation time in
// seconds, always above the last one handed out, so it never repeats within the schema.
//
// Bodies are content-addressed blobs in chunk rows (postgres-mailbox-blobs.ts): reference-counted in the
// transactions that add and remove messages, and deleted by a sweep once unused for reclaimGraceMs (a
// reader of a large message fetches chunk after chunk; the grace is what keeps "opened, then expunged,
// still reads whole"). A body larger than one chunk is uploaded before its transaction, in autocommit
// statements (no connection is held while a client sends a literal); the transaction makes it a blob.
// Each copy of deliverAccepted stores its head in its own row and references the one blob.
//
// Change feed: postgres-mailbox-feed.ts (in-process at once, other nodes by LISTEN/NOTIFY).
//
// Deliberately not here: quota limits (the directory's), pruning delivery keys and expunged UIDs,
// threading (THREADID is null). read() cannot know synchronously whether a message exists: it answers
// null only for an id it cannot parse, and a missing message fails its first read with
// MailboxError('nonexistent') (callers that need to know first use openMessage).

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Clock } from '../core/ports.ts';
import type { PgPool } from '../db/postgres.ts';
import { inTransaction, migratePostgres, pgBytes, pgInt, pgText } from '../db/postgres.ts';
import { SortableIds } from '../db/sortable-id.ts';
import type {
  AcceptedDelivery,
  AppendRequest,
  ByteRange,
  CopyResult,
  DeliverRequest,
  FlagChange,
  FolderChanges,
  FolderEvent,
  FolderInfo,
  FolderListEvent,
  FolderStatus,
  ImapMailboxStore,
  MailboxSnapshot,
  MailboxStatus,
  MessageMeta,
  MessageSummary,
  QuotaUsage,
  SpecialUse,
  StoreFlagsResult,
  StoredMessage,
} from './mailbox-store.ts';
import {
  checkFolderName,
  INBOX,
  MailboxError,
  normalizeFlags,
  normalizeMailboxName,
  normalizeUser,
  SPECIAL_USES,
  uidl,
} from './mailbox-store.ts';
import type { BodyRef, StagedBody } from './postgres-mailbox-blobs.ts';
import {
  attachBlob,
  BODY_COLUMNS,
  BODY_JOINS,
  CHUNK_BYTES,
  dropStaging,
  readBody,
  stageBody,
  sweepBlobs,
  toBodyRef,
} from './postgres-mailbox-blobs.ts';
import { Changes, ChangeFeed } from './postgres-mailbox-feed.ts';
import type { RowContext } from './postgres-mailbox-folders.ts';
import { distinctUids, messageId, parseMessageId } from './mailbox-store.ts';
import {
  createFolderIn,
  deleteFolderIn,
  deliveryFolder,
  ensureDefaultsIn,
  folderRow,
  listFolders,
  renameFolderIn,
  selectable,
} from './postgres-mailbox-folders.ts';
import { copyIn, insertMessage, removeMessages, storeFlagsIn } from './postgres-mailbox-messages.ts';
import type { FolderRow, Queryable, Tx } from './postgres-mailbox-schema.ts';
import {
  DELETED,
  flagsOf,
  isRetryable,
  META_COLUMNS,
  pgStoreError,
  row,
  rows,
  STEPS,
  toMeta,
  toSummary,
  UNSEEN,
} from './postgres-mailbox-schema.ts';

export { STEPS } from './postgres-mailbox-schema.ts';

export interface PostgresMailboxStoreOptions {
  /** The process's pool (db/postgres.ts openPool); the store never ends it. */
  readonly pool: PgPool;
  readonly clock: Clock;
  /**
   * Hear other nodes' commits for watch() and watchFolderList() (LISTEN on a dedicated connection; this
   * store's own commits are heard without it). Default true; false for a process nobody watches in.
   */
  readonly listen?: boolean | undefined;
  /** How long an unused body stays readable for a read in progress before the sweep deletes it; 1 h. */
  readonly reclaimGraceMs?: number | undefined;
  /** How often this store sweeps unused bodies and abandoned uploads; default 5 min, 0 never on a timer. */
  readonly reclaimIntervalMs?: number | undefined;
  /** An upload older than this that no delivery committed was cut short by a crash; default 24 h. */
  readonly stagingMaxAgeMs?: number | undefined;
}

/** URLAUTH mailbox access keys: 256 bits (RFC 4467 §7 asks for at least 128). */
const ACCESS_KEY_BYTES = 32;
const DEFAULT_RECLAIM_GRACE_MS = 3_600_000;
const DEFAULT_RECLAIM_INTERVAL_MS = 300_000;
const DEFAULT_STAGING_MAX_AGE_MS = 86_400_000;
/** Attempts of one transaction that keeps meeting deadlocks, serialization failures or fresh unique keys. */
const MAX_ATTEMPTS = 8;

/**
 * The caller's structure, asked once the content was read to its end. A throw stores the message without
 * one: the structure is a cache that readers rebuild (setStructure), and a scanner bug must not refuse mail.
 */
function askStructure(structureOf: (() => string) | undefined): string | null {
  if (structureOf === undefined) return null;
  try {
    return structureOf();
  } catch {
    // XXX: the store has no logger; a reader finds the null and scans the message again.
    return null;
  }
}

/** A range bound as a byte offset: whole, not negative (a bound past the end is clamped by the caller). */
function offset(n: number): number {
  if (Number.isNaN(n)) return 0;
  return Math.max(0, Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER));
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  await Promise.resolve();
  yield bytes;
}

export class PostgresMailboxStore implements ImapMailboxStore {
  readonly #pool: PgPool;
  readonly #clock: Clock;
  readonly #feed: ChangeFeed;
  /** The clock and ids new rows take. */
  readonly #ctx: RowContext;
  readonly #graceMs: number;
  readonly #stagingMaxAgeMs: number;
  /** Operations in flight, awaited by close() so it leaves no work behind. */
  readonly #inflight = new Set<Promise<unknown>>();
  #sweepTimer: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(options: PostgresMailboxStoreOptions, feed: ChangeFeed) {
    this.#pool = options.pool;
    this.#clock = options.clock;
    this.#ctx = { clock: options.clock, ids: new SortableIds() };
    this.#feed = feed;
    this.#graceMs = options.reclaimGraceMs ?? DEFAULT_RECLAIM_GRACE_MS;
    this.#stagingMaxAgeMs = options.stagingMaxAgeMs ?? DEFAULT_STAGING_MAX_AGE_MS;
  }

  static async open(options: PostgresMailboxStoreOptions): Promise<PostgresMailboxStore> {
    await migratePostgres(options.pool, 'mailbox', STEPS);
    let store: PostgresMailboxStore | null = null;
    const feed = await ChangeFeed.open({
      pool: options.pool,
      listen: options.listen ?? true,
      folderEvent: (user, name) => store!.#folderEvent(user, name),
    });
    store = new PostgresMailboxStore(options, feed);
    const intervalMs = options.reclaimIntervalMs ?? DEFAULT_RECLAIM_INTERVAL_MS;
    if (intervalMs > 0) {
      const s = store;
      s.#sweepTimer = setInterval(() => void s.#track(s.reclaim()).catch(() => undefined), intervalMs);
      s.#sweepTimer.unref();
    }
    return store;
  }

  /**
   * Delete bodies unused for longer than the grace period and uploads abandoned by a crash; returns how
   * many blob rows went. Runs on a timer; callable for tests and `tern` maintenance.
   */
  async reclaim(): Promise<number> {
    if (this.#closed) return 0;
    const now = this.#clock.nowMs();
    return sweepBlobs(this.#pool, now - this.#graceMs, now - this.#stagingMaxAgeMs);
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p)).catch(() => undefined);
    return p;
  }

  #open(): void {
    if (this.#closed) throw new Error('mailbox store: closed');
  }

  /**
   * One write transaction, run again on a retryable failure, resolved once it is durable and the local
   * watchers have been told. Its changes go to other nodes by pg_notify inside it (sent on COMMIT only).
   */
  async #write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    this.#open();
    return this.#track(
      (async () => {
        for (let attempt = 1; ; attempt++) {
          try {
            const { result, tx } = await inTransaction(this.#pool, async (client) => {
              const t: Tx = { client, changes: new Changes(), orphaned: 0 };
              const r = await fn(t);
              const payloads = this.#feed.payloads(t.changes);
              if (payloads.length > 0) {
                await client.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [
                  this.#feed.channel,
                  payloads,
                ]);
              }
              return { result: r, tx: t };
            });
            await this.#afterCommit(tx);
            return result;
          } catch (err) {
            if (attempt < MAX_ATTEMPTS && isRetryable(err)) {
              await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
              continue;
            }
            throw pgStoreError(err);
          }
        }
      })(),
    );
  }

  async #afterCommit(tx: Tx): Promise<void> {
    await this.#feed.committed(tx.changes);
    // Without a grace period an unused body goes now ("freed when the last message using it goes").
    if (tx.orphaned > 0 && this.#graceMs <= 0) await this.reclaim().catch(() => undefined);
  }

  /** Reads in one snapshot (REPEATABLE READ): counters and rows read together agree. */
  async #reading<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    this.#open();
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** The watched folder's state now, as an event (for the change feed). */
  async #folderEvent(user: string, name: string): Promise<FolderEvent> {
    const r = await folderRow(this.#pool, user, name);
    if (r === null || r.noselect) return { kind: 'gone' };
    return { kind: 'changed', highestModseq: r.modseq, uidNext: r.uidNext, messages: r.messages };
  }

  // ------------------------------------------------------------------------------------------------
  // Delivery and messages in.

  async #findDelivery(db: Queryable, key: string): Promise<{ uid: number; id: string } | null> {
    const r = await row(
      db,
      `SELECT d.uid, f.name FROM mail_deliveries d JOIN mail_folders f ON f.id = d.folder_id
       WHERE d.delivery_key = $1`,
      [key],
    );
    if (r === null) return null;
    const uid = pgInt(r, 'uid');
    return { uid, id: messageId(pgText(r, 'name'), uid) };
  }

  /** Read a body in (see postgres-mailbox-blobs.ts); storage errors are the callers' 452 or 451. */
  async #stage(content: AsyncIterable<Uint8Array>): Promise<StagedBody> {
    try {
      return await stageBody(this.#pool, content, this.#clock.nowMs());
    } catch (err) {
      throw pgStoreError(err);
    }
  }

  async #unstage(body: StagedBody): Promise<void> {
    if (body.kind === 'staged') await dropStaging(this.#pool, body.stagingId).catch(() => undefined);
  }

  async deliver(req: DeliverRequest): Promise<{ uid: number; id: string }> {
    this.#open();
    const user = normalizeUser(req.user);
    const mailbox = normalizeMailboxName(req.mailbox);
    // A repeat is answered without reading the content: the caller may be replaying after a crash.
    const earlier = await this.#findDelivery(this.#pool, req.deliveryKey);
    if (earlier !== null) return earlier;
    const body = await this.#track(this.#stage(req.content));
    const structure = askStructure(req.structure);
    try {
      return await this.#write(async (tx) => {
        const again = await this.#findDelivery(tx.client, req.deliveryKey);
        if (again !== null) return again;
        const box = await deliveryFolder(tx, this.#ctx, user, mailbox);
        const blobId = await attachBlob(tx.client, body, 1);
        const uid = await insertMessage(tx, this.#ctx, box.id, {
          internalDateMs: req.internalDateMs,
          flags: req.flags,
          summary: req.summary,
          head: null,
          sizeBytes: body.sizeBytes,
          blobId,
          structure,
        });
        await tx.client.query(
          'INSERT INTO mail_deliveries (delivery_key, folder_id, uid) VALUES ($1, $2, $3)',
          [req.deliveryKey, box.id, uid],
        );
        tx.changes.folder(user, mailbox);
        return { uid, id: messageId(mailbox, uid) };
      });
    } finally {
      // Failed, lost a race with the same key, or the content was stored already: the upload is nobody's.
      await this.#unstage(body);
    }
  }

  async deliverAccepted(req: AcceptedDelivery): Promise<{ uid: number; id: string; repeated: boolean }[]> {
    this.#open();
    const copies = req.copies.map((c) => ({
      ...c,
      user: normalizeUser(c.user),
      mailbox: normalizeMailboxName(c.mailbox),
    }));
    if (copies.length === 0) return [];
    // A repeat of every key is answered without reading the body, as deliver() answers without the content.
    const earlier = await Promise.all(copies.map((c) => this.#findDelivery(this.#pool, c.deliveryKey)));
    if (earlier.every((e) => e !== null)) return earlier.map((e) => ({ ...e, repeated: true }));
    const { body } = req;
    const content: AsyncIterable<Uint8Array> =
      body.kind === 'inline' ? once(body.bytes) : createReadStream(body.path, { highWaterMark: CHUNK_BYTES });
    const staged = await this.#track(this.#stage(content));
    try {
      return await this.#write(async (tx) => {
        const results: ({ uid: number; id: string; repeated: boolean } | null)[] = copies.map(() => null);
        const fresh: number[] = [];
        for (const [i, c] of copies.entries()) {
          const again = await this.#findDelivery(tx.client, c.deliveryKey);
          if (again !== null) results[i] = { ...again, repeated: true };
          else fresh.push(i);
        }
        if (fresh.length > 0) {
          // One blob for every copy, referenced once per copy.
          const blobId = await attachBlob(tx.client, staged, fresh.length);
          // Folders locked in one order, so two such deliveries to the same users cannot deadlock.
          const order = [...fresh].sort((a, b) => {
            const x = `${copies[a]!.user}\u0000${copies[a]!.mailbox}`;
            const y = `${copies[b]!.user}\u0000${copies[b]!.mailbox}`;
            return x < y ? -1 : x > y ? 1 : 0;
          });
          for (const i of order) {
            const c = copies[i]!;
            const box = await deliveryFolder(tx, this.#ctx, c.user, c.mailbox);
            const uid = await insertMessage(tx, this.#ctx, box.id, {
              internalDateMs: req.internalDateMs,
              flags: c.flags,
              summary: req.summary,
              head: c.head.byteLength > 0 ? c.head : null,
              sizeBytes: c.head.byteLength + staged.sizeBytes,
              blobId,
              structure: c.structure,
            });
            await tx.client.query(
              'INSERT INTO mail_deliveries (delivery_key, folder_id, uid) VALUES ($1, $2, $3)',
              [c.deliveryKey, box.id, uid],
            );
            tx.changes.folder(c.user, c.mailbox);
            results[i] = { uid, id: messageId(c.mailbox, uid), repeated: false };
          }
        }
        return results.map((r) => r!);
      });
    } finally {
      await this.#unstage(staged);
    }
  }

  async append(
    user: string,
    folder: string,
    req: AppendRequest,
  ): Promise<{ uidValidity: number; uid: number }> {
    this.#open();
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    const flags = normalizeFlags(req.flags);
    // Refuse before reading a large literal into storage when the folder is not there.
    await selectable(this.#pool, owner, name);
    const body = await this.#track(this.#stage(req.content));
    const structure = askStructure(req.structure);
    try {
      return await this.#write(async (tx) => {
        const box = await selectable(tx.client, owner, name, true);
        const blobId = await attachBlob(tx.client, body, 1);
        const uid = await insertMessage(tx, this.#ctx, box.id, {
          internalDateMs: req.internalDateMs,
          flags,
          summary: req.summary ?? { from: '', subject: '', date: '' },
          head: null,
          sizeBytes: body.sizeBytes,
          blobId,
          structure,
        });
        tx.changes.folder(owner, name);
        return { uidValidity: box.uidValidity, uid };
      });
    } finally {
      await this.#unstage(body);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Reading (POP3, the CLI, IMAP FETCH).

  quota(user: string): Promise<QuotaUsage> {
    // A sum over the user's folder rows, whose counters every change keeps: no scan of messages.
    return this.#read(async () => {
      const r = await row(
        this.#pool,
        `SELECT coalesce(sum(message_count), 0) AS n, coalesce(sum(total_bytes), 0) AS b
         FROM mail_folders WHERE owner = $1`,
        [normalizeUser(user)],
      );
      return { messages: pgInt(r!, 'n'), bytes: pgInt(r!, 'b') };
    });
  }

  /** A read outside any transaction, once the store is known to be open. */
  async #read<T>(fn: () => Promise<T>): Promise<T> {
    this.#open();
    return fn();
  }

  list(user: string, mailbox: string = INBOX): Promise<MessageSummary[]> {
    const name = normalizeMailboxName(mailbox);
    return this.#read(async () =>
      (
        await rows(
          this.#pool,
          `SELECT m.uid, m.size_bytes, m.internal_date_ms, m.flags, m.from_header, m.subject, m.date_header
           FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
           WHERE f.owner = $1 AND f.name = $2 ORDER BY m.uid`,
          [normalizeUser(user), name],
        )
      ).map((r) => toSummary(r, name)),
    );
  }

  read(user: string, id: string): AsyncIterable<Uint8Array> | null {
    const ref = parseMessageId(id);
    if (ref === null) return null;
    const owner = normalizeUser(user);
    const pool = this.#pool;
    const find = (): Promise<{ ref: BodyRef; size: number } | null> =>
      this.#findBody(owner, ref.mailbox, ref.uid);
    return (async function* () {
      const found = await find();
      if (found === null) throw new MailboxError('nonexistent', `mailbox store: no message ${id}`);
      yield* readBody(pool, found.ref, 0, found.size);
    })();
  }

  async #findBody(
    user: string,
    mailbox: string,
    uid: number,
  ): Promise<{ ref: BodyRef; size: number } | null> {
    this.#open();
    const r = await row(
      this.#pool,
      `SELECT m.size_bytes, ${BODY_COLUMNS} FROM mail_messages m JOIN mail_folders f ON f.id = m.folder_id
       ${BODY_JOINS} WHERE f.owner = $1 AND f.name = $2 AND m.uid = $3`,
      [user, mailbox, uid],
    );
    return r === null ? null : { ref: toBodyRef(r), size: pgInt(r, 'size_bytes') };
  }

  status(user: string, mailbox: string = INBOX): Promise<MailboxStatus | null> {
    return this.#read(async () => {
      const r = await folderRow(this.#pool, normalizeUser(user), normalizeMailboxName(mailbox));
      return r === null ? null : statusOf(r);
    });
  }

  snapshot(user: string, mailbox: string = INBOX): Promise<MailboxSnapshot | null> {
    return this.#reading(async (db) => {
      const found = await folderRow(db, normalizeUser(user), normalizeMailboxName(mailbox));
      if (found === null) return null;
      const entries = (
        await rows(db, 'SELECT uid, size_bytes FROM mail_messages WHERE folder_id = $1 ORDER BY uid', [
          found.id,
        ])
      ).map((r) => {
        const uid = pgInt(r, 'uid');
        return { uid, sizeBytes: pgInt(r, 'size_bytes'), uidl: uidl(found.uidValidity, uid) };
      });
      return { ...statusOf(found), entries };
    });
  }

  async openMessage(user: string, mailbox: string, uid: number): Promise<StoredMessage | null> {
    if (!Number.isSafeInteger(uid) || uid < 1) return null;
    const found = await this.#findBody(normalizeUser(user), normalizeMailboxName(mailbox), uid);
    if (found === null) return null;
    return storedMessage(uid, found.size, readBody(this.#pool, found.ref, 0, found.size));
  }

  async openRange(
    user: string,
    folder: string,
    uid: number,
    range: ByteRange,
  ): Promise<StoredMessage | null> {
    if (!Number.isSafeInteger(uid) || uid < 1) return null;
    const found = await this.#findBody(normalizeUser(user), normalizeMailboxName(folder), uid);
    if (found === null) return null;
    const start = Math.min(offset(range.start), found.size);
    const end = Math.max(start, Math.min(offset(range.end), found.size));
    return storedMessage(uid, end - start, readBody(this.#pool, found.ref, start, end));
  }

  // ------------------------------------------------------------------------------------------------
  // Removing messages.

  async expunge(user: string, mailbox: string, uids: readonly number[]): Promise<number[]> {
    this.#open();
    const wanted = distinctUids(uids);
    if (wanted.length === 0) return [];
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(mailbox);
    return this.#write(async (tx) => {
      const box = await folderRow(tx.client, owner, name, true);
      if (box === null) return [];
      const removed = await removeMessages(tx, this.#ctx, box.id, wanted, true);
      if (removed.length > 0) tx.changes.folder(owner, name);
      return removed;
    });
  }

  // ------------------------------------------------------------------------------------------------
  // IMAP: folders.

  async ensureDefaults(user: string): Promise<void> {
    const owner = normalizeUser(user);
    // Every login asks: answer the usual case with one read and no write.
    this.#open();
    if ((await row(this.#pool, 'SELECT 1 FROM mail_user_defaults WHERE owner = $1', [owner])) !== null)
      return;
    await this.#write((tx) => ensureDefaultsIn(tx, this.#ctx, owner));
  }

  async createFolder(
    user: string,
    name: string,
    options: { readonly specialUse?: SpecialUse } = {},
  ): Promise<void> {
    const owner = normalizeUser(user);
    const folder = checkFolderName(name);
    const specialUse = options.specialUse ?? null;
    if (specialUse !== null && !(SPECIAL_USES as readonly string[]).includes(specialUse)) {
      throw new MailboxError('invalid', `mailbox store: unknown special use ${JSON.stringify(specialUse)}`);
    }
    await this.#write((tx) => createFolderIn(tx, this.#ctx, owner, folder, specialUse));
  }

  async deleteFolder(user: string, name: string): Promise<void> {
    const owner = normalizeUser(user);
    const folder = normalizeMailboxName(name);
    if (folder === INBOX) throw new MailboxError('cannot', 'mailbox store: INBOX cannot be deleted');
    await this.#write((tx) => deleteFolderIn(tx, this.#ctx, owner, folder));
  }

  async renameFolder(user: string, from: string, to: string): Promise<void> {
    const owner = normalizeUser(user);
    const source = normalizeMailboxName(from);
    const target = checkFolderName(to);
    if (target === INBOX) throw new MailboxError('alreadyexists', 'mailbox store: INBOX exists');
    if (target === source || target.startsWith(`${source}/`)) {
      throw new MailboxError('cannot', `mailbox store: cannot rename ${JSON.stringify(source)} into itself`);
    }
    await this.#write((tx) => renameFolderIn(tx, this.#ctx, owner, source, target));
  }

  owners(): Promise<{ readonly user: string; readonly messages: number }[]> {
    return this.#read(async () =>
      (
        await rows(
          this.#pool,
          `SELECT owner, message_count FROM mail_folders WHERE name = 'INBOX' ORDER BY owner COLLATE "C"`,
        )
      ).map((r) => ({ user: pgText(r, 'owner'), messages: pgInt(r, 'message_count') })),
    );
  }

  folders(user: string): Promise<FolderInfo[]> {
    return this.#reading((db) => listFolders(db, normalizeUser(user)));
  }

  async subscribe(user: string, name: string): Promise<void> {
    const owner = normalizeUser(user);
    const folder = checkFolderName(name);
    await this.#write(async (tx) => {
      const r = await tx.client.query(
        'INSERT INTO mail_subscriptions (owner, name) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [owner, folder],
      );
      if ((r.rowCount ?? 0) > 0) tx.changes.list(owner, { kind: 'subscribed', name: folder });
    });
  }

  async unsubscribe(user: string, name: string): Promise<void> {
    const owner = normalizeUser(user);
    const folder = normalizeMailboxName(name);
    await this.#write(async (tx) => {
      const r = await tx.client.query('DELETE FROM mail_subscriptions WHERE owner = $1 AND name = $2', [
        owner,
        folder,
      ]);
      if ((r.rowCount ?? 0) > 0) tx.changes.list(owner, { kind: 'unsubscribed', name: folder });
    });
  }

  subscriptions(user: string): Promise<string[]> {
    return this.#read(async () =>
      (
        await rows(
          this.#pool,
          'SELECT name FROM mail_subscriptions WHERE owner = $1 ORDER BY name COLLATE "C"',
          [normalizeUser(user)],
        )
      ).map((r) => pgText(r, 'name')),
    );
  }

  keywords(user: string, folder: string): Promise<string[]> {
    return this.#reading(async (db) => {
      const box = await selectable(db, normalizeUser(user), normalizeMailboxName(folder));
      return (
        await rows(
          db,
          'SELECT keyword FROM mail_folder_keywords WHERE folder_id = $1 ORDER BY lower(keyword) COLLATE "C", keyword',
          [box.id],
        )
      ).map((r) => pgText(r, 'keyword'));
    });
  }

  // ------------------------------------------------------------------------------------------------
  // IMAP: flags, COPY/MOVE, changes.

  async storeFlags(
    user: string,
    folder: string,
    uids: readonly number[],
    change: FlagChange,
    unchangedSince?: number,
  ): Promise<StoreFlagsResult> {
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    const wanted = distinctUids(uids);
    const flags = normalizeFlags(change.flags);
    return this.#write((tx) =>
      storeFlagsIn(tx, owner, name, wanted, { mode: change.mode, flags }, unchangedSince),
    );
  }

  copy(user: string, from: string, uids: readonly number[], to: string): Promise<CopyResult> {
    return this.#copy(user, from, uids, to, false);
  }

  move(user: string, from: string, uids: readonly number[], to: string): Promise<CopyResult> {
    return this.#copy(user, from, uids, to, true);
  }

  #copy(user: string, from: string, uids: readonly number[], to: string, move: boolean): Promise<CopyResult> {
    const owner = normalizeUser(user);
    const source = normalizeMailboxName(from);
    const target = normalizeMailboxName(to);
    const wanted = distinctUids(uids);
    return this.#write((tx) => copyIn(tx, this.#ctx, owner, source, target, wanted, move));
  }

  changesSince(user: string, folder: string, modseq: number): Promise<FolderChanges> {
    return this.#reading(async (db) => {
      const box = await selectable(db, normalizeUser(user), normalizeMailboxName(folder));
      const since = Number.isSafeInteger(modseq) && modseq > 0 ? modseq : 0;
      const changed = (
        await rows(
          db,
          'SELECT uid, flags, modseq FROM mail_messages WHERE folder_id = $1 AND modseq > $2 ORDER BY uid',
          [box.id, since],
        )
      ).map((r) => ({ uid: pgInt(r, 'uid'), flags: flagsOf(r), modseq: pgInt(r, 'modseq') }));
      const vanished = (
        await rows(db, 'SELECT uid FROM mail_expunged WHERE folder_id = $1 AND modseq > $2 ORDER BY uid', [
          box.id,
          since,
        ])
      ).map((r) => pgInt(r, 'uid'));
      return { uidValidity: box.uidValidity, highestModseq: box.modseq, changed, vanished };
    });
  }

  messages(user: string, folder: string, uids: readonly number[] | 'all'): Promise<MessageMeta[]> {
    return this.#reading(async (db) => {
      const box = await selectable(db, normalizeUser(user), normalizeMailboxName(folder));
      if (uids === 'all') {
        return (
          await rows(db, `SELECT ${META_COLUMNS} FROM mail_messages WHERE folder_id = $1 ORDER BY uid`, [
            box.id,
          ])
        ).map(toMeta);
      }
      const wanted = distinctUids(uids);
      if (wanted.length === 0) return [];
      return (
        await rows(
          db,
          `SELECT ${META_COLUMNS} FROM mail_messages WHERE folder_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid`,
          [box.id, wanted],
        )
      ).map(toMeta);
    });
  }

  async setStructure(user: string, folder: string, uid: number, structure: string): Promise<void> {
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    if (!Number.isSafeInteger(uid) || uid < 1) return;
    // A cache of the bytes, not a change a client could see: no modseq, no notification. Every copy
    // shares the bytes (and the EMAILID), so the copies stored without one get it too.
    await this.#write(async (tx) => {
      const box = await selectable(tx.client, owner, name);
      const found = await row(
        tx.client,
        'UPDATE mail_messages SET structure = $3 WHERE folder_id = $1 AND uid = $2 RETURNING email_id',
        [box.id, uid, structure],
      );
      if (found === null) return;
      await tx.client.query(
        'UPDATE mail_messages SET structure = $1 WHERE email_id = $2 AND structure IS NULL',
        [structure, pgText(found, 'email_id')],
      );
    });
  }

  folderStatus(user: string, folder: string): Promise<FolderStatus> {
    return this.#reading(async (db) => {
      const box = await selectable(db, normalizeUser(user), normalizeMailboxName(folder));
      // Both read only their partial index: the unseen and the \Deleted messages.
      const unseen = await row(
        db,
        `SELECT count(*) AS n, min(uid) AS first FROM mail_messages WHERE folder_id = $1 AND ${UNSEEN}`,
        [box.id],
      );
      const deleted = await row(
        db,
        `SELECT count(*) AS n FROM mail_messages WHERE folder_id = $1 AND ${DELETED}`,
        [box.id],
      );
      const recent = await row(
        db,
        'SELECT count(*) AS n FROM mail_messages WHERE folder_id = $1 AND uid > $2',
        [box.id, box.recentUid],
      );
      const first = unseen!['first'];
      return {
        ...statusOf(box),
        unseen: pgInt(unseen!, 'n'),
        deleted: pgInt(deleted!, 'n'),
        firstUnseenUid: first === null || first === undefined ? null : pgInt(unseen!, 'first'),
        mailboxId: box.mailboxId,
        recent: pgInt(recent!, 'n'),
      };
    });
  }

  async claimRecent(user: string, folder: string): Promise<{ from: number; to: number }> {
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    this.#open();
    const seen = await selectable(this.#pool, owner, name);
    // Nothing new since the last claim: no write, so a plain SELECT costs no commit.
    if (seen.recentUid >= seen.uidNext - 1) return { from: seen.uidNext - 1, to: seen.uidNext - 1 };
    return this.#write(async (tx) => {
      const box = await selectable(tx.client, owner, name, true);
      const to = box.uidNext - 1;
      await tx.client.query('UPDATE mail_folders SET recent_uid = $1 WHERE id = $2 AND recent_uid < $1', [
        to,
        box.id,
      ]);
      return { from: box.recentUid, to };
    });
  }

  async accessKey(user: string, folder: string, create: boolean): Promise<Uint8Array | null> {
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    const read = async (db: Queryable): Promise<Buffer | null> => {
      const box = await selectable(db, owner, name);
      const r = await row(db, 'SELECT key FROM mail_access_keys WHERE folder_id = $1', [box.id]);
      return r === null ? null : pgBytes(r, 'key');
    };
    this.#open();
    const found = await read(this.#pool);
    if (found !== null || !create) return found;
    const fresh = randomBytes(ACCESS_KEY_BYTES);
    return this.#write(async (tx) => {
      // Another session may have made one meanwhile: the first key made stays the key.
      const box = await selectable(tx.client, owner, name, true);
      await tx.client.query(
        'INSERT INTO mail_access_keys (folder_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [box.id, fresh],
      );
      const key = await read(tx.client);
      if (key === null) throw new Error('mailbox store: access key vanished in its own transaction');
      return key;
    });
  }

  async resetAccessKeys(user: string, folder: string | null): Promise<void> {
    const owner = normalizeUser(user);
    await this.#write(async (tx) => {
      if (folder === null) {
        await tx.client.query(
          'DELETE FROM mail_access_keys WHERE folder_id IN (SELECT id FROM mail_folders WHERE owner = $1)',
          [owner],
        );
        return;
      }
      const box = await selectable(tx.client, owner, normalizeMailboxName(folder));
      await tx.client.query('DELETE FROM mail_access_keys WHERE folder_id = $1', [box.id]);
    });
  }

  // ------------------------------------------------------------------------------------------------
  // The change feed.

  watch(user: string, folder: string, listener: (event: FolderEvent) => void): () => void {
    return this.#feed.watch(normalizeUser(user), normalizeMailboxName(folder), listener);
  }

  watchFolderList(user: string, listener: (event: FolderListEvent) => void): () => void {
    return this.#feed.watchFolderList(normalizeUser(user), listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    await Promise.allSettled([...this.#inflight]);
    await this.#feed.close();
  }
}

function statusOf(r: FolderRow): MailboxStatus {
  return {
    uidValidity: r.uidValidity,
    uidNext: r.uidNext,
    messages: r.messages,
    sizeBytes: r.sizeBytes,
    highestModseq: r.modseq,
  };
}

/** A message opened for reading: nothing is held until it is read, so close() only stops the reading. */
function storedMessage(uid: number, sizeBytes: number, source: AsyncGenerator<Buffer>): StoredMessage {
  let closed = false;
  async function* content(): AsyncIterable<Uint8Array> {
    try {
      for await (const chunk of source) {
        if (closed) return;
        yield chunk;
      }
    } finally {
      await source.return(undefined);
    }
  }
  return {
    uid,
    sizeBytes,
    content: content(),
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
}
