// A one-way channel of byte chunks from the connection (APPEND's literal as it arrives) to a consumer
// that reads an AsyncIterable (the store writing the message): push() resolves once the consumer has
// taken the chunk, so at most one chunk waits and the socket is paused meanwhile (backpressure, never a
// whole message in memory). A consumer that stops early (an error) releases every waiting push.
// Deliberately NOT here: where the chunks come from or go.

export class ChunkChannel implements AsyncIterable<Uint8Array> {
  private queued: { chunk: Uint8Array; taken: () => void } | null = null;
  private ended = false;
  private abandoned = false;
  /** Set by fail(): the consumer's next read throws it, so a half-sent message is never taken as whole. */
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  /** Hand one chunk over; resolves when it was taken (or the consumer is gone). */
  push(chunk: Uint8Array): Promise<void> {
    if (this.abandoned || this.ended) return Promise.resolve();
    return new Promise<void>((taken) => {
      this.queued = { chunk, taken };
      this.signal();
    });
  }

  end(): void {
    this.ended = true;
    this.signal();
  }

  /** The producer is gone mid-message (a dropped connection): the consumer's iteration throws. */
  fail(reason: Error): void {
    this.failure = reason;
    this.abandon();
    this.signal();
  }

  /** The consumer is gone: pushes resolve at once from now on. */
  abandon(): void {
    this.abandoned = true;
    const q = this.queued;
    this.queued = null;
    q?.taken();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    try {
      for (;;) {
        if (this.failure !== null) throw this.failure;
        const q = this.queued;
        if (q !== null) {
          this.queued = null;
          q.taken();
          yield q.chunk;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    } finally {
      this.abandon();
    }
  }
}
