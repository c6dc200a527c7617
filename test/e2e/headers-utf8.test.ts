// End to end: the header fields Tern writes are UTF-8 text for a message sent with SMTPUTF8 (RFC 6532)
// and plain ASCII otherwise. A message from jürgen@ or 日本@ (MAIL FROM … SMTPUTF8) is stored with its
// Authentication-Results: smtp.mailfrom as the exact UTF-8 octets (not one octet per character, which
// gave "j\xFCrgen" and "\xE5,"), and a DSN about it carries the same octets in message/global-headers;
// ORCPT (rfc822 xtext, "jos+C3+A9") and ENVID come back decoded once (RFC 3461 §4, RFC 6533 §3). Their
// ASCII twins stay ASCII from end to end, even with a U-label EHLO. Python's email package
// (policy=SMTPUTF8) reads what Tern stored.
// Deliberately NOT here: what the results say (authchecks-*.test.ts), Bcc and Return-Path
// (headers-submission.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import { startAuthTern, startZones, storedBySubject } from './authchecks-helpers.ts';
import { RawSmtpClient, havePython, runProcess, smtplib, waitFor } from './harness.ts';
import { parseDsn } from './outbound-helpers.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const RCPT = 'rcpt@example.test';
/** The ASCII sender and its UTF-8 twins; each is a local user, so DSNs to them are stored here. */
const SENDERS = ['ascii@example.test', 'jürgen@example.test', '日本@example.test'] as const;
const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);

/** The header section of stored bytes (up to the empty line). */
function headSection(raw: Buffer): Buffer {
  const end = raw.indexOf('\r\n\r\n');
  return end < 0 ? raw : raw.subarray(0, end + 2);
}

/** The header fields of `raw`, read by Python's email package with policy=SMTPUTF8; and its defects. */
async function pythonHeaders(raw: Buffer): Promise<{ headers: [string, string][]; defects: string[] }> {
  const script = [
    'import email, json, sys',
    'from email import policy',
    'm = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.SMTPUTF8)',
    'json.dump({"headers": [[k, str(v)] for k, v in m.items()],',
    '           "defects": [type(d).__name__ for d in m.defects]}, sys.stdout)',
  ].join('\n');
  const r = await runProcess('python3', ['-c', script], { stdin: raw });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { headers: [string, string][]; defects: string[] };
}

const valuesOf = (headers: readonly [string, string][], name: string): string[] =>
  headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

function message(from: string, to: string, subject: string): Buffer {
  return Buffer.from(
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\n` +
      `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '-')}@example.test>\r\n` +
      `\r\nHello.\r\n`,
    'utf8',
  );
}

describe('headers Tern writes: UTF-8 for SMTPUTF8 mail, ASCII otherwise', { skip }, () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones({
      test: { 'example.test': [{ type: 'TXT' as const, text: 'v=spf1 ip4:127.0.0.0/8 -all' }] },
    });
    tern = await startAuthTern(dns, { users: [RCPT, ...SENDERS] });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  /** MAIL FROM `from` (with SMTPUTF8 when it is not ASCII) over port 25, as Python's smtplib does it. */
  const send = async (
    from: string,
    to: string,
    subject: string,
    rcptOptions: readonly string[] = [],
    mailOptions: readonly string[] = [],
  ): Promise<void> => {
    const r = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'sendmail',
      from,
      to: [to],
      raw: message(from, to, subject),
      mail_options: [...(isAscii(from) && isAscii(to) ? [] : ['SMTPUTF8']), ...mailOptions],
      rcpt_options: rcptOptions,
    });
    assert.equal(r.ok, true, JSON.stringify(r));
  };

  for (const sender of SENDERS) {
    test(`MAIL FROM:<${sender}>: Authentication-Results holds the address as ${isAscii(sender) ? 'ASCII' : 'exact UTF-8'}`, async () => {
      const subject = `ar ${sender}`;
      await send(sender, RCPT, subject);
      const stored = await storedBySubject(tern, RCPT, subject);
      const head = headSection(stored);
      const mailfrom = isAscii(sender) ? `smtp.mailfrom=${sender}` : `smtp.mailfrom="${sender}"`;
      assert.ok(head.includes(Buffer.from(mailfrom, 'utf8')), head.toString('utf8'));
      // example.test has no DMARC record: no "(p=none dis=none)" claiming a policy.
      assert.ok(
        head.includes(Buffer.from('\tdmarc=none header.from=example.test\r\n')),
        head.toString('utf8'),
      );
      // Every header octet is UTF-8 (fatal decoding would throw on "\xFC" or a cut sequence) …
      new TextDecoder('utf-8', { fatal: true }).decode(head);
      // … and ASCII when the message did not ask for SMTPUTF8.
      if (isAscii(sender))
        assert.ok(
          head.every((b) => b < 0x80),
          head.toString('latin1'),
        );

      const { headers, defects } = await pythonHeaders(stored);
      assert.deepEqual(defects, []);
      const ar = valuesOf(headers, 'Authentication-Results');
      assert.equal(ar.length, 1, JSON.stringify(headers));
      assert.ok(ar[0]!.includes(sender), ar[0]);
      assert.deepEqual(valuesOf(headers, 'Return-Path'), [`<${sender}>`]);
    });
  }

  test('a U-label EHLO without SMTPUTF8: every header Tern wrote is ASCII (the HELO as A-labels)', async () => {
    const subject = 'ulabel helo';
    const client = await RawSmtpClient.open(tern.ports.smtp);
    try {
      assert.equal((await client.command('EHLO bücher.example')).code, 250);
      assert.equal((await client.command(`MAIL FROM:<${SENDERS[0]}>`)).code, 250);
      assert.equal((await client.command(`RCPT TO:<${RCPT}>`)).code, 250);
      assert.equal((await client.command('DATA')).code, 354);
      await client.send(Buffer.concat([message(SENDERS[0], RCPT, subject), Buffer.from('.\r\n')]));
      assert.equal((await client.readReply(10_000)).code, 250);
      await client.command('QUIT');
    } finally {
      client.close();
    }
    const stored = await storedBySubject(tern, RCPT, subject);
    const head = headSection(stored);
    assert.ok(
      head.every((b) => b < 0x80),
      head.toString('latin1'),
    );
    assert.match(head.toString('latin1'), /smtp\.helo=xn--bcher-kva\.example\b/);
  });

  for (const sender of SENDERS) {
    test(`success DSN to ${sender}: ORCPT and ENVID decoded once; ${isAscii(sender) ? 'all ASCII' : 'global parts with the exact UTF-8'}`, async () => {
      const utf8 = !isAscii(sender);
      // The recipient of the original is 日本@ for the UTF-8 senders, so the DSN reports a UTF-8 address.
      const to = utf8 ? '日本@example.test' : RCPT;
      await send(
        sender,
        to,
        `dsn ${sender}`,
        ['NOTIFY=SUCCESS', 'ORCPT=rfc822;jos+C3+A9@example.test'],
        ['ENVID=caf+C3+A9'],
      );
      const reports = await waitFor(`the success DSN in ${sender}'s INBOX`, async () => {
        const list = await tern.messagesIn(sender, 'INBOX');
        const found = list.filter((m) => m.subject === 'Successful Mail Delivery Report');
        return found.length > 0 ? found : undefined;
      });
      assert.equal(reports.length, 1);
      const raw = await tern.storedMessage(sender, reports[0]!.id);
      const dsn = await parseDsn(raw);
      assert.equal(dsn.contentType, 'multipart/report');
      assert.deepEqual(dsn.defects, []);
      // ENVID is said again as xtext: the same octets as sent (not "caf+C3+83+C2+A9").
      assert.equal(dsn.perMessage['original-envelope-id'], 'caf+C3+A9');
      const r = dsn.perRecipient[0]!;
      if (utf8) {
        assert.deepEqual(dsn.parts, [
          'text/plain',
          'message/global-delivery-status',
          'message/global-headers',
        ]);
        // RFC 6533 §3: in a global DSN the utf-8 address type carries UTF-8 as it is.
        assert.match(r['original-recipient'] ?? '', /^utf-8;\s*josé@example\.test$/);
        assert.match(r['final-recipient'] ?? '', /^utf-8;\s*日本@example\.test$/);
        // The original's Authentication-Results, octet for octet, inside message/global-headers.
        assert.ok(raw.includes(Buffer.from(`smtp.mailfrom="${sender}"`, 'utf8')), raw.toString('utf8'));
        assert.ok(dsn.original?.headers['authentication-results']?.includes(sender));
        new TextDecoder('utf-8', { fatal: true }).decode(raw);
      } else {
        assert.deepEqual(dsn.parts, ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
        // Not global: utf-8-addr-xtext, "\x{E9}" (never the octets C3 83 C2 A9 of a second encoding).
        assert.match(r['original-recipient'] ?? '', /^utf-8;\s*jos\\x\{E9\}@example\.test$/);
        assert.match(r['final-recipient'] ?? '', /^rfc822;\s*rcpt@example\.test$/);
        assert.ok(
          raw.every((b) => b < 0x80),
          raw.toString('latin1'),
        );
      }
    });
  }
});
