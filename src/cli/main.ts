// The `tern` command: argument parsing, dispatch to one subcommand, and turning every failure into
// one readable line and an exit status (0 ok, 1 failed, 2 bad usage, 130 cancelled). No stack traces
// unless TERN_DEBUG is set. `run()` takes its streams, cwd and environment as arguments so tests drive
// it in-process; the file runs it only when executed as the program (directly or via bin/tern.mjs).
// Deliberately NOT here: constructing services (src/main.ts) or what the commands do (commands/).

import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParseArgsOptionsConfig } from 'node:util';
import { parseArgs } from 'node:util';
import type { Config } from '../config/config.ts';
import { ConfigLoadError, loadConfig } from '../config/load.ts';
import type { ConfigError } from '../config/load.ts';
import { assertNever } from '../core/assert-never.ts';
import type { LogFields, Logger } from '../core/ports.ts';
import { systemClock } from '../core/ports.ts';
import { StartupError, closeSharedPools, dataPaths, openDirectory, openQueue, openStore } from '../main.ts';
import { TokenVerifierConfigError } from '../net/token-verifier.ts';
import { DirectoryError } from '../directory/sqlite-directory.ts';
import { createLogger } from '../net/logger.ts';
import { TlsMaterialError } from '../net/tls.ts';
import type { Queue } from '../queue/queue.ts';
import { recordingDirectory } from './change-log.ts';
import { existingDataDir, serviceFile } from './data-dir.ts';
import type { Command, CommandContext, OpenedServices, ParsedArgs } from './command.ts';
import { usageLine } from './command.ts';
import { adminCommands } from './commands/admin.ts';
import { tlsReportsCommands } from './commands/tls-reports.ts';
import { dmarcCommands } from './commands/dmarc.ts';
import { OpError } from '../ops/errors.ts';
import { aliasCommands } from './commands/alias.ts';
import { configCheck } from './commands/config.ts';
import { dkimCommands } from './commands/dkim.ts';
import { dnsCommands } from './commands/dns.ts';
import { doctorCommands } from './commands/doctor.ts';
import { migrate } from './commands/migrate.ts';
import { migrateCopy } from './commands/migrate-copy.ts';
import { exportCommand, importCommand } from './commands/export.ts';
import { mailboxCommands } from './commands/mailbox.ts';
import { mailboxTransferCommands } from './commands/mailbox-transfer.ts';
import { queueCommands } from './commands/queue.ts';
import { reload } from './commands/reload.ts';
import { send } from './commands/send.ts';
import { sendmail } from './commands/sendmail.ts';
import { serve } from './commands/serve.ts';
import { trace } from './commands/trace.ts';
import { userCommands } from './commands/user.ts';
import { version } from './commands/version.ts';
import type { CliIo } from './io.ts';
import { CliError, UsageError, writeLine } from './io.ts';

export type { CliIo } from './io.ts';

export const COMMANDS: readonly Command[] = [
  serve,
  reload,
  ...userCommands,
  ...aliasCommands,
  ...mailboxCommands,
  ...mailboxTransferCommands,
  ...queueCommands,
  trace,
  ...dkimCommands,
  ...dnsCommands,
  ...doctorCommands,
  ...adminCommands,
  ...tlsReportsCommands,
  ...dmarcCommands,
  configCheck,
  send,
  sendmail,
  exportCommand,
  importCommand,
  migrate,
  migrateCopy,
  version,
];

/** The widest command line that keeps its summary beside it in `tern help`. */
const MAX_USAGE_COLUMN = 52;

export function usageText(commands: readonly Command[] = COMMANDS): string {
  const rows = commands.map(
    (c) => [`tern ${c.name}${c.args === '' ? '' : ` ${c.args}`}`, c.summary] as const,
  );
  // A command with many options would push every summary far right: its summary goes below it instead.
  const fits = rows.filter(([left]) => left.length <= MAX_USAGE_COLUMN);
  const width = Math.max('tern help'.length, ...fits.map(([left]) => left.length));
  const row = (left: string, right: string): string =>
    left.length <= width
      ? `  ${left.padEnd(width)}  ${right}`
      : `  ${left}\n  ${' '.repeat(width)}  ${right}`;
  return [
    'Usage: tern <command> [arguments] [--config FILE]',
    '',
    'Tern is a mail server: SMTP in, a durable queue, local mailboxes and remote delivery.',
    '',
    'Commands:',
    ...rows.map(([left, right]) => row(left, right)),
    row('tern help', 'show this help (also: tern <command> --help)'),
    '',
    'Every command takes --config FILE (or the TERN_CONFIG environment variable); without one, Tern reads',
    './tern.toml when it exists, else its built-in defaults: data in ./data, local domain localhost,',
    'SMTP on 127.0.0.1:2525. --verbose says on stderr which data directory a command used.',
    'Exit status: 0 ok, 1 failed (one line on stderr says why), 2 bad usage.',
    'See README.md and docs/configuration.md.',
  ].join('\n');
}

function commandHelp(cmd: Command): string {
  return `Usage: ${usageLine(cmd)}\n\n${cmd.summary}`;
}

/** Options every command accepts; `--config` may also come before the command words. */
const COMMON_OPTIONS: ParseArgsOptionsConfig = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  verbose: { type: 'boolean', short: 'v' },
};

/** Options that may come before the command words (`tern --verbose queue list`). */
const LEADING_FLAGS = new Set(['--help', '-h', '--verbose', '-v', '--version', '-V']);

/** Leading options (`tern --config x user list`): moved after the command words for parseArgs. */
function takeLeadingOptions(argv: readonly string[]): { leading: string[]; rest: string[] } {
  const leading: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config' || arg === '-c') {
      leading.push(arg, ...argv.slice(i + 1, i + 2));
      i++;
    } else if (arg.startsWith('--config=') || LEADING_FLAGS.has(arg)) {
      leading.push(arg);
    } else break;
  }
  return { leading, rest: argv.slice(i) };
}

type Resolved =
  | { kind: 'command'; command: Command; argv: string[] }
  | { kind: 'help'; text: string }
  | { kind: 'usage-error'; message: string; text: string };

function resolveCommand(argv: readonly string[]): Resolved {
  const { leading: leadingAll, rest } = takeLeadingOptions(argv);
  const leading = leadingAll.filter((a) => a !== '--version' && a !== '-V');
  const wantsHelp = leading.includes('--help') || leading.includes('-h');
  // `tern --version` is `tern version` (git, node and most tools answer both).
  if (leading.length !== leadingAll.length && !wantsHelp) {
    return { kind: 'command', command: version, argv: [...leading, ...rest] };
  }
  const [first, second] = rest;
  if (first === undefined) {
    return wantsHelp
      ? { kind: 'help', text: usageText() }
      : { kind: 'usage-error', message: '', text: usageText() };
  }
  if (first === 'help') {
    // `tern help user` narrows to the group, `tern help user add` to one command.
    const topic = rest.slice(1).join(' ');
    const matches = COMMANDS.filter(
      (c) => topic === '' || c.name === topic || c.name.startsWith(`${topic} `),
    );
    if (matches.length === 1) return { kind: 'help', text: commandHelp(matches[0]!) };
    if (matches.length > 1) return { kind: 'help', text: usageText(matches) };
    return { kind: 'usage-error', message: `unknown command '${topic}'`, text: usageText() };
  }
  // `tern migrate sqlite-to-postgres` before `tern migrate`: a two-word command wins over a one-word one.
  const pair = second === undefined ? undefined : COMMANDS.find((c) => c.name === `${first} ${second}`);
  if (pair) return { kind: 'command', command: pair, argv: [...leading, ...rest.slice(2)] };
  const exact = COMMANDS.find((c) => c.name === first);
  if (exact) return { kind: 'command', command: exact, argv: [...leading, ...rest.slice(1)] };
  const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `));
  if (group.length === 0)
    return { kind: 'usage-error', message: `unknown command '${first}'`, text: usageText() };
  if (second === undefined || second.startsWith('-')) {
    const groupHelp = wantsHelp || second === '--help' || second === '-h';
    if (groupHelp) return { kind: 'help', text: usageText(group) };
    return { kind: 'usage-error', message: `'${first}' needs a subcommand`, text: usageText(group) };
  }
  const command = group.find((c) => c.name === `${first} ${second}`);
  if (!command) {
    return { kind: 'usage-error', message: `unknown command '${first} ${second}'`, text: usageText(group) };
  }
  return { kind: 'command', command, argv: [...leading, ...rest.slice(2)] };
}

/**
 * parseArgs' own messages are long and speak of its syntax ("To specify a positional argument starting
 * with a '-', place it at the end..."); say in a few words what is wrong with which option instead.
 */
function describeParseError(err: unknown, argv: readonly string[], options: ParseArgsOptionsConfig): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const quoted = /'(-[^' ]*)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted !== undefined) return `unknown option '${quoted}'`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && quoted !== undefined) {
    const name = quoted.replace(/^-+/, '');
    const long = Object.entries(options).find(([n, o]) => n === name || o.short === name)?.[0] ?? name;
    if (options[long]?.type === 'boolean') return `option --${long} takes no value`;
    return `option --${long} needs a value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return `unexpected argument '${argv.find((a) => !a.startsWith('-')) ?? ''}'`;
  }
  return message;
}

/**
 * For a command with dashPositionals: options (with their values) first, then `--` and every other
 * argument in its order, so `+\\Seen -\\Deleted` reach the command as positionals. An argument is an
 * option when it names one (`--json`, `--folder=X`, `-h`); a short option takes no cluster here.
 */
function dashArgsLast(argv: readonly string[], options: ParseArgsOptionsConfig): string[] {
  const byName = new Map<string, { type: 'string' | 'boolean' }>();
  for (const [name, o] of Object.entries(options)) {
    byName.set(`--${name}`, o);
    if (o.short !== undefined) byName.set(`-${o.short}`, o);
  }
  const opts: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    const option = byName.get(arg.startsWith('--') ? arg.split('=', 1)[0]! : arg);
    if (option === undefined) rest.push(arg);
    else {
      opts.push(arg);
      if (option.type === 'string' && !arg.includes('=') && i + 1 < argv.length) opts.push(argv[++i]!);
    }
  }
  return [...opts, '--', ...rest];
}

function parseCommandArgs(
  command: Command,
  argv: string[],
): ParsedArgs & { config: string | null; help: boolean; verbose: boolean } {
  const options: ParseArgsOptionsConfig = { ...COMMON_OPTIONS };
  for (const flag of command.flags) options[flag] = { type: 'boolean' };
  for (const option of command.options ?? []) options[option] = { type: 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    const args = command.dashPositionals === true ? dashArgsLast(argv, options) : argv;
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(describeParseError(err, argv, options), usageLine(command));
  }
  const flags = new Set<string>();
  for (const flag of command.flags) if (parsed.values[flag] === true) flags.add(flag);
  const values = new Map<string, string>();
  for (const option of command.options ?? []) {
    const value = parsed.values[option];
    if (typeof value === 'string') values.set(option, value);
  }
  const config = parsed.values['config'];
  const help = parsed.values['help'] === true;
  const verbose = parsed.values['verbose'] === true;
  const positionals = parsed.positionals;
  if (!help) {
    if (positionals.length < command.minPositionals) {
      const names = command.args.split(' ').filter((w) => /^[A-Z]+$/.test(w));
      const missing = names.slice(positionals.length, command.minPositionals).join(' ');
      throw new UsageError(`missing ${missing}`, usageLine(command));
    }
    if (positionals.length > command.maxPositionals) {
      throw new UsageError(
        `unexpected argument '${positionals[command.maxPositionals]!}'`,
        usageLine(command),
      );
    }
  }
  return {
    positionals,
    flags,
    options: values,
    config: typeof config === 'string' ? config : null,
    help,
    verbose,
  };
}

interface ContextOptions {
  readonly configPath: string | null;
  readonly verbose: boolean;
  /** The command only reads (Command.readOnly): missing data is reported, never created. */
  readonly readOnly: boolean;
}

function makeContext(io: CliIo, options: ContextOptions): CommandContext {
  let config: Config | null = null;
  let logger: Logger | null = null;
  const readConfig = (onWarning?: (warning: ConfigError, source: string) => void): Config => {
    const loaded = loadConfig({ path: options.configPath, cwd: io.cwd, ...(onWarning ? { onWarning } : {}) });
    // Relative data_dir is relative to where tern runs (io.cwd), not to this process's cwd in tests.
    return { ...loaded, dataDir: resolve(io.cwd, loaded.dataDir) };
  };
  const getConfig = (): Config => {
    if (config === null) {
      config = readConfig();
      if (options.verbose) {
        io.stderr.write(
          `tern: data directory ${dataPaths(config).root} (config ${config.source ?? 'built-in defaults'})\n`,
        );
      }
    }
    return config;
  };
  const getLogger = (): Logger => {
    // Management commands stay quiet: only warnings and errors, to stderr, never mixed with output.
    logger ??= createLogger({ level: 'warn', format: 'json', destination: io.stderr });
    return logger;
  };
  /** The queue a running withServices opened, reused for the change log. */
  let openedQueue: Queue | null = null;
  const recordChange = async (event: string, detail: LogFields): Promise<void> => {
    try {
      if (openedQueue !== null) return await openedQueue.recordChange(event, detail);
      const queue = await openQueue(getConfig(), systemClock, getLogger());
      try {
        await queue.recordChange(event, detail);
      } finally {
        await queue.close();
        await closeSharedPools();
      }
    } catch (err) {
      // The change itself is made; only the server's log line about it is lost. Say so, do not fail.
      await writeLine(
        io.stderr,
        `tern: warning: ${event} was not recorded for the server's log: ${describeError(err)}`,
      );
    }
  };
  return {
    io,
    config: getConfig,
    readConfig,
    logger: getLogger,
    clock: systemClock,
    verbose: options.verbose,
    recordChange,
    async withServices(names, fn) {
      const opened: Partial<Record<keyof OpenedServices, { close(): Promise<void> }>> = {};
      try {
        const cfg = getConfig();
        // Shared PostgreSQL state ([storage] backend = "postgres") has no files here to look for.
        if (options.readOnly && cfg.storage.backend === 'sqlite') {
          existingDataDir(cfg);
          for (const name of names) {
            const file = serviceFile(cfg, name);
            if (!existsSync(file.path))
              throw new CliError(`no ${file.what} at ${file.path}: nothing to read`);
          }
        }
        const services: { -readonly [K in keyof OpenedServices]?: OpenedServices[K] } = {};
        for (const name of names) {
          switch (name) {
            case 'directory': {
              const directory = (opened.directory = await openDirectory(cfg));
              services.directory = options.readOnly
                ? directory
                : recordingDirectory(directory, (c) => recordChange(c.event, c.detail));
              break;
            }
            case 'store':
              services.store = opened.store = await openStore(cfg, systemClock);
              break;
            case 'queue':
              services.queue = opened.queue = openedQueue = await openQueue(cfg, systemClock, getLogger());
              break;
            default:
              assertNever(name);
          }
        }
        return await fn(services as OpenedServices);
      } finally {
        openedQueue = null;
        for (const service of Object.values(opened).reverse()) await service.close();
        // The PostgreSQL pool they shared (none with SQLite): a command's process must be free to exit.
        await closeSharedPools();
      }
    },
  };
}

interface NodeSystemError extends Error {
  code?: string;
  syscall?: string;
  address?: string;
  port?: number;
}

/** Errors whose message was written for the operator: shown as is, never with a stack. */
function isOperatorError(err: unknown): err is Error {
  return (
    err instanceof CliError ||
    err instanceof OpError ||
    err instanceof ConfigLoadError ||
    err instanceof StartupError ||
    err instanceof DirectoryError ||
    err instanceof TlsMaterialError ||
    err instanceof TokenVerifierConfigError
  );
}

/** One line a person understands for anything a command threw. */
export function describeError(err: unknown): string {
  if (isOperatorError(err)) return err.message;
  if (err instanceof Error) {
    const sys = err as NodeSystemError;
    if (sys.syscall === 'listen' && sys.address !== undefined) {
      const where = `${sys.address}:${sys.port ?? '?'}`;
      if (sys.code === 'EADDRINUSE') return `cannot listen on ${where}: address already in use`;
      if (sys.code === 'EACCES')
        return `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`;
      if (sys.code === 'EADDRNOTAVAIL')
        return `cannot listen on ${where}: address not available on this host`;
      return `cannot listen on ${where}: ${sys.code ?? err.message}`;
    }
    return err.message;
  }
  return String(err);
}

/** Run `tern` with argv (without node and script); resolves with the exit status. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const resolved = resolveCommand(argv);
  switch (resolved.kind) {
    case 'help':
      await writeLine(io.stdout, resolved.text);
      return 0;
    case 'usage-error':
      if (resolved.message !== '') await writeLine(io.stderr, `tern: ${resolved.message}`);
      await writeLine(io.stderr, resolved.text);
      return 2;
    case 'command':
      break;
  }
  const { command } = resolved;
  try {
    const args = parseCommandArgs(command, resolved.argv);
    if (args.help) {
      await writeLine(io.stdout, commandHelp(command));
      return 0;
    }
    const ctx = makeContext(io, {
      configPath: args.config ?? io.env['TERN_CONFIG'] ?? null,
      verbose: args.verbose,
      readOnly: typeof command.readOnly === 'function' ? command.readOnly(args) : command.readOnly === true,
    });
    return await command.run(ctx, args);
  } catch (err) {
    await writeLine(io.stderr, `tern: ${describeError(err)}`);
    if (err instanceof UsageError && err.usage !== null) {
      await writeLine(io.stderr, `usage: ${err.usage}\nrun 'tern help' for all commands`);
    }
    if (!isOperatorError(err) && io.env['TERN_DEBUG']) {
      await writeLine(io.stderr, err instanceof Error ? (err.stack ?? err.message) : String(err));
    }
    return err instanceof CliError ? err.exitCode : 1;
  }
}

/** True when this process is the `tern` program: run directly, or through bin/tern.mjs (npx tern). */
function isProgram(): boolean {
  if (import.meta.main) return true;
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(new URL('../../bin/tern.mjs', import.meta.url));
  } catch {
    return false;
  }
}

if (isProgram()) {
  // `tern mailbox list | head` closes the pipe early: that is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeSystemError) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const code = await run(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    cwd: process.cwd(),
    env: process.env,
  });
  // Exit explicitly once output is flushed: a handle a service forgot to unref must not keep a
  // finished `tern user list` (or a stopped server) alive.
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}
