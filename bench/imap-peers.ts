// The IMAP servers the benchmark compares (bench/imap.ts), each started on loopback with one user and
// its 10,000-message INBOX loaded the fastest honest way:
//   - Tern: `tern serve` with an `imap` listener (plaintext LOGIN allowed on loopback) beside its
//     `smtp` listener; the corpus goes in over IMAP APPEND on one connection (pipelined with LITERAL+
//     when offered, so UIDs follow the corpus order), each message with its flags and internal date.
//     New mail for the IDLE push case comes over SMTP (durable queue, then delivery into the store).
//   - Dovecot (Debian's dovecot-imapd): a private instance, never the system one: its own config,
//     base_dir, state and log under a temporary folder, `dovecot -F -c CONF`, 127.0.0.1 on a high
//     port, Maildir with its default indexes, a passwd-file user with a {PLAIN} password, plaintext
//     auth allowed (no TLS at all on this listener). The corpus is written as Maildir files directly
//     into cur/, the way Dovecot itself stores a saved message (LF line ends, `,S=` and `,W=` sizes
//     in the name, flags in the `:2,` suffix, the internal date as the file's mtime); Dovecot builds
//     its index at the first SELECT, which the benchmark times separately ("first" figures).
//     Process limits are raised so that N connections each get their imap process; everything else
//     (mail_fsync = optimized, no hibernation, no FTS) is Dovecot's default.
// Deliberately NOT here: the measurements (bench/imap.ts), installing Dovecot (bench/peers/setup).

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertNever } from '../src/core/assert-never.ts';
import { loadConfig } from '../src/config/load.ts';
import { hashPassword } from '../src/directory/password.ts';
import { openDirectory } from '../src/main.ts';
import { ternNodeFlags } from '../test/support/launch.ts';
import { corpusMessage, imapDateTime } from './imap-corpus.ts';
import { ImapClient } from './imap-client.ts';
import type { PeersFile } from './peers.ts';
import { assertPortFree, DOVECOT_BIN, ROOT, waitForGreeting } from './peers.ts';
import { processTree } from './proc.ts';

export type ImapPeerName = 'tern' | 'dovecot';

export const IMAP_USER = 'user@bench.test';
export const IMAP_PASSWORD = 'bench-imap-pässword';

export interface ImapTarget {
  readonly name: ImapPeerName;
  readonly port: number;
  /** Root of the server's process tree (Dovecot: master; its imap processes are children). */
  readonly pid: number;
  /** How new mail reaches the IDLE client in the push case. */
  readonly push: { readonly kind: 'smtp'; readonly port: number } | { readonly kind: 'append' };
  /** Loads corpus messages 0 … count-1 into INBOX; what it did, in words. */
  populate(count: number, seed: number): Promise<string>;
  /** What the server logged since the last call (Dovecot's log; '' for Tern, whose log is JSON events). */
  logSince(): string;
  exited(): string | null;
  stop(): Promise<void>;
}

export interface ImapStartOptions {
  readonly peers: PeersFile;
  readonly logDir: string;
  readonly workDir: string;
  /** Keep the data of the previous start (a restart before the idle-connections case). */
  readonly keepData: boolean;
  /** Connections the server must be able to hold at once (process and connection limits). */
  readonly connections: number;
}

/** IMAP ports: base+7 (Tern), base+8 (Dovecot), next to the SMTP ones (peers.ts). */
export function imapPorts(peers: PeersFile): { tern: number; dovecot: number } {
  return { tern: peers.ports.tern + 6, dovecot: peers.ports.tern + 7 };
}

/** Dovecot's version, or null when it is not installed. */
export function dovecotVersion(): string | null {
  const r = spawnSync(DOVECOT_BIN, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(' ')[0]! : null;
}

/** Log in until it works (the server is up and its auth process answers), or fail after timeoutMs. */
async function waitForLogin(port: number, timeoutMs: number, alive: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const why = alive();
    if (why !== null) throw new Error(`exited before it served: ${why}`);
    try {
      const c = await ImapClient.open(port);
      try {
        await c.login(IMAP_USER, IMAP_PASSWORD);
        await c.logout();
        return;
      } finally {
        c.close();
      }
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(200);
  }
  throw new Error(`no IMAP login on port ${port} within ${timeoutMs} ms (${last})`);
}

function track(child: ChildProcess): () => string | null {
  let why: string | null = null;
  child.once('exit', (code, signal) => (why = `exit ${code ?? signal}`));
  child.once('error', (err) => (why = err.message));
  return () => why;
}

/** SIGTERM, wait for the whole tree to go, SIGKILL what is left after graceMs. */
async function stopTree(child: ChildProcess, graceMs: number): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const tree = processTree(pid).map((s) => s.pid);
  const gone = (): boolean =>
    tree.every((p) => {
      const s = processTree(p)[0];
      return s === undefined || s.state === 'Z';
    });
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (!gone() && Date.now() < deadline) await sleep(50);
  for (const p of tree) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** Every IMAP server this process started and has not stopped: for exit handlers (synchronous). */
const running = new Set<ChildProcess>();
export function killImapStrays(): void {
  for (const child of running) {
    if (child.pid === undefined) continue;
    for (const s of processTree(child.pid)) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  running.clear();
}

/** APPENDs the corpus over one connection, in order; pipelined when the server offers LITERAL+. */
async function appendCorpus(port: number, count: number, seed: number): Promise<string> {
  const c = await ImapClient.open(port);
  try {
    await c.login(IMAP_USER, IMAP_PASSWORD);
    await c.ok('CAPABILITY');
    const window = c.capabilities.has('LITERAL+') ? 32 : 1;
    const t0 = performance.now();
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; i < count; i++) {
      const m = corpusMessage(i, seed);
      const p = c.append('INBOX', m.raw, m.flags, imapDateTime(m.internalDate)).then((r) => {
        if (r.status !== 'OK') throw new Error(`APPEND of corpus message ${i}: ${r.text.slice(0, 200)}`);
      });
      const tracked = p.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size >= window) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const s = (performance.now() - t0) / 1000;
    return `APPEND over one connection${window > 1 ? ` (LITERAL+, ${window} in flight)` : ''}: ${count} messages in ${s.toFixed(1)} s`;
  } finally {
    await c.logout();
  }
}

// ---------------------------------------------------------------------------------------------------
// Tern

/**
 * Tern's bench config: an smtp listener (for the IDLE push case), an imap listener with plaintext
 * LOGIN on loopback, connection limits (global, per IP and `[imap] max_connections_per_user`) above
 * what the idle-connections case opens.
 */
export function ternImapConfigToml(o: {
  dataDir: string;
  smtpPort: number;
  imapPort: number;
  tls: PeersFile['tls'];
  connections: number;
}): string {
  return [
    '# Written by bench/imap-peers.ts for the IMAP benchmark.',
    'hostname = "mx.tern.bench.test"',
    `data_dir = ${JSON.stringify(o.dataDir)}`,
    'local_domains = ["bench.test"]',
    '',
    '[[listeners]]',
    'service = "smtp"',
    `address = "127.0.0.1:${o.smtpPort}"`,
    'tls = "starttls"',
    '',
    '[[listeners]]',
    'service = "imap"',
    `address = "127.0.0.1:${o.imapPort}"`,
    'tls = "starttls"',
    'allow_plaintext_auth_on_loopback = true',
    '',
    ...(o.tls === null
      ? []
      : ['[tls]', `cert = ${JSON.stringify(o.tls.cert)}`, `key = ${JSON.stringify(o.tls.key)}`, '']),
    '[limits]',
    `max_connections = ${Math.max(30_000, o.connections + 1000)}`,
    `max_connections_per_ip = ${Math.max(30_000, o.connections + 1000)}`,
    'max_message_bytes = 209715200',
    'shutdown_grace_seconds = 1',
    '',
    '[imap]',
    `max_connections_per_user = ${Math.max(1000, o.connections + 100)}`,
    '',
    '[checks]',
    'enabled = false',
    '',
    '[log]',
    'level = "info"',
    'format = "json"',
    '',
  ].join('\n');
}

async function startTernImap(o: ImapStartOptions): Promise<ImapTarget> {
  const port = imapPorts(o.peers).tern;
  const smtpPort = o.peers.ports.tern;
  await assertPortFree(port);
  await assertPortFree(smtpPort);
  const dir = join(o.workDir, 'tern-imap');
  const dataDir = join(dir, 'data');
  const configPath = join(dir, 'tern.toml');
  if (!o.keepData) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      configPath,
      ternImapConfigToml({ dataDir, smtpPort, imapPort: port, tls: o.peers.tls, connections: o.connections }),
    );
    const directory = await openDirectory(loadConfig({ path: configPath, cwd: dir }));
    try {
      // Cheap scrypt parameters (as the e2e harness uses): 10,000 logins must not measure the KDF.
      await directory.addUser(IMAP_USER, await hashPassword(IMAP_PASSWORD, { ln: 10, r: 8, p: 1 }));
    } finally {
      await directory.close();
    }
  }
  const out = openSync(join(o.logDir, 'tern-imap.log'), o.keepData ? 'a' : 'w');
  const child = spawn(
    process.execPath,
    [...ternNodeFlags(), join(ROOT, 'src', 'cli', 'main.ts'), 'serve', '--config', configPath],
    { cwd: dir, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  running.add(child);
  const exited = track(child);
  await waitForGreeting(smtpPort, 30_000, exited);
  await waitForLogin(port, 30_000, exited);
  return {
    name: 'tern',
    port,
    pid: child.pid!,
    push: { kind: 'smtp', port: smtpPort },
    populate: (count, seed) => appendCorpus(port, count, seed),
    logSince: () => '',
    exited,
    async stop() {
      await stopTree(child, 15_000);
      running.delete(child);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Dovecot

/** The user's uid/gid: nobody when run as root (Dovecot refuses uid 0 for mail), else our own. */
function mailOwner(): { uid: number; gid: number; asRoot: boolean } {
  const uid = process.getuid?.() ?? 65534;
  return uid === 0
    ? { uid: 65534, gid: 65534, asRoot: true }
    : { uid, gid: process.getgid?.() ?? uid, asRoot: false };
}

export function dovecotConfig(o: {
  dir: string;
  port: number;
  logPath: string;
  connections: number;
  asRoot: boolean;
  user: string;
}): string {
  const processes = Math.max(1000, o.connections + 200);
  const clients = Math.max(2000, 2 * o.connections + 1000);
  return `# Written by bench/imap-peers.ts: a private Dovecot for the IMAP benchmark.
base_dir = ${o.dir}/run
state_dir = ${o.dir}/state
instance_name = tern-bench-dovecot
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = ${o.logPath}
mail_location = maildir:~/Maildir
first_valid_uid = 1
${o.asRoot ? '' : `default_login_user = ${o.user}\ndefault_internal_user = ${o.user}\n`}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${o.dir}/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u ${o.dir}/passwd
}
# One imap process per connection (Dovecot's design): room for every connection the benchmark opens.
default_process_limit = ${processes}
default_client_limit = ${clients}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${o.port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  client_limit = ${clients + 2 * processes}
}
service auth {
  client_limit = ${clients}
}
service stats {
  client_limit = ${clients}
}
protocol imap {
  mail_max_userip_connections = ${processes}
}
`;
}

let dovecotDir: string | null = null;

async function startDovecot(o: ImapStartOptions): Promise<ImapTarget> {
  const port = imapPorts(o.peers).dovecot;
  await assertPortFree(port);
  const owner = mailOwner();
  if (!o.keepData || dovecotDir === null) {
    if (dovecotDir !== null) rmSync(dovecotDir, { recursive: true, force: true });
    dovecotDir = mkdtempSync(join(tmpdir(), 'tern-bench-dovecot-'));
  }
  const dir = dovecotDir;
  const home = join(dir, 'home');
  if (!o.keepData) {
    chmodSync(dir, 0o755);
    for (const d of ['run', 'state']) mkdirSync(join(dir, d), { recursive: true });
    for (const d of ['', 'Maildir', 'Maildir/cur', 'Maildir/new', 'Maildir/tmp']) {
      mkdirSync(join(home, d), { recursive: true });
      chownSync(join(home, d), owner.uid, owner.gid);
    }
    const who = userInfo().username;
    writeFileSync(
      join(dir, 'passwd'),
      `${IMAP_USER}:{PLAIN}${IMAP_PASSWORD}:${owner.uid}:${owner.gid}::${home}::\n`,
    );
    writeFileSync(
      join(dir, 'dovecot.conf'),
      dovecotConfig({
        dir,
        port,
        logPath: join(o.logDir, 'dovecot.log'),
        connections: o.connections,
        asRoot: owner.asRoot,
        user: who,
      }),
    );
  }
  const out = openSync(join(o.logDir, 'dovecot-master.log'), o.keepData ? 'a' : 'w');
  // -F: stay in the foreground; SIGTERM stops master and its children.
  const child = spawn(DOVECOT_BIN, ['-F', '-c', join(dir, 'dovecot.conf')], {
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  running.add(child);
  const exited = track(child);
  await waitForLogin(port, 30_000, exited);
  const maildir = join(home, 'Maildir');
  const logPath = join(o.logDir, 'dovecot.log');
  let logOffset = fileSize(logPath);
  return {
    name: 'dovecot',
    port,
    pid: child.pid!,
    push: { kind: 'append' },
    populate: (count, seed) => Promise.resolve(writeMaildir(maildir, count, seed, owner)),
    logSince() {
      const size = fileSize(logPath);
      if (size <= logOffset) return '';
      const fd = openSync(logPath, 'r');
      try {
        const buf = Buffer.alloc(Math.min(size - logOffset, 16 * 1024 * 1024));
        const n = readSync(fd, buf, 0, buf.length, logOffset);
        logOffset = size;
        return buf.toString('utf8', 0, n);
      } finally {
        closeSync(fd);
      }
    },
    exited,
    async stop() {
      await stopTree(child, 15_000);
      running.delete(child);
    },
  };
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Writes the corpus as Maildir files in cur/, as Dovecot itself would store each message. */
function writeMaildir(
  maildir: string,
  count: number,
  seed: number,
  owner: { uid: number; gid: number },
): string {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const m = corpusMessage(i, seed);
    // Dovecot saves with LF line ends (mail_save_crlf = no); S= is the file's size, W= the CRLF size.
    const lf = Buffer.from(m.raw.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const letters = m.flags
      .map((f) => (f === '\\Flagged' ? 'F' : f === '\\Answered' ? 'R' : 'S'))
      .sort()
      .join('');
    const secs = Math.floor(m.internalDate.getTime() / 1000);
    const name = `${secs}.M${i}P1.bench.test,S=${lf.length},W=${m.raw.length}:2,${letters}`;
    const path = join(maildir, 'cur', name);
    writeFileSync(path, lf);
    chownSync(path, owner.uid, owner.gid);
    utimesSync(path, m.internalDate, m.internalDate);
  }
  const s = (performance.now() - t0) / 1000;
  return `Maildir files written into cur/ directly: ${count} messages in ${s.toFixed(1)} s (Dovecot indexes them at the first SELECT)`;
}

/** Removes Dovecot's temporary folder (its Maildir, indexes and config). */
export function removeDovecotFiles(): void {
  if (dovecotDir !== null) rmSync(dovecotDir, { recursive: true, force: true });
  dovecotDir = null;
}

export function startImapTarget(name: ImapPeerName, o: ImapStartOptions): Promise<ImapTarget> {
  switch (name) {
    case 'tern':
      return startTernImap(o);
    case 'dovecot':
      return startDovecot(o);
    default:
      return assertNever(name);
  }
}
