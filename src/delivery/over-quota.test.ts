// Mailbox quotas end to end below the SMTP session: the real directory (limits, the config's default),
// the real queue and mailbox store (usage), the delivery worker, and the DSN it queues. The worker's
// unit tests (worker.test.ts) cover the outcomes with fakes; this proves the pieces agree.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultConfig, type Config } from '../config/config.ts';
import type { Envelope } from '../core/envelope.ts';
import type { LogFields, Logger } from '../core/ports.ts';
import { systemClock } from '../core/ports.ts';
import { configQuota } from '../directory/quota.ts';
import { SqliteDirectory } from '../directory/sqlite-directory.ts';
import { SqliteQueue } from '../queue/sqlite-queue.ts';
import { SqliteMailboxStore } from '../store/sqlite-mailbox-store.ts';
import { DeliveryWorker, MAILBOX_FULL_REPLY } from './worker.ts';

interface LogLine {
  readonly name: string;
  readonly fields: LogFields;
}

function recordingLogger(lines: LogLine[], bound: LogFields = {}): Logger {
  const at = (name: string, fields: LogFields = {}): void =>
    void lines.push({ name, fields: { ...bound, ...fields } });
  return {
    event: at,
    warn: at,
    error: at,
    debug: at,
    child: (fields) => recordingLogger(lines, { ...bound, ...fields }),
  };
}

function envelope(sender: string, recipients: readonly string[]): Envelope {
  return {
    sender,
    body: '8BITMIME',
    smtputf8: true,
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
    receivedAtMs: Date.now(),
  };
}

function message(subject: string, body: string): Uint8Array {
  return Buffer.from(
    `From: <sender@example.org>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.length}.${body.length}@example.org>\r\n\r\n${body}\r\n`,
    'utf8',
  );
}

describe('mailbox quota at local delivery (real directory, queue, store and worker)', () => {
  let dir: string;
  let directory: SqliteDirectory;
  let queue: SqliteQueue;
  let store: SqliteMailboxStore;
  let worker: DeliveryWorker;
  const lines: LogLine[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tern-over-quota-'));
    const base = defaultConfig();
    // The config's default: 3 messages each; users may have their own.
    const config: Config = {
      ...base,
      localDomains: ['example.org'],
      limits: { ...base.limits, mailboxQuotaMessages: 3 },
    };
    directory = await SqliteDirectory.open({
      path: join(dir, 'directory.sqlite'),
      localDomains: config.localDomains,
      defaultQuota: configQuota(config.limits),
    });
    queue = await SqliteQueue.open({ dir: join(dir, 'queue'), clock: systemClock });
    store = await SqliteMailboxStore.open({ dir: join(dir, 'mail'), clock: systemClock });
    worker = new DeliveryWorker(
      { queue, store, directory, clock: systemClock, logger: recordingLogger(lines), config },
      { pollMs: 3_600_000 },
    );
    for (const user of [
      'sender@example.org',
      'alice@example.org',
      'jürgen@example.org',
      '日本@example.org',
    ]) {
      await directory.addUser(user, null);
    }
    // The sender collects the DSNs: unlimited, whatever the default.
    await directory.setQuota('sender@example.org', { messages: null });
    worker.start();
  });

  after(async () => {
    await worker.stop();
    await store.close();
    await queue.close();
    await directory.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function send(sender: string, rcpts: readonly string[], content: Uint8Array): Promise<string> {
    const writer = queue.begin();
    await writer.write(content);
    await writer.commit(envelope(sender, rcpts));
    await worker.flush();
    return writer.id;
  }

  /** The sender's INBOX as text, message by message (DSNs land there: the sender is local). */
  async function inboxOf(user: string): Promise<string[]> {
    const out: string[] = [];
    for (const m of await store.list(user, 'INBOX')) {
      const chunks: Uint8Array[] = [];
      for await (const c of store.read(user, m.id)!) chunks.push(c);
      out.push(Buffer.concat(chunks).toString('utf8'));
    }
    return out;
  }

  for (const user of ['alice@example.org', 'jürgen@example.org', '日本@example.org']) {
    test(`${user}: the config's message limit; the fourth message is refused with a 5.2.2 DSN`, async () => {
      const dsnsBefore = (await inboxOf('sender@example.org')).length;
      for (let i = 1; i <= 3; i++) await send('sender@example.org', [user], message(`Grüße ${i}`, '日本語'));
      assert.equal((await store.quota(user)).messages, 3);
      const id = await send('sender@example.org', [user], message('Grüße 4', '日本語'));
      await worker.flush(); // the DSN, queued by the first pass, delivered to the (local) sender
      assert.equal((await store.quota(user)).messages, 3, 'the fourth is not stored');
      const over = lines.filter((l) => l.name === 'delivery.over_quota' && l.fields.queueId === id);
      assert.deepEqual(
        over.map((l) => [l.fields.user, l.fields.resource, l.fields.usageMessages, l.fields.limitMessages]),
        [[user, 'messages', 3, 3]],
      );
      const dsns = (await inboxOf('sender@example.org')).slice(dsnsBefore);
      assert.equal(dsns.length, 1);
      const dsn = dsns[0]!;
      assert.match(dsn, /Content-Type: multipart\/report; report-type=delivery-status/i);
      assert.match(dsn, /Action: failed/);
      assert.match(dsn, /Status: 5\.2\.2/);
      assert.ok(dsn.includes(MAILBOX_FULL_REPLY), 'the diagnostic names the reason');
      assert.ok(dsn.includes(user), 'the DSN names the recipient');
      // Gone from the queue: bounced, not deferred.
      assert.equal(await queue.get(id), null);
    });
  }

  test("a user's own storage limit overrides the default, and lifting it lets mail in again", async () => {
    await directory.addUser('big@example.org', null);
    const small = message('small', 'x'.repeat(100));
    await directory.setQuota('big@example.org', { storageBytes: 2000, messages: null });
    await send('sender@example.org', ['big@example.org'], small);
    const large = message('large', 'y'.repeat(3000));
    const refused = await send('sender@example.org', ['big@example.org'], large);
    assert.equal(await queue.get(refused), null);
    assert.equal((await store.quota('big@example.org')).messages, 1);
    assert.equal(
      lines.find((l) => l.name === 'delivery.over_quota' && l.fields.queueId === refused)?.fields.resource,
      'storage',
    );
    await directory.setQuota('big@example.org', { storageBytes: null });
    await send('sender@example.org', ['big@example.org'], large);
    assert.equal((await store.quota('big@example.org')).messages, 2);
  });
});
