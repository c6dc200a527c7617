// copySqliteToPostgres against a real SQLite installation built with the real stores and a fresh
// PostgreSQL schema: everything arrives (credentials still verify, UIDs and UIDVALIDITY kept, the queue's
// ids, states and held flag kept), a second run copies nothing and still verifies, an interrupted run
// resumes without duplicates. Skipped where no PostgreSQL answers.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Clock } from '../core/ports.ts';
import type { PgPool } from '../db/postgres.ts';
import { openPool } from '../db/postgres.ts';
import { hashPassword, verifyPassword } from '../directory/password.ts';
import type { PostgresDirectoryConfig } from '../directory/postgres-directory.ts';
import { PostgresDirectory } from '../directory/postgres-directory.ts';
import { SqliteDirectory } from '../directory/sqlite-directory.ts';
import { testEnvelope } from '../queue/queue.contract.ts';
import { PostgresQueue } from '../queue/postgres-queue.ts';
import { SqliteQueue } from '../queue/sqlite-queue.ts';
import { PostgresMailboxStore } from '../store/postgres-mailbox-store.ts';
import { SqliteMailboxStore } from '../store/sqlite-mailbox-store.ts';
import { createTestSchema, postgresSkip } from '../../test/support/postgres.ts';
import type { TestSchema } from '../../test/support/postgres.ts';
import type { CopyKind, CopyOptions } from './sqlite-to-postgres.ts';
import { copySqliteToPostgres } from './sqlite-to-postgres.ts';

const skip = await postgresSkip();
const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const clock: Clock = { nowMs: () => NOW_MS };
const DIRECTORY: PostgresDirectoryConfig = { localDomains: ['example.org', '例え.jp'] };
const FAST = { ln: 10, r: 8, p: 1 };
const SCRAM = 'SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5:c2VydmVya2V5';
const BIG = randomBytes(2 * 1024 * 1024);

function once(b: Uint8Array): AsyncIterable<Uint8Array> {
  return Readable.from([b]);
}

function message(subject: string, body = 'hello\r\n'): Buffer {
  return Buffer.from(`From: a@example.net\r\nSubject: ${subject}\r\n\r\n${body}`);
}

async function readAll(content: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of content) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** A data_dir with users, aliases, folders, messages (one of 2 MiB, a UID gap) and two queued messages. */
async function buildInstallation(dataDir: string): Promise<{ queued: string; held: string }> {
  const dir = await SqliteDirectory.open({ path: join(dataDir, 'directory.sqlite'), ...DIRECTORY });
  try {
    await dir.addUser('alice@example.org', await hashPassword('alice-pw', FAST), SCRAM);
    await dir.addUser('jürgen@example.org', await hashPassword('jürgen-pw', FAST));
    await dir.addUser('日本@例え.jp', await hashPassword('日本-pw', FAST));
    await dir.addAlias('info@example.org', 'alice@example.org');
    await dir.addAlias('info@example.org', 'jürgen@example.org');
    await dir.addAlias('@例え.jp', '日本@例え.jp');
    await dir.addCertificate('alice@example.org', 'ab'.repeat(32));
    await dir.addSendAs('alice@example.org', '@example.org');
    await dir.setUserPolicy('jürgen@example.org', { senderCheck: false, maxMessagesPerHour: 50 });
    await dir.setQuota('alice@example.org', { storageBytes: 10_000_000, messages: 0 });
  } finally {
    await dir.close();
  }
  const store = await SqliteMailboxStore.open({ dir: join(dataDir, 'mail'), clock });
  try {
    for (const user of ['alice@example.org', 'jürgen@example.org', '日本@例え.jp']) {
      await store.ensureDefaults(user);
      for (let i = 1; i <= 4; i++)
        await store.append(user, 'INBOX', {
          flags: i === 1 ? ['\\Seen', '$Important'] : [],
          internalDateMs: NOW_MS - i * 60_000,
          content: once(message(`${user} ${i}`)),
        });
    }
    // A gap: UIDs 1, 3, 4 remain, UIDNEXT stays 5.
    await store.expunge('alice@example.org', 'INBOX', [2]);
    await store.createFolder('alice@example.org', 'Projekte/Übersicht');
    await store.append('alice@example.org', 'Projekte/Übersicht', {
      flags: ['\\Flagged'],
      internalDateMs: NOW_MS - 3_600_000,
      content: once(Buffer.concat([message('big'), BIG])),
    });
    await store.unsubscribe('alice@example.org', 'Junk');
  } finally {
    await store.close();
  }
  const queue = await SqliteQueue.open({ dir: join(dataDir, 'queue'), clock });
  try {
    const w1 = queue.begin();
    await w1.write(message('queued'));
    await w1.commit(testEnvelope(['x@example.net', 'y@example.net']));
    await queue.settle(w1.id, 0, {
      status: 'deferred',
      reply: '451 4.4.1 try later',
      nextAttemptMs: NOW_MS + 600_000,
    });
    await queue.markDelayWarned(w1.id, 0);
    const w2 = queue.begin();
    await w2.write(message('held', 'x'.repeat(300_000)));
    await w2.commit(testEnvelope(['z@例え.jp']));
    await queue.hold(w2.id);
    return { queued: w1.id, held: w2.id };
  } finally {
    await queue.close();
  }
}

describe('copySqliteToPostgres', { skip: skip === false ? undefined : skip }, () => {
  let schema: TestSchema;
  let dataDir: string;
  let ids: { queued: string; held: string };
  let pool: PgPool;

  const options = (extra: Partial<CopyOptions> = {}): CopyOptions => ({
    dataDir,
    url: schema.url,
    schema: schema.schema,
    directory: DIRECTORY,
    clock,
    ...extra,
  });

  before(async () => {
    schema = await createTestSchema('copy');
    pool = openPool({ url: schema.url, schema: schema.schema, max: 2 });
    dataDir = await mkdtemp(join(tmpdir(), 'tern-copy-test-'));
    ids = await buildInstallation(dataDir);
  });

  after(async () => {
    await pool.end();
    await schema.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('stops after an injected failure, then resumes without duplicates and verifies', async () => {
    let messages = 0;
    await assert.rejects(
      copySqliteToPostgres(
        options({
          onItem: (kind: CopyKind, copied: boolean) => {
            if (kind === 'messages' && copied && ++messages === 5) throw new Error('injected');
          },
        }),
      ),
      /injected/,
    );
    const copiedBefore = await pool.query('SELECT count(*)::int AS n FROM mail_messages');
    assert.equal((copiedBefore.rows[0] as { n: number }).n, 5);

    const report = await copySqliteToPostgres(options());
    assert.deepEqual(report.mismatches, []);
    assert.equal(report.ok, true);
    // 3 users x 4 messages, less the expunged one, plus the big one: 12; 5 were there.
    assert.equal(report.copied.messages, 7);
    assert.equal(report.skipped.messages, 5);
    // The directory went over whole before the failure: found, not copied again.
    assert.equal(report.skipped.users, 3);
    assert.equal(report.skipped.aliases, 3);
    assert.equal(report.copied.queued, 2);
    const count = (kind: string): { source: number; target: number } | undefined =>
      report.counts.find((c) => c.kind === kind);
    assert.deepEqual(count('messages:alice@example.org'), {
      kind: 'messages:alice@example.org',
      source: 4,
      target: 4,
    });
    assert.deepEqual(count('recipients'), { kind: 'recipients', source: 3, target: 3 });
  });

  it('a second run copies nothing new and still verifies', async () => {
    const report = await copySqliteToPostgres(options());
    assert.equal(report.ok, true);
    assert.deepEqual(
      Object.values(report.copied).reduce((a, b) => a + b, 0),
      0,
      JSON.stringify(report.copied),
    );
    assert.equal(report.skipped.messages, 12);
    assert.equal(report.skipped.queued, 2);
  });

  it('the directory arrives with credentials that still verify', async () => {
    const dir = await PostgresDirectory.open({ pool, config: DIRECTORY, listen: false });
    try {
      assert.deepEqual((await dir.listUsers()).map((u) => u.address).sort(), [
        'alice@example.org',
        'jürgen@example.org',
        '日本@例え.jp',
      ]);
      for (const [user, pw] of [
        ['alice@example.org', 'alice-pw'],
        ['jürgen@example.org', 'jürgen-pw'],
        ['日本@例え.jp', '日本-pw'],
      ] as const) {
        const hash = await dir.getPasswordHash(user);
        assert.ok(hash !== null && (await verifyPassword(pw, hash)), user);
      }
      assert.equal((await dir.getCredentials('alice@example.org'))?.scram, SCRAM);
      assert.deepEqual(await dir.resolve('info@example.org'), {
        kind: 'local',
        users: ['alice@example.org', 'jürgen@example.org'],
        forward: [],
      });
      assert.deepEqual(await dir.resolve('wer@例え.jp'), {
        kind: 'local',
        users: ['日本@例え.jp'],
        forward: [],
      });
      assert.equal(await dir.findUserByCertificate('AB'.repeat(32)), 'alice@example.org');
      assert.equal(await dir.ownsAddress('alice@example.org', 'anyone@example.org'), true);
      assert.deepEqual(await dir.getUserPolicy('jürgen@example.org'), {
        senderCheck: false,
        maxMessagesPerHour: 50,
        maxRecipientsPerHour: null,
      });
      assert.deepEqual(await dir.getQuota('alice@example.org'), { storageBytes: 10_000_000, messages: null });
    } finally {
      await dir.close();
    }
  });

  it('mailboxes keep UIDVALIDITY, UIDs, flags, dates, special use, subscriptions and bytes', async () => {
    const src = await SqliteMailboxStore.open({ dir: join(dataDir, 'mail'), clock });
    const dst = await PostgresMailboxStore.open({ pool, clock, listen: false, reclaimIntervalMs: 0 });
    try {
      const user = 'alice@example.org';
      const a = await src.folderStatus(user, 'INBOX');
      const b = await dst.folderStatus(user, 'INBOX');
      assert.equal(b.uidValidity, a.uidValidity);
      assert.equal(b.uidNext, 5);
      assert.ok(b.highestModseq >= a.highestModseq);
      const metas = await dst.messages(user, 'INBOX', 'all');
      assert.deepEqual(
        metas.map((m) => m.uid),
        [1, 3, 4],
      );
      assert.deepEqual([...metas[0]!.flags].sort(), ['$Important', '\\Seen']);
      assert.equal(metas[0]!.internalDateMs, NOW_MS - 60_000);
      const folders = await dst.folders(user);
      assert.equal(folders.find((f) => f.name === 'Sent')?.specialUse, '\\Sent');
      assert.ok(folders.some((f) => f.name === 'Projekte/Übersicht'));
      const subs = await dst.subscriptions(user);
      assert.ok(subs.includes('INBOX') && !subs.includes('Junk'));
      const big = await dst.openMessage(user, 'Projekte/Übersicht', 1);
      assert.ok(big !== null);
      const bytes = await readAll(big.content);
      assert.equal(bytes.length, message('big').length + BIG.length);
      assert.equal(
        createHash('sha256')
          .update(bytes.subarray(bytes.length - BIG.length))
          .digest('hex'),
        createHash('sha256').update(BIG).digest('hex'),
      );
      const r = await pool.query('SELECT count(*)::int AS n FROM mail_user_defaults');
      assert.equal((r.rows[0] as { n: number }).n, 3);
      // A folder made now gets a UIDVALIDITY above every copied one.
      await dst.createFolder('日本@例え.jp', '新しい');
      assert.ok((await dst.folderStatus('日本@例え.jp', '新しい')).uidValidity > a.uidValidity);
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('the queue keeps ids, envelopes, recipient states and the hold', async () => {
    const spool = await mkdtemp(join(tmpdir(), 'tern-copy-spool-'));
    const q = await PostgresQueue.open({ pool, spoolDir: spool, clock, nodeId: 'test' });
    try {
      const queued = await q.get(ids.queued);
      assert.ok(queued !== null);
      assert.equal(queued.held, false);
      assert.deepEqual(
        queued.recipients.map((r) => [r.address, r.status, r.attempts, r.nextAttemptMs, r.delayWarned]),
        [
          ['x@example.net', 'deferred', 1, NOW_MS + 600_000, true],
          ['y@example.net', 'queued', 0, queued.recipients[1]!.nextAttemptMs, false],
        ],
      );
      assert.equal(queued.envelope.envid, 'env-1');
      const held = await q.get(ids.held);
      assert.equal(held?.held, true);
      assert.equal(held.recipients[0]?.address, 'z@例え.jp');
      assert.deepEqual(await readAll(q.readBody(ids.held)), message('held', 'x'.repeat(300_000)));
      // Held mail is not due; the deferred recipient is due at its time.
      assert.deepEqual(
        (await q.due(NOW_MS + 600_000, 10)).map((m) => m.id),
        [ids.queued],
      );
    } finally {
      await q.close();
      await rm(spool, { recursive: true, force: true });
    }
  });

  it('reports a difference made in the target and fails verification', async () => {
    await pool.query(`UPDATE mail_messages SET flags = ARRAY['\\Deleted'] WHERE uid = 3`);
    const report = await copySqliteToPostgres(options());
    assert.equal(report.ok, false);
    assert.ok(report.mismatches.some((m) => m.includes('flags')));
  });
});
