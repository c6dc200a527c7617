// The MailboxStore contract: what every implementation must do, as one node:test suite each
// implementation's test file runs with its own harness. Covers durable delivery across a restart,
// UIDs that only grow (and survive restarts), deliveryKey idempotency, large bodies byte-exact,
// per-user and per-mailbox separation, ids the CLI can pass back, and a full disk (452 4.3.1); for
// retrieval: status and snapshot counters, UIDLs (RFC 1939 §7) stable across restarts, reads by UID with
// the size up front, and expunge (exactly the named UIDs, durable, UIDs never reused, modseq raised),
// each with UTF-8 owners (RFC 6531 addresses) beside ASCII ones.
// The IMAP side: folders, flags, APPEND/COPY/MOVE, changesSince, the change feed, quotas, and what FETCH,
// SEARCH and SELECT read: messages() (RFC 8514 save dates, RFC 8474 EMAILIDs shared by copies and kept by
// MOVE, structures kept through both), setStructure(), openRange() of BLOB and file bodies with clamps,
// folderStatus() counts after flag changes and expunges, MAILBOXIDs kept across RENAME, with UTF-8 folder
// names beside ASCII ones.
// Not here: where bytes live (files vs BLOBs), when body storage is reclaimed: each implementation's own
// test. ContractOptions holds what an implementation may declare about itself (skipping where its server
// is missing; a read() that finds a message only once it is read), so the others stay held to the rest.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Replies, ReplyError } from '../core/reply.ts';
import type {
  DeliverRequest,
  FolderEvent,
  FolderListEvent,
  FolderInfo,
  ImapMailboxStore,
  MailboxErrorCode,
  MailboxStore,
  MessageMeta,
  StoredMessage,
} from './mailbox-store.ts';
import { MailboxError, PERMANENT_FLAGS, uidl } from './mailbox-store.ts';

/** RFC 8474 §4 objectid: 1-255 of ALPHA / DIGIT / "_" / "-". */
const OBJECTID = /^[A-Za-z0-9_-]{1,255}$/;

export interface MailboxStoreHarness {
  readonly store: MailboxStore;
  /** Close the current instance and open a new one on the same storage, as after a restart. */
  reopen(): Promise<MailboxStore>;
  /** Simulate a full disk: every write (body and database) fails while on. */
  setDiskFull(full: boolean): void;
  /** Close whatever is open and remove the storage. */
  cleanup(): Promise<void>;
}

const ALICE = 'alice@example.org';
const BOB = 'bob@example.org';
const JUERGEN = 'jürgen@exämple.org';
const NIHON = '日本@例え.jp';
/** Every owner test runs for: ASCII, Latin with diacritics, CJK. */
const OWNERS = [ALICE, JUERGEN, NIHON] as const;

/** Content as delivery streams it: in chunks, with event-loop turns in between. */
async function* chunked(bytes: Uint8Array, size = 65_536): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    yield bytes.subarray(i, i + size);
  }
}

let keys = 0;
function request(content: Uint8Array | string, over: Partial<DeliverRequest> = {}): DeliverRequest {
  const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  return {
    user: ALICE,
    mailbox: 'INBOX',
    internalDateMs: Date.UTC(2026, 0, 15, 12, 0, 0),
    flags: [],
    deliveryKey: `contract-${process.pid}-${++keys}`,
    summary: { from: 'Bob <bob@example.net>', subject: 'Hello', date: 'Thu, 15 Jan 2026 12:00:00 +0000' },
    content: chunked(bytes),
    ...over,
  };
}

async function readAll(body: AsyncIterable<Uint8Array> | null): Promise<Buffer> {
  assert.ok(body !== null, 'message not found');
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

async function readMessage(message: StoredMessage | null): Promise<Buffer> {
  assert.ok(message !== null, 'message not found');
  const body = await readAll(message.content);
  assert.equal(body.byteLength, message.sizeBytes, 'sizeBytes is the number of bytes read');
  return body;
}

function isInsufficientStorage(err: unknown): boolean {
  return err instanceof ReplyError && err.reply === Replies.insufficientStorage;
}

/** What an implementation declares about itself; the defaults are the strict contract. */
export interface ContractOptions {
  /** Skip the whole suite with this reason (the implementation's server is not reachable). */
  readonly skip?: string | false | undefined;
  /**
   * read() may not know at once whether a message exists (its store is across a network): it returns
   * null only for an id it cannot parse, and the iterable of a missing message fails its first read
   * with MailboxError('nonexistent'). Default false: null for every missing message, at once.
   */
  readonly lazyRead?: boolean | undefined;
}

/** read() of a message that is not there: null, or (lazyRead) an iterable that fails as 'nonexistent'. */
async function assertReadsNothing(
  store: MailboxStore,
  user: string,
  id: string,
  options: ContractOptions,
): Promise<void> {
  const body = store.read(user, id);
  if (body === null) return;
  assert.ok(options.lazyRead === true, `read(${JSON.stringify(id)}) of a missing message is null`);
  await assert.rejects(
    readAll(body),
    (err: unknown) => err instanceof MailboxError && err.code === 'nonexistent',
    `reading ${JSON.stringify(id)} fails as nonexistent`,
  );
}

export function runMailboxStoreContract(
  name: string,
  make: () => Promise<MailboxStoreHarness>,
  options: ContractOptions = {},
): void {
  void describe(`MailboxStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    const withHarness = (title: string, fn: (h: MailboxStoreHarness) => Promise<void>): void => {
      void it(title, async () => {
        const h = await make();
        try {
          await fn(h);
        } finally {
          await h.cleanup();
        }
      });
    };

    withHarness('deliver, list and read back one message', async (h) => {
      const text = 'From: Bob <bob@example.net>\r\nSubject: Hello\r\n\r\nHi Alice\r\n';
      const r = await h.store.deliver(request(text, { flags: ['\\Recent'] }));
      assert.equal(r.uid, 1);
      const list = await h.store.list(ALICE);
      assert.deepEqual(list, [
        {
          id: r.id,
          mailbox: 'INBOX',
          uid: 1,
          sizeBytes: Buffer.byteLength(text),
          internalDateMs: Date.UTC(2026, 0, 15, 12, 0, 0),
          flags: ['\\Recent'],
          from: 'Bob <bob@example.net>',
          subject: 'Hello',
          date: 'Thu, 15 Jan 2026 12:00:00 +0000',
        },
      ]);
      assert.equal((await readAll(h.store.read(ALICE, r.id))).toString(), text);
      assert.deepEqual(await h.store.list(ALICE, 'inbox'), list, 'INBOX is case-insensitive');
    });

    withHarness('INBOX ids are the UID in decimal', async (h) => {
      const a = await h.store.deliver(request('a'));
      const b = await h.store.deliver(request('b'));
      assert.deepEqual(
        [a, b],
        [
          { uid: 1, id: '1' },
          { uid: 2, id: '2' },
        ],
      );
    });

    withHarness('UIDs grow, are per mailbox, and survive a restart', async (h) => {
      for (let i = 1; i <= 3; i++) assert.equal((await h.store.deliver(request(`m${i}`))).uid, i);
      assert.equal((await h.store.deliver(request('bob 1', { user: BOB }))).uid, 1);
      const archived = await h.store.deliver(request('arch', { mailbox: 'Archive' }));
      assert.equal(archived.uid, 1);
      const s = await h.reopen();
      assert.equal((await s.deliver(request('m4'))).uid, 4);
      assert.deepEqual(
        (await s.list(ALICE)).map((m) => m.uid),
        [1, 2, 3, 4],
      );
      assert.equal((await readAll(s.read(ALICE, '2'))).toString(), 'm2');
      assert.equal((await readAll(s.read(ALICE, archived.id))).toString(), 'arch');
      assert.equal((await s.deliver(request('arch 2', { mailbox: 'Archive' }))).uid, 2);
    });

    withHarness('concurrent deliveries get distinct, consecutive UIDs', async (h) => {
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => h.store.deliver(request(`m${i}`))),
      );
      assert.deepEqual(
        results.map((r) => r.uid).sort((x, y) => x - y),
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      for (const [i, r] of results.entries())
        assert.equal((await readAll(h.store.read(ALICE, r.id))).toString(), `m${i}`);
    });

    withHarness('a repeated deliveryKey returns the first result and stores nothing', async (h) => {
      const first = await h.store.deliver(request('first', { deliveryKey: 'Q1/0' }));
      let consumed = false;
      const again = await h.store.deliver(
        request('', {
          deliveryKey: 'Q1/0',
          content: (async function* () {
            await Promise.resolve();
            consumed = true;
            yield new TextEncoder().encode('second');
          })(),
        }),
      );
      assert.deepEqual(again, first);
      assert.equal(consumed, false, 'a repeat must not read the content');
      const s = await h.reopen();
      assert.deepEqual(await s.deliver(request('third', { deliveryKey: 'Q1/0' })), first);
      assert.deepEqual(
        await s.deliver(request('large', { deliveryKey: 'Q1/0', content: chunked(randomBytes(1_000_000)) })),
        first,
      );
      assert.equal((await s.list(ALICE)).length, 1);
      assert.equal((await readAll(s.read(ALICE, first.id))).toString(), 'first');
    });

    withHarness('concurrent deliveries with one key store one message', async (h) => {
      const results = await Promise.all(
        [randomBytes(10), randomBytes(900_000), randomBytes(20)].map((b) =>
          h.store.deliver(request(b, { deliveryKey: 'same' })),
        ),
      );
      assert.equal(new Set(results.map((r) => r.uid)).size, 1);
      assert.equal((await h.store.list(ALICE)).length, 1);
    });

    withHarness('large bodies read back byte-exact, also after a restart', async (h) => {
      const body = randomBytes(3 * 1024 * 1024 + 11);
      const r = await h.store.deliver(request(body));
      assert.equal((await h.store.list(ALICE))[0]?.sizeBytes, body.byteLength);
      assert.ok((await readAll(h.store.read(ALICE, r.id))).equals(body));
      const s = await h.reopen();
      assert.ok((await readAll(s.read(ALICE, r.id))).equals(body));
    });

    withHarness('users and mailboxes are separate; unknown ids read as null', async (h) => {
      const a = await h.store.deliver(request('for alice'));
      const x = await h.store.deliver(request('archived', { mailbox: 'Archive' }));
      assert.deepEqual(await h.store.list(BOB), []);
      await assertReadsNothing(h.store, BOB, a.id, options);
      assert.deepEqual(
        (await h.store.list(ALICE, 'Archive')).map((m) => [m.id, m.mailbox]),
        [[x.id, 'Archive']],
      );
      assert.notEqual(x.id, a.id);
      assert.deepEqual(await h.store.list(ALICE, 'Nope'), []);
      for (const bad of ['99', '0', '-1', 'x', '', '1.5', 'Nope/1', '01'])
        await assertReadsNothing(h.store, ALICE, bad, options);
      assert.equal((await readAll(h.store.read('ALICE@Example.org', a.id))).toString(), 'for alice');
    });

    withHarness('a full disk fails with 452 4.3.1, stores nothing, and heals', async (h) => {
      await h.store.deliver(request('before'));
      h.setDiskFull(true);
      for (const body of [randomBytes(200_000), randomBytes(2_000_000)]) {
        await assert.rejects(
          h.store.deliver(request(body, { deliveryKey: `full-${body.byteLength}` })),
          isInsufficientStorage,
        );
      }
      h.setDiskFull(false);
      assert.equal((await h.store.list(ALICE)).length, 1);
      // The failed keys were not recorded: the retry stores the message.
      const big = randomBytes(2_000_000);
      const r = await h.store.deliver(request(big, { deliveryKey: 'full-2000000' }));
      assert.equal(r.uid, 2);
      assert.ok((await readAll(h.store.read(ALICE, r.id))).equals(big));
    });

    for (const owner of OWNERS) {
      withHarness(`status and snapshot count messages and octets (${owner})`, async (h) => {
        assert.equal(await h.store.status(owner, 'INBOX'), null, 'no mailbox before the first delivery');
        assert.equal(await h.store.snapshot(owner, 'INBOX'), null);
        const bodies = ['one\r\n', 'zwei – drei\r\n', '日本語のメール\r\n'];
        for (const b of bodies) await h.store.deliver(request(b, { user: owner }));
        await h.store.deliver(request('elsewhere', { user: owner, mailbox: 'Archive' }));
        await h.store.deliver(request('not yours', { user: BOB }));
        const status = await h.store.status(owner, 'INBOX');
        assert.ok(status !== null);
        const octets = bodies.reduce((n, b) => n + Buffer.byteLength(b), 0);
        assert.equal(status.messages, 3);
        assert.equal(status.sizeBytes, octets);
        assert.equal(status.uidNext, 4);
        assert.ok(Number.isSafeInteger(status.uidValidity) && status.uidValidity > 0);
        assert.ok(status.uidValidity < 2 ** 32, 'UIDVALIDITY is a 32-bit number (RFC 9051 §2.3.1.1)');
        assert.ok(Number.isSafeInteger(status.highestModseq) && status.highestModseq >= 1);
        assert.deepEqual(
          await h.store.status(owner.toUpperCase(), 'inbox'),
          status,
          'owner and INBOX fold case',
        );
        const snap = await h.store.snapshot(owner, 'INBOX');
        assert.ok(snap !== null);
        const { entries, ...counters } = snap;
        assert.deepEqual(counters, status);
        assert.deepEqual(
          entries,
          bodies.map((b, i) => ({
            uid: i + 1,
            sizeBytes: Buffer.byteLength(b),
            uidl: uidl(status.uidValidity, i + 1),
          })),
        );
        const archive = await h.store.status(owner, 'Archive');
        assert.equal(archive?.messages, 1);
        assert.notEqual(archive?.uidValidity, status.uidValidity);
      });
    }

    withHarness('UIDLs are printable, unique in a maildrop and stable across a restart', async (h) => {
      for (let i = 0; i < 5; i++) await h.store.deliver(request(`m${i}`, { user: JUERGEN }));
      const before = await h.store.snapshot(JUERGEN, 'INBOX');
      assert.ok(before !== null);
      const ids = before.entries.map((e) => e.uidl);
      // RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E.
      for (const id of ids) assert.match(id, /^[\x21-\x7e]{1,70}$/);
      assert.equal(new Set(ids).size, ids.length);
      assert.equal(ids[0], `${before.uidValidity}.1`, 'the documented "<UIDVALIDITY>.<UID>" format');
      const s = await h.reopen();
      assert.deepEqual((await s.snapshot(JUERGEN, 'INBOX'))?.entries, before.entries);
      assert.equal(uidl(4_294_967_295, 4_294_967_295).length, 21);
    });

    for (const owner of OWNERS) {
      withHarness(`a message read by UID has its size up front and its bytes exact (${owner})`, async (h) => {
        const small = new TextEncoder().encode('Subject: grüße\r\n\r\nbody\r\n');
        const large = randomBytes(3 * 1024 * 1024 + 7);
        await h.store.deliver(request(small, { user: owner }));
        await h.store.deliver(request(large, { user: owner }));
        assert.ok((await readMessage(await h.store.openMessage(owner, 'INBOX', 1))).equals(small));
        const opened = await h.store.openMessage(owner.toUpperCase(), 'inbox', 2);
        assert.ok(opened !== null);
        assert.equal(opened.uid, 2);
        assert.equal(opened.sizeBytes, large.byteLength);
        let biggest = 0;
        const chunks: Uint8Array[] = [];
        for await (const c of opened.content) {
          biggest = Math.max(biggest, c.byteLength);
          chunks.push(c);
        }
        assert.ok(Buffer.concat(chunks).equals(large));
        assert.ok(biggest <= 1024 * 1024, `a large message streams in chunks (largest ${biggest})`);
        const s = await h.reopen();
        assert.ok((await readMessage(await s.openMessage(owner, 'INBOX', 2))).equals(large));
        for (const [user, mailbox, uid] of [
          [owner, 'INBOX', 3],
          [owner, 'INBOX', 0],
          [owner, 'Archive', 1],
          [BOB, 'INBOX', 1],
        ] as const) {
          assert.equal(await s.openMessage(user, mailbox, uid), null, `${user} ${mailbox} ${uid}`);
        }
      });
    }

    for (const kind of ['inline', 'file'] as const) {
      withHarness(
        `deliverAccepted: one body for several owners, each with its own head (${kind})`,
        async (h) => {
          const body =
            kind === 'inline'
              ? new TextEncoder().encode('Subject: grüße\r\n\r\nhello\r\n')
              : Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), randomBytes(300_000)]);
          // The body as another part of Tern made it durable (the queue's spool file); the store links it.
          const dir = await mkdtemp(join(tmpdir(), 'tern-accepted-'));
          const path = join(dir, 'spool');
          await writeFile(path, body);
          const stored =
            kind === 'inline'
              ? ({ kind: 'inline', bytes: body, sizeBytes: body.byteLength } as const)
              : ({ kind: 'file', path, sizeBytes: body.byteLength } as const);
          const heads = OWNERS.map((o) =>
            new TextEncoder().encode(`Return-Path: <>\r\nDelivered-To: ${o}\r\n`),
          );
          const copies = OWNERS.map((user, i) => ({
            user,
            mailbox: i === 2 ? 'Junk' : 'INBOX',
            deliveryKey: `accepted-${kind}-${process.pid}-${++keys}`,
            flags: [],
            head: heads[i]!,
            structure: null,
          }));
          const req = {
            body: stored,
            internalDateMs: Date.UTC(2026, 0, 15, 12, 0, 0),
            summary: { from: 'b@example.net', subject: 'big', date: '' },
            copies,
          };
          try {
            const results = await h.store.deliverAccepted(req);
            assert.deepEqual(
              results.map((r) => [r.uid, r.repeated]),
              [
                [1, false],
                [1, false],
                [1, false],
              ],
            );
            // The caller removes its own name for the body once the store has it (the queue's abort()).
            await rm(dir, { recursive: true, force: true });
            const again = await h.store.deliverAccepted(req);
            assert.deepEqual(
              again.map((r) => r.repeated),
              [true, true, true],
              'a repeat of every key stores nothing',
            );
            assert.deepEqual(
              again.map((r) => r.uid),
              results.map((r) => r.uid),
            );
            const s = await h.reopen();
            for (const [i, owner] of OWNERS.entries()) {
              const mailbox = i === 2 ? 'Junk' : 'INBOX';
              const whole = Buffer.concat([heads[i]!, body]);
              const m = await readMessage(await s.openMessage(owner, mailbox, 1));
              assert.ok(m.equals(whole), `${owner}: head then body, exactly`);
              assert.ok((await readAll(s.read(owner, results[i]!.id))).equals(whole));
              assert.equal((await s.status(owner, mailbox))?.sizeBytes, whole.byteLength);
              assert.equal((await s.list(owner, mailbox))[0]?.subject, 'big');
            }
            // Only the first copy goes: the others keep the shared body.
            assert.deepEqual(await s.expunge(ALICE, 'INBOX', [1]), [1]);
            const whole = Buffer.concat([heads[1]!, body]);
            assert.ok((await readMessage(await s.openMessage(JUERGEN, 'INBOX', 1))).equals(whole));
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      );
    }

    withHarness('an opened message that is not read can be closed', async (h) => {
      await h.store.deliver(request(randomBytes(2_000_000)));
      await h.store.deliver(request('small'));
      for (const uid of [1, 2]) {
        const m = await h.store.openMessage(ALICE, 'INBOX', uid);
        assert.ok(m !== null);
        await m.close();
        await m.close();
      }
      // Breaking off a read part-way is the other way to stop.
      const m = await h.store.openMessage(ALICE, 'INBOX', 1);
      for await (const c of m!.content) {
        assert.ok(c.byteLength > 0);
        break;
      }
      await m!.close();
    });

    for (const owner of OWNERS) {
      withHarness(`expunge removes exactly the named messages, durably (${owner})`, async (h) => {
        const big = randomBytes(1_500_000);
        for (let i = 1; i <= 6; i++) {
          await h.store.deliver(request(i === 2 ? big : `message ${i}`, { user: owner }));
        }
        await h.store.deliver(request('bob keeps his', { user: BOB }));
        const before = await h.store.status(owner, 'INBOX');
        assert.ok(before !== null);
        // Unknown, repeated and out-of-order UIDs: only the ones present are removed, once.
        const removed = await h.store.expunge(owner, 'INBOX', [5, 2, 99, 2, 0, 4]);
        assert.deepEqual(removed, [2, 4, 5]);
        assert.deepEqual(
          (await h.store.list(owner)).map((m) => m.uid),
          [1, 3, 6],
        );
        const after = await h.store.status(owner, 'INBOX');
        assert.ok(after !== null);
        assert.equal(after.messages, 3);
        assert.equal(after.sizeBytes, ['message 1', 'message 3', 'message 6'].join('').length);
        assert.equal(after.uidNext, before.uidNext, 'UIDNEXT does not move back');
        assert.equal(after.uidValidity, before.uidValidity);
        assert.ok(after.highestModseq > before.highestModseq, 'an expunge raises the modseq');
        assert.equal(await h.store.openMessage(owner, 'INBOX', 2), null);
        await assertReadsNothing(h.store, owner, '4', options);
        assert.deepEqual(await h.store.expunge(owner, 'INBOX', [2, 4, 5]), [], 'already gone');
        assert.deepEqual(await h.store.expunge(owner, 'Nope', [1]), []);
        assert.deepEqual(await h.store.expunge(owner, 'INBOX', []), []);
        assert.equal(
          (await h.store.status(owner, 'INBOX'))?.highestModseq,
          after.highestModseq,
          'no-ops change nothing',
        );
        assert.equal((await h.store.list(BOB)).length, 1, "another user's UID 1..6 are untouched");

        const s = await h.reopen();
        assert.deepEqual(
          (await s.snapshot(owner, 'INBOX'))?.entries.map((e) => e.uid),
          [1, 3, 6],
        );
        assert.deepEqual(await s.status(owner, 'INBOX'), after);
        assert.equal(
          (await s.deliver(request('after', { user: owner }))).uid,
          7,
          'expunged UIDs are not reused',
        );
        assert.equal((await readMessage(await s.openMessage(owner, 'INBOX', 3))).toString(), 'message 3');
      });
    }

    withHarness('expunge of every message leaves an empty mailbox that keeps its UIDs', async (h) => {
      for (let i = 0; i < 3; i++) await h.store.deliver(request(`m${i}`, { user: NIHON }));
      assert.deepEqual(await h.store.expunge(NIHON, 'inbox', [1, 2, 3]), [1, 2, 3]);
      const status = await h.store.status(NIHON, 'INBOX');
      assert.equal(status?.messages, 0);
      assert.equal(status?.sizeBytes, 0);
      assert.equal(status?.uidNext, 4);
      assert.deepEqual((await h.store.snapshot(NIHON, 'INBOX'))?.entries, []);
      assert.deepEqual(await h.store.list(NIHON), []);
    });

    withHarness('expunges and deliveries running together all land', async (h) => {
      for (let i = 0; i < 20; i++) await h.store.deliver(request(`m${i}`));
      const [a, b, c] = await Promise.all([
        h.store.expunge(ALICE, 'INBOX', [1, 2, 3]),
        h.store.deliver(request('new')),
        h.store.expunge(ALICE, 'INBOX', [3, 4, 5]),
      ]);
      assert.deepEqual(
        [...a, ...c].sort((x, y) => x - y),
        [1, 2, 3, 4, 5],
      );
      assert.equal(b.uid, 21);
      assert.equal((await h.store.status(ALICE, 'INBOX'))?.messages, 16);
    });

    withHarness('an expunge in flight when the store closes is whole or absent after reopen', async (h) => {
      for (let i = 0; i < 10; i++) {
        await h.store.deliver(request(i % 2 === 0 ? randomBytes(400_000) : `m${i}`));
      }
      const pending = h.store.expunge(ALICE, 'INBOX', [1, 2, 3, 4, 5]);
      const s = await h.reopen();
      const settled = await pending.then(
        (uids) => ({ ok: true as const, uids }),
        () => ({ ok: false as const, uids: [] }),
      );
      const uids = (await s.snapshot(ALICE, 'INBOX'))?.entries.map((e) => e.uid);
      if (settled.ok) assert.deepEqual(uids, [6, 7, 8, 9, 10]);
      else
        assert.ok(
          uids?.join() === '1,2,3,4,5,6,7,8,9,10' || uids?.join() === '6,7,8,9,10',
          `all or nothing, got ${uids?.join()}`,
        );
      // Every message still listed reads whole.
      for (const uid of uids ?? []) {
        const m = await s.openMessage(ALICE, 'INBOX', uid);
        assert.equal((await readMessage(m)).byteLength, uid % 2 === 1 ? 400_000 : `m${uid - 1}`.length);
      }
    });

    withHarness('on a full disk an expunge removes all or nothing (452 4.3.1)', async (h) => {
      for (let i = 0; i < 3; i++) await h.store.deliver(request(i === 0 ? randomBytes(500_000) : `m${i}`));
      const before = await h.store.status(ALICE, 'INBOX');
      h.setDiskFull(true);
      // Removing may need no new space (SQLite reuses pages): succeeding is as right as a 452.
      const outcome = await h.store.expunge(ALICE, 'INBOX', [1, 2]).then(
        (uids) => ({ ok: true as const, uids }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      h.setDiskFull(false);
      if (outcome.ok) {
        assert.deepEqual(outcome.uids, [1, 2]);
        assert.equal((await h.store.status(ALICE, 'INBOX'))?.messages, 1);
      } else {
        assert.ok(isInsufficientStorage(outcome.err), String(outcome.err));
        assert.deepEqual(await h.store.status(ALICE, 'INBOX'), before);
        assert.equal((await readMessage(await h.store.openMessage(ALICE, 'INBOX', 1))).byteLength, 500_000);
        assert.deepEqual(await h.store.expunge(ALICE, 'INBOX', [1, 2]), [1, 2]);
      }
      assert.equal((await readMessage(await h.store.openMessage(ALICE, 'INBOX', 3))).toString(), 'm2');
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// The IMAP side (issue 13): folders, flags, APPEND/COPY/MOVE, changesSince, the change feed, quotas.

export interface ImapMailboxStoreHarness {
  readonly store: ImapMailboxStore;
  /** Close the current instance and open a new one on the same storage, as after a restart. */
  reopen(): Promise<ImapMailboxStore>;
  /** A second instance on the same storage, as another process (the CLI) would open it. */
  openOther(): Promise<ImapMailboxStore>;
  /** Set the time the store's clock reads from now on (save dates are taken from it). */
  setNowMs(ms: number): void;
  cleanup(): Promise<void>;
}

/** UTF-8 folder names beside the ASCII ones; NFD spellings must land on the NFC name. */
const ENTWUERFE = 'Entwürfe';
const ENTWUERFE_NFD = 'Entwu\u0308rfe';
const NIHONGO = '日本語';
const SHITAGAKI = '日本語/下書き';

function names(folders: readonly FolderInfo[]): string[] {
  return folders.map((f) => f.name);
}

function attributesOf(folders: readonly FolderInfo[], name: string): readonly string[] | undefined {
  return folders.find((f) => f.name === name)?.attributes;
}

async function rejected(p: Promise<unknown>, code: MailboxErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof MailboxError && err.code === code);
}

/** Resolves with the first event a watcher gets that satisfies the predicate. */
function nextEvent(
  store: ImapMailboxStore,
  user: string,
  folder: string,
  accept: (e: FolderEvent) => boolean = () => true,
): { event: Promise<FolderEvent>; stop: () => void } {
  let stop = (): void => undefined;
  const event = new Promise<FolderEvent>((resolve) => {
    stop = store.watch(user, folder, (e) => {
      if (accept(e)) resolve(e);
    });
  });
  return { event, stop };
}

export function runImapMailboxStoreContract(
  name: string,
  make: () => Promise<ImapMailboxStoreHarness>,
  options: ContractOptions = {},
): void {
  void describe(`ImapMailboxStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    const withHarness = (title: string, fn: (h: ImapMailboxStoreHarness) => Promise<void>): void => {
      void it(title, async () => {
        const h = await make();
        try {
          await fn(h);
        } finally {
          await h.cleanup();
        }
      });
    };

    for (const owner of OWNERS) {
      withHarness(`ensureDefaults makes INBOX and the special-use folders once (${owner})`, async (h) => {
        await h.store.ensureDefaults(owner);
        const folders = await h.store.folders(owner);
        assert.deepEqual(names(folders), ['INBOX', 'Archive', 'Drafts', 'Junk', 'Sent', 'Trash']);
        assert.deepEqual(attributesOf(folders, 'Sent'), ['\\HasNoChildren', '\\Subscribed', '\\Sent']);
        assert.deepEqual(
          folders.map((f) => f.specialUse),
          [null, '\\Archive', '\\Drafts', '\\Junk', '\\Sent', '\\Trash'],
        );
        assert.ok(folders.every((f) => f.subscribed));
        assert.equal((await h.store.status(owner, 'INBOX'))?.messages, 0);
        // A user who deletes Trash does not get it back at the next login.
        await h.store.deleteFolder(owner, 'Trash');
        await h.store.ensureDefaults(owner);
        assert.ok(!names(await h.store.folders(owner)).includes('Trash'));
        assert.deepEqual(await h.store.subscriptions(owner), [
          'Archive',
          'Drafts',
          'INBOX',
          'Junk',
          'Sent',
          'Trash',
        ]);
      });

      withHarness(
        `a folder delivered to before the first login takes its special use (${owner})`,
        async (h) => {
          await h.store.deliver(request('old', { user: owner, mailbox: 'Archive' }));
          await h.store.ensureDefaults(owner);
          const archive = (await h.store.folders(owner)).find((f) => f.name === 'Archive');
          assert.equal(archive?.specialUse, '\\Archive');
          assert.equal((await h.store.status(owner, 'Archive'))?.messages, 1);
        },
      );

      withHarness(`create makes parents, NFC names, INBOX without case (${owner})`, async (h) => {
        await h.store.createFolder(owner, SHITAGAKI);
        await h.store.createFolder(owner, ENTWUERFE_NFD, { specialUse: '\\Drafts' });
        const folders = await h.store.folders(owner);
        assert.deepEqual(names(folders), ['INBOX', ENTWUERFE, NIHONGO, SHITAGAKI]);
        assert.deepEqual(attributesOf(folders, NIHONGO), ['\\HasChildren']);
        assert.deepEqual(attributesOf(folders, SHITAGAKI), ['\\HasNoChildren']);
        assert.deepEqual(attributesOf(folders, ENTWUERFE), ['\\HasNoChildren', '\\Drafts']);
        await rejected(h.store.createFolder(owner, ENTWUERFE), 'alreadyexists');
        await rejected(h.store.createFolder(owner, NIHONGO), 'alreadyexists');
        const s = await h.store.status(owner, SHITAGAKI.normalize('NFD'));
        assert.deepEqual(s && { uidNext: s.uidNext, messages: s.messages }, { uidNext: 1, messages: 0 });
        await h.store.createFolder(owner, 'inbox');
        await rejected(h.store.createFolder(owner, 'Inbox'), 'alreadyexists');
        await h.store.createFolder(owner, 'inbox/Sub');
        assert.ok(names(await h.store.folders(owner)).includes('INBOX/Sub'));
        for (const bad of ['', '/a', 'a/', 'a//b', 'a*', 'b%', 'tab\there']) {
          await rejected(h.store.createFolder(owner, bad), 'invalid');
        }
      });

      withHarness(`UIDVALIDITY is new when a name is reused after delete (${owner})`, async (h) => {
        await h.store.createFolder(owner, ENTWUERFE);
        await h.store.append(owner, ENTWUERFE, {
          flags: [],
          internalDateMs: 0,
          content: chunked(Buffer.from('x')),
        });
        const first = await h.store.status(owner, ENTWUERFE);
        await h.store.deleteFolder(owner, ENTWUERFE);
        assert.equal(await h.store.status(owner, ENTWUERFE), null);
        await h.store.createFolder(owner, ENTWUERFE);
        const second = await h.store.status(owner, ENTWUERFE);
        assert.ok(first !== null && second !== null);
        assert.notEqual(second.uidValidity, first.uidValidity);
        assert.equal(second.uidNext, 1);
        assert.deepEqual(await h.store.quota(owner), { messages: 0, bytes: 0 }, 'the message went for good');
      });

      withHarness(`delete: a parent stays as \\Noselect, its messages gone (${owner})`, async (h) => {
        await h.store.createFolder(owner, SHITAGAKI);
        await h.store.append(owner, NIHONGO, {
          flags: [],
          internalDateMs: 0,
          content: chunked(Buffer.from('y')),
        });
        await h.store.deleteFolder(owner, NIHONGO);
        let folders = await h.store.folders(owner);
        assert.deepEqual(attributesOf(folders, NIHONGO), ['\\Noselect', '\\HasChildren']);
        assert.equal((await h.store.status(owner, NIHONGO))?.messages, 0);
        await rejected(h.store.changesSince(owner, NIHONGO, 0), 'noselect');
        await rejected(h.store.deleteFolder(owner, NIHONGO), 'cannot');
        await rejected(h.store.deleteFolder(owner, 'inbox'), 'cannot');
        await rejected(h.store.deleteFolder(owner, 'Nope'), 'nonexistent');
        await h.store.deleteFolder(owner, SHITAGAKI);
        // The placeholder has no children left: now it can go, and a CREATE makes it a folder again.
        await h.store.createFolder(owner, NIHONGO);
        folders = await h.store.folders(owner);
        assert.deepEqual(attributesOf(folders, NIHONGO), ['\\HasNoChildren']);
        await h.store.deleteFolder(owner, NIHONGO);
        assert.deepEqual(names(await h.store.folders(owner)), ['INBOX']);
      });

      withHarness(`rename moves children and subscriptions (${owner})`, async (h) => {
        await h.store.createFolder(owner, SHITAGAKI);
        await h.store.subscribe(owner, SHITAGAKI);
        await h.store.append(owner, SHITAGAKI, {
          flags: [],
          internalDateMs: 7,
          content: chunked(Buffer.from('z')),
        });
        const before = await h.store.status(owner, SHITAGAKI);
        await h.store.renameFolder(owner, NIHONGO, 'Projekte/Entwürfe');
        assert.deepEqual(names(await h.store.folders(owner)), [
          'INBOX',
          'Projekte',
          'Projekte/Entwürfe',
          'Projekte/Entwürfe/下書き',
        ]);
        assert.deepEqual(
          await h.store.status(owner, 'Projekte/Entwürfe/下書き'),
          before,
          'UIDVALIDITY and UIDs kept',
        );
        assert.deepEqual(await h.store.subscriptions(owner), ['Projekte/Entwürfe/下書き']);
        await rejected(h.store.renameFolder(owner, 'Projekte', 'Projekte/x'), 'cannot');
        await rejected(h.store.renameFolder(owner, 'Projekte', 'INBOX'), 'alreadyexists');
        await rejected(h.store.renameFolder(owner, 'Projekte/Entwürfe', 'Projekte'), 'alreadyexists');
        await rejected(h.store.renameFolder(owner, NIHONGO, 'x'), 'nonexistent');
      });

      withHarness(`renaming INBOX moves its messages and leaves it empty (${owner})`, async (h) => {
        await h.store.ensureDefaults(owner);
        await h.store.createFolder(owner, 'INBOX/Kinder');
        for (const t of ['a', 'b']) await h.store.deliver(request(t, { user: owner }));
        await h.store.storeFlags(owner, 'INBOX', [2], { mode: 'add', flags: ['$Wichtig'] });
        const inbox = await h.store.status(owner, 'INBOX');
        await h.store.renameFolder(owner, 'inbox', 'Alt');
        const moved = await h.store.changesSince(owner, 'Alt', 0);
        assert.deepEqual(
          moved.changed.map((m) => [m.uid, m.flags]),
          [
            [1, []],
            [2, ['$Wichtig']],
          ],
        );
        assert.equal((await readMessage(await h.store.openMessage(owner, 'Alt', 2))).toString(), 'b');
        const after = await h.store.status(owner, 'INBOX');
        assert.ok(inbox !== null && after !== null);
        assert.deepEqual([after.messages, after.uidValidity, after.uidNext], [0, inbox.uidValidity, 3]);
        assert.deepEqual((await h.store.changesSince(owner, 'INBOX', inbox.highestModseq)).vanished, [1, 2]);
        assert.ok(names(await h.store.folders(owner)).includes('INBOX/Kinder'), 'INBOX children stay');
        assert.equal((await h.store.deliver(request('c', { user: owner }))).uid, 3);
      });

      withHarness(`flags: add, remove, replace raise modseqs; keywords listed (${owner})`, async (h) => {
        for (const t of ['a', 'b', 'c']) await h.store.deliver(request(t, { user: owner }));
        const m0 = (await h.store.status(owner, 'INBOX'))?.highestModseq ?? 0;
        const r1 = await h.store.storeFlags(owner, 'inbox', [3, 1, 9], {
          mode: 'add',
          flags: ['\\seen', '$Label1'],
        });
        assert.deepEqual(r1.messages, [
          { uid: 1, flags: ['\\Seen', '$Label1'], modseq: m0 + 1, changed: true },
          { uid: 3, flags: ['\\Seen', '$Label1'], modseq: m0 + 1, changed: true },
        ]);
        assert.equal(r1.highestModseq, m0 + 1);
        const r2 = await h.store.storeFlags(owner, 'INBOX', [1], { mode: 'add', flags: ['\\Seen'] });
        assert.deepEqual(r2.messages, [
          { uid: 1, flags: ['\\Seen', '$Label1'], modseq: m0 + 1, changed: false },
        ]);
        assert.equal((await h.store.status(owner, 'INBOX'))?.highestModseq, m0 + 1, 'no change, no modseq');
        const r3 = await h.store.storeFlags(owner, 'INBOX', [1, 3], { mode: 'remove', flags: ['$label1'] });
        assert.deepEqual(
          r3.messages.map((m) => [m.flags, m.modseq]),
          [
            [['\\Seen'], m0 + 2],
            [['\\Seen'], m0 + 2],
          ],
        );
        const r4 = await h.store.storeFlags(owner, 'INBOX', [2], {
          mode: 'replace',
          flags: ['\\Draft', '\\Flagged', 'Erledigt', '\\Deleted', '\\Answered'],
        });
        assert.deepEqual(r4.messages[0]?.flags, [
          '\\Answered',
          '\\Flagged',
          '\\Deleted',
          '\\Draft',
          'Erledigt',
        ]);
        assert.deepEqual(await h.store.keywords(owner, 'INBOX'), ['$Label1', 'Erledigt']);
        await rejected(
          h.store.storeFlags(owner, 'INBOX', [1], { mode: 'add', flags: ['\\Recent'] }),
          'invalid',
        );
        await rejected(
          h.store.storeFlags(owner, 'INBOX', [1], { mode: 'add', flags: ['two words'] }),
          'invalid',
        );
        await rejected(h.store.storeFlags(owner, 'Nope', [1], { mode: 'add', flags: [] }), 'nonexistent');
        const s = await h.reopen();
        assert.deepEqual(
          (await s.changesSince(owner, 'INBOX', 0)).changed.map((m) => m.flags),
          [['\\Seen'], ['\\Answered', '\\Flagged', '\\Deleted', '\\Draft', 'Erledigt'], ['\\Seen']],
          'durable',
        );
        assert.ok(PERMANENT_FLAGS.includes('\\*'));
      });

      withHarness(`UNCHANGEDSINCE refuses messages changed since (${owner})`, async (h) => {
        for (const t of ['a', 'b']) await h.store.deliver(request(t, { user: owner }));
        const base = (await h.store.status(owner, 'INBOX'))?.highestModseq ?? 0;
        await h.store.storeFlags(owner, 'INBOX', [2], { mode: 'add', flags: ['\\Flagged'] });
        const r = await h.store.storeFlags(owner, 'INBOX', [1, 2], { mode: 'add', flags: ['\\Seen'] }, base);
        assert.deepEqual(r.modified, [2]);
        assert.deepEqual(
          r.messages.map((m) => [m.uid, m.flags]),
          [[1, ['\\Seen']]],
        );
      });

      withHarness(
        `append is durable, keeps flags and date, refuses a missing folder (${owner})`,
        async (h) => {
          await h.store.createFolder(owner, ENTWUERFE);
          const big = randomBytes(400_000);
          const date = Date.UTC(2020, 1, 29, 23, 59, 59);
          const r = await h.store.append(owner, ENTWUERFE_NFD, {
            flags: ['\\Draft'],
            internalDateMs: date,
            content: chunked(big),
          });
          const status = await h.store.status(owner, ENTWUERFE);
          assert.deepEqual(r, { uidValidity: status?.uidValidity, uid: 1 });
          await rejected(
            h.store.append(owner, 'Nope', {
              flags: [],
              internalDateMs: 0,
              content: chunked(Buffer.from('q')),
            }),
            'nonexistent',
          );
          const s = await h.reopen();
          assert.ok((await readMessage(await s.openMessage(owner, ENTWUERFE, 1))).equals(big));
          const [listed] = await s.list(owner, ENTWUERFE);
          assert.deepEqual([listed?.internalDateMs, listed?.flags], [date, ['\\Draft']]);
          assert.deepEqual(await s.quota(owner), { messages: 1, bytes: 400_000 });
        },
      );

      withHarness(`copy and move keep dates and flags, map UIDs, share bodies (${owner})`, async (h) => {
        await h.store.ensureDefaults(owner);
        const big = randomBytes(400_000);
        await h.store.deliver(request(big, { user: owner, internalDateMs: 1000 }));
        await h.store.deliver(request('small', { user: owner, internalDateMs: 2000 }));
        await h.store.storeFlags(owner, 'INBOX', [2], { mode: 'add', flags: ['\\Seen', '$Ok'] });
        await h.store.createFolder(owner, SHITAGAKI);
        const copied = await h.store.copy(owner, 'INBOX', [2, 1, 5], SHITAGAKI);
        assert.deepEqual(copied, {
          uidValidity: (await h.store.status(owner, SHITAGAKI))?.uidValidity,
          mapping: [
            { from: 1, to: 1 },
            { from: 2, to: 2 },
          ],
        });
        const inTarget = await h.store.list(owner, SHITAGAKI);
        assert.deepEqual(
          inTarget.map((m) => [m.uid, m.internalDateMs, m.flags]),
          [
            [1, 1000, []],
            [2, 2000, ['\\Seen', '$Ok']],
          ],
        );
        assert.deepEqual(await h.store.keywords(owner, SHITAGAKI), ['$Ok']);
        // The originals go; the copies still read whole (the bodies were shared, not freed).
        const inboxModseq = (await h.store.status(owner, 'INBOX'))?.highestModseq ?? 0;
        const moved = await h.store.move(owner, 'INBOX', [1, 2], 'Trash');
        assert.deepEqual(moved.mapping, [
          { from: 1, to: 1 },
          { from: 2, to: 2 },
        ]);
        assert.deepEqual((await h.store.changesSince(owner, 'INBOX', inboxModseq)).vanished, [1, 2]);
        assert.equal((await h.store.status(owner, 'INBOX'))?.messages, 0);
        await h.store.deleteFolder(owner, 'Trash');
        const s = await h.reopen();
        assert.ok((await readMessage(await s.openMessage(owner, SHITAGAKI, 1))).equals(big));
        assert.equal((await readMessage(await s.openMessage(owner, SHITAGAKI, 2))).toString(), 'small');
        assert.deepEqual(await s.quota(owner), { messages: 2, bytes: 400_005 });
        await rejected(s.copy(owner, SHITAGAKI, [1], 'Nope'), 'nonexistent');
        await s.deleteFolder(owner, SHITAGAKI);
        assert.deepEqual(await s.quota(owner), { messages: 0, bytes: 0 });
      });

      withHarness(`changesSince gives changed messages and vanished UIDs (${owner})`, async (h) => {
        for (let i = 0; i < 5; i++) await h.store.deliver(request(`m${i}`, { user: owner }));
        const seen = (await h.store.status(owner, 'INBOX'))?.highestModseq ?? 0;
        await h.store.storeFlags(owner, 'INBOX', [2], { mode: 'add', flags: ['\\Seen'] });
        await h.store.expunge(owner, 'INBOX', [4]);
        await h.store.deliver(request('m5', { user: owner }));
        const c = await h.store.changesSince(owner, 'INBOX', seen);
        assert.deepEqual(
          c.changed.map((m) => [m.uid, m.flags, m.modseq]),
          [
            [2, ['\\Seen'], seen + 1],
            [6, [], seen + 3],
          ],
        );
        assert.deepEqual(c.vanished, [4]);
        assert.equal(c.highestModseq, seen + 3);
        assert.deepEqual(
          (await h.store.changesSince(owner, 'INBOX', 0)).changed.map((m) => m.uid),
          [1, 2, 3, 5, 6],
        );
        assert.deepEqual((await h.store.changesSince(owner, 'INBOX', c.highestModseq)).changed, []);
      });

      withHarness(`the change feed fires after each durable change (${owner})`, async (h) => {
        await h.store.createFolder(owner, ENTWUERFE);
        const delivered = nextEvent(h.store, owner, 'INBOX');
        await h.store.deliver(request('a', { user: owner }));
        const e1 = await delivered.event;
        delivered.stop();
        assert.deepEqual(e1, { kind: 'changed', highestModseq: 2, uidNext: 2, messages: 1 });
        const events: FolderEvent[] = [];
        const stop = h.store.watch(owner, 'inbox', (e) => events.push(e));
        await h.store.storeFlags(owner, 'INBOX', [1], { mode: 'add', flags: ['\\Seen'] });
        await h.store.copy(owner, 'INBOX', [1], ENTWUERFE);
        await h.store.move(owner, ENTWUERFE, [1], 'INBOX');
        await h.store.expunge(owner, 'INBOX', [1]);
        await h.store.append(owner, 'INBOX', {
          flags: [],
          internalDateMs: 0,
          content: chunked(Buffer.from('b')),
        });
        assert.deepEqual(
          events.map((e) => (e.kind === 'changed' ? [e.highestModseq, e.messages] : e.kind)),
          [
            [3, 1],
            [4, 2],
            [5, 1],
            [6, 2],
          ],
        );
        stop();
        await h.store.deliver(request('c', { user: owner }));
        assert.equal(events.length, 4, 'no events after unsubscribing');
        const gone = nextEvent(h.store, owner, ENTWUERFE);
        await h.store.renameFolder(owner, ENTWUERFE, 'Alt');
        assert.deepEqual(await gone.event, { kind: 'gone' });
        gone.stop();
      });

      withHarness(
        `the folder list feed reports creates, deletes, renames, subscriptions (${owner})`,
        async (h) => {
          await h.store.ensureDefaults(owner);
          const events: FolderListEvent[] = [];
          const stop = h.store.watchFolderList(owner.toUpperCase(), (e) => events.push(e));
          await h.store.createFolder(owner, ENTWUERFE);
          await h.store.createFolder(owner, `${ENTWUERFE}/日本`);
          await h.store.subscribe(owner, ENTWUERFE);
          await h.store.subscribe(owner, ENTWUERFE);
          await h.store.renameFolder(owner, ENTWUERFE, 'Alt');
          await h.store.unsubscribe(owner, 'Alt');
          await h.store.unsubscribe(owner, 'Alt');
          await h.store.deleteFolder(owner, 'Alt/日本');
          await h.store.renameFolder(owner, 'INBOX', 'Old');
          await rejected(h.store.createFolder(owner, 'Old'), 'alreadyexists');
          assert.deepEqual(events, [
            { kind: 'created', name: ENTWUERFE },
            { kind: 'created', name: `${ENTWUERFE}/日本` },
            { kind: 'subscribed', name: ENTWUERFE },
            { kind: 'renamed', from: ENTWUERFE, to: 'Alt' },
            { kind: 'renamed', from: `${ENTWUERFE}/日本`, to: 'Alt/日本' },
            { kind: 'unsubscribed', name: 'Alt' },
            { kind: 'deleted', name: 'Alt/日本' },
            { kind: 'created', name: 'Old' },
          ]);
          stop();
          await h.store.createFolder(owner, 'Later');
          assert.equal(events.length, 8, 'nothing after the listener stopped');
        },
      );

      withHarness(`another process's changes reach the watchers (${owner})`, async (h) => {
        await h.store.ensureDefaults(owner);
        const other = await h.openOther();
        try {
          const seen = nextEvent(h.store, owner, 'INBOX');
          const startedMs = Date.now();
          await other.deliver(request('from the CLI', { user: owner }));
          assert.deepEqual(await seen.event, { kind: 'changed', highestModseq: 2, uidNext: 2, messages: 1 });
          seen.stop();
          // The poll is every 50 ms: well within the 100 ms IDLE must be told in (slack for a busy CI).
          assert.ok(Date.now() - startedMs < 1000, `took ${Date.now() - startedMs} ms`);
          const flagged = nextEvent(h.store, owner, 'INBOX');
          await other.storeFlags(owner, 'INBOX', [1], { mode: 'add', flags: ['\\Deleted'] });
          assert.equal(((await flagged.event) as { highestModseq: number }).highestModseq, 3);
          flagged.stop();
        } finally {
          await other.close();
        }
      });

      withHarness(`messages(): metadata in UID order, only UIDs that exist (${owner})`, async (h) => {
        const t1 = Date.UTC(2026, 2, 1, 8, 0, 0);
        h.setNowMs(t1);
        let ended = false;
        async function* tracked(): AsyncIterable<Uint8Array> {
          yield* chunked(Buffer.from('Subject: eins\r\n\r\nÄpfel 日本\r\n'));
          ended = true;
        }
        // The structure is asked for once the content has ended (the caller scanned every chunk).
        await h.store.deliver(
          request('', {
            user: owner,
            internalDateMs: 1000,
            content: tracked(),
            structure: () => (ended ? 'S-eins' : 'asked too early'),
          }),
        );
        for (const t of ['zwei', 'drei', 'vier']) {
          await h.store.deliver(request(t, { user: owner, internalDateMs: 2000 }));
        }
        await h.store.expunge(owner, 'INBOX', [2]);
        await h.store.storeFlags(owner, 'INBOX', [3], { mode: 'add', flags: ['\\Seen', '$Wichtig'] });
        const status = await h.store.status(owner, 'INBOX');
        const all = await h.store.messages(owner, 'inbox', 'all');
        assert.deepEqual(
          all.map((m) => [m.uid, m.sizeBytes, m.internalDateMs, m.saveDateMs, m.flags, m.threadId]),
          [
            [1, Buffer.byteLength('Subject: eins\r\n\r\nÄpfel 日本\r\n'), 1000, t1, [], null],
            [3, 4, 2000, t1, ['\\Seen', '$Wichtig'], null],
            [4, 4, 2000, t1, [], null],
          ],
        );
        assert.deepEqual(
          all.map((m) => m.structure),
          ['S-eins', null, null],
        );
        assert.equal(all[1]?.modseq, status?.highestModseq);
        assert.ok(
          all.every((m) => OBJECTID.test(m.emailId)),
          'EMAILIDs are RFC 8474 objectids',
        );
        assert.equal(new Set(all.map((m) => m.emailId)).size, 3, 'one EMAILID per stored message');
        // Missing, repeated, unordered and junk UIDs: only the messages that exist, in UID order, once.
        assert.deepEqual(
          (await h.store.messages(owner, 'INBOX', [4, 99, 2, 1, 1, 0, -3, 1.5])).map((m) => m.uid),
          [1, 4],
        );
        assert.deepEqual(await h.store.messages(owner, 'INBOX', []), []);
        assert.deepEqual(await h.store.messages(owner, 'INBOX', [2]), []);
        await rejected(h.store.messages(owner, 'Nope', 'all'), 'nonexistent');
        await h.store.createFolder(owner, SHITAGAKI);
        await h.store.deleteFolder(owner, NIHONGO);
        await rejected(h.store.messages(owner, NIHONGO, 'all'), 'noselect');
        assert.deepEqual(await h.store.messages(owner, SHITAGAKI.normalize('NFD'), 'all'), []);
        const s = await h.reopen();
        assert.deepEqual(await s.messages(owner, 'INBOX', 'all'), all, 'durable');
      });

      withHarness(`append and deliver: save date is now, structure kept (${owner})`, async (h) => {
        await h.store.createFolder(owner, ENTWUERFE);
        h.setNowMs(Date.UTC(2026, 3, 1));
        await h.store.append(owner, ENTWUERFE_NFD, {
          flags: ['\\Draft'],
          internalDateMs: Date.UTC(2020, 0, 1),
          content: chunked(Buffer.from('Entwurf')),
          structure: () => 'S-entwurf',
        });
        h.setNowMs(Date.UTC(2026, 3, 2));
        await h.store.deliver(request('x', { user: owner, mailbox: ENTWUERFE, structure: () => 'S-x' }));
        assert.deepEqual(
          (await h.store.messages(owner, ENTWUERFE, 'all')).map((m) => [
            m.internalDateMs,
            m.saveDateMs,
            m.structure,
          ]),
          [
            [Date.UTC(2020, 0, 1), Date.UTC(2026, 3, 1), 'S-entwurf'],
            [Date.UTC(2026, 0, 15, 12, 0, 0), Date.UTC(2026, 3, 2), 'S-x'],
          ],
        );
      });

      withHarness(`copies share the EMAILID, move keeps it, save date is new (${owner})`, async (h) => {
        await h.store.createFolder(owner, SHITAGAKI);
        await h.store.createFolder(owner, ENTWUERFE);
        const t1 = Date.UTC(2026, 4, 1);
        h.setNowMs(t1);
        const big = randomBytes(400_000);
        await h.store.deliver(request(big, { user: owner, internalDateMs: 1000, structure: () => 'S-big' }));
        await h.store.deliver(
          request('klein', { user: owner, internalDateMs: 2000, structure: () => 'S-k' }),
        );
        await h.store.storeFlags(owner, 'INBOX', [2], { mode: 'add', flags: ['\\Flagged', '$Ok'] });
        const original = await h.store.messages(owner, 'INBOX', 'all');
        const t2 = t1 + 60_000;
        h.setNowMs(t2);
        await h.store.copy(owner, 'INBOX', [1, 2], SHITAGAKI);
        const copies = await h.store.messages(owner, SHITAGAKI, 'all');
        const kept = (ms: readonly MessageMeta[]): unknown[] =>
          ms.map((m) => [m.emailId, m.structure, m.flags, m.internalDateMs, m.sizeBytes]);
        assert.deepEqual(kept(copies), kept(original), 'EMAILID, structure, flags, date, size kept');
        assert.deepEqual(
          copies.map((m) => m.saveDateMs),
          [t2, t2],
        );
        assert.deepEqual(
          (await h.store.messages(owner, 'INBOX', 'all')).map((m) => m.saveDateMs),
          [t1, t1],
          'the originals keep theirs',
        );
        const t3 = t2 + 60_000;
        h.setNowMs(t3);
        await h.store.move(owner, SHITAGAKI, [2, 1], ENTWUERFE);
        const moved = await h.store.messages(owner, ENTWUERFE, 'all');
        assert.deepEqual(kept(moved), kept(original));
        assert.deepEqual(
          moved.map((m) => m.saveDateMs),
          [t3, t3],
        );
        // The same bytes delivered again are another message: a new EMAILID, never one in use.
        await h.store.deliver(request('klein', { user: owner }));
        const again = await h.store.messages(owner, 'INBOX', [3]);
        assert.ok(again[0] !== undefined && !original.some((m) => m.emailId === again[0]?.emailId));
        const s = await h.reopen();
        assert.deepEqual(kept(await s.messages(owner, ENTWUERFE, 'all')), kept(original), 'durable');
      });

      withHarness(
        `setStructure keeps a structure found later, without a new modseq (${owner})`,
        async (h) => {
          await h.store.createFolder(owner, ENTWUERFE);
          await h.store.deliver(request('ohne', { user: owner }));
          await h.store.deliver(request('mit', { user: owner, structure: () => 'S-mit' }));
          await h.store.copy(owner, 'INBOX', [1, 2], ENTWUERFE);
          const before = await h.store.status(owner, 'INBOX');
          const seen: FolderEvent[] = [];
          const stop = h.store.watch(owner, 'INBOX', (e) => seen.push(e));
          await h.store.setStructure(owner, 'inbox', 1, 'S-später');
          await h.store.setStructure(owner, 'INBOX', 2, 'S-neu');
          await h.store.setStructure(owner, 'INBOX', 77, 'S-keiner');
          stop();
          assert.deepEqual(
            (await h.store.messages(owner, 'INBOX', 'all')).map((m) => m.structure),
            ['S-später', 'S-neu'],
          );
          assert.deepEqual(await h.store.status(owner, 'INBOX'), before, 'not a change: no modseq');
          assert.deepEqual(seen, [], 'nothing for watchers');
          assert.deepEqual(
            (await h.store.changesSince(owner, 'INBOX', before?.highestModseq ?? 0)).changed,
            [],
          );
          // The copy shares the bytes: one stored without a structure gets it too, one with keeps its own.
          assert.deepEqual(
            (await h.store.messages(owner, ENTWUERFE, 'all')).map((m) => m.structure),
            ['S-später', 'S-mit'],
          );
          await rejected(h.store.setStructure(owner, 'Nope', 1, 'S'), 'nonexistent');
          const s = await h.reopen();
          assert.equal((await s.messages(owner, 'INBOX', [1]))[0]?.structure, 'S-später', 'durable');
        },
      );

      withHarness(`openRange reads [start, end) of BLOB and file bodies, clamped (${owner})`, async (h) => {
        await h.store.createFolder(owner, NIHONGO);
        const small = Buffer.from('Subject: Grüße\r\n\r\nこんにちは 日本\r\n');
        const big = randomBytes(400_000);
        await h.store.append(owner, NIHONGO, { flags: [], internalDateMs: 0, content: chunked(small) });
        await h.store.append(owner, NIHONGO, { flags: [], internalDateMs: 0, content: chunked(big) });
        const range = async (uid: number, start: number, end: number): Promise<Buffer> =>
          readMessage(await h.store.openRange(owner, NIHONGO, uid, { start, end }));
        for (const [uid, bytes] of [
          [1, small],
          [2, big],
        ] as const) {
          const size = bytes.byteLength;
          assert.ok((await range(uid, 0, size)).equals(bytes), 'whole');
          assert.ok((await range(uid, 3, 17)).equals(bytes.subarray(3, 17)));
          assert.ok(
            (await range(uid, size - 4, size + 1000)).equals(bytes.subarray(size - 4)),
            'end clamped',
          );
          assert.ok((await range(uid, -10, 5)).equals(bytes.subarray(0, 5)), 'start clamped');
          assert.equal((await range(uid, 9, 9)).byteLength, 0, 'empty');
          assert.equal((await range(uid, 9, 2)).byteLength, 0, 'end before start');
          assert.equal((await range(uid, size + 5, size + 50)).byteLength, 0, 'past the end');
        }
        // Across read chunks of a file body.
        assert.ok((await range(2, 65_000, 300_123)).equals(big.subarray(65_000, 300_123)));
        assert.equal(await h.store.openRange(owner, NIHONGO, 3, { start: 0, end: 10 }), null);
        assert.equal(await h.store.openRange(owner, 'Nope', 1, { start: 0, end: 10 }), null);
        // Opened, then expunged: still reads whole, as openMessage does.
        const openSmall = await h.store.openRange(owner, NIHONGO, 1, { start: 18, end: small.byteLength });
        const openBig = await h.store.openRange(owner, NIHONGO, 2, { start: 1, end: 399_999 });
        await h.store.expunge(owner, NIHONGO, [1, 2]);
        assert.ok((await readMessage(openSmall)).equals(small.subarray(18)));
        assert.ok((await readMessage(openBig)).equals(big.subarray(1, 399_999)));
        assert.equal(await h.store.openRange(owner, NIHONGO, 2, { start: 0, end: 10 }), null);
      });

      withHarness(`folderStatus counts unseen and deleted after changes (${owner})`, async (h) => {
        await h.store.ensureDefaults(owner);
        await h.store.createFolder(owner, ENTWUERFE);
        const empty = await h.store.folderStatus(owner, ENTWUERFE_NFD);
        assert.deepEqual(
          [empty.messages, empty.unseen, empty.deleted, empty.firstUnseenUid, empty.uidNext],
          [0, 0, 0, null, 1],
        );
        await h.store.append(owner, ENTWUERFE, {
          flags: ['\\seen'],
          internalDateMs: 0,
          content: chunked(Buffer.from('eins')),
        });
        for (const t of ['zwei', 'drei', 'vier', 'fünf']) {
          await h.store.append(owner, ENTWUERFE, {
            flags: [],
            internalDateMs: 0,
            content: chunked(Buffer.from(t)),
          });
        }
        const counts = async (): Promise<unknown[]> => {
          const f = await h.store.folderStatus(owner, ENTWUERFE);
          return [f.messages, f.unseen, f.deleted, f.firstUnseenUid];
        };
        const first = await h.store.folderStatus(owner, ENTWUERFE);
        const { uidValidity, uidNext, messages, sizeBytes, highestModseq } = first;
        assert.deepEqual(
          { uidValidity, uidNext, messages, sizeBytes, highestModseq },
          await h.store.status(owner, ENTWUERFE),
        );
        assert.equal(sizeBytes, 4 + 4 + 4 + 4 + Buffer.byteLength('fünf'));
        assert.ok(OBJECTID.test(first.mailboxId));
        assert.deepEqual(await counts(), [5, 4, 0, 2]);
        await h.store.storeFlags(owner, ENTWUERFE, [2, 3], { mode: 'add', flags: ['\\Seen'] });
        assert.deepEqual(await counts(), [5, 2, 0, 4]);
        await h.store.storeFlags(owner, ENTWUERFE, [1, 4], { mode: 'add', flags: ['\\Deleted', '$x'] });
        assert.deepEqual(await counts(), [5, 2, 2, 4]);
        await h.store.storeFlags(owner, ENTWUERFE, [1], { mode: 'remove', flags: ['\\SEEN'] });
        assert.deepEqual(await counts(), [5, 3, 2, 1]);
        await h.store.storeFlags(owner, ENTWUERFE, [4], { mode: 'replace', flags: ['\\Seen'] });
        assert.deepEqual(await counts(), [5, 2, 1, 1]);
        await h.store.expunge(owner, ENTWUERFE, [1, 4]);
        assert.deepEqual(await counts(), [3, 1, 0, 5]);
        await h.store.move(owner, ENTWUERFE, [5], 'INBOX');
        assert.deepEqual(await counts(), [2, 0, 0, null]);
        const inbox = await h.store.folderStatus(owner, 'INBOX');
        assert.deepEqual([inbox.messages, inbox.unseen, inbox.firstUnseenUid], [1, 1, 1]);
        const s = await h.reopen();
        assert.equal(
          (await s.folderStatus(owner, ENTWUERFE)).highestModseq,
          (await s.status(owner, ENTWUERFE))?.highestModseq,
        );
        await rejected(s.folderStatus(owner, 'Nope'), 'nonexistent');
        await s.createFolder(owner, SHITAGAKI);
        await s.deleteFolder(owner, NIHONGO);
        await rejected(s.folderStatus(owner, NIHONGO), 'noselect');
      });

      withHarness(`MAILBOXID: kept across rename, new for a new folder (${owner})`, async (h) => {
        await h.store.ensureDefaults(owner);
        await h.store.createFolder(owner, SHITAGAKI);
        await h.store.createFolder(owner, ENTWUERFE);
        const idOf = async (name: string): Promise<string | null | undefined> =>
          (await h.store.folders(owner)).find((f) => f.name === name)?.mailboxId;
        const ids = new Map((await h.store.folders(owner)).map((f) => [f.name, f.mailboxId]));
        assert.ok([...ids.values()].every((id) => id !== null && OBJECTID.test(id)));
        assert.equal(new Set(ids.values()).size, ids.size, 'one per folder');
        assert.equal((await h.store.folderStatus(owner, SHITAGAKI)).mailboxId, ids.get(SHITAGAKI));
        await h.store.renameFolder(owner, NIHONGO, 'Projekte/日本');
        assert.equal(await idOf('Projekte/日本'), ids.get(NIHONGO));
        assert.equal(await idOf('Projekte/日本/下書き'), ids.get(SHITAGAKI));
        const projekte = await idOf('Projekte');
        assert.ok(typeof projekte === 'string' && ![...ids.values()].includes(projekte));
        // Deleted and created again: a new folder, a new id.
        await h.store.deleteFolder(owner, ENTWUERFE);
        await h.store.createFolder(owner, ENTWUERFE);
        const recreated = await idOf(ENTWUERFE);
        assert.ok(typeof recreated === 'string' && recreated !== ids.get(ENTWUERFE));
        // RFC 8474 §4.1: INBOX renamed keeps its id, the new folder gets a new one; the messages keep theirs.
        await h.store.deliver(request('a', { user: owner }));
        const emailIds = (await h.store.messages(owner, 'INBOX', 'all')).map((m) => m.emailId);
        await h.store.renameFolder(owner, 'INBOX', 'Alt');
        assert.equal(await idOf('INBOX'), ids.get('INBOX'));
        const alt = await idOf('Alt');
        assert.ok(typeof alt === 'string' && alt !== ids.get('INBOX'));
        assert.deepEqual(
          (await h.store.messages(owner, 'Alt', 'all')).map((m) => m.emailId),
          emailIds,
        );
        // A name listed only because a delivery made its child has no folder, so no id.
        await h.store.deliver(request('b', { user: owner, mailbox: 'Kunden/Jürgen' }));
        assert.equal(await idOf('Kunden'), null);
        assert.ok(OBJECTID.test((await idOf('Kunden/Jürgen')) ?? ''));
        const s = await h.reopen();
        assert.equal(
          (await s.folders(owner)).find((f) => f.name === 'Projekte/日本')?.mailboxId,
          ids.get(NIHONGO),
        );
      });

      withHarness(
        `URLAUTH access keys: made once, durable, reset, gone with the folder (${owner})`,
        async (h) => {
          await h.store.ensureDefaults(owner);
          await h.store.createFolder(owner, SHITAGAKI);
          assert.equal(await h.store.accessKey(owner, SHITAGAKI, false), null);
          const key = await h.store.accessKey(owner, SHITAGAKI, true);
          assert.ok(key !== null && key.length >= 16, 'at least 128 bits (RFC 4467 §7)');
          assert.deepEqual(await h.store.accessKey(owner, SHITAGAKI, true), key, 'made once');
          assert.deepEqual(await h.store.accessKey(owner, SHITAGAKI.normalize('NFD'), false), key);
          const inbox = await h.store.accessKey(owner, 'INBOX', true);
          assert.notDeepEqual(inbox, key, 'one key per folder');
          // Another user's folder of the same name has its own key.
          await h.store.ensureDefaults(BOB);
          assert.notDeepEqual(await h.store.accessKey(BOB, 'INBOX', true), inbox);
          const s = await h.reopen();
          assert.deepEqual(await s.accessKey(owner, SHITAGAKI, false), key, 'durable');
          await s.resetAccessKeys(owner, SHITAGAKI);
          assert.equal(await s.accessKey(owner, SHITAGAKI, false), null);
          assert.deepEqual(await s.accessKey(owner, 'INBOX', false), inbox, 'other folders keep theirs');
          const fresh = await s.accessKey(owner, SHITAGAKI, true);
          assert.notDeepEqual(fresh, key, 'a reset key is never made again');
          await s.resetAccessKeys(owner, null);
          assert.equal(await s.accessKey(owner, 'INBOX', false), null);
          assert.equal(await s.accessKey(owner, SHITAGAKI, false), null);
          assert.ok((await s.accessKey(BOB, 'INBOX', false)) !== null, "another user's keys stay");
          // Deleted and created again: the old key does not come back.
          const before = await s.accessKey(owner, SHITAGAKI, true);
          await s.deleteFolder(owner, SHITAGAKI);
          await s.createFolder(owner, SHITAGAKI);
          assert.equal(await s.accessKey(owner, SHITAGAKI, false), null);
          assert.notDeepEqual(await s.accessKey(owner, SHITAGAKI, true), before);
          await rejected(s.accessKey(owner, 'Nirgends', true), 'nonexistent');
          await rejected(s.resetAccessKeys(owner, 'Nirgends'), 'nonexistent');
        },
      );
    }
  });
}
