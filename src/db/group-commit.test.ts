import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { GroupCommit } from './group-commit.ts';
import { openDatabase } from './sqlite.ts';

function setup(): { db: ReturnType<typeof openDatabase>; gc: GroupCommit; count: () => number } {
  const db = openDatabase(':memory:', {
    migrations: ['CREATE TABLE t (x INTEGER PRIMARY KEY, v BLOB) STRICT'],
  });
  const gc = new GroupCommit(db);
  const count = (): number => db.prepare('SELECT count(*) AS n FROM t').get()!['n'] as number;
  return { db, gc, count };
}

describe('GroupCommit', () => {
  it('runs operations of one turn in one transaction and resolves after it', async () => {
    const { db, gc, count } = setup();
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        gc.run((d) => d.prepare('INSERT INTO t (x) VALUES (?)').run(i).changes),
      ),
    );
    assert.deepEqual(new Set(results), new Set([1]));
    assert.deepEqual(gc.stats, { transactions: 1, operations: 100, syncs: 0 });
    assert.equal(count(), 100);
    await gc.run((d) => d.exec('INSERT INTO t (x) VALUES (1000)'));
    assert.equal(gc.stats.transactions, 2);
    db.close();
  });

  it('an operation that throws is rolled back alone', async () => {
    const { db, gc, count } = setup();
    const [a, b, c] = await Promise.allSettled([
      gc.run((d) => d.exec('INSERT INTO t (x) VALUES (1)')),
      gc.run((d) => {
        d.exec('INSERT INTO t (x) VALUES (2)');
        d.exec('INSERT INTO t (x) VALUES (1)'); // duplicate key: this operation fails, row 2 goes too
      }),
      gc.run((d) => d.exec('INSERT INTO t (x) VALUES (3)')),
    ]);
    assert.equal(a.status, 'fulfilled');
    assert.equal(b.status, 'rejected');
    assert.equal(c.status, 'fulfilled');
    assert.deepEqual(
      db
        .prepare('SELECT x FROM t ORDER BY x')
        .all()
        .map((r) => r['x']),
      [1, 3],
    );
    assert.equal(count(), 2);
    db.close();
  });

  it('SQLITE_FULL fails the whole batch and leaves nothing', async () => {
    const { db, gc, count } = setup();
    const pages = db.prepare('PRAGMA page_count').get()!['page_count'] as number;
    db.exec(`PRAGMA max_page_count = ${pages}`);
    const results = await Promise.allSettled([
      gc.run((d) => d.exec('INSERT INTO t (x) VALUES (1)')),
      gc.run((d) => d.prepare('INSERT INTO t (x, v) VALUES (2, ?)').run(new Uint8Array(100_000))),
      gc.run((d) => d.exec('INSERT INTO t (x) VALUES (3)')),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'rejected'],
    );
    assert.equal(count(), 0);
    assert.equal(db.isTransaction, false);
    db.exec('PRAGMA max_page_count = 4294967294');
    await gc.run((d) => d.exec('INSERT INTO t (x) VALUES (4)'));
    assert.equal(count(), 1);
    db.close();
  });

  it('close() commits what is pending and refuses more', async () => {
    const { db, gc, count } = setup();
    const pending = gc.run((d) => d.exec('INSERT INTO t (x) VALUES (1)'));
    gc.close();
    assert.equal(count(), 1);
    await pending;
    await assert.rejects(
      gc.run(() => 1),
      /closed/,
    );
    db.close();
  });

  it('a window gathers operations arriving over a few milliseconds', async () => {
    const db = openDatabase(':memory:', { migrations: ['CREATE TABLE t (x INTEGER) STRICT'] });
    const gc = new GroupCommit(db, { windowMs: 30 });
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      ops.push(gc.run((d) => d.exec('INSERT INTO t VALUES (1)')));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(ops);
    assert.equal(gc.stats.transactions, 1);
    db.close();
  });

  describe('in a file (WAL fsynced off the event loop)', () => {
    const migrations = ['CREATE TABLE t (x INTEGER PRIMARY KEY, v BLOB) STRICT'];

    it('resolves after an fsync, groups commits made while one is in flight, and checkpoints', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tern-gc-'));
      try {
        const db = openDatabase(join(dir, 'x.db'), { migrations });
        const gc = new GroupCommit(db);
        assert.equal(db.prepare('PRAGMA synchronous').get()!['synchronous'], 1); // NORMAL
        // 40 writers, each waiting for its own write before the next: while one fsync runs, the others
        // commit, and the next fsync covers all of them.
        const blob = new Uint8Array(2048);
        let next = 0;
        await Promise.all(
          Array.from({ length: 40 }, async () => {
            for (let i = 0; i < 250; i++) {
              const x = next++;
              await gc.run((d) => d.prepare('INSERT INTO t (x, v) VALUES (?, ?)').run(x, blob));
            }
          }),
        );
        const { transactions, operations, syncs } = gc.stats;
        assert.equal(operations, 10_000);
        assert.ok(syncs > 0 && syncs <= transactions, `syncs ${syncs}, transactions ${transactions}`);
        assert.ok(syncs < operations / 4, `${syncs} fsyncs for ${operations} operations`);
        // Checkpoints ran while writing: without them 10,000 × 2 KiB rows leave a WAL over 40 MiB; a
        // checkpointed WAL is reused from its start.
        const walBytes = statSync(join(dir, 'x.db-wal')).size;
        assert.ok(walBytes < 20 * 1024 * 1024, `WAL is ${walBytes} bytes`);
        gc.close();
        assert.equal(db.prepare('SELECT count(*) AS n FROM t').get()!['n'], 10_000);
        db.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('every write acknowledged before a kill -9 is there after reopening', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'tern-gc-'));
      try {
        const path = join(dir, 'x.db');
        const script = `
          import { GroupCommit } from ${JSON.stringify(new URL('./group-commit.ts', import.meta.url).href)};
          import { openDatabase } from ${JSON.stringify(new URL('./sqlite.ts', import.meta.url).href)};
          const db = openDatabase(${JSON.stringify(path)}, { migrations: ${JSON.stringify(migrations)} });
          const gc = new GroupCommit(db);
          let next = 0;
          for (let w = 0; w < 20; w++) {
            void (async () => {
              for (;;) {
                const x = next++;
                await gc.run((d) => d.prepare('INSERT INTO t (x) VALUES (?)').run(x));
                process.stdout.write(x + '\\n');
              }
            })();
          }`;
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const acked: number[] = [];
        const lines = createInterface({ input: child.stdout });
        lines.on('line', (line) => {
          acked.push(Number(line));
          if (acked.length === 2000) child.kill('SIGKILL');
        });
        await new Promise((resolve) => child.on('exit', resolve));
        assert.ok(acked.length >= 2000, `only ${acked.length} acknowledged`);
        const db = openDatabase(path, { migrations });
        const stored = new Set(
          db
            .prepare('SELECT x FROM t')
            .all()
            .map((r) => r['x']),
        );
        db.close();
        const lost = acked.filter((x) => !stored.has(x));
        assert.deepEqual(lost, []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('GroupCommit: a thread that ends inside a transaction', () => {
  it('leaves the write lock free: another thread commits at once (session threads, docs/workers.md)', async () => {
    const { Worker } = await import('node:worker_threads');
    const dir = mkdtempSync(join(tmpdir(), 'tern-gc-thread-'));
    const path = join(dir, 'db.sqlite');
    const migrations = ['CREATE TABLE t (x INTEGER) STRICT;'];
    const db = openDatabase(path, { migrations });
    const gc = new GroupCommit(db);
    // The thread begins a group transaction and never leaves its operation.
    const source = `
      import { parentPort } from 'node:worker_threads';
      const { GroupCommit } = await import(${JSON.stringify(new URL('./group-commit.ts', import.meta.url).href)});
      const { openDatabase } = await import(${JSON.stringify(new URL('./sqlite.ts', import.meta.url).href)});
      const db = openDatabase(${JSON.stringify(path)}, { migrations: ${JSON.stringify(migrations)} });
      const gc = new GroupCommit(db);
      void gc.run((d) => {
        d.prepare('INSERT INTO t (x) VALUES (2)').run();
        parentPort.postMessage('inside');
        for (;;) {}
      });
    `;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`), {
      execArgv: [],
    });
    try {
      await new Promise((resolve) => worker.once('message', resolve));
      await worker.terminate();
      const started = performance.now();
      await gc.run((d) => d.prepare('INSERT INTO t (x) VALUES (1)').run());
      assert.ok(performance.now() - started < 100, 'the write lock was still held');
      // Nothing of the ended thread's transaction is visible.
      assert.deepEqual(
        db
          .prepare('SELECT x FROM t')
          .all()
          .map((r) => r['x']),
        [1],
      );
    } finally {
      gc.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("GroupCommit: sync 'none'", () => {
  it('commits resolve at COMMIT with no fsync of their own; the rows are there after reopening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-gc-none-'));
    const path = join(dir, 'db.sqlite');
    const migrations = ['CREATE TABLE t (x INTEGER) STRICT;'];
    try {
      const db = openDatabase(path, { migrations });
      const gc = new GroupCommit(db, { sync: 'none' });
      await Promise.all(
        [1, 2, 3].map((x) => gc.run((d) => d.prepare('INSERT INTO t (x) VALUES (?)').run(x))),
      );
      assert.equal(gc.stats.syncs, 0);
      assert.equal(gc.stats.transactions, 1);
      gc.close();
      db.close();
      const again = openDatabase(path, { migrations });
      assert.deepEqual(
        again
          .prepare('SELECT x FROM t ORDER BY x')
          .all()
          .map((r) => r['x']),
        [1, 2, 3],
      );
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
