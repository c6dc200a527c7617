import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../core/ports.ts';
import { openStore } from '../../main.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

// CRLF, a bare 8-bit byte and no final newline: `cat` must give back exactly these bytes.
const RAW = Buffer.concat([
  Buffer.from('Return-Path: <bob@example.org>\r\nFrom: Bob <bob@example.org>\r\nSubject: Hello\r\n'),
  Buffer.from('Date: Thu, 15 Jan 2026 12:00:00 +0000\r\n\r\nlatin-1 byte: '),
  Buffer.from([0xe9]),
  Buffer.from('\r\nlast line without newline'),
]);

describe('tern mailbox', () => {
  let box: Sandbox;
  let id: string;
  before(async () => {
    box = await createSandbox();
    assert.equal((await box.tern(['user', 'add', 'alice@example.test'])).code, 0);
    assert.equal((await box.tern(['user', 'add', 'empty@example.test'])).code, 0);
    const store = await openStore(box.config(), systemClock);
    try {
      const delivered = await store.deliver({
        user: 'alice@example.test',
        mailbox: 'INBOX',
        internalDateMs: Date.UTC(2026, 0, 15, 12, 0, 5),
        flags: [],
        deliveryKey: 'q1/0',
        summary: { from: 'Bob <bob@example.org>', subject: 'Hello', date: 'Thu, 15 Jan 2026 12:00:00 +0000' },
        content: Readable.from([RAW.subarray(0, 10), RAW.subarray(10)]),
      });
      id = delivered.id;
    } finally {
      await store.close();
    }
  });
  after(() => box.remove());

  test('list --json gives id, from, subject, size, date, uid, flags, internalDate', async () => {
    const r = await box.tern(['mailbox', 'list', 'Alice@Example.test', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0], {
      id,
      uid: 1,
      mailbox: 'INBOX',
      from: 'Bob <bob@example.org>',
      subject: 'Hello',
      size: RAW.length,
      date: 'Thu, 15 Jan 2026 12:00:00 +0000',
      flags: [],
      internalDate: '2026-01-15T12:00:05.000Z',
    });
  });

  test('list without --json is one line per message with id, size and subject', async () => {
    const r = await box.tern(['mailbox', 'list', 'alice@example.test']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(
      lines[1]!,
      new RegExp(`^${id}\\s+2026-01-15T12:00:05.000Z\\s+${RAW.length}\\s+Bob <bob@example.org> / Hello$`),
    );
    const empty = await box.tern(['mailbox', 'list', 'empty@example.test', '--json']);
    assert.deepEqual(JSON.parse(empty.stdout), []);
  });

  test('cat writes the stored bytes exactly', async () => {
    const r = await box.tern(['mailbox', 'cat', 'alice@example.test', id]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdoutBytes, RAW);
  });

  test('unknown users and messages are errors that say so', async () => {
    const nouser = await box.tern(['mailbox', 'list', 'ghost@example.test']);
    assert.equal(nouser.code, 1);
    assert.equal(nouser.stderr, 'tern: no such user: ghost@example.test\n');
    const nomsg = await box.tern(['mailbox', 'cat', 'alice@example.test', '999']);
    assert.equal(nomsg.code, 1);
    assert.equal(nomsg.stderr, 'tern: no message 999 for alice@example.test\n');
    assert.equal(nomsg.stdout, '');
    const remote = await box.tern(['mailbox', 'list', 'bob@example.org']);
    assert.equal(remote.code, 1);
    assert.match(remote.stderr, /^tern: example\.org is not a local domain/);
  });
});
