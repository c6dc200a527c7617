// The Logger port (src/core/ports.ts) on top of pino: one JSON line per event, `event` holding the name
// from src/core/events.ts, child loggers adding session / queue ids. `pretty` renders the same records
// with pino-pretty's formatter called inline, so a line is on the terminal when event() returns (no worker
// thread, no transform stream that could lose the tail on a crash).
// Deliberately not here: log files and rotation (stdout is the interface; the supervisor keeps files).

import type { DestinationStream, Logger as PinoLogger } from 'pino';
import { pino, stdSerializers, stdTimeFunctions } from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { LogFields, Logger } from '../core/ports.ts';
import type { LogConfig } from '../config/config.ts';

export interface LoggerOptions {
  readonly level: LogConfig['level'];
  /** json always, pretty always, or auto: pretty when stdout is a TTY. */
  readonly format: LogConfig['format'];
  /** Where lines go; stdout when absent. Receives one complete line per write. */
  readonly destination?: { write(line: string): unknown };
}

/** Field names that hold errors: serialized with message, type and stack rather than `{}`. */
const errorSerializers = {
  err: stdSerializers.err,
  error: stdSerializers.err,
  cause: stdSerializers.err,
};

export function createLogger(options: LoggerOptions): Logger {
  return createLogSink(options).logger;
}

/** A logger, and a way to write lines other threads rendered with the same options through its stream. */
export interface LogSink {
  readonly logger: Logger;
  /** Lines rendered as this logger renders them (JSON or pretty): they go out between its own. */
  readonly writeLines: (text: string) => void;
  /** Whether lines are rendered pretty (what the other threads must render). */
  readonly pretty: boolean;
}

export function createLogSink(options: LoggerOptions): LogSink {
  const pretty =
    options.format === 'pretty' ||
    (options.format === 'auto' && process.stdout.isTTY && !options.destination);
  const out = options.destination ?? (pretty ? process.stdout : undefined);
  let destination: DestinationStream | undefined;
  if (pretty && out) {
    const render = prettyFactory({
      messageKey: 'event',
      colorize: out === process.stdout && process.stdout.isTTY,
      // The same ISO 8601 UTC text as the JSON lines' `time` (stdTimeFunctions.isoTime): one format.
      translateTime: 'UTC:yyyy-mm-dd"T"HH:MM:ss.l"Z"',
      ignore: 'pid,hostname',
      singleLine: true,
    });
    destination = { write: (line: string) => void out.write(render(line)) };
  } else if (out) {
    destination = { write: (line: string) => void out.write(line) };
  }
  // One stream for this thread's lines and the other threads' (session threads post theirs here): a
  // second writer on fd 1 could split a long line of one with a line of the other.
  const stream = destination ?? pino.destination({ dest: 1, sync: false });
  const base = pino(
    {
      level: options.level,
      base: { pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      serializers: errorSerializers,
      // Labels read better than numbers in JSON; pino-pretty wants the numbers, so only for JSON.
      ...(pretty ? {} : { formatters: { level: (label: string) => ({ level: label }) } }),
    },
    // Without a destination pino writes to fd 1 and flushes on exit by itself.
    stream,
  );
  const raw = pretty && out ? out : stream;
  return { logger: wrap(base), writeLines: (text) => void raw.write(text), pretty };
}

function wrap(p: PinoLogger): Logger {
  // The event name goes last so a field called "event" can never hide it.
  return {
    event: (name: string, fields?: LogFields) => p.info({ ...fields, event: name }),
    warn: (name: string, fields?: LogFields) => p.warn({ ...fields, event: name }),
    error: (name: string, fields?: LogFields) => p.error({ ...fields, event: name }),
    debug: (name: string, fields?: LogFields) => p.debug({ ...fields, event: name }),
    child: (fields: LogFields) => wrap(p.child(fields)),
  };
}
