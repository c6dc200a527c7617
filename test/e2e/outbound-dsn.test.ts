// End to end: delivery status notifications for remote recipients (RFC 3461, RFC 3464), sent through
// submission by Python's smtplib with MAIL/RCPT parameters (RET, ENVID, NOTIFY, ORCPT) and read back with
// Python's email package: a permanent refusal → a failure DSN with Remote-MTA and Diagnostic-Code, the
// whole original (RET=FULL) or its headers only (RET=HDRS); NOTIFY=SUCCESS to a receiver without DSN →
// a success DSN with Action: relayed; to a receiver that offers DSN → the parameters passed on to it
// (what smtp-server saw), and no success DSN from Tern: the next hop is now responsible (RFC 3461 §5.2.1,
// as Postfix's smtp client does: no SUCCESS notice when the server announced DSN).
// Deliberately NOT here: delay warnings and expiry (outbound-retry), null MX (outbound-mx).

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, ParsedDsn, Receiver } from './outbound-helpers.ts';
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
const PASSWORD = 'alice outbound 1';

describe('DSNs for remote recipients', { skip }, () => {
  let dns: DnsServer;
  let tern: OutboundTern;
  /** plain.test: no DSN extension; refuses nobody@ with 550 5.1.1. */
  let plain: Receiver;
  /** dsn.test: advertises DSN; refuses nobody@ too. */
  let capable: Receiver;
  let seen = 0;

  before(async () => {
    const port = await closedPort();
    const refuse = (address: string) =>
      address.startsWith('nobody@') ? { code: 550, text: '5.1.1 No such user here' } : undefined;
    plain = await startReceiver({
      host: '127.0.0.31',
      port,
      name: 'mx.plain.test',
      hideDSN: true,
      onRcpt: refuse,
    });
    capable = await startReceiver({ host: '127.0.0.32', port, name: 'mx.dsn.test', onRcpt: refuse });
    dns = await startDnsServer({
      zones: {
        'plain.test': {
          '@': [{ type: 'MX', preference: 10, exchange: 'mx.plain.test' }],
          mx: [{ type: 'A', address: '127.0.0.31' }],
        },
        'dsn.test': {
          '@': [{ type: 'MX', preference: 10, exchange: 'mx.dsn.test' }],
          mx: [{ type: 'A', address: '127.0.0.32' }],
        },
      },
    });
    tern = await startOutboundTern({
      dns: dns.endpoint,
      outbound: { port },
      users: [{ address: SENDER, password: PASSWORD }],
    });
  });
  after(async () => {
    await tern?.stop();
    await plain?.close();
    await capable?.close();
    await dns?.close();
  });

  /** Submit with AUTH over STARTTLS, as a mail client would. */
  const submit = async (
    to: string,
    subject: string,
    mailOptions: readonly string[],
    rcptOptions: readonly string[],
  ): Promise<void> => {
    const r = await tern.send({
      port: tern.ports.submission,
      mode: 'starttls',
      login: [SENDER, PASSWORD],
      action: 'sendmail',
      from: SENDER,
      to: [to],
      raw: message(SENDER, to, subject, `Body of "${subject}".`),
      mail_options: mailOptions,
      rcpt_options: rcptOptions,
    });
    assert.equal(r.ok, true, `submission failed: ${JSON.stringify(r)}`);
  };

  /** The next DSN in the sender's mailbox: raw bytes and as Python reads it. */
  const nextDsn = async (): Promise<{ raw: Buffer; dsn: ParsedDsn }> => {
    const list = await tern.waitForMessages(SENDER, seen + 1);
    const summary = list[seen]!;
    seen++;
    const raw = await tern.storedMessage(SENDER, summary.id);
    return { raw, dsn: await parseDsn(raw) };
  };

  const assertReport = (dsn: ParsedDsn): void => {
    assert.equal(dsn.contentType, 'multipart/report');
    assert.equal(dsn.reportType, 'delivery-status');
    assert.equal(dsn.parts[0], 'text/plain');
    assert.equal(dsn.parts[1], 'message/delivery-status');
    assert.deepEqual(dsn.defects, []);
    assert.match(dsn.perMessage['reporting-mta'] ?? '', /^dns;\s*mx\.example\.test$/i);
    assert.ok(!Number.isNaN(Date.parse(dsn.perMessage['arrival-date'] ?? '')), 'Arrival-Date is a date');
    assert.match(dsn.to ?? '', /alice@example\.test/);
  };

  test('550 at RCPT with RET=FULL: failure DSN with Remote-MTA, Diagnostic-Code and the whole original', async () => {
    const to = 'nobody@plain.test';
    await submit(
      to,
      'refused with RET=FULL',
      ['RET=FULL', 'ENVID=env-full-1'],
      ['NOTIFY=FAILURE', `ORCPT=rfc822;${to}`],
    );
    const { raw, dsn } = await nextDsn();
    await tern.waitForEmptyQueue();
    assert.equal(headerValue(raw, 'Return-Path'), '<>');
    assertReport(dsn);
    assert.equal(dsn.perMessage['original-envelope-id'], 'env-full-1');
    assert.equal(dsn.perRecipient.length, 1);
    const r = dsn.perRecipient[0]!;
    assert.match(r['final-recipient'] ?? '', /^rfc822;\s*nobody@plain\.test$/i);
    assert.match(r['original-recipient'] ?? '', /^rfc822;\s*nobody@plain\.test$/i);
    assert.equal(r['action'], 'failed');
    assert.equal(r['status'], '5.1.1');
    assert.match(r['remote-mta'] ?? '', /^dns;\s*mx\.plain\.test$/i);
    assert.match(r['diagnostic-code'] ?? '', /^smtp;\s*550 5\.1\.1 No such user here/i);
    assert.equal(dsn.parts[2], 'message/rfc822');
    assert.equal(dsn.original?.headers['subject'], 'refused with RET=FULL');
    assert.match(dsn.original?.body ?? '', /Body of "refused with RET=FULL"\./);
    assert.equal(plain.accepted.length, 0);
  });

  test('550 at RCPT with RET=HDRS: the original headers only', async () => {
    const to = 'nobody@plain.test';
    await submit(to, 'refused with RET=HDRS', ['RET=HDRS', 'ENVID=env-hdrs-2'], ['NOTIFY=FAILURE,DELAY']);
    const { raw, dsn } = await nextDsn();
    await tern.waitForEmptyQueue();
    assertReport(dsn);
    assert.equal(dsn.perMessage['original-envelope-id'], 'env-hdrs-2');
    const r = dsn.perRecipient[0]!;
    assert.equal(r['action'], 'failed');
    assert.equal(r['status'], '5.1.1');
    assert.equal(r['original-recipient'], undefined, 'no ORCPT given, none invented');
    assert.equal(dsn.parts[2], 'text/rfc822-headers');
    assert.equal(dsn.original?.headers['subject'], 'refused with RET=HDRS');
    assert.ok(!raw.toString().includes('Body of "refused with RET=HDRS"'), 'the body is not returned');
  });

  test('NOTIFY=NEVER: refused, and no DSN at all', async () => {
    const to = 'nobody@plain.test';
    const rcptsBefore = plain.rcpts.length;
    await submit(to, 'refused quietly', [], ['NOTIFY=NEVER']);
    await waitFor('the refusal', () => (plain.rcpts.length > rcptsBefore ? true : undefined));
    await tern.waitForEmptyQueue();
    await sleep(500);
    assert.equal((await tern.storedMessages(SENDER)).length, seen, 'no DSN for NOTIFY=NEVER');
  });

  test('NOTIFY=SUCCESS to a receiver without DSN: a success DSN with Action: relayed', async () => {
    const to = 'carol@plain.test';
    await submit(to, 'relayed success', ['ENVID=env-ok-3'], ['NOTIFY=SUCCESS', `ORCPT=rfc822;${to}`]);
    const { raw, dsn } = await nextDsn();
    await tern.waitForEmptyQueue();
    assert.equal(headerValue(raw, 'Return-Path'), '<>');
    assertReport(dsn);
    assert.equal(dsn.perMessage['original-envelope-id'], 'env-ok-3');
    const r = dsn.perRecipient[0]!;
    assert.equal(r['action'], 'relayed');
    assert.match(r['status'] ?? '', /^2\.\d+\.\d+$/);
    assert.match(r['final-recipient'] ?? '', /carol@plain\.test/);
    assert.match(r['remote-mta'] ?? '', /^dns;\s*mx\.plain\.test$/i);
    // The receiver without DSN got no DSN parameters (RFC 3461 §5.2.2: not passed to a non-DSN server).
    const got = plain.accepted.find((m) => m.rcptTo.some((a) => a.address === to));
    assert.ok(got, 'delivered');
    assert.equal(got.rcptTo[0]!.args, false, `no RCPT parameters: ${JSON.stringify(got.rcptTo[0])}`);
    assert.equal(got.mailFrom.args === false ? undefined : got.mailFrom.args['ENVID'], undefined);
  });

  test('to a receiver that offers DSN: RET, ENVID, NOTIFY and ORCPT passed on', async () => {
    const to = 'dave@dsn.test';
    await submit(
      to,
      'dsn passed on',
      ['RET=HDRS', 'ENVID=env+2Bpass-4'],
      ['NOTIFY=SUCCESS,FAILURE', `ORCPT=rfc822;Dave@dsn.test`],
    );
    await waitFor('delivery to the DSN-capable receiver', () =>
      capable.accepted.some((m) => m.rcptTo.some((a) => a.address === to)) ? true : undefined,
    );
    await tern.waitForEmptyQueue();
    const got = capable.accepted.find((m) => m.rcptTo.some((a) => a.address === to))!;
    assert.equal(got.dsn?.ret, 'HDRS');
    // xtext both ways (RFC 3461 §4): "env+2Bpass-4" is "env+pass-4", and smtp-server decodes what Tern sent.
    assert.equal(got.dsn?.envid, 'env+pass-4');
    const rcpt = got.rcptTo.find((a) => a.address === to)!;
    assert.deepEqual([...(rcpt.dsn?.notify ?? [])].sort(), ['FAILURE', 'SUCCESS']);
    assert.match(rcpt.dsn?.orcpt ?? '', /^rfc822;Dave@dsn\.test$/i);
  });

  test('NOTIFY=SUCCESS to a receiver that offers DSN: no success DSN from Tern, the next hop reports', async () => {
    const to = 'erin@dsn.test';
    const before = (await tern.storedMessages(SENDER)).length;
    await submit(to, 'success is the next hop to tell', [], ['NOTIFY=SUCCESS']);
    await waitFor('delivery to the DSN-capable receiver', () =>
      capable.accepted.some((m) => m.rcptTo.some((a) => a.address === to)) ? true : undefined,
    );
    await tern.waitForEmptyQueue();
    await sleep(1500); // time for a DSN, were one (wrongly) sent
    const extra = (await tern.storedMessages(SENDER)).slice(before);
    seen += extra.length;
    const actions = await Promise.all(
      extra.map(
        async (m) => (await parseDsn(await tern.storedMessage(SENDER, m.id))).perRecipient[0]?.['action'],
      ),
    );
    assert.deepEqual(actions, [], 'no success DSN from Tern');
  });
});
