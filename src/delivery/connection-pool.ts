// Outbound connection reuse and limits (Postfix's qmgr concurrency + smtp connection cache): a bounded
// number of connections in total and per destination address, idle sessions kept briefly for the next
// message to the same place, and no more than maxMessagesPerConnection messages on one connection.
// Deliberately NOT here: what to send or where (remote.ts, route.ts).

import type { ConnectOptions, ConnectResult, SmtpClientSession } from './smtp-client.ts';

/** A counting semaphore: acquire() waits for a free slot. */
export class Semaphore {
  private free: number;
  private readonly waiters: Array<() => void> = [];
  constructor(slots: number) {
    this.free = slots;
  }
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    };
  }
}

export interface PoolOptions {
  readonly maxConnections: number;
  readonly maxConnectionsPerDestination: number;
  readonly maxMessagesPerConnection: number;
  readonly idleMs: number;
  readonly connect: (opts: ConnectOptions) => Promise<ConnectResult>;
}

interface Idle {
  readonly session: SmtpClientSession;
  readonly release: () => void;
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

export class ConnectionPool {
  private readonly options: PoolOptions;
  private readonly global: Semaphore;
  private readonly perDestination = new Map<string, Semaphore>();
  private readonly idle = new Map<string, Idle[]>();
  private closed = false;

  constructor(options: PoolOptions) {
    this.options = options;
    this.global = new Semaphore(options.maxConnections);
  }

  /** Key of a destination: where we connect and how (TLS policy, credentials) — sessions are only reused alike. */
  static keyOf(opts: ConnectOptions): string {
    return `${opts.address}|${opts.port}|${opts.tls}|${opts.implicitTls ? 'implicit' : ''}|${opts.auth?.username ?? ''}|${opts.servername ?? opts.host}`;
  }

  async lease(opts: ConnectOptions): Promise<LeaseResult> {
    const key = ConnectionPool.keyOf(opts);
    const idle = this.takeIdle(key);
    if (idle) return { kind: 'leased', lease: this.makeLease(key, idle.session, idle.release, true) };
    let dest = this.perDestination.get(key);
    if (!dest) {
      dest = new Semaphore(this.options.maxConnectionsPerDestination);
      this.perDestination.set(key, dest);
    }
    const releaseDest = await dest.acquire();
    // Another sender may have returned a session while we waited.
    const late = this.takeIdle(key);
    if (late) {
      releaseDest();
      return { kind: 'leased', lease: this.makeLease(key, late.session, late.release, true) };
    }
    const releaseGlobal = await this.global.acquire();
    const release = (): void => {
      releaseGlobal();
      releaseDest();
    };
    const result = await this.options.connect(opts);
    if (result.kind === 'failed') {
      release();
      return result;
    }
    return { kind: 'leased', lease: this.makeLease(key, result.session, release, false) };
  }

  private takeIdle(key: string): Idle | null {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const entry = list.pop()!;
      clearTimeout(entry.timer);
      if (entry.session.usable) return entry;
      entry.session.close();
      entry.release();
    }
    return null;
  }

  private makeLease(key: string, session: SmtpClientSession, release: () => void, reused: boolean): Lease {
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
          this.options.idleMs > 0;
        if (!keep) {
          await session.quit();
          release();
          return;
        }
        await session.reset();
        if (!session.usable) {
          session.close();
          release();
          return;
        }
        const timer = setTimeout(() => {
          const list = this.idle.get(key);
          const i = list?.findIndex((e) => e.session === session) ?? -1;
          if (list && i >= 0) list.splice(i, 1);
          void session.quit().finally(release);
        }, this.options.idleMs);
        timer.unref();
        const list = this.idle.get(key) ?? [];
        list.push({ session, release, timer });
        this.idle.set(key, list);
      },
    };
  }

  /** Quit every idle session; sessions on lease are closed when returned. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(
      all.map(async (e) => {
        clearTimeout(e.timer);
        await e.session.quit();
        e.release();
      }),
    );
  }
}
