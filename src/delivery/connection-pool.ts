// Outbound connection reuse and limits (Postfix's qmgr concurrency + smtp connection cache): a bounded
// number of connections in total and per destination address, idle sessions kept briefly for the next
// message to the same place, and no more than maxMessagesPerConnection messages on one connection.
// Deliberately NOT here: what to send or where (remote.ts, route.ts).

import type { ConnectOptions, ConnectResult, SmtpClientSession } from './smtp-client.ts';

export interface PoolOptions {
  readonly maxConnections: number;
  readonly maxConnectionsPerDestination: number;
  readonly maxMessagesPerConnection: number;
  readonly idleMs: number;
  readonly connect: (opts: ConnectOptions) => Promise<ConnectResult>;
}

interface Idle {
  readonly session: SmtpClientSession;
  readonly timer: NodeJS.Timeout;
}

/** A session lent out by the pool; give it back with done(reusable). */
export interface Lease {
  readonly session: SmtpClientSession;
  readonly reused: boolean;
  done(reusable: boolean): Promise<void>;
}

export type LeaseResult =
  { readonly kind: 'leased'; readonly lease: Lease } | Extract<ConnectResult, { kind: 'failed' }>;

/** Per destination: connections open (leased or idle), idle sessions, and senders waiting for either. */
interface Destination {
  open: number;
  readonly idle: Idle[];
  readonly waiters: Array<() => void>;
}

export class ConnectionPool {
  private readonly options: PoolOptions;
  private readonly destinations = new Map<string, Destination>();
  private openTotal = 0;
  /** Senders waiting because the global limit is reached. */
  private readonly globalWaiters: Array<() => void> = [];
  private closed = false;

  constructor(options: PoolOptions) {
    this.options = options;
  }

  /** Key of a destination: where we connect and how (TLS policy, credentials) — sessions are only reused alike. */
  static keyOf(opts: ConnectOptions): string {
    const dane = opts.dane === undefined || opts.dane === null ? '' : `dane:${opts.dane.records.length}`;
    const via = opts.path === undefined ? `${opts.address}|${opts.port}` : `unix:${opts.path}`;
    return `${opts.lmtp === true ? 'lmtp|' : ''}${via}|${opts.tls}|${opts.implicitTls ? 'implicit' : ''}|${opts.auth?.username ?? ''}|${opts.servername ?? opts.host}|${dane}`;
  }

  private destination(key: string): Destination {
    let d = this.destinations.get(key);
    if (!d) {
      d = { open: 0, idle: [], waiters: [] };
      this.destinations.set(key, d);
    }
    return d;
  }

  /**
   * An idle session for the destination if there is one; else a new connection within the limits; else
   * wait until a session comes back (it is handed over, not left idle) or a connection closes.
   */
  async lease(opts: ConnectOptions): Promise<LeaseResult> {
    const key = ConnectionPool.keyOf(opts);
    const dest = this.destination(key);
    for (;;) {
      const idle = this.takeIdle(dest);
      if (idle) return { kind: 'leased', lease: this.makeLease(dest, idle, true) };
      const perDestination = dest.open < this.options.maxConnectionsPerDestination;
      const global = this.openTotal < this.options.maxConnections;
      if (perDestination && global) break;
      await new Promise<void>((resolve) =>
        (perDestination ? this.globalWaiters : dest.waiters).push(resolve),
      );
    }
    dest.open++;
    this.openTotal++;
    const result = await this.options.connect(opts);
    if (result.kind === 'failed') {
      this.release(dest);
      return result;
    }
    return { kind: 'leased', lease: this.makeLease(dest, result.session, false) };
  }

  private takeIdle(dest: Destination): SmtpClientSession | null {
    while (dest.idle.length > 0) {
      const entry = dest.idle.pop()!;
      clearTimeout(entry.timer);
      if (entry.session.usable) return entry.session;
      entry.session.close();
      this.release(dest);
    }
    return null;
  }

  /** A connection of this destination closed: wake one waiter of it and one of the global limit. */
  private release(dest: Destination): void {
    dest.open--;
    this.openTotal--;
    dest.waiters.shift()?.();
    this.globalWaiters.shift()?.();
  }

  private makeLease(dest: Destination, session: SmtpClientSession, reused: boolean): Lease {
    let finished = false;
    return {
      session,
      reused,
      done: async (reusable: boolean) => {
        if (finished) return;
        finished = true;
        const keep =
          reusable &&
          !this.closed &&
          session.usable &&
          session.messagesSent < this.options.maxMessagesPerConnection &&
          (this.options.idleMs > 0 || dest.waiters.length > 0);
        if (!keep) {
          await session.quit();
          this.release(dest);
          return;
        }
        await session.reset();
        if (!session.usable) {
          session.close();
          this.release(dest);
          return;
        }
        const timer = setTimeout(() => {
          const i = dest.idle.findIndex((e) => e.session === session);
          if (i >= 0) dest.idle.splice(i, 1);
          void session.quit().finally(() => this.release(dest));
        }, this.options.idleMs);
        timer.unref();
        dest.idle.push({ session, timer });
        // A sender waiting for this destination takes it now rather than after the idle timeout.
        dest.waiters.shift()?.();
      },
    };
  }

  /** Quit every idle session; sessions on lease are closed when returned. */
  async close(): Promise<void> {
    this.closed = true;
    const all: Array<{ dest: Destination; entry: Idle }> = [];
    for (const dest of this.destinations.values()) {
      for (const entry of dest.idle.splice(0)) all.push({ dest, entry });
    }
    await Promise.all(
      all.map(async ({ dest, entry }) => {
        clearTimeout(entry.timer);
        await entry.session.quit();
        this.release(dest);
      }),
    );
  }
}
