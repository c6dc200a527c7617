// What the server's metrics and the admin page's live events are made of: the log records an operator
// would count or watch (sessions, accepted and refused mail, delivery attempts, DSNs, logins, TLS, the
// checks' verdicts), seen through the Logger port like the message trace (trace/trace.ts). A session
// thread batches them to the main thread, where src/admin/metrics.ts counts them and src/admin/live.ts
// streams them; nothing that logs knows about either.
// Deliberately NOT here: what is counted (metrics.ts) or shown (live.ts).

import { Events } from './events.ts';
import type { LogFields, Logger } from './ports.ts';

/** One observed record: its log event name, when, and its fields (plain values only). */
export interface Observed {
  readonly event: string;
  readonly atMs: number;
  readonly fields: Readonly<Record<string, ObservedValue>>;
}

export type ObservedValue = string | number | boolean | null | readonly (string | number | boolean | null)[];

/** The records worth counting or showing live; everything else is passed by untouched. */
export const OBSERVED_EVENTS: ReadonlySet<string> = new Set<string>([
  Events.smtpConnect,
  Events.smtpClose,
  Events.pop3Connect,
  Events.pop3Close,
  Events.imapConnect,
  Events.imapClose,
  Events.smtpQueued,
  Events.smtpMailRejected,
  Events.smtpRcptRejected,
  Events.smtpDataRejected,
  Events.smtpAuthChecks,
  Events.smtpFilter,
  Events.smtpAuthSucceeded,
  Events.pop3AuthSucceeded,
  Events.imapAuthSucceeded,
  Events.smtpAuthFailed,
  Events.smtpAuthLocked,
  Events.tlsHandshake,
  Events.pop3Tls,
  Events.imapTls,
  Events.deliveryLocal,
  Events.deliveryRemote,
  Events.deliveryRemoteFailed,
  Events.deliveryDeferred,
  Events.deliveryFailed,
  Events.deliveryBounced,
  Events.deliveryOverQuota,
  Events.dsnQueued,
  Events.adminLoginFailed,
]);

function plain(v: unknown): ObservedValue | undefined {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) {
    const out: (string | number | boolean | null)[] = [];
    for (const x of v as unknown[]) {
      if (x === null || typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') out.push(x);
    }
    return out;
  }
  if (v instanceof Error) return v.message;
  return undefined;
}

/** The fields as plain data that crosses postMessage and JSON alike (objects and functions dropped). */
export function plainFields(fields: LogFields): Record<string, ObservedValue> {
  const out: Record<string, ObservedValue> = {};
  for (const [k, v] of Object.entries(fields)) {
    const p = plain(v);
    if (p !== undefined) out[k] = p;
  }
  return out;
}

/**
 * A logger that logs as `inner` does and hands every record named in OBSERVED_EVENTS, with its child's
 * bound fields, to `sink`.
 */
export function observingLogger(
  inner: Logger,
  sink: (observed: Observed) => void,
  now: () => number,
  bound: LogFields = {},
): Logger {
  const tee =
    (log: (name: string, fields?: LogFields) => void) =>
    (name: string, fields?: LogFields): void => {
      log(name, fields);
      if (!OBSERVED_EVENTS.has(name)) return;
      sink({
        event: name,
        atMs: now(),
        fields: plainFields(fields === undefined ? bound : { ...bound, ...fields }),
      });
    };
  return {
    event: tee((n, f) => inner.event(n, f)),
    warn: tee((n, f) => inner.warn(n, f)),
    error: tee((n, f) => inner.error(n, f)),
    debug: (n, f) => inner.debug(n, f),
    child: (fields) => observingLogger(inner.child(fields), sink, now, { ...bound, ...fields }),
  };
}
