// How a protocol plugs into the listeners: a driver factory per service. The listener accepts the
// socket, enforces the connection limits (answering with the factory's refusal), wraps the socket in the
// connection shell (net/connection.ts; implicit TLS handshaked first), and asks the factory for a driver
// bound to that shell and to the snapshot (ConnectionDeps) of the reload generation it was accepted in.
// Adding a protocol: a Service name in config, a factory here, a line in drivers.ts. docs/architecture.md
// ("Adding a protocol") shows it whole.

import type { Config, ListenerConfig } from '../config/config.ts';
import type { Connection } from '../net/connection.ts';
import type { ConnectionDeps } from './connection-deps.ts';

/**
 * Why a connection is refused before its session: a limit it hit, or no session thread to run it (all
 * are starting again after a failure); the first and the last get the same "try again later".
 */
export type RefusalReason = 'max-connections' | 'max-connections-per-ip' | 'no-session-thread';

export interface DriverContext {
  /** The session id every log line of this connection carries. */
  readonly id: string;
  readonly listener: ListenerConfig;
  /** The snapshot of the generation this connection was accepted in; kept until it ends. */
  readonly deps: ConnectionDeps;
}

/** One connection's protocol driver. The shell it was given owns the socket, `done` and hard stops. */
export interface Driver {
  /** Begin: greet, read. Called once, right after create(). */
  start(): void;
  /** Graceful shutdown: close when idle (now, or after the current transaction), with the protocol's words. */
  shutdown(): void;
}

export interface DriverFactory {
  create(shell: Connection, context: DriverContext): Driver;
  /**
   * The bytes written before closing a connection over a limit (SMTP "421 4.7.0 ...", POP3
   * "-ERR [SYS/TEMP] ...", IMAP "* BYE ..."). Not sent on implicit-TLS listeners: the client could not read it.
   */
  refusal(reason: RefusalReason): string | Uint8Array;
  /** Unconsumed input above which the shell pauses the socket. */
  readonly maxBufferedBytes: number;
  /** Connections this service may hold at once, beside limits.max_connections for all; absent: no own cap. */
  maxConnections?(config: Config): number;
  /** Log event names for what the listener logs on the service's behalf. */
  readonly events: { readonly refused: string; readonly tlsFailed: string };
}
