// A mailbox delivery that failed on a full disk is tried again as soon as the free-space reserve
// (limits.min_free_bytes) is met again, not at its next retry on the schedule (minutes to hours later).
// The mailbox store (data_dir/mail) sits on a tmpfs of its own, 8 MiB, mounted for the test (tests run as
// root; skipped with the reason where mount(8) is not permitted), so the queue keeps accepting while the
// mailboxes are full: the message is queued, its delivery meets ENOSPC, and the retry schedule is made
// long (10 minutes) so that only an early retry can deliver it within the test.
// Deliberately NOT here: a full queue filesystem (disk-full.test.ts).

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type DnsServer } from '../support/dns-server.ts';
import { startOutboundTern, type OutboundTern } from '../e2e/outbound-helpers.ts';
import { bodyOf, fillDisk, freeBytes, mountTmpfs, tmpfsProblem, unmount } from './support.ts';

const MiB = 1024 * 1024;

const skip = (await tmpfsProblem()) ?? false;
if (skip) console.log(`# skipped: ${skip}`);

for (const user of ['alice@example.test', 'jürgen@example.test']) {
  describe(`a mailbox delivery for ${user} deferred on a full disk`, { skip }, () => {
    let dns: DnsServer;
    let tern: OutboundTern;
    let mailDir = '';
    let mounted = false;
    let filler: string | null = null;

    before(async () => {
      dns = await startDnsServer({ zones: {} });
      tern = await startOutboundTern({
        dns: dns.endpoint,
        // Ten minutes to the first retry: a delivery within seconds can only be the early retry.
        queue: { retry_min_seconds: 600, retry_max_seconds: 3600 },
        users: [user],
      });
      // The mailbox store moves onto its own small filesystem: stop, mount over data_dir/mail, start.
      await tern.kill('SIGTERM');
      mailDir = join(tern.dataDir, 'mail');
      const problem = await mountTmpfs(mailDir, 8 * MiB);
      if (problem !== null) throw new Error(problem);
      mounted = true;
      await tern.restart();
    });

    after(async () => {
      if (filler !== null) rmSync(filler, { force: true });
      // Unmount before stop() removes the folder the mount sits in.
      if (tern?.alive()) await tern.kill('SIGTERM');
      if (mounted) await unmount(mailDir);
      await tern?.stop();
      await dns?.close();
    });

    test('is retried within seconds of the reserve being met again, not at its next scheduled retry', async () => {
      filler = fillDisk(mailDir);
      assert.equal(freeBytes(mailDir), 0);
      // Larger than what SQLite's WAL may still hold in pages it already has: the store must grow.
      const content =
        `From: <sender@remote.test>\r\nTo: <${user}>\r\nSubject: after-full\r\n` +
        `Message-ID: <after-full@remote.test>\r\n\r\n${bodyOf(300_000, 'after-full')}`;
      const r = await tern.send({
        action: 'sendmail',
        from: 'sender@remote.test',
        to: [user],
        raw: Buffer.from(content, 'utf8'),
        mail_options: /^[\x00-\x7f]*$/.test(user) ? [] : ['SMTPUTF8'],
      });
      assert.ok(r.ok, JSON.stringify(r));
      const deferred = await tern.waitForLog(
        'the delivery deferred on the full disk',
        (l) =>
          l['event'] === 'delivery.deferred' &&
          typeof l['reply'] === 'string' &&
          l['reply'].startsWith('452 4.3.1'),
      );
      assert.ok(Number(deferred['nextAttempt']) - Date.now() > 5 * 60_000, JSON.stringify(deferred));

      rmSync(filler);
      filler = null;
      const freed = Date.now();
      const stored = await tern.waitForMessages(user, 1, 8_000);
      assert.deepEqual(
        stored.map((m) => m.subject),
        ['after-full'],
      );
      console.log(`# delivered ${Date.now() - freed} ms after the filler was removed`);
      await tern.waitForEmptyQueue(5_000);
    });
  });
}
