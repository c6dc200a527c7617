// The session threads of `[server] workers` (docs/workers.md), seen from the main thread: it starts them,
// makes each reload generation ready on all of them before any socket is handed over with it (a thread
// that cannot build it refuses the reload for all), hands each accepted socket to the thread with the
// fewest sessions, answers their calls to the process-wide limits (coordinator.ts), writes their log
// lines, wakes the delivery worker when they queued mail, and stops them in order. A thread that dies
// (a bug, its heap limit) has its sessions ended and everything they held released at once, is logged,
// and is started again; its clients reconnect, and nothing they were told was accepted is lost (the 250
// followed that thread's fsync).

import type { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { Config } from '../../config/config.ts';
import { Events } from '../../core/events.ts';
import type { Logger } from '../../core/ports.ts';
import type { MaildropLocks } from '../../store/maildrop-locks.ts';
import type { HandedSession, ListenerDeps, ProcessLimits, SessionDispatch } from '../listeners.ts';
import { Coordinator } from './coordinator.ts';
import type { Observed } from '../../core/observe.ts';
import type { FromWorker, SessionWorkerData, ToWorker } from './messages.ts';

export interface WorkerPoolOptions {
  readonly count: number;
  /** The configuration the server started with (restart-only keys: data_dir, [dns], [log]). */
  readonly config: Config;
  readonly limits: ProcessLimits;
  readonly maildropLocks: MaildropLocks;
  readonly logger: Logger;
  /** Threads render their lines as pino-pretty would (the main logger is pretty). */
  readonly prettyLogs: boolean;
  /** Where the threads' log lines go (complete lines, newline-terminated). */
  readonly writeLogs: (text: string) => void;
  /** A thread committed mail to the queue. */
  readonly onCommitted: () => void;
  /** Whether threads observe (core/observe.ts): only when an admin listener reads the counters. */
  readonly observe?: boolean;
  /** Records the threads observed, for the metrics and live events. */
  readonly onObserved?: (events: readonly Observed[]) => void;
  /** How long a thread may take to start or to build a generation. */
  readonly readyTimeoutMs?: number;
  /** The module a thread runs: src/session-thread.ts (main.ts names it), or a test's stand-in. */
  readonly script: URL;
}

const DEFAULT_READY_TIMEOUT_MS = 30_000;
/** How long a thread that answered `stopped` may take to exit before it is ended. */
const EXIT_MARGIN_MS = 2000;
/** Waits before starting a thread again after it died: repeated deaths back off. */
const RESTART_DELAYS_MS = [100, 1000, 5000, 30_000];

class SessionThread {
  readonly index: number;
  readonly worker: Worker;
  readonly coordinator: Coordinator;
  state: 'starting' | 'ready' | 'stopping' | 'gone' = 'starting';
  /** Sessions handed here, with what to call when each ends. */
  readonly sessions = new Map<string, () => void>();
  readonly prepared = new Set<number>();
  readonly preparing = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;
  readonly exited: Promise<number>;
  onReady: (error: string | null) => void = () => undefined;
  onStopped: () => void = () => undefined;
  /** What ended the thread, when an uncaught error did. */
  error: Error | null = null;

  constructor(index: number, worker: Worker, coordinator: Coordinator) {
    this.index = index;
    this.worker = worker;
    this.coordinator = coordinator;
    this.ready = new Promise<void>((resolve, reject) => {
      this.onReady = (error) => (error === null ? resolve() : reject(new Error(error)));
    });
    this.ready.catch(() => undefined);
    this.exited = new Promise((resolve) => worker.once('exit', resolve));
  }

  post(msg: ToWorker, transfer?: Socket[]): void {
    // A Socket in the transfer list moves its handle (Node's "Transferring TCP handles"); the types
    // know only ArrayBuffer-like transferables.
    this.worker.postMessage(msg, transfer as unknown as readonly ArrayBuffer[] | undefined);
  }
}

export class WorkerPool implements SessionDispatch {
  readonly #o: WorkerPoolOptions;
  readonly #threads: (SessionThread | null)[];
  /** Generations not retired, as sent to threads: a thread started later prepares them too. */
  readonly #live = new Map<number, Extract<ToWorker, { kind: 'prepare' }>>();
  readonly #deaths: number[] = [];
  #stopping = false;
  /** Where the search for the least busy thread starts: ties go round the threads. */
  #next = 0;

  private constructor(options: WorkerPoolOptions) {
    this.#o = options;
    this.#threads = Array.from({ length: options.count }, () => null);
  }

  /** Start the threads; rejects (and stops those that started) when one cannot open the stores. */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    const threads = pool.#threads.map((_, i) => pool.#spawn(i));
    try {
      await Promise.all(threads.map((t) => pool.#whenReady(t)));
    } catch (err) {
      pool.#stopping = true;
      await Promise.all(threads.map((t) => t.worker.terminate()));
      throw err;
    }
    options.logger.event(Events.serverWorkersStarted, { workers: options.count });
    return pool;
  }

  /** Sessions on each thread now (tests, metrics). */
  get sessions(): number[] {
    return this.#threads.map((t) => t?.sessions.size ?? 0);
  }

  /** Locks and slots each thread holds through the coordinator (tests, leak checks). */
  get held(): { maildrops: number; slots: number }[] {
    return this.#threads.map((t) => t?.coordinator.held ?? { maildrops: 0, slots: 0 });
  }

  /** The threads' ids (worker.threadId), for tests that end one. */
  get threadIds(): number[] {
    return this.#threads.map((t) => t?.worker.threadId ?? -1);
  }

  async prepare(gen: number, deps: ListenerDeps): Promise<void> {
    const tls = deps.tls;
    const msg: Extract<ToWorker, { kind: 'prepare' }> = {
      kind: 'prepare',
      gen,
      config: deps.config,
      tls: tls === null ? null : { cert: tls.cert, key: tls.key, clientCa: tls.clientCa ?? null },
    };
    this.#live.set(gen, msg);
    const ready = this.#threads.filter((t): t is SessionThread => t !== null && t.state === 'ready');
    try {
      await Promise.all(ready.map((t) => this.#prepareOn(t, msg)));
    } catch (err) {
      this.retire(gen);
      throw err;
    }
  }

  retire(gen: number): void {
    this.#live.delete(gen);
    for (const t of this.#threads) {
      if (t === null || t.state === 'gone') continue;
      t.prepared.delete(gen);
      t.post({ kind: 'retire', gen });
    }
  }

  hand(socket: Socket, session: HandedSession, ended: () => void): boolean {
    let best: SessionThread | null = null;
    const n = this.#threads.length;
    for (let k = 0; k < n; k++) {
      const t = this.#threads[(this.#next + k) % n];
      if (t === null || t === undefined || t.state !== 'ready' || !t.prepared.has(session.gen)) continue;
      if (best === null || t.sessions.size < best.sessions.size) best = t;
    }
    this.#next = (this.#next + 1) % n;
    // Every thread is starting again: the listener refuses the client ("try again later").
    if (best === null) return false;
    best.sessions.set(session.id, ended);
    try {
      best.post({ kind: 'session', socket, ...session }, [socket]);
      return true;
    } catch (err) {
      best.sessions.delete(session.id);
      socket.destroy();
      ended();
      this.#o.logger.error(Events.smtpInternalError, {
        error: `cannot hand a session to worker ${best.index}: ${err instanceof Error ? err.message : String(err)}`,
      });
      return true;
    }
  }

  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    const threads = this.#threads.filter((t): t is SessionThread => t !== null && t.state !== 'gone');
    await Promise.all(
      threads.map(async (t) => {
        const stopped = new Promise<void>((resolve) => (t.onStopped = resolve));
        t.state = 'stopping';
        t.post({ kind: 'stop', graceMs });
        let timer: NodeJS.Timeout | undefined;
        // The thread closes its stores after the grace; past that and a margin it is ended.
        const late = new Promise<'late'>(
          (resolve) => (timer = setTimeout(() => resolve('late'), graceMs + 10_000)),
        );
        const outcome = await Promise.race([stopped.then(() => 'stopped' as const), t.exited, late]);
        clearTimeout(timer);
        if (outcome === 'late') await t.worker.terminate();
        // A thread that said `stopped` but lingers (a socket it could not end) is ended after a margin.
        const lingering = setTimeout(() => void t.worker.terminate(), EXIT_MARGIN_MS);
        await t.exited;
        clearTimeout(lingering);
      }),
    );
  }

  #whenReady(t: SessionThread): Promise<void> {
    const timeoutMs = this.#o.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`session thread ${t.index} did not start within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return Promise.race([t.ready, late]).finally(() => clearTimeout(timer));
  }

  #prepareOn(t: SessionThread, msg: Extract<ToWorker, { kind: 'prepare' }>): Promise<void> {
    const timeoutMs = this.#o.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        t.preparing.delete(msg.gen);
        reject(
          new Error(`session thread ${t.index} did not prepare the configuration within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      t.preparing.set(msg.gen, {
        resolve: () => {
          clearTimeout(timer);
          // Retired while it was being built: nothing will ever be handed over with it.
          if (this.#live.has(msg.gen)) t.prepared.add(msg.gen);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      t.post(msg);
    });
  }

  #spawn(index: number): SessionThread {
    const o = this.#o;
    const workerData: SessionWorkerData = {
      index,
      config: o.config,
      prettyLogs: o.prettyLogs,
      observe: o.observe ?? false,
    };
    const worker = new Worker(o.script, {
      workerData,
      name: `tern-sessions-${index}`,
      // Not the process's flags: V8 ones (bin/tern.mjs's) are process-wide and refused here, and a
      // preload (--import, a supervisor's or a test harness's hook) is meant for the main thread.
      execArgv: [],
    });
    const t = new SessionThread(index, worker, new Coordinator(o.limits, o.maildropLocks));
    this.#threads[index] = t;
    worker.on('message', (msg: FromWorker) => this.#onMessage(t, msg));
    // An uncaught error ends the thread: logged with its exit, below.
    worker.on('error', (err: Error) => {
      t.error = err;
    });
    worker.once('exit', (code) => void this.#onExit(t, code));
    return t;
  }

  #onMessage(t: SessionThread, msg: FromWorker): void {
    switch (msg.kind) {
      case 'ready':
        void this.#becomeReady(t);
        return;
      case 'failed':
        t.onReady(`session thread ${t.index} could not start: ${msg.error}`);
        return;
      case 'prepared': {
        const waiter = t.preparing.get(msg.gen);
        t.preparing.delete(msg.gen);
        if (msg.error === null) waiter?.resolve();
        else waiter?.reject(new Error(msg.error));
        return;
      }
      case 'ended': {
        const ended = t.sessions.get(msg.id);
        t.sessions.delete(msg.id);
        ended?.();
        return;
      }
      case 'committed':
        this.#o.onCommitted();
        return;
      case 'log':
        this.#o.writeLogs(msg.text);
        return;
      case 'observed':
        this.#o.onObserved?.(msg.events);
        return;
      case 'call':
        t.coordinator.answer(msg.call).then(
          (value) => t.state !== 'gone' && t.post({ kind: 'answer', id: msg.id, ok: true, value }),
          (err: unknown) =>
            t.state !== 'gone' &&
            t.post({
              kind: 'answer',
              id: msg.id,
              ok: false,
              error: err instanceof Error ? err.message : String(err),
            }),
        );
        return;
      case 'stopped':
        t.onStopped();
        return;
      default:
        msg satisfies never;
    }
  }

  /** A started thread prepares every live generation before it gets a session. */
  async #becomeReady(t: SessionThread): Promise<void> {
    try {
      // Until none is missing: a reload may add a generation while this thread prepares the others.
      for (;;) {
        const missing = [...this.#live.values()].filter((m) => !t.prepared.has(m.gen));
        if (missing.length === 0) break;
        for (const msg of missing) await this.#prepareOn(t, msg);
      }
    } catch (err) {
      t.onReady(err instanceof Error ? err.message : String(err));
      await t.worker.terminate();
      return;
    }
    if (t.state === 'starting') t.state = 'ready';
    t.onReady(null);
  }

  async #onExit(t: SessionThread, code: number): Promise<void> {
    const wasStopping = t.state === 'stopping' || this.#stopping;
    t.state = 'gone';
    t.onReady(`session thread ${t.index} exited (${code}) while starting`);
    for (const waiter of t.preparing.values()) waiter.reject(new Error(`session thread ${t.index} exited`));
    t.preparing.clear();
    // Its sockets went with it: the counts they held are given back, as are its locks and slots.
    const cut = t.sessions.size;
    for (const ended of t.sessions.values()) ended();
    t.sessions.clear();
    await t.coordinator.releaseAll();
    if (wasStopping) return;
    this.#o.logger.error(Events.serverWorkerExited, {
      worker: t.index,
      code,
      sessions: cut,
      ...(t.error === null ? {} : { err: t.error }),
    });
    const now = Date.now();
    this.#deaths.push(now);
    while (this.#deaths.length > 0 && this.#deaths[0]! < now - 60_000) this.#deaths.shift();
    const delay = RESTART_DELAYS_MS[Math.min(this.#deaths.length - 1, RESTART_DELAYS_MS.length - 1)]!;
    setTimeout(() => {
      if (this.#stopping || this.#threads[t.index] !== t) return;
      let next: SessionThread;
      try {
        next = this.#spawn(t.index);
      } catch (err) {
        // Out of threads or descriptors: try again later, as after another death.
        this.#o.logger.error(Events.serverWorkerExited, { worker: t.index, err });
        void this.#onExit(t, code);
        return;
      }
      this.#whenReady(next).then(
        () => this.#o.logger.event(Events.serverWorkerRestarted, { worker: t.index }),
        (err: unknown) => {
          if (!this.#stopping) this.#o.logger.error(Events.serverWorkerExited, { worker: t.index, err });
          void next.worker.terminate();
        },
      );
    }, delay).unref();
  }
}
