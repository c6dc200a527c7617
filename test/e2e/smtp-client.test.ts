// End to end: Tern's outbound SMTP client (src/delivery/smtp-client.ts) and `tern send` against
// servers that are not Tern's client code: nodemailer's smtp-server (PIPELINING, DSN, SIZE, STARTTLS
// with a self-signed certificate, AUTH, per-recipient refusals, replies after DATA, connection reuse)
// and, for BDAT (RFC 3030; smtp-server has no CHUNKING), Tern's own server as a child process.
// Hostile servers (drops, garbage, stalls, injection after STARTTLS) are in src/delivery/smtp-client.test.ts.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerAddress, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { runTern } from '../../src/cli/test-harness.ts';
import type { EnvelopeRecipient } from '../../src/core/envelope.ts';
import type { ConnectOptions, OutgoingMessage, SmtpClientSession } from '../../src/delivery/smtp-client.ts';
import { BDAT_CHUNK_BYTES, connectSmtp } from '../../src/delivery/smtp-client.ts';
import type { Tern } from './harness.ts';
import { splitTrace, startTern } from './harness.ts';

interface Received {
  readonly session: string;
  readonly mailFrom: SMTPServerAddress;
  readonly rcptTo: readonly SMTPServerAddress[];
  readonly dsn: { ret: string | null; envid: string | null } | undefined;
  readonly bodyType: string | undefined;
  readonly secure: boolean;
  readonly user: unknown;
  readonly data: Buffer;
}

interface Peer {
  readonly port: number;
  readonly received: Received[];
  readonly connections: () => number;
  readonly auths: Array<{ username: string | undefined; password: string | null | undefined }>;
  close(): Promise<void>;
}

let cert: string;
let key: string;

/** smtp-server on an ephemeral loopback port, recording every message; `over` tunes its behaviour. */
async function startPeer(over: Partial<SMTPServerOptions> = {}): Promise<Peer> {
  const received: Received[] = [];
  const auths: Peer['auths'] = [];
  let connections = 0;
  const server = new SMTPServer({
    name: 'peer.test',
    key,
    cert,
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    size: 1_000_000,
    hideDSN: false,
    onConnect(_session, callback) {
      connections++;
      callback();
    },
    onAuth(auth, _session, callback) {
      auths.push({ username: auth.username, password: auth.password });
      if (auth.username === 'relay-user' && auth.password === 'relay secret') {
        callback(null, { user: auth.username });
      } else {
        callback(new Error('Invalid username or password'));
      }
    },
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('refuse')) {
        const err = Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 });
        callback(err);
      } else if (address.address.startsWith('later')) {
        const err = Object.assign(new Error('4.2.2 Mailbox full'), { responseCode: 452 });
        callback(err);
      } else callback();
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        received.push({
          session: session.id,
          mailFrom: env.mailFrom as SMTPServerAddress,
          rcptTo: [...env.rcptTo],
          dsn: env.dsn,
          bodyType: env.bodyType,
          secure: session.secure,
          user: session.user,
          data: Buffer.concat(chunks),
        });
        const data = Buffer.concat(chunks).toString('utf8');
        if (data.includes('X-Reply: 451')) {
          callback(Object.assign(new Error('4.3.0 Try again later'), { responseCode: 451 }));
        } else if (data.includes('X-Reply: 554')) {
          callback(Object.assign(new Error('5.7.1 Spam'), { responseCode: 554 }));
        } else callback(null, 'Queued as PEER1');
      });
    },
    ...over,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    received,
    connections: () => connections,
    auths,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const TIMEOUTS = {
  connectMs: 5000,
  greetingMs: 5000,
  commandMs: 5000,
  dataInitMs: 5000,
  dataBlockMs: 5000,
  dataDoneMs: 5000,
};

function options(port: number, over: Partial<ConnectOptions> = {}): ConnectOptions {
  return {
    host: 'localhost',
    address: '127.0.0.1',
    port,
    helo: 'tern-client.test',
    tls: 'may',
    timeouts: TIMEOUTS,
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
  content: string,
  recipients: readonly EnvelopeRecipient[] = [rcpt('to@peer.test')],
  over: Partial<OutgoingMessage['envelope']> = {},
): OutgoingMessage {
  const bytes = Buffer.from(content, 'utf8');
  return {
    envelope: {
      sender: 'from@tern.test',
      body: '7BIT',
      smtputf8: false,
      ret: null,
      envid: null,
      recipients,
      ...over,
    },
    recipients: recipients.map((r) => r.address),
    sizeBytes: bytes.length,
    body: async function* () {
      // Two pieces, cut inside a line ending, as a file read might deliver them.
      const cut = Math.max(0, content.indexOf('\n'));
      await Promise.resolve();
      yield bytes.subarray(0, cut);
      yield bytes.subarray(cut);
    },
  };
}

async function connected(opts: ConnectOptions): Promise<SmtpClientSession> {
  const res = await connectSmtp(opts);
  if (res.kind === 'failed') assert.fail(`connect failed: ${JSON.stringify(res.failure)}`);
  return res.session;
}

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
  cert = pems.cert;
  key = pems.private;
});

describe('the SMTP client against smtp-server', () => {
  let peer: Peer;
  before(async () => {
    peer = await startPeer();
  });
  after(() => peer?.close());

  test('STARTTLS under "may", PIPELINING, DSN parameters, 8BITMIME; content arrives CRLF-clean and unstuffed', async () => {
    const session = await connected(options(peer.port));
    assert.ok(session.tls !== null, 'TLS was negotiated');
    assert.equal(session.tls.verified, false);
    assert.equal(session.capabilities.pipelining, true);
    assert.equal(session.capabilities.dsn, true);
    assert.equal(session.capabilities.sizeLimitBytes, 1_000_000);
    const content =
      'Subject: dsn\nX-Test: 1\n\n.starts with a dot\r\n..two dots\nbare lf\rbare cr\nh\u00e9 8-bit\n.\n';
    const res = await session.send(
      message(
        content,
        [
          rcpt('to@peer.test', {
            notify: ['SUCCESS', 'FAILURE'],
            orcpt: { addrType: 'rfc822', address: 'Original+Box@peer.test' },
          }),
          rcpt('refuse@peer.test'),
          rcpt('later@peer.test', { notify: [] }),
        ],
        { ret: 'HDRS', envid: 'QUEUE-ID 42', body: '8BITMIME' },
      ),
    );
    await session.quit();
    assert.equal(res.kind, 'sent');
    assert.ok(res.kind === 'sent');
    assert.match(res.dataReply.text, /Queued as PEER1/);
    assert.deepEqual(
      res.recipients.map((r) => [r.address, r.verdict, r.reply?.code, r.status]),
      [
        ['to@peer.test', 'delivered', 250, '2.0.0'],
        ['refuse@peer.test', 'permanent', 550, '5.1.1'],
        ['later@peer.test', 'temporary', 452, '4.2.2'],
      ],
    );
    const got = peer.received.at(-1)!;
    assert.equal(got.secure, true);
    assert.equal(got.bodyType, '8bitmime');
    assert.deepEqual(got.dsn, { ret: 'HDRS', envid: 'QUEUE-ID 42' });
    assert.equal(got.mailFrom.address, 'from@tern.test');
    assert.deepEqual(
      got.rcptTo.map((r) => [r.address, r.dsn?.notify, r.dsn?.orcpt]),
      [['to@peer.test', ['SUCCESS', 'FAILURE'], 'rfc822;Original+Box@peer.test']],
    );
    const expected = content.replace(/\r\n|\r|\n/g, '\r\n');
    assert.equal(got.data.toString('utf8'), expected);
  });

  test('one connection, several messages: reuse after RSET, visible on the server as one session', async () => {
    const before = peer.connections();
    const session = await connected(options(peer.port, { tls: 'none' }));
    const r1 = await session.send(message('Subject: one\r\n\r\nfirst\r\n'));
    await session.reset();
    const r2 = await session.send(message('Subject: two\r\nX-Reply: 451\r\n\r\nsecond\r\n'));
    await session.reset();
    const r3 = await session.send(message('Subject: three\r\n\r\nthird\r\n'));
    assert.equal(session.messagesSent, 2);
    assert.equal(session.usable, true);
    await session.quit();
    assert.equal(r1.kind, 'sent');
    assert.ok(r2.kind === 'failed' && r2.temporary && r2.stage === 'end-of-data' && r2.status === '4.3.0');
    assert.equal(r3.kind, 'sent');
    assert.equal(peer.connections() - before, 1);
    const last3 = peer.received.slice(-3);
    assert.equal(new Set(last3.map((m) => m.session)).size, 1);
    assert.equal(last3[0]!.secure, false);
  });

  test('a 5xx after DATA is permanent for every accepted recipient', async () => {
    const session = await connected(options(peer.port));
    const res = await session.send(
      message('Subject: spam\r\nX-Reply: 554\r\n\r\nbuy\r\n', [rcpt('a@peer.test'), rcpt('b@peer.test')]),
    );
    await session.quit();
    assert.ok(res.kind === 'failed');
    assert.equal(res.temporary, false);
    assert.equal(res.status, '5.7.1');
    assert.deepEqual(
      res.recipients.map((r) => r.verdict),
      ['permanent', 'permanent'],
    );
  });

  test('a message bigger than the advertised SIZE is refused before MAIL (552 5.3.4)', async () => {
    const count = peer.received.length;
    const session = await connected(options(peer.port));
    const res = await session.send({ ...message('x'), sizeBytes: 2_000_000 });
    await session.quit();
    assert.ok(res.kind === 'failed' && !res.temporary && res.status === '5.3.4');
    assert.equal(peer.received.length, count);
  });

  test('SMTPUTF8 offered: a UTF-8 address goes as it is', async () => {
    const session = await connected(options(peer.port));
    const res = await session.send(
      message('Subject: utf8\r\n\r\nhi\r\n', [rcpt('j\u00f6rg@b\u00fccher.test')], { smtputf8: true }),
    );
    await session.quit();
    assert.equal(res.kind, 'sent');
    assert.equal(peer.received.at(-1)!.rcptTo[0]!.address, 'j\u00f6rg@b\u00fccher.test');
  });

  test('"verify": refused without the CA, verified with it', async () => {
    const refused = await connectSmtp(options(peer.port, { tls: 'verify' }));
    assert.ok(refused.kind === 'failed');
    assert.equal(refused.failure.stage, 'tls');
    assert.equal(refused.failure.retryWithoutTls, false);
    const session = await connected(options(peer.port, { tls: 'verify', ca: cert }));
    assert.equal(session.tls?.verified, true);
    const res = await session.send(message('Subject: verified\r\n\r\nok\r\n'));
    await session.quit();
    assert.equal(res.kind, 'sent');
  });

  test('"encrypt" to a server that hides STARTTLS: temporary failure, nothing sent', async () => {
    const plain = await startPeer({ hideSTARTTLS: true });
    try {
      const res = await connectSmtp(options(plain.port, { tls: 'encrypt' }));
      assert.ok(res.kind === 'failed');
      assert.equal(res.failure.reason, 'STARTTLS is required but not offered');
      assert.equal(res.failure.temporary, true);
      assert.equal(plain.received.length, 0);
    } finally {
      await plain.close();
    }
  });

  test('without PIPELINING and DSN: delivered, with no DSN parameters', async () => {
    const bare = await startPeer({ hidePIPELINING: true, hideDSN: true, hideSTARTTLS: true });
    try {
      const session = await connected(options(bare.port));
      assert.equal(session.capabilities.pipelining, false);
      const res = await session.send(
        message('Subject: bare\r\n\r\nok\r\n', [rcpt('x@peer.test', { notify: ['SUCCESS'] })], {
          envid: 'E',
          ret: 'FULL',
        }),
      );
      await session.quit();
      assert.equal(res.kind, 'sent');
      const got = bare.received[0]!;
      assert.deepEqual(got.mailFrom.args, { SIZE: '21' });
      assert.equal(got.rcptTo[0]!.dsn?.notify, undefined);
    } finally {
      await bare.close();
    }
  });
});

describe('AUTH to a smart host', () => {
  let peer: Peer;
  before(async () => {
    peer = await startPeer({ authOptional: false, authMethods: ['PLAIN', 'LOGIN'] });
  });
  after(() => peer?.close());

  test('AUTH PLAIN after STARTTLS; the message carries the authenticated user', async () => {
    const session = await connected(
      options(peer.port, {
        tls: 'verify',
        ca: cert,
        auth: { username: 'relay-user', password: 'relay secret' },
      }),
    );
    assert.equal(session.authenticated, true);
    const res = await session.send(message('Subject: relayed\r\n\r\nvia smart host\r\n'));
    await session.quit();
    assert.equal(res.kind, 'sent');
    assert.equal(peer.received.at(-1)!.user, 'relay-user');
  });

  test('wrong credentials: a temporary failure at the auth stage', async () => {
    const res = await connectSmtp(options(peer.port, { auth: { username: 'relay-user', password: 'nope' } }));
    assert.ok(res.kind === 'failed');
    assert.equal(res.failure.stage, 'auth');
    assert.equal(res.failure.temporary, true);
    assert.equal(res.failure.reply?.code, 535);
  });

  test('without TLS the password is never sent', async () => {
    const count = peer.auths.length;
    const res = await connectSmtp(
      options(peer.port, { tls: 'none', auth: { username: 'relay-user', password: 'relay secret' } }),
    );
    assert.ok(res.kind === 'failed' && res.failure.stage === 'auth');
    assert.equal(peer.auths.length, count);
  });
});

describe('BDAT against Tern', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: ['chunky@example.test'], limits: { max_message_bytes: 5_000_000 } });
  });
  after(() => tern?.stop());

  test('a large message goes in several BDAT chunks over STARTTLS and is stored exactly', async () => {
    const session = await connected(options(tern.ports.smtp, { host: 'mx.example.test' }));
    assert.equal(session.capabilities.chunking, true);
    assert.ok(session.tls !== null);
    const line = 'The quick brown fox jumps over the lazy dog. .dots. \u00e9\n';
    const bodyText = line.repeat(Math.ceil((BDAT_CHUNK_BYTES * 3) / line.length));
    const content = `Subject: chunked\nFrom: <from@tern.test>\n\n${bodyText}`;
    const res = await session.send(
      message(content, [rcpt('chunky@example.test'), rcpt('nobody@example.test')], { body: '8BITMIME' }),
    );
    await session.quit();
    assert.ok(res.kind === 'sent', JSON.stringify(res));
    assert.deepEqual(
      res.recipients.map((r) => [r.address, r.verdict]),
      [
        ['chunky@example.test', 'delivered'],
        ['nobody@example.test', 'permanent'],
      ],
    );
    const [stored] = await tern.waitForMessages('chunky@example.test', 1);
    const trace = splitTrace(await tern.storedMessage('chunky@example.test', stored!.id));
    assert.equal(trace.returnPath, 'from@tern.test');
    assert.equal(trace.rest.toString('utf8'), content.replace(/\n/g, '\r\n'));
  });
});

describe('implicit TLS against Tern', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern();
  });
  after(() => tern?.stop());

  test('TLS from the first byte (port 465 style), then the greeting and EHLO under TLS', async () => {
    const session = await connected(
      options(tern.ports.submissions, { host: 'mx.example.test', implicitTls: true, tls: 'encrypt' }),
    );
    assert.ok(session.tls !== null);
    assert.match(session.remoteBanner, /mx\.example\.test/);
    assert.equal(session.capabilities.startTls, false);
    assert.ok(session.capabilities.authMechanisms.includes('PLAIN'));
    await session.quit();
  });
});

describe('tern send', () => {
  let peer: Peer;
  let dir: string;
  before(async () => {
    peer = await startPeer({ authMethods: ['PLAIN'] });
    dir = await mkdtemp(join(tmpdir(), 'tern-send-'));
    await writeFile(join(dir, 'ca.pem'), cert);
    await writeFile(join(dir, 'body.txt'), 'Hello from a file.\n.A dotted line\nGr\u00fc\u00dfe\n');
  });
  after(async () => {
    await peer?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('sends a message with TLS verified and AUTH, and prints each reply', async () => {
    const result = await runTern(
      [
        'send',
        '--from',
        'cli@tern.test',
        '--to',
        'to@peer.test,refuse@peer.test',
        '--server',
        `localhost:${peer.port}`,
        '--tls',
        'verify',
        '--ca',
        'ca.pem',
        '--auth',
        'relay-user',
        '--password-stdin',
        '--body',
        'body.txt',
        '--subject',
        'Gr\u00fc\u00dfe aus tern',
      ],
      { cwd: dir, stdin: 'relay secret\n' },
    );
    assert.equal(result.code, 1, result.stderr); // one recipient refused
    assert.match(result.stdout, new RegExp(`^connected to localhost:${peer.port}: `, 'm'));
    assert.match(result.stdout, /^TLS: TLSv1\.[23] \S+ \(certificate verified\)$/m);
    assert.match(result.stdout, /^authenticated as relay-user$/m);
    assert.match(result.stdout, /^to@peer\.test: accepted: 250/m);
    assert.match(result.stdout, /^refuse@peer\.test: refused \(permanent\): 550 5\.1\.1/m);
    assert.match(result.stdout, /^message: 250 .*Queued as PEER1/m);
    const got = peer.received.at(-1)!;
    assert.equal(got.user, 'relay-user');
    assert.equal(got.bodyType, '8bitmime');
    const text = got.data.toString('utf8');
    assert.match(text, /^Subject: =\?UTF-8\?B\?R3LDvMOfZSBhdXMgdGVybg==\?=\r\n/m);
    assert.match(text, /^To: <to@peer\.test>, <refuse@peer\.test>\r\n/m);
    assert.ok(text.endsWith('\r\n\r\nHello from a file.\r\n.A dotted line\r\nGr\u00fc\u00dfe\r\n'), text);
  });

  test('every recipient accepted: exit 0; plain --tls none', async () => {
    const result = await runTern(
      [
        'send',
        '--from',
        'cli@tern.test',
        '--to',
        'ok@peer.test',
        '--server',
        `127.0.0.1:${peer.port}`,
        '--tls',
        'none',
      ],
      { cwd: dir },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^TLS: none$/m);
    assert.match(
      peer.received.at(-1)!.data.toString('utf8'),
      /This is a test message sent by tern send\.\r\n$/,
    );
  });

  test('"verify" without the CA fails with the reason and exit 1', async () => {
    const result = await runTern(
      [
        'send',
        '--from',
        'cli@tern.test',
        '--to',
        'ok@peer.test',
        '--server',
        `localhost:${peer.port}`,
        '--tls',
        'verify',
      ],
      { cwd: dir },
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /TLS handshake failed/);
  });

  test('bad usage: exit 2', async () => {
    const noTo = await runTern(['send', '--from', 'a@b.test'], { cwd: dir });
    assert.equal(noTo.code, 2);
    assert.match(noTo.stderr, /missing --to/);
    const badTls = await runTern(['send', '--from', 'a@b.test', '--to', 'c@d.test', '--tls', 'maybe'], {
      cwd: dir,
    });
    assert.equal(badTls.code, 2);
    const badServer = await runTern(
      ['send', '--from', 'a@b.test', '--to', 'c@d.test', '--server', 'h:99999'],
      { cwd: dir },
    );
    assert.equal(badServer.code, 2);
  });
});
