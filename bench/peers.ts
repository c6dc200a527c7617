// The servers the benchmark compares, each started fresh on loopback and stopped after its block of
// cases: Tern (`tern serve` from src/cli/main.ts with a bench config), Postfix (a private instance from
// bench/peers/setup, `master -d -c DIR` in the foreground), Haraka (npm, one process, discard queue) and
// Postfix's smtp-sink (accepts and discards, nothing on disk: the protocol ceiling). For each: how to
// start and stop it, its process id (the root of the tree proc.ts measures), what it supports, the
// recipients that reach its durable-accept, local-delivery and relay paths, and how many messages it
// still holds (so a case ends when the queue is empty).
// Deliberately NOT here: installing peers (bench/peers/setup), load generation (load.ts), the scenario
// list and reporting (run.ts, report.ts).

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config/load.ts';
import { openDirectory } from '../src/main.ts';
import { ternNodeFlags } from '../test/support/launch.ts';
import { processTree } from './proc.ts';

export const BENCH_DIR = import.meta.dirname;
export const ROOT = join(BENCH_DIR, '..');
export const WORK = join(BENCH_DIR, 'peers', 'work');
export const DOVECOT_BIN = '/usr/sbin/dovecot';

export type PeerName = 'tern' | 'postfix' | 'haraka' | 'haraka-nodes' | 'smtp-sink' | 'dovecot';
/** The SMTP servers; Dovecot is an IMAP peer only (bench/imap-peers.ts starts it). */
export const SMTP_PEERS: readonly PeerName[] = ['tern', 'postfix', 'haraka', 'haraka-nodes', 'smtp-sink'];
export const PEER_LABELS: Readonly<Record<PeerName, string>> = {
  tern: 'Tern',
  postfix: 'Postfix',
  haraka: 'Haraka',
  // Haraka's cluster mode, as its docs recommend for a multi-core host: smtp.ini nodes = the cores.
  'haraka-nodes': 'Haraka ×cores',
  'smtp-sink': 'smtp-sink',
  dovecot: 'Dovecot',
};

/** What bench/peers/setup wrote into work/peers.json. */
export interface PeersFile {
  readonly ports: {
    readonly tern: number;
    readonly postfix: number;
    readonly haraka: number;
    readonly smtpSink: number;
    readonly relaySink: number;
    readonly dns: number;
  };
  readonly tls: { readonly cert: string; readonly key: string } | null;
  readonly postfix: {
    readonly master: string;
    readonly configDir: string;
    readonly queueDir: string;
    readonly mailDir: string;
    readonly version: string;
  } | null;
  readonly smtpSink: string | null;
  readonly smtpSource: string | null;
  readonly haraka: { readonly bin: string; readonly instance: string; readonly version: string } | null;
  readonly problems: readonly string[];
}

/** Ports BASE+1 … BASE+6, as bench/peers/setup numbers them (BENCH_PORT_BASE, default 32500). */
export function portsFrom(base: number): PeersFile['ports'] {
  return {
    tern: base + 1,
    postfix: base + 2,
    haraka: base + 3,
    smtpSink: base + 4,
    relaySink: base + 5,
    dns: base + 6,
  };
}

/** Without setup (the smoke run in CI): Tern alone. */
export const NO_PEERS: PeersFile = {
  ports: portsFrom(Number(process.env.BENCH_PORT_BASE ?? 32500)),
  tls: null,
  postfix: null,
  smtpSink: null,
  smtpSource: null,
  haraka: null,
  problems: [],
};

export function readPeersFile(): PeersFile | null {
  const path = join(WORK, 'peers.json');
  if (!existsSync(path)) return null;
  return JSON.parse(readFileSync(path, 'utf8')) as PeersFile;
}

/** Recipients per path; null where a peer has no such path. */
export interface Recipients {
  /** Scenario 1: queue durably (Tern: then into a mailbox; Postfix: then discard; others: discard). */
  readonly accept: string;
  readonly local: string | null;
  readonly relay: string | null;
}

export interface RunningPeer {
  readonly name: PeerName;
  readonly port: number;
  readonly pid: number;
  readonly starttls: boolean;
  /** Keeps a queue on disk (the drain wait matters). */
  readonly durable: boolean;
  readonly rcpt: Recipients;
  /** Messages still queued (0 for peers without a queue). */
  pending(): number;
  /** The process exited on its own (a crash). */
  exited(): string | null;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly peers: PeersFile;
  /** Extra node flags for Tern (e.g. --cpu-prof). */
  readonly nodeFlags?: readonly string[];
  /** Where the server's output goes. */
  readonly logDir: string;
  /** Where Tern's config and data dir go (the smoke run keeps its own, away from a full run's). */
  readonly workDir: string;
}

/** Connect until the server greets with 220 (it is listening and serving), or fail after timeoutMs. */
export async function waitForGreeting(
  port: number,
  timeoutMs: number,
  alive: () => string | null,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const why = alive();
    if (why !== null) throw new Error(`exited before it listened: ${why}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      let text = '';
      const done = (v: boolean): void => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(2000, () => done(false));
      s.on('error', (err) => {
        last = err.message;
        done(false);
      });
      s.on('close', () => done(false));
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n')) {
          last = text.trim();
          s.end('QUIT\r\n');
          done(text.startsWith('220'));
        }
      });
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`no 220 greeting on port ${port} within ${timeoutMs} ms (${last})`);
}

/** Fails if something already listens on the port (a leftover server would be measured instead). */
export async function assertPortFree(port: number): Promise<void> {
  const busy = await new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
  if (busy) throw new Error(`port ${port} is already in use: stop whatever listens there`);
}

/** Every server this process started and has not seen exit: killed by killStrays() on the way out. */
const strays = new Set<ChildProcess>();

/** SIGKILL every server still running and its processes (for exit and signal handlers: synchronous). */
export function killStrays(): void {
  for (const child of strays) {
    if (child.pid === undefined) continue;
    for (const s of processTree(child.pid)) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  strays.clear();
}

function track(child: ChildProcess): () => string | null {
  strays.add(child);
  child.once('exit', () => strays.delete(child));
  let why: string | null = null;
  child.once('exit', (code, signal) => (why = `exit ${code ?? signal}`));
  child.once('error', (err) => (why = err.message));
  return () => why;
}

/** SIGTERM the process, wait for its whole tree to go (SIGKILL after graceMs). */
async function stopTree(child: ChildProcess, pid: number, graceMs: number): Promise<void> {
  const tree = processTree(pid).map((s) => s.pid);
  const gone = (): boolean =>
    tree.every((p) => {
      const s = processTree(p)[0];
      return s === undefined || s.state === 'Z';
    });
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (!gone() && Date.now() < deadline) await sleep(50);
  if (!gone()) {
    for (const p of tree) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await sleep(100);
  }
}

function logFile(dir: string, name: string): number {
  mkdirSync(dir, { recursive: true });
  return openSync(join(dir, `${name}.log`), 'w');
}

// ---------------------------------------------------------------------------------------------------
// Tern

export function ternConfigToml(o: {
  dataDir: string;
  port: number;
  dnsPort: number;
  relaySinkPort: number;
  tls: PeersFile['tls'];
}): string {
  return [
    '# Written by bench/peers.ts for the benchmark.',
    'hostname = "mx.tern.bench.test"',
    `data_dir = ${JSON.stringify(o.dataDir)}`,
    'local_domains = ["bench.test", "local.bench.test"]',
    '',
    '[[listeners]]',
    'service = "smtp"',
    `address = "127.0.0.1:${o.port}"`,
    'tls = "starttls"',
    '',
    // BENCH_TERN_ADMIN=on: an admin listener, so the server counts what /metrics and the page show
    // (core/observe.ts runs only then), for an A/B of what that costs.
    ...(process.env['BENCH_TERN_ADMIN'] === 'on'
      ? ['[[listeners]]', 'service = "admin"', 'address = "127.0.0.1:0"', '']
      : []),
    ...(o.tls === null
      ? []
      : ['[tls]', `cert = ${JSON.stringify(o.tls.cert)}`, `key = ${JSON.stringify(o.tls.key)}`, '']),
    // BENCH_TERN_FILTERS=read: every client (loopback is trusted here, so by network) runs a content
    // filter that reads the whole spooled message (bench/filters/read-all.ts), for an A/B of what the
    // pipeline costs a content filter before its daemon works (docs/performance.md).
    ...(process.env['BENCH_TERN_FILTERS'] === 'read'
      ? [
          '[[filters.plugin]]',
          'name = "read"',
          `path = ${JSON.stringify(join(import.meta.dirname, 'filters', 'read-all.ts'))}`,
          '[filters.networks]',
          '"127.0.0.0/8" = ["read"]',
          '',
        ]
      : []),
    '[limits]',
    'max_connections = 30000',
    'max_connections_per_ip = 30000',
    'max_transactions_per_connection = 100000',
    'max_message_bytes = 209715200',
    'shutdown_grace_seconds = 1',
    '',
    '[smtp]',
    '# Loopback clients may relay (scenario 2), as mynetworks does for Postfix.',
    'trusted_networks = ["127.0.0.0/8"]',
    '',
    '[checks]',
    '# No SPF/DKIM/DMARC: the peers do none by default either.',
    'enabled = false',
    '',
    // BENCH_TERN_LOCAL_DELIVERY=queue: local mail through the queue and its worker, as before issue 14
    // (for an A/B of "one durable step" in one run; docs/performance.md).
    ...(process.env['BENCH_TERN_LOCAL_DELIVERY'] === 'queue'
      ? ['[queue]', 'local_delivery = "queue"', '']
      : []),
    // BENCH_TERN_WORKERS=0|n|auto: session threads ([server] workers; default: Tern's default, "auto").
    ...(process.env['BENCH_TERN_WORKERS'] === undefined
      ? []
      : [
          '[server]',
          `workers = ${/^\d+$/.test(process.env['BENCH_TERN_WORKERS']) ? process.env['BENCH_TERN_WORKERS'] : '"auto"'}`,
          '',
        ]),
    // BENCH_TERN_TRACE=off: no message trace ([trace] retention_days = 0), for an A/B of its cost.
    ...(process.env['BENCH_TERN_TRACE'] === 'off' ? ['[trace]', 'retention_days = 0', ''] : []),
    '[dns]',
    `servers = ["127.0.0.1:${o.dnsPort}"]`,
    'timeout_seconds = 1',
    '',
    '[outbound]',
    `port = ${o.relaySinkPort}`,
    'tls = "none"',
    '',
    '[log]',
    'level = "info"',
    'format = "json"',
    '',
  ].join('\n');
}

async function startTern(o: StartOptions): Promise<RunningPeer> {
  const port = o.peers.ports.tern;
  await assertPortFree(port);
  const dir = join(o.workDir, 'tern');
  const dataDir = join(dir, 'data');
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'tern.toml');
  writeFileSync(
    configPath,
    ternConfigToml({
      dataDir,
      port,
      dnsPort: o.peers.ports.dns,
      relaySinkPort: o.peers.ports.relaySink,
      tls: o.peers.tls,
    }),
  );
  const config = loadConfig({ path: configPath, cwd: dir });
  const directory = await openDirectory(config);
  try {
    await directory.addUser('user@bench.test', null);
    await directory.addUser('user@local.bench.test', null);
  } finally {
    await directory.close();
  }
  const out = logFile(o.logDir, 'tern');
  const child = spawn(
    process.execPath,
    [
      ...ternNodeFlags(),
      ...(o.nodeFlags ?? []),
      join(ROOT, 'src', 'cli', 'main.ts'),
      'serve',
      '--config',
      configPath,
    ],
    { cwd: dir, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const exited = track(child);
  await waitForGreeting(port, 30_000, exited);
  const queueDb = join(dataDir, 'queue', 'queue.db');
  let db: DatabaseSync | null = null;
  return {
    name: 'tern',
    port,
    pid: child.pid!,
    starttls: true,
    durable: true,
    rcpt: { accept: 'user@bench.test', local: 'user@local.bench.test', relay: 'user@remote.test' },
    pending() {
      db ??= new DatabaseSync(queueDb, { readOnly: true });
      const row = db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number } | undefined;
      return Number(row?.n ?? 0);
    },
    exited,
    async stop() {
      db?.close();
      db = null;
      await stopTree(child, child.pid!, 15_000);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Postfix

const POSTFIX_QUEUES = ['maildrop', 'incoming', 'active', 'deferred', 'hold', 'defer', 'bounce', 'corrupt'];

function countFiles(dir: string): number {
  let n = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

async function startPostfix(o: StartOptions): Promise<RunningPeer> {
  const pf = o.peers.postfix;
  if (pf === null) throw new Error('postfix is not set up');
  const port = o.peers.ports.postfix;
  await assertPortFree(port);
  // A fresh queue and mailbox for every start, as Tern gets a fresh data dir.
  for (const q of [...POSTFIX_QUEUES, 'trace', 'flush', 'saved']) {
    const dir = join(pf.queueDir, q);
    if (!existsSync(dir)) continue;
    for (const e of readdirSync(dir)) rmSync(join(dir, e), { recursive: true, force: true });
  }
  rmSync(join(pf.mailDir, 'box'), { recursive: true, force: true });
  const out = logFile(o.logDir, 'postfix-master');
  // -d: stay in the foreground (no systemd, no init script); SIGTERM stops master and its children.
  const child = spawn(pf.master, ['-d', '-c', pf.configDir], { stdio: ['ignore', out, out] });
  closeSync(out);
  const exited = track(child);
  await waitForGreeting(port, 30_000, exited);
  return {
    name: 'postfix',
    port,
    pid: child.pid!,
    starttls: o.peers.tls !== null,
    durable: true,
    rcpt: { accept: 'user@bench.test', local: 'user@local.bench.test', relay: 'user@remote.test' },
    pending: () => POSTFIX_QUEUES.reduce((n, q) => n + countFiles(join(pf.queueDir, q)), 0),
    exited,
    stop: () => stopTree(child, child.pid!, 15_000),
  };
}

// ---------------------------------------------------------------------------------------------------
// Haraka

async function startHaraka(o: StartOptions, nodes: boolean): Promise<RunningPeer> {
  const hk = o.peers.haraka;
  if (hk === null) throw new Error('haraka is not set up');
  const port = o.peers.ports.haraka;
  await assertPortFree(port);
  const name = nodes ? 'haraka-nodes' : 'haraka';
  const out = logFile(o.logDir, name);
  // The same instance with `nodes` set: a copy beside it, so the one-process setup stays as it is.
  const instance = nodes ? `${hk.instance}-nodes` : hk.instance;
  if (nodes) {
    rmSync(instance, { recursive: true, force: true });
    cpSync(hk.instance, instance, { recursive: true });
    const ini = join(instance, 'config', 'smtp.ini');
    writeFileSync(ini, `${readFileSync(ini, 'utf8')}nodes=${availableParallelism()}\n`);
  }
  const child = spawn(process.execPath, [hk.bin, '-c', instance], {
    cwd: instance,
    // queue/discard only discards when told to; this is how it is told for every message.
    env: { ...process.env, YES_REALLY_DO_DISCARD: '1' },
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const exited = track(child);
  await waitForGreeting(port, 30_000, exited);
  return {
    name,
    port,
    pid: child.pid!,
    starttls: o.peers.tls !== null,
    durable: false,
    rcpt: { accept: 'user@bench.test', local: null, relay: null },
    pending: () => 0,
    exited,
    stop: () => stopTree(child, child.pid!, 10_000),
  };
}

// ---------------------------------------------------------------------------------------------------
// smtp-sink

/** smtp-sink on `port`: as root it must drop to a user (-u); -m lifts its 256-connection default. */
export function spawnSmtpSink(bin: string, port: number, logDir: string, name: string): ChildProcess {
  const out = logFile(logDir, name);
  const asRoot = process.getuid?.() === 0;
  const child = spawn(
    bin,
    [...(asRoot ? ['-u', 'postfix'] : []), '-m', '20000', `127.0.0.1:${port}`, '4096'],
    {
      stdio: ['ignore', out, out],
    },
  );
  closeSync(out);
  strays.add(child);
  child.once('exit', () => strays.delete(child));
  return child;
}

async function startSmtpSink(o: StartOptions): Promise<RunningPeer> {
  const bin = o.peers.smtpSink;
  if (bin === null) throw new Error('smtp-sink is not installed');
  const port = o.peers.ports.smtpSink;
  await assertPortFree(port);
  const child = spawnSmtpSink(bin, port, o.logDir, 'smtp-sink');
  const exited = track(child);
  await waitForGreeting(port, 10_000, exited);
  return {
    name: 'smtp-sink',
    port,
    pid: child.pid!,
    starttls: false,
    durable: false,
    rcpt: { accept: 'user@bench.test', local: null, relay: null },
    pending: () => 0,
    exited,
    stop: () => stopTree(child, child.pid!, 5_000),
  };
}

export function peerAvailable(name: PeerName, peers: PeersFile): boolean {
  switch (name) {
    case 'tern':
      return true;
    case 'postfix':
      return peers.postfix !== null;
    case 'haraka':
    case 'haraka-nodes':
      return peers.haraka !== null;
    case 'smtp-sink':
      return peers.smtpSink !== null;
    case 'dovecot':
      // Debian's dovecot-imapd (bench/peers/setup installs it); bench/imap-peers.ts runs it.
      return existsSync(DOVECOT_BIN);
  }
}

export function startPeer(name: PeerName, o: StartOptions): Promise<RunningPeer> {
  switch (name) {
    case 'tern':
      return startTern(o);
    case 'postfix':
      return startPostfix(o);
    case 'haraka':
      return startHaraka(o, false);
    case 'haraka-nodes':
      return startHaraka(o, true);
    case 'smtp-sink':
      return startSmtpSink(o);
    case 'dovecot':
      return Promise.reject(new Error('Dovecot is an IMAP peer only: bench/imap-peers.ts starts it'));
  }
}
