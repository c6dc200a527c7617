// Network faults against a running `tern serve`: many thousands of connections (TERN_FAULT_CONNECTIONS,
// default 10,000, in concurrent batches) that end abruptly at every SMTP state — before the greeting,
// after it, after EHLO, inside a MAIL line, with a recipient accepted, in the middle of DATA (small and
// spooled-to-disk sizes) and of a BDAT chunk, inside the STARTTLS and the implicit-TLS handshakes — by a
// TCP reset (RST) or a half-close (FIN, the client still reading). The process must never die, and must
// give back what each connection took: open descriptors, heap after a full GC, spool files, queue
// entries. The figures (before, after, per-state counts) go to the test output for docs/reliability.md.
// Deliberately NOT here: slow clients and limits (abuse.test.ts), faults on the outbound side
// (outbound-faults.test.ts), hostile bytes in a live session (test/e2e/smtp-security.test.ts).

import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Tern } from '../e2e/harness.ts';
import { RawSmtpClient, startTern } from '../e2e/harness.ts';
import {
  LineReader,
  connectFrom,
  fdKinds,
  memorySnapshot,
  mib,
  procStats,
  recordClientHello,
  settledStats,
  withMemoryHook,
  type MemorySnapshot,
  type ProcStats,
} from './support.ts';

const TOTAL = Number(process.env['TERN_FAULT_CONNECTIONS'] ?? 10_000);
const BATCH = 200;
const WARMUP = 600;
const SECOND_ROUND = Math.ceil(TOTAL / 2);
const USER = 'rcpt@example.test';

const STATES = [
  'before-greeting',
  'after-greeting',
  'after-ehlo',
  'mid-mail-line',
  'after-rcpt',
  'mid-data',
  'mid-data-spooled',
  'mid-bdat',
  'starttls-handshake',
  'implicit-tls-handshake',
] as const;
type State = (typeof STATES)[number];
const ACTIONS = ['reset', 'half-close'] as const;
type Action = (typeof ACTIONS)[number];

interface Outcome {
  /** The client reached the state before acting (a server that closed first leaves this false). */
  reached: boolean;
  /** For half-close: the server closed its side afterwards. */
  serverClosed: boolean;
}

/** Drive one connection to `state`, then end it with `action`. */
async function fault(tern: Tern, clientHello: Buffer, state: State, action: Action): Promise<Outcome> {
  const port = state === 'implicit-tls-handshake' ? tern.ports.submissions : tern.ports.smtp;
  const socket = await connectFrom(port);
  socket.setNoDelay(true);
  const r = new LineReader(socket);
  let reached = false;
  const expect = async (code: string): Promise<boolean> => {
    const lines = await r.reply();
    return lines !== null && lines.at(-1)!.startsWith(code);
  };
  try {
    reached = await (async (): Promise<boolean> => {
      switch (state) {
        case 'before-greeting':
          return true;
        case 'implicit-tls-handshake':
          socket.write(clientHello);
          return r.someBytes();
        default:
          break;
      }
      if (!(await expect('220'))) return false;
      if (state === 'after-greeting') return true;
      socket.write('EHLO faulty.example\r\n');
      if (!(await expect('250'))) return false;
      switch (state) {
        case 'after-ehlo':
          return true;
        case 'mid-mail-line':
          socket.write('MAIL FROM:<someone@rem');
          return true;
        case 'starttls-handshake':
          socket.write('STARTTLS\r\n');
          if (!(await expect('220'))) return false;
          socket.write(clientHello);
          return r.someBytes();
        default:
          break;
      }
      socket.write(`MAIL FROM:<someone@remote.test>\r\nRCPT TO:<${USER}>\r\n`);
      if (!(await expect('250')) || !(await expect('250'))) return false;
      switch (state) {
        case 'after-rcpt':
          return true;
        case 'mid-data':
        case 'mid-data-spooled': {
          socket.write('DATA\r\n');
          if (!(await expect('354'))) return false;
          // 300 KB is past the queue's spill threshold: the body is on its way into a spool file.
          const size = state === 'mid-data' ? 2_000 : 300_000;
          const line = 'x'.repeat(98) + '\r\n';
          socket.write(`Subject: cut short\r\n\r\n${line.repeat(Math.ceil(size / line.length))}`);
          return true;
        }
        case 'mid-bdat':
          socket.write(`BDAT 100000\r\n${'y'.repeat(5_000)}`);
          return true;
        default:
          throw new Error(`unhandled state ${String(state)}`);
      }
    })();
  } catch {
    reached = false;
  }
  let serverClosed = false;
  if (action === 'reset') {
    socket.resetAndDestroy();
  } else {
    socket.end();
    serverClosed = await r.closeSeen(10_000);
    socket.destroy();
  }
  return { reached, serverClosed };
}

interface Tally {
  readonly byCase: Map<string, { runs: number; reached: number; lingering: number }>;
  errors: number;
}

async function runFaults(tern: Tern, clientHello: Buffer, count: number, tally: Tally): Promise<void> {
  const cases = STATES.flatMap((s) => ACTIONS.map((a) => [s, a] as const));
  let done = 0;
  while (done < count) {
    const n = Math.min(BATCH, count - done);
    const batch: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const [state, action] = cases[(done + i) % cases.length]!;
      const key = `${state} / ${action}`;
      batch.push(
        fault(tern, clientHello, state, action).then(
          (o) => {
            const t = tally.byCase.get(key) ?? { runs: 0, reached: 0, lingering: 0 };
            t.runs++;
            if (o.reached) t.reached++;
            if (action === 'half-close' && !o.serverClosed) t.lingering++;
            tally.byCase.set(key, t);
          },
          () => {
            tally.errors++;
          },
        ),
      );
    }
    await Promise.all(batch);
    done += n;
    assert.ok(
      tern.alive(),
      `tern serve died after ${done} faulty connections:\n${tern.outputText().slice(-3000)}`,
    );
  }
}

/** Every session the server opened is closed again (its log says so), then descriptors settle. */
async function quiescent(tern: Tern): Promise<ProcStats> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const open = new Set<unknown>();
    for (const l of tern.logs()) {
      // A socket error logs smtp.close and the close itself once more: count sessions, not lines.
      if (l.event === 'smtp.connect') open.add(l['session']);
      else if (l.event === 'smtp.close') open.delete(l['session']);
    }
    if (open.size === 0) break;
    if (Date.now() > deadline)
      throw new Error(`${open.size} sessions never closed: ${[...open].slice(0, 5).join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return settledStats(tern.pid);
}

describe(`${TOTAL} connections reset or half-closed at every SMTP state`, () => {
  let tern: Tern;
  let clientHello: Buffer;
  let baseline: { stats: ProcStats; memory: MemorySnapshot; kinds: Map<string, number> };
  const tally: Tally = { byCase: new Map(), errors: 0 };
  let afterFirstRound: { stats: ProcStats; memory: MemorySnapshot } | null = null;

  before(async () => {
    clientHello = await recordClientHello();
    tern = await withMemoryHook(() =>
      startTern({
        users: [USER],
        // Every fault comes from 127.0.0.1; the per-address limit is abuse.test.ts's subject.
        limits: { max_connections_per_ip: 5000, greeting_timeout_seconds: 30, command_timeout_seconds: 30 },
        logLevel: 'info',
      }),
    );
  });
  after(() => tern?.stop());

  test('warm-up, then the baseline: descriptors, RSS, heap after GC', async () => {
    // TLS contexts, JIT, pools and the SQLite caches settle in the first few hundred connections.
    await runFaults(tern, clientHello, WARMUP, { byCase: new Map(), errors: 0 });
    const stats = await quiescent(tern);
    baseline = { stats, memory: await memorySnapshot(tern), kinds: fdKinds(tern.pid) };
    console.log(
      `# baseline after ${WARMUP} warm-up faults: ${stats.fds} fds, RSS ${mib(stats.rssBytes)}, ` +
        `heap used ${mib(baseline.memory.heapUsed)}`,
    );
  });

  test('the process survives every fault, every state is reached', async () => {
    const started = Date.now();
    await runFaults(tern, clientHello, TOTAL, tally);
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `# ${TOTAL} faulty connections in ${seconds.toFixed(1)} s (${Math.round(TOTAL / seconds)}/s)`,
    );
    for (const [key, t] of tally.byCase) {
      console.log(
        `#   ${key}: ${t.runs} runs, state reached ${t.reached}, server kept half-open ${t.lingering}`,
      );
    }
    assert.ok(tern.alive());
    assert.equal(tally.errors, 0, 'a client could not even connect');
    for (const [key, t] of tally.byCase) {
      // Before the greeting there is nothing to wait for; everything else must really get there.
      assert.equal(t.reached, t.runs, `${key}: the state was not reached every time`);
      assert.equal(t.lingering, 0, `${key}: the server did not close after the client's FIN`);
    }
    const fatal = tern.logs().filter((l) => l.level === 'fatal' || l.event === 'smtp.internal_error');
    assert.deepEqual(fatal.slice(0, 5), [], 'internal errors in the log');
  });

  test('afterwards: no descriptor, memory, spool file or queue entry is left behind', async () => {
    const stats = await quiescent(tern);
    const memory = await memorySnapshot(tern);
    const kinds = fdKinds(tern.pid);
    console.log(
      `# after ${TOTAL} faults: ${stats.fds} fds (baseline ${baseline.stats.fds}), ` +
        `RSS ${mib(stats.rssBytes)} (baseline ${mib(baseline.stats.rssBytes)}), ` +
        `heap used ${mib(memory.heapUsed)} (baseline ${mib(baseline.memory.heapUsed)})`,
    );
    const grown = [...kinds].filter(([k, n]) => n > (baseline.kinds.get(k) ?? 0));
    assert.deepEqual(grown, [], 'descriptor kinds that grew');
    assert.ok(stats.fds <= baseline.stats.fds, `fds ${baseline.stats.fds} → ${stats.fds}`);
    // The heap after a full GC is what a leak would grow; 10k sessions leaking even 1 KiB each is 10 MiB.
    assert.ok(
      memory.heapUsed - baseline.memory.heapUsed < 4 * 1024 * 1024,
      `heap after GC grew ${mib(memory.heapUsed - baseline.memory.heapUsed)}`,
    );
    // RSS follows V8's committed heap, which grows its young generation under a high allocation rate
    // and keeps it (heapTotal, not a leak: it plateaus); what is outside the V8 heap (OpenSSL, libuv,
    // SQLite, buffers) is what a native leak would grow.
    // Both figures from the same instant, after the same full GC (the /proc figure above came before it).
    const native = (m: MemorySnapshot): number => m.rss - m.heapTotal;
    const nativeGrowth = native(memory) - native(baseline.memory);
    console.log(
      `# heap committed ${mib(baseline.memory.heapTotal)} → ${mib(memory.heapTotal)}; ` +
        `RSS outside the V8 heap grew ${mib(nativeGrowth)}`,
    );
    // This first figure moves by tens of MiB between runs of the same code (-42 to +97 MiB seen): V8
    // commits and releases young-generation pages (heapTotal) independently of when the kernel takes
    // the pages back, so RSS minus heapTotal swings either way. It bounds a per-session native leak
    // (10,000 OpenSSL sessions kept would be ~500 MiB); the plateau test below catches slower ones.
    assert.ok(nativeGrowth < 192 * 1024 * 1024, `RSS outside the V8 heap grew ${mib(nativeGrowth)}`);
    afterFirstRound = { stats, memory };
    const spool = await readdir(join(tern.dataDir, 'queue', 'spool')).catch(() => []);
    assert.deepEqual(spool, [], 'spool files of aborted messages');
    const queue = await tern.tern(['queue', 'list', '--json']);
    assert.deepEqual(JSON.parse(queue.stdout), [], 'nothing was queued');
    assert.equal((await tern.storedMessages(USER)).length, 0, 'nothing was delivered');
  });

  test('a second round of faults: memory has plateaued (a leak would grow it again)', async () => {
    await runFaults(tern, clientHello, SECOND_ROUND, { byCase: new Map(), errors: 0 });
    const stats = await quiescent(tern);
    const memory = await memorySnapshot(tern);
    const before = afterFirstRound!;
    const rssGrowth = stats.rssBytes - before.stats.rssBytes;
    console.log(
      `# after ${SECOND_ROUND} more faults: RSS ${mib(before.stats.rssBytes)} → ${mib(stats.rssBytes)}, ` +
        `heap used ${mib(before.memory.heapUsed)} → ${mib(memory.heapUsed)}, fds ${before.stats.fds} → ${stats.fds}`,
    );
    assert.ok(stats.fds <= before.stats.fds, `fds ${before.stats.fds} → ${stats.fds}`);
    // 8 KiB kept per session (an OpenSSL session, a socket's buffers) would be 39 MiB here.
    assert.ok(rssGrowth < 32 * 1024 * 1024, `RSS grew ${mib(rssGrowth)} in the second round`);
    assert.ok(
      memory.heapUsed - before.memory.heapUsed < 2 * 1024 * 1024,
      `heap after GC grew ${mib(memory.heapUsed - before.memory.heapUsed)} in the second round`,
    );
  });

  test('and a normal client is served as before', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await c.command('EHLO normal.example');
    await c.send(`MAIL FROM:<a@remote.test>\r\nRCPT TO:<${USER}>\r\nDATA\r\n`);
    assert.deepEqual(
      (await c.readReplies(3)).map((x) => x.code),
      [250, 250, 354],
    );
    assert.equal((await c.command('Subject: fine\r\n\r\nstill here\r\n.')).code, 250);
    c.close();
    await tern.waitForMessages(USER, 1);
    assert.ok(procStats(tern.pid).fds > 0);
  });
});
