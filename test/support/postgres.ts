// PostgreSQL for tests: the server every machine here has (127.0.0.1:5432, trust auth, database `test`;
// TERN_TEST_POSTGRES_URL overrides), with one fresh schema per test suite so suites never see each
// other's rows and leave nothing behind. Skipped with a reason where no server answers.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { quoteIdent } from '../../src/db/postgres.ts';

export const TEST_POSTGRES_URL =
  process.env['TERN_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: Promise<string | false> | null = null;

/** Why PostgreSQL tests cannot run here, or false. */
export function postgresSkip(): Promise<string | false> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return false as const;
    } catch (err) {
      return `PostgreSQL is not reachable at ${TEST_POSTGRES_URL}: ${(err as Error).message}`;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return reachable;
}

export interface TestSchema {
  readonly url: string;
  readonly schema: string;
  drop(): Promise<void>;
}

/** A new empty schema; drop() removes it with everything in it. */
export async function createTestSchema(prefix = 't'): Promise<TestSchema> {
  const schema = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${quoteIdent(schema)}`);
  } finally {
    await admin.end();
  }
  return {
    url: TEST_POSTGRES_URL,
    schema,
    async drop() {
      const c = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}
