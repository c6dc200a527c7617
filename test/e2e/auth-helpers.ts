// What the SMTP AUTH end-to-end tests need beyond harness.ts: a Tern child process whose config carries
// the AUTH keys ([auth], [submission], per-listener auth options, tls.client_ca, any number of listeners),
// users with passwords created with the real `tern user add --password-stdin` before the server starts,
// client certificates and a CA made with the openssl command, and runners for the independent AUTH
// clients: test/e2e/py/auth_client.py (smtplib + a SCRAM client of its own) and swaks.
// Deliberately NOT here: assertions about Tern's behaviour (the auth-*.test.ts files make those), and
// anything harness.ts already does (its process runner, polling, raw SMTP client and types are reused).
// harness.ts's startTern() writes a fixed config with none of the AUTH keys, hence startAuthTern() here;
// it follows the same contract (watchdog pipe, `listening` lines, cleanup on exit).

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/ports.ts';
import { openStore } from '../../src/main.ts';
import type { MailboxStore, MessageSummary } from '../../src/store/mailbox-store.ts';
import type { LogLine, MailboxEntry, Ports, ProcessResult, SmtpReply } from './harness.ts';
import { CLI, ehlo, RawSmtpClient, ROOT, runProcess, waitFor } from './harness.ts';

const AUTH_CLIENT = join(ROOT, 'test', 'e2e', 'py', 'auth_client.py');

/** Same watchdog as harness.ts: the server stops itself when this test process goes away. */
const WATCHDOG =
  'data:text/javascript,' +
  encodeURIComponent(
    'process.stdin.on("end",()=>process.kill(process.pid,"SIGTERM"));' +
      'process.stdin.on("error",()=>{});process.stdin.resume();process.stdin.unref();',
  );

const liveChildren = new Set<ChildProcessWithoutNullStreams>();
const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// Config

export type TomlValue = string | number | boolean | readonly string[];
type TomlTable = Readonly<Record<string, TomlValue>>;

export interface ListenerSpec {
  readonly service: 'smtp' | 'submission' | 'submissions';
  readonly tls?: 'starttls' | 'implicit' | 'none';
  readonly auth?: boolean;
  readonly require_auth?: boolean;
  readonly allow_plaintext_auth_on_loopback?: boolean;
  readonly client_certificates?: 'none' | 'request' | 'require';
}

export const DEFAULT_LISTENERS: readonly ListenerSpec[] = [
  { service: 'smtp', tls: 'starttls' },
  { service: 'submission', tls: 'starttls' },
  { service: 'submissions', tls: 'implicit' },
];

export interface AuthUser {
  readonly address: string;
  /** Omitted: a user that can receive mail but not log in. */
  readonly password?: string;
}

export interface AuthTernOptions {
  /** In this order; the bound ports come back in the same order (`listenerPorts`). */
  readonly listeners?: readonly ListenerSpec[];
  /** [auth] keys, e.g. { failure_delay_seconds: 0 }. The harness default makes failures answer at once. */
  readonly auth?: TomlTable;
  /** [auth.oauth] keys, e.g. { hmac_secret: '...' }; the table is left out when not given. */
  readonly oauth?: TomlTable;
  readonly submission?: TomlTable;
  readonly limits?: TomlTable;
  readonly smtp?: TomlTable;
  /** [tls] keys, e.g. { client_ca: '/path/ca.pem' }. */
  readonly tls?: TomlTable;
  /** Created with `tern user add [--password-stdin]` before the server starts. */
  readonly users?: readonly AuthUser[];
  /** `tern alias add ALIAS TARGET` before the server starts. */
  readonly aliases?: readonly (readonly [string, string])[];
  /** `tern user sendas USER add PATTERN` before the server starts. */
  readonly sendAs?: readonly (readonly [string, string])[];
  /** `tern user cert USER --cert-file FILE` before the server starts. */
  readonly certs?: readonly (readonly [string, string])[];
  readonly logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
}

/** AUTH failures answer at once unless a test asks for the delay: keeps every file quick. */
const BASE_AUTH: TomlTable = { failure_delay_seconds: 0 };
const BASE_LIMITS: TomlTable = { shutdown_grace_seconds: 1 };

function tomlValue(v: TomlValue): string {
  // JSON strings, numbers, booleans and string arrays are valid TOML values as written.
  return JSON.stringify(v);
}

function tomlTable(header: string, entries: TomlTable): string[] {
  const keys = Object.keys(entries);
  if (keys.length === 0) return [];
  return [header, ...keys.map((k) => `${k} = ${tomlValue(entries[k]!)}`), ''];
}

export function authConfigToml(dataDir: string, opts: AuthTernOptions): string {
  const lines = [
    'hostname = "mx.example.test"',
    `data_dir = ${tomlValue(dataDir)}`,
    'local_domains = ["example.test"]',
    '',
  ];
  for (const l of opts.listeners ?? DEFAULT_LISTENERS) {
    lines.push(...tomlTable('[[listeners]]', { ...l, address: '127.0.0.1:0' }));
  }
  lines.push(
    ...tomlTable('[tls]', opts.tls ?? {}),
    ...tomlTable('[limits]', { ...BASE_LIMITS, ...opts.limits }),
    ...tomlTable('[smtp]', opts.smtp ?? {}),
    ...tomlTable('[auth]', { ...BASE_AUTH, ...opts.auth }),
    ...tomlTable('[auth.oauth]', opts.oauth ?? {}),
    ...tomlTable('[submission]', opts.submission ?? {}),
    ...tomlTable('[log]', { level: opts.logLevel ?? 'info', format: 'json' }),
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Tern with AUTH

/**
 * A running Tern, as harness.ts's `Tern` but for this config (its own interface, so that changes to the
 * harness's one do not ripple here).
 */
export interface AuthTern {
  readonly dir: string;
  readonly configPath: string;
  /** The first listener of each service. */
  readonly ports: Ports;
  /** The port of each configured listener, in config order. */
  readonly listenerPorts: readonly number[];
  alive(): boolean;
  /** The server's JSON log so far. */
  logs(): LogLine[];
  /** Log lines with this event name so far. */
  events(name: string): LogLine[];
  outputText(): string;
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Run `tern ARGS --config <this config>`. */
  tern(args: readonly string[], stdin?: string): Promise<ProcessResult>;
  /** `tern mailbox list ADDRESS --json`. */
  mailboxList(address: string): Promise<MailboxEntry[]>;
  /** `tern mailbox cat ADDRESS ID`. */
  mailboxCat(address: string, id: string): Promise<Buffer>;
  /** `tern queue list --json`. */
  queueList(): Promise<QueuedJson[]>;
  /** Poll the store until `address` holds at least `count` messages. */
  waitForMessages(address: string, count: number, timeoutMs?: number): Promise<MessageSummary[]>;
  storedMessages(address: string): Promise<MessageSummary[]>;
  /** SIGTERM (SIGKILL if it lingers), then remove the temporary folder. Safe to call twice. */
  stop(): Promise<void>;
}

/** The JSON shape of `tern queue list --json` (src/cli/commands/queue.ts). */
export interface QueuedJson {
  readonly id: string;
  readonly sender: string;
  readonly size: number;
  readonly held: boolean;
  readonly recipients: readonly {
    readonly address: string;
    readonly status: string;
    readonly attempts: number;
    readonly lastReply: string | null;
  }[];
}

const LISTENING = /^listening (smtp|submission|submissions) 127\.0\.0\.1:(\d+) \((starttls|implicit|none)\)$/;

/** Run `tern ARGS --config FILE`, failing with its stderr on a non-zero exit. */
async function ternMust(configPath: string, cwd: string, args: readonly string[], stdin = '') {
  const r = await runProcess(process.execPath, [CLI, ...args, '--config', configPath], { cwd, stdin });
  if (r.code !== 0) throw new Error(`tern ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** Create users (CLI), aliases, send-as grants and certificate mappings for a config. */
export async function seed(configPath: string, cwd: string, opts: AuthTernOptions): Promise<void> {
  for (const u of opts.users ?? []) {
    if (u.password === undefined) await ternMust(configPath, cwd, ['user', 'add', u.address]);
    else await ternMust(configPath, cwd, ['user', 'add', u.address, '--password-stdin'], `${u.password}\n`);
  }
  for (const [alias, target] of opts.aliases ?? []) {
    await ternMust(configPath, cwd, ['alias', 'add', alias, target]);
  }
  for (const [user, pattern] of opts.sendAs ?? []) {
    await ternMust(configPath, cwd, ['user', 'sendas', user, 'add', pattern]);
  }
  for (const [user, file] of opts.certs ?? []) {
    await ternMust(configPath, cwd, ['user', 'cert', user, '--cert-file', file]);
  }
}

export async function startAuthTern(opts: AuthTernOptions = {}): Promise<AuthTern> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-e2e-auth-'));
  tempDirs.add(dir);
  const configPath = join(dir, 'tern.toml');
  const dataDir = join(dir, 'data');
  await writeFile(configPath, authConfigToml(dataDir, opts));
  const config = loadConfig({ path: configPath, cwd: dir });
  const listenerSpecs = opts.listeners ?? DEFAULT_LISTENERS;
  try {
    await seed(configPath, dir, opts);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
    throw err;
  }

  const child = spawn(process.execPath, ['--import', WATCHDOG, CLI, 'serve', '--config', configPath], {
    cwd: dir,
    env: { ...process.env, TERN_DEBUG: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  child.stdin.on('error', () => undefined);
  let output = '';
  const logLines: LogLine[] = [];
  const splitter = (): ((d: string) => void) => {
    let partial = '';
    return (d: string) => {
      output += d;
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

  let listenerPorts: number[];
  try {
    listenerPorts = await waitFor(
      `${listenerSpecs.length} "listening" lines`,
      () => {
        if (exited)
          throw new Error(`tern serve exited (${JSON.stringify(exited)}) before listening:\n${output}`);
        const ports: number[] = [];
        for (const line of output.split('\n')) {
          const m = LISTENING.exec(line);
          if (m) ports.push(Number(m[2]));
        }
        return ports.length < listenerSpecs.length ? undefined : ports;
      },
      20_000,
      20,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  // Listeners bind in config order and print in that order (src/main.ts).
  const firstPort = (service: ListenerSpec['service']): number => {
    const i = listenerSpecs.findIndex((l) => l.service === service);
    return i < 0 ? 0 : listenerPorts[i]!;
  };
  const ports: Ports = {
    smtp: firstPort('smtp'),
    submission: firstPort('submission'),
    submissions: firstPort('submissions'),
  };

  const tern = (args: readonly string[], stdin = ''): Promise<ProcessResult> =>
    runProcess(process.execPath, [CLI, ...args, '--config', configPath], { cwd: dir, stdin });
  const storedMessages = async (address: string): Promise<MessageSummary[]> => {
    store ??= await openStore(config, systemClock);
    return store.list(address);
  };

  return {
    dir,
    configPath,
    ports,
    listenerPorts,
    alive: () => exited === null,
    logs: () => [...logLines],
    events: (name) => logLines.filter((l) => l.event === name),
    outputText: () => output,
    waitForLog: (what, match, timeoutMs = 10_000) =>
      waitFor(`log line: ${what}`, () => logLines.find(match), timeoutMs),
    tern,
    async mailboxList(address) {
      const r = await ternMust(configPath, dir, ['mailbox', 'list', address, '--json']);
      return JSON.parse(r.stdout) as MailboxEntry[];
    },
    async mailboxCat(address, id) {
      return (await ternMust(configPath, dir, ['mailbox', 'cat', address, id])).stdoutBytes;
    },
    async queueList() {
      const r = await ternMust(configPath, dir, ['queue', 'list', '--json']);
      return JSON.parse(r.stdout) as QueuedJson[];
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
    stop,
  };
}

/**
 * Evidence that `rcpt` was queued for relay as message `queueId`: the delivery worker logged taking it
 * from the queue (parked until outbound delivery exists, or tried and deferred or bounced: a .test domain
 * never resolves), and while `tern queue list --json` still shows the message the recipient is in it and
 * not delivered. Independent of what outbound delivery does, which is not what AUTH tests are about.
 */
export async function expectRelayQueued(tern: AuthTern, queueId: string, rcpt: string): Promise<void> {
  await tern.waitForLog(
    `the delivery worker taking ${rcpt} of ${queueId} from the queue`,
    (l) => String(l.event).startsWith('delivery.') && l['queueId'] === queueId && l['rcpt'] === rcpt,
  );
  const listed = (await tern.queueList()).find((q) => q.id === queueId);
  if (listed === undefined) return; // settled (bounced) and gone: the log above is the evidence
  const r = listed.recipients.find((x) => x.address === rcpt);
  if (r === undefined) throw new Error(`${rcpt} is not a recipient of ${JSON.stringify(listed)}`);
  if (r.status === 'delivered') throw new Error(`${rcpt} cannot have been delivered: ${JSON.stringify(r)}`);
}

// ---------------------------------------------------------------------------------------------------
// SASL wire helpers

export const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** RFC 4616 initial response: authzid NUL authcid NUL password, base64. */
export const plainResponse = (user: string, password: string, authzid = ''): string =>
  b64(`${authzid}\0${user}\0${password}`);

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

// ---------------------------------------------------------------------------------------------------
// test/e2e/py/auth_client.py

export type AuthStep =
  | readonly ['login', string, string]
  | readonly ['auth', 'PLAIN' | 'LOGIN', string, string]
  | readonly ['scram', string, string, { plus?: boolean; gs2?: 'n' | 'y'; tamper_cb?: boolean }?]
  | readonly ['cmd', string]
  | readonly ['ehlo']
  | readonly ['sendmail', string, readonly string[], string | Buffer]
  | readonly ['mail', string]
  | readonly ['rcpt', string]
  | readonly ['data', string | Buffer];

export interface AuthClientRequest {
  readonly port: number;
  readonly mode: 'plain' | 'starttls' | 'ssl';
  readonly steps: readonly AuthStep[];
  readonly ehlo?: string;
  /** Cap the TLS version (tls-unique exists only up to TLS 1.2). */
  readonly tlsMax?: 'TLSv1_2';
  /** Client certificate and key (PEM files). */
  readonly cert?: string;
  readonly key?: string;
  /** Local address to connect from (another loopback address is another client IP to Tern). */
  readonly source?: string;
}

export interface ScramInfo {
  readonly replies: readonly [number, string][];
  readonly server_signature_ok: boolean | null;
}

/** One step's answer: [code, text], plus SCRAM details or sendmail's refused map. */
export type StepResult = readonly [number, string, unknown?];

export interface AuthClientResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly text?: string;
  readonly steps: readonly StepResult[];
  readonly features: Readonly<Record<string, string>>;
  readonly tls: string | null;
}

let pythonOk: boolean | null = null;

/** Whether python3 with smtplib and ssl can run here. */
export function havePythonSsl(): boolean {
  pythonOk ??= spawnSync('python3', ['-c', 'import smtplib, ssl, hashlib'], { stdio: 'ignore' }).status === 0;
  return pythonOk;
}

export async function authClient(req: AuthClientRequest): Promise<AuthClientResult> {
  const wire = {
    host: '127.0.0.1',
    port: req.port,
    mode: req.mode,
    ehlo: req.ehlo ?? 'client.example',
    tls_max: req.tlsMax ?? null,
    cert: req.cert ?? null,
    key: req.key ?? null,
    source: req.source ?? null,
    steps: req.steps.map((s) => {
      if (s[0] === 'data') return ['data_b64', b64(s[1])];
      if (s[0] === 'sendmail') return ['sendmail', s[1], s[2], b64(s[3])];
      return s;
    }),
  };
  const r = await runProcess('python3', [AUTH_CLIENT], { stdin: JSON.stringify(wire) });
  if (r.code !== 0) throw new Error(`auth_client.py exited ${r.code}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as AuthClientResult;
  } catch {
    throw new Error(`auth_client.py wrote no JSON: ${r.stdout} ${r.stderr}`);
  }
}

/** The Python client's SCRAM computation alone (no connection), for a check against a known vector. */
export async function scramVector(v: {
  password: string;
  client_first_bare: string;
  server_first: string;
}): Promise<{ client_final: string; server_final: string }> {
  const r = await runProcess('python3', [AUTH_CLIENT], { stdin: JSON.stringify({ scram_vector: v }) });
  if (r.code !== 0) throw new Error(`auth_client.py exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { client_final: string; server_final: string };
}

// ---------------------------------------------------------------------------------------------------
// swaks

let swaksSupport: string | null = null;

/**
 * Why swaks cannot run the TLS tests here, or false when it can. swaks does TLS only with the Perl
 * module Net::SSLeay (Debian: libnet-ssleay-perl, a "Recommends" of swaks that
 * `apt-get install --no-install-recommends swaks` leaves out); `swaks --support` says what it has.
 */
export function swaksSkipReason(): string | false {
  swaksSupport ??= (() => {
    const r = spawnSync('swaks', ['--support'], { encoding: 'utf8' });
    return r.status === 0 ? `${r.stdout}${r.stderr}` : '';
  })();
  if (swaksSupport === '') return 'swaks is not installed (.ci/run installs it with apt-get install swaks)';
  if (!/^=== TLS supported/m.test(swaksSupport))
    return 'swaks has no TLS here: it needs Net::SSLeay (apt-get install libnet-ssleay-perl)';
  return false;
}

/** Run swaks against 127.0.0.1 with a 10 s timeout; its transcript is on stdout. */
export function swaks(port: number, args: readonly string[]): Promise<ProcessResult> {
  return runProcess(
    'swaks',
    ['--server', '127.0.0.1', '--port', String(port), '--timeout', '10', '--helo', 'swaks.example', ...args],
    { timeoutMs: 20_000 },
  );
}

// ---------------------------------------------------------------------------------------------------
// Certificates (openssl command)

let opensslOk: boolean | null = null;

export function haveOpenssl(): boolean {
  opensslOk ??= spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
  return opensslOk;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  const r = await runProcess('openssl', args, { cwd });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
}

export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

/** A client certificate and key in `dir`: self-signed, or issued by `ca`; SAN rfc822Name = `email`. */
export async function makeClientCert(
  dir: string,
  name: string,
  email: string,
  ca?: CertPair,
): Promise<CertPair> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const subject = `/CN=${name}/O=Tern e2e`;
  const exts = [`subjectAltName=email:${email}`, 'extendedKeyUsage=clientAuth', 'basicConstraints=CA:FALSE'];
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key];
  if (!ca) {
    await openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-days',
        '2',
        '-subj',
        subject,
        '-out',
        cert,
        ...exts.flatMap((e) => ['-addext', e]),
      ],
      dir,
    );
    return { cert, key };
  }
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  await openssl(['req', '-new', ...ec, '-subj', subject, '-out', csr], dir);
  await writeFile(extFile, `${exts.join('\n')}\n`);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-set_serial',
      String(Date.now()),
      '-days',
      '2',
      '-extfile',
      extFile,
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

/** A certificate authority for client certificates (tls.client_ca). */
export async function makeCa(dir: string, name = 'e2e-ca'): Promise<CertPair> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-days',
      '2',
      '-subj',
      `/CN=${name}/O=Tern e2e`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

/** A temporary folder removed when this process exits (for certificates made before a server). */
export async function tempDir(prefix = 'tern-e2e-certs-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------------
// Raw dialogues (harness.ts's RawSmtpClient) for byte-exact refusals

/**
 * A raw SMTP connection, greeted and EHLO'd: `plain`, `starttls` (STARTTLS, then EHLO again) or `tls`
 * (implicit). Returns the client and the EHLO keywords last seen.
 */
export async function rawSession(
  port: number,
  mode: 'plain' | 'starttls' | 'tls',
): Promise<{ client: RawSmtpClient; ehlo: string[] }> {
  const client = await RawSmtpClient.open(port, { tls: mode === 'tls' });
  let keywords = await ehlo(client);
  if (mode === 'starttls') {
    const go = await client.command('STARTTLS');
    if (go.code !== 220) throw new Error(`STARTTLS refused: ${go.raw}`);
    await client.startTls();
    keywords = await ehlo(client);
  }
  return { client, ehlo: keywords };
}

/** rawSession, then AUTH PLAIN with an initial response, which must succeed (235). */
export async function rawAuthed(
  port: number,
  mode: 'starttls' | 'tls',
  user: string,
  password: string,
): Promise<RawSmtpClient> {
  const { client } = await rawSession(port, mode);
  const r = await client.command(`AUTH PLAIN ${plainResponse(user, password)}`);
  if (r.code !== 235) throw new Error(`AUTH PLAIN as ${user} failed: ${r.raw}`);
  return client;
}

/** DATA, the message (dot-stuffing is the caller's), the end marker: the 354 and the final reply. */
export async function rawData(client: RawSmtpClient, message: string): Promise<SmtpReply> {
  const go = await client.command('DATA');
  if (go.code !== 354) return go;
  await client.send(`${message}\r\n.\r\n`);
  return client.readReply(10_000);
}
