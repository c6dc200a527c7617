// Opening the embedded stores under data_dir: the data directory made (or explained), and the queue,
// mailbox store and directory opened with errors that name what failed. Shared by the server's two
// composition roots (main.ts, session-thread.ts) and the CLI; nothing here starts anything.

import { accessSync, constants, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from './config/config.ts';
import type { Clock, Logger } from './core/ports.ts';
import type { Directory } from './directory/directory.ts';
import { postmasterAddress } from './directory/postmaster.ts';
import { configQuota } from './directory/quota.ts';
import { SqliteDirectory } from './directory/sqlite-directory.ts';
import type { Queue } from './queue/queue.ts';
import { SqliteQueue } from './queue/sqlite-queue.ts';
import type { ImapMailboxStore } from './store/mailbox-store.ts';
import { SqliteMailboxStore } from './store/sqlite-mailbox-store.ts';
import { SqliteTraceStore } from './trace/sqlite-trace-store.ts';
import { SqliteAdminAccounts } from './directory/admin-accounts.ts';
import { PostgresDirectory } from './directory/postgres-directory.ts';
import { openPool, type PgPool } from './db/postgres.ts';
import { PostgresQueue } from './queue/postgres-queue.ts';
import { PostgresMailboxStore } from './store/postgres-mailbox-store.ts';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

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

export function describeFsError(err: unknown): string {
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
  const options = {
    localDomains: config.localDomains,
    postmaster: postmasterAddress(config),
    recipientDelimiter: config.recipientDelimiter,
    // XXX: the snapshot opened with; a reload does not change it (limits.mailbox_quota_*: restart).
    defaultQuota: configQuota(config.limits),
  };
  if (config.storage.backend === 'postgres') {
    return opening('user directory (PostgreSQL)', async () =>
      PostgresDirectory.open({ pool: sharedPool(config), config: options }),
    );
  }
  return opening('user directory', () => SqliteDirectory.open({ path: paths.directory, ...options }));
}

/**
 * One PostgreSQL pool per process and URL (`[storage] backend = "postgres"`): the queue, the mailbox
 * store and the directory share it; ended by closeSharedPools() when the process stops.
 */
const pools = new Map<string, PgPool>();

export function sharedPool(config: Pick<Config, 'storage'>): PgPool {
  const url = config.storage.url;
  if (url === null) throw new StartupError('[storage] backend = "postgres" needs [storage] url');
  let pool = pools.get(url);
  if (pool === undefined) {
    pool = openPool({ url, max: 16 });
    pools.set(url, pool);
  }
  return pool;
}

/** This process's name among the nodes (queue leases): host, pid and a random part, unique per start. */
let node: string | null = null;
export function nodeId(): string {
  node ??= `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  return node;
}

export async function closeSharedPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.all(all.map((p) => p.end().catch(() => undefined)));
}

/** How a connection to a shared file takes part: the main thread owns it, session threads do not sweep. */
export interface OpenOptions {
  readonly role?: 'owner' | 'session';
  /** The mailbox store tells the other threads' stores what it committed (sessions on threads). */
  readonly broadcast?: boolean;
}

export async function openQueue(
  config: Config,
  clock: Clock,
  logger: Logger,
  options: OpenOptions = {},
): Promise<Queue> {
  const paths = prepareDataDir(config);
  if (config.storage.backend === 'postgres') {
    // The spool of bodies being received stays local; committed mail is in PostgreSQL for every node.
    return opening('queue (PostgreSQL)', () =>
      PostgresQueue.open({
        pool: sharedPool(config),
        spoolDir: paths.queue,
        clock,
        logger,
        nodeId: nodeId(),
        leaseMs: config.queue.leaseMs,
        // The delivery worker's queue (the main thread's) wakes when any node commits.
        listen: options.role !== 'session',
      }),
    );
  }
  return opening('queue', () => SqliteQueue.open({ dir: paths.queue, clock, logger, role: options.role }));
}

export async function openStore(
  config: Config,
  clock: Clock,
  options: OpenOptions = {},
): Promise<ImapMailboxStore> {
  const paths = prepareDataDir(config);
  if (config.storage.backend === 'postgres') {
    // Every node hears every other's commits (LISTEN/NOTIFY): IMAP IDLE and NOTIFY work across nodes.
    return opening('mailbox store (PostgreSQL)', () =>
      PostgresMailboxStore.open({
        pool: sharedPool(config),
        clock,
        ...(options.role === 'session' ? { reclaimIntervalMs: 0 } : {}),
      }),
    );
  }
  return opening('mailbox store', () =>
    SqliteMailboxStore.open({ dir: paths.mail, clock, role: options.role, broadcast: options.broadcast }),
  );
}

/** The trace store (data/trace.sqlite): the server's threads write it, `tern trace` reads it. */
export async function openTrace(
  config: Config,
  clock: Clock,
  role: 'owner' | 'session' | 'reader',
): Promise<SqliteTraceStore> {
  const paths = prepareDataDir(config);
  return opening('trace store', () =>
    SqliteTraceStore.open({
      path: join(paths.root, 'trace.sqlite'),
      retentionMs: config.trace.retentionMs,
      nowMs: () => clock.nowMs(),
      role,
    }),
  );
}

/** Admin accounts, API tokens and page logins (data/admin.sqlite): `tern admin` and the admin listener. */
export async function openAdminAccounts(config: Config, clock: Clock): Promise<SqliteAdminAccounts> {
  const paths = prepareDataDir(config);
  return opening('admin accounts', () =>
    SqliteAdminAccounts.open({ path: join(paths.root, 'admin.sqlite'), nowMs: () => clock.nowMs() }),
  );
}

/** data/tls-policies.sqlite: MTA-STS policies and TLS-RPT results (delivery/policy-cache.ts). */
export function tlsPolicyPath(config: Pick<Config, 'dataDir'>): string {
  return join(prepareDataDir(config).root, 'tls-policies.sqlite');
}

/** data/dmarc.sqlite: the rows of DMARC aggregate reports (reports/dmarc-store.ts). */
export function dmarcReportsPath(config: Pick<Config, 'dataDir'>): string {
  return join(prepareDataDir(config).root, 'dmarc.sqlite');
}
