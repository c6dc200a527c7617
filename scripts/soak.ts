// Soak: `tern serve` under mixed load for a long time (30 minutes by default) while its resident memory
// and open file descriptors are sampled every few seconds; both should stay flat. The result is a JSON
// file (every sample, every count) and an SVG plot, for docs/reliability.md.
//
//   npx node scripts/soak.ts                                  # 30 minutes, a sample every 5 s
//   npx node scripts/soak.ts --duration 5m --out /tmp/soak    # writes /tmp/soak/soak.json, soak.svg
//   npx node scripts/soak.ts --duration 90s --clients 4 --interval 2 --pause-ms 0   # as fast as it goes
//   npx node scripts/soak.ts --replot /tmp/soak/soak.json                          # redraw soak.svg
//
// The load, from --clients concurrent loops, each picking at random every time:
//   inbound mail for local users over port 25 (DATA or BDAT, 1 KiB to 200 KiB); mail relayed to a remote
//   domain (delivered by Tern's outbound side to a receiver on loopback, found through a loopback DNS
//   server), some of it greylisted once (451, retried later); authenticated submission with nodemailer
//   over STARTTLS (587) and implicit TLS (465); connections reset or half-closed at a random point; floods
//   of unknown commands (421 after max_errors).
// Heap after a full GC is sampled once a minute (a signal hook, see test/reliability/support.ts). At the
// end the load stops, the queue is left to drain, and a last sample is taken.
// Deliberately NOT here: pass/fail judgement beyond printing the trend (a person reads the plot), CI.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { createTransport } from 'nodemailer';
import { startDnsServer } from '../test/support/dns-server.ts';
import { startOutboundTern, startReceiver } from '../test/e2e/outbound-helpers.ts';
import {
  LineReader,
  bodyOf,
  connectFrom,
  memorySnapshot,
  pidOfServer,
  procStats,
  sendMessage,
  withMemoryHook,
} from '../test/reliability/support.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '30m' },
    interval: { type: 'string', default: '5' },
    clients: { type: 'string', default: '6' },
    'pause-ms': { type: 'string', default: '50' },
    out: { type: 'string', default: 'soak-result' },
    /** Only draw the plot again from an earlier soak.json (into the same folder). */
    replot: { type: 'string' },
  },
});

function seconds(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text);
  if (!m) throw new Error(`bad duration ${text}: use 90s, 5m, 1h`);
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

const DURATION_S = seconds(values.duration);
const INTERVAL_S = Number(values.interval);
const CLIENTS = Number(values.clients);
const PAUSE_MS = Number(values['pause-ms']);
const OUT = resolve(values.out);
const PASSWORD = 'soak-password-1';
const LOCAL = ['alice@example.test', 'bob@example.test'];
/** Submission users: [submission] allows each 1,000 messages an hour, so the load is spread over many. */
const SENDERS = Array.from({ length: 60 }, (_, i) => `sender${i}@example.test`);

interface Sample {
  /** Seconds since the load started. */
  readonly t: number;
  readonly rssBytes: number;
  readonly rssAnonBytes: number;
  readonly fds: number;
  /** Heap after a full GC, when taken (once a minute). */
  readonly heapUsed: number | null;
  /** Operations finished so far, ok and not. */
  readonly ok: number;
  readonly failed: number;
}

// ---------------------------------------------------------------------------------------------------
// The load

const counts = new Map<string, { ok: number; failed: number }>();
let totalOk = 0;
let totalFailed = 0;
const failures: string[] = [];

function count(kind: string, ok: boolean, why?: string): void {
  const c = counts.get(kind) ?? { ok: 0, failed: 0 };
  if (ok) {
    c.ok++;
    totalOk++;
  } else {
    c.failed++;
    totalFailed++;
    if (failures.length < 50 && why !== undefined) failures.push(`${kind}: ${why}`);
  }
  counts.set(kind, c);
}

const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;
let serial = 0;

function content(to: string, bytes: number): string {
  const tag = `soak-${process.pid}-${++serial}`;
  return (
    `From: <alice@example.test>\r\nTo: <${to}>\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@example.test>\r\n` +
    `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n\r\n${bodyOf(bytes, tag)}`
  );
}

function size(): number {
  const r = Math.random();
  return r < 0.75 ? 1_000 + Math.floor(Math.random() * 9_000) : r < 0.98 ? 30_000 : 200_000;
}

async function inbound(port: number): Promise<void> {
  const to = pick(LOCAL);
  const r = await sendMessage(port, { from: 'sender@remote.test', to: [to] }, content(to, size()), {
    bdat: Math.random() < 0.3,
  });
  count('inbound', r.code === 250, r.text);
}

async function relay(port: number): Promise<void> {
  const greylisted = Math.random() < 0.25;
  const to = greylisted ? `g${++serial}@retry.test` : `r${++serial}@remote.test`;
  const r = await sendMessage(port, { from: 'alice@example.test', to: [to] }, content(to, size()));
  count(greylisted ? 'relay-greylisted' : 'relay', r.code === 250, r.text);
}

async function submission(port: number, implicit: boolean): Promise<void> {
  const sender = pick(SENDERS);
  const transport = createTransport({
    host: '127.0.0.1',
    port,
    secure: implicit,
    tls: { rejectUnauthorized: false },
    auth: { user: sender, pass: PASSWORD },
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  });
  try {
    const to = Math.random() < 0.5 ? pick(LOCAL) : `s${++serial}@remote.test`;
    await transport.sendMail({
      from: sender,
      to,
      subject: `submission ${serial}`,
      text: bodyOf(size(), 's'),
    });
    count(implicit ? 'submission-465' : 'submission-587', true);
  } catch (err) {
    count(implicit ? 'submission-465' : 'submission-587', false, String(err));
  } finally {
    transport.close();
  }
}

async function fault(port: number): Promise<void> {
  const socket = await connectFrom(port);
  socket.on('error', () => undefined);
  const r = new LineReader(socket);
  const steps = Math.floor(Math.random() * 4);
  if (steps > 0) await r.reply(5000);
  if (steps > 1) {
    socket.write('EHLO faulty.example\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\n');
    await r.reply(5000);
  }
  if (steps > 2) socket.write(`DATA\r\n${'partial line\r\n'.repeat(200)}`);
  if (Math.random() < 0.5) socket.resetAndDestroy();
  else {
    socket.end();
    await r.closeSeen(5000);
    socket.destroy();
  }
  count('fault', true);
}

async function flood(port: number): Promise<void> {
  const socket = await connectFrom(port);
  const r = new LineReader(socket);
  socket.on('error', () => undefined);
  await r.reply(5000);
  socket.write('XYZZY\r\n'.repeat(100));
  const closed = await r.closeSeen(5000);
  socket.destroy();
  count('flood', closed, 'not closed after the flood');
}

// ---------------------------------------------------------------------------------------------------
// The plot

function renderSvg(samples: readonly Sample[], loadEndS: number): string {
  const W = 900;
  const H = 520;
  const left = 70;
  const right = 20;
  const panel = (H - 90) / 2;
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const x = (t: number): number => left + ((W - left - right) * t) / tMax;
  const parts: string[] = [];
  const axisLabel = (t: number): string =>
    tMax > 300 ? `${(t / 60).toFixed(Number.isInteger(t / 60) ? 0 : 1)} min` : `${t.toFixed(0)} s`;
  const chart = (
    top: number,
    title: string,
    series: readonly { name: string; color: string; points: readonly [number, number][] }[],
    unit: string,
  ): void => {
    const all = series.flatMap((s) => s.points.map((p) => p[1]));
    const yMax = Math.max(1, ...all) * 1.15;
    const y = (v: number): number => top + panel - (panel * v) / yMax;
    parts.push(`<text x="${left}" y="${top - 8}" font-size="14" font-weight="bold">${title}</text>`);
    parts.push(
      `<rect x="${left}" y="${top}" width="${W - left - right}" height="${panel}" fill="none" stroke="#999"/>`,
    );
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
      parts.push(
        `<text x="${left - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v.toFixed(0)} ${unit}</text>`,
      );
    }
    const step = [5, 10, 30, 60, 120, 300, 600, 1800].find((st) => tMax / st <= 8) ?? 3600;
    for (let t = 0; t <= tMax; t += step) {
      parts.push(
        `<text x="${x(t).toFixed(1)}" y="${top + panel + 14}" font-size="11" text-anchor="middle">${axisLabel(t)}</text>`,
      );
    }
    const xe = x(loadEndS).toFixed(1);
    parts.push(
      `<line x1="${xe}" x2="${xe}" y1="${top}" y2="${top + panel}" stroke="#888" stroke-dasharray="4 3"/>`,
    );
    parts.push(
      `<text x="${xe}" y="${top + panel - 6}" font-size="11" text-anchor="end" fill="#666">load stops </text>`,
    );
    series.forEach((s, i) => {
      if (s.points.length === 0) return;
      const d = s.points
        .map(([t, v], j) => `${j === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`)
        .join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`);
      parts.push(
        `<text x="${W - right - 8}" y="${top + 16 + i * 14}" font-size="12" text-anchor="end" fill="${s.color}">${s.name}</text>`,
      );
    });
  };
  const MiB = 1024 * 1024;
  chart(
    30,
    'tern serve: memory',
    [
      { name: 'RSS', color: '#c0392b', points: samples.map((s) => [s.t, s.rssBytes / MiB]) },
      {
        name: 'RSS, anonymous part',
        color: '#d68910',
        // Older soak.json files have no such field: the series is then left out.
        points: samples.filter((s) => s.rssAnonBytes !== undefined).map((s) => [s.t, s.rssAnonBytes / MiB]),
      },
      {
        name: 'V8 heap used after GC',
        color: '#2471a3',
        points: samples.filter((s) => s.heapUsed !== null).map((s) => [s.t, s.heapUsed! / MiB]),
      },
    ],
    'MiB',
  );
  chart(
    60 + panel,
    'tern serve: open file descriptors',
    [{ name: 'fds', color: '#1e8449', points: samples.map((s) => [s.t, s.fds]) }],
    '',
  );
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`
  );
}

/** Least-squares slope of v over t (per minute), over the samples after the first `skip` seconds. */
function slopePerMinute(samples: readonly Sample[], value: (s: Sample) => number, skip: number): number {
  const pts = samples.filter((s) => s.t >= skip);
  if (pts.length < 2) return 0;
  const mt = pts.reduce((a, s) => a + s.t, 0) / pts.length;
  const mv = pts.reduce((a, s) => a + value(s), 0) / pts.length;
  let num = 0;
  let den = 0;
  for (const s of pts) {
    num += (s.t - mt) * (value(s) - mv);
    den += (s.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

// ---------------------------------------------------------------------------------------------------
// Main

if (values.replot !== undefined) {
  const saved = JSON.parse(readFileSync(values.replot, 'utf8')) as {
    summary: { durationSeconds: number };
    samples: Sample[];
  };
  const target = join(dirname(resolve(values.replot)), 'soak.svg');
  writeFileSync(target, renderSvg(saved.samples, saved.summary.durationSeconds));
  console.log(`soak: wrote ${target}`);
  process.exit(0);
}

mkdirSync(OUT, { recursive: true });
const dns = await startDnsServer({ zones: {} });
for (const domain of ['remote.test', 'retry.test']) {
  dns.setZone(domain, {
    '@': [{ type: 'MX', preference: 10, exchange: `mx.${domain}` }],
    mx: [{ type: 'A', address: '127.0.0.1' }],
  });
}
const receiver = await startReceiver({
  onRcpt: (address, n) =>
    address.endsWith('@retry.test') && n === 1 ? { code: 451, text: '4.7.1 Greylisted' } : undefined,
});
// The receiver keeps what it accepted; a soak must not grow our own memory without end.
setInterval(() => {
  receiver.accepted.length = 0;
  receiver.dataSeen.length = 0;
  receiver.rcpts.length = 0;
}, 10_000).unref();
const tern = await withMemoryHook(() =>
  startOutboundTern({
    dns: dns.endpoint,
    outbound: { port: receiver.port },
    queue: { retry_min_seconds: 5, retry_max_seconds: 30 },
    users: [...LOCAL, ...SENDERS].map((address) => ({ address, password: PASSWORD })),
    smtp: { trusted_networks: ['127.0.0.0/8'] },
    // warn: the harness keeps every log line in this process; info would make the driver the leak.
    logLevel: 'warn',
  }),
);
const pid = pidOfServer(tern.configPath);
if (pid === null) throw new Error('cannot find the tern serve process');
const ports = tern.ports;
console.log(
  `soak: tern serve pid ${pid}, ${DURATION_S} s, ${CLIENTS} clients, a sample every ${INTERVAL_S} s → ${OUT}`,
);

const samples: Sample[] = [];
const started = Date.now();
let lastHeapAt = -Infinity;
/** Set when the server is found gone: the load stops and the run ends with what it has. */
let died: string | null = null;
const sample = async (forceHeap = false): Promise<void> => {
  const t = (Date.now() - started) / 1000;
  if (!tern.alive()) {
    died ??= `tern serve exited at t=${t.toFixed(0)}s`;
    return;
  }
  let heapUsed: number | null = null;
  if (forceHeap || t - lastHeapAt >= 60) {
    lastHeapAt = t;
    heapUsed = (await memorySnapshot({ pid, logs: () => tern.logs() })).heapUsed;
  }
  const s = procStats(pid);
  samples.push({
    t,
    rssBytes: s.rssBytes,
    rssAnonBytes: s.rssAnonBytes,
    fds: s.fds,
    heapUsed,
    ok: totalOk,
    failed: totalFailed,
  });
  const mib = (s.rssBytes / 1024 / 1024).toFixed(1);
  console.log(
    `  t=${t.toFixed(0)}s rss=${mib}MiB fds=${s.fds}${heapUsed === null ? '' : ` heap=${(heapUsed / 1024 / 1024).toFixed(1)}MiB`} ` +
      `ok=${totalOk} failed=${totalFailed}`,
  );
};
await sample(true);

let running = true;
const worker = async (): Promise<void> => {
  while (running) {
    const r = Math.random();
    try {
      if (r < 0.4) await inbound(ports.smtp);
      else if (r < 0.6) await relay(ports.smtp);
      else if (r < 0.7) await submission(ports.submission, false);
      else if (r < 0.8) await submission(ports.submissions, true);
      else if (r < 0.95) await fault(ports.smtp);
      else await flood(ports.smtp);
    } catch (err) {
      count('exception', false, String(err));
    }
    await sleep(Math.random() * 2 * PAUSE_MS);
  }
};
const workers = Array.from({ length: CLIENTS }, worker);
const timer = setInterval(() => {
  sample().catch((err: unknown) => {
    // The process went away between the check and the read of /proc.
    died ??= `sampling failed: ${String(err)}`;
  });
}, INTERVAL_S * 1000);
const deadline = Date.now() + DURATION_S * 1000;
while (Date.now() < deadline && died === null) await sleep(Math.min(1000, deadline - Date.now()));
running = false;
await Promise.all(workers);
clearInterval(timer);
const loadEndS = (Date.now() - started) / 1000;

// Let the queue drain (greylisted mail waits for its retry), then the last sample.
const drainStarted = Date.now();
let queued = -1;
while (died === null && Date.now() - drainStarted < 120_000) {
  queued = (await tern.queueList()).length;
  if (queued === 0) break;
  await tern.tern(['queue', 'flush']);
  await sleep(2000);
}
await sleep(2000);
if (died === null) await sample(true);
const alive = tern.alive();
// The server's own output (warnings, errors, a crash's stack) is kept beside the figures.
writeFileSync(join(OUT, 'server.log'), tern.outputText());
await tern.stop();
await receiver.close();
await dns.close();

const firstHeap = samples.find((s) => s.heapUsed !== null)!;
const lastHeap = [...samples].reverse().find((s) => s.heapUsed !== null)!;
const warm = Math.min(120, DURATION_S / 4);
const summary = {
  durationSeconds: DURATION_S,
  died,
  clients: CLIENTS,
  intervalSeconds: INTERVAL_S,
  node: process.version,
  serverAlive: alive,
  queueLeftAfterDrain: queued,
  operations: Object.fromEntries(counts),
  operationsPerSecond: totalOk / DURATION_S,
  rssMiB: {
    first: samples[0]!.rssBytes / 1048576,
    last: samples.at(-1)!.rssBytes / 1048576,
    max: Math.max(...samples.map((s) => s.rssBytes)) / 1048576,
    slopePerMinuteAfterWarmup: slopePerMinute(samples, (s) => s.rssBytes / 1048576, warm),
  },
  fds: {
    first: samples[0]!.fds,
    last: samples.at(-1)!.fds,
    max: Math.max(...samples.map((s) => s.fds)),
    slopePerMinuteAfterWarmup: slopePerMinute(samples, (s) => s.fds, warm),
  },
  heapUsedMiB: { first: firstHeap.heapUsed! / 1048576, last: lastHeap.heapUsed! / 1048576 },
  failures,
};
writeFileSync(join(OUT, 'soak.json'), JSON.stringify({ summary, samples }, null, 2));
writeFileSync(join(OUT, 'soak.svg'), renderSvg(samples, loadEndS));
console.log(JSON.stringify(summary, null, 2));
console.log(`soak: wrote ${join(OUT, 'soak.json')} and ${join(OUT, 'soak.svg')}`);
process.exit(alive ? 0 : 1);
