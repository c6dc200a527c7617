// What the reliability tests (test/reliability/*.test.ts) and the long-run scripts (scripts/soak.ts)
// need beyond test/e2e/harness.ts: the resources a server process holds (open file descriptors and RSS
// from /proc, V8 heap after a full GC through a signal hook preloaded into the child), a tmpfs mount for
// full-disk tests, raw sockets from a chosen 127.0.0.x source address, a canned TLS ClientHello (so a
// thousand handshakes can be started and abandoned without a thousand client-side key exchanges), and a
// line reader over a raw socket.
// Deliberately NOT here: assertions about Tern (the *.test.ts files make those), and starting Tern (the
// e2e harnesses do; withMemoryHook() only adds an environment variable around their spawn).
// Linux only: /proc, mount(8), the whole of 127.0.0.0/8 on the loopback interface.

import { execFile } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, connect as netConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import type { LogLine } from '../e2e/harness.ts';

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------------
// What a process holds

export interface ProcStats {
  /** Entries in /proc/PID/fd: sockets, files, pipes, the event loop's own descriptors. */
  readonly fds: number;
  /** Resident set size (VmRSS). */
  readonly rssBytes: number;
  /** The anonymous part of it (heap, malloc arenas, stacks): where a leak shows. */
  readonly rssAnonBytes: number;
  /** The file-backed part (code, mapped files, SQLite's shared-memory index). */
  readonly rssFileBytes: number;
}

/** Open descriptors and RSS of a running process, read from /proc (Linux). */
export function procStats(pid: number): ProcStats {
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { fds, rssBytes: kib('VmRSS'), rssAnonBytes: kib('RssAnon'), rssFileBytes: kib('RssFile') };
}

/** The open descriptors of a process by kind ("socket", "pipe", "anon_inode:[eventpoll]", file paths). */
export function fdKinds(pid: number): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`, 'utf8');
    } catch {
      continue; // closed between the listing and the readlink
    }
    const kind = target.replace(/:\[\d+\]$/, '');
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return kinds;
}

/**
 * Preloaded into a server (through NODE_OPTIONS, see withMemoryHook): on SIGUSR2 it runs a full garbage
 * collection twice and writes one JSON line to stderr with process.memoryUsage(), which the harnesses
 * parse like any log line. gc() is reached through V8's flag at run time, so the server's command line
 * stays what `npm start` runs.
 */
const MEMORY_HOOK =
  'data:text/javascript,' +
  encodeURIComponent(
    'import v8 from "node:v8";import vm from "node:vm";' +
      'v8.setFlagsFromString("--expose-gc");const gc=vm.runInNewContext("gc");let seq=0;' +
      'process.on("SIGUSR2",()=>{gc();gc();const m=process.memoryUsage();' +
      'process.stderr.write(JSON.stringify({event:"reliability.memory",seq:++seq,...m})+"\\n");});',
  );

/**
 * Run `start` (a harness's startTern/startOutboundTern) with the memory hook in NODE_OPTIONS, so the
 * server it spawns answers memorySnapshot(). The variable is restored afterwards; CLI processes spawned
 * later do not get it.
 */
export async function withMemoryHook<T>(start: () => Promise<T>): Promise<T> {
  const before = process.env['NODE_OPTIONS'];
  process.env['NODE_OPTIONS'] = `${before ?? ''} --import=${MEMORY_HOOK}`.trim();
  try {
    return await start();
  } finally {
    if (before === undefined) delete process.env['NODE_OPTIONS'];
    else process.env['NODE_OPTIONS'] = before;
  }
}

export interface MemorySnapshot {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

let memorySeq = 0;

/** Ask a server started with withMemoryHook() for its memory after a full GC. */
export async function memorySnapshot(
  server: { readonly pid: number; logs(): LogLine[] },
  timeoutMs = 10_000,
): Promise<MemorySnapshot> {
  const seen = server.logs().filter((l) => l.event === 'reliability.memory').length;
  memorySeq = seen + 1;
  process.kill(server.pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = server.logs().filter((l) => l.event === 'reliability.memory');
    const line = lines[memorySeq - 1];
    if (line) return line as unknown as MemorySnapshot;
    if (Date.now() > deadline)
      throw new Error('no reliability.memory line: was the server started withMemoryHook()?');
    await sleep(50);
  }
}

/**
 * Wait until a server's descriptor count stops moving (the same value `stableFor` times in a row, polled
 * every intervalMs): closes that the kernel and libuv finish after the last byte take a moment.
 */
export async function settledStats(
  pid: number,
  stableFor = 5,
  intervalMs = 200,
  timeoutMs = 20_000,
): Promise<ProcStats> {
  const deadline = Date.now() + timeoutMs;
  let last = procStats(pid);
  let same = 0;
  while (same < stableFor && Date.now() < deadline) {
    await sleep(intervalMs);
    const now = procStats(pid);
    same = now.fds === last.fds ? same + 1 : 0;
    last = now;
  }
  return last;
}

// ---------------------------------------------------------------------------------------------------
// A small filesystem of our own

/**
 * Mount a tmpfs of `sizeBytes` on `dir` (which must exist). Returns null when mounted, or the reason it
 * could not be (not root, no CAP_SYS_ADMIN in this container), for a test's skip message.
 */
export async function mountTmpfs(dir: string, sizeBytes: number): Promise<string | null> {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir]);
    return null;
  } catch (err) {
    return `mount -t tmpfs is not permitted here: ${(err as { stderr?: string }).stderr?.trim() ?? String(err)}`;
  }
}

/** Remount a mounted tmpfs read-only or read-write. */
export async function remount(dir: string, mode: 'ro' | 'rw'): Promise<void> {
  await run('mount', ['-o', `remount,${mode}`, dir]);
}

/** Unmount, lazily if something still holds it (a server that was killed leaves nothing, but be safe). */
export async function unmount(dir: string): Promise<void> {
  try {
    await run('umount', [dir]);
  } catch {
    await run('umount', ['-l', dir]).catch(() => undefined);
  }
}

/** Whether this machine lets a test mount a tmpfs (tried once on a scratch folder): null, or why not. */
export async function tmpfsProblem(): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), 'tern-tmpfs-probe-'));
  try {
    const problem = await mountTmpfs(dir, 1024 * 1024);
    if (problem === null) await unmount(dir);
    return problem;
  } finally {
    rmdirSync(dir);
  }
}

/** Fill the filesystem holding `dir` with a file until the kernel says ENOSPC; returns its path. */
export function fillDisk(dir: string, name = 'filler'): string {
  const path = join(dir, name);
  const fd = openSync(path, 'a');
  try {
    for (const size of [1024 * 1024, 64 * 1024, 4096, 512]) {
      const chunk = Buffer.alloc(size, 0x5a);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Free bytes on the filesystem holding `path` (statfs: blocks available to unprivileged users). */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

// ---------------------------------------------------------------------------------------------------
// Raw sockets

/** Connect to 127.0.0.1:port from `localAddress` (any 127.0.0.x on Linux); resolves once connected. */
export function connectFrom(port: number, localAddress = '127.0.0.1', host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, localAddress });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Reads CRLF lines (and raw bytes) from a socket as they come; never throws on close. */
export class LineReader {
  readonly socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #closed = false;
  #waiters: (() => void)[] = [];

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? d : Buffer.concat([this.#buffer, d]);
      this.#wake();
    });
    const closed = (): void => {
      this.#closed = true;
      this.#wake();
    };
    socket.on('close', closed);
    socket.on('end', closed);
    socket.on('error', closed);
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes received and not consumed. */
  get pending(): Buffer {
    return this.#buffer;
  }

  async #wait(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    const ac = new AbortController();
    await Promise.race([
      new Promise<void>((resolve) => this.#waiters.push(resolve)),
      sleep(left, undefined, { signal: ac.signal }).catch(() => undefined),
    ]);
    ac.abort();
    return true;
  }

  /** The next complete SMTP reply's lines (until a line with "NNN "), or null on close or timeout. */
  async reply(timeoutMs = 5000): Promise<string[] | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines: string[] = [];
      let offset = 0;
      for (;;) {
        const end = this.#buffer.indexOf('\r\n', offset);
        if (end < 0) break;
        const line = this.#buffer.subarray(offset, end).toString('latin1');
        offset = end + 2;
        lines.push(line);
        if (/^\d{3} /.test(line) || !/^\d{3}-/.test(line)) {
          this.#buffer = this.#buffer.subarray(offset);
          return lines;
        }
      }
      if (this.#closed) return null;
      if (!(await this.#wait(deadline))) return null;
    }
  }

  /** Wait for at least one byte (the start of a TLS ServerHello, say); false on close or timeout. */
  async someBytes(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buffer.length === 0) {
      if (this.#closed) return false;
      if (!(await this.#wait(deadline))) return false;
    }
    return true;
  }

  /** Wait for the peer to close; false when it is still open after timeoutMs. */
  async closeSeen(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed) if (!(await this.#wait(deadline))) return false;
    return true;
  }
}

/**
 * One real TLS ClientHello, recorded from Node's TLS client talking to a listener that only records:
 * replaying these bytes makes a server start its side of the handshake (key share, certificate,
 * signature) at no cost to the client.
 */
export async function recordClientHello(servername = 'mx.example.test'): Promise<Buffer> {
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((resolve) => (resolveHello = resolve));
  const server = createNetServer((s) => {
    s.once('data', (d: Buffer) => {
      resolveHello(d);
      s.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const client = tlsConnect({ host: '127.0.0.1', port: address.port, servername, rejectUnauthorized: false });
  client.on('error', () => undefined);
  const bytes = await hello;
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return bytes;
}

// ---------------------------------------------------------------------------------------------------
// Small statistics

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const MiB = 1024 * 1024;

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

// ---------------------------------------------------------------------------------------------------
// One message over a raw socket

export interface SendResult {
  /** The reply that ended the attempt: the one after the data, or the first refusal before it. */
  readonly code: number;
  readonly enhanced: string;
  /** Where it ended: 'greeting', 'ehlo', 'mail', 'rcpt', 'data' (the 354), 'end' (after the content). */
  readonly stage: 'greeting' | 'ehlo' | 'mail' | 'rcpt' | 'data' | 'end';
  readonly text: string;
}

/** A message body of about `bytes` octets in lines of 78 characters, numbered so no two are alike. */
export function bodyOf(bytes: number, tag: string): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${tag} line ${i} `.padEnd(78, 'abcdefghijklmnopqrstuvwxyz'.charAt(i % 26));
    lines.push(line);
    size += line.length + 2;
  }
  return lines.join('\r\n') + '\r\n';
}

/**
 * Send one message on a fresh connection (DATA with dot-stuffing, or one BDAT LAST chunk) and return how
 * it ended. Throws only when the connection breaks without a reply; a refusal is a result.
 */
export async function sendMessage(
  port: number,
  envelope: { readonly from: string; readonly to: readonly string[] },
  content: string | Buffer,
  options: { readonly bdat?: boolean; readonly localAddress?: string; readonly timeoutMs?: number } = {},
): Promise<SendResult> {
  const socket = await connectFrom(port, options.localAddress ?? '127.0.0.1');
  socket.setNoDelay(true);
  const r = new LineReader(socket);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const read = async (stage: SendResult['stage']): Promise<SendResult> => {
    const lines = await r.reply(timeoutMs);
    if (lines === null) throw new Error(`no reply at ${stage}: connection ${r.closed ? 'closed' : 'silent'}`);
    const last = lines.at(-1)!;
    const enhanced = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3}) /.exec(last)?.[1] ?? '';
    return { code: Number(last.slice(0, 3)), enhanced, stage, text: last };
  };
  try {
    let got = await read('greeting');
    if (got.code !== 220) return got;
    socket.write('EHLO sender.example\r\n');
    got = await read('ehlo');
    if (got.code !== 250) return got;
    socket.write(`MAIL FROM:<${envelope.from}>\r\n`);
    got = await read('mail');
    if (got.code !== 250) return got;
    let accepted = 0;
    let refusal: SendResult | null = null;
    for (const to of envelope.to) {
      socket.write(`RCPT TO:<${to}>\r\n`);
      got = await read('rcpt');
      if (got.code === 250) accepted++;
      else refusal ??= got;
    }
    if (accepted === 0) return refusal ?? got;
    const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
    if (options.bdat) {
      socket.write(Buffer.concat([Buffer.from(`BDAT ${bytes.length} LAST\r\n`), bytes]));
      return await read('end');
    }
    socket.write('DATA\r\n');
    got = await read('data');
    if (got.code !== 354) return got;
    let text = bytes.toString('latin1');
    if (!text.endsWith('\r\n')) text += '\r\n';
    socket.write(Buffer.from(text.replace(/^\./gm, '..') + '.\r\n', 'latin1'));
    return await read('end');
  } finally {
    socket.end('QUIT\r\n');
    setTimeout(() => socket.destroy(), 1000).unref();
  }
}

/** The pid of the `tern serve` process using `configPath` (OutboundTern does not expose it). */
export function pidOfServer(configPath: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const args = cmdline.split('\0');
    if (args.includes('serve') && args.includes(configPath)) return Number(entry);
  }
  return null;
}
