// The MailboxStore contract: what every implementation must do, as one node:test suite each
// implementation's test file runs with its own harness. Covers durable delivery across a restart,
// UIDs that only grow (and survive restarts), deliveryKey idempotency, large bodies byte-exact,
// per-user and per-mailbox separation, ids the CLI can pass back, and a full disk (452 4.3.1).
// Not here: where bytes live (files vs BLOBs): that is each implementation's own test.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Replies, ReplyError } from '../core/reply.ts';
import type { DeliverRequest, MailboxStore } from './mailbox-store.ts';

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

function isInsufficientStorage(err: unknown): boolean {
  return err instanceof ReplyError && err.reply === Replies.insufficientStorage;
}

export function runMailboxStoreContract(name: string, make: () => Promise<MailboxStoreHarness>): void {
  void describe(`MailboxStore contract: ${name}`, () => {
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
      assert.equal(h.store.read(BOB, a.id), null);
      assert.deepEqual(
        (await h.store.list(ALICE, 'Archive')).map((m) => [m.id, m.mailbox]),
        [[x.id, 'Archive']],
      );
      assert.notEqual(x.id, a.id);
      assert.deepEqual(await h.store.list(ALICE, 'Nope'), []);
      for (const bad of ['99', '0', '-1', 'x', '', '1.5', 'Nope/1', '01'])
        assert.equal(h.store.read(ALICE, bad), null, bad);
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
  });
}
