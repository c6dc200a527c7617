import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { integer, openDatabase, text, transaction } from './sqlite.ts';

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-sqlite-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('openDatabase', () => {
  it('creates folders, turns on WAL, synchronous=FULL and foreign keys', () =>
    withDir((dir) => {
      const db = openDatabase(join(dir, 'a', 'b', 'x.db'), { migrations: [] });
      assert.equal(text(db.prepare('PRAGMA journal_mode').get()!, 'journal_mode'), 'wal');
      assert.equal(integer(db.prepare('PRAGMA synchronous').get()!, 'synchronous'), 2); // FULL
      assert.equal(integer(db.prepare('PRAGMA foreign_keys').get()!, 'foreign_keys'), 1);
      db.close();
    }));

  it('applies only the migrations not yet applied, and records the version', () =>
    withDir((dir) => {
      const path = join(dir, 'x.db');
      const v1 = ['CREATE TABLE a (x INTEGER) STRICT'];
      let db = openDatabase(path, { migrations: v1 });
      db.exec('INSERT INTO a VALUES (1)');
      db.close();
      db = openDatabase(path, { migrations: [...v1, 'ALTER TABLE a ADD COLUMN y TEXT'] });
      assert.equal(integer(db.prepare('PRAGMA user_version').get()!, 'user_version'), 2);
      assert.deepEqual({ ...db.prepare('SELECT x, y FROM a').get() }, { x: 1, y: null });
      db.close();
      assert.throws(() => openDatabase(path, { migrations: v1 }), /schema version 2/);
    }));

  it('a failing migration changes nothing', () =>
    withDir((dir) => {
      const path = join(dir, 'x.db');
      assert.throws(() => openDatabase(path, { migrations: ['CREATE TABLE a (x INTEGER)', 'BOGUS SQL'] }));
      const db = openDatabase(path, { migrations: [] });
      assert.equal(integer(db.prepare('PRAGMA user_version').get()!, 'user_version'), 0);
      assert.equal(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'a'`).get(), undefined);
      db.close();
    }));
});

describe('transaction', () => {
  it('commits on return and rolls back on throw', () => {
    const db = openDatabase(':memory:', { migrations: ['CREATE TABLE a (x INTEGER) STRICT'] });
    assert.equal(
      transaction(db, () => db.prepare('INSERT INTO a VALUES (1)').run().changes),
      1,
    );
    assert.throws(() =>
      transaction(db, () => {
        db.exec('INSERT INTO a VALUES (2)');
        throw new Error('no');
      }),
    );
    assert.deepEqual(
      db
        .prepare('SELECT x FROM a')
        .all()
        .map((r) => r['x']),
      [1],
    );
    db.close();
  });
});
