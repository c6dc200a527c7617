// Unit tests for SPF: macros (RFC 7208 §7, with the §7.4 examples), record parsing edge cases (§4.5,
// §4.6, §5, §6), addresses, and check_host() behaviour the conformance suite does not pin down (limits
// counted the right way, the time limit, resolver failures, the HELO and null-sender identities, IDN).
// The full RFC 7208 test suite runs in test/conformance/spf-suite.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DnsAnswer, MxRecord, Resolver } from '../core/dns.ts';
import { checkHost, checkSpf } from './spf.ts';
import type { CheckHostArgs } from './spf.ts';
import { dottedIp, formatIp, parseClientIp, parseIpv4, parseIpv6 } from './spf-ip.ts';
import type { MacroValues } from './spf-macro.ts';
import { expandMacroString, parseDomainSpec, parseMacroString } from './spf-macro.ts';
import { isSpfRecord, parseRecord } from './spf-record.ts';
import type { Mechanism } from './spf-record.ts';

// ---- a fake resolver --------------------------------------------------------------------------------

interface Node {
  readonly txt?: readonly string[];
  readonly a?: readonly string[];
  readonly aaaa?: readonly string[];
  readonly mx?: readonly (readonly [number, string])[];
  /** Every question about this name fails (SERVFAIL, timeout). */
  readonly error?: true;
}

interface FakeResolver extends Resolver {
  readonly queries: string[];
}

function fakeResolver(
  names: Readonly<Record<string, Node>>,
  ptr: Readonly<Record<string, Node['a'] | 'error'>> = {},
): FakeResolver {
  const queries: string[] = [];
  function answer<T>(
    type: string,
    name: string,
    pick: (n: Node) => readonly T[] | undefined,
  ): Promise<DnsAnswer<T>> {
    const key = name.toLowerCase().replace(/\.$/, '');
    queries.push(`${type} ${key}`);
    const node = names[key];
    if (node === undefined) return Promise.resolve({ kind: 'nxdomain' });
    if (node.error) return Promise.resolve({ kind: 'error', temporary: true, reason: 'SERVFAIL' });
    const records = pick(node) ?? [];
    return Promise.resolve(records.length > 0 ? { kind: 'ok', records, ttlMs: 60_000 } : { kind: 'nodata' });
  }
  return {
    queries,
    txt: (name) => answer('TXT', name, (n) => n.txt),
    a: (name) => answer('A', name, (n) => n.a),
    aaaa: (name) => answer('AAAA', name, (n) => n.aaaa),
    mx: (name) =>
      answer('MX', name, (n) => n.mx?.map(([preference, exchange]): MxRecord => ({ preference, exchange }))),
    ptr: (address) => {
      queries.push(`PTR ${address}`);
      const found = ptr[address];
      if (found === 'error') return Promise.resolve({ kind: 'error', temporary: true, reason: 'timeout' });
      if (found === undefined) return Promise.resolve({ kind: 'nxdomain' });
      return Promise.resolve({ kind: 'ok', records: found, ttlMs: 60_000 });
    },
  };
}

function check(resolver: Resolver, over: Partial<CheckHostArgs> = {}): ReturnType<typeof checkHost> {
  return checkHost({
    ip: '192.0.2.3',
    domain: 'example.com',
    sender: 'strong-bad@example.com',
    helo: 'mx.example.org',
    receivingHost: 'mx.example.net',
    resolver,
    nowMs: 1_700_000_000_000,
    ...over,
  });
}

// ---- macros -----------------------------------------------------------------------------------------

describe('macro expansion (RFC 7208 §7.4 examples)', () => {
  const values = (ip: string): MacroValues => {
    const client = parseClientIp(ip)!;
    return {
      s: 'strong-bad@email.example.com',
      l: 'strong-bad',
      o: 'email.example.com',
      d: 'email.example.com',
      i: dottedIp(client),
      p: 'unknown',
      v: client.version === 4 ? 'in-addr' : 'ip6',
      h: 'mx.example.org',
      c: formatIp(client),
      r: 'mx.example.net',
      t: '1700000000',
    };
  };
  const expand = (spec: string, ip = '192.0.2.3'): string => {
    const parsed = parseMacroString(spec, 'explanation');
    assert.ok(parsed.ok, spec);
    return expandMacroString(parsed.value, values(ip));
  };
  const examples: [string, string][] = [
    ['%{s}', 'strong-bad@email.example.com'],
    ['%{o}', 'email.example.com'],
    ['%{d}', 'email.example.com'],
    ['%{d4}', 'email.example.com'],
    ['%{d3}', 'email.example.com'],
    ['%{d2}', 'example.com'],
    ['%{d1}', 'com'],
    ['%{dr}', 'com.example.email'],
    ['%{d2r}', 'example.email'],
    ['%{l}', 'strong-bad'],
    ['%{l-}', 'strong.bad'],
    ['%{lr}', 'strong-bad'],
    ['%{lr-}', 'bad.strong'],
    ['%{l1r-}', 'strong'],
    ['%{ir}.%{v}._spf.%{d2}', '3.2.0.192.in-addr._spf.example.com'],
    ['%{lr-}.lp._spf.%{d2}', 'bad.strong.lp._spf.example.com'],
    ['%{lr-}.lp.%{ir}.%{v}._spf.%{d2}', 'bad.strong.lp.3.2.0.192.in-addr._spf.example.com'],
    ['%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}', '3.2.0.192.in-addr.strong.lp._spf.example.com'],
    ['%{d2}.trusted-domains.example.net', 'example.com.trusted-domains.example.net'],
  ];
  for (const [spec, expected] of examples) {
    test(`${spec} → ${expected}`, () => assert.equal(expand(spec), expected));
  }

  test('IPv6: %{ir}.%{v}._spf.%{d2} gives the reversed nibbles (upper case, as pyspf and the suite)', () => {
    assert.equal(
      expand('%{ir}.%{v}._spf.%{d2}', '2001:db8::cb01'),
      '1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com',
    );
    assert.equal(expand('%{c}', '2001:DB8:0:0:0:0:0:CB01'), '2001:db8::cb01');
  });

  test('IPv4-mapped client expands as IPv4', () => {
    assert.equal(expand('%{i} %{v} %{c}', '::ffff:192.0.2.3'), '192.0.2.3 in-addr 192.0.2.3');
  });

  test('escapes: %% %_ %- ', () => assert.equal(expand('a%%b%_c%-d'), 'a%b c%20d'));

  test('upper-case letters are URL-escaped: all but unreserved, UTF-8 octets', () => {
    const parsed = parseMacroString('%{L}', 'domain');
    assert.ok(parsed.ok);
    const v = { ...values('192.0.2.3'), l: '~jack&jill=up-a_b3.c josé' };
    assert.equal(expandMacroString(parsed.value, v), '~jack%26jill%3Dup-a_b3.c%20jos%C3%A9');
  });

  test('more parts requested than there are keeps them all; several delimiters split on each', () => {
    assert.equal(expand('%{d9}'), 'email.example.com');
    const parsed = parseMacroString('%{l2r+-}', 'domain');
    assert.ok(parsed.ok);
    assert.equal(
      expandMacroString(parsed.value, { ...values('192.0.2.3'), l: 'foo-bar+zip+quux' }),
      'bar.foo',
    );
  });

  test('c, r and t are only for explanations', () => {
    assert.equal(expand('%{r} %{t}'), 'mx.example.net 1700000000');
    for (const letter of ['c', 'r', 't', 'C']) {
      assert.equal(parseMacroString(`%{${letter}}.example.com`, 'domain').ok, false, letter);
      assert.equal(parseMacroString(`%{${letter}}`, 'modifier').ok, true, letter);
    }
  });

  test('syntax errors', () => {
    for (const bad of [
      '%',
      'a%',
      '%x',
      '%(ir)',
      '%{',
      '%{d',
      '%{}',
      '%{a}',
      '%{d0}',
      '%{d2x}',
      '%{d:}',
      '%{ d}',
    ]) {
      assert.equal(parseMacroString(bad, 'explanation').ok, false, bad);
    }
    assert.equal(parseMacroString('has space', 'domain').ok, false);
    assert.equal(parseMacroString('has space', 'explanation').ok, true);
    assert.equal(parseMacroString('tab\there', 'explanation').ok, false);
    assert.equal(parseMacroString('caf\u00e9', 'explanation').ok, false, 'explanations are 7-bit ASCII');
  });
});

describe('domain-spec (RFC 7208 §7.1: ends in a macro or "." toplabel ["."])', () => {
  const cases: [string, boolean][] = [
    ['example.com', true],
    ['example.com.', true],
    ['foo.example.xn--zckzah', true],
    ['foo:bar/baz.example.com', true],
    ['%{d}', true],
    ['%{d2}.%{l}', true],
    ['_spf.%{d}', true],
    ['a.%-', true],
    ['museum', false],
    ['museum.', false],
    ['abc.123', false],
    ['111.222.33.44', false],
    ['example.-com', false],
    ['example.com-', false],
    ['example.com:8080', false],
    ['example.com/24', false],
    ['', false],
    ['%{c}.example.com', false],
  ];
  for (const [spec, ok] of cases) {
    test(`${JSON.stringify(spec)} is ${ok ? 'valid' : 'invalid'}`, () =>
      assert.equal(parseDomainSpec(spec).ok, ok));
  }
});

// ---- records ----------------------------------------------------------------------------------------

describe('record selection and parsing', () => {
  test('an SPF record starts with "v=spf1" in any case, then a space or the end', () => {
    assert.equal(isSpfRecord('v=spf1'), true);
    assert.equal(isSpfRecord('V=SpF1 -all'), true);
    assert.equal(isSpfRecord('v=spf10'), false);
    assert.equal(isSpfRecord('v=spf1mx'), false);
    assert.equal(isSpfRecord(' v=spf1 -all'), false);
    assert.equal(isSpfRecord('v=spf2.0/pra'), false);
  });

  const mechanisms = (txt: string): Mechanism[] => {
    const parsed = parseRecord(txt);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
    return parsed.record.directives.map((d) => d.mechanism);
  };

  test('qualifiers, case-insensitive names, dual CIDR lengths', () => {
    const parsed = parseRecord(
      'v=spf1 A:Example.COM/24//64 -MX ~Ptr ?IP4:192.0.2.0/24 +ip6:2001:DB8::/32 all',
    );
    assert.ok(parsed.ok);
    assert.deepEqual(
      parsed.record.directives.map((d) => [d.qualifier, d.mechanism.kind, d.text]),
      [
        ['+', 'a', 'A:Example.COM/24//64'],
        ['-', 'mx', '-MX'],
        ['~', 'ptr', '~Ptr'],
        ['?', 'ip4', '?IP4:192.0.2.0/24'],
        ['+', 'ip6', '+ip6:2001:DB8::/32'],
        ['+', 'all', 'all'],
      ],
    );
    const [a, mx, , ip4, ip6] = parsed.record.directives.map((d) => d.mechanism);
    assert.deepEqual({ ...a, domain: null }, { kind: 'a', domain: null, prefix4: 24, prefix6: 64 });
    assert.deepEqual(mx, { kind: 'mx', domain: null, prefix4: 32, prefix6: 128 });
    assert.deepEqual(ip4, { kind: 'ip4', network: parseIpv4('192.0.2.0'), prefix: 24 });
    assert.deepEqual(ip6, { kind: 'ip6', network: parseIpv6('2001:db8::'), prefix: 32 });
  });

  test('a//0 and mx/0: one length without the other', () => {
    assert.deepEqual(mechanisms('v=spf1 a//0 mx/0'), [
      { kind: 'a', domain: null, prefix4: 32, prefix6: 0 },
      { kind: 'mx', domain: null, prefix4: 0, prefix6: 128 },
    ]);
  });

  test('modifiers: redirect and exp kept, unknown ones ignored, names and spacing tolerated', () => {
    const parsed = parseRecord(
      'v=spf1  ip4:192.0.2.1   Redirect=_spf.example.com EXP=why.%{d} x-foo=%{l}.bar ',
    );
    assert.ok(parsed.ok);
    assert.equal(parsed.record.directives.length, 1);
    assert.notEqual(parsed.record.redirect, null);
    assert.notEqual(parsed.record.exp, null);
    assert.deepEqual(parseRecord('v=spf1'), {
      ok: true,
      record: { directives: [], redirect: null, exp: null },
    });
  });

  const errors: [string, string][] = [
    ['v=spf1 -all moo', 'unknown mechanism'],
    ['v=spf1 -all.', 'trailing text after all'],
    ['v=spf1 include', 'include without a domain'],
    ['v=spf1 include:example.com/24', 'CIDR on include'],
    ['v=spf1 exists', 'exists without a domain'],
    ['v=spf1 ptr/0', 'CIDR on ptr'],
    ['v=spf1 a:', 'empty domain'],
    ['v=spf1 a/33', 'IPv4 CIDR over 32'],
    ['v=spf1 a//129', 'IPv6 CIDR over 128'],
    ['v=spf1 a/24/64', 'second length needs two slashes'],
    ['v=spf1 a/024', 'leading zero in a CIDR length'],
    ['v=spf1 ip4:192.0.2.1/032', 'leading zero in a CIDR length'],
    ['v=spf1 ip4:192.0.2', 'shortened IPv4'],
    ['v=spf1 ip4:192.0.2.01', 'leading zero in an octet'],
    ['v=spf1 ip4:192.0.2.1//32', 'dual CIDR on ip4'],
    ['v=spf1 ip4:192.0.2.1:25', 'port'],
    ['v=spf1 ip6::CAFE::BABE', 'two "::"'],
    ['v=spf1 ip6:::1//64', 'dual CIDR on ip6'],
    ['v=spf1 ip6', 'ip6 without a network'],
    ['v=spf1 redirect=a.example.com redirect=b.example.com', 'two redirects'],
    ['v=spf1 exp=a.example.com exp=b.example.com', 'two exps'],
    ['v=spf1 exp=', 'empty exp'],
    ['v=spf1 redirect=-all', 'redirect to a non-domain'],
    ['v=spf1 redirect:example.com', 'redirect is a modifier'],
    ['v=spf1 1up=foo', 'modifier name starting with a digit'],
    ['v=spf1 =all', 'empty modifier name'],
    ['v=spf1 foo=%abc', 'bad macro in an unknown modifier'],
    ['v=spf1 moo.cow/far_out=man:dog/cat', '"/" before "="'],
    ['v=spf1 a:example.com\tmx', 'tab is not a separator'],
    ['v=spf1 ip4:192.0.2.1\r\n', 'CR LF inside a term'],
    ['v=spf1 \u00e9all', 'non-ASCII'],
    ['v=spf1 a:foo.example.com\u0000', 'NUL'],
  ];
  for (const [record, why] of errors) {
    test(`syntax error: ${why}`, () => {
      const parsed = parseRecord(record);
      assert.equal(parsed.ok, false);
      if (!parsed.ok) assert.ok(parsed.error.length > 0);
    });
  }
});

describe('addresses', () => {
  test('IPv4-mapped IPv6 is IPv4; other IPv6 stays IPv6', () => {
    assert.deepEqual(parseClientIp('::FFFF:192.0.2.1'), { version: 4, value: parseIpv4('192.0.2.1') });
    assert.deepEqual(parseClientIp('::ffff:c000:201'), { version: 4, value: parseIpv4('192.0.2.1') });
    assert.equal(parseClientIp('::192.0.2.1')?.version, 6);
    assert.equal(parseClientIp('[192.0.2.1]'), null);
    assert.equal(parseClientIp('fe80::1%eth0'), null);
  });

  test('RFC 5952 text for the "c" macro', () => {
    const c = (s: string): string => formatIp(parseClientIp(s)!);
    assert.equal(c('2001:0DB8:0000:0000:0001:0000:0000:0001'), '2001:db8::1:0:0:1');
    assert.equal(c('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(c('::'), '::');
    assert.equal(c('1::'), '1::');
    assert.equal(c('::1'), '::1');
    assert.equal(c('2001:0:0:1:0:0:0:1'), '2001:0:0:1::1', 'the longest run, not the first');
  });

  test('IPv6 syntax', () => {
    for (const bad of [
      '1::2::3',
      ':1::',
      '12345::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '::1.2.3',
      'g::1',
      '',
    ]) {
      assert.equal(parseIpv6(bad), null, bad);
    }
    assert.equal(parseIpv6('1:2:3:4:5:6:7::'), 0x00010002000300040005000600070000n);
    assert.equal(parseIpv6('::1.2.3.4'), 0x01020304n);
  });
});

// ---- check_host() -----------------------------------------------------------------------------------

describe('check_host()', () => {
  test('a match reports the mechanism, the domain and a reason', async () => {
    const r = await check(fakeResolver({ 'example.com': { txt: ['v=spf1 ip4:192.0.2.0/24 -all'] } }));
    assert.deepEqual(
      { result: r.result, domain: r.domain, scope: r.scope, mechanism: r.mechanism },
      { result: 'pass', domain: 'example.com', scope: 'mfrom', mechanism: 'ip4:192.0.2.0/24' },
    );
    assert.match(r.reason, /192\.0\.2\.3 matched ip4:192\.0\.2\.0\/24/);
  });

  test('non-SPF TXT records are ignored; two SPF records are a permerror', async () => {
    const one = fakeResolver({ 'example.com': { txt: ['google-site-verification=x', 'v=spf1 -all'] } });
    assert.equal((await check(one)).result, 'fail');
    const two = fakeResolver({ 'example.com': { txt: ['v=spf1 -all', 'v=spf1 +all'] } });
    assert.equal((await check(two)).result, 'permerror');
  });

  test('none without a record, for a malformed domain, and for an address literal, without a query', async () => {
    const resolver = fakeResolver({ 'example.com': { a: ['192.0.2.1'] } });
    assert.equal((await check(resolver)).result, 'none');
    assert.equal((await check(resolver, { domain: 'nowhere.example' })).result, 'none');
    const before = resolver.queries.length;
    for (const domain of [
      'localhost',
      'a..example.com',
      '[192.0.2.1]',
      '192.0.2.1',
      `${'x'.repeat(64)}.example`,
      '',
    ]) {
      assert.equal((await check(resolver, { domain })).result, 'none', domain);
    }
    assert.equal(resolver.queries.length, before);
  });

  test('a DNS error fetching the record is a temperror; so is a resolver that rejects', async () => {
    assert.equal((await check(fakeResolver({ 'example.com': { error: true } }))).result, 'temperror');
    const broken: Resolver = {
      ...fakeResolver({}),
      txt: () => Promise.reject(new Error('socket closed')),
    };
    const r = await check(broken);
    assert.equal(r.result, 'temperror');
    assert.match(r.reason, /socket closed/);
  });

  test('a DNS error inside a mechanism or an include is a temperror of the whole check', async () => {
    const resolver = fakeResolver({
      'example.com': { txt: ['v=spf1 include:_spf.example.com -all'] },
      '_spf.example.com': { txt: ['v=spf1 a:broken.example.com -all'] },
      'broken.example.com': { error: true },
    });
    assert.equal((await check(resolver)).result, 'temperror');
  });

  test('include: pass matches; fail, softfail, neutral do not; none is a permerror', async () => {
    const zone = (inner: string | null): FakeResolver =>
      fakeResolver({
        'example.com': { txt: ['v=spf1 include:inner.example.com ~all'] },
        'inner.example.com': inner === null ? {} : { txt: [inner] },
      });
    assert.equal((await check(zone('v=spf1 +all'))).result, 'pass');
    assert.equal((await check(zone('v=spf1 -all'))).result, 'softfail');
    assert.equal((await check(zone('v=spf1 ~all'))).result, 'softfail');
    assert.equal((await check(zone('v=spf1 ?all'))).result, 'softfail');
    assert.equal((await check(zone('v=spf1'))).result, 'softfail');
    assert.equal((await check(zone(null))).result, 'permerror');
    assert.equal((await check(zone('v=spf1 bogus'))).result, 'permerror');
  });

  test('10 DNS-querying terms are allowed, the 11th is a permerror, even without void lookups', async () => {
    const hosts = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`h${i}.example.com`, { a: ['198.51.100.1'] }]),
    );
    const record = (n: number): string =>
      `v=spf1 ${Array.from({ length: n }, (_, i) => `a:h${i}.example.com`).join(' ')} ip4:192.0.2.3 -all`;
    const ten = await check(fakeResolver({ ...hosts, 'example.com': { txt: [record(10)] } }));
    assert.equal(ten.result, 'pass');
    const eleven = await check(fakeResolver({ ...hosts, 'example.com': { txt: [record(11)] } }));
    assert.equal(eleven.result, 'permerror');
    assert.match(eleven.reason, /more than 10 DNS-querying terms/);
  });

  test('includes and redirects count towards the same 10; ip4, ip6, all and exp do not', async () => {
    const zone: Record<string, Node> = {
      'example.com': {
        txt: ['v=spf1 include:i1.example.com ip4:198.51.100.0/24 redirect=r.example.com exp=e.example.com'],
      },
      'i1.example.com': { txt: ['v=spf1 a:h.example.com a:h.example.com a:h.example.com a:h.example.com'] },
      'r.example.com': { txt: [`v=spf1 ${'a:h.example.com '.repeat(4)}ip6:2001:db8::/32 -all`] },
      'h.example.com': { a: ['198.51.100.1'] },
      'e.example.com': { txt: ['not from %{i}'] },
    };
    // include 1 + 4 a, redirect 1 + 4 a = 10.
    assert.equal((await check(fakeResolver(zone))).result, 'fail');
    const over = { ...zone, 'r.example.com': { txt: [`v=spf1 ${'a:h.example.com '.repeat(5)}-all`] } };
    assert.equal((await check(fakeResolver(over))).result, 'permerror');
  });

  test('void lookups: two are allowed, the third is a permerror', async () => {
    const record = (n: number): string =>
      `v=spf1 ${Array.from({ length: n }, (_, i) => `exists:v${i}.example.com`).join(' ')} ?all`;
    assert.equal((await check(fakeResolver({ 'example.com': { txt: [record(2)] } }))).result, 'neutral');
    const over = await check(fakeResolver({ 'example.com': { txt: [record(3)] } }));
    assert.equal(over.result, 'permerror');
    assert.match(over.reason, /void/);
  });

  test('mx: no implicit MX, null MX skipped, more than 10 names is a permerror', async () => {
    const base = { 'mail.example.com': { a: ['192.0.2.3'] } };
    const implicit = fakeResolver({ ...base, 'example.com': { txt: ['v=spf1 mx -all'], a: ['192.0.2.3'] } });
    assert.equal((await check(implicit)).result, 'fail');
    const nullMx = fakeResolver({ ...base, 'example.com': { txt: ['v=spf1 mx -all'], mx: [[0, '']] } });
    assert.equal((await check(nullMx)).result, 'fail');
    assert.ok(!nullMx.queries.some((q) => q === 'A '), 'the null MX target is never looked up');
    const ok = fakeResolver({
      ...base,
      'example.com': { txt: ['v=spf1 mx -all'], mx: [[10, 'mail.example.com']] },
    });
    assert.equal((await check(ok)).result, 'pass');
    const many = Array.from({ length: 11 }, (_, i): [number, string] => [i, 'mail.example.com']);
    const tooMany = fakeResolver({ ...base, 'example.com': { txt: ['v=spf1 mx -all'], mx: many } });
    assert.equal((await check(tooMany)).result, 'permerror');
  });

  test('ptr: only the first 10 names are validated; a PTR error is no match, not a temperror', async () => {
    const names = Array.from({ length: 11 }, (_, i) => `h${i}.example.com`);
    const zone = {
      'example.com': { txt: ['v=spf1 ptr -all'] },
      ...Object.fromEntries(names.map((n) => [n, { a: ['192.0.2.3'] }])),
    };
    const late = fakeResolver(zone, {
      '192.0.2.3': names.map((n, i) => (i < 10 ? n.replace('example', 'other') : n)),
    });
    assert.equal((await check(late)).result, 'fail');
    assert.ok(!late.queries.includes('A h10.example.com'));
    const early = fakeResolver(zone, { '192.0.2.3': ['h0.example.com'] });
    assert.equal((await check(early)).result, 'pass');
    const broken = fakeResolver(zone, { '192.0.2.3': 'error' });
    assert.equal((await check(broken)).result, 'fail');
  });

  test('exp= is fetched only for fail, expanded with c, r, t, and never counted', async () => {
    const zone = (qualifier: string): FakeResolver =>
      fakeResolver({
        'example.com': { txt: [`v=spf1 ${qualifier}all exp=why.%{d}`] },
        'why.example.com': { txt: ['%{c} is not %{d} (seen by %{r} at %{t})'] },
      });
    const fail = await check(zone('-'));
    assert.equal(fail.explanation, '192.0.2.3 is not example.com (seen by mx.example.net at 1700000000)');
    const soft = zone('~');
    const softfail = await check(soft);
    assert.equal(softfail.result, 'softfail');
    assert.equal(softfail.explanation, undefined);
    assert.ok(!soft.queries.includes('TXT why.example.com'));
  });

  test('the "p" macro is "unknown" when nothing validates', async () => {
    const resolver = fakeResolver(
      {
        'example.com': { txt: ['v=spf1 -all exp=why.example.com'] },
        'why.example.com': { txt: ['%{p}'] },
        'mail.example.com': { a: ['198.51.100.9'] },
      },
      { '192.0.2.3': ['mail.example.com'] },
    );
    assert.equal((await check(resolver)).explanation, 'unknown');
  });

  test('an expanded name over 253 octets loses labels on the left', async () => {
    const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}`;
    const resolver = fakeResolver({ 'example.com': { txt: ['v=spf1 exists:%{l}.%{l}.example.com -all'] } });
    await check(resolver, { sender: `${long}@example.com` });
    const asked = resolver.queries.find((q) => q.startsWith('A '))!.slice(2);
    // 377 octets: the three labels of the first copy go, whole labels only.
    assert.equal(asked, `${long}.example.com`);
  });

  test('trailing dots are ignored on domains; names compare without case', async () => {
    const resolver = fakeResolver({
      'example.com': { txt: ['v=spf1 redirect=_SPF.Example.COM.'] },
      '_spf.example.com': { txt: ['v=spf1 a:Mail.Example.Com. -all'] },
      'mail.example.com': { a: ['192.0.2.3'] },
    });
    const r = await check(resolver, { domain: 'Example.COM.' });
    assert.equal(r.result, 'pass');
    assert.equal(r.domain, 'Example.COM');
  });

  test('an IDN domain is checked as its A-label', async () => {
    const resolver = fakeResolver({ 'xn--bcher-kva.example': { txt: ['v=spf1 +all'] } });
    assert.equal(
      (await check(resolver, { domain: 'bücher.example', sender: 'a@bücher.example' })).result,
      'pass',
    );
  });

  test('IPv6 clients match a//64 and ip6:, never ip4:', async () => {
    const resolver = fakeResolver({
      'example.com': { txt: ['v=spf1 ip4:0.0.0.0/0 a//64 -all'], aaaa: ['2001:db8::1'] },
    });
    assert.equal((await check(resolver, { ip: '2001:db8::ffff:1' })).result, 'pass');
    assert.equal((await check(resolver, { ip: '2001:db9::1' })).result, 'fail');
    assert.equal((await check(resolver, { ip: '::ffff:203.0.113.1' })).result, 'pass', 'mapped is IPv4');
  });

  test('a client address that is not an address is a permerror', async () => {
    assert.equal((await check(fakeResolver({}), { ip: 'mail.example.com' })).result, 'permerror');
  });

  test('an aborted signal ends the check with temperror', async () => {
    const resolver = fakeResolver({ 'example.com': { txt: ['v=spf1 -all'] } });
    const before = await check(resolver, { signal: AbortSignal.abort() });
    assert.equal(before.result, 'temperror');
    assert.deepEqual(resolver.queries, []);

    const controller = new AbortController();
    const hanging: Resolver = { ...resolver, txt: () => new Promise<never>(() => {}) };
    const pending = check(hanging, { signal: controller.signal });
    controller.abort();
    const r = await pending;
    assert.equal(r.result, 'temperror');
    assert.match(r.reason, /time limit/);
  });

  test('an abort during the exp= lookup drops the explanation, not the fail', async () => {
    const controller = new AbortController();
    const base = fakeResolver({ 'example.com': { txt: ['v=spf1 -all exp=why.example.com'] } });
    const resolver: Resolver = {
      ...base,
      txt: (name) => {
        if (name === 'why.example.com') {
          controller.abort();
          return new Promise<never>(() => {});
        }
        return base.txt(name);
      },
    };
    const r = await check(resolver, { signal: controller.signal });
    assert.equal(r.result, 'fail', 'the result was known before the explanation');
    assert.equal(r.explanation, undefined);
  });
});

describe('checkSpf()', () => {
  const zone = fakeResolver({
    'example.com': { txt: ['v=spf1 ip4:192.0.2.0/24 -all'] },
    'mx.example.org': { txt: ['v=spf1 a -all'], a: ['198.51.100.7'] },
  });
  const args = { ip: '192.0.2.3', helo: 'mx.example.org', receivingHost: 'mx.example.net', resolver: zone };

  test('MAIL FROM and HELO are checked separately', async () => {
    const r = await checkSpf({ ...args, mailFrom: 'user@example.com' });
    assert.deepEqual(
      [r.mfrom.result, r.mfrom.scope, r.mfrom.domain, r.helo.result, r.helo.scope, r.helo.domain],
      ['pass', 'mfrom', 'example.com', 'fail', 'helo', 'mx.example.org'],
    );
  });

  test('the null sender is postmaster@<helo> for MAIL FROM', async () => {
    const r = await checkSpf({ ...args, ip: '198.51.100.7', mailFrom: '' });
    assert.equal(r.mfrom.result, 'pass');
    assert.equal(r.mfrom.scope, 'mfrom');
    assert.equal(r.mfrom.domain, 'mx.example.org');
    assert.equal(r.helo.result, 'pass');
  });

  test('a HELO that is not a domain name gives none', async () => {
    const r = await checkSpf({ ...args, helo: '[192.0.2.3]', mailFrom: 'user@example.com' });
    assert.equal(r.helo.result, 'none');
    assert.equal(r.mfrom.result, 'pass');
  });

  test('a sender without a local part is postmaster', async () => {
    const resolver = fakeResolver({
      'example.com': { txt: ['v=spf1 -all exp=why.example.com'] },
      'why.example.com': { txt: ['%{l} %{s}'] },
    });
    const r = await checkSpf({ ...args, resolver, mailFrom: '@example.com' });
    assert.equal(r.mfrom.explanation, 'postmaster postmaster@example.com');
  });
});
