// Copy a single-node installation (the SQLite files under data_dir) into PostgreSQL (issue 19, `tern
// migrate sqlite-to-postgres`): the directory (users with their credential strings as stored, quotas,
// policies, certificate mappings, send-as grants, aliases), every mailbox (folders with their special use
// and subscriptions, messages with flags, internal dates and their UIDVALIDITY and UIDs) and the queue
// (messages with their ids, envelopes, bodies, recipients' state; held stays held). Then it verifies:
// counts per kind and a SHA-256 per body, source against target.
// Resumable without a progress table: every item lands in one target transaction and the target itself
// records what is done (a user or alias that exists, a UID in its folder, a queue id), so a second run
// skips those and copies only what is missing.
// UIDs: the PostgreSQL store appends at the folder's UIDNEXT, so before each append UIDNEXT is set to the
// source UID (one UPDATE of mail_folders), and the folder's UIDVALIDITY, final UIDNEXT and HIGHESTMODSEQ
// (never lower than the source's, so CONDSTORE clients see no modseq go back) are set the same way.
// The queue is written as rows (its store has no way in that keeps an id): the same columns and 256 KiB
// body chunks PostgresQueue.commit writes, the prefix folded into the body (readBody yields the same).
// Deliberately NOT here: CLI parsing, the data-dir lock, the progress bar (cli/commands/migrate-copy.ts);
// creation times (users, aliases, grants get the copy's time), expunge history (QRESYNC VANISHED before
// the copy), \Noselect placeholders (a child's parents come back as real folders), keywords no message
// carries, URLAUTH access keys, \Recent marks, delivery-key dedup records, traces and reports.

import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Clock } from '../core/ports.ts';
import type { PgPool } from '../db/postgres.ts';
import { inTransaction, migratePostgres, openPool } from '../db/postgres.ts';
import type { Directory, QuotaSetting } from '../directory/directory.ts';
import type { PostgresDirectoryConfig } from '../directory/postgres-directory.ts';
import { PostgresDirectory } from '../directory/postgres-directory.ts';
import { SqliteDirectory } from '../directory/sqlite-directory.ts';
import { PostgresQueue, STEPS as QUEUE_STEPS } from '../queue/postgres-queue.ts';
import type { Queue, QueuedMessage } from '../queue/queue.ts';
import { SqliteQueue } from '../queue/sqlite-queue.ts';
import type { ImapMailboxStore } from '../store/mailbox-store.ts';
import { normalizeMailboxName, normalizeUser } from '../store/mailbox-store.ts';
import { PostgresMailboxStore } from '../store/postgres-mailbox-store.ts';
import { SqliteMailboxStore } from '../store/sqlite-mailbox-store.ts';

/** Body rows of the queue, as PostgresQueue writes them. */
const CHUNK_BYTES = 256 * 1024;
/** Mismatches listed in the report at most (the count is always whole). */
const MAX_MISMATCHES = 100;

export type CopyKind = 'users' | 'aliases' | 'certificates' | 'sendAs' | 'folders' | 'messages' | 'queued';

export interface CopyOptions {
  /** The installation's data_dir (directory.sqlite, mail/, queue/). Its server must be stopped. */
  readonly dataDir: string;
  /** postgres://… of the target. */
  readonly url: string;
  /** A schema instead of the URL's search_path (tests). */
  readonly schema?: string | undefined;
  /** localDomains, postmaster, recipientDelimiter, defaultQuota: as openDirectory gives them. */
  readonly directory: PostgresDirectoryConfig;
  readonly clock: Clock;
  /** Told after each item copied (or found already there: copied false), with the body bytes moved. */
  readonly onItem?: ((kind: CopyKind, copied: boolean, bytes: number) => void) | undefined;
  /** Told when a phase starts: 'directory', 'mailboxes', 'queue', 'verify'. */
  readonly onPhase?: ((phase: 'directory' | 'mailboxes' | 'queue' | 'verify') => void) | undefined;
}

export interface KindCount {
  readonly kind: string;
  readonly source: number;
  readonly target: number;
}

export interface CopyReport {
  /** Items written by this run, per kind. */
  readonly copied: Readonly<Record<CopyKind, number>>;
  /** Items already in the target (an earlier run), per kind. */
  readonly skipped: Readonly<Record<CopyKind, number>>;
  readonly bytes: number;
  /** Counts per kind (messages per user as `messages:<user>`, recipients of the queue). */
  readonly counts: readonly KindCount[];
  /** What differs, in words (at most MAX_MISMATCHES listed); empty when the copy is verified. */
  readonly mismatches: readonly string[];
  readonly mismatchCount: number;
  readonly ok: boolean;
}

interface Stores {
  readonly dir: Directory;
  readonly store: ImapMailboxStore;
  readonly queue: Queue;
}

function tally(): Record<CopyKind, number> {
  return { users: 0, aliases: 0, certificates: 0, sendAs: 0, folders: 0, messages: 0, queued: 0 };
}

/** Copy everything, then verify. Throws on a failure mid-way (run it again: it resumes). */
export async function copySqliteToPostgres(options: CopyOptions): Promise<CopyReport> {
  const copied = tally();
  const skipped = tally();
  let bytes = 0;
  const note = (kind: CopyKind, wasCopied: boolean, n = 0): void => {
    (wasCopied ? copied : skipped)[kind]++;
    bytes += n;
    options.onItem?.(kind, wasCopied, n);
  };

  const paths = {
    directory: join(options.dataDir, 'directory.sqlite'),
    mail: join(options.dataDir, 'mail'),
    queue: join(options.dataDir, 'queue'),
  };
  const closers: (() => Promise<void>)[] = [];
  const pool = openPool({
    url: options.url,
    max: 4,
    ...(options.schema === undefined ? {} : { schema: options.schema }),
  });
  closers.push(() => pool.end());
  const spool = await mkdtemp(join(tmpdir(), 'tern-copy-'));
  closers.push(() => rm(spool, { recursive: true, force: true }));
  try {
    const src: Stores = {
      dir: await SqliteDirectory.open({ path: paths.directory, ...options.directory }),
      store: await SqliteMailboxStore.open({ dir: paths.mail, clock: options.clock }),
      queue: await SqliteQueue.open({ dir: paths.queue, clock: options.clock }),
    };
    closers.push(
      () => src.dir.close(),
      () => src.store.close(),
      () => src.queue.close(),
    );
    await migratePostgres(pool, 'queue', QUEUE_STEPS);
    const dst: Stores = {
      dir: await PostgresDirectory.open({ pool, config: options.directory, listen: false }),
      store: await PostgresMailboxStore.open({
        pool,
        clock: options.clock,
        listen: false,
        reclaimIntervalMs: 0,
      }),
      // For reading back only: nothing is committed through it.
      queue: await PostgresQueue.open({ pool, spoolDir: spool, clock: options.clock, nodeId: 'tern-copy' }),
    };
    closers.push(
      () => dst.dir.close(),
      () => dst.store.close(),
      () => dst.queue.close(),
    );

    options.onPhase?.('directory');
    await copyDirectory(src.dir, dst.dir, paths.directory, note);
    options.onPhase?.('mailboxes');
    for (const user of mailboxOwners(paths.mail, await src.dir.listUsers()))
      await copyMailboxes(src.store, dst.store, pool, user, note);
    await copyUserDefaults(paths.mail, pool);
    options.onPhase?.('queue');
    for (const m of await src.queue.list()) {
      const exists = await pool.query('SELECT 1 FROM queue_messages WHERE id = $1', [m.id]);
      if ((exists.rowCount ?? 0) > 0) note('queued', false);
      else note('queued', true, await copyQueued(src.queue, pool, m));
    }
    options.onPhase?.('verify');
    const v = await verify(src, dst, mailboxOwners(paths.mail, await src.dir.listUsers()));
    return {
      copied,
      skipped,
      bytes,
      counts: v.counts,
      mismatches: v.mismatches.slice(0, MAX_MISMATCHES),
      mismatchCount: v.mismatches.length,
      ok: v.mismatches.length === 0,
    };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  }
}

// -------------------------------------------------------------------------------------------------
// Directory

type Note = (kind: CopyKind, copied: boolean, bytes?: number) => void;

/** The per-user quota overrides as stored (the interface only gives them with the default filled in). */
function readQuotaSettings(path: string): Map<string, { bytes: QuotaSetting; messages: QuotaSetting }> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const rows = db.prepare('SELECT address, quota_bytes, quota_messages FROM users').all();
    // Stored NULL is the config's default; 0 is unlimited, which setQuota takes as given.
    const setting = (v: unknown): QuotaSetting => (v === null ? 'default' : Number(v));
    return new Map(
      rows.map((r) => [
        String(r['address']),
        { bytes: setting(r['quota_bytes']), messages: setting(r['quota_messages']) },
      ]),
    );
  } finally {
    db.close();
  }
}

async function copyDirectory(src: Directory, dst: Directory, path: string, note: Note): Promise<void> {
  const quotas = readQuotaSettings(path);
  for (const user of await src.listUsers()) {
    const credentials = (await src.getCredentials(user.address)) ?? { passwordHash: null, scram: null };
    const existing = await dst.getCredentials(user.address);
    // The stored strings as they are: a hash is never recomputed (nobody knows the passwords).
    if (existing === null) await dst.addUser(user.address, credentials.passwordHash, credentials.scram);
    else if (existing.passwordHash !== credentials.passwordHash || existing.scram !== credentials.scram)
      await dst.setCredentials(user.address, credentials);
    const quota = quotas.get(user.address);
    if (quota !== undefined)
      await dst.setQuota(user.address, { storageBytes: quota.bytes, messages: quota.messages });
    await dst.setUserPolicy(user.address, await src.getUserPolicy(user.address));
    note('users', existing === null);
  }
  const certs = new Set((await dst.listCertificates()).map((c) => `${c.address} ${c.fingerprint}`));
  for (const c of await src.listCertificates()) {
    const have = certs.has(`${c.address} ${c.fingerprint}`);
    if (!have) await dst.addCertificate(c.address, c.fingerprint);
    note('certificates', !have);
  }
  const grants = new Set((await dst.listSendAs()).map((g) => `${g.user} ${g.pattern}`));
  for (const g of await src.listSendAs()) {
    const have = grants.has(`${g.user} ${g.pattern}`);
    if (!have) await dst.addSendAs(g.user, g.pattern);
    note('sendAs', !have);
  }
  const aliases = new Set((await dst.listAliases()).map((a) => `${a.alias} ${a.target}`));
  // In listAliases order: by alias, then in the order the targets were added (kept by the copy).
  for (const a of await src.listAliases()) {
    const have = aliases.has(`${a.alias} ${a.target}`);
    if (!have) await dst.addAlias(a.alias, a.target);
    note('aliases', !have);
  }
}

// -------------------------------------------------------------------------------------------------
// Mailboxes

/** Every user with a mailbox (folders may exist for an address no longer a user) and every user. */
function mailboxOwners(mailDir: string, users: readonly { address: string }[]): string[] {
  const owners = new Set(users.map((u) => normalizeUser(u.address)));
  const db = new DatabaseSync(join(mailDir, 'mail.db'), { readOnly: true });
  try {
    for (const r of db.prepare('SELECT DISTINCT user FROM mailboxes').all()) owners.add(String(r['user']));
  } finally {
    db.close();
  }
  return [...owners].sort();
}

/** Users whose default folders were made keep that mark, so a first IMAP login makes none again. */
async function copyUserDefaults(mailDir: string, pool: PgPool): Promise<void> {
  const db = new DatabaseSync(join(mailDir, 'mail.db'), { readOnly: true });
  let owners: string[];
  try {
    owners = db
      .prepare('SELECT user FROM user_defaults')
      .all()
      .map((r) => String(r['user']));
  } finally {
    db.close();
  }
  if (owners.length > 0)
    await pool.query(
      'INSERT INTO mail_user_defaults (owner) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING',
      [owners],
    );
}

async function copyMailboxes(
  src: ImapMailboxStore,
  dst: ImapMailboxStore,
  pool: PgPool,
  user: string,
  note: Note,
): Promise<void> {
  const owner = normalizeUser(user);
  const have = new Set((await dst.folders(user)).filter((f) => f.mailboxId !== null).map((f) => f.name));
  // By name: a parent before its children.
  const folders = (await src.folders(user))
    .filter((f) => f.mailboxId !== null && !f.attributes.includes('\\Noselect'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const f of folders) {
    const name = normalizeMailboxName(f.name);
    const status = await src.folderStatus(user, f.name);
    const created = !have.has(name);
    if (created)
      await dst.createFolder(user, name, f.specialUse === null ? {} : { specialUse: f.specialUse });
    // The source's UIDVALIDITY, while the target folder holds nothing yet (a resumed run finds it set).
    await pool.query(
      `UPDATE mail_folders SET uidvalidity = $3 WHERE owner = $1 AND name = $2 AND message_count = 0
         AND uidvalidity <> $3`,
      [owner, name, status.uidValidity],
    );
    // Later folders get a UIDVALIDITY above every copied one (they never repeat within a store).
    await pool.query(`UPDATE mail_meta SET value = GREATEST(value, $1) WHERE key = 'last_uidvalidity'`, [
      status.uidValidity,
    ]);
    note('folders', created);
    const present = new Set((await dst.messages(user, name, 'all')).map((m) => m.uid));
    const summaries = new Map((await src.list(user, f.name)).map((s) => [s.uid, s]));
    for (const meta of await src.messages(user, f.name, 'all')) {
      if (present.has(meta.uid)) {
        note('messages', false);
        continue;
      }
      const message = await src.openMessage(user, f.name, meta.uid);
      if (message === null) continue; // expunged while we looked: nothing to copy
      await pool.query(
        'UPDATE mail_folders SET uidnext = $3 WHERE owner = $1 AND name = $2 AND uidnext <= $3',
        [owner, name, meta.uid],
      );
      const s = summaries.get(meta.uid);
      const structure = meta.structure;
      const result = await dst.append(user, name, {
        flags: meta.flags,
        internalDateMs: meta.internalDateMs,
        content: message.content,
        summary: s === undefined ? undefined : { from: s.from, subject: s.subject, date: s.date },
        structure: structure === null ? undefined : () => structure,
      });
      if (result.uid !== meta.uid)
        throw new Error(`${user} ${name}: UID ${meta.uid} was stored as ${result.uid}`);
      note('messages', true, meta.sizeBytes);
    }
    // UIDNEXT and HIGHESTMODSEQ never below the source's: expunged UIDs stay unused, no modseq goes back.
    await pool.query(
      `UPDATE mail_folders SET uidnext = GREATEST(uidnext, $3), modseq = GREATEST(modseq, $4)
       WHERE owner = $1 AND name = $2`,
      [owner, name, status.uidNext, status.highestModseq],
    );
  }
  const subscribed = new Set(await dst.subscriptions(user));
  for (const name of await src.subscriptions(user))
    if (!subscribed.has(name)) await dst.subscribe(user, name);
}

// -------------------------------------------------------------------------------------------------
// Queue

/** One queued message as rows, in one transaction: all of it or nothing. Returns the body bytes. */
async function copyQueued(src: Queue, pool: PgPool, m: QueuedMessage): Promise<number> {
  return inTransaction(pool, async (client) => {
    await client.query(
      `INSERT INTO queue_messages (id, envelope, size_bytes, prefix, held, priority, created_ms)
       VALUES ($1, $2, $3, NULL, $4, $5, $6)`,
      [m.id, JSON.stringify(m.envelope), m.sizeBytes, m.held, m.envelope.priority ?? 0, m.arrivalMs],
    );
    // Streamed into rows of CHUNK_BYTES: a large body is never whole in memory.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let seq = 0;
    let total = 0;
    const flush = async (all: boolean): Promise<void> => {
      while (pendingBytes >= CHUNK_BYTES || (all && pendingBytes > 0)) {
        const joined = Buffer.concat(pending);
        const take = Math.min(CHUNK_BYTES, joined.length);
        await client.query('INSERT INTO queue_body_chunks (message_id, seq, data) VALUES ($1, $2, $3)', [
          m.id,
          seq++,
          joined.subarray(0, take),
        ]);
        pending = take < joined.length ? [joined.subarray(take)] : [];
        pendingBytes = joined.length - take;
      }
    };
    for await (const chunk of src.readBody(m.id)) {
      pending.push(Buffer.from(chunk));
      pendingBytes += chunk.byteLength;
      total += chunk.byteLength;
      await flush(false);
    }
    await flush(true);
    if (total !== m.sizeBytes) throw new Error(`queue ${m.id}: body has ${total} bytes, not ${m.sizeBytes}`);
    for (const r of m.recipients) {
      await client.query(
        `INSERT INTO queue_recipients (message_id, idx, address, status, attempts, next_attempt_ms,
           last_reply, delay_warned, bounce_requested, remote_mta, diagnostic)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          m.id,
          r.index,
          r.address,
          r.status,
          r.attempts,
          r.nextAttemptMs,
          r.lastReply,
          r.delayWarned,
          r.bounceRequested,
          r.remoteMta ?? null,
          r.diagnostic ?? null,
        ],
      );
    }
    return total;
  });
}

// -------------------------------------------------------------------------------------------------
// Verification

async function sha256(content: AsyncIterable<Uint8Array>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of content) hash.update(chunk);
  return hash.digest('hex');
}

async function messageHash(
  store: ImapMailboxStore,
  user: string,
  folder: string,
  uid: number,
): Promise<string> {
  const m = await store.openMessage(user, folder, uid);
  return m === null ? 'missing' : sha256(m.content);
}

async function verify(
  src: Stores,
  dst: Stores,
  owners: readonly string[],
): Promise<{ counts: KindCount[]; mismatches: string[] }> {
  const counts: KindCount[] = [];
  const mismatches: string[] = [];
  const compare = (kind: string, a: readonly string[], b: readonly string[]): void => {
    counts.push({ kind, source: a.length, target: b.length });
    const inB = new Set(b);
    const inA = new Set(a);
    for (const x of a) if (!inB.has(x)) mismatches.push(`${kind}: ${x} missing in PostgreSQL`);
    for (const x of b) if (!inA.has(x)) mismatches.push(`${kind}: ${x} not in SQLite`);
  };

  const users = (await src.dir.listUsers()).map((u) => u.address);
  compare(
    'users',
    users,
    (await dst.dir.listUsers()).map((u) => u.address),
  );
  for (const u of users) {
    const a = await src.dir.getCredentials(u);
    const b = await dst.dir.getCredentials(u);
    if (b !== null && (a?.passwordHash !== b.passwordHash || a.scram !== b.scram))
      mismatches.push(`credentials of ${u} differ`);
  }
  const aliasKeys = (l: readonly { alias: string; target: string }[]): string[] =>
    l.map((a) => `${a.alias} -> ${a.target}`);
  compare('aliases', aliasKeys(await src.dir.listAliases()), aliasKeys(await dst.dir.listAliases()));
  const certKeys = (l: readonly { address: string; fingerprint: string }[]): string[] =>
    l.map((c) => `${c.address} ${c.fingerprint}`);
  compare(
    'certificates',
    certKeys(await src.dir.listCertificates()),
    certKeys(await dst.dir.listCertificates()),
  );
  const grantKeys = (l: readonly { user: string; pattern: string }[]): string[] =>
    l.map((g) => `${g.user} ${g.pattern}`);
  compare('sendAs', grantKeys(await src.dir.listSendAs()), grantKeys(await dst.dir.listSendAs()));

  const folderNames: string[][] = [[], []];
  for (const user of owners) {
    const selectable = async (s: ImapMailboxStore): Promise<string[]> =>
      (await s.folders(user))
        .filter((f) => f.mailboxId !== null && !f.attributes.includes('\\Noselect'))
        .map((f) => f.name);
    const a = await selectable(src.store);
    const b = await selectable(dst.store);
    folderNames[0]!.push(...a.map((n) => `${user} ${n}`));
    folderNames[1]!.push(...b.map((n) => `${user} ${n}`));
    const msgs: string[][] = [[], []];
    for (const folder of a) {
      if (!b.includes(folder)) continue; // reported as a missing folder
      const sa = await src.store.folderStatus(user, folder);
      const sb = await dst.store.folderStatus(user, folder);
      if (sa.uidValidity !== sb.uidValidity)
        mismatches.push(`${user} ${folder}: UIDVALIDITY ${sa.uidValidity} became ${sb.uidValidity}`);
      const ma = await src.store.messages(user, folder, 'all');
      const mb = new Map((await dst.store.messages(user, folder, 'all')).map((m) => [m.uid, m]));
      for (const m of ma) {
        const key = `${folder}/${m.uid}`;
        msgs[0]!.push(key);
        const t = mb.get(m.uid);
        if (t === undefined) continue;
        msgs[1]!.push(key);
        if ([...m.flags].sort().join(' ') !== [...t.flags].sort().join(' '))
          mismatches.push(`${user} ${key}: flags ${m.flags.join(' ')} became ${t.flags.join(' ')}`);
        if (m.internalDateMs !== t.internalDateMs) mismatches.push(`${user} ${key}: internal date differs`);
        const [ha, hb] = [
          await messageHash(src.store, user, folder, m.uid),
          await messageHash(dst.store, user, folder, m.uid),
        ];
        if (ha !== hb) mismatches.push(`${user} ${key}: body SHA-256 ${ha} became ${hb}`);
      }
      const extra = [...mb.keys()].filter((uid) => !ma.some((m) => m.uid === uid));
      for (const uid of extra) msgs[1]!.push(`${folder}/${uid}`);
    }
    compare(`messages:${user}`, msgs[0]!, msgs[1]!);
  }
  compare('folders', folderNames[0]!, folderNames[1]!);

  const qa = await src.queue.list();
  const qb = new Map((await dst.queue.list()).map((m) => [m.id, m]));
  compare(
    'queued',
    qa.map((m) => m.id),
    [...qb.keys()],
  );
  const recipientKeys = (l: readonly QueuedMessage[]): string[] =>
    l.flatMap((m) =>
      m.recipients.map(
        (r) =>
          `${m.id}#${r.index} ${r.address} ${r.status} ${r.attempts} ${r.nextAttemptMs} held=${String(m.held)}`,
      ),
    );
  compare('recipients', recipientKeys(qa), recipientKeys([...qb.values()]));
  for (const m of qa) {
    if (!qb.has(m.id)) continue;
    const [ha, hb] = [await sha256(src.queue.readBody(m.id)), await sha256(dst.queue.readBody(m.id))];
    if (ha !== hb) mismatches.push(`queue ${m.id}: body SHA-256 ${ha} became ${hb}`);
  }
  return { counts, mismatches };
}
