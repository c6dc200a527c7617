// `tern dmarc reports [--send] [--today] [--json]`: the DMARC aggregate reports (RFC 7489 §7.2) Tern
// owes: per day and domain whose record asked (rua=), how many messages and rows, and for each report
// address whether it will get one (or why not: no authorization for an address outside the domain's
// organization, §7.1; over its size limit). With --send, the reports of finished days (and today so
// far, with --today) are queued now; the server does that within an hour after each day ends.
// Failure reports (ruf=) are never sent (docs/transport-security.md: privacy).

import { DmarcReporter } from '../../delivery/dmarc-reporter.ts';
import { createResolver } from '../../net/dns.ts';
import { SqliteDmarcStore } from '../../reports/dmarc-store.ts';
import { dmarcReportsPath } from '../../services.ts';
import type { Command } from '../command.ts';
import { writeLine } from '../io.ts';

export const dmarcReports: Command = {
  name: 'dmarc reports',
  args: '[--send] [--today] [--json]',
  summary: 'the DMARC aggregate reports owed: to whom, how big; --send queues them now',
  flags: ['send', 'today', 'json'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const config = ctx.config();
    const store = SqliteDmarcStore.open(dmarcReportsPath(config), () => ctx.clock.nowMs());
    try {
      const plans = await ctx.withServices(['queue'], async ({ queue }) => {
        const reporter = new DmarcReporter({
          store,
          resolver: createResolver(config.dns, { clock: ctx.clock, logger: ctx.logger() }),
          queue,
          config,
          clock: ctx.clock,
          logger: ctx.logger(),
        });
        const send = args.flags.has('send');
        // Without --send, today's rows are shown too: what the next report will hold so far.
        const result = await reporter.run({ send, includeToday: !send || args.flags.has('today') });
        for (const id of result.flatMap((p) =>
          p.to.map((t) => /^queued (\S+)$/.exec(t.outcome)?.[1] ?? null),
        ))
          if (id !== null) await queue.flush(id);
        return result;
      });
      if (args.flags.has('json')) {
        await writeLine(ctx.io.stdout, JSON.stringify(plans, null, 2));
        return 0;
      }
      if (plans.length === 0) await writeLine(ctx.io.stdout, 'no DMARC report is owed');
      for (const p of plans) {
        await writeLine(ctx.io.stdout, `${p.day} ${p.domain}: ${p.messages} messages in ${p.rows} rows`);
        for (const t of p.to) await writeLine(ctx.io.stdout, `    ${t.address}: ${t.outcome}`);
      }
      return 0;
    } finally {
      await store.close();
    }
  },
};

export const dmarcCommands: readonly Command[] = [dmarcReports];
