// The shared queue (issue 19, `[storage] backend = "postgres"`): several Tern nodes put mail on one
// PostgreSQL queue and deliver from it. While a message arrives its body is spooled locally exactly as
// in sqlite-queue.ts (BodySink: memory, then a spill file in spoolDir); commit() then writes the message
// row, its recipients and its body (bytea rows of at most 256 KiB, streamed from the spill file, never
// whole in memory) in ONE transaction and resolves only after COMMIT (synchronous_commit on, set by the
// pool), then removes the spill file. Small bodies committed in the same event-loop turn share one
// transaction (group commit); a spilled body takes a transaction of its own.
// Claiming: due() leases what it returns to this node (lease_owner, lease_until on the recipients) in a
// transaction that locks the message rows FOR NO KEY UPDATE SKIP LOCKED and re-checks the leases with a
// fresh snapshot, so two nodes never get the same message while a lease runs (leases are per recipient,
// claims per message: one with a live lease of another node is left out whole). A node gets its own
// leased messages again (single-node behaviour is the SQLite queue's, per queue.contract.ts); a timer
// renews this node's leases while it runs, settle() clears them, close() hands them back; a crashed
// node's leases expire after leaseMs and another node takes the mail (it may deliver some of it twice:
// RFC 5321 §6.1 prefers a duplicate to a loss). Lease times are read from the nodes' clocks: keep them
// in sync (NTP); a node's skew shortens or lengthens its leases by as much.
// Failures: a full disk (local spool or SQLSTATE 53100 on the server) is 452 4.3.1; any other failure of
// a commit is 451 4.3.0 (ReplyError), never a 250. A COMMIT whose answer is lost is reported as failed
// although it may have happened: the client's retry is then a duplicate, as RFC 5321 §6.1 allows.
// Deliberately NOT here: a local copy of committed bodies (bodyFile() is always null: a mailbox store
// copies through readBody()), waking other nodes on commit (onCommit is this process only; other
// nodes find new mail on their next look), the pool's lifetime (the caller owns it; close() leaves it).

import { listenChannel, type Listening } from '../db/pg-listen.ts';
import { open as openFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Envelope } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { nullLogger } from '../core/ports.ts';
import { Replies, ReplyError } from '../core/reply.ts';
import { BodySink, DEFAULT_SPILL_BYTES } from '../db/body-sink.ts';
import type { StoredBody } from '../db/body-sink.ts';
import type { PgClient, PgPool, PgRow } from '../db/postgres.ts';
import { inTransaction, migratePostgres, pgBytes, pgInt, pgText, pgTextOrNull } from '../db/postgres.ts';
import { SORTABLE_ID_PATTERN, SortableIds } from '../db/sortable-id.ts';
import type { StorageFs } from '../db/storage-fs.ts';
import { isDiskFull, nodeStorageFs, removeQuietly } from '../db/storage-fs.ts';
import { SpooledMessageWriter } from './spooled-writer.ts';
import type {
  MessageWriter,
  Queue,
  QueueAge,
  QueueChange,
  QueuedMessage,
  QueuedRecipient,
  QueueStats,
  RecipientOutcome,
  RecipientStatus,
} from './queue.ts';
import { CHANGE_LOG_KEEP, QUEUE_AGES } from './queue.ts';

/** The channel commits are announced on (payload: the queue id). */
const COMMIT_CHANNEL = 'tern_queue_commit';

export interface PostgresQueueOptions {
  /** From openPool() (src/db/postgres.ts); shared with the other services, never ended here. */
  readonly pool: PgPool;
  /** A local folder for bodies while they are received (spill files); removed once committed. */
  readonly spoolDir: string;
  readonly clock: Clock;
  readonly logger?: Logger | undefined;
  /** This server among the nodes sharing the database; unique per running server (leases name it). */
  readonly nodeId: string;
  /** How long what due() returns stays this node's without a renewal (default 60 s). */
  readonly leaseMs?: number | undefined;
  /** How often (real time) this node renews its leases while open (default leaseMs / 3). */
  readonly leaseRenewMs?: number | undefined;
  /** Bodies larger than this are spooled to a file while they arrive (default as SQLite's). */
  readonly spillBytes?: number | undefined;
  /** At open, spill files untouched this long (a crash mid-reception) are deleted (default 1 h). */
  readonly orphanGraceMs?: number | undefined;
  /** File operations on spill files; tests inject a full disk here. */
  readonly fs?: StorageFs | undefined;
  /**
   * Test seam: runs inside every commit transaction, its rows written, just before COMMIT (to hold a
   * commit there, or to fail it with a real server error).
   */
  readonly beforeCommit?: ((client: PgClient, ids: readonly string[]) => Promise<void>) | undefined;
  /**
   * Hear other nodes' commits (LISTEN on a dedicated connection) and tell onCommit listeners, so every
   * node's delivery worker wakes at once instead of at its next poll. For the queue the worker uses.
   */
  readonly listen?: boolean;
}

export const DEFAULT_LEASE_MS = 60_000;
const DEFAULT_ORPHAN_GRACE_MS = 60 * 60 * 1000;
/** Body rows: big enough that a 100 MiB body is 400 rows, small enough to stream. */
export const BODY_CHUNK_BYTES = 256 * 1024;
/** Rows fetched per query when a body is read back (at most this many are in memory at once)... */
const READ_PAGE_CHUNKS = 4;
/** ...in pieces of this size (see readBody). */
const READ_PIECE_BYTES = 64 * 1024;
/** One group transaction carries at most this many messages and inline body bytes. */
const GROUP_MAX_MESSAGES = 1000;
const GROUP_MAX_BYTES = 16 * 1024 * 1024;
/** Inline body rows per INSERT (3 parameters each, far below the protocol's 65535). */
const CHUNK_ROWS_PER_INSERT = 200;
/** due() looks again this often when another node took candidates between the look and the claim. */
const CLAIM_ROUNDS = 4;

// Table names carry the component: other services keep their tables in the same schema.
export const STEPS: readonly string[] = [
  `CREATE TABLE queue_messages (
     id TEXT PRIMARY KEY,
     envelope TEXT NOT NULL,
     size_bytes BIGINT NOT NULL,
     prefix BYTEA,
     held BOOLEAN NOT NULL DEFAULT false,
     priority INTEGER NOT NULL DEFAULT 0,
     created_ms BIGINT NOT NULL
   );
   CREATE INDEX queue_messages_priority ON queue_messages (priority) WHERE priority <> 0;
   CREATE TABLE queue_body_chunks (
     message_id TEXT NOT NULL REFERENCES queue_messages (id) ON DELETE CASCADE,
     seq INTEGER NOT NULL,
     data BYTEA NOT NULL,
     PRIMARY KEY (message_id, seq)
   );
   CREATE TABLE queue_recipients (
     message_id TEXT NOT NULL REFERENCES queue_messages (id) ON DELETE CASCADE,
     idx INTEGER NOT NULL,
     address TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('queued', 'deferred', 'delivered', 'bounced')),
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_ms BIGINT NOT NULL,
     last_reply TEXT,
     delay_warned BOOLEAN NOT NULL DEFAULT false,
     bounce_requested BOOLEAN NOT NULL DEFAULT false,
     remote_mta TEXT,
     diagnostic TEXT,
     lease_owner TEXT,
     lease_until BIGINT,
     PRIMARY KEY (message_id, idx)
   );
   CREATE INDEX queue_recipients_due ON queue_recipients (next_attempt_ms, message_id)
     WHERE status IN ('queued', 'deferred');
   CREATE INDEX queue_recipients_lease ON queue_recipients (lease_owner) WHERE lease_owner IS NOT NULL;
   CREATE TABLE queue_wakeups (id INTEGER PRIMARY KEY CHECK (id = 1), counter BIGINT NOT NULL);
   INSERT INTO queue_wakeups (id, counter) VALUES (1, 0);
   CREATE TABLE queue_change_log (
     seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     at_ms BIGINT NOT NULL,
     event TEXT NOT NULL,
     detail TEXT NOT NULL
   );`,
];

// LOCK ORDER (no deadlocks between nodes): whoever changes several recipients of a message locks its
// queue_messages row first (settle, flush, bounceNow, the claim in due()); the claim takes message locks
// with SKIP LOCKED and so never waits for one; lease renewal and hand-back skip locked recipient rows
// (OWN_LEASES_UNLOCKED) and so never wait at all; operator changes are ordered by the queue_wakeups row.
const PENDING = `status IN ('queued', 'deferred')`;
/** This node's ($1) leased recipients that nobody is changing right now. */
const OWN_LEASES_UNLOCKED = `(message_id, idx) IN (SELECT message_id, idx FROM queue_recipients
  WHERE lease_owner = $1 FOR NO KEY UPDATE SKIP LOCKED)`;
const RECIPIENT_COLUMNS = `idx, address, status, attempts, next_attempt_ms, last_reply, delay_warned,
  bounce_requested, remote_mta, diagnostic`;
/** A live lease of another node on some recipient of message m ($node: this node, $now: the clock). */
const leasedElsewhere = (node: string, now: string): string =>
  `EXISTS (SELECT 1 FROM queue_recipients x WHERE x.message_id = m.id
     AND x.lease_owner <> ${node} AND x.lease_until > ${now})`;

/** A message as committed, before it is written. */
interface NewMessage {
  readonly id: string;
  readonly envelopeJson: string;
  readonly sizeBytes: number;
  readonly prefix: Uint8Array | null;
  readonly priority: number;
  readonly createdMs: number;
  readonly firstAttemptMs: number;
  readonly addresses: readonly string[];
}

interface PendingCommit {
  readonly message: NewMessage;
  readonly body: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class PostgresQueue implements Queue {
  readonly #pool: PgPool;
  readonly #spoolDir: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #fs: StorageFs;
  readonly #spillBytes: number;
  readonly #nodeId: string;
  readonly #leaseMs: number;
  readonly #leaseRenewMs: number;
  readonly #beforeCommit: PostgresQueueOptions['beforeCommit'];
  readonly #ids = new SortableIds();
  readonly #listeners = new Set<(id: string) => void>();
  #listening: Listening | null = null;
  #group: PendingCommit[] = [];
  #groupScheduled = false;
  /** The group commits running now (one after another); null when idle. */
  #groupRunning: Promise<void> | null = null;
  #transactions = 0;
  /** Set once due() leased something: only then does this instance renew and hand back leases. */
  #claimed = false;
  #renewTimer: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(options: PostgresQueueOptions) {
    this.#pool = options.pool;
    this.#spoolDir = options.spoolDir;
    this.#clock = options.clock;
    this.#log = options.logger ?? nullLogger;
    this.#fs = options.fs ?? nodeStorageFs;
    this.#spillBytes = options.spillBytes ?? DEFAULT_SPILL_BYTES;
    this.#nodeId = options.nodeId;
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#leaseRenewMs = options.leaseRenewMs ?? Math.max(1, Math.floor(this.#leaseMs / 3));
    this.#beforeCommit = options.beforeCommit;
  }

  static async open(options: PostgresQueueOptions): Promise<PostgresQueue> {
    if (options.nodeId === '') throw new Error('queue: nodeId must not be empty');
    await (options.fs ?? nodeStorageFs).mkdir(options.spoolDir);
    await migratePostgres(options.pool, 'queue', STEPS);
    const queue = new PostgresQueue(options);
    await queue.#removeOrphans(options.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS);
    if (options.listen === true)
      queue.#listening = listenChannel(options.pool, COMMIT_CHANNEL, (id) => queue.#tell(id));
    return queue;
  }

  /** Transactions committed by commits, settles and operator changes (group commit makes them fewer). */
  get commitStats(): { readonly transactions: number } {
    return { transactions: this.#transactions };
  }

  begin(): MessageWriter {
    if (this.#closed) throw new Error('queue: closed');
    const id = this.#ids.next(this.#clock.nowMs());
    const sink = new BodySink({ path: join(this.#spoolDir, id), spillBytes: this.#spillBytes, fs: this.#fs });
    return new SpooledMessageWriter(id, sink, {
      store: (envelope, body, prefix) => this.#store(id, envelope, body, prefix),
      failure: commitError,
      // The bytes are in the database now: the spill file was only where they waited.
      committed: () =>
        sink.discard().catch((err: unknown) => {
          this.#log.warn(Events.queueUnlinkFailed, { queueId: id, err });
        }),
    });
  }

  /** Called by a writer with its body complete: resolves once the message is committed. */
  async #store(id: string, envelope: Envelope, body: StoredBody, prefix: Uint8Array | null): Promise<void> {
    this.#assertOpen();
    if (envelope.recipients.length === 0) throw new Error('queue: an envelope needs at least one recipient');
    const nowMs = this.#clock.nowMs();
    const message: NewMessage = {
      id,
      envelopeJson: JSON.stringify(envelope),
      sizeBytes: body.sizeBytes + (prefix?.byteLength ?? 0),
      prefix: prefix !== null && prefix.byteLength > 0 ? prefix : null,
      priority: envelope.priority ?? 0,
      createdMs: nowMs,
      // FUTURERELEASE (RFC 4865): a held message's first attempt is its release time.
      firstAttemptMs: Math.max(nowMs, envelope.holdUntilMs ?? nowMs),
      addresses: envelope.recipients.map((r) => r.address),
    };
    if (body.kind === 'inline') {
      await new Promise<void>((resolve, reject) => {
        this.#group.push({ message, body: body.bytes, resolve, reject });
        this.#scheduleGroup();
      });
    } else {
      await this.#write(async (client) => {
        await insertMessages(client, [message]);
        await copyBody(client, id, body.path, body.sizeBytes);
        await this.#beforeCommit?.(client, [id]);
      });
    }
    this.#log.event(Events.queueCommitted, {
      queueId: id,
      sizeBytes: body.sizeBytes,
      recipients: envelope.recipients.length,
      spooled: body.kind === 'file',
    });
    this.#tell(id);
    // Other nodes' workers: a hint after COMMIT (one lost in a crash costs them a poll, not mail).
    void this.#pool.query('SELECT pg_notify($1, $2)', [COMMIT_CHANNEL, id]).catch(() => undefined);
  }

  #tell(id: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(id);
      } catch (err) {
        this.#log.error(Events.queueListenerFailed, { queueId: id, err });
      }
    }
  }

  #scheduleGroup(): void {
    if (this.#groupScheduled || this.#groupRunning !== null) return;
    this.#groupScheduled = true;
    setImmediate(() => {
      this.#groupScheduled = false;
      this.#groupRunning = this.#runGroups().finally(() => {
        this.#groupRunning = null;
        if (this.#group.length > 0) this.#scheduleGroup();
      });
    });
  }

  /** One group transaction after another while commits wait: the slower the server, the bigger the group. */
  async #runGroups(): Promise<void> {
    while (this.#group.length > 0) {
      let bytes = 0;
      let n = 0;
      while (n < this.#group.length && n < GROUP_MAX_MESSAGES) {
        bytes += this.#group[n]!.body.byteLength;
        if (n > 0 && bytes > GROUP_MAX_BYTES) break;
        n++;
      }
      const group = this.#group.splice(0, n);
      await this.#commitGroup(group);
    }
  }

  /** Never throws: each caller's promise is settled. */
  async #commitGroup(group: readonly PendingCommit[]): Promise<void> {
    const insert = async (client: PgClient, items: readonly PendingCommit[]): Promise<void> => {
      await insertMessages(
        client,
        items.map((p) => p.message),
      );
      await insertInlineBodies(client, items);
      await this.#beforeCommit?.(
        client,
        items.map((p) => p.message.id),
      );
    };
    try {
      await this.#write((client) => insert(client, group));
      for (const p of group) p.resolve();
      return;
    } catch (err) {
      if (group.length === 1 || !isRowError(err)) {
        for (const p of group) p.reject(err);
        return;
      }
      // One message's rows failed the whole group: commit each alone so only its caller hears of it.
      this.#log.warn(Events.queueGroupCommitRetried, { messages: group.length, err });
    }
    for (const p of group) {
      try {
        await this.#write((client) => insert(client, [p]));
        p.resolve();
      } catch (err) {
        p.reject(err);
      }
    }
  }

  /** A write transaction of commits, settles or operator changes (counted for commitStats). */
  async #write<T>(fn: (client: PgClient) => Promise<T>): Promise<T> {
    const result = await inTransaction(this.#pool, fn);
    this.#transactions++;
    return result;
  }

  async #rows(text: string, values: readonly unknown[] = []): Promise<PgRow[]> {
    this.#assertOpen();
    const r = await this.#pool.query<PgRow>(text, [...values]);
    return r.rows;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('queue: closed');
  }

  async get(id: string): Promise<QueuedMessage | null> {
    const rows = await this.#rows(
      `SELECT m.id, m.envelope, m.size_bytes, m.held, ${prefixed('r', RECIPIENT_COLUMNS)}
       FROM queue_messages m LEFT JOIN queue_recipients r ON r.message_id = m.id
       WHERE m.id = $1 ORDER BY r.idx`,
      [id],
    );
    return toMessages(rows)[0] ?? null;
  }

  async list(): Promise<QueuedMessage[]> {
    // One statement: one snapshot, so a message and its recipients always agree.
    const rows = await this.#rows(
      `SELECT m.id, m.envelope, m.size_bytes, m.held, ${prefixed('r', RECIPIENT_COLUMNS)}
       FROM queue_messages m LEFT JOIN queue_recipients r ON r.message_id = m.id
       ORDER BY m.id, r.idx`,
    );
    return toMessages(rows);
  }

  async stats(nowMs: number): Promise<QueueStats> {
    const totals = (
      await this.#rows('SELECT count(*) AS n, count(*) FILTER (WHERE held) AS held FROM queue_messages')
    )[0]!;
    const recipients: Record<RecipientStatus, number> = { queued: 0, deferred: 0, delivered: 0, bounced: 0 };
    for (const r of await this.#rows('SELECT status, count(*) AS n FROM queue_recipients GROUP BY status')) {
      recipients[pgText(r, 'status') as RecipientStatus] = pgInt(r, 'n');
    }
    const bounds = QUEUE_AGES.filter(([, maxMs]) => Number.isFinite(maxMs));
    const bucket = `CASE ${bounds.map((_, i) => `WHEN $1 - created_ms < $${i + 2} THEN ${i}`).join(' ')} ELSE ${bounds.length} END`;
    const pendingByAge: Record<QueueAge, number> = { '5m': 0, '1h': 0, '1d': 0, older: 0 };
    let oldest: number | null = null;
    const ages = await this.#rows(
      `SELECT ${bucket} AS bucket, count(*) AS n, min(created_ms) AS oldest FROM queue_messages m
       WHERE EXISTS (SELECT 1 FROM queue_recipients r WHERE r.message_id = m.id AND r.${PENDING})
       GROUP BY 1`,
      [nowMs, ...bounds.map(([, maxMs]) => maxMs)],
    );
    for (const r of ages) {
      const age = QUEUE_AGES[pgInt(r, 'bucket')]?.[0] ?? 'older';
      pendingByAge[age] += pgInt(r, 'n');
      const created = pgInt(r, 'oldest');
      oldest = oldest === null ? created : Math.min(oldest, created);
    }
    return {
      messages: pgInt(totals, 'n'),
      held: pgInt(totals, 'held'),
      recipients,
      pendingByAge,
      oldestPendingMs: oldest,
    };
  }

  /** Always null: the body lives in the database, there is no local file to link (readBody copies). */
  bodyFile(_id: string): Promise<{
    readonly path: string;
    readonly sizeBytes: number;
    readonly prefix: Uint8Array | null;
  } | null> {
    return this.#closed ? Promise.reject(new Error('queue: closed')) : Promise.resolve(null);
  }

  /**
   * Prefix, then the body a few rows at a time (paged by seq: no transaction held open while it is
   * read), each row cut into 64 KiB pieces by the server: bytea arrives as hex text, and strings of a
   * whole 256 KiB row (512 KiB) land in V8's large-object space, which only a full GC frees (the rss
   * grew by 80 MiB reading 100 MiB that way; about 10 MiB in pieces, and faster).
   */
  async *readBody(id: string): AsyncIterable<Uint8Array> {
    const head = (await this.#rows('SELECT size_bytes, prefix FROM queue_messages WHERE id = $1', [id]))[0];
    if (head === undefined) throw new Error(`queue: no message ${id}`);
    const prefix = pgBytes(head, 'prefix');
    if (prefix !== null && prefix.byteLength > 0) yield prefix;
    const bodyBytes = pgInt(head, 'size_bytes') - (prefix?.byteLength ?? 0);
    let read = 0;
    for (let seq = 0; read < bodyBytes; seq += READ_PAGE_CHUNKS) {
      const page = await this.#rows(
        `SELECT substring(c.data FROM g.o + 1 FOR ${READ_PIECE_BYTES}) AS data
         FROM queue_body_chunks c
           CROSS JOIN LATERAL generate_series(0, octet_length(c.data) - 1, ${READ_PIECE_BYTES}) AS g (o)
         WHERE c.message_id = $1 AND c.seq >= $2 AND c.seq < $3
         ORDER BY c.seq, g.o`,
        [id, seq, seq + READ_PAGE_CHUNKS],
      );
      if (page.length === 0) break;
      for (const row of page) {
        const data = pgBytes(row, 'data')!;
        read += data.byteLength;
        yield data;
      }
    }
    // A message removed (or settled away) while it was read: never pass a truncated body on as whole.
    if (read !== bodyBytes) throw new Error(`queue: message ${id} went away while it was read`);
  }

  /**
   * Due messages not held, claimed for this node: each returned recipient is leased to it until
   * now + leaseMs. Messages another node holds a live lease on are left out, this node's own are not.
   */
  async due(nowMs: number, limit: number, skip?: ReadonlySet<string>): Promise<QueuedMessage[]> {
    this.#assertOpen();
    const want = Math.max(0, Math.floor(limit));
    const out: QueuedMessage[] = [];
    if (want === 0) return out;
    const seen = new Set(skip);
    for (let round = 0; round < CLAIM_ROUNDS && out.length < want; round++) {
      const clockMs = this.#clock.nowMs();
      const ids = await this.#candidates(nowMs, clockMs, want - out.length, seen);
      if (ids.length === 0) break;
      for (const id of ids) seen.add(id);
      const claimed = await this.#claim(ids, nowMs, clockMs);
      out.push(...claimed);
      // All taken: there was no more (the candidates stopped short) or enough.
      if (claimed.length === ids.length) break;
    }
    return out;
  }

  /** Up to n ids of due messages in due() order (MT-PRIORITY, then due time), not yet locked. */
  async #candidates(
    nowMs: number,
    clockMs: number,
    n: number,
    exclude: ReadonlySet<string>,
  ): Promise<string[]> {
    const out: string[] = [];
    const excluded = [...exclude];
    // MT-PRIORITY (RFC 6710): due messages above 0 first, highest first; those below 0 after the rest.
    const prioritized = async (sign: '>' | '<'): Promise<void> => {
      const rows = await this.#rows(
        `SELECT m.id FROM queue_messages m
         WHERE m.priority ${sign} 0 AND NOT m.held AND m.id <> ALL($3::text[])
           AND EXISTS (SELECT 1 FROM queue_recipients r
                       WHERE r.message_id = m.id AND r.${PENDING} AND r.next_attempt_ms <= $1)
           AND NOT ${leasedElsewhere('$4', '$2')}
         ORDER BY m.priority DESC, m.id LIMIT $5`,
        [nowMs, clockMs, excluded, this.#nodeId, n - out.length],
      );
      for (const r of rows) out.push(pgText(r, 'id'));
    };
    await prioritized('>');
    // Recipients in due order, straight off the index; a message shows up once per due recipient, so
    // read in pages until n distinct messages (each is listed where its earliest recipient is).
    const pageSize = Math.max(16, n * 2);
    let after: [number, string] = [-1, ''];
    while (out.length < n) {
      const rows = await this.#rows(
        `SELECT r.message_id AS id, r.next_attempt_ms AS at
         FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id
         WHERE r.${PENDING} AND r.next_attempt_ms <= $1 AND NOT m.held AND m.priority = 0
           AND (r.next_attempt_ms, r.message_id) > ($3::bigint, $4::text) AND r.message_id <> ALL($5::text[])
           AND NOT ${leasedElsewhere('$6', '$2')}
         ORDER BY r.next_attempt_ms, r.message_id LIMIT $7`,
        [nowMs, clockMs, after[0], after[1], excluded, this.#nodeId, pageSize],
      );
      for (const r of rows) {
        const id = pgText(r, 'id');
        after = [pgInt(r, 'at'), id];
        if (!out.includes(id) && out.length < n) out.push(id);
      }
      if (rows.length < pageSize) break;
    }
    if (out.length < n) await prioritized('<');
    return out;
  }

  /**
   * Lease the due recipients of `ids` to this node, in one transaction: lock the message rows (skipping
   * those another node is claiming or settling right now), then, in a new statement that sees every
   * claim committed before the locks were granted, lease what no other node holds.
   */
  async #claim(ids: readonly string[], nowMs: number, clockMs: number): Promise<QueuedMessage[]> {
    const { messages, recipients } = await inTransaction(this.#pool, async (client) => {
      const locked = await client.query<PgRow>(
        `SELECT id FROM queue_messages WHERE id = ANY($1::text[]) AND NOT held
         FOR NO KEY UPDATE SKIP LOCKED`,
        [ids],
      );
      if (locked.rows.length === 0) return { messages: [], recipients: [] };
      const lockedIds = locked.rows.map((r) => pgText(r, 'id'));
      const leased = await client.query<PgRow>(
        `UPDATE queue_recipients r SET lease_owner = $2, lease_until = $3
         FROM queue_messages m
         WHERE m.id = r.message_id AND r.message_id = ANY($1::text[]) AND r.${PENDING} AND r.next_attempt_ms <= $4
           AND (r.lease_owner IS NULL OR r.lease_owner = $2 OR r.lease_until <= $5)
           AND NOT ${leasedElsewhere('$2', '$5')}
         RETURNING r.message_id, ${prefixed('r', RECIPIENT_COLUMNS)}`,
        [lockedIds, this.#nodeId, clockMs + this.#leaseMs, nowMs, clockMs],
      );
      if (leased.rows.length === 0) return { messages: [], recipients: [] };
      const taken = [...new Set(leased.rows.map((r) => pgText(r, 'message_id')))];
      const rows = await client.query<PgRow>(
        'SELECT id, envelope, size_bytes, held FROM queue_messages WHERE id = ANY($1::text[])',
        [taken],
      );
      return { messages: rows.rows, recipients: leased.rows };
    });
    if (recipients.length === 0) return [];
    this.#claimed = true;
    this.#startRenewing();
    const byMessage = new Map<string, QueuedRecipient[]>();
    for (const r of recipients) {
      const id = pgText(r, 'message_id');
      let list = byMessage.get(id);
      if (list === undefined) byMessage.set(id, (list = []));
      list.push(toRecipient(r));
    }
    const rowById = new Map(messages.map((m) => [pgText(m, 'id'), m]));
    const out: QueuedMessage[] = [];
    for (const id of ids) {
      const row = rowById.get(id);
      const list = byMessage.get(id);
      if (row === undefined || list === undefined) continue;
      list.sort((a, b) => a.index - b.index);
      out.push(toMessage(row, list));
    }
    return out;
  }

  #startRenewing(): void {
    if (this.#renewTimer !== null || this.#closed) return;
    this.#renewTimer = setInterval(() => void this.#renewLeases(), this.#leaseRenewMs);
    this.#renewTimer.unref();
  }

  /** Extend every lease of this node: what due() gave it stays its own while it runs (and delivers). */
  async #renewLeases(): Promise<void> {
    if (this.#closed) return;
    try {
      const r = await this.#pool.query(
        `UPDATE queue_recipients SET lease_until = $2 WHERE ${OWN_LEASES_UNLOCKED}`,
        [this.#nodeId, this.#clock.nowMs() + this.#leaseMs],
      );
      this.#log.debug(Events.queueLeasesRenewed, { node: this.#nodeId, recipients: r.rowCount ?? 0 });
    } catch (err) {
      this.#log.warn(Events.queueLeaseRenewFailed, { node: this.#nodeId, err });
    }
  }

  async nextAttemptAfter(nowMs: number): Promise<number | null> {
    const row = (
      await this.#rows(
        // Also when another node's lease on due mail runs out: a crashed node's mail is taken then.
        `SELECT min(CASE WHEN r.next_attempt_ms > $1 THEN r.next_attempt_ms ELSE r.lease_until END) AS at
         FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id
         WHERE r.${PENDING} AND NOT m.held
           AND (r.next_attempt_ms > $1 OR (r.lease_owner IS NOT NULL AND r.lease_owner <> $2 AND r.lease_until > $1))`,
        [nowMs, this.#nodeId],
      )
    )[0];
    return row === undefined || row['at'] === null ? null : pgInt(row, 'at');
  }

  async settle(id: string, index: number, outcome: RecipientOutcome): Promise<void> {
    this.#assertOpen();
    const removed = await this.#write(async (client) => {
      // The message row lock orders settles of one message: the last one sees no pending recipient.
      const msg = await client.query('SELECT 1 FROM queue_messages WHERE id = $1 FOR NO KEY UPDATE', [id]);
      if (msg.rows.length === 0) throw new Error(`queue: no recipient ${index} of message ${id}`);
      const changed = await client.query(
        `UPDATE queue_recipients SET status = $1, attempts = attempts + 1, last_reply = $2,
           next_attempt_ms = coalesce($3::bigint, next_attempt_ms), remote_mta = $4, diagnostic = $5,
           lease_owner = NULL, lease_until = NULL
         WHERE message_id = $6 AND idx = $7 AND ${PENDING}`,
        [
          outcome.status,
          noNul(outcome.reply),
          outcome.status === 'deferred' ? outcome.nextAttemptMs : null,
          outcome.remoteMta === undefined ? null : noNul(outcome.remoteMta),
          outcome.diagnostic === undefined ? null : noNul(outcome.diagnostic),
          id,
          index,
        ],
      );
      if (changed.rowCount === 0) {
        const exists = await client.query<PgRow>(
          'SELECT status FROM queue_recipients WHERE message_id = $1 AND idx = $2',
          [id, index],
        );
        const row = exists.rows[0];
        throw new Error(
          row === undefined
            ? `queue: no recipient ${index} of message ${id}`
            : `queue: recipient ${index} of message ${id} is already ${pgText(row, 'status')}`,
        );
      }
      const left = await client.query(
        `SELECT 1 FROM queue_recipients WHERE message_id = $1 AND ${PENDING} LIMIT 1`,
        [id],
      );
      if (left.rows.length > 0) return false;
      await client.query('DELETE FROM queue_messages WHERE id = $1', [id]);
      return true;
    });
    if (removed) this.#log.event(Events.queueRemoved, { queueId: id });
  }

  /**
   * An operator change, bumping the change counter in the same transaction. The counter row is updated
   * first: its lock orders every change, so change-log seqs are handed out in commit order and a reader
   * that saw seq n never misses an entry below n committed later.
   */
  async #change<T>(op: (client: PgClient) => Promise<T>): Promise<T> {
    this.#assertOpen();
    return this.#write(async (client) => {
      await client.query('UPDATE queue_wakeups SET counter = counter + 1 WHERE id = 1');
      return op(client);
    });
  }

  async hold(id: string): Promise<boolean> {
    const found = await this.#change(
      async (c) =>
        ((await c.query('UPDATE queue_messages SET held = true WHERE id = $1', [id])).rowCount ?? 0) > 0,
    );
    if (found) this.#log.event(Events.queueHeld, { queueId: id });
    return found;
  }

  async release(id: string): Promise<boolean> {
    const found = await this.#change(
      async (c) =>
        ((await c.query('UPDATE queue_messages SET held = false WHERE id = $1', [id])).rowCount ?? 0) > 0,
    );
    if (found) this.#log.event(Events.queueReleased, { queueId: id });
    return found;
  }

  async remove(id: string): Promise<boolean> {
    const found = await this.#change(
      async (c) => ((await c.query('DELETE FROM queue_messages WHERE id = $1', [id])).rowCount ?? 0) > 0,
    );
    if (found) this.#log.event(Events.queueDeleted, { queueId: id });
    return found;
  }

  async flush(id?: string): Promise<number> {
    const nowMs = this.#clock.nowMs();
    const changed = await this.#change(async (c) => {
      // least(): a recipient already due keeps its place in the due() order. The messages are locked
      // first, in id order, as everyone who writes recipients does (see LOCK ORDER).
      const held = id === undefined ? 'NOT held' : 'NOT held AND id = $2';
      const r = await c.query(
        `WITH m AS (SELECT id FROM queue_messages WHERE ${held} ORDER BY id FOR NO KEY UPDATE)
         UPDATE queue_recipients SET next_attempt_ms = least(next_attempt_ms, $1)
         WHERE ${PENDING} AND message_id IN (SELECT id FROM m)`,
        id === undefined ? [nowMs] : [nowMs, id],
      );
      return r.rowCount ?? 0;
    });
    this.#log.event(Events.queueFlushed, { queueId: id ?? null, recipients: changed });
    return changed;
  }

  async bounceNow(id: string): Promise<number> {
    const nowMs = this.#clock.nowMs();
    const marked = await this.#change(async (c) => {
      await c.query('SELECT 1 FROM queue_messages WHERE id = $1 FOR NO KEY UPDATE', [id]);
      const r = await c.query(
        `UPDATE queue_recipients SET bounce_requested = true, next_attempt_ms = least(next_attempt_ms, $1)
         WHERE message_id = $2 AND ${PENDING}`,
        [nowMs, id],
      );
      const n = r.rowCount ?? 0;
      if (n > 0) await c.query('UPDATE queue_messages SET held = false WHERE id = $1', [id]);
      return n;
    });
    if (marked > 0) this.#log.event(Events.queueBounceRequested, { queueId: id, recipients: marked });
    return marked;
  }

  async markDelayWarned(id: string, index: number): Promise<void> {
    this.#assertOpen();
    await this.#write(async (c) => {
      const r = await c.query(
        'UPDATE queue_recipients SET delay_warned = true WHERE message_id = $1 AND idx = $2',
        [id, index],
      );
      if (r.rowCount === 0) throw new Error(`queue: no recipient ${index} of message ${id}`);
    });
  }

  async changeCounter(): Promise<number> {
    return pgInt((await this.#rows('SELECT counter FROM queue_wakeups WHERE id = 1'))[0]!, 'counter');
  }

  async recordChange(event: string, detail: Readonly<Record<string, unknown>>): Promise<void> {
    const atMs = this.#clock.nowMs();
    await this.#change(async (c) => {
      const r = await c.query<PgRow>(
        'INSERT INTO queue_change_log (at_ms, event, detail) VALUES ($1, $2, $3) RETURNING seq',
        [atMs, noNul(event), JSON.stringify(detail)],
      );
      await c.query('DELETE FROM queue_change_log WHERE seq <= $1', [
        pgInt(r.rows[0]!, 'seq') - CHANGE_LOG_KEEP,
      ]);
    });
  }

  async changesSince(afterSeq: number, limit: number): Promise<QueueChange[]> {
    const rows = await this.#rows(
      'SELECT seq, at_ms, event, detail FROM queue_change_log WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
    return rows.map((r) => ({
      seq: pgInt(r, 'seq'),
      atMs: pgInt(r, 'at_ms'),
      event: pgText(r, 'event'),
      detail: parseDetail(pgText(r, 'detail')),
    }));
  }

  async lastChangeSeq(): Promise<number> {
    return pgInt((await this.#rows('SELECT coalesce(max(seq), 0) AS seq FROM queue_change_log'))[0]!, 'seq');
  }

  onCommit(listener: (id: string) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Lets commits under way finish, hands this node's leases back (others may take the mail at once). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#renewTimer !== null) clearInterval(this.#renewTimer);
    this.#renewTimer = null;
    this.#listeners.clear();
    await this.#listening?.close();
    this.#listening = null;
    while (this.#groupRunning !== null || this.#groupScheduled) {
      await (this.#groupRunning ?? new Promise<void>((resolve) => setImmediate(resolve)));
    }
    if (!this.#claimed) return;
    try {
      await this.#pool.query(
        `UPDATE queue_recipients SET lease_owner = NULL, lease_until = NULL WHERE ${OWN_LEASES_UNLOCKED}`,
        [this.#nodeId],
      );
    } catch (err) {
      this.#log.warn(Events.queueLeasesReleaseFailed, { node: this.#nodeId, err });
    }
  }

  /** Spill files are only ever in-progress bodies: one left untouched this long is a crash's leftover. */
  async #removeOrphans(graceMs: number): Promise<void> {
    // File times come from the file system's clock, so compare with the wall clock, not the injected one.
    const cutoffMs = Date.now() - graceMs;
    for (const name of await readdir(this.#spoolDir)) {
      const path = join(this.#spoolDir, name);
      const info = await stat(path).catch(() => null);
      if (info === null || !info.isFile() || info.mtimeMs > cutoffMs) continue;
      const err = await removeQuietly(this.#fs, path);
      if (err === null)
        this.#log.warn(Events.queueOrphanRemoved, {
          file: name,
          queueId: SORTABLE_ID_PATTERN.test(name) ? name : null,
        });
      else this.#log.warn(Events.queueUnlinkFailed, { file: name, err });
    }
  }
}

/** The rows of messages and recipients, several messages in one statement each (unnest). */
async function insertMessages(client: PgClient, messages: readonly NewMessage[]): Promise<void> {
  await client.query(
    `INSERT INTO queue_messages (id, envelope, size_bytes, prefix, priority, created_ms)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::int[], $6::bigint[])`,
    [
      messages.map((m) => m.id),
      messages.map((m) => m.envelopeJson),
      messages.map((m) => m.sizeBytes),
      messages.map((m) => (m.prefix === null ? null : Buffer.from(m.prefix))),
      messages.map((m) => m.priority),
      messages.map((m) => m.createdMs),
    ],
  );
  const ids: string[] = [];
  const idx: number[] = [];
  const addresses: string[] = [];
  const at: number[] = [];
  for (const m of messages) {
    m.addresses.forEach((address, i) => {
      ids.push(m.id);
      idx.push(i);
      addresses.push(noNul(address));
      at.push(m.firstAttemptMs);
    });
  }
  await client.query(
    `INSERT INTO queue_recipients (message_id, idx, address, status, next_attempt_ms)
     SELECT id, idx, address, 'queued', at FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[])
       AS t (id, idx, address, at)`,
    [ids, idx, addresses, at],
  );
}

/** Small bodies as rows of at most BODY_CHUNK_BYTES, many per INSERT (bytea parameters go binary). */
async function insertInlineBodies(client: PgClient, items: readonly PendingCommit[]): Promise<void> {
  const rows: [string, number, Buffer][] = [];
  for (const p of items) {
    const b = p.body;
    for (let offset = 0, seq = 0; offset < b.byteLength; offset += BODY_CHUNK_BYTES, seq++) {
      const end = Math.min(b.byteLength, offset + BODY_CHUNK_BYTES);
      rows.push([p.message.id, seq, Buffer.from(b.buffer, b.byteOffset + offset, end - offset)]);
    }
  }
  for (let i = 0; i < rows.length; i += CHUNK_ROWS_PER_INSERT) {
    const slice = rows.slice(i, i + CHUNK_ROWS_PER_INSERT);
    await client.query(
      `INSERT INTO queue_body_chunks (message_id, seq, data) VALUES ${slice
        .map((_, j) => `($${3 * j + 1}, $${3 * j + 2}, $${3 * j + 3})`)
        .join(', ')}`,
      slice.flat(),
    );
  }
}

/** A spilled body into rows, read from its file one chunk at a time: never whole in memory. */
async function copyBody(client: PgClient, id: string, path: string, sizeBytes: number): Promise<void> {
  const file = await openFile(path, 'r');
  try {
    // One buffer serves every chunk: each INSERT is done with it before the next read.
    const buffer = Buffer.allocUnsafe(BODY_CHUNK_BYTES);
    let copied = 0;
    for (let seq = 0; ; seq++) {
      let filled = 0;
      while (filled < BODY_CHUNK_BYTES) {
        const { bytesRead } = await file.read(buffer, filled, BODY_CHUNK_BYTES - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) break;
      await client.query('INSERT INTO queue_body_chunks (message_id, seq, data) VALUES ($1, $2, $3)', [
        id,
        seq,
        buffer.subarray(0, filled),
      ]);
      copied += filled;
      if (filled < BODY_CHUNK_BYTES) break;
    }
    if (copied !== sizeBytes)
      throw new Error(`queue ${id}: spill file has ${copied} bytes, not ${sizeBytes}`);
  } finally {
    await file.close();
  }
}

/**
 * What a failed commit throws: 452 4.3.1 when a disk is full (the local spool: ENOSPC, EDQUOT; the
 * server: SQLSTATE 53100 disk_full), else 451 4.3.0 (the server gone, a timeout, a constraint, a bug):
 * the client retries later, and the cause goes to the log with the error.
 */
export function commitError(err: unknown): ReplyError {
  if (err instanceof ReplyError) return err;
  if (isDiskFull(err) || sqlState(err) === '53100')
    return new ReplyError(Replies.insufficientStorage, { cause: err });
  return new ReplyError(Replies.localError, { cause: err });
}

function sqlState(err: unknown): string | null {
  return err instanceof pg.DatabaseError ? (err.code ?? null) : null;
}

/**
 * An error in the rows of one message rather than of the server or the connection: SQLSTATE classes 22
 * (data) and 23 (integrity), and any error raised by a trigger or function (P0). Worth retrying the
 * group's messages one by one; a server failure would only fail each of them again, slowly.
 */
function isRowError(err: unknown): boolean {
  const code = sqlState(err);
  return code !== null && (code.startsWith('22') || code.startsWith('23') || code.startsWith('P0'));
}

/** PostgreSQL text cannot hold NUL: a remote server's reply may (it is kept for the DSN, not parsed). */
function noNul(s: string): string {
  return s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s;
}

/** "a.x, a.y" from "x, y" (columns of a join). */
function prefixed(alias: string, columns: string): string {
  return columns
    .split(',')
    .map((c) => `${alias}.${c.trim()}`)
    .join(', ');
}

/** A change-log detail as stored; a row written by hand that is not an object is kept, wrapped. */
function parseDetail(json: string): Readonly<Record<string, unknown>> {
  try {
    const value: unknown = JSON.parse(json);
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // fall through: shown as stored
  }
  return { detail: json };
}

function toRecipient(r: PgRow): QueuedRecipient {
  const remoteMta = pgTextOrNull(r, 'remote_mta');
  const diagnostic = pgTextOrNull(r, 'diagnostic');
  return {
    index: pgInt(r, 'idx'),
    address: pgText(r, 'address'),
    status: pgText(r, 'status') as RecipientStatus,
    attempts: pgInt(r, 'attempts'),
    nextAttemptMs: pgInt(r, 'next_attempt_ms'),
    lastReply: pgTextOrNull(r, 'last_reply'),
    delayWarned: r['delay_warned'] === true,
    bounceRequested: r['bounce_requested'] === true,
    ...(remoteMta === null ? {} : { remoteMta }),
    ...(diagnostic === null ? {} : { diagnostic }),
  };
}

function toMessage(row: PgRow, recipients: QueuedRecipient[]): QueuedMessage {
  const envelope = JSON.parse(pgText(row, 'envelope')) as Envelope;
  return {
    id: pgText(row, 'id'),
    envelope,
    sizeBytes: pgInt(row, 'size_bytes'),
    recipients,
    held: row['held'] === true,
    arrivalMs: envelope.receivedAtMs,
  };
}

/** Messages from rows of a messages LEFT JOIN recipients ordered by message (null idx: no recipients). */
function toMessages(rows: readonly PgRow[]): QueuedMessage[] {
  const out: QueuedMessage[] = [];
  let current: { row: PgRow; recipients: QueuedRecipient[] } | null = null;
  for (const row of rows) {
    if (current === null || pgText(current.row, 'id') !== pgText(row, 'id')) {
      if (current !== null) out.push(toMessage(current.row, current.recipients));
      current = { row, recipients: [] };
    }
    if (row['idx'] !== null && row['idx'] !== undefined) current.recipients.push(toRecipient(row));
  }
  if (current !== null) out.push(toMessage(current.row, current.recipients));
  return out;
}
