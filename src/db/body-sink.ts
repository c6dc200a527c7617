// Receives a message body as it streams in: small bodies stay in memory (they go into the database as a
// BLOB), and once the body passes spillBytes it is written to a file as the chunks arrive, so a 100 MiB
// message never sits in memory. finish() makes the file durable (fsync the file, then its directory)
// before the caller commits a row that points at it. Not here: naming files or deciding where they
// live (the queue and the mailbox store each know their layout), reading bodies back.

import { dirname } from 'node:path';
import type { StorageFs, WritableFile } from './storage-fs.ts';
import { removeQuietly } from './storage-fs.ts';

/**
 * Bodies of 64 KiB and more are files from the start (issue 14): a file is linked from the queue's spool
 * into the mailbox store, so a large body is written once and never passes through a WAL; below this,
 * a BLOB row costs less than a file, its fsyncs and its directory entry.
 */
export const DEFAULT_SPILL_BYTES = 64 * 1024 - 1;

export type StoredBody =
  | { readonly kind: 'inline'; readonly bytes: Uint8Array; readonly sizeBytes: number }
  | { readonly kind: 'file'; readonly path: string; readonly sizeBytes: number };

export interface BodySinkOptions {
  /** Where the body goes if it spills; the file must not exist yet. */
  readonly path: string;
  readonly spillBytes: number;
  readonly fs: StorageFs;
}

export class BodySink {
  readonly #options: BodySinkOptions;
  #chunks: Uint8Array[] = [];
  #sizeBytes = 0;
  #file: WritableFile | null = null;
  #created = false;
  #state: 'open' | 'finished' | 'discarded' = 'open';
  /** The first write failure: every later call fails with it, so a commit cannot skip a lost chunk. */
  #error: Error | null = null;

  constructor(options: BodySinkOptions) {
    this.#options = options;
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** True once the body lives in a file. */
  get spilled(): boolean {
    return this.#created;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#error !== null) throw this.#error;
    if (this.#state !== 'open') throw new Error(`body sink: write after ${this.#state}`);
    if (chunk.byteLength === 0) return;
    try {
      await this.#write(chunk);
    } catch (err) {
      this.#error = err instanceof Error ? err : new Error(String(err));
      throw this.#error;
    }
  }

  async #write(chunk: Uint8Array): Promise<void> {
    this.#sizeBytes += chunk.byteLength;
    if (!this.#created && this.#sizeBytes <= this.#options.spillBytes) {
      // Copy: the caller may reuse its buffer once the write resolves.
      this.#chunks.push(chunk.slice());
      return;
    }
    if (!this.#created) {
      this.#created = true;
      this.#file = await this.#options.fs.createFile(this.#options.path);
      const buffered = this.#chunks;
      this.#chunks = [];
      for (const b of buffered) await this.#file.write(b);
    }
    await this.#file!.write(chunk);
  }

  /**
   * Durable when this resolves: for a spilled body, file and directory entry are fsynced. `name: false`
   * leaves the directory entry to the caller (nameDurable()): a body that another store links under a
   * name of its own needs its bytes durable, not this name, which it may never commit.
   */
  async finish(options: { readonly name?: boolean } = {}): Promise<StoredBody> {
    if (this.#error !== null) throw this.#error;
    if (this.#state !== 'open') throw new Error(`body sink: finish after ${this.#state}`);
    this.#state = 'finished';
    if (!this.#created) {
      const bytes = concat(this.#chunks, this.#sizeBytes);
      this.#chunks = [];
      return { kind: 'inline', bytes, sizeBytes: this.#sizeBytes };
    }
    const file = this.#file!;
    this.#file = null;
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    if (options.name !== false) await this.nameDurable();
    return { kind: 'file', path: this.#options.path, sizeBytes: this.#sizeBytes };
  }

  /** Make the spilled file's directory entry durable (after finish({ name: false })). */
  async nameDurable(): Promise<void> {
    if (this.#created) await this.#options.fs.syncDir(dirname(this.#options.path));
  }

  /** Drop the body: close and remove the file if one was made. Safe to call more than once. */
  async discard(): Promise<void> {
    this.#state = 'discarded';
    this.#chunks = [];
    const file = this.#file;
    this.#file = null;
    if (file !== null) await file.close().catch(() => undefined);
    if (this.#created) {
      const err = await removeQuietly(this.#options.fs, this.#options.path);
      if (err !== null) throw err;
    }
  }
}

function concat(chunks: readonly Uint8Array[], sizeBytes: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(sizeBytes);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
