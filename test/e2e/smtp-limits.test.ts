// LIMITS (RFC 9422) over the wire: EHLO advertises the server's real limits (from [limits]), and the
// server holds to them: the recipient past RCPTMAX gets 452 4.5.3, the MAIL past MAILMAX a 421 and the
// end of the session (Tern counts finished transactions, so a client that keeps to MAILMAX — which counts
// MAIL commands — is never refused). Python's smtplib reads the keyword as an independent client would.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ehlo, havePython, RawSmtpClient, smtplib, startTern, type Tern } from './harness.ts';

describe('LIMITS (RFC 9422)', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: ['rcpt@example.test', '日本@example.test'],
      limits: { max_recipients: 3, max_transactions_per_connection: 2 },
    });
  });
  after(async () => tern?.stop());

  test('smtplib sees LIMITS MAILMAX=2 RCPTMAX=3 in the EHLO reply', { skip: !havePython() }, async () => {
    const r = await smtplib({ port: tern.ports.smtp, mode: 'plain', action: 'steps', steps: [] });
    assert.equal(r.features['limits'], 'MAILMAX=2 RCPTMAX=3', JSON.stringify(r.features));
  });

  test('the server keeps to what it advertised: RCPTMAX and MAILMAX (UTF-8 recipients too)', async () => {
    const c = await RawSmtpClient.connect(tern.ports.smtp);
    await c.readReply();
    const lines = await ehlo(c);
    assert.ok(lines.includes('LIMITS MAILMAX=2 RCPTMAX=3'), lines.join('|'));
    for (let i = 0; i < 2; i++) {
      assert.equal((await c.command('MAIL FROM:<a@example.net> SMTPUTF8')).code, 250);
      for (let r = 0; r < 3; r++) assert.equal((await c.command(`RCPT TO:<日本@example.test>`)).code, 250);
      const fourth = await c.command('RCPT TO:<rcpt@example.test>');
      assert.equal(fourth.code, 452);
      assert.equal(fourth.enhanced, '4.5.3');
      assert.equal((await c.command('DATA')).code, 354);
      assert.equal((await c.command(`Subject: limits ${i}\r\n\r\nhi\r\n.`)).code, 250);
    }
    const third = await c.command('MAIL FROM:<a@example.net>');
    assert.equal(third.code, 421);
    assert.equal(await c.waitForClose(), true);
  });
});
