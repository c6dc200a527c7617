// Listeners: one TCP (or implicit-TLS, RFC 8314) server per configured listener, connection limits
// (total and per client address) enforced before a session starts, and graceful shutdown.
// Deliberately NOT here: protocol (SmtpSession) and per-session I/O (SmtpConnection).

import { randomBytes } from 'node:crypto';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Config, ListenerConfig, Service, TlsMode } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { formatReply, Replies, type Reply } from '../core/reply.ts';
import type { Resolver } from '../core/dns.ts';
import type { Directory } from '../directory/directory.ts';
import { createSecureContext, serverTlsOptions } from '../net/tls.ts';
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
  /** DNS for the inbound authentication checks; without it they are off. */
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
    diskSpace: new DiskSpace(resolve(config.dataDir)),
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

  const accept = (listener: ListenerConfig, socket: Socket): void => {
    const ip = normalizeIp(socket.remoteAddress ?? '0.0.0.0');
    if (connections.size >= config.limits.maxConnections) {
      return refuse(socket, Replies.tooManyConnections, 'max connections', ip);
    }
    const count = perIp.get(ip) ?? 0;
    if (count >= config.limits.maxConnectionsPerIp) {
      return refuse(socket, Replies.tooManyConnectionsFromIp, 'max connections per ip', ip);
    }
    perIp.set(ip, count + 1);
    socket.setNoDelay(true);
    const id = `${sessionPrefix}${(++sessionCounter).toString(36).padStart(5, '0')}`;
    const conn = new SmtpConnection(socket, id, listener, connDeps);
    connections.add(conn);
    void conn.done.then(() => {
      connections.delete(conn);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left <= 0) perIp.delete(ip);
      else perIp.set(ip, left);
    });
    conn.start();
  };

  try {
    for (const listener of config.listeners) {
      let server: Server;
      if (listener.tls === 'implicit') {
        if (!deps.tls) throw new Error(`listener ${listener.service} needs TLS but no certificate is loaded`);
        const requestCert = listener.clientCertificates !== 'none';
        server = createTlsServer(
          {
            ...serverTlsOptions(deps.tls, clientCa === null ? {} : { ca: clientCa }),
            // Unverified certificates still reach the authenticator (fingerprint mapping).
            requestCert,
            rejectUnauthorized: false,
            handshakeTimeout: 30_000,
          },
          (socket) => {
            if (listener.clientCertificates === 'require' && !socket.getPeerX509Certificate()) {
              logger.warn(Events.tlsFailed, { error: 'client certificate required' });
              socket.destroy();
              return;
            }
            accept(listener, socket);
          },
        );
        server.on('tlsClientError', (err: Error) => logger.warn(Events.tlsFailed, { error: err.message }));
      } else {
        server = createTcpServer((socket) => accept(listener, socket));
      }
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
