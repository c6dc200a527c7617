import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import { buildDmarcReport, gzipDmarcReport, mailtoTargets, type DmarcRow } from './dmarc-report.ts';

const row = (over: Partial<DmarcRow> = {}): DmarcRow => ({
  day: '2026-12-06',
  policyDomain: 'example.org',
  headerFrom: 'example.org',
  sourceIp: '192.0.2.7',
  disposition: 'none',
  dkimAligned: true,
  spfAligned: false,
  spf: { domain: 'bounce.example.net', result: 'softfail' },
  dkim: [{ domain: 'example.org', selector: 's<1>', result: 'pass' }],
  policy: { p: 'quarantine', pct: 100, adkim: 'r', aspf: 's' },
  rua: [{ uri: 'mailto:d@example.org', maxBytes: 10_485_760 }],
  count: 3,
  ...over,
});

test('the report XML of Appendix C: metadata, the published policy, one record per row, escaped', () => {
  const r = buildDmarcReport([row(), row({ sourceIp: '2001:db8::1', dkim: [], spf: null, count: 1 })], {
    domain: 'example.org',
    day: '2026-12-06',
    orgName: 'mx.tern.example',
    email: 'postmaster@tern.example',
  });
  assert.equal(r.startS, 1796515200);
  assert.equal(r.endS, 1796515200 + 86_399);
  assert.match(r.xml, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<feedback>/);
  assert.match(
    r.xml,
    /<policy_published>\s*<domain>example\.org<\/domain>\s*<adkim>r<\/adkim>\s*<aspf>s<\/aspf>\s*<p>quarantine<\/p>\s*<sp>quarantine<\/sp>\s*<pct>100<\/pct>/,
  );
  assert.equal(r.xml.match(/<record>/g)?.length, 2);
  assert.match(r.xml, /<selector>s&lt;1&gt;<\/selector>/, 'escaped');
  assert.match(r.xml, /<count>3<\/count>[\s\S]*<dkim>pass<\/dkim>\s*<spf>fail<\/spf>/);
  // No SPF result: the header From's domain with "none" (the schema requires an spf element).
  assert.match(
    r.xml,
    /<spf><domain>example\.org<\/domain><scope>mfrom<\/scope><result>none<\/result><\/spf>/,
  );
  assert.equal(gunzipSync(gzipDmarcReport(r)).toString('utf8'), r.xml);
});

test('report addresses: mailto: only, decoded, with their size limits', () => {
  assert.deepEqual(
    mailtoTargets([
      { uri: 'mailto:d%40x@example.org', maxBytes: 1024 },
      { uri: 'https://example.org/r' },
      { uri: 'MAILTO:e@example.org' },
    ]),
    [
      { address: 'd@x@example.org', maxBytes: 1024 },
      { address: 'e@example.org', maxBytes: null },
    ],
  );
});
