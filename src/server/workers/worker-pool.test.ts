import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { defaultConfig } from '../../config/config.ts';
import type { Logger, LogFields } from '../../core/ports.ts';
import { InProcessMaildropLocks } from '../../store/maildrop-locks.ts';
import { ProcessLimits, type ListenerDeps } from '../listeners.ts';
import { WorkerPool } from './worker-pool.ts';

const FIXTURE = new URL('./test-thread.fixture.ts', import.meta.url);
const clock = { nowMs: () => Date.now() };

function recordingLogger(): { logger: Logger; events: { name: string; fields: LogFields }[] } {
  const events: { name: string; fields: LogFields }[] = [];
  const log = (name: string, fields: LogFields = {}): void => void events.push({ name, fields });
  const logger: Logger = { event: log, warn: log, error: log, debug: () => undefined, child: () => logger };
  return { logger, events };
}

async function withPool(
  count: number,
  run: (ctx: {
    pool: WorkerPool;
    locks: InProcessMaildropLocks;
    events: { name: string; fields: LogFields }[];
    session: (id: string, gen?: number) => Promise<{ text: string; ended: Promise<void>; handed: boolean }>;
  }) => Promise<void>,
): Promise<void> {
  const config = defaultConfig();
  const locks = new InProcessMaildropLocks();
  const { logger, events } = recordingLogger();
  const pool = await WorkerPool.start({
    count,
    config,
    limits: new ProcessLimits(config.auth, clock),
    maildropLocks: locks,
    logger,
    prettyLogs: false,
    writeLogs: () => undefined,
    onCommitted: () => undefined,
    script: FIXTURE,
  });
  await pool.prepare(1, { config, tls: null } as unknown as ListenerDeps);
  const waiting: ((s: Socket) => void)[] = [];
  const server = createServer({ pauseOnConnect: true }, (s) => waiting.shift()?.(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const session = async (
    id: string,
    gen = 1,
  ): Promise<{ text: string; ended: Promise<void>; handed: boolean }> => {
    const accepted = new Promise<Socket>((r) => waiting.push(r));
    const client = connect(port, '127.0.0.1');
    client.on('error', () => undefined);
    const socket = await accepted;
    let ended!: () => void;
    const endedP = new Promise<void>((r) => (ended = r));
    const handed = pool.hand(socket, { id, gen, listenerIndex: 0 }, ended);
    if (!handed) {
      // What the listener does: refuse (here, just close).
      socket.destroy();
      ended();
    }
    const text = await new Promise<string>((resolve) => {
      let got = '';
      client.on('data', (d) => {
        got += d.toString();
        if (got.endsWith('\r\n')) resolve(got);
      });
      client.on('close', () => resolve(got));
    });
    return { text, ended: endedP, handed };
  };
  try {
    await run({ pool, locks, events, session });
  } finally {
    await pool.stop(1000);
    server.close();
  }
}

async function waitFor(done: () => boolean): Promise<void> {
  const until = Date.now() + 10_000;
  while (!done()) {
    assert.ok(Date.now() < until, 'timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('WorkerPool: sessions handed to threads', () => {
  it('hands sockets to the least busy thread, round the threads on ties; each end is reported once', async () => {
    await withPool(2, async ({ session }) => {
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const { text, ended } = await session(`greet-${i}`);
        assert.match(text, new RegExp(`^hello from greet-${i} on [01]\\r\\n$`));
        seen.add(text.trim().slice(-1));
        await ended;
      }
      assert.deepEqual([...seen].sort(), ['0', '1']);
    });
  });

  it('a generation one thread refuses is refused for all, and no socket is handed with it', async () => {
    await withPool(2, async ({ pool, session }) => {
      const refused = { ...defaultConfig(), hostname: 'refuse.test' };
      await assert.rejects(
        pool.prepare(2, { config: refused, tls: null } as unknown as ListenerDeps),
        /refused/,
      );
      const { text, ended, handed } = await session('greet-x', 2);
      assert.equal(handed, false);
      assert.equal(text, '');
      await ended;
      // The current generation still serves.
      assert.match((await session('greet-y', 1)).text, /^hello from greet-y/);
    });
  });

  it('a thread that dies: its sessions end, its maildrop locks are released, a new thread serves', async () => {
    await withPool(1, async ({ locks, events, session, pool }) => {
      const held = await session('hold-maildrop:jürgen@example.test');
      assert.equal(held.text, 'held\r\n');
      assert.equal(locks.held, 1);
      assert.deepEqual(pool.held, [{ maildrops: 1, slots: 0 }]);
      const crash = session('crash');
      await held.ended;
      await (
        await crash
      ).ended;
      await waitFor(() => events.some((e) => e.name === 'server.worker.exited'));
      assert.equal(locks.held, 0);
      const exited = events.find((e) => e.name === 'server.worker.exited')!;
      assert.equal(exited.fields['sessions'], 2);
      assert.match(String((exited.fields['err'] as Error).message), /crash on purpose/);
      await waitFor(() => events.some((e) => e.name === 'server.worker.restarted'));
      assert.match((await session('greet-after')).text, /^hello from greet-after on 0/);
    });
  });
});
