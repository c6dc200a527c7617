// The shape of bench/results/<timestamp>.json and the arithmetic on it: one record per (case, peer,
// round), medians over rounds, ratios Tern/peer, and the targets of issue 6 judged met or not met.
// Deliberately NOT here: running anything (run.ts) or formatting (report.ts).

import type { PeerName } from './peers.ts';
import { PEER_LABELS } from './peers.ts';
import type { ProfileSummary } from './profile.ts';

/** Other load on the machine (% of all cores) above which run.ts measures a case again. */
export const NOISY_PCT = 15;

export type ScenarioId =
  'accept' | 'relay' | 'local' | 'idle' | 'large' | 'handshakes' | 'smtp-source' | 'imap';

export interface CaseSpec {
  /** Stable key, e.g. "accept c50 1KiB x1 plain". */
  readonly id: string;
  readonly scenario: ScenarioId;
  readonly concurrency: number;
  readonly perConnection: number;
  readonly messageBytes: number;
  readonly starttls: boolean;
  /** Time-bound cases. */
  readonly durationMs: number | null;
  readonly warmupMs: number;
  /** Count-bound cases (relay, local, smtp-source). */
  readonly count: number | null;
  /** idle: connections to hold. */
  readonly connections: number;
}

/** Metric names, with units in the name; every one is a plain number. */
export type Metrics = Readonly<Record<string, number>>;

export interface CaseRun {
  readonly caseId: string;
  readonly scenario: ScenarioId;
  readonly peer: PeerName;
  readonly round: number;
  /** null when the case ran; else why it did not (the peer failed to start, crashed, …). */
  readonly failure: string | null;
  readonly metrics: Metrics;
  /** Errors the load generator saw (first few). */
  readonly errorSamples: readonly string[];
}

export interface CaseSummary {
  readonly caseId: string;
  readonly scenario: ScenarioId;
  readonly peer: PeerName;
  readonly rounds: number;
  /** Median over the rounds that ran, per metric. */
  readonly median: Metrics;
}

export interface Target {
  readonly text: string;
  /** What was compared, in words with the numbers. */
  readonly measured: string;
  /** null when a figure it needs is missing (a peer that could not be set up). */
  readonly met: boolean | null;
}

export interface Machine {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly disk: string;
  readonly fsyncPerSecond: number;
  readonly kernel: string;
  readonly node: string;
  readonly postfix: string | null;
  readonly haraka: string | null;
  /** Absent in results written before the IMAP benchmark. */
  readonly dovecot?: string | null;
  readonly ternCommit: string;
}

export interface BenchResults {
  readonly version: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationS: number;
  readonly mode: 'full' | 'quick' | 'smoke' | 'custom';
  readonly command: string;
  readonly settings: Readonly<Record<string, unknown>>;
  readonly machine: Machine;
  readonly peers: readonly PeerName[];
  readonly problems: readonly string[];
  readonly cases: readonly CaseSpec[];
  readonly runs: readonly CaseRun[];
  readonly summary: readonly CaseSummary[];
  readonly targets: readonly Target[];
  readonly profile: (ProfileSummary & { readonly caseId: string; readonly file: string }) | null;
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Medians per (case, peer) over the rounds that ran without failure. */
export function summarize(runs: readonly CaseRun[]): CaseSummary[] {
  const groups = new Map<string, CaseRun[]>();
  for (const r of runs) {
    if (r.failure !== null) continue;
    const key = `${r.caseId}\u0000${r.peer}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [r]);
    else g.push(r);
  }
  const out: CaseSummary[] = [];
  for (const g of groups.values()) {
    const first = g[0]!;
    const names = new Set(g.flatMap((r) => Object.keys(r.metrics)));
    const med: Record<string, number> = {};
    for (const n of names) {
      const m = median(g.map((r) => r.metrics[n] ?? NaN));
      if (Number.isFinite(m)) med[n] = Math.round(m * 1000) / 1000;
    }
    out.push({
      caseId: first.caseId,
      scenario: first.scenario,
      peer: first.peer,
      rounds: g.length,
      median: med,
    });
  }
  return out;
}

export function lookup(
  summary: readonly CaseSummary[],
  caseId: string,
  peer: PeerName,
  metric: string,
): number | null {
  const v = summary.find((s) => s.caseId === caseId && s.peer === peer)?.median[metric];
  return v === undefined || !Number.isFinite(v) ? null : v;
}

/** Tern's figure over the peer's; null when either is missing or the peer's is 0. */
export function ratio(
  summary: readonly CaseSummary[],
  caseId: string,
  peer: PeerName,
  metric: string,
): number | null {
  const t = lookup(summary, caseId, 'tern', metric);
  const p = lookup(summary, caseId, peer, metric);
  if (t === null || p === null || p === 0) return null;
  return t / p;
}

/** The case ids the targets are judged on. */
export const TARGET_CASES = {
  c50: 'accept c50 1KiB x1 plain',
  c50x100: 'accept c50 1KiB x100 plain',
  c50large: 'accept c50 100KiB x1 plain',
  source: 'smtp-source c50 1KiB x1',
  c200: 'accept c200 1KiB x1 plain',
  relay: 'relay c50 1KiB',
  idle: 'idle 10000',
  large: 'large 100MiB',
} as const;

const f1 = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2));

/** The targets of issue 14 (issue 6's for latency, memory and the large message), judged on the medians. */
export function judgeTargets(summary: readonly CaseSummary[]): Target[] {
  const targets: Target[] = [];
  const vs = (
    text: string,
    caseId: string,
    peer: PeerName,
    metric: string,
    min: number,
    unit: string,
  ): void => {
    const r = ratio(summary, caseId, peer, metric);
    const t = lookup(summary, caseId, 'tern', metric);
    const p = lookup(summary, caseId, peer, metric);
    targets.push({
      text,
      measured: `Tern ${f1(t)} vs ${PEER_LABELS[peer]} ${f1(p)} ${unit}: ${r === null ? 'n/a' : `${r.toFixed(2)}×`}`,
      met: r === null ? null : r >= min,
    });
  };
  // Each throughput target twice: the pipelining load generator, and smtp-source (one command per round trip).
  for (const [caseId, how] of [
    [TARGET_CASES.c50, 'load.ts'],
    [TARGET_CASES.source, 'smtp-source'],
  ] as const) {
    vs(
      `Durable accept, c50, 1 KiB, new connection per message (${how}): ≥ 3× Postfix`,
      caseId,
      'postfix',
      'msgsPerSec',
      3,
      'msgs/s',
    );
    vs(`… ≥ 2× Haraka (one process)`, caseId, 'haraka', 'msgsPerSec', 2, 'msgs/s');
    vs(`… ≥ 2× Haraka (nodes = cores)`, caseId, 'haraka-nodes', 'msgsPerSec', 2, 'msgs/s');
    vs(`… ≥ 40 % of smtp-sink`, caseId, 'smtp-sink', 'msgsPerSec', 0.4, 'msgs/s');
  }
  vs(
    'c50, 100 KiB, new connection per message: ≥ 2× Postfix',
    TARGET_CASES.c50large,
    'postfix',
    'msgsPerSec',
    2,
    'msgs/s',
  );
  vs(
    '100 messages per connection (c50, 1 KiB): ≥ 4× Postfix',
    TARGET_CASES.c50x100,
    'postfix',
    'msgsPerSec',
    4,
    'msgs/s',
  );
  vs(
    'Relay end to end (accept, MX, remote sink, queue empty): ≥ 2.5× Postfix',
    TARGET_CASES.relay,
    'postfix',
    'msgsPerSec',
    2.5,
    'msgs/s',
  );
  {
    const t = lookup(summary, TARGET_CASES.c50, 'tern', 'cpuMsPerMsg');
    targets.push({
      text: 'CPU per accepted message ≤ 0.5 ms (c50, 1 KiB, new connection per message)',
      measured: `Tern ${f1(t)} ms`,
      met: t === null ? null : t <= 0.5,
    });
  }
  {
    const t = lookup(summary, TARGET_CASES.c50, 'tern', 'p99Ms');
    const p = lookup(summary, TARGET_CASES.c50, 'postfix', 'p99Ms');
    targets.push({
      text: 'p99 accept latency at c50 no worse than Postfix’s',
      measured: `Tern ${f1(t)} ms vs Postfix ${f1(p)} ms`,
      met: t === null || p === null ? null : t <= p,
    });
  }
  {
    const t = lookup(summary, TARGET_CASES.c200, 'tern', 'peakRssMiB');
    const p = lookup(summary, TARGET_CASES.c200, 'postfix', 'peakRssMiB');
    targets.push({
      text: 'RSS at c200 ≤ ¼ of Postfix’s (peak, summed over processes)',
      measured: `Tern ${f1(t)} MiB vs Postfix ${f1(p)} MiB${t !== null && p !== null && p > 0 ? `: ${(t / p).toFixed(2)}×` : ''}`,
      met: t === null || p === null ? null : t <= p / 4,
    });
  }
  {
    const rss = lookup(summary, TARGET_CASES.idle, 'tern', 'rssMiB');
    const greeted = lookup(summary, TARGET_CASES.idle, 'tern', 'greeted');
    targets.push({
      text: '10,000 idle connections under 300 MiB RSS',
      measured: `Tern ${f1(rss)} MiB with ${greeted ?? 'n/a'} connections greeted`,
      met: rss === null ? null : rss < 300 && greeted === 10000,
    });
  }
  {
    const g = lookup(summary, TARGET_CASES.large, 'tern', 'rssGrowthMiB');
    targets.push({
      text: 'A 100 MiB message with under 32 MiB RSS growth',
      measured: `Tern +${f1(g)} MiB`,
      met: g === null ? null : g < 32,
    });
  }
  return targets;
}

/** IMAP case ids (bench/imap.ts); the report and the goals of issue 13 find their figures by these. */
export const IMAP_CASES = {
  populate: 'imap populate',
  fetchAll: 'imap select + fetch 1:*',
  searchAscii: 'imap uid search text ascii',
  searchUtf8: 'imap uid search text utf-8',
  appendSmall: 'imap append 1KiB',
  appendLarge: 'imap append 100KiB',
  bodies: 'imap uid fetch body[] random',
  pushSmtp: 'imap idle push smtp',
  pushAppend: 'imap idle push append',
  idle: 'imap idle connections',
} as const;

/** The goals of issue 13, judged on the medians: throughputs ≥ Dovecot's, push p99, idle memory. */
export function judgeImapTargets(summary: readonly CaseSummary[]): Target[] {
  const targets: Target[] = [];
  const has = summary.some((s) => s.scenario === 'imap');
  if (!has) return targets;
  // Higher is better for a rate; for a time, Dovecot's over Tern's.
  const vs = (text: string, caseId: string, metric: string, unit: string, higherBetter: boolean): void => {
    const t = lookup(summary, caseId, 'tern', metric);
    const d = lookup(summary, caseId, 'dovecot', metric);
    const r = t === null || d === null || t === 0 || d === 0 ? null : higherBetter ? t / d : d / t;
    targets.push({
      text,
      measured: `Tern ${f1(t)} vs Dovecot ${f1(d)} ${unit}${r === null ? '' : `: ${r.toFixed(2)}× Dovecot`}`,
      met: r === null ? null : r >= 1,
    });
  };
  vs(
    'SELECT + FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE): ≥ Dovecot',
    IMAP_CASES.fetchAll,
    'msgsPerSec',
    'msgs/s',
    true,
  );
  vs('UID SEARCH TEXT (ASCII word): ≥ Dovecot', IMAP_CASES.searchAscii, 'ms', 'ms', false);
  vs('UID SEARCH TEXT (UTF-8 word): ≥ Dovecot', IMAP_CASES.searchUtf8, 'ms', 'ms', false);
  vs('APPEND 1 KiB, durable: ≥ Dovecot', IMAP_CASES.appendSmall, 'msgsPerSec', 'msgs/s', true);
  vs('APPEND 100 KiB, durable: ≥ Dovecot', IMAP_CASES.appendLarge, 'msgsPerSec', 'msgs/s', true);
  vs('UID FETCH n BODY[] of random messages: ≥ Dovecot', IMAP_CASES.bodies, 'msgsPerSec', 'msgs/s', true);
  {
    const p99 = lookup(summary, IMAP_CASES.pushSmtp, 'tern', 'p99Ms');
    targets.push({
      text: 'IDLE push, delivery commit (SMTP 250) → untagged EXISTS: p99 < 50 ms',
      measured: `Tern p99 ${f1(p99)} ms`,
      met: p99 === null ? null : p99 < 50,
    });
  }
  {
    const rss = lookup(summary, IMAP_CASES.idle, 'tern', 'rssMiB');
    const n = lookup(summary, IMAP_CASES.idle, 'tern', 'connections');
    const d = lookup(summary, IMAP_CASES.idle, 'dovecot', 'rssMiB');
    targets.push({
      text: '10,000 authenticated IDLE connections under 300 MiB in total',
      measured: `Tern ${f1(rss)} MiB with ${n ?? 'n/a'} connections (Dovecot ${f1(d)} MiB)${n !== null && n < 10000 ? '; judged only at 10,000 (--imap-connections 10000)' : ''}`,
      met: rss === null || n === null || n < 10000 ? null : rss < 300,
    });
  }
  return targets;
}
