// `tern trace ID|--message-id X|--from A|--to B [--since T] [--until T] [--json]`: what happened to a
// message, one timeline per queue id from the trace store (trace/): received from whom over what TLS
// and AUTH, the checks' verdicts, queued, each delivery attempt, DSNs, what an operator did to it.
// `--json` prints an array of events in time order, each with `time` (ISO 8601), `event`, `queueId`,
// `source` (the log event it came from) and that step's details (a contract: fields are only added).
// Deliberately NOT here: what becomes an event (trace/trace.ts), storage (trace/sqlite-trace-store.ts).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openTrace } from '../../services.ts';
import type { TraceEvent } from '../../trace/trace.ts';
import { traceEventJson as eventJson } from '../../ops/trace.ts';
import type { Command } from '../command.ts';
import { existingDataDir } from '../data-dir.ts';
import { CliError, UsageError, writeLine } from '../io.ts';

/** --since/--until: an ISO 8601 date or date-time, or a duration back from now (30m, 12h, 7d). */
function parseTime(text: string, nowMs: number, option: string): number {
  const ago = /^(\d+)([smhd])$/.exec(text);
  if (ago !== null) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 's' | 'm' | 'h' | 'd'];
    return nowMs - Number(ago[1]) * unit;
  }
  // A date has its dashes (2026-12-07): a bare number is a duration without its unit, not a year.
  const ms = /^\d{4}-\d\d-\d\d/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms))
    throw new UsageError(`--${option}: not a date (2026-12-07T10:00Z) or a duration (12h): ${text}`);
  return ms;
}

/** The details worth a line of text, in a stable order. */
const SHOWN = [
  'sender',
  'to',
  'rcpt',
  'ip',
  'rdns',
  'helo',
  'tls',
  'user',
  'spf',
  'dkim',
  'arc',
  'dmarc',
  'remoteHost',
  'remoteAddress',
  'reply',
  'status',
  'mailbox',
  'filter',
  'verdict',
  'score',
  'stage',
  'reason',
  'newQueueId',
  'fromQueueId',
  'nextAttempt',
  'messageId',
];

function eventText(e: TraceEvent): string {
  const parts: string[] = [];
  for (const key of SHOWN) {
    const v = e.detail[key];
    if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) continue;
    const shown = Array.isArray(v) ? v.map(String).join(',') : typeof v === 'string' ? v : JSON.stringify(v);
    parts.push(`${key}=${shown}`);
  }
  return `  ${new Date(e.atMs).toISOString()}  ${e.event.padEnd(15)} ${parts.join(' ')}`;
}

export const trace: Command = {
  name: 'trace',
  args: '[ID] [--message-id ID] [--from ADDRESS] [--to ADDRESS] [--since TIME] [--until TIME] [--json]',
  summary: "a message's timeline: received, checked, queued, each delivery attempt, DSNs",
  flags: ['json'],
  options: ['message-id', 'from', 'to', 'since', 'until'],
  minPositionals: 0,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const o = args.options;
    const queueId = args.positionals[0];
    if (queueId === undefined && !['message-id', 'from', 'to'].some((k) => o.has(k))) {
      throw new UsageError('name a queue id, or --message-id, --from or --to');
    }
    const config = ctx.config();
    const root = existingDataDir(config);
    if (!existsSync(join(root, 'trace.sqlite')))
      throw new CliError(`no trace store in ${root} (trace.sqlite)`);
    const now = ctx.clock.nowMs();
    const store = await openTrace(config, ctx.clock, 'reader');
    try {
      const ids = store.find({
        ...(queueId === undefined ? {} : { queueId }),
        ...(o.has('message-id') ? { messageId: o.get('message-id')! } : {}),
        ...(o.has('from') ? { from: o.get('from')! } : {}),
        ...(o.has('to') ? { to: o.get('to')! } : {}),
        ...(o.has('since') ? { sinceMs: parseTime(o.get('since')!, now, 'since') } : {}),
        ...(o.has('until') ? { untilMs: parseTime(o.get('until')!, now, 'until') } : {}),
      });
      // Oldest message first, each message's events in order.
      const events = ids.toReversed().flatMap((id) => store.events([id]));
      if (args.flags.has('json')) {
        await writeLine(ctx.io.stdout, JSON.stringify(events.map(eventJson), null, 2));
        return 0;
      }
      if (events.length === 0)
        throw new CliError('no trace of such a message (kept for [trace] retention_days)');
      let last = '';
      for (const e of events) {
        if (e.queueId !== last) await writeLine(ctx.io.stdout, `${last === '' ? '' : '\n'}${e.queueId}`);
        last = e.queueId;
        await writeLine(ctx.io.stdout, eventText(e));
      }
      return 0;
    } finally {
      store.close();
    }
  },
};
