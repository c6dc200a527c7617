// Runs SQLite WAL checkpoints on a worker thread (checkpoint-worker.ts), one thread for every database
// of the process, so the event loop never waits for a checkpoint's copy and fsyncs. Used by
// group-commit.ts when it fsyncs the WAL itself (synchronous=NORMAL, wal_autocheckpoint=0).
// The thread is unref'd: it never keeps the process alive. If it cannot start or dies, every request
// fails and the caller checkpoints on its own connection instead.

import { Worker } from 'node:worker_threads';
import type { CheckpointReply, CheckpointRequest } from './checkpoint-worker.ts';

export interface CheckpointResult {
  /** Another connection held a lock, so the checkpoint could not copy everything. */
  readonly busy: boolean;
  readonly walFrames: number;
}

export class Checkpointer {
  static #shared: Checkpointer | null = null;

  /** The process-wide checkpointer, started on first use. */
  static shared(): Checkpointer {
    if (Checkpointer.#shared === null || Checkpointer.#shared.#broken) {
      Checkpointer.#shared = new Checkpointer();
    }
    return Checkpointer.#shared;
  }

  /** The process-wide checkpointer if one was started (a CLI run that never checkpointed has none). */
  static started(): Checkpointer | null {
    return Checkpointer.#shared;
  }

  readonly #worker: Worker;
  readonly #pending = new Map<
    number,
    { resolve: (r: CheckpointResult) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;
  #broken = false;

  private constructor() {
    this.#worker = new Worker(new URL('./checkpoint-worker.ts', import.meta.url));
    this.#worker.on('message', (reply: CheckpointReply) => {
      const waiter = this.#pending.get(reply.id);
      if (waiter === undefined) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiter.resolve({ busy: reply.busy, walFrames: reply.walFrames });
      else waiter.reject(new Error(`checkpoint: ${reply.error}`));
    });
    const fail = (err: Error): void => {
      this.#broken = true;
      for (const waiter of this.#pending.values()) waiter.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`checkpoint worker exited (${code})`)));
    // After the listeners: attaching a 'message' listener refs the worker again.
    this.#worker.unref();
  }

  checkpoint(path: string): Promise<CheckpointResult> {
    if (this.#broken) return Promise.reject(new Error('checkpoint worker is not running'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#post({ kind: 'checkpoint', id, path });
    });
  }

  /** Close the worker's connection to path (its database is closing). */
  forget(path: string): void {
    if (!this.#broken) this.#post({ kind: 'forget', path });
  }

  #post(msg: CheckpointRequest): void {
    this.#worker.postMessage(msg);
  }
}
