// The MessageWriter both queues hand out: the body spools into a BodySink (memory, then a spill file)
// while it is received, writes run one after another, seal() finishes the sink once (for filters and the
// mailbox store, which may take the spooled file), and commit() hands the sealed body to the queue's own
// durable step (SQLite: the spool name made durable, then the rows; PostgreSQL: rows and body in one
// transaction). abort() drops the message unless a commit has started: the commit decides (a duplicate
// beats a loss).
// Deliberately NOT here: where a committed message lives (the queues).

import type { BodySink, StoredBody } from '../db/body-sink.ts';
import { storageError } from '../db/storage-fs.ts';
import type { Envelope } from '../core/envelope.ts';
import type { MessageWriter } from './queue.ts';

export interface SpooledWriterSteps {
  /** The queue's durable step for the sealed body; resolves once the message is committed. */
  readonly store: (envelope: Envelope, body: StoredBody, prefix: Uint8Array | null) => Promise<void>;
  /** The error a failed store() is reported as (the SMTP reply it maps to). */
  readonly failure: (err: unknown) => unknown;
  /** After a successful store() (PostgreSQL drops the spill file its rows replaced). */
  readonly committed?: () => Promise<void>;
}

export class SpooledMessageWriter implements MessageWriter {
  readonly id: string;
  readonly #sink: BodySink;
  readonly #steps: SpooledWriterSteps;
  #state: 'open' | 'sealed' | 'committing' | 'committed' | 'aborted' | 'failed' = 'open';
  #sealed: Promise<StoredBody> | null = null;
  /** Writes run one after another even if a caller forgets to await. */
  #tail: Promise<void> = Promise.resolve();

  constructor(id: string, sink: BodySink, steps: SpooledWriterSteps) {
    this.id = id;
    this.#sink = sink;
    this.#steps = steps;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== 'open')
      return Promise.reject(new Error(`queue ${this.id}: write after ${this.#state}`));
    const p = this.#tail
      .then(() => this.#sink.write(chunk))
      .catch((err: unknown) => {
        throw storageError(err);
      });
    this.#tail = p.catch(() => undefined);
    return p;
  }

  seal(): Promise<StoredBody> {
    if (this.#state !== 'open' && this.#state !== 'sealed')
      return Promise.reject(new Error(`queue ${this.id}: seal after ${this.#state}`));
    this.#state = 'sealed';
    // The spool name is made durable only by a queue that commits it: when the mailbox store takes
    // every copy (or the body goes into PostgreSQL), the name is dropped and its fsync would be wasted.
    this.#sealed ??= this.#tail
      .then(() => this.#sink.finish({ name: false }))
      .catch((err: unknown) => {
        throw storageError(err);
      });
    return this.#sealed;
  }

  async commit(envelope: Envelope, options: { readonly prefix?: Uint8Array } = {}): Promise<void> {
    if (this.#state !== 'open' && this.#state !== 'sealed')
      throw new Error(`queue ${this.id}: commit after ${this.#state}`);
    const sealing = this.seal();
    this.#state = 'committing';
    try {
      const body = await sealing;
      await this.#steps.store(envelope, body, options.prefix ?? null);
      this.#state = 'committed';
    } catch (err) {
      this.#state = 'failed';
      await this.#sink.discard().catch(() => undefined);
      throw this.#steps.failure(err);
    }
    await this.#steps.committed?.();
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open' && this.#state !== 'sealed') return;
    const sealing = this.#sealed;
    this.#state = 'aborted';
    await this.#tail;
    if (sealing !== null) await sealing.catch(() => undefined);
    await this.#sink.discard();
  }
}
