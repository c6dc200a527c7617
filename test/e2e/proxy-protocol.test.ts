// PROXY protocol (v1 and v2) on real listeners: a Tern whose smtp, imap and imaps listeners take headers
// from 127.0.0.1 only. The named client is the one logged, counted and written into Received:; a peer
// outside proxy_from, a client without a header, garbage and a stalled header are closed unanswered;
// a header trickled byte by byte works; bytes in the same packet as the header reach the session, and
// the TLS handshake of an implicit-TLS listener that follows the header in clear.
// Deliberately NOT here: the parser's hostile cases (src/protocol/proxy.test.ts), XCLIENT.

import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startTern, waitFor, type LogLine, type Tern } from './harness.ts';

const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const be16 = (n: number): number[] => [n >> 8, n & 0xff];

/** HAProxy's send-proxy-v2 for TCP over IPv4 or IPv6, with an ALPN TLV as it adds one. */
function v2(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const body = [...src, ...dst, ...be16(sport), ...be16(dport), 0x01, ...be16(4), ...Buffer.from('smtp')];
  return Buffer.from([...SIG, 0x21, src.length === 4 ? 0x11 : 0x21, ...be16(body.length), ...body]);
}
const IPV6_2001_DB8_7 = [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 7];
const IPV6_LOOPBACK = [...Array<number>(15).fill(0), 1];

/** A plain client from a chosen loopback address; collects everything the server says. */
class Peer {
  readonly socket: Socket;
  received = '';
  closed = false;
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => (this.received += d.toString('utf8')));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }
  static async open(port: number, localAddress = '127.0.0.1'): Promise<Peer> {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    return new Peer(socket);
  }
  write(data: string | Uint8Array): void {
    this.socket.write(data);
  }
  /** Wait until the server's output matches; returns it. */
  expect(what: RegExp): Promise<string> {
    return waitFor(`${what} in ${JSON.stringify(this.received)}`, () =>
      what.test(this.received) ? this.received : undefined,
    );
  }
  untilClosed(): Promise<string> {
    return waitFor('the server to close', () => (this.closed ? this.received : undefined));
  }
}

// The main thread reads the header and runs the session itself, with or without session threads: both
// ways are tested.
for (const workers of [0, 1] as const)
  describe(`PROXY protocol on smtp, imap and imaps listeners (workers = ${workers})`, () => {
    let tern: Tern;
    before(async () => {
      tern = await startTern({
        users: ['alice@example.test', 'jürgen@example.test'],
        proxyFrom: ['127.0.0.1/32'],
        workers,
      });
    });
    after(() => tern?.stop());

    const connectLine = (event: string, ip: string): Promise<LogLine> =>
      tern.waitForLog(`${event} from ${ip}`, (l) => l.event === event && l['ip'] === ip);

    /**
     * A whole SMTP transaction after `header`; returns the stored message's trace: Received: and the
     * Authentication-Results of the inbound checks (SPF ran for the named client, not the balancer).
     */
    async function deliverThrough(header: string | Buffer, rcpt: string): Promise<string> {
      const before = (await tern.storedMessages(rcpt)).length;
      const p = await Peer.open(tern.ports.smtp);
      p.write(header);
      await p.expect(/^220 /);
      p.write('EHLO relay.example\r\n');
      await p.expect(/250 [^\r\n]*\r\n$/);
      p.write(`MAIL FROM:<sender@remote.test> SMTPUTF8\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
      await p.expect(/354 /);
      p.write('Subject: proxied\r\n\r\nhello\r\n.\r\nQUIT\r\n');
      await p.expect(/221 /);
      const m = (await tern.waitForMessages(rcpt, before + 1)).at(-1);
      const text = (await tern.storedMessage(rcpt, m!.id)).toString('utf8');
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      const received = /^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*/m.exec(head);
      const results = /^Authentication-Results: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*/m.exec(head);
      assert.ok(received && results, head);
      return `${received[0]}\r\n${results[0]}`;
    }

    test('v1 TCP4: the named client is in smtp.connect and in Received:', async () => {
      const received = await deliverThrough(
        'PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n',
        'alice@example.test',
      );
      const line = await connectLine('smtp.connect', '203.0.113.7');
      assert.equal(line['port'], 40000);
      assert.match(received, /^Received: from relay\.example \(unknown \[203\.0\.113\.7\]\)/);
      assert.match(received, /smtp\.remote-ip=203\.0\.113\.7;/);
      assert.doesNotMatch(received, /127\.0\.0\.1/);
    });

    test('v1 TCP4 to a UTF-8 mailbox (jürgen@): the same client in Received:', async () => {
      const received = await deliverThrough(
        'PROXY TCP4 203.0.113.8 127.0.0.1 40001 25\r\n',
        'jürgen@example.test',
      );
      assert.match(received, /\[203\.0\.113\.8\]/);
    });

    test('v2 (HAProxy bytes, TLVs included), IPv4 and IPv6', async () => {
      const r4 = await deliverThrough(v2([198, 51, 100, 9], [127, 0, 0, 1], 50000, 25), 'alice@example.test');
      assert.match(r4, /\[198\.51\.100\.9\]/);
      assert.equal((await connectLine('smtp.connect', '198.51.100.9'))['port'], 50000);
      const r6 = await deliverThrough(v2(IPV6_2001_DB8_7, IPV6_LOOPBACK, 50001, 25), 'jürgen@example.test');
      assert.match(r6, /2001:db8::7/);
      await connectLine('smtp.connect', '2001:db8::7');
    });

    test('a header trickled one byte at a time', async () => {
      const p = await Peer.open(tern.ports.smtp);
      for (const b of Buffer.from('PROXY TCP4 192.0.2.44 127.0.0.1 1234 25\r\n')) {
        p.write(Uint8Array.of(b));
        await sleep(2);
      }
      await p.expect(/^220 /);
      await connectLine('smtp.connect', '192.0.2.44');
      p.socket.destroy();
    });

    test('a peer outside proxy_from is closed without a greeting, header or not', async () => {
      const p = await Peer.open(tern.ports.smtp, '127.0.0.2');
      p.write('PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n');
      assert.equal(await p.untilClosed(), '');
      const refused = await tern.waitForLog(
        'the refusal',
        (l) => l.event === 'smtp.refused' && l['ip'] === '127.0.0.2',
      );
      assert.equal(refused['reason'], 'not in proxy_from');
      assert.ok(!tern.logs().some((l) => l.event === 'smtp.connect' && l['ip'] === '203.0.113.9'));
    });

    test('a client of a balancer address without a header (plain EHLO), and garbage: closed unanswered', async () => {
      for (const [input, reason] of [
        ['EHLO client.example\r\n', 'PROXY header: not a PROXY protocol header'],
        ['PROXY TCP4 999.1.1.1 127.0.0.1 40000 25\r\n', 'PROXY header: v1: not an IPv4 address'],
        ['\x16\x03\x01\x00\xff', 'PROXY header: not a PROXY protocol header'],
      ] as const) {
        const before = tern.logs().filter((l) => l['reason'] === reason).length;
        const p = await Peer.open(tern.ports.smtp);
        p.write(input);
        assert.equal(await p.untilClosed(), '', JSON.stringify(input));
        await waitFor(reason, () =>
          tern.logs().filter((l) => l['reason'] === reason).length > before ? true : undefined,
        );
      }
      // The cut-off clients never became sessions.
      assert.ok(!tern.logs().some((l) => l.event === 'smtp.connect' && l['ip'] === '127.0.0.1'));
    });

    test("imap: the named client is logged, and a command in the header's packet is answered", async () => {
      const p = await Peer.open(tern.ports.imap!);
      p.write('PROXY TCP6 2001:db8::1:2 ::1 45678 143\r\nA1 CAPABILITY\r\n');
      await p.expect(/^\* OK[^\r\n]*\r\n[\s\S]*A1 OK[^\r\n]*\r\n/);
      const line = await connectLine('imap.connect', '2001:db8::1:2');
      assert.equal(line['port'], 45678);
      p.write('A2 LOGOUT\r\n');
      await p.untilClosed();
    });

    test('imaps: the header in clear, then the TLS handshake (sent in the same write when it can be)', async () => {
      const raw = netConnect({ host: '127.0.0.1', port: tern.ports.imaps! });
      await new Promise<void>((resolve) => raw.once('connect', resolve));
      raw.cork();
      raw.write(v2([192, 0, 2, 99], [127, 0, 0, 1], 33333, 993));
      const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'mx.example.test' });
      setImmediate(() => raw.uncork());
      let text = '';
      secure.on('data', (d: Buffer) => (text += d.toString('utf8')));
      secure.on('error', () => undefined);
      await waitFor('the IMAP greeting over TLS', () => (/^\* OK/.test(text) ? true : undefined));
      const line = await connectLine('imap.connect', '192.0.2.99');
      assert.equal(line['port'], 33333);
      assert.ok(line['tls'], 'the session is over TLS');
      secure.destroy();
    });
  });
