// Listeners: one TCP (or implicit-TLS, RFC 8314) server per configured listener, connection limits
// (total and per client address) enforced before a session starts, and graceful shutdown.
// Deliberately NOT here: protocol (SmtpSession) and per-session I/O (SmtpConnection).

import { randomBytes, X509Certificate } from 'node:crypto';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
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

export interface RunningListeners {
  readonly bound: readonly BoundListener[];
  /** Connections open right now (for tests and metrics). */
  connectionCount(): number;
  /** Stop accepting, let sessions finish for up to graceMs, then cut what is left. */
  close(graceMs: number): Promise<void>;
}

/** Every certificate of a PEM bundle. */
function parsePemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

export async function startListeners(deps: ListenerDeps): Promise<RunningListeners> {
  const { config, logger } = deps;
  const clientCa = deps.tls?.clientCa ?? null;
  const secureContext = deps.tls
    ? createSecureContext(deps.tls, clientCa === null ? {} : { ca: clientCa })
    : null;
  const trustedNetworks = config.smtp.trustedNetworks
    .map((c) => parseCidr(c))
    .filter((n): n is Network => n !== null);
  const connDeps: ConnectionDeps = {
    ...deps,
    secureContext,
    trustedNetworks,
    authenticator: new Authenticator(deps.directory, deps.tokens ?? null),
    authGuard: new AuthGuard(config.auth, deps.clock),
    rateLimiter: new SendRateLimiter(deps.clock),
    resolver: deps.resolver ?? null,
    // One lookup (and cache) for all listeners: a client's name is the same whichever port it uses.
    clientNames:
      deps.resolver === undefined || deps.resolver === null
        ? null
        : createClientNameLookup(deps.resolver, {
            clock: deps.clock,
            maxCacheTtlMs: config.dns.maxCacheTtlMs,
          }),
    diskSpace: new DiskSpace(resolve(config.dataDir)),
    clientCas: clientCa === null ? [] : parsePemCertificates(clientCa),
    skipCheckNetworks: config.checks.skipNetworks
      .map((c) => parseCidr(c))
      .filter((n): n is Network => n !== null),
  };
  const connections = new Set<SmtpConnection>();
  const perIp = new Map<string, number>();
  const servers: Server[] = [];
  const bound: BoundListener[] = [];
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
  const handshakeMs = config.limits.tlsHandshakeTimeoutMs;

  const accept = (listener: ListenerConfig, socket: Socket): void => {
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
    if (!implicit) return startSession(listener, socket, release);
    // RFC 8314 implicit TLS: the handshake is part of the connection, counted and bounded in time.
    handshaking++;
    socket.on('error', () => undefined);
    const tlsSocket = new TLSSocket(socket, {
      isServer: true,
      secureContext: secureContext!,
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
    const timer = setTimeout(() => fail('TLS handshake timeout'), handshakeMs);
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
      startSession(listener, tlsSocket, release);
    });
  };

  const startSession = (listener: ListenerConfig, socket: Socket, release: () => void): void => {
    const id = `${sessionPrefix}${(++sessionCounter).toString(36).padStart(5, '0')}`;
    const conn = new SmtpConnection(socket, id, listener, connDeps);
    connections.add(conn);
    void conn.done.then(() => {
      connections.delete(conn);
      release();
    });
    conn.start();
  };

  try {
    for (const listener of config.listeners) {
      if (listener.tls === 'implicit' && secureContext === null) {
        throw new Error(`listener ${listener.service} needs TLS but no certificate is loaded`);
      }
      // Implicit TLS too starts as TCP: the connection is counted before its handshake (see accept).
      const server: Server = createTcpServer((socket) => accept(listener, socket));
      server.maxConnections = config.limits.maxConnections + 100; // the rest get a polite 421 above
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: listener.host, port: listener.port, backlog: 1024 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => logger.error(Events.smtpInternalError, { error: err.message }));
      servers.push(server);
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : listener.port;
      bound.push({ service: listener.service, host: listener.host, port, tls: listener.tls });
      logger.event(Events.serverListening, {
        service: listener.service,
        host: listener.host,
        port,
        tls: listener.tls,
      });
    }
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }

  return {
    bound,
    connectionCount: () => connections.size,
    async close(graceMs: number): Promise<void> {
      logger.event(Events.serverStopping, { connections: connections.size, graceMs });
      const closed = Promise.all(
        servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
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
