// The connection shell over an in-memory socket pair (no server, no port): STARTTLS drops what was read
// before the handshake, holding input pauses delivery (and the socket past the bound), an early-talker
// limit, timers (idle re-armed, absolute deadline), close reasons, backpressure, channel binding.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import { connect, type SecureContext, type TLSSocket } from 'node:tls';
import { before, describe, it } from 'node:test';
import { generate } from 'selfsigned';
import { Connection, type ConnectionOptions } from './connection.ts';
import { createSecureContext } from './tls.ts';

let secureContext: SecureContext;
let certPem: string;

before(async () => {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
  });
  certPem = pems.cert;
  secureContext = createSecureContext({ cert: pems.cert, key: pems.private });
});

function options(overrides: Partial<ConnectionOptions> = {}): ConnectionOptions {
  return {
    maxBufferedBytes: 1024,
    tls: { secureContext, clientCertificates: 'none', timeoutMs: 5000 },
    ...overrides,
  };
}

/** A shell on one end of an in-memory pair; `client` is the peer's end. */
function pair(opts: ConnectionOptions = options()): { shell: Connection; client: Duplex; server: Duplex } {
  const [server, client] = duplexPair();
  // As a TCP socket without allowHalfOpen: the peer's FIN closes it.
  server.on('end', () => server.destroy());
  return { shell: new Connection(server as unknown as Socket, opts), client, server };
}

/** Records what the driver is told; `gate` lets a test keep the driver busy on a chunk. */
function recorder(): {
  chunks: string[];
  reasons: string[];
  gate: { open: () => void; wait: Promise<void> | null };
  handlers: Parameters<Connection['start']>[0];
} {
  const chunks: string[] = [];
  const reasons: string[] = [];
  const gate: { open: () => void; wait: Promise<void> | null } = { open: () => undefined, wait: null };
  return {
    chunks,
    reasons,
    gate,
    handlers: {
      data: async (chunk) => {
        chunks.push(Buffer.from(chunk).toString('utf8'));
        if (gate.wait) await gate.wait;
      },
      closed: (reason) => reasons.push(reason),
    },
  };
}

function closeGate(gate: { open: () => void; wait: Promise<void> | null }): void {
  gate.wait = new Promise((resolve) => (gate.open = resolve));
}

/** Resolves once `predicate` holds, checked after each turn of the event loop. */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
}

describe('connection shell', () => {
  it('delivers input in order, one chunk at a time', async () => {
    const { shell, client } = pair();
    const r = recorder();
    shell.start(r.handlers);
    client.write('EHLO a\r\n');
    client.write('NOOP\r\n');
    await until(() => r.chunks.join('') === 'EHLO a\r\nNOOP\r\n');
    shell.abort('test');
  });

  it('STARTTLS drops every byte read before the handshake; what comes over TLS is delivered', async () => {
    const { shell, client } = pair();
    const r = recorder();
    let tlsResult: Awaited<ReturnType<Connection['startTls']>> | null = null;
    shell.start({
      ...r.handlers,
      data: async (chunk) => {
        const text = Buffer.from(chunk).toString('utf8');
        r.chunks.push(text);
        if (text.startsWith('STARTTLS\r\n') && tlsResult === null) {
          // The driver is inside this chunk while the injected bytes arrive in the next one.
          await until(() => shell.bufferedBytes > 0);
          shell.write('220 go ahead\r\n');
          tlsResult = await shell.startTls();
        }
      },
    });
    client.write('STARTTLS\r\n');
    await until(() => r.chunks.length === 1);
    client.write('MAIL FROM:<injected@example.org>\r\n');
    // The client reads the 220, then handshakes over the same stream.
    await once(client, 'data');
    const secure = connect({ socket: client, servername: 'localhost', ca: certPem });
    await once(secure, 'secureConnect');
    secure.write('EHLO after\r\n');
    await until(() => r.chunks.includes('EHLO after\r\n'));
    assert.deepEqual(r.chunks, ['STARTTLS\r\n', 'EHLO after\r\n']);
    assert.ok(tlsResult !== null);
    const result = tlsResult as Awaited<ReturnType<Connection['startTls']>>;
    assert.equal(result.ok, true);
    assert.equal(result.discardedBytes, 'MAIL FROM:<injected@example.org>\r\n'.length);
    assert.match(shell.tls?.version ?? '', /^TLSv1\.[23]$/);
    const binding = shell.channelBinding();
    assert.equal(binding?.['tls-exporter']?.length, 32);
    assert.equal(shell.clientCertificate(), null);
    shell.abort('test');
    secure.destroy();
  });

  it('a failed STARTTLS handshake closes the connection with its reason, after tlsFailed', async () => {
    const { shell, client } = pair();
    const events: string[] = [];
    shell.start({
      data: async () => {
        const result = await shell.startTls();
        events.push(`result ${result.ok}`);
      },
      tlsFailed: (error) => events.push(`tlsFailed ${error}`),
      closed: (reason) => events.push(`closed ${reason}`),
    });
    client.write('STARTTLS\r\n');
    await until(() => shell.bufferedBytes === 0 && events.length === 0);
    client.write('this is not a TLS ClientHello\r\n');
    await until(() => events.length === 3);
    assert.match(events[0]!, /^tlsFailed /);
    assert.deepEqual(events.slice(1), ['closed tls handshake failed', 'result false']);
    assert.equal(await shell.done, 'tls handshake failed');
  });

  it('hold keeps input undelivered, pauses the socket past the bound, release delivers it all', async () => {
    const { shell, client } = pair(options({ maxBufferedBytes: 16 }));
    const r = recorder();
    shell.start(r.handlers);
    closeGate(r.gate);
    client.write('first\r\n');
    await until(() => r.chunks.length === 1);
    // The driver awaits a decision on "first": the rest waits in the shell, and past 16 bytes so does the socket.
    client.write('x'.repeat(40));
    await until(() => shell.bufferedBytes === 40);
    const server = (shell as unknown as { socket: Duplex }).socket;
    assert.equal(server.isPaused(), true);
    assert.deepEqual(r.chunks, ['first\r\n']);
    r.gate.wait = null;
    r.gate.open();
    await until(() => r.chunks.length === 2);
    assert.equal(r.chunks[1], 'x'.repeat(40));
    await until(() => !server.isPaused());

    shell.hold();
    client.write('held\r\n');
    await until(() => shell.bufferedBytes === 6);
    assert.equal(r.chunks.length, 2);
    shell.release();
    await until(() => r.chunks.length === 3);
    assert.equal(r.chunks[2], 'held\r\n');
    shell.abort('test');
  });

  it('a hold with a limit reports the overflow (the early-talker cut) and cutOff closes', async () => {
    const { shell, client, server } = pair();
    const r = recorder();
    shell.start(r.handlers);
    let overflowed = 0;
    shell.hold({
      maxBytes: 8,
      onOverflow: () => {
        overflowed = shell.bufferedBytes;
        shell.cutOff('554 go away\r\n');
      },
    });
    client.write('EHLO early\r\n');
    const reply = await once(client, 'data');
    assert.equal(String(reply[0]), '554 go away\r\n');
    assert.equal(overflowed, 12);
    assert.deepEqual(r.chunks, []);
    assert.deepEqual(r.reasons, ['cut off']);
    await until(() => server.destroyed);
  });

  it('an idle timer re-armed before it expires does not fire; an absolute deadline does', async () => {
    const { shell } = pair();
    const r = recorder();
    shell.start(r.handlers);
    const fired: string[] = [];
    shell.setTimer('deadline', 30, () => {
      fired.push('deadline');
      shell.end('421 timeout\r\n');
    });
    const idle = (): void => shell.setTimer('idle', 20, () => fired.push('idle'));
    idle();
    // Re-armed every 5 ms (activity): the idle timer never expires, the deadline does.
    const activity = setInterval(idle, 5);
    await shell.done;
    clearInterval(activity);
    assert.deepEqual(fired, ['deadline']);
    assert.deepEqual(r.reasons, ['server closed']);
  });

  it('an idle timer fires once nothing re-arms it; a cleared one never does', async () => {
    const { shell } = pair();
    const r = recorder();
    shell.start(r.handlers);
    shell.setTimer('cleared', 5, () => assert.fail('a cleared timer fired'));
    shell.clearTimer('cleared');
    shell.setTimer('idle', 10, () => shell.end(undefined, 'idle'));
    assert.equal(await shell.done, 'idle');
    assert.deepEqual(r.reasons, ['idle']);
  });

  it('end() writes the last words and half-closes; the peer sees them, then the end', async () => {
    const { shell, client } = pair();
    const r = recorder();
    shell.start(r.handlers);
    const received: Buffer[] = [];
    client.on('data', (c: Buffer) => received.push(c));
    shell.end('221 bye\r\n');
    await once(client, 'end');
    assert.equal(Buffer.concat(received).toString(), '221 bye\r\n');
    assert.equal(shell.write('late\r\n'), false, 'nothing is written after close');
    assert.deepEqual(r.reasons, ['server closed']);
  });

  it('a peer closing ends the connection with "client closed"', async () => {
    const { shell, client } = pair();
    const r = recorder();
    shell.start(r.handlers);
    client.end();
    assert.equal(await shell.done, 'client closed');
    assert.deepEqual(r.reasons, ['client closed']);
  });

  it('send() waits for the peer to read (backpressure)', async () => {
    const { shell, client } = pair();
    shell.start(recorder().handlers);
    const big = Buffer.alloc(1024 * 1024, 0x61);
    let sent = false;
    const sending = shell.send(big).then(() => (sent = true));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(sent, false, 'a megabyte is not taken before the peer reads');
    let read = 0;
    client.on('data', (c: Buffer) => (read += c.length));
    await sending;
    assert.ok(read > 0);
    shell.abort('test');
  });

  it('implicit TLS: acceptTls handshakes before anything is read; a client that never does is cut', async () => {
    const [server, client] = duplexPair();
    const accepting = Connection.acceptTls(server as unknown as Socket, options());
    const secure: TLSSocket = connect({ socket: client, servername: 'localhost', ca: certPem });
    await once(secure, 'secureConnect');
    const shell = await accepting;
    assert.ok(shell instanceof Connection);
    assert.match(shell.tls?.version ?? '', /^TLSv1\.[23]$/);
    shell.abort('test');
    secure.destroy();

    const [silent] = duplexPair();
    const opts = options({ tls: { secureContext, clientCertificates: 'none', timeoutMs: 20 } });
    assert.deepEqual(await Connection.acceptTls(silent as unknown as Socket, opts), {
      error: 'TLS handshake timeout',
    });
  });
});
