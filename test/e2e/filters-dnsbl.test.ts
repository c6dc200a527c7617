// The DNSBL filter end to end (RFC 5782, issue 17): a zone served by the test DNS server lists
// 127.0.0.2; a client connecting from 127.0.0.2 gets 554 5.7.1 at MAIL naming the zone, one from
// 127.0.0.3 is accepted and its message stored; each verdict is logged as smtp.filter; a zone whose
// server does not answer leaves mail flowing (on_failure = "accept", the default).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import { message, startAuthTern, startZones, transact } from './authchecks-helpers.ts';

const RCPT = 'rcpt@example.test';

describe('DNSBL filter', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones({
      'bl.test': {
        '2.0.0.127': [
          { type: 'A', address: '127.0.0.2' },
          { type: 'TXT', text: 'listed for the test' },
        ],
      },
      'down.test': { '@': [], '2.0.0.127': 'timeout', '3.0.0.127': 'timeout' },
    });
    tern = await startAuthTern(dns, {
      users: [RCPT],
      tables: { 'filters.dnsbl': { zones: ['bl.test', 'down.test'], timeout_seconds: 2 } },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  const send = (localAddress: string, subject: string) =>
    transact({
      port: tern.ports.smtp,
      localAddress,
      helo: 'client.example.net',
      from: 'sender@example.net',
      to: RCPT,
      message: message({ from: 'sender@example.net', to: RCPT, subject }),
      timeoutMs: 10_000,
    });

  test('a listed client is refused at MAIL with 554 5.7.1 naming the zone; nothing is stored', async () => {
    const tx = await send('127.0.0.2', 'listed');
    assert.equal(tx.mail.code, 554, JSON.stringify(tx));
    assert.match(tx.mail.text, /5\.7\.1 Service unavailable; client \[127\.0\.0\.2\] blocked using bl\.test/);
    const line = await tern.waitForLog(
      'the filter verdict',
      (l) => l['event'] === 'smtp.filter' && l['verdict'] === 'reject',
    );
    assert.equal(line['filter'], 'dnsbl');
    assert.match(String(line['reason']), /listed in bl\.test \(127\.0\.0\.2\)/);
  });

  test('an unlisted client is accepted (a zone that does not answer is no listing)', async () => {
    const tx = await send('127.0.0.3', 'clean');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    await tern.waitForMessages(RCPT, 1);
  });
});
