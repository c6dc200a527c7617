// `tern export` and `tern import` as programs (issue 18): a server gets users (one UTF-8), an alias, a
// delivered message and a message waiting in the queue; it is stopped and exported; a second
// installation imports the archive, and the CLI there shows the same users, alias, mailbox (same bytes)
// and queue. An export while the server runs, an import over data without --force, and a damaged archive
// are refused, leaving everything as it was.

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { startTern, type Tern } from './harness.ts';
import { message, transact } from './authchecks-helpers.ts';

describe('tern export / tern import', () => {
  const started: Tern[] = [];
  after(async () => {
    for (const t of started) await t.stop().catch(() => undefined);
  });

  test('a whole installation moves: users, alias, mailbox bytes, queue; refusals change nothing', async () => {
    const a = await startTern({
      users: ['bob@example.test', '日本@example.test'],
      aliases: [['team@example.test', 'bob@example.test']],
      // Remote mail waits in the queue: relayed (loopback may relay here) to a smart host that is not there.
      smtp: { trusted_networks: ['127.0.0.0/8'] },
      tables: { 'outbound.relay': { host: '127.0.0.1', port: 1 } },
    });
    started.push(a);
    const send = (to: string, subject: string) =>
      transact({
        port: a.ports.smtp,
        helo: 'client.example',
        from: 'sender@example.test',
        to,
        ...(/[^\x00-\x7f]/.test(to) ? { mailParams: 'SMTPUTF8' } : {}),
        message: message({ from: 'sender@example.test', to: 'x@example.test', subject }),
      });
    assert.equal((await send('日本@example.test', 'kept')).data?.code, 250);
    const [stored] = await a.waitForMessages('日本@example.test', 1);
    const original = await a.mailboxCat('日本@example.test', stored!.id);

    const archive = join(a.dir, 'backup.tar.gz');
    const running = await a.tern(['export', archive]);
    assert.equal(running.code, 1, 'refused while tern serve holds the data directory');
    assert.match(running.stderr, /in use by another tern serve.*needs it stopped/);

    // A message for a remote domain, waiting in the queue.
    assert.equal((await send('someone@remote.example', 'waiting')).data?.code, 250);
    const queuedList = async (t: Tern) =>
      JSON.parse((await t.tern(['queue', 'list', '--json'])).stdout) as unknown[];
    await a.waitForLog('the first attempt', (l) => l['event'] === 'delivery.deferred');
    // Stopped, its folder kept (stop() would remove it).
    await a.kill('SIGTERM');
    const exported = await a.tern(['export', archive, '--json']);
    assert.equal(exported.code, 0, exported.stderr);
    const summary = JSON.parse(exported.stdout) as {
      files: { path: string; sha256: string }[];
      totalBytes: number;
    };
    assert.ok(summary.files.some((f) => f.path === 'directory.sqlite'));
    assert.ok(summary.files.some((f) => f.path === 'mail/mail.db'));
    assert.ok(!summary.files.some((f) => /-wal$|tern\.lock$/.test(f.path)));

    const b = await startTern({ users: ['someone-else@example.test'] });
    started.push(b);
    await b.kill('SIGTERM');
    const notEmpty = await b.tern(['import', archive]);
    assert.equal(notEmpty.code, 1);
    assert.match(notEmpty.stderr, /is not empty .*--force/);

    // A damaged archive: one octet of a file changed (the gzip made valid again) is caught by its checksum.
    const raw = gunzipSync(await readFile(archive));
    const at = raw.indexOf(Buffer.from('SQLite format 3'));
    raw[at + 200] = raw[at + 200]! ^ 0xff;
    const damaged = join(b.dir, 'damaged.tar.gz');
    await writeFile(damaged, gzipSync(raw));
    const refused = await b.tern(['import', damaged, '--force']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /does not match its checksum/);
    const stillB = await b.tern(['user', 'list']);
    assert.match(stillB.stdout, /someone-else@example\.test/);

    const imported = await b.tern(['import', archive, '--force', '--json']);
    assert.equal(imported.code, 0, imported.stderr);
    const users = (await b.tern(['user', 'list'])).stdout;
    assert.match(users, /bob@example\.test/);
    assert.match(users, /日本@example\.test/);
    assert.doesNotMatch(users, /someone-else/);
    assert.match((await b.tern(['alias', 'list'])).stdout, /team@example\.test/);
    const [moved] = await b.mailboxList('日本@example.test');
    assert.ok(moved !== undefined);
    assert.deepEqual(await b.mailboxCat('日本@example.test', moved.id), original);
    const queue = await queuedList(b);
    assert.equal(queue.length, 1);
    assert.deepEqual(queue, await queuedList(a));
  });
});
