// The PostgreSQL mailbox store: the MailboxStore and ImapMailboxStore contracts (each case on a fresh
// schema, dropped after it), then what only this store does: two nodes on one schema delivering to one
// mailbox at once, a change on one node waking a watcher on the other (LISTEN/NOTIFY), content-addressed
// blobs shared and reference-counted, abandoned uploads swept, and a 100 MiB message streamed both ways.
// Skipped with the reason when no PostgreSQL answers (test/support/postgres.ts).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createTestSchema, postgresSkip } from '../../test/support/postgres.ts';
import type { TestSchema } from '../../test/support/postgres.ts';
import type { PgPool } from '../db/postgres.ts';
import { openPool, pgInt } from '../db/postgres.ts';
import { runImapMailboxStoreContract, runMailboxStoreContract } from './mailbox-store.contract.ts';
import type { DeliverRequest, FolderEvent, FolderListEvent } from './mailbox-store.ts';
import { CHUNK_BYTES } from './postgres-mailbox-blobs.ts';
import type { PostgresMailboxStoreOptions } from './postgres-mailbox-store.ts';
import { PostgresMailboxStore } from './postgres-mailbox-store.ts';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const skip = await postgresSkip();

type Query = (text: string, values?: unknown[]) => Promise<unknown>;

/**
 * The pool as a full disk shows it: while full() every INSERT, UPDATE and DELETE fails as PostgreSQL's
 * does (SQLSTATE 53100), on the pool and on the connections it lends.
 */
function faultyPool(pool: PgPool, full: () => boolean): PgPool {
  const writes = /^\s*(INSERT|UPDATE|DELETE)\b/i;
  const guard =
    (query: Query): Query =>
    (text, values) =>
      full() && writes.test(text)
        ? Promise.reject(
            Object.assign(new Error('could not extend file: No space left on device'), { code: '53100' }),
          )
        : query(text, values);
  const pass = (target: object, prop: string | symbol): unknown => {
    const v: unknown = Reflect.get(target, prop, target);
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  };
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'query') return guard(target.query.bind(target));
      if (prop === 'connect') {
        return async () => {
          const client = await target.connect();
          return new Proxy(client, {
            get(c, p) {
              return p === 'query' ? guard(c.query.bind(c)) : pass(c, p);
            },
          });
        };
      }
      return pass(target, prop);
    },
  });
}

/** A fresh schema with a pool on it (and a second pool, another node's), all removed by drop(). */
async function freshSchema(): Promise<{ pool: PgPool; other: PgPool; drop: () => Promise<void> }> {
  const schema: TestSchema = await createTestSchema('mbx');
  const pool = openPool({ url: schema.url, schema: schema.schema, max: 6 });
  const other = openPool({ url: schema.url, schema: schema.schema, max: 6 });
  return {
    pool,
    other,
    async drop() {
      await pool.end();
      await other.end();
      await schema.drop();
    },
  };
}

runMailboxStoreContract(
  'postgres',
  async () => {
    const db = await freshSchema();
    let full = false;
    const options: PostgresMailboxStoreOptions = {
      pool: faultyPool(db.pool, () => full),
      clock: { nowMs: () => T0 },
      listen: false,
    };
    let store = await PostgresMailboxStore.open(options);
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = await PostgresMailboxStore.open(options);
        return store;
      },
      setDiskFull(on) {
        full = on;
      },
      async cleanup() {
        await store.close();
        await db.drop();
      },
    };
  },
  { skip, lazyRead: true },
);

runImapMailboxStoreContract(
  'postgres',
  async () => {
    const db = await freshSchema();
    let nowMs = T0;
    const clock = { nowMs: () => nowMs };
    const options: PostgresMailboxStoreOptions = { pool: db.pool, clock };
    let store = await PostgresMailboxStore.open(options);
    const others: PostgresMailboxStore[] = [];
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = await PostgresMailboxStore.open(options);
        return store;
      },
      // Another node: its own pool on the same schema.
      async openOther() {
        const other = await PostgresMailboxStore.open({ pool: db.other, clock });
        others.push(other);
        return other;
      },
      setNowMs(ms) {
        nowMs = ms;
      },
      async cleanup() {
        await store.close();
        for (const o of others) await o.close();
        await db.drop();
      },
    };
  },
  { skip },
);

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function* chunked(bytes: Uint8Array, size = 65_536): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) {
    await tick();
    yield bytes.subarray(i, i + size);
  }
}

function req(user: string, bytes: Uint8Array, key: string, mailbox = 'INBOX'): DeliverRequest {
  return {
    user,
    mailbox,
    internalDateMs: T0,
    flags: [],
    deliveryKey: key,
    summary: { from: '', subject: '', date: '' },
    content: chunked(bytes),
  };
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

async function count(pool: PgPool, sql: string, values: unknown[] = []): Promise<number> {
  const r = await pool.query(sql, values);
  return pgInt(r.rows[0] as Record<string, unknown>, 'n');
}

async function waitUntil(done: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('PostgresMailboxStore specifics', { skip }, () => {
  let db: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    db = await freshSchema();
  });
  after(async () => {
    await db.drop();
  });

  /** Each test its own users: the schema is shared by the tests of this suite. */
  let n = 0;
  const user = (name: string): string => `${name}-${++n}@example.org`;

  it('two nodes delivering to one mailbox at once never share a UID', async () => {
    const a = await PostgresMailboxStore.open({ pool: db.pool, clock: { nowMs: () => T0 }, listen: false });
    const b = await PostgresMailboxStore.open({ pool: db.other, clock: { nowMs: () => T0 }, listen: false });
    try {
      const owner = user('race');
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          (i % 2 === 0 ? a : b).deliver(req(owner, Buffer.from(`message ${i}`), `race-${owner}-${i}`)),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.uid).sort((x, y) => x - y),
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      const status = await b.status(owner, 'INBOX');
      assert.deepEqual(
        status && [status.messages, status.uidNext, status.highestModseq],
        [100, 101, 101],
        'one modseq per delivery',
      );
      for (const [i, r] of results.entries()) {
        const m = await (i % 2 === 0 ? b : a).openMessage(owner, 'INBOX', r.uid);
        assert.equal((await readAll(m!.content)).toString(), `message ${i}`);
      }
      // The first delivery made the folder on one node while the other raced it: one folder, one UIDVALIDITY.
      assert.equal(
        await count(db.pool, 'SELECT count(*) AS n FROM mail_folders WHERE owner = $1', [owner]),
        1,
      );
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a change on one node reaches watchers on another within a second (LISTEN/NOTIFY)', async () => {
    const a = await PostgresMailboxStore.open({ pool: db.pool, clock: { nowMs: () => T0 } });
    const b = await PostgresMailboxStore.open({ pool: db.other, clock: { nowMs: () => T0 } });
    try {
      for (const owner of [user('feed'), user('jürgen'), user('日本')]) {
        await a.ensureDefaults(owner);
        const events: FolderEvent[] = [];
        const listEvents: FolderListEvent[] = [];
        const stopWatch = b.watch(owner, 'INBOX', (e) => events.push(e));
        const stopList = b.watchFolderList(owner, (e) => listEvents.push(e));
        const startedMs = Date.now();
        await a.deliver(req(owner, randomBytes(100), `feed-${owner}`));
        await waitUntil(() => events.length > 0, 1000);
        assert.ok(Date.now() - startedMs < 1000, `took ${Date.now() - startedMs} ms`);
        assert.deepEqual(events, [{ kind: 'changed', highestModseq: 2, uidNext: 2, messages: 1 }]);
        await a.createFolder(owner, 'Läden');
        await waitUntil(() => listEvents.length > 0, 1000);
        assert.deepEqual(listEvents, [{ kind: 'created', name: 'Läden' }]);
        // A delete far away is the end of the selection here.
        const gone: FolderEvent[] = [];
        const stopGone = b.watch(owner, 'Läden', (e) => gone.push(e));
        await new Promise((r) => setTimeout(r, 50));
        await a.deleteFolder(owner, 'Läden');
        await waitUntil(() => gone.length > 0, 1000);
        assert.deepEqual(gone, [{ kind: 'gone' }]);
        stopGone();
        stopWatch();
        stopList();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a node does not hear another schema', async () => {
    const elsewhere = await freshSchema();
    const a = await PostgresMailboxStore.open({ pool: db.pool, clock: { nowMs: () => T0 } });
    const b = await PostgresMailboxStore.open({ pool: elsewhere.pool, clock: { nowMs: () => T0 } });
    try {
      const owner = user('schema');
      await b.ensureDefaults(owner);
      const events: FolderEvent[] = [];
      const stop = b.watch(owner, 'INBOX', (e) => events.push(e));
      // The same name in both schemas; a's delivery must not wake b, b's own delivery does.
      await a.deliver(req(owner, Buffer.from('here'), `schema-a-${owner}`));
      await b.deliver(req(owner, Buffer.from('there'), `schema-b-${owner}`));
      assert.deepEqual(events, [{ kind: 'changed', highestModseq: 2, uidNext: 2, messages: 1 }]);
      stop();
    } finally {
      await a.close();
      await b.close();
      await elsewhere.drop();
    }
  });

  it('one blob per content: shared by copies, counted, reclaimed after the grace period', async () => {
    let nowMs = T0;
    const store = await PostgresMailboxStore.open({
      pool: db.pool,
      clock: { nowMs: () => nowMs },
      listen: false,
      reclaimGraceMs: 60_000,
      reclaimIntervalMs: 0,
    });
    const dir = await mkdtemp(join(tmpdir(), 'tern-pg-accepted-'));
    try {
      const body = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), randomBytes(CHUNK_BYTES * 2 + 17)]);
      const sha256 = createHash('sha256').update(body).digest();
      const path = join(dir, 'spool');
      await writeFile(path, body);
      const owners = [user('c1'), user('c2'), user('c3')];
      const copies = owners.map((o, i) => ({
        user: o,
        mailbox: 'INBOX',
        deliveryKey: `accepted-${o}-${i}`,
        flags: [],
        head: Buffer.from(`Delivered-To: ${o}\r\n`),
        structure: null,
      }));
      const accepted = {
        body: { kind: 'file', path, sizeBytes: body.byteLength } as const,
        internalDateMs: T0,
        summary: { from: '', subject: 'big', date: '' },
        copies,
      };
      await store.deliverAccepted(accepted);
      const blob = async (): Promise<{ refs: number; chunks: number } | null> => {
        const r = await db.pool.query(
          `SELECT refs, (SELECT count(*) FROM mail_blob_chunks c WHERE c.blob_id = b.id) AS chunks
           FROM mail_blobs b WHERE sha256 = $1`,
          [sha256],
        );
        const row = r.rows[0] as Record<string, unknown> | undefined;
        return row === undefined ? null : { refs: pgInt(row, 'refs'), chunks: pgInt(row, 'chunks') };
      };
      assert.deepEqual(
        await blob(),
        { refs: 3, chunks: 3 },
        'stored once for three owners, in 256 KiB chunks',
      );
      // The same bytes delivered independently share it too, and no upload is left behind.
      await store.deliver(req(owners[0]!, body, `independent-${owners[0]}`));
      assert.deepEqual(await blob(), { refs: 4, chunks: 3 });
      assert.equal(await count(db.pool, 'SELECT count(*) AS n FROM mail_blobs WHERE sha256 IS NULL'), 0);
      await store.createFolder(owners[0]!, 'Kopie');
      await store.copy(owners[0]!, 'INBOX', [1, 2], 'Kopie');
      assert.equal((await blob())?.refs, 6, 'a COPY references the body again');
      await store.move(owners[0]!, 'Kopie', [1, 2], 'INBOX');
      assert.equal((await blob())?.refs, 6, 'a MOVE hands its references over');
      const whole = Buffer.concat([copies[1]!.head, body]);
      assert.ok((await readAll((await store.openMessage(owners[1]!, 'INBOX', 1))!.content)).equals(whole));

      await store.deleteFolder(owners[0]!, 'Kopie');
      await store.expunge(owners[0]!, 'INBOX', [1, 2, 3, 4]);
      await store.expunge(owners[1]!, 'INBOX', [1]);
      // Opened before the last reference goes: still reads whole.
      const open = await store.openMessage(owners[2]!, 'INBOX', 1);
      await store.expunge(owners[2]!, 'INBOX', [1]);
      assert.deepEqual(await blob(), { refs: 0, chunks: 3 }, 'kept for the grace period');
      assert.equal(await store.reclaim(), 0);
      assert.ok((await readAll(open!.content)).equals(Buffer.concat([copies[2]!.head, body])));
      nowMs += 60_000;
      assert.ok((await store.reclaim()) >= 1);
      assert.equal(await blob(), null, 'gone once unused for the grace period');
      assert.equal(
        await count(
          db.pool,
          'SELECT count(*) AS n FROM mail_blob_chunks c WHERE NOT EXISTS (SELECT 1 FROM mail_blobs b WHERE b.id = c.blob_id)',
        ),
        0,
      );
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('without a grace period a body goes with the last message using it', async () => {
    const store = await PostgresMailboxStore.open({
      pool: db.pool,
      clock: { nowMs: () => T0 },
      listen: false,
      reclaimGraceMs: 0,
    });
    try {
      const owner = user('nograce');
      const body = randomBytes(CHUNK_BYTES + 1);
      const sha256 = createHash('sha256').update(body).digest();
      await store.deliver(req(owner, body, `nograce-${owner}`));
      await store.deliver(req(owner, Buffer.from('small'), `nograce-small-${owner}`));
      const blobs = (): Promise<number> =>
        count(db.pool, 'SELECT count(*) AS n FROM mail_blobs WHERE sha256 = $1', [sha256]);
      assert.equal(await blobs(), 1);
      await store.expunge(owner, 'INBOX', [1]);
      assert.equal(await blobs(), 0);
      assert.equal((await store.status(owner, 'INBOX'))?.messages, 1);
    } finally {
      await store.close();
    }
  });

  it('a failed upload leaves nothing; one a crash abandoned is swept after stagingMaxAgeMs', async () => {
    let nowMs = T0;
    const store = await PostgresMailboxStore.open({
      pool: db.pool,
      clock: { nowMs: () => nowMs },
      listen: false,
      reclaimIntervalMs: 0,
      stagingMaxAgeMs: 3_600_000,
    });
    try {
      const owner = user('fail');
      const staged = (): Promise<number> =>
        count(db.pool, 'SELECT count(*) AS n FROM mail_blobs WHERE sha256 IS NULL');
      const before = await staged();
      async function* broken(): AsyncIterable<Uint8Array> {
        await tick();
        yield randomBytes(CHUNK_BYTES * 2);
        throw new Error('connection lost');
      }
      await assert.rejects(
        store.deliver({ ...req(owner, Buffer.alloc(0), `fail-${owner}`), content: broken() }),
        /connection lost/,
      );
      assert.equal(await staged(), before);
      assert.equal(await store.status(owner, 'INBOX'), null);
      // What a crash in the middle of an upload leaves: a staging row with a chunk.
      const r = await db.pool.query('INSERT INTO mail_blobs (staged_ms) VALUES ($1) RETURNING id', [T0]);
      const id = pgInt(r.rows[0] as Record<string, unknown>, 'id');
      await db.pool.query('INSERT INTO mail_blob_chunks (blob_id, seq, data) VALUES ($1, 0, $2)', [
        id,
        randomBytes(10),
      ]);
      assert.equal(await store.reclaim(), 0, 'an upload may still be running');
      nowMs += 3_600_000;
      assert.equal(await store.reclaim(), 1);
      assert.equal(
        await count(db.pool, 'SELECT count(*) AS n FROM mail_blob_chunks WHERE blob_id = $1', [id]),
        0,
      );
    } finally {
      await store.close();
    }
  });

  it('a 100 MiB message streams in and out without being held in memory', async () => {
    const store = await PostgresMailboxStore.open({
      pool: db.pool,
      clock: { nowMs: () => T0 },
      listen: false,
    });
    const owner = user('huge');
    const total = 100 * 1024 * 1024;
    const block = randomBytes(1024 * 1024);
    // Distinct content per MiB (a counter in front), made as it is read: the test holds none of it.
    async function* huge(): AsyncIterable<Uint8Array> {
      for (let mib = 0; mib < total / block.byteLength; mib++) {
        await tick();
        const b = Buffer.from(block);
        b.writeUInt32BE(mib, 0);
        for (let i = 0; i < b.byteLength; i += 64 * 1024) yield b.subarray(i, i + 64 * 1024);
      }
    }
    const expected = createHash('sha256');
    for await (const c of huge()) expected.update(c);
    const digest = expected.digest('hex');
    // What is live, not what awaits collection: the driver makes a fresh buffer per chunk sent, and V8
    // collects those only after some 64 MiB of them (RSS then rises by ~50 MiB whatever the size). A
    // collection before each sample leaves what the transfer holds; growth in proportion to the size
    // would show here.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      gc();
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 25);
    try {
      const r = await store.deliver({ ...req(owner, Buffer.alloc(0), `huge-${owner}`), content: huge() });
      const m = await store.openMessage(owner, 'INBOX', r.uid);
      assert.equal(m?.sizeBytes, total);
      const got = createHash('sha256');
      let largest = 0;
      for await (const c of m.content) {
        got.update(c);
        largest = Math.max(largest, c.byteLength);
      }
      assert.equal(got.digest('hex'), digest, 'read back byte-exact');
      assert.ok(largest <= CHUNK_BYTES, `chunks of at most 256 KiB (largest ${largest})`);
      const part = await store.openRange(owner, 'INBOX', r.uid, { start: total - 10, end: total + 5 });
      assert.equal((await readAll(part!.content)).byteLength, 10);
      peak = Math.max(peak, process.memoryUsage().rss);
      const growth = peak - baseline;
      assert.ok(
        growth < 40 * 1024 * 1024,
        `RSS grew ${Math.round(growth / 1024 / 1024)} MiB for a 100 MiB message`,
      );
    } finally {
      clearInterval(sampler);
      await store.close();
    }
  });
});
