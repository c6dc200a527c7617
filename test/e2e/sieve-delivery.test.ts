// End to end: Sieve at delivery (RFC 5228 and extensions). Scripts are uploaded and activated over the
// ManageSieve listener, mail arrives over SMTP from Python's smtplib, and what the scripts decided is
// read back with `tern mailbox list --json` and the stored bytes: fileinto with :create and imap4flags,
// a missing mailbox kept in INBOX, subaddress + envelope, body, editheader, discard, redirect (:copy),
// reject (the sender gets the reason in a DSN), vacation (one reply per sender and period, none to a
// list), a broken script keeping the message. The script owner jürgen@ and the folder "Ärger" are the
// UTF-8 twins.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { MailboxEntry, Tern } from './harness.ts';
import { havePython, smtplib, startTern, waitFor } from './harness.ts';
import { parseDsn } from './outbound-helpers.ts';

const PASSWORD = 'filters-r-us';
const USERS = ['alice@example.test', 'jürgen@example.test', 'carol@example.test', 'dave@example.test'];

/** Upload `script` as `name` for `user` over ManageSieve and make it active (raw RFC 5804 commands). */
async function activate(port: number, user: string, name: string, script: string): Promise<string> {
  const auth = Buffer.from(`\0${user}\0${PASSWORD}`).toString('base64');
  const body = Buffer.from(script);
  const socket = connect({ host: '127.0.0.1', port });
  let got = '';
  await new Promise<void>((resolve, reject) => {
    let sent = false;
    socket.on('data', (d: Buffer) => {
      got += d.toString('utf8');
      if (!sent && /\r\nOK[^\r\n]*\r\n/.test(got)) {
        sent = true;
        socket.write(
          `AUTHENTICATE "PLAIN" "${auth}"\r\nPUTSCRIPT "${name}" {${body.length}+}\r\n${script}\r\n` +
            `SETACTIVE "${name}"\r\nLOGOUT\r\n`,
        );
      }
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
    setTimeout(() => reject(new Error(`ManageSieve did not finish: ${got}`)), 10_000).unref();
  });
  const status = got.split('\r\n').filter((l) => /^(OK|NO|BYE)/.test(l));
  // greeting OK, AUTHENTICATE OK, PUTSCRIPT OK, SETACTIVE OK, LOGOUT OK
  assert.deepEqual(
    status.map((l) => l.split(' ')[0]),
    ['OK', 'OK', 'OK', 'OK', 'OK'],
    got,
  );
  return got;
}

describe('Sieve at delivery', { skip: !havePython() && 'python3 is not available' }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: USERS.map((address) => ({ address, password: PASSWORD })),
      managesieve: true,
      tables: { auth: { failure_delay_seconds: 0 }, queue: { retry_min_seconds: 60 } },
    });
  });
  after(() => tern?.stop());

  const send = (from: string, to: string, raw: string) =>
    smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from,
      to: [to],
      raw,
      mail_options: /[^\x20-\x7e]/.test(from + to + raw) ? ['SMTPUTF8'] : [],
    });

  const folderOf = async (user: string, subject: string): Promise<MailboxEntry | undefined> =>
    (await tern.mailboxList(user, { all: true })).find((m) => m.subject === subject);

  const arrived = (user: string, subject: string): Promise<MailboxEntry> =>
    waitFor(`"${subject}" for ${user}`, () => folderOf(user, subject), 20_000);

  test('fileinto :create with flags, a missing mailbox kept, subaddress, body and editheader (alice)', async () => {
    await activate(
      tern.ports.managesieve!,
      'alice@example.test',
      'main',
      `require ["fileinto", "mailbox", "imap4flags", "envelope", "subaddress", "body", "editheader"];
addheader "X-Sieved" "by alice";
if header :contains "subject" "[list]" { fileinto :create :flags "\\\\Seen" "Lists"; stop; }
if envelope :detail "to" "news" { fileinto :create "News"; stop; }
if body :text :contains "password" { fileinto "NoSuchFolder"; stop; }
if header :is "subject" "drop me" { discard; stop; }
keep;
`,
    );
    for (const [to, subject, text] of [
      ['alice@example.test', '[list] weekly', 'hi'],
      ['alice+news@example.test', 'the news', 'hi'],
      ['alice@example.test', 'creds', 'your password is 1234'],
      ['alice@example.test', 'plain', 'hi'],
      ['alice@example.test', 'drop me', 'hi'],
    ] as const) {
      const r = await send(
        'someone@remote.test',
        to,
        `From: someone@remote.test\r\nSubject: ${subject}\r\n\r\n${text}\r\n`,
      );
      assert.ok(r.ok, JSON.stringify(r));
    }
    const list = await arrived('alice@example.test', '[list] weekly');
    assert.equal(list.mailbox, 'Lists');
    assert.deepEqual(list.flags, ['\\Seen']);
    assert.equal((await arrived('alice@example.test', 'the news')).mailbox, 'News');
    assert.equal((await arrived('alice@example.test', 'creds')).mailbox, 'INBOX', 'no such mailbox: kept');
    const plain = await arrived('alice@example.test', 'plain');
    assert.equal(plain.mailbox, 'INBOX');
    const bytes = (await tern.mailboxCat('alice@example.test', plain.id)).toString('utf8');
    assert.match(bytes, /\r\nX-Sieved: by alice\r\n/);
    await tern.waitForLog(
      'the discard',
      (l) => l.event === 'delivery.sieve' && JSON.stringify(l['actions']) === '["discard"]',
    );
    assert.equal(await folderOf('alice@example.test', 'drop me'), undefined);
  });

  test('the UTF-8 twin: jürgen files into "Ärger" by a UTF-8 subject, and reject tells the sender why', async () => {
    await activate(
      tern.ports.managesieve!,
      'jürgen@example.test',
      'Filter ü',
      `require ["fileinto", "mailbox", "reject"];
if header :contains "subject" "Ärger" { fileinto :create "Ärger"; stop; }
if header :contains "subject" "Werbung" { reject "Keine Werbung, danke."; stop; }
`,
    );
    const r = await send(
      'carol@example.test',
      'jürgen@example.test',
      'From: carol@example.test\r\nSubject: Ärger im Büro\r\n\r\nhallo\r\n',
    );
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal((await arrived('jürgen@example.test', 'Ärger im Büro')).mailbox, 'Ärger');
    const ad = await send(
      'carol@example.test',
      'jürgen@example.test',
      'From: carol@example.test\r\nSubject: Werbung\r\n\r\nkauf!\r\n',
    );
    assert.ok(ad.ok);
    const dsnEntry = await waitFor('the DSN to carol', async () =>
      (await tern.mailboxList('carol@example.test')).find(
        (m) => m.subject === 'Undelivered Mail Returned to Sender',
      ),
    );
    const dsn = await parseDsn(await tern.mailboxCat('carol@example.test', dsnEntry.id));
    assert.equal(dsn.perRecipient[0]?.['status'], '5.7.1');
    assert.match(
      (dsn.perRecipient[0]?.['diagnostic-code'] ?? '').replace(/\s+/g, ' '),
      /Keine Werbung, danke\./,
    );
    assert.equal(await folderOf('jürgen@example.test', 'Werbung'), undefined);
  });

  test('vacation: one reply per sender and period, none to a list, with Auto-Submitted', async () => {
    await activate(
      tern.ports.managesieve!,
      'dave@example.test',
      'away',
      `require ["vacation", "fileinto", "copy"];
vacation :days 2 :subject "Away until Monday" "I am away; back on Monday.";
if header :contains "subject" "share" { redirect :copy "alice@example.test"; }
`,
    );
    const before = (await tern.mailboxList('carol@example.test')).length;
    for (const subject of ['first', 'second']) {
      const r = await send(
        'carol@example.test',
        'dave@example.test',
        `From: carol@example.test\r\nTo: dave@example.test\r\nSubject: ${subject}\r\n\r\nhi\r\n`,
      );
      assert.ok(r.ok);
      await arrived('dave@example.test', subject);
    }
    const replies = await waitFor('the vacation reply', async () => {
      const found: string[] = [];
      for (const m of (await tern.mailboxList('carol@example.test')).slice(before)) {
        const text = (await tern.mailboxCat('carol@example.test', m.id)).toString('utf8');
        if (text.includes('Away until Monday')) found.push(text);
      }
      return found.length > 0 ? found : undefined;
    });
    assert.equal(replies.length, 1, 'one reply for two messages from one sender');
    assert.match(replies[0]!, /\r\nAuto-Submitted: auto-replied\b/i);
    assert.match(replies[0]!, /^Return-Path: <>\r\n/, 'from the null sender');
    const list = await send(
      'alice@example.test',
      'dave@example.test',
      'From: alice@example.test\r\nTo: dave@example.test\r\nList-Id: <news.example.test>\r\nSubject: share this\r\n\r\nhi\r\n',
    );
    assert.ok(list.ok);
    await arrived('dave@example.test', 'share this');
    // redirect :copy sent it to alice too; a list message gets no vacation reply.
    await arrived('alice@example.test', 'share this');
    const line = await tern.waitForLog(
      'the run for the list message',
      (l) =>
        l.event === 'delivery.sieve' &&
        l['user'] === 'dave@example.test' &&
        JSON.stringify(l['actions']).includes('redirect'),
    );
    assert.equal(line['vacation'], undefined, 'no vacation reply to a list message');
    assert.deepEqual(line['actions'], ['vacation', 'redirect']);
  });

  test('a script that fails at run time keeps the message (RFC 5228 §2.10.6)', async () => {
    await activate(
      tern.ports.managesieve!,
      'carol@example.test',
      'loop',
      `require ["variables", "fileinto"];
set "a" "x";
if header :matches "subject" "*" { redirect "a@x.test"; redirect "b@x.test"; redirect "c@x.test"; redirect "d@x.test"; redirect "e@x.test"; }
`,
    );
    const r = await send(
      'someone@remote.test',
      'carol@example.test',
      'From: someone@remote.test\r\nSubject: too many redirects\r\n\r\nhi\r\n',
    );
    assert.ok(r.ok);
    assert.equal((await arrived('carol@example.test', 'too many redirects')).mailbox, 'INBOX');
    await tern.waitForLog(
      'the runtime error',
      (l) => l.event === 'delivery.sieve.failed' && l['user'] === 'carol@example.test',
    );
  });
});
