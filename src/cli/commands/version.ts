// `tern version` (also `tern --version`): which Tern this is, read from package.json, and the Node.js
// it runs on; `--json` for scripts. Reads no configuration and no data.

import { readFileSync } from 'node:fs';
import type { Command } from '../command.ts';
import { writeLine } from '../io.ts';

function packageVersion(): string {
  const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
  const { version } = JSON.parse(text) as { version?: unknown };
  return typeof version === 'string' ? version : 'unknown';
}

export const version: Command = {
  name: 'version',
  args: '[--json]',
  summary: 'print the version of Tern (also: tern --version)',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  readOnly: true,
  async run(ctx, args) {
    const v = packageVersion();
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify({ version: v, node: process.versions.node }));
    } else {
      await writeLine(ctx.io.stdout, `tern ${v}`);
    }
    return 0;
  },
};
