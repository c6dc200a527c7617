// End-to-end harness: runs Tern as a real child process (`tern serve`, the code path of `npm start`) on
// ephemeral loopback ports with a temporary config and data directory, and gives tests what they need
// around it: the bound ports, the CLI (`tern user add`, `mailbox list --json`, `mailbox cat`), polling
// for delivery, the server's JSON log, signals, and cleanup that always happens. Also a raw-socket SMTP
// client for byte-exact dialogues (replies parsed per RFC 5321 §4.2.1) and a runner for the smtplib
// client in test/e2e/py.
// Deliberately NOT here: assertions about Tern's behaviour (the *.test.ts files make those) and any
// in-process server: the point of e2e is a separate process over real sockets. Users are seeded and
// mailboxes polled through the same directory/store APIs the CLI uses (a CLI process per poll would
// cost half a second each); mailboxList/mailboxCat run the real `tern` command where its view matters.
// The child watches a stdin pipe (WATCHDOG): if this test process dies in any way, the pipe closes and
// the server shuts itself down, so no test run leaves a server behind.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/ports.ts';
import { hashPassword } from '../../src/directory/password.ts';
import { openDirectory, openStore } from '../../src/main.ts';
import type { MailboxStore, MessageSummary } from '../../src/store/mailbox-store.ts';
import { spawnTernServe } from '../support/launch.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const PY_CLIENT = join(ROOT, 'test', 'e2e', 'py', 'smtp_client.py');
const PY_POP3_CLIENT = join(ROOT, 'test', 'e2e', 'py', 'pop3_client.py');

/**
 * Preloaded into the server: when its stdin pipe ends (this process exited, crashed or was killed), the
 * server gets SIGTERM and shuts down cleanly. unref() so the watch itself never keeps the server alive.
 */

// ---------------------------------------------------------------------------------------------------
// Child processes and temporary folders: cleaned up by stop(), and on exit whatever a test forgot.

const liveChildren = new Set<ChildProcessWithoutNullStreams>();
const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export interface ProcessResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/** Run a program to completion with `stdin` as its input; never rejects on a non-zero exit. */
export async function runProcess(
  command: string,
  args: readonly string[],
  options: { cwd?: string; stdin?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<ProcessResult> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.on('error', () => undefined); // a program that exits without reading its input
  child.stdin.end(options.stdin ?? '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c: number | null, s: NodeJS.Signals | null) => resolve([c, s]));
    });
    const stdoutBytes = Buffer.concat(out);
    return {
      code,
      signal,
      stdout: stdoutBytes.toString('utf8'),
      stdoutBytes,
      stderr: Buffer.concat(err).toString('utf8'),
    };
  } finally {
    clearTimeout(timer);
    liveChildren.delete(child);
  }
}

/** A loopback TCP port that nothing listens on (bound, then released): connecting to it is refused. */
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Poll `probe` until it returns a value other than undefined; fail after `timeoutMs` with `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------------
// Tern as a child process

type TomlValue = string | number | boolean | readonly string[];

export interface TernOptions {
  /** The server's hostname (default mx.example.test). */
  readonly hostname?: string;
  /** An MTA-STS policy listener (`service = "mta-sts"`, HTTPS) on this address, e.g. "127.0.0.62:443". */
  readonly mtaStsListener?: string;
  /** Also an admin listener (the web page and HTTP API) on a free loopback port: ports.admin; HTTPS with 'https'. */
  readonly admin?: boolean | 'https';
  /** [limits] keys (snake_case) over the harness defaults, e.g. { max_message_bytes: 10000 }. */
  readonly limits?: Readonly<Record<string, TomlValue>>;
  /** [smtp] keys, e.g. { bare_line_endings: 'normalize' }. */
  readonly smtp?: Readonly<Record<string, TomlValue>>;
  /** Users created before the server starts: an address (no password: cannot log in) or with one. */
  readonly users?: readonly (string | { readonly address: string; readonly password: string })[];
  /** [alias, target] pairs created before the server starts. */
  readonly aliases?: readonly (readonly [string, string])[];
  readonly logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** local_domains; default ["example.test"]. */
  readonly localDomains?: readonly string[];
  /** Other tables by name, e.g. { outbound: { port: 2500 } } for `[outbound]`. */
  readonly tables?: Readonly<Record<string, Readonly<Record<string, TomlValue>>>>;
  /**
   * The `imap` listener's allow_plaintext_auth_on_loopback (default true, for peers without TLS);
   * false makes it announce LOGINDISABLED before STARTTLS like any non-loopback client would see.
   */
  readonly imapPlaintextAuthOnLoopback?: boolean;
  /**
   * `[server] workers`; default: the TERN_E2E_WORKERS environment variable when set, else the server's
   * own default ("auto"), so the whole suite can run once with sessions on the main thread and once on
   * session threads.
   */
  readonly workers?: number | 'auto';
  /** `filters = [...]` on the smtp and submission listeners (their filter pipelines). */
  readonly listenerFilters?: { readonly smtp?: readonly string[]; readonly submission?: readonly string[] };
  /** TOML appended as it is (arrays of tables such as [[filters.plugin]] and [[filters.milter]]). */
  readonly extraToml?: string;
  /** `proxy_from = [...]` on the smtp, imap and imaps listeners (PROXY protocol). */
  readonly proxyFrom?: readonly string[];
  /** An LMTP listener on a free loopback port (ports.lmtp), and one on this Unix socket path if given. */
  readonly lmtp?: boolean | { readonly path: string };
  /** A ManageSieve listener on a free loopback port (ports.managesieve), plaintext AUTH on loopback. */
  readonly managesieve?: boolean;
  /** Catcher mode: `catch = true` in the file, or `tern serve --catch`. */
  readonly catchMode?: 'config' | 'flag';
}

/** The session threads a test server gets unless the test says (TERN_E2E_WORKERS: "auto" or a count). */
export function defaultWorkers(): number | 'auto' | undefined {
  const env = process.env['TERN_E2E_WORKERS'];
  if (env === undefined || env === '') return undefined;
  return env === 'auto' ? 'auto' : Number(env);
}

export interface Ports {
  /** Port 25 style: STARTTLS offered. */
  readonly smtp: number;
  /** Port 587 style: STARTTLS offered. */
  readonly submission: number;
  /** Port 465 style: implicit TLS (RFC 8314). */
  readonly submissions: number;
  /** Port 110 style: POP3 with STLS (RFC 2595). Set by startTern; other harnesses may have none. */
  readonly pop3?: number;
  /** Port 995 style: POP3 over implicit TLS. */
  readonly pop3s?: number;
  /** The admin listener (plain HTTP on loopback), when startTern was asked for one. */
  readonly admin?: number;
  /** Port 143 style: IMAP with STARTTLS; LOGIN in cleartext allowed on loopback (for peers without TLS). */
  readonly imap?: number;
  /** Port 993 style: IMAP over implicit TLS. */
  readonly imaps?: number;
  /** LMTP (RFC 2033) on TCP, when startTern was asked for it. */
  readonly lmtp?: number;
  /** ManageSieve (RFC 5804), when startTern was asked for it. */
  readonly managesieve?: number;
}

/** One line of the server's JSON log. */
export type LogLine = Readonly<Record<string, unknown>> & {
  readonly event?: string;
  readonly level?: string;
};

/** The JSON shape of `tern mailbox list --json` (README). */
export interface MailboxEntry {
  readonly id: string;
  readonly uid: number;
  readonly mailbox: string;
  readonly from: string;
  readonly subject: string;
  readonly size: number;
  readonly date: string;
  readonly flags: string[];
  readonly internalDate: string;
}

export interface Tern {
  readonly dir: string;
  readonly configPath: string;
  readonly dataDir: string;
  readonly ports: Ports;
  readonly pid: number;
  /** Whether the server process is still running. */
  alive(): boolean;
  /** The server's JSON log so far, parsed line by line. */
  logs(): LogLine[];
  /** Everything the server wrote to stdout and stderr so far, as text (for failure messages). */
  outputText(): string;
  /** Wait until a log line matches. */
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Run `tern ARGS --config <this config>` as a program. */
  tern(args: readonly string[], stdin?: string): Promise<ProcessResult>;
  addUser(address: string): Promise<void>;
  addAlias(alias: string, target: string): Promise<void>;
  /** `tern mailbox list ADDRESS --json`. */
  /** `tern mailbox list ADDRESS --json` (INBOX), or with `all` every folder (`--all`). */
  mailboxList(address: string, options?: { readonly all?: boolean }): Promise<MailboxEntry[]>;
  /** `tern mailbox cat ADDRESS ID`: the stored bytes. */
  mailboxCat(address: string, id: string): Promise<Buffer>;
  /** Poll the mailbox store until `address` holds at least `count` messages. */
  waitForMessages(address: string, count: number, timeoutMs?: number): Promise<MessageSummary[]>;
  /** The messages stored for `address` right now (through the store API, no CLI process). */
  storedMessages(address: string): Promise<MessageSummary[]>;
  /** One stored message's bytes through the store API (`mailboxCat` is the CLI's view of the same). */
  storedMessage(address: string, id: string): Promise<Buffer>;
  /** Send a signal and wait for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (SIGKILL if it lingers), then remove the temporary folder. Safe to call twice. */
  stop(): Promise<void>;
}

const BASE_LIMITS: Readonly<Record<string, TomlValue>> = {
  // A stopping server cuts idle test connections after this; keeps after() hooks quick.
  shutdown_grace_seconds: 1,
};

function tomlValue(v: TomlValue): string {
  // JSON strings, numbers, booleans and string arrays are valid TOML values as written.
  return JSON.stringify(v);
}

function tomlTable(name: string, entries: Readonly<Record<string, TomlValue>>): string[] {
  const keys = Object.keys(entries);
  if (keys.length === 0) return [];
  return [`[${name}]`, ...keys.map((k) => `${k} = ${tomlValue(entries[k]!)}`)];
}

export function ternConfigToml(dataDir: string, opts: TernOptions): string {
  return [
    `hostname = ${tomlValue(opts.hostname ?? 'mx.example.test')}`,
    `data_dir = ${tomlValue(dataDir)}`,
    `local_domains = ${tomlValue(opts.localDomains ?? ['example.test'])}`,
    ...(opts.catchMode === 'config' ? ['catch = true'] : []),
    '',
    '[[listeners]]',
    'service = "smtp"',
    'address = "127.0.0.1:0"',
    'tls = "starttls"',
    ...(opts.proxyFrom === undefined ? [] : [`proxy_from = ${tomlValue(opts.proxyFrom)}`]),
    ...(opts.listenerFilters?.smtp === undefined
      ? []
      : [`filters = ${tomlValue(opts.listenerFilters.smtp)}`]),
    '',
    '[[listeners]]',
    'service = "submission"',
    'address = "127.0.0.1:0"',
    'tls = "starttls"',
    ...(opts.listenerFilters?.submission === undefined
      ? []
      : [`filters = ${tomlValue(opts.listenerFilters.submission)}`]),
    '',
    '[[listeners]]',
    'service = "submissions"',
    'address = "127.0.0.1:0"',
    'tls = "implicit"',
    '',
    '[[listeners]]',
    'service = "pop3"',
    'address = "127.0.0.1:0"',
    'tls = "starttls"',
    '',
    '[[listeners]]',
    'service = "pop3s"',
    'address = "127.0.0.1:0"',
    'tls = "implicit"',
    '',
    '[[listeners]]',
    'service = "imap"',
    'address = "127.0.0.1:0"',
    'tls = "starttls"',
    `allow_plaintext_auth_on_loopback = ${opts.imapPlaintextAuthOnLoopback ?? true}`,
    ...(opts.proxyFrom === undefined ? [] : [`proxy_from = ${tomlValue(opts.proxyFrom)}`]),
    '',
    '[[listeners]]',
    'service = "imaps"',
    'address = "127.0.0.1:0"',
    'tls = "implicit"',
    ...(opts.proxyFrom === undefined ? [] : [`proxy_from = ${tomlValue(opts.proxyFrom)}`]),
    '',
    ...(opts.mtaStsListener === undefined
      ? []
      : ['[[listeners]]', 'service = "mta-sts"', `address = "${opts.mtaStsListener}"`, '']),
    ...(opts.admin === true || opts.admin === 'https'
      ? [
          '[[listeners]]',
          'service = "admin"',
          'address = "127.0.0.1:0"',
          `tls = "${opts.admin === 'https' ? 'implicit' : 'none'}"`,
          '',
        ]
      : []),
    ...(opts.lmtp === undefined || opts.lmtp === false
      ? []
      : [
          '[[listeners]]',
          'service = "lmtp"',
          'address = "127.0.0.1:0"',
          '',
          ...(opts.lmtp === true
            ? []
            : ['[[listeners]]', 'service = "lmtp"', `path = ${tomlValue(opts.lmtp.path)}`, '']),
        ]),
    ...(opts.managesieve === true
      ? [
          '[[listeners]]',
          'service = "managesieve"',
          'address = "127.0.0.1:0"',
          'allow_plaintext_auth_on_loopback = true',
          '',
        ]
      : []),
    ...tomlTable('limits', { ...BASE_LIMITS, ...opts.limits }),
    ...tomlTable('smtp', opts.smtp ?? {}),
    ...tomlTable('log', { level: opts.logLevel ?? 'info', format: 'json' }),
    ...Object.entries(opts.tables ?? {}).flatMap(([name, entries]) => tomlTable(name, entries)),
    ...workersTable(opts.workers ?? defaultWorkers(), opts.tables?.['server'] !== undefined),
    '',
    opts.extraToml ?? '',
  ].join('\n');
}

function workersTable(workers: number | 'auto' | undefined, given: boolean): string[] {
  return workers === undefined || given ? [] : tomlTable('server', { workers });
}

const LISTENING =
  /^listening (smtp|submission|submissions|pop3|pop3s|imap|imaps|admin|lmtp|managesieve) 127\.0\.0\.1:(\d+) \((starttls|implicit|none)\)$/;

export async function startTern(opts: TernOptions = {}): Promise<Tern> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-e2e-'));
  tempDirs.add(dir);
  const configPath = join(dir, 'tern.toml');
  const dataDir = join(dir, 'data');
  await writeFile(configPath, ternConfigToml(dataDir, opts));
  const config = loadConfig({ path: configPath, cwd: dir });

  if ((opts.users?.length ?? 0) > 0 || (opts.aliases?.length ?? 0) > 0) {
    const directory = await openDirectory(config);
    try {
      for (const u of opts.users ?? []) {
        if (typeof u === 'string') await directory.addUser(u, null);
        // Cheap scrypt parameters: hashing at the default cost would take most of a test's time.
        else await directory.addUser(u.address, await hashPassword(u.password, { ln: 10, r: 8, p: 1 }));
      }
      for (const [alias, target] of opts.aliases ?? []) await directory.addAlias(alias, target);
    } finally {
      await directory.close();
    }
  }

  const child = spawnTernServe(configPath, dir, opts.catchMode === 'flag' ? ['--catch'] : []);
  liveChildren.add(child);
  // The log goes to stdout as JSON lines (src/net/logger.ts), between the `listening` lines; stderr
  // carries fatal errors. Both are kept whole and JSON lines from either are parsed.
  let stdout = '';
  let stderr = '';
  const logLines: LogLine[] = [];
  const lineSplitter = (onText: (d: string) => void): ((d: string) => void) => {
    let partial = '';
    return (d: string) => {
      onText(d);
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          logLines.push(JSON.parse(line) as LogLine);
        } catch {
          // Not a log line after all (a message that happens to start with a brace).
        }
      }
    };
  };
  child.stdout.setEncoding('utf8').on(
    'data',
    lineSplitter((d) => (stdout += d)),
  );
  child.stderr.setEncoding('utf8').on(
    'data',
    lineSplitter((d) => (stderr += d)),
  );
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      exited = { code, signal };
      liveChildren.delete(child);
      resolve(exited);
    });
  });

  let store: MailboxStore | null = null;
  let stopped: Promise<void> | null = null;

  const kill = async (
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (exited) return exited;
    child.kill(signal);
    return exitPromise;
  };

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exitPromise;
        clearTimeout(timer);
      }
      await store?.close();
      await rm(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    })();
    return stopped;
  };

  let ports: Ports;
  try {
    ports = await waitFor(
      'the seven "listening" lines',
      () => {
        if (exited)
          throw new Error(
            `tern serve exited (${JSON.stringify(exited)}) before listening:\n${stdout}${stderr}`,
          );
        const found = new Map<string, number>();
        for (const line of stdout.split('\n')) {
          const m = LISTENING.exec(line);
          if (m) found.set(m[1]!, Number(m[2]));
        }
        const admin = opts.admin === true || opts.admin === 'https';
        const lmtp = opts.lmtp !== undefined && opts.lmtp !== false;
        const sieve = opts.managesieve === true;
        if (found.size < 7 + (admin ? 1 : 0) + (lmtp ? 1 : 0) + (sieve ? 1 : 0)) return undefined;
        return {
          ...(admin ? { admin: found.get('admin')! } : {}),
          ...(lmtp ? { lmtp: found.get('lmtp')! } : {}),
          ...(sieve ? { managesieve: found.get('managesieve')! } : {}),
          smtp: found.get('smtp')!,
          submission: found.get('submission')!,
          submissions: found.get('submissions')!,
          pop3: found.get('pop3')!,
          pop3s: found.get('pop3s')!,
          imap: found.get('imap')!,
          imaps: found.get('imaps')!,
        };
      },
      20_000,
      20,
    );
  } catch (err) {
    await stop();
    throw err;
  }

  const tern = (args: readonly string[], stdin = ''): Promise<ProcessResult> =>
    runProcess(process.execPath, [CLI, ...args, '--config', configPath], { cwd: dir, stdin });

  const must = async (args: readonly string[]): Promise<ProcessResult> => {
    const r = await tern(args);
    if (r.code !== 0) throw new Error(`tern ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r;
  };

  const openedStore = async (): Promise<MailboxStore> => (store ??= await openStore(config, systemClock));
  const storedMessages = async (address: string): Promise<MessageSummary[]> =>
    (await openedStore()).list(address);
  const storedMessage = async (address: string, id: string): Promise<Buffer> => {
    const content = (await openedStore()).read(address, id);
    if (content === null) throw new Error(`no message ${id} for ${address}`);
    const chunks: Uint8Array[] = [];
    for await (const chunk of content) chunks.push(chunk);
    return Buffer.concat(chunks);
  };

  return {
    dir,
    configPath,
    dataDir,
    ports,
    pid: child.pid!,
    alive: () => exited === null,
    logs: () => [...logLines],
    outputText: () => `${stdout}${stderr}`,
    waitForLog: (what, match, timeoutMs = 10_000) =>
      waitFor(`log line: ${what}`, () => logLines.find(match), timeoutMs),
    tern,
    async addUser(address) {
      await must(['user', 'add', address]);
    },
    async addAlias(alias, target) {
      await must(['alias', 'add', alias, target]);
    },
    async mailboxList(address, options = {}) {
      const r = await must([
        'mailbox',
        'list',
        address,
        '--json',
        ...(options.all === true ? ['--all'] : []),
      ]);
      return JSON.parse(r.stdout) as MailboxEntry[];
    },
    async mailboxCat(address, id) {
      return (await must(['mailbox', 'cat', address, id])).stdoutBytes;
    },
    async waitForMessages(address, count, timeoutMs = 10_000) {
      return waitFor(
        `${count} message(s) for ${address}`,
        async () => {
          const list = await storedMessages(address);
          return list.length >= count ? list : undefined;
        },
        timeoutMs,
      );
    },
    storedMessages,
    storedMessage,
    kill,
    stop,
  };
}

// ---------------------------------------------------------------------------------------------------
// A raw SMTP client: exact bytes out, replies parsed as they come.

export interface SmtpReply {
  readonly code: number;
  /** Enhanced status code of the last line (RFC 2034), or '' when there is none. */
  readonly enhanced: string;
  /** Text of each line, code and separator removed. */
  readonly lines: readonly string[];
  /** The reply exactly as received, CRLFs included. */
  readonly raw: string;
}

const REPLY_LINE = /^(\d{3})([ -])(.*)$/s;

export class RawSmtpClient {
  #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #closed = false;
  #wake: (() => void) | null = null;

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  /** Connect (implicit TLS with `tls: true`, certificate not verified) without reading the greeting. */
  static async connect(
    port: number,
    options: { tls?: boolean; host?: string; localAddress?: string } = {},
  ): Promise<RawSmtpClient> {
    const host = options.host ?? '127.0.0.1';
    const from = options.localAddress === undefined ? {} : { localAddress: options.localAddress };
    const socket = options.tls
      ? tlsConnect({ host, port, rejectUnauthorized: false, ...from })
      : netConnect({ host, port, ...from });
    await new Promise<void>((resolve, reject) => {
      socket.once(options.tls ? 'secureConnect' : 'connect', () => {
        socket.off('error', reject);
        resolve();
      });
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    return new RawSmtpClient(socket);
  }

  /** Connect and read the greeting, which must be a 220. */
  static async open(port: number, options: { tls?: boolean } = {}): Promise<RawSmtpClient> {
    const client = await RawSmtpClient.connect(port, options);
    const greeting = await client.readReply();
    if (greeting.code !== 220) throw new Error(`greeting was not 220: ${greeting.raw}`);
    return client;
  }

  #attach(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('close', this.#onClose);
    socket.on('end', this.#onClose);
    socket.on('error', this.#onClose);
  }

  #detach(socket: Socket): void {
    socket.off('data', this.#onData);
    socket.off('close', this.#onClose);
    socket.off('end', this.#onClose);
    socket.off('error', this.#onClose);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    this.#notify();
  };

  readonly #onClose = (): void => {
    this.#closed = true;
    this.#notify();
  };

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Resolves on new data or close, or after `ms`; returns false on timeout. */
  async #waitForActivity(ms: number): Promise<boolean> {
    const ac = new AbortController();
    const activity = new Promise<boolean>((resolve) => (this.#wake = () => resolve(true)));
    const timeout = sleep(ms, false, { signal: ac.signal }).catch(() => false);
    const result = await Promise.race([activity, timeout]);
    ac.abort();
    this.#wake = null;
    return result;
  }

  /** Whether the server has closed (or reset) the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes received and not yet consumed as replies. */
  get pending(): Buffer {
    return this.#buffer;
  }

  async send(data: string | Uint8Array): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#socket.write(data, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Read one complete reply (all its lines); fails on timeout, on close, or on a malformed line. */
  async readReply(timeoutMs = 5000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = this.#takeReply();
      if (reply) return reply;
      if (this.#closed) {
        throw new Error(
          `connection closed before a complete reply; unread: ${JSON.stringify(this.#buffer.toString('latin1'))}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `no complete reply within ${timeoutMs} ms; unread: ${JSON.stringify(this.#buffer.toString('latin1'))}`,
        );
      }
      await this.#waitForActivity(left);
    }
  }

  #takeReply(): SmtpReply | null {
    const lines: string[] = [];
    let offset = 0;
    for (;;) {
      const end = this.#buffer.indexOf('\r\n', offset);
      if (end < 0) return null;
      const line = this.#buffer.subarray(offset, end).toString('utf8');
      offset = end + 2;
      const m = REPLY_LINE.exec(line);
      if (!m) throw new Error(`malformed reply line: ${JSON.stringify(line)}`);
      lines.push(line);
      if (m[2] === ' ') {
        const raw = this.#buffer.subarray(0, offset).toString('utf8');
        this.#buffer = this.#buffer.subarray(offset);
        const texts = lines.map((l) => l.slice(4));
        const code = Number(m[1]);
        const enhanced = /^([245]\.\d{1,3}\.\d{1,3}) /.exec(texts.at(-1)! + ' ')?.[1] ?? '';
        for (const l of lines) {
          if (l.slice(0, 3) !== m[1])
            throw new Error(`reply lines with different codes: ${JSON.stringify(raw)}`);
        }
        return { code, enhanced, lines: texts, raw };
      }
    }
  }

  /** Read `n` replies in order. */
  async readReplies(n: number, timeoutMs = 5000): Promise<SmtpReply[]> {
    const out: SmtpReply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.readReply(timeoutMs));
    return out;
  }

  /** Send one command line (CRLF added) and read its reply. */
  async command(line: string, timeoutMs = 5000): Promise<SmtpReply> {
    await this.send(`${line}\r\n`);
    return this.readReply(timeoutMs);
  }

  /** Read every reply until the server closes the connection (or `timeoutMs` passes: then it fails). */
  async readUntilClose(timeoutMs = 5000): Promise<SmtpReply[]> {
    const deadline = Date.now() + timeoutMs;
    const out: SmtpReply[] = [];
    for (;;) {
      let reply = this.#takeReply();
      while (reply) {
        out.push(reply);
        reply = this.#takeReply();
      }
      if (this.#closed) {
        if (this.#buffer.length > 0)
          throw new Error(`trailing bytes at close: ${JSON.stringify(this.#buffer.toString('latin1'))}`);
        return out;
      }
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.#waitForActivity(left))) {
        throw new Error(
          `connection still open after ${timeoutMs} ms; replies so far: ${JSON.stringify(out.map((r) => r.raw))}`,
        );
      }
    }
  }

  /** Wait `ms` and return whatever arrived meanwhile (tests assert this is empty). */
  async drain(ms: number): Promise<Buffer> {
    const deadline = Date.now() + ms;
    while (!this.#closed && Date.now() < deadline) await this.#waitForActivity(deadline - Date.now());
    const got = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return got;
  }

  /** Wait until the server closes the connection; false when it is still open after `timeoutMs`. */
  async waitForClose(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.#waitForActivity(left);
    }
    return true;
  }

  /**
   * TLS handshake over the current connection (after a 220 to STARTTLS). Bytes already received in
   * plaintext stay in `pending` for the test to inspect; they are not fed into TLS.
   */
  async startTls(): Promise<{ protocol: string | null }> {
    const raw = this.#socket;
    this.#detach(raw);
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'mx.example.test' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => {
        secure.off('error', reject);
        resolve();
      });
      secure.once('error', reject);
    });
    this.#socket = secure;
    this.#attach(secure);
    return { protocol: secure.getProtocol() };
  }

  close(): void {
    this.#socket.destroy();
    this.#closed = true;
  }
}

/** EHLO and return the extension keywords (upper case), asserting a 250. */
export async function ehlo(client: RawSmtpClient, name = 'client.example'): Promise<string[]> {
  const reply = await client.command(`EHLO ${name}`);
  if (reply.code !== 250) throw new Error(`EHLO failed: ${reply.raw}`);
  return reply.lines.slice(1).map((l) => l.toUpperCase());
}

// ---------------------------------------------------------------------------------------------------
// smtplib (test/e2e/py/smtp_client.py)

export interface SmtplibRequest {
  readonly port: number;
  readonly mode: 'plain' | 'starttls' | 'ssl';
  readonly ehlo?: string;
  /** AUTH (smtplib's login(): PLAIN or LOGIN) after EHLO, and after STARTTLS when there is one. */
  readonly login?: readonly [user: string, password: string];
  readonly action: 'sendmail' | 'send_message' | 'steps';
  readonly from?: string;
  readonly to?: readonly string[];
  /** sendmail: the message bytes. */
  readonly raw?: Buffer | string;
  readonly message?: { headers: readonly (readonly [string, string])[]; body: string; cte?: string };
  readonly mail_options?: readonly string[];
  readonly rcpt_options?: readonly string[];
  /** steps: ['mail', addr, opts?], ['rcpt', addr, opts?], ['data', Buffer|string], ['cmd', line]. */
  readonly steps?: readonly (readonly unknown[])[];
}

export interface SmtplibResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly code?: number;
  readonly text?: string;
  /** Recipients refused: address → [code, text]. */
  readonly refused: Readonly<Record<string, [number, string]>>;
  readonly steps: readonly [number, string][];
  readonly features: Readonly<Record<string, string>>;
  readonly tls: string | null;
}

let pythonChecked: boolean | null = null;

/** Whether python3 can run here (it is expected on every machine; tests skip loudly otherwise). */
export function havePython(): boolean {
  pythonChecked ??= spawnSync('python3', ['-c', 'import smtplib, ssl'], { stdio: 'ignore' }).status === 0;
  return pythonChecked;
}

export async function smtplib(req: SmtplibRequest): Promise<SmtplibResult> {
  const wire: Record<string, unknown> = { ...req, host: '127.0.0.1' };
  if (req.raw !== undefined) {
    wire['raw_b64'] = Buffer.from(req.raw).toString('base64');
    delete wire['raw'];
  }
  if (req.steps) {
    wire['steps'] = req.steps.map((s) =>
      s[0] === 'data' ? ['data_b64', Buffer.from(s[1] as Buffer | string).toString('base64')] : s,
    );
  }
  const r = await runProcess('python3', [PY_CLIENT], { stdin: JSON.stringify(wire) });
  if (r.code !== 0) throw new Error(`smtp_client.py exited ${r.code}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as SmtplibResult;
  } catch {
    throw new Error(`smtp_client.py wrote no JSON: ${r.stdout} ${r.stderr}`);
  }
}

/** A poplib session: connect (plain, STLS or implicit TLS), then run the steps in order (pop3_client.py). */
export interface PoplibRequest {
  readonly port: number;
  readonly mode: 'plain' | 'stls' | 'ssl';
  readonly timeout?: number;
  readonly steps: readonly (readonly (string | number)[])[];
}

export interface PoplibAnswer {
  readonly ok: boolean;
  readonly error?: string;
  readonly resp?: string;
  readonly lines?: readonly string[];
  /** retr/top: the lines poplib returned (dot-unstuffed), each followed by CRLF, base64. */
  readonly b64?: string;
  readonly count?: number;
  readonly size?: number;
  readonly capa?: Readonly<Record<string, readonly string[]>>;
}

export interface PoplibResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly welcome?: string;
  readonly tls?: string | null;
  readonly steps: readonly PoplibAnswer[];
}

export async function poplib(req: PoplibRequest): Promise<PoplibResult> {
  const r = await runProcess('python3', [PY_POP3_CLIENT], {
    stdin: JSON.stringify({ ...req, host: '127.0.0.1' }),
  });
  if (r.code !== 0) throw new Error(`pop3_client.py exited ${r.code}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as PoplibResult;
  } catch {
    throw new Error(`pop3_client.py wrote no JSON: ${r.stdout} ${r.stderr}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// What Tern puts on top of a delivered message

/** Split off the trace block Tern adds: Return-Path, Delivered-To, Received (folded). */
export function splitTrace(stored: Buffer): {
  returnPath: string;
  deliveredTo: string;
  received: string;
  rest: Buffer;
} {
  const text = stored.toString('latin1');
  const m =
    /^Return-Path: <([^>\r\n]*)>\r\nDelivered-To: ([^\r\n]*)\r\n(Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n)/.exec(
      text,
    );
  if (!m)
    throw new Error(
      `no Return-Path/Delivered-To/Received block on top of: ${JSON.stringify(text.slice(0, 400))}`,
    );
  return {
    returnPath: m[1]!,
    deliveredTo: m[2]!,
    received: m[3]!,
    rest: stored.subarray(Buffer.byteLength(m[0], 'latin1')),
  };
}

/** The queue id in a "250 2.0.0 OK: queued as ID" reply text. */
export function queueIdOf(text: string): string {
  const m = /queued as (\S+)/.exec(text);
  if (!m) throw new Error(`no queue id in ${JSON.stringify(text)}`);
  return m[1]!;
}

// ---------------------------------------------------------------------------------------------------
// A TCP proxy that records what the client wrote, chunk by chunk (to see what it pipelined).

export interface RecordingProxy {
  readonly port: number;
  /** Client-to-server data as it arrived, one entry per received chunk. */
  readonly clientChunks: Buffer[];
  close(): Promise<void>;
}

export async function startRecordingProxy(targetPort: number): Promise<RecordingProxy> {
  const clientChunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = netConnect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => {
      clientChunks.push(d);
      upstream.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    clientChunks,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
