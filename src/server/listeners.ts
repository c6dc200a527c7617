// Listeners: one TCP (or implicit-TLS, RFC 8314) server per configured listener, connection limits
// (total and per client address) enforced before a session starts, graceful shutdown, and reload: a new
// snapshot (config, TLS material, token verifier) is swapped whole for new connections, while each open
// session keeps the snapshot it started with; listeners the new file adds are bound first (a bind
// failure leaves everything as it was), then the swap, then listeners it removed stop accepting.
// A listener is the same across a reload when its host and port are (port 0 ones matched in order):
// its socket stays open and only what it serves (service, tls, auth) changes.
// Protocol-neutral: each accepted socket becomes a connection shell (net/connection.ts; implicit TLS is
// handshaked first, counted against the limits) and the service's driver factory (drivers.ts) makes the
// driver; over a limit the factory's refusal text is sent (not on implicit TLS, where it cannot be read).
// Deliberately NOT here: protocols (the drivers) and per-session I/O (the shell).

import { randomBytes, X509Certificate } from 'node:crypto';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Config, ListenerConfig, Service, TlsMode } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import type { Resolver } from '../core/dns.ts';
import type { Directory } from '../directory/directory.ts';
import type { MailboxStore } from '../store/mailbox-store.ts';
import type { MaildropLocks } from '../store/maildrop-locks.ts';
import { Connection, normalizeIp, type ConnectionOptions } from '../net/connection.ts';
import { createSecureContext } from '../net/tls.ts';
import { createClientNameLookup } from '../net/reverse-dns.ts';
import { DiskSpace } from '../net/disk-space.ts';
import { resolve } from 'node:path';
import { parseCidr, type Network } from '../policy/networks.ts';
import type { Queue } from '../queue/queue.ts';
import { AuthGuard, SendRateLimiter } from '../policy/auth-guard.ts';
import { Authenticator, type TokenCheck } from './authenticator.ts';
import type { ConnectionDeps } from './connection-deps.ts';
import { imapSharedState } from './imap/shared-uids.ts';
import type { Driver, DriverFactory, RefusalReason } from './driver.ts';
import { DRIVERS, type DriverRegistry } from './drivers.ts';

export interface ListenerDeps {
  readonly config: Config;
  readonly queue: Queue;
  readonly directory: Directory;
  /** The mailboxes POP3 (and later IMAP) sessions read, and their exclusive-access locks. */
  readonly store: MailboxStore;
  readonly maildropLocks: MaildropLocks;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCa?: string | null } | null;
  /** Bearer-token verification for OAUTHBEARER/XOAUTH2; null when [auth.oauth] is not configured. */
  readonly tokens?: TokenCheck | null;
  /** DNS for the inbound authentication checks and clients' names; without it both are off. */
  readonly resolver?: Resolver | null;
  /** The driver of each service; tests may swap one. Default: drivers.ts. */
  readonly drivers?: DriverRegistry;
}

export interface BoundListener {
  readonly service: Service;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
}

/** A listener that could not be bound: `index` is its place in config.listeners (listeners[index]). */
export class ListenerBindError extends Error {
  readonly index: number;
  readonly listener: ListenerConfig;
  readonly code: string;
  constructor(index: number, listener: ListenerConfig, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | null)?.code ?? '';
    super(describeBindError(formatHostPort(listener.host, listener.port), code, cause), { cause });
    this.name = 'ListenerBindError';
    this.index = index;
    this.listener = listener;
    this.code = code;
  }
}

function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function describeBindError(where: string, code: string, cause: unknown): string {
  switch (code) {
    case 'EADDRINUSE':
      return `${where} is in use`;
    case 'EACCES':
      return `${where}: permission denied (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
      return `${where} is not an address of this host`;
    default:
      return `${where}: cannot listen: ${cause instanceof Error ? cause.message : String(cause)}`;
  }
}

/** What a reload changed in the listeners. */
export interface ListenerChanges {
  readonly added: readonly BoundListener[];
  readonly removed: readonly BoundListener[];
}

export interface RunningListeners {
  /** The listeners bound now (after a reload, the new set). */
  readonly bound: readonly BoundListener[];
  /** Connections open right now (for tests and metrics). */
  connectionCount(): number;
  /**
   * Swap in a new snapshot for new connections: bind the listeners `deps.config` adds, then switch, then
   * stop accepting on the ones it removed. Throws (ListenerBindError, or a bad certificate) with nothing
   * changed. Open sessions finish on the snapshot they started with.
   */
  reload(deps: ListenerDeps): ListenerChanges | Promise<ListenerChanges>;
  /** Stop accepting, let sessions finish for up to graceMs, then cut what is left. */
  close(graceMs: number): Promise<void>;
}

/** Every certificate of a PEM bundle. */
function parsePemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** One snapshot's worth of what a new session is given. */
interface Generation {
  readonly config: Config;
  readonly connDeps: ConnectionDeps;
  readonly secureContext: SecureContext | null;
}

interface Entry {
  /** host and port as configured: the identity of a listener across reloads. */
  readonly key: string;
  listener: ListenerConfig;
  readonly server: Server;
  bound: BoundListener;
}

/** The reason field of the refusal log line (unchanged from the SMTP-only listener). */
const REFUSAL_LOG_TEXT: Readonly<Record<RefusalReason, string>> = {
  'max-connections': 'max connections',
  'max-connections-per-ip': 'max connections per ip',
};

/**
 * What pairs a listener of the new configuration with a bound one at reload: its host and port. Port 0
 * ("any free port") names no port, so there the service decides too (in order among the same service):
 * otherwise dropping one port-0 listener would hand its socket to the next one of another protocol.
 */
function listenerKey(l: ListenerConfig): string {
  const host = l.host.toLowerCase();
  return l.port === 0 ? `${host}|0|${l.service}` : `${host}|${l.port}`;
}

function guardOptionsEqual(a: Config['auth'], b: Config['auth']): boolean {
  return (
    a.lockoutThreshold === b.lockoutThreshold &&
    a.lockoutWindowMs === b.lockoutWindowMs &&
    a.lockoutMs === b.lockoutMs
  );
}

export async function startListeners(deps: ListenerDeps): Promise<RunningListeners> {
  const { logger } = deps;
  // Shared by every snapshot: counters that a reload must not reset.
  const rateLimiter = new SendRateLimiter(deps.clock);
  // One for the process: IMAP sessions of every generation see the same users and folders.
  const imap = imapSharedState();
  const diskSpace = new DiskSpace(resolve(deps.config.dataDir));
  let authGuard = new AuthGuard(deps.config.auth, deps.clock);
  // One lookup (and cache) for all listeners and snapshots: a client's name is the same whichever port it
  // uses, and [dns] takes effect only at a restart.
  const clientNames =
    deps.resolver === undefined || deps.resolver === null
      ? null
      : createClientNameLookup(deps.resolver, {
          clock: deps.clock,
          maxCacheTtlMs: deps.config.dns.maxCacheTtlMs,
        });

  const makeGeneration = (d: ListenerDeps): Generation => {
    const { config } = d;
    const clientCa = d.tls?.clientCa ?? null;
    const secureContext = d.tls
      ? createSecureContext(d.tls, clientCa === null ? {} : { ca: clientCa })
      : null;
    const connDeps: ConnectionDeps = {
      ...d,
      secureContext,
      trustedNetworks: config.smtp.trustedNetworks
        .map((c) => parseCidr(c))
        .filter((n): n is Network => n !== null),
      authenticator: new Authenticator(d.directory, d.tokens ?? null),
      authGuard,
      rateLimiter,
      imap,
      resolver: d.resolver ?? null,
      clientNames,
      diskSpace,
      clientCas: clientCa === null ? [] : parsePemCertificates(clientCa),
      skipCheckNetworks: config.checks.skipNetworks
        .map((c) => parseCidr(c))
        .filter((n): n is Network => n !== null),
    };
    return { config, connDeps, secureContext };
  };

  let current = makeGeneration(deps);
  const drivers = deps.drivers ?? DRIVERS;
  const connections = new Set<{ readonly shell: Connection; readonly driver: Driver }>();
  const perIp = new Map<string, number>();
  const perService = new Map<Service, number>();
  let entries: Entry[] = [];
  /** Servers a reload removed: no longer accepting, waited for at close. */
  const retired: Promise<void>[] = [];
  const sessionPrefix = randomBytes(3).toString('hex');
  let sessionCounter = 0;
  /** Connections counted against the limits: sessions, plus implicit-TLS handshakes in progress. */
  let handshaking = 0;

  const refuse = (
    socket: Socket,
    factory: DriverFactory,
    reason: RefusalReason,
    ip: string,
    implicit: boolean,
  ): void => {
    logger.warn(factory.events.refused, { ip, reason: REFUSAL_LOG_TEXT[reason] });
    socket.on('error', () => undefined);
    // Over a limit, an implicit-TLS client cannot read a plaintext refusal: it is just closed.
    if (implicit) return void socket.destroy();
    socket.end(factory.refusal(reason));
    setTimeout(() => socket.destroy(), 2000).unref();
  };

  const count = <K>(map: Map<K, number>, key: K, by: 1 | -1): void => {
    const n = (map.get(key) ?? 0) + by;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  };

  const accept = (entry: Entry, socket: Socket): void => {
    // The snapshot at accept time is the one this connection keeps, handshake included.
    const gen = current;
    const listener = entry.listener;
    const { config } = gen;
    const factory = drivers[listener.service];
    const ip = normalizeIp(socket.remoteAddress ?? '0.0.0.0');
    const implicit = listener.tls === 'implicit';
    const serviceCap = factory.maxConnections?.(config) ?? Infinity;
    if (
      connections.size + handshaking >= config.limits.maxConnections ||
      (perService.get(listener.service) ?? 0) >= serviceCap
    ) {
      return refuse(socket, factory, 'max-connections', ip, implicit);
    }
    if ((perIp.get(ip) ?? 0) >= config.limits.maxConnectionsPerIp) {
      return refuse(socket, factory, 'max-connections-per-ip', ip, implicit);
    }
    count(perIp, ip, 1);
    count(perService, listener.service, 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      count(perIp, ip, -1);
      count(perService, listener.service, -1);
    };
    socket.setNoDelay(true);
    const options: ConnectionOptions = {
      maxBufferedBytes: factory.maxBufferedBytes,
      tls: {
        secureContext: gen.secureContext,
        clientCertificates: listener.clientCertificates,
        timeoutMs: config.limits.tlsHandshakeTimeoutMs,
      },
    };
    if (!implicit) return startSession(gen, listener, factory, new Connection(socket, options), release);
    // RFC 8314 implicit TLS: the handshake is part of the connection, counted and bounded in time.
    handshaking++;
    void Connection.acceptTls(socket, options).then((shell) => {
      handshaking--;
      if (shell instanceof Connection) return startSession(gen, listener, factory, shell, release);
      release();
      logger.warn(factory.events.tlsFailed, { ip, error: shell.error });
    });
  };

  const startSession = (
    gen: Generation,
    listener: ListenerConfig,
    factory: DriverFactory,
    shell: Connection,
    release: () => void,
  ): void => {
    const id = `${sessionPrefix}${(++sessionCounter).toString(36).padStart(5, '0')}`;
    const driver = factory.create(shell, { id, listener, deps: gen.connDeps });
    const conn = { shell, driver };
    connections.add(conn);
    void shell.done.then(() => {
      connections.delete(conn);
      release();
    });
    driver.start();
  };

  const checkTls = (gen: Generation): void => {
    for (const listener of gen.config.listeners) {
      if (listener.tls === 'implicit' && gen.secureContext === null) {
        throw new Error(`listener ${listener.service} needs TLS but no certificate is loaded`);
      }
    }
  };

  /** Bind one listener; the entry's `listener` is replaced later when a reload keeps it. */
  const bind = async (index: number, listener: ListenerConfig, gen: Generation): Promise<Entry> => {
    // Implicit TLS too starts as TCP: the connection is counted before its handshake (see accept).
    const entry: Entry = {
      key: listenerKey(listener),
      listener,
      server: createTcpServer((socket) => accept(entry, socket)),
      bound: { service: listener.service, host: listener.host, port: listener.port, tls: listener.tls },
    };
    const server = entry.server;
    server.maxConnections = gen.config.limits.maxConnections + 100; // the rest get a polite 421 above
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: listener.host, port: listener.port, backlog: 1024 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw new ListenerBindError(index, listener, err);
    }
    server.on('error', (err) => logger.error(Events.smtpInternalError, { error: err.message }));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : listener.port;
    entry.bound = { ...entry.bound, port };
    logger.event(Events.serverListening, {
      service: listener.service,
      host: listener.host,
      port,
      tls: listener.tls,
    });
    return entry;
  };

  const closeServer = (server: Server): Promise<void> =>
    new Promise<void>((resolve) => server.close(() => resolve()));

  checkTls(current);
  try {
    for (const [i, listener] of current.config.listeners.entries())
      entries.push(await bind(i, listener, current));
  } catch (err) {
    for (const e of entries) e.server.close();
    throw err;
  }

  return {
    get bound() {
      return entries.map((e) => e.bound);
    },
    connectionCount: () => connections.size,
    async reload(next: ListenerDeps): Promise<ListenerChanges> {
      const nextAuth = next.config.auth;
      const keepGuard = guardOptionsEqual(current.config.auth, nextAuth);
      const previousGuard = authGuard;
      if (!keepGuard) authGuard = new AuthGuard(nextAuth, next.clock);
      let gen: Generation;
      try {
        gen = makeGeneration(next);
        checkTls(gen);
      } catch (err) {
        authGuard = previousGuard;
        throw err;
      }
      // Pair each new listener with an old one of the same key (listenerKey), in order.
      const unmatched = [...entries];
      const plan = gen.config.listeners.map((listener, index) => {
        const at = unmatched.findIndex((e) => e.key === listenerKey(listener));
        const kept = at < 0 ? null : unmatched.splice(at, 1)[0]!;
        return { listener, index, kept };
      });
      const added: Entry[] = [];
      try {
        for (const p of plan) if (p.kept === null) added.push(await bind(p.index, p.listener, gen));
      } catch (err) {
        for (const e of added) e.server.close();
        authGuard = previousGuard;
        throw err;
      }
      const fresh = [...added];
      entries = plan.map((p) => {
        if (p.kept === null) return fresh.shift()!;
        const e = p.kept;
        e.listener = p.listener;
        e.bound = {
          service: p.listener.service,
          host: p.listener.host,
          port: e.bound.port,
          tls: p.listener.tls,
        };
        e.server.maxConnections = gen.config.limits.maxConnections + 100;
        return e;
      });
      current = gen;
      for (const e of unmatched) {
        retired.push(closeServer(e.server));
        logger.event(Events.serverListenerClosed, { ...e.bound });
      }
      return { added: added.map((e) => e.bound), removed: unmatched.map((e) => e.bound) };
    },
    async close(graceMs: number): Promise<void> {
      logger.event(Events.serverStopping, { connections: connections.size, graceMs });
      const closed = Promise.all([...entries.map((e) => closeServer(e.server)), ...retired]);
      for (const c of connections) c.driver.shutdown();
      const all = Promise.all([...connections].map((c) => c.shell.done));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>(
        (resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)),
      );
      const outcome = await Promise.race([all.then(() => 'done' as const), expired]);
      clearTimeout(timer);
      if (outcome === 'expired') for (const c of connections) c.shell.destroy();
      await closed;
    },
  };
}
