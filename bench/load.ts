// The benchmark's load generator: N concurrent SMTP clients over raw sockets (node:net, node:tls), one
// new connection per message or M messages per connection, plain or STARTTLS (RFC 3207), for a fixed
// duration or a fixed count. It measures messages/s and the latency from the end of data (the write that
// carries the final "<CRLF>.<CRLF>") to the server's reply (RFC 5321 §4.1.1.4, §4.3.2), as p50/p99.
// Other modes: STARTTLS handshakes per second, N idle connections held open (greeted, after EHLO), and
// one large message streamed in 64 KiB writes.
// Commands are pipelined (MAIL, RCPT, DATA in one write, RFC 2920) when the server offers PIPELINING;
// the message and its final dot go out in one write (corked), so no reply waits on Nagle/delayed ACK.
// Deliberately NOT here: starting servers, measuring their CPU or memory (run.ts, proc.ts do that),
// verifying certificates (benchmark peers use a self-signed one), AUTH, BDAT, dot-stuffing (the
// generated text has no line that starts with a dot).
//
// As a program: `node bench/load.ts --port 2525 --concurrency 50 --size 1024 --duration 5`, or
// `--options '<LoadOptions as JSON>'`; it prints JSON lines on stdout: {"event":"ready",...} in idle
// mode once the connections are open (it then holds them until stdin ends or a line arrives on it, or
// holdMs passes), and {"event":"result",...} last.

import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export type LoadMode = 'messages' | 'handshakes' | 'idle' | 'large';

export interface LoadOptions {
  readonly mode: LoadMode;
  readonly host: string;
  readonly port: number;
  /** Clients at once (messages, handshakes); connections opened at once (idle). */
  readonly concurrency: number;
  /** Messages sent over one connection before QUIT (1: a new connection per message). */
  readonly perConnection: number;
  /** Size of each message as sent (headers and body, CRLFs included). */
  readonly messageBytes: number;
  /** STARTTLS before the mail transactions. */
  readonly starttls: boolean;
  /** Stop starting transactions after this long (ms); null when `count` bounds the run. */
  readonly durationMs: number | null;
  /** Send exactly this many messages (over all clients); null when `durationMs` bounds the run. */
  readonly count: number | null;
  /** Messages finished in the first warmupMs count towards totalMessages but not the rate/latency. */
  readonly warmupMs: number;
  readonly from: string;
  readonly to: string;
  readonly helo: string;
  /** How long to wait for any one reply before the connection counts as failed. */
  readonly replyTimeoutMs: number;
  /** idle: how many connections to open. */
  readonly connections: number;
  /** idle: how long to wait for the greetings of all connections before reporting `ready`. */
  readonly openTimeoutMs: number;
  /** idle: the longest hold after `ready` (stdin ending or a line on it releases earlier). */
  readonly holdMs: number;
  /** Return every latency sample (ms), so several generators' results can be merged. */
  readonly keepSamples: boolean;
}

export const defaultLoadOptions: LoadOptions = {
  mode: 'messages',
  host: '127.0.0.1',
  port: 2525,
  concurrency: 1,
  perConnection: 1,
  messageBytes: 1024,
  starttls: false,
  durationMs: 5000,
  count: null,
  warmupMs: 0,
  from: 'sender@client.bench.test',
  to: 'user@bench.test',
  helo: 'client.bench.test',
  replyTimeoutMs: 30_000,
  connections: 1000,
  openTimeoutMs: 10_000,
  holdMs: 60_000,
  keepSamples: false,
};

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface LoadResult {
  readonly mode: LoadMode;
  /** Messages (or handshakes) finished inside the measured window (after warm-up). */
  readonly messages: number;
  /** Everything finished, warm-up included: the denominator of CPU per message. */
  readonly totalMessages: number;
  /** Length of the measured window (ms). */
  readonly elapsedMs: number;
  /** From the first connect to the last reply (ms). */
  readonly wallMs: number;
  readonly messagesPerSecond: number;
  readonly latency: LatencySummary;
  readonly connectionsOpened: number;
  readonly errors: number;
  /** The first few distinct errors, as text. */
  readonly errorSamples: readonly string[];
  /** handshakes: STARTTLS handshakes completed in the window (equal to `messages`). */
  readonly handshakes: number;
  /** idle: connections that were greeted and answered EHLO; opened but not greeted. */
  readonly idle: { readonly greeted: number; readonly notGreeted: number; readonly openMs: number } | null;
  /** large: from MAIL to the final reply, and from the end of data to the final reply (ms). */
  readonly large: { readonly totalMs: number; readonly endToReplyMs: number; readonly bytes: number } | null;
  /** CPU the generator's process used (user + system, ms): lets run.ts tell other load on the machine. */
  readonly cpuMs: number;
  /** Latency samples (ms), when keepSamples. */
  readonly samples?: readonly number[];
}

// ---------------------------------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarizeLatencies(samples: readonly number[] | Float64Array): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    count: sorted.length,
    meanMs: round(sorted.length === 0 ? 0 : sum / sorted.length),
    p50Ms: round(percentile(sorted, 50)),
    p90Ms: round(percentile(sorted, 90)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted.length === 0 ? 0 : sorted[sorted.length - 1]!),
  };
}

/** Results of several generators run side by side over the same window, as one. */
export function mergeResults(results: readonly LoadResult[]): LoadResult {
  const first = results[0];
  if (first === undefined) throw new Error('mergeResults: nothing to merge');
  const samples = results.flatMap((r) => r.samples ?? []);
  const messages = results.reduce((s, r) => s + r.messages, 0);
  const elapsedMs = Math.max(...results.map((r) => r.elapsedMs));
  const errorSamples = [...new Set(results.flatMap((r) => r.errorSamples))].slice(0, 5);
  return {
    ...first,
    messages,
    totalMessages: results.reduce((s, r) => s + r.totalMessages, 0),
    elapsedMs,
    wallMs: Math.max(...results.map((r) => r.wallMs)),
    messagesPerSecond: elapsedMs > 0 ? (messages * 1000) / elapsedMs : 0,
    latency: summarizeLatencies(samples),
    connectionsOpened: results.reduce((s, r) => s + r.connectionsOpened, 0),
    cpuMs: results.reduce((s, r) => s + r.cpuMs, 0),
    errors: results.reduce((s, r) => s + r.errors, 0),
    errorSamples,
    handshakes: results.reduce((s, r) => s + r.handshakes, 0),
    samples,
  };
}

// ---------------------------------------------------------------------------------------------------
// Message text

const BODY_LINE = Buffer.from(`${'x'.repeat(76)}\r\n`, 'latin1');

/** A message body of about `bytes` octets (headers excluded), whole lines, ending with CRLF. */
function bodyOf(bytes: number): Buffer {
  const lines = Math.max(1, Math.ceil(bytes / BODY_LINE.length));
  return Buffer.concat(Array.from({ length: lines }, () => BODY_LINE));
}

function headersOf(o: LoadOptions, serial: number): Buffer {
  return Buffer.from(
    `From: <${o.from}>\r\nTo: <${o.to}>\r\nSubject: bench ${serial}\r\n` +
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n` +
      `Message-ID: <${serial}.${process.pid}.${Date.now()}@client.bench.test>\r\n\r\n`,
    'latin1',
  );
}

const END_OF_DATA = Buffer.from('.\r\n', 'latin1');

// ---------------------------------------------------------------------------------------------------
// One SMTP connection: replies parsed as they arrive (RFC 5321 §4.2.1), stamped with their arrival time.

interface Reply {
  readonly code: number;
  readonly lines: readonly string[];
  /** performance.now() when the last line arrived. */
  readonly at: number;
}

class SmtpError extends Error {}

class SmtpConnection {
  socket: Socket | TLSSocket;
  lastActivity = performance.now();
  #text = '';
  #lines: string[] = [];
  #replies: Reply[] = [];
  #waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  #failure: Error | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.#attach(socket);
  }

  static async open(host: string, port: number): Promise<SmtpConnection> {
    const socket = netConnect({ host, port });
    socket.setNoDelay(true);
    const conn = new SmtpConnection(socket);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve();
      });
    });
    return conn;
  }

  #onData = (chunk: Buffer): void => {
    this.lastActivity = performance.now();
    this.#text += chunk.toString('latin1');
    let eol: number;
    while ((eol = this.#text.indexOf('\r\n')) >= 0) {
      const line = this.#text.slice(0, eol);
      this.#text = this.#text.slice(eol + 2);
      this.#lines.push(line);
      if (line.length < 4 || line[3] !== '-') {
        const reply: Reply = { code: Number(line.slice(0, 3)), lines: this.#lines, at: this.lastActivity };
        this.#lines = [];
        const waiter = this.#waiter;
        if (waiter !== null) {
          this.#waiter = null;
          waiter.resolve(reply);
        } else {
          this.#replies.push(reply);
        }
      }
    }
  };

  #onEnd = (): void => this.#fail(new SmtpError('connection closed by the server'));
  #onError = (err: Error): void => this.#fail(err);

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
    socket.on('error', this.#onError);
  }

  #detach(socket: Socket | TLSSocket): void {
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onEnd);
    socket.off('error', this.#onError);
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.reject(err);
  }

  /** Fail whatever waits (the watchdog's timeout) and drop the connection. */
  abort(why: string): void {
    this.#fail(new SmtpError(why));
    this.socket.destroy();
  }

  reply(): Promise<Reply> {
    const queued = this.#replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  async expect(code: number, what: string): Promise<Reply> {
    const r = await this.reply();
    if (r.code !== code) throw new SmtpError(`${what}: expected ${code}, got ${r.lines.join(' | ')}`);
    return r;
  }

  write(data: string | Buffer): void {
    this.lastActivity = performance.now();
    this.socket.write(data);
  }

  /** Write and wait until the socket can take more (streaming large messages). */
  async writeDrained(data: Buffer): Promise<void> {
    this.lastActivity = performance.now();
    if (!this.socket.write(data)) await once(this.socket, 'drain');
  }

  /** After the server's 220 to STARTTLS: TLS over the same socket (certificate not verified). */
  async upgrade(): Promise<void> {
    const plain = this.socket;
    this.#detach(plain);
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false });
    secure.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      secure.once('error', onError);
      secure.once('secureConnect', () => {
        secure.off('error', onError);
        resolve();
      });
    });
    this.socket = secure;
    this.#attach(secure);
  }

  /** QUIT and wait for the 221 (or the close), then release the socket. */
  async quit(): Promise<void> {
    try {
      this.write('QUIT\r\n');
      await this.reply();
    } catch {
      // Closing anyway: a server that drops the connection on QUIT without a 221 is not our measurement.
    }
    this.destroy();
  }

  destroy(): void {
    this.#detach(this.socket);
    this.socket.on('error', () => undefined);
    this.socket.destroy();
  }
}

/** EHLO, returning the extension keywords (upper case). */
async function ehlo(conn: SmtpConnection, helo: string): Promise<Set<string>> {
  conn.write(`EHLO ${helo}\r\n`);
  const r = await conn.expect(250, 'EHLO');
  return new Set(r.lines.slice(1).map((l) => l.slice(4).split(' ')[0]!.toUpperCase()));
}

async function greetAndEhlo(
  conn: SmtpConnection,
  o: LoadOptions,
  starttls: boolean,
): Promise<{ pipelining: boolean }> {
  await conn.expect(220, 'greeting');
  let caps = await ehlo(conn, o.helo);
  if (starttls) {
    if (!caps.has('STARTTLS')) throw new SmtpError('the server does not offer STARTTLS');
    conn.write('STARTTLS\r\n');
    await conn.expect(220, 'STARTTLS');
    await conn.upgrade();
    caps = await ehlo(conn, o.helo);
  }
  return { pipelining: caps.has('PIPELINING') };
}

// ---------------------------------------------------------------------------------------------------
// The run

class Run {
  readonly o: LoadOptions;
  readonly started = performance.now();
  readonly warmEnd: number;
  readonly deadline: number;
  remaining: number;
  windowCount = 0;
  total = 0;
  errors = 0;
  connectionsOpened = 0;
  lastDone = this.started;
  readonly errorSamples = new Set<string>();
  readonly live = new Set<SmtpConnection>();
  samples = new Float64Array(4096);
  sampleCount = 0;
  #watchdog: NodeJS.Timeout;

  constructor(o: LoadOptions) {
    this.o = o;
    this.warmEnd = this.started + o.warmupMs;
    this.deadline = o.durationMs === null ? Infinity : this.started + o.durationMs;
    this.remaining = o.count ?? Infinity;
    // One timer for every connection rather than one per reply: a stalled server fails its clients.
    this.#watchdog = setInterval(() => {
      const now = performance.now();
      for (const c of this.live) {
        if (now - c.lastActivity > o.replyTimeoutMs) c.abort(`no reply within ${o.replyTimeoutMs} ms`);
      }
    }, 250);
  }

  stopping(): boolean {
    return performance.now() >= this.deadline || this.remaining <= 0;
  }

  claim(): boolean {
    if (performance.now() >= this.deadline || this.remaining <= 0) return false;
    this.remaining -= 1;
    return true;
  }

  done(at: number, latencyMs: number | null): void {
    this.total += 1;
    this.lastDone = at;
    if (at < this.warmEnd || at > this.deadline) return;
    this.windowCount += 1;
    if (latencyMs === null) return;
    if (this.sampleCount === this.samples.length) {
      const bigger = new Float64Array(this.samples.length * 2);
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.sampleCount++] = latencyMs;
  }

  failed(err: unknown): void {
    this.errors += 1;
    if (this.errorSamples.size < 5) this.errorSamples.add(err instanceof Error ? err.message : String(err));
  }

  async open(): Promise<SmtpConnection> {
    const conn = await SmtpConnection.open(this.o.host, this.o.port);
    this.connectionsOpened += 1;
    this.live.add(conn);
    return conn;
  }

  close(conn: SmtpConnection): void {
    this.live.delete(conn);
    conn.destroy();
  }

  finish(extra: Pick<LoadResult, 'idle' | 'large'>): LoadResult {
    clearInterval(this.#watchdog);
    for (const c of this.live) c.destroy();
    const end = this.o.durationMs === null ? this.lastDone : Math.min(this.deadline, performance.now());
    const elapsedMs = Math.max(0, end - Math.max(this.started, this.warmEnd));
    const samples = this.samples.subarray(0, this.sampleCount);
    return {
      mode: this.o.mode,
      messages: this.windowCount,
      totalMessages: this.total,
      elapsedMs: Math.round(elapsedMs),
      wallMs: Math.round(this.lastDone - this.started),
      messagesPerSecond: elapsedMs > 0 ? Math.round((this.windowCount * 1000 * 10) / elapsedMs) / 10 : 0,
      latency: summarizeLatencies(samples),
      connectionsOpened: this.connectionsOpened,
      errors: this.errors,
      errorSamples: [...this.errorSamples],
      handshakes: this.o.mode === 'handshakes' ? this.windowCount : 0,
      cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
      ...extra,
      ...(this.o.keepSamples ? { samples: Array.from(samples, (v) => Math.round(v * 1000) / 1000) } : {}),
    };
  }
}

async function transaction(
  run: Run,
  conn: SmtpConnection,
  pipelining: boolean,
  headers: Buffer,
  body: Buffer,
): Promise<void> {
  const o = run.o;
  const mail = `MAIL FROM:<${o.from}>\r\n`;
  const rcpt = `RCPT TO:<${o.to}>\r\n`;
  if (pipelining) {
    conn.write(`${mail}${rcpt}DATA\r\n`);
    await conn.expect(250, 'MAIL');
    await conn.expect(250, 'RCPT');
    await conn.expect(354, 'DATA');
  } else {
    conn.write(mail);
    await conn.expect(250, 'MAIL');
    conn.write(rcpt);
    await conn.expect(250, 'RCPT');
    conn.write('DATA\r\n');
    await conn.expect(354, 'DATA');
  }
  // One write for headers, body and the final dot: the latency clock starts when it leaves.
  conn.socket.cork();
  conn.socket.write(headers);
  conn.socket.write(body);
  conn.socket.write(END_OF_DATA);
  const sent = performance.now();
  conn.lastActivity = sent;
  conn.socket.uncork();
  const r = await conn.reply();
  if (r.code !== 250) throw new SmtpError(`end of data: expected 250, got ${r.lines.join(' | ')}`);
  run.done(r.at, r.at - sent);
}

let serial = 0;

async function messageClient(run: Run, body: Buffer): Promise<void> {
  const o = run.o;
  while (!run.stopping()) {
    let conn: SmtpConnection | null = null;
    try {
      conn = await run.open();
      const { pipelining } = await greetAndEhlo(conn, o, o.starttls);
      for (let i = 0; i < o.perConnection && run.claim(); i++) {
        await transaction(run, conn, pipelining, headersOf(o, ++serial), body);
      }
      await conn.quit();
      run.live.delete(conn);
    } catch (err) {
      run.failed(err);
      if (conn !== null) run.close(conn);
      // A refused or failing server should not be hammered in a tight loop.
      await sleep(10);
    }
  }
}

async function handshakeClient(run: Run): Promise<void> {
  const o = run.o;
  while (run.claim()) {
    let conn: SmtpConnection | null = null;
    try {
      conn = await run.open();
      await greetAndEhlo(conn, o, true);
      run.done(performance.now(), null);
      await conn.quit();
      run.live.delete(conn);
    } catch (err) {
      run.failed(err);
      if (conn !== null) run.close(conn);
      await sleep(10);
    }
  }
}

async function runMessages(o: LoadOptions): Promise<LoadResult> {
  const run = new Run(o);
  const body = bodyOf(Math.max(0, o.messageBytes - headersOf(o, 0).length));
  const client = o.mode === 'handshakes' ? () => handshakeClient(run) : () => messageClient(run, body);
  await Promise.all(Array.from({ length: o.concurrency }, client));
  return run.finish({ idle: null, large: null });
}

async function runLarge(o: LoadOptions): Promise<LoadResult> {
  const run = new Run({ ...o, durationMs: null, count: 1 });
  let large: LoadResult['large'] = null;
  let conn: SmtpConnection | null = null;
  try {
    conn = await run.open();
    const { pipelining } = await greetAndEhlo(conn, o, o.starttls);
    const t0 = performance.now();
    const headers = headersOf(o, 1);
    const mail = `MAIL FROM:<${o.from}> SIZE=${o.messageBytes}\r\n`;
    if (pipelining) {
      conn.write(`${mail}RCPT TO:<${o.to}>\r\nDATA\r\n`);
      await conn.expect(250, 'MAIL');
      await conn.expect(250, 'RCPT');
    } else {
      conn.write(mail);
      await conn.expect(250, 'MAIL');
      conn.write(`RCPT TO:<${o.to}>\r\n`);
      await conn.expect(250, 'RCPT');
      conn.write('DATA\r\n');
    }
    await conn.expect(354, 'DATA');
    await conn.writeDrained(headers);
    const chunk = bodyOf(64 * 1024);
    let left = Math.max(0, o.messageBytes - headers.length);
    while (left > 0) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, Math.ceil(left / 78) * 78);
      await conn.writeDrained(part);
      left -= part.length;
    }
    const sent = performance.now();
    conn.write(END_OF_DATA);
    const r = await conn.reply();
    if (r.code !== 250) throw new SmtpError(`end of data: expected 250, got ${r.lines.join(' | ')}`);
    run.done(r.at, r.at - sent);
    large = { totalMs: Math.round(r.at - t0), endToReplyMs: Math.round(r.at - sent), bytes: o.messageBytes };
    await conn.quit();
    run.live.delete(conn);
  } catch (err) {
    run.failed(err);
    if (conn !== null) run.close(conn);
  }
  return run.finish({ idle: null, large });
}

/** Open `connections` connections, greet them, and hold them until released. */
async function runIdle(
  o: LoadOptions,
  released: Promise<void>,
  onReady: (r: unknown) => void,
): Promise<LoadResult> {
  const run = new Run({ ...o, durationMs: null, count: null, replyTimeoutMs: Infinity });
  const openDeadline = performance.now() + o.openTimeoutMs;
  let next = 0;
  let greeted = 0;
  let notGreeted = 0;
  const held: SmtpConnection[] = [];
  const opener = async (): Promise<void> => {
    while (next < o.connections && performance.now() < openDeadline) {
      next += 1;
      let conn: SmtpConnection | null = null;
      try {
        conn = await run.open();
        held.push(conn);
        const left = openDeadline - performance.now();
        // A server at its process limit leaves new connections in the listen queue, ungreeted.
        const greeting = await Promise.race([conn.reply(), sleep(Math.max(1, left)).then(() => null)]);
        if (greeting === null) {
          notGreeted += 1;
          continue;
        }
        if (greeting.code !== 220) throw new SmtpError(`greeting: ${greeting.lines.join(' | ')}`);
        await ehlo(conn, o.helo);
        greeted += 1;
      } catch (err) {
        run.failed(err);
        if (conn !== null) run.close(conn);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, opener));
  const openMs = Math.round(performance.now() - run.started);
  const idle = { greeted, notGreeted, openMs };
  onReady({ event: 'ready', ...idle, errors: run.errors });
  await Promise.race([released, sleep(o.holdMs)]);
  for (const c of held) c.destroy();
  run.live.clear();
  return run.finish({ idle, large: null });
}

export async function runLoad(
  options: Partial<LoadOptions>,
  idle?: { released: Promise<void>; onReady: (ready: unknown) => void },
): Promise<LoadResult> {
  const o: LoadOptions = { ...defaultLoadOptions, ...options };
  switch (o.mode) {
    case 'messages':
    case 'handshakes':
      return runMessages(o);
    case 'large':
      return runLarge(o);
    case 'idle':
      return runIdle(o, idle?.released ?? Promise.resolve(), idle?.onReady ?? (() => undefined));
  }
}

// ---------------------------------------------------------------------------------------------------
// Command line

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      options: { type: 'string' },
      mode: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      concurrency: { type: 'string', short: 'c' },
      'per-connection': { type: 'string', short: 'm' },
      size: { type: 'string', short: 's' },
      starttls: { type: 'boolean' },
      duration: { type: 'string', short: 'd' },
      count: { type: 'string', short: 'n' },
      warmup: { type: 'string' },
      to: { type: 'string' },
      from: { type: 'string' },
      connections: { type: 'string' },
    },
  });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const fromJson = values.options === undefined ? {} : (JSON.parse(values.options) as Partial<LoadOptions>);
  const flags: Record<string, unknown> = {
    mode: values.mode,
    host: values.host,
    port: num(values.port),
    concurrency: num(values.concurrency),
    perConnection: num(values['per-connection']),
    messageBytes: num(values.size),
    starttls: values.starttls,
    durationMs: values.duration === undefined ? undefined : Number(values.duration) * 1000,
    count: num(values.count),
    warmupMs: values.warmup === undefined ? undefined : Number(values.warmup) * 1000,
    to: values.to,
    from: values.from,
    connections: num(values.connections),
  };
  for (const k of Object.keys(flags)) if (flags[k] === undefined) delete flags[k];
  if (flags.count !== undefined && flags.durationMs === undefined) flags.durationMs = null;
  const options = { ...fromJson, ...(flags as Partial<LoadOptions>) };
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  if (options.mode === 'idle') {
    // Released by a line on stdin or its end (the parent went away).
    const rl = createInterface({ input: process.stdin });
    rl.once('line', () => release());
    rl.once('close', () => release());
  }
  const result = await runLoad(options, {
    released,
    onReady: (ready) => process.stdout.write(`${JSON.stringify(ready)}\n`),
  });
  process.stdout.write(`${JSON.stringify({ event: 'result', ...result })}\n`);
  process.exit(0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
