// Virus scanning with ClamAV at the `message` stage: the message, as it will be stored, streamed to
// clamd with INSTREAM (protocol/filters/clamd.ts) through the Dial port, chunk by chunk from the spool
// with backpressure, never whole in memory. A virus refuses the message with 554 5.7.1 naming it; a
// clean message is accepted, with `X-Virus-Scanned: ClamAV` on top unless add_header is off; a message
// over max_scan_bytes (never sent) or over clamd's StreamMaxLength (clamd says so and scans nothing)
// gets the on_too_large verdict, unscanned; any other answer, a closed connection or an error throws,
// so the pipeline applies on_failure.
// Deliberately NOT here: the socket (net/dial.ts), the timeout (runFilter aborts the signal, which
// closes the stream), quarantine of infected mail (a refusal keeps it off the queue altogether),
// clamd's SCAN/FILDES forms (they need a shared file system or a Unix socket with fd passing).

import { assertNever } from '../../core/assert-never.ts';
import { Replies, withText } from '../../core/reply.ts';
import {
  ClamdAnswerReader,
  DEFAULT_CHUNK_BYTES,
  END_OF_STREAM,
  INSTREAM_COMMAND,
  frameChunks,
  type ClamdAnswer,
} from '../../protocol/filters/clamd.ts';
import {
  removeAllFields,
  StatelessFilter,
  type Dial,
  type FilterContext,
  type FilterMessage,
  type FilterStage,
  type Verdict,
} from './filter.ts';
import { drained } from './daemon-io.ts';
import type { Duplex } from 'node:stream';

export type OnTooLarge = 'accept' | 'tempfail' | 'reject';

export interface ClamavOptions {
  /** clamd's TCPSocket (`host:port`, `[v6]:port`) or LocalSocket (`unix:/path`). */
  readonly address: string;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly dial: Dial;
  /** Add `X-Virus-Scanned: ClamAV` to clean messages (default true). */
  readonly addHeader?: boolean;
  /** The verdict for a message clamd will not scan for its size (default accept, unscanned). */
  readonly onTooLarge?: OnTooLarge;
  /**
   * A message larger than this is not sent to clamd and gets the on_too_large verdict (default 25 MiB,
   * Debian's StreamMaxLength); null sends every message and lets clamd's StreamMaxLength decide. Keep it
   * at or below StreamMaxLength: clamd's too-large answer can be lost in a race (see #send).
   */
  readonly maxScanBytes?: number | null;
  /** Octets per INSTREAM chunk (default 64 KiB). */
  readonly chunkBytes?: number;
}

/** Debian's clamd.conf StreamMaxLength (25M); clamd's own default is 100M. */
export const DEFAULT_MAX_SCAN_BYTES = 25 * 1024 * 1024;

export const SCANNED_HEADER = { op: 'add', name: 'X-Virus-Scanned', value: 'ClamAV' } as const;

export class ClamavFilter extends StatelessFilter {
  readonly name = 'clamav';
  readonly stages: readonly FilterStage[] = ['message'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #address: string;
  readonly #dial: Dial;
  readonly #addHeader: boolean;
  readonly #onTooLarge: OnTooLarge;
  readonly #chunkBytes: number;
  readonly #maxScanBytes: number | null;

  constructor(opts: ClamavOptions) {
    super();
    this.#address = opts.address;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#dial = opts.dial;
    this.#addHeader = opts.addHeader ?? true;
    this.#onTooLarge = opts.onTooLarge ?? 'accept';
    this.#chunkBytes = Math.max(1, Math.floor(opts.chunkBytes ?? DEFAULT_CHUNK_BYTES));
    this.#maxScanBytes = opts.maxScanBytes === undefined ? DEFAULT_MAX_SCAN_BYTES : opts.maxScanBytes;
  }

  async check(stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    const message = ctx.message;
    if (message === undefined) throw new Error(`clamav: no message at the ${stage} stage`);
    if (this.#maxScanBytes !== null && message.sizeBytes > this.#maxScanBytes)
      return this.#tooLarge(`not scanned: ${message.sizeBytes} octets is more than max_scan_bytes`);
    return this.#verdict(await this.scan(message, signal), message);
  }

  /** clamd's answer for the message; throws when there is none (connection failed, closed, aborted). */
  async scan(message: FilterMessage, signal: AbortSignal): Promise<ClamdAnswer> {
    const stream = await this.#dial(this.#address, signal);
    const reader = new ClamdAnswerReader();
    const progress = { sentBytes: 0 };
    let answer: ClamdAnswer | null = null;
    const answered = new Promise<ClamdAnswer>((resolve, reject) => {
      stream.on('data', (chunk: Uint8Array) => {
        answer ??= reader.push(chunk);
        if (answer !== null) resolve(answer);
      });
      stream.once('end', () => resolve((answer ??= reader.end())));
      stream.once('error', (err: Error & { code?: unknown }) => {
        const midStream = err.code === 'EPIPE' || err.code === 'ECONNRESET';
        reject(
          new Error(
            `clamd ${this.#address}: ${err.message}` +
              (midStream
                ? ` after ${progress.sentBytes} of ${message.sizeBytes} octets` +
                  " (over clamd's StreamMaxLength? keep max_scan_bytes below it)"
                : ''),
          ),
        );
      });
      stream.once('close', () => reject(this.#closed(signal)));
    });
    const sending = this.#send(stream, message, signal, progress, () => answer !== null);
    try {
      // clamd answers before the end of the stream when it is too large: stop sending then.
      await Promise.race([sending, answered]);
      return await answered;
    } finally {
      stream.destroy();
      // The message reader is closed before the check returns: nothing of it outlives the check.
      await sending.catch(() => undefined);
    }
  }

  async #send(
    stream: Duplex,
    message: FilterMessage,
    signal: AbortSignal,
    progress: { sentBytes: number },
    answered: () => boolean,
  ): Promise<void> {
    if (!stream.write(INSTREAM_COMMAND)) await drained(stream, () => this.#closed(signal));
    for await (const chunk of message.read()) {
      for (const [header, piece] of frameChunks(chunk, this.#chunkBytes)) {
        if (answered() || stream.destroyed) return;
        signal.throwIfAborted();
        stream.cork();
        stream.write(header);
        const room = stream.write(piece);
        stream.uncork();
        progress.sentBytes += piece.length;
        if (!room) await drained(stream, () => this.#closed(signal));
        // XXX: clamd closes as soon as it has answered "size limit exceeded", with our unread chunks
        // in its buffer, so a later write of ours meets a reset and Node destroys the socket, unread
        // answer and all. Polling between chunks reads an answer that has arrived before the next
        // write; one arriving between that poll and the write is lost, and the check fails. Hence
        // max_scan_bytes: a message over it is never sent, and gets the on_too_large verdict.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    if (answered() || stream.destroyed) return;
    stream.write(END_OF_STREAM);
  }

  #closed(signal: AbortSignal): Error {
    if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error('clamav: aborted');
    return new Error(`clamd ${this.#address} closed the connection before answering`);
  }

  #verdict(answer: ClamdAnswer, message: FilterMessage): Verdict {
    const sizeBytes = message.sizeBytes;
    switch (answer.kind) {
      case 'clean':
        // A sender's own X-Virus-Scanned: would vouch for what we did not scan: it goes.
        return this.#addHeader
          ? {
              kind: 'accept',
              reason: 'clamav: clean',
              actions: { headers: [...removeAllFields(message.headers, 'X-Virus-Scanned'), SCANNED_HEADER] },
            }
          : { kind: 'accept', reason: 'clamav: clean' };
      case 'virus':
        return {
          kind: 'reject',
          reply: withText(Replies.virusFound, `Message refused: virus ${answer.name} found`),
          reason: `virus ${answer.name}`,
        };
      case 'too-large':
        return this.#tooLarge(`not scanned: ${sizeBytes} octets is more than clamd's StreamMaxLength`);
      case 'error':
        throw new Error(`clamd ${this.#address}: ${answer.message}`);
      case 'malformed':
        throw new Error(`clamd ${this.#address}: ${answer.why}`);
      default:
        return assertNever(answer);
    }
  }

  #tooLarge(reason: string): Verdict {
    switch (this.#onTooLarge) {
      case 'accept':
        return { kind: 'accept', reason };
      case 'tempfail':
        return { kind: 'defer', reply: Replies.filterTempfail, reason };
      case 'reject':
        return {
          kind: 'reject',
          reply: withText(Replies.messageTooBig, 'Message too large to be scanned for viruses'),
          reason,
        };
      default:
        return assertNever(this.#onTooLarge);
    }
  }
}
