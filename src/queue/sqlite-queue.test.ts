import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { faultyStorageFs, nodeStorageFs } from '../db/storage-fs.ts';
import { CONTRACT_NOW_MS, runQueueContract, testEnvelope } from './queue.contract.ts';
import type { SqliteQueueOptions } from './sqlite-queue.ts';
import { SqliteQueue } from './sqlite-queue.ts';

const clock = { nowMs: () => CONTRACT_NOW_MS };

/** Make the database "full": it may not grow past its current size (real SQLITE_FULL errors). */
function setDbFull(db: DatabaseSync, full: boolean): void {
  if (full) {
    const pages = db.prepare('PRAGMA page_count').get()!['page_count'] as number;
    db.exec(`PRAGMA max_page_count = ${pages}`);
  } else {
    db.exec('PRAGMA max_page_count = 4294967294');
  }
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'tern-queue-'));
}

runQueueContract('sqlite', async () => {
  const dir = await tempDir();
  let full = false;
  let db: DatabaseSync | null = null;
  const options: SqliteQueueOptions = {
    dir,
    clock,
    fs: faultyStorageFs(() => full),
    onDatabase: (d) => {
      db = d;
      setDbFull(d, full);
    },
  };
  let queue = await SqliteQueue.open(options);
  let transactionsBefore = 0;
  return {
    get queue() {
      return queue;
    },
    async reopen() {
      transactionsBefore += queue.commitStats.transactions;
      await queue.close();
      queue = await SqliteQueue.open(options);
      return queue;
    },
    setDiskFull(on) {
      full = on;
      if (db !== null) setDbFull(db, on);
    },
    transactions: () => transactionsBefore + queue.commitStats.transactions,
    async cleanup() {
      await queue.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteQueue specifics', () => {
  const withQueue = (
    title: string,
    fn: (q: SqliteQueue, dir: string) => Promise<void>,
    extra: Partial<SqliteQueueOptions> = {},
  ): void => {
    it(title, async () => {
      const dir = await tempDir();
      const q = await SqliteQueue.open({ dir, clock, ...extra });
      try {
        await fn(q, dir);
      } finally {
        await q.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  };

  withQueue('lays out queue.db (WAL) and spool/', async (_q, dir) => {
    assert.ok(existsSync(join(dir, 'queue.db')));
    assert.ok(existsSync(join(dir, 'queue.db-wal')));
    assert.deepEqual(await readdir(join(dir, 'spool')), []);
  });

  withQueue('small bodies stay in the database, large ones are spooled while they arrive', async (q, dir) => {
    const small = q.begin();
    await small.write(randomBytes(1000));
    assert.deepEqual(await readdir(join(dir, 'spool')), []);
    await small.commit(testEnvelope());
    assert.deepEqual(await readdir(join(dir, 'spool')), []);

    const big = q.begin();
    const chunk = randomBytes(64 * 1024);
    await big.write(chunk.subarray(1)); // 64 KiB less one octet: still in memory
    assert.deepEqual(await readdir(join(dir, 'spool')), []);
    await big.write(chunk.subarray(0, 1)); // 64 KiB: a file from here on
    assert.equal((await stat(join(dir, 'spool', big.id))).size, chunk.byteLength);
    for (let i = 0; i < 15; i++) await big.write(chunk);
    // Written as it arrives, not gathered for the commit.
    assert.equal((await stat(join(dir, 'spool', big.id))).size, 16 * chunk.byteLength);
    await big.commit(testEnvelope());
    assert.deepEqual(await readdir(join(dir, 'spool')), [big.id]);
  });

  {
    const synced: string[] = [];
    withQueue(
      'seal() makes a spilled body durable but not its spool name; commit() makes the name durable too',
      async (q, dir) => {
        const spool = join(dir, 'spool');
        const taken = q.begin();
        await taken.write(randomBytes(100_000));
        const body = await taken.seal();
        assert.equal(body.kind, 'file');
        assert.deepEqual(
          synced.filter((p) => p === spool),
          [],
          'no fsync of spool/ for a body taken elsewhere',
        );
        await taken.abort();
        assert.deepEqual(await readdir(spool), []);

        const kept = q.begin();
        await kept.write(randomBytes(100_000));
        await kept.seal();
        await kept.commit(testEnvelope());
        assert.deepEqual(
          synced.filter((p) => p === spool),
          [spool],
          'fsynced once the queue commits it',
        );
        assert.deepEqual(await readdir(spool), [kept.id]);
      },
      { fs: { ...nodeStorageFs, syncDir: (p) => (synced.push(p), nodeStorageFs.syncDir(p)) } },
    );
  }

  withQueue(
    'bodyFile(): the spool file and its prefix for a spooled body, null for one in the database',
    async (q) => {
      const small = q.begin();
      await small.write(randomBytes(1000));
      await small.commit(testEnvelope());
      assert.equal(await q.bodyFile(small.id), null);
      const big = q.begin();
      const bytes = randomBytes(100_000);
      await big.write(bytes);
      const prefix = new TextEncoder().encode('Authentication-Results: mx.example; spf=pass\r\n');
      await big.commit(testEnvelope(), { prefix });
      const file = await q.bodyFile(big.id);
      assert.ok(file !== null);
      assert.equal(file.sizeBytes, bytes.byteLength);
      assert.deepEqual(file.prefix, prefix);
      assert.ok((await readFile(file.path)).equals(bytes));
      assert.equal(await q.bodyFile('no-such-id'), null);
    },
  );

  withQueue('a 100 MiB message passes through without being held in memory', async (q) => {
    const chunk = randomBytes(64 * 1024);
    const baseline = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const w = q.begin();
    for (let i = 0; i < 1600; i++) {
      await w.write(chunk);
      if (i % 50 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
    }
    await w.commit(testEnvelope());
    // The writer keeps at most the spill threshold; a copy of the body would show as 100 MiB here.
    assert.ok(peak < 16 * 1024 * 1024, `peak ${peak} bytes of buffers while writing`);
    let size = 0;
    let chunks = 0;
    let largest = 0;
    let mismatch = 0;
    for await (const c of q.readBody(w.id)) {
      if (!Buffer.from(c).equals(chunk)) mismatch++; // every 64 KiB block of the body is `chunk`
      size += c.byteLength;
      chunks++;
      largest = Math.max(largest, c.byteLength);
    }
    assert.equal(size, 100 * 1024 * 1024);
    assert.equal(mismatch, 0);
    assert.equal(chunks, 1600, 'read back as a stream of pieces, not one buffer');
    assert.equal(largest, 64 * 1024);
    assert.equal((await q.get(w.id))?.sizeBytes, 100 * 1024 * 1024);
  });

  withQueue('abort() once commit() has started does not undo it', async (q) => {
    const w = q.begin();
    await w.write(randomBytes(300_000));
    const committing = w.commit(testEnvelope());
    await w.abort();
    await committing;
    assert.equal((await q.get(w.id))?.sizeBytes, 300_000);
  });

  withQueue('after close, calls reject instead of throwing', async (q) => {
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
    assert.throws(() => q.begin(), /closed/);
  });

  withQueue('abort removes the spool file', async (q, dir) => {
    const w = q.begin();
    await w.write(randomBytes(1_000_000));
    assert.deepEqual(await readdir(join(dir, 'spool')), [w.id]);
    await w.abort();
    assert.deepEqual(await readdir(join(dir, 'spool')), []);
  });

  withQueue('the spool file goes with the last settled recipient', async (q, dir) => {
    const w = q.begin();
    await w.write(randomBytes(1_000_000));
    await w.commit(testEnvelope(['a@example.org', 'b@example.org']));
    await q.settle(w.id, 0, { status: 'delivered', reply: '250 2.0.0 ok' });
    assert.deepEqual(await readdir(join(dir, 'spool')), [w.id]);
    await q.settle(w.id, 1, { status: 'bounced', reply: '550 5.1.1 no' });
    assert.deepEqual(await readdir(join(dir, 'spool')), []);
  });

  withQueue('settles are group-committed too', async (q) => {
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const w = q.begin();
      await w.write(new TextEncoder().encode(`m${i}`));
      await w.commit(testEnvelope());
      ids.push(w.id);
    }
    const before = q.commitStats.transactions;
    await Promise.all(ids.map((id) => q.settle(id, 0, { status: 'delivered', reply: '250 ok' })));
    assert.ok(q.commitStats.transactions - before <= 2);
    assert.deepEqual(await q.list(), []);
  });

  it('on open, old orphan spool files (a crash before commit) are removed and fresh ones kept', async () => {
    const dir = await tempDir();
    try {
      let q = await SqliteQueue.open({ dir, clock });
      const kept = q.begin();
      await kept.write(randomBytes(500_000));
      await kept.commit(testEnvelope());
      await q.close();
      const old = join(dir, 'spool', 'OLDORPHAN');
      const fresh = join(dir, 'spool', 'FRESHORPHAN');
      await writeFile(old, 'partial');
      await writeFile(fresh, 'in progress in another process');
      const hourAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
      await utimes(old, hourAgo, hourAgo);
      await utimes(join(dir, 'spool', kept.id), hourAgo, hourAgo);
      q = await SqliteQueue.open({ dir, clock });
      assert.deepEqual((await readdir(join(dir, 'spool'))).sort(), ['FRESHORPHAN', kept.id].sort());
      assert.equal((await q.get(kept.id))?.sizeBytes, 500_000);
      await q.close();
      q = await SqliteQueue.open({ dir, clock, orphanGraceMs: 0 });
      assert.deepEqual(await readdir(join(dir, 'spool')), [kept.id]);
      await q.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('another process can list and read while the queue is open', async () => {
    const dir = await tempDir();
    const q = await SqliteQueue.open({ dir, clock });
    try {
      const w = q.begin();
      await w.write(new TextEncoder().encode('Subject: from afar\r\n\r\nhi\r\n'));
      await w.commit(testEnvelope(['x@example.org']));
      const moduleUrl = pathToFileURL(join(import.meta.dirname, 'sqlite-queue.ts')).href;
      const script = `
        const { SqliteQueue } = await import(${JSON.stringify(moduleUrl)});
        const q = await SqliteQueue.open({ dir: ${JSON.stringify(dir)}, clock: { nowMs: () => Date.now() } });
        const list = await q.list();
        const chunks = [];
        for await (const c of q.readBody(list[0].id)) chunks.push(c);
        console.log(JSON.stringify({ ids: list.map((m) => m.id), rcpt: list[0].recipients[0].address, body: Buffer.concat(chunks).toString() }));
        await q.close();`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
      assert.deepEqual(JSON.parse(stdout), {
        ids: [w.id],
        rcpt: 'x@example.org',
        body: 'Subject: from afar\r\n\r\nhi\r\n',
      });
      // And the server side keeps working afterwards.
      const w2 = q.begin();
      await w2.write(new TextEncoder().encode('again'));
      await w2.commit(testEnvelope());
      assert.equal((await q.list()).length, 2);
    } finally {
      await q.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  withQueue('remove takes the spool file with the rows', async (q, dir) => {
    const w = q.begin();
    await w.write(randomBytes(1_000_000));
    await w.commit(testEnvelope());
    assert.deepEqual(await readdir(join(dir, 'spool')), [w.id]);
    assert.equal(await q.remove(w.id), true);
    assert.deepEqual(await readdir(join(dir, 'spool')), []);
  });

  it('a database of schema version 1 is migrated: old recipients get no flags, the counter starts', async () => {
    const dir = await tempDir();
    try {
      await mkdir(join(dir, 'spool'));
      const { DatabaseSync } = await import('node:sqlite');
      const db = new DatabaseSync(join(dir, 'queue.db'));
      db.exec(`CREATE TABLE messages (id TEXT PRIMARY KEY, envelope TEXT NOT NULL, size_bytes INTEGER NOT NULL,
          body_file TEXT, held INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL) STRICT;
        CREATE TABLE bodies (message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
          data BLOB NOT NULL) STRICT;
        CREATE TABLE recipients (message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
          idx INTEGER NOT NULL, address TEXT NOT NULL,
          status TEXT NOT NULL CHECK (status IN ('queued', 'deferred', 'delivered', 'bounced')),
          attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL, last_reply TEXT,
          PRIMARY KEY (message_id, idx)) STRICT, WITHOUT ROWID;
        PRAGMA user_version = 1;`);
      db.prepare('INSERT INTO messages VALUES (?, ?, 1, NULL, 1, 0)').run(
        'OLD1',
        JSON.stringify(testEnvelope()),
      );
      db.prepare('INSERT INTO bodies VALUES (?, ?)').run('OLD1', new Uint8Array([120]));
      db.prepare(
        `INSERT INTO recipients VALUES ('OLD1', 0, 'alice@example.org', 'deferred', 2, 5, '451 4.0.0 x')`,
      ).run();
      db.close();
      const q = await SqliteQueue.open({ dir, clock });
      try {
        const m = await q.get('OLD1');
        assert.deepEqual(m?.recipients, [
          {
            index: 0,
            address: 'alice@example.org',
            status: 'deferred',
            attempts: 2,
            nextAttemptMs: 5,
            lastReply: '451 4.0.0 x',
            delayWarned: false,
            bounceRequested: false,
          },
        ]);
        assert.equal(m?.held, true);
        assert.equal(await q.changeCounter(), 0);
        assert.equal(await q.release('OLD1'), true);
        assert.equal(await q.changeCounter(), 1);
      } finally {
        await q.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a flush from another process moves the counter the running server polls', async () => {
    const dir = await tempDir();
    const server = await SqliteQueue.open({ dir, clock });
    try {
      const w = server.begin();
      await w.write(new TextEncoder().encode('x'));
      await w.commit(testEnvelope());
      await server.settle(w.id, 0, {
        status: 'deferred',
        reply: '451 4.0.0 later',
        nextAttemptMs: CONTRACT_NOW_MS + 3_600_000,
      });
      const before = await server.changeCounter();
      assert.deepEqual(await server.due(CONTRACT_NOW_MS, 10), []);
      const moduleUrl = pathToFileURL(join(import.meta.dirname, 'sqlite-queue.ts')).href;
      const script = `
        const { SqliteQueue } = await import(${JSON.stringify(moduleUrl)});
        const q = await SqliteQueue.open({ dir: ${JSON.stringify(dir)}, clock: { nowMs: () => ${CONTRACT_NOW_MS} } });
        console.log(await q.flush());
        await q.close();`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
      assert.equal(stdout.trim(), '1');
      assert.ok((await server.changeCounter()) > before);
      assert.deepEqual(
        (await server.due(CONTRACT_NOW_MS, 10)).map((m) => m.id),
        [w.id],
      );
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  withQueue(
    'a write after a failed write fails too, and commit reports the first failure',
    async (q) => {
      const w = q.begin();
      await w.write(randomBytes(60_000));
      await assert.rejects(w.write(randomBytes(200_000)), /Insufficient system storage/);
      await assert.rejects(w.write(randomBytes(10)), /Insufficient system storage/);
      await assert.rejects(w.commit(testEnvelope()), /Insufficient system storage/);
      assert.equal(await q.get(w.id), null);
    },
    { fs: faultyStorageFs(() => true) },
  );
});
