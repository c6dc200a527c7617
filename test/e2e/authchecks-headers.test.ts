// Authentication-Results: hygiene and who is checked, end to end. RFC 8601 §5: an incoming message must not
// keep Authentication-Results fields that claim our authserv-id (whatever their case, comments or
// folding), while fields of other authserv-ids stay as they came. The checks run only for unauthenticated
// clients on the MX listener that are neither in [smtp] trusted_networks nor in [checks] skip_networks:
// an authenticated submission, a skipped or trusted client, and (by default) loopback get no header and
// no DNS lookups, even for a domain whose DMARC policy would refuse the message.
// Deliberately NOT here: the content of our header (authchecks-spf/dkim/dmarc/dns.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import {
  HOSTNAME,
  authResultsOf,
  headerFields,
  message,
  ourAuthResults,
  startAuthTern,
  startZones,
  storedBySubject,
  submit,
  subjectIn,
  transact,
} from './authchecks-helpers.ts';

const RCPT = 'rcpt@example.test';
const ALICE = { address: 'alice@example.test', password: 'alice-secret-1' };

/** SPF fails from anywhere and DMARC says reject: mail from this domain is refused whenever checked. */
const ZONES = {
  test: {
    'refused.test': [{ type: 'TXT' as const, text: 'v=spf1 -all' }],
    '_dmarc.refused.test': [{ type: 'TXT' as const, text: 'v=DMARC1; p=reject' }],
    'ok.test': [{ type: 'TXT' as const, text: 'v=spf1 ip4:127.0.0.0/8 -all' }],
  },
};

const FORGED: readonly (readonly [string, string])[] = [
  ['Authentication-Results', `${HOSTNAME}; dkim=pass header.d=bank.test`],
  ['Authentication-Results', `${HOSTNAME.toUpperCase()}; spf=pass smtp.mailfrom=ceo@bank.test`],
  ['Authentication-Results', `(looks trusted) ${HOSTNAME};\r\n\tdmarc=pass header.from=bank.test`],
  ['Authentication-Results', `${HOSTNAME} 1; arc=pass`],
];
const KEPT: readonly (readonly [string, string])[] = [
  ['Authentication-Results', 'other.example; dkim=pass header.d=other.test'],
  ['Authentication-Results', `${HOSTNAME}.evil.test; dkim=pass header.d=evil.test`],
  ['X-Authentication-Results', `${HOSTNAME}; dkim=pass header.d=bank.test`],
];

describe('Authentication-Results hygiene and skipped checks', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones(ZONES);
    tern = await startAuthTern(dns, {
      users: [RCPT, ALICE],
      checks: { skip_networks: ['127.0.0.2/32'] },
      tables: { smtp: { trusted_networks: ['127.0.0.3/32'] } },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  test(`forged Authentication-Results claiming "${HOSTNAME}" are removed; other authserv-ids stay`, async () => {
    const subject = 'forged results';
    const r = await transact({
      port: tern.ports.smtp,
      helo: 'client.ok.test',
      from: 'user@ok.test',
      to: RCPT,
      message: message({ from: 'ceo@bank.test', to: RCPT, subject, extraHeaders: [...FORGED, ...KEPT] }),
    });
    assert.equal(r.data?.code, 250, JSON.stringify(r));
    const stored = await storedBySubject(tern, RCPT, subject);

    // Exactly one field in our name, and it is ours: the checks' results, not the forger's claims.
    const ours = ourAuthResults(stored);
    assert.ok(
      ours.results.some((x) => x.method === 'spf' && x.result === 'pass'),
      JSON.stringify(ours),
    );
    const fields = headerFields(stored, 'Authentication-Results');
    for (const [, forged] of FORGED) {
      const unfolded = forged.replace(/\r\n[ \t]/g, ' ');
      assert.ok(!fields.includes(unfolded), `still there: ${unfolded}`);
    }
    assert.ok(!ours.results.some((x) => x.result === 'pass' && x.method !== 'spf'), JSON.stringify(ours));

    const others = authResultsOf(stored).map((a) => a.authservId);
    assert.deepEqual(others.sort(), [HOSTNAME, `${HOSTNAME}.evil.test`, 'other.example'].sort());
    // Not an Authentication-Results field: left alone.
    assert.deepEqual(headerFields(stored, 'X-Authentication-Results'), [
      `${HOSTNAME}; dkim=pass header.d=bank.test`,
    ]);
    // The forger's other header fields are untouched.
    assert.deepEqual(headerFields(stored, 'From'), ['<ceo@bank.test>']);
    await tern.waitForLog('the removal logged', (l) => l['what'] === 'forged Authentication-Results removed');
  });

  test('control: a client that is checked (127.0.0.1) is refused for refused.test (SPF fail, p=reject)', async () => {
    const subject = 'checked client';
    const r = await transact({
      port: tern.ports.smtp,
      helo: 'client.refused.test',
      from: 'user@refused.test',
      to: RCPT,
      message: message({ from: 'user@refused.test', to: RCPT, subject }),
    });
    assert.equal(r.data?.code, 550, JSON.stringify(r));
    assert.equal(r.data.enhanced, '5.7.1');
  });

  for (const [who, localAddress] of [
    ['a client in [checks] skip_networks (127.0.0.2)', '127.0.0.2'],
    ['a client in [smtp] trusted_networks (127.0.0.3)', '127.0.0.3'],
  ] as const) {
    test(`${who}: no checks, no Authentication-Results, no DNS lookups`, async () => {
      const subject = `skipped ${localAddress}`;
      dns.clearQueries();
      const r = await transact({
        port: tern.ports.smtp,
        localAddress,
        helo: 'client.refused.test',
        from: 'user@refused.test',
        to: RCPT,
        message: message({ from: 'user@refused.test', to: RCPT, subject }),
      });
      assert.equal(r.data?.code, 250, JSON.stringify(r));
      const stored = await storedBySubject(tern, RCPT, subject);
      assert.deepEqual(headerFields(stored, 'Authentication-Results'), []);
      assert.deepEqual(
        dns.queries.filter((q) => q.name.toLowerCase().includes('refused.test')),
        [],
        'no SPF/DMARC lookups for a skipped client',
      );
    });
  }

  test('an authenticated submission gets no Authentication-Results and is not checked', async () => {
    const subject = 'authenticated submission';
    dns.clearQueries();
    await submit({
      port: tern.ports.submission,
      user: ALICE.address,
      password: ALICE.password,
      from: ALICE.address,
      to: [RCPT],
      message: message({ from: ALICE.address, to: RCPT, subject }),
    });
    const stored = await storedBySubject(tern, RCPT, subject);
    assert.deepEqual(headerFields(stored, 'Authentication-Results'), []);
    assert.deepEqual(
      dns.queries.filter((q) => q.type === 'TXT'),
      [],
      'no SPF/DKIM/DMARC lookups for an authenticated client',
    );
  });

  test(`an authenticated submission may not carry Authentication-Results in our name (RFC 8601 §5) either`, async () => {
    const subject = 'authenticated forgery';
    await submit({
      port: tern.ports.submission,
      user: ALICE.address,
      password: ALICE.password,
      from: ALICE.address,
      to: [RCPT],
      message: message({ from: ALICE.address, to: RCPT, subject, extraHeaders: FORGED }),
    });
    const stored = await storedBySubject(tern, RCPT, subject);
    assert.deepEqual(
      authResultsOf(stored).filter((a) => a.authservId.toLowerCase() === HOSTNAME),
      [],
    );
  });
});

describe('Tern with the default [checks]', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones(ZONES);
    tern = await startAuthTern(dns, { users: [RCPT], defaultChecks: true });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  test('loopback is skipped by default: no header, no lookups, a p=reject domain delivered', async () => {
    const subject = 'default skip';
    dns.clearQueries();
    const r = await transact({
      port: tern.ports.smtp,
      helo: 'client.refused.test',
      from: 'user@refused.test',
      to: RCPT,
      message: message({ from: 'user@refused.test', to: RCPT, subject }),
    });
    assert.equal(r.data?.code, 250, JSON.stringify(r));
    const stored = await storedBySubject(tern, RCPT, subject);
    assert.deepEqual(headerFields(stored, 'Authentication-Results'), []);
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['INBOX']);
    assert.deepEqual(
      dns.queries.filter((q) => q.type === 'TXT'),
      [],
    );
  });
});
