// One request/answer exchange with a filter daemon over a Duplex from the Dial port, for the daemons that
// take a head and the whole message and then answer once (rspamd's HTTP, spamd's SPAMC): the head and
// the message are written with backpressure, streamed from the spool and never whole in memory, while
// the answer is read from the start, bounded, until the daemon's parser says it is complete. A daemon
// that answers (and closes) before the message is fully sent is heard: its answer is reported, not our
// EPIPE. The abort signal, a stream error or a close ends the exchange with an error, the stream is
// destroyed, and the message reader is closed (its iterator's return()) before the exchange returns.
// Deliberately NOT here: dialling (the filter's Dial port), the wire formats and their parsers
// (protocol/filters/), what an answer means (the filters' verdicts), clamd's INSTREAM framing and
// answer reader (clamav.ts: it shares only `drained`), milter's conversation of many frames.

import type { Duplex } from 'node:stream';
import type { FilterMessage } from './filter.ts';

/** What a daemon's parser makes of all the bytes received so far; never `more` once they have ended. */
export type DaemonParse<T> =
  | { readonly kind: 'more' }
  | { readonly kind: 'error'; readonly reason: string }
  | { readonly kind: 'reply'; readonly reply: T };

export interface DaemonExchange<T> {
  /** Names the daemon in errors: `${peer}: connection closed before the answer was complete`. */
  readonly peer: string;
  /** What the daemon's answer is called in errors ("answer", "reply"). */
  readonly answerNoun: string;
  /** `ended` once the daemon has closed its side. */
  readonly parse: (bytes: Uint8Array, ended: boolean) => DaemonParse<T>;
  /** More octets received than this fail the exchange, with `tooLong` as the reason. */
  readonly maxAnswerBytes: number;
  readonly tooLong: string;
  /** Half-close once the message is sent, for daemons (or proxies before them) that wait for the end. */
  readonly endAfterMessage: boolean;
}

/**
 * Send `head` and the message, and read the answer until `exchange.parse` says it is complete. Errors
 * on `stream` are seen through the reads and writes; the stream is destroyed before this returns.
 */
export async function converse<T>(
  stream: Duplex,
  head: Uint8Array,
  message: FilterMessage,
  signal: AbortSignal,
  exchange: DaemonExchange<T>,
): Promise<T> {
  // An error after the reads and writes have stopped listening must not become an uncaught 'error'.
  stream.on('error', () => undefined);
  const answer = readAnswer(stream, signal, exchange);
  answer.catch(() => undefined);
  const sending = sendMessage(stream, head, message, signal, exchange.endAfterMessage).then(
    () => answer,
    // A broken pipe says less than an answer that came before it, if one did; an error of ours
    // (a message not its size, the abort) on an open connection is the error.
    async (err: unknown) => {
      if (!stream.destroyed) throw err;
      try {
        return await answer;
      } catch {
        throw err;
      }
    },
  );
  try {
    return await Promise.race([answer, sending]);
  } finally {
    // Nothing of this check goes on after it: the reads of the message end with the connection.
    stream.destroy();
    await sending.catch(() => undefined);
  }
}

/** `head`, then exactly `message.sizeBytes` octets of the message (more or fewer is an error). */
async function sendMessage(
  stream: Duplex,
  head: Uint8Array,
  message: FilterMessage,
  signal: AbortSignal,
  endAfterMessage: boolean,
): Promise<void> {
  await write(stream, head);
  let sent = 0;
  for await (const chunk of message.read()) {
    signal.throwIfAborted();
    sent += chunk.length;
    if (sent > message.sizeBytes) throw new Error(`message longer than its size (${message.sizeBytes})`);
    await write(stream, chunk);
  }
  if (sent !== message.sizeBytes)
    throw new Error(`message shorter (${sent}) than its size (${message.sizeBytes})`);
  if (endAfterMessage) stream.end();
}

const closedWhileSending = (): Error => new Error('connection closed while sending');

/** Write, waiting for the stream to drain; a stream closed meanwhile rejects (a read() is never left hanging). */
function write(stream: Duplex, chunk: Uint8Array): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.reject(closedWhileSending());
  return stream.write(chunk) ? Promise.resolve() : drained(stream);
}

/**
 * Resolves when `stream` has room again; rejects with the stream's error, or with `closed()` when it
 * closes first or already has (a destroyed stream never drains).
 */
export function drained(stream: Duplex, closed: () => Error = closedWhileSending): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (stream.destroyed) {
      reject(closed());
      return;
    }
    const done = (err?: Error): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', done);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(closed());
    stream.on('drain', onDrain);
    stream.on('close', onClose);
    stream.on('error', done);
  });
}

/** Everything the daemon sends, until the parser has an answer, an error, or the bound is passed. */
function readAnswer<T>(stream: Duplex, signal: AbortSignal, exchange: DaemonExchange<T>): Promise<T> {
  const { peer, answerNoun, parse, maxAnswerBytes } = exchange;
  const cutShort = (): Error => new Error(`${peer}: connection closed before the ${answerNoun} was complete`);
  return new Promise<T>((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | null, value?: T): void => {
      if (settled) return;
      settled = true;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onClose);
      stream.off('error', onError);
      signal.removeEventListener('abort', onAbort);
      if (err !== null) reject(err);
      else resolve(value as T);
    };
    const step = (ended: boolean): void => {
      const p = parse(received, ended);
      if (p.kind === 'reply') finish(null, p.reply);
      else if (p.kind === 'error') finish(new Error(`${peer}: ${p.reason}`));
      else if (ended) finish(cutShort());
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      if (received.length > maxAnswerBytes) return finish(new Error(`${peer}: ${exchange.tooLong}`));
      step(false);
    };
    const onEnd = (): void => step(true);
    // A close without an end is a reset or our own destroy: what came so far is not known to be whole.
    const onClose = (): void => finish(cutShort());
    const onError = (err: Error): void => finish(new Error(`${peer}: ${err.message}`));
    const onAbort = (): void => finish(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) return onAbort();
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onClose);
    stream.on('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
