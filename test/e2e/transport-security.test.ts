// End to end: MTA-STS (RFC 8461) and DANE (RFC 7672) as a sender, all on loopback. A test DNS server is
// the validating resolver ([dns] dnssec = true): it sets the AD bit for the "signed" zones and not for
// the others; an HTTPS server on 127.0.0.50:443 serves the MTA-STS policies with a certificate from a
// test CA that [outbound] tls_ca trusts; smtp-server receivers offer no TLS, a self-signed certificate, a
// certificate that matches the TLSA record, or one that does not. What must never happen is checked at
// the receiver: no MAIL FROM (so no message) in plain text to an enforce domain, nothing to a host the
// policy does not name, nothing past a DANE mismatch.

import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import { createServer as createTcpServer, connect as tcpConnect, type Server as TcpServer } from 'node:net';
import { startDnsServer, type DnsServer, type NameSpec } from '../support/dns-server.ts';
import type { Tern } from './harness.ts';
import { runProcess, startTern, waitFor } from './harness.ts';
import type { OutboundTern, Receiver } from './outbound-helpers.ts';
import {
  closedPort,
  havePython,
  makeCerts,
  message,
  startOutboundTern,
  startReceiver,
} from './outbound-helpers.ts';

const SENDER = 'alice@example.test';
const POLICY_HOST = '127.0.0.50';

async function canBind443(): Promise<boolean> {
  const { createServer } = await import('node:net');
  const s = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(443, POLICY_HOST, resolve);
    });
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return true;
  } catch {
    return false;
  }
}

const skip = !havePython()
  ? 'python3 is not available'
  : !(await canBind443())
    ? `cannot bind ${POLICY_HOST}:443 (the MTA-STS policy host; needs root)`
    : false;

/** One HTTPS GET with SNI and Host `name`, the certificate not checked (the test looks at the body). */
function httpsGet(
  address: string,
  port: number,
  name: string,
  path: string,
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: address, port, path, servername: name, headers: { Host: name }, rejectUnauthorized: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const spki = (pem: string): Buffer =>
  createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
const full = (pem: string): Buffer => createHash('sha256').update(new X509Certificate(pem).raw).digest();

const policyText = (mode: string, mx: readonly string[]): string =>
  ['version: STSv1', `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), 'max_age: 86400', ''].join('\r\n');

describe('MTA-STS and DANE when sending', { skip }, () => {
  let dns: DnsServer;
  let policies: Server;
  let tern: OutboundTern;
  /** A second Tern, which offers REQUIRETLS, behind 127.0.0.60 (a TCP forwarder). */
  let peer: Tern;
  let forwarder: TcpServer;
  let dir: string;
  const receivers: Record<string, Receiver> = {};
  const served: Record<string, string> = {};

  before(async () => {
    const port = await closedPort();
    const hosts = [
      'mx.enforce.test',
      'mx.notls.test',
      'other.badmx.test',
      'mx.testing.test',
      'mx.dane.test',
      'mx.dane-ta.test',
      'mx.dane-bad.test',
      'mx.dane-notls.test',
    ];
    const ca = await makeCerts(['mx.enforce.test']);
    const policyCerts = await makeCerts(
      ['enforce.test', 'notls.test', 'badmx.test', 'testing.test', 'requiretls.test', 'badcert.test'].map(
        (d) => `mta-sts.${d}`,
      ),
    );
    // The peer Tern's certificate: its MX name, and the name its MTA-STS policy is served under.
    const peerCerts = await makeCerts(['mx.requiretls.test', 'mta-sts.requiretls.test']);
    const self = await generate([{ name: 'commonName', value: 'mx.self.test' }], {
      keyType: 'ec',
      algorithm: 'sha256',
    });
    const daneTa = await makeCerts(['mx.dane-ta.test']);
    const start = async (
      name: string,
      ip: string,
      tls: { key: string; cert: string } | null,
    ): Promise<void> => {
      receivers[name] = await startReceiver({ host: ip, port, ...(tls === null ? {} : { tls }) });
    };
    await start('enforce', '127.0.0.51', { key: ca.key, cert: ca.cert });
    await start('notls', '127.0.0.52', null);
    await start('badmx', '127.0.0.53', { key: ca.key, cert: ca.cert });
    await start('testing', '127.0.0.54', { key: self.private, cert: self.cert });
    await start('dane', '127.0.0.55', { key: self.private, cert: self.cert });
    // DANE-TA: the chain the server sends ends with the CA the TLSA record names.
    await start('dane-ta', '127.0.0.56', {
      key: daneTa.key,
      cert: `${daneTa.cert.trim()}\n${daneTa.caCert.trim()}\n`,
    });
    await start('dane-bad', '127.0.0.57', { key: self.private, cert: self.cert });
    await start('dane-notls', '127.0.0.58', null);
    await start('insecure', '127.0.0.59', { key: self.private, cert: self.cert });
    await start('badcert', '127.0.0.61', { key: self.private, cert: self.cert });
    void hosts;

    served['enforce.test'] = policyText('enforce', ['mx.enforce.test']);
    served['notls.test'] = policyText('enforce', ['mx.notls.test']);
    served['badmx.test'] = policyText('enforce', ['mx.badmx.test']);
    served['testing.test'] = policyText('testing', ['mx.testing.test']);
    served['badcert.test'] = policyText('enforce', ['mx.badcert.test']);
    policies = createHttpsServer({ key: policyCerts.key, cert: policyCerts.cert }, (req, res) => {
      const domain = (req.headers.host ?? '').replace(/^mta-sts\./, '');
      const text = served[domain];
      if (req.url !== '/.well-known/mta-sts.txt' || text === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(text);
    });
    await new Promise<void>((resolve) => policies.listen(443, POLICY_HOST, resolve));

    const mx = (
      host: string,
      ip: string,
      extra: Record<string, NameSpec> = {},
    ): Record<string, NameSpec> => ({
      '@': [{ type: 'MX', preference: 10, exchange: host }],
      [host]: [{ type: 'A', address: ip }],
      ...extra,
    });
    const sts = (id: string): Record<string, NameSpec> => ({
      '_mta-sts': [{ type: 'TXT', text: `v=STSv1; id=${id};` }],
      'mta-sts': [{ type: 'A', address: POLICY_HOST }],
    });
    const tlsa = (host: string, usage: number, selector: number, data: Buffer): Record<string, NameSpec> => ({
      [`_${port}._tcp.${host}`]: [{ type: 'TLSA', usage, selector, matchingType: 1, data }],
    });
    dns = await startDnsServer({
      secureZones: ['dane.test', 'dane-ta.test', 'dane-bad.test', 'dane-notls.test'],
      zones: {
        'enforce.test': mx('mx.enforce.test', '127.0.0.51', sts('e1')),
        'notls.test': mx('mx.notls.test', '127.0.0.52', sts('n1')),
        'badmx.test': mx('other.badmx.test', '127.0.0.53', sts('b1')),
        'testing.test': mx('mx.testing.test', '127.0.0.54', sts('t1')),
        'dane.test': mx('mx.dane.test', '127.0.0.55', {
          ...tlsa('mx.dane.test', 3, 1, spki(self.cert)),
          '_smtp._tls': [{ type: 'TXT', text: 'v=TLSRPTv1; rua=mailto:tlsrpt@dane.test' }],
        }),
        'dane-ta.test': mx(
          'mx.dane-ta.test',
          '127.0.0.56',
          tlsa('mx.dane-ta.test', 2, 0, full(daneTa.caCert)),
        ),
        'dane-bad.test': mx('mx.dane-bad.test', '127.0.0.57', {
          ...tlsa('mx.dane-bad.test', 3, 1, Buffer.alloc(32, 7)),
          // Its reports go to another domain's mailbox (RFC 8460 allows any destination).
          '_smtp._tls': [{ type: 'TXT', text: 'v=TLSRPTv1; rua=mailto:tlsrpt@dane.test' }],
        }),
        'dane-notls.test': mx(
          'mx.dane-notls.test',
          '127.0.0.58',
          tlsa('mx.dane-notls.test', 3, 1, spki(self.cert)),
        ),
        // MTA-STS for requiretls.test is published by the peer Tern itself ([mta_sts] mode = "enforce").
        'requiretls.test': mx('mx.requiretls.test', '127.0.0.60', {
          '_mta-sts': [{ type: 'TXT', text: 'v=STSv1; id=peer1;' }],
          'mta-sts': [{ type: 'A', address: '127.0.0.62' }],
        }),
        'badcert.test': mx('mx.badcert.test', '127.0.0.61', sts('c1')),
        // TLSA records in a zone the resolver does not vouch for: no DANE.
        'insecure.test': mx(
          'mx.insecure.test',
          '127.0.0.59',
          tlsa('mx.insecure.test', 3, 1, Buffer.alloc(32, 1)),
        ),
      },
    });
    dir = await mkdtemp(join(tmpdir(), 'tern-e2e-sts-'));
    const caFile = join(dir, 'ca.pem');
    await writeFile(
      caFile,
      `${ca.caCert.trim()}\n${policyCerts.caCert.trim()}\n${peerCerts.caCert.trim()}\n`,
    );
    await writeFile(join(dir, 'peer.crt'), peerCerts.cert);
    await writeFile(join(dir, 'peer.key'), peerCerts.key);
    peer = await startTern({
      hostname: 'mx.requiretls.test',
      localDomains: ['requiretls.test'],
      users: ['bob@requiretls.test'],
      mtaStsListener: '127.0.0.62:443',
      tables: {
        tls: { cert: join(dir, 'peer.crt'), key: join(dir, 'peer.key') },
        mta_sts: { mode: 'enforce' },
      },
    });
    forwarder = createTcpServer((client) => {
      const upstream = tcpConnect(peer.ports.smtp, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => forwarder.listen(port, '127.0.0.60', resolve));
    tern = await startOutboundTern({
      dns: dns.endpoint,
      dnsTable: { dnssec: true },
      outbound: { port, tls_ca: caFile },
      queue: { retry_min_seconds: 300, retry_max_seconds: 600 },
    });
  });

  after(async () => {
    await tern?.stop();
    await peer?.stop();
    forwarder?.close();
    policies?.close();
    for (const r of Object.values(receivers)) await r.close();
    await dns?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const sendTo = async (rcpt: string): Promise<void> => {
    const r = await tern.send({
      action: 'sendmail',
      from: SENDER,
      to: [rcpt],
      raw: message(SENDER, rcpt, `to ${rcpt}`),
    });
    assert.equal(r.ok, true, JSON.stringify(r));
  };

  /** The queue entry of a recipient once its first attempt is over (deferred, with its reply). */
  const deferredReply = async (rcpt: string): Promise<string> =>
    waitFor(
      `the attempt for ${rcpt}`,
      async () => {
        const q = await tern.queueList();
        const r = q.flatMap((m) => m.recipients).find((x) => x.address === rcpt);
        return r !== undefined && r.status === 'deferred' && r.lastReply !== null ? r.lastReply : undefined;
      },
      20_000,
    );

  test('enforce: delivered over TLS with a certificate valid for the MX host', async () => {
    await sendTo('bob@enforce.test');
    await waitFor('delivery', () => (receivers['enforce']!.accepted.length > 0 ? true : undefined), 20_000);
    assert.equal(receivers['enforce']!.accepted[0]!.secure, true);
    const line = await tern.waitForLog(
      'delivery.remote',
      (l) => l['event'] === 'delivery.remote' && l['domain'] === 'enforce.test',
    );
    assert.equal(line['tlsPolicy'], 'mta-sts');
    assert.equal(line['tlsVerified'], true);
    await tern.waitForLog(
      'the policy fetched',
      (l) => l['event'] === 'delivery.mta_sts.policy' && l['domain'] === 'enforce.test',
    );
  });

  test('enforce, the MX offers no STARTTLS: nothing is sent in plain text, the message waits', async () => {
    await sendTo('bob@notls.test');
    const reply = await deferredReply('bob@notls.test');
    assert.match(reply, /STARTTLS/);
    assert.deepEqual(receivers['notls']!.mailFroms, [], 'no MAIL FROM in plain text');
    assert.equal(receivers['notls']!.dataSeen.length, 0);
  });

  test('enforce, an MX host the policy does not name: never connected to', async () => {
    await sendTo('bob@badmx.test');
    const reply = await deferredReply('bob@badmx.test');
    assert.match(reply, /not named by badmx\.test's MTA-STS policy/);
    assert.equal(receivers['badmx']!.connections(), 0);
    await tern.waitForLog(
      'the refusal',
      (l) => l['event'] === 'security.tls_policy.refused' && l['host'] === 'other.badmx.test',
    );
  });

  test('enforce, a certificate no trusted CA signed: the handshake is refused, nothing sent', async () => {
    await sendTo('bob@badcert.test');
    assert.match(await deferredReply('bob@badcert.test'), /TLS handshake failed/);
    assert.deepEqual(receivers['badcert']!.mailFroms, []);
  });

  test('testing: delivered to a self-signed MX, and what enforce would refuse is reported', async () => {
    await sendTo('bob@testing.test');
    await waitFor('delivery', () => (receivers['testing']!.accepted.length > 0 ? true : undefined), 20_000);
    const failure = await tern.waitForLog(
      'the testing-mode report',
      (l) => l['event'] === 'delivery.mta_sts.testing_failure' && l['domain'] === 'testing.test',
    );
    assert.match(String(failure['reason']), /did not verify/);
  });

  test('DANE-EE: a self-signed certificate whose key the TLSA record names is delivered to', async () => {
    await sendTo('bob@dane.test');
    await waitFor('delivery', () => (receivers['dane']!.accepted.length > 0 ? true : undefined), 20_000);
    const line = await tern.waitForLog(
      'delivery.remote',
      (l) => l['event'] === 'delivery.remote' && l['domain'] === 'dane.test',
    );
    assert.equal(line['tlsPolicy'], 'dane');
    assert.equal(line['dane'], 'DANE-EE(3) 1 1');
    assert.equal(receivers['dane']!.accepted[0]!.servername, 'mx.dane.test', 'SNI names the MX host');
  });

  test('DANE-TA: the chain up to the CA the TLSA record names', async () => {
    await sendTo('bob@dane-ta.test');
    await waitFor('delivery', () => (receivers['dane-ta']!.accepted.length > 0 ? true : undefined), 20_000);
    const line = await tern.waitForLog(
      'delivery.remote',
      (l) => l['event'] === 'delivery.remote' && l['domain'] === 'dane-ta.test',
    );
    assert.equal(line['dane'], 'DANE-TA(2) 0 1');
  });

  test('DANE mismatch: never delivered; no STARTTLS under DANE: never in plain text', async () => {
    await sendTo('bob@dane-bad.test');
    await sendTo('bob@dane-notls.test');
    assert.match(await deferredReply('bob@dane-bad.test'), /DANE authentication failed/);
    assert.match(await deferredReply('bob@dane-notls.test'), /STARTTLS/);
    assert.deepEqual(receivers['dane-bad']!.mailFroms, []);
    assert.deepEqual(receivers['dane-notls']!.mailFroms, []);
  });

  test('TLSA records the resolver does not authenticate are ignored: opportunistic TLS as usual', async () => {
    await sendTo('bob@insecure.test');
    await waitFor('delivery', () => (receivers['insecure']!.accepted.length > 0 ? true : undefined), 20_000);
    const line = await tern.waitForLog(
      'delivery.remote',
      (l) => l['event'] === 'delivery.remote' && l['domain'] === 'insecure.test',
    );
    assert.equal(line['tlsPolicy'], 'may');
  });

  /** The sending Tern's outcome for a recipient, once final or deferred: its status and reply. */
  const outcome = (rcpt: string): Promise<{ event: string; reply: string }> =>
    waitFor(
      `the outcome for ${rcpt}`,
      () => {
        const line = tern
          .logs()
          .find(
            (l) => l['rcpt'] === rcpt && /^delivery\.(bounced|failed|deferred)$/.test(String(l['event'])),
          );
        if (line === undefined) return undefined;
        const reply = line['reply'];
        return {
          event: String(line['event']),
          reply: typeof reply === 'string' ? reply : JSON.stringify(reply),
        };
      },
      20_000,
    );

  test('Tern\'s own MTA-STS policy (service = "mta-sts"): served for its domains, nothing else', async () => {
    const res = await httpsGet('127.0.0.62', 443, 'mta-sts.requiretls.test', '/.well-known/mta-sts.txt');
    assert.equal(res.status, 200);
    assert.match(res.type, /^text\/plain/);
    assert.equal(
      res.body,
      'version: STSv1\r\nmode: enforce\r\nmx: mx.requiretls.test\r\nmax_age: 604800\r\n',
    );
    assert.equal(
      (await httpsGet('127.0.0.62', 443, 'mta-sts.other.test', '/.well-known/mta-sts.txt')).status,
      404,
    );
    assert.equal((await httpsGet('127.0.0.62', 443, 'mta-sts.requiretls.test', '/admin')).status, 404);
  });

  test('REQUIRETLS: over TLS that MTA-STS authenticates, to a next hop that offers REQUIRETLS, passed on', async () => {
    const r = await tern.send({
      mode: 'starttls',
      action: 'sendmail',
      from: SENDER,
      to: ['bob@requiretls.test'],
      raw: message(SENDER, 'bob@requiretls.test', 'REQUIRETLS end to end'),
      mail_options: ['REQUIRETLS'],
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    await peer.waitForMessages('bob@requiretls.test', 1, 20_000);
    const line = await tern.waitForLog(
      'delivery.remote',
      (l) => l['event'] === 'delivery.remote' && l['domain'] === 'requiretls.test',
    );
    assert.equal(line['tlsPolicy'], 'mta-sts', 'under the policy the peer Tern published');
    const queued = await peer.waitForLog(
      'the peer accepted it',
      (l) => l['event'] === 'smtp.queued' && l['requireTls'] === true,
    );
    assert.match(String(queued['tls']), /^TLSv1\.[23]/);
  });

  test('REQUIRETLS with no authenticated TLS to the domain: bounced at once with 5.7.10, nothing sent', async () => {
    const before = receivers['insecure']!.mailFroms.length;
    const r = await tern.send({
      mode: 'starttls',
      action: 'sendmail',
      from: SENDER,
      to: ['carol@insecure.test'],
      raw: message(SENDER, 'carol@insecure.test', 'must not go'),
      mail_options: ['REQUIRETLS'],
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    const o = await outcome('carol@insecure.test');
    assert.notEqual(o.event, 'delivery.deferred', 'a bounce now, not after the queue lifetime');
    assert.match(o.reply, /5\.7\.10/);
    assert.equal(receivers['insecure']!.mailFroms.length, before);
  });

  test('REQUIRETLS to a next hop that does not offer it: bounced at once with 5.7.30, no MAIL FROM', async () => {
    const before = receivers['enforce']!.mailFroms.length;
    await tern.send({
      mode: 'starttls',
      action: 'sendmail',
      from: SENDER,
      to: ['dave@enforce.test'],
      raw: message(SENDER, 'dave@enforce.test', 'must not go either'),
      mail_options: ['REQUIRETLS'],
    });
    const o = await outcome('dave@enforce.test');
    assert.notEqual(o.event, 'delivery.deferred');
    assert.match(o.reply, /5\.7\.30/);
    assert.equal(receivers['enforce']!.mailFroms.length, before);
  });

  test('REQUIRETLS on a session without TLS is refused (530 5.7.10)', async () => {
    const r = await tern.send({
      mode: 'plain',
      action: 'sendmail',
      from: SENDER,
      to: ['bob@requiretls.test'],
      raw: message(SENDER, 'bob@requiretls.test', 'x'),
      mail_options: ['REQUIRETLS'],
    });
    assert.equal(r.ok, false);
    assert.equal(r.code, 530);
    assert.match(r.text ?? '', /5\.7\.10/);
  });

  test('TLS-Required: No lets a message past an enforce policy to an MX without TLS', async () => {
    const raw = `TLS-Required: No\r\n${message(SENDER, 'erin@notls.test', 'optional TLS').toString('utf8')}`;
    await tern.send({ action: 'sendmail', from: SENDER, to: ['erin@notls.test'], raw });
    await waitFor(
      'delivery',
      () =>
        receivers['notls']!.accepted.some((m) => m.rcptTo.some((a) => a.address === 'erin@notls.test'))
          ? true
          : undefined,
      20_000,
    );
    const m = receivers['notls']!.accepted.find((x) =>
      x.rcptTo.some((a) => a.address === 'erin@notls.test'),
    )!;
    assert.equal(m.secure, false);
  });

  test("TLS-RPT: each day's report of each domain that asks, gzipped JSON that Python reads, DANE failures named", async () => {
    const r = await tern.tern(['tls-reports', 'send', '--today', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const sent = JSON.parse(r.stdout) as { domain: string; queued: string[] }[];
    assert.deepEqual(
      sent
        .filter((x) => x.queued.length > 0)
        .map((x) => x.domain)
        .sort(),
      ['dane-bad.test', 'dane.test'],
    );
    const reports = await waitFor(
      'two reports at tlsrpt@dane.test',
      () => {
        const got = receivers['dane']!.accepted.filter((m) =>
          m.rcptTo.some((a) => a.address === 'tlsrpt@dane.test'),
        );
        return got.length >= 2 ? got : undefined;
      },
      20_000,
    );
    const script = [
      'import sys, json, gzip, email',
      'msg = email.message_from_bytes(sys.stdin.buffer.read())',
      'assert msg.get_content_type() == "multipart/report", msg.get_content_type()',
      'assert msg.get_param("report-type") == "tlsrpt"',
      'part = next(p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip")',
      'assert part.get_filename().endswith(".json.gz")',
      'report = json.loads(gzip.decompress(part.get_payload(decode=True)))',
      'for key in ["organization-name", "date-range", "contact-info", "report-id", "policies"]: assert key in report, key',
      'for p in report["policies"]:',
      '    assert p["policy"]["policy-type"] in ("tlsa", "sts", "no-policy-found")',
      '    assert isinstance(p["summary"]["total-successful-session-count"], int)',
      '    assert isinstance(p["summary"]["total-failure-session-count"], int)',
      'print(json.dumps({"domain": msg["TLS-Report-Domain"], "report": report}))',
    ].join('\n');
    const parsed = [];
    for (const m of reports) {
      const out = await runProcess('python3', ['-c', script], { stdin: m.data });
      assert.equal(out.code, 0, out.stderr);
      parsed.push(
        JSON.parse(out.stdout) as {
          domain: string;
          report: {
            policies: {
              policy: Record<string, unknown>;
              summary: Record<string, number>;
              'failure-details'?: Record<string, unknown>[];
            }[];
          };
        },
      );
    }
    const good = parsed
      .find((p) => p.domain === 'dane.test')!
      .report.policies.find((p) => p.policy['policy-type'] === 'tlsa')!;
    assert.ok(good.summary['total-successful-session-count']! >= 1);
    assert.deepEqual(good.policy['mx-host'], ['mx.dane.test']);
    const bad = parsed.find((p) => p.domain === 'dane-bad.test')!.report.policies[0]!;
    assert.equal(bad.summary['total-failure-session-count']! >= 1, true);
    assert.equal(bad['failure-details']![0]!['result-type'], 'tlsa-invalid');
    assert.equal(bad['failure-details']![0]!['receiving-mx-hostname'], 'mx.dane-bad.test');
    // Reported once: a second run has nothing new for these domains.
    const again = JSON.parse((await tern.tern(['tls-reports', 'send', '--today', '--json'])).stdout) as {
      domain: string;
      queued: string[];
    }[];
    assert.equal(again.filter((x) => x.domain === 'dane.test' && x.queued.length > 0).length, 0);
  });
});
