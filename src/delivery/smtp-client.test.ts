// Tests of the SMTP client's socket side against scripted fake servers written with node:net: the
// happy paths (pipelined and not, DATA and BDAT, reuse), and every hostile thing a server can do:
// refuse, drop the connection mid-DATA, send garbage or endless lines, stall, break STARTTLS, and
// inject plaintext after its STARTTLS 220 (which must be thrown away, never read as a reply).
// Independent real servers (nodemailer's smtp-server, Tern's own) are in test/e2e/smtp-client.test.ts.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createSecureContext, TLSSocket } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { generate } from 'selfsigned';
import type { EnvelopeRecipient } from '../core/envelope.ts';
import type { ConnectOptions, OutgoingMessage, SmtpClientSession } from './smtp-client.ts';
import { BDAT_CHUNK_BYTES, connectSmtp } from './smtp-client.ts';

/** One accepted connection, read as CRLF lines or raw bytes, with a server-side STARTTLS. */
class Peer {
  socket: Socket;
  buf = '';
  closed = false;
  private wakers: Array<() => void> = [];
  private readonly onData = (d: Buffer): void => {
    this.buf += d.toString('latin1');
    this.wake();
  };
  private readonly onClose = (): void => {
    this.closed = true;
    this.wake();
  };

  constructor(socket: Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(s: Socket): void {
    this.socket = s;
    s.on('data', this.onData);
    s.on('close', this.onClose);
    s.on('error', () => {});
  }

  private wake(): void {
    const ws = this.wakers;
    this.wakers = [];
    for (const w of ws) w();
  }

  private async waitFor<T>(take: () => T | null): Promise<T | null> {
    for (;;) {
      const v = take();
      if (v !== null) return v;
      if (this.closed) return null;
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
  }

  /** Everything up to and including `marker`, or null when the client closed first. */
  until(marker: string): Promise<string | null> {
    return this.waitFor(() => {
      const i = this.buf.indexOf(marker);
      if (i < 0) return null;
      const out = this.buf.slice(0, i + marker.length);
      this.buf = this.buf.slice(i + marker.length);
      return out;
    });
  }

  async line(): Promise<string | null> {
    const l = await this.until('\r\n');
    return l === null ? null : l.slice(0, -2);
  }

  bytes(n: number): Promise<string | null> {
    return this.waitFor(() => {
      if (this.buf.length < n) return null;
      const out = this.buf.slice(0, n);
      this.buf = this.buf.slice(n);
      return out;
    });
  }

  write(s: string): void {
    if (!this.socket.destroyed) this.socket.write(s);
  }

  /** Wait until the client closes its side. */
  async waitClosed(): Promise<void> {
    await this.waitFor(() => null);
  }

  async startTls(context: SecureContext): Promise<void> {
    const plain = this.socket;
    plain.off('data', this.onData);
    plain.off('close', this.onClose);
    this.buf = '';
    const secure = new TLSSocket(plain, { isServer: true, secureContext: context });
    this.attach(secure);
    await new Promise<void>((resolve, reject) => {
      secure.once('secure', () => resolve());
      secure.once('error', reject);
      secure.once('close', () => reject(new Error('closed during the handshake')));
    });
  }
}

interface Fake {
  readonly port: number;
  /** Resolves when the script ends (rejects with its assertion errors). */
  readonly done: Promise<void>;
  close(): Promise<void>;
}

const servers: Server[] = [];
const allSockets = new Set<Socket>();

async function fakeServer(script: (peer: Peer) => Promise<void>): Promise<Fake> {
  let resolveDone!: () => void;
  let rejectDone!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    allSockets.add(socket);
    const peer = new Peer(socket);
    script(peer).then(resolveDone, rejectDone);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    done,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

after(() => {
  for (const s of allSockets) s.destroy();
  for (const s of servers) s.close();
});

const FAST = {
  connectMs: 2000,
  greetingMs: 2000,
  commandMs: 2000,
  dataInitMs: 2000,
  dataBlockMs: 2000,
  dataDoneMs: 2000,
};

function options(port: number, over: Partial<ConnectOptions> = {}): ConnectOptions {
  return {
    host: 'localhost',
    address: '127.0.0.1',
    port,
    helo: 'client.test',
    tls: 'none',
    timeouts: FAST,
    ...over,
  };
}

const rcpt = (address: string, extra: Partial<EnvelopeRecipient> = {}): EnvelopeRecipient => ({
  address,
  notify: null,
  orcpt: null,
  ...extra,
});

function message(
  body: string | readonly (string | Uint8Array)[],
  recipients: readonly EnvelopeRecipient[] = [rcpt('a@example.net')],
  over: Partial<OutgoingMessage['envelope']> & { sizeBytes?: number } = {},
): OutgoingMessage {
  const parts = typeof body === 'string' ? [body] : body;
  const chunks = parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
  const { sizeBytes, ...envelope } = over;
  return {
    envelope: {
      sender: 's@example.org',
      body: '7BIT',
      smtputf8: false,
      ret: null,
      envid: null,
      recipients,
      ...envelope,
    },
    recipients: recipients.map((r) => r.address),
    sizeBytes: sizeBytes ?? chunks.reduce((n, c) => n + c.length, 0),
    body: async function* () {
      for (const c of chunks) {
        await Promise.resolve(); // each chunk a tick later, as from a file
        yield c;
      }
    },
  };
}

async function connected(opts: ConnectOptions): Promise<SmtpClientSession> {
  const res = await connectSmtp(opts);
  assert.equal(res.kind, 'connected', JSON.stringify(res));
  assert.ok(res.kind === 'connected');
  return res.session;
}

const EHLO_FULL =
  '250-fake.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n';

/** Greeting and EHLO with the given reply. */
async function greet(peer: Peer, ehloReply = EHLO_FULL): Promise<void> {
  peer.write('220 fake.test ESMTP\r\n');
  assert.equal(await peer.line(), 'EHLO client.test');
  peer.write(ehloReply);
}

let tlsContext: SecureContext;
let certPem: string;

before(async () => {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] },
    ],
  });
  certPem = pems.cert;
  tlsContext = createSecureContext({ cert: pems.cert, key: pems.private });
});

describe('a pipelining server', () => {
  test('MAIL, RCPTs and DATA go in one write; replies are matched in order; content is stuffed and CRLF-clean', async () => {
    const seen: string[] = [];
    let content = '';
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      const group = await peer.until('DATA\r\n');
      seen.push(...group!.split('\r\n').filter((l) => l !== ''));
      peer.write('250 2.1.0 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n354 go\r\n');
      content = (await peer.until('\r\n.\r\n'))!;
      peer.write('250 2.0.0 queued as ABC\r\n');
      assert.equal(await peer.line(), 'QUIT');
      peer.write('221 bye\r\n');
    });
    const session = await connected(options(fake.port));
    assert.equal(session.capabilities.pipelining, true);
    assert.equal(session.remoteBanner, 'fake.test ESMTP');
    assert.equal(session.tls, null);
    const res = await session.send(
      message(
        ['Subject: x\n\n.leading dot\r\nbare\rcr\n', '.', '\r\n'],
        [rcpt('bad@example.net', { notify: ['FAILURE'] }), rcpt('good@example.net')],
        { envid: 'E1', ret: 'HDRS' },
      ),
    );
    assert.equal(res.kind, 'sent');
    assert.ok(res.kind === 'sent');
    assert.equal(res.dataReply.text, 'queued as ABC');
    assert.deepEqual(
      res.recipients.map((r) => [r.address, r.verdict, r.status]),
      [
        ['bad@example.net', 'permanent', '5.1.1'],
        ['good@example.net', 'delivered', '2.0.0'],
      ],
    );
    assert.deepEqual(seen, [
      'MAIL FROM:<s@example.org> SIZE=37 RET=HDRS ENVID=E1',
      'RCPT TO:<bad@example.net> NOTIFY=FAILURE',
      'RCPT TO:<good@example.net>',
      'DATA',
    ]);
    assert.equal(content, 'Subject: x\r\n\r\n..leading dot\r\nbare\r\ncr\r\n..\r\n.\r\n');
    assert.equal(session.messagesSent, 1);
    assert.equal(session.usable, true);
    await session.quit();
    await fake.done;
    await fake.close();
  });

  test('no recipient accepted: a 354 anyway is ended with an empty message, then RSET; the session stays usable', async () => {
    const seen: string[] = [];
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      await peer.until('DATA\r\n');
      peer.write('250 ok\r\n550 no\r\n354 go on then\r\n');
      seen.push((await peer.line())!);
      peer.write('554 5.5.1 no valid recipients\r\n');
      seen.push((await peer.line())!);
      peer.write('250 reset\r\n');
      seen.push((await peer.line())!);
      peer.write('221 bye\r\n');
    });
    const session = await connected(options(fake.port));
    const res = await session.send(message('hi\r\n'));
    assert.ok(res.kind === 'failed');
    assert.equal(res.stage, 'rcpt');
    assert.equal(res.recipients[0]!.verdict, 'permanent');
    assert.equal(session.usable, true);
    await session.quit();
    await fake.done;
    assert.deepEqual(seen, ['.', 'RSET', 'QUIT']);
    await fake.close();
  });

  test('a 5xx after the content is permanent, a 4xx temporary; the connection is reused after RSET', async () => {
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      for (const final of ['554 5.7.1 spam\r\n', '452 4.3.1 full\r\n', '250 ok\r\n']) {
        await peer.until('DATA\r\n');
        peer.write('250 ok\r\n250 ok\r\n354 go\r\n');
        await peer.until('\r\n.\r\n');
        peer.write(final);
        if (final.startsWith('250')) break;
        assert.equal(await peer.line(), 'RSET');
        peer.write('250 ok\r\n');
      }
      assert.equal(await peer.line(), 'QUIT');
      peer.write('221 bye\r\n');
    });
    const session = await connected(options(fake.port));
    const r1 = await session.send(message('one'));
    assert.ok(r1.kind === 'failed' && !r1.temporary && r1.status === '5.7.1' && r1.stage === 'end-of-data');
    const r2 = await session.send(message('two'));
    assert.ok(r2.kind === 'failed' && r2.temporary && r2.status === '4.3.1');
    const r3 = await session.send(message('three'));
    assert.equal(r3.kind, 'sent');
    assert.equal(session.messagesSent, 1);
    await session.quit();
    await fake.done;
    await fake.close();
  });
});

describe('a server without extensions', () => {
  test('EHLO refused with 502: HELO, then one command at a time and no parameters', async () => {
    const seen: string[] = [];
    let pipelined = false;
    const fake = await fakeServer(async (peer) => {
      peer.write('220 old.test\r\n');
      assert.equal(await peer.line(), 'EHLO client.test');
      peer.write('502 5.5.1 what\r\n');
      assert.equal(await peer.line(), 'HELO client.test');
      peer.write('250 old.test\r\n');
      for (const reply of ['250 ok', '250 ok', '550 no', '354 go']) {
        seen.push((await peer.line())!);
        // Give a pipelining client the chance to show itself before we answer.
        await new Promise((r) => setTimeout(r, 20));
        if (peer.buf !== '') pipelined = true;
        peer.write(`${reply}\r\n`);
      }
      await peer.until('\r\n.\r\n');
      peer.write('250 ok\r\n');
    });
    const session = await connected(options(fake.port));
    assert.equal(session.capabilities.esmtp, false);
    const res = await session.send(
      message('x', [rcpt('a@example.net', { notify: ['SUCCESS'] }), rcpt('b@example.net')], {
        body: '8BITMIME',
        envid: 'id',
      }),
    );
    assert.equal(res.kind, 'sent');
    assert.deepEqual(seen, [
      'MAIL FROM:<s@example.org>',
      'RCPT TO:<a@example.net>',
      'RCPT TO:<b@example.net>',
      'DATA',
    ]);
    assert.equal(pipelined, false);
    session.close();
    await fake.done;
    await fake.close();
  });

  test('without PIPELINING a refused MAIL sends no RCPT', async () => {
    const seen: string[] = [];
    const fake = await fakeServer(async (peer) => {
      await greet(peer, '250 fake.test\r\n');
      seen.push((await peer.line())!);
      peer.write('553 5.7.1 go away\r\n');
      seen.push((await peer.line())!);
      peer.write('250 ok\r\n');
    });
    const session = await connected(options(fake.port));
    const res = await session.send(message('x'));
    assert.ok(res.kind === 'failed' && res.stage === 'mail' && res.status === '5.7.1' && !res.temporary);
    await fake.done;
    assert.deepEqual(seen, ['MAIL FROM:<s@example.org>', 'RSET']);
    session.close();
    await fake.close();
  });

  test('a message bigger than SIZE fails before MAIL is sent', async () => {
    let sawMail = false;
    const fake = await fakeServer(async (peer) => {
      await greet(peer, '250-fake.test\r\n250 SIZE 10\r\n');
      const l = await peer.line();
      sawMail = l !== null && l.startsWith('MAIL');
    });
    const session = await connected(options(fake.port));
    const res = await session.send(message('more than ten bytes'));
    assert.ok(res.kind === 'failed' && res.status === '5.3.4' && !res.temporary && res.stage === 'plan');
    assert.equal(session.usable, true);
    session.close();
    await fake.done;
    assert.equal(sawMail, false);
    await fake.close();
  });
});

describe('greetings', () => {
  test('554 greeting: permanent for this host, and QUIT is still sent', async () => {
    let quit = false;
    const fake = await fakeServer(async (peer) => {
      peer.write('554 5.7.1 no mail from you\r\n');
      quit = (await peer.line()) === 'QUIT';
      peer.write('221 bye\r\n');
    });
    const res = await connectSmtp(options(fake.port));
    assert.ok(res.kind === 'failed');
    assert.equal(res.failure.stage, 'greeting');
    assert.equal(res.failure.temporary, false);
    assert.equal(res.failure.status, '5.7.1');
    assert.equal(res.failure.banner, 'no mail from you');
    await fake.done;
    assert.equal(quit, true);
    await fake.close();
  });

  test('421 greeting: temporary', async () => {
    const fake = await fakeServer(async (peer) => {
      peer.write('421 4.3.2 busy\r\n');
      peer.socket.end();
      await peer.waitClosed();
    });
    const res = await connectSmtp(options(fake.port));
    assert.ok(res.kind === 'failed' && res.failure.temporary && res.failure.status === '4.3.2');
    await fake.close();
  });

  test('nothing listening: a temporary connect failure', async () => {
    const fake = await fakeServer(async () => {});
    const port = fake.port;
    await fake.close();
    const res = await connectSmtp(options(port));
    assert.ok(res.kind === 'failed');
    assert.equal(res.failure.stage, 'connect');
    assert.equal(res.failure.status, '4.4.1');
    assert.match(res.failure.reason, /ECONNREFUSED/);
  });
});

describe('hostile servers', () => {
  test('a connection dropped mid-DATA is a temporary failure, never sent, and the session is unusable', async () => {
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      await peer.until('DATA\r\n');
      peer.write('250 ok\r\n250 ok\r\n354 go\r\n');
      await peer.bytes(1000);
      peer.socket.destroy();
    });
    const session = await connected(options(fake.port));
    const big = 'x'.repeat(70) + '\r\n';
    // The declared size stays under the fake's SIZE 100000 so the body is really sent.
    const res = await session.send(
      message(
        Array.from({ length: 20_000 }, () => big),
        undefined,
        { sizeBytes: 1000 },
      ),
    );
    assert.ok(res.kind === 'failed');
    assert.equal(res.temporary, true);
    assert.ok(['content', 'end-of-data'].includes(res.stage), res.stage);
    assert.equal(res.recipients[0]!.verdict, 'temporary');
    assert.equal(session.usable, false);
    const again = await session.send(message('x'));
    assert.ok(again.kind === 'failed' && again.temporary);
    await fake.done;
    await fake.close();
  });

  test('garbage instead of a reply: temporary protocol failure, no crash', async () => {
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      await peer.until('DATA\r\n');
      peer.write('HTTP/1.1 400 Bad Request\r\n\r\n');
      await peer.waitClosed();
    });
    const session = await connected(options(fake.port));
    const res = await session.send(message('x'));
    assert.ok(res.kind === 'failed' && res.temporary);
    assert.match(res.reason, /protocol error: malformed reply line/);
    assert.equal(res.status, '4.5.0');
    assert.equal(session.usable, false);
    await fake.done;
    await fake.close();
  });

  test('an endless reply line is cut off at 8 KiB: temporary failure', async () => {
    const fake = await fakeServer(async (peer) => {
      peer.write('220 ');
      for (let i = 0; i < 20 && !peer.closed; i++) {
        peer.write('x'.repeat(1024));
        await new Promise((r) => setTimeout(r, 1));
      }
      await peer.waitClosed();
    });
    const res = await connectSmtp(options(fake.port));
    assert.ok(res.kind === 'failed' && res.failure.temporary && res.failure.stage === 'greeting');
    assert.match(res.failure.reason, /longer than 8192 bytes/);
    await fake.done;
    await fake.close();
  });

  test('a server that stalls: the timeout fires, the failure is temporary and the socket is closed', async () => {
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      await peer.until('DATA\r\n');
      // say nothing, wait for the client to give up
      await peer.waitClosed();
    });
    const session = await connected(options(fake.port, { timeouts: { ...FAST, commandMs: 150 } }));
    const started = Date.now();
    const res = await session.send(message('x'));
    assert.ok(res.kind === 'failed' && res.temporary && res.stage === 'mail');
    assert.match(res.reason, /timeout after 150 ms/);
    assert.ok(Date.now() - started < 1500);
    assert.equal(session.usable, false);
    await fake.done; // the server saw the close
    await fake.close();
  });

  test('a greeting that never comes times out', async () => {
    const fake = await fakeServer(async (peer) => {
      await peer.waitClosed();
    });
    const res = await connectSmtp(options(fake.port, { timeouts: { ...FAST, greetingMs: 100 } }));
    assert.ok(res.kind === 'failed' && res.failure.stage === 'greeting' && res.failure.temporary);
    await fake.done;
    await fake.close();
  });

  test('the body cannot be read to its end: the data is never terminated, the failure is temporary', async () => {
    let received = '';
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      await peer.until('DATA\r\n');
      peer.write('250 ok\r\n250 ok\r\n354 go\r\n');
      await peer.waitClosed();
      received = peer.buf;
    });
    const session = await connected(options(fake.port));
    const msg = message('x');
    const res = await session.send({
      ...msg,
      body: async function* () {
        yield Buffer.from('first line\r\n');
        await Promise.resolve();
        throw new Error('disk on fire');
      },
    });
    assert.ok(res.kind === 'failed' && res.temporary);
    assert.match(res.reason, /cannot read the message: disk on fire/);
    await fake.done;
    assert.equal(received, 'first line\r\n');
    assert.ok(!received.includes('\r\n.\r\n'));
    await fake.close();
  });

  test('an abort signal drops the connection: temporary failure', async () => {
    const fake = await fakeServer(async (peer) => {
      await greet(peer);
      await peer.waitClosed();
    });
    const controller = new AbortController();
    const session = await connected(options(fake.port, { signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    const res = await session.send(message('x'));
    assert.ok(res.kind === 'failed' && res.temporary);
    assert.match(res.reason, /aborted/);
    await fake.done;
    await fake.close();
  });
});

describe('STARTTLS', () => {
  const EHLO_TLS = '250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n';

  test('plaintext sent right after the 220 is discarded, never read as a reply; EHLO is sent again', async () => {
    const afterTls: string[] = [];
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_TLS);
      assert.equal(await peer.line(), 'STARTTLS');
      // The injection: replies the client never asked for, in the same segment as the 220.
      peer.write('220 2.0.0 go ahead\r\n554 5.7.0 injected\r\n250-injected\r\n');
      await peer.startTls(tlsContext);
      afterTls.push((await peer.line())!);
      peer.write('250-fake.test\r\n250-PIPELINING\r\n250 SIZE 2000\r\n');
      afterTls.push((await peer.until('DATA\r\n'))!);
      peer.write('250 ok\r\n250 ok\r\n354 go\r\n');
      await peer.until('\r\n.\r\n');
      peer.write('250 2.0.0 ok\r\n');
      afterTls.push((await peer.line())!);
      peer.write('221 bye\r\n');
    });
    const session = await connected(options(fake.port, { tls: 'may' }));
    assert.ok(session.tls !== null);
    assert.equal(session.tls.verified, false);
    assert.ok(session.discardedPlaintextBytes > 0);
    // Capabilities come from the EHLO under TLS only.
    assert.equal(session.capabilities.sizeLimitBytes, 2000);
    assert.equal(session.capabilities.startTls, false);
    const res = await session.send(message('hello'));
    assert.equal(res.kind, 'sent');
    await session.quit();
    await fake.done;
    assert.equal(afterTls[0], 'EHLO client.test');
    assert.equal(afterTls[1], 'MAIL FROM:<s@example.org> SIZE=5\r\nRCPT TO:<a@example.net>\r\nDATA\r\n');
    assert.equal(afterTls[2], 'QUIT');
    await fake.close();
  });

  test('plaintext injected after the 220 in a later segment breaks the handshake; it is never read as a reply', async () => {
    let sawEhlo = false;
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_TLS);
      assert.equal(await peer.line(), 'STARTTLS');
      peer.write('220 2.0.0 go ahead\r\n');
      await new Promise((r) => setTimeout(r, 50)); // the client has started its handshake by now
      peer.write('250 injected\r\n');
      try {
        await peer.startTls(tlsContext);
        sawEhlo = (await peer.line()) !== null;
      } catch {
        // the client gave up on the handshake: what we want
      }
    });
    const res = await connectSmtp(options(fake.port, { tls: 'may' }));
    assert.ok(res.kind === 'failed');
    assert.equal(res.failure.stage, 'tls');
    assert.equal(res.failure.reply, null);
    await fake.done;
    assert.equal(sawEhlo, false);
    await fake.close();
  });

  test('a handshake that fails under "may": temporary, and the caller may retry without TLS', async () => {
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_TLS);
      await peer.line();
      peer.write('220 go ahead\r\n');
      await peer.bytes(5); // the ClientHello starts
      peer.write('this is not TLS at all\r\n');
      peer.socket.end();
    });
    const res = await connectSmtp(options(fake.port, { tls: 'may' }));
    assert.ok(res.kind === 'failed');
    assert.equal(res.failure.stage, 'tls');
    assert.equal(res.failure.temporary, true);
    assert.equal(res.failure.retryWithoutTls, true);
    assert.match(res.failure.reason, /TLS handshake failed/);
    await fake.done;
    await fake.close();
  });

  test('the same failure under "encrypt" does not offer a retry without TLS', async () => {
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_TLS);
      await peer.line();
      peer.write('220 go ahead\r\n');
      peer.socket.end();
    });
    const res = await connectSmtp(options(fake.port, { tls: 'encrypt' }));
    assert.ok(res.kind === 'failed' && res.failure.stage === 'tls' && !res.failure.retryWithoutTls);
    await fake.done;
    await fake.close();
  });

  test('STARTTLS not offered: "encrypt" fails 4.7.4, "may" goes on in plaintext', async () => {
    const script = async (peer: Peer): Promise<void> => {
      await greet(peer);
      const l = await peer.line();
      if (l === 'QUIT') peer.write('221 bye\r\n');
    };
    const f1 = await fakeServer(script);
    const r1 = await connectSmtp(options(f1.port, { tls: 'encrypt' }));
    assert.ok(r1.kind === 'failed');
    assert.equal(r1.failure.reason, 'STARTTLS is required but not offered');
    assert.equal(r1.failure.status, '4.7.4');
    assert.equal(r1.failure.temporary, true);
    await f1.close();
    const f2 = await fakeServer(script);
    const s2 = await connected(options(f2.port, { tls: 'may' }));
    assert.equal(s2.tls, null);
    await s2.quit();
    await f2.done;
    await f2.close();
  });

  test('STARTTLS refused with 454: "may" goes on in plaintext, "verify" fails', async () => {
    const script = async (peer: Peer): Promise<void> => {
      await greet(peer, EHLO_TLS);
      assert.equal(await peer.line(), 'STARTTLS');
      peer.write('454 4.7.0 TLS not available\r\n');
      const l = await peer.line();
      if (l === 'QUIT') peer.write('221 bye\r\n');
    };
    const f1 = await fakeServer(script);
    const s1 = await connected(options(f1.port, { tls: 'may' }));
    assert.equal(s1.tls, null);
    await s1.quit();
    await f1.done;
    await f1.close();
    const f2 = await fakeServer(script);
    const r2 = await connectSmtp(options(f2.port, { tls: 'verify' }));
    assert.ok(r2.kind === 'failed' && r2.failure.stage === 'starttls' && r2.failure.temporary);
    await f2.close();
  });

  test('"none" never sends STARTTLS', async () => {
    let first = '';
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_TLS);
      first = (await peer.line())!;
      peer.write('221 bye\r\n');
    });
    const s = await connected(options(fake.port, { tls: 'none' }));
    await s.quit();
    await fake.done;
    assert.equal(first, 'QUIT');
    await fake.close();
  });

  test('"verify" checks the certificate: refused without the CA, accepted with it', async () => {
    const script = async (peer: Peer): Promise<void> => {
      await greet(peer, EHLO_TLS);
      await peer.line();
      peer.write('220 go\r\n');
      try {
        await peer.startTls(tlsContext);
      } catch {
        return;
      }
      await peer.line();
      peer.write('250 fake.test\r\n');
      const l = await peer.line();
      if (l === 'QUIT') peer.write('221 bye\r\n');
    };
    const f1 = await fakeServer(script);
    const r1 = await connectSmtp(options(f1.port, { tls: 'verify' }));
    assert.ok(r1.kind === 'failed' && r1.failure.stage === 'tls' && !r1.failure.retryWithoutTls);
    assert.match(r1.failure.reason, /self[- ]signed/i);
    await f1.close();
    const f2 = await fakeServer(script);
    const s2 = await connected(options(f2.port, { tls: 'verify', ca: certPem }));
    assert.equal(s2.tls?.verified, true);
    await s2.quit();
    await f2.done;
    await f2.close();
    // The right CA but the wrong name is still refused.
    const f3 = await fakeServer(script);
    const r3 = await connectSmtp(
      options(f3.port, { tls: 'verify', ca: certPem, servername: 'mx.other.test' }),
    );
    assert.ok(r3.kind === 'failed' && r3.failure.stage === 'tls');
    await f3.close();
  });
});

describe('AUTH', () => {
  test('credentials are never sent without TLS', async () => {
    let next = '';
    const fake = await fakeServer(async (peer) => {
      await greet(peer, '250-fake.test\r\n250 AUTH PLAIN LOGIN\r\n');
      next = (await peer.line()) ?? '(closed)';
    });
    const res = await connectSmtp(options(fake.port, { auth: { username: 'u', password: 'secret' } }));
    assert.ok(res.kind === 'failed' && res.failure.stage === 'auth' && res.failure.temporary);
    assert.match(res.failure.reason, /without TLS/);
    await fake.done;
    assert.ok(!next.startsWith('AUTH'), next);
    await fake.close();
  });

  test('AUTH LOGIN over TLS when PLAIN is not offered; a refusal is temporary', async () => {
    const got: string[] = [];
    const script = (accept: boolean) => async (peer: Peer) => {
      await greet(peer, '250-fake.test\r\n250 STARTTLS\r\n');
      await peer.line();
      peer.write('220 go\r\n');
      await peer.startTls(tlsContext);
      await peer.line();
      peer.write('250-fake.test\r\n250 AUTH LOGIN\r\n');
      got.push((await peer.line())!);
      peer.write('334 VXNlcm5hbWU6\r\n');
      got.push((await peer.line())!);
      peer.write('334 UGFzc3dvcmQ6\r\n');
      got.push((await peer.line())!);
      peer.write(accept ? '235 2.7.0 ok\r\n' : '535 5.7.8 bad credentials\r\n');
      const l = await peer.line();
      if (l === 'QUIT') peer.write('221 bye\r\n');
    };
    const f1 = await fakeServer(script(true));
    const s1 = await connected(options(f1.port, { tls: 'may', auth: { username: 'user', password: 'pw' } }));
    assert.equal(s1.authenticated, true);
    await s1.quit();
    await f1.done;
    assert.deepEqual(got, [
      'AUTH LOGIN',
      Buffer.from('user').toString('base64'),
      Buffer.from('pw').toString('base64'),
    ]);
    await f1.close();
    const f2 = await fakeServer(script(false));
    const r2 = await connectSmtp(
      options(f2.port, { tls: 'may', auth: { username: 'user', password: 'pw' } }),
    );
    assert.ok(r2.kind === 'failed' && r2.failure.stage === 'auth' && r2.failure.temporary);
    assert.equal(r2.failure.status, '4.7.8');
    await f2.close();
  });
});

describe('BDAT', () => {
  const EHLO_CHUNKING =
    '250-fake.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n';

  /** Read BDAT commands and their chunks until LAST; answer each with `reply(i)`. */
  async function readChunks(
    peer: Peer,
    reply: (i: number) => string,
  ): Promise<{ sizes: number[]; data: string }> {
    const sizes: number[] = [];
    let data = '';
    for (let i = 0; ; i++) {
      const cmd = (await peer.line())!;
      const m = /^BDAT (\d+)( LAST)?$/.exec(cmd);
      assert.ok(m, cmd);
      const n = Number(m[1]);
      sizes.push(n);
      data += n === 0 ? '' : (await peer.bytes(n))!;
      peer.write(reply(i));
      if (m[2] !== undefined || reply(i).startsWith('5')) return { sizes, data };
    }
  }

  test('text content in 64 KiB chunks, CRLF-clean, not stuffed, ending with LAST', async () => {
    let got = { sizes: [] as number[], data: '' };
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_CHUNKING);
      await peer.until('RCPT TO:<a@example.net>\r\n');
      peer.write('250 ok\r\n250 ok\r\n');
      got = await readChunks(peer, () => '250 2.0.0 chunk ok\r\n');
    });
    const session = await connected(options(fake.port));
    const line = '.dot line with bare lf\n';
    const body = Array.from({ length: 4000 }, () => line);
    const res = await session.send(message(body));
    assert.equal(res.kind, 'sent');
    await fake.done;
    const expected = '.dot line with bare lf\r\n'.repeat(4000);
    assert.equal(got.data, expected);
    assert.deepEqual(got.sizes, [BDAT_CHUNK_BYTES, expected.length - BDAT_CHUNK_BYTES]);
    session.close();
    await fake.close();
  });

  test('binary content goes byte for byte with BODY=BINARYMIME', async () => {
    let mail = '';
    let got = { sizes: [] as number[], data: '' };
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_CHUNKING);
      mail = (await peer.line())!;
      await peer.line();
      peer.write('250 ok\r\n250 ok\r\n');
      got = await readChunks(peer, () => '250 ok\r\n');
    });
    const session = await connected(options(fake.port));
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    const res = await session.send(message([bytes], undefined, { body: 'BINARYMIME' }));
    assert.equal(res.kind, 'sent');
    await fake.done;
    assert.equal(mail, 'MAIL FROM:<s@example.org> BODY=BINARYMIME');
    assert.deepEqual(got.sizes, [300]);
    assert.deepEqual(Buffer.from(got.data, 'latin1'), Buffer.from(bytes));
    session.close();
    await fake.close();
  });

  test('an exact multiple of the chunk size ends with BDAT 0 LAST', async () => {
    let got = { sizes: [] as number[], data: '' };
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_CHUNKING);
      await peer.until('RCPT TO:<a@example.net>\r\n');
      peer.write('250 ok\r\n250 ok\r\n');
      got = await readChunks(peer, () => '250 ok\r\n');
    });
    const session = await connected(options(fake.port));
    const res = await session.send(
      message([new Uint8Array(BDAT_CHUNK_BYTES).fill(0x41)], undefined, { body: 'BINARYMIME' }),
    );
    assert.equal(res.kind, 'sent');
    await fake.done;
    assert.deepEqual(got.sizes, [BDAT_CHUNK_BYTES, 0]);
    session.close();
    await fake.close();
  });

  test('a refused chunk stops the content: the failure is the refusal, and the connection is reset', async () => {
    let sizes: number[] = [];
    let after = '';
    const fake = await fakeServer(async (peer) => {
      await greet(peer, EHLO_CHUNKING.replace('250-PIPELINING\r\n', ''));
      await peer.line();
      peer.write('250 ok\r\n');
      await peer.line();
      peer.write('250 ok\r\n');
      sizes = (await readChunks(peer, (i) => (i === 1 ? '552 5.3.4 too big\r\n' : '250 ok\r\n'))).sizes;
      after = (await peer.line())!;
      peer.write('250 reset\r\n');
    });
    const session = await connected(options(fake.port));
    const res = await session.send(message([new Uint8Array(BDAT_CHUNK_BYTES * 5).fill(0x41)]));
    assert.ok(res.kind === 'failed' && !res.temporary && res.status === '5.3.4' && res.stage === 'content');
    await fake.done;
    assert.deepEqual(sizes, [BDAT_CHUNK_BYTES, BDAT_CHUNK_BYTES]);
    assert.equal(after, 'RSET');
    assert.equal(session.usable, true);
    session.close();
    await fake.close();
  });
});
