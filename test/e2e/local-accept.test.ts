// End to end, over real sockets with Python's smtplib as the client: local mail in one durable step
// (issue 14). A message for local mailboxes is in the mailbox when the 250 comes and never in the queue;
// a mixed message stores the local copy and queues only the remote recipient; a full mailbox is refused
// at RCPT and a message too large for the room left after DATA (552 5.2.2), never bounced; a large body is stored
// once (the queue's spool file becomes the mailbox's body: a link, not a copy); `[queue] local_delivery
// = "queue"` keeps the worker's path. Each with a UTF-8 twin (jürgen@, 日本@).

import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SmtplibResult, Tern } from './harness.ts';
import { closedPort, ehlo, havePython, RawSmtpClient, smtplib, startTern, waitFor } from './harness.ts';

const USERS = ['alice@example.test', 'jürgen@example.test', '日本@example.test'] as const;

type Queued = { id: string; recipients: { address: string; status: string }[] };

async function queueList(tern: Tern): Promise<Queued[]> {
  const r = await tern.tern(['queue', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Queued[];
}

function send(tern: Tern, to: readonly string[], raw: string | Buffer): Promise<SmtplibResult> {
  const utf8 = to.some((a) => /[^\x20-\x7e]/.test(a));
  return smtplib({
    port: tern.ports.smtp,
    mode: 'plain',
    action: 'sendmail',
    from: 'sender@remote.test',
    to,
    raw,
    mail_options: utf8 ? ['SMTPUTF8'] : [],
  });
}

/** Every file under a folder, recursively, with its size and link count. */
async function files(dir: string): Promise<{ path: string; size: number; nlink: number }[]> {
  const out: { path: string; size: number; nlink: number }[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    const s = await stat(path);
    out.push({ path, size: s.size, nlink: s.nlink });
  }
  return out;
}

describe('local mail in one durable step', { skip: !havePython() && 'python3 is not available' }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [...USERS],
      // Loopback may relay, and remote domains resolve nowhere: a remote recipient stays queued.
      smtp: { trusted_networks: ['127.0.0.0/8'] },
      tables: { dns: { servers: [`127.0.0.1:${await closedPort()}`], timeout_seconds: 1, attempts: 1 } },
    });
  });
  after(() => tern?.stop());

  for (const user of USERS) {
    test(`stored before the 250, never queued, trace fields once (${user})`, async () => {
      const before = (await tern.storedMessages(user)).length;
      const raw = `Return-Path: <forged@evil.test>\r\nFrom: s@remote.test\r\nSubject: direct ${user}\r\n\r\nhello\r\n`;
      const r = await send(tern, [user], raw);
      assert.ok(r.ok, JSON.stringify(r));
      // No waiting: the 250 means the copy is in the mailbox already.
      const stored = await tern.storedMessages(user);
      assert.equal(stored.length, before + 1, 'in the mailbox when the 250 came');
      const last = stored.at(-1)!;
      assert.equal(last.subject, `direct ${user}`);
      const bytes = (await tern.storedMessage(user, last.id)).toString('utf8');
      assert.ok(
        bytes.startsWith(`Return-Path: <sender@remote.test>\r\nDelivered-To: ${user}\r\nReceived: `),
        bytes.slice(0, 200),
      );
      assert.ok(!bytes.includes('forged@evil.test'), "the client's Return-Path: is gone");
      assert.ok(bytes.endsWith('\r\n\r\nhello\r\n'));
      assert.equal(last.sizeBytes, Buffer.byteLength(bytes));
      assert.deepEqual(await queueList(tern), [], 'nothing queued');
      const line = await tern.waitForLog(
        'delivery.local at accept',
        (l) => l.event === 'delivery.local' && l['user'] === user,
      );
      assert.equal(line['stage'], 'accept');
    });
  }

  test('mixed recipients: the local copies are stored, only the remote one is queued', async () => {
    const r = await send(
      tern,
      ['alice@example.test', 'bob@remote.test', '日本@example.test'],
      'Subject: mixed\r\n\r\nhi\r\n',
    );
    assert.ok(r.ok, JSON.stringify(r));
    for (const user of ['alice@example.test', '日本@example.test']) {
      assert.equal((await tern.storedMessages(user)).at(-1)?.subject, 'mixed', user);
    }
    const queued = await queueList(tern);
    assert.equal(queued.length, 1);
    assert.deepEqual(
      queued[0]!.recipients.map((x) => x.address),
      ['bob@remote.test'],
    );
    const removed = await tern.tern(['queue', 'delete', queued[0]!.id]);
    assert.equal(removed.code, 0, removed.stderr);
  });

  test('a large body is on disk once: the spool file becomes the mailbox body', async () => {
    const body = `${'0123456789abcdef'.repeat(6)}xx\r\n`.repeat(3000); // 300,000 octets
    const r = await send(tern, ['jürgen@example.test'], `Subject: large\r\n\r\n${body}`);
    assert.ok(r.ok, JSON.stringify(r));
    const last = (await tern.storedMessages('jürgen@example.test')).at(-1)!;
    assert.equal(last.subject, 'large');
    const bytes = await tern.storedMessage('jürgen@example.test', last.id);
    assert.ok(bytes.subarray(-body.length).equals(Buffer.from(body)));
    const spool = await files(join(tern.dataDir, 'queue', 'spool'));
    assert.deepEqual(spool, [], 'the queue keeps no copy');
    const blobs = (await files(join(tern.dataDir, 'mail', 'blobs'))).filter((f) => f.size > 250_000);
    assert.equal(blobs.length, 1, JSON.stringify(blobs));
    // The file holds what the session received (Received: and the message); the trace fields in front
    // are kept beside it, so the stored message is larger by exactly those.
    const head = Buffer.byteLength(
      'Return-Path: <sender@remote.test>\r\nDelivered-To: jürgen@example.test\r\n',
    );
    assert.equal(blobs[0]!.size + head, bytes.byteLength);
    assert.equal(blobs[0]!.nlink, 1, 'one name: the spool name is gone');
  });
});

describe('quota judged before the 250', { skip: !havePython() && 'python3 is not available' }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: [...USERS], limits: { mailbox_quota_messages: 1 } });
  });
  after(() => tern?.stop());

  test('a full mailbox is refused at RCPT (552 5.2.2), the others still get the message', async () => {
    for (const user of ['alice@example.test', '日本@example.test']) {
      assert.ok((await send(tern, [user], 'Subject: first\r\n\r\nfits\r\n')).ok);
    }
    const r = await send(
      tern,
      ['alice@example.test', 'jürgen@example.test', '日本@example.test'],
      'Subject: second\r\n\r\nonly for jürgen\r\n',
    );
    assert.ok(r.ok, JSON.stringify(r));
    for (const user of ['alice@example.test', '日本@example.test']) {
      assert.equal(r.refused[user]?.[0], 552, JSON.stringify(r.refused));
      assert.match(r.refused[user]?.[1] ?? '', /5\.2\.2/);
      assert.deepEqual(
        (await tern.storedMessages(user)).map((m) => m.subject),
        ['first'],
      );
    }
    assert.deepEqual(
      (await tern.storedMessages('jürgen@example.test')).map((m) => m.subject),
      ['second'],
    );
    assert.deepEqual(await queueList(tern), [], 'no bounce: the client was told');
  });
});

describe('a message larger than the room left', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: [...USERS], limits: { mailbox_quota_bytes: 4000 } });
  });
  after(() => tern?.stop());

  for (const user of ['alice@example.test', '日本@example.test']) {
    test(`no SIZE at MAIL: 552 5.2.2 after DATA, nothing stored, no bounce (${user})`, async () => {
      const c = await RawSmtpClient.open(tern.ports.smtp);
      try {
        await ehlo(c);
        assert.equal((await c.command('MAIL FROM:<sender@remote.test> SMTPUTF8')).code, 250);
        assert.equal((await c.command(`RCPT TO:<${user}>`)).code, 250, 'room left at RCPT');
        assert.equal((await c.command('DATA')).code, 354);
        const done = await c.command(`Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(80) + '.');
        assert.equal(done.code, 552, done.raw);
        assert.equal(done.enhanced, '5.2.2');
      } finally {
        c.close();
      }
      assert.deepEqual(await tern.storedMessages(user), []);
      assert.deepEqual(await queueList(tern), []);
    });
  }
});

describe('[queue] local_delivery = "queue"', { skip: !havePython() && 'python3 is not available' }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: [...USERS], tables: { queue: { local_delivery: 'queue' } } });
  });
  after(() => tern?.stop());

  test('every message goes through the queue and its worker', async () => {
    for (const user of USERS) {
      assert.ok((await send(tern, [user], `Subject: via queue\r\n\r\nhi\r\n`)).ok);
      await tern.waitForMessages(user, 1);
      const line = await tern.waitForLog(
        'worker delivery',
        (l) => l.event === 'delivery.local' && l['user'] === user,
      );
      assert.equal(line['stage'], undefined, 'stored by the worker');
    }
  });

  test('a large body through the queue is linked into the mailbox too, not copied', async () => {
    const body = `${'0123456789abcdef'.repeat(6)}xx\r\n`.repeat(3000);
    const user = '日本@example.test';
    const before = (await tern.storedMessages(user)).length;
    assert.ok((await send(tern, [user], `Subject: large via queue\r\n\r\n${body}`)).ok);
    await tern.waitForMessages(user, before + 1);
    await waitFor('the queue to let its copy go', async () =>
      (await queueList(tern)).length === 0 && (await files(join(tern.dataDir, 'queue', 'spool'))).length === 0
        ? true
        : undefined,
    );
    const last = (await tern.storedMessages(user)).at(-1)!;
    const bytes = await tern.storedMessage(user, last.id);
    assert.ok(bytes.subarray(-body.length).equals(Buffer.from(body)));
    assert.ok(
      bytes
        .toString('utf8')
        .startsWith(`Return-Path: <sender@remote.test>\r\nDelivered-To: ${user}\r\nReceived: `),
    );
    const blobs = (await files(join(tern.dataDir, 'mail', 'blobs'))).filter((f) => f.size > 250_000);
    assert.equal(blobs.length, 1, JSON.stringify(blobs));
    const head = Buffer.byteLength(`Return-Path: <sender@remote.test>\r\nDelivered-To: ${user}\r\n`);
    assert.equal(blobs[0]!.size + head, bytes.byteLength, 'the spool file itself, behind the trace fields');
    assert.equal(blobs[0]!.nlink, 1);
  });
});
