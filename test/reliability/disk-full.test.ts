// A full disk and an unusable data directory, with a real filesystem: `tern serve` keeps its data_dir on
// a tmpfs of 8 MiB mounted for the test (tests run as root; skipped with the reason where mount(8) is not
// permitted). The disk is filled with a filler file, at rest and while clients are sending:
//   - new mail gets 452 4.3.1 (RFC 3463 "mail system full"): not a 451, not a dropped connection, not a
//     crash, and nothing of a refused message is kept;
//   - nothing accepted before is damaged: stored messages read back byte for byte, queued ones stay
//     queued (never bounced for the disk's sake) and are delivered once space returns, exactly once;
//   - when the filler goes, service resumes by itself, without a restart;
//   - the databases pass SQLite's integrity check at the end.
// And at start: a data directory that cannot be created, is read-only, or has a file in its path stops
// `tern serve` with exit status 1 and one line naming the path and the reason.
// Deliberately NOT here: full disks simulated in process (src/db/storage-fs.ts faultyStorageFs, used by
// the queue and store contract suites), crashes (test/e2e/durability.test.ts).

import assert from 'node:assert/strict';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDnsServer, type DnsServer } from '../support/dns-server.ts';
import { CLI, runProcess, ternConfigToml, waitFor } from '../e2e/harness.ts';
import {
  closedPort,
  startOutboundTern,
  startReceiver,
  type OutboundTern,
  type Receiver,
} from '../e2e/outbound-helpers.ts';
import {
  bodyOf,
  fillDisk,
  freeBytes,
  mountTmpfs,
  remount,
  sendMessage,
  tmpfsProblem,
  unmount,
  type SendResult,
} from './support.ts';

const MiB = 1024 * 1024;
const ALICE = 'alice@example.test';
const REMOTE = 'bob@remote.test';

const skip = (await tmpfsProblem()) ?? false;
if (skip) console.log(`# skipped: ${skip}`);

/** Retry now (`tern queue flush`, Postfix's postqueue -f) until `done` holds. */
async function flushUntil(
  tern: OutboundTern,
  what: string,
  done: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  await waitFor(
    what,
    async () => {
      if (await done()) return true;
      await tern.tern(['queue', 'flush']);
      await sleep(500);
      return undefined;
    },
    timeoutMs,
    0,
  );
}

function subjectsOf(messages: readonly { readonly data: Buffer }[]): string[] {
  return messages.map((m) => /^Subject: (.*)$/m.exec(m.data.toString('latin1'))?.[1]?.trim() ?? '?');
}

/** A message with a unique subject and body. */
function message(tag: string, bodyBytes: number, from = 'sender@remote.test'): string {
  return (
    `From: <${from}>\r\nTo: <${ALICE}>\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@remote.test>\r\n\r\n` +
    bodyOf(bodyBytes, tag)
  );
}

/** Tern appends nothing after the content: the stored message ends with exactly what was sent. */
function endsWithContent(stored: Buffer, sent: string): boolean {
  return stored.subarray(stored.length - Buffer.byteLength(sent)).equals(Buffer.from(sent));
}

describe('a full disk (data_dir on an 8 MiB tmpfs)', { skip }, () => {
  let mnt: string;
  let dns: DnsServer;
  let tern: OutboundTern;
  let relayPort: number;
  let receiver: Receiver | null = null;
  let filler: string | null = null;
  /** What got 250 before the disk filled: stored id → the content sent. */
  const deliveredBefore = new Map<string, string>();
  /** Subjects of messages accepted in the filling-under-load test, with their content. */
  const acceptedUnderLoad = new Map<string, string>();
  const acceptedRemote = new Map<string, string>();
  const refusedUnderLoad = new Set<string>();
  let baselineStored = 0;
  let baselineRemote = 0;
  let freedBytes = 0;

  before(async () => {
    mnt = mkdtempSync(join(tmpdir(), 'tern-tmpfs-'));
    const problem = await mountTmpfs(mnt, 8 * MiB);
    if (problem !== null) throw new Error(problem);
    dns = await startDnsServer({ zones: {} });
    dns.setZone('remote.test', {
      '@': [{ type: 'MX', preference: 10, exchange: 'mx.remote.test' }],
      mx: [{ type: 'A', address: '127.0.0.1' }],
    });
    // Nothing listens there yet: remote mail is deferred (connection refused) until a receiver starts.
    relayPort = await closedPort();
    // The harness makes its folder with mkdtemp(os.tmpdir()): pointing TMPDIR at the tmpfs puts the
    // config and the whole data_dir on it.
    const tmp = process.env['TMPDIR'];
    process.env['TMPDIR'] = mnt;
    try {
      tern = await startOutboundTern({
        dns: dns.endpoint,
        outbound: { port: relayPort, connection_idle_seconds: 0 },
        queue: { retry_min_seconds: 1, retry_max_seconds: 2 },
        users: [ALICE],
      });
    } finally {
      if (tmp === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = tmp;
    }
  });

  after(async () => {
    if (filler !== null) rmSync(filler, { force: true });
    if (process.env['TERN_RELIABILITY_LOGS'])
      writeFileSync(process.env['TERN_RELIABILITY_LOGS'], tern.outputText());
    await tern?.stop();
    await receiver?.close();
    await dns?.close();
    if (mnt) {
      await unmount(mnt);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  test('before: mail for a local user is delivered, mail for a remote domain waits in the queue', async () => {
    for (let i = 0; i < 5; i++) {
      const content = message(`before-${i}`, 2_000 + i * 20_000);
      const r = await sendMessage(tern.ports.smtp, { from: 'sender@remote.test', to: [ALICE] }, content);
      assert.equal(r.code, 250, r.text);
      const stored = await tern.waitForMessages(ALICE, i + 1);
      const m = stored.find((s) => s.subject === `before-${i}`);
      assert.ok(m, `before-${i} stored`);
      deliveredBefore.set(m.id, content);
    }
    for (let i = 0; i < 3; i++) {
      const r = await sendMessage(
        tern.ports.smtp,
        { from: ALICE, to: [REMOTE] },
        message(`remote-${i}`, 1_000 + i * 50_000, ALICE),
      );
      assert.equal(r.code, 250, r.text);
    }
    await waitFor('three deferred remote messages', async () => {
      const q = await tern.queueList();
      const deferred = q.filter((m) => m.recipients.every((r) => r.status === 'deferred' && r.attempts >= 1));
      return deferred.length === 3 ? true : undefined;
    });
  });

  test('a full disk: new mail gets 452 4.3.1 at every size, over DATA and BDAT; the server lives', async () => {
    filler = fillDisk(mnt);
    assert.equal(freeBytes(mnt), 0);
    const results: SendResult[] = [];
    for (const [i, size] of [100, 20_000, 300_000].entries()) {
      for (const bdat of [false, true]) {
        const content = message(`refused-${i}-${bdat ? 'bdat' : 'data'}`, size);
        results.push(
          await sendMessage(tern.ports.smtp, { from: 'sender@remote.test', to: [ALICE] }, content, { bdat }),
        );
      }
    }
    for (const r of results) {
      assert.deepEqual([r.code, r.enhanced], [452, '4.3.1'], `${r.stage}: ${r.text}`);
    }
    console.log(`# full disk: ${results.map((r) => `${r.code} ${r.enhanced} at ${r.stage}`).join('; ')}`);
    assert.ok(tern.alive(), 'tern serve died on a full disk');
  });

  test('while full: what was stored reads back byte for byte, the queue is listed, nothing bounced', async () => {
    for (const [id, content] of deliveredBefore) {
      assert.ok(endsWithContent(await tern.storedMessage(ALICE, id), content), `message ${id} damaged`);
    }
    const listed = await tern.tern(['mailbox', 'list', ALICE, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal((JSON.parse(listed.stdout) as unknown[]).length, deliveredBefore.size);
    const q = await tern.queueList();
    assert.equal(q.length, 3);
    assert.ok(
      q.every((m) => m.recipients.every((r) => r.status === 'deferred')),
      JSON.stringify(q),
    );
    const spool = await readdir(join(tern.dataDir, 'queue', 'spool')).catch(() => [] as string[]);
    // Refused messages leave no spool file; the one large queued remote message may have one.
    assert.ok(spool.length <= 3, `spool: ${spool.join(' ')}`);
  });

  test('space freed: new mail is accepted again within seconds, without a restart', async () => {
    rmSync(filler!);
    filler = null;
    const started = Date.now();
    const r = await waitFor(
      'a 250 after the filler is removed',
      async () => {
        const res = await sendMessage(
          tern.ports.smtp,
          { from: 'sender@remote.test', to: [ALICE] },
          message(`after-${Date.now()}`, 5_000),
        );
        return res.code === 250 ? res : undefined;
      },
      10_000,
      200,
    );
    assert.equal(r.code, 250);
    console.log(`# service resumed ${Date.now() - started} ms after the filler was removed`);
  });

  test('the queued remote mail is delivered once the receiver is up, exactly once', async () => {
    receiver = await startReceiver({ port: relayPort });
    await flushUntil(tern, 'three remote messages received', () => receiver!.accepted.length >= 3);
    await tern.waitForEmptyQueue();
    await sleep(1000);
    assert.deepEqual(subjectsOf(receiver.accepted).sort(), ['remote-0', 'remote-1', 'remote-2']);
  });

  test('filling up under load: every reply is 250 or 452 4.3.1, and the server lives', async () => {
    baselineStored = (await tern.storedMessages(ALICE)).length;
    baselineRemote = receiver!.accepted.length;
    let filling = true;
    let seq = 0;
    const others: string[] = [];
    const client = async (n: number): Promise<void> => {
      while (filling) {
        const tag = `load-${n}-${seq++}`;
        // One client in four relays to the remote receiver, so remote delivery meets the full disk too.
        const to = n === 4 ? REMOTE : ALICE;
        const content = message(tag, 3_000 + ((seq * 7919) % 60_000));
        const r = await sendMessage(tern.ports.smtp, { from: 'sender@remote.test', to: [to] }, content, {
          bdat: seq % 3 === 0,
        }).catch((err: unknown) => ({ code: 0, enhanced: '', stage: 'end' as const, text: String(err) }));
        if (r.code === 250) (to === REMOTE ? acceptedRemote : acceptedUnderLoad).set(tag, content);
        else if (r.code === 452 && r.enhanced === '4.3.1') refusedUnderLoad.add(tag);
        else others.push(`${tag}: ${r.stage} ${r.text}`);
      }
    };
    const clients = [1, 2, 3, 4].map(client);
    // The disk fills over about a second while four clients keep sending, then stays full for two.
    const path = join(mnt, 'filler-load');
    filler = path;
    const fd = openSync(path, 'a');
    try {
      const chunk = Buffer.alloc(128 * 1024, 0x5a);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch {
          break;
        }
        await sleep(15);
      }
    } finally {
      closeSync(fd);
    }
    fillDisk(mnt, 'filler-rest');
    await sleep(2000);
    const refusedWhileFull = refusedUnderLoad.size;
    rmSync(path);
    rmSync(join(mnt, 'filler-rest'));
    filler = null;
    freedBytes = freeBytes(mnt);
    await sleep(1000);
    filling = false;
    await Promise.all(clients);
    console.log(
      `# filling under load: ${acceptedUnderLoad.size + acceptedRemote.size} accepted, ` +
        `${refusedUnderLoad.size} refused with 452 4.3.1 (${refusedWhileFull} while full), ` +
        `${others.length} other outcomes; ${freedBytes} bytes free once the filler was removed`,
    );
    assert.deepEqual(others, [], 'replies other than 250 and 452 4.3.1');
    assert.ok(refusedWhileFull > 0, 'the disk never looked full to the clients');
    assert.ok(acceptedUnderLoad.size > 0);
    assert.ok(tern.alive(), 'tern serve died');
  });

  test('after filling up under load: every 250 is delivered exactly once, the queue drains by itself', async () => {
    try {
      // Local deliveries that met the full disk are deferred; flush (postqueue -f) retries them now
      // rather than at the worker's next poll.
      await flushUntil(
        tern,
        'every accepted message delivered',
        async () =>
          (await tern.storedMessages(ALICE)).length >= baselineStored + acceptedUnderLoad.size &&
          receiver!.accepted.length >= baselineRemote + acceptedRemote.size,
        12_000,
      );
      await tern.waitForEmptyQueue();
    } finally {
      const wal = (f: string): string =>
        `${f} ${statSync(join(tern.dataDir, f), { throwIfNoEntry: false })?.size}`;
      console.log(
        `# afterwards: ${freeBytes(mnt)} bytes free; ${wal('queue/queue.db-wal')}, ${wal('mail/mail.db-wal')}; ` +
          `${(await tern.storedMessages(ALICE)).length - baselineStored} of ${acceptedUnderLoad.size} local ` +
          `and ${receiver!.accepted.length - baselineRemote} remote copies of ${acceptedRemote.size} delivered`,
      );
    }
    const stored = await tern.storedMessages(ALICE);
    const bySubject = new Map<string, number>();
    for (const m of stored) bySubject.set(m.subject, (bySubject.get(m.subject) ?? 0) + 1);
    for (const [tag, content] of acceptedUnderLoad) {
      assert.equal(bySubject.get(tag), 1, `${tag}: stored ${bySubject.get(tag) ?? 0} times`);
      const m = stored.find((x) => x.subject === tag)!;
      assert.ok(endsWithContent(await tern.storedMessage(ALICE, m.id), content), `${tag} damaged`);
    }
    for (const tag of refusedUnderLoad)
      assert.equal(bySubject.get(tag), undefined, `${tag} was refused, yet stored`);
    const remote = subjectsOf(receiver!.accepted.slice(baselineRemote));
    assert.deepEqual(remote.sort(), [...acceptedRemote.keys()].sort(), 'each relayed message exactly once');
    const bounces = stored.filter((m) => /undeliver|failure|returned/i.test(m.subject));
    assert.deepEqual(bounces, [], 'bounces');
  });

  test('the databases pass SQLite integrity_check', () => {
    for (const file of ['directory.sqlite', 'queue/queue.db', 'mail/mail.db']) {
      const db = new DatabaseSync(join(tern.dataDir, file), { readOnly: true });
      try {
        const row = db.prepare('PRAGMA integrity_check').get() as { integrity_check: string };
        assert.equal(row.integrity_check, 'ok', file);
      } finally {
        db.close();
      }
    }
  });
});

describe('an unusable data directory at start', { skip }, () => {
  let mnt: string;
  let work: string;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'tern-datadir-'));
    mnt = join(work, 'ro');
    mkdirSync(mnt);
    const problem = await mountTmpfs(mnt, MiB);
    if (problem !== null) throw new Error(problem);
    mkdirSync(join(mnt, 'existing'));
    await remount(mnt, 'ro');
  });
  after(async () => {
    await unmount(mnt);
    rmSync(work, { recursive: true, force: true });
  });

  /** `tern serve` with data_dir = dataDir: it must stop at once with exit 1 and one clear line. */
  async function serve(dataDir: string): Promise<{ code: number | null; stderr: string }> {
    const config = join(work, `tern-${Math.random().toString(36).slice(2)}.toml`);
    writeFileSync(config, ternConfigToml(dataDir, {}));
    const r = await runProcess(process.execPath, [CLI, 'serve', '--config', config], { timeoutMs: 15_000 });
    return { code: r.code, stderr: r.stderr };
  }

  const cases: readonly { what: string; dataDir: () => string; message: RegExp; todo?: string }[] = [
    {
      what: 'on a read-only filesystem',
      dataDir: () => join(mnt, 'existing'),
      message: /data directory .*existing is not writable: read-only file system/,
    },
    {
      what: 'missing, under a read-only filesystem',
      dataDir: () => join(mnt, 'missing'),
      message: /cannot create data directory .*missing: read-only file system/,
    },
    {
      what: 'with a file where a folder should be',
      dataDir: () => {
        writeFileSync(join(work, 'a-file'), 'not a folder');
        return join(work, 'a-file', 'data');
      },
      message: /cannot create data directory .*a-file\/data: a parent path is not a directory/,
    },
  ];
  for (const { what, dataDir, message, todo } of cases) {
    test(`data_dir ${what}: exit 1 and one line naming the path and the reason`, { todo }, async () => {
      const r = await serve(dataDir());
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'a stack trace');
      assert.ok(r.stderr.trim().split('\n').length <= 2, r.stderr);
    });
  }
});
