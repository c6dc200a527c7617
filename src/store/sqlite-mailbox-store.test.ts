import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { faultyStorageFs } from '../db/storage-fs.ts';
import { runMailboxStoreContract } from './mailbox-store.contract.ts';
import type { DeliverRequest } from './mailbox-store.ts';
import type { SqliteMailboxStoreOptions } from './sqlite-mailbox-store.ts';
import { SqliteMailboxStore } from './sqlite-mailbox-store.ts';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

function setDbFull(db: DatabaseSync, full: boolean): void {
  if (full) {
    const pages = db.prepare('PRAGMA page_count').get()!['page_count'] as number;
    db.exec(`PRAGMA max_page_count = ${pages}`);
  } else {
    db.exec('PRAGMA max_page_count = 4294967294');
  }
}

runMailboxStoreContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
  let full = false;
  let db: DatabaseSync | null = null;
  const options: SqliteMailboxStoreOptions = {
    dir,
    clock: { nowMs: () => T0 },
    fs: faultyStorageFs(() => full),
    onDatabase: (d) => {
      db = d;
      setDbFull(d, full);
    },
  };
  let store = await SqliteMailboxStore.open(options);
  return {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = await SqliteMailboxStore.open(options);
      return store;
    },
    setDiskFull(on) {
      full = on;
      if (db !== null) setDbFull(db, on);
    },
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  await tick();
  yield bytes;
}

function req(user: string, bytes: Uint8Array, key: string, mailbox = 'INBOX'): DeliverRequest {
  return {
    user,
    mailbox,
    internalDateMs: T0,
    flags: [],
    deliveryKey: key,
    summary: { from: '', subject: '', date: '' },
    content: once(bytes),
  };
}

async function allFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

describe('SqliteMailboxStore specifics', () => {
  it('small bodies are BLOBs, large ones files under blobs/, tmp/ left empty', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      assert.ok(existsSync(join(dir, 'mail.db')));
      await store.deliver(req('a@example.org', randomBytes(1000), 'k1'));
      assert.deepEqual(await allFiles(join(dir, 'blobs')), []);
      await store.deliver(req('a@example.org', randomBytes(300_000), 'k2'));
      assert.equal((await allFiles(join(dir, 'blobs'))).length, 1);
      assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('UIDVALIDITY is the creation time in seconds and never repeats', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      assert.equal(await store.status('a@example.org', 'INBOX'), null);
      await store.deliver(req('a@example.org', randomBytes(10), 'k1'));
      await store.deliver(req('a@example.org', randomBytes(10), 'k2', 'Sent'));
      await store.deliver(req('b@example.org', randomBytes(10), 'k3'));
      assert.equal((await store.status('a@example.org', 'INBOX'))?.uidValidity, T0 / 1000);
      assert.equal((await store.status('a@example.org', 'Sent'))?.uidValidity, T0 / 1000 + 1);
      assert.equal((await store.status('b@example.org', 'INBOX'))?.uidValidity, T0 / 1000 + 2);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a failed delivery leaves no file behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    let full = false;
    const store = await SqliteMailboxStore.open({
      dir,
      clock: { nowMs: () => T0 },
      fs: faultyStorageFs(() => full),
    });
    try {
      const big = randomBytes(1_000_000);
      async function* slowly(): AsyncIterable<Uint8Array> {
        await tick();
        yield big.subarray(0, 500_000);
        full = true; // the disk fills while the body is being written
        yield big.subarray(500_000);
      }
      await assert.rejects(
        store.deliver({ ...req('a@example.org', big, 'k1'), content: slowly() }),
        /Insufficient system storage/,
      );
      full = false;
      assert.deepEqual(await allFiles(dir).then((f) => f.filter((n) => !n.startsWith('mail.db'))), []);
      assert.deepEqual(await store.list('a@example.org'), []);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a content stream that throws stores nothing and rethrows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      async function* broken(): AsyncIterable<Uint8Array> {
        await tick();
        yield randomBytes(400_000);
        throw new Error('queue file vanished');
      }
      await assert.rejects(
        store.deliver({ ...req('a@example.org', new Uint8Array(0), 'k1'), content: broken() }),
        /vanished/,
      );
      assert.deepEqual(await store.list('a@example.org'), []);
      assert.deepEqual(await allFiles(join(dir, 'tmp')), []);
      // Not recorded as delivered: a retry stores it.
      assert.equal((await store.deliver(req('a@example.org', randomBytes(5), 'k1'))).uid, 1);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('on open, stale files in tmp/ are removed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    let store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    await store.close();
    const stale = join(dir, 'tmp', 'STALE');
    await writeFile(stale, 'partial');
    const old = new Date(Date.now() - 10 * 60 * 1000);
    await utimes(stale, old, old);
    await writeFile(join(dir, 'tmp', 'FRESH'), 'in progress elsewhere');
    store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      assert.deepEqual(await readdir(join(dir, 'tmp')), ['FRESH']);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('deliveries arriving together share a transaction', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          store.deliver(req(`u${i % 7}@example.org`, randomBytes(100), `k${i}`)),
        ),
      );
      assert.ok(store.commitStats.transactions <= 10, `used ${store.commitStats.transactions}`);
      assert.equal((await store.list('u3@example.org')).length, 29);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
