// The embedded mailbox store: <dir>/mail.db holds mailboxes (UIDVALIDITY, UIDNEXT), message summaries
// and small bodies as BLOBs; bodies above spillBytes are files under <dir>/blobs/<xx>/<id>, written to
// <dir>/tmp first, fsynced, renamed into place and the directory fsynced, all before the row commits.
// deliver() is idempotent per deliveryKey (the key outlives the message, so a redelivery after an
// expunge is still a no-op) and group-committed like the queue. UIDs are allocated from UIDNEXT inside
// the same transaction, so they only grow, survive restarts and are never reused (RFC 9051 §2.3.1.1).
// UIDVALIDITY starts at the creation time in epoch seconds and never repeats within one store.
// Message ids for the CLI: "<uid>" in INBOX, "<mailbox>/<uid>" elsewhere.
// Deliberately not here: IMAP flag updates, expunge, quotas, pruning old delivery keys (later issues).

import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
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
import { nodeStorageFs, removeQuietly, storageError } from '../db/storage-fs.ts';
import type { DeliverRequest, MailboxStore, MessageSummary } from './mailbox-store.ts';

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

export interface MailboxStatus {
  readonly uidValidity: number;
  readonly uidNext: number;
  readonly messages: number;
}

const INBOX = 'INBOX';
const TMP = 'tmp';
const BLOBS = 'blobs';

const MIGRATIONS = [
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
];

/** IMAP's INBOX is case-insensitive (RFC 9051 §5.1); other names are kept as given. */
export function normalizeMailboxName(name: string): string {
  return name.toUpperCase() === INBOX ? INBOX : name;
}

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

function normalizeUser(user: string): string {
  return user.toLowerCase();
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
    return new SqliteMailboxStore(options, db);
  }

  /** Transactions used by deliveries so far (group commit makes it fewer than deliveries). */
  get commitStats(): GroupCommitStats {
    return this.#commits.stats;
  }

  /** UIDVALIDITY, UIDNEXT and message count of a mailbox, or null when it does not exist yet. */
  status(user: string, mailbox: string = INBOX): MailboxStatus | null {
    const row = this.#sql
      .sql(
        `SELECT uidvalidity, uidnext, (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id) AS n
         FROM mailboxes b WHERE user = ? AND name = ?`,
      )
      .get(normalizeUser(user), normalizeMailboxName(mailbox));
    if (row === undefined) return null;
    return {
      uidValidity: integer(row, 'uidvalidity'),
      uidNext: integer(row, 'uidnext'),
      messages: integer(row, 'n'),
    };
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
    this.#sql.sql('UPDATE mailboxes SET uidnext = ? WHERE id = ?').run(uid + 1, box.id);
    this.#sql
      .sql(
        `INSERT INTO messages (mailbox_id, uid, size_bytes, internal_date_ms, flags, from_header, subject,
           date_header, body_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
  #mailbox(user: string, name: string): { id: number; uidNext: number } {
    const row = this.#sql
      .sql('SELECT id, uidnext FROM mailboxes WHERE user = ? AND name = ?')
      .get(user, name);
    if (row !== undefined) return { id: integer(row, 'id'), uidNext: integer(row, 'uidnext') };
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
    return { id: Number(created.lastInsertRowid), uidNext: 1 };
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

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#commits.close();
    this.#db.close();
    return Promise.resolve();
  }
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
