// `tern reload`: make the running `tern serve` read its configuration again. The server is found through
// the data directory's lock file (its pid), signalled with SIGHUP, and its answer read from
// <data_dir>/tern.reload (src/server/reload.ts): exit 0 when the new snapshot was applied, 1 when the
// server refused it (the reasons are printed; the server runs on as before) or no server runs there.
// The file is read here too, for data_dir: a file with errors is reported without signalling anyone.
// Deliberately NOT here: the reload itself (the server does it, with its own --config file).

import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isHolderAlive, lockPath, readLockHolder } from '../../db/data-dir-lock.ts';
import { readReloadStatus } from '../../server/reload.ts';
import type { ReloadStatus } from '../../server/reload.ts';
import type { Command } from '../command.ts';
import { CliError, writeLine } from '../io.ts';

/** How long to wait for the server's answer: a reload reads certificates and binds sockets, no more. */
const ANSWER_TIMEOUT_MS = 20_000;
const POLL_MS = 50;

export const reload: Command = {
  name: 'reload',
  args: '',
  summary: 'make the running tern serve read its configuration again (SIGHUP) and say how it went',
  flags: [],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx) {
    const { dataDir } = ctx.config();
    const holder = readLockHolder(lockPath(dataDir));
    if (holder === null) throw new CliError(`no tern serve is running on ${dataDir} (no lock file)`);
    if (holder.host !== hostname()) {
      throw new CliError(
        `the tern serve of ${dataDir} runs on host ${holder.host} (pid ${holder.pid}); run tern reload there`,
      );
    }
    if (!isHolderAlive(holder)) {
      throw new CliError(
        `no tern serve is running on ${dataDir} (its lock names pid ${holder.pid}, which is gone)`,
      );
    }
    const before = readReloadStatus(dataDir);
    const baseline = before?.pid === holder.pid ? before.attempt : 0;
    try {
      process.kill(holder.pid, 'SIGHUP');
    } catch (err) {
      throw new CliError(`cannot signal tern serve (pid ${holder.pid}): ${(err as Error).message}`);
    }
    let answer: ReloadStatus | null = null;
    const deadline = Date.now() + ANSWER_TIMEOUT_MS;
    while (answer === null && Date.now() < deadline) {
      await sleep(POLL_MS);
      const status = readReloadStatus(dataDir);
      if (status !== null && status.pid === holder.pid && status.attempt > baseline) answer = status;
    }
    if (answer === null) {
      throw new CliError(
        `sent SIGHUP to tern serve (pid ${holder.pid}), but it gave no answer within ${ANSWER_TIMEOUT_MS / 1000} s; see its log`,
      );
    }
    if (!answer.ok) {
      await writeLine(
        ctx.io.stderr,
        [
          `tern: tern serve (pid ${holder.pid}) refused the new configuration and runs on as before:`,
          ...answer.errors,
        ].join('\n'),
      );
      return 1;
    }
    await writeLine(ctx.io.stdout, `reloaded tern serve (pid ${holder.pid})`);
    if (answer.restartNeeded.length > 0) {
      await writeLine(
        ctx.io.stderr,
        `tern: warning: changes to ${answer.restartNeeded.join(', ')} take effect only after a restart`,
      );
    }
    return 0;
  },
};
