import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Envelope } from '../core/envelope.ts';
import type { LogFields, Logger } from '../core/ports.ts';
import { ReplyError, Replies } from '../core/reply.ts';
import type { Alias, Directory, QuotaLimits, Resolution, User } from '../directory/directory.ts';
import { UNLIMITED_QUOTA } from '../directory/directory.ts';
import type {
  MessageWriter,
  Queue,
  QueueChange,
  QueuedMessage,
  QueuedRecipient,
  RecipientOutcome,
} from '../queue/queue.ts';
import type { DeliverRequest, MailboxStore, MessageSummary, QuotaUsage } from '../store/mailbox-store.ts';
import {
  DELIVERED_REPLY,
  DeliveryWorker,
  MAILBOX_FULL_REPLY,
  REMOTE_PENDING_DELAY_MS,
  REMOTE_PENDING_REPLY,
} from './worker.ts';
import type { DeliveryWorkerOptions } from './worker.ts';

// ---- in-memory fakes of the three service interfaces -------------------------------------------------

const T0 = 1_700_000_000_000;
const MIN = 60_000;

class FakeClock {
  now = T0;
  nowMs = (): number => this.now;
}

function envelope(sender: string, recipients: readonly string[]): Envelope {
  return {
    sender,
    body: '8BITMIME',
    smtputf8: false,
    ret: null,
    envid: null,
    recipients: recipients.map((address) => ({ address, notify: null, orcpt: null })),
    client: {
      ip: '192.0.2.1',
      port: 40000,
      hostname: null,
      helo: 'client.example.net',
      esmtp: true,
      tls: null,
      authUser: null,
      service: 'smtp',
    },
    receivedAtMs: T0,
  };
}

interface StoredMessage {
  envelope: Envelope;
  body: Uint8Array;
  recipients: QueuedRecipient[];
}

class FakeQueue implements Queue {
  readonly messages = new Map<string, StoredMessage>();
  readonly settled: { id: string; index: number; outcome: RecipientOutcome }[] = [];
  readonly listeners = new Set<(id: string) => void>();
  /** Bytes pulled by each readBody() call, in call order. */
  readonly reads: { id: string; bytes: number }[] = [];
  failSettle = 0;
  failDue = 0;
  /** What changeCounter() reads: another process (the CLI) moves it. */
  counter = 0;
  /** Commits made by another process: no listener hears them. */
  quiet = false;
  #seq = 0;
  readonly #clock: FakeClock;

  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  /** Commit a message the way a session would, and wake the listeners. */
  add(text: string | Uint8Array, env: Envelope): string {
    const id = `Q${++this.#seq}`;
    const body = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    const recipients = env.recipients.map((r, index) => ({
      index,
      address: r.address,
      status: 'queued' as const,
      attempts: 0,
      nextAttemptMs: this.#clock.now,
      lastReply: null,
      delayWarned: false,
      bounceRequested: false,
    }));
    this.messages.set(id, { envelope: env, body, recipients });
    if (!this.quiet) for (const l of this.listeners) l(id);
    return id;
  }

  begin(): MessageWriter {
    throw new Error('not used by the worker');
  }
  bodyFile(): Promise<null> {
    return Promise.resolve(null);
  }
  get(id: string): Promise<QueuedMessage | null> {
    const m = this.messages.get(id);
    return Promise.resolve(m ? this.#snapshot(id, m, m.recipients) : null);
  }
  async list(): Promise<QueuedMessage[]> {
    return Promise.all([...this.messages.keys()].map(async (id) => (await this.get(id))!));
  }
  async *readBody(id: string): AsyncIterable<Uint8Array> {
    const m = this.messages.get(id);
    if (!m) throw new Error(`no message ${id}`);
    const read = { id, bytes: 0 };
    this.reads.push(read);
    for (let at = 0; at < m.body.length; at += 1024) {
      const chunk = m.body.subarray(at, at + 1024);
      read.bytes += chunk.length;
      await Promise.resolve(); // a real queue reads a file
      yield chunk;
    }
  }
  // These tests drive wake-ups by commits, flush() and deferrals; the hold-ending wake is the SQLite
  // queue's and is checked end to end (test/e2e/queue-extensions.test.ts).
  nextAttemptAfter(): Promise<number | null> {
    return Promise.resolve(null);
  }
  due(nowMs: number, limit: number): Promise<QueuedMessage[]> {
    if (this.failDue > 0 && this.failDue--) return Promise.reject(new Error('database is locked'));
    const out: QueuedMessage[] = [];
    for (const [id, m] of this.messages) {
      const due = m.recipients.filter(
        (r) => (r.status === 'queued' || r.status === 'deferred') && r.nextAttemptMs <= nowMs,
      );
      if (due.length > 0) out.push(this.#snapshot(id, m, due));
    }
    return Promise.resolve(out.slice(0, limit));
  }
  settle(id: string, index: number, outcome: RecipientOutcome): Promise<void> {
    if (this.failSettle > 0 && this.failSettle--) return Promise.reject(new Error('disk I/O error'));
    const m = this.messages.get(id);
    const r = m?.recipients[index];
    if (!m || !r || (r.status !== 'queued' && r.status !== 'deferred')) {
      return Promise.reject(new Error(`not pending: ${id}/${index}`));
    }
    m.recipients[index] = {
      ...r,
      status: outcome.status,
      attempts: r.attempts + 1,
      lastReply: outcome.reply,
      nextAttemptMs: outcome.status === 'deferred' ? outcome.nextAttemptMs : r.nextAttemptMs,
    };
    this.settled.push({ id, index, outcome });
    if (m.recipients.every((x) => x.status === 'delivered' || x.status === 'bounced'))
      this.messages.delete(id);
    return Promise.resolve();
  }
  onCommit(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  // Operator steering and counts are not used by these tests (the queue contract suite covers them).
  stats(): Promise<never> {
    return Promise.reject(new Error('not used by the worker tests'));
  }
  hold(): Promise<boolean> {
    return Promise.reject(new Error('not used by the worker tests'));
  }
  release(): Promise<boolean> {
    return Promise.reject(new Error('not used by the worker tests'));
  }
  remove(): Promise<boolean> {
    return Promise.reject(new Error('not used by the worker tests'));
  }
  flush(): Promise<number> {
    return Promise.reject(new Error('not used by the worker tests'));
  }
  bounceNow(): Promise<number> {
    return Promise.reject(new Error('not used by the worker tests'));
  }
  markDelayWarned(): Promise<void> {
    return Promise.reject(new Error('not used by the worker tests'));
  }
  changeCounter(): Promise<number> {
    return Promise.resolve(this.counter);
  }
  recordChange(): Promise<void> {
    return Promise.resolve();
  }
  changesSince(): Promise<QueueChange[]> {
    return Promise.resolve([]);
  }
  lastChangeSeq(): Promise<number> {
    return Promise.resolve(0);
  }
  #snapshot(id: string, m: StoredMessage, recipients: readonly QueuedRecipient[]): QueuedMessage {
    return {
      id,
      envelope: m.envelope,
      sizeBytes: m.body.length,
      recipients: [...recipients],
      held: false,
      arrivalMs: m.envelope.receivedAtMs,
    };
  }
}

interface Delivered {
  user: string;
  mailbox: string;
  deliveryKey: string;
  uid: number;
  summary: DeliverRequest['summary'];
  text: string;
  sizeBytes: number;
}

class FakeStore implements MailboxStore {
  readonly delivered: Delivered[] = [];
  readonly byKey = new Map<string, { uid: number; id: string }>();
  calls = 0;
  failNext = 0;
  /** When set, deliver() waits for this before storing (to hold a delivery in flight). */
  gate: Promise<void> | null = null;
  active = 0;
  maxActive = 0;

  deliverAccepted(): Promise<{ uid: number; id: string; repeated: boolean }[]> {
    return Promise.reject(new Error('not used by the worker'));
  }

  async deliver(req: DeliverRequest): Promise<{ uid: number; id: string }> {
    this.calls++;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      const chunks: Uint8Array[] = [];
      for await (const c of req.content) chunks.push(c);
      if (this.gate) await this.gate;
      if (this.failNext > 0 && this.failNext--) throw new ReplyError(Replies.insufficientStorage);
      const earlier = this.byKey.get(req.deliveryKey);
      if (earlier) return earlier;
      const uid = this.delivered.filter((d) => d.user === req.user).length + 1;
      this.delivered.push({
        user: req.user,
        mailbox: req.mailbox,
        deliveryKey: req.deliveryKey,
        uid,
        summary: req.summary,
        text: Buffer.concat(chunks).toString('utf8'),
        sizeBytes: Buffer.concat(chunks).length,
      });
      const result = { uid, id: `1-${uid}` };
      this.byKey.set(req.deliveryKey, result);
      return result;
    } finally {
      this.active--;
    }
  }
  list(user: string): Promise<MessageSummary[]> {
    return Promise.resolve(
      this.delivered
        .filter((d) => d.user === user)
        .map((d) => ({
          id: `1-${d.uid}`,
          mailbox: d.mailbox,
          uid: d.uid,
          sizeBytes: d.text.length,
          internalDateMs: 0,
          flags: [],
          ...d.summary,
        })),
    );
  }
  read(): AsyncIterable<Uint8Array> | null {
    return null;
  }
  /** Usage as the real store counts it: every message of the user, every stored byte. */
  quota(user: string): Promise<QuotaUsage> {
    const mine = this.delivered.filter((d) => d.user === user);
    return Promise.resolve({ messages: mine.length, bytes: mine.reduce((n, d) => n + d.sizeBytes, 0) });
  }
  // Retrieval is not the worker's business.
  status = (): Promise<null> => Promise.resolve(null);
  snapshot = (): Promise<null> => Promise.resolve(null);
  openMessage = (): Promise<null> => Promise.resolve(null);
  expunge = (): Promise<number[]> => Promise.resolve([]);
  close(): Promise<void> {
    return Promise.resolve();
  }
}

class FakeDirectory implements Directory {
  readonly routes = new Map<string, Resolution>();
  /** Limits per user; a user not here is unlimited. */
  readonly quotas = new Map<string, QuotaLimits>();
  failNext = 0;

  isLocalDomain(domain: string): boolean {
    return domain === 'example.org';
  }
  resolve(address: string): Promise<Resolution> {
    if (this.failNext > 0 && this.failNext--) return Promise.reject(new Error('directory unavailable'));
    const route = this.routes.get(address);
    if (route) return Promise.resolve(route);
    return Promise.resolve(
      this.isLocalDomain(address.split('@')[1] ?? '') ? { kind: 'unknown' } : { kind: 'remote' },
    );
  }
  user(address: string): this {
    this.routes.set(address, { kind: 'local', users: [address], forward: [] });
    return this;
  }
  addUser(): Promise<void> {
    return Promise.reject(new Error('not used'));
  }
  setPasswordHash(): Promise<void> {
    return Promise.reject(new Error('not used'));
  }
  deleteUser(address: string): Promise<boolean> {
    return Promise.resolve(this.routes.delete(address));
  }
  listUsers(): Promise<User[]> {
    return Promise.resolve([]);
  }
  getPasswordHash(): Promise<string | null> {
    return Promise.resolve(null);
  }
  addAlias(): Promise<void> {
    return Promise.reject(new Error('not used'));
  }
  deleteAlias(): Promise<boolean> {
    return Promise.resolve(false);
  }
  listAliases(): Promise<Alias[]> {
    return Promise.resolve([]);
  }
  // Credentials, certificates, sender rights and policy: the worker never asks.
  getCredentials = notUsed;
  setCredentials = notUsed;
  addCertificate = notUsed;
  deleteCertificate = notUsed;
  listCertificates = notUsed;
  findUserByCertificate = notUsed;
  ownsAddress = notUsed;
  addSendAs = notUsed;
  deleteSendAs = notUsed;
  listSendAs = notUsed;
  getUserPolicy = notUsed;
  setUserPolicy = notUsed;
  getQuota(address: string): Promise<QuotaLimits | null> {
    return Promise.resolve(this.quotas.get(address) ?? UNLIMITED_QUOTA);
  }
  setQuota = notUsed;
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function notUsed(): Promise<never> {
  return Promise.reject(new Error('not used'));
}

interface LogLine {
  level: 'event' | 'warn' | 'error' | 'debug';
  name: string;
  fields: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[] = [], bound: LogFields = {}): Logger & { lines: LogLine[] } {
  const at =
    (level: LogLine['level']) =>
    (name: string, fields: LogFields = {}): void =>
      void lines.push({ level, name, fields: { ...bound, ...fields } });
  return {
    lines,
    event: at('event'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
    child: (fields) => recordingLogger(lines, { ...bound, ...fields }),
  };
}

function setup(options: Partial<DeliveryWorkerOptions> = {}) {
  const clock = new FakeClock();
  const queue = new FakeQueue(clock);
  const store = new FakeStore();
  const directory = new FakeDirectory().user('alice@example.org').user('bob@example.org');
  const logger = recordingLogger();
  // A poll period far away unless a test asks: wake-ups must come from commits and flush().
  const worker = new DeliveryWorker(
    { queue, store, directory, clock, logger, random: () => 0.5 },
    { pollMs: 3_600_000, ...options },
  );
  return { clock, queue, store, directory, logger, worker };
}

const MESSAGE = [
  'Received: from client.example.net by mx.example.org; Tue, 14 Nov 2023 22:13:20 +0000',
  'From: =?utf-8?Q?Bj=C3=B6rn?= <bjorn@example.net>',
  'To: alice@example.org',
  'Subject: =?iso-8859-1?Q?R=E9union?= tomorrow',
  'Date: Tue, 14 Nov 2023 22:13:19 +0000',
  'Message-ID: <m1@example.net>',
  '',
  'See you there.',
  '',
].join('\r\n');

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---- tests -------------------------------------------------------------------------------------------

test('a change another process makes right after the start (before the first poll) is acted on', async () => {
  const { queue, store, worker } = setup();
  worker.start();
  try {
    // `tern queue flush` a moment after `tern serve` started: no commit event, only the counter moves.
    await new Promise((r) => setTimeout(r, 50));
    queue.quiet = true;
    queue.add(MESSAGE, envelope('bjorn@example.net', ['alice@example.org']));
    queue.counter++;
    await until(() => store.delivered.length === 1, 3000);
  } finally {
    await worker.stop();
  }
});

test('a committed message reaches the store: trace headers, decoded summary, settled delivered', async () => {
  const { queue, store, worker, logger } = setup();
  worker.start();
  try {
    const id = queue.add(MESSAGE, envelope('bjorn@example.net', ['alice@example.org', 'bob@example.org']));
    // The commit alone wakes the worker (the poll period is an hour).
    await until(() => queue.messages.size === 0);
    assert.deepEqual(
      store.delivered.map((d) => [d.user, d.mailbox, d.deliveryKey]),
      [
        ['alice@example.org', 'INBOX', `${id}/0/alice@example.org`],
        ['bob@example.org', 'INBOX', `${id}/1/bob@example.org`],
      ],
    );
    const alice = store.delivered[0]!;
    assert.equal(
      alice.text,
      `Return-Path: <bjorn@example.net>\r\nDelivered-To: alice@example.org\r\n${MESSAGE}`,
    );
    assert.deepEqual(alice.summary, {
      from: 'Björn <bjorn@example.net>',
      subject: 'Réunion tomorrow',
      date: 'Tue, 14 Nov 2023 22:13:19 +0000',
    });
    assert.deepEqual(
      queue.settled.map((s) => [s.index, s.outcome]),
      [
        [0, { status: 'delivered', reply: DELIVERED_REPLY }],
        [1, { status: 'delivered', reply: DELIVERED_REPLY }],
      ],
    );
    const local = logger.lines.filter((l) => l.name === 'delivery.local');
    assert.equal(local.length, 2);
    assert.equal(local[0]!.fields.queueId, id);
    assert.equal(local[0]!.fields.messageId, '<m1@example.net>');
  } finally {
    await worker.stop();
  }
});

test('mail queued before start is delivered on start', async () => {
  const { queue, store, worker } = setup();
  queue.add(MESSAGE, envelope('bjorn@example.net', ['alice@example.org']));
  assert.equal(store.delivered.length, 0);
  worker.start();
  await worker.flush();
  await worker.stop();
  assert.equal(store.delivered.length, 1);
  assert.equal(queue.messages.size, 0);
});

test('a failure defers with a 5 min backoff, doubling, and is retried until delivered', async () => {
  const { queue, store, clock, worker, logger } = setup();
  store.failNext = 2;
  worker.start();
  const id = queue.add(MESSAGE, envelope('', ['alice@example.org']));
  await worker.flush();
  const rcpt = () => queue.messages.get(id)?.recipients[0];
  assert.equal(rcpt()?.status, 'deferred');
  assert.equal(rcpt()?.nextAttemptMs, T0 + 5 * MIN);
  assert.equal(rcpt()?.lastReply, '452 4.3.1 Insufficient system storage');
  assert.equal(logger.lines.filter((l) => l.name === 'delivery.deferred').at(-1)?.fields.queueId, id);

  // Not yet due: nothing happens.
  clock.now = T0 + 5 * MIN - 1;
  await worker.flush();
  assert.equal(store.calls, 1);

  clock.now = T0 + 5 * MIN;
  await worker.flush();
  assert.equal(store.calls, 2);
  assert.equal(rcpt()?.nextAttemptMs, T0 + 5 * MIN + 10 * MIN);
  assert.equal(rcpt()?.attempts, 2);

  clock.now = T0 + 15 * MIN;
  await worker.flush();
  await worker.stop();
  assert.equal(queue.messages.has(id), false);
  assert.equal(store.delivered.length, 1);
  assert.ok(store.delivered[0]!.text.startsWith('Return-Path: <>\r\n'));
});

test('directory errors and plain exceptions defer as 451 4.3.0 (never lost)', async () => {
  const { queue, directory, worker } = setup();
  directory.failNext = 1;
  worker.start();
  const id = queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  await worker.flush();
  await worker.stop();
  const r = queue.messages.get(id)?.recipients[0];
  assert.equal(r?.status, 'deferred');
  assert.equal(r?.lastReply, '451 4.3.0 Local error in processing, try again later');
});

test('stored but not settled (settle error): recorded on the next pass, never delivered twice', async () => {
  const { queue, store, worker, logger } = setup();
  queue.failSettle = 1;
  worker.start();
  const id = queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  await worker.flush();
  // Stored, but the queue still has the recipient pending.
  assert.equal(store.delivered.length, 1);
  assert.equal(queue.messages.get(id)?.recipients[0]?.status, 'queued');
  assert.equal(logger.lines.filter((l) => l.name === 'delivery.worker.error').length, 1);

  await worker.flush();
  await worker.stop();
  // The outcome is remembered and only recorded on the next pass: no second delivery at all.
  assert.equal(store.calls, 1, 'not delivered again');
  assert.equal(store.delivered.length, 1, 'stored once');
  assert.equal(queue.messages.has(id), false);
});

test('a user deleted after RCPT bounces 550 5.1.1; other recipients are unaffected', async () => {
  const { queue, store, directory, worker, logger } = setup();
  await directory.deleteUser('bob@example.org');
  worker.start();
  const id = queue.add(MESSAGE, envelope('x@example.net', ['bob@example.org', 'alice@example.org']));
  await worker.flush();
  await worker.stop();
  assert.deepEqual(
    queue.settled.filter((s) => s.id === id).map((s) => [s.index, s.outcome.status, s.outcome.reply]),
    [
      [0, 'bounced', '550 5.1.1 No such user here'],
      [1, 'delivered', DELIVERED_REPLY],
    ],
  );
  assert.deepEqual(
    store.delivered.map((d) => d.user),
    ['alice@example.org'],
  );
  assert.equal(logger.lines.find((l) => l.name === 'delivery.failed')?.fields.rcpt, 'bob@example.org');
});

for (const user of ['alice@example.org', 'jürgen@example.org', '日本@example.org']) {
  test(`over quota (${user}): not stored, bounced 552 5.2.2 with a DSN status, logged; others unaffected`, async () => {
    const { queue, store, directory, worker, logger } = setup();
    directory.user(user);
    const size = Buffer.byteLength(`Return-Path: <x@example.net>\r\nDelivered-To: ${user}\r\n${MESSAGE}`);
    // Room for exactly one copy.
    directory.quotas.set(user, { storageBytes: size, messages: null });
    worker.start();
    const first = queue.add(MESSAGE, envelope('x@example.net', [user]));
    await worker.flush();
    const second = queue.add(MESSAGE, envelope('x@example.net', [user, 'bob@example.org']));
    await worker.flush();
    await worker.stop();
    assert.deepEqual(
      store.delivered.map((d) => [d.user, d.sizeBytes]),
      [
        [user, size],
        ['bob@example.org', size - Buffer.byteLength(user) + 'bob@example.org'.length],
      ],
    );
    assert.deepEqual(
      queue.settled.map((s) => [s.id, s.index, s.outcome.status, s.outcome.reply]),
      [
        [first, 0, 'delivered', DELIVERED_REPLY],
        [second, 0, 'bounced', '552 5.2.2 Mailbox full'],
        [second, 1, 'delivered', DELIVERED_REPLY],
      ],
    );
    assert.equal(MAILBOX_FULL_REPLY, '552 5.2.2 Mailbox full');
    const over = logger.lines.filter((l) => l.name === 'delivery.over_quota');
    assert.equal(over.length, 1);
    assert.equal(over[0]!.level, 'warn');
    assert.deepEqual(
      [over[0]!.fields.queueId, over[0]!.fields.rcpt, over[0]!.fields.user, over[0]!.fields.resource],
      [second, user, user, 'storage'],
    );
    assert.equal(over[0]!.fields.usageBytes, size);
    assert.equal(over[0]!.fields.limitBytes, size);
    // Never deferred: the limit does not go away by itself (worker.ts #overQuota).
    assert.equal(logger.lines.filter((l) => l.name === 'delivery.deferred').length, 0);
  });
}

test('a message limit counts messages: the third of two allowed bounces', async () => {
  const { queue, store, directory, worker, logger } = setup();
  directory.user('日本@example.org');
  directory.quotas.set('日本@example.org', { storageBytes: null, messages: 2 });
  worker.start();
  for (let i = 0; i < 3; i++) {
    queue.add(MESSAGE, envelope('', ['日本@example.org']));
    await worker.flush();
  }
  await worker.stop();
  assert.equal(store.delivered.length, 2);
  assert.deepEqual(
    queue.settled.map((s) => s.outcome.reply),
    [DELIVERED_REPLY, DELIVERED_REPLY, MAILBOX_FULL_REPLY],
  );
  assert.equal(logger.lines.find((l) => l.name === 'delivery.over_quota')?.fields.resource, 'messages');
});

test('an alias reaching a full and a roomy user: the roomy one gets it, the recipient is delivered', async () => {
  const { queue, store, directory, worker, logger } = setup();
  directory.user('jürgen@example.org');
  directory.quotas.set('jürgen@example.org', { storageBytes: 10, messages: null });
  directory.routes.set('team@example.org', {
    kind: 'local',
    users: ['jürgen@example.org', 'alice@example.org'],
    forward: [],
  });
  worker.start();
  queue.add(MESSAGE, envelope('x@example.net', ['team@example.org']));
  await worker.flush();
  await worker.stop();
  assert.deepEqual(
    store.delivered.map((d) => d.user),
    ['alice@example.org'],
  );
  assert.deepEqual(
    queue.settled.map((s) => s.outcome.reply),
    [DELIVERED_REPLY],
  );
  assert.deepEqual(
    logger.lines.filter((l) => l.name === 'delivery.over_quota').map((l) => [l.fields.rcpt, l.fields.user]),
    [['team@example.org', 'jürgen@example.org']],
  );
});

test('a user whose quota is unlimited in one resource is checked only in the other', async () => {
  const { queue, store, directory, worker } = setup();
  directory.quotas.set('alice@example.org', { storageBytes: null, messages: 1_000_000 });
  worker.start();
  queue.add(new Uint8Array(200_000).fill(0x61), envelope('', ['alice@example.org']));
  await worker.flush();
  await worker.stop();
  assert.equal(store.delivered.length, 1);
  assert.equal(queue.settled[0]?.outcome.status, 'delivered');
});

test('remote recipients are parked far ahead and logged; alias to users + remote delivers locally once', async () => {
  const { queue, store, directory, clock, worker, logger } = setup();
  directory.routes.set('team@example.org', {
    kind: 'local',
    users: ['alice@example.org', 'bob@example.org'],
    forward: ['carol@elsewhere.example'],
  });
  worker.start();
  const id = queue.add(MESSAGE, envelope('x@example.net', ['dave@remote.example', 'team@example.org']));
  await worker.flush();
  const [remote, team] = queue.messages.get(id)!.recipients;
  for (const r of [remote!, team!]) {
    assert.equal(r.status, 'deferred');
    assert.equal(r.lastReply, REMOTE_PENDING_REPLY);
    assert.equal(r.nextAttemptMs, T0 + REMOTE_PENDING_DELAY_MS);
  }
  assert.ok(REMOTE_PENDING_DELAY_MS >= 3_600_000);
  // One copy per user of the alias, keys distinct.
  assert.deepEqual(
    store.delivered.map((d) => [d.user, d.deliveryKey]),
    [
      ['alice@example.org', `${id}/1/alice@example.org`],
      ['bob@example.org', `${id}/1/bob@example.org`],
    ],
  );
  const pending = logger.lines.filter((l) => l.name === 'delivery.remote.pending');
  assert.deepEqual(
    pending.map((l) => [l.level, l.fields.rcpt, l.fields.remote, l.fields.queueId]),
    [
      ['warn', 'dave@remote.example', ['dave@remote.example'], id],
      ['warn', 'team@example.org', ['carol@elsewhere.example'], id],
    ],
  );
  // The next try comes round: the local users of the alias get no duplicate.
  clock.now = T0 + REMOTE_PENDING_DELAY_MS;
  await worker.flush();
  await worker.stop();
  assert.equal(store.delivered.length, 2);
});

test('the poll timer picks up deferred mail that has come due', async () => {
  const { queue, store, clock, worker } = setup({ pollMs: 10 });
  store.failNext = 1;
  worker.start();
  const id = queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  await until(() => queue.messages.get(id)?.recipients[0]?.status === 'deferred');
  clock.now = T0 + 5 * MIN;
  // No commit, no flush: only the timer can bring it.
  await until(() => !queue.messages.has(id));
  await worker.stop();
  assert.equal(store.delivered.length, 1);
});

test('a failing due() is logged and the timer tries again', async () => {
  const { queue, store, worker, logger } = setup({ pollMs: 10 });
  queue.failDue = 1;
  queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  worker.start();
  await until(() => store.delivered.length === 1);
  await worker.stop();
  assert.equal(logger.lines.find((l) => l.name === 'delivery.worker.error')?.fields.op, 'due');
});

test('concurrency bounds the messages in flight; a large body is read only 64 KiB for the summary', async () => {
  const { queue, store, worker } = setup({ concurrency: 2 });
  let release!: () => void;
  store.gate = new Promise<void>((r) => (release = r));
  const big = new Uint8Array(1_000_000).fill(0x61);
  big.set(new TextEncoder().encode('Subject: big\r\n\r\n'));
  const ids = [big, MESSAGE, MESSAGE, MESSAGE, MESSAGE].map((m) =>
    queue.add(m, envelope('x@example.net', ['alice@example.org'])),
  );
  worker.start();
  await until(() => store.active === 2);
  assert.equal(store.maxActive, 2);
  release();
  await worker.flush();
  await worker.stop();
  assert.equal(store.maxActive, 2);
  assert.equal(store.delivered.length, 5);
  assert.equal(queue.messages.size, 0);
  // The first read of the big message is the summary: it stopped at 64 KiB; the delivery read it all.
  assert.deepEqual(
    queue.reads.filter((r) => r.id === ids[0]).map((r) => r.bytes),
    [65_536, 1_000_000],
  );
  assert.equal(store.delivered.find((d) => d.deliveryKey.startsWith(`${ids[0]}/`))?.summary.subject, 'big');
});

test('a full batch makes the worker look again: more than batchSize messages go in one wake-up', async () => {
  const { queue, store, worker } = setup({ batchSize: 2, concurrency: 1 });
  for (let i = 0; i < 5; i++) queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  // One wake-up (start); no commits after it and the poll period is an hour.
  worker.start();
  await until(() => queue.messages.size === 0);
  await worker.stop();
  assert.equal(store.delivered.length, 5);
});

test('a message that finished while the worker waited for a slot is not sent again from a stale look', async () => {
  const { queue, store, clock, worker, logger } = setup({ concurrency: 1 });
  const later = queue.add(MESSAGE, envelope('x@example.net', ['bob@example.org']));
  queue.messages.get(later)!.recipients[0] = {
    ...queue.messages.get(later)!.recipients[0]!,
    nextAttemptMs: T0 + 1,
  };
  const first = queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  let release!: () => void;
  store.gate = new Promise<void>((r) => (release = r));
  worker.start();
  await until(() => store.active === 1);
  // The second look sees [later, first]; `first` is still in flight, and finishes while `later` waits.
  clock.now = T0 + 1;
  worker.wake();
  await new Promise((r) => setTimeout(r, 10));
  release();
  await worker.flush();
  await worker.stop();
  assert.equal(queue.messages.size, 0);
  assert.equal(store.calls, 2);
  assert.deepEqual(
    logger.lines.filter((l) => l.level === 'error'),
    [],
  );
  assert.deepEqual(
    queue.settled.map((x) => x.id),
    [first, later],
  );
});

test('stop() waits for deliveries in flight, then nothing more is delivered', async () => {
  const { queue, store, worker, logger } = setup();
  let release!: () => void;
  store.gate = new Promise<void>((r) => (release = r));
  worker.start();
  const id = queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org', 'bob@example.org']));
  await until(() => store.active === 1);
  let stopped = false;
  const stopping = worker.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(stopped, false, 'stop() must wait for the delivery in flight');
  release();
  await stopping;
  // The delivery in flight finished and was settled; the next recipient was left for the next start.
  assert.deepEqual(
    queue.messages.get(id)?.recipients.map((r) => r.status),
    ['delivered', 'queued'],
  );
  queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(store.calls, 1);
  assert.equal(logger.lines.at(-1)?.name, 'delivery.worker.stopped');
  assert.equal(queue.listeners.size, 0);
});

test('stop() is bounded: a stuck delivery is abandoned after stopTimeoutMs and logged', async () => {
  const { queue, store, worker, logger } = setup({ stopTimeoutMs: 30 });
  store.gate = new Promise<void>(() => {});
  worker.start();
  const id = queue.add(MESSAGE, envelope('x@example.net', ['alice@example.org']));
  await until(() => store.active === 1);
  const started = Date.now();
  await worker.stop();
  assert.ok(Date.now() - started < 1000);
  const timeout = logger.lines.find((l) => l.name === 'delivery.worker.stop_timeout');
  assert.deepEqual(timeout?.fields.inFlight, [id]);
  // Nothing was settled: the recipient is still in the queue for the next start.
  assert.equal(queue.messages.get(id)?.recipients[0]?.status, 'queued');
});

test('start twice is an error; stop before start is harmless', async () => {
  const { worker } = setup();
  await worker.stop();
  assert.throws(() => worker.start());
  const other = setup().worker;
  other.start();
  assert.throws(() => other.start());
  await other.stop();
  await other.stop();
});
