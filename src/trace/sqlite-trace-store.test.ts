import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Logger } from '../core/ports.ts';
import { SqliteTraceStore } from './sqlite-trace-store.ts';
import { tracingLogger } from './trace.ts';

const DAY = 86_400_000;

function recording(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = (name: string): void => void lines.push(name);
  const logger: Logger = { event: log, warn: log, error: log, debug: log, child: () => logger };
  return { logger, lines };
}

async function settle(): Promise<void> {
  // Events are written on the next turn, in a group commit.
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
}

function withStore(
  run: (store: SqliteTraceStore, clock: { now: number }, dir: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tern-trace-'));
  const clock = { now: 1_800_000_000_000 };
  const store = SqliteTraceStore.open({
    path: join(dir, 'trace.sqlite'),
    retentionMs: 30 * DAY,
    nowMs: () => clock.now,
  });
  return run(store, clock, dir).finally(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

describe('trace: log records that name a queue id become a timeline', () => {
  it('a field JSON cannot hold costs that event its details, not the batch', async () => {
    await withStore(async (store, clock) => {
      const log = tracingLogger(recording().logger, store, () => clock.now);
      log.event('smtp.queued', { queueId: 'B1', sender: 'a@example.net', to: ['b@example.test'] });
      log.event('delivery.local', { queueId: 'B1', big: 1n });
      await settle();
      assert.deepEqual(
        store.events(['B1']).map((e) => [e.event, e.detail]),
        [
          ['received', { sender: 'a@example.net', to: ['b@example.test'] }],
          ['delivered', { unserializable: true }],
        ],
      );
    });
  });

  it("logs as before, and keeps every record with a queue id (fields or a child's), received first", async () => {
    await withStore(async (store, clock) => {
      const { logger: inner, lines } = recording();
      const log = tracingLogger(inner, store, () => clock.now);
      for (const [id, sender, rcpt] of [
        ['Q1', 'a@example.net', 'bob@example.test'],
        ['Q2', 'Jürgen@Example.net', '日本@example.test'],
      ] as const) {
        const session = log.child({ session: 's1' });
        // A local copy stored before the 250 is logged before the session's smtp.queued.
        session.event('delivery.local', {
          queueId: id,
          rcpt,
          messageId: `<${id}@example.net>`,
          stage: 'accept',
        });
        session.event('smtp.queued', { queueId: id, sender, to: [rcpt], tls: 'TLSv1.3' });
        log
          .child({ queueId: id })
          .warn('delivery.deferred', { rcpt, reply: '451 4.4.1 later', err: new Error('x') });
        clock.now += 1000;
      }
      log.event('smtp.connect', { ip: '192.0.2.1' });
      await settle();
      assert.equal(lines.length, 7, 'every record still logged');
      const events = store.events(store.find({ queueId: 'Q1' }));
      assert.deepEqual(
        events.map((e) => [e.event, e.source]),
        [
          ['received', 'smtp.queued'],
          ['delivered', 'delivery.local'],
          ['deferred', 'delivery.deferred'],
        ],
      );
      assert.equal(events[2]!.detail['err'], 'x');
      assert.equal(events[0]!.detail['session'], 's1');
      assert.deepEqual(store.find({ from: 'jürgen@example.net' }), ['Q2']);
      assert.deepEqual(store.find({ to: '日本@example.test' }), ['Q2']);
      assert.deepEqual(store.find({ to: 'BOB@example.test' }), ['Q1']);
      assert.deepEqual(store.find({ messageId: 'Q2@example.net' }), ['Q2']);
      assert.deepEqual(store.find({ messageId: '<Q1@example.net>' }), ['Q1']);
      assert.deepEqual(store.find({ sinceMs: 1_800_000_000_500 }), ['Q2']);
      assert.deepEqual(store.find({ from: 'nobody@example.net' }), []);
    });
  });

  it("an operator's `tern queue` action on several messages is a step of each", async () => {
    await withStore(async (store, clock) => {
      const log = tracingLogger(recording().logger, store, () => clock.now);
      log.event('cli.queue.hold', { ids: ['Q7', 'Q8'], recipients: 2 });
      await settle();
      assert.deepEqual(
        store.events(['Q7', 'Q8']).map((e) => [e.queueId, e.event]),
        [
          ['Q7', 'held'],
          ['Q8', 'held'],
        ],
      );
      // The count over both is no detail of either.
      assert.equal(store.events(['Q7'])[0]!.detail['recipients'], undefined);
    });
  });

  it('keeps events for the retention only; 0 keeps none', async () => {
    await withStore(async (store, clock, dir) => {
      const log = tracingLogger(recording().logger, store, () => clock.now);
      log.event('smtp.queued', { queueId: 'OLD', sender: 'a@example.net', to: ['b@example.test'] });
      await settle();
      clock.now += 31 * DAY;
      log.event('smtp.queued', { queueId: 'NEW', sender: 'a@example.net', to: ['b@example.test'] });
      await settle();
      await store.prune();
      assert.deepEqual(store.find({ from: 'a@example.net' }), ['NEW']);
      // A queue id with another criterion that does not match is not found by its id alone.
      assert.deepEqual(store.find({ queueId: 'NEW', from: 'other@example.net' }), []);
      assert.deepEqual(store.find({ queueId: 'NEW', sinceMs: clock.now + DAY }), []);
      assert.deepEqual(store.events(['OLD']), []);
      const off = SqliteTraceStore.open({
        path: join(dir, 'off.sqlite'),
        retentionMs: 0,
        nowMs: () => clock.now,
      });
      try {
        tracingLogger(recording().logger, off, () => clock.now).event('smtp.queued', { queueId: 'Z' });
        await settle();
        assert.deepEqual(off.events(['Z']), []);
      } finally {
        off.close();
      }
    });
  });
});
