// Listeners: one TCP (or implicit-TLS, RFC 8314) server per configured listener, connection limits
// (total and per client address) enforced before a session starts, graceful shutdown, and reload: a new
// snapshot (config, TLS material, token verifier) is swapped whole for new connections, while each open
// session keeps the snapshot it started with; listeners the new file adds are bound first (a bind
// failure leaves everything as it was), then the swap, then listeners it removed stop accepting.
// A listener is the same across a reload when its host and port are (port 0 ones matched in order):
// its socket stays open and only what it serves (service, tls, auth) changes.
// Deliberately NOT here: protocol (SmtpSession) and per-session I/O (SmtpConnection).

import { randomBytes, X509Certificate } from 'node:crypto';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Config, ListenerConfig, Service, TlsMode } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { formatReply, Replies, type Reply } from '../core/reply.ts';
import type { Resolver } from '../core/dns.ts';
import type { Directory } from '../directory/directory.ts';
import { createSecureContext } from '../net/tls.ts';
import { createClientNameLookup } from '../net/reverse-dns.ts';
import { DiskSpace } from '../net/disk-space.ts';
import { resolve } from 'node:path';
import { parseCidr, type Network } from '../policy/networks.ts';
import type { Queue } from '../queue/queue.ts';
import { AuthGuard, SendRateLimiter } from '../policy/auth-guard.ts';
import { Authenticator, type TokenCheck } from './authenticator.ts';
import { normalizeIp, SmtpConnection, type ConnectionDeps } from './smtp-connection.ts';

export interface ListenerDeps {
  readonly config: Config;
  readonly queue: Queue;
  readonly directory: Directory;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCa?: string | null } | null;
  /** Bearer-token verification for OAUTHBEARER/XOAUTH2; null when [auth.oauth] is not configured. */
  readonly tokens?: TokenCheck | null;
  /** DNS for the inbound authentication checks and clients' names; without it both are off. */
  readonly resolver?: Resolver | null;
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

function listenerKey(l: ListenerConfig): string {
  return `${l.host.toLowerCase()}|${l.port}`;
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
  const connections = new Set<SmtpConnection>();
  const perIp = new Map<string, number>();
  let entries: Entry[] = [];
  /** Servers a reload removed: no longer accepting, waited for at close. */
  const retired: Promise<void>[] = [];
  const sessionPrefix = randomBytes(3).toString('hex');
  let sessionCounter = 0;

  const refuse = (socket: Socket, reply: Reply, reason: string, ip: string): void => {
    logger.warn(Events.smtpRefused, { ip, reason });
    socket.on('error', () => undefined);
    socket.end(formatReply(reply, true));
    setTimeout(() => socket.destroy(), 2000).unref();
  };

  /** Connections counted against the limits: sessions, plus implicit-TLS handshakes in progress. */
  let handshaking = 0;

  const accept = (entry: Entry, socket: Socket): void => {
    // The snapshot at accept time is the one this connection keeps, handshake included.
    const gen = current;
    const listener = entry.listener;
    const { config } = gen;
    const ip = normalizeIp(socket.remoteAddress ?? '0.0.0.0');
    const implicit = listener.tls === 'implicit';
    // Over a limit, an implicit-TLS client cannot read a plaintext 421: it is just closed.
    const over = (reply: Reply, reason: string): void =>
      implicit
        ? (logger.warn(Events.smtpRefused, { ip, reason }), void socket.destroy())
        : refuse(socket, reply, reason, ip);
    if (connections.size + handshaking >= config.limits.maxConnections) {
      return over(Replies.tooManyConnections, 'max connections');
    }
    const count = perIp.get(ip) ?? 0;
    if (count >= config.limits.maxConnectionsPerIp) {
      return over(Replies.tooManyConnectionsFromIp, 'max connections per ip');
    }
    perIp.set(ip, count + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left <= 0) perIp.delete(ip);
      else perIp.set(ip, left);
    };
    socket.setNoDelay(true);
    if (!implicit) return startSession(gen, listener, socket, release);
    // RFC 8314 implicit TLS: the handshake is part of the connection, counted and bounded in time.
    handshaking++;
    socket.on('error', () => undefined);
    const tlsSocket = new TLSSocket(socket, {
      isServer: true,
      secureContext: gen.secureContext!,
      // Unverified certificates still reach the authenticator (fingerprint mapping).
      requestCert: listener.clientCertificates !== 'none',
      rejectUnauthorized: false,
    });
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      handshaking--;
      release();
      logger.warn(Events.tlsFailed, { ip, error: why });
      tlsSocket.destroy();
      socket.destroy();
    };
    const timer = setTimeout(() => fail('TLS handshake timeout'), config.limits.tlsHandshakeTimeoutMs);
    tlsSocket.once('error', (err: Error) => fail(err.message));
    tlsSocket.once('close', () => fail('closed during the TLS handshake'));
    tlsSocket.once('secure', () => {
      if (settled) return;
      if (listener.clientCertificates === 'require' && !tlsSocket.getPeerX509Certificate()) {
        return fail('client certificate required');
      }
      settled = true;
      clearTimeout(timer);
      handshaking--;
      tlsSocket.removeAllListeners('error');
      tlsSocket.removeAllListeners('close');
      startSession(gen, listener, tlsSocket, release);
    });
  };

  const startSession = (
    gen: Generation,
    listener: ListenerConfig,
    socket: Socket,
    release: () => void,
  ): void => {
    const id = `${sessionPrefix}${(++sessionCounter).toString(36).padStart(5, '0')}`;
    const conn = new SmtpConnection(socket, id, listener, gen.connDeps);
    connections.add(conn);
    void conn.done.then(() => {
      connections.delete(conn);
      release();
    });
    conn.start();
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
      // Pair each new listener with an old one of the same host and port, in order.
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
      for (const c of connections) c.shutdown();
      const all = Promise.all([...connections].map((c) => c.done));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>(
        (resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)),
      );
      const outcome = await Promise.race([all.then(() => 'done' as const), expired]);
      clearTimeout(timer);
      if (outcome === 'expired') for (const c of connections) c.destroy();
      await closed;
    },
  };
}
