// Health, metrics and the server as a whole: GET /healthz (liveness), GET /readyz (readiness: stores
// answering, disk reserve met), GET /metrics (Prometheus text), GET /api/stats (the dashboard's numbers,
// the same counters), GET /api/events (live events, SSE), GET /api/config (secrets redacted),
// POST /api/reload (as SIGHUP). /healthz, /readyz and /metrics need no login from [admin] open_networks
// (any client when it is empty); from elsewhere they need one, like everything else.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Events } from '../../core/events.ts';
import { configView } from '../../ops/config-view.ts';
import { inNetworks, parseCidr, type Network } from '../../policy/networks.ts';
import type { AdminContext } from '../context.ts';
import { HttpProblem } from '../problem.ts';

export function registerSystemRoutes(app: FastifyInstance, ctx: AdminContext): void {
  let networksOf: readonly string[] | null = null;
  let networks: Network[] = [];
  /** Open endpoints: free from the listed networks, a login (or token) from anywhere else. */
  const open = (request: FastifyRequest): void => {
    const list = ctx.config().admin.openNetworks;
    if (list.length === 0) return;
    if (list !== networksOf) {
      networksOf = list;
      networks = list.map(parseCidr).filter((n) => n !== null);
    }
    if (!inNetworks(request.ip, networks)) ctx.auth.require(request);
  };

  app.get(
    '/healthz',
    { config: { public: true }, schema: { summary: 'Liveness: the process answers' } },
    async (request) => {
      open(request);
      return { status: 'ok' };
    },
  );

  app.get(
    '/readyz',
    { config: { public: true }, schema: { summary: 'Readiness: stores open, disk reserve met' } },
    async (request, reply) => {
      open(request);
      const checks = await ctx.ready();
      const ok = checks.every((c) => c.ok);
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not-ready', checks });
    },
  );

  app.get(
    '/metrics',
    { config: { public: true }, schema: { summary: 'Prometheus metrics (text format 0.0.4)' } },
    async (request, reply) => {
      open(request);
      return reply.type(ctx.metrics.contentType).send(await ctx.metrics.text());
    },
  );

  app.get(
    '/api/stats',
    { schema: { summary: 'The dashboard: per-minute series, counters, queue counts' } },
    async (request) => {
      ctx.auth.require(request);
      return {
        now: new Date(ctx.clock.nowMs()).toISOString(),
        series: ctx.metrics.series(),
        metrics: await ctx.metrics.json(),
        queue: await ctx.queue.stats(ctx.clock.nowMs()),
      };
    },
  );

  app.get(
    '/api/events',
    {
      schema: {
        summary: 'Live events (text/event-stream): session, accepted, delivery, dsn, auth-failure, queue',
      },
    },
    async (request, reply) => {
      ctx.auth.require(request);
      reply.hijack();
      ctx.live.attach(reply.raw);
    },
  );

  app.get(
    '/api/config',
    { schema: { summary: 'The configuration in force, secrets redacted' } },
    async (request) => {
      ctx.auth.require(request);
      return configView(ctx.config());
    },
  );

  app.post(
    '/api/reload',
    { schema: { summary: 'Reload the configuration file (as SIGHUP); the outcome' } },
    async (request) => {
      const p = ctx.auth.require(request);
      const reload = ctx.reload();
      if (reload === null)
        throw new HttpProblem(
          409,
          'no-config-file',
          'the server runs on its embedded defaults: there is no file to reload',
        );
      ctx.logger.event(Events.adminChange, { admin: p.name, action: 'reload' });
      const status = await reload();
      if (status === null) throw new HttpProblem(500, 'internal', 'the reload left no outcome');
      return {
        ok: status.ok,
        errors: status.errors,
        restartNeeded: status.restartNeeded,
        at: new Date(status.atMs).toISOString(),
      };
    },
  );
}
