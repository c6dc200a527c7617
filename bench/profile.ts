// Summarizes a V8 CPU profile (the .cpuprofile that `node --cpu-prof` writes on exit): self and total
// time per function and self time per file, as shares of the time the process was not idle.
// Self time of a sample goes to its leaf frame; total time goes once to every distinct function on the
// sample's stack (recursion is not counted twice). Paths under the repository are made relative.
// Deliberately NOT here: flame graphs, line-level ticks, source maps (Tern runs its .ts by type
// stripping, so positions already match the sources).

export interface CpuProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
    readonly columnNumber: number;
  };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly CpuProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface ProfileEntry {
  /** `functionName file:line` (line 1-based). */
  readonly name: string;
  readonly file: string;
  readonly selfMs: number;
  readonly selfPct: number;
  readonly totalMs: number;
  readonly totalPct: number;
}

export interface ProfileSummary {
  /** Length of the summarized span (the window, when one was given and it held samples). */
  readonly durationMs: number;
  /** Whether only the samples inside [fromUs, toUs] were counted. */
  readonly windowed: boolean;
  /** Time not spent idle (the denominator of every percentage). */
  readonly busyMs: number;
  readonly gcPct: number;
  readonly topSelf: readonly ProfileEntry[];
  readonly topTotal: readonly ProfileEntry[];
  readonly byFile: readonly { readonly file: string; readonly selfMs: number; readonly selfPct: number }[];
}

function shortUrl(url: string, root: string): string {
  if (url === '') return '';
  let u = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  if (root !== '' && u.startsWith(`${root}/`)) u = u.slice(root.length + 1);
  return u;
}

const round = (v: number, digits = 1): number => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * `fromUs`/`toUs` limit the summary to samples taken in that span of the monotonic clock (V8's profile
 * timestamps and process.hrtime() both read CLOCK_MONOTONIC on Linux), e.g. to leave start-up out. When
 * no sample falls inside, the whole profile is summarized and `windowed` is false.
 */
export function summarizeProfile(
  profile: CpuProfile,
  options: { root?: string; top?: number; fromUs?: number; toUs?: number } = {},
): ProfileSummary {
  const root = options.root ?? '';
  const top = options.top ?? 20;
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = (n: CpuProfileNode): { key: string; name: string; file: string } => {
    const file = shortUrl(n.callFrame.url, root);
    const fn = n.callFrame.functionName === '' ? '(anonymous)' : n.callFrame.functionName;
    const name = file === '' ? fn : `${fn} ${file}:${n.callFrame.lineNumber + 1}`;
    return { key: name, name, file: file === '' ? fn : file };
  };

  // Time per sample: the delta to the next sample (DevTools' convention); hit counts when absent.
  let durationMs = (profile.endTime - profile.startTime) / 1000;
  let nodeTime = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let windowed = false;
  if (samples.length > 0) {
    const from = options.fromUs ?? -Infinity;
    const to = options.toUs ?? Infinity;
    const collect = (inWindow: (t: number) => boolean): Map<number, number> => {
      const times = new Map<number, number>();
      let t = profile.startTime;
      for (let i = 0; i < samples.length; i++) {
        t += deltas[i] ?? 0;
        if (!inWindow(t)) continue;
        const next = deltas[i + 1] ?? deltas[i] ?? 0;
        const id = samples[i]!;
        times.set(id, (times.get(id) ?? 0) + Math.max(0, next) / 1000);
      }
      return times;
    };
    nodeTime = collect((t) => t >= from && t <= to);
    if (nodeTime.size > 0 && (options.fromUs !== undefined || options.toUs !== undefined)) {
      windowed = true;
      durationMs = (Math.min(to, profile.endTime) - Math.max(from, profile.startTime)) / 1000;
    } else if (nodeTime.size === 0) {
      nodeTime = collect(() => true);
    }
  } else {
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
    for (const n of profile.nodes) nodeTime.set(n.id, ((n.hitCount ?? 0) * durationMs) / Math.max(1, hits));
  }

  const self = new Map<string, { name: string; file: string; ms: number }>();
  const total = new Map<string, number>();
  const files = new Map<string, number>();
  let gcMs = 0;
  let busyMs = 0;
  for (const [id, ms] of nodeTime) {
    const node = byId.get(id);
    if (node === undefined || ms === 0) continue;
    const fn = node.callFrame.functionName;
    if (fn === '(idle)') continue;
    busyMs += ms;
    if (fn === '(garbage collector)') gcMs += ms;
    const k = keyOf(node);
    const s = self.get(k.key);
    if (s === undefined) self.set(k.key, { name: k.name, file: k.file, ms });
    else s.ms += ms;
    files.set(k.file, (files.get(k.file) ?? 0) + ms);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n === undefined || n.callFrame.functionName === '(root)') break;
      const key = keyOf(n).key;
      if (seen.has(key)) continue;
      seen.add(key);
      total.set(key, (total.get(key) ?? 0) + ms);
    }
  }
  const pct = (ms: number): number => (busyMs > 0 ? round((ms * 100) / busyMs) : 0);
  const entry = (key: string, name: string, file: string): ProfileEntry => {
    const s = self.get(key)?.ms ?? 0;
    const t = total.get(key) ?? s;
    return { name, file, selfMs: round(s), selfPct: pct(s), totalMs: round(t), totalPct: pct(t) };
  };
  const topSelf = [...self.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, top)
    .map(([key, v]) => entry(key, v.name, v.file));
  const names = new Map<string, { name: string; file: string }>();
  for (const n of profile.nodes) {
    const k = keyOf(n);
    names.set(k.key, k);
  }
  const topTotal = [...total.entries()]
    .filter(([key]) => !/^\((program|garbage collector|root)\)/.test(key))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key]) => entry(key, names.get(key)?.name ?? key, names.get(key)?.file ?? ''));
  const byFile = [...files.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([file, ms]) => ({ file, selfMs: round(ms), selfPct: pct(ms) }));
  return {
    durationMs: round(durationMs),
    windowed,
    busyMs: round(busyMs),
    gcPct: pct(gcMs),
    topSelf,
    topTotal,
    byFile,
  };
}
