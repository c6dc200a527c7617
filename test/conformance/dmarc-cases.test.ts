// Conformance: test/fixtures/dmarc/dmarc-cases-derived.yml, read as it is at test time.
// - record_parse: OpenDMARC's parse statuses. Our parser follows RFC 7489 §6.3 (a bad optional tag falls
//   back to its default and is reported in `problems`); a record with any reported bad value counts as
//   OpenDMARC's error_bad_value. Cases marked impl_specific assert our RFC behaviour where it differs.
// - tree_walk_zone: the RFC 9989 column with discovery 'tree-walk' (organizational domain, query order).
//   The "rfc7489" column is OpenDMARC's label-by-label walk without psd=, which is neither RFC 7489's
//   Public Suffix List method nor RFC 9989; for 'psl' discovery we assert the RFC 7489 answer instead (the
//   organizational domain of every name here is BASE by the list).
// - rfc9989_behaviours: a checklist of titles; each gets our own vector below.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { DnsAnswer, Resolver } from '../../src/core/dns.ts';
import {
  evaluateDmarc,
  parseDmarcRecord,
  walkTargets,
  type DmarcDiscovery,
  type DmarcInput,
} from '../../src/policy/dmarc.ts';

const suiteUrl = new URL('../fixtures/dmarc/dmarc-cases-derived.yml', import.meta.url);

interface Suite {
  record_parse: { record: string; expect: string; impl_specific?: string; note?: string }[];
  tree_walk_zone: {
    records: Record<string, string | string[]>;
    cases: { author: string; rfc7489?: string; rfc9989?: string; direct_query?: string; note?: string }[];
  };
  // A title with ": " in it reads as a one-key map in YAML.
  rfc9989_behaviours: (string | Record<string, string>)[];
}
const suite = parse(readFileSync(suiteUrl, 'utf8')) as Suite;

/** OpenDMARC's status names for what our parser says. */
function status(record: string): string {
  const r = parseDmarcRecord(record);
  if (!r.ok) {
    if (r.error === 'empty') return 'error_empty';
    if (r.error === 'not-dmarc') return 'error_bad_version';
    return r.problems.some((p) => p.problem === 'bad-value') ? 'error_bad_value' : 'error_no_required_p';
  }
  return r.problems.some((p) => p.problem === 'bad-value') ? 'error_bad_value' : 'ok';
}

// Where our RFC reading and OpenDMARC's lenient parser part ways (each is marked impl_specific in the suite).
const ourAnswer: Readonly<Record<string, { status: string; why: string }>> = {
  'v=DMARC1; p=n;': { status: 'error_bad_value', why: 'RFC 7489/9989 ABNF: p is none / quarantine / reject' },
};

test('record_parse: every record gets the expected status', () => {
  assert.ok(suite.record_parse.length >= 19);
  for (const c of suite.record_parse) {
    const ours = ourAnswer[c.record];
    if (ours !== undefined) {
      assert.ok(c.impl_specific, `only impl_specific cases may differ: ${c.record}`);
      assert.equal(status(c.record), ours.status, `${c.record} (${ours.why})`);
    } else {
      assert.equal(status(c.record), c.expect, c.record);
    }
  }
});

const BASE = 'example.com';

type Zone = Record<string, readonly string[]>;

function zoneFrom(records: Record<string, string | string[]>): Zone {
  const zone: Zone = {};
  for (const [name, value] of Object.entries(records)) {
    zone[name.replace(/BASE$/, BASE)] = Array.isArray(value) ? value : [value];
  }
  return zone;
}

function fakeResolver(
  zone: Zone,
  hosts: readonly string[] = [],
): Pick<Resolver, 'txt' | 'a'> & { queries: string[] } {
  const queries: string[] = [];
  const names = [...Object.keys(zone), ...hosts];
  const exists = (name: string): boolean => names.some((k) => k === name || k.endsWith(`.${name}`));
  return {
    queries,
    txt(name: string): Promise<DnsAnswer<string>> {
      queries.push(name);
      const records = zone[name];
      if (records !== undefined) return Promise.resolve({ kind: 'ok', records, ttlMs: 1000 });
      return Promise.resolve(exists(name) ? { kind: 'nodata' } : { kind: 'nxdomain' });
    },
    a(name: string): Promise<DnsAnswer<string>> {
      if (hosts.includes(name)) return Promise.resolve({ kind: 'ok', records: ['192.0.2.1'], ttlMs: 1000 });
      return Promise.resolve(exists(name) ? { kind: 'nodata' } : { kind: 'nxdomain' });
    },
  };
}

function run(
  fromDomain: string,
  resolver: Pick<Resolver, 'txt' | 'a'>,
  discovery: DmarcDiscovery,
  over: Partial<DmarcInput> = {},
) {
  return evaluateDmarc({ fromDomain, spf: null, dkim: [], resolver, discovery, ...over });
}

const firstToken = (s: string): string => s.split(/\s/, 1)[0]!.replace(/BASE$/, BASE);

test('tree_walk_zone: RFC 9989 organizational domains and query sequences', async () => {
  const zone = zoneFrom(suite.tree_walk_zone.records);
  let checked = 0;
  for (const c of suite.tree_walk_zone.cases) {
    const author = c.author.replace(/BASE$/, BASE);
    const resolver = fakeResolver(zone, [`webhost.${BASE}`]);
    const r = await run(author, resolver, 'tree-walk');
    if (c.rfc9989 !== undefined) {
      assert.equal(r.orgDomain, firstToken(c.rfc9989), author);
      checked++;
    }
    if (c.rfc9989?.includes('FIRST query')) {
      // The author domain, then straight to its last 7 labels, where the psd=n record ends the walk.
      assert.deepEqual(resolver.queries.slice(0, 2), [`_dmarc.${author}`, `_dmarc.${firstToken(c.rfc9989)}`]);
      assert.equal(r.recordDomain, firstToken(c.rfc9989));
    }
    if (c.direct_query !== undefined) {
      // Two v=DMARC1 records at the author domain are discarded: the policy comes from further up.
      assert.notEqual(r.recordDomain, author);
      assert.equal(r.recordDomain, `dmarcwalk.${BASE}`);
    }
    if (c.note?.includes('existing host')) {
      assert.equal(r.recordDomain, BASE);
      assert.equal(r.orgDomain, BASE);
      assert.equal(r.policy, 'none');
      checked++;
    }
  }
  assert.equal(checked, suite.tree_walk_zone.cases.length);
});

test('tree_walk_zone with the Public Suffix List (RFC 7489): every name here belongs to BASE', async () => {
  const zone = zoneFrom(suite.tree_walk_zone.records);
  for (const c of suite.tree_walk_zone.cases) {
    const author = c.author.replace(/BASE$/, BASE);
    const resolver = fakeResolver(zone, [`webhost.${BASE}`]);
    const r = await run(author, resolver, 'psl');
    assert.equal(r.orgDomain, BASE, author);
    // The author's own record when it has exactly one, else BASE's: never a name in between.
    const own = zone[`_dmarc.${author}`];
    assert.equal(r.recordDomain, own?.length === 1 ? author : BASE, author);
    assert.ok(resolver.queries.length <= 2);
  }
});

// rfc9989_behaviours: one vector per checklist title (matched by a phrase, so that a changed list fails).
const behaviours: Record<string, () => Promise<void>> = {
  'multiple DMARC records at one name': async () => {
    const resolver = fakeResolver({ '_dmarc.example.org': ['v=DMARC1; p=reject', 'v=DMARC1; p=reject'] });
    const r = await run('example.org', resolver, 'tree-walk');
    assert.equal(r.result, 'none');
    const sub = await run('a.example.org', resolver, 'tree-walk');
    assert.equal(sub.result, 'none');
    assert.equal(sub.record, undefined);
  },
  'only non-DMARC TXT records': async () => {
    const resolver = fakeResolver({
      '_dmarc.a.example.org': ['v=spf1 -all', 'hello'],
      '_dmarc.example.org': ['v=DMARC1; p=quarantine'],
    });
    for (const mode of ['psl', 'tree-walk'] as const) {
      const r = await run('a.example.org', resolver, mode);
      assert.equal(r.recordDomain, 'example.org');
      assert.equal(r.policy, 'quarantine');
    }
  },
  'chunked TXT record strings are joined': () => {
    // The Resolver port joins a record's character-strings (src/core/dns.ts; src/net/dns.test.ts checks
    // it on the wire); the parser then sees one string, including a split inside a tag.
    const joined = ['v=DMARC1; p=rej', 'ect; rua=mailto:d@example.org'].join('');
    const r = parseDmarcRecord(joined);
    assert.ok(r.ok);
    assert.equal(r.record.p, 'reject');
    return Promise.resolve();
  },
  'pct does not change pass/fail': async () => {
    const resolver = fakeResolver({ '_dmarc.example.org': ['v=DMARC1; p=reject; pct=0'] });
    const fail = await run('example.org', resolver, 'psl', { random: () => 0 });
    assert.equal(fail.result, 'fail');
    assert.equal(fail.disposition, 'quarantine');
    const ok = await run('example.org', resolver, 'psl', {
      dkim: [{ result: 'pass', domain: 'example.org', bodyLengthLimited: false }],
    });
    assert.equal(ok.result, 'pass');
  },
  'walk queries every label': async () => {
    const resolver = fakeResolver({});
    await run('a.b.c.d.e.f.g.h.i.example.org', resolver, 'tree-walk');
    assert.deepEqual(resolver.queries, [
      '_dmarc.a.b.c.d.e.f.g.h.i.example.org',
      '_dmarc.e.f.g.h.i.example.org',
      '_dmarc.f.g.h.i.example.org',
      '_dmarc.g.h.i.example.org',
      '_dmarc.h.i.example.org',
      '_dmarc.i.example.org',
      '_dmarc.example.org',
      '_dmarc.org',
    ]);
    assert.deepEqual(walkTargets('x.example.org'), ['x.example.org', 'example.org', 'org']);
  },
  'np applies to NXDOMAIN author subdomain': async () => {
    const zone = { '_dmarc.example.org': ['v=DMARC1; p=none; sp=quarantine; np=reject'] };
    for (const mode of ['psl', 'tree-walk'] as const) {
      const resolver = fakeResolver(zone, ['www.example.org', 'txtonly.example.org']);
      assert.equal((await run('ghost.example.org', resolver, mode)).policy, 'reject');
      assert.equal((await run('www.example.org', resolver, mode)).policy, 'quarantine');
      // A name with only a TXT record answers NODATA for A: it exists.
      assert.equal((await run('txtonly.example.org', resolver, mode)).policy, 'quarantine');
      assert.equal((await run('example.org', resolver, mode)).policy, 'none');
    }
  },
  'psd=y stops the walk': async () => {
    const resolver = fakeResolver({
      '_dmarc.psd.example': ['v=DMARC1; p=reject; psd=y'],
      '_dmarc.own.psd.example': ['v=DMARC1; p=none'],
    });
    const r = await run('a.b.org1.psd.example', resolver, 'tree-walk');
    assert.equal(r.orgDomain, 'org1.psd.example');
    assert.equal(r.recordDomain, 'psd.example');
    assert.ok(!resolver.queries.includes('_dmarc.example'), 'the walk stops at the psd=y record');
    const own = await run('x.own.psd.example', resolver, 'tree-walk');
    assert.equal(own.recordDomain, 'own.psd.example');
    assert.equal(own.policy, 'none');
  },
  't=y downgrades': async () => {
    const resolver = fakeResolver({
      '_dmarc.r.example': ['v=DMARC1; p=reject; t=y'],
      '_dmarc.q.example': ['v=DMARC1; p=quarantine; t=y'],
    });
    assert.equal((await run('r.example', resolver, 'psl')).disposition, 'quarantine');
    assert.equal((await run('q.example', resolver, 'psl')).disposition, 'none');
  },
  'record with no p but valid rua': async () => {
    const resolver = fakeResolver({
      '_dmarc.rua.example': ['v=DMARC1; rua=mailto:d@rua.example'],
      '_dmarc.bare.example': ['v=DMARC1; adkim=s'],
    });
    const rua = await run('rua.example', resolver, 'psl');
    assert.equal(rua.result, 'fail');
    assert.equal(rua.policy, 'none');
    const bare = await run('bare.example', resolver, 'psl');
    assert.notEqual(bare.result, 'fail');
    assert.equal(bare.disposition, 'none');
  },
  'v tag is case-sensitive': () => {
    assert.equal(parseDmarcRecord('v=dmarc1; p=reject').ok, false);
    assert.equal(parseDmarcRecord('v=DMARC1x; p=reject').ok, false);
    assert.equal(parseDmarcRecord('v = DMARC1 ; p = reject').ok, true);
    return Promise.resolve();
  },
  'policy values case-insensitive': () => {
    const r = parseDmarcRecord('v=DMARC1; p=Reject; adkim=S; rua=mailto:Reports@Example.ORG');
    assert.ok(r.ok);
    assert.equal(r.record.p, 'reject');
    assert.equal(r.record.adkim, 's');
    assert.equal(r.record.rua[0]?.uri, 'mailto:Reports@Example.ORG');
    return Promise.resolve();
  },
  'org-domain examples': async () => {
    // Simple hierarchy: a record at the org domain only.
    const simple = fakeResolver({ '_dmarc.example.com': ['v=DMARC1; p=reject'] });
    const s = await run('mail.example.com', simple, 'tree-walk');
    assert.equal(s.orgDomain, 'example.com');
    assert.equal(s.recordDomain, 'example.com');
    // Deep name: cut to 7 labels, then one label at a time up to example.com.
    const deep = await run(
      'a.b.c.d.e.f.g.h.i.j.mail.example.com',
      fakeResolver({ '_dmarc.example.com': ['v=DMARC1; p=reject'] }),
      'tree-walk',
    );
    assert.equal(deep.orgDomain, 'example.com');
    // psd=y above: the name just below the PSD is the organization.
    const psd = await run(
      'giant.bank.example',
      fakeResolver({ '_dmarc.example': ['v=DMARC1; p=reject; psd=y'] }),
      'tree-walk',
    );
    assert.equal(psd.orgDomain, 'bank.example');
  },
};

test('rfc9989_behaviours: a vector for every item of the checklist', async () => {
  const used = new Set<string>();
  for (const entry of suite.rfc9989_behaviours) {
    const item =
      typeof entry === 'string'
        ? entry
        : Object.entries(entry)
            .map(([k, v]) => `${k}: ${v}`)
            .join('');
    const key = Object.keys(behaviours).find((k) => item.includes(k));
    assert.ok(key !== undefined, `no vector for: ${item}`);
    used.add(key);
    await behaviours[key]!();
  }
  assert.equal(used.size, Object.keys(behaviours).length);
});
