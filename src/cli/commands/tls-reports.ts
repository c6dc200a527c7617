// `tern tls-reports send [--today] [--json]`: make and send the TLS-RPT reports (RFC 8460) of finished
// days now, as the server does within the hour (with --today, today's sessions so far too): one report
// per destination domain that asks for them, queued for each mailto: address (the running server
// delivers it at once), posted to each https: one. See docs/transport-security.md.

import { SqlitePolicyCache } from '../../delivery/policy-cache.ts';
import { TlsReporter } from '../../delivery/tls-reporter.ts';
import { createResolver } from '../../net/dns.ts';
import { tlsPolicyPath } from '../../services.ts';
import type { Command } from '../command.ts';
import { writeLine } from '../io.ts';

export const tlsReportsSend: Command = {
  name: 'tls-reports send',
  args: '[--today] [--json]',
  summary: 'send the TLS-RPT reports of finished days now (--today: today so far too)',
  flags: ['today', 'json'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const config = ctx.config();
    const store = SqlitePolicyCache.open(tlsPolicyPath(config));
    try {
      const sent = await ctx.withServices(['queue'], async ({ queue }) => {
        const reporter = new TlsReporter({
          store,
          resolver: createResolver(config.dns, { clock: ctx.clock, logger: ctx.logger() }),
          queue,
          config,
          clock: ctx.clock,
          logger: ctx.logger(),
          tlsCa: null,
        });
        try {
          const result = await reporter.run({ includeToday: args.flags.has('today') });
          // The running server's delivery worker takes them at once (it watches the queue's counter).
          for (const id of result.flatMap((r) => r.queued)) await queue.flush(id);
          return result;
        } finally {
          await reporter.close();
        }
      });
      if (args.flags.has('json')) {
        await writeLine(ctx.io.stdout, JSON.stringify(sent, null, 2));
        return 0;
      }
      if (sent.length === 0) await writeLine(ctx.io.stdout, 'no TLS results to report');
      for (const s of sent) {
        await writeLine(
          ctx.io.stdout,
          `${s.day} ${s.domain}: ${s.to.length === 0 ? 'asks for no reports (no _smtp._tls record)' : s.to.join(', ')}`,
        );
      }
      return 0;
    } finally {
      store.close();
    }
  },
};

export const tlsReportsCommands: readonly Command[] = [tlsReportsSend];
