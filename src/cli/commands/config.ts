// `tern config check [--json]`: read the configuration file the way `tern serve` does and report every
// error and warning, one per line as `FILE:LINE: key: message` (a warning's message starts with
// "warning: "), then a summary line; or one JSON object with --json. Exit 0 when the file is valid
// (warnings alone still 0), 1 when it has errors, 2 on bad usage. Nothing is created: the data directory
// is only looked at, when it exists, for checks that need its contents.
// Deliberately NOT here: TLS files and listener addresses (`tern serve` reads and binds those at start
// and at each reload, and reports them with the key at fault).

import { existsSync } from 'node:fs';
import type { Config } from '../../config/config.ts';
import type { ConfigError } from '../../config/load.ts';
import { ConfigLoadError, formatConfigErrors } from '../../config/load.ts';
import { dataPaths } from '../../main.ts';
import { postmasterProblem } from '../../directory/postmaster.ts';
import type { Command, CommandContext } from '../command.ts';
import { writeLine } from '../io.ts';

const NO_FILE = '(built-in defaults)';

/**
 * Checks that need what is in the data directory, run only when its user directory exists (nothing is
 * created; a fresh install gets its postmaster mailbox from `tern serve`, see directory/postmaster.ts).
 */
async function dataDirChecks(ctx: CommandContext, config: Config): Promise<ConfigError[]> {
  if (!existsSync(dataPaths(config).directory)) return [];
  const problem = await ctx.withServices(['directory'], ({ directory }) =>
    postmasterProblem(config, directory),
  );
  return problem === null ? [] : [{ key: 'queue.postmaster', line: null, message: problem }];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export const configCheck: Command = {
  name: 'config check',
  args: '[--json]',
  summary: 'check the configuration file: every error and warning as FILE:LINE: key: message',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  readOnly: true,
  async run(ctx, args) {
    const warnings: ConfigError[] = [];
    let errors: readonly ConfigError[] = [];
    let file: string | null = null;
    try {
      const config = ctx.readConfig((w, source) => {
        warnings.push(w);
        file = source;
      });
      file = config.source;
      warnings.push(...(await dataDirChecks(ctx, config)));
    } catch (err) {
      if (!(err instanceof ConfigLoadError)) throw err;
      errors = err.errors;
      file = err.source;
    }
    const valid = errors.length === 0;
    if (args.flags.has('json')) {
      const shape = (e: ConfigError): { line: number | null; key: string; message: string } => ({
        line: e.line,
        key: e.key,
        message: e.message,
      });
      await writeLine(
        ctx.io.stdout,
        JSON.stringify({ file, valid, errors: errors.map(shape), warnings: warnings.map(shape) }, null, 2),
      );
      return valid ? 0 : 1;
    }
    const source = file ?? NO_FILE;
    const lines = [
      ...errors.map((e) => formatConfigErrors([e], source)),
      ...warnings.map((w) => formatConfigErrors([{ ...w, message: `warning: ${w.message}` }], source)),
    ];
    const summary = valid
      ? warnings.length === 0
        ? `${source}: ok`
        : `${source}: ok, ${plural(warnings.length, 'warning')}`
      : `${source}: ${plural(errors.length, 'error')}`;
    await writeLine(ctx.io.stdout, [...lines, summary].join('\n'));
    return valid ? 0 : 1;
  },
};
