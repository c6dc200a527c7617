// SpamAssassin through its daemon, spamd, at the end of data: the message is streamed from the spool
// with `SYMBOLS SPAMC/1.5` (protocol/filters/spamd.ts) and spamd's score decides. A score at or above
// `rejectScore` is refused with 554 5.7.1; spam below it (spamd's own `required_score` reached) is
// accepted into the recipients' Junk folder with X-Spam-Flag: YES and X-Spam-Status: Yes; the rest is
// a score verdict with X-Spam-Status: No. X-Spam-Flag and X-Spam-Status fields the client sent are
// removed, so that a sender cannot mark its own message clean. Any failure (spamd down, a status
// other than EX_OK, a reply cut short, the timeout) throws, and the pipeline applies `onFailure`.
// Deliberately NOT here: the SPAMC codec (protocol/filters/spamd.ts), sockets (the Dial port),
// PROCESS/HEADERS (spamd rewriting the message: we add only our two fields), learning (TELL), a size
// limit for what is scanned (spamc's 500 KB default is the caller's to decide).

import type { Duplex } from 'node:stream';
import { Replies, withText } from '../../core/reply.ts';
import { formatSpamdRequest, parseSpamdReply, parseSymbols } from '../../protocol/filters/spamd.ts';
import {
  StatelessFilter,
  type Dial,
  type FilterContext,
  type FilterMessage,
  type FilterStage,
  type HeaderEdit,
  type HeaderField,
  type Verdict,
} from './filter.ts';

/** A SYMBOLS reply is a status line, two fields and a list of rule names. */
const MAX_REPLY_BYTES = 64 * 1024;
/** Keeps X-Spam-Status under RFC 5322's 998-octet line even before folding. */
const MAX_TESTS_CHARS = 800;

export interface SpamAssassinOptions {
  /** spamd's address for the Dial port: `host:port`, `[v6]:port` or `unix:/path`. */
  readonly address: string;
  /** A score at or above this is refused (SpamAssassin's own threshold only files in Junk). */
  readonly rejectScore: number;
  /** The `User` spamd loads preferences for; null sends none (spamd's default user). */
  readonly user: string | null;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly dial: Dial;
  /** Larger messages are not sent to spamd (spamc's own default is 500 KB: spam is small, scans are slow). */
  readonly maxScanBytes?: number;
}

/** What spamd said about one message. */
export interface SpamdResult {
  readonly isSpam: boolean;
  readonly score: number;
  readonly threshold: number;
  readonly tests: readonly string[];
}

export class SpamAssassinFilter extends StatelessFilter {
  readonly name = 'spamassassin';
  readonly stages: readonly FilterStage[] = ['message'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #address: string;
  readonly #rejectScore: number;
  readonly #user: string | null;
  readonly #dial: Dial;
  readonly #maxScanBytes: number;

  constructor(opts: SpamAssassinOptions) {
    super();
    // Checked here so that a bad user is a config error at start, not a tempfail per message.
    if (formatSpamdRequest({ command: 'SYMBOLS', contentLength: 0, user: opts.user }) === null)
      throw new Error(`spamassassin: user ${JSON.stringify(opts.user)} cannot be sent to spamd`);
    if (!Number.isFinite(opts.rejectScore)) throw new Error('spamassassin: reject score must be a number');
    this.#address = opts.address;
    this.#rejectScore = opts.rejectScore;
    this.#user = opts.user;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#dial = opts.dial;
    this.#maxScanBytes = opts.maxScanBytes ?? 512_000;
  }

  async check(_stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    const message = ctx.message;
    if (message === undefined) throw new Error('spamassassin runs at the message stage only');
    if (message.sizeBytes > this.#maxScanBytes)
      return {
        kind: 'accept',
        reason: `not scanned: ${message.sizeBytes} octets is more than max_scan_bytes`,
      };
    const head = formatSpamdRequest({
      command: 'SYMBOLS',
      contentLength: message.sizeBytes,
      user: this.#user,
    });
    if (head === null) throw new Error(`spamassassin: message size ${message.sizeBytes} cannot be sent`);
    const stream = await this.#dial(this.#address, signal);
    // Errors are seen through the reads and writes; one after them must not become an uncaught 'error'.
    stream.on('error', () => undefined);
    try {
      const parsed = await converse(stream, head, message, signal, (bytes, ended) =>
        parseSpamdReply(bytes, ended, MAX_REPLY_BYTES),
      );
      const result: SpamdResult = {
        isSpam: parsed.isSpam,
        score: parsed.score,
        threshold: parsed.threshold,
        tests: parseSymbols(parsed.body),
      };
      return spamassassinVerdict(result, this.#rejectScore, message.headers);
    } finally {
      stream.destroy();
    }
  }
}

/** The verdict for spamd's result: refuse, file in Junk, or a score, with the X-Spam-* fields. */
export function spamassassinVerdict(
  r: SpamdResult,
  rejectScore: number,
  received: readonly HeaderField[],
): Verdict {
  const score = r.score.toFixed(1);
  const required = r.threshold.toFixed(1);
  const tests = testsList(r.tests);
  const reason = `spamassassin: score ${score} / ${required}${r.tests.length > 0 ? ` (${tests})` : ''}`;
  if (r.score >= rejectScore) {
    return {
      kind: 'reject',
      reply: withText(Replies.spamRejected, `Message rejected as spam (score ${score})`),
      reason,
    };
  }
  const status = `${r.isSpam ? 'Yes' : 'No'}, score=${score} required=${required} tests=${tests === '' ? 'none' : tests}`;
  const headers: HeaderEdit[] = [
    ...removeAll(received, 'X-Spam-Flag'),
    ...removeAll(received, 'X-Spam-Status'),
    ...(r.isSpam ? [{ op: 'add', name: 'X-Spam-Flag', value: 'YES' } as const] : []),
    { op: 'add', name: 'X-Spam-Status', value: status },
  ];
  if (r.isSpam) return { kind: 'quarantine', reason, actions: { headers } };
  return { kind: 'score', score: r.score, reason, actions: { headers } };
}

function testsList(tests: readonly string[]): string {
  let out = '';
  for (const t of tests) {
    const next = out === '' ? t : `${out},${t}`;
    if (next.length > MAX_TESTS_CHARS) return `${out},...`;
    out = next;
  }
  return out;
}

/** Edits removing every field of that name, last first so that each occurrence number stays right. */
function removeAll(received: readonly HeaderField[], name: string): HeaderEdit[] {
  const count = received.filter((h) => h.name.toLowerCase() === name.toLowerCase()).length;
  const edits: HeaderEdit[] = [];
  for (let n = count; n >= 1; n--) edits.push({ op: 'change', name, occurrence: n, value: null });
  return edits;
}

type Parse<T> =
  | { readonly kind: 'more' }
  | { readonly kind: 'error'; readonly reason: string }
  | { readonly kind: 'reply'; readonly reply: T };

/**
 * Send `head` and the message, and read the reply until `parse` says it is complete. The reply is
 * read from the start: a daemon that answers (and closes) before the whole message is sent is heard.
 */
async function converse<T>(
  stream: Duplex,
  head: Uint8Array,
  message: FilterMessage,
  signal: AbortSignal,
  parse: (bytes: Uint8Array, ended: boolean) => Parse<T>,
): Promise<T> {
  const answer = readReply(stream, signal, parse);
  answer.catch(() => undefined);
  const sending = sendMessage(stream, head, message, signal).then(
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

async function sendMessage(
  stream: Duplex,
  head: Uint8Array,
  message: FilterMessage,
  signal: AbortSignal,
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
  // spamd reads Content-length octets; the half-close tells it (and spamc-like proxies) nothing more comes.
  stream.end();
}

/** Write, waiting for the stream to drain; a stream closed meanwhile rejects (a read() is never left hanging). */
function write(stream: Duplex, chunk: Uint8Array): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (stream.destroyed || stream.writableEnded) {
      reject(new Error('connection closed while sending'));
      return;
    }
    if (stream.write(chunk)) {
      resolve();
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
    const onClose = (): void => done(new Error('connection closed while sending'));
    stream.on('drain', onDrain);
    stream.on('close', onClose);
    stream.on('error', done);
  });
}

function readReply<T>(
  stream: Duplex,
  signal: AbortSignal,
  parse: (bytes: Uint8Array, ended: boolean) => Parse<T>,
): Promise<T> {
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
      else if (p.kind === 'error') finish(new Error(`spamd: ${p.reason}`));
      else if (ended) finish(new Error('spamd: connection closed before the reply was complete'));
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      if (received.length > MAX_REPLY_BYTES)
        return finish(new Error(`spamd: reply longer than ${MAX_REPLY_BYTES} octets`));
      step(false);
    };
    const onEnd = (): void => step(true);
    // A close without an end is a reset or our own destroy: what came so far is not known to be whole.
    const onClose = (): void => finish(new Error('spamd: connection closed before the reply was complete'));
    const onError = (err: Error): void => finish(new Error(`spamd: ${err.message}`));
    const onAbort = (): void => finish(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) return onAbort();
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onClose);
    stream.on('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
