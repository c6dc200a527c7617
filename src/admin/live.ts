// Live events for the admin page (GET /api/events, Server-Sent Events): sessions opening and closing,
// accepted messages, delivery attempts, DSNs and failed logins, as they happen on any thread. Each
// observed record (core/observe.ts) becomes one SSE event named by its kind; the data is the record's
// fields as JSON. A client that cannot keep up (more than MAX_BUFFERED_BYTES waiting) is cut off rather
// than held in memory; the page reconnects and catches up from the queue and the trace.
// Deliberately NOT here: counting (metrics.ts), authentication (auth.ts).

import type { ServerResponse } from 'node:http';
import { Events } from '../core/events.ts';
import type { Observed } from '../core/observe.ts';

/** The SSE event name of each observed log event; others are not sent. */
const KINDS: Readonly<Record<string, LiveKind>> = {
  [Events.smtpConnect]: 'session',
  [Events.smtpClose]: 'session',
  [Events.pop3Connect]: 'session',
  [Events.pop3Close]: 'session',
  [Events.imapConnect]: 'session',
  [Events.imapClose]: 'session',
  [Events.smtpQueued]: 'accepted',
  [Events.deliveryLocal]: 'delivery',
  [Events.deliveryRemote]: 'delivery',
  [Events.deliveryRemoteFailed]: 'delivery',
  [Events.deliveryDeferred]: 'delivery',
  [Events.deliveryFailed]: 'delivery',
  [Events.deliveryBounced]: 'delivery',
  [Events.deliveryOverQuota]: 'delivery',
  [Events.dsnQueued]: 'dsn',
  [Events.smtpAuthFailed]: 'auth-failure',
  [Events.smtpAuthLocked]: 'auth-failure',
  [Events.adminLoginFailed]: 'auth-failure',
};

export type LiveKind = 'session' | 'accepted' | 'delivery' | 'dsn' | 'auth-failure' | 'queue';

const MAX_BUFFERED_BYTES = 1024 * 1024;
const HEARTBEAT_MS = 15_000;

export class LiveEvents {
  readonly #clients = new Set<ServerResponse>();
  #seq = 0;
  #heartbeat: NodeJS.Timeout | null = null;

  get clients(): number {
    return this.#clients.size;
  }

  /** Send an observed record to every client (when it is one of the live kinds). */
  publish(o: Observed): void {
    const kind = KINDS[o.event];
    if (kind === undefined || this.#clients.size === 0) return;
    this.send(kind, { event: o.event, time: new Date(o.atMs).toISOString(), ...o.fields });
  }

  send(kind: LiveKind, data: Readonly<Record<string, unknown>>): void {
    if (this.#clients.size === 0) return;
    if (data['time'] === undefined) data = { time: new Date().toISOString(), ...data };
    // JSON never holds a raw line break, so one data: line carries it (SSE fields end at CR or LF).
    const frame = `id: ${++this.#seq}\nevent: ${kind}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.#clients) {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        res.destroy();
        continue;
      }
      res.write(frame);
    }
  }

  /** Take over a response as an event stream until the client goes. */
  attach(res: ServerResponse): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    // The retry delay a browser waits before reconnecting, and a first byte so proxies pass it on.
    res.write('retry: 3000\n: tern live events\n\n');
    this.#clients.add(res);
    res.on('close', () => {
      this.#clients.delete(res);
      if (this.#clients.size === 0 && this.#heartbeat !== null) {
        clearInterval(this.#heartbeat);
        this.#heartbeat = null;
      }
    });
    this.#heartbeat ??= setInterval(() => {
      for (const c of this.#clients) c.write(': keepalive\n\n');
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  close(): void {
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }
}
