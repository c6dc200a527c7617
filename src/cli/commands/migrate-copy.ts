// `tern migrate sqlite-to-postgres [--to URL] [--json]`: move a single-node installation (the SQLite
// files of data_dir) into PostgreSQL (issue 19), then verify it (counts per kind, a SHA-256 per body)
// and exit 1 on any difference. Holds data_dir's lock meanwhile, so it refuses while `tern serve` runs
// (a copy of a running server would miss what arrives during it). Run it again after an interruption:
// it goes on where it stopped. A progress bar on a terminal, a line per phase otherwise.
// Deliberately NOT here: the copying and verifying (ops/sqlite-to-postgres.ts), switching the config's
// [storage] backend (the operator does that once the copy is verified).

import { existsSync } from 'node:fs';
import { DataDirLockedError, lockDataDir } from '../../db/data-dir-lock.ts';
import { postmasterAddress } from '../../directory/postmaster.ts';
import { configQuota } from '../../directory/quota.ts';
import { dataPaths } from '../../main.ts';
import { copySqliteToPostgres } from '../../ops/sqlite-to-postgres.ts';
import type { CopyReport } from '../../ops/sqlite-to-postgres.ts';
import type { Command } from '../command.ts';
import { CliError, writeLine } from '../io.ts';
import { Progress, formatBytes } from '../progress.ts';

function summary(r: CopyReport): string[] {
  const kinds = Object.keys(r.copied) as (keyof CopyReport['copied'])[];
  const lines = [
    `copied ${kinds.map((k) => `${r.copied[k]} ${k}`).join(', ')} (${formatBytes(r.bytes)}); already there: ${kinds
      .map((k) => `${r.skipped[k]} ${k}`)
      .join(', ')}`,
  ];
  for (const c of r.counts)
    lines.push(
      `${c.source === c.target ? 'ok' : 'MISMATCH'}  ${c.kind}: ${c.source} in SQLite, ${c.target} in PostgreSQL`,
    );
  for (const m of r.mismatches) lines.push(`MISMATCH  ${m}`);
  if (r.mismatchCount > r.mismatches.length) lines.push(`... ${r.mismatchCount - r.mismatches.length} more`);
  lines.push(r.ok ? 'verified: PostgreSQL holds everything' : `NOT verified: ${r.mismatchCount} differences`);
  return lines;
}

export const migrateCopy: Command = {
  name: 'migrate sqlite-to-postgres',
  args: '[--to URL] [--json]',
  summary: 'copy the SQLite stores of data_dir into PostgreSQL and verify, with tern serve stopped',
  flags: ['json'],
  options: ['to'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const config = ctx.config();
    const url = args.options.get('to') ?? config.storage.url;
    if (url === null || url === '') throw new CliError('give --to postgres://… or set [storage] url');
    const root = dataPaths(config).root;
    if (!existsSync(root)) throw new CliError(`no data directory at ${root}: nothing to copy`);
    let lock: { release(): void };
    try {
      lock = lockDataDir(root);
    } catch (err) {
      if (err instanceof DataDirLockedError)
        throw new CliError(`${err.message} (stop tern serve before copying its data)`);
      throw err;
    }
    const tty = (ctx.io.stderr as { isTTY?: boolean }).isTTY === true;
    const progress = new Progress({ stream: ctx.io.stderr, clock: ctx.clock, verb: 'copied', unit: 'items' });
    let report: CopyReport;
    try {
      report = await copySqliteToPostgres({
        dataDir: root,
        url,
        directory: {
          localDomains: config.localDomains,
          postmaster: postmasterAddress(config),
          recipientDelimiter: config.recipientDelimiter,
          defaultQuota: configQuota(config.limits),
        },
        clock: ctx.clock,
        onItem: (_kind, _copied, bytes) => progress.add(1, bytes),
        onPhase: (phase) => {
          if (!tty) ctx.io.stderr.write(`${phase}...\n`);
        },
      });
    } catch (err) {
      throw new CliError(`migrate sqlite-to-postgres: ${(err as Error).message} (run it again to resume)`);
    } finally {
      progress.finish();
      lock.release();
    }
    if (args.flags.has('json')) await writeLine(ctx.io.stdout, JSON.stringify(report, null, 2));
    else for (const line of summary(report)) await writeLine(ctx.io.stdout, line);
    return report.ok ? 0 : 1;
  },
};
