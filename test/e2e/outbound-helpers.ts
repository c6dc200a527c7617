// What the outbound end-to-end tests (test/e2e/outbound-*.test.ts) need beyond harness.ts: a Tern child
// process whose config carries [dns], [outbound] (relay, tls_policy, transports, timeouts, limits) and
// [queue], and that can be stopped and started again on the same data directory (restart with a full
// queue); receiving servers that are not ours (nodemailer's smtp-server with per-attempt replies, a
// Python stdlib/aiosmtpd peer); certificates (a CA and a server certificate it signed, via selfsigned);
// and a DSN reader built on Python's `email` package, so that RFC 3464 structure is judged by a parser
// that is not Tern's.
// Deliberately NOT here: assertions about Tern's behaviour (the outbound-*.test.ts files make those), and
// anything harness.ts already does (process runner, polling, smtplib client, types are reused).
// harness.ts's startTern() writes a fixed config in a fresh folder each time, hence startOutboundTern().

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from 'selfsigned';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerAddress, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { loadConfig } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/ports.ts';
import { hashPassword } from '../../src/directory/password.ts';
import { openDirectory, openStore } from '../../src/main.ts';
import type { MailboxStore, MessageSummary } from '../../src/store/mailbox-store.ts';
import type { LogLine, Ports, ProcessResult, SmtplibRequest, SmtplibResult } from './harness.ts';
import { CLI, defaultWorkers, runProcess, smtplib, waitFor } from './harness.ts';
import { spawnTernServe } from '../support/launch.ts';

/** Same watchdog as harness.ts: the server stops itself when this test process goes away. */

const liveChildren = new Set<ChildProcessWithoutNullStreams>();
const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// Config

export type TomlValue = string | number | boolean | readonly string[];
export type TomlTable = Readonly<Record<string, TomlValue>>;

export interface OutboundTernOptions {
  /** The test DNS server's endpoint ("127.0.0.1:PORT"): the only resolver Tern may ask. */
  readonly dns: string;
  /** [outbound] keys over the defaults below (short timeouts), e.g. { port: 2525, relay: '[127.0.0.1]:9' }. */
  readonly outbound?: TomlTable;
  /** [outbound.tls_policy]: domain → none | may | encrypt | verify | dane | dane-only. */
  readonly tlsPolicy?: Readonly<Record<string, string>>;
  /** [dns] keys over the test ones, e.g. { dnssec: true }. */
  readonly dnsTable?: TomlTable;
  /** One [[outbound.transport]] block each. */
  readonly transports?: readonly TomlTable[];
  /** [queue] keys over the defaults below (retries after 1 s, then 2 s). */
  readonly queue?: TomlTable;
  /** [smtp] keys; trusted_networks defaults to loopback, so port 25 relays for the tests. */
  readonly smtp?: TomlTable;
  /** local_domains; default ["example.test"]. */
  readonly localDomains?: readonly string[];
  /** Created before the server starts; with a password the user can log in on submission. */
  readonly users?: readonly (string | { readonly address: string; readonly password: string })[];
  /** [alias, target] pairs created before the server starts (a target may be remote: a forward). */
  readonly aliases?: readonly (readonly [string, string])[];
  readonly logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
}

/** Timeouts short enough that a dead peer costs a test seconds, not minutes (loads with warnings). */
const BASE_OUTBOUND: TomlTable = {
  connect_timeout_seconds: 3,
  greeting_timeout_seconds: 5,
  command_timeout_seconds: 5,
  data_init_timeout_seconds: 5,
  data_block_timeout_seconds: 5,
  data_done_timeout_seconds: 5,
};
const BASE_QUEUE: TomlTable = { retry_min_seconds: 1, retry_max_seconds: 2 };
const BASE_SMTP: TomlTable = { trusted_networks: ['127.0.0.0/8'] };
const BASE_LIMITS: TomlTable = { shutdown_grace_seconds: 1 };

function tomlValue(v: TomlValue): string {
  // JSON strings, numbers, booleans and string arrays are valid TOML values as written.
  return JSON.stringify(v);
}

function tomlTable(header: string, entries: TomlTable, always = false): string[] {
  const keys = Object.keys(entries);
  if (keys.length === 0 && !always) return [];
  return [header, ...keys.map((k) => `${tomlValue(k)} = ${tomlValue(entries[k]!)}`), ''];
}

export function outboundConfigToml(dataDir: string, opts: OutboundTernOptions): string {
  const lines = [
    'hostname = "mx.example.test"',
    `data_dir = ${tomlValue(dataDir)}`,
    `local_domains = ${tomlValue(opts.localDomains ?? ['example.test'])}`,
    '',
  ];
  for (const [service, tls] of [
    ['smtp', 'starttls'],
    ['submission', 'starttls'],
    ['submissions', 'implicit'],
  ] as const) {
    lines.push(...tomlTable('[[listeners]]', { service, tls, address: '127.0.0.1:0' }));
  }
  lines.push(
    ...tomlTable('[limits]', BASE_LIMITS),
    ...tomlTable('[smtp]', { ...BASE_SMTP, ...opts.smtp }),
    // No AUTH failure delay: a test's login either works or fails at once.
    ...tomlTable('[auth]', { failure_delay_seconds: 0 }),
    ...tomlTable('[dns]', { servers: [opts.dns], timeout_seconds: 1, attempts: 2, ...opts.dnsTable }),
    ...tomlTable('[outbound]', { ...BASE_OUTBOUND, ...opts.outbound }),
    ...tomlTable('[outbound.tls_policy]', opts.tlsPolicy ?? {}),
  );
  for (const t of opts.transports ?? []) lines.push(...tomlTable('[[outbound.transport]]', t));
  lines.push(
    ...tomlTable('[queue]', { ...BASE_QUEUE, ...opts.queue }),
    ...tomlTable('[log]', { level: opts.logLevel ?? 'info', format: 'json' }),
  );
  const workers = defaultWorkers();
  if (workers !== undefined) lines.push(...tomlTable('[server]', { workers }));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Tern with outbound delivery, restartable

/** The JSON shape of `tern queue list --json` (src/cli/commands/queue.ts). */
export interface QueuedJson {
  readonly id: string;
  readonly sender: string;
  readonly size: number;
  readonly arrival: string;
  readonly held: boolean;
  readonly recipients: readonly {
    readonly address: string;
    readonly status: string;
    readonly attempts: number;
    readonly nextAttempt: string;
    readonly lastReply: string | null;
    readonly delayWarned: boolean;
    readonly bounceRequested: boolean;
  }[];
}

export interface OutboundTern {
  readonly dir: string;
  readonly configPath: string;
  readonly dataDir: string;
  /** The ports of the running process (new ones after restart()). */
  readonly ports: Ports;
  alive(): boolean;
  /** The JSON log of every process started on this folder so far. */
  logs(): LogLine[];
  /** Log lines with this event name so far. */
  events(name: string): LogLine[];
  outputText(): string;
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Run `tern ARGS --config <this config>`. */
  tern(args: readonly string[], stdin?: string): Promise<ProcessResult>;
  /** `tern queue list --json`. */
  queueList(): Promise<QueuedJson[]>;
  /** Poll `tern queue list --json` until the queue is empty; on timeout the error shows what is left. */
  waitForEmptyQueue(timeoutMs?: number): Promise<void>;
  storedMessages(address: string): Promise<MessageSummary[]>;
  storedMessage(address: string, id: string): Promise<Buffer>;
  /** Poll the store until `address` holds at least `count` messages. */
  waitForMessages(address: string, count: number, timeoutMs?: number): Promise<MessageSummary[]>;
  /** smtplib against this Tern (port and host filled in); mode 'plain' on port 25 unless told. */
  send(
    req: Omit<SmtplibRequest, 'port' | 'mode'> & { port?: number; mode?: SmtplibRequest['mode'] },
  ): Promise<SmtplibResult>;
  /** Signal the process and wait for it to exit; the folder (queue, mailboxes) stays. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Start `tern serve` again on the same config and data directory. */
  restart(): Promise<void>;
  /** SIGTERM (SIGKILL if it lingers), then remove the temporary folder. Safe to call twice. */
  stop(): Promise<void>;
}

const LISTENING = /^listening (smtp|submission|submissions) 127\.0\.0\.1:(\d+) \((starttls|implicit|none)\)$/;

interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  output: string;
}

export async function startOutboundTern(opts: OutboundTernOptions): Promise<OutboundTern> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-e2e-outbound-'));
  tempDirs.add(dir);
  const configPath = join(dir, 'tern.toml');
  const dataDir = join(dir, 'data');
  await writeFile(configPath, outboundConfigToml(dataDir, opts));
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

  const logLines: LogLine[] = [];
  let allOutput = '';
  let running: Running | null = null;
  let ports: Ports = { smtp: 0, submission: 0, submissions: 0 };

  const spawnServer = async (): Promise<void> => {
    const child = spawnTernServe(configPath, dir);
    liveChildren.add(child);
    const run: Running = {
      child,
      exited: null,
      output: '',
      exit: new Promise((resolve) => {
        child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
          run.exited = { code, signal };
          liveChildren.delete(child);
          resolve(run.exited);
        });
      }),
    };
    const splitter = (): ((d: string) => void) => {
      let partial = '';
      return (d: string) => {
        run.output += d;
        allOutput += d;
        const lines = (partial + d).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.startsWith('{')) continue;
          try {
            logLines.push(JSON.parse(line) as LogLine);
          } catch {
            // Not a log line after all.
          }
        }
      };
    };
    child.stdout.setEncoding('utf8').on('data', splitter());
    child.stderr.setEncoding('utf8').on('data', splitter());
    running = run;
    ports = await waitFor(
      'the three "listening" lines',
      () => {
        if (run.exited)
          throw new Error(
            `tern serve exited (${JSON.stringify(run.exited)}) before listening:\n${run.output}`,
          );
        const found = new Map<string, number>();
        for (const line of run.output.split('\n')) {
          const m = LISTENING.exec(line);
          if (m) found.set(m[1]!, Number(m[2]));
        }
        if (found.size < 3) return undefined;
        return {
          smtp: found.get('smtp')!,
          submission: found.get('submission')!,
          submissions: found.get('submissions')!,
        };
      },
      20_000,
      20,
    );
  };

  const kill = async (
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    const run = running;
    if (run === null) return { code: null, signal: null };
    if (run.exited) return run.exited;
    run.child.kill(signal);
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
    const result = await run.exit;
    clearTimeout(timer);
    return result;
  };

  let store: MailboxStore | null = null;
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await kill('SIGTERM');
      await store?.close();
      await rm(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    })();
    return stopped;
  };

  try {
    await spawnServer();
  } catch (err) {
    await stop();
    throw err;
  }

  const tern = (args: readonly string[], stdin = ''): Promise<ProcessResult> =>
    runProcess(process.execPath, [CLI, ...args, '--config', configPath], { cwd: dir, stdin });
  const queueList = async (): Promise<QueuedJson[]> => {
    const r = await tern(['queue', 'list', '--json']);
    if (r.code !== 0) throw new Error(`tern queue list --json exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as QueuedJson[];
  };
  const storedMessages = async (address: string): Promise<MessageSummary[]> => {
    store ??= await openStore(config, systemClock);
    return store.list(address);
  };

  return {
    dir,
    configPath,
    dataDir,
    get ports() {
      return ports;
    },
    alive: () => running !== null && running.exited === null,
    logs: () => [...logLines],
    events: (name) => logLines.filter((l) => l.event === name),
    outputText: () => allOutput,
    waitForLog: (what, match, timeoutMs = 10_000) =>
      waitFor(`log line: ${what}`, () => logLines.find(match), timeoutMs),
    tern,
    queueList,
    async waitForEmptyQueue(timeoutMs = 15_000) {
      let last: QueuedJson[] = [];
      try {
        await waitFor(
          'an empty queue',
          async () => {
            last = await queueList();
            return last.length === 0 ? true : undefined;
          },
          timeoutMs,
          200,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}; still queued: ${JSON.stringify(last)}`, { cause: err });
      }
    },
    storedMessages,
    async storedMessage(address, id) {
      store ??= await openStore(config, systemClock);
      const content = store.read(address, id);
      if (content === null) throw new Error(`no message ${id} for ${address}`);
      const chunks: Uint8Array[] = [];
      for await (const chunk of content) chunks.push(chunk);
      return Buffer.concat(chunks);
    },
    waitForMessages: (address, count, timeoutMs = 10_000) =>
      waitFor(
        `${count} message(s) for ${address}`,
        async () => {
          const list = await storedMessages(address);
          return list.length >= count ? list : undefined;
        },
        timeoutMs,
        100,
      ),
    send: (req) => smtplib({ mode: 'plain', port: ports.smtp, ...req }),
    kill,
    async restart() {
      if (running !== null && running.exited === null) throw new Error('restart(): the server still runs');
      await spawnServer();
    },
    stop,
  };
}

// ---------------------------------------------------------------------------------------------------
// Receiving servers that are not ours: nodemailer's smtp-server

/** A reply a receiver gives instead of accepting: `{ code: 451, text: '4.3.0 Try again' }`. */
export interface PeerReply {
  readonly code: number;
  readonly text: string;
}

export interface ReceivedMessage {
  readonly session: string;
  readonly remoteAddress: string;
  readonly mailFrom: SMTPServerAddress;
  readonly rcptTo: readonly SMTPServerAddress[];
  /** RET and ENVID as smtp-server parsed them (absent when DSN is hidden). */
  readonly dsn: { ret?: string | null; envid?: string | null } | undefined;
  readonly smtpUtf8: boolean;
  readonly secure: boolean;
  /** The TLS protocol of the session, or null in plaintext. */
  readonly tlsProtocol: string | null;
  /** The SNI name the client sent, or null. */
  readonly servername: string | null;
  readonly data: Buffer;
}

export interface ReceiverOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (an ephemeral port). */
  readonly port?: number;
  readonly name?: string;
  /** Offer STARTTLS with this key and certificate; without, STARTTLS is not advertised. */
  readonly tls?: { readonly key: string; readonly cert: string };
  readonly hideDSN?: boolean;
  readonly hideSMTPUTF8?: boolean;
  /** The SIZE limit advertised and enforced (RFC 1870); default 10 MB. */
  readonly sizeLimitBytes?: number;
  /** Refuse the connection with this greeting (e.g. 421) instead of 220. */
  readonly greeting?: PeerReply;
  /** Asked at each RCPT: `n` counts this address's RCPTs so far (1 on the first); undefined accepts. */
  readonly onRcpt?: (address: string, n: number) => PeerReply | undefined;
  /** How long to hold the reply after the data (ms), asked per message; default none. */
  readonly dataReplyDelayMs?: () => number;
  /** Asked after each message's data: `n` counts the DATA phases so far (1 on the first). */
  readonly onData?: (message: ReceivedMessage, n: number) => PeerReply | undefined;
}

export interface Receiver {
  readonly host: string;
  readonly port: number;
  /** Messages accepted (250 after DATA), in order. */
  readonly accepted: ReceivedMessage[];
  /** Every message whose data arrived, accepted or not. */
  readonly dataSeen: ReceivedMessage[];
  /** Every RCPT address seen, in order, accepted or not. */
  readonly rcpts: string[];
  /** Every MAIL FROM address seen, in order. */
  readonly mailFroms: string[];
  /** TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

function peerError(reply: PeerReply): Error {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

export async function startReceiver(opts: ReceiverOptions = {}): Promise<Receiver> {
  const accepted: ReceivedMessage[] = [];
  const dataSeen: ReceivedMessage[] = [];
  const rcpts: string[] = [];
  const mailFroms: string[] = [];
  const rcptCounts = new Map<string, number>();
  let connections = 0;
  let dataCount = 0;
  const options: SMTPServerOptions = {
    name: opts.name ?? 'peer.test',
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    size: opts.sizeLimitBytes ?? 10_000_000,
    hideDSN: opts.hideDSN ?? false,
    hideSMTPUTF8: opts.hideSMTPUTF8 ?? false,
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : { hideSTARTTLS: true }),
    onConnect(_session, callback) {
      connections++;
      if (opts.greeting) callback(peerError(opts.greeting));
      else callback();
    },
    onMailFrom(address, _session, callback) {
      mailFroms.push(address.address);
      callback();
    },
    onRcptTo(address, _session, callback) {
      const key = address.address.toLowerCase();
      const n = (rcptCounts.get(key) ?? 0) + 1;
      rcptCounts.set(key, n);
      rcpts.push(address.address);
      const reply = opts.onRcpt?.(address.address, n);
      if (reply) callback(peerError(reply));
      else callback();
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        const tlsInfo = session.tlsOptions;
        const message: ReceivedMessage = {
          session: session.id,
          remoteAddress: session.remoteAddress,
          mailFrom: env.mailFrom as SMTPServerAddress,
          rcptTo: [...env.rcptTo],
          dsn: env.dsn,
          smtpUtf8: env.smtpUtf8 === true,
          secure: session.secure,
          tlsProtocol: tlsInfo === false ? null : (tlsInfo.version ?? null),
          servername: typeof session.servername === 'string' ? session.servername : null,
          data: Buffer.concat(chunks),
        };
        dataSeen.push(message);
        const answer = (): void => {
          const reply = opts.onData?.(message, ++dataCount);
          if (reply) {
            callback(peerError(reply));
            return;
          }
          accepted.push(message);
          callback(null, 'Queued as PEER');
        };
        const delayMs = opts.dataReplyDelayMs?.() ?? 0;
        if (delayMs > 0) setTimeout(answer, delayMs).unref();
        else answer();
      });
    },
  };
  const server = new SMTPServer(options);
  // A sender that dies mid-session (kill -9 in durability.test.ts) resets its connection: smtp-server
  // reports that as an 'error' on the server, which is no failure of the receiver.
  server.on('error', () => undefined);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('receiver has no port');
  return {
    host,
    port: address.port,
    accepted,
    dataSeen,
    rcpts,
    mailFroms,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback port with nothing listening on it (bound, then released). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

/** Whether this process may bind `host`:25 (root on Linux may, on any 127.0.0.x). */
export async function canBindPort25(host: string): Promise<boolean> {
  const server = createNetServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(25, host, resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Certificates

let counter = 0;

export interface Certs {
  /** PEM of the CA that signed `cert`. */
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * A CA and a server certificate it signed for `hosts` (DNS names in subjectAltName). Each CA gets its own
 * name, so that a bundle of several stays unambiguous. PEMs come without a final newline: join with one.
 */
export async function makeCerts(hosts: readonly string[]): Promise<Certs> {
  const caName = `Tern Test CA for ${hosts[0] ?? 'localhost'} ${process.pid}-${++counter}`;
  const ca = await generate([{ name: 'commonName', value: caName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const server = await generate([{ name: 'commonName', value: hosts[0] ?? 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: hosts.map((value) => ({ type: 2 as const, value })) },
    ],
  });
  return { caCert: ca.cert, cert: server.cert, key: server.private };
}

// ---------------------------------------------------------------------------------------------------
// DSNs read by Python's email package

let pythonOk: boolean | null = null;

/** Whether python3 with the email package runs here. */
export function havePython(): boolean {
  pythonOk ??= spawnSync('python3', ['-c', 'import email, smtplib'], { stdio: 'ignore' }).status === 0;
  return pythonOk;
}

/** A DSN as Python's email package sees it (RFC 3464 §2: per-message fields, then per-recipient). */
export interface ParsedDsn {
  /** The top-level content type, lower case: "multipart/report". */
  readonly contentType: string;
  /** The report-type parameter. */
  readonly reportType: string | null;
  readonly from: string | null;
  readonly to: string | null;
  readonly subject: string | null;
  readonly headers: Readonly<Record<string, string>>;
  /** Content types of the parts, in order. */
  readonly parts: readonly string[];
  /** The human-readable first part, decoded. */
  readonly humanText: string;
  /** Per-message fields of the delivery-status part (names lower case). */
  readonly perMessage: Readonly<Record<string, string>>;
  /** One field map per recipient block (names lower case). */
  readonly perRecipient: readonly Readonly<Record<string, string>>[];
  /** The third part: its type and, for message/rfc822, its headers and body; text for headers only. */
  readonly original: {
    readonly type: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly body: string | null;
  } | null;
  /** Python's defects list for the whole message (empty for a well-formed one). */
  readonly defects: readonly string[];
}

const DSN_READER = String.raw`
import email, json, re, sys
from email import policy
raw = sys.stdin.buffer.read()
def raw_body_of(raw, boundary, ctype):
    for chunk in raw.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        pieces = re.split(rb"\r?\n\r?\n", chunk.lstrip(b"\r\n"), maxsplit=1)
        if len(pieces) < 2:
            continue
        head, body = pieces
        if re.search(rb"(?im)^content-type:\s*" + re.escape(ctype.encode()), head):
            return body
    return None
msg = email.message_from_bytes(raw, policy=policy.default)
def fields(block):
    return {k.lower(): str(v) for k, v in block.items()}
out = {
    "contentType": msg.get_content_type(),
    "reportType": msg.get_param("report-type"),
    "from": msg.get("From") and str(msg.get("From")),
    "to": msg.get("To") and str(msg.get("To")),
    "subject": msg.get("Subject") and str(msg.get("Subject")),
    "headers": {k.lower(): str(v) for k, v in msg.items()},
    "parts": [],
    "humanText": "",
    "perMessage": {},
    "perRecipient": [],
    "original": None,
    "defects": [type(d).__name__ for d in msg.defects],
}
if msg.is_multipart():
    parts = msg.get_payload()
    out["parts"] = [p.get_content_type() for p in parts]
    if parts:
        out["humanText"] = parts[0].get_content() if parts[0].get_content_maintype() == "text" else ""
    for p in parts:
        ct = p.get_content_type()
        out["defects"] += [type(d).__name__ for d in p.defects]
        if ct == "message/delivery-status":
            blocks = p.get_payload()
            if isinstance(blocks, list) and blocks:
                out["perMessage"] = fields(blocks[0])
                out["perRecipient"] = [fields(b) for b in blocks[1:]]
        elif ct == "message/global-delivery-status":
            # The email package knows only message/delivery-status as a list of field blocks (and reads
            # 8-bit text as escapes): take the part's bytes from the raw message, blocks as UTF-8.
            status = raw_body_of(raw, msg.get_boundary(), ct)
            if status is not None:
                blocks = [b for b in re.split(r"(?:\r?\n){2,}", status.decode("utf-8").strip()) if b]
                parsed = [email.message_from_string(b + "\n", policy=policy.default) for b in blocks]
                if parsed:
                    out["perMessage"] = fields(parsed[0])
                    out["perRecipient"] = [fields(b) for b in parsed[1:]]
        elif ct in ("message/rfc822", "message/global"):
            inner = p.get_payload()
            inner = inner[0] if isinstance(inner, list) else inner
            if isinstance(inner, (bytes, str)):
                inner = email.message_from_bytes(inner if isinstance(inner, bytes) else inner.encode(), policy=policy.default)
            body = inner.get_payload(decode=True)
            out["original"] = {"type": ct, "headers": {k.lower(): str(v) for k, v in inner.items()},
                               "body": body.decode("utf-8", "replace") if body is not None else None}
        elif ct in ("text/rfc822-headers", "message/global-headers"):
            # The email package reads message/global-headers as an enclosed message (a list of one).
            inner = p.get_payload()
            if isinstance(inner, list):
                hdrs = inner[0]
            else:
                text = p.get_payload(decode=True).decode("utf-8", "replace")
                hdrs = email.message_from_string(text, policy=policy.default)
            out["original"] = {"type": ct, "headers": {k.lower(): str(v) for k, v in hdrs.items()}, "body": None}
json.dump(out, sys.stdout)
`;

/** Parse a stored DSN with Python's email package. */
export async function parseDsn(raw: Buffer): Promise<ParsedDsn> {
  const r = await runProcess('python3', ['-c', DSN_READER], { stdin: raw });
  if (r.code !== 0) throw new Error(`python DSN reader exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ParsedDsn;
}

/** One header field's value (unfolded) from a message's header section, or null; the first one wins. */
export function headerValue(raw: Buffer, name: string): string | null {
  const head = raw.toString('utf8').split(/\r?\n\r?\n/, 1)[0] ?? '';
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  const re = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im');
  return re.exec(unfolded)?.[1] ?? null;
}

// ---------------------------------------------------------------------------------------------------
// Small message builders

/** A small RFC 5322 message with a unique Message-ID. */
export function message(
  from: string,
  to: string,
  subject: string,
  body = 'Hello from the outbound tests.',
): Buffer {
  counter++;
  return Buffer.from(
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\n` +
      `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n` +
      `Message-ID: <outbound-${process.pid}-${counter}-${Date.now()}@example.test>\r\n` +
      `\r\n${body}\r\n`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Independent peers outside Node: Python (aiosmtpd, or the stdlib smtpd of Python ≤ 3.11) and Postfix's
// smtp-sink. Each is skipped by the tests when this machine lacks it.

/** What an independent peer received: the envelope as it saw it and the message bytes. */
export interface PeerMessage {
  readonly mailFrom: string;
  readonly rcptTos: readonly string[];
  /** MAIL parameters as the peer reports them (aiosmtpd, smtpd), or the raw MAIL arguments (smtp-sink). */
  readonly mailArgs: readonly string[];
  readonly data: Buffer;
}

export interface ExternalPeer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Messages received so far (smtp-sink: read from its dump files on each call). */
  messages(): Promise<PeerMessage[]>;
  close(): Promise<void>;
}

const PY_PEER = String.raw`
import base64, json, os, sys, threading
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
def message(mail_from, rcpts, options, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    emit({"kind": "message", "mailFrom": mail_from, "rcptTos": list(rcpts),
          "mailArgs": list(options or []), "data": base64.b64encode(data).decode()})
def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)
if mode == "aiosmtpd":
    from aiosmtpd.controller import Controller
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message(envelope.mail_from, envelope.rcpt_tos, envelope.mail_options,
                    envelope.original_content or envelope.content)
            return "250 2.0.0 OK queued by aiosmtpd"
    controller = Controller(Handler(), hostname=host, port=port)
    controller.start()
    emit({"kind": "ready"})
    exit_when_stdin_closes()
else:
    import warnings
    warnings.simplefilter("ignore")
    import asyncore, smtpd
    class Server(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kw):
            message(mailfrom, rcpttos, kw.get("mail_options"), data)
            return None
    Server((host, port), None, decode_data=False)
    emit({"kind": "ready"})
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncore.loop()
`;

/**
 * A python3 that can import `module`: the one on PATH first, then the system's (Debian's
 * python3-aiosmtpd installs for /usr/bin/python3 only), or null.
 */
export function findPython(module: string): string | null {
  for (const python of ['python3', '/usr/bin/python3', '/usr/local/bin/python3']) {
    const r = spawnSync(python, ['-W', 'ignore', '-c', `import ${module}`], { stdio: 'ignore' });
    if (r.status === 0) return python;
  }
  return null;
}

const EXTENSION_PEER = join(dirname(fileURLToPath(import.meta.url)), 'py', 'extension_peer.py');

/**
 * aiosmtpd's Controller, Python's stdlib smtpd (asyncore; gone in Python 3.12), or aiosmtpd offering
 * MT-PRIORITY and DELIVERBY (py/extension_peer.py; its messages carry no data), on host:port.
 */
export async function startPythonPeer(
  kind: 'aiosmtpd' | 'smtpd' | 'extensions',
  python: string,
  host: string,
  port: number,
): Promise<ExternalPeer> {
  const args =
    kind === 'extensions'
      ? ['-W', 'ignore', EXTENSION_PEER, host, String(port)]
      : ['-W', 'ignore', '-c', PY_PEER, kind, host, String(port)];
  const child = spawn(python, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  child.stdin.on('error', () => undefined);
  const received: PeerMessage[] = [];
  let ready = false;
  let output = '';
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      liveChildren.delete(child);
      resolve();
    }),
  );
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    output += d;
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const event = JSON.parse(line) as { kind: string } & Record<string, unknown>;
      if (event.kind === 'ready') ready = true;
      else
        received.push({
          mailFrom: event['mailFrom'] as string,
          rcptTos: event['rcptTos'] as string[],
          mailArgs: event['mailArgs'] as string[],
          data: Buffer.from((event['data'] as string | undefined) ?? '', 'base64'),
        });
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  await waitFor(`${kind} ready on ${host}:${port}`, () => {
    if (exited) throw new Error(`${kind} peer exited before it was ready:\n${output}`);
    return ready ? true : undefined;
  });
  return {
    name: kind,
    host,
    port,
    messages: () => Promise.resolve([...received]),
    async close() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Postfix's smtp-sink binary, or null when Postfix is not installed. */
export function findSmtpSink(): string | null {
  for (const candidate of ['smtp-sink', '/usr/sbin/smtp-sink']) {
    // smtp-sink without arguments prints its usage and exits 1; ENOENT means it is not there.
    const r = spawnSync(candidate, [], { stdio: 'ignore' });
    if (r.error === undefined) return candidate;
  }
  return null;
}

/** Postfix's smtp-sink on host:port, dumping each transaction to a file (its -d option). */
export async function startSmtpSink(binary: string, host: string, port: number): Promise<ExternalPeer> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-e2e-sink-'));
  tempDirs.add(dir);
  // As root, smtp-sink must drop to another user (-u), which then writes the dump files.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await chmod(dir, 0o777);
  const args = [...(asRoot ? ['-u', 'nobody'] : []), '-d', join(dir, '%H%M%S.'), `${host}:${port}`, '10'];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  await waitFor(`smtp-sink listening on ${host}:${port}`, async () => {
    if (exited) throw new Error(`smtp-sink exited: ${output}`);
    return (await canConnect(host, port)) ? true : undefined;
  });
  return {
    name: 'smtp-sink',
    host,
    port,
    async messages() {
      const out: PeerMessage[] = [];
      for (const file of (await readdir(dir)).sort()) {
        const text = await readFile(join(dir, file));
        out.push(parseSinkDump(text));
      }
      return out;
    },
    async close() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
}

/** One smtp-sink dump file: X-* records, its Received header, then the message as received. */
function parseSinkDump(file: Buffer): PeerMessage {
  const text = file.toString('latin1');
  const mailArgs = /^X-Mail-Args: (.*)$/m.exec(text)?.[1] ?? '';
  const rcptTos = [...text.matchAll(/^X-Rcpt-Args: (.*)$/gm)].map((m) => addressOf(m[1]!));
  // Its Received header is three lines (from, by, for/date); the message follows it.
  const received = /^Received: [^\n]*\n(?:[ \t][^\n]*\n)*/m.exec(text);
  const start = received ? received.index + received[0].length : 0;
  return {
    mailFrom: addressOf(mailArgs),
    rcptTos,
    mailArgs: mailArgs.split(/\s+/).slice(1),
    data: file.subarray(Buffer.byteLength(text.slice(0, start), 'latin1')),
  };
}

function addressOf(args: string): string {
  return /<([^>]*)>/.exec(args)?.[1] ?? args.split(/\s+/)[0] ?? '';
}

async function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
