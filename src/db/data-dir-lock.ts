// The data directory lock: one `tern serve` per data_dir, for the life of the process. Two servers on
// one queue would both deliver every message. Node has no flock() without a native addon, so the lock
// is a file, <data_dir>/tern.lock, that only one process can create:
//   line 1: the holder's pid (so `kill -HUP $(head -n1 data/tern.lock)` works), then `start=` (the
//   process start time from /proc/<pid>/stat, when there is one) and `host=` (the host name).
// It is written whole to a private temporary file and hard-linked into place (link() fails with EEXIST
// when the lock exists), so nobody ever reads a half-written lock; where link() is not supported it is
// created with O_EXCL ('wx') instead. A lock is stale, and is taken over, when its process is gone:
// process.kill(pid, 0) says ESRCH, or /proc says the pid is a zombie or was started at another time
// (the pid was reused). A lock written on another host is never judged stale (we cannot see its
// processes): it must be removed by hand. CLI commands do not take the lock: they run beside the server.
// Deliberately NOT here: anything about what the server does while it holds the lock.

import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = 'tern.lock';

export interface LockHolder {
  readonly pid: number;
  /** The process start time (clock ticks since boot, /proc/<pid>/stat field 22); null when unknown. */
  readonly start: string | null;
  readonly host: string;
}

/** The data directory is locked by a live `tern serve`; the message names its pid. */
export class DataDirLockedError extends Error {
  readonly holder: LockHolder;
  constructor(path: string, holder: LockHolder) {
    const where = holder.host === hostname() ? '' : ` on host ${holder.host}`;
    super(
      `data directory is in use by another tern serve (pid ${holder.pid}${where}): ${path}; stop that server first, or remove the lock file if no such server runs`,
    );
    this.name = 'DataDirLockedError';
    this.holder = holder;
  }
}

export interface DataDirLock {
  readonly path: string;
  /** Remove the lock when it is still ours. Idempotent. */
  release(): void;
}

export function lockPath(dataDir: string): string {
  return join(dataDir, LOCK_FILE);
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces), and the state. */
function procStat(pid: number): { start: string; state: string } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = fields[19];
  return state === undefined || start === undefined ? null : { start, state };
}

function describeSelf(): LockHolder {
  return { pid: process.pid, start: procStat(process.pid)?.start ?? null, host: hostname() };
}

function formatHolder(h: LockHolder): string {
  return `${h.pid}\nstart=${h.start ?? ''}\nhost=${h.host}\n`;
}

/** The holder a lock file names; null when the file is absent. Garbage reads as pid 0 (stale). */
export function readLockHolder(path: string): LockHolder | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const lines = text.split('\n');
  const pid = /^\d{1,10}$/.test(lines[0] ?? '') ? Number(lines[0]) : 0;
  const field = (name: string): string | null => {
    const line = lines.find((l) => l.startsWith(`${name}=`));
    const value = line?.slice(name.length + 1) ?? '';
    return value === '' ? null : value;
  };
  return { pid, start: field('start'), host: field('host') ?? hostname() };
}

/** Whether the process a lock names still runs (always true for another host's lock). */
export function isHolderAlive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true;
  if (!(holder.pid > 0)) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(holder.pid);
  if (stat === null) return true; // no /proc (not Linux): kill(0) is all we know
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return holder.start === null || stat.start === holder.start;
}

function sameHolder(a: LockHolder, b: LockHolder | null): boolean {
  return b !== null && a.pid === b.pid && a.start === b.start && a.host === b.host;
}

/** Create the lock file holding `content`, atomically; false when it already exists. */
function createLock(path: string, content: string): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { flag: 'wx', mode: 0o644, flush: true });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw err;
    // A file system without hard links: O_EXCL, at the cost of a moment where the file is empty.
    try {
      writeFileSync(path, content, { flag: 'wx', mode: 0o644, flush: true });
      return true;
    } catch (wxErr) {
      if ((wxErr as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw wxErr;
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Take a stale lock away: rename it aside (atomic, so two starters cannot both remove it), and check
 * that what was moved is the stale lock that was judged; if a live server's lock was moved instead
 * (it took the stale one over in between), put it back.
 */
function removeStale(path: string, stale: LockHolder): void {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = readLockHolder(aside);
  if (moved === null || sameHolder(stale, moved) || !isHolderAlive(moved)) {
    rmSync(aside, { force: true });
    return;
  }
  // XXX: a third starter could create a lock in the instant between the rename and this link; the
  // link then fails and that starter and the server whose lock this was both run. It takes three
  // servers started at once on one data_dir with a stale lock present.
  try {
    linkSync(aside, path);
  } finally {
    rmSync(aside, { force: true });
  }
}

/** Hold the lock on `dataDir` (which must exist), or throw DataDirLockedError naming the holder. */
export function lockDataDir(dataDir: string): DataDirLock {
  const path = lockPath(dataDir);
  const self = describeSelf();
  for (let attempt = 0; ; attempt++) {
    if (createLock(path, formatHolder(self))) break;
    const holder = readLockHolder(path);
    if (holder === null) continue; // released between our try and the read
    if (isHolderAlive(holder) || attempt >= 5) throw new DataDirLockedError(path, holder);
    removeStale(path, holder);
  }
  let held = true;
  const releaseOnExit = (): void => release();
  function release(): void {
    if (!held) return;
    held = false;
    process.off('exit', releaseOnExit);
    try {
      if (sameHolder(self, readLockHolder(path))) rmSync(path, { force: true });
    } catch {
      // A lock left behind is stale once this process is gone; the next start takes it over.
    }
  }
  // process.exit() (a forced shutdown) skips the orderly stop: the lock still goes.
  process.on('exit', releaseOnExit);
  return { path, release };
}
