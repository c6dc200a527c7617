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
// Deliberately not here: IMAP flag updates, quotas, pruning old delivery keys and old expunged UIDs, a
// sweep of blobs/ for files a crash left between their rename and the delivery's commit (later issues).

import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
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
  DeliverRequest,
  MailboxSnapshot,
  MailboxStatus,
  MailboxStore,
  MessageSummary,
  StoredMessage,
} from './mailbox-store.ts';
import { INBOX, normalizeMailboxName, normalizeUser, uidl } from './mailbox-store.ts';

export interface SqliteMailboxStoreOptions {
  /** The store's folder (e.g. data/mail): mail.db, blobs/ and tmp/ live here. */
  readonly dir: string;
  readonly clock: Clock;
  /** Bodies larger than this are stored as files instead of BLOBs. */
  readonly spillBytes?: number | undefined;
  readonly groupCommitWindowMs?: number | undefined;
  /** File operations for body files; tests inject a full disk here. */
  readonly fs?: StorageFs | undefined;
  /** Test seam: sees the database once open. */
  readonly onDatabase?: ((db: DatabaseSync) => void) | undefined;
}

const TMP = 'tmp';
const BLOBS = 'blobs';
/** Read size for bodies in files: what one socket write of a RETR or FETCH carries. */
const READ_CHUNK_BYTES = 64 * 1024;

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
];

/** The CLI id of a message: its UID in INBOX, "<mailbox>/<uid>" in any other mailbox. */
export function messageId(mailbox: string, uid: number): string {
  return mailbox === INBOX ? String(uid) : `${mailbox}/${uid}`;
}

function parseMessageId(id: string): { mailbox: string; uid: number } | null {
  const slash = id.lastIndexOf('/');
  const mailbox = slash < 0 ? INBOX : normalizeMailboxName(id.slice(0, slash));
  const digits = id.slice(slash + 1);
  if (!/^[1-9][0-9]{0,9}$/.test(digits) || mailbox === '') return null;
  return { mailbox, uid: Number(digits) };
}

/** UIDs as a caller may pass them (repeated, unordered, junk): the valid ones, once each, ascending. */
function distinctUids(uids: readonly number[]): number[] {
  return [...new Set(uids.filter((u) => Number.isSafeInteger(u) && u > 0))].sort((a, b) => a - b);
}

export class SqliteMailboxStore implements MailboxStore {
  readonly #dir: string;
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #commits: GroupCommit;
  readonly #clock: Clock;
  readonly #fs: StorageFs;
  readonly #spillBytes: number;
  readonly #ids = new SortableIds();
  /** Body reclamations after expunges, awaited by close() so it leaves no work behind. */
  readonly #reclaiming = new Set<Promise<void>>();
  #closed = false;

  private constructor(options: SqliteMailboxStoreOptions, db: DatabaseSync) {
    this.#dir = options.dir;
    this.#db = db;
    this.#sql = new Statements(db);
    this.#commits = new GroupCommit(db, { windowMs: options.groupCommitWindowMs });
    this.#clock = options.clock;
    this.#fs = options.fs ?? nodeStorageFs;
    this.#spillBytes = options.spillBytes ?? DEFAULT_SPILL_BYTES;
  }

  static async open(options: SqliteMailboxStoreOptions): Promise<SqliteMailboxStore> {
    const fs = options.fs ?? nodeStorageFs;
    await fs.mkdir(join(options.dir, TMP));
    await fs.mkdir(join(options.dir, BLOBS));
    const db = openDatabase(join(options.dir, 'mail.db'), { migrations: MIGRATIONS });
    try {
      options.onDatabase?.(db);
      // tmp/ only ever holds bodies of deliveries that never committed. Files younger than a minute
      // may be another process's delivery in progress (a CLI opening the store while the server runs).
      const cutoffMs = Date.now() - 60_000;
      for (const name of await readdir(join(options.dir, TMP))) {
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

    const name = this.#ids.next(this.#clock.nowMs());
    const sink = new BodySink({
      path: join(this.#dir, TMP, name),
      spillBytes: this.#spillBytes,
      fs: this.#fs,
    });
    let bodyFile: string | null = null;
    try {
      for await (const chunk of req.content) await sink.write(chunk);
      const body = await sink.finish();
      if (body.kind === 'file') bodyFile = await this.#placeFile(body, name);
      const result = await this.#commits.run(() => this.#insert(req, user, mailbox, body, bodyFile));
      if (result.repeated && bodyFile !== null) {
        // Lost a race with a concurrent delivery of the same key: ours is the duplicate.
        await removeQuietly(this.#fs, join(this.#dir, bodyFile));
      }
      return { uid: result.uid, id: result.id };
    } catch (err) {
      await sink.discard().catch(() => undefined);
      if (bodyFile !== null) await removeQuietly(this.#fs, join(this.#dir, bodyFile));
      throw storageError(err);
    }
  }

  /** Move a durable tmp file to blobs/<xx>/<name> and make the move durable. */
  async #placeFile(body: Extract<StoredBody, { kind: 'file' }>, name: string): Promise<string> {
    // The last two characters are random: 1024 evenly filled folders.
    const shard = join(BLOBS, name.slice(-2));
    await this.#fs.mkdir(join(this.#dir, shard));
    const rel = join(shard, name);
    await this.#fs.rename(body.path, join(this.#dir, rel));
    await this.#fs.syncDir(join(this.#dir, shard));
    // The shard folder may be new: its own entry must be durable too.
    await this.#fs.syncDir(join(this.#dir, BLOBS));
    return rel;
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

  #insert(
    req: DeliverRequest,
    user: string,
    mailbox: string,
    body: StoredBody,
    bodyFile: string | null,
  ): { uid: number; id: string; repeated: boolean } {
    const earlier = this.#findDelivery(req.deliveryKey);
    if (earlier !== null) return { ...earlier, repeated: true };
    const box = this.#mailbox(user, mailbox);
    const uid = box.uidNext;
    const modseq = box.modseq + 1;
    this.#sql
      .sql(
        `UPDATE mailboxes SET uidnext = ?, modseq = ?, message_count = message_count + 1,
           total_bytes = total_bytes + ? WHERE id = ?`,
      )
      .run(uid + 1, modseq, body.sizeBytes, box.id);
    this.#sql
      .sql(
        `INSERT INTO messages (mailbox_id, uid, size_bytes, internal_date_ms, flags, from_header, subject,
           date_header, body_file, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        box.id,
        uid,
        body.sizeBytes,
        req.internalDateMs,
        JSON.stringify(req.flags),
        req.summary.from,
        req.summary.subject,
        req.summary.date,
        bodyFile,
        modseq,
      );
    if (body.kind === 'inline') {
      this.#sql
        .sql('INSERT INTO bodies (mailbox_id, uid, data) VALUES (?, ?, ?)')
        .run(box.id, uid, body.bytes);
    }
    this.#sql
      .sql('INSERT INTO deliveries (delivery_key, mailbox_id, uid) VALUES (?, ?, ?)')
      .run(req.deliveryKey, box.id, uid);
    return { uid, id: messageId(mailbox, uid), repeated: false };
  }

  /** The mailbox row, created on first delivery. Runs inside the group transaction. */
  #mailbox(user: string, name: string): { id: number; uidNext: number; modseq: number } {
    const row = this.#sql
      .sql('SELECT id, uidnext, modseq FROM mailboxes WHERE user = ? AND name = ?')
      .get(user, name);
    if (row !== undefined) {
      return { id: integer(row, 'id'), uidNext: integer(row, 'uidnext'), modseq: integer(row, 'modseq') };
    }
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
      .sql('INSERT INTO mailboxes (user, name, uidvalidity, uidnext) VALUES (?, ?, ?, 1)')
      .run(user, name, uidValidity);
    return { id: Number(created.lastInsertRowid), uidNext: 1, modseq: 1 };
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
        `SELECT m.body_file, d.data FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
         LEFT JOIN bodies d ON d.mailbox_id = m.mailbox_id AND d.uid = m.uid
         WHERE b.user = ? AND b.name = ? AND m.uid = ?`,
      )
      .get(normalizeUser(user), ref.mailbox, ref.uid);
    if (row === undefined) return null;
    return readBody(bytesOrNull(row, 'data'), textOrNull(row, 'body_file'), this.#dir);
  }

  async openMessage(user: string, mailbox: string, uid: number): Promise<StoredMessage | null> {
    if (!Number.isSafeInteger(uid) || uid < 1) return null;
    const find = (): Row | undefined =>
      this.#sql
        .sql(
          `SELECT m.size_bytes, m.body_file, d.data FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
           LEFT JOIN bodies d ON d.mailbox_id = m.mailbox_id AND d.uid = m.uid
           WHERE b.user = ? AND b.name = ? AND m.uid = ?`,
        )
        .get(normalizeUser(user), normalizeMailboxName(mailbox), uid);
    const row = find();
    if (row === undefined) return null;
    const sizeBytes = integer(row, 'size_bytes');
    const data = bytesOrNull(row, 'data');
    if (data !== null) {
      return {
        uid,
        sizeBytes,
        content: (async function* () {
          await Promise.resolve();
          yield data;
        })(),
        close: () => Promise.resolve(),
      };
    }
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
    return fileMessage(uid, sizeBytes, handle);
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
    // Durable now: the files may go. A store closing meanwhile leaves them to the next open().
    if (removed.files.length > 0 && !this.#closed) {
      const task = this.#reclaim(removed.files).catch(() => undefined);
      this.#reclaiming.add(task);
      void task.finally(() => this.#reclaiming.delete(task));
    }
    return removed.uids;
  }

  /** Inside the group transaction: delete the rows, remember the UIDs and doom the files. */
  #expungeRows(user: string, name: string, uids: readonly number[]): { uids: number[]; files: string[] } {
    const found = this.#status(user, name);
    const removed: number[] = [];
    const files: string[] = [];
    if (found === null) return { uids: removed, files };
    const modseq = found.status.highestModseq + 1;
    let bytes = 0;
    for (const uid of uids) {
      // The bodies row goes with it (ON DELETE CASCADE).
      const row = this.#sql
        .sql('DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING size_bytes, body_file')
        .get(found.id, uid);
      if (row === undefined) continue;
      removed.push(uid);
      bytes += integer(row, 'size_bytes');
      this.#sql
        .sql('INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)')
        .run(found.id, uid, modseq);
      const file = textOrNull(row, 'body_file');
      if (file !== null) {
        this.#sql.sql('INSERT OR IGNORE INTO doomed_bodies (body_file) VALUES (?)').run(file);
        files.push(file);
      }
    }
    if (removed.length > 0) {
      this.#sql
        .sql(
          `UPDATE mailboxes SET modseq = ?, message_count = message_count - ?, total_bytes = total_bytes - ?
           WHERE id = ?`,
        )
        .run(modseq, removed.length, bytes, found.id);
    }
    return { uids: removed, files };
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

/** A message whose body is a file already open: the bytes stay readable even if it is expunged now. */
function fileMessage(uid: number, sizeBytes: number, handle: FileHandle): StoredMessage {
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => (closing ??= handle.close());
  async function* content(): AsyncIterable<Uint8Array> {
    try {
      let position = 0;
      while (position < sizeBytes) {
        const want = Math.min(READ_CHUNK_BYTES, sizeBytes - position);
        // A fresh buffer per chunk: the consumer may hold on to what it was given.
        const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, position);
        if (bytesRead === 0) throw new Error(`mailbox store: body of message ${uid} is short`);
        position += bytesRead;
        yield bytesRead === want ? buffer : buffer.subarray(0, bytesRead);
      }
    } finally {
      await close();
    }
  }
  return { uid, sizeBytes, content: content(), close };
}

async function* readBody(
  data: Uint8Array | null,
  file: string | null,
  dir: string,
): AsyncIterable<Uint8Array> {
  if (data !== null) {
    yield data;
    return;
  }
  if (file === null) throw new Error('mailbox store: message has no body');
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
