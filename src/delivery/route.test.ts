import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_OUTBOUND, type OutboundConfig, type RelayHost } from '../config/config.ts';
import type { DnsAnswer, MxRecord, Resolver } from '../core/dns.ts';
import { resolveRoute, shuffleByPreference, tlsPolicyFor, transportFor } from './route.ts';

type Zone = Record<
  string,
  { mx?: MxRecord[] | 'error' | 'nxdomain'; a?: string[] | 'error'; aaaa?: string[] }
>;

function fakeResolver(zone: Zone): Resolver & { queries: string[] } {
  const queries: string[] = [];
  const answer = <T>(v: readonly T[] | 'error' | 'nxdomain' | undefined, exists: boolean): DnsAnswer<T> => {
    if (v === 'error') return { kind: 'error', temporary: true, reason: 'SERVFAIL' };
    if (v === 'nxdomain' || !exists) return { kind: 'nxdomain' };
    if (!v || v.length === 0) return { kind: 'nodata' };
    return { kind: 'ok', records: v, ttlMs: 60_000 };
  };
  return {
    queries,
    mx: (d) => (queries.push(`MX ${d}`), Promise.resolve(answer(zone[d]?.mx, d in zone))),
    a: (d) => (queries.push(`A ${d}`), Promise.resolve(answer(zone[d]?.a, d in zone))),
    aaaa: (d) => (queries.push(`AAAA ${d}`), Promise.resolve(answer(zone[d]?.aaaa, d in zone))),
    txt: () => Promise.resolve({ kind: 'nodata' }),
    ptr: () => Promise.resolve({ kind: 'nodata' }),
  };
}

const opts = (outbound: Partial<OutboundConfig> = {}) => ({
  outbound: { ...DEFAULT_OUTBOUND, ...outbound },
  hostname: 'mx.self.test',
  random: () => 0.5,
});

describe('routing', () => {
  it('orders MX hosts by preference and resolves their addresses', async () => {
    const r = fakeResolver({
      'example.test': {
        mx: [
          { preference: 20, exchange: 'b.example.test' },
          { preference: 10, exchange: 'a.example.test' },
        ],
      },
      'a.example.test': { a: ['192.0.2.1'], aaaa: ['2001:db8::1'] },
      'b.example.test': { a: ['192.0.2.2'] },
    });
    const route = await resolveRoute('Example.Test', r, opts());
    assert.equal(route.kind, 'ok');
    if (route.kind !== 'ok') return;
    assert.deepEqual(
      route.targets.map((t) => [t.host, t.addresses]),
      [
        ['a.example.test', ['192.0.2.1', '2001:db8::1']],
        ['b.example.test', ['192.0.2.2']],
      ],
    );
    assert.equal(route.targets[0]!.port, 25);
    assert.equal(route.tls, 'may');
  });

  it('falls back to A/AAAA when there is no MX (implicit MX)', async () => {
    const route = await resolveRoute(
      'plain.test',
      fakeResolver({ 'plain.test': { a: ['192.0.2.9'] } }),
      opts(),
    );
    assert.ok(route.kind === 'ok' && route.targets[0]!.host === 'plain.test');
  });

  it('a null MX bounces with 556 5.1.10', async () => {
    const route = await resolveRoute(
      'null.test',
      fakeResolver({ 'null.test': { mx: [{ preference: 0, exchange: '' }] } }),
      opts(),
    );
    assert.deepEqual(route.kind === 'error' && [route.temporary, route.code, route.enhanced], [
      false,
      556,
      '5.1.10',
    ]);
  });

  it('NXDOMAIN is permanent (5.1.2), SERVFAIL temporary (4.4.3)', async () => {
    const nx = await resolveRoute('gone.test', fakeResolver({}), opts());
    assert.deepEqual(nx.kind === 'error' && [nx.temporary, nx.enhanced], [false, '5.1.2']);
    const sf = await resolveRoute('flaky.test', fakeResolver({ 'flaky.test': { mx: 'error' } }), opts());
    assert.deepEqual(sf.kind === 'error' && [sf.temporary, sf.enhanced], [true, '4.4.3']);
  });

  it('MX hosts that only fail temporarily make a temporary error, not a bounce', async () => {
    const r = fakeResolver({
      'd.test': { mx: [{ preference: 10, exchange: 'mx.d.test' }] },
      'mx.d.test': { a: 'error' },
    });
    const route = await resolveRoute('d.test', r, opts());
    assert.ok(route.kind === 'error' && route.temporary);
  });

  it('an MX pointing at ourselves keeps only more preferred hosts, or bounces 5.4.6', async () => {
    const r = fakeResolver({
      'loop.test': { mx: [{ preference: 10, exchange: 'mx.self.test' }] },
      'mixed.test': {
        mx: [
          { preference: 5, exchange: 'primary.test' },
          { preference: 10, exchange: 'mx.self.test' },
        ],
      },
      'primary.test': { a: ['192.0.2.5'] },
    });
    const loop = await resolveRoute('loop.test', r, opts());
    assert.ok(loop.kind === 'error' && loop.enhanced === '5.4.6');
    const mixed = await resolveRoute('mixed.test', r, opts());
    assert.ok(mixed.kind === 'ok' && mixed.targets.length === 1 && mixed.targets[0]!.host === 'primary.test');
  });

  it('address literals go straight to the address', async () => {
    const r = fakeResolver({});
    const route = await resolveRoute('[192.0.2.7]', r, opts());
    assert.ok(route.kind === 'ok' && route.targets[0]!.addresses[0] === '192.0.2.7');
    const v6 = await resolveRoute('[IPv6:2001:db8::7]', r, opts());
    assert.ok(v6.kind === 'ok' && v6.targets[0]!.addresses[0] === '2001:db8::7');
    assert.equal(r.queries.length, 0);
  });

  it('IDN domains are looked up by their A-label', async () => {
    const r = fakeResolver({ 'xn--bcher-kva.test': { a: ['192.0.2.3'] } });
    const route = await resolveRoute('bücher.test', r, opts());
    assert.ok(route.kind === 'ok');
    assert.ok(r.queries.includes('MX xn--bcher-kva.test'));
  });

  it('a smart host and the transport map override MX routing', async () => {
    const relay: RelayHost = {
      host: 'relay.test',
      port: 587,
      mx: false,
      tls: 'encrypt',
      auth: { username: 'u', password: 'p' },
    };
    const special: RelayHost = { host: '192.0.2.50', port: 2525, mx: false, tls: 'none', auth: null };
    const r = fakeResolver({ 'relay.test': { a: ['192.0.2.40'] } });
    const o = opts({ relay, transports: new Map([['*.corp.test', special]]) });
    const viaRelay = await resolveRoute('anywhere.test', r, o);
    assert.ok(
      viaRelay.kind === 'ok' &&
        viaRelay.viaRelay &&
        viaRelay.targets[0]!.port === 587 &&
        viaRelay.tls === 'encrypt',
    );
    const viaTransport = await resolveRoute('eu.corp.test', r, o);
    assert.ok(
      viaTransport.kind === 'ok' &&
        viaTransport.targets[0]!.addresses[0] === '192.0.2.50' &&
        viaTransport.tls === 'none',
    );
    assert.equal(transportFor('corp.test', o.outbound.transports), null);
  });

  it('per-domain TLS policies match exactly or by wildcard', () => {
    const o = {
      ...DEFAULT_OUTBOUND,
      tlsPolicies: new Map([
        ['bank.test', 'verify' as const],
        ['*.gov.test', 'encrypt' as const],
      ]),
    };
    assert.equal(tlsPolicyFor('bank.test', o), 'verify');
    assert.equal(tlsPolicyFor('x.gov.test', o), 'encrypt');
    assert.equal(tlsPolicyFor('other.test', o), 'may');
  });

  it('equal preferences are shuffled, lower preference always first', () => {
    const recs = [1, 2, 3, 4].map((i) => ({ preference: i === 4 ? 5 : 10, id: i }));
    const seen = new Set<string>();
    let seed = 1;
    const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let i = 0; i < 50; i++) {
      const out = shuffleByPreference(recs, rnd);
      assert.equal(out[0]!.id, 4);
      seen.add(out.map((r) => r.id).join(','));
    }
    assert.ok(seen.size > 1, 'equal-preference hosts are not always in the same order');
  });
});
