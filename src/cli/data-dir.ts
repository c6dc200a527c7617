// Where the CLI finds a service's files in data_dir, and the refusal of a read-only command (list,
// show, cat) to make any of them: it says which data directory or file it looked for instead of
// showing an empty, freshly created one.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import { assertNever } from '../core/assert-never.ts';
import { dataPaths } from '../main.ts';
import type { OpenedServices } from './command.ts';
import { CliError } from './io.ts';

/** The files each service keeps in data_dir, as a read-only command expects to find them. */
export function serviceFile(config: Config, name: keyof OpenedServices): { path: string; what: string } {
  const paths = dataPaths(config);
  switch (name) {
    case 'directory':
      return { path: paths.directory, what: 'user directory' };
    case 'queue':
      return { path: join(paths.queue, 'queue.db'), what: 'queue database' };
    case 'store':
      return { path: join(paths.mail, 'mail.db'), what: 'mailbox store' };
    default:
      return assertNever(name);
  }
}

/** The data directory a read-only command reads, or why there is nothing to read (exit 1). */
export function existingDataDir(config: Config): string {
  const root = dataPaths(config).root;
  if (!existsSync(root)) {
    throw new CliError(
      `no data directory at ${root} (data_dir of ${config.source ?? 'the built-in defaults'}): nothing to read`,
    );
  }
  return root;
}
