// POP3 maildrop locks on PostgreSQL: the MaildropLocks contract, plus what several nodes need: two
// instances (two nodes) exclude each other, and a holder that stops renewing (a crashed node) loses the
// lock when its lease runs out.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openPool, type PgPool } from '../db/postgres.ts';
import { createTestSchema, postgresSkip, type TestSchema } from '../../test/support/postgres.ts';
import { runMaildropLocksContract } from './maildrop-locks.contract.ts';
import { PostgresMaildropLocks } from './maildrop-locks-postgres.ts';

const skip = await postgresSkip();

describe('PostgreSQL maildrop locks', { skip }, () => {
  let schema: TestSchema;
  let pool: PgPool;
  before(async () => {
    schema = await createTestSchema('maildrop');
    pool = openPool({ url: schema.url, schema: schema.schema, max: 4 });
  });
  after(async () => {
    await pool?.end();
    await schema?.drop();
  });

  runMaildropLocksContract('postgres', async () => {
    await pool.query('DELETE FROM maildrop_locks').catch(() => undefined);
    return PostgresMaildropLocks.open({ pool });
  });

  it('two nodes exclude each other; a node that stops renewing loses the lock after its lease', async () => {
    await pool.query('DELETE FROM maildrop_locks');
    let now = Date.UTC(2026, 11, 7);
    const clock = (): number => now;
    const a = await PostgresMaildropLocks.open({ pool, nowMs: clock, leaseMs: 30_000 });
    const b = await PostgresMaildropLocks.open({ pool, nowMs: clock, leaseMs: 30_000 });
    const held = await a.acquire('jürgen@example.org', 'INBOX');
    assert.ok(held !== null);
    assert.equal(await b.acquire('JÜRGEN@example.org', 'inbox'), null);
    now += 30_001; // node A died: no renewal came
    const taken = await b.acquire('jürgen@example.org', 'INBOX');
    assert.ok(taken !== null, 'the lease ran out');
    await held.release(); // the dead holder's late release frees nothing
    assert.equal(await a.acquire('jürgen@example.org', 'INBOX'), null);
    await taken.release();
  });
});
