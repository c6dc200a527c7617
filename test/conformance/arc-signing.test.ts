// Conformance: the ValiMail ARC signing suite (test/fixtures/arc/arc-draft-sign-tests.yml, read as it is
// at test time). For each message: validate the chain it carries (cv of the new set), gather the
// Authentication-Results of srv-id (the suite's consolidation rule), seal with the suite's key, selector,
// t= and sig-headers, and compare the AS, AMS and AAR with the expected ones: every tag, b= and bh= with
// whitespace removed (RSA PKCS#1 v1.5 signatures are deterministic, so b= must match to the octet), the AAR
// with whitespace runs collapsed. An expected empty set means "add nothing".
// unused_tests.yml (7 more cases the suite keeps out of its official run) is not run: its expected values
// are stale (an AAR without the arc= result the consolidation rule requires, an h= of "from:to:&&&:...",
// AMS values unlike what the signer that reproduces all 17 official cases computes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { DnsAnswer, Resolver } from '../../src/core/dns.ts';
import { splitHeaderFields } from '../../src/policy/dkim/header-fields.ts';
import { parseStrictTagList } from '../../src/policy/arc/arc-headers.ts';
import { authResultsFor, sealArc } from '../../src/policy/arc/seal.ts';
import { verifyArc } from '../../src/policy/arc/verify.ts';

const suiteUrl = new URL('../fixtures/arc/arc-draft-sign-tests.yml', import.meta.url);

interface SignCase {
  description: string;
  message: string;
  t: number;
  'sig-headers': string;
  'srv-id': string;
  AS: string;
  AMS: string;
  AAR: string;
}
interface Scenario {
  description: string;
  tests: Record<string, SignCase>;
  domain: string;
  sel: string;
  privatekey: string;
  'txt-records': Record<string, string>;
}

/** Cases we do not pass, each with the reason. */
const skipped: Readonly<Record<string, string>> = {};

const scenarios: Scenario[] = parseAllDocuments(readFileSync(suiteUrl, 'utf8'))
  .map((doc) => doc.toJS() as Scenario | null)
  .filter((s): s is Scenario => s !== null);

function fakeResolver(records: Record<string, string>): Pick<Resolver, 'txt'> {
  return {
    txt(name: string): Promise<DnsAnswer<string>> {
      const text = records[name];
      return Promise.resolve(
        text === undefined ? { kind: 'nxdomain' } : { kind: 'ok', records: [text], ttlMs: 1 },
      );
    },
  };
}

function crlf(s: string): string {
  return s.replace(/\r?\n/g, '\r\n');
}

function tagsOf(value: string): Map<string, string> {
  const parsed = parseStrictTagList(value);
  assert.ok(parsed.ok, `not a tag list: ${value}`);
  return new Map(
    [...parsed.value].map(([k, v]) => [
      k,
      k === 'b' || k === 'bh' ? v.replace(/\s+/g, '') : v.replace(/\s+/g, ' '),
    ]),
  );
}

const collapse = (s: string): string => s.replace(/\s+/g, ' ').trim();

test('the ARC signing suite is there', () => {
  assert.equal(
    scenarios.reduce((n, s) => n + Object.keys(s.tests).length, 0),
    17,
  );
});

for (const scenario of scenarios) {
  const resolver = fakeResolver(scenario['txt-records']);
  const privateKey = createPrivateKey(scenario.privatekey);
  for (const [name, c] of Object.entries(scenario.tests)) {
    test(
      `${scenario.description.trim()} / ${name}: ${c.description}`,
      { skip: skipped[name] ?? false },
      async () => {
        const message = Buffer.from(crlf(c.message), 'latin1');
        const headerEnd = message.indexOf('\r\n\r\n');
        const fields = splitHeaderFields(message.toString('latin1', 0, headerEnd + 2));
        const validation = await verifyArc(message, { resolver });
        const results = authResultsFor(fields, c['srv-id']);
        // The suite stamps the chain status into the AR; our own validation must agree with it.
        const stamped = results.find((r) => r.startsWith('arc='))?.slice(4);
        if (stamped !== undefined) assert.equal(validation.cv, stamped, validation.reason);

        const sealed = sealArc(
          message,
          {
            domain: scenario.domain,
            selector: scenario.sel,
            privateKey,
            authservId: c['srv-id'],
            signedHeaders: c['sig-headers'].split(':'),
            nowMs: c.t * 1000,
          },
          { cv: validation.cv, results },
        );
        if (c.AS.trim() === '') {
          assert.equal(sealed.kind, 'skipped');
          return;
        }
        assert.equal(sealed.kind, 'sealed', sealed.kind === 'skipped' ? sealed.reason : '');
        if (sealed.kind !== 'sealed') return;
        const out = splitHeaderFields(sealed.fields);
        assert.deepEqual(
          out.map((f) => f.name),
          ['ARC-Seal', 'ARC-Message-Signature', 'ARC-Authentication-Results'],
        );
        const value = (i: number): string => out[i]!.raw.slice(out[i]!.raw.indexOf(':') + 1);
        assert.deepEqual(Object.fromEntries(tagsOf(value(1))), Object.fromEntries(tagsOf(c.AMS)), 'AMS');
        assert.equal(collapse(value(2)), collapse(c.AAR), 'AAR');
        assert.deepEqual(Object.fromEntries(tagsOf(value(0))), Object.fromEntries(tagsOf(c.AS)), 'AS');

        // And what we add verifies as a chain (with the cv it claims).
        const resealed = await verifyArc(Buffer.concat([Buffer.from(sealed.fields, 'latin1'), message]), {
          resolver,
        });
        assert.equal(resealed.cv, validation.cv === 'fail' ? 'fail' : 'pass', resealed.reason);
      },
    );
  }
}
