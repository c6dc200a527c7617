// The few file operations the stores use to write message bodies durably, behind a small interface so
// tests can inject a full disk (ENOSPC) without mounting a tmpfs. Also: recognising "disk full" in any
// of its forms (ENOSPC, EDQUOT, SQLITE_FULL) and turning it into the one reply the session sends
// (452 4.3.1, RFC 3463 "mail system full"), so a client retries later instead of losing mail.
// Reads are not here: they go straight to node:fs (nothing to inject there).

import { constants } from 'node:fs';
import { copyFile, link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { Replies, ReplyError } from '../core/reply.ts';
import { SQLITE_FULL, sqliteResultCode } from './sqlite.ts';

export interface WritableFile {
  /** Writes all of bytes (looping over short writes). */
  write(bytes: Uint8Array): Promise<void>;
  /** fsync: data and size on stable storage when this resolves. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface StorageFs {
  /** Create a new file for writing; fails when it exists (a name collision is a bug, never overwrite). */
  createFile(path: string): Promise<WritableFile>;
  /** fsync a directory so a created, renamed or removed entry in it is durable. */
  syncDir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /**
   * A second name for an existing file (a hard link), so one body can move from the queue's spool to the
   * mailbox store without being copied; on a file system without hard links, or across two of them
   * (EXDEV), a copy instead. Not durable until the caller fsyncs the file (a copy) and the folder.
   */
  link(from: string, to: string): Promise<'linked' | 'copied'>;
  unlink(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
}

export const nodeStorageFs: StorageFs = {
  async createFile(path) {
    const handle = await open(path, 'wx', 0o600);
    return {
      async write(bytes) {
        let offset = 0;
        while (offset < bytes.byteLength) {
          const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
          offset += bytesWritten;
        }
      },
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  },
  async syncDir(path) {
    let handle;
    try {
      handle = await open(path, constants.O_RDONLY);
    } catch (err) {
      // Windows cannot open a directory; its metadata journaling covers what the fsync would.
      if (process.platform === 'win32') return;
      throw err;
    }
    try {
      await handle.sync();
    } catch (err) {
      if (process.platform !== 'win32') throw err;
    } finally {
      await handle.close();
    }
  },
  rename: (from, to) => rename(from, to),
  async link(from, to) {
    try {
      await link(from, to);
      return 'linked';
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw err;
      await copyFile(from, to, constants.COPYFILE_EXCL);
      return 'copied';
    }
  },
  unlink: (path) => unlink(path),
  async mkdir(path) {
    await mkdir(path, { recursive: true });
  },
};

/** Remove a file when it exists; any other failure is returned (for the log), never thrown. */
export async function removeQuietly(fs: StorageFs, path: string): Promise<Error | null> {
  try {
    await fs.unlink(path);
    return null;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    return err instanceof Error ? err : new Error(String(err));
  }
}

export function errnoCode(err: unknown): string | null {
  if (typeof err !== 'object' || err === null) return null;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : null;
}

/** True when err (or a cause of it) says the disk or the quota is full. */
export function isDiskFull(err: unknown): boolean {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    const code = errnoCode(e);
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (sqliteResultCode(e) === SQLITE_FULL) return true;
    if (e instanceof ReplyError && e.reply === Replies.insufficientStorage) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** What a store throws on a write failure: 452 4.3.1 for a full disk, the error itself otherwise (451). */
export function storageError(err: unknown): unknown {
  if (err instanceof ReplyError) return err;
  return isDiskFull(err) ? new ReplyError(Replies.insufficientStorage, { cause: err }) : err;
}

/** A Node-style errno error, for fault injection in tests. */
export function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: simulated failure, ${syscall}`);
  err.code = code;
  err.syscall = syscall;
  return err;
}

/**
 * A StorageFs that fails like a full disk (ENOSPC on create, write and sync) while full() is true.
 * For tests of every store; lives here so each contract harness can use the same one.
 */
export function faultyStorageFs(full: () => boolean, base: StorageFs = nodeStorageFs): StorageFs {
  const check = (syscall: string): void => {
    if (full()) throw errnoError('ENOSPC', syscall);
  };
  return {
    async createFile(path) {
      check('open');
      const file = await base.createFile(path);
      return {
        async write(bytes) {
          check('write');
          await file.write(bytes);
        },
        async sync() {
          check('fsync');
          await file.sync();
        },
        close: () => file.close(),
      };
    },
    async syncDir(path) {
      check('fsync');
      await base.syncDir(path);
    },
    rename: (from, to) => base.rename(from, to),
    async link(from, to) {
      check('link');
      return base.link(from, to);
    },
    unlink: (path) => base.unlink(path),
    mkdir: (path) => base.mkdir(path),
  };
}
