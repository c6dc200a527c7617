// Smoke test of the benchmark harness (bench/): runs `node bench/run.ts --smoke` — Tern alone, every
// scenario for a moment, the profiling pass — and checks that each produced figures, with no thresholds
// on them (speed is for full runs on a quiet machine, not for CI). Also checks the harness's own
// arithmetic on small inputs: percentiles, /proc stat parsing, profile summaries, medians, targets, and
// that regenerating docs/performance.md keeps the hand-written text.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { percentile, summarizeLatencies } from '../bench/load.ts';
import { parseStat } from '../bench/proc.ts';
import { summarizeProfile } from '../bench/profile.ts';
import type { CpuProfile } from '../bench/profile.ts';
import { renderChart, renderMarkdown, spliceGenerated, BEGIN_MARK, END_MARK } from '../bench/report.ts';
import type { BenchResults, CaseRun } from '../bench/results.ts';
import { judgeTargets, median, summarize, TARGET_CASES } from '../bench/results.ts';

const ROOT = join(import.meta.dirname, '..');

test('percentile is nearest-rank; latency summary', () => {
  const v = Float64Array.from([5, 1, 4, 2, 3]).sort();
  assert.equal(percentile(v, 50), 3);
  assert.equal(percentile(v, 99), 5);
  assert.equal(percentile(v, 1), 1);
  assert.equal(percentile([], 50), 0);
  const s = summarizeLatencies(Array.from({ length: 100 }, (_, i) => i + 1));
  assert.equal(s.p50Ms, 50);
  assert.equal(s.p99Ms, 99);
  assert.equal(s.maxMs, 100);
  assert.equal(s.meanMs, 50.5);
});

test('parseStat reads CPU ticks past a command name with spaces and parentheses', () => {
  // Fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
  const line = '1234 (smtpd (x) y) S 77 1 1 0 -1 4194560 10 0 0 0 150 25 7 3 20 0 1 0 100 1000 200';
  const s = parseStat(line);
  assert.deepEqual(s, { pid: 1234, ppid: 77, state: 'S', ticks: 150 + 25 + 7 + 3 });
  assert.equal(parseStat('garbage'), null);
});

test('summarizeProfile: self, total and per-file shares, idle left out, window honoured', () => {
  const frame = (functionName: string, url = '', lineNumber = 0) => ({
    functionName,
    url,
    lineNumber,
    columnNumber: 0,
  });
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 5] },
      { id: 2, callFrame: frame('serve', 'file:///repo/src/server/a.ts', 9), children: [3] },
      { id: 3, callFrame: frame('flush', 'file:///repo/src/db/b.ts', 19), children: [] },
      { id: 5, callFrame: frame('(idle)'), children: [] },
    ],
    startTime: 0,
    endTime: 8000,
    // Eight samples 1 ms apart: flush ×4, serve ×2, idle ×2.
    samples: [3, 3, 3, 3, 2, 2, 5, 5],
    timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  };
  const s = summarizeProfile(profile, { root: '/repo' });
  assert.equal(s.busyMs, 6);
  assert.equal(s.topSelf[0]!.name, 'flush src/db/b.ts:20');
  assert.equal(s.topSelf[0]!.selfPct, 66.7);
  assert.equal(s.topTotal[0]!.name, 'serve src/server/a.ts:10');
  assert.equal(s.topTotal[0]!.totalPct, 100);
  assert.deepEqual(
    s.byFile.map((f) => f.file),
    ['src/db/b.ts', 'src/server/a.ts'],
  );
  // Only the samples at t = 5 ms and 6 ms (both in serve).
  const w = summarizeProfile(profile, { root: '/repo', fromUs: 4500, toUs: 6500 });
  assert.equal(w.windowed, true);
  assert.equal(w.busyMs, 2);
  assert.equal(w.topSelf[0]!.name, 'serve src/server/a.ts:10');
});

function run(caseId: string, peer: CaseRun['peer'], round: number, metrics: Record<string, number>): CaseRun {
  return { caseId, scenario: 'accept', peer, round, failure: null, metrics, errorSamples: [] };
}

test('medians over rounds, ratios and targets judged on them', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
  const runs = [
    run(TARGET_CASES.c50, 'tern', 1, { msgsPerSec: 3000, p99Ms: 10 }),
    run(TARGET_CASES.c50, 'tern', 2, { msgsPerSec: 1000, p99Ms: 30 }),
    run(TARGET_CASES.c50, 'postfix', 1, { msgsPerSec: 800, p99Ms: 20 }),
    run(TARGET_CASES.c50, 'postfix', 2, { msgsPerSec: 800, p99Ms: 20 }),
    { ...run(TARGET_CASES.c50, 'haraka', 1, {}), failure: 'could not start' },
  ];
  const summary = summarize(runs);
  assert.equal(summary.find((s) => s.peer === 'tern')!.median.msgsPerSec, 2000);
  assert.equal(
    summary.some((s) => s.peer === 'haraka'),
    false,
  );
  const targets = judgeTargets(summary);
  const byText = (prefix: string) => targets.find((t) => t.text.startsWith(prefix))!;
  assert.equal(byText('Durable accept').met, false); // 2000 / 800 = 2.5, below 3
  assert.equal(byText('… ≥ 2× Haraka').met, null); // no figure for Haraka
  assert.equal(byText('… ≥ 40 %').met, null); // nor for smtp-sink
  assert.equal(byText('p99').met, true); // 20 <= 20
  assert.equal(byText('10,000 idle').met, null);
});

test('regenerating the document keeps the hand-written text around the generated part', () => {
  const first = spliceGenerated(null, 'one');
  assert.match(first, /^# Performance\n/);
  const edited = `${first}\n## Analysis\n\nwritten by hand\n`.replace(
    '# Performance\n',
    '# Performance\n\nintro\n',
  );
  const second = spliceGenerated(edited, 'two');
  assert.ok(second.includes('intro'));
  assert.ok(second.includes('written by hand'));
  assert.ok(second.includes(`${BEGIN_MARK}\n\ntwo\n\n${END_MARK}`));
  assert.ok(!second.includes('\none\n'));
});

test('bench --smoke runs every scenario against Tern and reports figures', { timeout: 90_000 }, async () => {
  const out = await mkdtemp(join(tmpdir(), 'tern-bench-smoke-'));
  try {
    // Ports away from a benchmark that may be running on the default ones (32501…).
    const base = 20000 + Math.floor(Math.random() * 900) * 10;
    const child = spawn(process.execPath, [join(ROOT, 'bench', 'run.ts'), '--smoke', '--out', out], {
      cwd: ROOT,
      env: { ...process.env, BENCH_PORT_BASE: String(base) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, output);

    const files = await readdir(out);
    const json = files.find((f) => f.endsWith('.json'));
    assert.ok(json !== undefined, `no results in ${files.join(', ')}`);
    assert.ok(files.some((f) => f.endsWith('.svg')));
    const r = JSON.parse(await readFile(join(out, json), 'utf8')) as BenchResults;
    assert.equal(r.mode, 'smoke');
    assert.deepEqual(r.peers, ['tern']);
    const failed = r.runs.filter((x) => x.failure !== null);
    assert.deepEqual(failed, [], output);
    const scenarios = new Set(r.runs.map((x) => x.scenario));
    for (const s of ['accept', 'handshakes', 'relay', 'local', 'large', 'idle'] as const)
      assert.ok(scenarios.has(s), s);

    const metric = (scenario: string, name: string): number[] =>
      r.runs.filter((x) => x.scenario === scenario).map((x) => x.metrics[name] ?? NaN);
    for (const v of metric('accept', 'msgsPerSec')) assert.ok(v > 0);
    for (const v of metric('accept', 'cpuMsPerMsg')) assert.ok(v > 0);
    for (const v of metric('accept', 'p99Ms')) assert.ok(v > 0);
    for (const v of metric('accept', 'errors')) assert.equal(v, 0);
    assert.ok(metric('handshakes', 'perSec')[0]! > 0);
    // Relay and local are count-bound: every message accepted, and the queue emptied (else a failure).
    assert.deepEqual(metric('relay', 'messages'), [20]);
    assert.deepEqual(metric('local', 'messages'), [20]);
    assert.deepEqual(metric('idle', 'greeted'), [50]);
    assert.ok(metric('large', 'totalMs')[0]! > 0);

    assert.ok(r.profile !== null && r.profile.topSelf.length > 0, 'a CPU profile summary');
    assert.ok(r.machine.nproc >= 1);

    // The report renders from these results.
    const md = renderMarkdown(r, { json: 'r.json', svg: 'r.svg' });
    assert.match(md, /### 1\. Inbound durable accept/);
    assert.match(renderChart(r), /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
