// The DNSBL filter end to end (RFC 5782, issue 17): a zone served by the test DNS server lists
// 127.0.0.2; a client connecting from 127.0.0.2 gets 554 5.7.1 at MAIL naming the zone, one from
// 127.0.0.3 is accepted and its message stored; an allow-listed client (DNSWL) passes although listed; a
// sender domain on a domain list (DBL) is refused; each verdict is logged as smtp.filter; a zone whose
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
        '4.0.0.127': [{ type: 'A', address: '127.0.0.2' }],
      },
      // DNSWL: 127.0.0.4 is allow-listed (trust "medium"), which outweighs its block listing.
      'wl.test': { '4.0.0.127': [{ type: 'A', address: '127.0.10.2' }] },
      'dbl.test': {
        'spam.example': [{ type: 'A', address: '127.0.1.2' }],
        'xn--bcher-kva.example': [{ type: 'A', address: '127.0.1.2' }],
      },
      'down.test': { '@': [], '2.0.0.127': 'timeout', '3.0.0.127': 'timeout' },
    });
    tern = await startAuthTern(dns, {
      users: [RCPT],
      tables: {
        'filters.dnsbl': {
          zones: ['bl.test', 'down.test'],
          allow_zones: ['wl.test'],
          domain_zones: ['dbl.test'],
          timeout_seconds: 2,
        },
      },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  const send = (localAddress: string, subject: string, from = 'sender@example.net') =>
    transact({
      port: tern.ports.smtp,
      localAddress,
      helo: 'client.example.net',
      from,
      to: RCPT,
      ...(/[^\x00-\x7f]/.test(from) ? { mailParams: 'SMTPUTF8' } : {}),
      message: Buffer.from(
        message({ from: 'sender@example.net', to: RCPT, subject }).toString('latin1'),
        'latin1',
      ),
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

  test('an allow-listed client (DNSWL) is accepted although a block list names it', async () => {
    const tx = await send('127.0.0.4', 'allow-listed');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const line = await tern.waitForLog(
      'the DNSWL verdict',
      (l) =>
        l['event'] === 'smtp.filter' &&
        l['filter'] === 'dnswl' &&
        typeof l['reason'] === 'string' &&
        l['reason'].startsWith('allow-listed'),
    );
    assert.match(String(line['reason']), /allow-listed in wl\.test/);
  });

  test('a sender domain on a domain list (DBL) is refused with 554 5.7.1 naming it; the UTF-8 twin as its A-label', async () => {
    const ascii = await send('127.0.0.5', 'dbl', 'bad@spam.example');
    assert.equal(ascii.mail.code, 554, JSON.stringify(ascii));
    assert.match(ascii.mail.text, /5\.7\.1 .*domain spam\.example listed in dbl\.test/);
    const utf8 = await send('127.0.0.5', 'dbl utf8', 'jürgen@bücher.example');
    assert.equal(utf8.mail.code, 554, JSON.stringify(utf8));
    assert.match(utf8.mail.text, /xn--bcher-kva\.example/);
  });
});
