// The trace of every message (issue 15): one timeline per queue id, from what the server already says
// about it. Every log record that names a queue id (the session's `smtp.queued`, the checks' verdicts,
// each delivery attempt, DSNs, what the CLI did to it) is also a trace event, kept in the trace store
// (sqlite-trace-store.ts) for `[trace] retention_days` and read by `tern trace`. Taking the events from
// the Logger port means nothing that logs has to know about traces, and the trace can never say
// something the log does not.
// Deliberately NOT here: storage (sqlite-trace-store.ts), presentation (cli/commands/trace.ts).

import type { LogFields, Logger } from '../core/ports.ts';

/** One step in a message's life, as `tern trace --json` prints it. */
export interface TraceEvent {
  /** Milliseconds since the epoch. */
  readonly atMs: number;
  readonly queueId: string;
  /** received, checked, queued, delivered, deferred, bounced, dsn, … (traceEventName). */
  readonly event: string;
  /** The log event it came from, e.g. `delivery.remote`. */
  readonly source: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

/** Where trace events go; never throws, never waits (a trace must not slow or fail a delivery). */
export interface TraceWriter {
  write(event: TraceEvent): void;
}

/** The trace's own name for a log event; events not listed keep their log name. */
const NAMES: Readonly<Record<string, string>> = {
  'smtp.queued': 'received',
  'smtp.authchecks': 'checked',
  'smtp.filter': 'filtered',
  'smtp.discarded': 'discarded',
  'smtp.rewritten': 'rewritten',
  'smtp.commit.failed': 'refused',
  'queue.committed': 'queued',
  'delivery.local': 'delivered',
  'delivery.remote': 'delivered',
  'delivery.deferred': 'deferred',
  'delivery.failed': 'bounced',
  'delivery.bounced': 'bounced',
  'delivery.over_quota': 'bounced',
  'delivery.remote.failed': 'failed-attempt',
  'delivery.forwarded': 'forwarded',
  'dsn.queued': 'dsn',
  'dsn.suppressed': 'dsn-suppressed',
  // What an operator did with `tern queue ...`, as the running server logs it from the change log.
  'cli.queue.hold': 'held',
  'cli.queue.release': 'released',
  'cli.queue.delete': 'deleted',
  'cli.queue.flush': 'flushed',
  'cli.queue.bounce': 'bounce-requested',
  // The same, done on the admin page or through the HTTP API.
  'admin.queue.hold': 'held',
  'admin.queue.release': 'released',
  'admin.queue.delete': 'deleted',
  'admin.queue.flush': 'flushed',
  'admin.queue.bounce': 'bounce-requested',
};

export function traceEventName(logEvent: string): string {
  return NAMES[logEvent] ?? logEvent;
}

/**
 * The queue's own records of a steering action: traced instead from whoever asked (cli.queue.* from the
 * change log, admin.queue.* from the admin API), which say who did it; one step, not two.
 */
const UNTRACED = new Set([
  'queue.held',
  'queue.released',
  'queue.deleted',
  'queue.flushed',
  'queue.bounce_requested',
]);

/** Fields that are the log's business, not the trace's (the record's own name, levels, process). */
const DROPPED = new Set(['queueId', 'event', 'level', 'time', 'pid', 'msg']);

function detailOf(fields: LogFields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (DROPPED.has(k) || v === undefined) continue;
    // Errors keep their message: JSON has no place for the rest.
    out[k] = v instanceof Error ? v.message : v;
  }
  return out;
}

/**
 * A logger that logs as `inner` does and also writes every record that names a queue id (in its fields
 * or its child's bound fields) to the trace. `now` is the clock of the trace's times.
 */
export function tracingLogger(
  inner: Logger,
  writer: TraceWriter,
  now: () => number,
  bound: LogFields = {},
): Logger {
  const tee =
    (log: (name: string, fields?: LogFields) => void) =>
    (name: string, fields?: LogFields): void => {
      log(name, fields);
      if (UNTRACED.has(name)) return;
      // Most records name no message (connects, commands): decided before any copy of the fields.
      const queueId = fields?.['queueId'] ?? bound['queueId'];
      const operator = name.startsWith('cli.queue.') || name.startsWith('admin.queue.');
      if ((typeof queueId !== 'string' || queueId === '') && !operator) return;
      const all = fields === undefined ? bound : { ...bound, ...fields };
      if (typeof queueId === 'string' && queueId !== '') {
        writer.write({
          atMs: now(),
          queueId,
          event: traceEventName(name),
          source: name,
          detail: detailOf(all),
        });
        return;
      }
      // What an operator did with `tern queue ...` to several messages at once (cli.queue.hold, …).
      const ids = all['ids'];
      if (!Array.isArray(ids)) return;
      const detail = detailOf(all);
      // Counts over all the ids are no step of any one message.
      delete detail['ids'];
      delete detail['recipients'];
      for (const id of ids) {
        if (typeof id === 'string')
          writer.write({ atMs: now(), queueId: id, event: traceEventName(name), source: name, detail });
      }
    };
  return {
    event: tee((n, f) => inner.event(n, f)),
    warn: tee((n, f) => inner.warn(n, f)),
    error: tee((n, f) => inner.error(n, f)),
    debug: (n, f) => inner.debug(n, f),
    child: (fields) => tracingLogger(inner.child(fields), writer, now, { ...bound, ...fields }),
  };
}
