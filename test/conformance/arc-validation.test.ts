// Conformance: the ValiMail ARC validation suite (test/fixtures/arc/arc-draft-validation-tests.yml, read
// as it is at test time). Each scenario's txt-records are served by a fake resolver; each message (LF line
// ends in the YAML, read as CRLF by the verifier) must give the expected cv.
// Three cases expect cv "" (cv_fail_i1_as_cv_fail, cv_fail_i2_as2_fail, cv_fail_i2_as1_fail: a seal that
// already says cv=fail). The suite's harness compares the runner's output with that empty string; RFC 8617
// §5.2 steps 2-3 say the chain status is "fail" there, and that is what we assert.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { DnsAnswer, Resolver } from '../../src/core/dns.ts';
import { verifyArc } from '../../src/policy/arc/verify.ts';

const suiteUrl = new URL('../fixtures/arc/arc-draft-validation-tests.yml', import.meta.url);

interface Scenario {
  description: string;
  tests: Record<string, { description: string; message: string; cv: string }>;
  'txt-records': Record<string, string>;
}

/** Cases we do not pass, each with the reason (the suite is draft-18, before RFC 8617). */
const skipped: Readonly<Record<string, string>> = {
  ams_fields_c_na:
    'signed with relaxed/relaxed but without c=, so it expects a missing c= to mean relaxed/relaxed; RFC 8617 ' +
    '§4.1.2 gives the AMS the DKIM-Signature semantics, whose default is simple/simple (RFC 6376 §3.5)',
};

function fakeResolver(records: Record<string, string>): Pick<Resolver, 'txt'> {
  return {
    txt(name: string): Promise<DnsAnswer<string>> {
      const text = records[name];
      if (text === undefined) return Promise.resolve({ kind: 'nxdomain' });
      return Promise.resolve({ kind: 'ok', records: [text], ttlMs: 1000 });
    },
  };
}

const scenarios: Scenario[] = parseAllDocuments(readFileSync(suiteUrl, 'utf8'))
  .map((doc) => doc.toJS() as Scenario | null)
  .filter((s): s is Scenario => s !== null);

test('the ARC validation suite is there', () => {
  const total = scenarios.reduce((n, s) => n + Object.keys(s.tests).length, 0);
  assert.equal(total, 171);
  // At least 97 % must pass: no more than 5 of 171 skipped.
  assert.ok(Object.keys(skipped).length <= 5);
});

for (const scenario of scenarios) {
  const resolver = fakeResolver(scenario['txt-records']);
  for (const [name, c] of Object.entries(scenario.tests)) {
    const expected = c.cv === '' ? 'fail' : c.cv.trim().toLowerCase();
    const skip = skipped[name] ?? false;
    test(`${scenario.description.trim()} / ${name}: ${c.description} → ${expected}`, { skip }, async () => {
      const result = await verifyArc(Buffer.from(c.message, 'latin1'), { resolver });
      assert.equal(result.cv, expected, result.reason);
    });
  }
}
