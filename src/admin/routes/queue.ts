// The queue over HTTP: GET /api/queue (filtered, paged), GET /api/queue/:id (envelope, recipients,
// headers), the message itself (view, HTML, parts, source), and the steering actions one message at a
// time or in bulk. The rules are src/ops/queue.ts's, the same `tern queue` applies; each change is
// logged as admin.queue.<action> with the admin's name and the ids (so it is in every message's trace).

import type { FastifyInstance } from 'fastify';
import type { QueuedMessage } from '../../queue/queue.ts';
import { OpError } from '../../ops/errors.ts';
import {
  byArrival,
  existingMessage,
  QUEUE_ACTIONS,
  queuedMessageDetailJson,
  queuedMessageJson,
  readHeaderSection,
  type QueueActionName,
} from '../../ops/queue.ts';
import type { AdminContext } from '../context.ts';
import { messageBytes, PART_PARAMS, sendHtml, sendPart, sendSource, sendView } from './messages.ts';

const ACTIONS = Object.keys(QUEUE_ACTIONS) as QueueActionName[];
const ID = { type: 'string', pattern: '^[0-9A-Za-z]{1,64}$' } as const;
/** Bulk actions on at most this many ids per request. */
const MAX_BULK = 10_000;

interface ListQuery {
  state?: 'all' | 'pending' | 'queued' | 'deferred' | 'held';
  sender?: string;
  recipient?: string;
  domain?: string;
  offset?: number;
  limit?: number;
}

function matches(m: QueuedMessage, q: ListQuery): boolean {
  const state = q.state ?? 'all';
  if (state === 'held' && !m.held) return false;
  if (state === 'pending' && !m.recipients.some((r) => r.status === 'queued' || r.status === 'deferred'))
    return false;
  if ((state === 'queued' || state === 'deferred') && !m.recipients.some((r) => r.status === state))
    return false;
  if (q.sender !== undefined && !m.envelope.sender.toLowerCase().includes(q.sender.toLowerCase()))
    return false;
  if (q.recipient !== undefined) {
    const want = q.recipient.toLowerCase();
    if (!m.recipients.some((r) => r.address.toLowerCase().includes(want))) return false;
  }
  if (q.domain !== undefined) {
    const d = q.domain.toLowerCase().replace(/^@/, '');
    if (!m.recipients.some((r) => r.address.toLowerCase().endsWith(`@${d}`))) return false;
  }
  return true;
}

export function registerQueueRoutes(app: FastifyInstance, ctx: AdminContext): void {
  app.get<{ Querystring: ListQuery }>(
    '/api/queue',
    {
      schema: {
        summary:
          'Queued messages, oldest first: filter by state, sender, recipient or domain; page with offset and limit',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: ['all', 'pending', 'queued', 'deferred', 'held'] },
            sender: { type: 'string', maxLength: 320 },
            recipient: { type: 'string', maxLength: 320 },
            domain: { type: 'string', maxLength: 255 },
            offset: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 500 },
          },
        },
      },
    },
    async (request) => {
      ctx.auth.require(request);
      const q = request.query;
      const all = (await ctx.queue.list()).filter((m) => matches(m, q)).sort(byArrival);
      const offset = q.offset ?? 0;
      const limit = q.limit ?? 50;
      return {
        total: all.length,
        offset,
        limit,
        messages: all.slice(offset, offset + limit).map(queuedMessageJson),
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/queue/:id',
    {
      schema: {
        summary: 'One queued message: envelope, recipients with DSN parameters, header section',
        params: { type: 'object', properties: { id: ID } },
      },
    },
    async (request) => {
      ctx.auth.require(request);
      const m = await existingMessage(ctx.queue, request.params.id);
      const { text } = await readHeaderSection(ctx.queue.readBody(m.id));
      return queuedMessageDetailJson(m, text);
    },
  );

  const bytesOf = async (id: string): Promise<Buffer> => {
    await existingMessage(ctx.queue, id);
    return messageBytes(ctx.queue.readBody(id));
  };

  app.get<{ Params: { id: string } }>(
    '/api/queue/:id/view',
    {
      schema: {
        summary: 'A queued message taken apart for reading',
        params: { type: 'object', properties: { id: ID } },
      },
    },
    async (request) => {
      ctx.auth.require(request);
      return sendView(await bytesOf(request.params.id));
    },
  );
  app.get<{ Params: { id: string } }>(
    '/api/queue/:id/source',
    { schema: { summary: 'The raw message, as queued', params: { type: 'object', properties: { id: ID } } } },
    async (request, reply) => {
      ctx.auth.require(request);
      return sendSource(reply, await bytesOf(request.params.id), request.params.id);
    },
  );
  app.get<{ Params: { id: string; part: string } }>(
    '/api/queue/:id/html/:part',
    {
      schema: {
        summary: 'An HTML body, sandboxed (CSP sandbox, no remote loads)',
        params: { type: 'object', properties: { id: ID, ...PART_PARAMS.properties } },
      },
    },
    async (request, reply) => {
      ctx.auth.require(request);
      return sendHtml(reply, await bytesOf(request.params.id), request.params.part);
    },
  );
  app.get<{ Params: { id: string; part: string } }>(
    '/api/queue/:id/parts/:part',
    {
      schema: {
        summary: 'One part (an attachment), as a download',
        params: { type: 'object', properties: { id: ID, ...PART_PARAMS.properties } },
      },
    },
    async (request, reply) => {
      ctx.auth.require(request);
      return sendPart(reply, await bytesOf(request.params.id), request.params.part);
    },
  );

  const apply = async (
    admin: string,
    action: QueueActionName,
    ids: readonly string[],
  ): Promise<{ id: string; ok: boolean; recipients?: number; error?: string }[]> => {
    const results: { id: string; ok: boolean; recipients?: number; error?: string }[] = [];
    for (const id of ids) {
      try {
        results.push({ id, ok: true, ...(await QUEUE_ACTIONS[action].act(ctx.queue, id)) });
      } catch (err) {
        if (!(err instanceof OpError)) throw err;
        results.push({ id, ok: false, error: err.message });
      }
    }
    record(
      admin,
      action,
      results.filter((r) => r.ok),
    );
    return results;
  };

  const record = (
    admin: string,
    action: QueueActionName,
    done: readonly { id: string; recipients?: number }[],
  ): void => {
    if (done.length === 0) return;
    const recipients = done.reduce((n, r) => n + (r.recipients ?? 0), 0);
    ctx.logger.event(`admin.queue.${action}`, {
      admin,
      ids: done.map((r) => r.id),
      ...(done.some((r) => r.recipients !== undefined) ? { recipients } : {}),
    });
    ctx.live.send('queue', { action, ids: done.map((r) => r.id), admin });
  };

  app.post<{ Params: { id: string; action: QueueActionName } }>(
    '/api/queue/:id/:action',
    {
      schema: {
        summary: 'flush, hold, release, delete or bounce one message',
        params: { type: 'object', properties: { id: ID, action: { type: 'string', enum: ACTIONS } } },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const { id, action } = request.params;
      // An OpError (no such message 404, held or nothing to bounce 409) is the answer, in the CLI's words.
      const result = { id, ok: true, ...(await QUEUE_ACTIONS[action].act(ctx.queue, id)) };
      record(p.name, action, [result]);
      return result;
    },
  );

  app.post<{ Body: { action: QueueActionName; ids?: string[]; all?: boolean } }>(
    '/api/queue/actions',
    {
      schema: {
        summary: 'One action on many messages: the ids given, or with all=true every message it applies to',
        body: {
          type: 'object',
          required: ['action'],
          additionalProperties: false,
          properties: {
            action: { type: 'string', enum: ACTIONS },
            ids: { type: 'array', maxItems: MAX_BULK, items: ID },
            all: { type: 'boolean' },
          },
        },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const { action, ids, all } = request.body;
      if ((ids === undefined) === (all !== true)) {
        throw new OpError('invalid', 'give ids or all: true, not both and not neither');
      }
      const targets =
        all === true
          ? (await ctx.queue.list())
              .sort(byArrival)
              .filter(QUEUE_ACTIONS[action].all)
              .map((m) => m.id)
          : [...new Set(ids)];
      return { results: await apply(p.name, action, targets) };
    },
  );
}
