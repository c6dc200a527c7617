// End to end: an alias named like a user, over a real socket. As with a Postfix virtual alias, the alias
// wins: mail to carol goes to dave only, and to both once the alias lists carol too (added with the CLI
// while the server runs). RCPT acceptance applies the same rule: a user whose alias leads nowhere is
// refused at RCPT rather than accepted and lost. Each case has a UTF-8 twin (jürgen -> 日本).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SmtpReply, Tern } from './harness.ts';
import { RawSmtpClient, ehlo, startTern, waitFor } from './harness.ts';

const PAIRS = [
  ['carol@example.test', 'dave@example.test'],
  ['jürgen@example.test', '日本@example.test'],
] as const;

async function send(port: number, rcpt: string, subject: string): Promise<SmtpReply> {
  const c = await RawSmtpClient.open(port);
  try {
    await ehlo(c);
    const utf8 = /[^\x20-\x7e]/.test(rcpt);
    assert.equal((await c.command(`MAIL FROM:<sender@remote.test>${utf8 ? ' SMTPUTF8' : ''}`)).code, 250);
    const reply = await c.command(`RCPT TO:<${rcpt}>`);
    if (reply.code !== 250) return reply;
    assert.equal((await c.command('DATA')).code, 354);
    const done = await c.command(`Subject: ${subject}\r\n\r\nbody\r\n.`);
    assert.equal(done.code, 250, done.raw);
    return reply;
  } finally {
    c.close();
  }
}

describe('an alias named like a user', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [...PAIRS.flat(), 'erin@example.test'],
      aliases: [...PAIRS, ['erin@example.test', 'gone@example.test']],
    });
  });
  after(() => tern?.stop());

  /** Every message the worker holds is settled: a copy that was going to be stored has been. */
  const queueDrained = (): Promise<true> =>
    waitFor('an empty queue', async () => {
      const r = await tern.tern(['queue', 'list', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as unknown[]).length === 0 ? true : undefined;
    });
  const subjects = async (address: string): Promise<string[]> =>
    (await tern.storedMessages(address)).map((m) => m.subject);

  test('mail to carol goes to dave only', async () => {
    for (const [carol, dave] of PAIRS) {
      assert.equal((await send(tern.ports.smtp, carol, `only ${carol}`)).code, 250);
      await tern.waitForMessages(dave, 1);
    }
    await queueDrained();
    for (const [carol, dave] of PAIRS) {
      assert.deepEqual(await subjects(dave), [`only ${carol}`]);
      assert.deepEqual(await subjects(carol), [], `${carol} kept no copy`);
    }
  });

  test('once the alias lists carol too, both get it', async () => {
    for (const [carol] of PAIRS) {
      const added = await tern.tern(['alias', 'add', carol, carol]);
      assert.equal(added.code, 0, added.stderr);
    }
    for (const [carol, dave] of PAIRS) {
      assert.equal((await send(tern.ports.smtp, carol, `both ${carol}`)).code, 250);
      await tern.waitForMessages(carol, 1);
      await tern.waitForMessages(dave, 2);
    }
    await queueDrained();
    for (const [carol, dave] of PAIRS) {
      assert.deepEqual(await subjects(carol), [`both ${carol}`]);
      assert.deepEqual(await subjects(dave), [`only ${carol}`, `both ${carol}`]);
      // What `tern mailbox` shows is the same.
      assert.deepEqual(
        (await tern.mailboxList(carol)).map((m) => m.subject),
        [`both ${carol}`],
      );
    }
  });

  test('a user whose alias leads nowhere is refused at RCPT', async () => {
    const reply = await send(tern.ports.smtp, 'erin@example.test', 'lost?');
    assert.equal(`${reply.code} ${reply.enhanced}`, '550 5.1.1');
  });
});

describe('subaddressing (RFC 5233, recipient_delimiter "+" by default)', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: ['frank@example.test', '日本@example.test'] });
  });
  after(async () => tern?.stop());

  for (const [user, tagged] of [
    ['frank@example.test', 'frank+lists@example.test'],
    ['日本@example.test', '日本+タグ@example.test'],
  ] as const) {
    test(`${tagged} is accepted and delivered to ${user}`, async () => {
      const reply = await send(tern.ports.smtp, tagged, `tagged ${tagged}`);
      assert.equal(reply.code, 250);
      await waitFor(`the message in ${user}'s mailbox`, async () =>
        (await tern.storedMessages(user)).find((m) => m.subject === `tagged ${tagged}`),
      );
    });
  }

  test('an unknown user with a tag is still refused at RCPT', async () => {
    const reply = await send(tern.ports.smtp, 'nobody+x@example.test', 'nope');
    assert.equal(reply.code, 550);
  });
});
