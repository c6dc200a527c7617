// SMTP TLS Reporting (RFC 8460) as a sender: what happened to the TLS of each delivery session, per
// destination domain and policy (MTA-STS, DANE, or none found), kept per UTC day; once a day is over,
// one aggregate report per domain that asks for them (`_smtp._tls.<domain>` TXT, `v=TLSRPTv1; rua=...`),
// as gzipped JSON (§4, §5.3) mailed to its `mailto:` addresses (through the queue, DKIM-signed like all
// our mail) and POSTed to its `https:` ones.
// Deliberately NOT here: storage (policy-cache.ts), when reports are made (tls-reporter.ts).

import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { MtaStsPolicy } from './mta-sts.ts';

/** RFC 8460 §4.3 result types, plus "success". */
export type TlsResultType =
  | 'success'
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid';

export type TlsPolicyType = 'sts' | 'tlsa' | 'no-policy-found';

/** One session's outcome, as recorded. */
export interface TlsSessionResult {
  /** "2026-12-07" (UTC). */
  readonly day: string;
  readonly policyDomain: string;
  readonly policyType: TlsPolicyType;
  /** The policy as RFC 8460 §4.4 writes it: the STS policy's lines, or the TLSA records. */
  readonly policyStrings: readonly string[];
  readonly mxHost: string;
  readonly receivingIp: string;
  readonly result: TlsResultType;
}

export interface TlsResultRow extends TlsSessionResult {
  readonly count: number;
}

/** What the TLS failure text of a session says, as an RFC 8460 result type. */
export function classifyTlsFailure(reason: string, policy: TlsPolicyType): TlsResultType {
  const r = reason.toLowerCase();
  if (/starttls is required but not offered|refused starttls|starttls refused/.test(r))
    return 'starttls-not-supported';
  if (r.includes('dane authentication failed')) return 'tlsa-invalid';
  if (r.includes('tlsa lookup')) return 'dnssec-invalid';
  if (/altname|hostname\/ip does not match|host name mismatch/.test(r)) return 'certificate-host-mismatch';
  if (/expired|not yet valid/.test(r)) return 'certificate-expired';
  if (/self.signed|unable to (get|verify)|untrusted|unknown ca|local issuer/.test(r))
    return 'certificate-not-trusted';
  return policy === 'tlsa' ? 'tlsa-invalid' : 'validation-failure';
}

/** The policy strings of RFC 8460 §4.4 for an MTA-STS policy. */
export function stsPolicyStrings(p: MtaStsPolicy): string[] {
  return ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAgeS}`];
}

/** `v=TLSRPTv1; rua=mailto:a@example.org,https://reports.example.org/tls` (§3). Null when not one. */
export function parseTlsRptRecord(text: string): { rua: string[] } | null {
  const fields = text
    .split(';')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (fields[0] !== 'v=TLSRPTv1') return null;
  const rua = fields.find((f) => f.startsWith('rua='));
  if (rua === undefined) return null;
  const uris = rua
    .slice(4)
    .split(',')
    .map((u) => u.trim())
    .filter((u) => /^mailto:[^@\s]+@[^@\s]+$/i.test(u) || /^https:\/\/\S+$/i.test(u));
  return uris.length === 0 ? null : { rua: uris };
}

export interface TlsReport {
  readonly json: Record<string, unknown>;
  readonly reportId: string;
  readonly startMs: number;
  readonly endMs: number;
}

/** RFC 8460 §4.4: the report of one policy domain for one UTC day. */
export function buildTlsReport(
  rows: readonly TlsResultRow[],
  opts: {
    readonly domain: string;
    readonly day: string;
    readonly organization: string;
    readonly contact: string;
  },
): TlsReport {
  const startMs = Date.parse(`${opts.day}T00:00:00Z`);
  const endMs = startMs + 86_400_000 - 1000;
  const reportId = `${opts.day}.${opts.domain}.${randomBytes(6).toString('hex')}@${opts.organization}`;
  const byPolicy = new Map<string, TlsResultRow[]>();
  for (const r of rows) {
    const key = `${r.policyType}\n${r.policyStrings.join('\n')}`;
    byPolicy.set(key, [...(byPolicy.get(key) ?? []), r]);
  }
  const policies = [...byPolicy.values()].map((group) => {
    const first = group[0]!;
    const ok = group.filter((r) => r.result === 'success').reduce((n, r) => n + r.count, 0);
    const failures = group.filter((r) => r.result !== 'success');
    return {
      policy: {
        'policy-type': first.policyType,
        ...(first.policyType === 'no-policy-found' ? {} : { 'policy-string': [...first.policyStrings] }),
        'policy-domain': opts.domain,
        'mx-host': [...new Set(group.map((r) => r.mxHost))],
      },
      summary: {
        'total-successful-session-count': ok,
        'total-failure-session-count': failures.reduce((n, r) => n + r.count, 0),
      },
      ...(failures.length === 0
        ? {}
        : {
            'failure-details': failures.map((r) => ({
              'result-type': r.result,
              'receiving-mx-hostname': r.mxHost,
              'receiving-ip': r.receivingIp,
              'failed-session-count': r.count,
            })),
          }),
    };
  });
  return {
    reportId,
    startMs,
    endMs,
    json: {
      'organization-name': opts.organization,
      'date-range': {
        'start-datetime': new Date(startMs).toISOString().replace('.000Z', 'Z'),
        'end-datetime': new Date(endMs).toISOString().replace('.000Z', 'Z'),
      },
      'contact-info': opts.contact,
      'report-id': reportId,
      policies,
    },
  };
}

/** The gzipped JSON (§5.3: application/tlsrpt+gzip). */
export function gzipReport(report: TlsReport): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report.json), 'utf8'));
}

/** The report as a message (RFC 8460 §5.3): multipart/report; report-type="tlsrpt", the .json.gz attached. */
export function tlsReportMessage(
  report: TlsReport,
  opts: {
    readonly from: string;
    readonly to: string;
    readonly domain: string;
    readonly submitter: string;
    readonly nowMs: number;
    readonly hostname: string;
  },
): Buffer {
  const boundary = `tlsrpt-${randomBytes(9).toString('hex')}`;
  const gz = gzipReport(report).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < gz.length; i += 76) lines.push(gz.slice(i, i + 76));
  const filename = `${opts.submitter}!${opts.domain}!${Math.floor(report.startMs / 1000)}!${Math.floor(report.endMs / 1000)}!${report.reportId.split('@')[0]!.split('.').at(-1) ?? 'x'}.json.gz`;
  const text = [
    `From: ${opts.from}`,
    `To: ${opts.to}`,
    `Subject: Report Domain: ${opts.domain} Submitter: ${opts.submitter} Report-ID: <${report.reportId}>`,
    `Date: ${new Date(opts.nowMs).toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${randomBytes(8).toString('hex')}.tlsrpt@${opts.hostname}>`,
    `TLS-Report-Domain: ${opts.domain}`,
    `TLS-Report-Submitter: ${opts.submitter}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is an aggregate TLS report from ${opts.submitter} (RFC 8460) for ${opts.domain}.`,
    '',
    `--${boundary}`,
    `Content-Type: application/tlsrpt+gzip; name="${filename}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${filename}"`,
    '',
    ...lines,
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(text.join('\r\n'), 'utf8');
}
