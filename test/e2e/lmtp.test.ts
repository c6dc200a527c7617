// End to end, over real sockets: Tern's LMTP listener (RFC 2033) on TCP and on a Unix socket, driven by
// Python's smtplib.LMTP (an independent client) and by raw dialogues. LMTP is final delivery: one reply
// per accepted recipient after DATA (a full mailbox refused alone), the copy in the mailbox when its 250
// comes, no relaying whoever the client is, LHLO only. Each with UTF-8 twins (jürgen@, 日本@).

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Tern } from './harness.ts';
import { havePython, ROOT, runProcess, startTern } from './harness.ts';

const PY_LMTP = join(ROOT, 'test', 'e2e', 'py', 'lmtp_client.py');
const USERS = ['alice@example.test', 'jürgen@example.test', '日本@example.test', 'full@example.test'];

interface LmtpResult {
  readonly lhlo: [number, string];
  readonly features: Record<string, string>;
  readonly mail: [number, string];
  readonly rcpt: [number, string][];
  readonly data: [number, string][];
}

async function lmtp(
  where: { port: number } | { path: string },
  to: readonly string[],
  raw: string,
  mailOptions: readonly string[] = [],
): Promise<LmtpResult> {
  const request = {
    ...('port' in where ? { host: '127.0.0.1', port: where.port } : { path: where.path }),
    lhlo: 'mx.relay.test',
    from: 'sender@remote.test',
    to,
    raw_b64: Buffer.from(raw).toString('base64'),
    mail_options: mailOptions,
  };
  const r = await runProcess('python3', [PY_LMTP], { stdin: JSON.stringify(request) });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as LmtpResult;
}

/** A raw dialogue: each line sent, then the replies read until `replies` complete replies came. */
async function dialogue(port: number, lines: string, replies: number): Promise<string[]> {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  const done = new Promise<string[]>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      const complete = text.split('\r\n').filter((l) => /^\d{3} /.test(l));
      if (complete.length >= replies + 1) resolve(complete.slice(1));
    });
    socket.on('error', reject);
    setTimeout(() => reject(new Error(`timed out; got ${text}`)), 10_000).unref();
  });
  socket.once('data', () => socket.write(lines));
  try {
    return await done;
  } finally {
    socket.destroy();
  }
}

describe('the LMTP listener', { skip: !havePython() && 'python3 is not available' }, () => {
  let tern: Tern;
  let dir: string;
  let path: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tern-lmtp-'));
    path = join(dir, 'lmtp.sock');
    tern = await startTern({
      users: USERS,
      lmtp: { path },
      // Loopback is trusted for SMTP relaying here; LMTP must still never relay.
      smtp: { trusted_networks: ['127.0.0.0/8'] },
    });
    const q = await tern.tern(['user', 'quota', 'full@example.test', '--storage', '1']);
    assert.equal(q.code, 0, q.stderr);
  });
  after(async () => {
    await tern?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('LHLO over TCP: the extensions of a final-delivery server', async () => {
    const r = await lmtp({ port: tern.ports.lmtp! }, ['alice@example.test'], 'Subject: a\r\n\r\nx\r\n');
    assert.equal(r.lhlo[0], 250);
    for (const ext of ['pipelining', 'enhancedstatuscodes', '8bitmime', 'smtputf8', 'size'])
      assert.ok(ext in r.features, `LHLO offers ${ext}: ${JSON.stringify(r.features)}`);
    assert.ok(!('auth' in r.features), 'no AUTH on LMTP');
  });

  test('one reply per accepted recipient; each copy in its mailbox when its 250 comes', async () => {
    const before = await Promise.all(
      USERS.slice(0, 3).map(async (u) => (await tern.storedMessages(u)).length),
    );
    const r = await lmtp(
      { port: tern.ports.lmtp! },
      [
        'alice@example.test',
        'nobody@example.test',
        'jürgen@example.test',
        'x@elsewhere.test',
        '日本@example.test',
      ],
      'From: s@remote.test\r\nSubject: per recipient\r\n\r\nhello\r\n',
      ['SMTPUTF8'],
    );
    assert.deepEqual(
      r.rcpt.map(([code]) => code),
      [250, 550, 250, 554, 250],
      JSON.stringify(r.rcpt),
    );
    assert.match(r.rcpt[3]![1], /relay/i, 'LMTP never relays, even for a trusted network');
    assert.deepEqual(
      r.data.map(([code]) => code),
      [250, 250, 250],
    );
    for (const [i, user] of USERS.slice(0, 3).entries()) {
      const stored = await tern.storedMessages(user);
      assert.equal(stored.length, before[i]! + 1, `${user} has the message at once`);
      assert.equal(stored.at(-1)!.subject, 'per recipient');
      const bytes = (await tern.storedMessage(user, stored.at(-1)!.id)).toString('utf8');
      assert.ok(
        bytes.startsWith(
          `Return-Path: <sender@remote.test>\r\nDelivered-To: ${user}\r\nReceived: from mx.relay.test`,
        ),
        bytes.slice(0, 300),
      );
      assert.match(bytes, /with UTF8LMTP id /, 'the RFC 6531 protocol name of LMTP with SMTPUTF8');
    }
  });

  test('over the Unix socket: a full mailbox is refused alone (552 5.2.2), the other recipient gets it', async () => {
    const mode = (await stat(path)).mode & 0o777;
    assert.equal(mode, 0o660, 'the socket file has the default mode');
    const r = await lmtp(
      { path },
      ['jürgen@example.test', 'full@example.test'],
      'Subject: quota\r\n\r\nbody\r\n',
      ['SMTPUTF8'],
    );
    // RCPT may already see the full mailbox (then it is refused there); else its reply after DATA says so.
    const fullAtRcpt = r.rcpt[1]![0] === 552;
    assert.deepEqual(
      r.rcpt.map(([c]) => c),
      fullAtRcpt ? [250, 552] : [250, 250],
    );
    assert.deepEqual(
      r.data.map(([c]) => c),
      fullAtRcpt ? [250] : [250, 552],
    );
    const stored = await tern.storedMessages('jürgen@example.test');
    assert.equal(stored.at(-1)!.subject, 'quota');
    assert.equal((await tern.storedMessages('full@example.test')).length, 0);
    const received = await tern.storedMessage('jürgen@example.test', stored.at(-1)!.id);
    assert.match(received.toString('utf8'), /Received: from mx\.relay\.test \(\S+ \[127\.0\.0\.1\]\)/);
  });

  test('EHLO and HELO are refused with 500 5.5.1; LHLO then works; no STARTTLS on a cleartext LMTP', async () => {
    const replies = await dialogue(
      tern.ports.lmtp!,
      'EHLO a.test\r\nHELO a.test\r\nLHLO a.test\r\nQUIT\r\n',
      4,
    );
    assert.match(replies[0]!, /^500 5\.5\.1 .*LHLO/);
    assert.match(replies[1]!, /^500 5\.5\.1/);
    assert.match(replies[2]!, /^250 /);
    assert.match(replies[3]!, /^221 /);
  });

  test('a message with bare LF is refused as on SMTP (no smuggling through LMTP)', async () => {
    const replies = await dialogue(
      tern.ports.lmtp!,
      'LHLO a.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nbad\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n',
      5,
    );
    assert.match(replies[3]!, /^354/);
    assert.match(replies[4]!, /^5\d\d /);
  });
});
