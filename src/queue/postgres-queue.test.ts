// PostgresQueue: the shared queue contract on a fresh schema per test, then what only a shared queue
// has: two nodes claiming from one schema, leases that expire, renew and are handed back, a body read
// from another node, a 100 MiB body streamed in and out with modest memory, and commit failures that
// answer 4xx. Skipped (with the reason) where no PostgreSQL answers.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Clock, LogFields, Logger } from '../core/ports.ts';
import { Replies, ReplyError } from '../core/reply.ts';
import type { PgPool } from '../db/postgres.ts';
import { openPool } from '../db/postgres.ts';
import { faultyStorageFs } from '../db/storage-fs.ts';
import { createTestSchema, postgresSkip } from '../../test/support/postgres.ts';
import type { TestSchema } from '../../test/support/postgres.ts';
import { BODY_CHUNK_BYTES, PostgresQueue } from './postgres-queue.ts';
import type { PostgresQueueOptions } from './postgres-queue.ts';
import type { QueueHarness } from './queue.contract.ts';
import { CONTRACT_NOW_MS, runQueueContract, testEnvelope } from './queue.contract.ts';
import type { QueuedMessage } from './queue.ts';

const skip = await postgresSkip();
const enc = new TextEncoder();

/** A clock the test moves by hand (lease expiry). */
function manualClock(startMs = CONTRACT_NOW_MS): Clock & { advance(ms: number): void } {
  let now = startMs;
  return {
    nowMs: () => now,
    advance(ms) {
      now += ms;
    },
  };
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

async function enqueue(
  queue: PostgresQueue,
  body: Uint8Array,
  envelope = testEnvelope(),
  prefix?: Uint8Array,
): Promise<string> {
  const w = queue.begin();
  for (let i = 0; i < body.byteLength; i += 65_536) await w.write(body.subarray(i, i + 65_536));
  await w.commit(envelope, prefix === undefined ? {} : { prefix });
  return w.id;
}

/** The garbage collector (as --expose-gc gives it), to tell what is live from what awaits collection. */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const ids = (messages: readonly QueuedMessage[]): string[] => messages.map((m) => m.id);

function replyOf(err: unknown): string {
  assert.ok(err instanceof ReplyError, `not a ReplyError: ${String(err)}`);
  return `${err.reply.code} ${err.reply.enhanced}`;
}

const raise = (errcode: string): string =>
  `DO $$ BEGIN RAISE EXCEPTION 'simulated failure' USING ERRCODE = '${errcode}'; END $$`;

if (skip === false) {
  runQueueContract('postgres', async () => {
    const schema = await createTestSchema('queue');
    const pool = openPool({ url: schema.url, schema: schema.schema });
    const spoolDir = await mkdtemp(join(tmpdir(), 'tern-pgqueue-'));
    let full = false;
    let gate: { readonly held: Promise<void>; readonly reached: () => void } | null = null;
    const options: PostgresQueueOptions = {
      pool,
      spoolDir,
      clock: { nowMs: () => CONTRACT_NOW_MS },
      nodeId: 'contract',
      fs: faultyStorageFs(() => full),
      // A full disk on the server: the real SQLSTATE (53100) from the real server, inside the commit.
      beforeCommit: async (client) => {
        if (full) await client.query(raise('disk_full'));
        if (gate !== null) {
          gate.reached();
          await gate.held;
        }
      },
    };
    let queue = await PostgresQueue.open(options);
    let transactionsBefore = 0;
    const harness: QueueHarness = {
      get queue() {
        return queue;
      },
      async reopen() {
        transactionsBefore += queue.commitStats.transactions;
        await queue.close();
        queue = await PostgresQueue.open(options);
        return queue;
      },
      setDiskFull(on) {
        full = on;
      },
      transactions: () => transactionsBefore + queue.commitStats.transactions,
      pauseCommits() {
        let resume = (): void => undefined;
        let reached = (): void => undefined;
        const held = new Promise<void>((r) => (resume = r));
        const reachedPromise = new Promise<void>((r) => (reached = r));
        gate = { held, reached };
        return {
          reached: reachedPromise,
          resume() {
            gate = null;
            resume();
          },
        };
      },
      async cleanup() {
        await queue.close();
        await pool.end();
        await schema.drop();
        await rm(spoolDir, { recursive: true, force: true });
      },
    };
    return harness;
  });
} else {
  void describe('Queue contract: postgres', () => {
    void it('needs PostgreSQL', { skip }, () => undefined);
  });
}

/** One schema, and nodes on it: each with its own pool and spool folder, as separate servers would be. */
interface Cluster {
  readonly schema: TestSchema;
  node(
    nodeId: string,
    extra?: Partial<PostgresQueueOptions>,
  ): Promise<{ queue: PostgresQueue; pool: PgPool; spoolDir: string }>;
  cleanup(): Promise<void>;
}

async function cluster(): Promise<Cluster> {
  const schema = await createTestSchema('queue');
  const open: { queue: PostgresQueue; pool: PgPool; spoolDir: string }[] = [];
  return {
    schema,
    async node(nodeId, extra = {}) {
      const pool = openPool({ url: schema.url, schema: schema.schema });
      const spoolDir = await mkdtemp(join(tmpdir(), 'tern-pgqueue-'));
      const queue = await PostgresQueue.open({
        pool,
        spoolDir,
        clock: { nowMs: () => CONTRACT_NOW_MS },
        nodeId,
        ...extra,
      });
      const n = { queue, pool, spoolDir };
      open.push(n);
      return n;
    },
    async cleanup() {
      for (const n of open) {
        await n.queue.close();
        await n.pool.end().catch(() => undefined); // a test may have ended it
        await rm(n.spoolDir, { recursive: true, force: true });
      }
      await schema.drop();
    },
  };
}

void describe('PostgresQueue specifics', { skip }, () => {
  const withCluster = (title: string, fn: (c: Cluster) => Promise<void>): void => {
    void it(title, async () => {
      const c = await cluster();
      try {
        await fn(c);
      } finally {
        await c.cleanup();
      }
    });
  };

  withCluster('two nodes never get the same message from due() at the same time', async (c) => {
    const clock = manualClock();
    const a = (await c.node('node-a', { clock })).queue;
    const b = (await c.node('node-b', { clock })).queue;
    const all = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        enqueue(
          i % 2 === 0 ? a : b,
          enc.encode(`m${i}`),
          testEnvelope([`r${i}@example.org`, 'jürgen@example.org']),
        ),
      ),
    );
    // A storm of concurrent looks from both nodes: whatever each got, the other did not.
    const storm = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).due(clock.nowMs(), 4)),
    );
    const gotA = new Set(storm.filter((_, i) => i % 2 === 0).flatMap(ids));
    const gotB = new Set(storm.filter((_, i) => i % 2 === 1).flatMap(ids));
    assert.ok(gotA.size > 0 && gotB.size > 0);
    assert.deepEqual(
      [...gotA].filter((id) => gotB.has(id)),
      [],
    );
    // Each node then drains the rest as its worker would (skipping what it holds): every message once.
    for (;;) {
      const [nextA, nextB] = await Promise.all([
        a.due(clock.nowMs(), 3, gotA),
        b.due(clock.nowMs(), 3, gotB),
      ]);
      if (nextA.length === 0 && nextB.length === 0) break;
      for (const m of nextA) gotA.add(m.id);
      for (const m of nextB) gotB.add(m.id);
      assert.deepEqual(
        [...gotA].filter((id) => gotB.has(id)),
        [],
      );
    }
    assert.equal(gotA.size + gotB.size, all.length);
    assert.deepEqual([...gotA, ...gotB].sort(), [...all].sort());
    // Each got every due recipient of what it took, and its own mail again when it looks without skipping.
    const again = await a.due(clock.nowMs(), 100);
    assert.deepEqual(ids(again).sort(), [...gotA].sort());
    assert.ok(again.every((m) => m.recipients.length === 2));
  });

  withCluster('a lease expires and another node takes the message; settle clears a lease', async (c) => {
    const clock = manualClock();
    const a = (await c.node('node-a', { clock })).queue;
    const b = (await c.node('node-b', { clock })).queue;
    const id = await enqueue(a, enc.encode('x'));
    assert.deepEqual(ids(await a.due(clock.nowMs(), 10)), [id]);
    assert.deepEqual(await b.due(clock.nowMs(), 10), []);
    // node-a "crashed": it renews nothing (its timer runs every 20 s of real time, not in this test).
    clock.advance(59_999);
    assert.deepEqual(await b.due(clock.nowMs(), 10), [], 'the lease still runs');
    clock.advance(1);
    assert.deepEqual(ids(await b.due(clock.nowMs(), 10)), [id], 'expired: node-b takes it');
    assert.deepEqual(await a.due(clock.nowMs(), 10), [], 'and now node-a may not');
    await b.settle(id, 0, { status: 'delivered', reply: '250 2.0.0 ok' });
    assert.equal(await a.get(id), null);

    // settle() ends the lease of the recipient it settles; the message is free once none is left.
    const two = await enqueue(a, enc.encode('y'), testEnvelope(['1@example.org', '日本@example.org']));
    assert.deepEqual(ids(await a.due(clock.nowMs(), 10)), [two]);
    const later = { status: 'deferred', reply: '451 4.4.1 later', nextAttemptMs: clock.nowMs() } as const;
    await a.settle(two, 0, later);
    assert.deepEqual(await b.due(clock.nowMs(), 10), [], 'recipient 1 is still leased to node-a');
    await a.settle(two, 1, later);
    const taken = await b.due(clock.nowMs(), 10);
    assert.deepEqual(
      taken.map((m) => [m.id, m.recipients.map((r) => [r.index, r.attempts])]),
      [
        [
          two,
          [
            [0, 1],
            [1, 1],
          ],
        ],
      ],
    );
  });

  withCluster('concurrent settles of one message from two nodes: the last one removes it', async (c) => {
    const a = (await c.node('node-a')).queue;
    const b = (await c.node('node-b')).queue;
    const rcpts = Array.from({ length: 8 }, (_, i) => `${i}@example.org`);
    for (let round = 0; round < 5; round++) {
      const id = await enqueue(a, enc.encode('x'), testEnvelope(rcpts));
      await Promise.all(
        rcpts.map((_, i) =>
          (i % 2 === 0 ? a : b).settle(id, i, { status: 'delivered', reply: '250 2.0.0 ok' }),
        ),
      );
      assert.equal(await b.get(id), null, 'no message is left without a pending recipient');
    }
    assert.deepEqual(await a.list(), []);
  });

  withCluster('a running node renews its leases; close() hands them back at once', async (c) => {
    const clock = manualClock();
    let renewed: (() => void) | null = null;
    const logger: Logger = {
      event: () => undefined,
      warn: () => undefined,
      error: () => undefined,
      debug(name: string, _fields?: LogFields) {
        if (name === 'queue.lease.renewed' && renewed !== null) renewed();
      },
      child: () => logger,
    };
    const a = (await c.node('node-a', { clock, logger, leaseRenewMs: 10 })).queue;
    const b = (await c.node('node-b', { clock })).queue;
    const id = await enqueue(a, enc.encode('x'));
    assert.deepEqual(ids(await a.due(clock.nowMs(), 10)), [id]);
    clock.advance(50_000);
    // A renewal that read the advanced clock: the lease now runs to +110 s.
    await new Promise<void>((resolve) => (renewed = resolve));
    await new Promise<void>((resolve) => (renewed = resolve));
    renewed = null;
    clock.advance(50_000);
    assert.deepEqual(await b.due(clock.nowMs(), 10), [], 'renewed past the first lease');
    await a.close();
    assert.deepEqual(ids(await b.due(clock.nowMs(), 10)), [id], 'handed back by close()');
  });

  withCluster('a message committed on one node reads back on another; no spill file stays', async (c) => {
    const a = await c.node('node-a');
    const b = (await c.node('node-b')).queue;
    const body = randomBytes(1_000_003);
    const prefix = enc.encode('Authentication-Results: mx.example.org; spf=pass\r\n');
    const env = testEnvelope(['jürgen@example.org', '日本@example.org']);
    const w = a.queue.begin();
    for (let i = 0; i < body.byteLength; i += 100_000) await w.write(body.subarray(i, i + 100_000));
    assert.deepEqual(await readdir(a.spoolDir), [w.id], 'spooled locally while it arrives');
    await w.commit(env, { prefix });
    assert.deepEqual(await readdir(a.spoolDir), [], 'the spill file goes once the body is in the database');
    const m = await b.get(w.id);
    assert.deepEqual(m?.envelope, env);
    assert.equal(m?.sizeBytes, body.byteLength + prefix.byteLength);
    assert.deepEqual(ids(await b.list()), [w.id]);
    assert.ok((await readAll(b.readBody(w.id))).equals(Buffer.concat([prefix, body])));
    assert.equal(await b.bodyFile(w.id), null, 'no local file to link');
    const chunks = await a.pool.query<{ n: string; largest: number }>(
      'SELECT count(*) AS n, max(octet_length(data)) AS largest FROM queue_body_chunks WHERE message_id = $1',
      [w.id],
    );
    assert.deepEqual(chunks.rows[0], { n: '4', largest: BODY_CHUNK_BYTES });

    const aborted = a.queue.begin();
    await aborted.write(randomBytes(300_000));
    await aborted.abort();
    assert.deepEqual(await readdir(a.spoolDir), []);
  });

  withCluster('a 100 MiB body streams in and out (256 KiB rows), never whole in memory', async (c) => {
    const a = (await c.node('node-a')).queue;
    const b = (await c.node('node-b')).queue;
    const chunk = randomBytes(64 * 1024);
    // rss counts garbage not yet collected too (each 256 KiB row passes through a few buffers and hex
    // strings); what is live after a collection is what the queue holds on to.
    const gc = exposeGc();
    gc();
    const base = process.memoryUsage();
    let rssPeak = 0;
    let livePeak = 0;
    const rssSampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss - base.rss);
    }, 5);
    const liveSampler = setInterval(() => {
      gc();
      const now = process.memoryUsage();
      livePeak = Math.max(livePeak, now.heapUsed + now.arrayBuffers - base.heapUsed - base.arrayBuffers);
    }, 50);
    const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    try {
      const w = a.begin();
      for (let i = 0; i < 1600; i++) await w.write(chunk);
      const startedMs = performance.now();
      await w.commit(testEnvelope());
      const commitMs = performance.now() - startedMs;
      const liveWriting = livePeak;
      let size = 0;
      let pieces = 0;
      let mismatch = 0;
      const readStartMs = performance.now();
      for await (const piece of b.readBody(w.id)) {
        // Every piece starts on a 64 KiB boundary of a body that is `chunk` over and over.
        for (let o = 0; o < piece.byteLength; o += chunk.byteLength) {
          if (!Buffer.from(piece.buffer, piece.byteOffset + o, chunk.byteLength).equals(chunk)) mismatch++;
        }
        size += piece.byteLength;
        pieces++;
      }
      const readMs = performance.now() - readStartMs;
      assert.equal(size, 100 * 1024 * 1024);
      assert.equal(mismatch, 0);
      assert.equal(pieces, 1600, 'read back as a stream of 64 KiB pieces, not one buffer');
      assert.equal((await b.get(w.id))?.sizeBytes, 100 * 1024 * 1024);
      console.log(
        `100 MiB body: commit ${commitMs.toFixed(0)} ms, read ${readMs.toFixed(0)} ms; ` +
          `peak growth: rss ${mib(rssPeak)}, live (heap + buffers after GC) ${mib(livePeak)} ` +
          `(${mib(liveWriting)} while writing and committing)`,
      );
      // Measured here: about 4 MiB live while writing and committing, 8-25 MiB while reading (the same
      // with a 300 MiB body: nothing grows with its size); a body held whole would be 100 MiB and more.
      assert.ok(livePeak < 40 * 1024 * 1024, `${mib(livePeak)} live for a 100 MiB body`);
      assert.ok(rssPeak < 64 * 1024 * 1024, `rss grew by ${mib(rssPeak)} for a 100 MiB body`);
    } finally {
      clearInterval(rssSampler);
      clearInterval(liveSampler);
    }
  });

  withCluster(
    'commit failures answer 4xx and leave nothing; one bad message does not fail its group',
    async (c) => {
      let serverError: string | null = null;
      const a = await c.node('node-a', {
        beforeCommit: async (client) => {
          if (serverError !== null) await client.query(raise(serverError));
        },
      });
      const q = a.queue;
      await a.pool.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF NEW.address = 'refused@example.org' THEN
          RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse BEFORE INSERT ON queue_recipients FOR EACH ROW EXECUTE FUNCTION refuse()`);
      const outcomes = await Promise.allSettled(
        ['1@example.org', 'refused@example.org', '2@example.org', '3@example.org'].map((r) =>
          enqueue(q, enc.encode(`to ${r}`), testEnvelope([r])),
        ),
      );
      assert.deepEqual(
        outcomes.map((o) => (o.status === 'fulfilled' ? 'ok' : replyOf(o.reason))),
        ['ok', '451 4.3.0', 'ok', 'ok'],
      );
      assert.deepEqual(
        (await q.list()).map((m) => m.recipients[0]?.address),
        ['1@example.org', '2@example.org', '3@example.org'],
      );

      for (const [errcode, reply] of [
        ['disk_full', '452 4.3.1'],
        ['admin_shutdown', '451 4.3.0'],
        ['serialization_failure', '451 4.3.0'],
      ] as const) {
        serverError = errcode;
        for (const body of [enc.encode('small'), randomBytes(500_000)]) {
          const w = q.begin();
          await w.write(body);
          const err: unknown = await w.commit(testEnvelope()).then(
            () => null,
            (e: unknown) => e,
          );
          assert.equal(replyOf(err), reply, errcode);
          assert.equal(await q.get(w.id), null);
        }
      }
      serverError = null;
      assert.equal((await q.list()).length, 3);
      assert.deepEqual(await readdir(a.spoolDir), []);

      // The database gone (here: its pool ended under the queue): 451, and the spill file is removed.
      const gone = await c.node('node-gone');
      const w = gone.queue.begin();
      await w.write(randomBytes(200_000));
      await gone.pool.end();
      const err: unknown = await w.commit(testEnvelope()).then(
        () => null,
        (e: unknown) => e,
      );
      assert.equal(replyOf(err), '451 4.3.0');
      assert.equal(err instanceof ReplyError && err.reply === Replies.localError, true);
      assert.deepEqual(await readdir(gone.spoolDir), []);
    },
  );

  withCluster('after close, calls reject; the pool stays open for its owner', async (c) => {
    const { queue: q, pool } = await c.node('node-a');
    await q.close();
    await q.close();
    await assert.rejects(q.get('X'));
    await assert.rejects(q.list());
    await assert.rejects(q.due(0, 1));
    await assert.rejects(q.settle('X', 0, { status: 'delivered', reply: '250 ok' }));
    await assert.rejects(q.hold('X'));
    await assert.rejects(q.flush());
    await assert.rejects(q.remove('X'));
    await assert.rejects(q.markDelayWarned('X', 0));
    await assert.rejects(q.changeCounter());
    await assert.rejects(q.bodyFile('X'));
    await assert.rejects(readAll(q.readBody('X')));
    assert.throws(() => q.begin(), /closed/);
    assert.equal((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
  });

  withCluster('a reply with a NUL octet is kept (as U+FFFD): PostgreSQL text cannot hold NUL', async (c) => {
    const q = (await c.node('node-a')).queue;
    const id = await enqueue(q, enc.encode('x'));
    await q.settle(id, 0, {
      status: 'deferred',
      reply: '451 4.4.1 odd\u0000reply',
      nextAttemptMs: CONTRACT_NOW_MS,
      remoteMta: 'mx.example.org',
      diagnostic: '451 odd\u0000reply',
    });
    const r = (await q.get(id))?.recipients[0];
    assert.deepEqual([r?.lastReply, r?.diagnostic], ['451 4.4.1 odd\uFFFDreply', '451 odd\uFFFDreply']);
  });
});
