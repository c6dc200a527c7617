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

describe('tern mailbox folders|flags|expunge', () => {
  let box: Sandbox;
  const msg = (subject: string): AsyncIterable<Uint8Array> =>
    Readable.from([Buffer.from(`From: a@example.org\r\nSubject: ${subject}\r\n\r\nbody\r\n`)]);
  before(async () => {
    box = await createSandbox();
    for (const u of ['carol@example.test', 'jürgen@example.test']) {
      assert.equal((await box.tern(['user', 'add', u])).code, 0);
    }
    const store = await openStore(box.config(), systemClock);
    try {
      for (const user of ['carol@example.test', 'jürgen@example.test']) {
        await store.ensureDefaults(user);
        await store.createFolder(user, '日本/東京');
        const at = Date.UTC(2026, 0, 15);
        await store.append(user, 'INBOX', { flags: ['\\Seen'], internalDateMs: at, content: msg('one') });
        await store.append(user, 'INBOX', { flags: [], internalDateMs: at, content: msg('two') });
        await store.append(user, '日本/東京', {
          flags: ['\\Deleted'],
          internalDateMs: at,
          content: msg('三'),
        });
        await store.append(user, '日本/東京', { flags: ['$Work'], internalDateMs: at, content: msg('四') });
      }
    } finally {
      await store.close();
    }
  });
  after(() => box.remove());

  for (const user of ['carol@example.test', 'jürgen@example.test']) {
    test(`folders --json lists every folder with its counters (${user})`, async () => {
      const r = await box.tern(['mailbox', 'folders', user, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
      const byName = new Map(rows.map((row) => [row['name'], row]));
      assert.deepEqual(
        [...byName.keys()],
        ['INBOX', 'Archive', 'Drafts', 'Junk', 'Sent', 'Trash', '日本', '日本/東京'],
      );
      const inbox = byName.get('INBOX')!;
      assert.equal(inbox['messages'], 2);
      assert.equal(inbox['unseen'], 1);
      assert.equal(inbox['subscribed'], true);
      assert.equal(inbox['specialUse'], null);
      assert.equal(
        inbox['size'],
        2 * Buffer.byteLength('From: a@example.org\r\nSubject: one\r\n\r\nbody\r\n'),
      );
      assert.equal(byName.get('Sent')!['specialUse'], '\\Sent');
      const tokyo = byName.get('日本/東京')!;
      assert.equal(tokyo['messages'], 2);
      assert.equal(tokyo['unseen'], 2);
      assert.equal(tokyo['subscribed'], false);
      assert.equal(tokyo['selectable'], true);
    });

    test(`flags shows, adds, removes and replaces (${user})`, async () => {
      const show = await box.tern(['mailbox', 'flags', user, '日本/東京/2', '--json']);
      assert.equal(show.code, 0, show.stderr);
      assert.deepEqual(JSON.parse(show.stdout), { id: '日本/東京/2', flags: ['$Work'] });
      const change = await box.tern(['mailbox', 'flags', user, '日本/東京/2', '+\\Seen', '-$work', '+$日本']);
      assert.equal(change.code, 2);
      assert.match(change.stderr, /invalid flag "\$日本"/);
      const ok = await box.tern(['mailbox', 'flags', user, '日本/東京/2', '+\\seen', '-$work', '+$Later']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, '日本/東京/2: \\Seen $Later\n');
      const replaced = await box.tern(['mailbox', 'flags', user, '2', '\\Flagged', '\\Answered']);
      assert.equal(replaced.stdout, '2: \\Answered \\Flagged\n');
      const cleared = await box.tern(['mailbox', 'flags', user, '2', '-\\Flagged', '-\\Answered']);
      assert.equal(cleared.stdout, '2: (no flags)\n');
    });
  }

  test('flags refuses what it cannot do, naming what was wrong', async () => {
    const mixed = await box.tern(['mailbox', 'flags', 'carol@example.test', '1', '\\Seen', '+\\Draft']);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /^tern: give flags to set \(FLAG\.\.\.\) or changes/);
    const recent = await box.tern(['mailbox', 'flags', 'carol@example.test', '1', '+\\Recent']);
    assert.equal(recent.code, 2);
    assert.match(recent.stderr, /invalid flag "\\\\Recent"/);
    const missing = await box.tern(['mailbox', 'flags', 'carol@example.test', 'Nowhere/1']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'tern: no folder Nowhere for carol@example.test\n');
    const nouid = await box.tern(['mailbox', 'flags', 'carol@example.test', '99']);
    assert.equal(nouid.stderr, 'tern: no message 99 for carol@example.test\n');
    const ghost = await box.tern(['mailbox', 'flags', 'ghost@example.test', '1']);
    assert.equal(ghost.stderr, 'tern: no such user: ghost@example.test\n');
  });

  for (const user of ['carol@example.test', 'jürgen@example.test']) {
    test(`expunge removes the ids given, or every \\Deleted message, durably (${user})`, async () => {
      const none = await box.tern(['mailbox', 'expunge', user]);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /give message ids or --all-deleted/);
      const deleted = await box.tern(['mailbox', 'expunge', user, '--all-deleted', '--json']);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.deepEqual(JSON.parse(deleted.stdout), {
        user,
        expunged: [{ id: '日本/東京/1', folder: '日本/東京', uid: 1 }],
        unknown: [],
      });
      const byId = await box.tern(['mailbox', 'expunge', user, '--folder', 'inbox', '1', '7']);
      assert.equal(byId.code, 1);
      assert.equal(byId.stdout, '1: expunged\n');
      assert.equal(byId.stderr, `tern: no message 7 for ${user}\n`);
      const store = await openStore(box.config(), systemClock);
      try {
        assert.deepEqual(
          (await store.list(user)).map((m) => m.uid),
          [2],
        );
        assert.deepEqual(
          (await store.list(user, '日本/東京')).map((m) => m.uid),
          [2],
        );
      } finally {
        await store.close();
      }
    });
  }
});
