// `npm run bench:scaling`: issue 14's scaling case. Runs the benchmark (bench/run.ts) for Tern alone once
// per `[server] workers` value (BENCH_TERN_WORKERS), one after the other on the same machine, and prints
// the curve as a Markdown table: messages per second per case, the ratio to workers = 0, CPU per message
// and peak RSS. Default: workers 0, 1, 2 and the machine's cores − 1 and cores (deduplicated).
// Flags: --workers 0,1,2,… (the values), --rounds N (2), --only SCENARIOS (accept,smtp-source,local),
// --out DIR (where each run's JSON goes; default a temporary folder). Peers must be set up
// (bench/peers/setup) for smtp-source.
// Deliberately NOT here: the measuring itself (bench/run.ts), targets (bench/results.ts).

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface SummaryRow {
  readonly caseId: string;
  readonly peer: string;
  readonly median: {
    readonly msgsPerSec?: number;
    readonly cpuMsPerMsg?: number;
    readonly peakRssMiB?: number;
  };
}

const CASES = [
  'accept c1 1KiB x1 plain',
  'accept c50 1KiB x1 plain',
  'accept c50 1KiB x100 plain',
  'accept c50 100KiB x1 plain',
  'accept c200 1KiB x1 plain',
  'accept c50 1KiB x1 starttls',
  'smtp-source c50 1KiB x1',
  'local c50 1KiB',
];

const { values } = parseArgs({
  options: {
    workers: { type: 'string' },
    rounds: { type: 'string', default: '2' },
    only: { type: 'string', default: 'accept,smtp-source,local' },
    out: { type: 'string' },
  },
});
const cores = availableParallelism();
const counts =
  values.workers === undefined
    ? [...new Set([0, 1, 2, Math.max(0, cores - 1), cores])].sort((a, b) => a - b)
    : values.workers.split(',').map((w) => Number(w));
if (counts.some((n) => !Number.isInteger(n) || n < 0)) throw new Error(`--workers: ${values.workers ?? ''}`);
const outRoot = values.out ?? mkdtempSync(join(tmpdir(), 'tern-scaling-'));

const results = new Map<number, Map<string, SummaryRow['median']>>();
for (const n of counts) {
  const out = join(outRoot, `workers-${n}`);
  mkdirSync(out, { recursive: true });
  process.stderr.write(`scaling: workers = ${n}\n`);
  const run = spawnSync(
    process.execPath,
    [
      join(import.meta.dirname, 'run.ts'),
      '--peers',
      'tern',
      '--only',
      values.only,
      '--rounds',
      values.rounds,
      '--no-setup',
      '--no-doc',
      '--no-profile',
      '--out',
      out,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, BENCH_TERN_WORKERS: String(n) } },
  );
  if (run.status !== 0) throw new Error(`bench/run.ts with workers = ${n} exited ${String(run.status)}`);
  const file = readdirSync(out)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .at(-1);
  if (file === undefined) throw new Error(`no results in ${out}`);
  const summary = (JSON.parse(readFileSync(join(out, file), 'utf8')) as { summary: SummaryRow[] }).summary;
  results.set(n, new Map(summary.filter((s) => s.peer === 'tern').map((s) => [s.caseId, s.median])));
}

const fmt = (v: number | undefined, digits = 0): string =>
  v === undefined ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: digits });
const lines = [
  `Scaling on ${cores} cores (${values.rounds} rounds each, medians; msgs/s, and the ratio to workers = ${counts[0]}):`,
  '',
  `| case | ${counts.map((n) => `workers = ${n}`).join(' | ')} |`,
  `| --- | ${counts.map(() => '---:').join(' | ')} |`,
];
for (const id of CASES) {
  const base = results.get(counts[0]!)?.get(id)?.msgsPerSec;
  if (base === undefined) continue;
  const cells = counts.map((n) => {
    const v = results.get(n)?.get(id)?.msgsPerSec;
    return v === undefined ? '—' : `${fmt(v)} (${(v / base).toFixed(2)}×)`;
  });
  lines.push(`| ${id} | ${cells.join(' | ')} |`);
}
const c50 = 'accept c50 1KiB x1 plain';
lines.push(
  `| CPU per message, ${c50} | ${counts.map((n) => `${fmt(results.get(n)?.get(c50)?.cpuMsPerMsg, 2)} ms`).join(' | ')} |`,
  `| peak RSS over the run | ${counts.map((n) => `${fmt(Math.max(...[...(results.get(n)?.values() ?? [])].map((m) => m.peakRssMiB ?? 0)))} MiB`).join(' | ')} |`,
);
process.stdout.write(`${lines.join('\n')}\n\nRaw results: ${outRoot}\n`);
