// POST /api/login, POST /api/logout, GET /api/session: the page's login (auth.ts does the checking).
// GET /api/status says only whether any admin account exists, so the login form can tell a first-time
// user which command creates one.

import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../context.ts';

export function registerAuthRoutes(app: FastifyInstance, ctx: AdminContext, secure: boolean): void {
  app.get(
    '/api/status',
    {
      config: { public: true },
      schema: {
        summary: 'Whether any admin account exists (the login form says how to make the first)',
        response: {
          200: { type: 'object', properties: { admins: { type: 'boolean' }, hostname: { type: 'string' } } },
        },
      },
    },
    async () => ({ admins: ctx.accounts.count() > 0, hostname: ctx.config().hostname }),
  );

  app.post<{ Body: { name: string; password: string } }>(
    '/api/login',
    {
      config: { public: true },
      schema: {
        summary: 'Log in: sets the session cookie, answers the CSRF token to send with every change',
        body: {
          type: 'object',
          required: ['name', 'password'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', maxLength: 1024 },
          },
        },
      },
    },
    async (request, reply) =>
      ctx.auth.login(request, reply, request.body.name, request.body.password, secure),
  );

  app.post('/api/logout', { schema: { summary: 'End the page login' } }, async (request, reply) => {
    const p = ctx.auth.require(request);
    ctx.auth.logout(request, reply, p, secure);
    return { ok: true };
  });

  app.get(
    '/api/session',
    { schema: { summary: 'Who is logged in, and the CSRF token of the session' } },
    async (request) => {
      const p = ctx.auth.require(request);
      return { name: p.name, via: p.via, csrf: p.session?.csrf ?? null };
    },
  );
}
