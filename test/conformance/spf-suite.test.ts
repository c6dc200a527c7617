// The openspf.org SPF test suite (pyspf's test/rfc7208-tests.yml and rfc4408-tests.yml, as they are in
// test/fixtures/spf/) run against checkSpf through a fake Resolver built from each scenario's
// zonedata. A test passes when the result is one of its accepted results and, where it names one, the
// explanation matches ("DEFAULT" is the driver's default explanation, i.e. none from exp=).
// The fake answers the way pyspf's own test driver (test/testspf.py) serves the zone data:
// - SPF-type entries are copied to TXT unless the name lists a TXT entry ("TXT: NONE" is an empty list);
//   the suite relies on that copy ("Other sections rely on auto-magic duplication of SPF to TXT records"),
//   and SPF-type records themselves are never asked for (RFC 7208 §3.1, §14.1);
// - a bare TIMEOUT entry is a temporary error for any type without records listed before it, and a
//   "TYPE: TIMEOUT" entry one for that type; names under "error." that are not listed time out too;
// - CNAMEs are followed (a loop is an error), as a recursive resolver would.
// Deliberately NOT here: unit tests of the parts (src/policy/spf.test.ts).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import type { DnsAnswer, MxRecord, Resolver } from '../../src/core/dns.ts';
import { checkSpf } from '../../src/policy/spf.ts';
import type { SpfResultCode } from '../../src/policy/spf.ts';

const SUITE_DIR = new URL('../fixtures/spf/', import.meta.url);

interface SuiteTest {
  readonly description?: string;
  readonly spec?: string;
  readonly helo: string;
  readonly host: string;
  readonly mailfrom: string;
  readonly result: SpfResultCode | SpfResultCode[];
  readonly explanation?: string;
}

interface Scenario {
  readonly description: string;
  readonly tests: Record<string, SuiteTest>;
  readonly zonedata?: Record<string, unknown[]>;
}

// ---- the fake resolver ------------------------------------------------------------------------------

type Entry = 'TIMEOUT' | { readonly type: string; readonly value: unknown };

/** Zone data as pyspf's getrdata() prepares it: NONE dropped, SPF copied to TXT when no TXT is listed. */
function loadZone(zonedata: Record<string, unknown[]> | undefined): Map<string, Entry[]> {
  const zone = new Map<string, Entry[]>();
  for (const [name, rdata] of Object.entries(zonedata ?? {})) {
    const entries: Entry[] = [];
    const generated: Entry[] = [];
    let hasTxt = false;
    for (const item of rdata) {
      if (item === 'TIMEOUT') {
        entries.push('TIMEOUT');
        continue;
      }
      for (const [type, value] of Object.entries(item as Record<string, unknown>)) {
        if (type === 'TXT') hasTxt = true;
        else if (type === 'SPF') generated.push({ type: 'TXT', value });
        if (value !== 'NONE') entries.push({ type, value });
      }
    }
    if (!hasTxt) entries.push(...generated.filter((e) => e !== 'TIMEOUT' && e.value !== 'NONE'));
    zone.set(normalizeName(name), entries);
  }
  return zone;
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The Resolver port's promise: a name that cannot be a domain name gets nxdomain without a query. */
function isQueryable(name: string): boolean {
  return name !== '' && name.length <= 253 && name.split('.').every((l) => l.length >= 1 && l.length <= 63);
}

function makeResolver(zone: Map<string, Entry[]>, queries: string[]): Resolver {
  function lookup(rawName: string, type: string, seen: ReadonlySet<string> = new Set()): DnsAnswer<unknown> {
    const name = normalizeName(rawName);
    queries.push(`${type} ${name}`);
    if (!isQueryable(name)) return { kind: 'nxdomain' };
    const entries = zone.get(name);
    if (entries === undefined) {
      return name.startsWith('error.') ? timeout(name) : { kind: 'nxdomain' };
    }
    const records: unknown[] = [];
    let cname: string | null = null;
    for (const entry of entries) {
      if (entry === 'TIMEOUT') {
        if (records.length === 0) return timeout(name);
        break;
      }
      if (entry.type === 'CNAME') cname = String(entry.value);
      if (entry.type !== type) continue;
      if (entry.value === 'TIMEOUT') return timeout(name);
      records.push(entry.value);
    }
    if (records.length > 0) return { kind: 'ok', records, ttlMs: 0 };
    if (cname !== null) {
      const target = normalizeName(cname);
      if (seen.has(target) || target === name)
        return { kind: 'error', temporary: true, reason: 'CNAME loop' };
      return lookup(target, type, new Set([...seen, name]));
    }
    return { kind: 'nodata' };
  }
  function typed<T>(answer: DnsAnswer<unknown>, convert: (v: unknown) => T): DnsAnswer<T> {
    return answer.kind === 'ok' ? { ...answer, records: answer.records.map(convert) } : answer;
  }
  return {
    mx: (name) =>
      Promise.resolve(
        typed(lookup(name, 'MX'), (v): MxRecord => {
          const [preference, exchange] = v as [number, string];
          return { preference: Number(preference), exchange: normalizeName(String(exchange)) };
        }),
      ),
    a: (name) => Promise.resolve(typed(lookup(name, 'A'), String)),
    aaaa: (name) => Promise.resolve(typed(lookup(name, 'AAAA'), String)),
    // Character-strings are joined without separator (RFC 7208 §3.3); "SPF: [ ]" is an empty TXT record.
    txt: (name) =>
      Promise.resolve(
        typed(lookup(name, 'TXT'), (v) => (Array.isArray(v) ? v.map(String).join('') : String(v))),
      ),
    ptr: (address) => {
      const reverse = reverseName(address);
      if (reverse === null) return Promise.resolve({ kind: 'nxdomain' } as const);
      return Promise.resolve(typed(lookup(reverse, 'PTR'), (v) => normalizeName(String(v))));
    },
  };
}

function timeout(name: string): DnsAnswer<never> {
  return { kind: 'error', temporary: true, reason: `timeout (zone data) for ${name}` };
}

/** in-addr.arpa / ip6.arpa name of an address, written independently of the code under test. */
function reverseName(address: string): string | null {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!address.includes(':')) return null;
  let text = address;
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    const b = dotted[1]!.split('.').map(Number);
    const hex = (x: number, y: number): string => ((x << 8) | y).toString(16);
    text = `${text.slice(0, dotted.index)}:${hex(b[0]!, b[1]!)}:${hex(b[2]!, b[3]!)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const nibbles = groups.map((g) => g.padStart(4, '0')).join('');
  return `${nibbles.split('').reverse().join('.')}.ip6.arpa`;
}

// ---- RFC 4408 cases whose answer RFC 7208 changed ----------------------------------------------------

// rfc4408-tests.yml accepts the RFC 4408 answer and the RFC 7208 one for each of these (RFC 7208 narrowed
// them, see rfc7208-tests.CHANGES), so none has to be skipped; each must give the RFC 7208 answer.
const TXT_ONLY = 'TXT records only, RFC 7208 §3.1/§4.4 (RFC 4408 allowed the SPF RR type)';
const CHANGED_BY_RFC7208: Readonly<
  Record<string, { readonly rfc7208: SpfResultCode; readonly reason: string }>
> = {
  txtonly: { rfc7208: 'fail', reason: TXT_ONLY },
  spfonly: { rfc7208: 'none', reason: TXT_ONLY },
  spftimeout: { rfc7208: 'fail', reason: `${TXT_ONLY}: a timeout of the SPF-type query does not matter` },
  txttimeout: { rfc7208: 'temperror', reason: `${TXT_ONLY}: the TXT timeout is the answer` },
  nospftxttimeout: { rfc7208: 'temperror', reason: `${TXT_ONLY}: the TXT timeout is the answer` },
  spfoverride: { rfc7208: 'fail', reason: `${TXT_ONLY}: SPF-type records no longer override TXT` },
  multitxt1: { rfc7208: 'permerror', reason: `${TXT_ONLY}: two TXT v=spf1 records are a permerror (§4.5)` },
  multispf2: { rfc7208: 'pass', reason: `${TXT_ONLY}: duplicate SPF-type records are ignored` },
  'exists-dnserr': {
    rfc7208: 'temperror',
    reason: 'RFC 7208 §5 ¶8: a DNS error in a mechanism is a temperror',
  },
  'cidr6-0-ip4': { rfc7208: 'neutral', reason: 'RFC 7208 §5 ¶9: an IPv4 client never matches ip6:' },
  'cidr6-ip4': {
    rfc7208: 'neutral',
    reason: 'RFC 7208 §5 ¶9: an IPv4-mapped client is IPv4; ip6: does not match',
  },
  'mx-limit': { rfc7208: 'permerror', reason: 'RFC 7208 §4.6.4: more than 10 MX names is a permerror' },
};

// ---- the suites -------------------------------------------------------------------------------------

function loadSuite(file: string): Scenario[] {
  const text = readFileSync(new URL(file, SUITE_DIR), 'utf8');
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    return doc.toJS() as Scenario;
  });
}

async function runCase(scenario: Scenario, t: SuiteTest, rfc7208?: SpfResultCode): Promise<void> {
  const queries: string[] = [];
  const resolver = makeResolver(loadZone(scenario.zonedata), queries);
  const { mfrom } = await checkSpf({
    ip: String(t.host),
    mailFrom: String(t.mailfrom ?? ''),
    helo: String(t.helo),
    receivingHost: 'receiver.example.org',
    resolver,
    nowMs: Date.UTC(2024, 0, 1),
  });
  const accepted = Array.isArray(t.result) ? t.result : [t.result];
  const context = `${t.description ?? ''}\nreason: ${mfrom.reason}\nqueries: ${queries.join(', ')}`;
  assert.ok(
    accepted.includes(mfrom.result),
    `got ${mfrom.result}, want ${accepted.join(' or ')}\n${context}`,
  );
  if (rfc7208 !== undefined) assert.equal(mfrom.result, rfc7208, `RFC 7208 changed this answer\n${context}`);
  if (t.explanation !== undefined) {
    const expected = t.explanation === 'DEFAULT' ? undefined : t.explanation;
    assert.equal(mfrom.explanation, expected, `explanation\n${context}`);
  }
}

function defineSuite(file: string, changed: typeof CHANGED_BY_RFC7208): void {
  // Read outside describe(): a missing file then fails the test file (a throw inside describe() is counted
  // as a failed suite, not a failed test).
  const scenarios = loadSuite(file);
  describe(file, () => {
    const seen = new Set<string>();
    for (const scenario of scenarios) {
      describe(scenario.description, () => {
        for (const [name, t] of Object.entries(scenario.tests)) {
          seen.add(name);
          const change = changed[name];
          const title =
            change === undefined ? name : `${name} (RFC 7208: ${change.rfc7208}; ${change.reason})`;
          test(title, () => runCase(scenario, t, change?.rfc7208));
        }
      });
    }
    test('every case listed as changed by RFC 7208 exists in the suite', () => {
      assert.deepEqual(
        Object.keys(changed).filter((name) => !seen.has(name)),
        [],
      );
    });
  });
}

defineSuite('rfc7208-tests.yml', {});
defineSuite('rfc4408-tests.yml', CHANGED_BY_RFC7208);
