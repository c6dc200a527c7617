// Composition root: the only place that constructs services and wires them together.
// openServices() opens the embedded SQLite queue, mailbox store and directory under data_dir;
// startServer() locks data_dir (one server per data directory), adds TLS material, binds the listeners and
// only then starts the delivery worker (a port in use stops the start before anything is delivered);
// runServer() waits for SIGTERM/SIGINT and shuts down in order (stop accepting, drain sessions, stop
// delivery, close stores, release the lock), and reloads on SIGHUP (src/server/reload.ts).
// Deliberately NOT here: argument parsing and config loading (src/cli), protocol or socket code
// (src/protocol, src/server, src/net). Nothing imports this file except the CLI, the session threads'
// entry (session-thread.ts, the other composition root) and tests.

import { PostgresSieveScriptStore } from './store/sieve-scripts-postgres.ts';
import { PostgresMaildropLocks } from './store/maildrop-locks-postgres.ts';
import { openRedis, redisReady } from './net/redis.ts';
import { SqliteSieveScriptStore, sieveScriptsPath } from './store/sieve-scripts-sqlite.ts';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Writable } from 'node:stream';
import type { Config } from './config/config.ts';
import type { ConfigError } from './config/load.ts';
import type { Clock, LogFields, Logger } from './core/ports.ts';
import { nullLogger, systemClock } from './core/ports.ts';
import { Events } from './core/events.ts';
import type { Directory } from './directory/directory.ts';
import { ensurePostmaster } from './directory/postmaster.ts';
import { RemoteDelivery } from './delivery/remote.ts';
import { MtaSts } from './delivery/mta-sts.ts';
import { SqlitePolicyCache } from './delivery/policy-cache.ts';
import { TlsReporter } from './delivery/tls-reporter.ts';
import { DmarcReporter } from './delivery/dmarc-reporter.ts';
import { dmarcRecordingLogger, SqliteDmarcStore } from './reports/dmarc-store.ts';
import { DeliveryWorker } from './delivery/worker.ts';
import { InProcessMaildropLocks } from './store/maildrop-locks.ts';
import { DataDirLockedError, lockDataDir } from './db/data-dir-lock.ts';
import type { DataDirLock } from './db/data-dir-lock.ts';
import { DiskSpace } from './net/disk-space.ts';
import { createResolver } from './net/dns.ts';
import { createLogSink, type LogSink } from './net/logger.ts';
import { loadTlsMaterial } from './net/tls.ts';
import { createTokenVerifier } from './net/token-verifier.ts';
import { loadFilterPlugins } from './server/filter-plugins.ts';
import { watchChangeLog } from './queue/change-log-watcher.ts';
import type { Queue } from './queue/queue.ts';
import type { BoundListener } from './server/listeners.ts';
import { ListenerBindError, ProcessLimits, startListeners } from './server/listeners.ts';
import { WorkerPool } from './server/workers/worker-pool.ts';
import type { ReloadResult, SnapshotLoader } from './server/reload.ts';
import { applySnapshot, createReloader, describeListenerError, logConfigWarnings } from './server/reload.ts';
import type { ImapMailboxStore } from './store/mailbox-store.ts';
import { tracingLogger } from './trace/trace.ts';
import { observingLogger, type Observed } from './core/observe.ts';
import { fsyncChannel, type FsyncObservation } from './db/group-commit.ts';
import { AdminAuth } from './admin/auth.ts';
import type { ReadyCheck } from './admin/context.ts';
import { LiveEvents } from './admin/live.ts';
import { ServerMetrics } from './admin/metrics.ts';
import { startAdmin, type BoundAdmin, type RunningAdmin } from './admin/server.ts';
import { startMtaStsPublisher, type RunningMtaStsPublisher } from './admin/mta-sts-publisher.ts';
import { postmasterAddress } from './directory/postmaster.ts';
import { readReloadStatus, type ReloadStatus } from './server/reload.ts';
import type { RunningListeners } from './server/listeners.ts';
import type { SqliteTraceStore } from './trace/sqlite-trace-store.ts';
import {
  StartupError,
  dataPaths,
  describeFsError,
  openTrace,
  openAdminAccounts,
  tlsPolicyPath,
  dmarcReportsPath,
  openDirectory,
  openQueue,
  openStore,
  prepareDataDir,
  type OpenOptions,
  closeSharedPools,
  sharedPool,
} from './services.ts';

export interface Services {
  readonly queue: Queue;
  readonly store: ImapMailboxStore;
  readonly directory: Directory;
  readonly clock: Clock;
  close(): Promise<void>;
}

export type { BoundListener };
export {
  closeSharedPools,
  StartupError,
  dataPaths,
  prepareDataDir,
  openDirectory,
  openQueue,
  openStore,
  type OpenOptions,
} from './services.ts';

/** A PEM bundle named by a config key, read once at start; a clear error naming the key otherwise. */
function readOptionalPem(path: string | null, key: string): string | null {
  if (path === null) return null;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new StartupError(`${key}: cannot read ${path}: ${describeFsError(err)}`, { cause: err });
  }
}

/** Close in reverse order of opening; every close runs even when an earlier one fails. */
async function closeAll(closers: readonly (() => Promise<void>)[], logger: Logger): Promise<void> {
  for (const close of [...closers].reverse()) {
    try {
      await close();
    } catch (err) {
      logger.error(Events.serverCloseFailed, { err });
    }
  }
}

export async function openServices(
  config: Config,
  logger: Logger,
  clock: Clock = systemClock,
  options: OpenOptions = {},
): Promise<Services> {
  const closers: (() => Promise<void>)[] = [];
  // Closed last (closers run in reverse): the PostgreSQL pool the three share (none with SQLite).
  if (config.storage.backend === 'postgres') closers.push(() => closeSharedPools());
  try {
    const directory = await openDirectory(config);
    closers.push(() => directory.close());
    const queue = await openQueue(config, clock, logger);
    closers.push(() => queue.close());
    const store = await openStore(config, clock, options);
    closers.push(() => store.close());
    return { queue, store, directory, clock, close: () => closeAll(closers, logger) };
  } catch (err) {
    await closeAll(closers, logger);
    throw err;
  }
}

export interface RunningServer {
  /** The listeners bound now (a reload may change them). */
  readonly bound: readonly BoundListener[];
  /** The admin listeners (bound at start; a reload does not change them). */
  readonly admin: readonly BoundAdmin[];
  /** How the admin API's POST /api/reload reloads (runServer gives the SIGHUP reloader). */
  setReloadTrigger(trigger: () => Promise<ReloadStatus | null>): void;
  /** Swap in a new snapshot for new sessions (see src/server/reload.ts); the old one stays on refusal. */
  reload(next: Config): Promise<ReloadResult>;
  /**
   * Stop accepting, let sessions finish within limits.shutdownGraceMs, stop delivery, close services.
   * Idempotent; `reason` (e.g. the signal) goes to the log.
   */
  stop(reason?: string): Promise<void>;
}

export interface ServerOptions {
  /** Where the `listening ...` lines go (tests and scripts parse them). Default: process.stdout. */
  readonly stdout?: Writable;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** The configuration file's warnings, logged at start. */
  readonly warnings?: readonly ConfigError[];
  /** Reads the configuration file again for a reload (SIGHUP); without it, SIGHUP is logged and ignored. */
  readonly load?: SnapshotLoader;
  /** The logger with its stream, which session threads' lines share (runServer makes it). */
  readonly logSink?: LogSink;
}

/** Hold data_dir's lock, as a StartupError naming the other server's pid when it is held. */
function lockData(root: string): DataDirLock {
  try {
    return lockDataDir(root);
  } catch (err) {
    if (err instanceof DataDirLockedError) throw new StartupError(err.message, { cause: err });
    throw new StartupError(`cannot lock the data directory ${root}: ${describeFsError(err)}`, { cause: err });
  }
}

/** The line printed for each bound listener, e.g. `listening smtp 127.0.0.1:2525 (starttls)`. */
export function formatListening(
  l: Pick<BoundListener, 'host' | 'port' | 'tls' | 'path'> & { service: string },
): string {
  if (l.path !== undefined) return `listening ${l.service} unix:${l.path} (${l.tls})`;
  const host = l.host.includes(':') ? `[${l.host}]` : l.host;
  return `listening ${l.service} ${host}:${l.port} (${l.tls})`;
}

/** `[server] workers`: "auto" is one thread per core but the main thread's own (docs/workers.md §3). */
export function sessionThreads(config: Pick<Config, 'server'>, cores = availableParallelism()): number {
  const w = config.server.workers;
  return w === 'auto' ? Math.max(0, cores - 1) : w;
}

/** Lines a session thread rendered as JSON, told again to a logger the caller gave (tests). */
function relayLines(logger: Logger): (text: string) => void {
  return (text) => {
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const { level, event, ...fields } = record;
      const name = typeof event === 'string' ? event : 'log';
      const f = fields as LogFields;
      if (level === 'error' || level === 'fatal') logger.error(name, f);
      else if (level === 'warn') logger.warn(name, f);
      else if (level === 'debug' || level === 'trace') logger.debug(name, f);
      else logger.event(name, f);
    }
  };
}

export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const sink =
    options.logSink ??
    (options.logger === undefined
      ? createLogSink({ level: config.log.level, format: config.log.format })
      : { logger: options.logger, writeLines: relayLines(options.logger), pretty: false });
  const clock = options.clock ?? systemClock;
  const stdout = options.stdout ?? process.stdout;

  logConfigWarnings(sink.logger, options.warnings ?? [], config.source);
  // The data dir first (the self-signed certificate lives there), its lock before anything in it is
  // touched, then TLS: a bad certificate path should fail before any database is opened.
  prepareDataDir(config);
  const lock = lockData(dataPaths(config).root);
  let trace: SqliteTraceStore;
  try {
    trace = await openTrace(config, clock, 'owner');
  } catch (err) {
    lock.release();
    throw err;
  }
  // What /metrics and the admin page count and stream, from every thread (core/observe.ts).
  let listenersRef: RunningListeners | null = null;
  let queueRef: Queue | null = null;
  const metrics = new ServerMetrics({
    queueStats: async () => (queueRef === null ? null : queueRef.stats(clock.nowMs()).catch(() => null)),
    connectionsByService: () => listenersRef?.connectionsByService() ?? new Map<string, number>(),
    nowMs: () => clock.nowMs(),
  });
  const live = new LiveEvents();
  const observe = (o: Observed): void => {
    if (o.event === 'db.fsync') {
      const seconds = o.fields['seconds'];
      if (typeof seconds === 'number') metrics.observeFsync({ seconds, commits: 0 });
      return;
    }
    metrics.observe(o);
    live.publish(o);
  };
  const onFsync = (message: unknown): void => metrics.observeFsync(message as FsyncObservation);
  // Without an admin listener nobody reads the counters: nothing is observed, on any thread.
  const observing = config.admin.listeners.length > 0;
  if (observing) fsyncChannel.subscribe(onFsync);
  // Every record that names a queue id is also a step of that message's trace (trace/trace.ts).
  const traced = tracingLogger(sink.logger, trace, () => clock.nowMs());
  // The rows of DMARC aggregate reports, counted as messages are checked (reports/dmarc-store.ts).
  const dmarcStore = SqliteDmarcStore.open(dmarcReportsPath(config), () => clock.nowMs());
  const logger = dmarcRecordingLogger(
    observing ? observingLogger(traced, observe, () => clock.nowMs()) : traced,
    dmarcStore,
  );
  let tls: Awaited<ReturnType<typeof loadTlsMaterial>>;
  let services: Services;
  const threads = sessionThreads(config);
  try {
    tls = await loadTlsMaterial(config, logger);
    // With session threads, deliveries made here reach their IDLE sessions through the store's channel.
    services = await openServices(config, logger, clock, { broadcast: threads > 0 });
  } catch (err) {
    fsyncChannel.unsubscribe(onFsync);
    trace.close();
    lock.release();
    throw err;
  }
  const { queue, store, directory } = services;
  queueRef = queue;
  await ensurePostmaster(config, directory, logger);
  const resolver = createResolver(config.dns, { clock, logger });
  // One lock table for every POP3 (later IMAP) session of this process: one server per data directory.
  // With several nodes on one PostgreSQL, a maildrop is locked for all of them (a leased row).
  const maildropLocks =
    config.storage.backend === 'postgres'
      ? await PostgresMaildropLocks.open({ pool: sharedPool(config) })
      : new InProcessMaildropLocks();
  const tlsCa = readOptionalPem(config.outbound.tlsCa, 'outbound.tls_ca');
  // MTA-STS policies survive restarts (RFC 8461 §5.1), beside the queue they protect; the TLS results
  // of every delivery session wait there for their day's TLS-RPT report.
  const policyCache = SqlitePolicyCache.open(tlsPolicyPath(config));
  const mtaSts = config.outbound.mtaSts
    ? new MtaSts({ resolver, cache: policyCache, clock, logger, tlsCa })
    : null;
  const remote = new RemoteDelivery({ config, resolver, logger, tlsCa, mtaSts, tlsResults: policyCache });
  // Users' Sieve scripts, run at delivery here; ManageSieve sessions open their own connections to the file.
  const sieveScripts =
    config.storage.backend === 'postgres'
      ? await PostgresSieveScriptStore.open({ pool: sharedPool(config) })
      : SqliteSieveScriptStore.open(sieveScriptsPath(config));
  const tlsReporter = new TlsReporter({ store: policyCache, resolver, queue, config, clock, logger, tlsCa });
  const dmarcReporter = new DmarcReporter({ store: dmarcStore, resolver, queue, config, clock, logger });
  const worker = new DeliveryWorker({
    queue,
    store,
    directory,
    clock,
    logger,
    config,
    remote,
    dkimDataDir: dataPaths(config).root,
    diskSpace: new DiskSpace(dataPaths(config).mail, 0),
    sieve: sieveScripts,
  });
  let listeners: Awaited<ReturnType<typeof startListeners>> | undefined;
  let admin: RunningAdmin | null = null;
  let stsPublisher: RunningMtaStsPublisher | null = null;
  let current = config;
  let reloadTrigger: (() => Promise<ReloadStatus | null>) | null = null;
  const accounts = await openAdminAccounts(config, clock);
  const diskSpace = new DiskSpace(dataPaths(config).root, 1000);
  const ready = async (): Promise<ReadyCheck[]> => {
    const check = async (name: string, fn: () => Promise<string>): Promise<ReadyCheck> => {
      try {
        return { name, ok: true, detail: await fn() };
      } catch (err) {
        return { name, ok: false, detail: err instanceof Error ? err.message : String(err) };
      }
    };
    const postmaster = postmasterAddress(current);
    return [
      await check('queue', async () => `${(await queue.stats(clock.nowMs())).messages} messages`),
      // A read each: a store or directory that cannot answer throws, and the check says why.
      await check('store', async () => {
        await store.status(postmaster, 'INBOX');
        return 'open';
      }),
      await check('directory', async () => {
        await directory.getPasswordHash(postmaster);
        return 'open';
      }),
      await (async (): Promise<ReadyCheck> => {
        const free = await diskSpace.freeBytes(clock.nowMs());
        const min = current.limits.minFreeBytes;
        return {
          name: 'disk',
          ok: free === null || free >= min,
          detail: free === null ? 'free space unknown' : `${free} bytes free, ${min} kept in reserve`,
        };
      })(),
      {
        name: 'accepting',
        ok: stopping === null,
        detail: stopping === null ? 'listeners open' : 'shutting down',
      },
    ];
  };
  const adminContext = () => ({
    queue,
    store,
    directory,
    trace,
    accounts,
    metrics,
    live,
    auth: new AdminAuth({
      accounts,
      guard: () => limits.authGuard,
      sessionIdleMs: () => current.admin.sessionIdleMs,
      logger,
      onLogin: (ok: boolean) => metrics.adminLogin(ok),
    }),
    config: () => current,
    reload: () => reloadTrigger,
    ready,
    resolver,
    logger,
    clock,
  });
  // What the CLI changes (queue actions, users, aliases) goes to this server's log as cli.* events.
  const changeLog = await watchChangeLog(queue, logger);
  // [redis] url: lockouts and sending rates counted once for every node (docs/scaling.md).
  const redis = config.redis.url === null ? null : openRedis(config.redis.url);
  if (redis !== null) {
    redis.on('error', () => undefined); // the shared limits log the outage and fall back
    if (!(await redisReady(redis, 3000)))
      logger.warn(Events.redisUnavailable, {
        url: redactUrl(config.redis.url!),
        fallback: 'per-node limits',
      });
  }
  const limits = new ProcessLimits(
    config.auth,
    clock,
    redis === null ? null : { redis, clock, logger, prefix: config.redis.keyPrefix },
  );
  let pool: WorkerPool | null = null;
  try {
    // Session threads open their own connections to the stores this thread has opened (and migrated).
    pool =
      threads === 0
        ? null
        : await WorkerPool.start({
            count: threads,
            config,
            limits,
            maildropLocks,
            logger,
            prettyLogs: sink.pretty,
            writeLogs: sink.writeLines,
            onCommitted: () => worker.wake(),
            observe: observing,
            onObserved: (events) => {
              for (const o of events) observe(o);
            },
            script: new URL('./session-thread.ts', import.meta.url),
          });
    // Listeners before the worker: a port in use must stop the start before anything is delivered.
    listeners = await startListeners({
      config,
      queue,
      directory,
      store,
      maildropLocks,
      logger,
      clock,
      tls: { cert: tls.cert, key: tls.key, clientCa: readOptionalPem(config.tls.clientCa, 'tls.client_ca') },
      tokens: config.auth.oauth === null ? null : await createTokenVerifier(config.auth.oauth),
      plugins: await loadFilterPlugins(config).catch((err: unknown) => {
        throw new StartupError(err instanceof Error ? err.message : String(err), { cause: err });
      }),
      resolver,
      limits,
      ...(pool === null ? {} : { dispatch: pool }),
    });
    listenersRef = listeners;
    admin = await startAdmin(adminContext(), config.admin.listeners, tls).catch((err: unknown) => {
      throw new StartupError(
        `cannot bind the admin listener: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    });
    stsPublisher = await startMtaStsPublisher(() => current, tls, logger).catch((err: unknown) => {
      throw new StartupError(
        `cannot bind the mta-sts listener: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    });
    worker.start();
  } catch (err) {
    await admin?.close();
    await listeners?.close(0);
    accounts.close();
    fsyncChannel.unsubscribe(onFsync);
    await pool?.stop(0);
    await changeLog.stop();
    await worker.stop();
    await remote.close();
    await mtaSts?.close();
    await tlsReporter.close();
    policyCache.close();
    redis?.disconnect();
    await sieveScripts.close();
    await dmarcStore.close();
    await services.close();
    trace.close();
    lock.release();
    if (err instanceof ListenerBindError) {
      throw new StartupError(describeListenerError(err, config.source), { cause: err });
    }
    throw err;
  }

  // TLS-RPT: finished days are reported within the hour; a month of results is kept.
  const reportTimer = setInterval(() => {
    const monthAgo = new Date(clock.nowMs() - 30 * 86_400_000).toISOString().slice(0, 10);
    policyCache.prune(monthAgo);
    dmarcStore.prune(monthAgo);
    void tlsReporter.run();
    void dmarcReporter.run({ send: true });
  }, 3_600_000);
  reportTimer.unref();
  const running = listeners;
  const bound = running.bound;
  for (const b of bound) stdout.write(`${formatListening(b)}\n`);
  const adminBound = admin?.bound ?? [];
  for (const b of adminBound) stdout.write(`${formatListening({ ...b, service: 'admin' })}\n`);
  for (const b of stsPublisher?.bound ?? [])
    stdout.write(`${formatListening({ ...b, service: 'mta-sts' })}\n`);
  const snapshotDeps = {
    startConfig: config,
    listeners: running,
    base: { queue, directory, store, maildropLocks, logger, clock, resolver },
    logger,
    // A renewed certificate serves the admin page's new HTTPS connections too.
    onTls: (material: { cert: string; key: string }) => {
      admin?.setTls(material);
      stsPublisher?.setTls(material);
    },
  };
  // listeners.ts logs server.listening per listener; this is the one line saying the whole server is up.
  logger.event(Events.serverStarted, {
    listeners: [
      ...bound.map((b) => `${b.service} ${b.host}:${b.port} ${b.tls}`),
      ...adminBound.map((b) => `admin ${b.host}:${b.port} ${b.tls}`),
    ],
    dataDir: dataPaths(config).root,
    config: config.source,
    selfSignedTls: tls.selfSigned,
    ...(config.catch ? { catch: true } : {}),
  });
  if (config.catch) {
    // Catcher mode accepts anyone's mail and any login: say so loudly when others can reach it.
    const open = bound.filter((b) => b.path === undefined && !/^(127\.|::1$|localhost$)/.test(b.host));
    logger.warn(Events.serverCatchMode, {
      message: 'catcher mode: every message is kept, nothing is delivered (docs/catch.md)',
      ...(open.length === 0 ? {} : { reachable: open.map((b) => `${b.service} ${b.host}:${b.port}`) }),
    });
  }

  let stopping: Promise<void> | null = null;
  const stop = (reason = 'requested'): Promise<void> => {
    stopping ??= (async () => {
      logger.event(Events.serverShutdown, { reason, graceMs: config.limits.shutdownGraceMs });
      try {
        await admin?.close();
        await stsPublisher?.close();
        await running.close(config.limits.shutdownGraceMs);
      } finally {
        fsyncChannel.unsubscribe(onFsync);
        accounts.close();
        await changeLog.stop();
        await worker.stop();
        clearInterval(reportTimer);
        await remote.close();
        await mtaSts?.close();
        await tlsReporter.close();
        policyCache.close();
        redis?.disconnect();
        await sieveScripts.close();
        await dmarcStore.close();
        await services.close();
        trace.close();
        lock.release();
      }
      logger.event(Events.serverStopped);
    })();
    return stopping;
  };
  return {
    get bound() {
      return running.bound;
    },
    admin: adminBound,
    setReloadTrigger(trigger) {
      reloadTrigger = trigger;
    },
    reload: async (next) => {
      const result = await applySnapshot(snapshotDeps, next);
      if (result.ok) current = result.config;
      return result;
    },
    stop,
  };
}

/**
 * Run until SIGTERM or SIGINT, then shut down in order and resolve with the exit status (0).
 * A second signal during shutdown exits at once with 130: the operator has stopped waiting.
 */
export async function runServer(config: Config, options: ServerOptions = {}): Promise<number> {
  // A logger the caller gave is used as it is (session threads' lines are told to it again).
  const logSink =
    options.logSink ??
    (options.logger === undefined
      ? createLogSink({ level: config.log.level, format: config.log.format })
      : undefined);
  const logger = logSink?.logger ?? options.logger ?? nullLogger;
  const stdout = options.stdout ?? process.stdout;
  // SIGHUP's default is to end the process: from here on it means "reload", also while starting.
  let server: RunningServer | null = null;
  let hupWhileStarting = false;
  let reloader: { trigger(): Promise<void> } | null = null;
  const onHup = (): void => {
    if (reloader !== null) void reloader.trigger();
    else if (server === null) hupWhileStarting = true;
  };
  process.on('SIGHUP', onHup);
  try {
    server = await startServer(config, { ...options, logger, ...(logSink === undefined ? {} : { logSink }) });
  } catch (err) {
    process.off('SIGHUP', onHup);
    throw err;
  }
  const running = server;
  const load = options.load;
  if (load !== undefined) {
    reloader = createReloader({
      load,
      apply: (next) => running.reload(next),
      logger,
      dataDir: dataPaths(config).root,
      nowMs: () => (options.clock ?? systemClock).nowMs(),
      onApplied: (result) => {
        for (const b of result.changes.added) stdout.write(`${formatListening(b)}\n`);
      },
    });
    if (hupWhileStarting) void reloader.trigger();
    const r = reloader;
    const dataDir = dataPaths(config).root;
    running.setReloadTrigger(async () => {
      await r.trigger();
      return readReloadStatus(dataDir);
    });
  } else {
    reloader = {
      trigger: () => (
        logger.warn(Events.configReloadRefused, { errors: ['no file to reload'] }),
        Promise.resolve()
      ),
    };
  }
  // Signal handlers alone do not keep Node running: hold the event loop open until one arrives, so
  // the process waits even when nothing else (a listener socket) does.
  const keepAlive = setInterval(() => {}, 2 ** 30);
  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      clearInterval(keepAlive);
      resolveSignal(sig);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  const force = (sig: NodeJS.Signals): void => {
    logger.warn(Events.serverShutdownForced, { signal: sig });
    process.exit(130);
  };
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
  // A reload during shutdown would bind listeners that are about to close.
  reloader = { trigger: () => Promise.resolve() };
  try {
    await running.stop(signal);
  } finally {
    process.off('SIGTERM', force);
    process.off('SIGINT', force);
    process.off('SIGHUP', onHup);
  }
  return 0;
}

/** A URL for the log: its password replaced. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
