// What a running `tern serve` tells about its SMTP clients, over raw sockets, read back from the message
// and from the server's JSON log: the client's forward-confirmed reverse DNS name in Received: (RFC 5321
// §4.4 TCP-info, "unknown" without one) and in the logs, asked from the configured [dns] servers (here a
// loopback DNS server answering PTR for 127.0.0.1) without holding up the greeting; one info summary line
// per accepted message (smtp.queued) and per refused MAIL/RCPT/DATA (smtp.*.rejected); per-command lines
// at debug; times as ISO 8601.
// Deliberately NOT here: how names are cached and bounded (src/net/reverse-dns.test.ts), the Received:
// bytes for every input (src/protocol/smtp/received.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer, type DnsServer } from '../support/dns-server.ts';
import type { LogLine, Tern } from './harness.ts';
import { RawSmtpClient, ehlo, queueIdOf, splitTrace, startTern } from './harness.ts';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** PTR of 127.0.0.1 (1.0.0.127.in-addr.arpa) → `target`. */
function ptrZone(target: string): Record<string, readonly [{ type: 'PTR'; target: string }]> {
  return { '1.0.0.127': [{ type: 'PTR', target }] };
}

describe('client names, summary lines and debug lines in the log', () => {
  let dns: DnsServer;
  let tern: Tern;
  before(async () => {
    dns = await startDnsServer({
      zones: {
        'in-addr.arpa': ptrZone('client.tern-test.example'),
        'tern-test.example': {
          client: [{ type: 'A', address: '127.0.0.1' }],
          liar: [{ type: 'A', address: '192.0.2.1' }],
        },
      },
    });
    tern = await startTern({
      users: ['alice@example.test', 'jürgen@example.test'],
      logLevel: 'debug',
      limits: { max_message_bytes: 2000 },
      // No cache, so each test sees the zone as it set it.
      tables: {
        dns: { servers: [dns.endpoint], timeout_seconds: 0.5, attempts: 1, max_cache_ttl_seconds: 0 },
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  /** One message over a raw socket; returns the queue id and the Received: header Tern wrote on top. */
  async function send(
    from: string,
    to: string,
    options: { smtputf8?: boolean } = {},
  ): Promise<{ queueId: string; received: string }> {
    const already = (await tern.storedMessages(to)).length;
    const c = await RawSmtpClient.open(tern.ports.smtp);
    try {
      await ehlo(c, 'helo.tern-test.example');
      const mailParams = options.smtputf8 ? ' SMTPUTF8' : '';
      assert.equal((await c.command(`MAIL FROM:<${from}>${mailParams}`)).code, 250);
      assert.equal((await c.command(`RCPT TO:<${to}>`)).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      const done = await c.command('Subject: names\r\n\r\nhello\r\n.');
      assert.equal(done.code, 250, done.raw);
      const queueId = queueIdOf(done.lines[0]!);
      await tern.waitForMessages(to, already + 1);
      for (const m of await tern.storedMessages(to)) {
        const { received } = splitTrace(await tern.storedMessage(to, m.id));
        if (received.includes(` id ${queueId}\r\n`)) return { queueId, received };
      }
      throw new Error(`no stored message with queue id ${queueId}`);
    } finally {
      c.close();
    }
  }

  const queuedLine = (queueId: string): Promise<LogLine> =>
    tern.waitForLog(`smtp.queued ${queueId}`, (l) => l.event === 'smtp.queued' && l['queueId'] === queueId);

  test('PTR confirmed by A: Received says (client.tern-test.example [127.0.0.1]); so does the summary line', async () => {
    dns.setZone('in-addr.arpa', ptrZone('client.tern-test.example'));
    const { queueId, received } = await send('bob@remote.test', 'alice@example.test');
    assert.match(
      received,
      /^Received: from helo\.tern-test\.example \(client\.tern-test\.example \[127\.0\.0\.1\]\)\r\n/,
    );
    const line = await queuedLine(queueId);
    assert.equal(line.level, 'info');
    assert.match(String(line['time']), ISO);
    assert.equal(line['ip'], '127.0.0.1');
    assert.equal(line['rdns'], 'client.tern-test.example');
    assert.equal(line['helo'], 'helo.tern-test.example');
    assert.equal(line['sender'], 'bob@remote.test');
    assert.deepEqual(line['to'], ['alice@example.test']);
    assert.equal(line['recipients'], 1);
    assert.equal(typeof line['sizeBytes'], 'number');
    assert.equal(line['tls'], 'none');
    assert.equal(line['user'], null);
    // The name was asked from the configured server, PTR first, then the forward check.
    const asked = dns.queries.map((q) => `${q.type} ${q.name.toLowerCase()}`);
    assert.ok(asked.includes('PTR 1.0.0.127.in-addr.arpa'), asked.join(', '));
    assert.ok(asked.includes('A client.tern-test.example'), asked.join(', '));
  });

  test('PTR that does not point back (UTF-8 envelope): (unknown [127.0.0.1]), rdns null in the log', async () => {
    dns.setZone('in-addr.arpa', ptrZone('liar.tern-test.example'));
    const { queueId, received } = await send('jürgen@remote.test', 'jürgen@example.test', { smtputf8: true });
    assert.match(received, /^Received: from helo\.tern-test\.example \(unknown \[127\.0\.0\.1\]\)\r\n/);
    assert.doesNotMatch(received, /liar/);
    const line = await queuedLine(queueId);
    assert.equal(line['rdns'], null);
    assert.equal(line['sender'], 'jürgen@remote.test');
    assert.deepEqual(line['to'], ['jürgen@example.test']);
  });

  test('a DNS server that never answers does not hold up the greeting; the message says unknown', async () => {
    dns.setZone('in-addr.arpa', { '1.0.0.127': 'timeout' });
    dns.clearQueries();
    const before = tern.logs().length;
    const c = await RawSmtpClient.open(tern.ports.smtp);
    // The greeting is here; the name lookup (0.5 s resolver timeout) has not ended yet.
    const ended = tern
      .logs()
      .slice(before)
      .filter((l) => l.event === 'smtp.client.name');
    assert.deepEqual(ended, []);
    c.close();
    const { received } = await send('bob@remote.test', 'alice@example.test');
    assert.match(received, /\(unknown \[127\.0\.0\.1\]\)/);
  });

  test('refused RCPT, MAIL-time and DATA-time refusals: one info line each with ip, rdns, sender, recipient, reply', async () => {
    dns.setZone('in-addr.arpa', ptrZone('client.tern-test.example'));
    const c = await RawSmtpClient.open(tern.ports.smtp);
    try {
      await ehlo(c, 'helo.tern-test.example');
      assert.equal((await c.command('MAIL FROM:<bob@remote.test> SMTPUTF8')).code, 250);
      assert.equal((await c.command('RCPT TO:<nobody@example.test>')).code, 550);
      assert.equal((await c.command('RCPT TO:<日本@example.test>')).code, 550);
      assert.equal((await c.command('RCPT TO:<someone@elsewhere.example>')).code, 554);
      assert.equal((await c.command('RCPT TO:<alice@example.test>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      const tooBig = await c.command(`Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(40) + '.');
      assert.equal(tooBig.code, 552, tooBig.raw);
    } finally {
      c.close();
    }
    const rcpt = async (address: string): Promise<LogLine> =>
      tern.waitForLog(
        `smtp.rcpt.rejected ${address}`,
        (l) => l.event === 'smtp.rcpt.rejected' && l['rcpt'] === address,
      );
    for (const [address, reply] of [
      ['nobody@example.test', /^550 5\.1\.1 /],
      ['日本@example.test', /^550 5\.1\.1 /],
      ['someone@elsewhere.example', /^554 5\.7\.1 /],
    ] as const) {
      const line = await rcpt(address);
      assert.equal(line.level, 'info');
      assert.equal(line['ip'], '127.0.0.1');
      assert.equal(line['rdns'], 'client.tern-test.example');
      assert.equal(line['sender'], 'bob@remote.test');
      assert.match(String(line['reply']), reply);
    }
    const data = await tern.waitForLog(
      'smtp.data.rejected',
      (l) => l.event === 'smtp.data.rejected' && l['sender'] === 'bob@remote.test',
    );
    assert.equal(data.level, 'info');
    assert.equal(data['ip'], '127.0.0.1');
    assert.deepEqual(data['to'], ['alice@example.test']);
    assert.match(String(data['reply']), /^552 5\.3\.4 /);
  });

  test('each command and reply has a debug line; every line has an ISO 8601 time', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c, 'debug.tern-test.example');
    assert.equal((await c.command('NOOP')).code, 250);
    await c.command('QUIT');
    c.close();
    const noop = await tern.waitForLog(
      'smtp.command NOOP',
      (l) => l.event === 'smtp.command' && l['verb'] === 'NOOP',
    );
    assert.equal(noop.level, 'debug');
    const session = noop['session'];
    // The log is written in order: once the close is in, every reply line before it is too.
    await tern.waitForLog('smtp.close', (l) => l.event === 'smtp.close' && l['session'] === session);
    const replies = tern.logs().filter((l) => l.event === 'smtp.reply' && l['session'] === session);
    assert.deepEqual(
      replies.map((l) => [l.level, l['code']]),
      [
        ['debug', 220],
        ['debug', 250],
        ['debug', 250],
        ['debug', 221],
      ],
    );
    for (const l of tern.logs()) assert.match(String(l['time']), ISO, JSON.stringify(l));
  });
});
