// What every test daemon helper (rspamd, spamd, clamd, opendkim) does with its process: a free loopback
// port to start it on, and a stop that ends its whole process group (preforked workers included) and
// removes its private folder.

import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';

/** A loopback port free right now (the daemon may still lose it: its helper retries on 'port-taken'). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * SIGTERM to the group, SIGKILL after `graceMs`; then SIGKILL to whatever of the group outlived the
 * main process; then the folder (null: keep it).
 */
export async function stopGroup(
  child: ChildProcess,
  exited: Promise<unknown>,
  dir: string | null,
  graceMs = 5_000,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    killGroup(child.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
  if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
  if (dir !== null) await rm(dir, { recursive: true, force: true });
}
