import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DnsAnswer, Resolver, TlsaRecord } from '../core/dns.ts';
import type { MtaSts } from './mta-sts.ts';
import type { RouteOk } from './route.ts';
import { planTls } from './tls-plan.ts';

const EE: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(32) };
const PKIX: TlsaRecord = { usage: 1, selector: 1, matchingType: 1, data: new Uint8Array(32) };

function resolver(tlsa: Record<string, DnsAnswer<TlsaRecord>>, validating = true): Resolver {
  const none = (): Promise<DnsAnswer<never>> => Promise.resolve({ kind: 'nodata' });
  return {
    mx: none,
    a: none,
    aaaa: none,
    txt: none,
    ptr: none,
    validating,
    tlsa: (name) => Promise.resolve(tlsa[name] ?? { kind: 'nxdomain', secure: true }),
  };
}

function route(
  tls: RouteOk['tls'],
  hosts: readonly string[],
  secure = true,
  viaRelay = false,
  canonical: Record<string, string> = {},
): RouteOk {
  return {
    kind: 'ok',
    targets: hosts.map((host, i) => ({
      host,
      addresses: ['192.0.2.1'],
      port: 25,
      preference: i,
      secure,
      ...(canonical[host] === undefined ? {} : { canonical: canonical[host] }),
    })),
    tls,
    auth: null,
    viaRelay,
    partial: false,
    secure,
  };
}

const sts = (mode: 'enforce' | 'testing', mx: string[]): MtaSts =>
  ({
    policyFor: () => Promise.resolve({ policy: { id: 'p1', mode, mx, maxAgeS: 86400 }, source: 'fetched' }),
  }) as unknown as MtaSts;

describe('the TLS plan of a destination', () => {
  test('DANE where the MX and TLSA answers are authenticated; it wins over MTA-STS', async () => {
    const plan = await planTls('example.org', route('may', ['mx1.example.org', 'mx2.example.org']), {
      resolver: resolver({
        '_25._tcp.mx1.example.org': { kind: 'ok', records: [EE, PKIX], ttlMs: 0, secure: true },
        '_25._tcp.mx2.example.org': { kind: 'ok', records: [PKIX], ttlMs: 0, secure: true },
      }),
      mtaSts: sts('enforce', ['nothing.example.org']),
    });
    assert.deepEqual(
      plan.hosts.map((h) => [h.target.host, h.mechanism, h.tls, h.dane?.records.length ?? 0, h.refused]),
      [
        ['mx1.example.org', 'dane', 'encrypt', 1, null],
        // Authenticated TLSA records, none usable: TLS is still mandatory, unauthenticated.
        ['mx2.example.org', 'dane-no-usable', 'encrypt', 0, null],
      ],
    );
    assert.equal(plan.sts, null);
  });

  test('a TLSA lookup that fails leaves that host untried; unauthenticated TLSA answers count for nothing', async () => {
    const plan = await planTls('example.org', route('may', ['mx1.example.org', 'mx2.example.org']), {
      resolver: resolver({
        '_25._tcp.mx1.example.org': { kind: 'error', temporary: true, reason: 'SERVFAIL' },
        '_25._tcp.mx2.example.org': { kind: 'ok', records: [EE], ttlMs: 0, secure: false },
      }),
      mtaSts: null,
    });
    assert.match(plan.hosts[0]!.refused ?? '', /TLSA lookup for mx1\.example\.org failed/);
    assert.deepEqual(
      [plan.hosts[1]!.mechanism, plan.hosts[1]!.tls, plan.hosts[1]!.refused],
      ['policy', 'may', null],
    );
  });

  test('dane-only: no DANE, no delivery, with the reason', async () => {
    const insecure = await planTls('example.org', route('dane-only', ['mx.example.org'], false), {
      resolver: resolver({}),
      mtaSts: null,
    });
    assert.match(insecure.hosts[0]!.refused ?? '', /not DNSSEC-authenticated/);
    const notValidating = await planTls('example.org', route('dane-only', ['mx.example.org']), {
      resolver: resolver({}, false),
      mtaSts: null,
    });
    assert.match(notValidating.hosts[0]!.refused ?? '', /\[dns\] dnssec = true/);
    const noTlsa = await planTls('example.org', route('dane-only', ['mx.example.org']), {
      resolver: resolver({}),
      mtaSts: null,
    });
    assert.match(noTlsa.hosts[0]!.refused ?? '', /no MX host has a DNSSEC-authenticated TLSA record/);
  });

  test('MTA-STS enforce: named hosts with verify, others refused; testing: as configured', async () => {
    const enforce = await planTls(
      'example.org',
      route('may', ['mx1.example.org', 'evil.example.net'], false),
      {
        resolver: resolver({}, false),
        mtaSts: sts('enforce', ['*.example.org']),
      },
    );
    assert.deepEqual(
      enforce.hosts.map((h) => [h.mechanism, h.tls, h.refused === null]),
      [
        ['mta-sts', 'verify', true],
        ['mta-sts', 'verify', false],
      ],
    );
    const testing = await planTls('example.org', route('may', ['evil.example.net'], false), {
      resolver: resolver({}, false),
      mtaSts: sts('testing', ['*.example.org']),
    });
    assert.deepEqual(
      [testing.hosts[0]!.mechanism, testing.hosts[0]!.tls, testing.hosts[0]!.refused],
      ['mta-sts-testing', 'may', null],
    );
  });

  test('an MX host that is an alias: the TLSA records of the expanded name first, both names accepted', async () => {
    const expanded = await planTls(
      'example.org',
      route('may', ['mx.example.org', 'mx2.example.org'], true, false, {
        'mx.example.org': 'mail.provider.example',
        'mx2.example.org': 'mail2.provider.example',
      }),
      {
        resolver: resolver({
          '_25._tcp.mail.provider.example': { kind: 'ok', records: [EE], ttlMs: 0, secure: true },
          // Nothing at the expanded name of mx2: the records at its own name count.
          '_25._tcp.mx2.example.org': { kind: 'ok', records: [EE], ttlMs: 0, secure: true },
        }),
        mtaSts: null,
      },
    );
    assert.deepEqual(expanded.hosts[0]!.dane?.names, ['mail.provider.example', 'mx.example.org']);
    assert.equal(expanded.hosts[1]!.mechanism, 'dane');
  });

  test('a relay route and the none policy are left as configured', async () => {
    const relayed = await planTls('example.org', route('encrypt', ['smarthost.example.net'], true, true), {
      resolver: resolver({
        '_25._tcp.smarthost.example.net': { kind: 'ok', records: [EE], ttlMs: 0, secure: true },
      }),
      mtaSts: sts('enforce', ['nothing']),
    });
    assert.deepEqual([relayed.hosts[0]!.mechanism, relayed.hosts[0]!.tls], ['policy', 'encrypt']);
    const none = await planTls('example.org', route('none', ['mx.example.org']), {
      resolver: resolver({
        '_25._tcp.mx.example.org': { kind: 'ok', records: [EE], ttlMs: 0, secure: true },
      }),
      mtaSts: sts('enforce', ['nothing']),
    });
    assert.deepEqual(
      [none.hosts[0]!.mechanism, none.hosts[0]!.tls, none.hosts[0]!.refused],
      ['policy', 'none', null],
    );
  });
});
