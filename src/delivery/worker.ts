// The delivery worker (Postfix's qmgr + local + bounce, in one loop): wakes when the queue commits a
// message, when another process steers the queue (changeCounter), and on a timer; takes what is due and
// settles each pending recipient: delivered into local mailboxes, forwarded (an alias to other domains:
// the message is queued again for those addresses), sent to remote hosts (remote.ts), bounced, or deferred
// on the retry schedule (queue/schedule.ts) until the queue lifetime ends. Afterwards it queues the DSNs
// the outcomes call for (RFC 3461/3464): failures, one delay warning, successes when asked; a failed DSN
// goes to the postmaster (double bounce), and nothing ever bounces a double bounce.
// A message is never dropped by this code: every error ends as "deferred". The one refusal it makes on
// its own is a mailbox quota (the directory's limits, the store's usage, quota.ts's overQuota): that
// recipient fails with 552 5.2.2 and gets a DSN (#overQuota says why not a deferral).

import { setTimeout as sleep } from 'node:timers/promises';
import { defaultConfig, type Config } from '../config/config.ts';
import { lmtpTransportOf } from '../config/transports.ts';
import type { EnvelopeRecipient } from '../core/envelope.ts';
import { assertNever } from '../core/assert-never.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { Replies, replyFor } from '../core/reply.ts';
import type { Reply } from '../core/reply.ts';
import type { Directory } from '../directory/directory.ts';
import { postmasterAddress } from '../directory/postmaster.ts';
import { headerSummary, parseHeaderBlock } from '../protocol/headers.ts';
import type { HeaderSummary } from '../protocol/headers.ts';
import { OPERATOR_BOUNCE_REPLY } from '../queue/queue.ts';
import type { QueuedMessage, QueuedRecipient, Queue, RecipientOutcome } from '../queue/queue.ts';
import { expired, giveUpAtMs, needsDelayWarning, nextAttemptMs } from '../queue/schedule.ts';
import {
  buildDsn,
  dsnRecipientsFor,
  readHeaderBytes,
  type DsnAction,
  type DsnKind,
  type DsnRecipient,
} from './dsn.ts';
import { queueReport, selfClient } from './self-message.ts';
import type { RemoteDelivery } from './remote.ts';
import { loadDkimKeys, signMessage, type DkimKey } from './dkim-sign.ts';
import { extractAddresses } from '../protocol/address-list.ts';
import { ArcSealer, authResultsFor } from '../policy/arc/seal.ts';
import { splitHeaderFields } from '../policy/dkim/header-fields.ts';
import { createPrivateKey } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { deliveryOverQuota, overQuotaFields } from '../directory/quota.ts';
import {
  INBOX,
  normalizeFlags,
  normalizeUser,
  type ImapMailboxStore,
  type MailboxStore,
} from '../store/mailbox-store.ts';
import type { SieveScriptStore } from '../store/sieve-scripts.ts';
import type { SieveScript } from '../protocol/sieve/index.ts';
import { deliverLocal, storedSizeBytes, type SpooledBody } from './local.ts';
import { editedMessage, planSieve, type SievePlan } from './sieve-delivery.ts';
import { isDiskFull } from '../db/storage-fs.ts';
import { SpaceWait, type FreeSpace } from './space-wait.ts';
import { withShortLines, type Content } from './long-lines.ts';

export interface DeliveryWorkerDeps {
  readonly queue: Queue;
  /** Where local mail goes; its quota(user) is the usage the directory's limits are checked against. */
  readonly store: MailboxStore;
  readonly directory: Directory;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Hostname, queue schedule, postmaster. Default: the embedded defaults (tests). */
  readonly config?: Config;
  /** Remote delivery; without it remote recipients wait in the queue (tests of local delivery only). */
  readonly remote?: RemoteDelivery | null;
  /** Retry jitter source (default Math.random). */
  readonly random?: () => number;
  /** The data dir whose dkim/ folder holds signing keys (`tern dkim keygen`); none: no signing. */
  readonly dkimDataDir?: string | null;
  /**
   * Free space where mailboxes are written: a delivery that failed on a full disk is tried again as soon
   * as limits.min_free_bytes is free there. None: such deliveries wait for their scheduled retry.
   */
  readonly diskSpace?: FreeSpace | null;
  /** Users' Sieve scripts (data/sieve.sqlite): an active one decides where the user's copy goes. */
  readonly sieve?: SieveScriptStore | null;
}

/** After the queue failed to record an outcome (a full disk), try recording it again this soon. */
const SETTLE_RETRY_MS = 2000;

/** DKIM keys are read again this often, so a key made with `tern dkim keygen` is used without a restart. */
const DKIM_KEYS_TTL_MS = 30_000;

/** What a recipient's attempt means for DSNs, beside its queue outcome. */
interface Attempt {
  readonly rcpt: QueuedRecipient;
  readonly outcome: RecipientOutcome;
  readonly action: DsnAction;
  readonly status: string;
  /** The next hop took over DSN duties (it supports DSN): no success notice from us. */
  readonly dsnPassedOn?: boolean;
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
  /** How often free space is read while mailbox deliveries wait for the disk (space-wait.ts). */
  readonly spacePollMs: number;
}

export const DEFAULT_DELIVERY_WORKER_OPTIONS: DeliveryWorkerOptions = {
  concurrency: 8,
  pollMs: 30_000,
  stopTimeoutMs: 10_000,
  batchSize: 100,
  spacePollMs: 1000,
};

const MINUTE_MS = 60_000;
/**
 * How far ahead a recipient that needs remote delivery is parked when the worker has no remote delivery
 * (a worker built without one, as tests of local delivery do).
 */
export const REMOTE_PENDING_DELAY_MS = 24 * 60 * MINUTE_MS;
/** The header summary is read from this much of the message at most. */
const SUMMARY_BYTES = 65_536;

export const DELIVERED_REPLY = '250 2.0.0 delivered to mailbox';
/** Catcher mode: kept in the recipient's catch mailbox (docs/catch.md). */
export const CAUGHT_REPLY = '250 2.0.0 Caught';
/** A local recipient whose quota has no room for the message (RFC 3463 X.2.2), as its DSN says it. */
export const MAILBOX_FULL_REPLY = replyLine(Replies.mailboxFull);
export const REMOTE_PENDING_REPLY = '451 4.4.0 remote delivery not available';

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
  readonly #config: Config;
  /** Parsed Sieve scripts by their text (sieve-delivery.ts). */
  readonly #sieveCache = new Map<string, SieveScript | null>();
  #changeTimer: NodeJS.Timeout | null = null;
  /** The earliest retry we deferred: woken then rather than at the next poll. */
  #retryTimer: NodeJS.Timeout | null = null;
  #retryAtMs = Infinity;
  #dkimKeys: { atMs: number; keys: Promise<Map<string, DkimKey[]>> } | null = null;
  /**
   * Outcomes that happened but could not be recorded (settle failed, e.g. on a full disk), by
   * "<queue id>/<index>". Only for the life of the process: after a restart the RFC's unavoidable
   * duplicate remains possible.
   */
  readonly #unsettled = new Map<string, Attempt>();
  #lastChange = -1;
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
  readonly #spaceWait: SpaceWait | null;

  constructor(deps: DeliveryWorkerDeps, options: Partial<DeliveryWorkerOptions> = {}) {
    this.#deps = deps;
    this.#config = deps.config ?? defaultConfig();
    this.#options = { ...DEFAULT_DELIVERY_WORKER_OPTIONS, ...options };
    if (!(this.#options.concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
    if (!(this.#options.batchSize >= 1)) throw new RangeError('batchSize must be at least 1');
    const space = deps.diskSpace;
    this.#spaceWait = space
      ? new SpaceWait({
          space,
          reserveBytes: this.#config.limits.minFreeBytes,
          pollMs: this.#options.spacePollMs,
          onSpace: (ids) => void this.#spaceReturned(ids),
        })
      : null;
  }

  start(): void {
    if (this.#state !== 'idle') throw new Error(`delivery worker cannot start when ${this.#state}`);
    this.#state = 'running';
    this.#unsubscribe = this.#deps.queue.onCommit(() => this.wake());
    this.#timer = setInterval(() => this.wake(), this.#options.pollMs);
    // The listeners keep the process alive; a forgotten worker should not.
    this.#timer.unref();
    // `tern queue flush/release/bounce` in another process moves the change counter: look within a second.
    const lookAtCounter = (): void => {
      this.#deps.queue.changeCounter().then(
        (n) => {
          if (this.#lastChange !== -1 && n !== this.#lastChange) this.wake();
          this.#lastChange = n;
        },
        () => undefined,
      );
    };
    // The first reading now, not a second from now: a change made in between would be taken for the
    // starting value and never acted on (a flush just after the start waited for the next retry).
    lookAtCounter();
    this.#changeTimer = setInterval(lookAtCounter, 1000);
    this.#changeTimer.unref();
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
    if (this.#changeTimer) clearInterval(this.#changeTimer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#spaceWait?.stop();
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
        // In-flight messages would only be skipped below: leaving them out saves reading them again.
        due = await queue.due(clock.nowMs(), batchSize, new Set(this.#inFlight.keys()));
      } catch (err) {
        // The timer brings the next try.
        logger.error(Events.deliveryWorkerError, { op: 'due', err });
        return;
      }
      this.#backlog = due.length >= batchSize;
      // A hold (FUTURERELEASE) or a retry ending before the next poll: look again then.
      if (!this.#backlog)
        void queue.nextAttemptAfter(clock.nowMs()).then(
          (at) => {
            if (at !== null) this.#wakeAt(at);
          },
          () => undefined,
        );
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
    const pending = message.recipients.filter((r) => isPending(r, clock.nowMs()));
    const attempts: Attempt[] = [];
    const remote = new Map<string, QueuedRecipient[]>();
    for (const rcpt of pending) {
      // Once stopping, leave the rest due: the next start takes them.
      if (this.#state !== 'running') break;
      const done = this.#unsettled.get(`${message.id}/${rcpt.index}`);
      if (done) {
        // Delivered before, but the queue could not record it (a full disk): record it now, never resend.
        attempts.push({ ...done, rcpt });
        continue;
      }
      if (this.#config.catch && message.envelope.released !== true) {
        attempts.push(await this.#caught(message, rcpt, log, getSummary));
        continue;
      }
      const late = this.#deliverByExpired(message, rcpt, clock.nowMs());
      if (late !== null) {
        attempts.push(late);
        continue;
      }
      const local = await this.#deliverLocalOrClassify(message, rcpt, log, getSummary);
      if (local === 'remote') {
        const domain = rcpt.address.slice(rcpt.address.lastIndexOf('@') + 1).toLowerCase();
        remote.set(domain, [...(remote.get(domain) ?? []), rcpt]);
      } else attempts.push(local);
    }
    const groups = await Promise.all(
      [...remote].map(([domain, rcpts]) => this.#deliverRemote(message, domain, rcpts, log)),
    );
    attempts.push(...groups.flat());

    for (const a of attempts) if (a.outcome.status === 'deferred') this.#wakeAt(a.outcome.nextAttemptMs);
    // DSNs first, while the original is still queued (the last settle removes it). A crash between the
    // two repeats this attempt: a duplicate notice at worst, never a lost one.
    await this.#notify(message, attempts, log).catch((err: unknown) => {
      log.error(Events.deliveryWorkerError, { op: 'notify', err });
    });
    let settledAll = true;
    for (const a of attempts) {
      const key = `${message.id}/${a.rcpt.index}`;
      try {
        await queue.settle(message.id, a.rcpt.index, a.outcome);
        this.#unsettled.delete(key);
      } catch (err) {
        // The recipient stays pending in the queue. A final outcome is remembered, so the next attempt
        // only records it: a remote server is not sent the message again (local redelivery is a no-op).
        log.error(Events.deliveryWorkerError, { op: 'settle', rcpt: a.rcpt.address, err });
        if (a.outcome.status !== 'deferred') this.#unsettled.set(key, a);
        settledAll = false;
        this.#wakeAt(clock.nowMs() + SETTLE_RETRY_MS);
      }
    }
    return settledAll;
  }

  /** Local recipients are delivered (or forwarded) here; remote ones are returned as 'remote'. */
  async #deliverLocalOrClassify(
    message: QueuedMessage,
    rcpt: QueuedRecipient,
    log: Logger,
    getSummary: () => Promise<HeaderSummary>,
  ): Promise<Attempt | 'remote'> {
    const { queue, store, directory, clock } = this.#deps;
    if (rcpt.bounceRequested) {
      log.warn(Events.deliveryBounced, { rcpt: rcpt.address, reason: 'operator' });
      return {
        rcpt,
        outcome: { status: 'bounced', reply: OPERATOR_BOUNCE_REPLY },
        action: 'failed',
        status: '5.0.0',
      };
    }
    try {
      const resolution = await directory.resolve(rcpt.address);
      switch (resolution.kind) {
        case 'unknown':
          return this.#bounce(log, rcpt);
        case 'remote':
          return this.#deps.remote ? 'remote' : this.#parkRemote(log, rcpt, [rcpt.address], []);
        case 'local': {
          // Users an LMTP transport serves (a mailbox server behind us): the recipient itself goes there
          // as remote mail does; users an alias reaches go through a new queue entry, as forwards.
          const outbound = this.#config.outbound;
          const viaLmtp = resolution.users.filter((u) => lmtpTransportOf(u, outbound) !== null);
          if (
            viaLmtp.length === 1 &&
            resolution.users.length === 1 &&
            resolution.forward.length === 0 &&
            viaLmtp[0]!.toLowerCase() === rcpt.address.toLowerCase()
          ) {
            return this.#deps.remote ? 'remote' : this.#parkRemote(log, rcpt, [rcpt.address], []);
          }
          const users = resolution.users.filter((u) => !viaLmtp.includes(u));
          const forward = [...resolution.forward, ...viaLmtp];
          if (users.length === 0 && forward.length === 0) return this.#bounce(log, rcpt);
          // Users whose quota had no room: not stored for them (logged in #overQuota).
          const full: string[] = [];
          if (users.length > 0) {
            const summary = await getSummary();
            // A spooled body is linked into the mailbox store, not copied (local.ts).
            const file = await queue.bodyFile(message.id);
            const spooled = file === null ? null : { ...file, read: () => readFileChunks(file.path) };
            for (const user of users) {
              if (await this.#overQuota(message, rcpt, user, log)) {
                full.push(user);
                continue;
              }
              const plan = await this.#sievePlan(message, rcpt, user, log);
              if (plan !== null) {
                const sole = users.length === 1 && forward.length === 0;
                const refused = await this.#carryOut(
                  plan,
                  { message, rcpt, user, summary, spooled, sole },
                  log,
                );
                if (refused !== null) return refused;
                continue;
              }
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
                spooled,
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
          // XXX: an alias that reaches several users (or forwards too) counts as delivered when any copy
          // went somewhere; a member over quota is only logged. One DSN per queued recipient cannot name
          // the member, and the sender could not act on it (Postfix's alias expansion bounces per member).
          if (full.length === users.length && forward.length === 0) {
            return {
              rcpt,
              outcome: { status: 'bounced', reply: MAILBOX_FULL_REPLY },
              action: 'failed',
              status: '5.2.2',
            };
          }
          if (forward.length > 0) {
            if (!this.#deps.remote) return this.#parkRemote(log, rcpt, forward, users);
            const id = await this.#forward(message, rcpt, forward);
            log.event(Events.deliveryForwarded, { rcpt: rcpt.address, forward, newQueueId: id });
            return {
              rcpt,
              outcome: { status: 'delivered', reply: `250 2.1.5 forwarded as ${id}` },
              action: users.length > 0 ? 'delivered' : 'expanded',
              status: '2.1.5',
            };
          }
          return {
            rcpt,
            outcome: { status: 'delivered', reply: DELIVERED_REPLY },
            action: 'delivered',
            status: '2.0.0',
          };
        }
        default:
          return assertNever(resolution);
      }
    } catch (err) {
      return this.#localFailure(message, rcpt, log, err);
    }
  }

  /**
   * Whatever failed locally (directory, store, body), the message stays: deferred, tried again later.
   * A permanent-looking reply from a store still only defers: losing mail is worse than a delay.
   */
  #localFailure(message: QueuedMessage, rcpt: QueuedRecipient, log: Logger, err: unknown): Attempt {
    const reply = replyFor(err);
    const temporary = reply.code >= 400 && reply.code < 500 ? reply : Replies.localError;
    log.warn(Events.deliveryDeferred, { rcpt: rcpt.address, attempt: rcpt.attempts + 1, err });
    if (isDiskFull(err)) void this.#spaceWait?.add(message.id);
    return this.#temporary(message, rcpt, replyLine(temporary), temporary.enhanced, {});
  }

  /**
   * True when storing the message would take the user over a quota limit (then logged). A permanent
   * failure, not a deferral: the limit is the administrator's and stays until the user deletes mail,
   * which nobody can promise within the queue lifetime; holding the message for days only delays the
   * sender's news and fills the queue with mail for one full mailbox. Dovecot's LDA/LMTP bounce by
   * default (552 5.2.2 "Mailbox is full", quota_full_tempfail = no), as GNU mailutils' mda does; Courier
   * maildrop defers. A full disk (ENOSPC, EDQUOT) is another matter and still defers (storage-fs.ts).
   * XXX: a retry after a crash between storing and settling sees the stored copy in the usage, and may
   * report a message as failed that was stored; the store keeps no lookup by delivery key to tell. And
   * deliveries in flight at once for one user each see the usage before the others (a soft limit, by
   * at most `concurrency` messages, as Dovecot's quota_grace allows some slack on purpose).
   */
  async #overQuota(
    message: QueuedMessage,
    rcpt: QueuedRecipient,
    user: string,
    log: Logger,
  ): Promise<boolean> {
    const sizeBytes = storedSizeBytes(message.sizeBytes, message.envelope.sender, user);
    // A user deleted since resolve() has no limits: delivery goes on as for any user.
    const exceeded = await deliveryOverQuota(
      () => this.#deps.directory.getQuota(user),
      () => this.#deps.store.quota(user),
      sizeBytes,
    );
    if (exceeded === null) return false;
    log.warn(Events.deliveryOverQuota, {
      rcpt: rcpt.address,
      user,
      ...overQuotaFields(exceeded, sizeBytes),
      reply: MAILBOX_FULL_REPLY,
    });
    return true;
  }

  async #deliverRemote(
    message: QueuedMessage,
    domain: string,
    rcpts: QueuedRecipient[],
    log: Logger,
  ): Promise<Attempt[]> {
    const remote = this.#deps.remote!;
    let outcomes;
    try {
      const content = await this.#signed(message, log);
      outcomes = await remote.deliver(
        { id: message.id, envelope: message.envelope, ...content },
        domain,
        rcpts.map((r) => r.address),
      );
    } catch (err) {
      log.error(Events.deliveryWorkerError, { op: 'remote', domain, err });
      return rcpts.map((r) =>
        this.#temporary(message, r, replyLine(Replies.localError), Replies.localError.enhanced, {}),
      );
    }
    return rcpts.map((rcpt, i) => {
      const o = outcomes[i]!;
      const detail = o.remoteMta === null ? {} : { remoteMta: o.remoteMta, diagnostic: o.reply };
      switch (o.verdict) {
        case 'delivered':
          return {
            rcpt,
            outcome: { status: 'delivered', reply: o.reply, ...detail },
            action: o.relayed ? 'relayed' : 'delivered',
            status: o.status,
            dsnPassedOn: o.dsnPassedOn,
          };
        case 'permanent':
          log.warn(Events.deliveryBounced, { rcpt: rcpt.address, reply: o.reply });
          return {
            rcpt,
            outcome: { status: 'bounced', reply: o.reply, ...detail },
            action: 'failed',
            status: o.status,
          };
        case 'temporary':
          return this.#temporary(message, rcpt, o.reply, o.status, detail);
        default:
          return assertNever(o.verdict);
      }
    });
  }

  /**
   * The message as it goes out: DKIM-signed (RFC 6376) when it is our own mail — an authenticated
   * submission, a message a local user queued with `tern sendmail` (only who may write data_dir can),
   * or a notice we wrote — and its From: domain has keys. Signed at delivery, after every
   * header change; a failure to sign sends it unsigned and logs why.
   */
  async #signed(
    message: QueuedMessage,
    log: Logger,
  ): Promise<{ sizeBytes: number; body: () => AsyncIterable<Uint8Array> }> {
    const { queue, clock } = this.#deps;
    const plain = await this.#outgoing(message, log);
    const client = message.envelope.client;
    const own =
      client.authUser !== null ||
      client.service === 'sendmail' ||
      client.service === 'dsn' ||
      client.service === 'double-bounce';
    const dataDir = this.#deps.dkimDataDir;
    if (!own || !dataDir) return plain;
    const now = clock.nowMs();
    const all = await this.#keys(dataDir);
    if (all.size === 0) return plain;
    const fields = parseHeaderBlock(await readHeaderBytes(queue.readBody(message.id)));
    const from = fields
      .filter((f) => f.name.toLowerCase() === 'from')
      .flatMap((f) => extractAddresses(f.value));
    const domain = from[0]?.slice(from[0].lastIndexOf('@') + 1).toLowerCase() ?? '';
    const keys = all.get(domain);
    if (!keys) return plain;
    try {
      const signature = Buffer.from(await signMessage({ content: plain.body, keys, nowMs: now }), 'latin1');
      return {
        sizeBytes: plain.sizeBytes + signature.length,
        body: async function* () {
          yield signature;
          yield* plain.body();
        },
      };
    } catch (err) {
      log.warn(Events.deliveryDkimFailed, { domain, err });
      return plain;
    }
  }

  /**
   * The content as it may leave for another host: lines over 998 octets encoded (long-lines.ts), before
   * any DKIM signature or ARC seal is made over it. Local delivery keeps the message as it came.
   */
  async #outgoing(message: QueuedMessage, log: Logger): Promise<Content> {
    const raw = { sizeBytes: message.sizeBytes, body: () => this.#deps.queue.readBody(message.id) };
    if (message.envelope.longLines !== true) return raw;
    const encoded = await withShortLines(raw.body);
    if (encoded === null) return raw;
    log.event(Events.deliveryLongLinesEncoded, { sizeBytes: raw.sizeBytes, encodedBytes: encoded.sizeBytes });
    return encoded;
  }

  /**
   * DELIVERBY (RFC 2852 §4.1.4) with mode R: past its deadline a recipient is returned, never tried
   * again (5.4.7 delivery time expired). Null: go on.
   */
  #deliverByExpired(message: QueuedMessage, rcpt: QueuedRecipient, nowMs: number): Attempt | null {
    const by = message.envelope.deliverBy;
    if (by === undefined || by.mode !== 'R' || nowMs < by.deadlineMs) return null;
    const reply = replyLine(Replies.deliverByExpired);
    this.#deps.logger.warn(Events.deliveryBounced, {
      queueId: message.id,
      rcpt: rcpt.address,
      reason: 'deliver-by expired',
      reply,
    });
    return {
      rcpt,
      outcome: { status: 'bounced', reply },
      action: 'failed',
      status: Replies.deliverByExpired.enhanced,
    };
  }

  /** A temporary failure: deferred on the schedule, or bounced once the queue lifetime is over. */
  #temporary(
    message: QueuedMessage,
    rcpt: QueuedRecipient,
    reply: string,
    status: string,
    detail: { remoteMta?: string; diagnostic?: string },
  ): Attempt {
    const now = this.#deps.clock.nowMs();
    const cfg = this.#config.queue;
    const by = message.envelope.deliverBy;
    if (by?.mode === 'R' && now >= by.deadlineMs) {
      const expiredBy = this.#deliverByExpired(message, rcpt, now)!;
      return {
        ...expiredBy,
        outcome: { ...expiredBy.outcome, reply: `${expiredBy.outcome.reply}: ${reply}`, ...detail },
      };
    }
    if (expired(message.arrivalMs, now, cfg)) {
      this.#deps.logger.warn(Events.deliveryBounced, {
        queueId: message.id,
        rcpt: rcpt.address,
        reason: 'expired',
        reply,
      });
      return {
        rcpt,
        outcome: { status: 'bounced', reply: `${reply} (gave up: queue lifetime exceeded)`, ...detail },
        action: 'failed',
        status: '4.4.7',
      };
    }
    let nextAttempt = nextAttemptMs(rcpt.attempts + 1, now, cfg, this.#deps.random ?? Math.random);
    // DELIVERBY: a retry after the deadline is no retry: return (R) or report (N) at the deadline.
    if (by !== undefined && now < by.deadlineMs) nextAttempt = Math.min(nextAttempt, by.deadlineMs);
    this.#deps.logger.warn(Events.deliveryDeferred, {
      queueId: message.id,
      rcpt: rcpt.address,
      reply,
      nextAttempt,
    });
    return {
      rcpt,
      outcome: { status: 'deferred', reply, nextAttemptMs: nextAttempt, ...detail },
      action: 'delayed',
      status,
    };
  }

  /** The disk has room again: messages that waited for it are due now rather than at their retry. */
  async #spaceReturned(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      // Still being settled: its deferral is not recorded yet, so a flush now would be overwritten.
      if (this.#inFlight.has(id)) {
        this.#spaceWait?.again(id);
        continue;
      }
      await this.#deps.queue.flush(id).catch((err: unknown) => {
        this.#deps.logger.error(Events.deliveryWorkerError, { op: 'flush', queueId: id, err });
      });
    }
    this.wake();
  }

  /** Look at the queue again at atMs (the earliest deferred retry), unless the poll comes first. */
  #wakeAt(atMs: number): void {
    if (this.#state !== 'running' || atMs >= this.#retryAtMs) return;
    const delayMs = atMs - this.#deps.clock.nowMs();
    if (delayMs >= this.#options.pollMs) return;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryAtMs = atMs;
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = null;
        this.#retryAtMs = Infinity;
        this.wake();
      },
      Math.max(0, delayMs) + 5,
    );
    this.#retryTimer.unref();
  }

  /**
   * ARC (RFC 8617) for mail we forward: a new ARC set sealed with the forwarding domain's DKIM key,
   * carrying the Authentication-Results: we recorded at arrival, so the next hop can trust what we saw
   * although forwarding breaks SPF (and a footer would break DKIM). Null when there is nothing to seal
   * with (no key for the domain, or the message never went through our checks).
   */
  async #arcSeal(
    message: QueuedMessage,
    viaAddress: string,
    content: () => AsyncIterable<Uint8Array>,
  ): Promise<Uint8Array | null> {
    const dataDir = this.#deps.dkimDataDir;
    if (!dataDir) return null;
    const domain = viaAddress.slice(viaAddress.lastIndexOf('@') + 1).toLowerCase();
    const key = (await this.#keys(dataDir)).get(domain)?.[0];
    if (!key) return null;
    const { clock } = this.#deps;
    const authservId = this.#config.checks.authservId ?? this.#config.hostname;
    const headers = Buffer.from(await readHeaderBytes(content())).toString('latin1');
    const results = authResultsFor(splitHeaderFields(headers), authservId);
    if (results.length === 0) return null;
    const arc = results.find((r) => /^arc=/i.test(r));
    const cv = /^arc=pass\b/i.test(arc ?? '') ? 'pass' : /^arc=fail\b/i.test(arc ?? '') ? 'fail' : 'none';
    try {
      const sealer = new ArcSealer({
        domain: key.domain,
        selector: key.selector,
        privateKey: createPrivateKey(key.privateKeyPem),
        authservId,
        nowMs: clock.nowMs(),
      });
      for await (const chunk of content()) sealer.push(chunk);
      const sealed = sealer.finish({ cv, results });
      return sealed.kind === 'sealed' ? Buffer.from(sealed.fields, 'latin1') : null;
    } catch (err) {
      this.#deps.logger.warn(Events.deliveryDkimFailed, { queueId: message.id, what: 'arc seal', err });
      return null;
    }
  }

  /** DKIM keys by domain, read again every DKIM_KEYS_TTL_MS. */
  async #keys(dataDir: string): Promise<Map<string, DkimKey[]>> {
    const now = this.#deps.clock.nowMs();
    if (this.#dkimKeys === null || now - this.#dkimKeys.atMs > DKIM_KEYS_TTL_MS) {
      this.#dkimKeys = { atMs: now, keys: loadDkimKeys(dataDir).catch(() => new Map<string, DkimKey[]>()) };
    }
    return this.#dkimKeys.keys;
  }

  /** Queue the message again for the forward addresses of an alias (Postfix local(8) forwarding). */
  async #forward(message: QueuedMessage, rcpt: QueuedRecipient, forward: readonly string[]): Promise<string> {
    const { queue, clock } = this.#deps;
    const original = message.envelope.recipients[rcpt.index];
    const recipients: EnvelopeRecipient[] = forward.map((address) => ({
      address,
      notify: original?.notify ?? null,
      orcpt: original?.orcpt ?? { addrType: 'rfc822', address: rcpt.address },
    }));
    // Encoded here, not when the copy leaves: the seal must cover what is sent.
    const content = await this.#outgoing(message, this.#deps.logger.child({ queueId: message.id }));
    const seal = await this.#arcSeal(message, rcpt.address, content.body);
    const { longLines: _encoded, ...envelope } = message.envelope;
    const writer = queue.begin();
    try {
      if (seal !== null) await writer.write(seal);
      for await (const chunk of content.body()) await writer.write(chunk);
      await writer.commit({
        ...envelope,
        recipients,
        client: selfClient('forward'),
        receivedAtMs: clock.nowMs(),
      });
    } catch (err) {
      await writer.abort().catch(() => undefined);
      throw err;
    }
    return writer.id;
  }

  /**
   * Catcher mode (docs/catch.md): the copy goes to the mailbox named by the recipient as addressed, local
   * or not, and nowhere else; idempotent like any local delivery.
   */
  async #caught(
    message: QueuedMessage,
    rcpt: QueuedRecipient,
    log: Logger,
    getSummary: () => Promise<HeaderSummary>,
  ): Promise<Attempt> {
    const { queue, store, clock } = this.#deps;
    try {
      const summary = await getSummary();
      const user = normalizeUser(rcpt.address);
      const stored = await deliverLocal(
        { store, clock },
        {
          queueId: message.id,
          recipientIndex: rcpt.index,
          user,
          envelope: message.envelope,
          body: () => queue.readBody(message.id),
          summary,
          mailbox: INBOX,
        },
      );
      log.event(Events.deliveryCaught, {
        rcpt: rcpt.address,
        uid: stored.uid,
        id: stored.id,
        messageId: summary.messageId,
      });
      return {
        rcpt,
        outcome: { status: 'delivered', reply: CAUGHT_REPLY },
        action: 'delivered',
        status: '2.0.0',
      };
    } catch (err) {
      return this.#localFailure(message, rcpt, log, err);
    }
  }

  /** The user's Sieve script's decision for this message; null when there is no active script. */
  async #sievePlan(
    message: QueuedMessage,
    rcpt: QueuedRecipient,
    user: string,
    log: Logger,
  ): Promise<SievePlan | null> {
    const scripts = this.#deps.sieve;
    if (scripts === undefined || scripts === null) return null;
    const { queue, store, clock } = this.#deps;
    const read = (maxBytes: number): Promise<Uint8Array> => readHead(queue.readBody(message.id), maxBytes);
    return planSieve(
      { scripts, config: this.#config, log, cache: this.#sieveCache },
      {
        queueId: message.id,
        envelope: message.envelope,
        rcpt: rcpt.address,
        user,
        sizeBytes: message.sizeBytes,
        nowMs: clock.nowMs(),
        header: await readHeaderBytes(queue.readBody(message.id)),
        read,
        mailboxes: async () => new Set((await (store as ImapMailboxStore).folders(user)).map((f) => f.name)),
        defaultMailbox: message.envelope.folder ?? INBOX,
      },
    );
  }

  /**
   * A Sieve plan carried out for one user: each copy stored (a missing mailbox made with :create, else
   * the copy kept in the default mailbox), redirects queued as forwards, the vacation reply queued from
   * the null sender. A reject of the only recipient is the returned bounce (the sender gets the reason
   * in a DSN); null otherwise.
   */
  async #carryOut(
    plan: SievePlan,
    at: {
      readonly message: QueuedMessage;
      readonly rcpt: QueuedRecipient;
      readonly user: string;
      readonly summary: HeaderSummary;
      readonly spooled: SpooledBody | null;
      readonly sole: boolean;
    },
    log: Logger,
  ): Promise<Attempt | null> {
    const { message, rcpt, user, summary } = at;
    const { queue, store, clock } = this.#deps;
    if (plan.reject !== null) {
      // RFC 5429 §2.1: nobody to tell when the sender is null; an alias member's reject refuses only its copy.
      if (at.sole && message.envelope.sender !== '') {
        const reason = plan.reject.replace(/[\r\n]+/g, ' ').slice(0, 400);
        return {
          rcpt,
          outcome: { status: 'bounced', reply: `${replyLine(Replies.sieveRejected)}: ${reason}` },
          action: 'failed',
          status: Replies.sieveRejected.enhanced,
        };
      }
      log.event(Events.sieveRun, {
        rcpt: rcpt.address,
        user,
        rejected: 'not returned (null sender or alias member)',
      });
    }
    let content: Uint8Array | undefined;
    if (plan.headerEdits.length > 0 && plan.stores.length > 0) {
      const read = (maxBytes: number): Promise<Uint8Array> => readHead(queue.readBody(message.id), maxBytes);
      const edited = await editedMessage(plan.headerEdits, read, message.sizeBytes);
      if (edited === null)
        log.warn(Events.sieveFailed, { user, reason: 'message too large for editheader: stored unedited' });
      else content = edited;
    }
    const imap = store as ImapMailboxStore;
    const existing = plan.stores.some((s) => s.mailbox.toUpperCase() !== 'INBOX')
      ? new Set((await imap.folders(user)).map((f) => f.name))
      : new Set<string>();
    for (const s of plan.stores) {
      let mailbox = s.mailbox;
      if (mailbox.toUpperCase() === 'INBOX') mailbox = INBOX;
      else if (!existing.has(mailbox) && mailbox !== message.envelope.folder) {
        if (s.create) await imap.createFolder(user, mailbox);
        else {
          log.warn(Events.sieveFailed, { user, reason: `fileinto "${mailbox}": no such mailbox, kept` });
          mailbox = message.envelope.folder ?? INBOX;
        }
      }
      const stored = await deliverLocal(
        { store, clock },
        {
          queueId: message.id,
          recipientIndex: rcpt.index,
          user,
          envelope: message.envelope,
          body: () => queue.readBody(message.id),
          summary,
          mailbox,
          flags: storableFlags(s.flags),
          keySuffix: `/sieve/${mailbox}`,
          ...(content === undefined ? {} : { content }),
        },
        at.spooled,
      );
      log.event(Events.deliveryLocal, {
        rcpt: rcpt.address,
        user,
        mailbox,
        uid: stored.uid,
        id: stored.id,
        messageId: summary.messageId,
        sizeBytes: message.sizeBytes,
        sieve: true,
      });
    }
    if (plan.redirects.length > 0) {
      const id = await this.#forward(message, rcpt, plan.redirects);
      log.event(Events.deliveryForwarded, {
        rcpt: rcpt.address,
        forward: plan.redirects,
        newQueueId: id,
        sieve: true,
      });
    }
    if (plan.vacation !== null) {
      const to = plan.vacation.to;
      const id = await queueReport(queue, {
        from: '',
        to,
        bytes: plan.vacation.bytes,
        service: 'vacation',
        nowMs: clock.nowMs(),
        body: '8BITMIME',
        smtputf8: /[^\x00-\x7f]/.test(to),
      });
      log.event(Events.sieveVacation, { user, to, sent: true, newQueueId: id });
    }
    return null;
  }

  /** Queue the DSNs this attempt calls for. */
  async #notify(message: QueuedMessage, attempts: readonly Attempt[], log: Logger): Promise<void> {
    const { envelope } = message;
    const now = this.#deps.clock.nowMs();
    const cfg = this.#config.queue;
    const failed = attempts.filter((a) => a.outcome.status === 'bounced');
    const by = envelope.deliverBy;
    // DELIVERBY mode N (RFC 2852 §4.1.4): past the deadline the sender hears of the delay, once.
    const lateN = by !== undefined && by.mode === 'N' && now >= by.deadlineMs;
    const delayed = attempts.filter(
      (a) =>
        a.outcome.status === 'deferred' &&
        (needsDelayWarning(message.arrivalMs, now, a.rcpt.delayWarned, cfg) ||
          (lateN && !a.rcpt.delayWarned)),
    );
    const succeeded = attempts.filter((a) => a.outcome.status === 'delivered' && a.dsnPassedOn !== true);
    const send = async (kind: DsnKind, list: readonly Attempt[], to?: string): Promise<void> => {
      const indexed = list.map((a) => ({ ...a, index: a.rcpt.index }));
      const chosen = to === undefined ? dsnRecipientsFor(kind, envelope, indexed) : indexed;
      if (chosen.length === 0) return;
      await this.#queueDsn(message, kind, chosen, now, to, log);
      if (kind === 'delay')
        for (const a of chosen) await this.#deps.queue.markDelayWarned(message.id, a.rcpt.index);
    };
    if (failed.length > 0) {
      if (envelope.sender !== '') await send('failure', failed);
      else if (envelope.client.service !== 'double-bounce') {
        // Never bounce a bounce: a failed DSN goes to the postmaster (a "double bounce"), once.
        await send('failure', failed, this.#postmaster());
      } else
        log.warn(Events.dsnSuppressed, {
          reason: 'double bounce failed',
          rcpts: failed.map((a) => a.rcpt.address),
        });
    }
    if (delayed.length > 0) await send('delay', delayed);
    if (succeeded.length > 0) await send('success', succeeded);
  }

  #postmaster(): string {
    return postmasterAddress(this.#config);
  }

  async #queueDsn(
    message: QueuedMessage,
    kind: DsnKind,
    attempts: readonly Attempt[],
    nowMs: number,
    to: string | undefined,
    log: Logger,
  ): Promise<void> {
    const { queue } = this.#deps;
    const recipients: DsnRecipient[] = attempts.map((a) => ({
      address: a.rcpt.address,
      orcpt: message.envelope.recipients[a.rcpt.index]?.orcpt ?? null,
      action: kind === 'delay' ? 'delayed' : a.action,
      status: a.status,
      remoteMta: a.outcome.remoteMta,
      diagnostic: a.outcome.diagnostic ?? a.outcome.reply,
      lastAttemptMs: nowMs,
    }));
    const headers = await readHeaderBytes(queue.readBody(message.id));
    const dsn = buildDsn({
      kind,
      hostname: this.#config.hostname,
      nowMs,
      envelope: message.envelope,
      recipients,
      original: { headers, body: () => queue.readBody(message.id), sizeBytes: message.sizeBytes },
      willRetryUntilMs: giveUpAtMs(message.envelope.receivedAtMs, this.#config.queue),
      queueId: message.id,
      ...(to === undefined ? {} : { to }),
    });
    const writer = queue.begin();
    try {
      for await (const chunk of dsn.content()) await writer.write(chunk);
      await writer.commit({
        sender: '',
        body: dsn.bodyType,
        smtputf8: dsn.smtputf8,
        ret: null,
        envid: null,
        recipients: [{ address: dsn.recipient, notify: null, orcpt: null }],
        client: selfClient(to === undefined ? 'dsn' : 'double-bounce'),
        receivedAtMs: nowMs,
        // The original returned in full brings its long lines along.
        ...(dsn.returned === 'full' && message.envelope.longLines === true ? { longLines: true } : {}),
      });
    } catch (err) {
      await writer.abort().catch(() => undefined);
      throw err;
    }
    log.event(Events.dsnQueued, {
      kind,
      to: dsn.recipient,
      dsnQueueId: writer.id,
      rcpts: recipients.map((r) => r.address),
    });
  }

  #bounce(log: Logger, rcpt: QueuedRecipient): Attempt {
    // The user existed at RCPT time (or it would have been refused) and was deleted since.
    const reply = replyLine(Replies.noSuchUser);
    log.warn(Events.deliveryFailed, { rcpt: rcpt.address, reply });
    return { rcpt, outcome: { status: 'bounced', reply }, action: 'failed', status: '5.1.1' };
  }

  #parkRemote(
    log: Logger,
    rcpt: QueuedRecipient,
    remote: readonly string[],
    deliveredTo: readonly string[],
  ): Attempt {
    const nextAttemptMs = this.#deps.clock.nowMs() + REMOTE_PENDING_DELAY_MS;
    log.warn(Events.deliveryRemotePending, { rcpt: rcpt.address, remote, deliveredTo, nextAttemptMs });
    return {
      rcpt,
      outcome: { status: 'deferred', reply: REMOTE_PENDING_REPLY, nextAttemptMs },
      action: 'delayed',
      status: '4.4.0',
    };
  }
}

async function* readFileChunks(path: string): AsyncIterable<Uint8Array> {
  for await (const chunk of createReadStream(path, { highWaterMark: 64 * 1024 })) yield chunk as Buffer;
}

/** Sieve imap4flags the store takes (RFC 9051 atoms and system flags); others are dropped, never fatal. */
function storableFlags(flags: readonly string[]): string[] {
  const out: string[] = [];
  for (const f of flags) {
    try {
      out.push(...normalizeFlags([f]));
    } catch {
      // \\Recent, unknown system flags, keywords that are not atoms: RFC 5232 §3 lets the server skip them.
    }
  }
  return normalizeFlags(out);
}
