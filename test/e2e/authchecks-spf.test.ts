// SPF end to end (RFC 7208): an unauthenticated client on the MX port (127.0.0.1, checks not skipped) sends
// with MAIL FROM and HELO identities whose SPF records live in the test DNS; the stored message carries
// one Authentication-Results: field (RFC 8601) from our authserv-id with spf=<result> for smtp.mailfrom and
// for smtp.helo, and SPF alone never refuses mail (DMARC decides: authchecks-dmarc.test.ts).
// Deliberately NOT here: the RFC 7208 test suite (test/conformance/spf-suite.test.ts), DNS failures
// (authchecks-dns.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import {
  HOSTNAME,
  message,
  ourAuthResults,
  resultsFor,
  startAuthTern,
  startZones,
  storedBySubject,
  transact,
} from './authchecks-helpers.ts';

const RCPT = 'rcpt@example.test';
const spf = (text: string): [{ type: 'TXT'; text: string }] => [{ type: 'TXT', text }];

describe('SPF on the MX listener', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones({
      test: {
        'spf-pass.test': spf('v=spf1 ip4:127.0.0.1 -all'),
        'spf-fail.test': spf('v=spf1 ip4:192.0.2.1 -all'),
        'spf-soft.test': spf('v=spf1 ip4:192.0.2.1 ~all'),
        'spf-neutral.test': spf('v=spf1 ?all'),
        // An A record and no TXT at all: no SPF record, "none".
        'spf-none.test': [{ type: 'A', address: '192.0.2.10' }],
        // Through include: and a:, so that the DNS is really walked.
        'spf-include.test': spf('v=spf1 include:_spf.spf-include.test -all'),
        '_spf.spf-include.test': spf('v=spf1 a:out.spf-include.test -all'),
        'out.spf-include.test': [{ type: 'A', address: '127.0.0.1' }],
        // Two records: RFC 7208 §4.5, permerror.
        'spf-two.test': [
          { type: 'TXT', text: 'v=spf1 -all' },
          { type: 'TXT', text: 'v=spf1 +all' },
        ],
        'helo-pass.test': spf('v=spf1 ip4:127.0.0.1 -all'),
        // The sender's domain writes the explanation (RFC 7208 §6.2): text meant to break out of a comment.
        'spf-exp.test': spf('v=spf1 ip4:192.0.2.1 -all exp=why.spf-exp.test'),
        'why.spf-exp.test': spf('nope) dkim=pass header.d=bank.test; dmarc=pass (x'),
        'helo-fail.test': spf('v=spf1 -all'),
      },
    });
    tern = await startAuthTern(dns, { users: [RCPT] });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  const send = async (opts: { from: string; helo: string; subject: string }): Promise<Buffer> => {
    const r = await transact({
      port: tern.ports.smtp,
      helo: opts.helo,
      from: opts.from,
      to: RCPT,
      message: message({ from: opts.from || 'someone@elsewhere.test', to: RCPT, subject: opts.subject }),
    });
    assert.equal(r.mail.code, 250, `MAIL: ${JSON.stringify(r)}`);
    assert.equal(r.data?.code, 250, `end of data: ${JSON.stringify(r)}`);
    return storedBySubject(tern, RCPT, opts.subject);
  };

  for (const [domain, expected] of [
    ['spf-pass.test', 'pass'],
    ['spf-fail.test', 'fail'],
    ['spf-soft.test', 'softfail'],
    ['spf-neutral.test', 'neutral'],
    ['spf-none.test', 'none'],
    ['spf-include.test', 'pass'],
    ['spf-two.test', 'permerror'],
  ] as const) {
    test(`MAIL FROM <user@${domain}> from 127.0.0.1: spf=${expected} smtp.mailfrom=user@${domain}`, async () => {
      const stored = await send({ from: `user@${domain}`, helo: 'helo-pass.test', subject: `spf ${domain}` });
      const ar = ourAuthResults(stored);
      assert.equal(ar.authservId, HOSTNAME);
      const mailfrom = resultsFor(ar, 'spf').filter((r) => 'smtp.mailfrom' in r.props);
      assert.equal(mailfrom.length, 1, JSON.stringify(ar));
      assert.equal(mailfrom[0]!.result, expected);
      assert.equal(mailfrom[0]!.props['smtp.mailfrom'], `user@${domain}`);
      // No DMARC record anywhere here: the From: domain gets dmarc=none, nothing is refused.
      assert.deepEqual(
        resultsFor(ar, 'dmarc').map((r) => r.result),
        ['none'],
      );
    });
  }

  test('the HELO identity is checked too: smtp.helo with its own result', async () => {
    const passing = ourAuthResults(
      await send({ from: 'user@spf-fail.test', helo: 'helo-pass.test', subject: 'helo pass' }),
    );
    const heloPass = resultsFor(passing, 'spf').find((r) => 'smtp.helo' in r.props);
    assert.equal(heloPass?.result, 'pass', JSON.stringify(passing));
    assert.equal(heloPass.props['smtp.helo'], 'helo-pass.test');
    assert.equal(resultsFor(passing, 'spf').find((r) => 'smtp.mailfrom' in r.props)?.result, 'fail');

    const failing = ourAuthResults(
      await send({ from: 'user@spf-pass.test', helo: 'helo-fail.test', subject: 'helo fail' }),
    );
    const heloFail = resultsFor(failing, 'spf').find((r) => 'smtp.helo' in r.props);
    assert.equal(heloFail?.result, 'fail', JSON.stringify(failing));
    assert.equal(heloFail.props['smtp.helo'], 'helo-fail.test');
    assert.equal(resultsFor(failing, 'spf').find((r) => 'smtp.mailfrom' in r.props)?.result, 'pass');

    const unknown = ourAuthResults(
      await send({ from: 'user@spf-pass.test', helo: 'no-record.test', subject: 'helo none' }),
    );
    assert.equal(resultsFor(unknown, 'spf').find((r) => 'smtp.helo' in r.props)?.result, 'none');
  });

  test('the null reverse-path: SPF checks postmaster@<HELO> (RFC 7208 §2.4)', async () => {
    const stored = await send({ from: '', helo: 'helo-pass.test', subject: 'null sender' });
    const ar = ourAuthResults(stored);
    const mailfrom = resultsFor(ar, 'spf').find((r) => 'smtp.mailfrom' in r.props);
    assert.equal(mailfrom?.result, 'pass', JSON.stringify(ar));
    assert.equal(mailfrom.props['smtp.mailfrom'], 'postmaster@helo-pass.test');
  });

  test('client-chosen text cannot add results: a quoted local part with ";" and "=" stays one value', async () => {
    const from = '"x;dkim=pass header.d=bank.test;"@spf-pass.test';
    const stored = await send({ from, helo: 'helo-pass.test', subject: 'quoted local part' });
    const ar = ourAuthResults(stored);
    assert.deepEqual(
      ar.results.map((r) => `${r.method}=${r.result}`),
      ['spf=pass', 'spf=pass', 'dkim=none', 'arc=none', 'dmarc=none'],
    );
    assert.equal(resultsFor(ar, 'spf')[0]!.props['smtp.mailfrom'], from);
  });

  test("an explanation (exp=) from the sender's DNS cannot add results either", async () => {
    // Today the reason comment does not carry the explanation at all; should it ever, it must stay inside
    // the comment (RFC 8601 §2.2 CFWS), never become a resinfo of its own.
    const stored = await send({ from: 'user@spf-exp.test', helo: 'helo-pass.test', subject: 'hostile exp' });
    const ar = ourAuthResults(stored);
    assert.deepEqual(
      ar.results.map((r) => `${r.method}=${r.result}`),
      ['spf=fail', 'spf=pass', 'dkim=none', 'arc=none', 'dmarc=none'],
    );
  });

  test('the Authentication-Results field is on top of the stored message, above our Received:', async () => {
    const stored = await send({ from: 'user@spf-pass.test', helo: 'helo-pass.test', subject: 'placement' });
    const head = stored.toString('latin1').split('\r\n\r\n', 1)[0]!;
    const names = head
      .split('\r\n')
      .filter((l) => !/^[ \t]/.test(l))
      .map((l) => l.slice(0, l.indexOf(':')).toLowerCase());
    const ar = names.indexOf('authentication-results');
    const received = names.indexOf('received');
    assert.ok(ar >= 0 && received >= 0, names.join(', '));
    assert.ok(ar < received, `A-R must precede the first Received: ${names.join(', ')}`);
    assert.equal(names.filter((n) => n === 'authentication-results').length, 1);
  });
});
