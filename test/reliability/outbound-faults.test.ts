// Bad remote servers for the outbound side: Tern relays one message to each of a dozen destination
// domains whose MX (test/support/dns-server.ts) points at a fake SMTP server written here with node:net,
// one loopback address per misbehaviour, all on the [outbound] port:
//   drops the connection mid-DATA; answers garbage to the greeting or to MAIL; sends a 2 MiB reply line
//   or an endless multiline reply; stalls before the greeting, after RCPT, after the final dot; resets
//   the connection after the dot; advertises STARTTLS and then fails it (454, garbage instead of TLS);
//   sends plaintext after its 220 to STARTTLS (the "250"s a man in the middle would inject).
// For each: the message is deferred and retried (visible in `tern queue list --json` with the attempts
// counted and the reason), never recorded as delivered and never bounced; when the same address turns
// into a good server, the message arrives there exactly once, byte for byte. With TLS policy "may" a
// failed STARTTLS falls back to plaintext, so one domain checks that this fallback delivers once too.
// Outbound timeouts are short in the config (2 s) so stalls cost seconds.
// Deliberately NOT here: the client's own unit tests against hostile servers (src/delivery/smtp-client
// .test.ts), MX ordering and DSNs (test/e2e/outbound-*.test.ts).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TLSSocket } from 'node:tls';
import { startDnsServer, type DnsServer } from '../support/dns-server.ts';
import { waitFor } from '../e2e/harness.ts';
import { makeCerts, startOutboundTern, type OutboundTern, type QueuedJson } from '../e2e/outbound-helpers.ts';
import { bodyOf, sendMessage } from './support.ts';

const ALICE = 'alice@example.test';

/** How a fake server behaves; 'good' is a plain, correct SMTP server with STARTTLS. */
const BEHAVIOURS = [
  'drop-mid-data',
  'reset-after-dot',
  'garbage-greeting',
  'garbage-reply-to-mail',
  'oversized-reply-line',
  'endless-multiline-reply',
  'stall-before-greeting',
  'stall-after-rcpt',
  'stall-after-dot',
  'starttls-454',
  'starttls-then-garbage',
  'starttls-plaintext-injection',
] as const;
type Bad = (typeof BEHAVIOURS)[number];
type Behaviour = Bad | 'good';

/** Destinations with TLS policy "encrypt": a failed STARTTLS must not fall back to plaintext there. */
const ENCRYPT = new Set<Bad>(['starttls-454', 'starttls-then-garbage', 'starttls-plaintext-injection']);
/** The same STARTTLS failure under "may": falling back to plaintext at the same server is allowed. */
const MAY_FALLBACK = 'starttls-fallback';

interface Delivery {
  readonly ip: string;
  readonly rcpts: readonly string[];
  readonly data: Buffer;
  readonly tls: boolean;
}

/** Fake MX servers: one listener per 127.0.0.x, all on one port, each with a behaviour that can change. */
class FakeMx {
  readonly behaviours = new Map<string, Behaviour>();
  /** Messages a server acknowledged with 250 after the final dot. */
  readonly accepted: Delivery[] = [];
  readonly connections = new Map<string, number>();
  port = 0;
  readonly #servers: Server[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #tls: { key: string; cert: string };

  constructor(tls: { key: string; cert: string }) {
    this.#tls = tls;
  }

  /** Listen on every address given (same port for all: the [outbound] port is one number). */
  async listen(ips: readonly string[]): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const servers: Server[] = [];
      try {
        for (const ip of ips) {
          const server = createServer((s) => this.#accept(s, ip));
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(this.port, ip, () => resolve());
          });
          servers.push(server);
          if (this.port === 0) this.port = (server.address() as { port: number }).port;
        }
        this.#servers.push(...servers);
        return;
      } catch {
        for (const s of servers) s.close();
        this.port = 0; // that port was taken on one of the addresses: try another
      }
    }
    throw new Error('no common free port on the fake MX addresses');
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  #accept(raw: Socket, ip: string): void {
    this.#sockets.add(raw);
    raw.on('close', () => this.#sockets.delete(raw));
    raw.on('error', () => undefined);
    this.connections.set(ip, (this.connections.get(ip) ?? 0) + 1);
    const behaviour = this.behaviours.get(ip) ?? 'good';
    let socket: Socket = raw;
    let tls = false;
    let buffer = Buffer.alloc(0);
    let inData = false;
    let dataBytes = 0;
    let rcpts: string[] = [];
    const send = (text: string): void => {
      if (!socket.destroyed) socket.write(text);
    };
    const ehloLines = (): string => {
      const ext = ['8BITMIME'];
      const offersTls = behaviour === 'good' || behaviour.startsWith('starttls');
      if (offersTls && !tls) ext.push('STARTTLS');
      return (
        ['250-fake.test', ...ext.slice(0, -1).map((e) => `250-${e}`), `250 ${ext.at(-1)!}`].join('\r\n') +
        '\r\n'
      );
    };

    const onLine = (line: string): void => {
      const verb = (line.split(' ', 1)[0] ?? '').toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') return send(ehloLines());
      if (verb === 'STARTTLS') {
        switch (behaviour) {
          case 'starttls-454':
            return send('454 4.7.0 TLS not available due to temporary reason\r\n');
          case 'starttls-then-garbage':
            send('220 2.0.0 Ready to start TLS\r\n');
            return void setTimeout(() => send('this is not a TLS ServerHello\r\n\x00\x01\x02'), 50);
          case 'starttls-plaintext-injection':
            // What a man in the middle would add: replies for commands not yet sent, in the same segment.
            send('220 2.0.0 Ready to start TLS\r\n250-fake.test\r\n250 8BITMIME\r\n250 2.1.0 OK\r\n');
            return void setTimeout(() => send('250 2.1.5 OK\r\n354 go ahead\r\n250 2.0.0 Queued\r\n'), 50);
          case 'good':
          default: {
            send('220 2.0.0 Ready to start TLS\r\n');
            socket.removeListener('data', onData);
            const secure = new TLSSocket(socket, {
              isServer: true,
              key: this.#tls.key,
              cert: this.#tls.cert,
            });
            secure.on('error', () => undefined);
            secure.on('data', onData);
            socket = secure;
            tls = true;
            buffer = Buffer.alloc(0);
            return;
          }
        }
      }
      if (verb === 'MAIL') {
        rcpts = [];
        if (behaviour === 'garbage-reply-to-mail') return send('\x00\xff\xfe what is this?\r\n25O OK\r\n');
        if (behaviour === 'oversized-reply-line') return send(`250 ${'x'.repeat(2 * 1024 * 1024)}\r\n`);
        if (behaviour === 'endless-multiline-reply') {
          const spam = (): void => {
            if (socket.destroyed) return;
            socket.write('250-still going\r\n'.repeat(1000), () => setImmediate(spam));
          };
          return spam();
        }
        return send('250 2.1.0 OK\r\n');
      }
      if (verb === 'RCPT') {
        rcpts.push(/<([^>]*)>/.exec(line)?.[1] ?? '');
        return send('250 2.1.5 OK\r\n');
      }
      if (verb === 'DATA') {
        if (behaviour === 'stall-after-rcpt') return;
        inData = true;
        dataBytes = 0;
        return send('354 Go ahead\r\n');
      }
      if (verb === 'RSET' || verb === 'NOOP') return send('250 2.0.0 OK\r\n');
      if (verb === 'QUIT') {
        send('221 2.0.0 Bye\r\n');
        return void socket.end();
      }
      send('500 5.5.1 What?\r\n');
    };

    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) {
            dataBytes += chunk.length;
            // Cut once a good part of the message has arrived and the end of data has not.
            if (behaviour === 'drop-mid-data' && dataBytes > 16 * 1024) socket.destroy();
            return;
          }
          const data = buffer.subarray(0, end + 2);
          buffer = buffer.subarray(end + 5);
          inData = false;
          switch (behaviour) {
            case 'drop-mid-data':
            case 'reset-after-dot':
              socket.resetAndDestroy();
              return;
            case 'stall-after-dot':
              return;
            default:
              this.accepted.push({ ip, rcpts, data: Buffer.from(data), tls });
              send('250 2.0.0 Queued as FAKE\r\n');
              continue;
          }
        }
        const lf = buffer.indexOf('\n');
        if (lf < 0) return;
        const line = buffer.subarray(0, lf).toString('latin1').replace(/\r$/, '');
        buffer = buffer.subarray(lf + 1);
        onLine(line);
      }
    };

    raw.on('data', onData);
    switch (behaviour) {
      case 'stall-before-greeting':
        return;
      case 'garbage-greeting':
        return send('\x16\x03\x01 garbage \x00\xff\r\nHELLO\r\n');
      default:
        send('220 fake.test ESMTP\r\n');
    }
  }
}

/** Unescape the dot-stuffing of DATA content. */
function unstuff(data: Buffer): string {
  return data.toString('latin1').replace(/^\.\./gm, '.');
}

interface Case {
  readonly behaviour: Bad | typeof MAY_FALLBACK;
  readonly domain: string;
  readonly ip: string;
  readonly rcpt: string;
  readonly content: string;
}

describe('bad remote servers: deferred and retried, never lost, never recorded as delivered', () => {
  let dns: DnsServer;
  let mx: FakeMx;
  let tern: OutboundTern;
  const all: readonly Case['behaviour'][] = [...BEHAVIOURS, MAY_FALLBACK];
  const cases: Case[] = all.map((behaviour, i) => {
    const domain = `${behaviour}.test`;
    const rcpt = `rcpt@${domain}`;
    // The mid-DATA drop needs a message larger than a socket read; the rest are small.
    const size = behaviour === 'drop-mid-data' ? 200_000 : 3_000;
    const content =
      `From: <${ALICE}>\r\nTo: <${rcpt}>\r\nSubject: to ${behaviour}\r\n` +
      `Message-ID: <${behaviour}.${Date.now()}@example.test>\r\n\r\n.leading dot\r\n${bodyOf(size, behaviour)}`;
    return { behaviour, domain, ip: `127.0.0.${20 + i}`, rcpt, content };
  });
  const queued = new Map<string, QueuedJson['recipients'][number]>();

  before(async () => {
    const certs = await makeCerts(['mx.fake.test']);
    mx = new FakeMx({ key: certs.key, cert: certs.cert });
    for (const c of cases) {
      mx.behaviours.set(c.ip, c.behaviour === MAY_FALLBACK ? 'starttls-then-garbage' : c.behaviour);
    }
    await mx.listen(cases.map((c) => c.ip));
    dns = await startDnsServer({ zones: {} });
    for (const c of cases) {
      dns.setZone(c.domain, {
        '@': [{ type: 'MX', preference: 10, exchange: `mx.${c.domain}` }],
        mx: [{ type: 'A', address: c.ip }],
      });
    }
    const tlsPolicy: Record<string, string> = {};
    for (const c of cases) tlsPolicy[c.domain] = ENCRYPT.has(c.behaviour as Bad) ? 'encrypt' : 'may';
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: {
        port: mx.port,
        connection_idle_seconds: 0,
        connect_timeout_seconds: 2,
        greeting_timeout_seconds: 2,
        command_timeout_seconds: 2,
        data_init_timeout_seconds: 2,
        data_block_timeout_seconds: 2,
        data_done_timeout_seconds: 2,
      },
      tlsPolicy,
      // Retries are driven by `tern queue flush` below; the schedule only must not bounce early.
      queue: { retry_min_seconds: 1, retry_max_seconds: 2 },
      users: [ALICE],
    });
  });
  after(async () => {
    // For a failure's post-mortem: the server's whole log.
    if (process.env['TERN_RELIABILITY_LOGS'])
      writeFileSync(process.env['TERN_RELIABILITY_LOGS'], tern.outputText());
    await tern?.stop();
    await mx?.close();
    await dns?.close();
  });

  test('every message is accepted by Tern (250) and its first attempt is deferred with a reason', async () => {
    for (const c of cases) {
      const r = await sendMessage(tern.ports.smtp, { from: ALICE, to: [c.rcpt] }, c.content);
      assert.equal(r.code, 250, `${c.behaviour}: ${r.text}`);
    }
    const fallback = cases.find((c) => c.behaviour === MAY_FALLBACK)!;
    await waitFor(
      'a first attempt at every bad server',
      async () => {
        const q = await tern.queueList();
        for (const m of q) for (const r of m.recipients) queued.set(r.address, r);
        const pending = cases.filter(
          (c) =>
            c !== fallback &&
            !(queued.get(c.rcpt)?.status === 'deferred' && queued.get(c.rcpt)!.attempts >= 1),
        );
        return pending.length === 0 ? true : undefined;
      },
      20_000,
      250,
    );
    for (const c of cases) {
      if (c === fallback) continue;
      const r = queued.get(c.rcpt)!;
      console.log(`# ${c.behaviour}: deferred after ${r.attempts} attempt(s): ${r.lastReply}`);
      assert.match(r.lastReply ?? '', /^4\d\d /, `${c.behaviour}: a temporary reason is recorded`);
    }
  });

  test('under "may", a STARTTLS that fails falls back to plaintext at the same server: delivered once', async () => {
    const c = cases.find((x) => x.behaviour === MAY_FALLBACK)!;
    await waitFor('the plaintext fallback delivery', () =>
      mx.accepted.some((d) => d.rcpts.includes(c.rcpt)) ? true : undefined,
    );
    const got = mx.accepted.filter((d) => d.rcpts.includes(c.rcpt));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.tls, false);
    assert.ok(tern.events('delivery.tls.fallback').length >= 1, 'the fallback is logged');
  });

  test('a second attempt at the same bad servers: still deferred, nothing delivered or bounced', async () => {
    const bad = cases.filter((c) => c.behaviour !== MAY_FALLBACK);
    const before = new Map(bad.map((c) => [c.rcpt, queued.get(c.rcpt)!.attempts]));
    await waitFor(
      'a second attempt at every bad server',
      async () => {
        const q = await tern.queueList();
        for (const m of q) for (const r of m.recipients) queued.set(r.address, r);
        if (bad.every((c) => (queued.get(c.rcpt)?.attempts ?? 0) > before.get(c.rcpt)!)) return true;
        await tern.tern(['queue', 'flush']);
        await sleep(1000);
        return undefined;
      },
      30_000,
      0,
    );
    for (const c of bad) {
      const r = queued.get(c.rcpt)!;
      assert.equal(r.status, 'deferred', `${c.behaviour}: ${JSON.stringify(r)}`);
      assert.equal(r.bounceRequested, false);
    }
    // No server of these acknowledged anything, and Tern never claimed a delivery to them.
    const badIps = new Set(bad.map((c) => c.ip));
    assert.deepEqual(
      mx.accepted.filter((d) => badIps.has(d.ip)),
      [],
    );
    const claimed = tern
      .events('delivery.remote')
      .filter((l) => bad.some((c) => JSON.stringify(l['recipients'] ?? '').includes(c.rcpt)));
    assert.deepEqual(claimed, [], 'delivery.remote logged for a bad server');
    assert.deepEqual(await tern.storedMessages(ALICE), [], 'a bounce or warning reached the sender');
  });

  test('the same addresses turn good: each message arrives exactly once, byte for byte', async () => {
    const bad = cases.filter((c) => c.behaviour !== MAY_FALLBACK);
    for (const c of bad) mx.behaviours.set(c.ip, 'good');
    await waitFor(
      'every message at a good server',
      async () => {
        if (bad.every((c) => mx.accepted.some((d) => d.rcpts.includes(c.rcpt)))) return true;
        await tern.tern(['queue', 'flush']);
        await sleep(1000);
        return undefined;
      },
      30_000,
      0,
    );
    await tern.waitForEmptyQueue();
    // A duplicate would come with the next attempt: give it the chance.
    await tern.tern(['queue', 'flush']);
    await sleep(1500);
    for (const c of cases) {
      const got = mx.accepted.filter((d) => d.rcpts.includes(c.rcpt));
      assert.equal(got.length, 1, `${c.behaviour}: received ${got.length} times`);
      assert.ok(unstuff(got[0]!.data).endsWith(c.content), `${c.behaviour}: content differs`);
      if (ENCRYPT.has(c.behaviour as Bad))
        assert.equal(got[0]!.tls, true, `${c.behaviour}: sent without TLS`);
    }
    assert.deepEqual(await tern.storedMessages(ALICE), [], 'a bounce or warning reached the sender');
    assert.ok(tern.alive());
  });
});
