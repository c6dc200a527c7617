// Durability under kill -9 (the "250 only after fsync" promise, STYLE habit 9): `tern serve` runs as a
// child process while 20 raw-socket SMTP clients send uniquely numbered messages in a loop: half of them
// to a local user (stored by the session before its 250, issue 14), a quarter to a remote domain that
// Tern relays (through `outbound.relay`) to a receiver in this process, and a quarter to both (the local
// copy stored, the remote recipient queued), so inbound acceptance, the session's local store and
// outbound delivery are all under way at each kill; after a random 0.5–2 s
// the server gets SIGKILL, and it is restarted on the same data_dir. Clients retry what did not get its
// 250 (as a real MTA would). After the last kill the server restarts, the queue drains, and every
// message is accounted for through `tern mailbox list --json`, `tern queue list --json` and what the
// receiver got:
//   - every message that got 250 after its end of data is stored (mailbox, queue or receiver);
//   - nothing is stored that was never completely sent (the end-of-data dot never left the client);
//   - every stored message is whole: its bytes end with exactly the content the client sent;
//   - copies beyond one only where an attempt was lost in flight (dot sent, no reply): RFC 5321 §6.1
//     accepts such duplicates, any other duplicate fails; except at the receiver, where a kill between
//     its 250 and the queue's bookkeeping sends the message again (the other case §6.1 accepts), at most
//     once per kill and delivery in flight. Duplicates of both kinds are reported in the test output.
// Copies are counted per destination (the mailbox; the receiver or the queue for the remote recipient).
// Deliberately NOT here: TLS, BDAT. Cycles: TERN_DURABILITY_CYCLES (default 3) for a
// longer soak from the command line.

import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { nullLogger, systemClock } from '../../src/core/ports.ts';
import { openQueue, openStore } from '../../src/main.ts';
import { startReceiver, type Receiver } from './outbound-helpers.ts';
import { spawnTernServe } from '../support/launch.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const USER = 'u@example.test';
const REMOTE_RCPT = 'r@remote.test';
const CYCLES = Number(process.env['TERN_DURABILITY_CYCLES'] ?? 3);
const CLIENTS = 20;
const MAX_ATTEMPTS = 6;

const live = new Set<ChildProcessWithoutNullStreams>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

// ---------------------------------------------------------------------------------------------------
// The server and the CLI as programs

interface Server {
  readonly child: ChildProcessWithoutNullStreams;
  readonly port: number;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startServer(config: string): Promise<Server> {
  // The watchdog (test/support/launch.ts) stops the server if this test process dies.
  const child = spawnTernServe(config, ROOT);
  live.add(child);
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tern serve did not start:\n${output}`)), 30_000);
    void exited.then((e) => reject(new Error(`tern serve exited ${JSON.stringify(e)}:\n${output}`)));
    const onData = (d: string): void => {
      output += d;
      const m = /^listening smtp 127\.0\.0\.1:(\d+) \(starttls\)$/m.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  });
  return { child, port, output: () => output, exited };
}

async function tern(config: string, args: readonly string[]): Promise<string> {
  const child = spawn(process.execPath, [CLI, ...args, '--config', config], { cwd: ROOT });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) =>
    child.once('close', (c: number | null) => resolve(c)),
  );
  if (code !== 0) throw new Error(`tern ${args.join(' ')} exited ${code}: ${stderr}`);
  return stdout;
}

// ---------------------------------------------------------------------------------------------------
// A raw SMTP client that knows exactly what it has handed to the socket

interface Reply {
  readonly code: number;
  readonly text: string;
}

class SmtpConnection {
  private readonly socket: Socket;
  private buffer = '';
  private lines: string[] = [];
  private readonly replies: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(port: number): Promise<SmtpConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new SmtpConnection(socket)));
      socket.once('error', reject);
    });
  }

  private onData(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 2);
      this.lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = { code: Number(line.slice(0, 3)), text: this.lines.map((l) => l.slice(4)).join('\n') };
        this.lines = [];
        if (this.waiter) {
          this.waiter.resolve(reply);
          this.waiter = null;
        } else this.replies.push(reply);
      }
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.waiter?.reject(err);
    this.waiter = null;
  }

  reply(): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Resolves once the bytes are handed to the kernel; rejects once the connection is gone. */
  write(data: string): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.socket.write(data, 'latin1', (err) => (err ? reject(err) : resolve()));
    });
  }

  async command(line: string, expected: number): Promise<Reply> {
    await this.write(`${line}\r\n`);
    const r = await this.reply();
    if (r.code !== expected) throw new Refused(r);
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}

class Refused extends Error {
  readonly reply: Reply;
  constructor(reply: Reply) {
    super(`${reply.code} ${reply.text}`);
    this.reply = reply;
  }
}

// ---------------------------------------------------------------------------------------------------
// Messages and what happened to each attempt

type Destination = 'local' | 'remote';

interface Message {
  readonly id: string;
  readonly to: readonly string[];
  /** The content as the client means it (headers, body, trailer), CRLF lines, not dot-stuffed. */
  readonly content: string;
  attempts: number;
  /** Attempts answered 250 after the end of data. */
  acks: number;
  /** Attempts whose end-of-data dot may have reached the server without a reply coming back. */
  lost: number;
  /** Attempts cut before the dot was written: the server cannot have taken these. */
  partial: number;
  /** Error replies to the end of data (or earlier commands). */
  readonly refusals: string[];
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789 .,-';

function destinationOf(address: string): Destination {
  return address === USER ? 'local' : 'remote';
}

function makeMessage(id: string, to: readonly string[]): Message {
  const big = randomInt(10) === 0;
  const lineCount = big ? randomInt(500, 3000) : randomInt(1, 40);
  const lines: string[] = [];
  for (let i = 0; i < lineCount; i++) {
    let line = randomInt(8) === 0 ? '.' : '';
    const len = randomInt(0, 77);
    for (let j = 0; j < len; j++) line += ALPHABET[randomInt(ALPHABET.length)];
    lines.push(line);
  }
  const content =
    [
      'From: <sender@example.org>',
      `To: ${to.map((a) => `<${a}>`).join(', ')}`,
      `Subject: ${id}`,
      `Message-ID: <${id}@durability.example.org>`,
      'Date: Tue, 2 Jan 2024 03:04:05 +0000',
      '',
      ...lines,
      `TRAILER ${id}`,
    ].join('\r\n') + '\r\n';
  return { id, to, content, attempts: 0, acks: 0, lost: 0, partial: 0, refusals: [] };
}

/** Dot-stuffed wire form in pieces of about 16 KiB, so a kill often lands in the middle of a body. */
function wirePieces(content: string): string[] {
  const stuffed = content.replace(/^\./gm, '..');
  const pieces: string[] = [];
  for (let i = 0; i < stuffed.length; i += 16384) pieces.push(stuffed.slice(i, i + 16384));
  return pieces;
}

/** One client: retries first, then new messages, until told to stop or the connection dies. */
async function runClient(
  port: number,
  retries: Message[],
  next: (to: readonly string[]) => Message,
  stop: { stopped: boolean },
  to: readonly string[],
): Promise<void> {
  let conn: SmtpConnection;
  try {
    conn = await SmtpConnection.open(port);
    const greeting = await conn.reply();
    if (greeting.code !== 220) throw new Refused(greeting);
    await conn.command('EHLO client.example.org', 250);
  } catch {
    return; // the server died before this client got going
  }
  while (!stop.stopped) {
    const msg = retries.shift() ?? next(to);
    msg.attempts++;
    let dotWritten = false;
    try {
      await conn.command('MAIL FROM:<sender@example.org>', 250);
      for (const rcpt of msg.to) await conn.command(`RCPT TO:<${rcpt}>`, 250);
      await conn.command('DATA', 354);
      for (const piece of wirePieces(msg.content)) await conn.write(piece);
      dotWritten = true; // from here on the server may have the whole message
      await conn.write('.\r\n');
      const r = await conn.reply();
      if (r.code === 250) msg.acks++;
      else {
        msg.refusals.push(`${r.code} ${r.text}`);
        if (msg.attempts < MAX_ATTEMPTS) retries.push(msg);
      }
    } catch (err) {
      if (err instanceof Refused) {
        msg.refusals.push(err.message);
        if (msg.attempts < MAX_ATTEMPTS) retries.push(msg);
        conn.close();
        return;
      }
      if (dotWritten) msg.lost++;
      else msg.partial++;
      if (msg.attempts < MAX_ATTEMPTS) retries.push(msg);
      return;
    }
  }
  await conn.command('QUIT', 221).catch(() => undefined);
  conn.close();
}

// ---------------------------------------------------------------------------------------------------

let dir: string;
let config: string;
let receiver: Receiver;

before(async () => {
  receiver = await startReceiver({ name: 'relay.remote.test' });
  dir = await mkdtemp(join(tmpdir(), 'tern-durability-'));
  config = join(dir, 'tern.toml');
  await writeFile(
    config,
    [
      'hostname = "mx.example.test"',
      `data_dir = ${JSON.stringify(join(dir, 'data'))}`,
      'local_domains = ["example.test"]',
      '[[listeners]]',
      'service = "smtp"',
      'address = "127.0.0.1:0"',
      'tls = "starttls"',
      '[limits]',
      'shutdown_grace_seconds = 2',
      '[smtp]',
      'trusted_networks = ["127.0.0.1"]',
      '[outbound]',
      `relay = "[${receiver.host}]:${receiver.port}"`,
      'tls = "none"',
      '[log]',
      'level = "warn"',
      'format = "json"',
      '',
    ].join('\n'),
  );
  await tern(config, ['user', 'add', USER]);
});

after(async () => {
  for (const child of live) child.kill('SIGKILL');
  await receiver?.close();
  await rm(dir, { recursive: true, force: true });
});

test(`kill -9 during ${CLIENTS} concurrent senders, ${CYCLES} times: no 250'd message lost`, async (t) => {
  const messages = new Map<string, Message>();
  const retries: Message[] = [];
  let serial = 0;
  const next = (to: readonly string[]): Message => {
    const m = makeMessage(`dur-${String(++serial).padStart(6, '0')}-${randomInt(1e9).toString(36)}`, to);
    messages.set(m.id, m);
    return m;
  };

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const server = await startServer(config);
    const stop = { stopped: false };
    const clients = Array.from({ length: CLIENTS }, (_, i) =>
      runClient(
        server.port,
        retries,
        next,
        stop,
        i % 4 === 0 ? [REMOTE_RCPT] : i % 4 === 1 ? [USER, REMOTE_RCPT] : [USER],
      ),
    );
    const before = [...messages.values()].reduce((n, m) => n + m.acks, 0);
    await sleep(randomInt(500, 2001));
    server.child.kill('SIGKILL');
    const exit = await server.exited;
    assert.equal(exit.signal, 'SIGKILL', `the server was already gone:\n${server.output()}`);
    stop.stopped = true;
    await Promise.all(clients);
    const acked = [...messages.values()].reduce((n, m) => n + m.acks, 0) - before;
    t.diagnostic(`cycle ${cycle}: ${acked} acknowledged, ${retries.length} to retry after kill -9`);
  }

  // Last restart: no more clients; the delivery worker drains what was queued.
  const server = await startServer(config);
  let queued: { id: string }[] = [];
  const deadline = Date.now() + 30_000;
  for (;;) {
    queued = JSON.parse(await tern(config, ['queue', 'list', '--json'])) as { id: string }[];
    if (queued.length === 0 || Date.now() > deadline) break;
    await sleep(300);
  }
  server.child.kill('SIGTERM');
  const exit = await server.exited;
  assert.equal(exit.code, 0, `tern serve did not stop cleanly:\n${server.output()}`);

  // What the program says is stored: mailbox (by subject) and queue (by id).
  const listed = JSON.parse(await tern(config, ['mailbox', 'list', USER, '--json'])) as {
    id: string;
    subject: string;
  }[];
  type QueuedEntry = { id: string; recipients: { address: string; status: string }[] };
  const queuedEntries = JSON.parse(await tern(config, ['queue', 'list', '--json'])) as QueuedEntry[];
  queued = queuedEntries;

  // Read every stored copy through the same store/queue APIs the CLI uses (a process per message would
  // take minutes) and check it is whole; spot-check a few with `tern mailbox cat`.
  const cfg = loadConfig({ path: config, cwd: dir });
  /** Copies by `<message id>|<destination>`. */
  const copies = new Map<string, number>();
  const problems: string[] = [];
  const checkCopy = (
    where: string,
    subject: string | undefined,
    bytes: Buffer,
    destinations: readonly Destination[],
  ): void => {
    const msg = subject === undefined ? undefined : messages.get(subject);
    if (!msg) {
      problems.push(`${where}: a message nobody sent (subject ${JSON.stringify(subject)})`);
      return;
    }
    for (const d of destinations) copies.set(`${msg.id}|${d}`, (copies.get(`${msg.id}|${d}`) ?? 0) + 1);
    if (!bytes.toString('latin1').endsWith(msg.content))
      problems.push(`${where}: ${msg.id} is not the complete message (${bytes.length} bytes stored)`);
  };
  const readAll = async (it: AsyncIterable<Uint8Array>): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for await (const chunk of it) parts.push(Buffer.from(chunk));
    return Buffer.concat(parts);
  };

  const store = await openStore(cfg, systemClock);
  try {
    for (const entry of listed) {
      const content = store.read(USER, entry.id);
      assert.ok(content !== null, `listed message ${entry.id} cannot be read`);
      checkCopy(`mailbox ${entry.id}`, entry.subject, await readAll(content), ['local']);
    }
  } finally {
    await store.close();
  }
  for (const entry of listed.slice(0, 3)) {
    const cat = await tern(config, ['mailbox', 'cat', USER, entry.id]);
    assert.ok(cat.endsWith(messages.get(entry.subject)?.content ?? '\0'), `tern mailbox cat ${entry.id}`);
  }
  // The receiver holds what Tern relayed: the same content below Tern's Received: line.
  const relayCopies = new Map<string, number>();
  for (const [i, got] of receiver.accepted.entries()) {
    const subject = /^Subject: (.*)\r$/m.exec(got.data.toString('latin1'))?.[1];
    checkCopy(`receiver #${i}`, subject, got.data, ['remote']);
    if (subject !== undefined) relayCopies.set(subject, (relayCopies.get(subject) ?? 0) + 1);
  }
  if (queued.length > 0) {
    const queue = await openQueue(cfg, systemClock, nullLogger);
    try {
      for (const { id, recipients } of queuedEntries) {
        const bytes = await readAll(queue.readBody(id));
        const subject = /^Subject: (.*)\r$/m.exec(bytes.toString('latin1'))?.[1];
        // A queued copy stands for the recipients still waiting in it.
        const waiting = recipients.filter((r) => r.status === 'queued' || r.status === 'deferred');
        checkCopy(`queue ${id}`, subject, bytes, [...new Set(waiting.map((r) => destinationOf(r.address)))]);
      }
    } finally {
      await queue.close();
    }
  }

  // Account for every message.
  const duplicates: string[] = [];
  const resent: string[] = [];
  let acked = 0;
  let lostButStored = 0;
  let relayed = 0;
  let mixed = 0;
  for (const m of messages.values()) {
    if (m.acks > 0) acked++;
    if (m.to.includes(REMOTE_RCPT) && m.acks > 0) relayed++;
    if (m.to.length > 1 && m.acks > 0) mixed++;
    let storedAnywhere = false;
    for (const d of new Set(m.to.map(destinationOf))) {
      const n = copies.get(`${m.id}|${d}`) ?? 0;
      storedAnywhere ||= n > 0;
      if (m.acks > 0 && n === 0)
        problems.push(
          d === 'local'
            ? `${m.id}: got 250 but is not in the mailbox (nor queued for it)`
            : `${m.id}: got 250 but is neither queued for the remote recipient nor at the receiver`,
        );
      // At the receiver, copies beyond the accepted attempts are re-sends after a kill (reported below).
      const extraRelayed =
        d === 'remote' ? Math.max(0, (relayCopies.get(m.id) ?? 0) - Math.max(1, m.acks + m.lost)) : 0;
      if (extraRelayed > 0) resent.push(`${m.id} +${extraRelayed}`);
      if (n - extraRelayed > m.acks + m.lost)
        problems.push(
          `${m.id} (${d}): ${n} stored copies but only ${m.acks} acknowledged and ${m.lost} lost in flight ` +
            `(partial ${m.partial}, refusals ${JSON.stringify(m.refusals)})`,
        );
      if (n > 1) duplicates.push(`${m.id} (${d}) ×${n} (acks ${m.acks}, lost in flight ${m.lost})`);
    }
    if (m.acks === 0 && storedAnywhere) lostButStored++;
  }
  t.diagnostic(
    `${messages.size} messages, ${acked} acknowledged (${relayed} of them relayed, ${mixed} to both); stored: ` +
      `${listed.length} in the mailbox, ${receiver.accepted.length} at the receiver, ` +
      `${queued.length} still queued; ${lostButStored} stored without a 250 (lost in flight)`,
  );
  t.diagnostic(
    resent.length === 0
      ? "relayed again after a kill between the receiver's 250 and the bookkeeping: none"
      : `relayed again after a kill between the receiver's 250 and the bookkeeping: ${resent.join(', ')}`,
  );
  // Each kill can catch at most the deliveries in flight then (20 clients, so at most 20).
  assert.ok(resent.length <= CYCLES * CLIENTS, `${resent.length} messages relayed twice`);
  t.diagnostic(
    duplicates.length === 0
      ? 'duplicates: none'
      : `duplicates (allowed only after an attempt lost in flight): ${duplicates.join(', ')}`,
  );
  const refusals = [...messages.values()].flatMap((m) => m.refusals);
  if (refusals.length > 0) t.diagnostic(`error replies seen: ${[...new Set(refusals)].join(' | ')}`);

  assert.deepEqual(
    problems.slice(0, 20),
    [],
    `${problems.length} problem(s), the first 20 shown; server output of the last run:\n${server.output()}`,
  );
  assert.ok(acked >= CLIENTS, `too few messages acknowledged to prove anything (${acked})`);
});
