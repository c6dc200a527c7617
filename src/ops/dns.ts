// The DNS records a mail domain needs for this configuration (`tern dns records`, GET /api/domains):
// MX, SPF (RFC 7208), one DKIM TXT per signing key (RFC 6376), DMARC (RFC 7489), MTA-STS (RFC 8461: the
// TXT record and the policy file) and TLS-RPT (RFC 8460).

import { createHash } from 'node:crypto';
import { domainToASCII } from 'node:url';
import type { Config } from '../config/config.ts';
import type { DkimKey } from '../delivery/dkim-sign.ts';
import { dkimDnsRecord, loadDkimKeys } from '../delivery/dkim-sign.ts';

export interface DnsRecord {
  readonly name: string;
  readonly type: 'MX' | 'TXT';
  readonly value: string;
  readonly purpose: string;
}

export interface DomainRecords {
  readonly domain: string;
  readonly records: DnsRecord[];
  readonly keys: readonly DkimKey[];
  readonly mtaStsPolicy: string;
}

/**
 * The MTA-STS policy Tern publishes for its domains (RFC 8461 §3.2), the same for every local domain:
 * this server's host name as the one MX, the mode and max_age of `[mta_sts]`. CRLF line ends (§3.2).
 */
export function mtaStsPolicyText(config: Pick<Config, 'hostname' | 'mtaStsPublish'>): string {
  const host = config.hostname.replace(/\.$/, '').toLowerCase();
  const p = config.mtaStsPublish;
  return [
    'version: STSv1',
    `mode: ${p.mode}`,
    ...(p.mode === 'none' ? [] : [`mx: ${host}`]),
    `max_age: ${p.maxAgeS}`,
    '',
  ].join('\r\n');
}

/** The policy's id for the `_mta-sts` TXT record: a digest of its text, so it changes exactly when it does. */
export function mtaStsPolicyId(policy: string): string {
  return createHash('sha256').update(policy).digest('hex').slice(0, 20);
}

export async function dnsRecordsFor(
  config: Pick<Config, 'hostname' | 'dataDir' | 'mtaStsPublish'>,
  domainArg: string,
): Promise<DomainRecords> {
  const domain = domainArg.toLowerCase().replace(/\.$/, '');
  const host = config.hostname.replace(/\.$/, '');
  const reports = `postmaster@${domain}`;
  const policy = mtaStsPolicyText(config);
  const stsId = mtaStsPolicyId(policy);
  const records: DnsRecord[] = [
    { name: domain, type: 'MX', value: `10 ${host}.`, purpose: 'mail for the domain goes to this server' },
    {
      name: domain,
      type: 'TXT',
      value: 'v=spf1 mx -all',
      purpose: 'SPF: only the domain’s MX hosts send its mail',
    },
  ];
  // Keys are stored under the A-label name (keygen converts what was typed).
  const keys = (await loadDkimKeys(config.dataDir)).get(domainToASCII(domain) || domain) ?? [];
  for (const key of keys) {
    const r = dkimDnsRecord(key);
    records.push({
      name: `${key.selector}._domainkey.${domain}`,
      type: 'TXT',
      value: r.value,
      purpose: `DKIM public key (${key.algorithm})`,
    });
  }
  records.push(
    {
      name: `_dmarc.${domain}`,
      type: 'TXT',
      value: `v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:${reports}`,
      purpose: 'DMARC: quarantine what fails, aggregate reports to the postmaster',
    },
    {
      name: `_mta-sts.${domain}`,
      type: 'TXT',
      value: `v=STSv1; id=${stsId}`,
      purpose: `MTA-STS: with a policy at https://mta-sts.${domain}/.well-known/mta-sts.txt`,
    },
    {
      name: `_smtp._tls.${domain}`,
      type: 'TXT',
      value: `v=TLSRPTv1; rua=mailto:${reports}`,
      purpose: 'TLS-RPT: reports about TLS failures delivering to the domain',
    },
  );
  return { domain, records, keys, mtaStsPolicy: policy };
}
