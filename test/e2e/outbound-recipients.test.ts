// End to end: per-recipient outcomes of remote delivery and the notices they cause. Two recipients at one
// receiver, one refused (550): one copy for the other, a DSN for the refused one only; one recipient
// answered 452 (RFC 5321 §4.5.3.1.10): the other delivered now, that one on the retry, no DSN; a message
// over the receiver's SIZE (RFC 1870): bounced 5.3.4 without MAIL; local and remote recipients in one
// message; an alias forwarding to a remote address (the envelope sender kept, ORCPT naming the alias);
// and a bounce that cannot be delivered (its sender's domain has a null MX) going to the postmaster as a
// double bounce, once.
// Deliberately NOT here: routing (outbound-mx), DSN parameters (outbound-dsn).

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, Receiver } from './outbound-helpers.ts';
import {
  closedPort,
  havePython,
  headerValue,
  message,
  parseDsn,
  startOutboundTern,
  startReceiver,
} from './outbound-helpers.ts';
import { waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const SENDER = 'alice@example.test';
const LOCAL = 'bob@example.test';
const POSTMASTER = 'postmaster@example.test';

describe('per-recipient outcomes', { skip }, () => {
  let dns: DnsServer;
  let tern: OutboundTern;
  let rx: Receiver;
  let small: Receiver;

  before(async () => {
    const port = await closedPort();
    rx = await startReceiver({
      host: '127.0.0.91',
      port,
      onRcpt: (address, n) => {
        if (address.startsWith('nobody@')) return { code: 550, text: '5.1.1 No such user' };
        if (address.startsWith('busy@') && n === 1) return { code: 452, text: '4.5.3 Too many recipients' };
        return undefined;
      },
    });
    small = await startReceiver({ host: '127.0.0.92', port, sizeLimitBytes: 2000 });
    const mx = (domain: string, ip: string) => ({
      '@': [{ type: 'MX' as const, preference: 10, exchange: `mx.${domain}` }],
      mx: [{ type: 'A' as const, address: ip }],
    });
    dns = await startDnsServer({
      zones: {
        'peer.test': mx('peer.test', '127.0.0.91'),
        'small.test': mx('small.test', '127.0.0.92'),
        'nomail.test': { '@': [{ type: 'MX', preference: 0, exchange: '.' }] },
      },
    });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port },
      queue: { retry_min_seconds: 1, retry_max_seconds: 1 },
      users: [SENDER, LOCAL, POSTMASTER],
      aliases: [['sales@example.test', 'carol@peer.test']],
    });
  });
  after(async () => {
    await tern?.stop();
    await rx?.close();
    await small?.close();
    await dns?.close();
  });

  const send = async (from: string, to: readonly string[], subject: string, raw?: Buffer): Promise<void> => {
    const r = await tern.send({
      action: 'sendmail',
      from,
      to,
      raw: raw ?? message(from, to[0]!, subject),
    });
    assert.equal(r.ok, true, `submission failed: ${JSON.stringify(r)}`);
  };
  const accepted = (subject: string) =>
    rx.accepted.filter((m) => m.data.toString().includes(`Subject: ${subject}\r\n`));

  test('one of two recipients refused: one copy for the other, a DSN for the refused one only', async () => {
    const before = (await tern.storedMessages(SENDER)).length;
    await send(SENDER, ['nobody@peer.test', 'dan@peer.test'], 'half refused');
    const list = await tern.waitForMessages(SENDER, before + 1);
    await tern.waitForEmptyQueue();
    const copies = accepted('half refused');
    assert.equal(copies.length, 1);
    assert.deepEqual(
      copies[0]!.rcptTo.map((a) => a.address),
      ['dan@peer.test'],
    );
    const dsn = await parseDsn(await tern.storedMessage(SENDER, list[before]!.id));
    assert.equal(dsn.perRecipient.length, 1, 'the DSN lists the refused recipient only');
    assert.match(dsn.perRecipient[0]!['final-recipient'] ?? '', /nobody@peer\.test/);
    assert.equal(dsn.perRecipient[0]!['status'], '5.1.1');
    await sleep(300);
    assert.equal((await tern.storedMessages(SENDER)).length, before + 1, 'one DSN');
  });

  test('452 for one recipient: the other delivered at once, that one on the retry, no DSN', async () => {
    const before = (await tern.storedMessages(SENDER)).length;
    await send(SENDER, ['busy@peer.test', 'eve@peer.test'], 'one deferred');
    await waitFor('both delivered', () => {
      const got = accepted('one deferred').flatMap((m) => m.rcptTo.map((a) => a.address));
      return got.includes('busy@peer.test') && got.includes('eve@peer.test') ? true : undefined;
    });
    await tern.waitForEmptyQueue();
    const copies = accepted('one deferred');
    assert.deepEqual(
      copies.map((m) => m.rcptTo.map((a) => a.address)),
      [['eve@peer.test'], ['busy@peer.test']],
      'eve first, busy on the retry, once each',
    );
    assert.equal((await tern.storedMessages(SENDER)).length, before, 'no DSN');
  });

  test("over the receiver's SIZE: bounced 5.3.4 without a MAIL command", async () => {
    const before = (await tern.storedMessages(SENDER)).length;
    const big = message(SENDER, 'fay@small.test', 'too big', `${'y'.repeat(70)}\r\n`.repeat(80));
    await send(SENDER, ['fay@small.test'], 'too big', big);
    const list = await tern.waitForMessages(SENDER, before + 1);
    await tern.waitForEmptyQueue();
    assert.ok(small.connections() >= 1, 'the receiver was asked (EHLO shows SIZE)');
    assert.deepEqual(small.mailFroms, [], 'no MAIL for a message the receiver said it cannot take');
    const dsn = await parseDsn(await tern.storedMessage(SENDER, list[before]!.id));
    assert.equal(dsn.perRecipient[0]!['action'], 'failed');
    assert.equal(dsn.perRecipient[0]!['status'], '5.3.4');
  });

  test("a refusal Tern decided itself is not reported as the receiver's SMTP reply", async () => {
    const before = (await tern.storedMessages(SENDER)).length;
    const big = message(SENDER, 'gus@small.test', 'too big again', `${'z'.repeat(70)}\r\n`.repeat(80));
    await send(SENDER, ['gus@small.test'], 'too big again', big);
    const list = await tern.waitForMessages(SENDER, before + 1);
    const dsn = await parseDsn(await tern.storedMessage(SENDER, list[before]!.id));
    const rc = dsn.perRecipient[0]!;
    assert.equal(rc['status'], '5.3.4');
    // RFC 3464 §2.3.6: an "smtp" Diagnostic-Code is the remote MTA's reply; this one is Tern's own.
    assert.doesNotMatch(rc['diagnostic-code'] ?? '', /^smtp;/i);
    assert.doesNotMatch(dsn.humanText, /mx\.small\.test said:/);
  });

  test('local and remote recipients in one message: each delivered once', async () => {
    const beforeLocal = (await tern.storedMessages(LOCAL)).length;
    await send(SENDER, [LOCAL, 'gil@peer.test'], 'mixed');
    await tern.waitForMessages(LOCAL, beforeLocal + 1);
    await waitFor('the remote copy', () => (accepted('mixed').length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    assert.deepEqual(
      accepted('mixed').map((m) => m.rcptTo.map((a) => a.address)),
      [['gil@peer.test']],
    );
    assert.equal((await tern.storedMessages(LOCAL)).length, beforeLocal + 1);
  });

  test('an alias forwarding to a remote address: forwarded with the original sender, ORCPT the alias', async () => {
    await send(SENDER, ['sales@example.test'], 'to the alias');
    await waitFor('the forwarded copy', () => (accepted('to the alias').length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    const got = accepted('to the alias')[0]!;
    assert.deepEqual(
      got.rcptTo.map((a) => a.address),
      ['carol@peer.test'],
    );
    assert.equal(got.mailFrom.address, SENDER, 'the envelope sender is kept');
    assert.match(got.rcptTo[0]!.dsn?.orcpt ?? '', /^rfc822;sales@example\.test$/i);
  });

  test('a bounce that cannot be delivered goes to the postmaster, once', async () => {
    const beforePm = (await tern.storedMessages(POSTMASTER)).length;
    // A sender whose domain takes no mail (null MX): its bounce fails in turn.
    await send('ghost@nomail.test', ['nobody@peer.test'], 'bounce of a bounce');
    const list = await tern.waitForMessages(POSTMASTER, beforePm + 1);
    await tern.waitForEmptyQueue();
    await sleep(500);
    assert.equal((await tern.storedMessages(POSTMASTER)).length, beforePm + 1, 'one double bounce');
    const raw = await tern.storedMessage(POSTMASTER, list[beforePm]!.id);
    assert.equal(headerValue(raw, 'Return-Path'), '<>');
    const dsn = await parseDsn(raw);
    assert.equal(dsn.contentType, 'multipart/report');
    const rc = dsn.perRecipient[0]!;
    assert.match(rc['final-recipient'] ?? '', /ghost@nomail\.test/);
    assert.equal(rc['action'], 'failed');
    assert.equal(rc['status'], '5.1.10');
  });
});
