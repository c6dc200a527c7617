import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DnsAnswer, Resolver } from '../core/dns.ts';
import {
  authorDomains,
  evaluateDmarc,
  parseDmarcRecord,
  walkTargets,
  type DmarcDkimInput,
  type DmarcInput,
} from './dmarc.ts';

type Zone = Record<string, readonly string[] | 'nxdomain' | 'error'>;

/** TXT answers from `zone`; a name exists (NODATA rather than NXDOMAIN) when it or a name below it is in
 * the zone or in `hosts` (RFC 8020). Every TXT query is recorded. */
function fakeResolver(
  zone: Zone,
  hosts: readonly string[] = [],
): Pick<Resolver, 'txt' | 'a'> & { queries: string[] } {
  const queries: string[] = [];
  const known = [...Object.keys(zone), ...hosts];
  return {
    queries,
    txt(name: string): Promise<DnsAnswer<string>> {
      queries.push(name);
      const entry = zone[name];
      if (entry === 'error') return Promise.resolve({ kind: 'error', temporary: true, reason: 'SERVFAIL' });
      if (entry === undefined || entry === 'nxdomain') {
        const exists = known.some((k) => k.endsWith(`.${name}`));
        return Promise.resolve(exists ? { kind: 'nodata' } : { kind: 'nxdomain' });
      }
      return Promise.resolve({ kind: 'ok', records: entry, ttlMs: 1000 });
    },
    a(name: string): Promise<DnsAnswer<string>> {
      const exists = known.some((k) => k === name || k.endsWith(`.${name}`));
      return Promise.resolve(exists ? { kind: 'nodata' } : { kind: 'nxdomain' });
    },
  };
}

const pass = (domain: string): DmarcDkimInput => ({ result: 'pass', domain, bodyLengthLimited: false });

function input(over: Partial<DmarcInput> & Pick<DmarcInput, 'resolver'>): DmarcInput {
  return { fromDomain: 'example.com', spf: null, dkim: [], ...over };
}

test('parse: defaults, case-insensitive values, WSP around "=", unknown tags ignored', () => {
  const r = parseDmarcRecord('v = DMARC1 ; p=Reject; adkim=S; foo=bar;');
  assert.ok(r.ok);
  assert.equal(r.record.p, 'reject');
  assert.equal(r.record.adkim, 's');
  assert.equal(r.record.aspf, 'r');
  assert.equal(r.record.pct, 100);
  assert.equal(r.record.sp, undefined);
  assert.equal(r.record.ri, 86400);
  assert.deepEqual(r.problems, []);
});

test('parse: v=DMARC1 must come first and match exactly', () => {
  assert.deepEqual(parseDmarcRecord('p=none; v=DMARC1'), { ok: false, error: 'not-dmarc', problems: [] });
  assert.equal(parseDmarcRecord('v=dmarc1; p=none').ok, false);
  assert.equal(parseDmarcRecord('v=DMARC1x; p=none').ok, false);
  assert.deepEqual(parseDmarcRecord('  '), { ok: false, error: 'empty', problems: [] });
});

test('parse: rua= with sizes; a bad p= with a valid rua= becomes p=none (RFC 7489 §6.3)', () => {
  const r = parseDmarcRecord(
    'v=DMARC1; p=bogus; sp=reject; rua=mailto:a@example.com!10m, mailto:b@example.com',
  );
  assert.ok(r.ok);
  assert.equal(r.record.p, 'none');
  assert.equal(r.record.sp, undefined);
  assert.deepEqual(r.record.rua, [
    { uri: 'mailto:a@example.com', maxBytes: 10 * 2 ** 20 },
    { uri: 'mailto:b@example.com' },
  ]);
  assert.deepEqual(r.problems, [{ tag: 'p', value: 'bogus', problem: 'bad-value' }]);
});

test('parse: no p= and no rua= means no DMARC processing; an invalid sp= too', () => {
  const r = parseDmarcRecord('v=DMARC1; pct=100');
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error, 'no-policy');
  const s = parseDmarcRecord('v=DMARC1; p=reject; sp=bob');
  assert.equal(!s.ok && s.error, 'no-policy');
});

test('parse: a bad optional tag falls back to its default and is reported', () => {
  const r = parseDmarcRecord('v=DMARC1; p=quarantine; pct=101; adkim=x; fo=1:d; psd=y; t=y; np=reject');
  assert.ok(r.ok);
  assert.equal(r.record.pct, 100);
  assert.equal(r.record.adkim, 'r');
  assert.deepEqual(r.record.fo, ['1', 'd']);
  assert.equal(r.record.psd, 'y');
  assert.equal(r.record.testing, true);
  assert.equal(r.record.np, 'reject');
  assert.deepEqual(r.problems.map((p) => p.tag).sort(), ['adkim', 'pct']);
});

test('no record anywhere: none; the org domain is asked after the author domain', async () => {
  const resolver = fakeResolver({});
  const r = await evaluateDmarc(input({ fromDomain: 'mail.example.com', resolver }));
  assert.equal(r.result, 'none');
  assert.equal(r.orgDomain, 'example.com');
  assert.deepEqual(resolver.queries, ['_dmarc.mail.example.com', '_dmarc.example.com']);
});

test('aligned SPF or DKIM passes; relaxed alignment across subdomains', async () => {
  const resolver = fakeResolver({ '_dmarc.example.com': ['v=DMARC1; p=reject'] });
  const spf = await evaluateDmarc(input({ resolver, spf: { result: 'pass', domain: 'bounce.example.com' } }));
  assert.equal(spf.result, 'pass');
  assert.deepEqual(spf.alignment, { spf: true, dkim: false });
  assert.equal(spf.disposition, 'none');
  assert.equal(spf.policy, 'reject');
  const dkim = await evaluateDmarc(input({ resolver, dkim: [pass('other.org'), pass('s.example.com')] }));
  assert.equal(dkim.result, 'pass');
  assert.deepEqual(dkim.alignment, { spf: false, dkim: true });
});

test('unaligned passes fail and get the policy; strict alignment wants the exact domain', async () => {
  const resolver = fakeResolver({ '_dmarc.example.com': ['v=DMARC1; p=reject; adkim=s; aspf=s'] });
  const r = await evaluateDmarc(
    input({ resolver, spf: { result: 'pass', domain: 'mail.example.com' }, dkim: [pass('sub.example.com')] }),
  );
  assert.equal(r.result, 'fail');
  assert.equal(r.disposition, 'reject');
  const exact = await evaluateDmarc(input({ resolver, dkim: [pass('EXAMPLE.com.')] }));
  assert.equal(exact.result, 'pass');
});

test('relaxed alignment never crosses a public suffix (private section included)', async () => {
  const resolver = fakeResolver({ '_dmarc.alice.github.io': ['v=DMARC1; p=reject'] });
  const r = await evaluateDmarc(
    input({ fromDomain: 'alice.github.io', resolver, dkim: [pass('github.io')] }),
  );
  assert.equal(r.result, 'fail');
  const co = fakeResolver({ '_dmarc.example.co.uk': ['v=DMARC1; p=reject'] });
  const r2 = await evaluateDmarc(
    input({ fromDomain: 'example.co.uk', resolver: co, dkim: [pass('other.co.uk')] }),
  );
  assert.equal(r2.result, 'fail');
});

test('a DKIM pass with l= does not align', async () => {
  const resolver = fakeResolver({ '_dmarc.example.com': ['v=DMARC1; p=quarantine'] });
  const r = await evaluateDmarc(
    input({ resolver, dkim: [{ result: 'pass', domain: 'example.com', bodyLengthLimited: true }] }),
  );
  assert.equal(r.result, 'fail');
  assert.equal(r.disposition, 'quarantine');
});

test('sp= for an existing subdomain, np= for a non-existent one', async () => {
  const zone: Zone = { '_dmarc.example.com': ['v=DMARC1; p=reject; sp=quarantine; np=none'] };
  const resolver = fakeResolver(zone, ['www.example.com']);
  const www = await evaluateDmarc(input({ fromDomain: 'www.example.com', resolver }));
  assert.equal(www.policy, 'quarantine');
  assert.equal(www.recordDomain, 'example.com');
  const ghost = await evaluateDmarc(input({ fromDomain: 'ghost.example.com', resolver }));
  assert.equal(ghost.policy, 'none');
  const self = await evaluateDmarc(input({ fromDomain: 'example.com', resolver }));
  assert.equal(self.policy, 'reject');
});

test('pct= sampling and t=y lower the disposition one step, never the result', async () => {
  const resolver = fakeResolver({
    '_dmarc.example.com': ['v=DMARC1; p=reject; pct=30'],
    '_dmarc.test.example': ['v=DMARC1; p=quarantine; t=y'],
  });
  const hit = await evaluateDmarc(input({ resolver, random: () => 0.29 }));
  assert.equal(hit.disposition, 'reject');
  assert.equal(hit.sampledOut, undefined);
  const miss = await evaluateDmarc(input({ resolver, random: () => 0.3 }));
  assert.equal(miss.result, 'fail');
  assert.equal(miss.disposition, 'quarantine');
  assert.equal(miss.sampledOut, true);
  const t = await evaluateDmarc(input({ fromDomain: 'test.example', resolver }));
  assert.equal(t.result, 'fail');
  assert.equal(t.disposition, 'none');
});

test('DNS errors are temperror; a temperror on an aligned identifier is too', async () => {
  const broken = fakeResolver({ '_dmarc.example.com': 'error' });
  assert.equal((await evaluateDmarc(input({ resolver: broken }))).result, 'temperror');
  const resolver = fakeResolver({ '_dmarc.example.com': ['v=DMARC1; p=reject'] });
  const r = await evaluateDmarc(
    input({ resolver, dkim: [{ result: 'temperror', domain: 'example.com', bodyLengthLimited: false }] }),
  );
  assert.equal(r.result, 'temperror');
  assert.equal(r.disposition, 'none');
  const throwing: Pick<Resolver, 'txt' | 'a'> = {
    txt: () => Promise.reject(new Error('socket closed')),
    a: () => Promise.reject(new Error('socket closed')),
  };
  assert.equal((await evaluateDmarc(input({ resolver: throwing }))).result, 'temperror');
  const unaligned = await evaluateDmarc(
    input({ resolver, spf: { result: 'temperror', domain: 'other.org' } }),
  );
  assert.equal(unaligned.result, 'fail');
});

test('an unusable record is permerror; several records at a name are discarded', async () => {
  const resolver = fakeResolver({
    '_dmarc.example.com': ['v=DMARC1; p=bogus'],
    '_dmarc.sub.example.org': ['v=DMARC1; p=reject', 'v=DMARC1; p=none'],
    '_dmarc.example.org': ['v=DMARC1; p=quarantine'],
    '_dmarc.other.net': ['google-site-verification=x', 'v=DMARC1; p=reject'],
  });
  assert.equal((await evaluateDmarc(input({ resolver }))).result, 'permerror');
  const multi = await evaluateDmarc(input({ fromDomain: 'sub.example.org', resolver }));
  assert.equal(multi.recordDomain, 'example.org');
  assert.equal(multi.policy, 'quarantine');
  const mixed = await evaluateDmarc(input({ fromDomain: 'other.net', resolver }));
  assert.equal(mixed.policy, 'reject');
});

test('several From domains: the most severe outcome; none at all: permerror', async () => {
  const resolver = fakeResolver({
    '_dmarc.example.com': ['v=DMARC1; p=none'],
    '_dmarc.bank.example': ['v=DMARC1; p=reject'],
  });
  const r = await evaluateDmarc(
    input({
      fromDomain: ['example.com', 'bank.example', 'Example.COM'],
      resolver,
      dkim: [pass('example.com')],
    }),
  );
  assert.equal(r.domain, 'bank.example');
  assert.equal(r.disposition, 'reject');
  const same = await evaluateDmarc(
    input({ fromDomain: ['example.com', 'EXAMPLE.com'], resolver, dkim: [pass('example.com')] }),
  );
  assert.equal(same.result, 'pass');
  assert.equal((await evaluateDmarc(input({ fromDomain: [], resolver }))).result, 'permerror');
});

test('tree walk: targets, at most 8, long names cut to 7 labels', () => {
  assert.deepEqual(walkTargets('a.b.example.com'), [
    'a.b.example.com',
    'b.example.com',
    'example.com',
    'com',
  ]);
  const long = walkTargets('1.2.3.4.5.6.7.8.9.10');
  assert.equal(long.length, 8);
  assert.deepEqual(long.slice(0, 2), ['1.2.3.4.5.6.7.8.9.10', '4.5.6.7.8.9.10']);
});

test('tree walk: a psd=y record makes the name below it the organizational domain', async () => {
  const resolver = fakeResolver({ '_dmarc.psd.example': ['v=DMARC1; p=reject; psd=y'] });
  const r = await evaluateDmarc(
    input({
      fromDomain: 'a.org1.psd.example',
      resolver,
      discovery: 'tree-walk',
      dkim: [pass('b.org1.psd.example')],
    }),
  );
  assert.equal(r.orgDomain, 'org1.psd.example');
  assert.equal(r.result, 'pass');
  const cross = await evaluateDmarc(
    input({
      fromDomain: 'org1.psd.example',
      resolver,
      discovery: 'tree-walk',
      dkim: [pass('org2.psd.example')],
    }),
  );
  assert.equal(cross.result, 'fail');
  assert.equal(cross.recordDomain, 'psd.example');
  assert.equal(cross.disposition, 'reject');
});

test('author domains come from every address of every From: field', () => {
  assert.deepEqual(authorDomains(['"Doe, J" <j@Example.COM>']), ['Example.COM']);
  assert.deepEqual(authorDomains(['a@one.example, b@two.example', 'c@three.example']), [
    'one.example',
    'two.example',
    'three.example',
  ]);
  assert.deepEqual(authorDomains(['undisclosed-recipients:;']), []);
});
