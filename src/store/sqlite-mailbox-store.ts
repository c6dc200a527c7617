// The embedded mailbox store: <dir>/mail.db holds mailboxes (UIDVALIDITY, UIDNEXT), message summaries
// and small bodies as BLOBs; bodies above spillBytes are files under <dir>/blobs/<xx>/<id>, written to
// <dir>/tmp first, fsynced, renamed into place and the directory fsynced, all before the row commits.
// deliver() is idempotent per deliveryKey (the key outlives the message, so a redelivery after an
// expunge is still a no-op) and group-committed like the queue. UIDs are allocated from UIDNEXT inside
// the same transaction, so they only grow, survive restarts and are never reused (RFC 9051 §2.3.1.1).
// UIDVALIDITY starts at the creation time in epoch seconds and never repeats within one store.
// Message ids for the CLI: "<uid>" in INBOX, "<mailbox>/<uid>" elsewhere.
//
// Counters: each mailbox row keeps its message count, total size and modseq, updated in the transaction
// that changes the messages, so status() is one row read whatever the mailbox's size (IMAP clients ask
// STATUS of every folder, often). Every delivery and every expunge raises the modseq by one; a message
// carries the modseq of its delivery; expunged UIDs are kept in `expunged` with the modseq that removed
// them (for QRESYNC's VANISHED), never reused since UIDNEXT only grows.
//
// Expunge and crash safety: the rows go in one group-committed transaction that also records each body
// file in `doomed_bodies`; only after that transaction is durable are the files unlinked (their folders
// fsynced), and then the doomed rows deleted. A crash anywhere leaves either the message whole (not yet
// committed) or a doomed row for a file that open() removes: never a message row without its body.
// (open() fsyncs the WAL first: a CLI process sees the server's commit before the server's fsync ends.)
// A message opened for reading holds its file open, so an expunge racing a POP3 RETR cannot cut it short.
//
// IMAP (schema step 3): small bodies live in `blobs`, large ones in files, and a COPY inserts a message
// row that references the same blob or file (no bytes copied); a body is freed when the last row using
// it goes (one index lookup, no reference counter that could drift). Copies count in full toward quotas.
// Refcounting rather than content addressing: a COPY knows which body it shares, so nothing is hashed on
// the delivery path; dedupe of independent deliveries (one message to many local users) can come later.
// The change feed fires after each durable commit of this process; commits of another process (the CLI)
// are found by polling PRAGMA data_version every changePollMs (50 ms) while anybody watches.
//
// IMAP reading (schema step 4): each message row keeps its MIME structure (opaque text the caller
// scanned as the store read the content, protocol/mime/codec.ts; the store never parses it), its save
// date (RFC 8514 SAVEDATE: delivery, APPEND, COPY and MOVE set it from the clock) and its EMAILID
// (RFC 8474 §5.1), which COPY and MOVE carry, so every copy of one stored message shares it; each folder
// row has a MAILBOXID (RFC 8474 §4.1) that stays with the row through RENAME and is never handed out
// again. messages() is one statement (the UIDs go in as one JSON array and are looked up by key);
// openRange() (RFC 9051 §6.4.5 partial FETCH) reads only the range: substr() of the BLOB, or positioned
// reads of the file. STATUS UNSEEN/DELETED (RFC 9051 §6.3.11) and SELECT's first unseen come from two
// partial indexes that hold only the unseen and only the \Deleted messages, not from counters: the flags
// column stays the one truth (a counter would have to be kept right by every STORE, COPY, MOVE,
// EXPUNGE, RENAME and DELETE, and a drifted one would be wrong for good), and the cost is a range of the
// unseen messages alone: 0.5 ms for a folder of 10,000 unseen, 0.02 ms with 20 unseen.
//
// Deliberately not here: quota limits (the directory's, later), pruning old delivery keys and old
// expunged UIDs, a sweep of blobs/ for files a crash left between their rename and the delivery's commit,
// threading (THREADID is null: FETCH answers NIL, RFC 8474 §5.2 allows it).

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open, readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import type { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../core/ports.ts';
import { BodySink, DEFAULT_SPILL_BYTES } from '../db/body-sink.ts';
import type { StoredBody } from '../db/body-sink.ts';
import type { GroupCommitStats } from '../db/group-commit.ts';
import { GroupCommit } from '../db/group-commit.ts';
import { SortableIds } from '../db/sortable-id.ts';
import type { Row } from '../db/sqlite.ts';
import { attempt, bytesOrNull, integer, openDatabase, Statements, text, textOrNull } from '../db/sqlite.ts';
import type { StorageFs } from '../db/storage-fs.ts';
import { errnoCode, nodeStorageFs, removeQuietly, storageError } from '../db/storage-fs.ts';
import type {
  AcceptedDelivery,
  AppendRequest,
  ByteRange,
  MessageMeta,
  CopyResult,
  DeliverRequest,
  FlagChange,
  FolderChanges,
  FolderEvent,
  FolderListEvent,
  FolderInfo,
  FolderStatus,
  ImapMailboxStore,
  MailboxSnapshot,
  MailboxStatus,
  MessageFlags,
  MessageSummary,
  QuotaUsage,
  SpecialUse,
  StoreFlagsResult,
  StoredMessage,
} from './mailbox-store.ts';
import { distinctUids, messageId, parseMessageId } from './mailbox-store.ts';
import {
  applyFlagChange,
  checkFolderName,
  DEFAULT_FOLDERS,
  INBOX,
  MailboxError,
  normalizeFlags,
  normalizeMailboxName,
  normalizeUser,
  parentNames,
  SPECIAL_USES,
  uidl,
} from './mailbox-store.ts';

/** What a store tells the other threads' stores after a durable commit (options.broadcast). */
type StoreBroadcast =
  | { readonly kind: 'folders'; readonly user: string; readonly names: readonly string[] }
  | { readonly kind: 'list'; readonly user: string; readonly events: readonly FolderListEvent[] };

/** URLAUTH mailbox access keys: 256 bits (RFC 4467 §7 asks for at least 128). */
const ACCESS_KEY_BYTES = 32;

export interface SqliteMailboxStoreOptions {
  /** The store's folder (e.g. data/mail): mail.db, blobs/ and tmp/ live here. */
  readonly dir: string;
  readonly clock: Clock;
  /** Bodies larger than this are stored as files instead of BLOBs. */
  readonly spillBytes?: number | undefined;
  readonly groupCommitWindowMs?: number | undefined;
  /** File operations for body files; tests inject a full disk here. */
  readonly fs?: StorageFs | undefined;
  /** How often watchers look for changes committed by another process (the CLI); default 50 ms. */
  readonly changePollMs?: number | undefined;
  /**
   * 'owner' (default): this connection sweeps tmp/ and reclaims doomed bodies at open. 'session': another
   * connection of the same process owns the files (a session thread beside the main thread): no sweeps,
   * which could take a delivery in progress for an orphan.
   */
  readonly role?: 'owner' | 'session' | undefined;
  /**
   * Tell the stores on the other threads of this process what each commit changed, and hear theirs
   * (a BroadcastChannel per store folder): IDLE and NOTIFY sessions on one thread see another thread's
   * delivery at once, and folder-list events (which no poll can find) at all.
   */
  readonly broadcast?: boolean | undefined;
  /** Test seam: sees the database once open. */
  readonly onDatabase?: ((db: DatabaseSync) => void) | undefined;
}

const TMP = 'tmp';
const BLOBS = 'blobs';
/** Read size for bodies in files: what one socket write of a RETR or FETCH carries. */
const READ_CHUNK_BYTES = 64 * 1024;

/** A body read in: a BLOB to insert, or a durable file under blobs/ to reference. */
interface Spooled {
  readonly body: StoredBody;
  readonly bodyFile: string | null;
  /** Bytes stored in front of bodyFile (body.sizeBytes counts them); null for a BLOB or a whole file. */
  readonly head: Uint8Array | null;
  /** The caller's encoded MIME structure, or null. */
  readonly structure: string | null;
}

interface FolderRow {
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
}

function toFolderRow(r: Row): FolderRow {
  return {
    id: integer(r, 'id'),
    name: text(r, 'name'),
    uidValidity: integer(r, 'uidvalidity'),
    uidNext: integer(r, 'uidnext'),
    modseq: integer(r, 'modseq'),
    messages: integer(r, 'message_count'),
    sizeBytes: integer(r, 'total_bytes'),
    noselect: integer(r, 'noselect') === 1,
    specialUse: textOrNull(r, 'special_use') as SpecialUse | null,
    mailboxId: text(r, 'objectid'),
  };
}

function watchKey(user: string, name: string): string {
  return JSON.stringify([user, name]);
}

function sameEvent(a: FolderEvent, b: FolderEvent): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The same flags, whatever their order and case. */
function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  const key = (f: readonly string[]): string => JSON.stringify(f.map((x) => x.toLowerCase()).sort());
  return key(a) === key(b);
}

const DEFAULT_CHANGE_POLL_MS = 50;

/** Exported for the upgrade test only. */
export const MIGRATIONS = [
  `CREATE TABLE meta (
     key TEXT PRIMARY KEY,
     value INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE mailboxes (
     id INTEGER PRIMARY KEY,
     user TEXT NOT NULL,
     name TEXT NOT NULL,
     uidvalidity INTEGER NOT NULL,
     uidnext INTEGER NOT NULL,
     UNIQUE (user, name)
   ) STRICT;
   CREATE TABLE messages (
     mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
     uid INTEGER NOT NULL,
     size_bytes INTEGER NOT NULL,
     internal_date_ms INTEGER NOT NULL,
     flags TEXT NOT NULL,
     from_header TEXT NOT NULL,
     subject TEXT NOT NULL,
     date_header TEXT NOT NULL,
     body_file TEXT,
     PRIMARY KEY (mailbox_id, uid)
   ) STRICT;
   CREATE TABLE bodies (
     mailbox_id INTEGER NOT NULL,
     uid INTEGER NOT NULL,
     data BLOB NOT NULL,
     PRIMARY KEY (mailbox_id, uid),
     FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
   ) STRICT;
   CREATE TABLE deliveries (
     delivery_key TEXT PRIMARY KEY,
     mailbox_id INTEGER NOT NULL,
     uid INTEGER NOT NULL
   ) STRICT;`,
  // 2: retrieval (POP3 now, IMAP next): counters per mailbox, modseqs, expunged UIDs, doomed bodies.
  // Mail delivered before this step counts one modseq per delivery, as it would have.
  `ALTER TABLE mailboxes ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE mailboxes ADD COLUMN total_bytes INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE mailboxes ADD COLUMN modseq INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE messages ADD COLUMN modseq INTEGER NOT NULL DEFAULT 1;
   UPDATE messages SET modseq = uid + 1;
   UPDATE mailboxes SET
     message_count = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id),
     total_bytes = (SELECT coalesce(sum(m.size_bytes), 0) FROM messages m WHERE m.mailbox_id = mailboxes.id),
     modseq = uidnext;
   CREATE TABLE expunged (
     mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
     uid INTEGER NOT NULL,
     modseq INTEGER NOT NULL,
     PRIMARY KEY (mailbox_id, uid)
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE doomed_bodies (
     body_file TEXT PRIMARY KEY
   ) STRICT;`,
  // 3: IMAP. Folders as objects (\Noselect placeholders, special use, subscriptions kept apart from the
  // folders, as RFC 9051 §6.3.9 wants them to outlive a delete), keywords per folder, and shared bodies:
  // small bodies move from `bodies` (one per message) to `blobs` (one per stored message, referenced by
  // every copy); files were already named by messages.body_file, which copies now share. A body goes when
  // its last message goes (an index lookup per expunge, no reference counter that could drift).
  `ALTER TABLE mailboxes ADD COLUMN noselect INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE mailboxes ADD COLUMN special_use TEXT;
   CREATE TABLE subscriptions (
     user TEXT NOT NULL,
     name TEXT NOT NULL,
     PRIMARY KEY (user, name)
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE user_defaults (
     user TEXT PRIMARY KEY
   ) STRICT;
   CREATE TABLE folder_keywords (
     mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
     keyword TEXT NOT NULL COLLATE NOCASE,
     PRIMARY KEY (mailbox_id, keyword)
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE blobs (
     id INTEGER PRIMARY KEY,
     data BLOB NOT NULL
   ) STRICT;
   ALTER TABLE messages ADD COLUMN blob_id INTEGER;
   INSERT INTO blobs (id, data)
     SELECT m.rowid, b.data FROM bodies b JOIN messages m ON m.mailbox_id = b.mailbox_id AND m.uid = b.uid;
   UPDATE messages SET blob_id = rowid WHERE rowid IN (SELECT id FROM blobs);
   DROP TABLE bodies;
   CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
   CREATE INDEX messages_blob ON messages (blob_id) WHERE blob_id IS NOT NULL;
   CREATE INDEX messages_body_file ON messages (body_file) WHERE body_file IS NOT NULL;
   CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);`,
  // 4: IMAP FETCH/SEARCH/SELECT. The MIME structure (opaque text, protocol/mime/codec.ts), the save date
  // (RFC 8514; mail already here was saved when it arrived), EMAILID (RFC 8474) and the folders'
  // MAILBOXID. Existing rows get ids derived from what already tells them apart: copies already share a
  // blob or a file, so 'B<blob id>' or 'F<file path>' is one id per stored message; a folder's
  // 'U<uidvalidity>-<row id>' is unique now. New ids are 'M'/'F' + a sortable id (db/sortable-id.ts),
  // so no derived id is ever handed out again. The partial indexes keep only the unseen and the
  // \Deleted messages: STATUS UNSEEN, SELECT's first unseen and STATUS DELETED read those entries
  // alone, and the flags column stays the only truth (no counter that could drift from it). The flags
  // are JSON, so a system flag is the text "\\Seen" in quotes; keywords cannot hold a backslash.
  String.raw`ALTER TABLE messages ADD COLUMN structure TEXT;
   ALTER TABLE messages ADD COLUMN save_date_ms INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN email_id TEXT NOT NULL DEFAULT '';
   UPDATE messages SET save_date_ms = internal_date_ms, email_id = CASE
       WHEN blob_id IS NOT NULL THEN 'B' || blob_id
       WHEN body_file IS NOT NULL THEN 'F' || replace(body_file, '/', '_')
       ELSE 'R' || rowid END;
   ALTER TABLE mailboxes ADD COLUMN objectid TEXT NOT NULL DEFAULT '';
   UPDATE mailboxes SET objectid = 'U' || uidvalidity || '-' || id;
   CREATE UNIQUE INDEX mailboxes_objectid ON mailboxes (objectid);
   CREATE INDEX messages_email_id ON messages (email_id);
   CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE instr(lower(flags), '"\\seen"') = 0;
   CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE instr(lower(flags), '"\\deleted"') > 0;`,
  // 5: IMAP4rev1's \Recent (RFC 3501 §2.3.2): the highest UID some session has already been shown as
  // recent. A message above it is recent to the next session that selects the folder, and to that one only.
  // Mail already here counts as seen by an earlier session.
  `ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
   UPDATE mailboxes SET recent_uid = uidnext - 1;`,
  // 6: URLAUTH (RFC 4467 §2): one mailbox access key per folder, made by the first GENURLAUTH and
  // forgotten by RESETKEY. Keyed by the folder row, so a deleted folder takes its key along and a new
  // folder of the same name starts with another (its old URLs name a UIDVALIDITY that is gone anyway).
  `CREATE TABLE access_keys (
     mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
     key BLOB NOT NULL
   ) STRICT;`,
  // 7: one body file for many messages with different heads (deliverAccepted): the header fields stored
  // in front of the file (Return-Path:, Delivered-To:, Authentication-Results:), NULL for every message
  // stored before and for BLOB bodies (whose head is in the BLOB). size_bytes counts head and file.
  `ALTER TABLE messages ADD COLUMN body_head BLOB;`,
];

// The terms of schema step 4's partial indexes, written the same way so the planner uses them.
/** Exported for the query-plan test only. */
export const UNSEEN = String.raw`instr(lower(flags), '"\\seen"') = 0`;
/** Exported for the query-plan test only. */
export const DELETED = String.raw`instr(lower(flags), '"\\deleted"') > 0`;

export class SqliteMailboxStore implements ImapMailboxStore {
  readonly #dir: string;
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #commits: GroupCommit;
  readonly #clock: Clock;
  readonly #fs: StorageFs;
  readonly #spillBytes: number;
  readonly #ids = new SortableIds();
  /** Shard folders under blobs/ whose own entry this process made durable: fsynced once, not per file. */
  readonly #durableShards = new Set<string>();
  /** Body reclamations after expunges, awaited by close() so it leaves no work behind. */
  readonly #reclaiming = new Set<Promise<void>>();
  #closed = false;
  /** Change feed: listeners per folder, with what they were last told. */
  readonly #watchers = new Map<string, { listeners: Set<(e: FolderEvent) => void>; last: FolderEvent }>();
  readonly #pollMs: number;
  #pollTimer: NodeJS.Timeout | null = null;
  /** Folder list feed: listeners per user (in-process only). */
  readonly #listWatchers = new Map<string, Set<(e: FolderListEvent) => void>>();
  #dataVersion = 0;
  /** The other threads' stores on the same folder (options.broadcast). */
  #channel: BroadcastChannel | null = null;

  private constructor(options: SqliteMailboxStoreOptions, db: DatabaseSync) {
    this.#dir = options.dir;
    this.#db = db;
    this.#sql = new Statements(db);
    this.#commits = new GroupCommit(db, { windowMs: options.groupCommitWindowMs });
    this.#clock = options.clock;
    this.#fs = options.fs ?? nodeStorageFs;
    this.#spillBytes = options.spillBytes ?? DEFAULT_SPILL_BYTES;
    this.#pollMs = options.changePollMs ?? DEFAULT_CHANGE_POLL_MS;
  }

  static async open(options: SqliteMailboxStoreOptions): Promise<SqliteMailboxStore> {
    const fs = options.fs ?? nodeStorageFs;
    await fs.mkdir(join(options.dir, TMP));
    await fs.mkdir(join(options.dir, BLOBS));
    const db = openDatabase(join(options.dir, 'mail.db'), { migrations: MIGRATIONS });
    const owner = (options.role ?? 'owner') === 'owner';
    try {
      options.onDatabase?.(db);
      // tmp/ only ever holds bodies of deliveries that never committed. Files younger than a minute
      // may be another process's delivery in progress (a CLI opening the store while the server runs).
      const cutoffMs = Date.now() - 60_000;
      for (const name of owner ? await readdir(join(options.dir, TMP)) : []) {
        const path = join(options.dir, TMP, name);
        const info = await stat(path).catch(() => null);
        if (info !== null && info.isFile() && info.mtimeMs <= cutoffMs) await removeQuietly(fs, path);
      }
    } catch (err) {
      db.close();
      throw err;
    }
    const store = new SqliteMailboxStore(options, db);
    // Bodies of expunges whose files a crash (or a close) kept.
    if (options.broadcast === true) store.#listen(options.dir);
    if (!owner) return store;
    try {
      const doomed = store.#sql
        .sql('SELECT body_file FROM doomed_bodies')
        .all()
        .map((r) => text(r, 'body_file'));
      if (doomed.length > 0) {
        // Another process (the server, when this is the CLI) may have committed these rows without its
        // fsync having ended yet: make them durable before their files go.
        for (const file of ['mail.db-wal', 'mail.db']) await syncExisting(join(options.dir, file));
        await store.#reclaim(doomed);
      }
    } catch (err) {
      db.close();
      throw err;
    }
    return store;
  }

  /** Transactions used by deliveries so far (group commit makes it fewer than deliveries). */
  get commitStats(): GroupCommitStats {
    return this.#commits.stats;
  }

  status(user: string, mailbox: string = INBOX): Promise<MailboxStatus | null> {
    return attempt(() => this.#status(normalizeUser(user), normalizeMailboxName(mailbox))?.status ?? null);
  }

  #status(user: string, mailbox: string): { id: number; status: MailboxStatus } | null {
    const row = this.#sql
      .sql(
        `SELECT id, uidvalidity, uidnext, message_count, total_bytes, modseq
         FROM mailboxes WHERE user = ? AND name = ?`,
      )
      .get(user, mailbox);
    if (row === undefined) return null;
    return {
      id: integer(row, 'id'),
      status: {
        uidValidity: integer(row, 'uidvalidity'),
        uidNext: integer(row, 'uidnext'),
        messages: integer(row, 'message_count'),
        sizeBytes: integer(row, 'total_bytes'),
        highestModseq: integer(row, 'modseq'),
      },
    };
  }

  snapshot(user: string, mailbox: string = INBOX): Promise<MailboxSnapshot | null> {
    return attempt(() =>
      // One read transaction: another process (the CLI) committing between the two reads cannot make the
      // counters disagree with the entries.
      this.#reading(() => {
        const found = this.#status(normalizeUser(user), normalizeMailboxName(mailbox));
        if (found === null) return null;
        const { uidValidity } = found.status;
        const entries = this.#sql
          .sql('SELECT uid, size_bytes FROM messages WHERE mailbox_id = ? ORDER BY uid')
          .all(found.id)
          .map((r) => {
            const uid = integer(r, 'uid');
            return { uid, sizeBytes: integer(r, 'size_bytes'), uidl: uidl(uidValidity, uid) };
          });
        return { ...found.status, entries };
      }),
    );
  }

  /** Run reads in one snapshot. Group commit never leaves a transaction open between event-loop turns. */
  #reading<T>(fn: () => T): T {
    if (this.#db.isTransaction) return fn();
    this.#db.exec('BEGIN');
    try {
      return fn();
    } finally {
      this.#db.exec('COMMIT');
    }
  }

  async deliver(req: DeliverRequest): Promise<{ uid: number; id: string }> {
    if (this.#closed) throw new Error('mailbox store: closed');
    const user = normalizeUser(req.user);
    const mailbox = normalizeMailboxName(req.mailbox);
    // A repeat is answered without reading the content: the caller may be replaying after a crash.
    const earlier = this.#findDelivery(req.deliveryKey);
    if (earlier !== null) return earlier;
    const spooled = await this.#spool(req.content, req.structure);
    try {
      const result = await this.#commits.run(() => this.#insertDelivery(req, user, mailbox, spooled));
      // Lost a race with a concurrent delivery of the same key: ours is the duplicate.
      if (result.repeated) await this.#dropSpooled(spooled);
      else this.#notify(user, [mailbox]);
      return { uid: result.uid, id: result.id };
    } catch (err) {
      await this.#dropSpooled(spooled);
      throw storageError(err);
    }
  }

  async deliverAccepted(req: AcceptedDelivery): Promise<{ uid: number; id: string; repeated: boolean }[]> {
    if (this.#closed) throw new Error('mailbox store: closed');
    const copies = req.copies.map((c) => ({
      ...c,
      user: normalizeUser(c.user),
      mailbox: normalizeMailboxName(c.mailbox),
    }));
    if (copies.length === 0) return [];
    const { body } = req;
    // A repeat is answered without linking the file, as deliver() answers without reading the content:
    // the caller may be replaying. (In the transaction below each key is looked up again anyway.)
    if (body.kind === 'file') {
      const earlier = copies.map((c) => this.#findDelivery(c.deliveryKey));
      if (earlier.every((e) => e !== null)) return earlier.map((e) => ({ ...e, repeated: true }));
    }
    // A file is linked in once, whatever the number of copies; a repeat of every key leaves it unused.
    const bodyFile = body.kind === 'file' ? await this.#adoptFile(body.path) : null;
    try {
      const results = await this.#commits.run(() =>
        copies.map((c) => {
          const earlier = this.#findDelivery(c.deliveryKey);
          if (earlier !== null) return { ...earlier, repeated: true };
          const box = this.#mailbox(c.user, c.mailbox);
          const sizeBytes = c.head.byteLength + body.sizeBytes;
          const spooled: Spooled =
            body.kind === 'inline'
              ? {
                  body: { kind: 'inline', bytes: Buffer.concat([c.head, body.bytes]), sizeBytes },
                  bodyFile: null,
                  head: null,
                  structure: c.structure,
                }
              : {
                  body: { kind: 'file', path: body.path, sizeBytes },
                  bodyFile,
                  head: c.head.byteLength > 0 ? c.head : null,
                  structure: c.structure,
                };
          const uid = this.#insertMessage(box, {
            internalDateMs: req.internalDateMs,
            flags: c.flags,
            summary: req.summary,
            spooled,
          });
          this.#sql
            .sql('INSERT INTO deliveries (delivery_key, mailbox_id, uid) VALUES (?, ?, ?)')
            .run(c.deliveryKey, box.id, uid);
          return { uid, id: messageId(c.mailbox, uid), repeated: false };
        }),
      );
      const fresh = copies.filter((_, i) => !results[i]!.repeated);
      if (fresh.length === 0 && bodyFile !== null) await removeQuietly(this.#fs, join(this.#dir, bodyFile));
      const byUser = new Map<string, Set<string>>();
      for (const c of fresh) byUser.set(c.user, (byUser.get(c.user) ?? new Set()).add(c.mailbox));
      for (const [user, boxes] of byUser) this.#notify(user, [...boxes]);
      return results;
    } catch (err) {
      if (bodyFile !== null) await removeQuietly(this.#fs, join(this.#dir, bodyFile));
      throw storageError(err);
    }
  }

  /** A durable file of another part of Tern (the queue's spool) made one of ours, under blobs/. */
  async #adoptFile(path: string): Promise<string> {
    const name = this.#ids.next(this.#clock.nowMs());
    const shard = join(BLOBS, name.slice(-2));
    // A shard this process made durable exists: one mkdir per shard, not per file.
    if (!this.#durableShards.has(shard)) await this.#fs.mkdir(join(this.#dir, shard));
    const rel = join(shard, name);
    try {
      if ((await this.#fs.link(path, join(this.#dir, rel))) === 'copied')
        await syncExisting(join(this.#dir, rel));
      await this.#fs.syncDir(join(this.#dir, shard));
      await this.#shardDurable(shard);
    } catch (err) {
      await removeQuietly(this.#fs, join(this.#dir, rel));
      throw storageError(err);
    }
    return rel;
  }

  /** Read a message into a BLOB or a durable file under blobs/; nothing is left behind when it fails. */
  async #spool(
    content: AsyncIterable<Uint8Array>,
    structureOf: (() => string) | undefined,
  ): Promise<Spooled> {
    const name = this.#ids.next(this.#clock.nowMs());
    const sink = new BodySink({
      path: join(this.#dir, TMP, name),
      spillBytes: this.#spillBytes,
      fs: this.#fs,
    });
    let bodyFile: string | null = null;
    try {
      for await (const chunk of content) await sink.write(chunk);
      // The caller scanned the chunks as they went by: all of them now.
      const structure = askStructure(structureOf);
      const body = await sink.finish();
      if (body.kind === 'file') bodyFile = await this.#placeFile(body, name);
      return { body, bodyFile, structure, head: null };
    } catch (err) {
      await sink.discard().catch(() => undefined);
      if (bodyFile !== null) await removeQuietly(this.#fs, join(this.#dir, bodyFile));
      throw storageError(err);
    }
  }

  async #dropSpooled(spooled: Spooled): Promise<void> {
    if (spooled.bodyFile !== null) await removeQuietly(this.#fs, join(this.#dir, spooled.bodyFile));
  }

  /** Move a durable tmp file to blobs/<xx>/<name> and make the move durable. */
  async #placeFile(body: Extract<StoredBody, { kind: 'file' }>, name: string): Promise<string> {
    // The last two characters are random: 1024 evenly filled folders.
    const shard = join(BLOBS, name.slice(-2));
    // A shard this process made durable exists: one mkdir per shard, not per file.
    if (!this.#durableShards.has(shard)) await this.#fs.mkdir(join(this.#dir, shard));
    const rel = join(shard, name);
    await this.#fs.rename(body.path, join(this.#dir, rel));
    await this.#fs.syncDir(join(this.#dir, shard));
    await this.#shardDurable(shard);
    return rel;
  }

  /**
   * The shard folder may be new: its own entry in blobs/ must be durable too. Once per shard and process
   * (1,024 shards), not per file; a shard an earlier process made is synced again the first time, since
   * that process may have died before its fsync.
   */
  async #shardDurable(shard: string): Promise<void> {
    if (this.#durableShards.has(shard)) return;
    await this.#fs.syncDir(join(this.#dir, BLOBS));
    this.#durableShards.add(shard);
  }

  #findDelivery(key: string): { uid: number; id: string } | null {
    const row = this.#sql
      .sql(
        `SELECT d.uid, b.name FROM deliveries d JOIN mailboxes b ON b.id = d.mailbox_id WHERE d.delivery_key = ?`,
      )
      .get(key);
    if (row === undefined) return null;
    const uid = integer(row, 'uid');
    return { uid, id: messageId(text(row, 'name'), uid) };
  }

  #insertDelivery(
    req: DeliverRequest,
    user: string,
    mailbox: string,
    spooled: Spooled,
  ): { uid: number; id: string; repeated: boolean } {
    const earlier = this.#findDelivery(req.deliveryKey);
    if (earlier !== null) return { ...earlier, repeated: true };
    const box = this.#mailbox(user, mailbox);
    const uid = this.#insertMessage(box, {
      internalDateMs: req.internalDateMs,
      flags: req.flags,
      summary: req.summary,
      spooled,
    });
    this.#sql
      .sql('INSERT INTO deliveries (delivery_key, mailbox_id, uid) VALUES (?, ?, ?)')
      .run(req.deliveryKey, box.id, uid);
    return { uid, id: messageId(mailbox, uid), repeated: false };
  }

  /** Inside a transaction: add one message at UIDNEXT with a new modseq; returns its UID. */
  #insertMessage(
    box: { readonly id: number },
    m: {
      readonly internalDateMs: number;
      readonly flags: readonly string[];
      readonly summary: { readonly from: string; readonly subject: string; readonly date: string };
      readonly spooled: Spooled;
    },
  ): number {
    // Read again: an earlier operation of the same group transaction may have moved the counters.
    const now = this.#counters(box.id);
    const uid = now.uidNext;
    const modseq = now.modseq + 1;
    const { body, bodyFile, structure, head } = m.spooled;
    const nowMs = this.#clock.nowMs();
    this.#sql
      .sql(
        `UPDATE mailboxes SET uidnext = ?, modseq = ?, message_count = message_count + 1,
           total_bytes = total_bytes + ? WHERE id = ?`,
      )
      .run(uid + 1, modseq, body.sizeBytes, box.id);
    const blobId =
      body.kind === 'inline'
        ? Number(this.#sql.sql('INSERT INTO blobs (data) VALUES (?)').run(body.bytes).lastInsertRowid)
        : null;
    this.#sql
      .sql(
        `INSERT INTO messages (mailbox_id, uid, size_bytes, internal_date_ms, flags, from_header, subject,
           date_header, body_file, modseq, blob_id, structure, save_date_ms, email_id, body_head)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        box.id,
        uid,
        body.sizeBytes,
        m.internalDateMs,
        JSON.stringify(m.flags),
        m.summary.from,
        m.summary.subject,
        m.summary.date,
        bodyFile,
        modseq,
        blobId,
        structure,
        nowMs,
        `M${this.#ids.next(nowMs)}`,
        head,
      );
    this.#addKeywords(box.id, m.flags);
    return uid;
  }

  #counters(id: number): { uidNext: number; modseq: number } {
    const row = this.#sql.sql('SELECT uidnext, modseq FROM mailboxes WHERE id = ?').get(id);
    if (row === undefined) throw new MailboxError('nonexistent', 'mailbox store: folder is gone');
    return { uidNext: integer(row, 'uidnext'), modseq: integer(row, 'modseq') };
  }

  /** Keywords (not system flags) join the folder's FLAGS list; it only grows, as clients expect. */
  #addKeywords(id: number, flags: readonly string[]): void {
    for (const flag of flags) {
      if (flag.startsWith('\\')) continue;
      this.#sql
        .sql('INSERT OR IGNORE INTO folder_keywords (mailbox_id, keyword) VALUES (?, ?)')
        .run(id, flag);
    }
  }

  /** The mailbox row, created on first delivery (a \Noselect placeholder becomes a folder). In a transaction. */
  #mailbox(user: string, name: string): { id: number } {
    const row = this.#sql
      .sql('SELECT id, noselect FROM mailboxes WHERE user = ? AND name = ?')
      .get(user, name);
    if (row !== undefined) {
      if (integer(row, 'noselect') === 1) {
        this.#sql.sql('UPDATE mailboxes SET noselect = 0 WHERE id = ?').run(integer(row, 'id'));
      }
      return { id: integer(row, 'id') };
    }
    return { id: this.#createRow(user, name, { noselect: false, specialUse: null }) };
  }

  /** A new folder row with a UIDVALIDITY never handed out before in this store. In a transaction. */
  #createRow(user: string, name: string, o: { noselect: boolean; specialUse: SpecialUse | null }): number {
    // UIDVALIDITY: creation time in seconds, but always above any value handed out before, so a mailbox
    // deleted and re-created within one second still gets a new one (RFC 9051 §2.3.1.1).
    const last = this.#sql.sql(`SELECT value FROM meta WHERE key = 'last_uidvalidity'`).get();
    const uidValidity = Math.max(
      Math.floor(this.#clock.nowMs() / 1000),
      (last === undefined ? 0 : integer(last, 'value')) + 1,
    );
    this.#sql
      .sql(
        `INSERT INTO meta (key, value) VALUES ('last_uidvalidity', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      )
      .run(uidValidity);
    const created = this.#sql
      .sql(
        `INSERT INTO mailboxes (user, name, uidvalidity, uidnext, noselect, special_use, objectid)
         VALUES (?, ?, ?, 1, ?, ?, ?)`,
      )
      .run(
        user,
        name,
        uidValidity,
        o.noselect ? 1 : 0,
        o.specialUse,
        `F${this.#ids.next(this.#clock.nowMs())}`,
      );
    return Number(created.lastInsertRowid);
  }

  list(user: string, mailbox: string = INBOX): Promise<MessageSummary[]> {
    return attempt(() => {
      const name = normalizeMailboxName(mailbox);
      return this.#sql
        .sql(
          `SELECT m.* FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
           WHERE b.user = ? AND b.name = ? ORDER BY m.uid`,
        )
        .all(normalizeUser(user), name)
        .map((r) => toSummary(r, name));
    });
  }

  read(user: string, id: string): AsyncIterable<Uint8Array> | null {
    const ref = parseMessageId(id);
    if (ref === null) return null;
    const row = this.#sql
      .sql(
        `SELECT m.body_file, m.body_head, d.data FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
         LEFT JOIN blobs d ON d.id = m.blob_id
         WHERE b.user = ? AND b.name = ? AND m.uid = ?`,
      )
      .get(normalizeUser(user), ref.mailbox, ref.uid);
    if (row === undefined) return null;
    return readBody(
      bytesOrNull(row, 'data'),
      textOrNull(row, 'body_file'),
      bytesOrNull(row, 'body_head'),
      this.#dir,
    );
  }

  async openMessage(user: string, mailbox: string, uid: number): Promise<StoredMessage | null> {
    if (!Number.isSafeInteger(uid) || uid < 1) return null;
    const find = (): Row | undefined =>
      this.#sql
        .sql(
          `SELECT m.size_bytes, m.body_file, m.body_head, d.data FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
           LEFT JOIN blobs d ON d.id = m.blob_id
           WHERE b.user = ? AND b.name = ? AND m.uid = ?`,
        )
        .get(normalizeUser(user), normalizeMailboxName(mailbox), uid);
    const row = find();
    if (row === undefined) return null;
    const data = bytesOrNull(row, 'data');
    if (data !== null) return blobMessage(uid, data);
    return this.#openFile(uid, row, 0, integer(row, 'size_bytes'), find);
  }

  /** Open a message's body file for [start, end); null when it was expunged (and reclaimed) meanwhile. */
  async #openFile(
    uid: number,
    row: Row,
    start: number,
    end: number,
    find: () => Row | undefined,
  ): Promise<StoredMessage | null> {
    const file = textOrNull(row, 'body_file');
    if (file === null) throw new Error(`mailbox store: message ${uid} has no body`);
    let handle: FileHandle;
    try {
      handle = await open(join(this.#dir, file), 'r');
    } catch (err) {
      // Expunged (and reclaimed) while the file was being opened: as if it had never been found.
      if (errnoCode(err) === 'ENOENT' && find() === undefined) return null;
      throw err;
    }
    return fileMessage(uid, start, end, handle, bytesOrNull(row, 'body_head'));
  }

  async expunge(user: string, mailbox: string, uids: readonly number[]): Promise<number[]> {
    if (this.#closed) throw new Error('mailbox store: closed');
    const wanted = distinctUids(uids);
    if (wanted.length === 0) return [];
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(mailbox);
    let removed: { uids: number[]; files: string[] };
    try {
      removed = await this.#commits.run(() => this.#expungeRows(owner, name, wanted));
    } catch (err) {
      throw storageError(err);
    }
    this.#reclaimLater(removed.files);
    if (removed.uids.length > 0) this.#notify(owner, [name]);
    return removed.uids;
  }

  /** Durable now: the files may go. A store closing meanwhile leaves them to the next open(). */
  #reclaimLater(files: readonly string[]): void {
    if (files.length === 0 || this.#closed) return;
    const task = this.#reclaim(files).catch(() => undefined);
    this.#reclaiming.add(task);
    void task.finally(() => this.#reclaiming.delete(task));
  }

  /** Inside the group transaction: delete the rows, remember the UIDs and doom the files. */
  #expungeRows(user: string, name: string, uids: readonly number[]): { uids: number[]; files: string[] } {
    const found = this.#status(user, name);
    if (found === null) return { uids: [], files: [] };
    return this.#removeMessages(found.id, uids);
  }

  /** Remove messages of one folder under one new modseq, remembering their UIDs as expunged. */
  #removeMessages(id: number, uids: readonly number[]): { uids: number[]; files: string[] } {
    const modseq = this.#counters(id).modseq + 1;
    const removed: number[] = [];
    const files: string[] = [];
    let bytes = 0;
    for (const uid of uids) {
      const row = this.#sql
        .sql('DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING size_bytes, body_file, blob_id')
        .get(id, uid);
      if (row === undefined) continue;
      removed.push(uid);
      bytes += integer(row, 'size_bytes');
      this.#sql.sql('INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)').run(id, uid, modseq);
      const file = this.#releaseBody(row);
      if (file !== null) files.push(file);
    }
    if (removed.length > 0) {
      this.#sql
        .sql(
          `UPDATE mailboxes SET modseq = ?, message_count = message_count - ?, total_bytes = total_bytes - ?
           WHERE id = ?`,
        )
        .run(modseq, removed.length, bytes, id);
    }
    return { uids: removed, files };
  }

  /**
   * A message row is gone: free its body when no copy still uses it. A file is only doomed here (the
   * caller unlinks it once the transaction is durable); returns it then.
   */
  #releaseBody(row: Row): string | null {
    const blob = row['blob_id'];
    if (typeof blob === 'number' || typeof blob === 'bigint') {
      if (this.#sql.sql('SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1').get(blob) === undefined) {
        this.#sql.sql('DELETE FROM blobs WHERE id = ?').run(blob);
      }
    }
    const file = textOrNull(row, 'body_file');
    if (file === null) return null;
    if (this.#sql.sql('SELECT 1 FROM messages WHERE body_file = ? LIMIT 1').get(file) !== undefined)
      return null;
    this.#sql.sql('INSERT OR IGNORE INTO doomed_bodies (body_file) VALUES (?)').run(file);
    return file;
  }

  // ------------------------------------------------------------------------------------------------
  // IMAP: folders, flags, APPEND/COPY/MOVE, changes, the change feed, quotas.

  /** A write in the group transaction, resolved once durable; storage failures become 452-style errors. */
  async #write<T>(op: () => T): Promise<T> {
    if (this.#closed) throw new Error('mailbox store: closed');
    try {
      return await this.#commits.run(op);
    } catch (err) {
      throw storageError(err);
    }
  }

  #row(user: string, name: string): FolderRow | null {
    const row = this.#sql
      .sql(
        `SELECT id, name, uidvalidity, uidnext, modseq, message_count, total_bytes, noselect, special_use,
           objectid
         FROM mailboxes WHERE user = ? AND name = ?`,
      )
      .get(user, name);
    return row === undefined ? null : toFolderRow(row);
  }

  /** A folder messages can be read from or put in, or the MailboxError a client should see. */
  #selectable(user: string, name: string): FolderRow {
    const row = this.#row(user, name);
    if (row === null)
      throw new MailboxError('nonexistent', `mailbox store: no folder ${JSON.stringify(name)}`);
    if (row.noselect)
      throw new MailboxError('noselect', `mailbox store: ${JSON.stringify(name)} is \\Noselect`);
    return row;
  }

  #names(user: string): FolderRow[] {
    return this.#sql
      .sql(
        `SELECT id, name, uidvalidity, uidnext, modseq, message_count, total_bytes, noselect, special_use,
           objectid
         FROM mailboxes WHERE user = ?`,
      )
      .all(user)
      .map(toFolderRow);
  }

  /** Rows for the missing parents of a name (real, selectable folders, as Dovecot makes them). */
  #createParents(user: string, name: string): string[] {
    const made: string[] = [];
    for (const parent of parentNames(name)) {
      if (this.#row(user, parent) === null) {
        this.#createRow(user, parent, { noselect: false, specialUse: null });
        made.push(parent);
      }
    }
    return made;
  }

  async ensureDefaults(user: string): Promise<void> {
    const owner = normalizeUser(user);
    // Every login asks: answer the usual case with one read and no write.
    if (this.#sql.sql('SELECT 1 FROM user_defaults WHERE user = ?').get(owner) !== undefined) return;
    await this.#write(() => {
      if (this.#sql.sql('SELECT 1 FROM user_defaults WHERE user = ?').get(owner) !== undefined) return;
      this.#mailbox(owner, INBOX);
      const subscribe = this.#sql.sql('INSERT OR IGNORE INTO subscriptions (user, name) VALUES (?, ?)');
      subscribe.run(owner, INBOX);
      for (const { name, specialUse } of DEFAULT_FOLDERS) {
        const taken = this.#sql
          .sql('SELECT 1 FROM mailboxes WHERE user = ? AND special_use = ?')
          .get(owner, specialUse);
        if (taken !== undefined) continue;
        const row = this.#row(owner, name);
        if (row === null) this.#createRow(owner, name, { noselect: false, specialUse });
        else if (row.specialUse === null) {
          // Mail delivered to "Archive" before the first login: that folder takes the role.
          this.#sql
            .sql('UPDATE mailboxes SET special_use = ?, noselect = 0 WHERE id = ?')
            .run(specialUse, row.id);
        } else continue;
        subscribe.run(owner, name);
      }
      this.#sql.sql('INSERT INTO user_defaults (user) VALUES (?)').run(owner);
    });
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
    await this.#write(() => {
      const row = this.#row(owner, folder);
      if (row !== null && !row.noselect) {
        throw new MailboxError('alreadyexists', `mailbox store: ${JSON.stringify(folder)} exists`);
      }
      this.#createParents(owner, folder);
      if (row === null) this.#createRow(owner, folder, { noselect: false, specialUse });
      else {
        // The placeholder's UIDVALIDITY was new when it became one and no message ever had it.
        this.#sql
          .sql('UPDATE mailboxes SET noselect = 0, special_use = ? WHERE id = ?')
          .run(specialUse, row.id);
      }
    });
    this.#notify(owner, [folder]);
    this.#notifyList(owner, [{ kind: 'created', name: folder }]);
  }

  async deleteFolder(user: string, name: string): Promise<void> {
    const owner = normalizeUser(user);
    const folder = normalizeMailboxName(name);
    if (folder === INBOX) throw new MailboxError('cannot', 'mailbox store: INBOX cannot be deleted');
    const files = await this.#write(() => {
      const row = this.#row(owner, folder);
      if (row === null)
        throw new MailboxError('nonexistent', `mailbox store: no folder ${JSON.stringify(folder)}`);
      const hasChildren = this.#names(owner).some((r) => r.name.startsWith(`${folder}/`));
      // RFC 9051 §6.3.5: a \Noselect name with inferiors cannot be deleted.
      if (row.noselect && hasChildren) {
        throw new MailboxError('cannot', `mailbox store: ${JSON.stringify(folder)} has children`);
      }
      const doomed: string[] = [];
      for (const m of this.#sql
        .sql('DELETE FROM messages WHERE mailbox_id = ? RETURNING body_file, blob_id')
        .all(row.id)) {
        const file = this.#releaseBody(m);
        if (file !== null) doomed.push(file);
      }
      // Its expunged UIDs and keywords go with the row (ON DELETE CASCADE).
      this.#sql.sql('DELETE FROM mailboxes WHERE id = ?').run(row.id);
      // With children it stays as \Noselect; a new row, so a later CREATE cannot revive the old UIDVALIDITY.
      if (hasChildren) this.#createRow(owner, folder, { noselect: true, specialUse: null });
      return doomed;
    });
    this.#reclaimLater(files);
    this.#notify(owner, [folder]);
    this.#notifyList(owner, [{ kind: 'deleted', name: folder }]);
  }

  async renameFolder(user: string, from: string, to: string): Promise<void> {
    const owner = normalizeUser(user);
    const source = normalizeMailboxName(from);
    const target = checkFolderName(to);
    if (target === INBOX) throw new MailboxError('alreadyexists', 'mailbox store: INBOX exists');
    if (target === source || target.startsWith(`${source}/`)) {
      throw new MailboxError('cannot', `mailbox store: cannot rename ${JSON.stringify(source)} into itself`);
    }
    const touched = await this.#write(() =>
      source === INBOX ? this.#renameInbox(owner, target) : this.#renameTree(owner, source, target),
    );
    this.#notify(owner, touched);
    // INBOX stays where it is: its messages went to a new folder. Otherwise touched is the old names,
    // then the new ones, in the same order.
    const half = touched.length / 2;
    this.#notifyList(
      owner,
      source === INBOX
        ? [{ kind: 'created', name: target }]
        : touched.slice(0, half).map((old, i) => ({ kind: 'renamed', from: old, to: touched[half + i]! })),
    );
  }

  #renameTree(user: string, source: string, target: string): string[] {
    const all = this.#names(user);
    const moving = all.filter((r) => r.name === source || r.name.startsWith(`${source}/`));
    if (!moving.some((r) => r.name === source)) {
      throw new MailboxError('nonexistent', `mailbox store: no folder ${JSON.stringify(source)}`);
    }
    const renamed = moving.map((r) => ({ row: r, to: target + r.name.slice(source.length) }));
    const existing = new Set(all.map((r) => r.name));
    const clash = renamed.find((r) => existing.has(r.to));
    if (clash !== undefined) {
      throw new MailboxError('alreadyexists', `mailbox store: ${JSON.stringify(clash.to)} exists`);
    }
    this.#createParents(user, target);
    const rename = this.#sql.sql('UPDATE mailboxes SET name = ? WHERE id = ?');
    for (const r of renamed) rename.run(r.to, r.row.id);
    // Subscriptions follow the folders (clients would otherwise lose them on every rename).
    const subscribed = this.#sql.sql('SELECT name FROM subscriptions WHERE user = ?').all(user);
    for (const s of subscribed.map((r) => text(r, 'name'))) {
      if (s !== source && !s.startsWith(`${source}/`)) continue;
      this.#sql.sql('DELETE FROM subscriptions WHERE user = ? AND name = ?').run(user, s);
      this.#sql
        .sql('INSERT OR IGNORE INTO subscriptions (user, name) VALUES (?, ?)')
        .run(user, target + s.slice(source.length));
    }
    return [...moving.map((r) => r.name), ...renamed.map((r) => r.to)];
  }

  /**
   * RFC 9051 §6.3.6: renaming INBOX moves its messages to a new folder and leaves INBOX empty; its
   * children stay where they are. The messages keep their UIDs under the new folder's UIDVALIDITY, and
   * INBOX records them as expunged, so its QRESYNC clients see them vanish.
   */
  #renameInbox(user: string, target: string): string[] {
    if (this.#row(user, target) !== null) {
      throw new MailboxError('alreadyexists', `mailbox store: ${JSON.stringify(target)} exists`);
    }
    this.#mailbox(user, INBOX);
    const inbox = this.#row(user, INBOX);
    if (inbox === null) throw new Error('mailbox store: INBOX was not created');
    this.#createParents(user, target);
    const id = this.#createRow(user, target, { noselect: false, specialUse: null });
    const modseq = inbox.modseq + 1;
    this.#sql
      .sql('UPDATE mailboxes SET uidnext = ?, modseq = ?, message_count = ?, total_bytes = ? WHERE id = ?')
      .run(inbox.uidNext, modseq, inbox.messages, inbox.sizeBytes, id);
    this.#sql
      .sql(
        `INSERT INTO expunged (mailbox_id, uid, modseq) SELECT mailbox_id, uid, ? FROM messages WHERE mailbox_id = ?`,
      )
      .run(modseq, inbox.id);
    this.#sql.sql('UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?').run(id, inbox.id);
    this.#sql
      .sql(
        'INSERT INTO folder_keywords (mailbox_id, keyword) SELECT ?, keyword FROM folder_keywords WHERE mailbox_id = ?',
      )
      .run(id, inbox.id);
    this.#sql
      .sql('UPDATE mailboxes SET modseq = ?, message_count = 0, total_bytes = 0 WHERE id = ?')
      .run(modseq, inbox.id);
    return [INBOX, target];
  }

  owners(): Promise<{ readonly user: string; readonly messages: number }[]> {
    return attempt(() =>
      this.#sql
        .sql(
          `SELECT b.user AS user, (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id) AS n
           FROM mailboxes b WHERE b.name = 'INBOX' ORDER BY b.user`,
        )
        .all()
        .map((r) => ({ user: String(r['user']), messages: Number(r['n']) })),
    );
  }

  folders(user: string): Promise<FolderInfo[]> {
    return attempt(() =>
      this.#reading(() => {
        const owner = normalizeUser(user);
        const rows = new Map(this.#names(owner).map((r) => [r.name, r]));
        const subscribed = new Set(
          this.#sql
            .sql('SELECT name FROM subscriptions WHERE user = ?')
            .all(owner)
            .map((r) => text(r, 'name')),
        );
        // Parents of folders made by delivery alone ("a/b" with no "a") are listed as placeholders.
        const names = new Set([INBOX, ...rows.keys()]);
        for (const name of [...names]) for (const p of parentNames(name)) names.add(p);
        const withChildren = new Set([...names].flatMap((n) => parentNames(n)));
        return [...names]
          .sort((a, b) => (a === INBOX ? -1 : b === INBOX ? 1 : a < b ? -1 : a > b ? 1 : 0))
          .map((name) => {
            const row = rows.get(name);
            const attributes: string[] = [];
            if (row === undefined && name !== INBOX) attributes.push('\\NonExistent', '\\Noselect');
            else if (row?.noselect === true) attributes.push('\\Noselect');
            attributes.push(withChildren.has(name) ? '\\HasChildren' : '\\HasNoChildren');
            if (subscribed.has(name)) attributes.push('\\Subscribed');
            const specialUse = row?.specialUse ?? null;
            if (specialUse !== null) attributes.push(specialUse);
            return {
              name,
              attributes,
              specialUse,
              subscribed: subscribed.has(name),
              mailboxId: row?.mailboxId ?? null,
            };
          });
      }),
    );
  }

  async subscribe(user: string, name: string): Promise<void> {
    const owner = normalizeUser(user);
    const folder = checkFolderName(name);
    const r = await this.#write(() =>
      this.#sql.sql('INSERT OR IGNORE INTO subscriptions (user, name) VALUES (?, ?)').run(owner, folder),
    );
    if (Number(r.changes) > 0) this.#notifyList(owner, [{ kind: 'subscribed', name: folder }]);
  }

  async unsubscribe(user: string, name: string): Promise<void> {
    const owner = normalizeUser(user);
    const folder = normalizeMailboxName(name);
    const r = await this.#write(() =>
      this.#sql.sql('DELETE FROM subscriptions WHERE user = ? AND name = ?').run(owner, folder),
    );
    if (Number(r.changes) > 0) this.#notifyList(owner, [{ kind: 'unsubscribed', name: folder }]);
  }

  subscriptions(user: string): Promise<string[]> {
    return attempt(() =>
      this.#sql
        .sql('SELECT name FROM subscriptions WHERE user = ? ORDER BY name')
        .all(normalizeUser(user))
        .map((r) => text(r, 'name')),
    );
  }

  keywords(user: string, folder: string): Promise<string[]> {
    return attempt(() => {
      const row = this.#selectable(normalizeUser(user), normalizeMailboxName(folder));
      return this.#sql
        .sql('SELECT keyword FROM folder_keywords WHERE mailbox_id = ? ORDER BY keyword')
        .all(row.id)
        .map((r) => text(r, 'keyword'));
    });
  }

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
    const result = await this.#write(() => {
      const box = this.#selectable(owner, name);
      const modseq = box.modseq + 1;
      const messages: (MessageFlags & { changed: boolean })[] = [];
      const modified: number[] = [];
      const read = this.#sql.sql('SELECT flags, modseq FROM messages WHERE mailbox_id = ? AND uid = ?');
      const write = this.#sql.sql(
        'UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?',
      );
      for (const uid of wanted) {
        const row = read.get(box.id, uid);
        if (row === undefined) continue;
        const before = integer(row, 'modseq');
        if (unchangedSince !== undefined && before > unchangedSince) {
          modified.push(uid);
          continue;
        }
        const current = JSON.parse(text(row, 'flags')) as string[];
        const next = applyFlagChange(current, { mode: change.mode, flags });
        if (sameFlags(current, next)) {
          // RFC 7162 §3.1: a STORE that changes nothing leaves the modseq alone.
          messages.push({ uid, flags: current, modseq: before, changed: false });
          continue;
        }
        write.run(JSON.stringify(next), modseq, box.id, uid);
        messages.push({ uid, flags: next, modseq, changed: true });
      }
      const changed = messages.some((m) => m.changed);
      if (changed) {
        this.#sql.sql('UPDATE mailboxes SET modseq = ? WHERE id = ?').run(modseq, box.id);
        if (change.mode !== 'remove') this.#addKeywords(box.id, flags);
      }
      return { messages, modified, highestModseq: changed ? modseq : box.modseq };
    });
    if (result.messages.some((m) => m.changed)) this.#notify(owner, [name]);
    return result;
  }

  async append(
    user: string,
    folder: string,
    req: AppendRequest,
  ): Promise<{ uidValidity: number; uid: number }> {
    if (this.#closed) throw new Error('mailbox store: closed');
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    const flags = normalizeFlags(req.flags);
    // Refuse before reading a large literal into storage when the folder is not there.
    this.#selectable(owner, name);
    const spooled = await this.#spool(req.content, req.structure);
    try {
      const result = await this.#write(() => {
        const box = this.#selectable(owner, name);
        const uid = this.#insertMessage(box, {
          internalDateMs: req.internalDateMs,
          flags,
          summary: req.summary ?? { from: '', subject: '', date: '' },
          spooled,
        });
        return { uidValidity: box.uidValidity, uid };
      });
      this.#notify(owner, [name]);
      return result;
    } catch (err) {
      await this.#dropSpooled(spooled);
      throw err;
    }
  }

  copy(user: string, from: string, uids: readonly number[], to: string): Promise<CopyResult> {
    return this.#copy(user, from, uids, to, false);
  }

  move(user: string, from: string, uids: readonly number[], to: string): Promise<CopyResult> {
    return this.#copy(user, from, uids, to, true);
  }

  async #copy(
    user: string,
    from: string,
    uids: readonly number[],
    to: string,
    move: boolean,
  ): Promise<CopyResult> {
    const owner = normalizeUser(user);
    const source = normalizeMailboxName(from);
    const target = normalizeMailboxName(to);
    const wanted = distinctUids(uids);
    const { result, files } = await this.#write(() => {
      const src = this.#selectable(owner, source);
      const dst = this.#selectable(owner, target);
      const present = this.#sql.sql('SELECT 1 FROM messages WHERE mailbox_id = ? AND uid = ?');
      const found = wanted.filter((uid) => present.get(src.id, uid) !== undefined);
      if (found.length === 0) return { result: { uidValidity: dst.uidValidity, mapping: [] }, files: [] };
      const now = this.#counters(dst.id);
      const modseq = now.modseq + 1;
      const insert = this.#sql.sql(
        `INSERT INTO messages (mailbox_id, uid, size_bytes, internal_date_ms, flags, from_header, subject,
           date_header, body_file, modseq, blob_id, structure, save_date_ms, email_id, body_head)
         SELECT ?, ?, size_bytes, internal_date_ms, flags, from_header, subject, date_header, body_file, ?,
           blob_id, structure, ?, email_id, body_head
         FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING size_bytes`,
      );
      const savedMs = this.#clock.nowMs();
      const mapping = found.map((uid, i) => ({ from: uid, to: now.uidNext + i }));
      let bytes = 0;
      for (const m of mapping) {
        const row = insert.get(dst.id, m.to, modseq, savedMs, src.id, m.from);
        if (row !== undefined) bytes += integer(row, 'size_bytes');
      }
      this.#sql
        .sql(
          `UPDATE mailboxes SET uidnext = ?, modseq = ?, message_count = message_count + ?,
             total_bytes = total_bytes + ? WHERE id = ?`,
        )
        .run(now.uidNext + mapping.length, modseq, mapping.length, bytes, dst.id);
      this.#sql
        .sql(
          'INSERT OR IGNORE INTO folder_keywords (mailbox_id, keyword) SELECT ?, keyword FROM folder_keywords WHERE mailbox_id = ?',
        )
        .run(dst.id, src.id);
      // The copies already reference the bodies, so removing the originals frees nothing.
      const removed = move ? this.#removeMessages(src.id, found) : { uids: [], files: [] };
      return { result: { uidValidity: dst.uidValidity, mapping }, files: removed.files };
    });
    this.#reclaimLater(files);
    if (result.mapping.length > 0) this.#notify(owner, move ? [source, target] : [target]);
    return result;
  }

  changesSince(user: string, folder: string, modseq: number): Promise<FolderChanges> {
    return attempt(() =>
      this.#reading(() => {
        const box = this.#selectable(normalizeUser(user), normalizeMailboxName(folder));
        const since = Number.isSafeInteger(modseq) && modseq > 0 ? modseq : 0;
        const changed = this.#sql
          .sql('SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid')
          .all(box.id, since)
          .map((r) => ({
            uid: integer(r, 'uid'),
            flags: JSON.parse(text(r, 'flags')) as string[],
            modseq: integer(r, 'modseq'),
          }));
        const vanished = this.#sql
          .sql('SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid')
          .all(box.id, since)
          .map((r) => integer(r, 'uid'));
        return { uidValidity: box.uidValidity, highestModseq: box.modseq, changed, vanished };
      }),
    );
  }

  messages(user: string, folder: string, uids: readonly number[] | 'all'): Promise<MessageMeta[]> {
    return attempt(() =>
      this.#reading(() => {
        const box = this.#selectable(normalizeUser(user), normalizeMailboxName(folder));
        const columns = `uid, flags, modseq, size_bytes, internal_date_ms, save_date_ms, email_id, structure`;
        let rows: Row[];
        if (uids === 'all') {
          rows = this.#sql
            .sql(`SELECT ${columns} FROM messages WHERE mailbox_id = ? ORDER BY uid`)
            .all(box.id);
        } else {
          const wanted = distinctUids(uids);
          if (wanted.length === 0) return [];
          // One statement whatever the set's size: the UIDs go in as one JSON array, each looked up by
          // the primary key (no statement per message, no SQL text growing with the set).
          rows = this.#sql
            .sql(
              `SELECT ${columns} FROM messages
               WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`,
            )
            .all(box.id, JSON.stringify(wanted));
        }
        return rows.map(toMeta);
      }),
    );
  }

  async setStructure(user: string, folder: string, uid: number, structure: string): Promise<void> {
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    if (!Number.isSafeInteger(uid) || uid < 1) return;
    // A cache of the bytes, not a change a client could see: no modseq, no notification. Every copy
    // shares the bytes (and the EMAILID), so the copies stored without one get it too.
    await this.#write(() => {
      const box = this.#selectable(owner, name);
      const row = this.#sql
        .sql('SELECT email_id FROM messages WHERE mailbox_id = ? AND uid = ?')
        .get(box.id, uid);
      if (row === undefined) return;
      this.#sql
        .sql('UPDATE messages SET structure = ? WHERE mailbox_id = ? AND uid = ?')
        .run(structure, box.id, uid);
      this.#sql
        .sql('UPDATE messages SET structure = ? WHERE email_id = ? AND structure IS NULL')
        .run(structure, text(row, 'email_id'));
    });
  }

  async openRange(
    user: string,
    folder: string,
    uid: number,
    range: ByteRange,
  ): Promise<StoredMessage | null> {
    if (!Number.isSafeInteger(uid) || uid < 1) return null;
    const start = offset(range.start);
    const end = Math.max(start, offset(range.end));
    const find = (): Row | undefined =>
      this.#sql
        .sql(
          // substr() on a BLOB counts bytes (from 1) and stops at its end: only the range is read.
          `SELECT m.size_bytes, m.body_file, m.body_head, substr(d.data, ?, ?) AS data
           FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
           LEFT JOIN blobs d ON d.id = m.blob_id
           WHERE b.user = ? AND b.name = ? AND m.uid = ?`,
        )
        .get(start + 1, end - start, normalizeUser(user), normalizeMailboxName(folder), uid);
    const row = find();
    if (row === undefined) return null;
    const sizeBytes = integer(row, 'size_bytes');
    const from = Math.min(start, sizeBytes);
    const to = Math.min(end, sizeBytes);
    const data = bytesOrNull(row, 'data');
    if (data !== null) return blobMessage(uid, data);
    return this.#openFile(uid, row, from, to, find);
  }

  folderStatus(user: string, folder: string): Promise<FolderStatus> {
    return attempt(() =>
      this.#reading(() => {
        const box = this.#selectable(normalizeUser(user), normalizeMailboxName(folder));
        // Both read only their partial index (schema step 4): the unseen and the \Deleted messages.
        const unseen = this.#sql
          .sql(`SELECT count(*) AS n, min(uid) AS first FROM messages WHERE mailbox_id = ? AND ${UNSEEN}`)
          .get(box.id);
        const deleted = this.#sql
          .sql(`SELECT count(*) AS n FROM messages WHERE mailbox_id = ? AND ${DELETED}`)
          .get(box.id);
        const first = unseen?.['first'];
        return {
          uidValidity: box.uidValidity,
          uidNext: box.uidNext,
          messages: box.messages,
          sizeBytes: box.sizeBytes,
          highestModseq: box.modseq,
          unseen: unseen === undefined ? 0 : integer(unseen, 'n'),
          deleted: deleted === undefined ? 0 : integer(deleted, 'n'),
          firstUnseenUid: first === null || first === undefined ? null : Number(first),
          mailboxId: box.mailboxId,
          recent: this.#recentCount(box.id),
        };
      }),
    );
  }

  #recentCount(boxId: number): number {
    const row = this.#sql
      .sql(
        'SELECT count(*) AS n FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.mailbox_id = ? AND m.uid > b.recent_uid',
      )
      .get(boxId);
    return row === undefined ? 0 : integer(row, 'n');
  }

  async claimRecent(user: string, folder: string): Promise<{ from: number; to: number }> {
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    const read = (): { id: number; from: number; to: number } => {
      const box = this.#selectable(owner, name);
      const row = this.#sql.sql('SELECT recent_uid FROM mailboxes WHERE id = ?').get(box.id);
      return { id: box.id, from: row === undefined ? 0 : integer(row, 'recent_uid'), to: box.uidNext - 1 };
    };
    const seen = await attempt(() => this.#reading(read));
    // Nothing new since the last claim: no write, so a plain SELECT costs no commit.
    if (seen.from >= seen.to) return { from: seen.to, to: seen.to };
    return this.#write(() => {
      const now = read();
      this.#sql
        .sql('UPDATE mailboxes SET recent_uid = ? WHERE id = ? AND recent_uid < ?')
        .run(now.to, now.id, now.to);
      return { from: now.from, to: now.to };
    });
  }

  async accessKey(user: string, folder: string, create: boolean): Promise<Uint8Array | null> {
    const owner = normalizeUser(user);
    const name = normalizeMailboxName(folder);
    const read = (): Uint8Array | null => {
      const box = this.#selectable(owner, name);
      const row = this.#sql.sql('SELECT key FROM access_keys WHERE mailbox_id = ?').get(box.id);
      return row === undefined ? null : bytesOrNull(row, 'key');
    };
    const found = await attempt(() => this.#reading(read));
    if (found !== null || !create) return found;
    const fresh = randomBytes(ACCESS_KEY_BYTES);
    return this.#write(() => {
      // Another session may have made one meanwhile: the first key made stays the key.
      const box = this.#selectable(owner, name);
      this.#sql.sql('INSERT OR IGNORE INTO access_keys (mailbox_id, key) VALUES (?, ?)').run(box.id, fresh);
      const row = this.#sql.sql('SELECT key FROM access_keys WHERE mailbox_id = ?').get(box.id);
      const key = row === undefined ? null : bytesOrNull(row, 'key');
      if (key === null) throw new Error('mailbox store: access key vanished in its own transaction');
      return key;
    });
  }

  async resetAccessKeys(user: string, folder: string | null): Promise<void> {
    const owner = normalizeUser(user);
    await this.#write(() => {
      if (folder === null) {
        this.#sql
          .sql('DELETE FROM access_keys WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user = ?)')
          .run(owner);
        return;
      }
      const box = this.#selectable(owner, normalizeMailboxName(folder));
      this.#sql.sql('DELETE FROM access_keys WHERE mailbox_id = ?').run(box.id);
    });
  }

  quota(user: string): Promise<QuotaUsage> {
    // A sum over the user's folder rows (a handful), whose counters every change keeps: no scan, and no
    // second counter that could disagree with them. Copies count in full, as RFC 9208 STORAGE does.
    return attempt(() => {
      const row = this.#sql
        .sql(
          'SELECT coalesce(sum(message_count), 0) AS n, coalesce(sum(total_bytes), 0) AS b FROM mailboxes WHERE user = ?',
        )
        .get(normalizeUser(user));
      return {
        messages: row === undefined ? 0 : integer(row, 'n'),
        bytes: row === undefined ? 0 : integer(row, 'b'),
      };
    });
  }

  watch(user: string, folder: string, listener: (event: FolderEvent) => void): () => void {
    const key = watchKey(normalizeUser(user), normalizeMailboxName(folder));
    let entry = this.#watchers.get(key);
    if (entry === undefined) {
      entry = { listeners: new Set(), last: this.#folderEvent(key) };
      this.#watchers.set(key, entry);
    }
    entry.listeners.add(listener);
    this.#startPolling();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const e = this.#watchers.get(key);
      e?.listeners.delete(listener);
      if (e !== undefined && e.listeners.size === 0) this.#watchers.delete(key);
      if (this.#watchers.size === 0) this.#stopPolling();
    };
  }

  watchFolderList(user: string, listener: (event: FolderListEvent) => void): () => void {
    const owner = normalizeUser(user);
    let set = this.#listWatchers.get(owner);
    if (set === undefined) {
      set = new Set();
      this.#listWatchers.set(owner, set);
    }
    set.add(listener);
    return () => {
      const now = this.#listWatchers.get(owner);
      now?.delete(listener);
      if (now?.size === 0) this.#listWatchers.delete(owner);
    };
  }

  /** After a durable commit of this thread: tell the user's folder list watchers, here and elsewhere. */
  #notifyList(user: string, events: readonly FolderListEvent[]): void {
    this.#channel?.postMessage({ kind: 'list', user, events } satisfies StoreBroadcast);
    this.#tellList(user, events);
  }

  #tellList(user: string, events: readonly FolderListEvent[]): void {
    const set = this.#listWatchers.get(user);
    if (set === undefined) return;
    for (const event of events)
      for (const listener of [...set]) {
        try {
          listener(event);
        } catch {
          // XXX: a listener's bug must not stop the others; sessions catch their own errors.
        }
      }
  }

  /** The watched folder's state now, as an event (what the watchers were last told, to compare). */
  #folderEvent(key: string): FolderEvent {
    const [user, name] = JSON.parse(key) as [string, string];
    const row = this.#row(user, name);
    if (row === null || row.noselect) return { kind: 'gone' };
    return { kind: 'changed', highestModseq: row.modseq, uidNext: row.uidNext, messages: row.messages };
  }

  /** After a durable commit of this thread: tell the watchers of these folders what moved. */
  #notify(user: string, names: readonly string[]): void {
    this.#channel?.postMessage({ kind: 'folders', user, names } satisfies StoreBroadcast);
    if (this.#watchers.size === 0) return;
    for (const name of names) this.#check(watchKey(user, name));
  }

  #check(key: string): void {
    const entry = this.#watchers.get(key);
    if (entry === undefined || !this.#db.isOpen) return;
    const now = this.#folderEvent(key);
    if (sameEvent(now, entry.last)) return;
    entry.last = now;
    for (const listener of [...entry.listeners]) {
      try {
        listener(now);
      } catch {
        // XXX: a listener's bug must not stop the others; sessions catch their own errors.
      }
    }
  }

  #listen(dir: string): void {
    const channel = new BroadcastChannel(`tern-store:${resolve(dir)}`);
    channel.onmessage = (event) => {
      const msg = (event as { data: StoreBroadcast }).data;
      if (this.#closed) return;
      if (msg.kind === 'list') this.#tellList(msg.user, msg.events);
      else for (const name of msg.names) this.#check(watchKey(msg.user, name));
    };
    // Never what keeps a thread alive.
    channel.unref();
    this.#channel = channel;
  }

  /**
   * Changes committed by another process (the CLI) are seen by polling PRAGMA data_version, which moves
   * only when another connection commits and costs no page read: the latency is at most changePollMs
   * (50 ms by default), and nothing runs while nobody watches.
   */
  #startPolling(): void {
    if (this.#pollTimer !== null || this.#closed) return;
    this.#dataVersion = this.#readDataVersion();
    this.#pollTimer = setInterval(() => {
      if (!this.#db.isOpen) return;
      const version = this.#readDataVersion();
      if (version === this.#dataVersion) return;
      this.#dataVersion = version;
      for (const key of [...this.#watchers.keys()]) this.#check(key);
    }, this.#pollMs);
    this.#pollTimer.unref();
  }

  #stopPolling(): void {
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    this.#pollTimer = null;
  }

  #readDataVersion(): number {
    return integer(this.#sql.sql('PRAGMA data_version').get() ?? {}, 'data_version');
  }

  /**
   * Unlink doomed body files, make the unlinks durable, then forget them. Only called once the
   * transaction that dooms them is durable. A file that will not go stays doomed for the next open().
   */
  async #reclaim(files: readonly string[]): Promise<void> {
    const gone: string[] = [];
    for (const file of files) {
      if ((await removeQuietly(this.#fs, join(this.#dir, file))) === null) gone.push(file);
    }
    if (gone.length === 0) return;
    // Without this a crash could bring a file back after its doomed row was forgotten: an orphan for good.
    for (const folder of new Set(gone.map((f) => dirname(join(this.#dir, f))))) {
      await this.#fs.syncDir(folder);
    }
    if (this.#db.isOpen) {
      // No fsync needed: a lost deletion only makes the next open() unlink a file that is already gone.
      const forget = this.#sql.sql('DELETE FROM doomed_bodies WHERE body_file = ?');
      for (const file of gone) forget.run(file);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel?.close();
    this.#channel = null;
    this.#stopPolling();
    this.#watchers.clear();
    this.#listWatchers.clear();
    this.#commits.close();
    await Promise.all(this.#reclaiming);
    this.#db.close();
  }
}

/** fsync a file another connection writes, when it exists. */
async function syncExisting(path: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A body (or a range of one) read from its BLOB: held in memory, so an expunge cannot cut it short. */
function blobMessage(uid: number, data: Uint8Array): StoredMessage {
  return {
    uid,
    sizeBytes: data.byteLength,
    content: (async function* () {
      await Promise.resolve();
      yield data;
    })(),
    close: () => Promise.resolve(),
  };
}

/**
 * Bytes [start, end) of a body file already open: they stay readable even if the message is expunged
 * now, since the open handle keeps the file.
 */
function fileMessage(
  uid: number,
  start: number,
  end: number,
  handle: FileHandle,
  head: Uint8Array | null,
): StoredMessage {
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => (closing ??= handle.close());
  // Offsets count the head first: the stored message is head ‖ file.
  const headBytes = head?.byteLength ?? 0;
  async function* content(): AsyncIterable<Uint8Array> {
    try {
      let position = start;
      if (head !== null && position < headBytes) {
        const upTo = Math.min(end, headBytes);
        if (upTo > position) yield head.subarray(position, upTo);
        position = upTo;
      }
      while (position < end) {
        const want = Math.min(READ_CHUNK_BYTES, end - position);
        // A fresh buffer per chunk: the consumer may hold on to what it was given.
        const { bytesRead, buffer } = await handle.read(
          Buffer.allocUnsafe(want),
          0,
          want,
          position - headBytes,
        );
        if (bytesRead === 0) throw new Error(`mailbox store: body of message ${uid} is short`);
        position += bytesRead;
        yield bytesRead === want ? buffer : buffer.subarray(0, bytesRead);
      }
    } finally {
      await close();
    }
  }
  return { uid, sizeBytes: end - start, content: content(), close };
}

/** A range bound as a byte offset: whole, not negative (a bound past the end is clamped by the caller). */
function offset(n: number): number {
  if (Number.isNaN(n)) return 0;
  return Math.max(0, Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER));
}

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

function toMeta(r: Row): MessageMeta {
  return {
    uid: integer(r, 'uid'),
    flags: JSON.parse(text(r, 'flags')) as string[],
    modseq: integer(r, 'modseq'),
    sizeBytes: integer(r, 'size_bytes'),
    internalDateMs: integer(r, 'internal_date_ms'),
    saveDateMs: integer(r, 'save_date_ms'),
    emailId: text(r, 'email_id'),
    threadId: null,
    structure: textOrNull(r, 'structure'),
  };
}

async function* readBody(
  data: Uint8Array | null,
  file: string | null,
  head: Uint8Array | null,
  dir: string,
): AsyncIterable<Uint8Array> {
  if (data !== null) {
    yield data;
    return;
  }
  if (file === null) throw new Error('mailbox store: message has no body');
  if (head !== null) yield head;
  for await (const chunk of createReadStream(join(dir, file), { highWaterMark: 64 * 1024 }))
    yield chunk as Buffer;
}

function toSummary(r: Row, mailbox: string): MessageSummary {
  const uid = integer(r, 'uid');
  return {
    id: messageId(mailbox, uid),
    mailbox,
    uid,
    sizeBytes: integer(r, 'size_bytes'),
    internalDateMs: integer(r, 'internal_date_ms'),
    flags: JSON.parse(text(r, 'flags')) as string[],
    from: text(r, 'from_header'),
    subject: text(r, 'subject'),
    date: text(r, 'date_header'),
  };
}
