// The IMAP part of `npm run bench` (issue 13): Tern beside Dovecot on a mailbox of 10,000 corpus
// messages (bench/imap-corpus.ts), with the raw-socket client of bench/imap-client.ts. For one peer
// and one round, runImapRound starts the server fresh, loads the corpus, and measures:
//   1. SELECT INBOX + `FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)` on a new connection: the first
//      time (Dovecot builds its index and cache then) and again (the figure compared), msgs/s;
//   2. `UID SEARCH TEXT word` for an ASCII and a UTF-8 word (each in 1 % of the messages; the hits are
//      checked against the corpus);
//   3. APPEND throughput of 1 KiB and 100 KiB messages from several connections at once, each waiting
//      for its OK before the next APPEND (durable: Tern commits before OK; Dovecot with its default
//      mail_fsync = optimized fsyncs each message file before its OK);
//   4. `UID FETCH n BODY[]` of random messages, one at a time (sizes checked against the corpus);
//   5. IDLE push latency: one connection IDLEs on INBOX while messages are delivered one after the
//      other (the client re-IDLEs after each, reconnects every 100: see pushLatency); latency from the
//      delivery's commit reply to the untagged EXISTS. Tern twice: over SMTP
//      (the 250 after DATA; the queue, the delivery worker and the store's change feed in between) and
//      by APPEND from a second IMAP connection (its tagged OK); Dovecot by APPEND (its OK);
//   6. RSS (and PSS) of N connections logged in, INBOX selected and IDLE, on a freshly restarted server
//      (RSS summed over the server's processes: Dovecot runs one imap process per connection).
// Server CPU comes from /proc for the whole process tree (proc.ts).
// Deliberately NOT here: the round loop and the outputs (run.ts), rendering (report.ts), thresholds
// (issue 13's goals are judged in results.ts, never enforced).

import { setTimeout as sleep } from 'node:timers/promises';
import { summarizeLatencies } from './load.ts';
import type { ImapResponse } from './imap-client.ts';
import { ImapClient, quoted, SmtpSender } from './imap-client.ts';
import type { SearchWordId } from './imap-corpus.ts';
import { corpusMessage, expectedHits, fixedMessage, SEARCH_WORDS } from './imap-corpus.ts';
import type { ImapPeerName, ImapStartOptions, ImapTarget } from './imap-peers.ts';
import { IMAP_PASSWORD, IMAP_USER, startImapTarget } from './imap-peers.ts';
import { pssOfTree, sampleTree, TreeMonitor } from './proc.ts';
import type { CaseRun, CaseSpec, Metrics } from './results.ts';
import { IMAP_CASES } from './results.ts';

export interface ImapSettings {
  /** Messages in the INBOX. */
  readonly messages: number;
  readonly seed: number;
  /** SELECT + FETCH 1:* runs on new connections (the first is reported apart). */
  readonly fetchRuns: number;
  readonly searchRuns: number;
  /** `UID FETCH n BODY[]` commands. */
  readonly bodies: number;
  readonly appendClients: number;
  readonly appendSmall: number;
  readonly appendLarge: number;
  /** IDLE push deliveries per method. */
  readonly deliveries: number;
  /** Authenticated IDLE connections held for the memory case. */
  readonly connections: number;
  /** Connections opened at once while building up that many. */
  readonly openConcurrency: number;
}

export const IMAP_DEFAULTS: Readonly<Record<'full' | 'quick' | 'smoke', ImapSettings>> = {
  full: {
    messages: 10_000,
    seed: 1,
    fetchRuns: 3,
    searchRuns: 3,
    bodies: 1000,
    appendClients: 4,
    appendSmall: 2000,
    appendLarge: 400,
    deliveries: 300,
    // Small by default (a run on a shared machine); the issue's figure needs --imap-connections 10000.
    connections: 500,
    openConcurrency: 100,
  },
  quick: {
    messages: 10_000,
    seed: 1,
    fetchRuns: 2,
    searchRuns: 2,
    bodies: 1000,
    appendClients: 4,
    appendSmall: 1000,
    appendLarge: 200,
    deliveries: 200,
    connections: 200,
    openConcurrency: 50,
  },
  smoke: {
    messages: 300,
    seed: 1,
    fetchRuns: 2,
    searchRuns: 1,
    bodies: 50,
    appendClients: 2,
    appendSmall: 40,
    appendLarge: 10,
    deliveries: 10,
    connections: 20,
    openConcurrency: 10,
  },
};

const K = 1024;

type ImapCaseKey = keyof typeof IMAP_CASES;

export function imapCaseSpecs(s: ImapSettings): CaseSpec[] {
  const spec = (key: ImapCaseKey, extra: Partial<CaseSpec> = {}): CaseSpec => ({
    id: IMAP_CASES[key],
    scenario: 'imap',
    concurrency: 1,
    perConnection: 1,
    messageBytes: 0,
    starttls: false,
    durationMs: null,
    warmupMs: 0,
    count: s.messages,
    connections: 0,
    ...extra,
  });
  return [
    spec('populate'),
    spec('fetchAll'),
    spec('searchAscii'),
    spec('searchUtf8'),
    spec('bodies', { count: s.bodies }),
    spec('appendSmall', { concurrency: s.appendClients, messageBytes: K, count: s.appendSmall }),
    spec('appendLarge', { concurrency: s.appendClients, messageBytes: 100 * K, count: s.appendLarge }),
    spec('pushSmtp', { count: s.deliveries, messageBytes: K }),
    spec('pushAppend', { count: s.deliveries, messageBytes: K }),
    spec('idle', { count: null, connections: s.connections, concurrency: s.openConcurrency }),
  ];
}

// ---------------------------------------------------------------------------------------------------

class CaseFailure extends Error {}

const mib = (bytes: number): number => Math.round((bytes / (1024 * 1024)) * 10) / 10;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CaseFailure(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function session(port: number, select: string | null = 'INBOX'): Promise<ImapClient> {
  const c = await ImapClient.open(port);
  try {
    await c.login(IMAP_USER, IMAP_PASSWORD);
    if (select !== null) await c.ok(`SELECT ${quoted(select)}`);
  } catch (err) {
    c.close();
    throw err;
  }
  return c;
}

/** mulberry32, for the random UIDs (the same ones on every run). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Outcome {
  readonly metrics: Metrics;
  readonly errorSamples: readonly string[];
}

/** Which corpus message each UID holds: read from the Message-ID header of every message. */
async function mapUids(port: number, count: number, seed: number): Promise<Map<number, number>> {
  const c = await session(port);
  try {
    const r = await c.ok('UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])', {
      collect: true,
      keepLiterals: true,
    });
    const map = new Map<number, number>();
    for (const u of r.untagged) {
      const uid = /\bUID (\d+)/i.exec(u.text);
      const header = u.literals[0]?.toString('latin1') ?? '';
      const id = /<(\d+)\.(\d+)@corpus\.bench\.test>/.exec(header);
      if (uid !== null && id !== null && Number(id[2]) === seed) map.set(Number(uid[1]), Number(id[1]));
    }
    if (map.size !== count)
      throw new CaseFailure(`INBOX holds ${map.size} corpus messages, expected ${count}`);
    return map;
  } finally {
    await c.logout();
  }
}

async function fetchAll(t: ImapTarget, s: ImapSettings): Promise<Outcome> {
  const times: number[] = [];
  const errors: string[] = [];
  let responses = 0;
  let cpuMs = 0;
  let peakRss = 0;
  for (let run = 0; run < s.fetchRuns; run++) {
    const c = await session(t.port, null);
    try {
      const mon = new TreeMonitor(t.pid).start();
      const t0 = performance.now();
      await c.ok('SELECT INBOX');
      const r = await c.ok('FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)', { collect: true });
      times.push(performance.now() - t0);
      const u = mon.stop();
      if (run > 0) cpuMs += u.cpuMs;
      peakRss = Math.max(peakRss, u.peakRssBytes);
      responses = r.untagged.filter((x) => / FETCH \(/i.test(x.text)).length;
      const incomplete = r.untagged.filter(
        (x) =>
          / FETCH \(/i.test(x.text) && !(/ENVELOPE \(/i.test(x.text) && /BODYSTRUCTURE \(/i.test(x.text)),
      ).length;
      if (responses !== s.messages) errors.push(`${responses} FETCH responses, expected ${s.messages}`);
      if (incomplete > 0) errors.push(`${incomplete} FETCH responses without ENVELOPE or BODYSTRUCTURE`);
    } finally {
      await c.logout();
    }
  }
  const warm = times.length > 1 ? median(times.slice(1)) : times[0]!;
  return {
    metrics: {
      firstMs: Math.round(times[0]!),
      ms: Math.round(warm),
      msgsPerSec: (responses * 1000) / warm,
      responses,
      cpuMs: Math.round(cpuMs / Math.max(1, times.length - 1)),
      peakRssMiB: mib(peakRss),
      errors: errors.length,
    },
    errorSamples: errors,
  };
}

async function search(
  t: ImapTarget,
  s: ImapSettings,
  which: SearchWordId,
  uids: ReadonlyMap<number, number>,
): Promise<Outcome> {
  const word = SEARCH_WORDS[which].word;
  const expected = expectedHits(which, s.messages);
  const c = await session(t.port);
  const times: number[] = [];
  const errors: string[] = [];
  let hits = 0;
  let cpuMs = 0;
  try {
    for (let run = 0; run < s.searchRuns; run++) {
      const mon = new TreeMonitor(t.pid).start();
      const r =
        which === 'ascii'
          ? await c.ok(`UID SEARCH TEXT ${word}`, { collect: true })
          : await c.withLiteral('UID SEARCH CHARSET UTF-8 TEXT', Buffer.from(word, 'utf8'), '', {
              collect: true,
            });
      cpuMs += mon.stop().cpuMs;
      if (r.status !== 'OK') throw new CaseFailure(`SEARCH: ${r.text.slice(0, 200)}`);
      times.push(r.ms);
      const line = r.untagged.find((x) => /^\* SEARCH\b/i.test(x.text))?.text ?? '';
      const found = line
        .split(' ')
        .slice(2)
        .map(Number)
        .filter((n) => Number.isInteger(n) && n > 0)
        .map((uid) => uids.get(uid) ?? -1)
        .sort((a, b) => a - b);
      hits = found.length;
      const missing = expected.filter((i) => !found.includes(i));
      const extra = found.filter((i) => !expected.includes(i));
      if (run === 0 && (missing.length > 0 || extra.length > 0))
        errors.push(
          `SEARCH TEXT ${word}: ${missing.length} of ${expected.length} expected messages missing, ${extra.length} others found`,
        );
    }
  } finally {
    await c.logout();
  }
  return {
    metrics: {
      ms: Math.round(median(times) * 10) / 10,
      firstMs: Math.round(times[0]! * 10) / 10,
      hits,
      expected: expected.length,
      cpuMs: Math.round(cpuMs / times.length),
      errors: errors.length,
    },
    errorSamples: errors,
  };
}

async function randomBodies(
  t: ImapTarget,
  s: ImapSettings,
  uids: ReadonlyMap<number, number>,
): Promise<Outcome> {
  const list = [...uids.keys()].sort((a, b) => a - b);
  const rand = prng(s.seed * 7919 + 13);
  const picks = Array.from({ length: s.bodies }, () => list[Math.floor(rand() * list.length)]!);
  // Sizes from the corpus, to check each BODY[] whole; generated before the clock starts.
  const sizes = new Map<number, number>();
  for (const uid of new Set(picks)) sizes.set(uid, corpusMessage(uids.get(uid)!, s.seed).raw.length);
  const c = await session(t.port);
  const lat: number[] = [];
  const errors: string[] = [];
  let bytes = 0;
  const mon = new TreeMonitor(t.pid).start();
  const t0 = performance.now();
  try {
    for (const uid of picks) {
      const r = await c.ok(`UID FETCH ${uid} BODY[]`, { collect: true, keepLiterals: true });
      lat.push(r.ms);
      const body = r.untagged.find((x) => / FETCH \(/i.test(x.text) && x.literals.length > 0);
      const got = body?.literals[body.literals.length - 1]?.length ?? -1;
      bytes += Math.max(0, got);
      if (got !== sizes.get(uid) && errors.length < 5)
        errors.push(`UID ${uid}: BODY[] of ${got} bytes, the message has ${sizes.get(uid)}`);
    }
  } catch (err) {
    mon.stop();
    await c.logout();
    throw err;
  }
  // Measured before LOGOUT: Dovecot's imap process exits then, and its CPU would be left out.
  const wall = performance.now() - t0;
  const u = mon.stop();
  await c.logout();
  const l = summarizeLatencies(lat);
  return {
    metrics: {
      msgsPerSec: (picks.length * 1000) / wall,
      mibPerSec: Math.round((bytes / (1024 * 1024) / (wall / 1000)) * 10) / 10,
      p50Ms: l.p50Ms,
      p99Ms: l.p99Ms,
      cpuMsPerMsg: u.cpuMs / picks.length,
      errors: errors.length,
    },
    errorSamples: errors,
  };
}

async function appendThroughput(
  t: ImapTarget,
  s: ImapSettings,
  bytes: number,
  count: number,
  round: number,
): Promise<Outcome> {
  const mailbox = `Bench append ${bytes / K}KiB`;
  {
    const c = await session(t.port, null);
    const r = await c.command(`CREATE ${quoted(mailbox)}`);
    await c.logout();
    if (r.status !== 'OK' && !/ALREADYEXISTS/i.test(r.text))
      throw new CaseFailure(`CREATE: ${r.text.slice(0, 200)}`);
  }
  const messages = Array.from({ length: count }, (_, i) => fixedMessage(bytes, `r${round}-${bytes}-${i}`));
  const clients = await Promise.all(Array.from({ length: s.appendClients }, () => session(t.port, null)));
  const lat: number[] = [];
  const errors: string[] = [];
  let next = 0;
  const mon = new TreeMonitor(t.pid).start();
  const t0 = performance.now();
  try {
    await Promise.all(
      clients.map(async (c) => {
        while (next < messages.length) {
          const m = messages[next++]!;
          const r = await c.append(mailbox, m);
          lat.push(r.ms);
          if (r.status !== 'OK' && errors.length < 5) errors.push(`APPEND: ${r.text.slice(0, 200)}`);
        }
      }),
    );
  } catch (err) {
    mon.stop();
    await Promise.all(clients.map((c) => c.logout()));
    throw err;
  }
  // Measured before LOGOUT: Dovecot's imap processes exit then, and their CPU would be left out.
  const wall = performance.now() - t0;
  const u = mon.stop();
  await Promise.all(clients.map((c) => c.logout()));
  const l = summarizeLatencies(lat);
  return {
    metrics: {
      msgsPerSec: (count * 1000) / wall,
      p50Ms: l.p50Ms,
      p99Ms: l.p99Ms,
      cpuMsPerMsg: u.cpuMs / count,
      peakRssMiB: mib(u.peakRssBytes),
      errors: errors.length,
    },
    errorSamples: errors,
  };
}

/** Deliveries per IDLE session before the client reconnects (see pushLatency). */
const DELIVERIES_PER_SESSION = 100;

/**
 * One connection IDLEs on INBOX; `deliver` puts one message in and resolves with when its commit reply
 * arrived; the latency is from then to the untagged EXISTS that announces it. An EXISTS that comes
 * before the reply counts as 0 ms (and is counted as early). Between deliveries (not timed) the client
 * does what a mail client does on new mail: leaves IDLE, fetches the new message's UID, FLAGS and
 * ENVELOPE, and IDLEs again. It reconnects every DELIVERIES_PER_SESSION deliveries: Dovecot 2.3.19's
 * imap process, on a 10,000-message Maildir, re-reads the whole dovecot-uidlist into a pool that is
 * not freed on each change and died at its default 256 MB vsz_limit after ~170 new messages in one
 * session (`block_alloc(134217728): Out of memory` in maildir_uidlist_refresh).
 */
async function pushLatency(
  t: ImapTarget,
  s: ImapSettings,
  deliver: (i: number) => Promise<number>,
): Promise<Outcome> {
  const lat: number[] = [];
  const errors: string[] = [];
  let early = 0;
  let missed = 0;
  for (let first = 0; first < s.deliveries; first += DELIVERIES_PER_SESSION) {
    const idler = await session(t.port, null);
    // Counted from the SELECT's own EXISTS on: each delivery must raise it by one.
    let exists = 0;
    let waiter: { want: number; resolve: (at: number) => void } | null = null;
    idler.onUntagged = (r: ImapResponse, at: number) => {
      const m = /^\* (\d+) EXISTS/i.exec(r.text);
      if (m === null) return;
      exists = Math.max(exists, Number(m[1]));
      if (waiter !== null && exists >= waiter.want) {
        const w = waiter;
        waiter = null;
        w.resolve(at);
      }
    };
    let idle: Awaited<ReturnType<ImapClient['idle']>> | null = null;
    try {
      await idler.ok('SELECT INBOX');
      idle = await withTimeout(idler.idle(), 10_000, 'IDLE');
      for (let i = first; i < Math.min(s.deliveries, first + DELIVERIES_PER_SESSION); i++) {
        if (i > first) {
          await withTimeout(idle.done(), 10_000, 'DONE');
          idle = null;
          await withTimeout(idler.ok(`FETCH ${exists} (UID FLAGS ENVELOPE)`), 10_000, 'FETCH');
          idle = await withTimeout(idler.idle(), 10_000, 'IDLE');
        }
        const want = exists + 1;
        let seenAt = 0;
        const seen = new Promise<number>((resolve) => {
          if (exists >= want) resolve(performance.now());
          else waiter = { want, resolve };
        }).then((at) => (seenAt = at));
        const committedAt = await deliver(i);
        const got = await Promise.race([seen.then(() => true), sleep(5000).then(() => false)]);
        if (!got) {
          missed += 1;
          waiter = null;
          if (errors.length < 5) errors.push(`delivery ${i}: no EXISTS within 5 s of the commit`);
          if (missed >= 5)
            throw new CaseFailure(`five deliveries never reached the IDLE client (${errors[0]})`);
          continue;
        }
        const ms = seenAt - committedAt;
        if (ms < 0) early += 1;
        lat.push(Math.max(0, ms));
      }
    } finally {
      if (idle !== null) await withTimeout(idle.done(), 5000, 'DONE').catch(() => undefined);
      await idler.logout();
    }
  }
  const l = summarizeLatencies(lat);
  return {
    metrics: {
      p50Ms: l.p50Ms,
      p99Ms: l.p99Ms,
      maxMs: l.maxMs,
      meanMs: l.meanMs,
      deliveries: lat.length,
      early,
      missed,
      errors: errors.length,
    },
    errorSamples: errors,
  };
}

async function pushOverSmtp(t: ImapTarget, s: ImapSettings, round: number): Promise<Outcome> {
  if (t.push.kind !== 'smtp') throw new CaseFailure('no SMTP listener');
  const smtp = await SmtpSender.open(t.push.port);
  try {
    return await pushLatency(t, s, (i) =>
      smtp.send('sender@example.org', IMAP_USER, fixedMessage(K, `push-smtp-r${round}-${i}`)),
    );
  } finally {
    smtp.close();
  }
}

async function pushOverAppend(t: ImapTarget, s: ImapSettings, round: number): Promise<Outcome> {
  const writer = await session(t.port, null);
  try {
    return await pushLatency(t, s, async (i) => {
      const r = await writer.append('INBOX', fixedMessage(K, `push-append-r${round}-${i}`));
      if (r.status !== 'OK') throw new CaseFailure(`APPEND: ${r.text.slice(0, 200)}`);
      return r.at;
    });
  } finally {
    await writer.logout();
  }
}

/** N connections logged in, INBOX selected, IDLE; the server's memory while they are held. */
async function idleConnections(t: ImapTarget, s: ImapSettings): Promise<Outcome> {
  await sleep(300);
  const before = sampleTree(t.pid);
  const clients: ImapClient[] = [];
  const errors: string[] = [];
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(s.openConcurrency, s.connections) }, async () => {
      while (next < s.connections) {
        next += 1;
        try {
          const c = await withTimeout(session(t.port), 30_000, 'open, LOGIN, SELECT');
          clients.push(c);
          await withTimeout(c.idle(), 30_000, 'IDLE');
        } catch (err) {
          failed += 1;
          if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
          if (failed > Math.max(20, s.connections / 10))
            throw new CaseFailure(`too many failures: ${errors[0]}`);
        }
      }
    }),
  );
  const openMs = performance.now() - t0;
  // Let the server settle (per-connection state allocated, timers armed), then sample.
  await sleep(1000);
  let held = 0;
  let processes = 0;
  for (let i = 0; i < 4; i++) {
    const x = sampleTree(t.pid);
    held = Math.max(held, x.rssBytes);
    processes = Math.max(processes, x.processes);
    await sleep(200);
  }
  const pss = pssOfTree(t.pid);
  for (const c of clients) c.close();
  const ok = s.connections - failed;
  const growth = Math.max(0, held - before.rssBytes);
  return {
    metrics: {
      connections: ok,
      failed,
      openMs: Math.round(openMs),
      rssBeforeMiB: mib(before.rssBytes),
      rssMiB: mib(held),
      pssMiB: mib(pss),
      growthMiB: mib(growth),
      kibPerConnection: ok > 0 ? Math.round((growth / 1024 / ok) * 10) / 10 : 0,
      processes,
      errors: failed,
    },
    errorSamples: errors,
  };
}

// ---------------------------------------------------------------------------------------------------

export interface ImapRoundOptions extends Omit<ImapStartOptions, 'keepData' | 'connections'> {
  readonly log: (line: string) => void;
}

/** One round for one peer: start, load, every case, restart, idle connections, stop. */
export async function runImapRound(
  name: ImapPeerName,
  round: number,
  s: ImapSettings,
  o: ImapRoundOptions,
): Promise<CaseRun[]> {
  const runs: CaseRun[] = [];
  const label = `[round ${round} ${name === 'tern' ? 'Tern' : 'Dovecot'} IMAP]`;
  const record = (key: ImapCaseKey, out: Outcome | string): void => {
    const failure = typeof out === 'string' ? out : null;
    runs.push({
      caseId: IMAP_CASES[key],
      scenario: 'imap',
      peer: name,
      round,
      failure,
      metrics: typeof out === 'string' ? {} : out.metrics,
      errorSamples: typeof out === 'string' ? [] : out.errorSamples,
    });
    o.log(
      `${label} ${IMAP_CASES[key]}: ${failure === null ? describe(out as Outcome) : `FAILED: ${failure}`}`,
    );
  };
  const start = (keepData: boolean): Promise<ImapTarget> =>
    startImapTarget(name, { ...o, keepData, connections: s.connections });
  const why = (err: unknown): string => (err instanceof Error ? err.message : String(err));

  let t: ImapTarget;
  try {
    t = await start(false);
  } catch (err) {
    for (const key of Object.keys(IMAP_CASES) as ImapCaseKey[]) record(key, `could not start: ${why(err)}`);
    return runs;
  }
  const pending = new Set(Object.keys(IMAP_CASES) as ImapCaseKey[]);
  const attempt = async (
    key: ImapCaseKey,
    f: () => Promise<Outcome>,
    timeoutMs: number,
  ): Promise<boolean> => {
    pending.delete(key);
    try {
      record(key, withServerLog(t, await withTimeout(f(), timeoutMs, IMAP_CASES[key])));
      return true;
    } catch (err) {
      record(key, why(err));
      const gone = t.exited();
      if (gone !== null) throw new Error(`the server exited (${gone})`);
      return false;
    }
  };
  try {
    let uids: Map<number, number> | null = null;
    const loaded = await attempt(
      'populate',
      async () => {
        const mon = new TreeMonitor(t.pid).start();
        const t0 = performance.now();
        const how = await t.populate(s.messages, s.seed);
        const ms = performance.now() - t0;
        const u = mon.stop();
        o.log(`${label} ${how}`);
        return {
          metrics: {
            ms: Math.round(ms),
            msgsPerSec: (s.messages * 1000) / ms,
            cpuMs: Math.round(u.cpuMs),
            peakRssMiB: mib(u.peakRssBytes),
          },
          errorSamples: [],
        };
      },
      900_000,
    );
    if (!loaded) throw new Error('the mailbox could not be loaded');
    await attempt('fetchAll', () => fetchAll(t, s), 600_000);
    uids = await withTimeout(mapUids(t.port, s.messages, s.seed), 300_000, 'reading the UIDs');
    const map = uids;
    await attempt('searchAscii', () => search(t, s, 'ascii', map), 600_000);
    await attempt('searchUtf8', () => search(t, s, 'utf8', map), 600_000);
    await attempt('bodies', () => randomBodies(t, s, map), 600_000);
    await attempt('appendSmall', () => appendThroughput(t, s, K, s.appendSmall, round), 600_000);
    await attempt('appendLarge', () => appendThroughput(t, s, 100 * K, s.appendLarge, round), 600_000);
    if (t.push.kind === 'smtp') await attempt('pushSmtp', () => pushOverSmtp(t, s, round), 600_000);
    else pending.delete('pushSmtp');
    await attempt('pushAppend', () => pushOverAppend(t, s, round), 600_000);
    // Idle connections on a freshly started server: its memory then shows what they cost, not what
    // the cases before left in its heap.
    await t.stop();
    t = await start(true);
    await attempt('idle', () => idleConnections(t, s), 900_000);
  } catch (err) {
    o.log(`${label} ${why(err)}; the remaining IMAP cases are skipped this round`);
    for (const key of pending) record(key, `skipped: ${why(err)}`);
  } finally {
    await t.stop();
  }
  return runs;
}

/**
 * Adds what the server logged during a case: its errors (a process that died is otherwise only a
 * closed connection) and, for Dovecot, how many imap processes ran without inotify (over the
 * per-user fs.inotify.max_user_instances: they poll for changes every 30 s instead of being told).
 */
function withServerLog(t: ImapTarget, out: Outcome): Outcome {
  const lines = t.logSince().split('\n');
  const errors = lines.filter((l) => /: (Fatal|Panic|Error): /.test(l));
  const noInotify = lines.filter((l) => l.includes('Inotify instance limit')).length;
  if (errors.length === 0 && noInotify === 0) return out;
  return {
    metrics: {
      ...out.metrics,
      ...(errors.length > 0 ? { serverErrors: errors.length } : {}),
      ...(noInotify > 0 ? { withoutInotify: noInotify } : {}),
    },
    errorSamples: [...out.errorSamples, ...errors.slice(0, 2).map((l) => `server log: ${l.slice(0, 300)}`)],
  };
}

function describe(out: Outcome): string {
  const m = out.metrics;
  const parts = Object.entries(m).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(2)}`);
  return parts.join(', ') + (out.errorSamples.length > 0 ? ` [${out.errorSamples[0]}]` : '');
}
