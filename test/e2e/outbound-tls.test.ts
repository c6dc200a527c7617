// End to end: outbound TLS policy per destination ([outbound.tls_policy], RFC 3207, Postfix's
// smtp_tls_security_level) against smtp-server receivers. "encrypt" to a receiver without STARTTLS: the
// message waits in the queue with STARTTLS named in its last reply, nothing delivered; "may" to a receiver
// with a self-signed certificate: delivered over TLS; "verify" with [outbound] tls_ca naming the
// receiver's CA: delivered over TLS; with a certificate for another name, or without tls_ca: deferred.
// Deliberately NOT here: the client's STARTTLS state machine against hostile servers (unit tests).

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, QueuedJson, Receiver } from './outbound-helpers.ts';
import {
  closedPort,
  havePython,
  makeCerts,
  message,
  startOutboundTern,
  startReceiver,
} from './outbound-helpers.ts';
import { waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const SENDER = 'alice@example.test';

const TLS_POLICY = {
  'secure.test': 'encrypt',
  'may.test': 'may',
  'verify.test': 'verify',
  'wrongname.test': 'verify',
};

describe('outbound TLS policies', { skip }, () => {
  let dns: DnsServer;
  let port: number;
  let dir: string;
  let caFile: string;
  let tern: OutboundTern;
  let plaintextOnly: Receiver;
  let selfSigned: Receiver;
  let verified: Receiver;
  let wrongName: Receiver;

  before(async () => {
    port = await closedPort();
    const certs = await makeCerts(['mx.verify.test']);
    const other = await makeCerts(['not-the-mx.test']);
    const self = await generate([{ name: 'commonName', value: 'mx.may.test' }], {
      keyType: 'ec',
      algorithm: 'sha256',
    });
    plaintextOnly = await startReceiver({ host: '127.0.0.41', port });
    selfSigned = await startReceiver({
      host: '127.0.0.42',
      port,
      tls: { key: self.private, cert: self.cert },
    });
    verified = await startReceiver({ host: '127.0.0.43', port, tls: { key: certs.key, cert: certs.cert } });
    // Signed by the trusted CA, but for another host name than the MX.
    wrongName = await startReceiver({
      host: '127.0.0.44',
      port,
      tls: { key: other.key, cert: `${other.cert}` },
    });
    dir = await mkdtemp(join(tmpdir(), 'tern-e2e-tls-'));
    caFile = join(dir, 'ca.pem');
    // Both CAs trusted: the wrong-name case fails on the name alone.
    await writeFile(caFile, `${certs.caCert.trim()}\n${other.caCert.trim()}\n`);
    const zone = (host: string, ip: string) => ({
      '@': [{ type: 'MX' as const, preference: 10, exchange: host }],
      [host]: [{ type: 'A' as const, address: ip }],
    });
    dns = await startDnsServer({
      zones: {
        'secure.test': zone('mx.secure.test', '127.0.0.41'),
        'may.test': zone('mx.may.test', '127.0.0.42'),
        'verify.test': zone('mx.verify.test', '127.0.0.43'),
        'wrongname.test': zone('mx.wrongname.test', '127.0.0.44'),
      },
    });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port, tls_ca: caFile },
      tlsPolicy: TLS_POLICY,
      // Deferred mail is looked at again only when a test says so.
      queue: { retry_min_seconds: 600, retry_max_seconds: 600 },
      users: [SENDER],
    });
  });
  after(async () => {
    await tern?.stop();
    await Promise.all([plaintextOnly, selfSigned, verified, wrongName].map((r) => r?.close()));
    await dns?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const send = async (t: OutboundTern, to: string, subject: string): Promise<void> => {
    const r = await t.send({ action: 'sendmail', from: SENDER, to: [to], raw: message(SENDER, to, subject) });
    assert.equal(r.ok, true, `submission failed: ${JSON.stringify(r)}`);
  };

  const deferredFor = (t: OutboundTern, to: string): Promise<QueuedJson['recipients'][number]> =>
    waitFor(`${to} deferred`, async () => {
      const m = (await t.queueList()).find((q) => q.recipients.some((x) => x.address === to));
      const rc = m?.recipients.find((x) => x.address === to);
      return rc?.status === 'deferred' ? rc : undefined;
    });

  test('encrypt, receiver without STARTTLS: deferred, STARTTLS named in the last reply, nothing sent', async () => {
    const to = 'bob@secure.test';
    await send(tern, to, 'must be encrypted');
    const rc = await deferredFor(tern, to);
    assert.match(rc.lastReply ?? '', /STARTTLS/);
    assert.match(rc.lastReply ?? '', /^4\d\d /, `a temporary reply: ${rc.lastReply}`);
    assert.ok(plaintextOnly.connections() >= 1, 'the receiver was contacted');
    assert.deepEqual(plaintextOnly.rcpts, [], 'no envelope sent in clear');
    assert.equal(plaintextOnly.dataSeen.length, 0);
  });

  test('may, self-signed certificate: delivered over TLS', async () => {
    await send(tern, 'carol@may.test', 'opportunistic');
    await waitFor('delivery', () => (selfSigned.accepted.length > 0 ? true : undefined));
    const got = selfSigned.accepted[0]!;
    assert.equal(got.secure, true, 'the receiver saw a TLS session');
    assert.match(got.tlsProtocol ?? '', /^TLSv1\.[23]$/);
  });

  test('verify, certificate from the configured tls_ca: delivered over TLS', async () => {
    await send(tern, 'dave@verify.test', 'verified');
    await waitFor('delivery', () => (verified.accepted.length > 0 ? true : undefined));
    assert.equal(verified.accepted[0]!.secure, true);
    assert.equal(verified.accepted[0]!.servername, 'mx.verify.test', 'SNI names the MX host (RFC 6066 §3)');
    const line = await tern.waitForLog(
      'delivery.remote for verify.test',
      (l) => l.event === 'delivery.remote' && l['domain'] === 'verify.test',
    );
    assert.ok(line['tls'], `the log names the TLS version: ${JSON.stringify(line)}`);
  });

  test('verify, trusted CA but a certificate for another name: deferred, nothing sent', async () => {
    const to = 'erin@wrongname.test';
    await send(tern, to, 'wrong name');
    const rc = await deferredFor(tern, to);
    assert.match(rc.lastReply ?? '', /^4\d\d 4\.7\.\d /);
    assert.match(rc.lastReply ?? '', /altname|name/i, `the reply says why: ${rc.lastReply}`);
    assert.deepEqual(wrongName.rcpts, []);
    assert.equal(wrongName.dataSeen.length, 0);
  });

  test('verify without tls_ca: the same receiver is not trusted, deferred', async () => {
    const other = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port },
      tlsPolicy: TLS_POLICY,
      queue: { retry_min_seconds: 600, retry_max_seconds: 600 },
      users: [SENDER],
    });
    try {
      const before = verified.rcpts.length;
      const to = 'finn@verify.test';
      await send(other, to, 'not verifiable');
      const rc = await deferredFor(other, to);
      assert.match(rc.lastReply ?? '', /^4\d\d 4\.7\.\d /);
      assert.match(rc.lastReply ?? '', /verify|certificate/i, `the reply says why: ${rc.lastReply}`);
      await sleep(200);
      assert.equal(verified.rcpts.length, before, 'no RCPT to an unverified server');
      assert.ok(!verified.accepted.some((m) => m.rcptTo.some((a) => a.address === to)));
    } finally {
      await other.stop();
    }
  });
});
