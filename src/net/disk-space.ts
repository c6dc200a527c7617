// Free space of the filesystem holding the data directory, read with statfs and cached briefly (it is
// asked at every MAIL). Deliberately NOT here: what to do about it (the session driver refuses new mail
// with 452 4.3.1 below the reserve, as Postfix does with queue_minfree).

import { statfs } from 'node:fs/promises';

export class DiskSpace {
  readonly #path: string;
  readonly #ttlMs: number;
  #cached: { atMs: number; free: Promise<number | null> } | null = null;
  /** Bytes charged since the cached reading: written after it, so not in it. */
  #charged = 0;

  constructor(path: string, ttlMs = 1000) {
    this.#path = path;
    this.#ttlMs = ttlMs;
  }

  /** Bytes available to this process, or null when the filesystem cannot say. */
  freeBytes(nowMs = Date.now()): Promise<number | null> {
    if (this.#cached === null || nowMs - this.#cached.atMs > this.#ttlMs) {
      this.#charged = 0;
      this.#cached = {
        atMs: nowMs,
        free: statfs(this.#path).then(
          (s) => s.bavail * s.bsize,
          () => null,
        ),
      };
    }
    const charged = this.#charged;
    return this.#cached.free.then((free) => (free === null ? null : Math.max(0, free - charged)));
  }

  /**
   * Bytes just committed to disk (an accepted message), counted against the cached reading until the
   * next statfs: without it, every MAIL within one cache period would see the same free space, and a
   * burst of clients could fill the disk past the reserve before the next reading.
   */
  charge(bytes: number): void {
    this.#charged += bytes;
  }
}
