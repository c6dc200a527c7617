// End to end with nodemailer as the client (an independent SMTP implementation in JavaScript): plain
// SMTP, STARTTLS (RFC 3207), implicit TLS (RFC 8314), and one message to several recipients sent with
// PIPELINING (RFC 2920), some of them refused. Delivered content is checked through `tern mailbox`.
// Deliberately NOT here: byte-level edge cases (smtp-raw, smtp-security).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTransport } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type { Tern } from './harness.ts';
import { queueIdOf, splitTrace, startRecordingProxy, startTern } from './harness.ts';

const SENDER_PASSWORD = 'correct horse battery staple';

describe('nodemailer against Tern', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [
        { address: 'sender@example.test', password: SENDER_PASSWORD },
        'plain@example.test',
        'tls@example.test',
        'ssl@example.test',
        'p1@example.test',
        'p2@example.test',
        'p3@example.test',
      ],
    });
  });
  after(() => tern?.stop());

  const transport = (
    options: SMTPTransport.Options,
  ): ReturnType<typeof createTransport<SMTPTransport.SentMessageInfo>> =>
    createTransport({
      host: '127.0.0.1',
      name: 'nodemailer.example',
      connectionTimeout: 5000,
      greetingTimeout: 5000,
      socketTimeout: 5000,
      ...options,
    });

  test('plain SMTP (STARTTLS offered but not used)', async () => {
    const t = transport({ port: tern.ports.smtp, secure: false, ignoreTLS: true });
    const info = await t.sendMail({
      from: 'Bob <bob@remote.test>',
      to: 'plain@example.test',
      subject: 'plain nodemailer',
      text: 'Plain text body.\nSecond line.\n',
    });
    t.close();
    assert.deepEqual(info.accepted, ['plain@example.test']);
    assert.deepEqual(info.rejected, []);
    const queueId = queueIdOf(info.response);
    const [m] = await tern.waitForMessages('plain@example.test', 1);
    assert.equal(m!.subject, 'plain nodemailer');
    const trace = splitTrace(await tern.mailboxCat('plain@example.test', m!.id));
    assert.equal(trace.returnPath, 'bob@remote.test');
    assert.match(
      trace.received,
      new RegExp(
        `^Received: from nodemailer\\.example \\((?:unknown|[a-z0-9.-]+) \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.example\\.test \\(Tern\\) with ESMTP id ${queueId}\\r\\n`,
      ),
    );
    const body = trace.rest.toString('utf8');
    assert.match(body, /^Subject: plain nodemailer\r\n/m);
    assert.match(body, /^Message-ID: <[^>]+>\r\n/m);
    assert.ok(body.endsWith('\r\n\r\nPlain text body.\r\nSecond line.\r\n'), JSON.stringify(body));
  });

  test('STARTTLS required by the client (self-signed certificate accepted)', async () => {
    const t = transport({
      port: tern.ports.smtp,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
    });
    const info = await t.sendMail({
      from: 'bob@remote.test',
      to: 'tls@example.test',
      subject: 'starttls nodemailer',
      text: 'Encrypted.',
    });
    t.close();
    assert.deepEqual(info.accepted, ['tls@example.test']);
    const [m] = await tern.waitForMessages('tls@example.test', 1);
    const trace = splitTrace(await tern.mailboxCat('tls@example.test', m!.id));
    assert.match(trace.received, /with ESMTPS id \S+\r\n\t\(version=TLSv1\.[23] cipher=\S+\)\r\n/);
  });

  test('implicit TLS on the submissions port (secure: true), authenticated as submission requires', async () => {
    const t = transport({
      port: tern.ports.submissions,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'sender@example.test', pass: SENDER_PASSWORD },
    });
    const info = await t.sendMail({
      from: 'sender@example.test',
      to: 'ssl@example.test',
      subject: 'implicit tls nodemailer',
      text: 'Encrypted from the first byte.',
      // An attachment makes a multipart message with base64: the body must come through unchanged.
      attachments: [{ filename: 'data.bin', content: Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255]) }],
    });
    t.close();
    assert.deepEqual(info.accepted, ['ssl@example.test']);
    const [m] = await tern.waitForMessages('ssl@example.test', 1);
    const trace = splitTrace(await tern.mailboxCat('ssl@example.test', m!.id));
    assert.equal(trace.returnPath, 'sender@example.test');
    assert.match(trace.received, /with ESMTPSA id /);
    const body = trace.rest.toString('latin1');
    assert.match(body, /Content-Type: multipart\/mixed; boundary=/);
    assert.ok(body.includes(Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255]).toString('base64')));
  });

  test('several recipients in one pipelined transaction; an unknown one is refused, the rest delivered', async () => {
    // Through a recording proxy: to see that the envelope really went out pipelined.
    const proxy = await startRecordingProxy(tern.ports.smtp);
    const t = transport({ port: proxy.port, secure: false, ignoreTLS: true });
    const text = `${'line of text that repeats\n'.repeat(200)}.leading dot\n..two dots\n`;
    const info = await t.sendMail({
      from: 'bob@remote.test',
      to: ['p1@example.test', 'nobody@example.test', 'p2@example.test'],
      cc: 'p3@example.test',
      bcc: 'stranger@remote.test',
      subject: 'pipelined nodemailer',
      text,
    });
    t.close();
    await proxy.close();
    const pipelined = proxy.clientChunks
      .map((c) => c.toString('latin1'))
      .find((c) => /^MAIL FROM:.*\r\nRCPT TO:/s.test(c));
    assert.ok(pipelined, `MAIL and RCPT in one write: ${JSON.stringify(proxy.clientChunks.map(String))}`);
    assert.equal(pipelined.match(/^RCPT TO:/gm)?.length, 5, 'every RCPT in the same write');
    assert.deepEqual([...info.accepted].sort(), ['p1@example.test', 'p2@example.test', 'p3@example.test']);
    assert.deepEqual([...info.rejected].sort(), ['nobody@example.test', 'stranger@remote.test']);
    const errors =
      (info as { rejectedErrors?: { response?: string; recipient?: string }[] }).rejectedErrors ?? [];
    const byRecipient = new Map(errors.map((e) => [e.recipient, e.response ?? '']));
    assert.match(byRecipient.get('nobody@example.test') ?? '', /^550 5\.1\.1 /);
    assert.match(byRecipient.get('stranger@remote.test') ?? '', /^554 5\.7\.1 /);
    const queueId = queueIdOf(info.response);
    const stored: Buffer[] = [];
    for (const rcpt of ['p1@example.test', 'p2@example.test', 'p3@example.test']) {
      const [m] = await tern.waitForMessages(rcpt, 1);
      const trace = splitTrace(await tern.mailboxCat(rcpt, m!.id));
      assert.equal(trace.deliveredTo, rcpt);
      // Several recipients: no "for <...>" clause (RFC 5321 §7.2 — it would disclose the others).
      assert.match(trace.received, new RegExp(`id ${queueId}\\r\\n\\t; `));
      stored.push(trace.rest);
    }
    assert.deepEqual(stored[1], stored[0]);
    assert.deepEqual(stored[2], stored[0]);
    const body = stored[0]!.toString('utf8');
    assert.ok(!body.includes('stranger@remote.test'), 'Bcc is not written into the message');
    assert.ok(body.endsWith(`\r\n\r\n${text.replace(/\n/g, '\r\n')}`), 'dot-stuffed lines are unstuffed');
  });
});
