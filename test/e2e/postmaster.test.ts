// End to end: the postmaster (RFC 5321 §4.5.1) over a real socket. On a fresh install (no users at all)
// `tern serve` makes the configured postmaster deliverable, and postmaster@ every local domain, in any
// case, and "<Postmaster>" without a domain, are accepted and land in its mailbox, readable with
// `tern mailbox`. A postmaster that is an alias (to a UTF-8 user) is followed; one that leads nowhere is
// logged as a warning at start, and refused honestly rather than accepted and lost.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LogLine, SmtpReply, Tern } from './harness.ts';
import { RawSmtpClient, ehlo, startTern } from './harness.ts';

const CREATED = 'directory.postmaster.created';
const UNDELIVERABLE = 'directory.postmaster.undeliverable';

/** One message from `from` to `rcpt` (as written after "RCPT TO:"); the RCPT reply, and the 250 if sent. */
async function send(port: number, from: string, rcpt: string, subject: string): Promise<SmtpReply> {
  const c = await RawSmtpClient.open(port);
  try {
    await ehlo(c);
    const utf8 = /[^\x20-\x7e]/.test(from + rcpt);
    assert.equal((await c.command(`MAIL FROM:<${from}>${utf8 ? ' SMTPUTF8' : ''}`)).code, 250);
    const reply = await c.command(`RCPT TO:${rcpt}`);
    if (reply.code !== 250) return reply;
    assert.equal((await c.command('DATA')).code, 354);
    const done = await c.command(`From: <${from}>\r\nSubject: ${subject}\r\n\r\nFor the postmaster.\r\n.`);
    assert.equal(done.code, 250, done.raw);
    return reply;
  } finally {
    c.close();
  }
}

const started = (t: Tern): Promise<LogLine> =>
  t.waitForLog('server.started', (l) => l.event === 'server.started');

describe('postmaster on a fresh install (the defaults: postmaster@<first local domain>)', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ localDomains: ['localhost', 'example.test'] });
  });
  after(() => tern?.stop());

  test('serve gives the postmaster a mailbox (a user without a password) and says so', async () => {
    const line = await tern.waitForLog(CREATED, (l) => l.event === CREATED);
    assert.equal(line['address'], 'postmaster@localhost');
    await started(tern);
    assert.equal(
      tern.logs().find((l) => l.event === UNDELIVERABLE),
      undefined,
    );
    const list = await tern.tern(['user', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { address: string; hasPassword: boolean }[]).map((u) => [
        u.address,
        u.hasPassword,
      ]),
      [['postmaster@localhost', false]],
    );
  });

  test('postmaster@ each local domain, in any case, and <Postmaster> reach its mailbox', async () => {
    const cases = [
      ['sender@remote.test', '<postmaster@localhost>', 'lower'],
      ['sender@remote.test', '<POSTMASTER@localhost>', 'upper'],
      ['sender@remote.test', '<Postmaster>', 'bare'],
      ['sender@remote.test', '<postmaster@example.test>', 'other domain'],
      ['sender@remote.test', '<PostMaster@Example.TEST>', 'other domain, mixed case'],
      ['jürgen@bücher.test', '<postmaster@localhost>', 'from jürgen'],
      ['日本@例え.test', '<Postmaster>', 'bare from 日本'],
    ] as const;
    for (const [from, rcpt, subject] of cases) {
      const reply = await send(tern.ports.smtp, from, rcpt, subject);
      assert.equal(`${reply.code} ${reply.enhanced}`, '250 2.1.5', `${rcpt}: ${reply.raw}`);
    }
    await tern.waitForMessages('postmaster@localhost', cases.length);
    const listed = await tern.mailboxList('postmaster@localhost');
    assert.deepEqual(listed.map((m) => m.subject).sort(), cases.map(([, , s]) => s).sort());
    const bare = listed.find((m) => m.subject === 'bare')!;
    assert.match((await tern.mailboxCat('postmaster@localhost', bare.id)).toString(), /For the postmaster\./);
  });
});

describe('a configured postmaster that is an alias of a UTF-8 user', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      localDomains: ['localhost', 'example.test'],
      tables: { queue: { postmaster: 'postmaster@example.test' } },
      users: ['日本@example.test'],
      aliases: [['postmaster@example.test', '日本@example.test']],
    });
  });
  after(() => tern?.stop());

  test('postmaster@ every local domain follows the alias; nothing is created', async () => {
    await started(tern);
    assert.equal(
      tern.logs().find((l) => l.event === CREATED || l.event === UNDELIVERABLE),
      undefined,
    );
    for (const rcpt of ['<postmaster@localhost>', '<Postmaster>', '<POSTMASTER@example.test>']) {
      const reply = await send(tern.ports.smtp, 'sender@remote.test', rcpt, rcpt);
      assert.equal(reply.code, 250, `${rcpt}: ${reply.raw}`);
    }
    await tern.waitForMessages('日本@example.test', 3);
    assert.deepEqual((await tern.mailboxList('日本@example.test')).map((m) => m.subject).sort(), [
      '<POSTMASTER@example.test>',
      '<Postmaster>',
      '<postmaster@localhost>',
    ]);
  });
});

describe('a postmaster alias that leads nowhere', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      localDomains: ['localhost'],
      aliases: [['postmaster@localhost', 'gone@localhost']],
    });
  });
  after(() => tern?.stop());

  test('serve warns at start and creates nothing; RCPT is refused, not accepted and lost', async () => {
    const warning = await tern.waitForLog(UNDELIVERABLE, (l) => l.event === UNDELIVERABLE);
    assert.equal(warning.level, 'warn');
    assert.match(String(warning['problem']), /postmaster@localhost/);
    await started(tern);
    assert.equal(
      tern.logs().find((l) => l.event === CREATED),
      undefined,
    );
    const reply = await send(tern.ports.smtp, 'sender@remote.test', '<postmaster@localhost>', 'lost?');
    assert.equal(`${reply.code} ${reply.enhanced}`, '550 5.1.1');
  });
});
