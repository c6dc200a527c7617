// `tern migrate`: bring the shared PostgreSQL schema ([storage] backend = "postgres") to this version of
// Tern before the nodes start: the directory, the queue and the mailbox store, each at its latest
// version (db/postgres.ts migratePostgres; an advisory lock lets nodes starting at once wait for one
// another). With the embedded SQLite store there is nothing to do: each file migrates when it opens.
// Deliberately NOT here: the schemas (each store owns its steps), copying data between backends.

import { migratePostgres, openPool, pgInt, pgText } from '../../db/postgres.ts';
import { DIRECTORY_STEPS } from '../../directory/postgres-directory.ts';
import { STEPS as QUEUE_STEPS } from '../../queue/postgres-queue.ts';
import { STEPS as MAILBOX_STEPS } from '../../store/postgres-mailbox-schema.ts';
import { STEPS as MAILDROP_STEPS } from '../../store/maildrop-locks-postgres.ts';
import { STEPS as SIEVE_STEPS } from '../../store/sieve-scripts-postgres.ts';
import { STEPS as GREYLIST_STEPS } from '../../store/greylist-postgres.ts';
import type { Command } from '../command.ts';
import { CliError, writeLine } from '../io.ts';

const COMPONENTS: readonly (readonly [string, readonly string[]])[] = [
  ['directory', DIRECTORY_STEPS],
  ['queue', QUEUE_STEPS],
  ['mailbox', MAILBOX_STEPS],
  ['maildrop', MAILDROP_STEPS],
  ['sieve', SIEVE_STEPS],
  ['greylist', GREYLIST_STEPS],
];

export const migrate: Command = {
  name: 'migrate',
  args: '[--json]',
  summary: 'create or upgrade the PostgreSQL schema ([storage] backend = "postgres") before the nodes start',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const config = ctx.config();
    if (config.storage.backend !== 'postgres' || config.storage.url === null) {
      await writeLine(ctx.io.stdout, 'storage is sqlite: each file migrates when it opens, nothing to do');
      return 0;
    }
    const pool = openPool({ url: config.storage.url, max: 2 });
    try {
      for (const [component, steps] of COMPONENTS) await migratePostgres(pool, component, steps);
      const rows = (await pool.query('SELECT component, version FROM tern_migrations ORDER BY component'))
        .rows as Record<string, unknown>[];
      const versions = Object.fromEntries(rows.map((r) => [pgText(r, 'component'), pgInt(r, 'version')]));
      if (args.flags.has('json'))
        await writeLine(ctx.io.stdout, JSON.stringify({ backend: 'postgres', versions }, null, 2));
      else
        for (const [component] of COMPONENTS)
          await writeLine(ctx.io.stdout, `${component}: schema version ${String(versions[component])}`);
      return 0;
    } catch (err) {
      throw new CliError(`migrate: ${(err as Error).message}`);
    } finally {
      await pool.end();
    }
  },
};
