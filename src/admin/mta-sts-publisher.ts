// Publishing MTA-STS for Tern's own domains (RFC 8461 §3.2): `[[listeners]] service = "mta-sts"` answer
// `GET https://mta-sts.<domain>/.well-known/mta-sts.txt` for every local domain with the policy of
// `[mta_sts]` (ops/dns.ts, the same text `tern dns records` shows with its id). Nothing else is served:
// other paths and hosts get 404, other methods 405. HTTPS with the [tls] certificate, which must name
// mta-sts.<domain> for each domain; plain HTTP only on loopback (behind a TLS-terminating proxy).
// Deliberately NOT here: the admin API (server.ts), fetching others' policies (delivery/mta-sts.ts).

import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
  type Server,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import { mtaStsPolicyText } from '../ops/dns.ts';

export interface RunningMtaStsPublisher {
  readonly bound: readonly { host: string; port: number; tls: 'none' | 'implicit' }[];
  setTls(tls: { cert: string; key: string }): void;
  close(): Promise<void>;
}

export async function startMtaStsPublisher(
  config: () => Config,
  tls: { cert: string; key: string },
  logger: Logger,
): Promise<RunningMtaStsPublisher> {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const c = config();
    const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
    const domain = host.startsWith('mta-sts.') ? host.slice('mta-sts.'.length) : null;
    const path = (req.url ?? '').split('?')[0];
    const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'max-age=300' };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (path !== '/.well-known/mta-sts.txt' || domain === null || !c.localDomains.includes(domain)) {
      res.writeHead(404, headers).end('not found\n');
      return;
    }
    const body = mtaStsPolicyText(c);
    res.writeHead(200, { ...headers, 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const servers: { server: Server; tls: 'none' | 'implicit' }[] = [];
  const bound: { host: string; port: number; tls: 'none' | 'implicit' }[] = [];
  try {
    for (const l of config().mtaStsPublish.listeners) {
      const server =
        l.tls === 'implicit'
          ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler)
          : createHttpServer(handler);
      // Policy requests are tiny: a slow or idle client is cut quickly.
      server.requestTimeout = 10_000;
      server.headersTimeout = 10_000;
      server.keepAliveTimeout = 5_000;
      servers.push({ server, tls: l.tls });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(l.port, l.host, () => resolve());
      });
      const port = (server.address() as AddressInfo).port;
      bound.push({ host: l.host, port, tls: l.tls });
      logger.event(Events.mtaStsListening, { host: l.host, port, tls: l.tls });
    }
  } catch (err) {
    for (const s of servers) s.server.close();
    throw err;
  }
  return {
    bound,
    setTls(material) {
      for (const s of servers)
        if (s.tls === 'implicit')
          (s.server as unknown as { setSecureContext(o: object): void }).setSecureContext(material);
    },
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.server.close(() => resolve());
              s.server.closeAllConnections();
            }),
        ),
      );
    },
  };
}
