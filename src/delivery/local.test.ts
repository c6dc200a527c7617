import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Envelope } from '../core/envelope.ts';
import { encodeStructure } from '../protocol/mime/codec.ts';
import { scanMessage } from '../protocol/mime/structure.ts';
import type { DeliverRequest, MailboxStore, MessageSummary } from '../store/mailbox-store.ts';
import { deliverLocal, finalDeliveryHeaders, localDeliveryKey } from './local.ts';

function envelope(sender: string): Envelope {
  return {
    sender,
    body: '8BITMIME',
    smtputf8: false,
    ret: null,
    envid: null,
    recipients: [{ address: 'alice@example.org', notify: null, orcpt: null }],
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
    receivedAtMs: 1_700_000_000_000,
  };
}

type Recorded = Omit<DeliverRequest, 'content' | 'structure'> & { text: string };

/** Records what deliver() was given, content read to the end, and the structure asked for after that. */
function recordingStore(): MailboxStore & { got: Recorded[]; structures: (string | null)[] } {
  const got: Recorded[] = [];
  const structures: (string | null)[] = [];
  return {
    got,
    structures,
    async deliver(req) {
      const chunks: Uint8Array[] = [];
      for await (const c of req.content) chunks.push(c);
      const { content: _content, structure, ...rest } = req;
      structures.push(structure?.() ?? null);
      got.push({ ...rest, text: Buffer.concat(chunks).toString('utf8') });
      return { uid: got.length, id: `1-${got.length}` };
    },
    list: (): Promise<MessageSummary[]> => Promise.resolve([]),
    read: () => null,
    status: () => Promise.resolve(null),
    snapshot: () => Promise.resolve(null),
    openMessage: () => Promise.resolve(null),
    expunge: () => Promise.resolve([]),
    deliverAccepted: () => Promise.reject(new Error('not used by local delivery')),
    quota: () => Promise.resolve({ messages: 0, bytes: 0 }),
    close: () => Promise.resolve(),
  };
}

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) {
    await Promise.resolve(); // a real queue reads a file
    yield new TextEncoder().encode(p);
  }
}

const message = 'From: Bob <bob@example.net>\r\nSubject: hi\r\n\r\nHello Alice\r\n';

test('prepends Return-Path and Delivered-To and stores in INBOX under the idempotency key', async () => {
  const store = recordingStore();
  const result = await deliverLocal(
    { store, clock: { nowMs: () => 1_700_000_123_000 } },
    {
      queueId: 'Q123',
      recipientIndex: 2,
      user: 'alice@example.org',
      envelope: envelope('bob@example.net'),
      body: () => chunks(message.slice(0, 10), message.slice(10)),
      summary: { from: 'Bob <bob@example.net>', subject: 'hi', date: '' },
    },
  );
  assert.deepEqual(result, { uid: 1, id: '1-1' });
  assert.deepEqual(store.got, [
    {
      user: 'alice@example.org',
      mailbox: 'INBOX',
      internalDateMs: 1_700_000_123_000,
      flags: [],
      deliveryKey: 'Q123/2/alice@example.org',
      summary: { from: 'Bob <bob@example.net>', subject: 'hi', date: '' },
      text: `Return-Path: <bob@example.net>\r\nDelivered-To: alice@example.org\r\n${message}`,
    },
  ]);
});

test('the null sender becomes Return-Path: <>', async () => {
  const store = recordingStore();
  await deliverLocal(
    { store, clock: { nowMs: () => 0 } },
    {
      queueId: 'Q1',
      recipientIndex: 0,
      user: 'alice@example.org',
      envelope: envelope(''),
      body: () => chunks(message),
      summary: { from: '', subject: '', date: '' },
    },
  );
  assert.ok(store.got[0]!.text.startsWith('Return-Path: <>\r\nDelivered-To: alice@example.org\r\nFrom: Bob'));
});

test('keys differ per user, so one recipient expanding to several users stores one copy each', () => {
  assert.notEqual(localDeliveryKey('Q1', 0, 'a@example.org'), localDeliveryKey('Q1', 0, 'b@example.org'));
  assert.notEqual(localDeliveryKey('Q1', 0, 'a@example.org'), localDeliveryKey('Q1', 1, 'a@example.org'));
  assert.equal(localDeliveryKey('Q1', 0, 'a@example.org'), localDeliveryKey('Q1', 0, 'a@example.org'));
});

test('a line break in an address is refused rather than written into the header', () => {
  assert.throws(() => finalDeliveryHeaders('evil@example.net>\r\nX-Injected: yes', 'alice@example.org'));
  assert.throws(() => finalDeliveryHeaders('bob@example.net', 'alice@example.org\nX: y'));
  assert.equal(
    finalDeliveryHeaders('"john doe"@example.net', 'alice@example.org'),
    'Return-Path: <"john doe"@example.net>\r\nDelivered-To: alice@example.org\r\n',
  );
});

test('Return-Path: fields the message carried are removed: exactly one, ours, remains (RFC 5321 §4.4)', async () => {
  const store = recordingStore();
  const carried =
    'Return-Path: <forged@example.net>\r\nFrom: Bob <bob@example.net>\r\nreturn-path:\r\n <x@y>\r\n';
  await deliverLocal(
    { store, clock: { nowMs: () => 0 } },
    {
      queueId: 'Q2',
      recipientIndex: 0,
      user: '日本@example.org',
      envelope: envelope('jürgen@example.net'),
      body: () => chunks(carried.slice(0, 7), `${carried.slice(7)}Subject: hi\r\n\r\nHello\r\n`),
      summary: { from: '', subject: '', date: '' },
    },
  );
  assert.equal(
    store.got[0]!.text,
    'Return-Path: <jürgen@example.net>\r\nDelivered-To: 日本@example.org\r\n' +
      'From: Bob <bob@example.net>\r\nSubject: hi\r\n\r\nHello\r\n',
  );
});

async function* byteChunks(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += size) {
    await Promise.resolve();
    yield bytes.subarray(i, i + size);
  }
}

const multipart = [
  'From: =?UTF-8?Q?J=C3=BCrgen?= <jürgen@example.net>',
  'To: 日本 <日本@example.org>',
  'Subject: Grüße',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Hallo, 日本!',
  '--b1',
  'Content-Type: application/octet-stream; name="a.bin"',
  'Content-Transfer-Encoding: base64',
  '',
  'AAEC',
  '--b1--',
  '',
].join('\r\n');

for (const [title, user, sender, body] of [
  ['ASCII', 'alice@example.org', 'bob@example.net', message],
  ['UTF-8', '日本@example.org', 'jürgen@example.net', multipart],
] as const) {
  test(`the store is given the MIME structure of the bytes it stored (${title})`, async () => {
    const store = recordingStore();
    await deliverLocal(
      { store, clock: { nowMs: () => 0 } },
      {
        queueId: 'Q3',
        recipientIndex: 0,
        user,
        envelope: envelope(sender),
        // 7-byte chunks split lines and multi-byte characters: the scanner sees the chunks as they come.
        body: () => byteChunks(new TextEncoder().encode(body), 7),
        summary: { from: '', subject: '', date: '' },
      },
    );
    const stored = new TextEncoder().encode(store.got[0]!.text);
    // Offsets count the prepended Return-Path: and Delivered-To: too, as FETCH will read them.
    assert.equal(store.structures[0], encodeStructure(scanMessage(stored)));
    assert.ok(store.structures[0].length > 0);
  });
}
