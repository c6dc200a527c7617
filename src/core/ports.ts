// Ports: the small interfaces through which pure code reaches the world (time, logging).
// Implementations live at the edges (src/net, src/main.ts); tests pass fakes.

export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

export type LogFields = Readonly<Record<string, unknown>>;

/** Structured logger: one line per event, event names from src/core/events.ts. */
export interface Logger {
  event(name: string, fields?: LogFields): void;
  warn(name: string, fields?: LogFields): void;
  error(name: string, fields?: LogFields): void;
  /** Detail for tracing one session (each command and reply): written only at log level debug. */
  debug(name: string, fields?: LogFields): void;
  /** A child logger that adds the given fields (session id, queue id) to every line. */
  child(fields: LogFields): Logger;
}

export const nullLogger: Logger = {
  event() {},
  warn() {},
  error() {},
  debug() {},
  child() {
    return nullLogger;
  },
};
