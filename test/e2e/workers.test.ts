// Sessions on session threads (`[server] workers = 2`), end to end: load from an independent client
// (Python's smtplib, 50 connections at once) is accepted and delivered whole and spread over both
// threads; the per-IP connection limit and AUTH lockouts stay exact although the sessions run on two
// threads; an IMAP IDLE session on one thread hears a delivery made by an SMTP session on the other at
// once; SIGTERM lets a transaction in progress finish.
// Deliberately NOT here: every protocol scenario (the whole e2e suite runs with the default "auto", and
// CI runs it once more with TERN_E2E_WORKERS=0), thread deaths (src/server/workers/worker-pool.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawImap } from './imap-raw.ts';
import { RawSmtpClient, havePython, runProcess, startTern, type Tern } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';

/** 50 smtplib connections at once, `perConnection` messages each, to bob@ and 日本@ in turn. */
const LOAD = String.raw`
import smtplib, sys, concurrent.futures
port, conns, per = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def one(c):
    ok = 0
    s = smtplib.SMTP('127.0.0.1', port, timeout=60)
    s.ehlo('load.example')
    for i in range(per):
        rcpt = 'bob@example.test' if (c + i) % 2 == 0 else '日本@example.test'
        body = ('From: a@load.example\r\nTo: %s\r\nSubject: load %d/%d\r\n\r\nhello\r\n' % (rcpt, c, i)).encode('utf-8')
        s.sendmail('a@load.example', [rcpt], body, mail_options=['SMTPUTF8'])
        ok += 1
    s.quit()
    return ok
with concurrent.futures.ThreadPoolExecutor(conns) as ex:
    print(sum(ex.map(one, range(conns))))
`;

describe('sessions on two session threads', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      workers: 2,
      users: [
        { address: 'bob@example.test', password: 'bob pw' },
        '日本@example.test',
        { address: 'alice@example.test', password: 'alice pw' },
      ],
      limits: { max_connections_per_ip: 60 },
      tables: { auth: { lockout_threshold: 4, lockout_window_seconds: 600, lockout_seconds: 600 } },
    });
  });
  after(() => tern?.stop());

  test('200 messages over 50 smtplib connections: every one accepted and stored, both threads served', async () => {
    await tern.waitForLog('two threads', (l) => l.event === 'server.workers.started' && l['workers'] === 2);
    const r = await runProcess('python3', ['-c', LOAD, String(tern.ports.smtp), '50', '4'], {
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '200');
    assert.equal((await tern.waitForMessages('bob@example.test', 100)).length, 100);
    assert.equal((await tern.waitForMessages('日本@example.test', 100)).length, 100);
    const workers = new Set(
      tern
        .logs()
        .filter((l) => l.event === 'smtp.connect')
        .map((l) => l['worker']),
    );
    assert.deepEqual([...workers].sort(), [0, 1]);
  });

  test('IDLE on one thread hears a delivery made by an SMTP session on the other at once', async () => {
    const imap = await RawImap.open(tern.ports.imap!);
    await imap.write('a LOGIN bob@example.test "bob pw"\r\n');
    assert.match((await imap.answer('a')).tagged, /^a OK/);
    await imap.write('b SELECT INBOX\r\n');
    const selected = await imap.answer('b');
    const exists = Number(/^\* (\d+) EXISTS/m.exec(selected.untagged.join('\n'))?.[1]);
    await imap.write('c IDLE\r\n');
    assert.match(await imap.response(), /^\+ /);
    const idleWorker = tern
      .logs()
      .filter((l) => l.event === 'imap.connect')
      .at(-1)?.['worker'];
    // The least busy thread is the other one: the IDLE session keeps this one busier.
    const smtp = await RawSmtpClient.open(tern.ports.smtp);
    await smtp.send('EHLO a.example\r\nMAIL FROM:<a@load.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n');
    for (let i = 0; i < 4; i++) await smtp.readReply();
    const sentAt = Date.now();
    await smtp.send('Subject: while idling\r\n\r\nhi\r\n.\r\n');
    assert.equal((await smtp.readReply()).code, 250);
    const smtpWorker = tern
      .logs()
      .filter((l) => l.event === 'smtp.connect')
      .at(-1)?.['worker'];
    assert.notEqual(smtpWorker, idleWorker, 'the test needs the two sessions on different threads');
    assert.equal(await imap.response(5000), `* ${exists + 1} EXISTS`);
    assert.ok(Date.now() - sentAt < 2000);
    await imap.write('DONE\r\n');
    await imap.answer('c');
    await imap.write('d LOGOUT\r\n');
    await imap.answer('d');
    await smtp.send('QUIT\r\n');
    // Both sessions over: the next test starts with both threads idle.
    await tern.waitForLog(
      'the IMAP session ended',
      (l) => l.event === 'imap.close' && l['worker'] === idleWorker,
    );
  });
  // Late: it locks 127.0.0.1 out of AUTH for the rest of this server's life (the next test needs no AUTH).
  test('AUTH lockout across threads: 4 failures on 4 connections lock the IP, even for the right password', async () => {
    const plain = (user: string, pw: string): string => Buffer.from(`\0${user}\0${pw}`).toString('base64');
    const workersSeen = new Set<unknown>();
    const before = tern.logs().length;
    for (const user of ['x@example.test', 'jürgen@example.test', 'y@example.test', 'alice@example.test']) {
      const c = await RawSmtpClient.open(tern.ports.submissions, { tls: true });
      await c.send('EHLO a.example\r\n');
      await c.readReply();
      await c.send(`AUTH PLAIN ${plain(user, 'wrong')}\r\n`);
      assert.equal((await c.readReply(10_000)).code, 535);
      await c.send('QUIT\r\n');
    }
    for (const l of tern.logs().slice(before)) if (l.event === 'smtp.connect') workersSeen.add(l['worker']);
    assert.deepEqual([...workersSeen].sort(), [0, 1], 'the failures came from both threads');
    const c = await RawSmtpClient.open(tern.ports.submissions, { tls: true });
    await c.send('EHLO a.example\r\n');
    await c.readReply();
    await c.send(`AUTH PLAIN ${plain('alice@example.test', 'alice pw')}\r\n`);
    const locked = await c.readReply(10_000);
    assert.equal(locked.code, 454, locked.raw);
    await c.send('QUIT\r\n');
  });

  // Last: its 60 connections may still be counted a moment after they are closed.
  test('max_connections_per_ip stays exact across threads: 60 greeted, the 61st refused, counts given back', async () => {
    const clients = await Promise.all(Array.from({ length: 60 }, () => RawSmtpClient.open(tern.ports.smtp)));
    const extra = await RawSmtpClient.connect(tern.ports.smtp);
    const refusal = await extra.readReply();
    assert.equal(refusal.code, 421);
    for (const c of clients) await c.send('QUIT\r\n');
    // Every session's end reaches the accepting thread: the same 60 fit again.
    const again = await waitForGreetings(tern.ports.smtp, 60);
    for (const c of again) await c.send('QUIT\r\n');
  });
});

async function waitForGreetings(port: number, n: number): Promise<RawSmtpClient[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const clients = await Promise.all(Array.from({ length: n }, () => RawSmtpClient.connect(port)));
    const replies = await Promise.all(clients.map((c) => c.readReply()));
    if (replies.every((r) => r.code === 220)) return clients;
    for (const c of clients) await c.send('QUIT\r\n').catch(() => undefined);
    if (Date.now() > deadline)
      throw new Error(`not all ${n} greeted: ${replies.map((r) => r.code).join(',')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
