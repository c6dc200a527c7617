// The running server's side of the change log: every second it reads the entries the `tern` CLI
// appended to the queue database (Queue.recordChange: queue actions, directory edits) and logs each as
// `cli.<event>` with what changed, e.g. `cli.queue.hold {ids}` or `cli.user.add {address}`, so the
// server's log says who steered it and how. One indexed read of the newest rows per second.
// Deliberately not here: acting on the changes (the delivery worker wakes on the change counter; the
// directory is read per lookup) and changes made while no server ran (the log starts where it stood
// when the server started: those are not the server's events).

import type { Logger } from '../core/ports.ts';
import type { Queue } from './queue.ts';

export interface ChangeLogWatcher {
  /** Read what is left, then stop. */
  stop(): Promise<void>;
}

/** Most entries read per look; more wait for the next one. */
const BATCH = 100;

export async function watchChangeLog(
  queue: Pick<Queue, 'changesSince' | 'lastChangeSeq'>,
  logger: Logger,
  options: { readonly intervalMs?: number } = {},
): Promise<ChangeLogWatcher> {
  let last = await queue.lastChangeSeq();
  let looking: Promise<void> | null = null;
  const look = async (): Promise<void> => {
    for (;;) {
      const changes = await queue.changesSince(last, BATCH);
      for (const c of changes) {
        logger.event(`cli.${c.event}`, { ...c.detail, changedAt: new Date(c.atMs).toISOString() });
        last = c.seq;
      }
      if (changes.length < BATCH) return;
    }
  };
  const lookOnce = (): Promise<void> => {
    looking ??= look()
      .catch((err: unknown) => logger.warn('queue.change_log.read_failed', { err }))
      .finally(() => {
        looking = null;
      });
    return looking;
  };
  const timer = setInterval(() => void lookOnce(), options.intervalMs ?? 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await looking;
      await lookOnce();
    },
  };
}
