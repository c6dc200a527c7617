// Composition root: the only place that constructs services and wires them together.
// openServices() opens the embedded SQLite queue, mailbox store and directory under data_dir;
// startServer() adds TLS material, the delivery worker and the listeners; runServer() waits for
// SIGTERM/SIGINT and shuts down in order (stop accepting, drain sessions, stop delivery, close stores).
// Deliberately NOT here: argument parsing and config loading (src/cli), protocol or socket code
// (src/protocol, src/server, src/net). Nothing imports this file except the CLI and tests.

import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { Config } from './config/config.ts';
import type { Clock, Logger } from './core/ports.ts';
import { systemClock } from './core/ports.ts';
import { Events } from './core/events.ts';
import type { Directory } from './directory/directory.ts';
import { SqliteDirectory } from './directory/sqlite-directory.ts';
import { RemoteDelivery } from './delivery/remote.ts';
import { DeliveryWorker } from './delivery/worker.ts';
import { DiskSpace } from './net/disk-space.ts';
import { createResolver } from './net/dns.ts';
import { createLogger } from './net/logger.ts';
import { loadTlsMaterial } from './net/tls.ts';
import { createTokenVerifier } from './net/token-verifier.ts';
import type { Queue } from './queue/queue.ts';
import { SqliteQueue } from './queue/sqlite-queue.ts';
import type { BoundListener } from './server/listeners.ts';
import { startListeners } from './server/listeners.ts';
import type { MailboxStore } from './store/mailbox-store.ts';
import { SqliteMailboxStore } from './store/sqlite-mailbox-store.ts';

export interface Services {
  readonly queue: Queue;
  readonly store: MailboxStore;
  readonly directory: Directory;
  readonly clock: Clock;
  close(): Promise<void>;
}

export type { BoundListener };

/** A startup problem a person can fix (data dir, files); its message is meant to be shown as is. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** Where each service keeps its files inside data_dir. */
export function dataPaths(config: Pick<Config, 'dataDir'>): {
  root: string;
  queue: string;
  mail: string;
  directory: string;
} {
  const root = resolve(config.dataDir);
  return {
    root,
    queue: join(root, 'queue'),
    mail: join(root, 'mail'),
    directory: join(root, 'directory.sqlite'),
  };
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code ?? '';
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOTDIR':
      return 'a parent path is not a directory';
    case 'EEXIST':
      return 'a file (not a directory) is in the way';
    case 'ENOSPC':
      return 'no space left on device';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** The error of the nearest existing ancestor of `dir` when it is not writable (EROFS, EACCES), else `err`. */
function whyNotCreatable(dir: string, err: unknown): unknown {
  let parent = dirname(resolve(dir));
  while (!existsSync(parent) && parent !== dirname(parent)) parent = dirname(parent);
  try {
    accessSync(parent, constants.W_OK);
    return err;
  } catch (accessErr) {
    return accessErr;
  }
}

/**
 * Create a directory if missing and prove it writable by writing a probe file: access(W_OK) alone
 * says yes to root on a read-only mount, and a mount can turn read-only without the mode changing.
 */
function ensureWritableDir(dir: string, what: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    // A recursive mkdir on a read-only mount says ENOENT; the nearest existing folder tells the truth.
    throw new StartupError(`cannot create ${what} ${dir}: ${describeFsError(whyNotCreatable(dir, err))}`, {
      cause: err,
    });
  }
  const probe = join(dir, `.tern-write-probe-${process.pid}`);
  try {
    writeFileSync(probe, '');
    rmSync(probe, { force: true });
  } catch (err) {
    throw new StartupError(`${what} ${dir} is not writable: ${describeFsError(err)}`, { cause: err });
  }
}

/** Create data_dir (and the per-service folders) or explain why it cannot be used. */
export function prepareDataDir(config: Pick<Config, 'dataDir'>): ReturnType<typeof dataPaths> {
  const paths = dataPaths(config);
  ensureWritableDir(paths.root, 'data directory');
  mkdirSync(paths.queue, { recursive: true });
  mkdirSync(paths.mail, { recursive: true });
  return paths;
}

/** Any failure while opening a service's files becomes a StartupError that names the service. */
async function opening<T>(what: string, open: () => T | Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    if (err instanceof StartupError) throw err;
    throw new StartupError(`cannot open the ${what}: ${describeFsError(err)}`, { cause: err });
  }
}

export async function openDirectory(config: Config): Promise<Directory> {
  const paths = prepareDataDir(config);
  return opening('user directory', () =>
    SqliteDirectory.open({ path: paths.directory, localDomains: config.localDomains }),
  );
}

export async function openQueue(config: Config, clock: Clock, logger: Logger): Promise<Queue> {
  const paths = prepareDataDir(config);
  return opening('queue', () => SqliteQueue.open({ dir: paths.queue, clock, logger }));
}

export async function openStore(config: Config, clock: Clock): Promise<MailboxStore> {
  const paths = prepareDataDir(config);
  return opening('mailbox store', () => SqliteMailboxStore.open({ dir: paths.mail, clock }));
}

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
): Promise<Services> {
  const closers: (() => Promise<void>)[] = [];
  try {
    const directory = await openDirectory(config);
    closers.push(() => directory.close());
    const queue = await openQueue(config, clock, logger);
    closers.push(() => queue.close());
    const store = await openStore(config, clock);
    closers.push(() => store.close());
    return { queue, store, directory, clock, close: () => closeAll(closers, logger) };
  } catch (err) {
    await closeAll(closers, logger);
    throw err;
  }
}

export interface RunningServer {
  readonly bound: readonly BoundListener[];
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
}

/** The line printed for each bound listener, e.g. `listening smtp 127.0.0.1:2525 (starttls)`. */
export function formatListening(l: BoundListener): string {
  const host = l.host.includes(':') ? `[${l.host}]` : l.host;
  return `listening ${l.service} ${host}:${l.port} (${l.tls})`;
}

export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger({ level: config.log.level, format: config.log.format });
  const clock = options.clock ?? systemClock;
  const stdout = options.stdout ?? process.stdout;

  // The data dir first (the self-signed certificate lives there), then TLS: a bad certificate path
  // should fail before any database is opened.
  prepareDataDir(config);
  const tls = await loadTlsMaterial(config, logger);
  const services = await openServices(config, logger, clock);
  const { queue, store, directory } = services;
  const resolver = createResolver(config.dns, { clock, logger });
  const remote = new RemoteDelivery({
    config,
    resolver,
    logger,
    tlsCa: readOptionalPem(config.outbound.tlsCa, 'outbound.tls_ca'),
  });
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
  });
  let listeners: Awaited<ReturnType<typeof startListeners>>;
  try {
    worker.start();
    listeners = await startListeners({
      config,
      queue,
      directory,
      logger,
      clock,
      tls: { cert: tls.cert, key: tls.key, clientCa: readOptionalPem(config.tls.clientCa, 'tls.client_ca') },
      tokens: config.auth.oauth === null ? null : await createTokenVerifier(config.auth.oauth),
      resolver,
    });
  } catch (err) {
    await worker.stop();
    await remote.close();
    await services.close();
    throw err;
  }

  const bound = listeners.bound;
  for (const b of bound) stdout.write(`${formatListening(b)}\n`);
  // listeners.ts logs server.listening per listener; this is the one line saying the whole server is up.
  logger.event(Events.serverStarted, {
    listeners: bound.map((b) => `${b.service} ${b.host}:${b.port} ${b.tls}`),
    dataDir: dataPaths(config).root,
    config: config.source,
    selfSignedTls: tls.selfSigned,
  });

  let stopping: Promise<void> | null = null;
  const stop = (reason = 'requested'): Promise<void> => {
    stopping ??= (async () => {
      logger.event(Events.serverShutdown, { reason, graceMs: config.limits.shutdownGraceMs });
      try {
        await listeners.close(config.limits.shutdownGraceMs);
      } finally {
        await worker.stop();
        await remote.close();
        await services.close();
      }
      logger.event(Events.serverStopped);
    })();
    return stopping;
  };
  return { bound, stop };
}

/**
 * Run until SIGTERM or SIGINT, then shut down in order and resolve with the exit status (0).
 * A second signal during shutdown exits at once with 130: the operator has stopped waiting.
 */
export async function runServer(config: Config, options: ServerOptions = {}): Promise<number> {
  const logger = options.logger ?? createLogger({ level: config.log.level, format: config.log.format });
  const server = await startServer(config, { ...options, logger });
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
  try {
    await server.stop(signal);
  } finally {
    process.off('SIGTERM', force);
    process.off('SIGINT', force);
  }
  return 0;
}
