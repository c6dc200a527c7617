// End to end with Python's smtplib as the client (an independent SMTP implementation): plain, STARTTLS,
// implicit TLS (RFC 8314), SMTPUTF8 (RFC 6531), 8BITMIME (RFC 6152), DSN parameters (RFC 3461), the
// SIZE limit (RFC 1870), the recipient limit, unknown users, relay refusal, and a message read back
// byte for byte with `tern mailbox cat` under the trace fields Tern adds (RFC 5321 §4.4).
// Deliberately NOT here: raw-socket edge cases (smtp-raw, smtp-security) and nodemailer.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SmtplibResult, Tern } from './harness.ts';
import { closedPort, havePython, queueIdOf, smtplib, splitTrace, startTern, waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 with smtplib is not available on this machine';

const SENDER_PASSWORD = 'correct horse battery staple';

const RECEIVED_DATE = /[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}/.source;

function message(subject: string, to: string, body = 'Hello from smtplib.\r\n'): Buffer {
  return Buffer.from(
    `From: Bob <bob@remote.test>\r\nTo: <${to}>\r\nSubject: ${subject}\r\n` +
      `Message-ID: <${subject.replace(/\W/g, '')}@remote.test>\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n` +
      `\r\n${body}`,
  );
}

function assertOk(r: SmtplibResult): void {
  assert.equal(r.ok, true, `smtplib failed: ${JSON.stringify(r)}`);
}

describe('smtplib against Tern', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [
        'alice@example.test',
        { address: 'sender@example.test', password: SENDER_PASSWORD },
        'plain@example.test',
        'tls@example.test',
        'ssl@example.test',
        'josé@example.test',
        'zoë@example.test',
        'eight@example.test',
      ],
    });
  });
  after(() => tern?.stop());

  test('plain SMTP: delivered with Return-Path, Delivered-To and an ESMTP Received on top', async () => {
    const raw = message('plain one', 'plain@example.test');
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'bob@remote.test',
      to: ['plain@example.test'],
      raw,
    });
    assertOk(r);
    assert.equal(r.tls, null);
    assert.deepEqual(r.refused, {});
    for (const ext of ['pipelining', 'size', '8bitmime', 'smtputf8', 'dsn', 'starttls', 'chunking'])
      assert.ok(ext in r.features, `EHLO lacks ${ext}: ${JSON.stringify(r.features)}`);
    const [m] = await tern.waitForMessages('plain@example.test', 1);
    const stored = await tern.mailboxCat('plain@example.test', m!.id);
    const trace = splitTrace(stored);
    assert.equal(trace.returnPath, 'bob@remote.test');
    assert.equal(trace.deliveredTo, 'plain@example.test');
    // The name in the comment is what the system's DNS confirms for 127.0.0.1 (smtp-logs tests it).
    assert.match(
      trace.received,
      /^Received: from client\.example \((?:unknown|[a-z0-9.-]+) \[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(Tern\) with ESMTP id /,
    );
    assert.deepEqual(trace.rest, raw);
  });

  test('STARTTLS (self-signed, not verified): the session is encrypted and Received says ESMTPS', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'starttls',
      action: 'sendmail',
      from: 'bob@remote.test',
      to: ['tls@example.test'],
      raw: message('over starttls', 'tls@example.test'),
    });
    assertOk(r);
    assert.match(r.tls ?? '', /^TLSv1\.[23]$/);
    assert.ok(!('starttls' in r.features), 'STARTTLS must not be offered again inside TLS');
    const [m] = await tern.waitForMessages('tls@example.test', 1);
    const trace = splitTrace(await tern.mailboxCat('tls@example.test', m!.id));
    assert.match(trace.received, /with ESMTPS id \S+\r\n\t\(version=TLSv1\.[23] cipher=\S+\)\r\n/);
  });

  test('SMTP_SSL on the implicit-TLS port (RFC 8314), authenticated as submission requires', async () => {
    const r = await smtplib({
      port: tern.ports.submissions,
      mode: 'ssl',
      login: ['sender@example.test', SENDER_PASSWORD],
      action: 'sendmail',
      from: 'sender@example.test',
      to: ['ssl@example.test'],
      raw: Buffer.from(
        'From: <sender@example.test>\r\nTo: <ssl@example.test>\r\nSubject: implicit tls\r\n' +
          'Message-ID: <implicit-tls@example.test>\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n\r\nOver TLS.\r\n',
      ),
    });
    assertOk(r);
    assert.match(r.tls ?? '', /^TLSv1\.[23]$/);
    assert.ok(!('starttls' in r.features), 'no STARTTLS on an implicit-TLS listener');
    assert.ok('auth' in r.features, 'AUTH offered under TLS');
    const [m] = await tern.waitForMessages('ssl@example.test', 1);
    assert.equal(m!.subject, 'implicit tls');
    const trace = splitTrace(await tern.mailboxCat('ssl@example.test', m!.id));
    assert.equal(trace.returnPath, 'sender@example.test');
    // RFC 3848: ESMTPSA — ESMTP, over TLS, authenticated.
    assert.match(trace.received, /with ESMTPSA id /);
  });

  // smtplib adds SMTPUTF8 and BODY=8BITMIME itself when an address is not ASCII (Python docs, send_message).
  const sendUtf8 = async (user: string, mailOptions: readonly string[]): Promise<void> => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'send_message',
      message: {
        headers: [
          ['From', 'Jörg <jörg@bücher.test>'],
          ['To', `Someone <${user}>`],
          ['Subject', 'Grüße aus Köln'],
        ],
        body: 'Schöne Grüße.\n',
        cte: '8bit',
      },
      mail_options: mailOptions,
    });
    assertOk(r);
    const [m] = await tern.waitForMessages(user, 1);
    assert.equal(m!.subject, 'Grüße aus Köln');
    const stored = await tern.mailboxCat(user, m!.id);
    const trace = splitTrace(stored);
    assert.equal(Buffer.from(trace.returnPath, 'latin1').toString('utf8'), 'jörg@bücher.test');
    assert.equal(Buffer.from(trace.deliveredTo, 'latin1').toString('utf8'), user);
    assert.match(
      Buffer.from(trace.received, 'latin1').toString('utf8'),
      new RegExp(`with UTF8SMTP id \\S+\\r\\n\\tfor <${user}>;`),
    );
    assert.ok(stored.includes(Buffer.from('Schöne Grüße.\r\n')), 'the 8-bit body is stored as sent');
  };

  test('send_message with a UTF-8 address: SMTPUTF8 (RFC 6531) added by smtplib', () =>
    sendUtf8('josé@example.test', []));

  // Python appends its own SMTPUTF8 to the caller's, so MAIL carries the keyword twice.
  test('send_message with a UTF-8 address and mail_options=["SMTPUTF8"] as well', () =>
    sendUtf8('zoë@example.test', ['SMTPUTF8']));

  test('8BITMIME body is stored byte for byte (RFC 6152)', async () => {
    const raw = Buffer.concat([
      message('eight bit', 'eight@example.test', '').subarray(0, -2),
      Buffer.from(
        'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
      ),
      Buffer.from('Ærøskøbing, 東京, Zürich — ünïcödé\r\n', 'utf8'),
    ]);
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'bob@remote.test',
      to: ['eight@example.test'],
      raw,
      mail_options: ['BODY=8BITMIME'],
    });
    assertOk(r);
    const [m] = await tern.waitForMessages('eight@example.test', 1);
    assert.deepEqual(splitTrace(await tern.mailboxCat('eight@example.test', m!.id)).rest, raw);
  });

  test('unknown local user: 550 5.1.1', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'bob@remote.test',
      to: ['nobody@example.test'],
      raw: message('to nobody', 'nobody@example.test'),
    });
    assert.equal(r.error, 'SMTPRecipientsRefused');
    assert.deepEqual(r.refused, { 'nobody@example.test': [550, '5.1.1 No such user here'] });
  });

  test('relay attempt by an unauthenticated client: 554 5.7.1', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'bob@remote.test',
      to: ['someone@remote.test'],
      raw: message('relay me', 'someone@remote.test'),
    });
    assert.equal(r.error, 'SMTPRecipientsRefused');
    assert.equal(r.refused['someone@remote.test']?.[0], 554);
    assert.match(r.refused['someone@remote.test']?.[1] ?? '', /^5\.7\.1 /);
  });

  test('a message read back byte for byte with `tern mailbox cat`', async () => {
    const raw = Buffer.from(
      'From: Bob <bob@remote.test>\r\n' +
        'To: Alice <alice@example.test>\r\n' +
        'Subject: byte exact\r\n' +
        'Message-ID: <byte-exact@remote.test>\r\n' +
        'Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n' +
        'X-Folded: first\r\n\tsecond\r\n' +
        '\r\n' +
        'Line one\r\n' +
        '.a line starting with a dot (smtplib stuffs it, Tern unstuffs it)\r\n' +
        '..two dots\r\n' +
        '.\tdot and tab\r\n' +
        'trailing spaces   \r\n' +
        '\r\n' +
        `${'x'.repeat(998)}\r\n` +
        'last line\r\n',
    );
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'steps',
      steps: [
        ['mail', 'bob@remote.test', []],
        ['rcpt', 'alice@example.test', []],
        ['data', raw],
      ],
    });
    assertOk(r);
    assert.equal(r.steps[2]![0], 250, JSON.stringify(r.steps));
    const queueId = queueIdOf(r.steps[2]![1]);
    const [m] = await tern.waitForMessages('alice@example.test', 1);
    const listed = await tern.mailboxList('alice@example.test');
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.subject, 'byte exact');
    assert.equal(listed[0]!.from, 'Bob <bob@remote.test>');
    const stored = await tern.mailboxCat('alice@example.test', m!.id);
    assert.equal(listed[0]!.size, stored.length);
    const trace = splitTrace(stored);
    assert.equal(trace.returnPath, 'bob@remote.test');
    assert.equal(trace.deliveredTo, 'alice@example.test');
    assert.match(
      trace.received,
      new RegExp(
        `^Received: from client\\.example \\((?:unknown|[a-z0-9.-]+) \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.example\\.test \\(Tern\\) with ESMTP id ${queueId}\\r\\n\\tfor <alice@example\\.test>; ${RECEIVED_DATE}\\r\\n$`,
      ),
    );
    assert.deepEqual(trace.rest, raw);
  });
});

describe('smtplib: DSN parameters', { skip }, () => {
  let tern: Tern;
  before(async () => {
    // Loopback may relay here, so the message can name a remote recipient: an address literal (no DNS)
    // on a port where nothing listens, so delivery is refused at once and the recipient stays queued.
    tern = await startTern({
      users: ['dsn@example.test'],
      smtp: { trusted_networks: ['127.0.0.1/32'] },
      tables: { outbound: { port: await closedPort(), connect_timeout_seconds: 2 } },
    });
  });
  after(() => tern?.stop());

  test('DSN parameters (RET, ENVID, NOTIFY, ORCPT) are kept in the queued envelope (RFC 3461)', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'steps',
      steps: [
        ['mail', 'bob@remote.test', ['RET=HDRS', 'ENVID=QQ314159+2Bx']],
        ['rcpt', 'dsn@example.test', ['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;dsn@example.test']],
        // An address no test's server listens on (they bind 127.0.0.1, where the released port this
        // attempt goes to may meanwhile be another test's): refused at once, never stalled.
        ['rcpt', 'carol@[127.1.2.3]', ['NOTIFY=NEVER', 'ORCPT=rfc822;carol+2Btag@remote.test']],
        ['data', message('with dsn', 'dsn@example.test')],
      ],
    });
    assertOk(r);
    assert.deepEqual(
      r.steps.map(([code]) => code),
      [250, 250, 250, 250],
      JSON.stringify(r.steps),
    );
    const queueId = queueIdOf(r.steps[3]![1]);
    // The local recipient is delivered; the relayed one keeps the message queued, so its envelope can
    // be inspected.
    const [m] = await tern.waitForMessages('dsn@example.test', 1);
    assert.equal(m!.subject, 'with dsn');
    type Queued = { id: string; recipients: { address: string; status: string }[] };
    // The local recipient is settled with the message's delivery pass, which includes the relayed
    // one's attempt: a busy machine gets a little longer.
    const entry = await waitFor(
      'dsn@example.test settled in the queue',
      async () => {
        const list = await tern.tern(['queue', 'list', '--json']);
        const found = (JSON.parse(list.stdout) as Queued[]).find((q) => q.id === queueId);
        return found?.recipients[0]?.status === 'delivered' ? found : undefined;
      },
      30_000,
    );
    assert.deepEqual(
      entry.recipients.map((x) => x.address),
      ['dsn@example.test', 'carol@[127.1.2.3]'],
    );
    assert.ok(['queued', 'deferred'].includes(entry.recipients[1]!.status), JSON.stringify(entry));
    const queued = tern.logs().find((l) => l.event === 'smtp.queued' && l['queueId'] === queueId);
    assert.ok(queued, 'smtp.queued logged with the queue id');
    assert.equal(queued['recipients'], 2);
    assert.ok(
      tern
        .logs()
        .some(
          (l) => l.event === 'delivery.local' && l['queueId'] === queueId && l['rcpt'] === 'dsn@example.test',
        ),
    );

    const show = await tern.tern(['queue', 'show', queueId]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^envid:\s+QQ314159\+x$/m);
    assert.match(show.stdout, /^ret:\s+HDRS$/m);
    assert.match(
      show.stdout,
      /^ {2}dsn@example\.test\n(?: {4}.*\n)*? {4}notify:\s+SUCCESS,FAILURE\n {4}orcpt:\s+rfc822;dsn@example\.test$/m,
    );
    assert.match(
      show.stdout,
      /^ {2}carol@\[127\.1\.2\.3\]\n(?: {4}.*\n)*? {4}notify:\s+NEVER\n {4}orcpt:\s+rfc822;carol\+tag@remote\.test$/m,
    );
  });
});

describe('smtplib against Tern with small limits', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      limits: { max_message_bytes: 5000, max_recipients: 3 },
      users: [
        'big@example.test',
        'r1@example.test',
        'r2@example.test',
        'r3@example.test',
        'r4@example.test',
        'r5@example.test',
      ],
    });
  });
  after(() => tern?.stop());

  test('SIZE is announced; a declared size over it gets 552 5.3.4 at MAIL', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'bob@remote.test',
      to: ['big@example.test'],
      raw: message('too big', 'big@example.test', `${'y'.repeat(70)}\r\n`.repeat(100)),
    });
    assert.equal(r.features['size'], '5000');
    assert.equal(r.error, 'SMTPSenderRefused');
    assert.equal(r.code, 552);
    assert.match(r.text ?? '', /^5\.3\.4 /);
  });

  test('an undeclared oversize message gets 552 5.3.4 after DATA, and the session goes on', async () => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'steps',
      steps: [
        ['mail', 'bob@remote.test', []],
        ['rcpt', 'big@example.test', []],
        ['data', message('too big, undeclared', 'big@example.test', `${'y'.repeat(70)}\r\n`.repeat(100))],
        ['cmd', 'NOOP'],
        ['mail', 'bob@remote.test', []],
        ['rcpt', 'big@example.test', []],
        ['data', message('small enough', 'big@example.test')],
      ],
    });
    assertOk(r);
    assert.deepEqual(
      r.steps.map(([code, text]) => `${code} ${text.slice(0, 5)}`),
      ['250 2.1.0', '250 2.1.5', '552 5.3.4', '250 2.0.0', '250 2.1.0', '250 2.1.5', '250 2.0.0'],
    );
    const queueId = queueIdOf(r.steps[6]![1]);
    await tern.waitForLog(
      'the small message delivered',
      (l) => l.event === 'delivery.local' && l['queueId'] === queueId,
    );
    const list = await tern.mailboxList('big@example.test');
    assert.deepEqual(
      list.map((m) => m.subject),
      ['small enough'],
    );
  });

  test('recipients over max_recipients get 452 4.5.3; the first ones get the message', async () => {
    const to = [
      'r1@example.test',
      'r2@example.test',
      'r3@example.test',
      'r4@example.test',
      'r5@example.test',
    ];
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from: 'bob@remote.test',
      to,
      raw: message('many recipients', 'r1@example.test'),
    });
    assertOk(r);
    assert.deepEqual(Object.keys(r.refused).sort(), ['r4@example.test', 'r5@example.test']);
    for (const [code, text] of Object.values(r.refused)) {
      assert.equal(code, 452);
      assert.match(text, /^4\.5\.3 /);
    }
    for (const rcpt of to.slice(0, 3)) await tern.waitForMessages(rcpt, 1);
    assert.equal((await tern.storedMessages('r4@example.test')).length, 0);
    assert.equal((await tern.storedMessages('r5@example.test')).length, 0);
  });
});
