import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryGreylistStore, type GreylistStore } from '../../core/greylist.ts';
import type { FilterContext, FilterFacts, Verdict } from './filter.ts';
import {
  clientNetwork,
  GreylistFilter,
  normalizeRecipient,
  normalizeSender,
  type GreylistOptions,
} from './greylist.ts';

describe('greylist triplet normalisation', () => {
  test('client networks: IPv4 /24, IPv6 /64, mapped IPv4 as IPv4, other prefixes', () => {
    assert.equal(clientNetwork('192.0.2.99'), '192.0.2.0/24');
    assert.equal(clientNetwork('::ffff:192.0.2.99'), '192.0.2.0/24');
    assert.equal(clientNetwork('192.0.2.99', 32), '192.0.2.99/32');
    assert.equal(clientNetwork('203.0.113.200', 16), '203.0.0.0/16');
    assert.equal(clientNetwork('255.255.255.255', 25), '255.255.255.128/25');
    assert.equal(clientNetwork('2001:db8:1:2:3:4:567:89ab'), '2001:db8:1:2::/64');
    assert.equal(clientNetwork('2001:DB8:0:0:ffff::1'), '2001:db8::/64');
    assert.equal(clientNetwork('2001:db8:1:2:3:4:567:89ab', 64, 128), '2001:db8:1:2:3:4:567:89ab/128');
    assert.equal(clientNetwork('2001:db8:0:1::1', 64, 48), '2001:db8::/48');
    assert.equal(clientNetwork('not an address'), 'not an address');
  });

  test('senders: case, +tags, BATV, SRS0/SRS1, VERP numbers', () => {
    assert.equal(normalizeSender('User@Example.ORG'), 'user@example.org');
    assert.equal(normalizeSender('user+news@example.org'), 'user@example.org');
    assert.equal(normalizeSender('prvs=1234abcdef=user@example.org'), 'user@example.org');
    assert.equal(normalizeSender('PRVS=0299E1F3C2=user@example.org'), 'user@example.org');
    assert.equal(normalizeSender('msprvs1=18034dDfN-_s=bounces@example.org'), 'bounces@example.org');
    assert.equal(normalizeSender('btv1==0b1ce40f5d8==user@example.org'), 'user@example.org');
    assert.equal(normalizeSender('SRS0=HHH=TT=orig.example=alice@forwarder.example'), 'alice@orig.example');
    assert.equal(normalizeSender('SRS0+x7Qa=2K=Orig.Example=a=b@fwd.example'), 'a=b@orig.example');
    assert.equal(
      normalizeSender('SRS1=HHH=first.example==HHH=TT=orig.example=alice@second.example'),
      'alice@orig.example',
    );
    // A daily SRS timestamp and hash change; the key does not.
    assert.equal(
      normalizeSender('SRS0=abcd=X1=orig.example=alice@fwd.example'),
      normalizeSender('SRS0=wxyz=X2=orig.example=alice@fwd.example'),
    );
    assert.equal(normalizeSender('SRS0=broken@fwd.example'), 'srs0=broken@fwd.example');
    assert.equal(normalizeSender('bounce-12345-67@list.example'), 'bounce-#-#@list.example');
    assert.equal(normalizeSender('user2024@example.org'), 'user2024@example.org');
    assert.equal(normalizeSender('prvs=user@example.org'), 'prvs=user@example.org', 'no tag: left alone');
    assert.equal(normalizeSender(''), '');
  });

  test('UTF-8 senders: domain lower-cased, local part NFC and only ASCII lower-cased, tags stripped', () => {
    assert.equal(normalizeSender('Jürgen@Bücher.Example'), 'jürgen@bücher.example');
    assert.equal(normalizeSender('JÜRGEN@bücher.example'), 'jÜrgen@bücher.example');
    assert.equal(normalizeSender('jürgen+tag@BÜCHER.example'), 'jürgen@bücher.example');
    // Decomposed ü (u + U+0308) is the composed one.
    assert.equal(normalizeSender('ju\u0308rgen@example.org'), 'jürgen@example.org');
    assert.equal(normalizeSender('日本+x@例え.テスト'), '日本@例え.テスト');
    assert.equal(normalizeSender('prvs=1234abcdef=日本@example.org'), '日本@example.org');
    assert.equal(normalizeSender('SRS0=h=tt=例え.テスト=日本@fwd.example'), '日本@例え.テスト');
    // Digits inside a UTF-8 word are part of it; standing alone they are VERP numbers.
    assert.equal(normalizeSender('jürgen2@example.org'), 'jürgen2@example.org');
    assert.equal(normalizeSender('日本-42@example.org'), '日本-#@example.org');
    const bytes = new TextEncoder().encode(normalizeSender('日本@Example.ORG'));
    assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(bytes), '日本@example.org');
  });

  test('recipients: lower-cased (ASCII in the local part), tags kept', () => {
    assert.equal(normalizeRecipient('Postmaster@Example.ORG.'), 'postmaster@example.org');
    assert.equal(normalizeRecipient('user+tag@example.org'), 'user+tag@example.org');
    assert.equal(normalizeRecipient('Jürgen@EXAMPLE.org'), 'jürgen@example.org');
    assert.equal(normalizeRecipient('日本@例え.テスト'), '日本@例え.テスト');
  });
});

class FakeClock {
  now = Date.UTC(2026, 0, 1);
  nowMs = (): number => this.now;
  advance(seconds: number): void {
    this.now += seconds * 1000;
  }
}

function context(
  over: {
    ip?: string;
    from?: string;
    rcpt?: string;
    authUser?: string | null;
    facts?: FilterFacts;
  } = {},
): FilterContext {
  return {
    client: {
      ip: over.ip ?? '192.0.2.10',
      port: 40000,
      hostname: null,
      helo: 'client.example.net',
      tls: false,
      authUser: over.authUser ?? null,
      service: 'smtp',
      localAddress: '127.0.0.1',
      localPort: 25,
    },
    queueId: null,
    mailFrom: over.from ?? 'sender@example.net',
    mailParams: new Map(),
    recipients: [],
    rcpt: over.rcpt ?? 'rcpt@example.org',
    facts: over.facts ?? {},
  };
}

function setup(opts: Partial<GreylistOptions> = {}) {
  const clock = new FakeClock();
  const store = new MemoryGreylistStore();
  const filter = new GreylistFilter({
    store,
    nowMs: clock.nowMs,
    timeoutMs: 1000,
    onFailure: 'accept',
    ...opts,
  });
  const check = (over: Parameters<typeof context>[0] = {}): Promise<Verdict> =>
    filter.check('rcpt', context(over), new AbortController().signal);
  return { clock, store, filter, check };
}

function expectDefer(v: Verdict, reason: RegExp, seconds: number): void {
  assert.equal(v.kind, 'defer', JSON.stringify(v));
  if (v.kind !== 'defer') return;
  assert.deepEqual([v.reply.code, v.reply.enhanced], [451, '4.7.1']);
  assert.equal(v.reply.text, `Greylisted, please try again in ${seconds} seconds`);
  assert.match(v.reason, reason);
}

function expectAccept(v: Verdict, reason: RegExp): void {
  assert.equal(v.kind, 'accept', JSON.stringify(v));
  if (v.kind === 'accept') assert.match(v.reason ?? '', reason);
}

for (const [label, from, rcpt] of [
  ['ASCII', 'sender@example.net', 'rcpt@example.org'],
  ['UTF-8', 'jürgen@bücher.example', '日本@例え.テスト'],
] as const) {
  describe(`greylist state machine (${label} addresses)`, () => {
    test('first sight defers; an early retry defers again without a reset; after the delay it passes', async () => {
      const { clock, check } = setup();
      expectDefer(await check({ from, rcpt }), /^greylisted \(first seen\)$/, 300);
      clock.advance(100);
      expectDefer(await check({ from, rcpt }), /retried too early, after 100s/, 200);
      clock.advance(150);
      // Had the early retry reset the clock, 50 s would be left, not 50 s since first sight + 150 s.
      expectDefer(await check({ from, rcpt }), /retried too early, after 250s/, 50);
      clock.advance(50);
      expectAccept(await check({ from, rcpt }), /^greylist passed \(retried after 300s\)$/);
      clock.advance(86_400);
      expectAccept(await check({ from, rcpt }), /known triplet/);
    });

    test('the triplet is per sender, recipient and network; the same /24 and /64 share it', async () => {
      const { clock, check } = setup({ delaySeconds: 60 });
      expectDefer(await check({ from, rcpt, ip: '192.0.2.10' }), /first seen/, 60);
      clock.advance(61);
      // Another host of the same /24 retries: it passes (RFC 6647 §4.1.1).
      expectAccept(await check({ from, rcpt, ip: '192.0.2.200' }), /passed/);
      expectDefer(await check({ from, rcpt, ip: '192.0.3.10' }), /first seen/, 60);
      expectDefer(await check({ from: `other-${from}`, rcpt }), /first seen/, 60);
      expectDefer(await check({ from, rcpt: `x${rcpt}` }), /first seen/, 60);
      // Tags and ASCII case do not make a new triplet; a non-ASCII letter's case does (see greylist.ts).
      const upper = (s: string) => s.replace(/[a-z]+/g, (m) => m.toUpperCase());
      expectAccept(
        await check({ from: upper(from.replace('@', '+tag@')), rcpt: upper(rcpt) }),
        /known triplet/,
      );
      if (label === 'UTF-8') expectDefer(await check({ from: from.toUpperCase(), rcpt }), /first seen/, 60);
      expectDefer(await check({ from, rcpt, ip: '2001:db8:1:2::10' }), /first seen/, 60);
      clock.advance(61);
      expectAccept(await check({ from, rcpt, ip: '2001:db8:1:2:ffff::99' }), /passed/);
    });

    test('a retry after the retry window starts over; a passed triplet expires after its lifetime', async () => {
      const { clock, check } = setup({ retryWindowHours: 4, passLifetimeDays: 2 });
      expectDefer(await check({ from, rcpt }), /first seen/, 300);
      clock.advance(4 * 3600);
      expectDefer(await check({ from, rcpt }), /first seen/, 300);
      clock.advance(300);
      expectAccept(await check({ from, rcpt }), /passed/);
      // Each delivery (refreshed at most hourly) keeps it alive.
      clock.advance(36 * 3600);
      expectAccept(await check({ from, rcpt }), /known triplet/);
      clock.advance(36 * 3600);
      expectAccept(await check({ from, rcpt }), /known triplet/);
      clock.advance(2 * 86_400 + 1);
      expectDefer(await check({ from, rcpt }), /first seen/, 300);
    });

    test('auto-allow: a network with 5 passed triplets passes for every sender; 0 turns it off', async () => {
      for (const after of [5, 0]) {
        const { clock, check } = setup({ autoAllowAfter: after, delaySeconds: 10 });
        for (let i = 0; i < 5; i++) {
          expectDefer(await check({ from, rcpt: `${i}${rcpt}` }), /first seen/, 10);
          clock.advance(11);
          expectAccept(await check({ from, rcpt: `${i}${rcpt}` }), /passed/);
        }
        const v = await check({ from: `new-${from}`, rcpt, ip: '192.0.2.77' });
        if (after === 5) expectAccept(v, /client network 192\.0\.2\.0\/24 auto-allowed/);
        else expectDefer(v, /first seen/, 10);
        expectDefer(await check({ from: `new-${from}`, rcpt, ip: '198.51.100.1' }), /first seen/, 10);
      }
    });

    test('skips: authenticated, allow-listed, skip_networks, SPF pass for skip_spf_domains, null sender', async () => {
      const { check, store } = setup({
        skipNetworks: ['198.51.100.0/24', '2001:db8:ff::/48'],
        skipSpfDomains: ['*.bigmail.example', 'exact.example'],
      });
      expectAccept(await check({ from, rcpt, authUser: 'jürgen' }), /authenticated/);
      expectAccept(await check({ from, rcpt, facts: { allowListed: 'list.dnswl.test' } }), /allow-listed/);
      expectAccept(await check({ from, rcpt, ip: '198.51.100.9' }), /skip_networks/);
      expectAccept(await check({ from, rcpt, ip: '2001:db8:ff:1::9' }), /skip_networks/);
      const spf = (result: string, domain: string) => ({ spf: { result, domain } });
      expectAccept(await check({ from, rcpt, facts: spf('pass', 'out.bigmail.example') }), /SPF pass/);
      expectAccept(await check({ from, rcpt, facts: spf('pass', 'EXACT.example') }), /SPF pass/);
      expectAccept(await check({ from: '', rcpt }), /null sender/);
      assert.equal(store.size, 0, 'nothing skipped was recorded');
      expectDefer(await check({ from, rcpt, facts: spf('pass', 'bigmail.example') }), /first seen/, 300);
      expectDefer(
        await check({ from: `a${from}`, rcpt, facts: spf('softfail', 'x.bigmail.example') }),
        /first seen/,
        300,
      );
      expectDefer(
        await check({ from: `b${from}`, rcpt, facts: spf('pass', 'other.example') }),
        /first seen/,
        300,
      );
    });

    test('the null sender is greylisted when asked to be', async () => {
      const { clock, check } = setup({ greylistNullSender: true });
      expectDefer(await check({ from: '', rcpt }), /first seen/, 300);
      clock.advance(301);
      expectAccept(await check({ from: '', rcpt }), /passed/);
    });
  });
}

describe('greylist filter and its store', () => {
  test('expired entries are swept on write, at most once a minute', async () => {
    const { clock, check, store } = setup({ retryWindowHours: 1 });
    await check({ rcpt: 'a@example.org' });
    await check({ rcpt: 'b@example.org' });
    assert.equal(store.size, 2);
    clock.advance(3601);
    await check({ rcpt: 'c@example.org' });
    await Promise.resolve();
    assert.equal(store.size, 1, 'the two expired entries went with the write');
  });

  test('a failing store fails the check (its failure mode decides); an aborted check writes nothing', async () => {
    const broken: GreylistStore = {
      update: () => Promise.reject(new Error('disk full')),
      passedCount: () => Promise.resolve(0),
      expire: () => Promise.resolve(0),
      close: () => Promise.resolve(),
    };
    const filter = new GreylistFilter({
      store: broken,
      nowMs: () => 0,
      timeoutMs: 1000,
      onFailure: 'accept',
    });
    await assert.rejects(filter.check('rcpt', context(), new AbortController().signal), /disk full/);
    const { filter: f2, store } = setup();
    const aborted = new AbortController();
    aborted.abort(new Error('greylist: timed out'));
    await assert.rejects(f2.check('rcpt', context(), aborted.signal), /timed out/);
    assert.equal(store.size, 0);
  });

  test('a bad skip network is refused when the filter is made', () => {
    assert.throws(
      () =>
        new GreylistFilter({
          store: new MemoryGreylistStore(),
          nowMs: () => 0,
          timeoutMs: 1,
          onFailure: 'accept',
          skipNetworks: ['192.0.2.0/33'],
        }),
      /skip_networks: not a network/,
    );
  });
});
