// The SQLite Sieve script store: the SieveScriptStore contract on a temporary file, what survives a close
// and reopen, and two threads writing the same file at the same time (real concurrency: each thread has
// its own connection, as session threads and the CLI do).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { runSieveScriptStoreContract } from './sieve-scripts.contract.ts';
import { SqliteSieveScriptStore } from './sieve-scripts-sqlite.ts';

const dir = mkdtempSync(join(tmpdir(), 'tern-sieve-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = (): string => join(dir, `sieve-${++files}.sqlite`);

runSieveScriptStoreContract('sqlite', (limits) => {
  const path = freshPath();
  return Promise.resolve({
    connect: () => Promise.resolve(SqliteSieveScriptStore.open(path, limits === undefined ? {} : { limits })),
  });
});

/** Runs in a worker: puts scripts and flips the active one, as a second process would. */
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  const { SqliteSieveScriptStore } = await import(workerData.module);
  const store = SqliteSieveScriptStore.open(workerData.path, {
    limits: { maxScripts: workerData.maxScripts, maxScriptBytes: 1000 },
    busyTimeoutMs: 10000,
  });
  let stored = 0;
  for (let i = 0; i < workerData.count; i++) {
    const r = await store.put('jürgen@exämple.org', workerData.prefix + ' ü ' + i, 'keep;');
    if (r.ok) stored++;
    await store.setActive('jürgen@exämple.org', r.ok ? workerData.prefix + ' ü ' + i : null);
  }
  await store.close();
  parentPort.postMessage(stored);
})().catch((err) => { throw err; });
`;

function runWorker(path: string, prefix: string, count: number, maxScripts: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        module: new URL('./sieve-scripts-sqlite.ts', import.meta.url).href,
        path,
        prefix,
        count,
        maxScripts,
      },
    });
    worker.once('message', (n: number) => resolve(n));
    worker.once('error', reject);
  });
}

describe('SqliteSieveScriptStore', () => {
  it('keeps scripts and the active one across close and reopen (and migrates once)', async () => {
    const path = freshPath();
    const first = SqliteSieveScriptStore.open(path);
    await first.put('日本@例え.jp', '日本', 'keep;\r\n');
    await first.put('日本@例え.jp', 'Ferien ü', 'discard;');
    await first.setActive('日本@例え.jp', 'Ferien ü');
    await first.close();
    const second = SqliteSieveScriptStore.open(path);
    assert.deepEqual(await second.list('日本@例え.jp'), [
      { name: 'Ferien ü', active: true },
      { name: '日本', active: false },
    ]);
    assert.deepEqual(await second.getActive('日本@例え.jp'), { name: 'Ferien ü', script: 'discard;' });
    await second.close();
  });

  it('limits given as a function apply to the next write', async () => {
    let maxScripts = 1;
    const store = SqliteSieveScriptStore.open(freshPath(), {
      limits: () => ({ maxScripts, maxScriptBytes: 0 }),
    });
    assert.deepEqual(await store.put('u@example.org', 'a', 'keep;'), { ok: true });
    assert.deepEqual(await store.put('u@example.org', 'b', 'keep;'), { ok: false, refusal: 'max-scripts' });
    maxScripts = 0;
    assert.deepEqual(
      await store.put('u@example.org', 'b', 'x'.repeat(2_000_000)),
      { ok: true },
      '0: no limit',
    );
    await store.close();
  });

  it('two threads writing at once: the quota and the one-active rule hold', async () => {
    const path = freshPath();
    // Create the schema first, so the threads race on data, not on the migration.
    await SqliteSieveScriptStore.open(path).close();
    const [a, b] = await Promise.all([runWorker(path, 'a', 30, 40), runWorker(path, 'b', 30, 40)]);
    assert.equal(a + b, 40);
    const store = SqliteSieveScriptStore.open(path);
    const list = await store.list('jürgen@exämple.org');
    assert.equal(list.length, 40);
    assert.ok(list.filter((e) => e.active).length <= 1);
    await store.close();
  });
});
