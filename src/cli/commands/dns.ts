// `tern dns records --domain D [--json]`: every DNS record a mail domain needs for this configuration —
// MX (to our hostname), SPF (RFC 7208), one DKIM TXT per signing key (RFC 6376), DMARC (RFC 7489),
// MTA-STS (RFC 8461: the TXT record and the policy file's content) and TLS-RPT (RFC 8460) — as zone-file
// lines to paste, or JSON for scripts.
// Deliberately NOT here: publishing the records (Tern does not talk to DNS providers), serving the
// MTA-STS policy over HTTPS (the admin web server will).

import { dkimDomainProblem } from '../../delivery/dkim-sign.ts';
import { dnsRecordsFor, type DnsRecord } from '../../ops/dns.ts';

export type { DnsRecord } from '../../ops/dns.ts';
import type { Command } from '../command.ts';
import { usageLine } from '../command.ts';
import { UsageError, writeLine } from '../io.ts';

/** TXT data as zone-file strings: quoted, split into 255-octet character-strings. */
function txt(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return parts.join(' ');
}

export function zoneLine(r: DnsRecord): string {
  return `${r.name}. IN ${r.type} ${r.type === 'TXT' ? txt(r.value) : r.value}`;
}

export const dnsRecords: Command = {
  name: 'dns records',
  args: '--domain D [--json]',
  summary: 'print the DNS records domain D needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT)',
  flags: ['json'],
  options: ['domain'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const domainArg = args.options.get('domain');
    if (domainArg === undefined) throw new UsageError('missing --domain', usageLine(dnsRecords));
    const config = ctx.config();
    const { domain, records, keys, mtaStsPolicy: policy } = await dnsRecordsFor(config, domainArg);
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify({ domain, records, mtaStsPolicy: policy }, null, 2));
      return 0;
    }
    if (!config.localDomains.includes(domain)) {
      await writeLine(
        ctx.io.stderr,
        `tern: note: ${domain} is not one of local_domains in this configuration`,
      );
    }
    if (keys.length === 0) {
      // Suggest only a keygen that will work; else say why none can be made (keygen's own reason).
      const problem = dkimDomainProblem(domain);
      await writeLine(
        ctx.io.stderr,
        problem === null
          ? `tern: note: no DKIM key for ${domain}; create one with: tern dkim keygen --domain ${domain} --selector s1`
          : `tern: note: no DKIM key for ${domain}, and none can be made: ${problem.startsWith(`${domain}: `) ? problem.slice(domain.length + 2) : problem}`,
      );
    }
    for (const r of records) {
      await writeLine(ctx.io.stdout, `; ${r.purpose}`);
      await writeLine(ctx.io.stdout, zoneLine(r));
    }
    await writeLine(
      ctx.io.stdout,
      `; MTA-STS policy file (https://mta-sts.${domain}/.well-known/mta-sts.txt):`,
    );
    for (const line of policy.trimEnd().split(/\r?\n/)) await writeLine(ctx.io.stdout, `;   ${line}`);
    return 0;
  },
};

export const dnsCommands: readonly Command[] = [dnsRecords];
