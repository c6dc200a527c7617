// Listeners: one TCP (or implicit-TLS, RFC 8314) server per configured listener, connection limits
// (total and per client address) enforced before a session starts, graceful shutdown, and reload: a new
// snapshot (config, TLS material, token verifier) is swapped whole for new connections, while each open
// session keeps the snapshot it started with; listeners the new file adds are bound first (a bind
// failure leaves everything as it was), then the swap, then listeners it removed stop accepting.
// A listener is the same across a reload when its host and port are (port 0 ones matched in order):
// its socket stays open and only what it serves (service, tls, auth) changes.
// Sessions run here (session-runner.ts) or, with a `dispatch`, on session threads (worker-pool.ts): the
// accepting, the counting and the refusals stay on this thread either way, so the limits are exact, and
// so are the AUTH and sending limits this file keeps for the process (ProcessLimits).
// A listener with proxy_from reads the PROXY protocol header here, before counting per address, so the
// limits count the client it names; peers outside proxy_from and bad headers are closed unanswered.
// Deliberately NOT here: protocols (the drivers) and per-session I/O (the shell).

import { randomBytes } from 'node:crypto';
import { createConnection, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { Config, ListenerConfig, Service, TlsMode } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Clock } from '../core/ports.ts';
import type { Resolver } from '../core/dns.ts';
import {
  normalizeIp,
  readPreamble,
  type PreambleDecision,
  type ProxiedEndpoints,
} from '../net/connection.ts';
import { assertNever } from '../core/assert-never.ts';
import { parseProxyHeader } from '../protocol/proxy.ts';
import { inNetworks, parseCidr } from '../policy/networks.ts';
import { DiskSpace } from '../net/disk-space.ts';
import { resolve } from 'node:path';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { AuthGuard, SendRateLimiter, type AuthLimits, type SendRates } from '../policy/auth-guard.ts';
import {
  SharedAuthLimits,
  SharedConnectionCounts,
  SharedSendRates,
  type SharedLimitsOptions,
} from '../policy/shared-limits.ts';
import { imapSharedState, UserSlotCounter } from './imap/shared-uids.ts';
import type { DriverFactory, RefusalReason } from './driver.ts';
import { DRIVERS, type DriverRegistry } from './drivers.ts';
import {
  SessionRunner,
  type Generation,
  type GenerationDeps,
  type ProxiedSession,
} from './session-runner.ts';

/** A generation's services and material (session-runner.ts), and what only the accepting side needs. */
export interface ListenerDeps extends GenerationDeps {
  /** DNS for the inbound authentication checks and clients' names; without it both are off. */
  readonly resolver?: Resolver | null;
  /** The driver of each service; tests may swap one. Default: drivers.ts. */
  readonly drivers?: DriverRegistry;
  /** Run sessions on session threads instead of this one (worker-pool.ts); absent: here. */
  readonly dispatch?: SessionDispatch;
  /** The process-wide limits, when the caller shares them with session threads; absent: made here. */
  readonly limits?: ProcessLimits;
}

/** Where sessions run when not on the accepting thread. */
export interface SessionDispatch {
  /**
   * Make generation `gen` (this snapshot) ready wherever sessions run; rejects when any place cannot,
   * and then nothing uses it (the reload is refused).
   */
  prepare(gen: number, deps: ListenerDeps): Promise<void>;
  /** Generation `gen` gets no new sessions any more; its open sessions keep it until they end. */
  retire(gen: number): void;
  /**
   * Run a session on this accepted, counted, unread socket; `ended` is called once it is over. False
   * when no thread can take it now (the socket is untouched: the caller refuses it).
   */
  hand(socket: Socket, session: HandedSession, ended: () => void): boolean;
  /** Ask every session to end, wait up to graceMs, cut the rest. */
  stop(graceMs: number): Promise<void>;
}

export interface HandedSession {
  readonly id: string;
  readonly gen: number;
  /** The listener's place in that generation's config.listeners. */
  readonly listenerIndex: number;
}

/** A PROXY protocol header as read here: a structured-clone-safe value that crosses to session threads. */
function decideProxyHeader(bytes: Uint8Array): PreambleDecision<ProxiedEndpoints | null> {
  const header = parseProxyHeader(bytes);
  switch (header.kind) {
    case 'need-more':
      return 'need-more';
    case 'invalid':
      return { ok: false, error: header.reason };
    case 'local':
      return { ok: true, value: null, consumed: header.consumed };
    case 'proxied':
      return {
        ok: true,
        value: { source: header.source, destination: header.destination },
        consumed: header.consumed,
      };
    default:
      return assertNever(header);
  }
}

/** A balancer sends its header as it connects: a peer that has not within this is not one. */
const PROXY_HEADER_TIMEOUT_MS = 10_000;

/**
 * The limits that must be one count for the process, whichever thread runs the session: AUTH failures
 * and lockouts, hourly sending rates, IMAP connections per user. Kept across reloads (a reload that
 * changes the lockout options starts a new AuthGuard); session threads reach them through the
 * coordinator (coordinator.ts).
 */
export class ProcessLimits {
  authGuard: AuthLimits;
  readonly rateLimiter: SendRates;
  readonly userSlots = new UserSlotCounter();
  /** limits.max_connections_per_ip for the cluster (Redis); null: this process's count alone. */
  readonly connections: SharedConnectionCounts | null;
  readonly #shared: SharedLimitsOptions | null;

  /** `shared`: the cluster's Redis ([redis] url): lockouts and rates counted once for every node. */
  constructor(auth: Config['auth'], clock: Clock, shared: SharedLimitsOptions | null = null) {
    this.#shared = shared;
    this.authGuard = this.newAuthGuard(auth, clock);
    this.rateLimiter = shared === null ? new SendRateLimiter(clock) : new SharedSendRates(shared);
    this.connections = shared === null ? null : new SharedConnectionCounts(shared);
  }

  /** A guard for these lockout options: this process's, or the cluster's through Redis. */
  newAuthGuard(auth: Config['auth'], clock: Clock): AuthLimits {
    return this.#shared === null
      ? new AuthGuard(auth, clock)
      : new SharedAuthLimits(auth, { ...this.#shared, clock });
  }
}

export interface BoundListener {
  readonly service: Service;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
  /** A Unix socket listener's path (host is "unix", port 0). */
  readonly path?: string;
}

/** A listener that could not be bound: `index` is its place in config.listeners (listeners[index]). */
export class ListenerBindError extends Error {
  readonly index: number;
  readonly listener: ListenerConfig;
  readonly code: string;
  constructor(index: number, listener: ListenerConfig, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | null)?.code ?? '';
    const where = listener.path ?? formatHostPort(listener.host, listener.port);
    super(describeBindError(where, code, cause), { cause });
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
  /** Connections open right now by service (the admin page's metrics). */
  connectionsByService(): ReadonlyMap<Service, number>;
  /** The limits kept for the whole process (served to session threads by the coordinator). */
  readonly limits: ProcessLimits;
  /**
   * Swap in a new snapshot for new connections: bind the listeners `deps.config` adds, then switch, then
   * stop accepting on the ones it removed. Throws (ListenerBindError, or a bad certificate) with nothing
   * changed. Open sessions finish on the snapshot they started with.
   */
  reload(deps: ListenerDeps): ListenerChanges | Promise<ListenerChanges>;
  /** Stop accepting, let sessions finish for up to graceMs, then cut what is left. */
  close(graceMs: number): Promise<void>;
}

interface Entry {
  /** host and port as configured: the identity of a listener across reloads. */
  readonly key: string;
  listener: ListenerConfig;
  /** Its place in the current generation's config.listeners. */
  index: number;
  readonly server: Server;
  bound: BoundListener;
}

/** The reason field of the refusal log line (unchanged from the SMTP-only listener). */
const REFUSAL_LOG_TEXT: Readonly<Record<RefusalReason, string>> = {
  'max-connections': 'max connections',
  'max-connections-per-ip': 'max connections per ip',
  'no-session-thread': 'no session thread ready',
};

/**
 * What pairs a listener of the new configuration with a bound one at reload: its host and port. Port 0
 * ("any free port") names no port, so there the service decides too (in order among the same service):
 * otherwise dropping one port-0 listener would hand its socket to the next one of another protocol.
 */
function listenerKey(l: ListenerConfig): string {
  if (l.path !== undefined) return `unix:${l.path}`;
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
  const dispatch = deps.dispatch ?? null;
  // Shared by every snapshot: counters that a reload must not reset.
  const limits = deps.limits ?? new ProcessLimits(deps.config.auth, deps.clock);
  const runner = new SessionRunner({
    authGuard: () => limits.authGuard,
    rateLimiter: limits.rateLimiter,
    // One for the process: IMAP sessions of every generation see the same users and folders.
    imap: imapSharedState(limits.userSlots),
    diskSpace: new DiskSpace(resolve(deps.config.dataDir)),
    resolver: deps.resolver ?? null,
    ...(deps.drivers === undefined ? {} : { drivers: deps.drivers }),
  });
  const drivers = deps.drivers ?? DRIVERS;

  let genCounter = 0;
  let closing = false;
  const makeGeneration = (d: ListenerDeps, guard: AuthLimits): Generation & { readonly id: number } => ({
    ...runner.generation(d, guard),
    id: ++genCounter,
  });
  let current = makeGeneration(deps, limits.authGuard);
  if (dispatch !== null) await dispatch.prepare(current.id, deps);

  /** Connections counted against the limits: sessions, plus implicit-TLS handshakes in progress. */
  let open = 0;
  const perIp = new Map<string, number>();
  const perService = new Map<Service, number>();
  let entries: Entry[] = [];
  /** Servers a reload removed: no longer accepting, waited for at close. */
  const retired: Promise<void>[] = [];
  const sessionPrefix = randomBytes(3).toString('hex');
  let sessionCounter = 0;

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
    // A socket accepted paused (pauseOnConnect, for handing over) must flow for end() to finish.
    socket.resume();
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
    const peerIp = normalizeIp(socket.remoteAddress ?? '0.0.0.0');
    const implicit = listener.tls === 'implicit';
    const serviceCap = factory.maxConnections?.(config) ?? Infinity;
    if (open >= config.limits.maxConnections || (perService.get(listener.service) ?? 0) >= serviceCap) {
      return refuse(socket, factory, 'max-connections', peerIp, implicit);
    }
    // A Unix socket's peer is a process of this host: named as loopback, and (its socket being a kind
    // a session thread is not handed) run on this thread like a proxied one.
    if (listener.path !== undefined) {
      const local = { ip: '127.0.0.1', port: 0 };
      return admit(entry, gen, socket, local.ip, {
        endpoints: { source: local, destination: local },
        rest: new Uint8Array(0),
      });
    }
    const proxyFrom = listener.proxyFrom;
    if (proxyFrom === undefined) return admit(entry, gen, socket, peerIp, null);
    // PROXY protocol: only the listed balancers may name a client; anyone else is closed unanswered.
    if (
      !inNetworks(
        peerIp,
        proxyFrom.flatMap((cidr) => parseCidr(cidr) ?? []),
      )
    ) {
      logger.warn(factory.events.refused, { ip: peerIp, reason: 'not in proxy_from' });
      socket.on('error', () => undefined);
      return void socket.destroy();
    }
    // Counted (total and per service) while its header is awaited; per client address once it is known.
    open++;
    count(perService, listener.service, 1);
    void readPreamble(socket, {
      timeoutMs: Math.min(config.limits.greetingTimeoutMs, PROXY_HEADER_TIMEOUT_MS),
      decide: decideProxyHeader,
    }).then((header) => {
      open--;
      count(perService, listener.service, -1);
      if (!header.ok) {
        logger.warn(factory.events.refused, { ip: peerIp, reason: `PROXY header: ${header.error}` });
        return void socket.destroy();
      }
      if (closing) return void socket.destroy();
      const client = header.value === null ? peerIp : header.value.source.ip;
      admit(entry, gen, socket, client, { endpoints: header.value, rest: header.rest });
    });
  };

  /** Count a connection against the limits for `ip` (the real client's) and start its session. */
  const admit = (
    entry: Entry,
    gen: Generation & { readonly id: number },
    socket: Socket,
    ip: string,
    proxied: ProxiedSession | null,
  ): void => {
    const listener = entry.listener;
    const { config } = gen;
    const factory = drivers[listener.service];
    const implicit = listener.tls === 'implicit';
    if ((perIp.get(ip) ?? 0) >= config.limits.maxConnectionsPerIp) {
      return refuse(socket, factory, 'max-connections-per-ip', ip, implicit);
    }
    open++;
    count(perIp, ip, 1);
    count(perService, listener.service, 1);
    const id = `${sessionPrefix}${(++sessionCounter).toString(36).padStart(5, '0')}`;
    const shared = limits.connections;
    let released = false;
    const ended = (): void => {
      if (released) return;
      released = true;
      open--;
      count(perIp, ip, -1);
      count(perService, listener.service, -1);
      void shared?.release(ip, id);
    };
    if (shared === null) return start(entry, gen, socket, ip, proxied, id, ended);
    // The cluster's count too (Redis): this node's alone may be under the limit while others hold more.
    // Until the session takes the socket, a reset must not be an unhandled 'error'.
    socket.on('error', () => undefined);
    void shared.acquire(ip, config.limits.maxConnectionsPerIp, id).then((ok) => {
      if (ok) return start(entry, gen, socket, ip, proxied, id, ended);
      ended();
      refuse(socket, factory, 'max-connections-per-ip', ip, implicit);
    });
  };

  /** Run the counted connection's session here, or hand it to a session thread. */
  const start = (
    entry: Entry,
    gen: Generation & { readonly id: number },
    socket: Socket,
    ip: string,
    proxied: ProxiedSession | null,
    id: string,
    ended: () => void,
  ): void => {
    const listener = entry.listener;
    const factory = drivers[listener.service];
    const implicit = listener.tls === 'implicit';
    if (socket.destroyed || closing) {
      socket.destroy();
      return ended();
    }
    // A PROXY header was read here, so the socket has been read from: its session stays on this thread
    // (a handle handed to a session thread after reading is not known to keep every byte).
    if (dispatch === null || proxied !== null) return runner.run(gen, listener, socket, id, ended, proxied);
    const handed: HandedSession = { id, gen: gen.id, listenerIndex: entry.index };
    if (dispatch.hand(socket, handed, ended)) return;
    ended();
    refuse(socket, factory, 'no-session-thread', ip, implicit);
  };

  /** Bind one listener; the entry's `listener` is replaced later when a reload keeps it. */
  const bind = async (index: number, listener: ListenerConfig, gen: Generation): Promise<Entry> => {
    // Implicit TLS too starts as TCP: the connection is counted before its handshake (see accept).
    // Handed-over sockets must not be read here: accepted paused (docs/workers.md).
    const entry: Entry = {
      key: listenerKey(listener),
      listener,
      index,
      server: createTcpServer({ pauseOnConnect: dispatch !== null }, (socket) => accept(entry, socket)),
      bound: {
        service: listener.service,
        host: listener.host,
        port: listener.port,
        tls: listener.tls,
        ...(listener.path === undefined ? {} : { path: listener.path }),
      },
    };
    const server = entry.server;
    server.maxConnections = gen.config.limits.maxConnections + 100; // the rest get a polite 421 above
    try {
      const path = listener.path;
      if (path !== undefined) await removeStaleSocket(path);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const where = path === undefined ? { host: listener.host, port: listener.port } : { path };
        server.listen({ ...where, backlog: 1024 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      if (path !== undefined) await chmod(path, listener.socketMode ?? 0o660);
    } catch (err) {
      throw new ListenerBindError(index, listener, err);
    }
    server.on('error', (err) => logger.error(Events.smtpInternalError, { error: err.message }));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : listener.port;
    entry.bound = { ...entry.bound, port };
    logger.event(Events.serverListening, {
      service: listener.service,
      ...(listener.path === undefined ? { host: listener.host, port } : { path: listener.path }),
      tls: listener.tls,
    });
    return entry;
  };

  const closeServer = (server: Server): Promise<void> =>
    new Promise<void>((resolve) => server.close(() => resolve()));

  try {
    for (const [i, listener] of current.config.listeners.entries())
      entries.push(await bind(i, listener, current));
  } catch (err) {
    for (const e of entries) e.server.close();
    dispatch?.retire(current.id);
    throw err;
  }

  return {
    get bound() {
      return entries.map((e) => e.bound);
    },
    connectionCount: () => open,
    connectionsByService: () => new Map(perService),
    limits,
    async reload(next: ListenerDeps): Promise<ListenerChanges> {
      if (closing) throw new Error('the server is stopping');
      const nextAuth = next.config.auth;
      // Built aside and put in place only with the new snapshot: until then every session (on any
      // thread) keeps counting against the guard in force, and a refused reload changes nothing.
      const guard = guardOptionsEqual(current.config.auth, nextAuth)
        ? limits.authGuard
        : limits.newAuthGuard(nextAuth, next.clock);
      const gen = makeGeneration(next, guard);
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
        // Every session thread builds the snapshot before any socket is handed over with it.
        if (dispatch !== null) await dispatch.prepare(gen.id, next);
        // close() began while this reload waited: what it bound would never be closed.
        if (closing) throw new Error('the server is stopping');
      } catch (err) {
        for (const e of added) e.server.close();
        dispatch?.retire(gen.id);
        throw err;
      }
      const fresh = [...added];
      entries = plan.map((p) => {
        if (p.kept === null) return fresh.shift()!;
        const e = p.kept;
        e.listener = p.listener;
        e.index = p.index;
        e.bound = {
          service: p.listener.service,
          host: p.listener.host,
          port: e.bound.port,
          tls: p.listener.tls,
        };
        e.server.maxConnections = gen.config.limits.maxConnections + 100;
        return e;
      });
      const previous = current;
      limits.authGuard = guard;
      current = gen;
      dispatch?.retire(previous.id);
      for (const e of unmatched) {
        retired.push(closeServer(e.server));
        logger.event(Events.serverListenerClosed, { ...e.bound });
      }
      return { added: added.map((e) => e.bound), removed: unmatched.map((e) => e.bound) };
    },
    async close(graceMs: number): Promise<void> {
      closing = true;
      logger.event(Events.serverStopping, { connections: open, graceMs });
      const closed = Promise.all([...entries.map((e) => closeServer(e.server)), ...retired]);
      // Sessions of proxy_from listeners run here even with session threads.
      await Promise.all([runner.stop(graceMs), ...(dispatch === null ? [] : [dispatch.stop(graceMs)])]);
      await closed;
    },
  };
}

/**
 * A socket file left by a server that did not stop cleanly would make listen() fail (EADDRINUSE):
 * removed when it is a socket nobody answers on. Anything else at the path is left for bind to report.
 */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (st === null || !st.isSocket()) return;
  const answered = await new Promise<boolean>((done) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      done(true);
    });
    probe.once('error', () => done(false));
  });
  if (!answered) await unlink(path).catch(() => undefined);
}
