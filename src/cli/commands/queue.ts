// `tern queue ...`: what is waiting in the queue and why (list, show: Postfix's `postqueue -p` and
// `postcat -q`), and how an operator steers it (flush, hold, release, delete, bounce: `postqueue -f`,
// `postsuper -h/-H/-d`). The steering commands only change the queue's records; the running server's
// delivery worker notices through the queue's change counter within about a second and does the rest
// (deliveries, and the DSNs of `bounce`). Nothing here delivers or writes a bounce itself.

import type { Envelope } from '../../core/envelope.ts';
import type { Queue, QueuedMessage } from '../../queue/queue.ts';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command, CommandContext, ParsedArgs } from '../command.ts';
import { usageLine } from '../command.ts';
import { CliError, readAll, UsageError, write, writeLine } from '../io.ts';
import { isoTime } from '../time.ts';
import { OpError } from '../../ops/errors.ts';
import {
  byArrival,
  existingMessage,
  MAX_HEADER_BYTES,
  QUEUE_ACTIONS,
  queuedMessageDetailJson,
  queuedMessageJson,
  readHeaderSection,
} from '../../ops/queue.ts';

export { queuedMessageDetailJson, queuedMessageJson, readHeaderSection } from '../../ops/queue.ts';

const iso = isoTime;

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
    messages.sort(byArrival);
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
  args: 'ID [--json]',
  summary: 'show one queued message: envelope, recipients, headers',
  flags: ['json'],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const id = args.positionals[0]!;
    const { stdout } = ctx.io;
    await ctx.withServices(['queue'], async ({ queue }) => {
      const m = await queue.get(id);
      if (m === null) throw new CliError(`no queued message ${id}`);
      if (args.flags.has('json')) {
        const { text } = await readHeaderSection(queue.readBody(id));
        await writeLine(stdout, JSON.stringify(queuedMessageDetailJson(m, text), null, 2));
        return;
      }
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
      if (e.priority !== undefined) lines.push(`priority: ${e.priority} (MT-PRIORITY)`);
      if (e.holdUntilMs !== undefined) lines.push(`hold:     until ${iso(e.holdUntilMs)} (FUTURERELEASE)`);
      if (e.deliverBy !== undefined)
        lines.push(`by:       ${iso(e.deliverBy.deadlineMs)} mode ${e.deliverBy.mode} (DELIVERBY)`);
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

/** The outcome of a steering action for one message (`--json`: one object per message, in order). */
interface ActionResult {
  readonly id: string;
  readonly ok: boolean;
  /** How many recipients the action touched (flush, bounce). */
  readonly recipients?: number;
  /** Why it failed: the words of the stderr line without --json. */
  readonly error?: string;
}

/** Whitespace-separated ids (one per line, as `jq -r '.[].id'` writes them); at most this much input. */
const MAX_STDIN_IDS_BYTES = 16 * 1024 * 1024;

interface Steering {
  readonly verb: string;
  readonly summary: string;
  /** With --all: which messages (held ones for release, not held for flush). */
  readonly all: (m: QueuedMessage) => boolean;
  /** Without ids and --all: null makes it a usage error; flush means --all. */
  readonly noIdsMeansAll: boolean;
  /** Apply to one message; throws CliError when it cannot. */
  act(queue: Queue, id: string): Promise<Omit<ActionResult, 'id' | 'ok'>>;
  /** The line for one message done (without --json). */
  done(id: string, result: Omit<ActionResult, 'id' | 'ok'>): string;
}

/** Usage errors come before anything is opened: a wrong command line creates no data directory. */
function checkTargets(args: ParsedArgs, cmd: Command, spec: Steering): void {
  const given = args.positionals.length > 0;
  if (args.flags.has('all') && given) {
    throw new UsageError('give message ids or --all, not both', usageLine(cmd));
  }
  if (!given && !args.flags.has('all') && !spec.noIdsMeansAll)
    throw new UsageError('missing ID', usageLine(cmd));
}

/**
 * The ids to act on: the arguments, with `-` replaced by the ids on standard input, or with --all the
 * messages the action picks from the queue (oldest first). Duplicates are dropped, order kept.
 */
async function targetIds(
  ctx: CommandContext,
  args: ParsedArgs,
  cmd: Command,
  spec: Steering,
  queue: Queue,
): Promise<string[]> {
  const given = args.positionals;
  checkTargets(args, cmd, spec);
  if (args.flags.has('all') || (given.length === 0 && spec.noIdsMeansAll)) {
    const messages = await queue.list();
    messages.sort(byArrival);
    return messages.filter(spec.all).map((m) => m.id);
  }
  const ids: string[] = [];
  for (const arg of given) {
    if (arg !== '-') ids.push(arg);
    else ids.push(...(await readAll(ctx.io.stdin, MAX_STDIN_IDS_BYTES)).split(/\s+/).filter((w) => w !== ''));
  }
  return [...new Set(ids)];
}

/**
 * `tern queue VERB ID... | --all | -`: the action for each message, each reported (stdout, or stderr
 * for a failure; with --json one array on stdout), exit 1 when any failed. The change goes to the change
 * log once, with every id it applied to, for the running server's log (`cli.queue.VERB`).
 */
function steeringCommand(spec: Steering): Command {
  const cmd: Command = {
    name: `queue ${spec.verb}`,
    args: `${spec.noIdsMeansAll ? '[ID...]' : 'ID...'} | --all | - [--json]`,
    summary: spec.summary,
    flags: ['all', 'json'],
    minPositionals: 0,
    maxPositionals: Number.MAX_SAFE_INTEGER,
    async run(ctx, args) {
      const json = args.flags.has('json');
      const { stdout, stderr } = ctx.io;
      checkTargets(args, cmd, spec);
      const results = await ctx.withServices(['queue'], async ({ queue }) => {
        const ids = await targetIds(ctx, args, cmd, spec, queue);
        const results: ActionResult[] = [];
        for (const id of ids) {
          let result: ActionResult;
          try {
            result = { id, ok: true, ...(await spec.act(queue, id)) };
          } catch (err) {
            if (!(err instanceof OpError)) throw err;
            result = { id, ok: false, error: err.message };
          }
          results.push(result);
          if (json) continue;
          if (result.ok) await writeLine(stdout, spec.done(id, result));
          else await writeLine(stderr, `tern: ${result.error ?? ''}`);
        }
        const done = results.filter((r) => r.ok);
        if (done.length > 0) {
          const recipients = done.reduce((n, r) => n + (r.recipients ?? 0), 0);
          await ctx.recordChange(`queue.${spec.verb}`, {
            ids: done.map((r) => r.id),
            ...(done.some((r) => r.recipients !== undefined) ? { recipients } : {}),
          });
        }
        return results;
      });
      if (json) await writeLine(stdout, JSON.stringify(results, null, 2));
      return results.every((r) => r.ok) ? 0 : 1;
    },
  };
  return cmd;
}

const flushSteering: Steering = {
  verb: 'flush',
  summary: 'try deferred mail now: the messages named, or every message that is not held',
  ...QUEUE_ACTIONS.flush,
  noIdsMeansAll: true,
  done: (id, r) => `message ${id}: ${plural(r.recipients ?? 0, 'recipient')} due now`,
};

const queueFlushAll = steeringCommand(flushSteering);

export const queueFlush: Command = {
  ...queueFlushAll,
  async run(ctx, args) {
    // `tern queue flush` alone keeps its one summary line; ids, --all or --json report per message.
    if (args.positionals.length > 0 || args.flags.size > 0) return queueFlushAll.run(ctx, args);
    const n = await ctx.withServices(['queue'], async ({ queue }) => {
      const ids = (await queue.list()).filter((m) => !m.held).map((m) => m.id);
      const n = await queue.flush();
      if (n > 0) await ctx.recordChange('queue.flush', { ids, recipients: n });
      return n;
    });
    await writeLine(ctx.io.stdout, `${plural(n, 'recipient')} due now`);
    return 0;
  },
};

export const queueHold = steeringCommand({
  verb: 'hold',
  summary: 'keep messages in the queue, undelivered, until released',
  ...QUEUE_ACTIONS.hold,
  noIdsMeansAll: false,
  done: (id) => `message ${id} held`,
});

export const queueRelease = steeringCommand({
  verb: 'release',
  summary: 'let held messages be delivered again',
  ...QUEUE_ACTIONS.release,
  noIdsMeansAll: false,
  done: (id) => `message ${id} released`,
});

export const queueDelete = steeringCommand({
  verb: 'delete',
  summary: 'delete messages from the queue, telling nobody (no bounce)',
  ...QUEUE_ACTIONS.delete,
  noIdsMeansAll: false,
  done: (id) => `message ${id} deleted`,
});

export const queueBounce = steeringCommand({
  verb: 'bounce',
  summary: 'give up on messages: their pending recipients bounce and each sender gets a DSN',
  ...QUEUE_ACTIONS.bounce,
  noIdsMeansAll: false,
  done: (id, r) =>
    `message ${id}: ${plural(r.recipients ?? 0, 'recipient')} will bounce; the server sends the sender a DSN`,
});

export const queueCat: Command = {
  name: 'queue cat',
  args: 'ID',
  summary: 'write one queued message to stdout, byte for byte, with the header fields Tern put in front',
  flags: [],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const id = args.positionals[0]!;
    await ctx.withServices(['queue'], async ({ queue }) => {
      await existingMessage(queue, id);
      // end: false: stdout belongs to the process, not to this command.
      await pipeline(Readable.from(queue.readBody(id), { objectMode: false }), ctx.io.stdout, { end: false });
    });
    return 0;
  },
};

export const queueCommands: readonly Command[] = [
  queueList,
  queueShow,
  queueCat,
  queueFlush,
  queueHold,
  queueRelease,
  queueDelete,
  queueBounce,
];
