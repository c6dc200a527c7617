// Queue operations shared by `tern queue` and the admin API: the JSON shape of a queued message (a
// documented contract of `tern queue list|show --json` and GET /api/queue), the header section read
// without loading a body, and the steering actions with their rules (flush refuses a held message,
// bounce needs a pending recipient). Both callers apply them through the Queue interface; the running
// server's delivery worker does the rest.

import type { Queue, QueuedMessage } from '../queue/queue.ts';
import { OpError } from './errors.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

/** The JSON shape of one message in `queue list --json` (a stable, documented contract). */
export function queuedMessageJson(m: QueuedMessage): Record<string, unknown> {
  return {
    id: m.id,
    sender: m.envelope.sender,
    size: m.sizeBytes,
    arrival: iso(m.envelope.receivedAtMs),
    held: m.held,
    // RFC 6710 / 2852 / 4865 (issue 18): present only when the message has them.
    ...(m.envelope.priority === undefined ? {} : { priority: m.envelope.priority }),
    ...(m.envelope.holdUntilMs === undefined ? {} : { holdUntil: iso(m.envelope.holdUntilMs) }),
    ...(m.envelope.deliverBy === undefined
      ? {}
      : {
          deliverBy: {
            deadline: iso(m.envelope.deliverBy.deadlineMs),
            mode: m.envelope.deliverBy.mode,
            trace: m.envelope.deliverBy.trace,
          },
        }),
    recipients: m.recipients.map((r) => ({
      address: r.address,
      status: r.status,
      attempts: r.attempts,
      nextAttempt: iso(r.nextAttemptMs),
      lastReply: r.lastReply,
      delayWarned: r.delayWarned,
      bounceRequested: r.bounceRequested,
    })),
  };
}

/** Enough of the message to see its headers; a header section past this size is cut. */
export const MAX_HEADER_BYTES = 256 * 1024;

/** The header section (up to and excluding the empty line), read without loading the whole body. */
export async function readHeaderSection(
  body: AsyncIterable<Uint8Array>,
): Promise<{ text: string; cut: boolean }> {
  let buf = Buffer.alloc(0);
  for await (const chunk of body) {
    buf = Buffer.concat([buf, chunk]);
    const end = headerEnd(buf);
    if (end >= 0) return { text: buf.subarray(0, end).toString('utf8'), cut: false };
    if (buf.length >= MAX_HEADER_BYTES)
      return { text: buf.subarray(0, MAX_HEADER_BYTES).toString('utf8'), cut: true };
  }
  // No empty line: the whole message is header (RFC 5322 §3.5 allows a message without a body).
  return { text: buf.toString('utf8').replace(/\r?\n$/, ''), cut: false };
}

function headerEnd(buf: Buffer): number {
  if (buf.subarray(0, 2).toString('latin1') === '\r\n') return 0;
  if (buf.subarray(0, 1).toString('latin1') === '\n') return 0;
  const crlf = buf.indexOf('\r\n\r\n');
  if (crlf >= 0) return crlf;
  const lf = buf.indexOf('\n\n');
  return lf;
}

/**
 * `queue show --json`: the `queue list --json` object of the message, extended (never renamed) with the
 * rest of the envelope, each recipient's DSN parameters and remote detail, and the header section.
 */
export function queuedMessageDetailJson(m: QueuedMessage, headers: string): Record<string, unknown> {
  const e = m.envelope;
  const base = queuedMessageJson(m);
  return {
    ...base,
    recipients: m.recipients.map((r, i) => ({
      ...(base['recipients'] as Record<string, unknown>[])[i],
      remoteMta: r.remoteMta ?? null,
      diagnostic: r.diagnostic ?? null,
      notify: e.recipients[r.index]?.notify ?? null,
      orcpt: e.recipients[r.index]?.orcpt ?? null,
    })),
    body: e.body,
    smtputf8: e.smtputf8,
    envid: e.envid,
    ret: e.ret,
    client: e.client,
    headers,
  };
}

/** Oldest first, then by id: the order of every listing. */
export function byArrival(a: QueuedMessage, b: QueuedMessage): number {
  return a.envelope.receivedAtMs - b.envelope.receivedAtMs || a.id.localeCompare(b.id);
}

export type QueueActionName = 'flush' | 'hold' | 'release' | 'delete' | 'bounce';

export interface QueueAction {
  /** With "all": which messages (held ones for release, not held for flush). */
  readonly all: (m: QueuedMessage) => boolean;
  /** Apply to one message; an OpError says why it cannot. */
  act(queue: Queue, id: string): Promise<{ recipients?: number }>;
}

/** The message, or an OpError with the same words as `queue show`. */
export async function existingMessage(queue: Queue, id: string): Promise<QueuedMessage> {
  const m = await queue.get(id);
  if (m === null) throw new OpError('not-found', `no queued message ${id}`);
  return m;
}

const found = (ok: boolean, id: string): Record<string, never> => {
  if (!ok) throw new OpError('not-found', `no queued message ${id}`);
  return {};
};

export const QUEUE_ACTIONS: Readonly<Record<QueueActionName, QueueAction>> = {
  flush: {
    all: (m) => !m.held,
    async act(queue, id) {
      const m = await existingMessage(queue, id);
      if (m.held)
        throw new OpError('conflict', `message ${id} is held: release it first (tern queue release ${id})`);
      return { recipients: await queue.flush(id) };
    },
  },
  hold: { all: () => true, act: async (queue, id) => found(await queue.hold(id), id) },
  release: { all: (m) => m.held, act: async (queue, id) => found(await queue.release(id), id) },
  delete: { all: () => true, act: async (queue, id) => found(await queue.remove(id), id) },
  bounce: {
    all: (m) => m.recipients.some((r) => r.status === 'queued' || r.status === 'deferred'),
    async act(queue, id) {
      await existingMessage(queue, id);
      const n = await queue.bounceNow(id);
      if (n === 0) throw new OpError('conflict', `message ${id} has no pending recipient to bounce`);
      return { recipients: n };
    },
  },
};
