// M5: two worker threads writing one WAL database back to back (as m4 'hot'), but taking an in-process
// writer lock first: an Int32 in a SharedArrayBuffer acquired with Atomics.waitAsync (the event loop keeps
// running while waiting) and released with Atomics.notify after COMMIT. Compare with m4's SQLite
// busy-handler waits (sleeps of 1, 2, 5 ... 100 ms). Also: RSS added per idle worker thread.
import { DatabaseSync } from 'node:sqlite';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
if (!isMainThread && workerData.idle) {
  parentPort.postMessage('up');
} else if (!isMainThread) {
  const { path, sab, startAt } = workerData;
  const lock = new Int32Array(sab);
  const acquire = async () => {
    for (;;) {
      if (Atomics.compareExchange(lock, 0, 0, 1) === 0) return;
      const r = Atomics.waitAsync(lock, 0, 1);
      if (r.async) await r.value;
    }
  };
  const release = () => {
    Atomics.store(lock, 0, 0);
    Atomics.notify(lock, 0, 1);
  };
  const db = new DatabaseSync(path, { timeout: 5000 });
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
  const begin = db.prepare('BEGIN IMMEDIATE'),
    commit = db.prepare('COMMIT'),
    ins = db.prepare('INSERT INTO m (body) VALUES (?)');
  const body = Buffer.alloc(1024, 7);
  while (Date.now() < startAt) await new Promise((r) => setTimeout(r, 1));
  const blocks = [],
    lockWaits = [];
  let n = 0;
  const end = startAt + 2000;
  // event-loop liveness while waiting: a 1 ms interval counts how late it fires
  let maxLag = 0,
    last = performance.now();
  const iv = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - last - 1);
    last = now;
  }, 1);
  while (Date.now() < end) {
    const t0 = performance.now();
    await acquire();
    lockWaits.push(performance.now() - t0);
    const t = performance.now();
    begin.run();
    blocks.push(performance.now() - t);
    ins.run(body);
    commit.run();
    release();
    n++;
    if (n % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  clearInterval(iv);
  db.close();
  const q = (xs, p) => {
    xs.sort((a, b) => a - b);
    return +xs[Math.min(xs.length - 1, Math.floor(p * xs.length))].toFixed(3);
  };
  parentPort.postMessage({
    txPerSec: Math.round(n / 2),
    beginBlockMs: { p99: q(blocks, 0.99), max: q(blocks, 1) },
    asyncLockWaitMs: { p50: q(lockWaits, 0.5), p99: q(lockWaits, 0.99), max: q(lockWaits, 1) },
    maxTimerLagMs: +maxLag.toFixed(2),
  });
} else {
  const dir = mkdtempSync(join(tmpdir(), 'wk-sqlite-'));
  const path = join(dir, 'q.db');
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; CREATE TABLE m (id INTEGER PRIMARY KEY, body BLOB NOT NULL);');
  db.close();
  const sab = new SharedArrayBuffer(4);
  const startAt = Date.now() + 300;
  const res = await Promise.all(
    [0, 1].map(
      () =>
        new Promise((r) =>
          new Worker(new URL(import.meta.url), { workerData: { path, sab, startAt } }).once('message', r),
        ),
    ),
  );
  console.log(
    JSON.stringify({
      writers: 2,
      lock: 'Atomics.waitAsync',
      totalTxPerSec: res.reduce((a, r) => a + r.txPerSec, 0),
      perWriter: res,
    }),
  );
  rmSync(dir, { recursive: true, force: true });
  // RSS per idle worker thread
  const rss0 = process.memoryUsage().rss;
  const ws = [];
  for (let i = 0; i < 4; i++) {
    const w = new Worker(new URL(import.meta.url), { workerData: { idle: true } });
    await new Promise((r) => w.once('message', r));
    ws.push(w);
  }
  await new Promise((r) => setTimeout(r, 200));
  console.log(
    JSON.stringify({
      rssPerIdleWorkerThreadMiB: +((process.memoryUsage().rss - rss0) / 4 / 2 ** 20).toFixed(1),
      mainRssMiB: +(rss0 / 2 ** 20).toFixed(1),
    }),
  );
  for (const w of ws) w.terminate();
}
