// What a server costs, read from /proc (Linux, proc(5)): CPU time and resident memory summed over a
// process and all its descendants, because Postfix is many processes (master, smtpd, cleanup, qmgr...)
// while Tern and Haraka are one. CPU counts utime + stime + cutime + cstime: a child that exits and is
// reaped by its parent inside the tree moves its time into the parent's cutime/cstime, so short-lived
// Postfix daemons are not lost. RSS is summed per process (shared pages count once per process, as
// `ps` shows them); PSS (smaps_rollup) is given beside it for the multi-process peers.
// Deliberately NOT here: anything but Linux (elsewhere every figure reads 0), per-thread figures.

import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture that matters here.
const PAGE_BYTES = 4096;

interface StatLine {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly ticks: number;
}

/** Parse /proc/<pid>/stat; comm may hold spaces and parentheses, so split after the last ')'. */
export function parseStat(text: string): StatLine | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number(text.slice(0, text.indexOf(' ')));
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14, so f[11]; stime f[12], cutime f[13], cstime f[14].
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  if (!Number.isFinite(pid) || !Number.isFinite(ticks)) return null;
  return { pid, ppid: Number(f[1]), state: f[0] ?? '?', ticks };
}

function readStat(pid: number): StatLine | null {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return null;
  }
}

function allStats(): StatLine[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: StatLine[] = [];
  for (const name of names) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const s = readStat(Number(name));
    if (s !== null) out.push(s);
  }
  return out;
}

/** The process and every live descendant. */
export function processTree(rootPid: number): StatLine[] {
  const stats = allStats();
  const children = new Map<number, StatLine[]>();
  let root: StatLine | null = null;
  for (const s of stats) {
    if (s.pid === rootPid) root = s;
    const list = children.get(s.ppid);
    if (list === undefined) children.set(s.ppid, [s]);
    else list.push(s);
  }
  if (root === null) return [];
  const out: StatLine[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const s = stack.pop()!;
    out.push(s);
    for (const c of children.get(s.pid) ?? []) stack.push(c);
  }
  return out;
}

function rssBytes(pid: number): number {
  try {
    const statm = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return Number(statm[1]) * PAGE_BYTES;
  } catch {
    return 0;
  }
}

function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

/** CPU time the whole machine spent busy in processes (all cores, ms), from the first line of /proc/stat. */
export function hostBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'latin1')
      .split('\n', 1)[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal. Interrupt time is left out: on loopback most of
    // it is the benchmark's own TCP traffic, which no process is charged for. Steal (the hypervisor
    // giving the core to another machine) is load from outside too.
    const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[7] ?? 0);
    return (busy * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

export interface TreeSample {
  readonly cpuMs: number;
  readonly rssBytes: number;
  readonly processes: number;
}

export function sampleTree(rootPid: number): TreeSample {
  const tree = processTree(rootPid);
  let ticks = 0;
  let rss = 0;
  for (const s of tree) {
    ticks += s.ticks;
    if (s.state !== 'Z') rss += rssBytes(s.pid);
  }
  return { cpuMs: (ticks * 1000) / TICKS_PER_SECOND, rssBytes: rss, processes: tree.length };
}

export function pssOfTree(rootPid: number): number {
  let pss = 0;
  for (const s of processTree(rootPid)) if (s.state !== 'Z') pss += pssBytes(s.pid);
  return pss;
}

export interface TreeUsage {
  /** CPU used by the tree between start() and stop(). */
  readonly cpuMs: number;
  readonly startRssBytes: number;
  readonly peakRssBytes: number;
  /** PSS summed over the tree at the sample where RSS peaked (read every few samples). */
  readonly peakPssBytes: number;
  readonly peakProcesses: number;
  readonly wallMs: number;
  /** CPU the whole machine used meanwhile (all processes, all cores). */
  readonly hostCpuMs: number;
}

/** Samples a process tree every `intervalMs` between start() and stop(). */
export class TreeMonitor {
  readonly #pid: number;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #start: TreeSample = { cpuMs: 0, rssBytes: 0, processes: 0 };
  #startedAt = 0;
  #hostStart = 0;
  #peakRss = 0;
  #peakPss = 0;
  #peakProcesses = 0;
  #samples = 0;

  constructor(pid: number, intervalMs = 200) {
    this.#pid = pid;
    this.#intervalMs = intervalMs;
  }

  start(): this {
    this.#start = sampleTree(this.#pid);
    this.#startedAt = performance.now();
    this.#hostStart = hostBusyMs();
    this.#peakRss = this.#start.rssBytes;
    this.#peakProcesses = this.#start.processes;
    this.#peakPss = pssOfTree(this.#pid);
    this.#timer = setInterval(() => this.#sample(), this.#intervalMs);
    return this;
  }

  #sample(): TreeSample {
    const s = sampleTree(this.#pid);
    this.#samples += 1;
    if (s.processes > this.#peakProcesses) this.#peakProcesses = s.processes;
    if (s.rssBytes > this.#peakRss) {
      this.#peakRss = s.rssBytes;
      // PSS costs a smaps walk per process: only at new peaks, and not more than every 5th sample.
      if (this.#samples % 5 === 0 || s.processes <= 4)
        this.#peakPss = Math.max(this.#peakPss, pssOfTree(this.#pid));
    }
    return s;
  }

  /** The RSS of the tree right now (also counted towards the peak). */
  sampleNow(): TreeSample {
    return this.#sample();
  }

  stop(): TreeUsage {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    const end = this.#sample();
    return {
      cpuMs: Math.max(0, end.cpuMs - this.#start.cpuMs),
      startRssBytes: this.#start.rssBytes,
      peakRssBytes: this.#peakRss,
      peakPssBytes: this.#peakPss,
      peakProcesses: this.#peakProcesses,
      wallMs: Math.round(performance.now() - this.#startedAt),
      hostCpuMs: Math.max(0, hostBusyMs() - this.#hostStart),
    };
  }
}
