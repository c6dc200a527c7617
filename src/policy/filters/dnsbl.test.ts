import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DnsAnswer } from '../../core/dns.ts';
import { DnsblFilter, dnsblName, parseZone } from './dnsbl.ts';
import type { FilterContext } from './filter.ts';

const CTX: FilterContext = {
  client: {
    ip: '192.0.2.99',
    port: 4000,
    hostname: null,
    helo: 'h',
    tls: false,
    authUser: null,
    service: 'smtp',
    localAddress: '127.0.0.1',
    localPort: 25,
  },
  queueId: null,
  mailFrom: 'jürgen@example.org',
  mailParams: new Map(),
  recipients: [],
  facts: {},
};

function resolver(answers: Record<string, DnsAnswer<string>>) {
  return { a: (name: string) => Promise.resolve(answers[name] ?? ({ kind: 'nxdomain' } as const)) };
}
const ok = (...records: string[]): DnsAnswer<string> => ({ kind: 'ok', records, ttlMs: 0 });

describe('DNSBL (RFC 5782)', () => {
  test('query names: IPv4 octets and IPv6 nibbles reversed; mapped IPv4 as IPv4', () => {
    assert.equal(dnsblName('192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
    assert.equal(dnsblName('::ffff:192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
    assert.equal(
      dnsblName('2001:db8:1:2:3:4:567:89ab', 'bl.example'),
      'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example',
    );
    assert.equal(dnsblName('not an ip', 'bl.example'), null);
  });

  test('zone specs: weights and listed codes', () => {
    assert.deepEqual(parseZone('ZEN.example.'), { zone: 'zen.example', weight: 1, codes: [] });
    assert.deepEqual(parseZone('zen.example=127.0.0.2,127.0.0.4*3'), {
      zone: 'zen.example',
      weight: 3,
      codes: ['127.0.0.2', '127.0.0.4'],
    });
    for (const bad of ['nodot', 'x.example=10.0.0.1', 'x.example*', ''])
      assert.equal(parseZone(bad), null, bad);
  });

  const filter = (answers: Record<string, DnsAnswer<string>>, zones: string[], threshold = 1) =>
    new DnsblFilter({
      zones: zones.map((z) => parseZone(z)!),
      threshold,
      resolver: resolver(answers),
      timeoutMs: 1000,
      onFailure: 'accept',
      dqsKey: null,
    });

  test('listed: 554 5.7.1 naming the zone; 127.0.0.1 and 127.255.255.x are no listing; codes filter', async () => {
    const v = await filter({ '99.2.0.192.a.example': ok('127.0.0.2') }, ['a.example']).check('mail', CTX);
    assert.equal(v.kind, 'reject');
    if (v.kind === 'reject') {
      assert.deepEqual([v.reply.code, v.reply.enhanced], [554, '5.7.1']);
      assert.match(v.reply.text, /blocked using a\.example/);
    }
    assert.equal(
      (await filter({ '99.2.0.192.a.example': ok('127.0.0.1') }, ['a.example']).check('mail', CTX)).kind,
      'accept',
    );
    assert.equal(
      (await filter({ '99.2.0.192.a.example': ok('127.255.255.254') }, ['a.example']).check('mail', CTX))
        .kind,
      'accept',
    );
    assert.equal(
      (await filter({ '99.2.0.192.a.example': ok('127.0.0.3') }, ['a.example=127.0.0.2']).check('mail', CTX))
        .kind,
      'accept',
    );
  });

  test('weights add up to the threshold', async () => {
    const answers = { '99.2.0.192.a.example': ok('127.0.0.2'), '99.2.0.192.b.example': ok('127.0.0.2') };
    assert.equal((await filter(answers, ['a.example', 'c.example'], 2).check('mail', CTX)).kind, 'accept');
    assert.equal((await filter(answers, ['a.example', 'b.example'], 2).check('mail', CTX)).kind, 'reject');
    assert.equal((await filter(answers, ['a.example*2'], 2).check('mail', CTX)).kind, 'reject');
  });

  test('every lookup failing is a failure (the failure mode decides), one failing among others is not', async () => {
    const err: DnsAnswer<string> = { kind: 'error', temporary: true, reason: 'SERVFAIL' };
    await assert.rejects(
      filter({ '99.2.0.192.a.example': err }, ['a.example']).check('mail', CTX),
      /every DNSBL lookup failed/,
    );
    assert.equal(
      (await filter({ '99.2.0.192.a.example': err }, ['a.example', 'b.example']).check('mail', CTX)).kind,
      'accept',
    );
  });
});
