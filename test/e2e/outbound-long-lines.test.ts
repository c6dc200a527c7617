// End to end: a message with a 5000-octet line, accepted because limits.long_lines = "accept", leaves
// Tern with no line over 998 octets (RFC 5321 §4.5.3.1.6) and says the same thing: the parts with long
// lines are encoded (quoted-printable or base64) before DKIM signing. The receiver is Python's aiosmtpd,
// the decoding Python's email package, the DKIM check python3-dkim: none of them Tern's code.
// Relayed mail (port 25, a trusted network, not signed), mail forwarded by an alias, and submitted mail (signed with a key from
// `tern dkim keygen`), each with ASCII and with UTF-8 text. Skipped, saying why, where aiosmtpd or
// python3-dkim is not installed.
// Deliberately NOT here: the encoder's own cases (src/protocol/mime/long-lines.test.ts).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import { startDnsServer } from '../support/dns-server.ts';
import {
  dkimpyVerify,
  findDkimPython,
  headerFields,
  NO_DKIMPY,
  submit,
  transact,
} from './authchecks-helpers.ts';
import { startTern, waitFor, type Tern } from './harness.ts';
import { closedPort, findPython, startPythonPeer, type ExternalPeer } from './outbound-helpers.ts';

const ALICE = { address: 'alice@example.test', password: 'alice-long-lines-1' };
const python = findPython('aiosmtpd');
const dkimPython = findDkimPython();
const skip =
  python === null ? 'aiosmtpd is not installed for any python3 here (Debian: python3-aiosmtpd)' : false;

// Every leaf part as Python's email package decodes it (get_payload(decode=True)).
const DECODE = String.raw`
import base64, email, json, sys
msg = email.message_from_bytes(sys.stdin.buffer.read())
out = []
for part in msg.walk():
    if part.is_multipart():
        continue
    out.append({"type": part.get_content_type(),
                "cte": str(part.get("Content-Transfer-Encoding", "")).strip().lower(),
                "payload": base64.b64encode(part.get_payload(decode=True) or b"").decode()})
json.dump(out, sys.stdout)
`;

interface DecodedPart {
  readonly type: string;
  readonly cte: string;
  readonly payload: string;
}

function decodeParts(message: Buffer): DecodedPart[] {
  const r = spawnSync(python!, ['-c', DECODE], { input: message, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as DecodedPart[];
}

function longestLine(message: Buffer): number {
  return Math.max(
    ...message
      .toString('latin1')
      .split('\r\n')
      .map((l) => l.length),
  );
}

const LONG_ASCII = 'The quick brown fox jumps over the lazy dog = 42. '.repeat(100);
const LONG_UTF8 = 'Grüße aus Zürich, jürgen; 日本語のテキスト. '.repeat(110);

describe('over-long lines leave Tern encoded (limits.long_lines = "accept")', { skip }, () => {
  let dns: DnsServer;
  let peer: ExternalPeer;
  let tern: Tern;
  /** Published DKIM records: name → text. */
  const zone: Record<string, string> = {};

  before(async () => {
    const port = await closedPort();
    peer = await startPythonPeer('aiosmtpd', python!, '127.0.0.1', port);
    dns = await startDnsServer({ zones: {} });
    dns.setZone('remote.test', {
      '@': [{ type: 'MX', preference: 10, exchange: 'mx.remote.test' }],
      mx: [{ type: 'A', address: '127.0.0.1' }],
    });
    tern = await startTern({
      users: [ALICE],
      aliases: [['fwd@example.test', 'dave@remote.test']],
      limits: { long_lines: 'accept' },
      smtp: { trusted_networks: ['127.0.0.0/8'] },
      tables: {
        dns: { servers: [dns.endpoint], timeout_seconds: 1, attempts: 2 },
        auth: { failure_delay_seconds: 0 },
        outbound: { port, tls: 'none', connect_timeout_seconds: 3, command_timeout_seconds: 5 },
        queue: { retry_min_seconds: 1, retry_max_seconds: 2 },
      },
    });
    const r = await tern.tern([
      'dkim',
      'keygen',
      '--domain',
      'example.test',
      '--selector',
      'll',
      '--algo',
      'rsa',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const m = /^(\S+?)\.?\s+IN\s+TXT\s+((?:"[^"]*"\s*)+)$/.exec(r.stdout.trim());
    assert.ok(m, r.stdout);
    const text = [...m[2]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!).join('');
    zone[m[1]!.toLowerCase()] = text;
    dns.setZone('_domainkey.example.test', { ll: [{ type: 'TXT', text }] });
  });

  after(async () => {
    await tern?.stop();
    await peer?.close();
    await dns?.close();
  });

  /** What the receiver got for the message whose Subject: is `subject`. */
  const received = (subject: string): Promise<Buffer> =>
    waitFor(
      `"${subject}" at aiosmtpd`,
      async () => (await peer.messages()).find((x) => headerFields(x.data, 'Subject')[0] === subject)?.data,
      15_000,
    );

  /** No line over 998 octets, and every part decodes to what was sent. */
  const assertSame = (got: Buffer, sent: Buffer): void => {
    assert.ok(longestLine(sent) >= 5000, 'the test message has its long line');
    assert.ok(longestLine(got) <= 998, `a line of ${longestLine(got)} octets reached the receiver`);
    const want = decodeParts(sent);
    const have = decodeParts(got);
    assert.deepEqual(
      have.map((p) => [p.type, p.payload]),
      want.map((p) => [p.type, p.payload]),
    );
    assert.ok(
      have.some((p) => p.cte === 'quoted-printable' || p.cte === 'base64'),
      JSON.stringify(have.map((p) => p.cte)),
    );
  };

  for (const [what, line] of [
    ['ASCII', LONG_ASCII],
    ['UTF-8', LONG_UTF8],
  ] as const) {
    test(`relayed from port 25, not MIME, ${what}: the receiver gets short lines that decode to the same text`, async () => {
      const subject = `relayed ${what}`;
      const sent = Buffer.from(
        `From: <someone@elsewhere.test>\r\nTo: <dave@remote.test>\r\nSubject: ${subject}\r\n` +
          `Message-ID: <relayed-${what}@elsewhere.test>\r\n\r\nHello,\r\n${line}\r\n-- \r\nsignature\r\n`,
        'utf8',
      );
      const t = await transact({
        port: tern.ports.smtp,
        helo: 'client.elsewhere.test',
        from: 'someone@elsewhere.test',
        to: 'dave@remote.test',
        message: sent,
      });
      assert.equal(t.data?.code, 250, JSON.stringify(t));
      const got = await received(subject);
      assertSame(got, sent);
      assert.deepEqual(headerFields(got, 'MIME-Version'), ['1.0']);
    });

    test(`forwarded by an alias, ${what}: the copy queued again is encoded too`, async () => {
      const subject = `forwarded ${what}`;
      const sent = Buffer.from(
        `From: <someone@elsewhere.test>\r\nTo: <fwd@example.test>\r\nSubject: ${subject}\r\n` +
          `Message-ID: <forwarded-${what}@elsewhere.test>\r\n\r\n${line}\r\n`,
        'utf8',
      );
      const t = await transact({
        port: tern.ports.smtp,
        helo: 'client.elsewhere.test',
        from: 'someone@elsewhere.test',
        to: 'fwd@example.test',
        message: sent,
      });
      assert.equal(t.data?.code, 250, JSON.stringify(t));
      assertSame(await received(subject), sent);
    });

    test(`submitted, multipart, ${what}: encoded before DKIM signing, and the signature verifies`, async (t) => {
      const subject = `signed ${what}`;
      const sent = Buffer.from(
        `From: <${ALICE.address}>\r\nTo: <dave@remote.test>\r\nSubject: ${subject}\r\n` +
          `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <signed-${what}@example.test>\r\n` +
          `MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b-1"\r\n\r\n` +
          `--b-1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${line}\r\n` +
          `--b-1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>short</p>\r\n--b-1--\r\n`,
        'utf8',
      );
      await submit({
        port: tern.ports.submission,
        user: ALICE.address,
        password: ALICE.password,
        from: ALICE.address,
        to: ['dave@remote.test'],
        message: sent,
      });
      const got = await received(subject);
      assertSame(got, sent);
      assert.equal(headerFields(got, 'DKIM-Signature').length, 1, 'signed');
      if (dkimPython === null) {
        t.diagnostic(`python3-dkim part skipped: ${NO_DKIMPY}`);
        return;
      }
      const tampered = Buffer.from(got.toString('latin1').replace('<p>short</p>', '<p>SHORT</p>'), 'latin1');
      const [good, bad] = dkimpyVerify(dkimPython, zone, [got, tampered]);
      assert.deepEqual(good, [true], 'dkimpy on the message as received');
      assert.notEqual(bad?.[0], true, 'dkimpy on a tampered copy');
    });
  }
});
