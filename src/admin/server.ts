// The admin listener (issue 15, `[[listeners]] service = "admin"`): the HTTP API under /api, the admin
// page at /, /healthz, /readyz and /metrics, on Fastify (docs/architecture.md says why Fastify). One
// Fastify instance per configured listener, all with the same routes and context.
// Every response carries a strict Content-Security-Policy and no-sniff/no-frame headers; every error is an
// RFC 9457 problem; a request whose Host is not one of ours is refused before any route (a web page that
// points its own name at 127.0.0.1 — DNS rebinding — gets nothing, not even a login form).
// Plain HTTP only on loopback (config/load.ts refuses anything else); HTTPS with the [tls] certificate.
// SECURITY: this listener can read every mailbox and steer the queue. Routes call ctx.auth.require
// unless listed in PUBLIC; the test suite walks every route to prove it.
// Deliberately NOT here: the routes' rules (routes/*.ts over src/ops), the page (page/).

import type { Server as HttpsServer } from 'node:https';
import { isIP } from 'node:net';
import type { FastifyError, FastifyInstance } from 'fastify';
import Fastify from 'fastify';
import type { AdminListenerConfig } from '../config/config.ts';
import { Events } from '../core/events.ts';
import { OpError } from '../ops/errors.ts';
import type { AdminContext } from './context.ts';
import { buildOpenApi, type RouteDoc } from './openapi.ts';
import { PageFiles } from './page-files.ts';
import { fromOpError, HttpProblem, problemOf } from './problem.ts';
import { registerAuthRoutes } from './routes/auth.ts';
import { registerDirectoryRoutes } from './routes/directory.ts';
import { registerMailboxRoutes } from './routes/mailboxes.ts';
import { registerQueueRoutes } from './routes/queue.ts';
import { registerSystemRoutes } from './routes/system.ts';
import { registerTraceRoutes } from './routes/trace.ts';

/** JSON bodies larger than this are refused (413): nothing the API takes is bigger. */
const BODY_LIMIT_BYTES = 1024 * 1024;

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface BoundAdmin {
  readonly host: string;
  readonly port: number;
  readonly tls: 'none' | 'implicit';
}

export interface RunningAdmin {
  readonly bound: readonly BoundAdmin[];
  /** A certificate read again (a reload: a renewal) for the HTTPS listeners' new connections. */
  setTls(tls: { cert: string; key: string }): void;
  close(): Promise<void>;
}

/** Host names this server answers to: IP literals, localhost, our hostname, local domains and below. */
export function acceptableHost(hostHeader: string | undefined, names: readonly string[]): boolean {
  if (hostHeader === undefined || hostHeader === '') return false;
  let host = hostHeader.toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end > 0 && isIP(host.slice(1, end)) === 6;
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0) host = host.slice(0, colon);
  host = host.replace(/\.$/, '');
  if (isIP(host) !== 0 || host === 'localhost') return true;
  return names.some((n) => host === n || host.endsWith(`.${n}`));
}

export function buildAdminApp(
  ctx: AdminContext,
  options: { https: { cert: string; key: string } | null },
): FastifyInstance {
  const secure = options.https !== null;
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    ...(options.https === null ? {} : { https: { cert: options.https.cert, key: options.https.key } }),
    // Query strings like ?ids=a&ids=b are arrays; nothing else is nested.
    routerOptions: { maxParamLength: 500 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: true } },
  }) as unknown as FastifyInstance;
  const docs: RouteDoc[] = [];
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/') || ['/healthz', '/readyz', '/metrics'].includes(route.url)) {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        if (method === 'HEAD') continue;
        docs.push({
          method,
          url: route.url,
          schema: (route.schema ?? {}) as Readonly<Record<string, unknown>>,
          public: (route.config as { public?: boolean } | undefined)?.public === true,
        });
      }
    }
  });

  app.addHook('onRequest', async (request) => {
    const config = ctx.config();
    if (!acceptableHost(request.headers.host, [config.hostname.toLowerCase(), ...config.localDomains])) {
      ctx.logger.warn(Events.adminRefused, {
        ip: request.ip,
        reason: 'host',
        host: request.headers.host ?? null,
      });
      throw new HttpProblem(421, 'wrong-host', 'this server does not answer to that host name');
    }
    // A cross-site request that changes state is refused even before its credentials are looked at.
    const origin = request.headers.origin;
    if (origin !== undefined && request.method !== 'GET' && request.method !== 'HEAD') {
      let sameOrigin = false;
      try {
        sameOrigin = new URL(origin).host === request.headers.host;
      } catch {
        sameOrigin = false;
      }
      if (!sameOrigin) {
        ctx.logger.warn(Events.adminRefused, { ip: request.ip, reason: 'origin', origin });
        throw new HttpProblem(403, 'cross-origin', 'requests from another origin are refused');
      }
    }
    // Credentials before anything else (a malformed request from nobody learns nothing but 401).
    if (request.url.startsWith('/api/') && request.routeOptions.config.public !== true)
      ctx.auth.require(request);
  });

  app.addHook('onSend', async (request, reply, payload) => {
    if (!reply.hasHeader('Content-Security-Policy')) reply.header('Content-Security-Policy', CSP);
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    reply.header('Cross-Origin-Resource-Policy', 'same-origin');
    if (!reply.hasHeader('X-Frame-Options')) reply.header('X-Frame-Options', 'DENY');
    if (secure) reply.header('Strict-Transport-Security', 'max-age=31536000');
    if (request.url.startsWith('/api/') && !reply.hasHeader('Cache-Control'))
      reply.header('Cache-Control', 'no-store');
    return payload;
  });

  app.setErrorHandler((err: FastifyError | HttpProblem | OpError | Error, request, reply) => {
    const instance = request.url.split('?')[0] ?? request.url;
    let problem;
    if (err instanceof OpError) err = fromOpError(err);
    if (err instanceof HttpProblem) {
      problem = {
        ...problemOf(err.status, err.kind, err.message, instance),
        ...(err.errors === undefined ? {} : { errors: err.errors }),
      };
      for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
    } else if ('validation' in err && err.validation !== undefined) {
      problem = {
        ...problemOf(400, 'invalid-request', 'the request does not match what this endpoint takes', instance),
        errors: err.validation.map((v) => ({
          field: `${err.validationContext ?? 'body'}${v.instancePath.replace(/\//g, '.')}${
            typeof v.params['missingProperty'] === 'string' ? `.${v.params['missingProperty']}` : ''
          }`,
          message: v.message ?? 'invalid',
        })),
      };
    } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500) {
      problem = problemOf(err.statusCode, err.code?.toLowerCase() ?? 'bad-request', err.message, instance);
    } else {
      ctx.logger.error(Events.adminError, { method: request.method, path: instance, err });
      problem = problemOf(
        500,
        'internal',
        'the server failed to answer this request; its log says why',
        instance,
      );
    }
    void reply.code(problem.status).type('application/problem+json').send(problem);
  });
  app.setNotFoundHandler((request, reply) => {
    const instance = request.url.split('?')[0] ?? request.url;
    void reply
      .code(404)
      .type('application/problem+json')
      .send(problemOf(404, 'not-found', `no such resource: ${instance}`, instance));
  });

  registerSystemRoutes(app, ctx);
  registerAuthRoutes(app, ctx, secure);
  registerQueueRoutes(app, ctx);
  registerTraceRoutes(app, ctx);
  registerDirectoryRoutes(app, ctx);
  registerMailboxRoutes(app, ctx);

  const page = new PageFiles();
  app.get(
    '/api/openapi.json',
    { config: { public: true }, schema: { summary: 'This API, described in OpenAPI 3.1' } },
    async () => buildOpenApi(docs),
  );
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page.index()));
  app.get<{ Params: { '*': string } }>('/app/*', async (request, reply) => {
    const file = page.get(request.params['*']);
    if (file === null) throw new HttpProblem(404, 'not-found', 'no such file');
    return reply.type(file.contentType).header('Cache-Control', 'no-cache').send(file.body);
  });
  return app;
}

/** Bind every admin listener; the first that cannot be bound stops the start (nothing stays bound). */
export async function startAdmin(
  ctx: AdminContext,
  listeners: readonly AdminListenerConfig[],
  tls: { cert: string; key: string },
): Promise<RunningAdmin> {
  const apps: FastifyInstance[] = [];
  const bound: BoundAdmin[] = [];
  try {
    for (const l of listeners) {
      const app = buildAdminApp(ctx, { https: l.tls === 'implicit' ? tls : null });
      apps.push(app);
      await app.listen({ host: l.host, port: l.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : l.port;
      bound.push({ host: l.host, port, tls: l.tls });
      ctx.logger.event(Events.adminListening, { host: l.host, port, tls: l.tls });
    }
  } catch (err) {
    await Promise.allSettled(apps.map((a) => a.close()));
    throw err;
  }
  return {
    bound,
    setTls(material) {
      for (const [i, app] of apps.entries()) {
        if (listeners[i]?.tls === 'implicit') (app.server as HttpsServer).setSecureContext(material);
      }
    },
    async close() {
      ctx.live.close();
      await Promise.allSettled(apps.map((a) => a.close()));
    },
  };
}
