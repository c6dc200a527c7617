// Abuse against a running `tern serve`: slow clients, floods and early talkers.
//   - 1,000 connections from one address meet the per-address limit: the first max_connections_per_ip
//     are greeted, every other one gets 421 4.7.0 and a close; on the implicit-TLS port the limit holds
//     before the handshake;
//   - 1,000 idle or trickling connections spread over twenty 127.0.0.x addresses (so the per-address
//     limit lets them in) cost a normal client little: its delivery latency stays within 2× of what it
//     is on an idle server (median of several; the figures go to the test output);
//   - deadlines: a command line trickled a byte at a time (command_timeout_seconds is a deadline, not an
//     idle timer), a DATA phase trickled a line at a time (data_total_timeout_seconds), and a TLS handshake
//     that stalls or never starts (after STARTTLS, and on the implicit-TLS port) are all cut;
//   - a flood of unknown commands (or of out-of-sequence ones) ends with 421 4.7.0 and a close after
//     limits.max_errors;
//   - early talkers: with limits.greeting_delay_seconds, bytes before the greeting get 554 5.5.0 and a
//     close, a patient client is served, and what an early talker sends before the verdict is bounded.
// Deliberately NOT here: connections cut at every state (network-faults.test.ts), hostile bytes within a
// session (test/e2e/smtp-security.test.ts), AUTH guessing (test/e2e/auth-limits.test.ts).

import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Tern } from '../e2e/harness.ts';
import { startTern } from '../e2e/harness.ts';
import {
  LineReader,
  bodyOf,
  connectFrom,
  median,
  mib,
  procStats,
  recordClientHello,
  sendMessage,
  settledStats,
} from './support.ts';

const USER = 'rcpt@example.test';
const SLOW = 1000;
const SLOW_ADDRESSES = 20;
const SAMPLES = 21;

/** One normal delivery on a fresh connection: connect, EHLO, MAIL, RCPT, DATA, 250. Milliseconds. */
async function deliveryMs(port: number, n: number): Promise<number> {
  const started = performance.now();
  const r = await sendMessage(
    port,
    { from: 'normal@remote.test', to: [USER] },
    `Subject: normal ${n}\r\n\r\n${bodyOf(2_000, `normal-${n}`)}`,
  );
  const ms = performance.now() - started;
  assert.equal(r.code, 250, r.text);
  return ms;
}

async function latencies(port: number, from: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) out.push(await deliveryMs(port, from + i));
  return out;
}

/** Open `n` connections from `address` at once; each resolves with its reader once connected. */
function openMany(port: number, n: number, address: string): Promise<LineReader[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const s = await connectFrom(port, address);
      s.on('error', () => undefined);
      return new LineReader(s);
    }),
  );
}

/** "500 5.5.1" from "500 5.5.1 Command unrecognized"; "250" for a reply without an enhanced code. */
function codeOf(line: string): string {
  return /^(\d{3})[ -](?:([245]\.\d{1,3}\.\d{1,3}) )?/.exec(line)?.slice(1).filter(Boolean).join(' ') ?? line;
}

function closeAll(readers: readonly LineReader[]): void {
  for (const r of readers) r.socket.destroy();
}

describe('slow clients: the per-address limit, and a normal client among 1,000 slow ones', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [USER],
      // Long timeouts: here nothing must be cut for being slow; the deadlines have their own server.
      limits: {
        max_connections_per_ip: SLOW / SLOW_ADDRESSES,
        greeting_timeout_seconds: 120,
        command_timeout_seconds: 120,
      },
    });
  });
  after(() => tern?.stop());

  test(`${SLOW} connections from one address: ${SLOW / SLOW_ADDRESSES} greeted, the rest 421 4.7.0 and closed`, async () => {
    const readers = await openMany(tern.ports.smtp, SLOW, '127.0.0.1');
    try {
      const firsts = await Promise.all(readers.map((r) => r.reply(10_000)));
      const greeted = firsts.filter((l) => l?.at(-1)?.startsWith('220 ')).length;
      const refused = readers.filter((r, i) => firsts[i]?.at(-1)?.startsWith('421 4.7.0 ')).length;
      console.log(
        `# ${SLOW} connections from 127.0.0.1: ${greeted} greeted, ${refused} refused with 421 4.7.0`,
      );
      assert.equal(greeted, SLOW / SLOW_ADDRESSES);
      assert.equal(refused, SLOW - greeted);
      const refusedReaders = readers.filter((r, i) => firsts[i]?.at(-1)?.startsWith('421'));
      const closed = await Promise.all(refusedReaders.map((r) => r.closeSeen(5000)));
      assert.ok(closed.every(Boolean), 'a refused connection was left open');
    } finally {
      closeAll(readers);
    }
  });

  test('connections to the implicit-TLS port count against the per-address limit before their handshake', async () => {
    const limit = SLOW / SLOW_ADDRESSES;
    const readers = await openMany(tern.ports.submissions, 2 * limit, '127.0.0.2');
    try {
      await sleep(2000);
      const closed = readers.filter((r) => r.closed).length;
      assert.ok(closed >= limit, `${closed} of ${2 * limit} silent connections closed, limit ${limit}`);
    } finally {
      closeAll(readers);
    }
  });

  test(`a normal client's delivery latency among ${SLOW} idle and trickling connections stays within 2×`, async () => {
    // The refused and closed connections of the last test must have left the per-address count.
    await settledStats(tern.pid);
    await deliveryMs(tern.ports.smtp, -1); // warm-up: first TLS-less session, JIT, SQLite caches
    const idle = await latencies(tern.ports.smtp, 0);

    const slow: LineReader[] = [];
    const timers: NodeJS.Timeout[] = [];
    try {
      for (let a = 0; a < SLOW_ADDRESSES; a++) {
        slow.push(...(await openMany(tern.ports.smtp, SLOW / SLOW_ADDRESSES, `127.0.0.${100 + a}`)));
      }
      const greetings = await Promise.all(slow.map((r) => r.reply(15_000)));
      const greeted = greetings.filter((l) => l?.at(-1)?.startsWith('220 ')).length;
      assert.equal(greeted, SLOW, `only ${greeted} of the slow connections were greeted`);
      // Half of them trickle NOOP commands a byte every 200 ms; the other half say nothing at all.
      const noop = Buffer.from('NOOP\r\n');
      slow.forEach((r, i) => {
        if (i % 2 === 1) return;
        let at = 0;
        const t = setInterval(() => {
          if (!r.socket.destroyed) r.socket.write(noop.subarray(at % noop.length, (at % noop.length) + 1));
          at++;
        }, 200);
        t.unref();
        timers.push(t);
      });
      await sleep(1000);
      const loaded = await latencies(tern.ports.smtp, 100);
      const stats = procStats(tern.pid);
      const openSlow = slow.filter((r) => !r.closed).length;
      console.log(
        `# delivery latency, median of ${SAMPLES}: idle server ${median(idle).toFixed(1)} ms, with ${openSlow} ` +
          `slow connections open ${median(loaded).toFixed(1)} ms (server: ${stats.fds} fds, RSS ${mib(stats.rssBytes)})`,
      );
      assert.equal(openSlow, SLOW, 'slow connections were cut');
      // Within 2× of idle; the 10 ms allowance absorbs the scheduling noise of a 2-core machine that runs
      // other test files at the same time (the idle baseline is a few ms, measured at another moment).
      assert.ok(
        median(loaded) <= 2 * median(idle) + 10,
        `latency ${median(loaded).toFixed(1)} ms under load, ${median(idle).toFixed(1)} ms idle`,
      );
    } finally {
      for (const t of timers) clearInterval(t);
      closeAll(slow);
    }
  });
});

describe('deadlines: trickled commands, trickled DATA, stalled TLS handshakes', { concurrency: true }, () => {
  let tern: Tern;
  let clientHello: Buffer;
  before(async () => {
    clientHello = await recordClientHello();
    tern = await startTern({
      users: [USER],
      limits: {
        greeting_timeout_seconds: 2,
        command_timeout_seconds: 2,
        data_block_timeout_seconds: 2,
        data_total_timeout_seconds: 3,
        tls_handshake_timeout_seconds: 2,
      },
    });
  });
  after(() => tern?.stop());

  /** Write `bytes` one at a time every `everyMs` until the server closes; the close's time and replies. */
  async function trickle(
    r: LineReader,
    bytes: Buffer,
    everyMs: number,
    limitMs: number,
  ): Promise<{ ms: number | null; last: string }> {
    const started = Date.now();
    for (let i = 0; Date.now() - started < limitMs; i++) {
      if (r.closed) break;
      r.socket.write(bytes.subarray(i % bytes.length, (i % bytes.length) + 1));
      await sleep(everyMs);
    }
    const closed = await r.closeSeen(1000);
    const text = r.pending.toString('latin1').trim().split('\r\n');
    return { ms: closed ? Date.now() - started : null, last: text.at(-1) ?? '' };
  }

  test('a command line trickled a byte every 300 ms is cut at the command deadline (421 4.4.2)', async () => {
    const r = new LineReader(await connectFrom(tern.ports.smtp));
    assert.ok((await r.reply())?.at(-1)?.startsWith('220'));
    r.socket.write('EHLO slow.example\r\n');
    assert.ok((await r.reply())?.at(-1)?.startsWith('250'));
    // A line that never ends (510 octets would be allowed): the bytes keep coming, the command never.
    const cut = await trickle(r, Buffer.from(`NOOP ${'x'.repeat(500)}`), 300, 8000);
    r.socket.destroy();
    assert.ok(cut.ms !== null && cut.ms < 2000 + 1500, `not cut within 3.5 s (${cut.ms} ms)`);
    assert.match(cut.last, /^421 4\.4\.2 /);
  });

  test('a DATA phase trickled a line every 300 ms is cut at data_total_timeout (421 4.4.2), nothing kept', async () => {
    const r = new LineReader(await connectFrom(tern.ports.smtp));
    assert.ok((await r.reply())?.at(-1)?.startsWith('220'));
    r.socket.write(`EHLO slow.example\r\nMAIL FROM:<slow@remote.test>\r\nRCPT TO:<${USER}>\r\nDATA\r\n`);
    for (const code of ['250', '250', '250', '354']) assert.ok((await r.reply())?.at(-1)?.startsWith(code));
    const started = Date.now();
    let i = 0;
    while (!r.closed && Date.now() - started < 8000) {
      r.socket.write(`Line ${i++} of a message that takes its time\r\n`);
      await sleep(300);
    }
    const ms = Date.now() - started;
    assert.ok(r.closed, 'still open after 8 s');
    assert.ok(ms >= 2800 && ms < 3000 + 1500, `cut after ${ms} ms, data_total_timeout is 3 s`);
    assert.match(r.pending.toString('latin1'), /^421 4\.4\.2 /m);
    assert.equal((await tern.storedMessages(USER)).filter((m) => m.subject === '').length, 0);
    const queue = await tern.tern(['queue', 'list', '--json']);
    assert.deepEqual(JSON.parse(queue.stdout), []);
  });

  /** A handshake that starts (half a ClientHello) and stalls; resolves with ms until the server closes. */
  async function stalledHandshake(starttls: boolean, limitMs: number): Promise<number | null> {
    const port = starttls ? tern.ports.smtp : tern.ports.submissions;
    const r = new LineReader(await connectFrom(port));
    if (starttls) {
      assert.ok((await r.reply())?.at(-1)?.startsWith('220'));
      r.socket.write('EHLO slow.example\r\n');
      assert.ok((await r.reply())?.at(-1)?.startsWith('250'));
      r.socket.write('STARTTLS\r\n');
      assert.ok((await r.reply())?.at(-1)?.startsWith('220'));
    }
    const started = Date.now();
    r.socket.write(clientHello.subarray(0, clientHello.length >> 1));
    const closed = await r.closeSeen(limitMs);
    r.socket.destroy();
    return closed ? Date.now() - started : null;
  }

  test('a stalled TLS handshake is cut at tls_handshake_timeout_seconds (STARTTLS and implicit TLS)', async () => {
    const [starttls, implicit] = await Promise.all([
      stalledHandshake(true, 5000),
      stalledHandshake(false, 5000),
    ]);
    console.log(`# stalled TLS handshakes cut after: STARTTLS ${starttls} ms, implicit TLS ${implicit} ms`);
    assert.ok(starttls !== null && starttls < 2000 + 1500, `STARTTLS: ${starttls} ms`);
    assert.ok(implicit !== null && implicit < 2000 + 1500, `implicit TLS: ${implicit} ms`);
  });

  test('a connection to the implicit-TLS port that never starts its handshake is cut too', async () => {
    const r = new LineReader(await connectFrom(tern.ports.submissions));
    const started = Date.now();
    const closed = await r.closeSeen(5000);
    r.socket.destroy();
    assert.ok(closed, 'still open after 5 s');
    assert.ok(Date.now() - started < 2000 + 1500, `cut after ${Date.now() - started} ms`);
  });
});

describe('floods and early talkers', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [USER],
      limits: { max_errors: 5, greeting_delay_seconds: 1 },
    });
  });
  after(() => tern?.stop());

  /** After the greeting, pipeline `lines` at once and read every reply until the server closes. */
  async function flood(lines: string): Promise<{ replies: string[]; closed: boolean }> {
    const r = new LineReader(await connectFrom(tern.ports.smtp));
    assert.ok((await r.reply(5000))?.at(-1)?.startsWith('220'));
    r.socket.write(lines);
    const replies: string[] = [];
    for (;;) {
      const reply = await r.reply(5000);
      if (reply === null) break;
      replies.push(codeOf(reply.at(-1)!));
    }
    const closed = await r.closeSeen(2000);
    r.socket.destroy();
    return { replies, closed };
  }

  test('a flood of unknown commands: five 500 5.5.1, then 421 4.7.0 and a close', async () => {
    const { replies, closed } = await flood('XYZZY plugh\r\n'.repeat(10_000));
    assert.deepEqual(replies, [...Array<string>(5).fill('500 5.5.1'), '421 4.7.0']);
    assert.ok(closed);
  });

  test('a flood of commands out of sequence: 503s up to the limit, then 421 4.7.0 and a close', async () => {
    const { replies, closed } = await flood(
      'EHLO flood.example\r\n' + 'RCPT TO:<rcpt@example.test>\r\n'.repeat(1000),
    );
    assert.deepEqual(replies, ['250', ...Array<string>(5).fill('503 5.5.1'), '421 4.7.0']);
    assert.ok(closed);
  });

  test('an early talker (EHLO before the greeting) gets 554 5.5.0 and a close', async () => {
    const r = new LineReader(await connectFrom(tern.ports.smtp));
    r.socket.write('EHLO early.example\r\n');
    const reply = await r.reply(5000);
    assert.deepEqual(reply?.map(codeOf), ['554 5.5.0']);
    assert.ok(await r.closeSeen(3000));
    r.socket.destroy();
  });

  test('a patient client gets its greeting after the delay and delivers', async () => {
    const started = Date.now();
    const r = await sendMessage(
      tern.ports.smtp,
      { from: 'patient@remote.test', to: [USER] },
      'Subject: patient\r\n\r\nok\r\n',
    );
    assert.equal(r.code, 250, r.text);
    assert.ok(Date.now() - started >= 900, 'greeted before the delay');
  });

  test('what early talkers send before the verdict is bounded: 8 clients × 16 MiB grow the server by < 48 MiB', async () => {
    const before = await settledStats(tern.pid);
    const sockets: Socket[] = [];
    const chunk = Buffer.alloc(1024 * 1024, 0x41);
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const s = await connectFrom(tern.ports.smtp, `127.0.0.${60 + i}`);
        s.on('error', () => undefined);
        sockets.push(s);
        // At most 3 s of sending: a server that reads no faster than it should costs no more.
        const until = Date.now() + 3000;
        for (let n = 0; n < 16 && !s.destroyed && Date.now() < until; n++) {
          if (!s.write(chunk)) {
            await Promise.race([
              new Promise((resolve) => s.once('drain', resolve)),
              sleep(until - Date.now()),
            ]);
          }
        }
      }),
    );
    const peak = procStats(tern.pid).rssBytes;
    for (const s of sockets) s.destroy();
    console.log(
      `# early talkers: server RSS ${mib(before.rssBytes)} → ${mib(peak)} while 8 × 16 MiB arrived`,
    );
    assert.ok(peak - before.rssBytes < 48 * 1024 * 1024, `RSS grew ${mib(peak - before.rssBytes)}`);
  });
});
