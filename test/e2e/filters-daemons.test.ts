// The filter daemons over real SMTP (issue 17): one Tern whose pipelines reach a private rspamd,
// spamd, clamd and opendkim on loopback (test/filters/daemons/). Each client address gets one daemon
// ([filters.networks]) so each verdict is the daemon's own; any other client gets them all, in order.
// The submission listener's own pipeline is the opendkim milter, which signs what users send.
// A message refused by a daemon is never stored; one signed by opendkim through the milter path is
// verified by dkimpy, an independent implementation.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import { eicar, startClamd, CLAMD_SKIP, type Clamd } from '../filters/daemons/clamd.ts';
import { startOpendkim, OPENDKIM_SKIP, type Opendkim } from '../filters/daemons/opendkim.ts';
import { startRspamd, RSPAMD_GTUBE, RSPAMD_SKIP, type Rspamd } from '../filters/daemons/rspamd.ts';
import { startSpamd, SPAMD_GTUBE, SPAMD_SKIP, type Spamd } from '../filters/daemons/spamd.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import { headerFields, startAuthTern, startZones, transact } from './authchecks-helpers.ts';
import { smtplib } from './harness.ts';

const RCPT = 'rcpt@example.test';
const SIGNER = 'a@example.org';
const PASSWORD = 'correct horse battery staple';
const UTF8_RCPT = 'jürgen@example.test';

const PYTHON_DKIM = spawnSync('/usr/bin/python3', ['-c', 'import dkim'], { stdio: 'ignore' }).status === 0;
const SKIP: string | false =
  RSPAMD_SKIP ||
  SPAMD_SKIP ||
  CLAMD_SKIP ||
  OPENDKIM_SKIP ||
  (PYTHON_DKIM ? false : 'python3-dkim is not installed');

const DKIMPY = String.raw`
import base64, json, sys
import dkim
req = json.load(sys.stdin)
def dnsfunc(name, timeout=5):
    name = name.decode("ascii") if isinstance(name, bytes) else name
    return req["zone"].get(name.rstrip(".").lower())
print(json.dumps(bool(dkim.verify(base64.b64decode(req["message"]), dnsfunc=dnsfunc, minkey=1024))))
`;

function mail(opts: { from: string; to: string; subject: string; body: string; extra?: string }): Buffer {
  return Buffer.from(
    `From: <${opts.from}>\r\nTo: <${opts.to}>\r\nSubject: ${opts.subject}\r\n` +
      `Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@example.org>\r\n` +
      `${opts.extra ?? ''}\r\n${opts.body}`,
    'utf8',
  );
}

describe('filter daemons over SMTP: rspamd, spamd, clamd, opendkim (milter)', { skip: SKIP }, () => {
  let dns: DnsServer;
  let tern: AuthTern;
  let rspamd: Rspamd;
  let spamd: Spamd;
  let clamd: Clamd;
  let opendkim: Opendkim;

  before(async () => {
    [rspamd, spamd, clamd, opendkim] = await Promise.all([
      startRspamd(),
      startSpamd(),
      startClamd(),
      startOpendkim(),
    ]);
    dns = await startZones({});
    tern = await startAuthTern(dns, {
      users: [RCPT, UTF8_RCPT, { address: SIGNER, password: PASSWORD }],
      tern: {
        localDomains: ['example.test', 'example.org'],
        // Submission signs what users send (the listener's own pipeline), as Postfix's
        // smtpd_milters on port 587 does.
        listenerFilters: { submission: ['milter:opendkim'] },
        extraToml: [
          '[filters]',
          'order = ["rspamd", "spamassassin", "clamav"]',
          '[filters.networks]',
          '"127.0.0.2/32" = ["rspamd"]',
          '"127.0.0.3/32" = ["spamassassin"]',
          '"127.0.0.4/32" = ["clamav"]',
          '[filters.rspamd]',
          `url = ${JSON.stringify(rspamd.url)}`,
          'timeout_seconds = 30',
          '[filters.spamassassin]',
          `address = ${JSON.stringify(spamd.address)}`,
          'timeout_seconds = 60',
          '[filters.clamav]',
          `address = ${JSON.stringify(clamd.address)}`,
          '[[filters.milter]]',
          'name = "opendkim"',
          `address = ${JSON.stringify(opendkim.address)}`,
          '',
        ].join('\n'),
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
    await Promise.all([rspamd?.stop(), spamd?.stop(), clamd?.stop(), opendkim?.stop()]);
  });

  const send = (localAddress: string, message: Buffer, to = RCPT) =>
    transact({
      port: tern.ports.smtp,
      localAddress,
      helo: 'client.example.org',
      from: 'a@example.org',
      to,
      ...(/[^\x00-\x7f]/.test(to) ? { mailParams: 'SMTPUTF8' } : {}),
      message,
      timeoutMs: 60_000,
    });

  const stored = async (address: string, subject: string, mailbox = 'INBOX'): Promise<Buffer> => {
    for (let i = 0; i < 100; i++) {
      const found = (await tern.messagesIn(address, mailbox)).find((m) => m.subject === subject);
      if (found !== undefined) return tern.storedMessage(address, found.id);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no message "${subject}" in ${address}'s ${mailbox}`);
  };

  test("rspamd: GTUBE is refused with 554 5.7.1 (rspamd's reject action); nothing stored", async () => {
    const tx = await send(
      '127.0.0.2',
      mail({ from: 'a@example.org', to: RCPT, subject: 'rspamd gtube', body: `${RSPAMD_GTUBE}\r\n` }),
    );
    assert.equal(tx.data?.code, 554, JSON.stringify(tx));
    assert.match(tx.data?.text ?? '', /^5\.7\.1 /);
    const line = await tern.waitForLog(
      'rspamd verdict',
      (l) => l['event'] === 'smtp.filter' && l['filter'] === 'rspamd' && l['verdict'] === 'reject',
    );
    assert.ok(typeof line['reason'] === 'string');
  });

  test('spamd: GTUBE scores 1000 and is refused (reject_score 10)', async () => {
    const tx = await send(
      '127.0.0.3',
      mail({ from: 'a@example.org', to: RCPT, subject: 'spamd gtube', body: `${SPAMD_GTUBE}\r\n` }),
    );
    assert.equal(tx.data?.code, 554, JSON.stringify(tx));
    assert.match(tx.data?.text ?? '', /^5\.7\.1 /);
  });

  test('clamd: an EICAR attachment is refused naming the signature', async () => {
    const attachment = Buffer.from(eicar()).toString('base64');
    const body =
      'This is a MIME message.\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n' +
      `--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="eicar.com"\r\nContent-Transfer-Encoding: base64\r\n\r\n${attachment}\r\n--b--\r\n`;
    const tx = await send(
      '127.0.0.4',
      mail({
        from: 'a@example.org',
        to: RCPT,
        subject: 'virus',
        body,
        extra: 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
      }),
    );
    assert.equal(tx.data?.code, 554, JSON.stringify(tx));
    assert.match(tx.data?.text ?? '', /5\.7\.1 .*Eicar/i);
  });

  const clean = (to: string, subject: string) =>
    send(
      '127.0.0.6',
      mail({
        from: 'a@example.org',
        to,
        subject,
        body: 'Hello, this is an ordinary note about lunch on Tuesday.\r\n',
      }),
      to,
    );

  const messageVerdicts = (reply: string | undefined) =>
    tern
      .logs()
      .filter(
        (l) =>
          l['event'] === 'smtp.filter' &&
          l['stage'] === 'message' &&
          l['queueId'] === /queued as (\S+)/.exec(reply ?? '')?.[1],
      );

  test("all three in order: a clean message is stored in INBOX with each daemon's fields", async () => {
    const tx = await clean(RCPT, 'clean for all');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const raw = await stored(RCPT, 'clean for all');
    assert.deepEqual(headerFields(raw, 'X-Virus-Scanned'), ['ClamAV']);
    assert.match(headerFields(raw, 'X-Spam-Status')[0] ?? '', /^No, score=/);
    assert.deepEqual(
      messageVerdicts(tx.data?.text).map((l) => String(l['filter'])),
      ['rspamd', 'spamassassin', 'clamav', 'auth'],
    );
  });

  test('the UTF-8 twin (SMTPUTF8, jürgen@): accepted and stored; rspamd scores raw UTF-8 in To: and files it in Junk', async () => {
    const tx = await clean(UTF8_RCPT, 'clean for jürgen');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const verdicts = messageVerdicts(tx.data?.text);
    const rspamd = verdicts.find((l) => l['filter'] === 'rspamd');
    // rspamd 3.4 scores an unencoded UTF-8 To: (INVALID_RCPT_8BIT, TO_NEEDS_ENCODING) over "add header".
    const mailbox = rspamd?.['verdict'] === 'quarantine' ? 'Junk' : 'INBOX';
    const raw = await stored(UTF8_RCPT, 'clean for jürgen', mailbox);
    assert.deepEqual(headerFields(raw, 'X-Virus-Scanned'), ['ClamAV']);
    assert.ok(raw.toString('utf8').includes('To: <jürgen@example.test>'));
  });

  test('submission with the opendkim milter on its listener: signed, and dkimpy verifies the stored message', async () => {
    const sent = await smtplib({
      port: tern.ports.submission,
      mode: 'starttls',
      login: [SIGNER, PASSWORD],
      action: 'sendmail',
      from: SIGNER,
      to: [RCPT],
      raw: mail({ from: SIGNER, to: RCPT, subject: 'sign me', body: 'A signed note.\r\n' }),
    });
    assert.ok(sent.ok, JSON.stringify(sent));
    const raw = await stored(RCPT, 'sign me');
    const [signature] = headerFields(raw, 'DKIM-Signature');
    assert.match(signature ?? '', new RegExp(`d=${opendkim.domain}`));
    const run = spawnSync('/usr/bin/python3', ['-c', DKIMPY], {
      input: JSON.stringify({
        zone: { [`${opendkim.selector}._domainkey.${opendkim.domain}`]: opendkim.publicKeyTxt },
        message: raw.toString('base64'),
      }),
      encoding: 'utf8',
    });
    assert.equal(run.stdout.trim(), 'true', run.stderr + raw.toString('latin1').slice(0, 1500));
    // The milter was told who logged in and how ({auth_authen}, {auth_type}) and about TLS.
    const verdict = tern
      .logs()
      .find(
        (l) => l['event'] === 'smtp.filter' && l['filter'] === 'milter:opendkim' && l['stage'] === 'message',
      );
    assert.equal(verdict?.['verdict'], 'accept');
  });

  test("an MX client from 127.0.0.1 gets no signature: the submission listener's pipeline is its own", async () => {
    const tx = await send(
      '127.0.0.7',
      mail({ from: SIGNER, to: RCPT, subject: 'not signed', body: 'hi\r\n' }),
    );
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const raw = await stored(RCPT, 'not signed');
    assert.deepEqual(headerFields(raw, 'DKIM-Signature'), []);
  });

  test('a daemon that is gone: clamd stopped → 451 4.7.1 (on_failure tempfail), the client keeps the message', async () => {
    await clamd.stop();
    const tx = await send(
      '127.0.0.4',
      mail({ from: 'a@example.org', to: RCPT, subject: 'while clamd is down', body: 'hello\r\n' }),
    );
    assert.equal(tx.data?.code, 451, JSON.stringify(tx));
    assert.match(tx.data?.text ?? '', /^4\.7\.1 /);
  });
});
