// `tern queue ...`: what is waiting in the queue and why (list, show: Postfix's `postqueue -p` and
// `postcat -q`), and how an operator steers it (flush, hold, release, delete, bounce: `postqueue -f`,
// `postsuper -h/-H/-d`). The steering commands only change the queue's records; the running server's
// delivery worker notices through the queue's change counter within about a second and does the rest
// (deliveries, and the DSNs of `bounce`). Nothing here delivers or writes a bounce itself.

import type { Envelope } from '../../core/envelope.ts';
import type { Queue, QueuedMessage } from '../../queue/queue.ts';
import type { Command } from '../command.ts';
import { CliError, write, writeLine } from '../io.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

/** The JSON shape of one message in `queue list --json` (a stable, documented contract). */
export function queuedMessageJson(m: QueuedMessage): Record<string, unknown> {
  return {
    id: m.id,
    sender: m.envelope.sender,
    size: m.sizeBytes,
    arrival: iso(m.envelope.receivedAtMs),
    held: m.held,
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
const MAX_HEADER_BYTES = 256 * 1024;

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

function describeClient(e: Envelope): string {
  const c = e.client;
  const host = c.hostname === null ? '' : `${c.hostname} `;
  const parts = [`${host}[${c.ip}]:${c.port}`, `helo=${c.helo}`, `service=${c.service}`];
  if (c.tls) parts.push(`tls=${c.tls.version}/${c.tls.cipher}`);
  if (c.authUser !== null) parts.push(`auth=${c.authUser}`);
  return parts.join(' ');
}

export const queueList: Command = {
  name: 'queue list',
  args: '[--json]',
  summary: 'list queued messages and the state of each recipient',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  readOnly: true,
  async run(ctx, args) {
    const messages = await ctx.withServices(['queue'], ({ queue }) => queue.list());
    messages.sort((a, b) => a.envelope.receivedAtMs - b.envelope.receivedAtMs || a.id.localeCompare(b.id));
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify(messages.map(queuedMessageJson), null, 2));
      return 0;
    }
    if (messages.length === 0) {
      await writeLine(stdout, 'queue is empty');
      return 0;
    }
    for (const m of messages) {
      const held = m.held ? ' (held)' : '';
      await writeLine(
        stdout,
        `${m.id}  ${m.sizeBytes} bytes  ${iso(m.envelope.receivedAtMs)}  <${m.envelope.sender}>${held}`,
      );
      for (const r of m.recipients) {
        const next = r.status === 'queued' || r.status === 'deferred' ? `  next ${iso(r.nextAttemptMs)}` : '';
        const reply = r.lastReply === null ? '' : `  ${r.lastReply}`;
        const bounce = r.bounceRequested ? '  (bounce requested)' : '';
        await writeLine(
          stdout,
          `    ${r.address}  ${r.status}${bounce}  attempts ${r.attempts}${next}${reply}`,
        );
      }
    }
    return 0;
  },
};

export const queueShow: Command = {
  name: 'queue show',
  args: 'ID',
  summary: 'show one queued message: envelope, recipients, headers',
  flags: [],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const { stdout } = ctx.io;
    await ctx.withServices(['queue'], async ({ queue }) => {
      const m = await queue.get(id);
      if (m === null) throw new CliError(`no queued message ${id}`);
      const e = m.envelope;
      const lines = [
        `id:       ${m.id}`,
        `sender:   <${e.sender}>`,
        `size:     ${m.sizeBytes} bytes`,
        `arrival:  ${iso(e.receivedAtMs)}`,
        `held:     ${m.held ? 'yes' : 'no'}`,
        `body:     ${e.body}${e.smtputf8 ? ' SMTPUTF8' : ''}`,
        `client:   ${describeClient(e)}`,
      ];
      if (e.envid !== null) lines.push(`envid:    ${e.envid}`);
      if (e.ret !== null) lines.push(`ret:      ${e.ret}`);
      lines.push('recipients:');
      for (const r of m.recipients) {
        lines.push(`  ${r.address}`);
        lines.push(`    status:       ${r.status}, attempts ${r.attempts}`);
        if (r.status === 'queued' || r.status === 'deferred')
          lines.push(`    next attempt: ${iso(r.nextAttemptMs)}`);
        if (r.lastReply !== null) lines.push(`    last reply:   ${r.lastReply}`);
        if (r.remoteMta !== undefined) lines.push(`    remote MTA:   ${r.remoteMta}`);
        if (r.diagnostic !== undefined)
          lines.push(`    remote said:  ${r.diagnostic.replace(/\r?\n/g, '\n                  ')}`);
        if (r.delayWarned) lines.push('    delay warning sent');
        if (r.bounceRequested)
          lines.push('    bounce requested: bounces at the next look of the delivery worker');
        const rcpt = e.recipients[r.index];
        if (rcpt?.notify != null) lines.push(`    notify:       ${rcpt.notify.join(',') || 'NEVER'}`);
        if (rcpt?.orcpt != null) lines.push(`    orcpt:        ${rcpt.orcpt.addrType};${rcpt.orcpt.address}`);
      }
      const headers = await readHeaderSection(queue.readBody(id));
      lines.push('headers:');
      await write(stdout, `${lines.join('\n')}\n`);
      await writeLine(stdout, headers.text.replace(/\r\n/g, '\n'));
      if (headers.cut) await writeLine(stdout, `[header section longer than ${MAX_HEADER_BYTES} bytes: cut]`);
    });
    return 0;
  },
};

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The message, or exit 1 with the same words as `queue show`. */
async function existing(queue: Queue, id: string): Promise<QueuedMessage> {
  const m = await queue.get(id);
  if (m === null) throw new CliError(`no queued message ${id}`);
  return m;
}

export const queueFlush: Command = {
  name: 'queue flush',
  args: '[ID]',
  summary: 'try deferred mail now: one message, or every message that is not held',
  flags: [],
  minPositionals: 0,
  maxPositionals: 1,
  async run(ctx, args) {
    const id = args.positionals[0];
    const { stdout } = ctx.io;
    await ctx.withServices(['queue'], async ({ queue }) => {
      if (id === undefined) {
        const n = await queue.flush();
        await writeLine(stdout, `${plural(n, 'recipient')} due now`);
        return;
      }
      const m = await existing(queue, id);
      if (m.held) throw new CliError(`message ${id} is held: release it first (tern queue release ${id})`);
      const n = await queue.flush(id);
      await writeLine(stdout, `message ${id}: ${plural(n, 'recipient')} due now`);
    });
    return 0;
  },
};

/** A command that applies one queue operation to one message by id: hold, release, delete. */
function messageCommand(
  name: string,
  summary: string,
  op: (queue: Queue, id: string) => Promise<boolean>,
  done: string,
): Command {
  return {
    name,
    args: 'ID',
    summary,
    flags: [],
    minPositionals: 1,
    maxPositionals: 1,
    async run(ctx, args) {
      const id = args.positionals[0]!;
      await ctx.withServices(['queue'], async ({ queue }) => {
        if (!(await op(queue, id))) throw new CliError(`no queued message ${id}`);
      });
      await writeLine(ctx.io.stdout, `message ${id} ${done}`);
      return 0;
    },
  };
}

export const queueHold = messageCommand(
  'queue hold',
  'keep a message in the queue, undelivered, until released',
  (q, id) => q.hold(id),
  'held',
);

export const queueRelease = messageCommand(
  'queue release',
  'let a held message be delivered again',
  (q, id) => q.release(id),
  'released',
);

export const queueDelete = messageCommand(
  'queue delete',
  'delete a message from the queue, telling nobody (no bounce)',
  (q, id) => q.remove(id),
  'deleted',
);

export const queueBounce: Command = {
  name: 'queue bounce',
  args: 'ID',
  summary: 'give up on a message: its pending recipients bounce and the sender gets a DSN',
  flags: [],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const { stdout } = ctx.io;
    await ctx.withServices(['queue'], async ({ queue }) => {
      await existing(queue, id);
      const n = await queue.bounceNow(id);
      if (n === 0) throw new CliError(`message ${id} has no pending recipient to bounce`);
      await writeLine(
        stdout,
        `message ${id}: ${plural(n, 'recipient')} will bounce; the server sends the sender a DSN`,
      );
    });
    return 0;
  },
};

export const queueCommands: readonly Command[] = [
  queueList,
  queueShow,
  queueFlush,
  queueHold,
  queueRelease,
  queueDelete,
  queueBounce,
];
