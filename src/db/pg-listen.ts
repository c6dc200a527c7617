// LISTEN on a PostgreSQL channel from a dedicated connection (not the pool's: a LISTEN holds its
// connection), reconnecting after a loss, so one node hears what another committed at once (issue 19:
// new queue entries wake every node's delivery worker). A notification is a hint only: whoever listens
// must still find the work on its own (polls stay), so a notification lost while reconnecting costs
// latency, never mail.
// Deliberately NOT here: what a notification means (the caller), sending them (pg_notify in SQL).

import pg from 'pg';
import type { PgPool } from './postgres.ts';

export interface Listening {
  close(): Promise<void>;
}

/** How long to wait before opening a lost listening connection again. */
const RECONNECT_MS = 2000;

export function listenChannel(pool: PgPool, channel: string, onNotify: (payload: string) => void): Listening {
  let client: pg.Client | null = null;
  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  const connect = (): void => {
    if (closed) return;
    // The pool's own settings (URL, search_path, timeouts) for a connection the pool does not manage.
    const c = new pg.Client(pool.options);
    client = c;
    const lost = (): void => {
      c.removeAllListeners();
      c.on('error', () => undefined);
      void c.end().catch(() => undefined);
      if (client === c) client = null;
      if (!closed && timer === null) {
        timer = setTimeout(() => {
          timer = null;
          connect();
        }, RECONNECT_MS);
        timer.unref();
      }
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (msg) => {
      if (msg.channel === channel) onNotify(msg.payload ?? '');
    });
    c.connect()
      .then(() => c.query(`LISTEN ${pg.escapeIdentifier(channel)}`))
      .catch(lost);
  };
  connect();
  return {
    async close(): Promise<void> {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      const c = client;
      client = null;
      if (c !== null) {
        c.removeAllListeners();
        c.on('error', () => undefined);
        await c.end().catch(() => undefined);
      }
    },
  };
}
