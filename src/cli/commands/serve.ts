// `tern serve`: run the mail server in the foreground until SIGTERM or SIGINT; SIGHUP (or `tern reload`)
// reads the configuration file again. Everything it does is in src/main.ts; this only hands over the
// configuration with its warnings, a way to read the file again, and stdout.

import type { ConfigError } from '../../config/load.ts';
import { runServer } from '../../main.ts';
import type { Command } from '../command.ts';

export const serve: Command = {
  name: 'serve',
  args: '[--catch]',
  summary:
    'run the mail server in the foreground (stop with Ctrl-C or SIGTERM, reload with SIGHUP); --catch: catcher mode',
  flags: ['catch'],
  minPositionals: 0,
  maxPositionals: 0,
  run(ctx, args) {
    // --catch holds for the whole run, reloads included (docs/catch.md).
    const catchMode = args.flags.has('catch');
    const read = (): { config: ReturnType<typeof ctx.config>; warnings: ConfigError[] } => {
      const warnings: ConfigError[] = [];
      const read = ctx.readConfig((w) => warnings.push(w));
      const config = catchMode && !read.catch ? Object.freeze({ ...read, catch: true }) : read;
      return { config, warnings };
    };
    const { config, warnings } = read();
    return runServer(config, { stdout: ctx.io.stdout, warnings, load: read });
  },
};
