import assert from 'node:assert/strict';
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
    assert.deepEqual(gc.stats, { transactions: 1, operations: 100 });
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
});
