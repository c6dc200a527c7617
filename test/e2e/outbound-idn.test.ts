// End to end: internationalized domains and addresses outbound (RFC 5890 IDNA, RFC 6531 SMTPUTF8). Mail
// to a U-label domain is routed by the A-label's MX (the DNS server sees the xn-- name only) and the
// domain goes on the wire as an A-label unless the transaction uses SMTPUTF8; a UTF-8 local part is sent with SMTPUTF8 to a receiver that
// offers it, and bounced with 5.6.7 (RFC 6531 §3.6.5) when the receiver does not, without it ever seeing
// the recipient. Messages come in through smtplib with SMTPUTF8 (needed for a UTF-8 RCPT).
// Deliberately NOT here: IDNA conversion rules themselves (src/delivery/route.test.ts).

import assert from 'node:assert/strict';
import { domainToASCII } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { OutboundTern, Receiver } from './outbound-helpers.ts';
import {
  closedPort,
  havePython,
  message,
  parseDsn,
  startOutboundTern,
  startReceiver,
} from './outbound-helpers.ts';
import { waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';
const SENDER = 'alice@example.test';
const BUECHER = 'bücher.test';
const BUECHER_A = domainToASCII(BUECHER); // xn--bcher-kva.test
const MUENCHEN = 'münchen.test';
const MUENCHEN_A = domainToASCII(MUENCHEN); // xn--mnchen-3ya.test

describe('IDN and SMTPUTF8 outbound', { skip }, () => {
  let dns: DnsServer;
  let tern: OutboundTern;
  /** Offers SMTPUTF8 (bücher.test). */
  let utf8: Receiver;
  /** Does not offer SMTPUTF8 (münchen.test). */
  let ascii: Receiver;

  before(async () => {
    assert.equal(BUECHER_A, 'xn--bcher-kva.test');
    const port = await closedPort();
    utf8 = await startReceiver({ host: '127.0.0.71', port });
    ascii = await startReceiver({ host: '127.0.0.72', port, hideSMTPUTF8: true });
    dns = await startDnsServer({
      zones: {
        [BUECHER_A]: {
          '@': [{ type: 'MX', preference: 10, exchange: `mx.${BUECHER_A}` }],
          mx: [{ type: 'A', address: '127.0.0.71' }],
        },
        [MUENCHEN_A]: {
          '@': [{ type: 'MX', preference: 10, exchange: `mx.${MUENCHEN_A}` }],
          mx: [{ type: 'A', address: '127.0.0.72' }],
        },
      },
    });
    tern = await startOutboundTern({ dns: dns.endpoint, outbound: { port }, users: [SENDER] });
  });
  after(async () => {
    await tern?.stop();
    await utf8?.close();
    await ascii?.close();
    await dns?.close();
  });

  const send = async (to: string, subject: string): Promise<void> => {
    const r = await tern.send({
      action: 'sendmail',
      from: SENDER,
      to: [to],
      // The header section stays ASCII: only the envelope needs UTF-8 here.
      raw: message(SENDER, 'undisclosed@example.test', subject),
      mail_options: ['SMTPUTF8'],
    });
    assert.equal(r.ok, true, `submission failed: ${JSON.stringify(r)}`);
  };

  test('a U-label domain: MX looked up as its A-label, delivered there', async () => {
    dns.clearQueries();
    await send(`bob@${BUECHER}`, 'to a U-label domain');
    await waitFor('delivery', () => (utf8.accepted.length > 0 ? true : undefined));
    await tern.waitForEmptyQueue();
    const asked = dns.queries.map((q) => `${q.type} ${q.name.toLowerCase()}`);
    assert.ok(asked.includes(`MX ${BUECHER_A}`), `the A-label was asked: ${asked.join(', ')}`);
    assert.ok(
      dns.queries.every((q) => /^[\x20-\x7e]*$/.test(q.name)),
      `no raw UTF-8 in DNS questions: ${asked.join(', ')}`,
    );
    // The A-label always works; the U-label only inside an SMTPUTF8 transaction (RFC 6531 §3.2).
    const got = utf8.accepted[0]!;
    const rcpt = got.rcptTo[0]!.address;
    if (got.smtpUtf8) assert.ok([`bob@${BUECHER_A}`, `bob@${BUECHER}`].includes(rcpt), rcpt);
    else assert.equal(rcpt, `bob@${BUECHER_A}`);
  });

  test('a UTF-8 local part to a receiver with SMTPUTF8: sent with SMTPUTF8', async () => {
    const before = utf8.accepted.length;
    await send(`josé@${BUECHER}`, 'to a UTF-8 mailbox');
    await waitFor('delivery', () => (utf8.accepted.length > before ? true : undefined));
    await tern.waitForEmptyQueue();
    const got = utf8.accepted.at(-1)!;
    assert.equal(got.smtpUtf8, true, 'MAIL FROM carried SMTPUTF8');
    const rcpt = got.rcptTo[0]!.address;
    assert.ok(rcpt.startsWith('josé@'), `the UTF-8 local part kept: ${rcpt}`);
    assert.ok([`josé@${BUECHER_A}`, `josé@${BUECHER}`].includes(rcpt), rcpt);
  });

  test('a UTF-8 local part to a receiver without SMTPUTF8: bounced with 5.6.7, never sent', async () => {
    const before = (await tern.storedMessages(SENDER)).length;
    await send(`jürgen@${MUENCHEN}`, 'cannot be downgraded');
    const list = await tern.waitForMessages(SENDER, before + 1);
    await tern.waitForEmptyQueue();
    assert.deepEqual(ascii.rcpts, [], 'the receiver never saw the address');
    assert.equal(ascii.dataSeen.length, 0);
    const raw = await tern.storedMessage(SENDER, list[before]!.id);
    const dsn = await parseDsn(raw);
    assert.equal(dsn.contentType, 'multipart/report');
    assert.equal(dsn.reportType, 'delivery-status');
    assert.ok(
      ['message/delivery-status', 'message/global-delivery-status'].includes(dsn.parts[1] ?? ''),
      `report part: ${dsn.parts.join(', ')}`,
    );
    const rc = dsn.perRecipient[0]!;
    assert.equal(rc['action'], 'failed');
    assert.equal(rc['status'], '5.6.7');
    assert.ok((rc['final-recipient'] ?? '').includes('jürgen@'), `Final-Recipient: ${rc['final-recipient']}`);
  });
});
