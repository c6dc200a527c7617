import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { openDatabase } from '../db/sqlite.ts';
import type { StorageFs } from '../db/storage-fs.ts';
import { errnoError, faultyStorageFs, nodeStorageFs } from '../db/storage-fs.ts';
import { runImapMailboxStoreContract, runMailboxStoreContract } from './mailbox-store.contract.ts';
import type { DeliverRequest } from './mailbox-store.ts';
import type { SqliteMailboxStoreOptions } from './sqlite-mailbox-store.ts';
import { DELETED, MIGRATIONS, SqliteMailboxStore, UNSEEN } from './sqlite-mailbox-store.ts';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

function setDbFull(db: DatabaseSync, full: boolean): void {
  if (full) {
    const pages = db.prepare('PRAGMA page_count').get()!['page_count'] as number;
    db.exec(`PRAGMA max_page_count = ${pages}`);
  } else {
    db.exec('PRAGMA max_page_count = 4294967294');
  }
}

async function waitUntil(done: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
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
  it('broadcast: a commit on one connection reaches watchers on another at once, folder-list events too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    // A poll far beyond the test: only the channel can tell the other store in time.
    const options = { dir, clock: { nowMs: () => T0 }, changePollMs: 600_000, broadcast: true };
    const a = await SqliteMailboxStore.open(options);
    const b = await SqliteMailboxStore.open({ ...options, role: 'session' });
    try {
      for (const user of ['a@example.org', 'jürgen@example.org']) {
        await b.ensureDefaults(user);
        const events: unknown[] = [];
        const listEvents: unknown[] = [];
        const stopWatch = b.watch(user, 'INBOX', (e) => events.push(e));
        const stopList = b.watchFolderList(user, (e) => listEvents.push(e));
        await a.deliver(req(user, randomBytes(100), `k-${user}`));
        await a.createFolder(user, 'Läden');
        await waitUntil(() => events.length > 0 && listEvents.length > 0);
        const last = events.at(-1) as { kind: string; uidNext: number; messages: number };
        assert.equal(last.kind, 'changed');
        assert.equal(last.messages, 1);
        assert.equal(last.uidNext, 2);
        assert.deepEqual(listEvents, [{ kind: 'created', name: 'Läden' }]);
        stopWatch();
        stopList();
      }
    } finally {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('role "session" never sweeps tmp/: a file there may be another connection\'s delivery in progress', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const owner = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    const old = new Date(Date.now() - 3_600_000);
    await writeFile(join(dir, 'tmp', 'in-progress'), 'x');
    await utimes(join(dir, 'tmp', 'in-progress'), old, old);
    const session = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 }, role: 'session' });
    try {
      assert.deepEqual(await readdir(join(dir, 'tmp')), ['in-progress']);
    } finally {
      await session.close();
      await owner.close();
    }
    // The owner's next open sweeps it, as before.
    const again = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    } finally {
      await again.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

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

  it('expunge unlinks a body file only once the removal is committed, and a file left behind by a crash goes on the next open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const user = 'jürgen@example.org';
    const unlinked: string[] = [];
    let unlinkWorks = false;
    const fs: StorageFs = {
      ...nodeStorageFs,
      async unlink(path) {
        // Another connection sees only committed data: no row may still point at this file.
        const other = new DatabaseSync(join(dir, 'mail.db'), { readOnly: true });
        try {
          const rel = path.slice(dir.length + 1);
          assert.equal(other.prepare('SELECT 1 FROM messages WHERE body_file = ?').get(rel), undefined);
          assert.ok(other.prepare('SELECT 1 FROM doomed_bodies WHERE body_file = ?').get(rel));
        } finally {
          other.close();
        }
        // Until then, behave like a process that dies before it could unlink.
        if (!unlinkWorks) throw errnoError('EIO', 'unlink');
        unlinked.push(path);
        await nodeStorageFs.unlink(path);
      },
    };
    let store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 }, fs });
    try {
      for (let i = 0; i < 3; i++) await store.deliver(req(user, randomBytes(300_000), `k${i}`));
      assert.equal((await allFiles(join(dir, 'blobs'))).length, 3);
      assert.deepEqual(await store.expunge(user, 'INBOX', [1, 3]), [1, 3]);
      await store.close();
      assert.equal((await allFiles(join(dir, 'blobs'))).length, 3, 'the failed unlinks kept the files');
      unlinkWorks = true;
      store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 }, fs });
      assert.equal(unlinked.length, 2);
      assert.equal((await allFiles(join(dir, 'blobs'))).length, 1);
      const db = new DatabaseSync(join(dir, 'mail.db'), { readOnly: true });
      assert.equal(db.prepare('SELECT count(*) AS n FROM doomed_bodies').get()?.['n'], 0);
      db.close();
      const kept = await store.openMessage(user, 'INBOX', 2);
      assert.equal(kept?.sizeBytes, 300_000);
      await kept?.close();
      // Later expunges reclaim at once.
      assert.deepEqual(await store.expunge(user, 'INBOX', [2]), [2]);
      await store.close();
      assert.deepEqual(await allFiles(join(dir, 'blobs')), []);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a message opened before its expunge still reads whole', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      const big = randomBytes(2_000_000);
      await store.deliver(req('日本@example.org', big, 'k1'));
      await store.deliver(req('日本@example.org', randomBytes(100), 'k2'));
      const opened = await Promise.all(
        [1, 2].map((uid) => store.openMessage('日本@example.org', 'INBOX', uid)),
      );
      assert.deepEqual(await store.expunge('日本@example.org', 'INBOX', [1, 2]), [1, 2]);
      await store.close(); // waits for the reclamation: the file is unlinked now
      assert.deepEqual(await allFiles(join(dir, 'blobs')), []);
      const chunks: Uint8Array[] = [];
      for await (const c of opened[0]!.content) chunks.push(c);
      assert.ok(Buffer.concat(chunks).equals(big));
      let small = 0;
      for await (const c of opened[1]!.content) small += c.byteLength;
      assert.equal(small, 100);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('upgrading a version 1 store counts the mail already there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const v1 = openDatabase(join(dir, 'mail.db'), { migrations: MIGRATIONS.slice(0, 1) });
    v1.exec(`INSERT INTO mailboxes (id, user, name, uidvalidity, uidnext) VALUES (1, 'a@example.org', 'INBOX', 1000, 4);
      INSERT INTO messages VALUES (1, 1, 10, 0, '[]', '', '', '', NULL), (1, 3, 32, 0, '[]', '', '', '', NULL);
      INSERT INTO bodies VALUES (1, 1, zeroblob(10)), (1, 3, zeroblob(32));`);
    v1.close();
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      assert.deepEqual(await store.status('a@example.org', 'INBOX'), {
        uidValidity: 1000,
        uidNext: 4,
        messages: 2,
        sizeBytes: 42,
        highestModseq: 4,
      });
      assert.deepEqual(
        (await store.snapshot('a@example.org', 'INBOX'))?.entries.map((e) => e.uidl),
        ['1000.1', '1000.3'],
      );
      assert.deepEqual(await store.expunge('a@example.org', 'INBOX', [1]), [1]);
      assert.equal((await store.status('a@example.org', 'INBOX'))?.highestModseq, 5);
      assert.equal((await store.deliver(req('a@example.org', randomBytes(5), 'k'))).uid, 4);
      assert.deepEqual(await store.status('a@example.org', 'INBOX'), {
        uidValidity: 1000,
        uidNext: 5,
        messages: 2,
        sizeBytes: 37,
        highestModseq: 6,
      });
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('upgrading a version 2 store moves small bodies to shared blobs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const v2 = openDatabase(join(dir, 'mail.db'), { migrations: MIGRATIONS.slice(0, 2) });
    v2.exec(`INSERT INTO mailboxes (id, user, name, uidvalidity, uidnext, message_count, total_bytes, modseq)
        VALUES (1, 'jürgen@example.org', 'INBOX', 1000, 3, 2, 7, 3);
      INSERT INTO messages (mailbox_id, uid, size_bytes, internal_date_ms, flags, from_header, subject,
        date_header, body_file, modseq) VALUES (1, 1, 3, 0, '[]', '', '', '', NULL, 2), (1, 2, 4, 0, '[]', '', '', '', NULL, 3);
      INSERT INTO bodies VALUES (1, 1, CAST('one' AS BLOB)), (1, 2, CAST('zwei' AS BLOB));`);
    v2.close();
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      const user = 'jürgen@example.org';
      const read = async (folder: string, uid: number): Promise<string> => {
        const m = await store.openMessage(user, folder, uid);
        const chunks: Uint8Array[] = [];
        for await (const c of m?.content ?? []) chunks.push(c);
        return Buffer.concat(chunks).toString();
      };
      assert.deepEqual([await read('INBOX', 1), await read('INBOX', 2)], ['one', 'zwei']);
      await store.createFolder(user, 'Entwürfe');
      await store.move(user, 'INBOX', [2], 'Entwürfe');
      assert.equal(await read('Entwürfe', 1), 'zwei');
      await store.deleteFolder(user, 'Entwürfe');
      const db = new DatabaseSync(join(dir, 'mail.db'), { readOnly: true });
      const blobs = db.prepare('SELECT count(*) AS n FROM blobs').get()?.['n'];
      db.close();
      assert.equal(blobs, 1, 'the moved body went with its last message');
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('upgrading a version 3 store: save dates, EMAILIDs shared by copies, MAILBOXIDs, unseen counts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const v3 = openDatabase(join(dir, 'mail.db'), { migrations: MIGRATIONS.slice(0, 3) });
    const user = '日本@example.org';
    v3.prepare(
      `INSERT INTO mailboxes (id, user, name, uidvalidity, uidnext, message_count, total_bytes, modseq)
       VALUES (1, ?, 'INBOX', 1000, 4, 3, 13, 5), (2, ?, 'Entwürfe', 1001, 2, 1, 3, 2)`,
    ).run(user, user);
    v3.exec(String.raw`INSERT INTO blobs (id, data) VALUES (7, CAST('one' AS BLOB)), (8, CAST('zwei' AS BLOB));
      INSERT INTO messages (mailbox_id, uid, size_bytes, internal_date_ms, flags, from_header, subject,
        date_header, body_file, modseq, blob_id) VALUES
        (1, 1, 3, 111, '["\\Seen"]', '', '', '', NULL, 2, 7),
        (1, 2, 4, 222, '[]', '', '', '', NULL, 3, 8),
        (1, 3, 6, 333, '["\\Deleted","$x"]', '', '', '', 'blobs/AB/01ABCDEFGHJKMNPQRSAB', 4, NULL),
        (2, 1, 3, 111, '["\\Seen"]', '', '', '', NULL, 2, 7);`);
    v3.close();
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      const inbox = await store.messages(user, 'INBOX', 'all');
      assert.deepEqual(
        inbox.map((m) => [m.uid, m.saveDateMs, m.emailId, m.structure]),
        [
          [1, 111, 'B7', null],
          [2, 222, 'B8', null],
          [3, 333, 'Fblobs_AB_01ABCDEFGHJKMNPQRSAB', null],
        ],
      );
      assert.equal((await store.messages(user, 'Entwürfe', 'all'))[0]?.emailId, 'B7', 'the copy shares it');
      assert.deepEqual(
        (await store.folders(user)).map((f) => [f.name, f.mailboxId]),
        [
          ['INBOX', 'U1000-1'],
          ['Entwürfe', 'U1001-2'],
        ],
      );
      const status = await store.folderStatus(user, 'INBOX');
      assert.deepEqual([status.unseen, status.deleted, status.firstUnseenUid], [2, 1, 2]);
      await store.deliver(req(user, randomBytes(5), 'k'));
      assert.match((await store.messages(user, 'INBOX', [4]))[0]?.emailId ?? '', /^M[0-9A-Z]{20}$/);
      await store.createFolder(user, '日本');
      assert.match((await store.folderStatus(user, '日本')).mailboxId, /^F[0-9A-Z]{20}$/);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('STATUS counts read only the partial indexes; messages() looks UIDs up by key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    let db: DatabaseSync | null = null;
    const store = await SqliteMailboxStore.open({
      dir,
      clock: { nowMs: () => T0 },
      onDatabase: (d) => (db = d),
    });
    try {
      assert.ok(db !== null);
      const plan = (sql: string): string =>
        db!
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all()
          .map((r) => String(r['detail']))
          .join('; ');
      assert.match(
        plan(`SELECT count(*) AS n, min(uid) AS first FROM messages WHERE mailbox_id = 1 AND ${UNSEEN}`),
        /USING (COVERING )?INDEX messages_unseen/,
      );
      assert.match(
        plan(`SELECT count(*) AS n FROM messages WHERE mailbox_id = 1 AND ${DELETED}`),
        /USING (COVERING )?INDEX messages_deleted/,
      );
      assert.match(
        plan(
          `SELECT uid FROM messages WHERE mailbox_id = 1 AND uid IN (SELECT value FROM json_each('[1,2]')) ORDER BY uid`,
        ),
        /USING (COVERING )?INDEX \S+ \(mailbox_id=\? AND uid=\?\)/,
      );
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a structure callback that throws stores the message without one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      const user = 'jürgen@example.org';
      await store.deliver({
        ...req(user, Buffer.from('Grüße'), 'k1'),
        structure: () => {
          throw new Error('scanner bug');
        },
      });
      assert.deepEqual(
        (await store.messages(user, 'INBOX', 'all')).map((m) => [m.uid, m.structure]),
        [[1, null]],
      );
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('expunged UIDs are remembered with the modseq that removed them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
    const store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => T0 } });
    try {
      for (let i = 0; i < 4; i++) await store.deliver(req('a@example.org', randomBytes(10), `k${i}`));
      await store.expunge('a@example.org', 'INBOX', [2, 3]);
      await store.expunge('a@example.org', 'INBOX', [4]);
      const db = new DatabaseSync(join(dir, 'mail.db'), { readOnly: true });
      const rows = db.prepare('SELECT uid, modseq FROM expunged ORDER BY uid').all();
      db.close();
      // Four deliveries took the modseq from 1 to 5; the expunges made 6 and 7.
      assert.deepEqual(
        rows.map((r) => [r['uid'], r['modseq']]),
        [
          [2, 6],
          [3, 6],
          [4, 7],
        ],
      );
      assert.equal((await store.status('a@example.org', 'INBOX'))?.highestModseq, 7);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

runImapMailboxStoreContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tern-store-'));
  let nowMs = T0;
  const options: SqliteMailboxStoreOptions = { dir, clock: { nowMs: () => nowMs } };
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
    openOther: () => SqliteMailboxStore.open(options),
    setNowMs(ms) {
      nowMs = ms;
    },
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
