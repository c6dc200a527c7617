import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DataDirLockedError, isHolderAlive, lockDataDir, lockPath, readLockHolder } from './data-dir-lock.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tern-lock-'));
  dirs.push(d);
  return d;
}

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

test('the lock holds our pid; a second lock on the same directory is refused naming it; release removes it', () => {
  const dir = freshDir();
  const lock = lockDataDir(dir);
  assert.equal(readFileSync(lockPath(dir), 'utf8').split('\n')[0], String(process.pid));
  assert.throws(
    () => lockDataDir(dir),
    (err: unknown) =>
      err instanceof DataDirLockedError &&
      err.holder.pid === process.pid &&
      err.message.includes(`pid ${process.pid}`),
  );
  lock.release();
  assert.equal(existsSync(lockPath(dir)), false);
  lock.release(); // idempotent
  lockDataDir(dir).release();
  assert.deepEqual(readdirSync(dir), [], 'no temporary files are left behind');
});

test('a lock left by a process that is gone is taken over', () => {
  const dir = freshDir();
  const pid = deadPid();
  writeFileSync(lockPath(dir), `${pid}\nstart=\nhost=${hostname()}\n`);
  assert.equal(isHolderAlive(readLockHolder(lockPath(dir))!), false);
  const lock = lockDataDir(dir);
  assert.equal(readLockHolder(lockPath(dir))?.pid, process.pid);
  lock.release();
  assert.deepEqual(readdirSync(dir), []);
});

test(
  'a lock whose pid was reused by another process (another start time) is stale',
  { skip: !existsSync('/proc/self/stat') },
  () => {
    const dir = freshDir();
    writeFileSync(lockPath(dir), `${process.ppid}\nstart=1\nhost=${hostname()}\n`);
    lockDataDir(dir).release();
  },
);

test('a garbage lock file is stale; a lock from another host is never taken over', () => {
  const dir = freshDir();
  writeFileSync(lockPath(dir), 'not a pid\n');
  lockDataDir(dir).release();
  writeFileSync(lockPath(dir), `${deadPid()}\nstart=\nhost=elsewhere.example\n`);
  assert.throws(() => lockDataDir(dir), /on host elsewhere\.example/);
});

test('a lock of a live process (our parent) is respected', () => {
  const dir = freshDir();
  writeFileSync(lockPath(dir), `${process.ppid}\nhost=${hostname()}\n`);
  assert.throws(
    () => lockDataDir(dir),
    (err: unknown) => err instanceof DataDirLockedError && err.holder.pid === process.ppid,
  );
});
