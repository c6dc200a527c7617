// `npm run bench:cluster`: issue 19's cluster case. For each node count (1, 2, 3 by default) a fresh
// PostgreSQL database (created here, migrated with `tern migrate`, dropped after), that many `tern serve`
// processes sharing it and Redis (`[storage] backend = "postgres"`), and one load generator per node
// (bench/load.ts, the clients split evenly) sending 1 KiB messages to a local user for a fixed time:
// every 250 is a message stored in PostgreSQL's mailbox store after COMMIT. Measured: messages per second
// (all nodes together), CPU per message of the Tern processes and of PostgreSQL's (from /proc), the
// host's busy share, p50/p99 latency. Printed as a Markdown table and written to
// bench/results/cluster-<timestamp>.json.
// Flags: --nodes 1,2,3  --duration S (15)  --concurrency C (50, over all nodes)  --size BYTES (1024)
//        --workers N (each node's [server] workers; default the server's own)
// Deliberately NOT here: thresholds (reported, never enforced), other peers (a cluster of Postfix
// needs a shared mailbox store of its own), anything beyond loopback.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { spawnTernServe, ternNodeFlags } from '../test/support/launch.ts';
import { TEST_POSTGRES_URL } from '../test/support/postgres.ts';
import type { LoadResult } from './load.ts';
import { mergeResults } from './load.ts';
import { hostBusyMs, sampleTree } from './proc.ts';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const LOAD = join(ROOT, 'bench', 'load.ts');
const REDIS_URL = process.env['TERN_BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1,2,3' },
    duration: { type: 'string', default: '15' },
    concurrency: { type: 'string', default: '50' },
    size: { type: 'string', default: '1024' },
    workers: { type: 'string' },
  },
});
const nodeCounts = values.nodes.split(',').map(Number);
const durationS = Number(values.duration);
const concurrency = Number(values.concurrency);
const size = Number(values.size);

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** The PostgreSQL server's postmaster pid (its process tree is every backend). */
function postgresPid(): number | null {
  const r = spawnSync('pgrep', ['-o', '-x', 'postgres'], { encoding: 'utf8' });
  const pid = Number(r.stdout.trim().split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function configToml(dir: string, url: string, prefix: string): string {
  return [
    'hostname = "bench.test"',
    `data_dir = ${JSON.stringify(join(dir, 'data'))}`,
    'local_domains = ["bench.test"]',
    '[[listeners]]',
    'service = "smtp"',
    'address = "127.0.0.1:0"',
    'tls = "none"',
    '[storage]',
    'backend = "postgres"',
    `url = ${JSON.stringify(url)}`,
    '[redis]',
    `url = ${JSON.stringify(REDIS_URL)}`,
    `key_prefix = ${JSON.stringify(prefix)}`,
    '[checks]',
    'enabled = false',
    '[log]',
    'level = "warn"',
    'format = "json"',
    ...(values.workers === undefined ? [] : ['[server]', `workers = ${values.workers}`]),
    '',
  ].join('\n');
}

function cli(configPath: string, args: readonly string[], stdin = ''): void {
  const r = spawnSync(process.execPath, [...ternNodeFlags(), CLI, ...args, '--config', configPath], {
    input: stdin,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`tern ${args.join(' ')}: ${r.stderr}`);
}

interface Node {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

async function startNode(configPath: string, dir: string): Promise<Node> {
  const child = spawnTernServe(configPath, dir);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  for (let i = 0; i < 300; i++) {
    const m = /^listening smtp 127\.0\.0\.1:(\d+) /m.exec(out);
    if (m !== null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      return {
        pid: child.pid!,
        port: Number(m[1]),
        stop: async () => {
          child.kill('SIGTERM');
          await exited;
        },
      };
    }
    if (child.exitCode !== null) throw new Error(`tern serve exited:\n${out}`);
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`tern serve did not start:\n${out}`);
}

function runLoadProcess(port: number, clients: number): Promise<LoadResult> {
  const options = {
    mode: 'messages',
    host: '127.0.0.1',
    port,
    concurrency: clients,
    perConnection: 1,
    messageBytes: size,
    durationMs: durationS * 1000,
    count: null,
    warmupMs: 2000,
    from: 'load@remote.test',
    to: 'sink@bench.test',
    keepSamples: true,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LOAD, '--options', JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('exit', () => {
      const line = out.split('\n').find((l) => l.includes('"event":"result"'));
      if (line === undefined) reject(new Error(`load generator gave no result:\n${out}`));
      else resolve(JSON.parse(line) as LoadResult);
    });
  });
}

interface Row {
  readonly nodes: number;
  readonly msgsPerSec: number;
  readonly ternCpuMsPerMsg: number;
  readonly postgresCpuMsPerMsg: number | null;
  readonly hostBusyPct: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

const rows: Row[] = [];
for (const n of nodeCounts) {
  const database = `tern_bench_${randomBytes(4).toString('hex')}`;
  const url = TEST_POSTGRES_URL.replace(/\/[^/]*$/, `/${database}`);
  const prefix = `tern-bench-${randomBytes(4).toString('hex')}:`;
  await admin(`CREATE DATABASE ${database}`);
  const dirs: string[] = [];
  const nodes: Node[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const dir = mkdtempSync(join(tmpdir(), `tern-bench-cluster-${i}-`));
      dirs.push(dir);
      writeFileSync(join(dir, 'tern.toml'), configToml(dir, url, prefix));
    }
    const first = join(dirs[0]!, 'tern.toml');
    cli(first, ['migrate']);
    cli(first, ['user', 'add', 'sink@bench.test']);
    for (const dir of dirs) nodes.push(await startNode(join(dir, 'tern.toml'), dir));
    await sleep(1000);
    const pgPid = postgresPid();
    const before = nodes.map((x) => sampleTree(x.pid).cpuMs);
    const pgBefore = pgPid === null ? 0 : sampleTree(pgPid).cpuMs;
    const busyBefore = hostBusyMs();
    const started = Date.now();
    const per = Math.max(1, Math.floor(concurrency / n));
    const results = await Promise.all(nodes.map((x) => runLoadProcess(x.port, per)));
    const wallMs = Date.now() - started;
    const ternCpu = nodes.reduce((sum, x, i) => sum + sampleTree(x.pid).cpuMs - before[i]!, 0);
    const pgCpu = pgPid === null ? null : sampleTree(pgPid).cpuMs - pgBefore;
    const busy = hostBusyMs() - busyBefore;
    const merged = mergeResults(results);
    const total = results.reduce((s, r) => s + r.totalMessages, 0);
    const row: Row = {
      nodes: n,
      msgsPerSec: results.reduce((s, r) => s + r.messagesPerSecond, 0),
      ternCpuMsPerMsg: ternCpu / Math.max(1, total),
      postgresCpuMsPerMsg: pgCpu === null ? null : pgCpu / Math.max(1, total),
      hostBusyPct: (100 * busy) / (wallMs * availableParallelism()),
      p50Ms: merged.latency.p50Ms,
      p99Ms: merged.latency.p99Ms,
      errors: merged.errors,
    };
    rows.push(row);
    process.stderr.write(`cluster: ${n} node(s): ${row.msgsPerSec.toFixed(0)} msg/s\n`);
  } finally {
    for (const x of nodes) await x.stop().catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
}

const base = rows[0]?.msgsPerSec ?? 1;
const table = [
  '| nodes | msg/s | × 1 node | Tern CPU ms/msg | PostgreSQL CPU ms/msg | host busy | p50 ms | p99 ms | errors |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.nodes} | ${r.msgsPerSec.toFixed(0)} | ${(r.msgsPerSec / base).toFixed(2)} | ${r.ternCpuMsPerMsg.toFixed(2)} | ${r.postgresCpuMsPerMsg === null ? '—' : r.postgresCpuMsPerMsg.toFixed(2)} | ${r.hostBusyPct.toFixed(0)} % | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.errors} |`,
  ),
].join('\n');
process.stdout.write(`${table}\n`);
const resultsDir = join(ROOT, 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
const stamp = new Date()
  .toISOString()
  .replace(/:/g, '-')
  .replace(/\.\d+Z$/, 'Z');
writeFileSync(
  join(resultsDir, `cluster-${stamp}.json`),
  JSON.stringify(
    {
      when: new Date().toISOString(),
      machine: {
        cores: availableParallelism(),
        cpu: cpus()[0]?.model ?? '',
        load: readFileSync('/proc/loadavg', 'utf8').trim(),
      },
      options: { nodes: nodeCounts, durationS, concurrency, size, workers: values.workers ?? null },
      rows,
    },
    null,
    2,
  ),
);
