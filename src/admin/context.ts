// What the admin API's routes work with: the running server's own services (the same queue, store and
// directory objects its sessions and delivery worker use, so a change is seen at once), the metrics and
// live events, and how to reload. Built once by main.ts.

import type { Config } from '../config/config.ts';
import type { Clock, Logger } from '../core/ports.ts';
import type { Resolver } from '../core/dns.ts';
import type { SqliteAdminAccounts } from '../directory/admin-accounts.ts';
import type { Directory } from '../directory/directory.ts';
import type { Queue } from '../queue/queue.ts';
import type { ReloadStatus } from '../server/reload.ts';
import type { ImapMailboxStore } from '../store/mailbox-store.ts';
import type { SqliteTraceStore } from '../trace/sqlite-trace-store.ts';
import type { AdminAuth } from './auth.ts';
import type { LiveEvents } from './live.ts';
import type { ServerMetrics } from './metrics.ts';

export interface ReadyCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface AdminContext {
  readonly queue: Queue;
  readonly store: ImapMailboxStore;
  readonly directory: Directory;
  readonly trace: SqliteTraceStore;
  readonly accounts: SqliteAdminAccounts;
  readonly metrics: ServerMetrics;
  readonly live: LiveEvents;
  readonly auth: AdminAuth;
  /** The configuration in force (a reload swaps it). */
  readonly config: () => Config;
  /** Reload the configuration file as SIGHUP does; null when the server runs without one. */
  readonly reload: () => (() => Promise<ReloadStatus | null>) | null;
  /** Readiness: stores open and answering, the disk reserve met. */
  readonly ready: () => Promise<readonly ReadyCheck[]>;
  readonly resolver: Resolver;
  readonly logger: Logger;
  readonly clock: Clock;
}
