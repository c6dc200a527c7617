// DMARC aggregate reports (RFC 7489 §7.2 and Appendix C): what inbound checks found, one row per (source
// IP, header From, the SPF and DKIM results, the disposition), counted per UTC day and per domain whose
// DMARC record asks for reports (rua=); the XML of Appendix C, gzipped, as a message; and the external
// destination check (§7.1) for report addresses outside the domain's organization.
// Deliberately NOT here: storage (dmarc-store.ts), queueing and schedule (delivery/dmarc-reporter.ts).

import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';

/** What one inbound message contributes (from the smtp.authchecks record's `report` field). */
export interface DmarcObservation {
  /** The domain whose record was used (policy_published/domain). */
  readonly policyDomain: string;
  readonly headerFrom: string;
  readonly sourceIp: string;
  readonly disposition: 'none' | 'quarantine' | 'reject';
  readonly dkimAligned: boolean;
  readonly spfAligned: boolean;
  readonly spf: { readonly domain: string; readonly result: string } | null;
  readonly dkim: readonly { readonly domain: string; readonly selector: string; readonly result: string }[];
  readonly policy: {
    readonly p: string;
    readonly sp?: string;
    readonly pct: number;
    readonly adkim: string;
    readonly aspf: string;
  };
  /** rua= as published: "mailto:..." URIs with their size limits. */
  readonly rua: readonly { readonly uri: string; readonly maxBytes?: number }[];
}

export interface DmarcRow extends DmarcObservation {
  readonly day: string;
  readonly count: number;
}

const esc = (s: string): string =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!,
  );

/** DMARC's result words: SPF and DKIM results outside the schema's enumerations become their nearest. */
function spfWord(r: string): string {
  return ['none', 'neutral', 'pass', 'fail', 'softfail', 'temperror', 'permerror'].includes(r) ? r : 'none';
}
function dkimWord(r: string): string {
  return ['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror'].includes(r) ? r : 'neutral';
}

export interface DmarcReport {
  readonly xml: string;
  readonly reportId: string;
  readonly startS: number;
  readonly endS: number;
}

/** Appendix C: one report of one policy domain for one UTC day. */
export function buildDmarcReport(
  rows: readonly DmarcRow[],
  opts: { readonly domain: string; readonly day: string; readonly orgName: string; readonly email: string },
): DmarcReport {
  const startS = Date.parse(`${opts.day}T00:00:00Z`) / 1000;
  const endS = startS + 86_400 - 1;
  const reportId = `${opts.day}.${randomBytes(8).toString('hex')}`;
  const policy = rows[0]!.policy;
  const records = rows.map((r) =>
    [
      '  <record>',
      '    <row>',
      `      <source_ip>${esc(r.sourceIp)}</source_ip>`,
      `      <count>${r.count}</count>`,
      '      <policy_evaluated>',
      `        <disposition>${r.disposition}</disposition>`,
      `        <dkim>${r.dkimAligned ? 'pass' : 'fail'}</dkim>`,
      `        <spf>${r.spfAligned ? 'pass' : 'fail'}</spf>`,
      '      </policy_evaluated>',
      '    </row>',
      '    <identifiers>',
      `      <header_from>${esc(r.headerFrom)}</header_from>`,
      '    </identifiers>',
      '    <auth_results>',
      ...r.dkim.map(
        (d) =>
          `      <dkim><domain>${esc(d.domain)}</domain><selector>${esc(d.selector)}</selector><result>${dkimWord(d.result)}</result></dkim>`,
      ),
      `      <spf><domain>${esc(r.spf?.domain ?? r.headerFrom)}</domain><scope>mfrom</scope><result>${spfWord(r.spf?.result ?? 'none')}</result></spf>`,
      '    </auth_results>',
      '  </record>',
    ].join('\n'),
  );
  const xml = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<feedback>',
    '  <report_metadata>',
    `    <org_name>${esc(opts.orgName)}</org_name>`,
    `    <email>${esc(opts.email)}</email>`,
    `    <report_id>${esc(reportId)}</report_id>`,
    `    <date_range><begin>${startS}</begin><end>${endS}</end></date_range>`,
    '  </report_metadata>',
    '  <policy_published>',
    `    <domain>${esc(opts.domain)}</domain>`,
    `    <adkim>${policy.adkim}</adkim>`,
    `    <aspf>${policy.aspf}</aspf>`,
    `    <p>${policy.p}</p>`,
    `    <sp>${policy.sp ?? policy.p}</sp>`,
    `    <pct>${policy.pct}</pct>`,
    '  </policy_published>',
    ...records,
    '</feedback>',
    '',
  ].join('\n');
  return { xml, reportId, startS, endS };
}

export function gzipDmarcReport(report: DmarcReport): Buffer {
  return gzipSync(Buffer.from(report.xml, 'utf8'));
}

/** §7.2.1.1: the report as a message, the .xml.gz attached (application/gzip). */
export function dmarcReportMessage(
  report: DmarcReport,
  gz: Buffer,
  opts: {
    readonly from: string;
    readonly to: string;
    readonly domain: string;
    readonly receiver: string;
    readonly nowMs: number;
  },
): Buffer {
  const boundary = `dmarc-${randomBytes(9).toString('hex')}`;
  const filename = `${opts.receiver}!${opts.domain}!${report.startS}!${report.endS}.xml.gz`;
  const b64 = gz.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return Buffer.from(
    [
      `From: ${opts.from}`,
      `To: ${opts.to}`,
      `Subject: Report Domain: ${opts.domain} Submitter: ${opts.receiver} Report-ID: <${report.reportId}>`,
      `Date: ${new Date(opts.nowMs).toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <${report.reportId}@${opts.receiver}>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `DMARC aggregate report from ${opts.receiver} for ${opts.domain} (RFC 7489).`,
      '',
      `--${boundary}`,
      `Content-Type: application/gzip; name="${filename}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename="${filename}"`,
      '',
      ...lines,
      '',
      `--${boundary}--`,
      '',
    ].join('\r\n'),
    'utf8',
  );
}

/** `mailto:` addresses of rua= (other schemes are not sent to), with their size limits. */
export function mailtoTargets(
  rua: readonly { readonly uri: string; readonly maxBytes?: number }[],
): { address: string; maxBytes: number | null }[] {
  return rua
    .filter((r) => /^mailto:/i.test(r.uri))
    .map((r) => ({ address: decodeURIComponent(r.uri.slice(7)), maxBytes: r.maxBytes ?? null }));
}
