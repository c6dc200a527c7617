// The shape of one `tern` subcommand and the context it runs in. A command declares its positional
// arguments, boolean flags and options that take a value; main.ts parses argv against that (node:util
// parseArgs, strict) so a handler only sees validated input. Services are opened per command through
// the context (only the ones it needs) and always closed, even when the handler throws.

import type { Config } from '../config/config.ts';
import type { ConfigError } from '../config/load.ts';
import type { Clock, LogFields, Logger } from '../core/ports.ts';
import type { Directory } from '../directory/directory.ts';
import type { Queue } from '../queue/queue.ts';
import type { ImapMailboxStore } from '../store/mailbox-store.ts';
import type { CliIo } from './io.ts';

export interface ParsedArgs {
  readonly positionals: readonly string[];
  /** Boolean flags given, by long name (`--json` → `json`). */
  readonly flags: ReadonlySet<string>;
  /** Values of the value-taking options given, by long name (`--fingerprint X` → `fingerprint` → `X`). */
  readonly options: ReadonlyMap<string, string>;
}

export interface Command {
  /** Words after `tern`, e.g. `user add`. */
  readonly name: string;
  /** Arguments as shown in usage, e.g. `ADDRESS [--password-stdin]`. */
  readonly args: string;
  readonly summary: string;
  /** Names of boolean flags the command accepts (`--config FILE` and `--help` are always accepted). */
  readonly flags: readonly string[];
  /** Names of options that take a value (`--fingerprint SHA256`); none when absent. */
  readonly options?: readonly string[];
  /**
   * Arguments that start with `-` but are no option of the command are positionals, in place: for
   * `mailbox flags ... -\\Seen`, where a flag to remove looks like an option. `--` still ends options.
   */
  readonly dashPositionals?: boolean;
  readonly minPositionals: number;
  readonly maxPositionals: number;
  /**
   * The command only reads: it never creates the data directory or a database, and says which one it
   * looked for when it is missing (exit 1) instead of showing an empty, freshly made one. A function
   * decides per invocation, for a command that both shows and changes (`user policy` without options).
   */
  readonly readOnly?: boolean | ((args: ParsedArgs) => boolean);
  run(ctx: CommandContext, args: ParsedArgs): Promise<number>;
}

export interface OpenedServices {
  readonly directory: Directory;
  /** The IMAP-shaped store: folders, flags and expunge for `tern mailbox`, quota() for `user quota`. */
  readonly store: ImapMailboxStore;
  readonly queue: Queue;
}

export interface CommandContext {
  readonly io: CliIo;
  /** The configuration, loaded on first use (so `--help` never reads a file). */
  config(): Config;
  /** The configuration read afresh (for `serve`'s reloads and `config check`), each warning to onWarning. */
  readConfig(onWarning?: (warning: ConfigError, source: string) => void): Config;
  /** The logger for management commands: warnings and errors only, to stderr. */
  logger(): Logger;
  readonly clock: Clock;
  /** `--verbose` was given: say on stderr what the command used (data directory, SASL mechanism). */
  readonly verbose: boolean;
  /**
   * Append a change made here to the queue database's change log, which the running server reads and
   * logs as `cli.<event>` (e.g. `queue.hold` → `cli.queue.hold`). Directory changes made through
   * withServices are recorded without a call (see cli/change-log.ts); queue commands call this.
   */
  recordChange(event: string, detail: LogFields): Promise<void>;
  /** Open the named services, run fn, close them whatever happens. */
  withServices<K extends keyof OpenedServices, T>(
    names: readonly K[],
    fn: (services: Pick<OpenedServices, K>) => Promise<T>,
  ): Promise<T>;
}

export function usageLine(cmd: Pick<Command, 'name' | 'args'>): string {
  return `tern ${cmd.name}${cmd.args === '' ? '' : ` ${cmd.args}`} [--config FILE]`;
}
