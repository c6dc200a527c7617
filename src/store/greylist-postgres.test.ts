// The PostgreSQL greylist store: the cases of the SQLite store's GreylistStore contract with the same
// assertions (ASCII and UTF-8 triplets), what survives a reopen, a schema from a newer Tern refused, and
// two instances (two nodes, two pools) updating one triplet at once without losing an update.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { GreylistEntry, GreylistTriplet } from '../core/greylist.ts';
import { openPool, type PgPool } from '../db/postgres.ts';
import { createTestSchema, postgresSkip, type TestSchema } from '../../test/support/postgres.ts';
import { PostgresGreylistStore } from './greylist-postgres.ts';

const skip = await postgresSkip();

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

describe('PostgresGreylistStore', { skip }, () => {
  let schema: TestSchema;
  let pool: PgPool;
  let other: PgPool;
  before(async () => {
    schema = await createTestSchema('greylist');
    pool = openPool({ url: schema.url, schema: schema.schema, max: 4 });
    other = openPool({ url: schema.url, schema: schema.schema, max: 4 });
    await PostgresGreylistStore.open({ pool });
  });
  after(async () => {
    await pool?.end();
    await other?.end();
    await schema?.drop();
  });
  // Every test starts from an empty table (the store's contract counts rows).
  beforeEach(async () => {
    await pool.query('DELETE FROM greylist_triplets');
  });

  const open = (opts: { maxEntries?: number } = {}): Promise<PostgresGreylistStore> =>
    PostgresGreylistStore.open(
      opts.maxEntries === undefined ? { pool } : { pool, maxEntries: opts.maxEntries },
    );

  for (const [label, sender, recipient] of [
    ['ASCII', 'sender@example.net', 'rcpt@example.org'],
    ['UTF-8', 'jürgen@bücher.example', '日本@例え.テスト'],
  ] as const) {
    describe(`postgres: the GreylistStore contract (${label})`, () => {
      const t: GreylistTriplet = { network: '192.0.2.0/24', sender, recipient };

      test('update sees null first, then what it stored; returning prev writes nothing', async () => {
        const store = await open();
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
        const store = await open();
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
        const store = await open();
        for (let i = 0; i < 4; i++) {
          const ti = { ...t, recipient: `${i}${recipient}` };
          await store.update(ti, () =>
            entry(ti, { passedMs: i < 3 ? T0 : null, expiresMs: i === 0 ? T0 + 10 : T0 + 1000 }),
          );
        }
        const elsewhere = { ...t, network: '198.51.100.0/24' };
        await store.update(elsewhere, () => entry(elsewhere, { passedMs: T0 }));
        assert.equal(await store.passedCount(t.network, T0, 10), 3);
        assert.equal(await store.passedCount(t.network, T0 + 10, 10), 2, 'the expired one is not counted');
        assert.equal(await store.passedCount(t.network, T0, 2), 2);
        assert.equal(await store.passedCount('203.0.113.0/24', T0, 10), 0);
        await store.close();
      });

      test('expire forgets expired entries, then the oldest greylisted ones past the cap', async () => {
        const store = await open({ maxEntries: 3 });
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

      test(`a triplet written, the store closed and reopened on another pool, is still known`, async () => {
        const tr = { network: '2001:db8:1:2::/64', sender, recipient };
        const first = await open();
        await first.update(tr, () => entry(tr, { passedMs: T0 + 5, attempts: 3 }));
        await first.close();
        const again = await PostgresGreylistStore.open({ pool: other });
        let seen: GreylistEntry | null = null;
        await again.update(tr, (prev) => {
          seen = prev;
          return prev ?? entry(tr);
        });
        assert.deepEqual(seen, entry(tr, { passedMs: T0 + 5, attempts: 3 }));
        assert.equal(await again.passedCount(tr.network, T0, 5), 1);
        await again.close();
      });

      test('two instances updating one triplet at once lose no update', async () => {
        const a = await open();
        const b = await PostgresGreylistStore.open({ pool: other });
        const rounds = 24;
        // The triplet is new: the first updates race to insert it, the rest to change it.
        const stored = await Promise.all(
          Array.from({ length: rounds }, (_, i) =>
            (i % 2 === 0 ? a : b).update(t, (prev) =>
              prev === null ? entry(t) : { ...prev, attempts: prev.attempts + 1, lastSeenMs: T0 + i },
            ),
          ),
        );
        assert.deepEqual(
          stored.map((e) => e.attempts).sort((x, y) => x - y),
          Array.from({ length: rounds }, (_, i) => i + 1),
          'each update saw the one before it',
        );
        await a.update(t, (prev) => {
          assert.ok(prev !== null);
          assert.equal(prev.attempts, rounds);
          return prev;
        });
        await Promise.all([a.close(), b.close()]);
      });
    });
  }

  test('two instances (two nodes) see each other’s writes', async () => {
    const a = await open();
    const b = await PostgresGreylistStore.open({ pool: other });
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

  test('a schema from a newer Tern is refused, not overwritten', async () => {
    const s = await createTestSchema('greylist');
    const p = openPool({ url: s.url, schema: s.schema, max: 1 });
    try {
      await PostgresGreylistStore.open({ pool: p });
      await p.query("UPDATE tern_migrations SET version = 99 WHERE component = 'greylist'");
      await assert.rejects(PostgresGreylistStore.open({ pool: p }), /version 99, newer than this Tern/);
    } finally {
      await p.end();
      await s.drop();
    }
  });
});
