// IMAP end to end with imapflow, a real client library, over real sockets (RFC 9051, and the extensions a
// syncing client leans on: UIDPLUS RFC 4315, MOVE RFC 6851, SPECIAL-USE RFC 6154, IDLE RFC 2177,
// CONDSTORE/QRESYNC RFC 7162, UTF8=ACCEPT RFC 6855). Mail is delivered over SMTP and read back: login
// over STARTTLS and implicit TLS with ASCII and UTF-8 users, the special-use folders created at first
// login, FETCH of ENVELOPE/BODYSTRUCTURE/source byte-equal to `tern mailbox cat`, flags, COPY and MOVE with
// their UID maps, delete + expunge (gone from `tern mailbox list`), APPEND with flags and an internal
// date, folders with UTF-8 names, a multipart message (BODYSTRUCTURE, RFC 2231 names, parts downloaded
// decoded), IDLE push of a new delivery and of another process's commit (latencies printed), a QRESYNC
// reconnect (VANISHED and changed flags), two sessions on one folder seeing each other's changes, and an
// expunge held back during FETCH reaching the client later (RFC 9051 §7.5.1).
// SEARCH (by flag, UTF-8 subject and body, OR, UID) in its own describe block.
// Deliberately NOT here: Python imaplib (imap-imaplib.test.ts), raw-socket abuse (imap-hostile.test.ts),
// the pure session and parser (src/protocol/imap/*.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ImapFlow, type FetchMessageObject, type FlagsEvent, type ExpungeEvent } from 'imapflow';
import { loadConfig } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/ports.ts';
import { openStore } from '../../src/main.ts';
import type { Tern } from './harness.ts';
import { ehlo, havePython, RawSmtpClient, smtplib, startTern, waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 with smtplib is not available on this machine';

/** Every scenario runs twice: with an ASCII user and with a UTF-8 twin. */
const SCENARIOS = [
  'login',
  'fetch',
  'mime',
  'flags',
  'copymove',
  'expunge',
  'append',
  'folders',
  'idle',
  'qresync',
  'two',
  'held',
  'process',
];
const users = SCENARIOS.flatMap((s) => [`alice.${s}@example.test`, `jürgen.${s}@example.test`]);
users.push('日本@example.test', 'search@example.test', '日本.search@example.test');
const USERS = users.map((address) => ({ address, password: `${address.split('@')[0]} pw` }));

function passwordOf(address: string): string {
  return USERS.find((u) => u.address === address)!.password;
}

/** The ASCII user and its UTF-8 twin for a scenario. */
function pair(scenario: string): [string, string] {
  return [`alice.${scenario}@example.test`, `jürgen.${scenario}@example.test`];
}

const SPECIAL_USE: Readonly<Record<string, string>> = {
  Sent: '\\Sent',
  Drafts: '\\Drafts',
  Trash: '\\Trash',
  Junk: '\\Junk',
  Archive: '\\Archive',
};

async function streamBytes(stream: AsyncIterable<Buffer | string> | undefined): Promise<Buffer> {
  assert.ok(stream, 'a download stream');
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function streamText(stream: AsyncIterable<Buffer | string> | undefined): Promise<string> {
  return (await streamBytes(stream)).toString('utf8');
}

/** INTERNALDATE as IMAP shows it: date-time has no fraction of a second (RFC 9051 §9). */
function wholeSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

describe('IMAP with imapflow', { skip }, () => {
  let tern: Tern;
  const clients = new Set<ImapFlow>();

  before(async () => {
    tern = await startTern({
      users: USERS,
      tables: { auth: { lockout_threshold: 50, lockout_window_seconds: 600, lockout_seconds: 600 } },
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await tern?.stop();
  });

  /** A logged-in imapflow client: STARTTLS on the imap port by default, implicit TLS with `tls`. */
  const connect = async (
    address: string,
    options: { tls?: boolean; qresync?: boolean; password?: string } = {},
  ): Promise<ImapFlow> => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: options.tls ? tern.ports.imaps! : tern.ports.imap!,
      secure: options.tls === true,
      doSTARTTLS: options.tls ? undefined : true,
      tls: { rejectUnauthorized: false },
      auth: { user: address, pass: options.password ?? passwordOf(address) },
      logger: false,
      qresync: options.qresync === true,
      disableAutoIdle: true,
      connectionTimeout: 10_000,
    });
    client.on('error', () => undefined);
    clients.add(client);
    await client.connect();
    return client;
  };

  const logout = async (client: ImapFlow): Promise<void> => {
    await client.logout();
    clients.delete(client);
  };

  /** Deliver messages to `to` over SMTP (port 25 style) and wait until they are in the store. */
  const deliver = async (
    to: string,
    messages: readonly { subject: string; body: string; from?: string }[],
  ): Promise<void> => {
    const before = (await tern.storedMessages(to)).length;
    for (const m of messages) {
      const sent = await smtplib({
        port: tern.ports.smtp,
        mode: 'plain',
        action: 'send_message',
        mail_options: ['SMTPUTF8'],
        message: {
          headers: [
            ['From', m.from ?? 'Sender <sender@example.org>'],
            ['To', to],
            ['Subject', m.subject],
            ['Message-ID', `<${Math.random().toString(36).slice(2)}@example.org>`],
          ],
          body: m.body,
          cte: '8bit',
        },
      });
      assert.equal(sent.ok, true, JSON.stringify(sent));
    }
    await tern.waitForMessages(to, before + messages.length);
  };

  for (const address of ['alice.login@example.test', 'jürgen.login@example.test', '日本@example.test']) {
    test(`${address}: login over STARTTLS and implicit TLS, special-use folders listed`, async () => {
      for (const tls of [false, true]) {
        const client = await connect(address, { tls });
        assert.equal(client.authenticated !== false, true);
        assert.ok(client.capabilities.has('IMAP4rev2') || client.capabilities.has('IMAP4rev1'));
        assert.ok(client.capabilities.has('UIDPLUS'), [...client.capabilities.keys()].join(' '));
        const folders = await client.list();
        const byPath = new Map(folders.map((f) => [f.path, f]));
        assert.ok(byPath.has('INBOX'), [...byPath.keys()].join(', '));
        for (const [name, use] of Object.entries(SPECIAL_USE)) {
          const f = byPath.get(name);
          assert.ok(f, `${name} is listed: ${[...byPath.keys()].join(', ')}`);
          assert.ok(f.flags.has(use), `${name} has ${use}: ${[...f.flags].join(' ')}`);
          assert.equal(f.specialUse, use);
          assert.equal(f.delimiter, '/');
        }
        await logout(client);
      }
    });
  }

  test('a wrong password is refused, and the client can try again on a new connection', async () => {
    const address = 'alice.login@example.test';
    await assert.rejects(connect(address, { password: 'wrong' }));
    const client = await connect(address);
    await logout(client);
  });

  for (const address of pair('fetch')) {
    test(`${address}: delivered mail shows up; ENVELOPE, BODYSTRUCTURE and source match the store`, async () => {
      await deliver(address, [
        { subject: `Grüße an ${address}`, body: 'Hallo Jürgen,\nwie geht es? 日本語のテキスト。\n' },
        { subject: 'plain ascii', body: 'second body\n', from: '"Ünïcödé Sender" <sender@example.org>' },
      ]);
      const listed = await tern.mailboxList(address);
      assert.equal(listed.length, 2);
      const client = await connect(address);
      const box = await client.mailboxOpen('INBOX');
      assert.equal(box.exists, 2);
      assert.equal(typeof box.uidValidity, 'bigint');
      const messages = await client.fetchAll('1:*', {
        uid: true,
        envelope: true,
        bodyStructure: true,
        source: true,
        size: true,
        flags: true,
        internalDate: true,
      });
      assert.equal(messages.length, 2);
      for (const [i, m] of messages.entries()) {
        const entry = listed[i]!;
        assert.equal(m.uid, entry.uid);
        const stored = await tern.mailboxCat(address, entry.id);
        assert.ok(
          m.source?.equals(stored),
          `message ${m.uid}: FETCH BODY[] is the stored message byte for byte`,
        );
        assert.equal(m.size, stored.length, 'RFC822.SIZE is the stored size');
        // IMAP's date-time has whole seconds (RFC 9051 §9 date-time).
        assert.equal(new Date(m.internalDate!).getTime(), wholeSeconds(Date.parse(entry.internalDate)));
        assert.deepEqual([...m.flags!].sort(), [...entry.flags].sort());
        assert.equal(m.bodyStructure?.type, 'text/plain');
      }
      const [first, second] = messages as [FetchMessageObject, FetchMessageObject];
      assert.equal(first.envelope?.subject, `Grüße an ${address}`);
      assert.deepEqual(first.envelope?.from, [{ name: 'Sender', address: 'sender@example.org' }]);
      assert.deepEqual(first.envelope?.to, [{ name: '', address }]);
      assert.ok(first.envelope?.messageId?.endsWith('@example.org>'));
      assert.equal(first.bodyStructure?.parameters?.['charset']?.toLowerCase(), 'utf-8');
      assert.equal(first.bodyStructure?.encoding, '8bit');
      assert.equal(second.envelope?.subject, 'plain ascii');
      assert.equal(second.envelope?.from?.[0]?.name, 'Ünïcödé Sender');
      // BODY[TEXT] alone, and a partial fetch, agree with the source.
      const text = await client.fetchOne('1', { bodyParts: ['TEXT'] });
      const source = first.source!;
      const bodyStart = source.indexOf('\r\n\r\n') + 4;
      assert.ok(text && text.bodyParts?.get('text')?.equals(source.subarray(bodyStart)));
      await logout(client);
    });
  }

  for (const address of pair('flags')) {
    test(`${address}: flags added and removed, keywords kept, visible in \`tern mailbox list\``, async () => {
      await deliver(address, [{ subject: 'flag me', body: 'x\n' }]);
      const client = await connect(address);
      await client.mailboxOpen('INBOX');
      assert.equal(await client.messageFlagsAdd('1', ['\\Seen', '\\Flagged', '$Important']), true);
      let m = await client.fetchOne('1', { flags: true });
      assert.ok(m);
      assert.deepEqual([...m.flags!].sort(), ['$Important', '\\Flagged', '\\Seen']);
      assert.equal(await client.messageFlagsRemove('1', ['\\Flagged']), true);
      m = await client.fetchOne('1', { flags: true });
      assert.ok(m);
      assert.deepEqual([...m.flags!].sort(), ['$Important', '\\Seen']);
      await client.messageFlagsSet('1', ['\\Answered']);
      m = await client.fetchOne('1', { flags: true });
      assert.ok(m);
      assert.deepEqual([...m.flags!], ['\\Answered']);
      const listed = await tern.mailboxList(address);
      assert.deepEqual(listed[0]!.flags, ['\\Answered']);
      await logout(client);
    });
  }

  for (const address of pair('copymove')) {
    test(`${address}: COPY and MOVE to Archive with UIDPLUS maps; the content travels intact`, async () => {
      await deliver(address, [
        { subject: 'copy me', body: 'kopiert\n' },
        { subject: 'move me', body: 'verschoben: 東京\n' },
        { subject: 'stay', body: 'bleibt\n' },
      ]);
      const listed = await tern.mailboxList(address);
      const sources = await Promise.all(listed.map((m) => tern.mailboxCat(address, m.id)));
      const client = await connect(address);
      await client.mailboxOpen('INBOX');
      await client.messageFlagsAdd(String(listed[0]!.uid), ['\\Flagged'], { uid: true });

      const copied = await client.messageCopy(String(listed[0]!.uid), 'Archive', { uid: true });
      assert.ok(copied, 'COPY succeeded');
      assert.equal(copied.destination, 'Archive');
      assert.equal(typeof copied.uidValidity, 'bigint', 'COPYUID gives the destination UIDVALIDITY');
      assert.equal(copied.uidMap?.size, 1);
      const copyUid = copied.uidMap.get(listed[0]!.uid)!;
      assert.ok(copyUid > 0);

      const moved = await client.messageMove(String(listed[1]!.uid), 'Archive', { uid: true });
      assert.ok(moved, 'MOVE succeeded');
      assert.equal(moved.uidMap?.size, 1);
      const moveUid = moved.uidMap.get(listed[1]!.uid)!;
      assert.ok(moveUid > copyUid, 'UIDs in Archive ascend');
      assert.equal(moved.uidValidity, copied.uidValidity);

      // The source folder keeps the copied and the untouched message, not the moved one.
      const inbox = await client.fetchAll('1:*', { uid: true });
      assert.deepEqual(
        inbox.map((m) => m.uid),
        [listed[0]!.uid, listed[2]!.uid],
      );
      assert.deepEqual(
        (await tern.mailboxList(address)).map((m) => m.uid),
        [listed[0]!.uid, listed[2]!.uid],
      );

      await client.mailboxOpen('Archive');
      const archived = await client.fetchAll('1:*', {
        uid: true,
        source: true,
        flags: true,
        internalDate: true,
      });
      assert.deepEqual(
        archived.map((m) => m.uid),
        [copyUid, moveUid],
      );
      assert.ok(archived[0]!.source?.equals(sources[0]!), 'the copy is byte for byte the original');
      assert.ok(archived[1]!.source?.equals(sources[1]!), 'the moved message is byte for byte the original');
      assert.ok(archived[0]!.flags?.has('\\Flagged'), 'COPY keeps flags (RFC 9051 §6.4.7)');
      assert.equal(
        new Date(archived[1]!.internalDate!).getTime(),
        wholeSeconds(Date.parse(listed[1]!.internalDate)),
        'MOVE keeps the internal date',
      );
      await logout(client);
    });
  }

  for (const address of pair('expunge')) {
    test(`${address}: delete + expunge removes the message from \`tern mailbox list\``, async () => {
      await deliver(address, [
        { subject: 'delete me', body: 'weg\n' },
        { subject: 'keep me', body: 'bleibt\n' },
      ]);
      const listed = await tern.mailboxList(address);
      const client = await connect(address);
      await client.mailboxOpen('INBOX');
      const expunged: ExpungeEvent[] = [];
      client.on('expunge', (e: ExpungeEvent) => expunged.push(e));
      assert.equal(await client.messageDelete(String(listed[0]!.uid), { uid: true }), true);
      assert.equal(expunged.length, 1, JSON.stringify(expunged));
      assert.deepEqual(
        (await tern.mailboxList(address)).map((m) => m.uid),
        [listed[1]!.uid],
      );
      const left = await client.fetchAll('1:*', { uid: true });
      assert.deepEqual(
        left.map((m) => m.uid),
        [listed[1]!.uid],
      );
      await logout(client);
    });
  }

  for (const address of pair('append')) {
    test(`${address}: APPEND to Drafts with flags and an internal date (APPENDUID)`, async () => {
      const client = await connect(address);
      const message = Buffer.from(
        [
          `From: ${address}`,
          'To: Björn <bjoern@example.org>',
          'Subject: Entwurf für 東京',
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=utf-8',
          'Content-Transfer-Encoding: 8bit',
          '',
          'Noch nicht fertig. 日本語.',
          '',
        ].join('\r\n'),
      );
      const date = new Date('2024-02-29T13:37:00.000Z');
      const appended = await client.append('Drafts', message, ['\\Draft', '\\Seen', '$Todo'], date);
      assert.ok(appended, 'APPEND succeeded');
      assert.equal(appended.destination, 'Drafts');
      assert.ok(appended.uid !== undefined && appended.uid > 0, 'APPENDUID (UIDPLUS)');
      assert.equal(typeof appended.uidValidity, 'bigint');
      const box = await client.mailboxOpen('Drafts');
      assert.equal(box.exists, 1);
      const m = await client.fetchOne(
        String(appended.uid),
        { uid: true, flags: true, internalDate: true, source: true, envelope: true },
        { uid: true },
      );
      assert.ok(m);
      assert.deepEqual([...m.flags!].sort(), ['$Todo', '\\Draft', '\\Seen']);
      assert.equal(new Date(m.internalDate!).getTime(), date.getTime());
      assert.ok(m.source?.equals(message), 'APPENDed bytes come back unchanged');
      assert.equal(m.envelope?.subject, 'Entwurf für 東京');
      // STATUS agrees without selecting.
      await client.mailboxOpen('INBOX');
      const status = await client.status('Drafts', { messages: true, uidNext: true, unseen: true });
      assert.ok(status);
      assert.equal(status.messages, 1);
      assert.equal(status.unseen, 0);
      assert.equal(status.uidNext, appended.uid + 1);
      await logout(client);
    });
  }

  for (const address of pair('folders')) {
    test(`${address}: CREATE, RENAME and DELETE folders with UTF-8 names (Entwürfe, 日本/東京)`, async () => {
      const client = await connect(address);
      const created = await client.mailboxCreate('Entwürfe');
      assert.equal(created.path, 'Entwürfe');
      await client.mailboxCreate(['日本', '東京']);
      let paths = (await client.list()).map((f) => f.path);
      assert.ok(paths.includes('Entwürfe'), paths.join(', '));
      assert.ok(paths.includes('日本/東京'), paths.join(', '));
      assert.ok(paths.includes('日本'), `the parent of 日本/東京 is listed: ${paths.join(', ')}`);

      // A message in the folder survives its rename.
      const appended = await client.append('日本/東京', Buffer.from('Subject: 東京\r\n\r\nbody\r\n'));
      assert.ok(appended);
      const renamed = await client.mailboxRename('Entwürfe', 'Entwürfe alt');
      assert.equal(renamed.newPath, 'Entwürfe alt');
      await client.mailboxRename('日本', '日本語');
      paths = (await client.list()).map((f) => f.path);
      assert.ok(!paths.includes('Entwürfe'), paths.join(', '));
      assert.ok(paths.includes('Entwürfe alt'), paths.join(', '));
      assert.ok(paths.includes('日本語/東京'), `children move with their parent: ${paths.join(', ')}`);
      const status = await client.status('日本語/東京', { messages: true });
      assert.ok(status);
      assert.equal(status.messages, 1);

      await client.mailboxDelete('Entwürfe alt');
      await client.mailboxDelete('日本語/東京');
      await client.mailboxDelete('日本語');
      paths = (await client.list()).map((f) => f.path);
      assert.ok(!paths.some((p) => p.startsWith('Entwürfe') || p.startsWith('日本')), paths.join(', '));
      // INBOX cannot be deleted (RFC 9051 §6.3.4).
      await assert.rejects(client.mailboxDelete('INBOX'));
      await logout(client);
    });
  }

  for (const address of pair('idle')) {
    test(`${address}: IDLE: a message delivered over SMTP arrives as an exists event`, async () => {
      await deliver(address, [{ subject: 'before idle', body: 'one\n' }]);
      const client = await connect(address);
      await client.mailboxOpen('INBOX');
      let existsAt = 0;
      let count = 0;
      client.on('exists', (e: { count: number }) => {
        if (existsAt === 0) existsAt = performance.now();
        count = e.count;
      });
      const idling = client.idle();
      // Give the IDLE command time to reach the server before the delivery.
      await waitFor('IDLE to start', () => (client.idling ? true : undefined), 5000, 10);

      const smtp = await RawSmtpClient.open(tern.ports.smtp);
      await ehlo(smtp);
      assert.equal((await smtp.command('MAIL FROM:<sender@example.org> SMTPUTF8')).code, 250);
      assert.equal((await smtp.command(`RCPT TO:<${address}>`)).code, 250);
      assert.equal((await smtp.command('DATA')).code, 354);
      await smtp.send(
        `From: sender@example.org\r\nTo: ${address}\r\nSubject: während IDLE\r\n\r\npush\r\n.\r\n`,
      );
      const accepted = await smtp.readReply();
      const acceptedAt = performance.now();
      assert.equal(accepted.code, 250);
      await smtp.command('QUIT');
      smtp.close();

      await waitFor('the exists event', () => (existsAt > 0 ? true : undefined), 10_000, 5);
      const latencyMs = existsAt - acceptedAt;
      console.log(
        `# IMAP IDLE push latency for ${address}: ${latencyMs.toFixed(1)} ms (SMTP 250 → untagged EXISTS)`,
      );
      assert.equal(count, 2);
      await client.noop(); // ends IDLE (DONE)
      await idling;
      const m = await client.fetchOne('2', { envelope: true });
      assert.ok(m);
      assert.equal(m.envelope?.subject, 'während IDLE');
      await logout(client);
    });
  }

  for (const address of pair('qresync')) {
    test(`${address}: QRESYNC reconnect gets VANISHED UIDs and changed flags`, async () => {
      await deliver(address, [
        { subject: 'q1', body: '1\n' },
        { subject: 'q2', body: '2\n' },
        { subject: 'q3', body: '3\n' },
      ]);
      const first = await connect(address, { qresync: true });
      assert.ok(first.enabled.has('QRESYNC'), `QRESYNC enabled: ${[...first.enabled].join(' ')}`);
      const box = await first.mailboxOpen('INBOX');
      assert.equal(box.exists, 3);
      const uidValidity = box.uidValidity;
      const modseq = box.highestModseq;
      assert.ok(modseq !== undefined && modseq > 0n, 'HIGHESTMODSEQ on SELECT (CONDSTORE)');
      const uids = (await first.fetchAll('1:*', { uid: true })).map((m) => m.uid);
      await logout(first);

      // Meanwhile another client flags the second and expunges the first.
      const other = await connect(address);
      await other.mailboxOpen('INBOX');
      await other.messageFlagsAdd(String(uids[1]), ['\\Flagged'], { uid: true });
      await other.messageDelete(String(uids[0]), { uid: true });
      await logout(other);

      const again = await connect(address, { qresync: true });
      const vanished: ExpungeEvent[] = [];
      const flags: FlagsEvent[] = [];
      again.on('expunge', (e: ExpungeEvent) => vanished.push(e));
      again.on('flags', (e: FlagsEvent) => flags.push(e));
      const reopened = await again.mailboxOpen('INBOX', { changedSince: modseq, uidValidity });
      assert.equal(reopened.exists, 2);
      assert.ok(reopened.highestModseq! > modseq, 'HIGHESTMODSEQ went up');
      assert.deepEqual(
        vanished.map((e) => [e.uid, e.vanished, e.earlier]),
        [[uids[0], true, true]],
        'VANISHED (EARLIER) names the expunged UID',
      );
      const flagged = flags.find((f) => f.uid === uids[1]);
      assert.ok(
        flagged,
        `a FETCH for the flagged message: ${JSON.stringify(flags, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v instanceof Set ? [...(v as Set<string>)] : v))}`,
      );
      assert.ok(flagged.flags.has('\\Flagged'));
      assert.ok(!flags.some((f) => f.uid === uids[2]), 'the unchanged message is not reported');
      // CHANGEDSINCE on FETCH gives the same answer.
      const changed = await again.fetchAll('1:*', { uid: true, flags: true }, { changedSince: modseq });
      assert.deepEqual(
        changed.map((m) => m.uid),
        [uids[1]],
      );
      await logout(again);
    });
  }

  for (const address of pair('two')) {
    test(`${address}: two sessions on one folder see each other's flag changes and expunges`, async () => {
      await deliver(address, [
        { subject: 'shared 1', body: '1\n' },
        { subject: 'shared 2', body: '2\n' },
      ]);
      const a = await connect(address);
      const b = await connect(address, { tls: true });
      await a.mailboxOpen('INBOX');
      await b.mailboxOpen('INBOX');
      const flagsSeenByA: FlagsEvent[] = [];
      const expungesSeenByA: ExpungeEvent[] = [];
      a.on('flags', (e: FlagsEvent) => flagsSeenByA.push(e));
      a.on('expunge', (e: ExpungeEvent) => expungesSeenByA.push(e));

      // A flag change by B reaches A while A idles.
      const idling = a.idle();
      await waitFor('IDLE to start', () => (a.idling ? true : undefined), 5000, 10);
      await b.messageFlagsAdd('2', ['\\Seen']);
      await waitFor('A to see the flag change', () => (flagsSeenByA.length > 0 ? true : undefined), 5000);
      assert.equal(flagsSeenByA[0]!.seq, 2);
      assert.ok(flagsSeenByA[0]!.flags.has('\\Seen'));
      await a.noop();
      await idling;

      // An expunge by B reaches A at its next command (NOOP).
      await b.messageDelete('1');
      await a.noop();
      await waitFor('A to see the expunge', () => (expungesSeenByA.length > 0 ? true : undefined), 5000);
      assert.equal(expungesSeenByA[0]!.seq, 1);
      const left = await a.fetchAll('1:*', { flags: true, envelope: true });
      assert.equal(left.length, 1);
      assert.equal(left[0]!.envelope?.subject, 'shared 2');
      assert.ok(left[0]!.flags?.has('\\Seen'));

      // And the other way round: A's change reaches B.
      const flagsSeenByB: FlagsEvent[] = [];
      b.on('flags', (e: FlagsEvent) => flagsSeenByB.push(e));
      await a.messageFlagsAdd('1', ['\\Answered']);
      await b.noop();
      await waitFor('B to see the flag change', () => (flagsSeenByB.length > 0 ? true : undefined), 5000);
      assert.ok(flagsSeenByB[0]!.flags.has('\\Answered'));
      await logout(a);
      await logout(b);
    });
  }

  for (const address of pair('held')) {
    test(`${address}: an expunge held back during FETCH reaches the client at its next NOOP, and in IDLE`, async () => {
      await deliver(address, [
        { subject: 'held 1', body: '1\n' },
        { subject: 'held 2', body: '2\n' },
        { subject: 'held 3', body: '3\n' },
      ]);
      const a = await connect(address);
      const b = await connect(address, { tls: true });
      await a.mailboxOpen('INBOX');
      await b.mailboxOpen('INBOX');
      const expunges: ExpungeEvent[] = [];
      a.on('expunge', (e: ExpungeEvent) => expunges.push(e));

      // B expunges message 1 while A runs two FETCH commands by sequence number: RFC 9051 §7.5.1 keeps
      // the EXPUNGE out of those, so it must come with A's next command that allows it.
      await b.messageDelete('1');
      await a.fetchAll('1:*', { flags: true });
      await a.fetchOne('1', { uid: true });
      assert.equal(expunges.length, 0, 'no EXPUNGE during FETCH');
      await a.noop();
      assert.equal(expunges.length, 1, 'NOOP reports the expunge held back during the FETCHes');
      assert.equal(expunges[0]!.seq, 1);

      // The same with IDLE as the next command: the held-back expunge is sent when IDLE starts.
      await b.messageDelete('1');
      await a.fetchAll('1:*', { flags: true });
      await a.fetchOne('1', { uid: true });
      const idling = a.idle();
      await waitFor(
        'IDLE to report the held-back expunge',
        () => (expunges.length === 2 ? true : undefined),
        3000,
      );
      await a.noop();
      await idling;
      assert.equal(a.mailbox ? a.mailbox.exists : -1, 1, 'A counts one message left, as B does');
      await logout(a);
      await logout(b);
    });
  }

  for (const address of pair('mime')) {
    test(`${address}: a multipart message: BODYSTRUCTURE parts, RFC 2231 file names, parts downloaded decoded`, async () => {
      const attachment = Buffer.from('Inhalt der Anlage: 日本語 äöü\n'.repeat(40));
      const nested = [
        'From: inner@example.org',
        'Subject: =?UTF-8?B?5p2x5Lqs?=',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'inner body',
      ].join('\r\n');
      const raw = [
        `From: sender@example.org`,
        `To: ${address}`,
        'Subject: =?UTF-8?Q?Anh=C3=A4nge?=',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        'Gr=C3=BC=C3=9Fe',
        '--b1',
        'Content-Type: application/octet-stream',
        "Content-Disposition: attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt",
        'Content-Transfer-Encoding: base64',
        '',
        ...(attachment.toString('base64').match(/.{1,76}/g) ?? []),
        '--b1',
        'Content-Type: message/rfc822',
        '',
        nested,
        '--b1--',
        '',
      ].join('\r\n');
      const client = await connect(address);
      const appended = await client.append('INBOX', Buffer.from(raw));
      assert.ok(appended);
      await client.mailboxOpen('INBOX');
      const m = await client.fetchOne('*', { envelope: true, bodyStructure: true });
      assert.ok(m);
      assert.equal(m.envelope?.subject, 'Anhänge', 'an encoded word in the subject is decoded');
      const root = m.bodyStructure!;
      assert.equal(root.type, 'multipart/mixed');
      const parts = root.childNodes ?? [];
      assert.deepEqual(
        parts.map((p) => [p.part, p.type]),
        [
          ['1', 'text/plain'],
          ['2', 'application/octet-stream'],
          ['3', 'message/rfc822'],
        ],
      );
      assert.equal(parts[0]!.encoding, 'quoted-printable');
      assert.equal(parts[1]!.disposition, 'attachment');
      assert.equal(parts[1]!.dispositionParameters?.['filename'], '日本.txt', 'RFC 2231 file name');
      assert.equal(parts[2]!.envelope?.subject, '東京', 'the nested message has its own envelope');
      const text = await client.download('*', '1');
      assert.equal(await streamText(text.content), 'Grüße');
      const file = await client.download('*', '2');
      assert.ok((await streamBytes(file.content)).equals(attachment), 'the attachment comes back decoded');
      await logout(client);
    });
  }

  for (const address of pair('process')) {
    test(`${address}: changes committed by another process (as the CLI does) reach an IDLE client`, async () => {
      await deliver(address, [
        { subject: 'p1', body: '1\n' },
        { subject: 'p2', body: '2\n' },
      ]);
      // This test process opens the store as `tern mailbox` would: the server learns of its commits
      // only through the store's change feed (docs: within 100 ms).
      const store = await openStore(loadConfig({ path: tern.configPath, cwd: tern.dir }), systemClock);
      const client = await connect(address);
      try {
        await client.mailboxOpen('INBOX');
        const uids = (await client.fetchAll('1:*', { uid: true })).map((m) => m.uid);
        const flags: FlagsEvent[] = [];
        const expunges: ExpungeEvent[] = [];
        client.on('flags', (e: FlagsEvent) => flags.push(e));
        client.on('expunge', (e: ExpungeEvent) => expunges.push(e));
        const idling = client.idle();
        await waitFor('IDLE to start', () => (client.idling ? true : undefined), 5000, 10);

        let started = performance.now();
        await store.storeFlags(address, 'INBOX', [uids[0]!], { mode: 'add', flags: ['\\Flagged'] });
        await waitFor('the flag change pushed in IDLE', () => (flags.length > 0 ? true : undefined), 5000, 5);
        const flagMs = performance.now() - started;
        assert.equal(flags[0]!.seq, 1);
        assert.ok(flags[0]!.flags.has('\\Flagged'));

        started = performance.now();
        await store.expunge(address, 'INBOX', [uids[1]!]);
        await waitFor('the expunge pushed in IDLE', () => (expunges.length > 0 ? true : undefined), 5000, 5);
        const expungeMs = performance.now() - started;
        assert.equal(expunges[0]!.seq, 2);
        console.log(
          `# IMAP IDLE push of another process's commit for ${address}: flags ${flagMs.toFixed(1)} ms, expunge ${expungeMs.toFixed(1)} ms`,
        );
        await client.noop();
        await idling;
      } finally {
        await store.close();
        await logout(client);
      }
    });
  }

  describe('SEARCH', () => {
    for (const address of ['search@example.test', '日本.search@example.test']) {
      test(`${address}: SEARCH by flag, subject (UTF-8), body text and UID`, async () => {
        await deliver(address, [
          { subject: 'Rechnung März', body: 'Betrag: 42 Euro\n' },
          { subject: '東京の天気', body: '晴れ、のち曇り\n' },
          { subject: 'plain', body: 'nothing to see\n' },
        ]);
        const client = await connect(address);
        await client.mailboxOpen('INBOX');
        await client.messageFlagsAdd('3', ['\\Seen']);
        assert.deepEqual(await client.search({ seen: false }), [1, 2]);
        assert.deepEqual(
          await client.search({ subject: 'märz' }),
          [1],
          'i;unicode-casemap: case-insensitive',
        );
        assert.deepEqual(await client.search({ subject: '東京' }), [2]);
        assert.deepEqual(await client.search({ body: '曇り' }), [2]);
        assert.deepEqual(await client.search({ or: [{ subject: 'plain' }, { body: 'Euro' }] }), [1, 3]);
        const uids = await client.search({ all: true }, { uid: true });
        assert.ok(Array.isArray(uids) && uids.length === 3);
        assert.deepEqual(await client.search({ uid: `${uids[1]}` }), [2]);
        await logout(client);
      });
    }
  });
});
