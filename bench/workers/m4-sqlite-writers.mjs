// M4: node:sqlite (DatabaseSync) in WAL, synchronous=NORMAL (as Tern's group commit), busy timeout 5000 ms,
// 1 or 2 writers (processes or worker threads) each committing small transactions (BEGIN IMMEDIATE; one
// ~1 KiB INSERT; COMMIT) for 2 s. mode 'hot': back to back; mode 'paced': one every 2 ms (a group commit
// per event-loop turn under moderate load). Records transactions/s and how long BEGIN IMMEDIATE blocked
// the thread (the wait for the write lock: synchronous, so the event loop stands still).
// Usage: node m4-sqlite-writers.mjs <writers> <hot|paced> <procs|threads>
import { DatabaseSync } from 'node:sqlite';
import { fork } from 'node:child_process';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

async function writer(path, mode, startAt) {
  const db = new DatabaseSync(path, { timeout: 5000 });
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
  const begin = db.prepare('BEGIN IMMEDIATE'),
    commit = db.prepare('COMMIT');
  const ins = db.prepare('INSERT INTO m (body) VALUES (?)');
  const body = Buffer.alloc(1024, 7);
  while (Date.now() < startAt) await new Promise((r) => setTimeout(r, 1));
  const waits = [];
  let n = 0,
    busy = 0;
  const end = startAt + 2000;
  while (Date.now() < end) {
    const t = performance.now();
    try {
      begin.run();
    } catch (e) {
      busy++;
      continue;
    }
    waits.push(performance.now() - t);
    for (let k = 0; k < (mode === 'paced20' ? 20 : 1); k++) ins.run(body);
    commit.run();
    n++;
    if (mode.startsWith('paced')) await new Promise((r) => setTimeout(r, 2));
    else if (n % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  db.close();
  waits.sort((a, b) => a - b);
  const q = (p) => +waits[Math.min(waits.length - 1, Math.floor(p * waits.length))].toFixed(3);
  const blockedMs = waits.reduce((a, b) => a + b, 0);
  return {
    txPerSec: Math.round(n / 2),
    beginWaitMs: { p50: q(0.5), p99: q(0.99), max: q(1) },
    blockedMsOf2000: Math.round(blockedMs),
    busyErrors: busy,
    waitsOver1ms: waits.filter((w) => w > 1).length,
    waitsOver10ms: waits.filter((w) => w > 10).length,
  };
}

if (process.argv[2] === 'child') {
  process.once('message', async (m) => {
    process.send(await writer(m.path, m.mode, m.startAt));
    process.exit(0);
  });
} else if (!isMainThread) {
  parentPort.postMessage(await writer(workerData.path, workerData.mode, workerData.startAt));
} else {
  const n = Number(process.argv[2] ?? 2),
    mode = process.argv[3] ?? 'hot',
    kind = process.argv[4] ?? 'procs';
  const dir = mkdtempSync(join(tmpdir(), 'wk-sqlite-'));
  const path = join(dir, 'q.db');
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; CREATE TABLE m (id INTEGER PRIMARY KEY, body BLOB NOT NULL);');
  db.close();
  const startAt = Date.now() + 300;
  const results = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve) => {
          if (kind === 'threads') {
            const w = new Worker(new URL(import.meta.url), { workerData: { path, mode, startAt } });
            w.once('message', resolve);
          } else {
            const c = fork(new URL(import.meta.url).pathname, ['child']);
            c.send({ path, mode, startAt });
            c.once('message', resolve);
          }
        }),
    ),
  );
  const total = results.reduce((a, r) => a + r.txPerSec, 0);
  console.log(JSON.stringify({ writers: n, mode, kind, totalTxPerSec: total, perWriter: results }));
  rmSync(dir, { recursive: true, force: true });
}
