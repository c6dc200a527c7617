// What the main thread and a session thread say to each other (server/workers/worker-pool.ts ↔ src/session-thread.ts), one
// typed union per direction. Everything here crosses postMessage (structured clone): plain data, plus
// the socket itself in the transfer list of a `session` message.

import type { Socket } from 'node:net';
import type { Config } from '../../config/config.ts';
import type { Observed } from '../../core/observe.ts';
import type { LockState } from '../../policy/auth-guard.ts';

/** The TLS material of a generation, as PEM text (a SecureContext cannot cross threads). */
export interface GenerationTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa: string | null;
}

/** What a session thread is started with (workerData). */
export interface SessionWorkerData {
  readonly index: number;
  /** The configuration the server started with: data_dir, [dns], [log] and the directory's options. */
  readonly config: Config;
  /** Render log lines as pino-pretty does (the main thread's logger is pretty). */
  readonly prettyLogs: boolean;
  /** Post observed records (core/observe.ts) and fsync times: the server has an admin listener. */
  readonly observe: boolean;
}

/** Calls a session thread makes to the limits kept on the main thread (coordinator.ts). */
export type CoordinatorCall =
  | { readonly op: 'auth.check'; readonly ip: string; readonly account: string | null }
  | { readonly op: 'auth.failure'; readonly ip: string; readonly account: string | null }
  | { readonly op: 'auth.success'; readonly ip: string }
  | {
      readonly op: 'rate.allows';
      readonly user: string;
      readonly limits: { readonly maxMessages: number; readonly maxRecipients: number };
      readonly add: { readonly messages: number; readonly recipients: number };
    }
  | { readonly op: 'rate.record'; readonly user: string; readonly recipients: number }
  | { readonly op: 'slots.acquire'; readonly user: string; readonly max: number }
  | { readonly op: 'slots.release'; readonly user: string }
  | { readonly op: 'maildrop.acquire'; readonly user: string; readonly mailbox: string }
  | { readonly op: 'maildrop.release'; readonly token: number };

/** The answer to each call (same op names). */
export interface CoordinatorAnswers {
  'auth.check': LockState;
  'auth.failure': LockState;
  'auth.success': null;
  'rate.allows': boolean;
  'rate.record': null;
  'slots.acquire': boolean;
  'slots.release': null;
  /** A token for the release, or null when another session holds the maildrop. */
  'maildrop.acquire': number | null;
  'maildrop.release': null;
}

export type ToWorker =
  | {
      readonly kind: 'prepare';
      readonly gen: number;
      readonly config: Config;
      readonly tls: GenerationTls | null;
    }
  | { readonly kind: 'retire'; readonly gen: number }
  | {
      readonly kind: 'session';
      readonly socket: Socket;
      readonly id: string;
      readonly gen: number;
      readonly listenerIndex: number;
    }
  | { readonly kind: 'stop'; readonly graceMs: number }
  | { readonly kind: 'answer'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly kind: 'answer'; readonly id: number; readonly ok: false; readonly error: string };

export type FromWorker =
  | { readonly kind: 'ready' }
  | { readonly kind: 'failed'; readonly error: string }
  | { readonly kind: 'prepared'; readonly gen: number; readonly error: string | null }
  | { readonly kind: 'ended'; readonly id: string }
  | { readonly kind: 'committed' }
  | { readonly kind: 'log'; readonly text: string }
  /** What the metrics and the admin page's live events are made of, one event-loop turn's worth. */
  | { readonly kind: 'observed'; readonly events: readonly Observed[] }
  | { readonly kind: 'call'; readonly id: number; readonly call: CoordinatorCall }
  | { readonly kind: 'stopped' };
