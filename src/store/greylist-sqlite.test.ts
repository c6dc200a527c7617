import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  MemoryGreylistStore,
  type GreylistEntry,
  type GreylistStore,
  type GreylistTriplet,
} from '../core/greylist.ts';
import { SqliteGreylistStore } from './greylist-sqlite.ts';

const dir = mkdtempSync(join(tmpdir(), 'tern-greylist-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = (): string => join(dir, `greylist-${++files}.sqlite`);

const T0 = Date.UTC(2026, 0, 1);

function entry(t: GreylistTriplet, over: Partial<GreylistEntry> = {}): GreylistEntry {
  return {
    ...t,
    firstSeenMs: T0,
    lastSeenMs: T0,
    attempts: 1,
    passedMs: null,
    expiresMs: T0 + 86_400_000,
    ...over,
  };
}

/** The GreylistStore contract: every implementation runs it. */
function contract(name: string, open: (opts?: { maxEntries?: number }) => GreylistStore): void {
  for (const [label, sender, recipient] of [
    ['ASCII', 'sender@example.net', 'rcpt@example.org'],
    ['UTF-8', 'jürgen@bücher.example', '日本@例え.テスト'],
  ] as const) {
    describe(`${name}: the GreylistStore contract (${label})`, () => {
      const t: GreylistTriplet = { network: '192.0.2.0/24', sender, recipient };

      test('update sees null first, then what it stored; returning prev writes nothing', async () => {
        const store = open();
        const seen: (GreylistEntry | null)[] = [];
        const first = await store.update(t, (prev) => {
          seen.push(prev);
          return entry(t);
        });
        assert.deepEqual(first, entry(t));
        const second = await store.update(t, (prev) => {
          seen.push(prev);
          return prev!;
        });
        assert.deepEqual(seen, [null, entry(t)]);
        assert.deepEqual(second, entry(t));
        await store.update(t, (prev) => {
          assert.deepEqual(prev, entry(t), 'the UTF-8 key and values come back byte for byte');
          return { ...prev, attempts: 2, passedMs: T0 + 1, expiresMs: T0 + 2 };
        });
        await store.update(t, (prev) => {
          assert.deepEqual(prev, entry(t, { attempts: 2, passedMs: T0 + 1, expiresMs: T0 + 2 }));
          return prev;
        });
        // Other triplets are other entries.
        await store.update({ ...t, network: '2001:db8::/64' }, (prev) => {
          assert.equal(prev, null);
          return prev ?? entry({ ...t, network: '2001:db8::/64' });
        });
        await store.close();
      });

      test('a throwing update stores nothing and rejects', async () => {
        const store = open();
        await assert.rejects(
          store.update(t, () => {
            throw new Error('no');
          }),
          /no/,
        );
        await store.update(t, (prev) => {
          assert.equal(prev, null);
          return entry(t);
        });
        await store.close();
      });

      test('passedCount counts live passed triplets of the network, up to atMost', async () => {
        const store = open();
        for (let i = 0; i < 4; i++) {
          const ti = { ...t, recipient: `${i}${recipient}` };
          await store.update(ti, () =>
            entry(ti, { passedMs: i < 3 ? T0 : null, expiresMs: i === 0 ? T0 + 10 : T0 + 1000 }),
          );
        }
        const other = { ...t, network: '198.51.100.0/24' };
        await store.update(other, () => entry(other, { passedMs: T0 }));
        assert.equal(await store.passedCount(t.network, T0, 10), 3);
        assert.equal(await store.passedCount(t.network, T0 + 10, 10), 2, 'the expired one is not counted');
        assert.equal(await store.passedCount(t.network, T0, 2), 2);
        assert.equal(await store.passedCount('203.0.113.0/24', T0, 10), 0);
        await store.close();
      });

      test('expire forgets expired entries, then the oldest greylisted ones past the cap', async () => {
        const store = open({ maxEntries: 3 });
        for (let i = 0; i < 6; i++) {
          const ti = { ...t, recipient: `${i}${recipient}` };
          await store.update(ti, () =>
            entry(ti, { expiresMs: T0 + 100 * (i + 1), passedMs: i === 1 ? T0 : null }),
          );
        }
        // #0 expired at T0+100; then 5 left, cap 3: the two greylisted ones with the earliest ends go
        // (#2, #3), the passed #1 stays.
        assert.equal(await store.expire(T0 + 100), 3);
        assert.equal(await store.expire(T0 + 100), 0);
        const left: string[] = [];
        for (let i = 0; i < 6; i++) {
          const ti = { ...t, recipient: `${i}${recipient}` };
          await store.update(ti, (prev) => {
            if (prev !== null) left.push(String(i));
            return prev ?? entry(ti, { expiresMs: 0 });
          });
        }
        assert.deepEqual(left, ['1', '4', '5']);
        await store.close();
      });
    });
  }
}

contract('memory', (opts) => new MemoryGreylistStore(opts));
contract('sqlite', (opts) => SqliteGreylistStore.open(freshPath(), opts));

describe('SqliteGreylistStore: durable', () => {
  for (const [label, sender, recipient] of [
    ['ASCII', 'sender@example.net', 'rcpt@example.org'],
    ['UTF-8', 'jürgen@bücher.example', '日本@例え.テスト'],
  ] as const) {
    test(`a triplet written, the store closed and reopened, is still known (${label})`, async () => {
      const path = freshPath();
      const t = { network: '2001:db8:1:2::/64', sender, recipient };
      const first = SqliteGreylistStore.open(path);
      await first.update(t, () => entry(t, { passedMs: T0 + 5, attempts: 3 }));
      await first.close();
      const again = SqliteGreylistStore.open(path);
      let seen: GreylistEntry | null = null;
      await again.update(t, (prev) => {
        seen = prev;
        return prev ?? entry(t);
      });
      assert.deepEqual(seen, entry(t, { passedMs: T0 + 5, attempts: 3 }));
      assert.equal(await again.passedCount(t.network, T0, 5), 1);
      await again.close();
    });
  }

  test('two connections on one file (two session threads) see each other’s writes', async () => {
    const path = freshPath();
    const a = SqliteGreylistStore.open(path);
    const b = SqliteGreylistStore.open(path);
    const t = { network: '192.0.2.0/24', sender: 'jürgen@example.net', recipient: 'rcpt@example.org' };
    await a.update(t, () => entry(t));
    await b.update(t, (prev) => {
      assert.deepEqual(prev, entry(t));
      return { ...prev, passedMs: T0 + 1 };
    });
    assert.equal(await a.passedCount(t.network, T0, 5), 1);
    await a.close();
    await b.close();
  });

  test('a file from a newer Tern is refused, not overwritten', async () => {
    const path = freshPath();
    const s = SqliteGreylistStore.open(path);
    await s.close();
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path);
    db.exec('PRAGMA user_version = 99');
    db.close();
    assert.throws(() => SqliteGreylistStore.open(path), /schema version 99/);
  });
});
