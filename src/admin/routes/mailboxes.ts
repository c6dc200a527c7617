// A user's mailboxes over HTTP, as `tern mailbox` shows them: folders with their counters, the messages
// of a folder, one message (view, HTML, parts, source) and deleting one (expunged durably, as IMAP's
// EXPUNGE does). Message ids are the CLI's: "<uid>" in INBOX, "<folder>/<uid>" elsewhere.

import type { FastifyInstance } from 'fastify';
import { MailboxError, INBOX } from '../../store/mailbox-store.ts';
import { Events } from '../../core/events.ts';
import { mailboxAddress, userAddress } from '../../ops/addresses.ts';
import { OpError } from '../../ops/errors.ts';
import { folderRows, messageJson } from '../../ops/mailbox.ts';
import { releaseMessage } from '../../ops/release.ts';
import { normalizeMailboxName } from '../../store/mailbox-store.ts';
import type { AdminContext } from '../context.ts';
import { messageBytes, sendHtml, sendPart, sendSource, sendView } from './messages.ts';

const USER = {
  type: 'object',
  properties: { user: { type: 'string', minLength: 3, maxLength: 320 } },
} as const;
const MESSAGE_ID = { type: 'string', minLength: 1, maxLength: 1100 } as const;
const PART = { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64 } as const;

/** "<uid>" in INBOX or "<folder>/<uid>"; null when it is neither. */
function messageRef(id: string): { folder: string; uid: number } | null {
  const slash = id.lastIndexOf('/');
  const digits = id.slice(slash + 1);
  if (!/^[1-9][0-9]{0,9}$/.test(digits)) return null;
  const folder = slash < 0 ? INBOX : normalizeMailboxName(id.slice(0, slash));
  return folder === '' ? null : { folder, uid: Number(digits) };
}

async function inStore<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof MailboxError) {
      const text = err.message.replace(/^mailbox store: /, '');
      throw new OpError(err.code === 'nonexistent' ? 'not-found' : 'invalid', text);
    }
    throw err;
  }
}

export function registerMailboxRoutes(app: FastifyInstance, ctx: AdminContext): void {
  // A local address, or another with mail kept for it (catcher mode, docs/catch.md); else the 422 that
  // says the domain is not local.
  const user = async (text: string): Promise<string> => {
    const address = mailboxAddress(text);
    if ((await ctx.store.status(address, INBOX)) !== null) return address;
    return userAddress(text, ctx.config().localDomains);
  };

  app.get<{ Params: { user: string } }>(
    '/api/mailboxes/:user/folders',
    { schema: { summary: "A user's folders with messages, size and unseen counts", params: USER } },
    async (request) => {
      ctx.auth.require(request);
      const u = await user(request.params.user);
      return { user: u, folders: await inStore(() => folderRows(ctx.store, u)) };
    },
  );

  app.get<{ Params: { user: string }; Querystring: { folder?: string; offset?: number; limit?: number } }>(
    '/api/mailboxes/:user/messages',
    {
      schema: {
        summary: 'The messages of one folder (INBOX by default), newest first',
        params: USER,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            folder: { type: 'string', minLength: 1, maxLength: 1000 },
            offset: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 500 },
          },
        },
      },
    },
    async (request) => {
      ctx.auth.require(request);
      const u = await user(request.params.user);
      const folder = normalizeMailboxName(request.query.folder ?? INBOX);
      const all = (await inStore(() => ctx.store.list(u, folder))).toReversed();
      const offset = request.query.offset ?? 0;
      const limit = request.query.limit ?? 50;
      return {
        user: u,
        folder,
        total: all.length,
        offset,
        limit,
        messages: all.slice(offset, offset + limit).map(messageJson),
      };
    },
  );

  const bytesOf = async (u: string, id: string): Promise<Buffer> => {
    const body = ctx.store.read(u, id);
    if (body === null) throw new OpError('not-found', `no message ${id} for ${u}`);
    // A store that finds out only when reading (PostgreSQL) says "nonexistent" then: the same 404.
    return inStore(() => messageBytes(body));
  };

  const message = { type: 'object', required: ['id'], properties: { id: MESSAGE_ID } } as const;
  const withPart = {
    type: 'object',
    required: ['id', 'part'],
    properties: { id: MESSAGE_ID, part: PART },
  } as const;

  app.get<{ Params: { user: string }; Querystring: { id: string } }>(
    '/api/mailboxes/:user/message',
    { schema: { summary: 'One stored message taken apart for reading', params: USER, querystring: message } },
    async (request) => {
      ctx.auth.require(request);
      return sendView(await bytesOf(await user(request.params.user), request.query.id));
    },
  );
  app.get<{ Params: { user: string }; Querystring: { id: string } }>(
    '/api/mailboxes/:user/message/source',
    { schema: { summary: 'One stored message, byte for byte', params: USER, querystring: message } },
    async (request, reply) => {
      ctx.auth.require(request);
      return sendSource(
        reply,
        await bytesOf(await user(request.params.user), request.query.id),
        request.query.id,
      );
    },
  );
  app.get<{ Params: { user: string }; Querystring: { id: string; part: string } }>(
    '/api/mailboxes/:user/message/html',
    {
      schema: {
        summary: 'An HTML body, sandboxed (CSP sandbox, no remote loads)',
        params: USER,
        querystring: withPart,
      },
    },
    async (request, reply) => {
      ctx.auth.require(request);
      return sendHtml(
        reply,
        await bytesOf(await user(request.params.user), request.query.id),
        request.query.part,
      );
    },
  );
  app.get<{ Params: { user: string }; Querystring: { id: string; part: string } }>(
    '/api/mailboxes/:user/message/part',
    { schema: { summary: 'One part (an attachment), as a download', params: USER, querystring: withPart } },
    async (request, reply) => {
      ctx.auth.require(request);
      return sendPart(
        reply,
        await bytesOf(await user(request.params.user), request.query.id),
        request.query.part,
      );
    },
  );

  app.get(
    '/api/catch/recipients',
    { schema: { summary: 'Catcher mode: every address mail was kept for, with its message count' } },
    async (request) => {
      ctx.auth.require(request);
      return { catch: ctx.config().catch, recipients: await ctx.store.owners() };
    },
  );

  app.post<{ Params: { user: string }; Body: { id: string; to?: string[] } }>(
    '/api/mailboxes/:user/message/release',
    {
      schema: {
        summary: 'Deliver a kept message for real (catcher mode): to its recipient, or to `to`',
        params: USER,
        body: {
          type: 'object',
          required: ['id'],
          additionalProperties: false,
          properties: {
            id: MESSAGE_ID,
            to: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 3, maxLength: 320 } },
          },
        },
      },
    },
    async (request) => {
      const p = ctx.auth.require(request);
      const u = await user(request.params.user);
      const released = await releaseMessage(ctx, u, request.body.id, request.body.to ?? []);
      ctx.logger.event(Events.adminChange, {
        admin: p.name,
        action: 'mailbox.release',
        user: u,
        id: request.body.id,
        queueId: released.queueId,
      });
      return { user: u, id: request.body.id, ...released };
    },
  );

  app.delete<{ Params: { user: string }; Querystring: { id: string } }>(
    '/api/mailboxes/:user/message',
    { schema: { summary: 'Delete (expunge) one stored message', params: USER, querystring: message } },
    async (request) => {
      const p = ctx.auth.require(request);
      const u = await user(request.params.user);
      const ref = messageRef(request.query.id);
      if (ref === null)
        throw new OpError('invalid', `'${request.query.id}' is not a message id (uid, or folder/uid)`);
      const gone = await inStore(() => ctx.store.expunge(u, ref.folder, [ref.uid]));
      if (gone.length === 0) throw new OpError('not-found', `no message ${request.query.id} for ${u}`);
      ctx.logger.event(Events.adminChange, {
        admin: p.name,
        action: 'mailbox.expunge',
        user: u,
        id: request.query.id,
      });
      return { user: u, id: request.query.id, deleted: true };
    },
  );
}
