// End to end: two header fields that must not survive. Bcc: (and Resent-Bcc:) of a message submitted
// with AUTH on 587 or 465 are removed before it is queued (RFC 5322 §3.6.3: blind copies stay blind;
// Postfix's cleanup does the same), whatever their case and folding: the local copies and the copy a
// remote server receives carry none, and every recipient still gets the message. Return-Path: fields
// carried in a message are removed at final delivery into a mailbox (RFC 5321 §4.4), so exactly one
// remains there: Tern's, with the reverse-path. Sent by Python's smtplib, ASCII and UTF-8 (jürgen@,
// 日本@, SMTPUTF8) alike.
// Deliberately NOT here: Authentication-Results (headers-utf8.test.ts), DKIM signing (authchecks-signing).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import { waitFor } from './harness.ts';
import type { OutboundTern, Receiver } from './outbound-helpers.ts';
import { closedPort, havePython, startOutboundTern, startReceiver } from './outbound-helpers.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const ALICE = 'alice@example.test';
const PASSWORD = 'alice headers 1';
const LOCALS = ['bob@example.test', 'carol@example.test', 'jürgen@example.test', '日本@example.test'];

/** The header section of stored bytes (up to the empty line), as UTF-8 text. */
function head(raw: Buffer): string {
  const end = raw.indexOf('\r\n\r\n');
  return new TextDecoder('utf-8', { fatal: true }).decode(end < 0 ? raw : raw.subarray(0, end + 2));
}

/** The names of the header fields, in order, lower case. */
function fieldNames(raw: Buffer): string[] {
  return head(raw)
    .split('\r\n')
    .filter((l) => l !== '' && !/^[ \t]/.test(l))
    .map((l) => l.slice(0, l.indexOf(':')).trim().toLowerCase());
}

function build(headers: string, subject: string): Buffer {
  return Buffer.from(
    `${headers}Subject: ${subject}\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n` +
      `Message-ID: <${subject.replace(/\W/g, '-')}@example.test>\r\n\r\nHello, blind or not.\r\n`,
    'utf8',
  );
}

describe('header fields removed on the way in and at final delivery', { skip }, () => {
  let dns: DnsServer;
  let rx: Receiver;
  let tern: OutboundTern;

  before(async () => {
    const port = await closedPort();
    rx = await startReceiver({ host: '127.0.0.111', port, name: 'mx.remote.test' });
    dns = await startDnsServer({
      zones: {
        'remote.test': {
          '@': [{ type: 'MX', preference: 10, exchange: 'mx.remote.test' }],
          mx: [{ type: 'A', address: '127.0.0.111' }],
        },
      },
    });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port },
      users: [{ address: ALICE, password: PASSWORD }, ...LOCALS],
    });
  });
  after(async () => {
    await tern?.stop();
    await rx?.close();
    await dns?.close();
  });

  /** The stored copy in `address`'s mailbox whose Subject is `subject`. */
  const storedCopy = async (address: string, subject: string): Promise<Buffer> => {
    const entry = await waitFor(`"${subject}" for ${address}`, async () =>
      (await tern.storedMessages(address)).find((m) => m.subject === subject),
    );
    return tern.storedMessage(address, entry.id);
  };

  const remoteCopy = async (subject: string): Promise<Buffer> => {
    const m = await waitFor(`"${subject}" at the remote server`, () =>
      rx.accepted.find((a) => a.data.toString('utf8').includes(`Subject: ${subject}\r\n`)),
    );
    return m.data;
  };

  for (const twin of [
    {
      name: 'ASCII, 587',
      port: (): number => tern.ports.submission,
      mode: 'starttls' as const,
      to: 'bob@example.test',
      blind: ['carol@example.test', 'dave@remote.test'],
      // Three spellings: plain, lower case with a folded value, upper case; and a Resent-Bcc:.
      bcc:
        'Bcc: carol@example.test\r\n' +
        'bcc:\r\n\tdave@remote.test,\r\n carol@example.test\r\n' +
        'BCC: <dave@remote.test>\r\n' +
        'Resent-Bcc: dave@remote.test\r\n',
      smtputf8: false,
    },
    {
      name: 'UTF-8, 465',
      port: (): number => tern.ports.submissions,
      mode: 'ssl' as const,
      to: 'bob@example.test',
      blind: ['jürgen@example.test', '日本@remote.test'],
      bcc: 'Bcc: jürgen@example.test,\r\n 日本@remote.test\r\n',
      smtputf8: true,
    },
  ]) {
    test(`Bcc: removed on submission (${twin.name}): no copy carries it, every recipient gets one`, async () => {
      const subject = `bcc ${twin.name}`;
      const raw = build(`From: <${ALICE}>\r\nTo: <${twin.to}>\r\n${twin.bcc}`, subject);
      const r = await tern.send({
        port: twin.port(),
        mode: twin.mode,
        login: [ALICE, PASSWORD],
        action: 'sendmail',
        from: ALICE,
        to: [twin.to, ...twin.blind],
        raw,
        mail_options: twin.smtputf8 ? ['SMTPUTF8'] : [],
      });
      assert.equal(r.ok, true, JSON.stringify(r));

      const copies: Buffer[] = [];
      for (const address of [twin.to, ...twin.blind].filter((a) => a.endsWith('@example.test')))
        copies.push(await storedCopy(address, subject));
      copies.push(await remoteCopy(subject));
      for (const copy of copies) {
        const names = fieldNames(copy);
        assert.ok(!names.includes('bcc') && !names.includes('resent-bcc'), head(copy));
        // No continuation line of a removed field is left behind either (Delivered-To: names the
        // mailbox's own owner, which is no leak).
        const rest = head(copy).replace(/^Delivered-To: [^\r\n]*\r\n/m, '');
        for (const blind of twin.blind) assert.ok(!rest.includes(blind), head(copy));
        assert.ok(names.includes('to') && names.includes('subject'), head(copy));
      }
      const remote = rx.accepted.find((a) => a.data.toString('utf8').includes(`Subject: ${subject}\r\n`));
      assert.deepEqual(
        remote?.rcptTo.map((a) => a.address),
        twin.blind.filter((a) => a.endsWith('@remote.test')),
      );
    });
  }

  for (const twin of [
    { sender: 'sender@remote.test', carried: '<forged@evil.test>', to: 'bob@example.test', smtputf8: false },
    { sender: 'jürgen@remote.test', carried: '<日本@evil.test>', to: '日本@example.test', smtputf8: true },
  ]) {
    test(`Return-Path: only Tern's remains at final delivery (${twin.sender})`, async () => {
      const subject = `return-path ${twin.sender}`;
      const raw = build(
        `Return-Path: ${twin.carried}\r\nFrom: <${twin.sender}>\r\nreturn-path:\r\n <folded@evil.test>\r\n` +
          `To: <${twin.to}>\r\nRETURN-PATH: <>\r\n`,
        subject,
      );
      const r = await tern.send({
        port: tern.ports.smtp,
        mode: 'plain',
        action: 'sendmail',
        from: twin.sender,
        to: [twin.to],
        raw,
        mail_options: twin.smtputf8 ? ['SMTPUTF8'] : [],
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      const stored = await storedCopy(twin.to, subject);
      const names = fieldNames(stored);
      assert.deepEqual(
        names.filter((n) => n === 'return-path'),
        ['return-path'],
        head(stored),
      );
      assert.equal(names[0], 'return-path');
      assert.ok(stored.subarray(0, 64).includes(Buffer.from(`Return-Path: <${twin.sender}>\r\n`, 'utf8')));
      assert.ok(!head(stored).includes('evil.test'), head(stored));
      // The rest of the message is untouched: its From:, To: and body are there.
      assert.ok(names.includes('from') && names.includes('to'), head(stored));
      assert.ok(stored.toString('utf8').endsWith('\r\n\r\nHello, blind or not.\r\n'));
    });
  }
});
