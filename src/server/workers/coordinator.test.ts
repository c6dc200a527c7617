import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DEFAULT_AUTH } from '../../config/config.ts';
import type { LockState } from '../../policy/auth-guard.ts';
import { InProcessMaildropLocks } from '../../store/maildrop-locks.ts';
import { ProcessLimits } from '../listeners.ts';
import { Coordinator } from './coordinator.ts';
import type { FromWorker } from './messages.ts';

const clock = { nowMs: () => 1_700_000_000_000 };
const FIXTURE = new URL('./test-thread.fixture.ts', import.meta.url);

function limits(threshold: number): ProcessLimits {
  return new ProcessLimits(
    { ...DEFAULT_AUTH, lockoutThreshold: threshold, lockoutWindowMs: 60_000, lockoutMs: 60_000 },
    clock,
  );
}

/** A fixture thread whose calls are answered by `coordinator`, as worker-pool.ts answers them. */
function thread(coordinator: Coordinator): { worker: Worker; ask<T>(msg: object): Promise<T> } {
  const worker = new Worker(FIXTURE);
  let waiting: ((v: unknown) => void) | null = null;
  worker.on('message', (msg: FromWorker | { kind: 'result'; value: unknown }) => {
    if (msg.kind === 'call') {
      void coordinator
        .answer(msg.call)
        .then((value) => worker.postMessage({ kind: 'answer', id: msg.id, ok: true, value }));
    } else if (msg.kind === 'result') {
      waiting?.(msg.value);
    }
  });
  return {
    worker,
    ask: <T>(msg: object) =>
      new Promise<T>((resolve) => {
        waiting = resolve as (v: unknown) => void;
        worker.postMessage(msg);
      }),
  };
}

describe('Coordinator: the process-wide limits, asked from several threads', () => {
  it('AUTH failures from two threads lock an IP at exactly the threshold (real threads, one IP each twin)', async () => {
    const shared = limits(10);
    const a = thread(new Coordinator(shared, new InProcessMaildropLocks()));
    const b = thread(new Coordinator(shared, new InProcessMaildropLocks()));
    try {
      for (const ip of ['192.0.2.7', '2001:db8::7']) {
        // 5 + 5 failures at once from two threads: the 10th, and only it, locks.
        const [ra, rb] = await Promise.all([
          a.ask<LockState[]>({ kind: 'failures', ip, n: 5 }),
          b.ask<LockState[]>({ kind: 'failures', ip, n: 5 }),
        ]);
        const locked = [...ra, ...rb].filter((s) => s.locked);
        assert.equal(locked.length, 1, ip);
        assert.equal((await shared.authGuard.check(ip, null)).locked, true, ip);
      }
    } finally {
      await a.worker.terminate();
      await b.worker.terminate();
    }
  });

  it('IMAP user slots are one count: 2 threads × 4 tries for max 3 grant exactly 3 (ASCII and UTF-8 users)', async () => {
    const shared = limits(100);
    const ca = new Coordinator(shared, new InProcessMaildropLocks());
    const cb = new Coordinator(shared, new InProcessMaildropLocks());
    const a = thread(ca);
    const b = thread(cb);
    try {
      for (const user of ['bob@example.test', '日本@example.test']) {
        const [ga, gb] = await Promise.all([
          a.ask<boolean[]>({ kind: 'slots', user, max: 3, n: 4 }),
          b.ask<boolean[]>({ kind: 'slots', user, max: 3, n: 4 }),
        ]);
        assert.equal([...ga, ...gb].filter(Boolean).length, 3, user);
        assert.equal(shared.userSlots.held(user), 3, user);
      }
      // A thread that dies gives back what its sessions held, and only that.
      const heldByA = ca.held.slots;
      await ca.releaseAll();
      assert.equal(
        shared.userSlots.held('bob@example.test') + shared.userSlots.held('日本@example.test'),
        6 - heldByA,
      );
      await cb.releaseAll();
      assert.equal(shared.userSlots.held('bob@example.test'), 0);
      assert.equal(shared.userSlots.held('日本@example.test'), 0);
    } finally {
      await a.worker.terminate();
      await b.worker.terminate();
    }
  });

  it('maildrop locks: one holder across threads, released with the thread; stale calls change nothing', async () => {
    const locks = new InProcessMaildropLocks();
    const shared = limits(100);
    const a = new Coordinator(shared, locks);
    const b = new Coordinator(shared, locks);
    const token = await a.answer({ op: 'maildrop.acquire', user: 'Jürgen@example.test', mailbox: 'inbox' });
    assert.equal(typeof token, 'number');
    assert.equal(
      await b.answer({ op: 'maildrop.acquire', user: 'jürgen@example.test', mailbox: 'INBOX' }),
      null,
    );
    // b cannot release what a holds, whatever token it names.
    await b.answer({ op: 'maildrop.release', token: token! });
    assert.equal(locks.held, 1);
    await a.releaseAll();
    assert.equal(locks.held, 0);
    // After its release a gone thread gets nothing new.
    assert.equal(await a.answer({ op: 'maildrop.acquire', user: 'x@example.test', mailbox: 'INBOX' }), null);
    assert.equal(await a.answer({ op: 'slots.acquire', user: 'x@example.test', max: 5 }), false);
    assert.equal(locks.held, 0);
    const t2 = await b.answer({ op: 'maildrop.acquire', user: 'jürgen@example.test', mailbox: 'INBOX' });
    assert.notEqual(t2, null);
    await b.answer({ op: 'maildrop.release', token: t2! });
    assert.equal(locks.held, 0);
  });

  it('hourly rates: counts recorded from one thread are seen by another', async () => {
    const shared = limits(100);
    const a = new Coordinator(shared, new InProcessMaildropLocks());
    const b = new Coordinator(shared, new InProcessMaildropLocks());
    const oneMore = (c: Coordinator, user: string): Promise<boolean> =>
      c.answer({
        op: 'rate.allows',
        user,
        limits: { maxMessages: 2, maxRecipients: 0 },
        add: { messages: 1, recipients: 0 },
      });
    await a.answer({ op: 'rate.record', user: 'u@example.test', recipients: 1 });
    await b.answer({ op: 'rate.record', user: 'u@example.test', recipients: 1 });
    assert.equal(await oneMore(a, 'u@example.test'), false);
    assert.equal(await oneMore(b, 'v@example.test'), true);
  });
});
