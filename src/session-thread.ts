// The entry of a session thread (`[server] workers`, docs/workers.md), a composition root like main.ts
// (which starts it through server/workers/worker-pool.ts; it imports services.ts, not main.ts, so a
// thread never loads the delivery side): runs the SMTP, POP3 and IMAP sessions of the
// sockets the main thread hands it. It opens its own connections to the queue, the mailbox store and
// the directory (a durable commit here is this thread's own group commit and WAL fsync, so the 250 rule
// is unchanged), keeps a snapshot per reload generation it was asked to prepare, and asks the main
// thread for every limit that must be exact (coordinator-client.ts). Its log lines go to the main
// thread, gathered per event-loop turn, which writes them: stdout keeps one writer.
// Deliberately NOT here: accepting and counting connections, delivery, checkpoints of other threads'
// writes, sweeps of the spool and tmp/ (the main thread owns those).

import { parentPort, workerData } from 'node:worker_threads';
import type { Socket } from 'node:net';
import { systemClock, type Logger } from './core/ports.ts';
import { Events } from './core/events.ts';
import { dmarcReportsPath, openDirectory, openQueue, openStore, openTrace } from './services.ts';
import { dmarcRecordingLogger, SqliteDmarcStore } from './reports/dmarc-store.ts';
import { tracingLogger } from './trace/trace.ts';
import { observingLogger, type Observed } from './core/observe.ts';
import { fsyncChannel, type FsyncObservation } from './db/group-commit.ts';
import { DiskSpace } from './net/disk-space.ts';
import { createResolver } from './net/dns.ts';
import { createLogger } from './net/logger.ts';
import { createTokenVerifier } from './net/token-verifier.ts';
import { loadFilterPlugins } from './server/filter-plugins.ts';
import { imapSharedState } from './server/imap/shared-uids.ts';
import { SessionRunner, type Generation } from './server/session-runner.ts';
import { CoordinatorClient } from './server/workers/coordinator-client.ts';
import type { FromWorker, SessionWorkerData, ToWorker } from './server/workers/messages.ts';
import { resolve } from 'node:path';

if (parentPort === null) throw new Error('session-thread: must run as a worker thread');
const port = parentPort;
const data = workerData as SessionWorkerData;
const post = (msg: FromWorker): void => port.postMessage(msg);

// Log lines of one event-loop turn travel as one message.
let lines: string[] = [];
let flushScheduled = false;
const flushLogs = (): void => {
  flushScheduled = false;
  if (lines.length === 0) return;
  const text = lines.join('');
  lines = [];
  post({ kind: 'log', text });
};
const untraced: Logger = createLogger({
  level: data.config.log.level,
  format: data.prettyLogs ? 'pretty' : 'json',
  destination: {
    write: (line: string) => {
      lines.push(line);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushLogs);
      }
    },
  },
}).child({ worker: data.index });

// An uncaught error ends the thread: what it logged just before is what explains it.
process.on('uncaughtExceptionMonitor', () => flushLogs());

const coordinator = new CoordinatorClient((id, call) => post({ kind: 'call', id, call }));
const clock = systemClock;
const config = data.config;

// What the metrics and the live events are made of goes to the main thread like the log lines: per turn.
let observed: Observed[] = [];
const flushObserved = (): void => {
  const events = observed;
  observed = [];
  if (events.length > 0) post({ kind: 'observed', events });
};
const observe = (o: Observed): void => {
  if (observed.push(o) === 1) setImmediate(flushObserved);
};
// This thread's WAL fsyncs (queue and mailbox store) count in the server's fsync histogram.
if (data.observe) {
  fsyncChannel.subscribe((message) => {
    const f = message as FsyncObservation;
    observe({ event: 'db.fsync', atMs: clock.nowMs(), fields: { seconds: f.seconds, commits: f.commits } });
  });
}

async function main(): Promise<void> {
  const trace = await openTrace(config, clock, 'session');
  // The sessions' part of every message's trace (received, checked, queued, delivered before the 250),
  // and, with an admin listener, of the server's metrics and live events.
  const traced = tracingLogger(untraced, trace, () => clock.nowMs());
  // This thread's sessions count their rows of DMARC aggregate reports too.
  const dmarcStore = SqliteDmarcStore.open(dmarcReportsPath(config), () => clock.nowMs());
  const logger = dmarcRecordingLogger(
    data.observe ? observingLogger(traced, observe, () => clock.nowMs()) : traced,
    dmarcStore,
  );
  const directory = await openDirectory(config);
  const queue = await openQueue(config, clock, logger, { role: 'session' });
  const store = await openStore(config, clock, { role: 'session', broadcast: true });
  const runner = new SessionRunner({
    authGuard: () => coordinator.auth,
    rateLimiter: coordinator.rates,
    imap: imapSharedState(coordinator.slots),
    diskSpace: new DiskSpace(resolve(config.dataDir)),
    resolver: createResolver(config.dns, { clock, logger }),
  });
  const generations = new Map<number, Generation>();
  /** Generations retired while being built (their token verifier awaited): never kept. */
  const retired = new Set<number>();

  // The delivery worker runs on the main thread: tell it at once that this thread queued mail.
  let committedScheduled = false;
  queue.onCommit(() => {
    if (committedScheduled) return;
    committedScheduled = true;
    setImmediate(() => {
      committedScheduled = false;
      post({ kind: 'committed' });
    });
  });

  const prepare = async (msg: Extract<ToWorker, { kind: 'prepare' }>): Promise<void> => {
    try {
      const tokens = msg.config.auth.oauth === null ? null : await createTokenVerifier(msg.config.auth.oauth);
      const plugins = await loadFilterPlugins(msg.config);
      if (retired.has(msg.gen)) {
        post({ kind: 'prepared', gen: msg.gen, error: null });
        return;
      }
      generations.set(
        msg.gen,
        runner.generation({
          config: msg.config,
          queue,
          directory,
          store,
          maildropLocks: coordinator.maildrops,
          logger,
          clock,
          tls: msg.tls,
          tokens,
          plugins,
        }),
      );
      post({ kind: 'prepared', gen: msg.gen, error: null });
    } catch (err) {
      post({ kind: 'prepared', gen: msg.gen, error: err instanceof Error ? err.message : String(err) });
    }
  };

  const session = (msg: Extract<ToWorker, { kind: 'session' }>): void => {
    const socket: Socket = msg.socket;
    const gen = generations.get(msg.gen);
    const listener = gen?.config.listeners[msg.listenerIndex];
    if (gen === undefined || listener === undefined) {
      // The main thread never hands a socket of a generation it did not prepare here; should it, the
      // client is cut off rather than served with a snapshot this thread does not have.
      logger.error(Events.smtpInternalError, { error: `no generation ${msg.gen} for a session` });
      socket.destroy();
      post({ kind: 'ended', id: msg.id });
      return;
    }
    runner.run(gen, listener, socket, msg.id, () => post({ kind: 'ended', id: msg.id }));
  };

  const stop = async (graceMs: number): Promise<void> => {
    await runner.stop(graceMs);
    coordinator.close('stopping');
    // The group commits of this thread's connections are made durable by close().
    await queue.close();
    await store.close();
    await directory.close();
    trace.close();
    await dmarcStore.close();
    flushLogs();
    post({ kind: 'stopped' });
    port.close();
  };

  port.on('message', (msg: ToWorker) => {
    switch (msg.kind) {
      case 'prepare':
        void prepare(msg);
        return;
      case 'retire':
        // Sessions of that generation keep their snapshot; no new one is started with it.
        generations.delete(msg.gen);
        retired.add(msg.gen);
        return;
      case 'session':
        session(msg);
        return;
      case 'answer':
        coordinator.settle(msg.id, msg.ok, msg.ok ? msg.value : msg.error);
        return;
      case 'stop':
        void stop(msg.graceMs);
        return;
      default:
        msg satisfies never;
    }
  });
  post({ kind: 'ready' });
}

main().catch((err: unknown) => {
  flushLogs();
  post({ kind: 'failed', error: err instanceof Error ? err.message : String(err) });
  port.close();
});
