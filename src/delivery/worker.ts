// The delivery worker (Postfix's qmgr + local, in one loop): wakes when the queue commits a message and
// on a timer, takes what is due, resolves each pending recipient through the directory and settles it
// in the queue: delivered to local mailboxes, bounced for a user that no longer exists, or deferred with
// a backoff when anything fails. A message is never dropped by this code: every error ends as "deferred".
// Deliberately not here (yet): remote delivery (such recipients are deferred far ahead and logged until the
// outbound client lands), DSN generation for bounces, per-domain concurrency.

import { setTimeout as sleep } from 'node:timers/promises';
import { assertNever } from '../core/assert-never.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { Replies, replyFor } from '../core/reply.ts';
import type { Reply } from '../core/reply.ts';
import type { Directory } from '../directory/directory.ts';
import { headerSummary } from '../protocol/headers.ts';
import type { HeaderSummary } from '../protocol/headers.ts';
import type { QueuedMessage, QueuedRecipient, Queue, RecipientOutcome } from '../queue/queue.ts';
import type { MailboxStore } from '../store/mailbox-store.ts';
import { deliverLocal } from './local.ts';

export interface DeliveryWorkerDeps {
  readonly queue: Queue;
  readonly store: MailboxStore;
  readonly directory: Directory;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface DeliveryWorkerOptions {
  /** Messages delivered at the same time. */
  readonly concurrency: number;
  /** How often to look for deferred mail that has come due; commits wake the worker at once. */
  readonly pollMs: number;
  /** How long stop() waits for deliveries in flight before it gives up on them. */
  readonly stopTimeoutMs: number;
  /** Messages taken from the queue per look. */
  readonly batchSize: number;
}

export const DEFAULT_DELIVERY_WORKER_OPTIONS: DeliveryWorkerOptions = {
  concurrency: 8,
  pollMs: 30_000,
  stopTimeoutMs: 10_000,
  batchSize: 100,
};

const MINUTE_MS = 60_000;
const FIRST_RETRY_MS = 5 * MINUTE_MS;
const MAX_RETRY_MS = 60 * MINUTE_MS;
/**
 * How far ahead a recipient that needs remote delivery is parked until the outbound client exists.
 * XXX: a day, not "never": after an upgrade that brings remote delivery, parked mail moves within a day
 * even if nobody flushes the queue.
 */
export const REMOTE_PENDING_DELAY_MS = 24 * 60 * MINUTE_MS;
/** The header summary is read from this much of the message at most. */
const SUMMARY_BYTES = 65_536;

export const DELIVERED_REPLY = '250 2.0.0 delivered to mailbox';
export const REMOTE_PENDING_REPLY = '451 4.4.0 remote delivery not yet implemented';

/** Delay before the next try after the attempt-th failure (1-based): 5 min, doubling, at most 1 h. */
export function retryDelayMs(attempt: number): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 16));
  return Math.min(FIRST_RETRY_MS * 2 ** exponent, MAX_RETRY_MS);
}

function replyLine(reply: Reply): string {
  return `${reply.code} ${reply.enhanced} ${reply.text}`;
}

function isPending(r: QueuedRecipient, nowMs: number): boolean {
  return (r.status === 'queued' || r.status === 'deferred') && r.nextAttemptMs <= nowMs;
}

async function readHead(body: AsyncIterable<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(maxBytes);
  let n = 0;
  // Leaving the loop early closes the iterator, so a large body is not read to its end.
  for await (const chunk of body) {
    const take = chunk.subarray(0, maxBytes - n);
    out.set(take, n);
    n += take.length;
    if (n >= maxBytes) break;
  }
  return out.subarray(0, n);
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

export class DeliveryWorker {
  readonly #deps: DeliveryWorkerDeps;
  readonly #options: DeliveryWorkerOptions;
  readonly #inFlight = new Map<string, Promise<void>>();
  #state: State = 'idle';
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #pass: Promise<void> | null = null;
  /** Set by wake(): look at the queue again once the current look is done. */
  #again = false;
  /** The last look filled a whole batch: more may be due behind it. */
  #backlog = false;
  /**
   * Messages finished since the current look began: what due() said about them is stale (their
   * recipients were settled meanwhile), so they wait for the next look instead of going out twice.
   */
  readonly #finishedSinceLook = new Set<string>();
  #stopped: Promise<void> | null = null;

  constructor(deps: DeliveryWorkerDeps, options: Partial<DeliveryWorkerOptions> = {}) {
    this.#deps = deps;
    this.#options = { ...DEFAULT_DELIVERY_WORKER_OPTIONS, ...options };
    if (!(this.#options.concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
    if (!(this.#options.batchSize >= 1)) throw new RangeError('batchSize must be at least 1');
  }

  start(): void {
    if (this.#state !== 'idle') throw new Error(`delivery worker cannot start when ${this.#state}`);
    this.#state = 'running';
    this.#unsubscribe = this.#deps.queue.onCommit(() => this.wake());
    this.#timer = setInterval(() => this.wake(), this.#options.pollMs);
    // The listeners keep the process alive; a forgotten worker should not.
    this.#timer.unref();
    this.#deps.logger.event(Events.deliveryWorkerStarted, {
      concurrency: this.#options.concurrency,
      pollMs: this.#options.pollMs,
    });
    // Mail left from before a restart is due now.
    this.wake();
  }

  /** Look at the queue as soon as possible (a commit, a CLI flush). Cheap to call often. */
  wake(): void {
    if (this.#state !== 'running') return;
    this.#again = true;
    this.#pass ??= this.#drain().finally(() => {
      this.#pass = null;
    });
  }

  /** Wake, then resolve once nothing is running or in flight: for tests and `queue flush`. */
  async flush(): Promise<void> {
    this.wake();
    while (this.#pass !== null || this.#inFlight.size > 0) {
      await Promise.all([this.#pass, ...this.#inFlight.values()]);
    }
  }

  /** Stop looking at the queue and wait (at most stopTimeoutMs) for deliveries in flight. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    const wasRunning = this.#state === 'running';
    this.#state = 'stopping';
    if (this.#timer) clearInterval(this.#timer);
    this.#unsubscribe?.();
    if (wasRunning) {
      const abort = new AbortController();
      const settled = Promise.all([this.#pass, ...this.#inFlight.values()]).then(() => true);
      const timedOut = sleep(this.#options.stopTimeoutMs, false, { signal: abort.signal }).catch(() => false);
      const finished = await Promise.race([settled, timedOut]);
      abort.abort();
      if (!finished) {
        // Safe to walk away: local delivery is idempotent and the queue still holds every recipient
        // that was not settled, so the next start redoes exactly those.
        this.#deps.logger.warn(Events.deliveryWorkerStopTimeout, {
          inFlight: [...this.#inFlight.keys()],
          stopTimeoutMs: this.#options.stopTimeoutMs,
        });
      }
      this.#deps.logger.event(Events.deliveryWorkerStopped);
    }
    this.#state = 'stopped';
  }

  async #drain(): Promise<void> {
    const { queue, clock, logger } = this.#deps;
    const { batchSize, concurrency } = this.#options;
    while (this.#again && this.#state === 'running') {
      this.#again = false;
      this.#finishedSinceLook.clear();
      let due: QueuedMessage[];
      try {
        due = await queue.due(clock.nowMs(), batchSize);
      } catch (err) {
        // The timer brings the next try.
        logger.error(Events.deliveryWorkerError, { op: 'due', err });
        return;
      }
      this.#backlog = due.length >= batchSize;
      for (const message of due) {
        if (this.#inFlight.has(message.id)) continue;
        while (this.#inFlight.size >= concurrency) await Promise.race(this.#inFlight.values());
        if (this.#state !== 'running') return;
        if (this.#finishedSinceLook.has(message.id) || this.#inFlight.has(message.id)) continue;
        this.#launch(message);
      }
    }
  }

  #launch(message: QueuedMessage): void {
    const task = this.#deliverMessage(message)
      .catch((err: unknown) => {
        this.#deps.logger.error(Events.deliveryWorkerError, { op: 'deliver', queueId: message.id, err });
        return false;
      })
      .then((settledAll) => {
        this.#inFlight.delete(message.id);
        this.#finishedSinceLook.add(message.id);
        // More is due behind a full batch; but not when the queue refuses our outcomes, or this would
        // spin on the same messages instead of waiting for the timer.
        if (this.#backlog && settledAll) this.wake();
      });
    this.#inFlight.set(message.id, task);
  }

  /** Resolves false when an outcome could not be recorded in the queue. */
  async #deliverMessage(message: QueuedMessage): Promise<boolean> {
    const { queue, clock } = this.#deps;
    const log = this.#deps.logger.child({ queueId: message.id });
    let summary: Promise<HeaderSummary> | null = null;
    const getSummary = (): Promise<HeaderSummary> =>
      (summary ??= readHead(queue.readBody(message.id), SUMMARY_BYTES).then(headerSummary));
    let settledAll = true;
    for (const rcpt of message.recipients) {
      // Once stopping, leave the rest due: the next start takes them.
      if (this.#state !== 'running') break;
      if (!isPending(rcpt, clock.nowMs())) continue;
      const outcome = await this.#deliverRecipient(message, rcpt, log, getSummary);
      try {
        await queue.settle(message.id, rcpt.index, outcome);
      } catch (err) {
        // The recipient stays pending in the queue; a redelivery is a no-op in the store.
        log.error(Events.deliveryWorkerError, { op: 'settle', rcpt: rcpt.address, err });
        settledAll = false;
      }
    }
    return settledAll;
  }

  async #deliverRecipient(
    message: QueuedMessage,
    rcpt: QueuedRecipient,
    log: Logger,
    getSummary: () => Promise<HeaderSummary>,
  ): Promise<RecipientOutcome> {
    const { queue, store, directory, clock } = this.#deps;
    try {
      const resolution = await directory.resolve(rcpt.address);
      switch (resolution.kind) {
        case 'unknown':
          return this.#bounce(log, rcpt);
        case 'remote':
          return this.#parkRemote(log, rcpt, [rcpt.address], []);
        case 'local': {
          const { users, forward } = resolution;
          if (users.length === 0 && forward.length === 0) return this.#bounce(log, rcpt);
          if (users.length > 0) {
            const summary = await getSummary();
            for (const user of users) {
              const stored = await deliverLocal(
                { store, clock },
                {
                  queueId: message.id,
                  recipientIndex: rcpt.index,
                  user,
                  envelope: message.envelope,
                  body: () => queue.readBody(message.id),
                  summary,
                },
              );
              log.event(Events.deliveryLocal, {
                rcpt: rcpt.address,
                user,
                uid: stored.uid,
                id: stored.id,
                messageId: summary.messageId,
                sizeBytes: message.sizeBytes,
              });
            }
          }
          if (forward.length > 0) return this.#parkRemote(log, rcpt, forward, users);
          return { status: 'delivered', reply: DELIVERED_REPLY };
        }
        default:
          return assertNever(resolution);
      }
    } catch (err) {
      // Whatever failed (directory, store, body), the message stays: deferred, tried again later.
      // A permanent-looking reply from a store still only defers: losing mail is worse than a delay.
      const reply = replyFor(err);
      const temporary = reply.code >= 400 && reply.code < 500 ? reply : Replies.localError;
      const attempt = rcpt.attempts + 1;
      const delayMs = retryDelayMs(attempt);
      log.warn(Events.deliveryDeferred, { rcpt: rcpt.address, attempt, retryInMs: delayMs, err });
      return { status: 'deferred', reply: replyLine(temporary), nextAttemptMs: clock.nowMs() + delayMs };
    }
  }

  #bounce(log: Logger, rcpt: QueuedRecipient): RecipientOutcome {
    // The user existed at RCPT time (or it would have been refused) and was deleted since.
    const reply = replyLine(Replies.noSuchUser);
    log.warn(Events.deliveryFailed, { rcpt: rcpt.address, reply });
    return { status: 'bounced', reply };
  }

  #parkRemote(
    log: Logger,
    rcpt: QueuedRecipient,
    remote: readonly string[],
    deliveredTo: readonly string[],
  ): RecipientOutcome {
    const nextAttemptMs = this.#deps.clock.nowMs() + REMOTE_PENDING_DELAY_MS;
    log.warn(Events.deliveryRemotePending, { rcpt: rcpt.address, remote, deliveredTo, nextAttemptMs });
    return { status: 'deferred', reply: REMOTE_PENDING_REPLY, nextAttemptMs };
  }
}
