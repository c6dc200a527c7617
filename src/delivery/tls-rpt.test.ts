import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { describe, test } from 'node:test';
import {
  buildTlsReport,
  classifyTlsFailure,
  gzipReport,
  parseTlsRptRecord,
  tlsReportMessage,
  type TlsResultRow,
} from './tls-rpt.ts';

const row = (over: Partial<TlsResultRow>): TlsResultRow => ({
  day: '2026-12-06',
  policyDomain: 'example.org',
  policyType: 'sts',
  policyStrings: ['version: STSv1', 'mode: enforce', 'mx: mx.example.org', 'max_age: 86400'],
  mxHost: 'mx.example.org',
  receivingIp: '192.0.2.1',
  result: 'success',
  count: 1,
  ...over,
});

describe('TLS-RPT (RFC 8460)', () => {
  test('the _smtp._tls record: version first, mailto: and https: addresses', () => {
    assert.deepEqual(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:tls@example.org,https://r.example.org/tls'), {
      rua: ['mailto:tls@example.org', 'https://r.example.org/tls'],
    });
    assert.deepEqual(parseTlsRptRecord('v=TLSRPTv1;rua=mailto:a@b.example, ftp://x'), {
      rua: ['mailto:a@b.example'],
    });
    for (const bad of [
      'v=TLSRPTv2; rua=mailto:a@b',
      'rua=mailto:a@b; v=TLSRPTv1',
      'v=TLSRPTv1;',
      'v=TLSRPTv1; rua=http://x',
    ])
      assert.equal(parseTlsRptRecord(bad), null, bad);
  });

  test('failures are named by their result type', () => {
    assert.equal(classifyTlsFailure('STARTTLS is required but not offered', 'sts'), 'starttls-not-supported');
    assert.equal(
      classifyTlsFailure('DANE authentication failed: no TLSA record matches', 'tlsa'),
      'tlsa-invalid',
    );
    assert.equal(
      classifyTlsFailure("TLS handshake failed: Hostname/IP does not match certificate's altnames", 'sts'),
      'certificate-host-mismatch',
    );
    assert.equal(
      classifyTlsFailure('TLS handshake failed: self-signed certificate', 'sts'),
      'certificate-not-trusted',
    );
    assert.equal(
      classifyTlsFailure('TLS handshake failed: certificate has expired', 'sts'),
      'certificate-expired',
    );
    assert.equal(classifyTlsFailure('TLS handshake failed: something else', 'sts'), 'validation-failure');
  });

  test('one report per domain and day: policies, summaries, failure details; gzipped; as a message', () => {
    const report = buildTlsReport(
      [
        row({ count: 5 }),
        row({
          result: 'certificate-host-mismatch',
          count: 2,
          receivingIp: '192.0.2.2',
          mxHost: 'mx2.example.org',
        }),
        row({ policyType: 'no-policy-found', policyStrings: [], count: 1 }),
      ],
      {
        domain: 'example.org',
        day: '2026-12-06',
        organization: 'mx.tern.example',
        contact: 'postmaster@tern.example',
      },
    );
    const json = report.json as {
      'date-range': Record<string, string>;
      policies: {
        policy: Record<string, unknown>;
        summary: Record<string, number>;
        'failure-details'?: unknown[];
      }[];
    };
    assert.deepEqual(json['date-range'], {
      'start-datetime': '2026-12-06T00:00:00Z',
      'end-datetime': '2026-12-06T23:59:59Z',
    });
    assert.equal(json.policies.length, 2);
    const sts = json.policies[0]!;
    assert.deepEqual(sts.summary, { 'total-successful-session-count': 5, 'total-failure-session-count': 2 });
    assert.deepEqual(sts.policy['mx-host'], ['mx.example.org', 'mx2.example.org']);
    assert.deepEqual(sts['failure-details'], [
      {
        'result-type': 'certificate-host-mismatch',
        'receiving-mx-hostname': 'mx2.example.org',
        'receiving-ip': '192.0.2.2',
        'failed-session-count': 2,
      },
    ]);
    assert.equal(json.policies[1]!.policy['policy-string'], undefined, 'no policy, no policy-string');
    assert.deepEqual(JSON.parse(gunzipSync(gzipReport(report)).toString('utf8')), report.json);
    const mail = tlsReportMessage(report, {
      from: 'postmaster@tern.example',
      to: 'tls@example.org',
      domain: 'example.org',
      submitter: 'mx.tern.example',
      nowMs: Date.UTC(2026, 11, 7),
      hostname: 'mx.tern.example',
    }).toString('utf8');
    assert.match(mail, /^Content-Type: multipart\/report; report-type="tlsrpt"; boundary=/m);
    assert.match(mail, /^TLS-Report-Domain: example\.org\r$/m);
    assert.match(
      mail,
      /^Subject: Report Domain: example\.org Submitter: mx\.tern\.example Report-ID: <.+>\r$/m,
    );
    assert.match(mail, /filename="mx\.tern\.example!example\.org!1796515200!1796601599!\w+\.json\.gz"/);
    assert.ok(mail.split('\r\n').every((l) => l.length <= 998));
  });
});
