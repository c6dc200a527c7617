// The Queue contract: what every implementation (sqlite-queue.ts, postgres-queue.ts) must do,
// as one node:test suite each implementation's test file runs with its own harness. Covers durability
// across a restart, invisibility before commit, abort, large bodies byte-exact, group commit, the
// per-recipient lifecycle (due → settle → removal), listeners, a full disk (452 4.3.1, nothing left),
// and the operator's steering: hold/release, remove, flush, bounceNow, delay-warned flags, the remote
// detail kept for DSNs, and the change counter a running server polls.
// Not here: implementation details (spool file names, transaction internals): those are in the
// implementation's own test file.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Envelope } from '../core/envelope.ts';
import { Replies, ReplyError } from '../core/reply.ts';
import type { Queue } from './queue.ts';
import { CHANGE_LOG_KEEP, OPERATOR_BOUNCE_REPLY } from './queue.ts';

export interface QueueHarness {
  readonly queue: Queue;
  /** Close the current instance and open a new one on the same storage, as after a restart. */
  reopen(): Promise<Queue>;
  /** Simulate a full disk: every write (body and database) fails while on. */
  setDiskFull(full: boolean): void;
  /** Transactions (fsyncs) used so far by commits and settles, to measure group commit. */
  transactions(): number;
  /** Close whatever is open and remove the storage. */
  cleanup(): Promise<void>;
  /**
   * Optional, for a backend whose commit is asynchronous (a database server): hold commits at the last
   * step before they become durable, their rows written but not committed. `reached` resolves once one
   * is held there; `resume()` lets every held commit go on. Without it, "nothing is visible before
   * commit" relies on the commit not finishing before the next read (true of a synchronous database).
   */
  pauseCommits?(): { readonly reached: Promise<void>; resume(): void };
}

/** The harness clock reads this; tests of due() pass times relative to it. */
export const CONTRACT_NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);

export function testEnvelope(
  recipients: readonly string[] = ['alice@example.org'],
  sender = 'bob@example.net',
): Envelope {
  return {
    sender,
    body: '8BITMIME',
    smtputf8: false,
    ret: null,
    envid: 'env-1',
    recipients: recipients.map((address) => ({ address, notify: null, orcpt: null })),
    client: {
      ip: '192.0.2.1',
      port: 40000,
      hostname: null,
      helo: 'client.example.net',
      esmtp: true,
      tls: null,
      authUser: null,
      service: 'smtp',
    },
    receivedAtMs: CONTRACT_NOW_MS,
  };
}

const enc = new TextEncoder();

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

async function enqueue(
  queue: Queue,
  body: Uint8Array,
  envelope = testEnvelope(),
  chunkBytes = 65_536,
): Promise<string> {
  const w = queue.begin();
  for (let i = 0; i < body.byteLength; i += chunkBytes) await w.write(body.subarray(i, i + chunkBytes));
  await w.commit(envelope);
  return w.id;
}

function isInsufficientStorage(err: unknown): boolean {
  return err instanceof ReplyError && err.reply === Replies.insufficientStorage;
}

export function runQueueContract(name: string, make: () => Promise<QueueHarness>): void {
  void describe(`Queue contract: ${name}`, () => {
    const withHarness = (title: string, fn: (h: QueueHarness) => Promise<void>): void => {
      void it(title, async () => {
        const h = await make();
        try {
          await fn(h);
        } finally {
          await h.cleanup();
        }
      });
    };

    withHarness(
      'stats count messages, held ones, recipients by status and pending messages by age',
      async (h) => {
        const empty = await h.queue.stats(CONTRACT_NOW_MS);
        assert.deepEqual(empty, {
          messages: 0,
          held: 0,
          recipients: { queued: 0, deferred: 0, delivered: 0, bounced: 0 },
          pendingByAge: { '5m': 0, '1h': 0, '1d': 0, older: 0 },
          oldestPendingMs: null,
        });
        const a = await enqueue(
          h.queue,
          enc.encode('a\r\n'),
          testEnvelope(['x@example.org', 'jürgen@example.org']),
        );
        const b = await enqueue(
          h.queue,
          enc.encode('b\r\n'),
          testEnvelope(['日本@example.org', 'y@example.org']),
        );
        await h.queue.settle(a, 0, { status: 'delivered', reply: '250 ok' });
        await h.queue.settle(b, 0, { status: 'bounced', reply: '550 no' });
        assert.equal(await h.queue.hold(a), true);
        const created = (await h.queue.get(a))!.arrivalMs;
        // Two hours on: each still has a pending recipient (a message leaves the queue when none is left).
        const later = await h.queue.stats(created + 2 * 3_600_000);
        assert.equal(later.messages, 2);
        assert.equal(later.held, 1);
        assert.deepEqual(later.recipients, { queued: 2, deferred: 0, delivered: 1, bounced: 1 });
        assert.deepEqual(later.pendingByAge, { '5m': 0, '1h': 0, '1d': 2, older: 0 });
        assert.ok(later.oldestPendingMs !== null && Math.abs(later.oldestPendingMs - created) < 60_000);
      },
    );

    withHarness('ids are known at begin(), unique and increasing', async (h) => {
      const writers = Array.from({ length: 200 }, () => h.queue.begin());
      const ids = writers.map((w) => w.id);
      assert.equal(new Set(ids).size, ids.length);
      assert.deepEqual([...ids].sort(), ids);
      for (const w of writers) await w.abort();
    });

    withHarness('a committed message reads back: envelope, size, recipients, body', async (h) => {
      const body = enc.encode('Subject: hi\r\n\r\nhello\r\n');
      const env = testEnvelope(['a@example.org', 'b@example.com']);
      const id = await enqueue(h.queue, body, env);
      const m = await h.queue.get(id);
      assert.ok(m);
      assert.deepEqual(m.envelope, env);
      assert.equal(m.sizeBytes, body.byteLength);
      assert.equal(m.held, false);
      assert.deepEqual(
        m.recipients.map((r) => [r.index, r.address, r.status, r.attempts, r.lastReply]),
        [
          [0, 'a@example.org', 'queued', 0, null],
          [1, 'b@example.com', 'queued', 0, null],
        ],
      );
      assert.deepEqual(await readAll(h.queue.readBody(id)), Buffer.from(body));
      assert.deepEqual(
        (await h.queue.list()).map((x) => x.id),
        [id],
      );
    });

    withHarness(
      'a prefix given at commit is read back in front of the body, and counted in the size',
      async (h) => {
        const w = h.queue.begin();
        const body = enc.encode('Subject: x\r\n\r\nbody\r\n');
        await w.write(body);
        const prefix = enc.encode('Authentication-Results: mx.example.org; spf=pass\r\n');
        await w.commit(testEnvelope(['a@example.org']), { prefix });
        const m = await h.queue.get(w.id);
        assert.equal(m?.sizeBytes, body.byteLength + prefix.byteLength);
        assert.deepEqual(await readAll(h.queue.readBody(w.id)), Buffer.concat([prefix, body]));
        const again = await h.reopen();
        assert.deepEqual(await readAll(again.readBody(w.id)), Buffer.concat([prefix, body]));
      },
    );

    withHarness('nothing is visible before commit resolves', async (h) => {
      const w = h.queue.begin();
      await w.write(enc.encode('Subject: x\r\n\r\nbody\r\n'));
      assert.equal(await h.queue.get(w.id), null);
      assert.deepEqual(await h.queue.list(), []);
      const paused = h.pauseCommits?.();
      const committing = w.commit(testEnvelope());
      await paused?.reached;
      assert.equal(await h.queue.get(w.id), null);
      assert.deepEqual(await h.queue.list(), []);
      assert.deepEqual(await h.queue.due(CONTRACT_NOW_MS + 1, 10), []);
      paused?.resume();
      await committing;
      assert.notEqual(await h.queue.get(w.id), null);
    });

    withHarness('a committed message survives a restart (small and large)', async (h) => {
      const small = enc.encode('Subject: small\r\n\r\nx\r\n');
      const large = randomBytes(700_001);
      const a = await enqueue(h.queue, small);
      const b = await enqueue(h.queue, large);
      const q = await h.reopen();
      assert.deepEqual(
        (await q.list()).map((m) => m.id),
        [a, b],
      );
      assert.deepEqual(await readAll(q.readBody(a)), Buffer.from(small));
      assert.deepEqual(await readAll(q.readBody(b)), large);
      assert.equal((await q.get(b))?.sizeBytes, large.byteLength);
    });

    withHarness('abort leaves nothing, before or after spilling', async (h) => {
      for (const size of [10, 3_000_000]) {
        const w = h.queue.begin();
        await w.write(randomBytes(size));
        await w.abort();
        assert.equal(await h.queue.get(w.id), null);
        await assert.rejects(w.commit(testEnvelope()));
      }
      assert.deepEqual(await h.queue.list(), []);
      const q = await h.reopen();
      assert.deepEqual(await q.list(), []);
    });

    withHarness('a large body written in odd chunks reads back byte-exact', async (h) => {
      const body = randomBytes(5 * 1024 * 1024 + 7);
      const id = await enqueue(h.queue, body, testEnvelope(), 12_345);
      const back = await readAll(h.queue.readBody(id));
      assert.equal(back.byteLength, body.byteLength);
      assert.ok(back.equals(body));
    });

    withHarness('an empty body is a valid (if odd) message', async (h) => {
      const id = await enqueue(h.queue, new Uint8Array(0));
      assert.equal((await h.queue.get(id))?.sizeBytes, 0);
      assert.equal((await readAll(h.queue.readBody(id))).byteLength, 0);
    });

    withHarness('group commit: 500 concurrent commits take far fewer than 500 transactions', async (h) => {
      const before = h.transactions();
      const ids = await Promise.all(
        Array.from({ length: 500 }, (_, i) =>
          enqueue(h.queue, enc.encode(`Subject: ${i}\r\n\r\nbody ${i}\r\n`)),
        ),
      );
      const used = h.transactions() - before;
      assert.ok(used >= 1 && used <= 25, `500 commits used ${used} transactions`);
      assert.equal(new Set(ids).size, 500);
      assert.equal((await h.queue.list()).length, 500);
      assert.equal(
        (await readAll(h.queue.readBody(ids[321]!))).toString(),
        'Subject: 321\r\n\r\nbody 321\r\n',
      );
    });

    withHarness('onCommit listeners hear committed ids, and stop when unsubscribed', async (h) => {
      const heard: string[] = [];
      const off = h.queue.onCommit((id) => heard.push(id));
      const a = await enqueue(h.queue, enc.encode('a'));
      const aborted = h.queue.begin();
      await aborted.abort();
      off();
      await enqueue(h.queue, enc.encode('b'));
      assert.deepEqual(heard, [a]);
    });

    withHarness(
      'settle: delivered, deferred, bounced; the message goes when no recipient is pending',
      async (h) => {
        const now = CONTRACT_NOW_MS;
        const id = await enqueue(
          h.queue,
          randomBytes(400_000),
          testEnvelope(['a@example.org', 'b@example.com', 'c@example.com']),
        );
        let due = await h.queue.due(now, 10);
        assert.deepEqual(
          due.map((m) => [m.id, m.recipients.map((r) => r.index)]),
          [[id, [0, 1, 2]]],
        );
        await h.queue.settle(id, 0, { status: 'delivered', reply: '250 2.0.0 delivered' });
        await h.queue.settle(id, 1, {
          status: 'deferred',
          reply: '451 4.4.1 no answer',
          nextAttemptMs: now + 60_000,
        });
        const m = await h.queue.get(id);
        assert.deepEqual(
          m?.recipients.map((r) => [r.status, r.attempts, r.lastReply]),
          [
            ['delivered', 1, '250 2.0.0 delivered'],
            ['deferred', 1, '451 4.4.1 no answer'],
            ['queued', 0, null],
          ],
        );
        assert.equal(m?.recipients[1]?.nextAttemptMs, now + 60_000);
        due = await h.queue.due(now, 10);
        assert.deepEqual(
          due.map((x) => x.recipients.map((r) => r.index)),
          [[2]],
        );
        await h.queue.settle(id, 2, { status: 'bounced', reply: '550 5.1.1 no such user' });
        assert.deepEqual(await h.queue.due(now + 59_999, 10), []);
        due = await h.queue.due(now + 60_000, 10);
        assert.deepEqual(
          due.map((x) => [x.id, x.recipients.map((r) => r.index)]),
          [[id, [1]]],
        );
        await assert.rejects(h.queue.settle(id, 0, { status: 'bounced', reply: '550 5.0.0 again' }));
        // Survives a restart mid-way.
        const q = await h.reopen();
        assert.equal((await q.get(id))?.recipients[1]?.status, 'deferred');
        await q.settle(id, 1, { status: 'delivered', reply: '250 2.0.0 ok' });
        assert.equal(await q.get(id), null);
        assert.deepEqual(await q.list(), []);
        await assert.rejects(readAll(q.readBody(id)));
        await assert.rejects(q.settle(id, 1, { status: 'delivered', reply: '250 2.0.0 ok' }));
      },
    );

    withHarness('due() orders by due time and honours the limit', async (h) => {
      const now = CONTRACT_NOW_MS;
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(await enqueue(h.queue, enc.encode(`m${i}`)));
      await h.queue.settle(ids[0]!, 0, {
        status: 'deferred',
        reply: '451 4.0.0 later',
        nextAttemptMs: now + 10,
      });
      assert.deepEqual(
        (await h.queue.due(now, 10)).map((m) => m.id),
        [ids[1], ids[2]],
      );
      assert.deepEqual(
        (await h.queue.due(now + 10, 2)).map((m) => m.id),
        [ids[1], ids[2]],
      );
      assert.equal((await h.queue.due(now + 10, 10)).length, 3);
      assert.deepEqual(await h.queue.due(now + 10, 0), []);
      assert.deepEqual(
        (await h.queue.due(now + 10, 2, new Set([ids[1]!]))).map((m) => m.id),
        [ids[2], ids[0]],
      );
    });

    withHarness('settle of an unknown message or recipient fails', async (h) => {
      const id = await enqueue(h.queue, enc.encode('x'));
      await assert.rejects(h.queue.settle(id, 5, { status: 'delivered', reply: '250 ok' }));
      await assert.rejects(h.queue.settle('NOSUCHMESSAGE', 0, { status: 'delivered', reply: '250 ok' }));
    });

    withHarness("arrivalMs is the envelope's receivedAtMs; new recipients have no flags", async (h) => {
      const env = { ...testEnvelope(), receivedAtMs: CONTRACT_NOW_MS - 12_345 };
      const id = await enqueue(h.queue, enc.encode('x'), env);
      const m = await h.queue.get(id);
      assert.equal(m?.arrivalMs, CONTRACT_NOW_MS - 12_345);
      assert.equal((await h.queue.list())[0]?.arrivalMs, CONTRACT_NOW_MS - 12_345);
      const r = m?.recipients[0];
      assert.deepEqual(
        [r?.delayWarned, r?.bounceRequested, r?.remoteMta, r?.diagnostic],
        [false, false, undefined, undefined],
      );
    });

    withHarness('hold keeps a message out of due() until release; unknown ids say false', async (h) => {
      const now = CONTRACT_NOW_MS;
      const a = await enqueue(h.queue, enc.encode('a'));
      const b = await enqueue(h.queue, enc.encode('b'));
      assert.equal(await h.queue.hold(a), true);
      assert.equal(await h.queue.hold(a), true, 'holding twice is fine');
      assert.equal((await h.queue.get(a))?.held, true);
      assert.deepEqual(
        (await h.queue.due(now, 10)).map((m) => m.id),
        [b],
      );
      assert.equal(await h.queue.hold('NOSUCHMESSAGE'), false);
      assert.equal(await h.queue.release('NOSUCHMESSAGE'), false);
      let q = await h.reopen();
      assert.equal((await q.get(a))?.held, true, 'a hold survives a restart');
      assert.deepEqual(
        (await q.due(now + 86_400_000, 10)).map((m) => m.id),
        [b],
      );
      assert.equal(await q.release(a), true);
      assert.equal((await q.get(a))?.held, false);
      q = await h.reopen();
      assert.deepEqual(
        (await q.due(now, 10)).map((m) => m.id),
        [a, b],
      );
    });

    withHarness("remove deletes the message and its bytes whatever the recipients' state", async (h) => {
      const small = await enqueue(
        h.queue,
        enc.encode('small'),
        testEnvelope(['a@example.org', 'b@example.org']),
      );
      const large = await enqueue(h.queue, randomBytes(2_000_000));
      await h.queue.settle(small, 0, { status: 'delivered', reply: '250 2.0.0 ok' });
      await h.queue.hold(large);
      assert.equal(await h.queue.remove(small), true);
      assert.equal(await h.queue.remove(large), true);
      assert.equal(await h.queue.remove(large), false);
      assert.equal(await h.queue.get(small), null);
      await assert.rejects(readAll(h.queue.readBody(large)));
      assert.deepEqual(await h.queue.due(CONTRACT_NOW_MS + 1, 10), []);
      await assert.rejects(h.queue.settle(small, 1, { status: 'delivered', reply: '250 2.0.0 ok' }));
      const q = await h.reopen();
      assert.deepEqual(await q.list(), []);
    });

    withHarness(
      'flush makes pending recipients due now: one message, or all; held ones are skipped',
      async (h) => {
        const now = CONTRACT_NOW_MS;
        const later = {
          status: 'deferred',
          reply: '451 4.4.1 later',
          nextAttemptMs: now + 3_600_000,
        } as const;
        const a = await enqueue(
          h.queue,
          enc.encode('a'),
          testEnvelope(['1@example.org', '2@example.org', '3@example.org']),
        );
        const b = await enqueue(h.queue, enc.encode('b'));
        const c = await enqueue(h.queue, enc.encode('c'));
        await h.queue.settle(a, 0, later);
        await h.queue.settle(a, 1, { status: 'delivered', reply: '250 2.0.0 ok' });
        await h.queue.settle(a, 2, later);
        await h.queue.settle(b, 0, later);
        await h.queue.settle(c, 0, later);
        await h.queue.hold(c);
        assert.deepEqual(await h.queue.due(now, 10), []);

        assert.equal(await h.queue.flush(a), 2);
        let due = await h.queue.due(now, 10);
        assert.deepEqual(
          due.map((m) => [m.id, m.recipients.map((r) => r.index)]),
          [[a, [0, 2]]],
        );
        // Flushing does not count as an attempt and keeps the last reply.
        assert.deepEqual(
          due[0]?.recipients.map((r) => [r.status, r.attempts, r.lastReply]),
          [
            ['deferred', 1, '451 4.4.1 later'],
            ['deferred', 1, '451 4.4.1 later'],
          ],
        );
        assert.equal(await h.queue.flush(c), 0, 'a held message is not flushed');
        assert.equal(await h.queue.flush('NOSUCHMESSAGE'), 0);
        assert.equal(await h.queue.flush(), 3, 'a (already due) and b; not the held c');
        due = await h.queue.due(now, 10);
        assert.deepEqual(
          due.map((m) => m.id),
          [a, b],
        );
        await h.queue.release(c);
        assert.deepEqual(
          (await h.queue.due(now, 10)).map((m) => m.id),
          [a, b],
          'released, c waits for its own time',
        );
        assert.equal((await h.queue.get(c))?.recipients[0]?.nextAttemptMs, now + 3_600_000);
      },
    );

    withHarness('bounceNow marks pending recipients, makes them due and releases a hold', async (h) => {
      const now = CONTRACT_NOW_MS;
      const id = await enqueue(
        h.queue,
        enc.encode('x'),
        testEnvelope(['1@example.org', '2@example.org', '3@example.org']),
      );
      await h.queue.settle(id, 0, { status: 'delivered', reply: '250 2.0.0 ok' });
      await h.queue.settle(id, 1, {
        status: 'deferred',
        reply: '451 4.4.1 later',
        nextAttemptMs: now + 60_000,
      });
      await h.queue.hold(id);
      assert.equal(await h.queue.bounceNow(id), 2);
      assert.equal(await h.queue.bounceNow('NOSUCHMESSAGE'), 0);
      const q = await h.reopen();
      const m = await q.get(id);
      assert.equal(m?.held, false);
      assert.deepEqual(
        m?.recipients.map((r) => [r.status, r.bounceRequested]),
        [
          ['delivered', false],
          ['deferred', true],
          ['queued', true],
        ],
      );
      const due = await q.due(now, 10);
      assert.deepEqual(
        due.map((x) => x.recipients.map((r) => [r.index, r.bounceRequested])),
        [
          [
            [1, true],
            [2, true],
          ],
        ],
      );
      await q.settle(id, 1, { status: 'bounced', reply: OPERATOR_BOUNCE_REPLY });
      await q.settle(id, 2, { status: 'bounced', reply: OPERATOR_BOUNCE_REPLY });
      assert.equal(await q.get(id), null);
    });

    withHarness(
      'MT-PRIORITY: due() gives higher priorities first, negative ones after the rest',
      async (h) => {
        const ids: Record<string, string> = {};
        for (const [name, priority] of [
          ['normal', undefined],
          ['low', -5],
          ['high', 7],
          ['higher', 9],
          ['normal2', 0],
        ] as const) {
          const env = {
            ...testEnvelope([`${name}@example.org`]),
            ...(priority === undefined ? {} : { priority }),
          };
          ids[name] = await enqueue(h.queue, enc.encode(name), env);
        }
        const due = await h.queue.due(CONTRACT_NOW_MS + 1, 10);
        assert.deepEqual(
          due.map((m) => m.id),
          [ids['higher'], ids['high'], ids['normal'], ids['normal2'], ids['low']],
        );
        const two = await h.queue.due(CONTRACT_NOW_MS + 1, 2, new Set([ids['higher']!]));
        assert.deepEqual(
          two.map((m) => m.id),
          [ids['high'], ids['normal']],
        );
        const q = await h.reopen();
        assert.equal((await q.get(ids['higher']!))?.envelope.priority, 9);
      },
    );

    withHarness('FUTURERELEASE: a held envelope is not due before holdUntilMs, then it is', async (h) => {
      const at = CONTRACT_NOW_MS + 3_600_000;
      const id = await enqueue(h.queue, enc.encode('later'), {
        ...testEnvelope(['日本@example.org']),
        holdUntilMs: at,
      });
      assert.equal((await h.queue.due(at - 1, 10)).length, 0);
      const due = await h.queue.due(at, 10);
      assert.deepEqual(
        due.map((m) => m.id),
        [id],
      );
      assert.equal(due[0]?.recipients[0]?.nextAttemptMs, at);
    });

    withHarness('nextAttemptAfter: the earliest future attempt of a message not held', async (h) => {
      assert.equal(await h.queue.nextAttemptAfter(CONTRACT_NOW_MS), null);
      const at = CONTRACT_NOW_MS + 60_000;
      const id = await enqueue(h.queue, enc.encode('x'), { ...testEnvelope(), holdUntilMs: at });
      await enqueue(h.queue, enc.encode('y'), { ...testEnvelope(), holdUntilMs: at + 1 });
      assert.equal(await h.queue.nextAttemptAfter(CONTRACT_NOW_MS), at);
      assert.equal(await h.queue.nextAttemptAfter(at), at + 1);
      await h.queue.hold(id);
      assert.equal(await h.queue.nextAttemptAfter(CONTRACT_NOW_MS), at + 1);
    });

    withHarness('markDelayWarned sets the flag once for good; unknown recipients fail', async (h) => {
      const id = await enqueue(h.queue, enc.encode('x'), testEnvelope(['1@example.org', '2@example.org']));
      await h.queue.settle(id, 1, {
        status: 'deferred',
        reply: '451 4.4.1 later',
        nextAttemptMs: CONTRACT_NOW_MS,
      });
      await h.queue.markDelayWarned(id, 1);
      await h.queue.markDelayWarned(id, 1);
      await assert.rejects(h.queue.markDelayWarned(id, 7));
      await assert.rejects(h.queue.markDelayWarned('NOSUCHMESSAGE', 0));
      const q = await h.reopen();
      const m = await q.get(id);
      assert.deepEqual(
        m?.recipients.map((r) => [r.status, r.attempts, r.delayWarned]),
        [
          ['queued', 0, false],
          ['deferred', 1, true],
        ],
      );
    });

    withHarness(
      'settle keeps the remote MTA and its reply for the DSN; a later settle replaces them',
      async (h) => {
        const now = CONTRACT_NOW_MS;
        const id = await enqueue(h.queue, enc.encode('x'), testEnvelope(['1@example.org', '2@example.org']));
        const diagnostic = '450-4.2.1 mailbox busy\r\n450 4.2.1 try later';
        await h.queue.settle(id, 0, {
          status: 'deferred',
          reply: '450 4.2.1 mailbox busy',
          nextAttemptMs: now,
          remoteMta: 'mx1.example.org',
          diagnostic,
        });
        await h.queue.settle(id, 1, {
          status: 'deferred',
          reply: '451 4.4.1 no answer',
          nextAttemptMs: now,
          remoteMta: 'mx2.example.org',
          diagnostic: '421 4.3.2 shutting down',
        });
        let m = await h.queue.get(id);
        assert.equal(m?.recipients[0]?.remoteMta, 'mx1.example.org');
        assert.equal(m?.recipients[0]?.diagnostic, diagnostic);
        // The next attempt never reached a server: the old server's reply must not stay beside the new reason.
        await h.queue.settle(id, 1, {
          status: 'deferred',
          reply: '451 4.4.1 connection refused',
          nextAttemptMs: now,
        });
        m = await h.queue.get(id);
        assert.deepEqual([m?.recipients[1]?.remoteMta, m?.recipients[1]?.diagnostic], [undefined, undefined]);
        const q = await h.reopen();
        assert.equal((await q.due(now, 10))[0]?.recipients[0]?.diagnostic, diagnostic);
      },
    );

    withHarness('changeCounter moves on every operator change, not on commits or settles', async (h) => {
      const c0 = await h.queue.changeCounter();
      const id = await enqueue(h.queue, enc.encode('x'), testEnvelope(['1@example.org', '2@example.org']));
      await h.queue.settle(id, 0, {
        status: 'deferred',
        reply: '451 4.0.0 later',
        nextAttemptMs: CONTRACT_NOW_MS + 1,
      });
      await h.queue.markDelayWarned(id, 0);
      assert.equal(await h.queue.changeCounter(), c0);
      const seen = [c0];
      const expectMoved = async (what: string): Promise<void> => {
        const c = await h.queue.changeCounter();
        assert.ok(c > seen.at(-1)!, `${what} did not move the counter`);
        seen.push(c);
      };
      await h.queue.hold(id);
      await expectMoved('hold');
      await h.queue.release(id);
      await expectMoved('release');
      await h.queue.flush(id);
      await expectMoved('flush(id)');
      await h.queue.flush();
      await expectMoved('flush()');
      await h.queue.bounceNow(id);
      await expectMoved('bounceNow');
      const q = await h.reopen();
      assert.equal(await q.changeCounter(), seen.at(-1), 'the counter is stored, not per process');
      await q.remove(id);
      const c = await q.changeCounter();
      assert.ok(c > seen.at(-1)!, 'remove did not move the counter');
    });

    withHarness('the change log keeps what was changed, in order, across processes, bounded', async (h) => {
      assert.equal(await h.queue.lastChangeSeq(), 0);
      assert.deepEqual(await h.queue.changesSince(0, 10), []);
      const c0 = await h.queue.changeCounter();
      await h.queue.recordChange('queue.hold', { ids: ['a', 'b'] });
      await h.queue.recordChange('user.add', { address: 'jürgen@example.org' });
      assert.ok((await h.queue.changeCounter()) > c0, 'recordChange moves the change counter');
      const q = await h.reopen();
      const changes = await q.changesSince(0, 10);
      assert.deepEqual(
        changes.map((c) => [c.event, c.detail, c.atMs]),
        [
          ['queue.hold', { ids: ['a', 'b'] }, CONTRACT_NOW_MS],
          ['user.add', { address: 'jürgen@example.org' }, CONTRACT_NOW_MS],
        ],
      );
      assert.equal(await q.lastChangeSeq(), changes[1]!.seq);
      assert.deepEqual(await q.changesSince(changes[0]!.seq, 10), [changes[1]]);
      assert.deepEqual(await q.changesSince(0, 1), [changes[0]]);
      for (let i = 0; i < CHANGE_LOG_KEEP; i++) await q.recordChange('queue.flush', { n: i });
      const kept = await q.changesSince(0, CHANGE_LOG_KEEP * 2);
      assert.equal(kept.length, CHANGE_LOG_KEEP);
      assert.equal(kept.at(-1)!.seq, changes[1]!.seq + CHANGE_LOG_KEEP, 'seq is never reused');
    });

    withHarness('a full disk fails with 452 4.3.1 and leaves nothing; space coming back heals', async (h) => {
      const small = randomBytes(200_000);
      const large = randomBytes(2_000_000);
      h.setDiskFull(true);
      for (const body of [small, large]) {
        const w = h.queue.begin();
        await assert.rejects(async () => {
          for (let i = 0; i < body.byteLength; i += 65_536) await w.write(body.subarray(i, i + 65_536));
          await w.commit(testEnvelope());
        }, isInsufficientStorage);
        await w.abort();
        assert.equal(await h.queue.get(w.id), null);
      }
      assert.deepEqual(await h.queue.list(), []);
      h.setDiskFull(false);
      const a = await enqueue(h.queue, small);
      const b = await enqueue(h.queue, large);
      assert.deepEqual(await readAll(h.queue.readBody(a)), small);
      assert.deepEqual(await readAll(h.queue.readBody(b)), large);
      const q = await h.reopen();
      assert.deepEqual(
        (await q.list()).map((m) => m.id),
        [a, b],
      );
    });

    withHarness('the disk filling up between the body and the commit fails cleanly', async (h) => {
      const w = h.queue.begin();
      await w.write(randomBytes(1_000_000));
      h.setDiskFull(true);
      await assert.rejects(w.commit(testEnvelope()), isInsufficientStorage);
      h.setDiskFull(false);
      assert.equal(await h.queue.get(w.id), null);
      const q = await h.reopen();
      assert.deepEqual(await q.list(), []);
    });
  });
}
