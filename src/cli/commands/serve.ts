// `tern serve`: run the mail server in the foreground until SIGTERM or SIGINT.
// Everything it does is in src/main.ts; this only hands over the configuration and stdout.

import { runServer } from '../../main.ts';
import type { Command } from '../command.ts';

export const serve: Command = {
  name: 'serve',
  args: '',
  summary: 'run the mail server in the foreground (stop with Ctrl-C or SIGTERM)',
  flags: [],
  minPositionals: 0,
  maxPositionals: 0,
  run(ctx) {
    return runServer(ctx.config(), { stdout: ctx.io.stdout });
  },
};
