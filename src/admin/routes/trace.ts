// GET /api/trace: what happened to messages, searched as `tern trace` searches (queue id, Message-ID,
// sender, recipient, time), each message's events in order, in `tern trace --json`'s shape.

import type { FastifyInstance } from 'fastify';
import { traceEventJson } from '../../ops/trace.ts';
import type { AdminContext } from '../context.ts';
import { HttpProblem } from '../problem.ts';

interface TraceQuery {
  queueId?: string;
  messageId?: string;
  from?: string;
  to?: string;
  since?: string;
  until?: string;
  limit?: number;
}

function time(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new HttpProblem(400, 'invalid-request', `${name}: not an ISO 8601 date-time: ${text}`);
  return ms;
}

export function registerTraceRoutes(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Querystring: TraceQuery }>(
    '/api/trace',
    {
      schema: {
        summary: 'Message traces: one timeline per queue id, newest message first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            queueId: { type: 'string', maxLength: 64 },
            messageId: { type: 'string', maxLength: 998 },
            from: { type: 'string', maxLength: 320 },
            to: { type: 'string', maxLength: 320 },
            since: { type: 'string', maxLength: 40 },
            until: { type: 'string', maxLength: 40 },
            limit: { type: 'integer', minimum: 1, maximum: 500 },
          },
        },
      },
    },
    async (request) => {
      ctx.auth.require(request);
      const q = request.query;
      const sinceMs = time(q.since, 'since');
      const untilMs = time(q.until, 'until');
      const ids = ctx.trace.find({
        ...(q.queueId === undefined ? {} : { queueId: q.queueId }),
        ...(q.messageId === undefined ? {} : { messageId: q.messageId }),
        ...(q.from === undefined ? {} : { from: q.from }),
        ...(q.to === undefined ? {} : { to: q.to }),
        ...(sinceMs === undefined ? {} : { sinceMs }),
        ...(untilMs === undefined ? {} : { untilMs }),
        limit: q.limit ?? 50,
      });
      return {
        messages: ids.map((queueId) => ({
          queueId,
          events: ctx.trace.events([queueId]).map(traceEventJson),
        })),
      };
    },
  );
}
