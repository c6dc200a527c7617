import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Envelope } from '../../core/envelope.ts';
import { openQueue } from '../../main.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';
import { readHeaderSection } from './queue.ts';
import { nullLogger } from '../../core/ports.ts';

const ARRIVAL_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NEXT_MS = Date.UTC(2026, 0, 15, 12, 30, 0);

const envelope: Envelope = {
  sender: 'bob@example.org',
  body: '8BITMIME',
  smtputf8: false,
  ret: 'HDRS',
  envid: 'env-42',
  recipients: [
    { address: 'carol@remote.example', notify: ['FAILURE', 'DELAY'], orcpt: null },
    {
      address: 'dave@remote.example',
      notify: null,
      orcpt: { addrType: 'rfc822', address: 'Dave@remote.example' },
    },
  ],
  client: {
    ip: '192.0.2.7',
    port: 40123,
    hostname: 'client.example.org',
    helo: 'client.example.org',
    esmtp: true,
    tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    authUser: null,
    service: 'smtp',
  },
  receivedAtMs: ARRIVAL_MS,
};

const MESSAGE =
  'Received: from client.example.org\r\n\tby localhost; Thu, 15 Jan 2026 12:00:00 +0000\r\n' +
  'From: bob@example.org\r\nSubject: queued\r\n\r\nbody text that queue show must not print\r\n';

describe('tern queue', () => {
  let box: Sandbox;
  let id: string;
  before(async () => {
    box = await createSandbox();
    const queue = await openQueue(box.config(), { nowMs: () => ARRIVAL_MS }, nullLogger);
    try {
      const writer = queue.begin();
      await writer.write(Buffer.from(MESSAGE));
      await writer.commit(envelope);
      id = writer.id;
      await queue.settle(id, 1, {
        status: 'deferred',
        reply: '451 4.4.1 connection refused',
        nextAttemptMs: NEXT_MS,
      });
    } finally {
      await queue.close();
    }
  });
  after(() => box.remove());

  test('list --json gives the envelope and every recipient with its state', async () => {
    const r = await box.tern(['queue', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { recipients: Record<string, unknown>[] }[];
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0], {
      id,
      sender: 'bob@example.org',
      size: Buffer.byteLength(MESSAGE),
      arrival: '2026-01-15T12:00:00.000Z',
      held: false,
      recipients: [
        {
          address: 'carol@remote.example',
          status: 'queued',
          attempts: 0,
          nextAttempt: rows[0]!.recipients[0]!['nextAttempt'],
          lastReply: null,
        },
        {
          address: 'dave@remote.example',
          status: 'deferred',
          attempts: 1,
          nextAttempt: '2026-01-15T12:30:00.000Z',
          lastReply: '451 4.4.1 connection refused',
        },
      ],
    });
    assert.match(String(rows[0].recipients[0]!['nextAttempt']), /^\d{4}-\d\d-\d\dT/);
  });

  test('list without --json shows the message and the reason for each recipient', async () => {
    const r = await box.tern(['queue', 'list']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `^${id}  ${Buffer.byteLength(MESSAGE)} bytes  2026-01-15T12:00:00.000Z  <bob@example.org>\n`,
      ),
    );
    assert.match(
      r.stdout,
      /\n {4}dave@remote\.example {2}deferred {2}attempts 1 {2}next 2026-01-15T12:30:00\.000Z {2}451 4\.4\.1 connection refused\n/,
    );
  });

  test('show prints envelope, recipients and the headers, not the body', async () => {
    const r = await box.tern(['queue', 'show', id]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^id: +${id}\n`));
    assert.match(r.stdout, /\nsender: +<bob@example\.org>\n/);
    assert.match(
      r.stdout,
      /\nclient: +client\.example\.org \[192\.0\.2\.7\]:40123 helo=client\.example\.org service=smtp tls=TLSv1\.3/,
    );
    assert.match(r.stdout, /\nenvid: +env-42\n/);
    assert.match(r.stdout, /\n {4}notify: +FAILURE,DELAY\n/);
    assert.match(r.stdout, /\n {4}orcpt: +rfc822;Dave@remote\.example\n/);
    assert.match(r.stdout, /\n {4}last reply: +451 4\.4\.1 connection refused\n/);
    assert.ok(
      r.stdout.endsWith(
        'headers:\nReceived: from client.example.org\n\tby localhost; Thu, 15 Jan 2026 12:00:00 +0000\n' +
          'From: bob@example.org\nSubject: queued\n',
      ),
      r.stdout,
    );
    assert.doesNotMatch(r.stdout, /must not print/);
  });

  test('show of an unknown id fails with a message', async () => {
    const r = await box.tern(['queue', 'show', 'NOSUCHID']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tern: no queued message NOSUCHID\n');
  });
});

test('queue list on an empty queue says so; --json gives []', async () => {
  const box = await createSandbox();
  try {
    assert.equal((await box.tern(['queue', 'list'])).stdout, 'queue is empty\n');
    assert.equal((await box.tern(['queue', 'list', '--json'])).stdout, '[]\n');
  } finally {
    await box.remove();
  }
});

test('readHeaderSection stops at the empty line, across chunk boundaries, LF or CRLF', async () => {
  const chunks = ['Subject: a\r', '\nX: b\r\n\r', '\nbody\r\n'].map((s) => Buffer.from(s));
  assert.deepEqual(await readHeaderSection(Readable.from(chunks)), {
    text: 'Subject: a\r\nX: b',
    cut: false,
  });
  assert.deepEqual(await readHeaderSection(Readable.from([Buffer.from('A: 1\nB: 2\n\nbody')])), {
    text: 'A: 1\nB: 2',
    cut: false,
  });
  assert.deepEqual(await readHeaderSection(Readable.from([Buffer.from('Only: header\r\n')])), {
    text: 'Only: header',
    cut: false,
  });
  const huge = await readHeaderSection(Readable.from([Buffer.alloc(300 * 1024, 'a')]));
  assert.equal(huge.cut, true);
  assert.equal(huge.text.length, 256 * 1024);
});
