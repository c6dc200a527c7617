// `tern doctor [--domain D] [--json]`: checks what the world sees of this server (src/ops/doctor.ts):
// MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT of each local domain (or of D), our hostname's addresses,
// PTR and FCrDNS, the TLS certificate, the listeners, and an open-relay self test. One line per check,
// `PASS`/`WARN`/`FAIL`, with the fix after a dash; or the report as JSON (see docs/doctor.md). Exit 1
// when any check fails, 0 otherwise (warnings included), so it can run from cron or a deploy script.
// DNS goes through the configured resolver ([dns] servers), as the server's own lookups do.
// Deliberately NOT here: the checks themselves (ops/doctor.ts), changing anything.

import { createResolver } from '../../net/dns.ts';
import type { DoctorCheck } from '../../ops/doctor.ts';
import { publicLocalDomains, runDoctor, toALabel } from '../../ops/doctor.ts';
import type { Command } from '../command.ts';
import { usageLine } from '../command.ts';
import { UsageError, writeLine } from '../io.ts';

const ID_WIDTH = 13;

/** `PASS  mx           example.org MX 10 mx.example.org`; a fix follows the summary after " — ". */
export function formatCheck(c: DoctorCheck): string {
  const text = c.fix === undefined ? c.summary : `${c.summary} — ${c.fix}`;
  return `${c.status.toUpperCase().padEnd(6)}${c.id.padEnd(ID_WIDTH)}${text}`;
}

export const doctor: Command = {
  name: 'doctor',
  args: '[--domain D] [--json]',
  summary: 'check DNS (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, PTR), the certificate, ports and relaying',
  flags: ['json'],
  options: ['domain'],
  minPositionals: 0,
  maxPositionals: 0,
  readOnly: true,
  async run(ctx, args) {
    const config = ctx.config();
    const given = args.options.get('domain');
    let domains: string[];
    if (given !== undefined) {
      const domain = toALabel(given);
      if (domain === null) throw new UsageError(`not a domain name: ${given}`, usageLine(doctor));
      domains = [domain];
      if (!publicLocalDomains(config).includes(domain)) {
        await writeLine(
          ctx.io.stderr,
          `tern: note: ${domain} is not one of local_domains in this configuration`,
        );
      }
    } else {
      domains = publicLocalDomains(config);
    }
    const resolver = createResolver(config.dns, { clock: ctx.clock, logger: ctx.logger() });
    const report = await runDoctor({ config, resolver, nowMs: ctx.clock.nowMs() }, domains);
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify(report, null, 2));
    } else {
      for (const c of report.checks) await writeLine(ctx.io.stdout, formatCheck(c));
      const { pass, warn, fail } = report.counts;
      await writeLine(
        ctx.io.stdout,
        `${pass} passed, ${warn} warning${warn === 1 ? '' : 's'}, ${fail} failed`,
      );
    }
    return report.ok ? 0 : 1;
  },
};

export const doctorCommands: readonly Command[] = [doctor];
