// Forward-confirmed reverse DNS against a scripted Resolver: which answers give a name, which give none,
// the deadline, the cache (TTL-bounded, per address, errors not kept) and one lookup per address in flight.
// The same lookup over the real resolver and a loopback DNS server is in test/e2e/smtp-logs.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DnsAnswer, MxRecord, Resolver } from '../core/dns.ts';
import { createClientNameLookup, MAX_PTR_NAMES } from './reverse-dns.ts';

type Answers = Readonly<Record<string, DnsAnswer<string> | 'hang'>>;

/** A Resolver answering PTR/A/AAAA from a table keyed "PTR 192.0.2.1", "A host.example"; counts queries. */
function scripted(answers: Answers): Resolver & { asked: string[] } {
  const asked: string[] = [];
  const answer = (key: string): Promise<DnsAnswer<string>> => {
    asked.push(key);
    const a = answers[key];
    if (a === 'hang') return new Promise(() => undefined);
    return Promise.resolve(a ?? { kind: 'nxdomain' });
  };
  return {
    asked,
    mx: (): Promise<DnsAnswer<MxRecord>> => Promise.resolve({ kind: 'nxdomain' }),
    txt: () => Promise.resolve({ kind: 'nxdomain' }),
    ptr: (ip) => answer(`PTR ${ip}`),
    a: (name) => answer(`A ${name}`),
    aaaa: (name) => answer(`AAAA ${name}`),
  };
}

const ok = (records: string[], ttlMs = 300_000): DnsAnswer<string> => ({ kind: 'ok', records, ttlMs });

function clockAt(ms: number): { nowMs(): number; advance(d: number): void } {
  let now = ms;
  return { nowMs: () => now, advance: (d) => (now += d) };
}

describe('forward-confirmed reverse DNS', () => {
  test('a PTR name whose A record holds the address is the client name', async () => {
    const r = scripted({
      'PTR 192.0.2.1': ok(['mail.example.org']),
      'A mail.example.org': ok(['192.0.2.1']),
    });
    const names = createClientNameLookup(r, { clock: clockAt(0) });
    assert.deepEqual(await names.lookup('192.0.2.1'), { name: 'mail.example.org', status: 'confirmed' });
  });

  test('IPv6: AAAA is asked, and any spelling of the same address confirms', async () => {
    const r = scripted({
      'PTR 2001:db8::25': ok(['mx.example.net']),
      'AAAA mx.example.net': ok(['2001:DB8:0:0::25']),
    });
    const names = createClientNameLookup(r, { clock: clockAt(0) });
    assert.deepEqual(await names.lookup('2001:db8::25'), { name: 'mx.example.net', status: 'confirmed' });
    assert.deepEqual(r.asked, ['PTR 2001:db8::25', 'AAAA mx.example.net']);
  });

  test('no PTR: none; a PTR name that does not point back: unconfirmed; both give no name', async () => {
    const r = scripted({
      'PTR 192.0.2.3': ok(['liar.example']),
      'A liar.example': ok(['198.51.100.9']),
    });
    const names = createClientNameLookup(r, { clock: clockAt(0) });
    assert.deepEqual(await names.lookup('192.0.2.2'), { name: null, status: 'none' });
    assert.deepEqual(await names.lookup('192.0.2.3'), { name: null, status: 'unconfirmed' });
  });

  test('the second of several PTR names may confirm; at most MAX_PTR_NAMES are checked', async () => {
    const many = Array.from({ length: 10 }, (_, i) => `n${i}.example`);
    const r = scripted({
      'PTR 192.0.2.4': ok(['other.example', 'good.example']),
      'A good.example': ok(['192.0.2.4']),
      'PTR 192.0.2.5': ok(many),
    });
    const names = createClientNameLookup(r, { clock: clockAt(0) });
    assert.equal((await names.lookup('192.0.2.4')).name, 'good.example');
    assert.equal((await names.lookup('192.0.2.5')).status, 'unconfirmed');
    assert.equal(r.asked.filter((q) => q.startsWith('A n')).length, MAX_PTR_NAMES);
  });

  test('a DNS error is temporary: no name, and not cached', async () => {
    const r = scripted({ 'PTR 192.0.2.6': { kind: 'error', temporary: true, reason: 'SERVFAIL' } });
    const names = createClientNameLookup(r, { clock: clockAt(0) });
    assert.deepEqual(await names.lookup('192.0.2.6'), { name: null, status: 'temporary' });
    await names.lookup('192.0.2.6');
    assert.equal(r.asked.length, 2);
  });

  test('a resolver that never answers: no name once the deadline passes', async () => {
    const r = scripted({ 'PTR 192.0.2.7': 'hang' });
    const names = createClientNameLookup(r, { clock: clockAt(0), timeoutMs: 50 });
    const started = performance.now();
    assert.deepEqual(await names.lookup('192.0.2.7'), { name: null, status: 'temporary' });
    assert.ok(performance.now() - started < 2000);
  });

  test('results are cached per address for the TTL (bounded), then asked again', async () => {
    const clock = clockAt(1_000_000);
    const r = scripted({
      'PTR 192.0.2.8': ok(['a.example'], 30_000),
      'A a.example': ok(['192.0.2.8'], 3_600_000),
    });
    const names = createClientNameLookup(r, { clock });
    await names.lookup('192.0.2.8');
    await names.lookup('192.0.2.8');
    assert.equal(r.asked.length, 2, 'second lookup from the cache');
    clock.advance(30_001); // the PTR's TTL, the smaller of the two
    await names.lookup('192.0.2.8');
    assert.equal(r.asked.length, 4);
  });

  test('maxCacheTtlMs 0 keeps nothing; the cache holds at most maxCacheEntries addresses', async () => {
    const r = scripted({});
    const none = createClientNameLookup(r, { clock: clockAt(0), maxCacheTtlMs: 0 });
    await none.lookup('192.0.2.9');
    await none.lookup('192.0.2.9');
    assert.equal(r.asked.length, 2);
    const small = createClientNameLookup(r, { clock: clockAt(0), maxCacheEntries: 2 });
    for (const ip of ['192.0.2.10', '192.0.2.11', '192.0.2.12', '192.0.2.10']) await small.lookup(ip);
    assert.equal(r.asked.filter((q) => q === 'PTR 192.0.2.10').length, 2, 'the oldest was dropped');
  });

  test('connections from one address at once share one lookup', async () => {
    const r = scripted({ 'PTR 192.0.2.13': ok(['c.example']), 'A c.example': ok(['192.0.2.13']) });
    const names = createClientNameLookup(r, { clock: clockAt(0) });
    const all = await Promise.all(Array.from({ length: 5 }, () => names.lookup('192.0.2.13')));
    assert.ok(all.every((n) => n.name === 'c.example'));
    assert.deepEqual(r.asked, ['PTR 192.0.2.13', 'A c.example']);
  });
});
