// The PostgreSQL Sieve script store: the SieveScriptStore contract on a fresh schema per backend, where
// every connect() is a new pool (another node); what survives a reopen; limits read per write; and two
// nodes writing one user's scripts and answering one sender's vacation at the same time.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { openPool, type PgPool } from '../db/postgres.ts';
import { createTestSchema, postgresSkip, type TestSchema } from '../../test/support/postgres.ts';
import type { SieveScriptLimits } from './sieve-scripts.ts';
import { runSieveScriptStoreContract } from './sieve-scripts.contract.ts';
import { PostgresSieveScriptStore } from './sieve-scripts-postgres.ts';

const skip = await postgresSkip();

describe('PostgresSieveScriptStore', { skip }, () => {
  const schemas: TestSchema[] = [];
  const pools: PgPool[] = [];
  after(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await Promise.all(schemas.map((s) => s.drop()));
  });

  /** A new empty schema; each call of the returned function is another node's pool on it. */
  async function freshSchema(): Promise<() => PgPool> {
    const schema = await createTestSchema('sieve');
    schemas.push(schema);
    return () => {
      const pool = openPool({ url: schema.url, schema: schema.schema, max: 3 });
      pools.push(pool);
      return pool;
    };
  }

  runSieveScriptStoreContract('postgres', async (limits?: SieveScriptLimits) => {
    const node = await freshSchema();
    return {
      connect: () =>
        PostgresSieveScriptStore.open(limits === undefined ? { pool: node() } : { pool: node(), limits }),
    };
  });

  it('keeps scripts and the active one across close and reopen (and migrates once)', async () => {
    const node = await freshSchema();
    const pool = node();
    const first = await PostgresSieveScriptStore.open({ pool });
    await first.put('日本@例え.jp', '日本', 'keep;\r\n');
    await first.put('日本@例え.jp', 'Ferien ü', 'discard;');
    await first.setActive('日本@例え.jp', 'Ferien ü');
    await first.close();
    const second = await PostgresSieveScriptStore.open({ pool: node() });
    assert.deepEqual(await second.list('日本@例え.jp'), [
      { name: 'Ferien ü', active: true },
      { name: '日本', active: false },
    ]);
    assert.deepEqual(await second.getActive('日本@例え.jp'), { name: 'Ferien ü', script: 'discard;' });
    const r = await pool.query("SELECT version FROM tern_migrations WHERE component = 'sieve'");
    assert.deepEqual(r.rows, [{ version: 1 }]);
    await second.close();
  });

  it('limits given as a function apply to the next write', async () => {
    let maxScripts = 1;
    const store = await PostgresSieveScriptStore.open({
      pool: (await freshSchema())(),
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

  it('two nodes writing at once: the quota and the one-active rule hold', async () => {
    const node = await freshSchema();
    const limits = { maxScripts: 40, maxScriptBytes: 1000 };
    const [a, b] = await Promise.all([
      PostgresSieveScriptStore.open({ pool: node(), limits }),
      PostgresSieveScriptStore.open({ pool: node(), limits }),
    ]);
    const u = 'jürgen@exämple.org';
    // Each node runs 30 put-then-activate steps, three at a time (its pool's size).
    const run = async (store: PostgresSieveScriptStore, prefix: string): Promise<number> => {
      let stored = 0;
      await Promise.all(
        Array.from({ length: 3 }, async (_, lane) => {
          for (let i = lane; i < 30; i += 3) {
            const r = await store.put(u.toUpperCase(), `${prefix} ü ${i}`, 'keep;');
            if (r.ok) stored++;
            await store.setActive(u, r.ok ? `${prefix} ü ${i}` : null);
          }
        }),
      );
      return stored;
    };
    const [sa, sb] = await Promise.all([run(a, 'a'), run(b, 'b')]);
    assert.equal(sa + sb, 40);
    const list = await a.list(u);
    assert.equal(list.length, 40);
    assert.ok(list.filter((e) => e.active).length <= 1);
    await Promise.all([a.close(), b.close()]);
  });

  it('two nodes answering one sender at once: vacation is due exactly once', async () => {
    const node = await freshSchema();
    const [a, b] = await Promise.all([
      PostgresSieveScriptStore.open({ pool: node() }),
      PostgresSieveScriptStore.open({ pool: node() }),
    ]);
    const t0 = Date.UTC(2026, 11, 1);
    const day = 86_400_000;
    for (const [round, now] of [t0, t0 + 7 * day].entries()) {
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (i % 2 === 0 ? a : b).vacationDue(
            'jürgen@exämple.org',
            'h',
            i % 3 === 0 ? 'Bob@X.test' : 'bob@x.test',
            now,
            7 * day,
          ),
        ),
      );
      assert.equal(answers.filter(Boolean).length, 1, `round ${round}`);
    }
    await Promise.all([a.close(), b.close()]);
  });
});
