import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DnsAnswer } from '../../core/dns.ts';
import { allowListing, DnswlFilter, parseZone } from './dnswl.ts';
import type { FilterClient, FilterContext, FilterFacts } from './filter.ts';

const ok = (...records: string[]): DnsAnswer<string> => ({ kind: 'ok', records, ttlMs: 0 });

function resolver(answers: Record<string, DnsAnswer<string>>) {
  const asked: string[] = [];
  return {
    asked,
    a: (name: string) => {
      asked.push(name);
      return Promise.resolve(answers[name] ?? ({ kind: 'nxdomain' } as const));
    },
  };
}

function client(ip: string): FilterClient {
  return {
    ip,
    port: 40000,
    hostname: null,
    helo: 'client.example.net',
    tls: false,
    authUser: null,
    service: 'smtp',
    localAddress: '127.0.0.1',
    localPort: 25,
  };
}

function ctx(c: FilterClient, mailFrom: string, facts: FilterFacts = {}): FilterContext {
  return { client: c, queueId: null, mailFrom, mailParams: new Map(), recipients: [], facts };
}

const signal = new AbortController().signal;

describe('DNSWL answers', () => {
  const zone = parseZone('list.dnswl.test')!;
  test('127.0.C.T counts from the least trust up; reserved and refusal answers never', () => {
    assert.equal(allowListing('127.0.15.0', zone, 1), false, 'trust none');
    assert.equal(allowListing('127.0.15.0', zone, 0), true);
    assert.equal(allowListing('127.0.15.1', zone, 1), true);
    assert.equal(allowListing('127.0.5.3', zone, 3), true);
    assert.equal(allowListing('127.0.5.2', zone, 3), false);
    for (const no of ['127.0.0.1', '127.0.0.255', '127.255.255.254', '10.0.0.2', 'garbage', '127.0.0.2.1'])
      assert.equal(allowListing(no, zone, 0), false, no);
  });
  test('a zone with codes counts only those', () => {
    const coded = parseZone('list.dnswl.test=127.0.15.3,127.0.6.2')!;
    assert.equal(allowListing('127.0.6.2', coded, 3), true, 'listed codes override the trust level');
    assert.equal(allowListing('127.0.15.2', coded, 0), false);
  });
});

for (const [label, from] of [
  ['ASCII', 'sender@example.net'],
  ['UTF-8', 'jürgen@bücher.example'],
] as const) {
  describe(`DNSWL filter (${label} sender)`, () => {
    const make = (answers: Record<string, DnsAnswer<string>>, zones = ['a.test', 'b.test']) => {
      const r = resolver(answers);
      const f = new DnswlFilter({
        zones: zones.map((z) => parseZone(z)!),
        resolver: r,
        timeoutMs: 1000,
        onFailure: 'accept',
      });
      return { r, f };
    };

    test('a listing sets facts.allowListed at connect and again in each transaction, asked once', async () => {
      const { r, f } = make({ '10.2.0.192.b.test': ok('127.0.15.2') });
      const session = f.open(client('192.0.2.10'));
      const facts: FilterFacts = {};
      const v = await session.check('connect', ctx(client('192.0.2.10'), from, facts), signal);
      assert.deepEqual(v, { kind: 'accept', reason: 'allow-listed in b.test (127.0.15.2)' });
      assert.equal(facts.allowListed, 'b.test');
      // The next transaction's facts start empty; MAIL puts the listing back without asking again.
      const next: FilterFacts = {};
      await session.check('mail', ctx(client('192.0.2.10'), from, next), signal);
      assert.equal(next.allowListed, 'b.test');
      assert.deepEqual(r.asked.sort(), ['10.2.0.192.a.test', '10.2.0.192.b.test']);
    });

    test('the first zone in config order wins; IPv6 uses nibbles', async () => {
      const ip = '2001:db8::1';
      const nibbles = '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2';
      const { f } = make({ [`${nibbles}.a.test`]: ok('127.0.3.1'), [`${nibbles}.b.test`]: ok('127.0.3.3') });
      const facts: FilterFacts = {};
      await f.open(client(ip)).check('connect', ctx(client(ip), from, facts), signal);
      assert.equal(facts.allowListed, 'a.test');
    });

    test('no listing, trust none, a refusal or a failed lookup: accept, nothing set, never a failure', async () => {
      const err: DnsAnswer<string> = { kind: 'error', temporary: true, reason: 'SERVFAIL' };
      for (const answers of [
        {},
        { '10.2.0.192.a.test': ok('127.0.15.0') },
        { '10.2.0.192.a.test': ok('127.0.0.255') },
        { '10.2.0.192.a.test': err, '10.2.0.192.b.test': err },
      ]) {
        const { f } = make(answers);
        const facts: FilterFacts = {};
        const v = await f
          .open(client('192.0.2.10'))
          .check('connect', ctx(client('192.0.2.10'), from, facts), signal);
        assert.equal(v.kind, 'accept');
        assert.equal(facts.allowListed, undefined, JSON.stringify(answers));
        if (answers['10.2.0.192.b.test'] === err)
          assert.match(v.kind === 'accept' ? v.reason! : '', /2 lookup/);
      }
    });

    test('a lookup that throws is asked again at the next stage', async () => {
      let calls = 0;
      const f = new DnswlFilter({
        zones: [parseZone('a.test')!],
        resolver: {
          a: () =>
            ++calls === 1 ? Promise.reject(new Error('socket gone')) : Promise.resolve(ok('127.0.1.2')),
        },
        timeoutMs: 1000,
        onFailure: 'accept',
      });
      const session = f.open(client('192.0.2.10'));
      await assert.rejects(session.check('connect', ctx(client('192.0.2.10'), from), signal), /socket gone/);
      const facts: FilterFacts = {};
      await session.check('mail', ctx(client('192.0.2.10'), from, facts), signal);
      assert.equal(facts.allowListed, 'a.test');
    });
  });
}
