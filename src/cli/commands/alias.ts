// `tern alias add|list|del`: aliases of local addresses. An alias maps to one or more targets (local
// users or remote addresses, added one at a time); `@domain` is the domain's catch-all, used when no
// user or alias matches. An alias named like a user wins over the user, as a Postfix virtual alias does:
// the user keeps a copy only when the alias lists it too. `add` refuses an alias that would close a loop
// (the directory checks), and warns (stderr, exit 0) when a local target is no user and no alias, or when
// the alias takes a user's mail away from it.

import { aliasWarnings } from '../../ops/users.ts';
import { aliasAddress, targetAddress } from '../../ops/addresses.ts';
import type { Command } from '../command.ts';
import { CliError, writeLine } from '../io.ts';

export const aliasAdd: Command = {
  name: 'alias add',
  args: 'ALIAS TARGET [--json]',
  summary: 'route ALIAS (name@domain, or @domain for a catch-all) to TARGET',
  flags: ['json'],
  minPositionals: 2,
  maxPositionals: 2,
  async run(ctx, args) {
    const { localDomains } = ctx.config();
    const alias = aliasAddress(args.positionals[0]!, localDomains);
    const target = targetAddress(args.positionals[1]!);
    const warnings = await ctx.withServices(['directory'], async ({ directory }) => {
      const existing = await directory.listAliases();
      if (existing.some((a) => a.alias === alias && a.target === target)) {
        throw new CliError(`alias ${alias} -> ${target} already exists`);
      }
      await directory.addAlias(alias, target);
      return aliasWarnings(directory, alias, target, existing);
    });
    if (args.flags.has('json')) await writeLine(ctx.io.stdout, JSON.stringify({ alias, target }));
    else await writeLine(ctx.io.stdout, `added alias ${alias} -> ${target}`);
    for (const warning of warnings) await writeLine(ctx.io.stderr, `tern: warning: ${warning}`);
    return 0;
  },
};

export const aliasList: Command = {
  name: 'alias list',
  args: '[--json]',
  summary: 'list aliases and their targets',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  readOnly: true,
  async run(ctx, args) {
    const aliases = await ctx.withServices(['directory'], ({ directory }) => directory.listAliases());
    aliases.sort((a, b) => a.alias.localeCompare(b.alias) || a.target.localeCompare(b.target));
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(
        stdout,
        JSON.stringify(
          aliases.map((a) => ({ alias: a.alias, target: a.target })),
          null,
          2,
        ),
      );
      return 0;
    }
    if (aliases.length === 0) {
      await writeLine(stdout, 'no aliases');
      return 0;
    }
    const width = Math.max(...aliases.map((a) => a.alias.length));
    for (const a of aliases) await writeLine(stdout, `${a.alias.padEnd(width)}  -> ${a.target}`);
    return 0;
  },
};

export const aliasDel: Command = {
  name: 'alias del',
  args: 'ALIAS [TARGET] [--json]',
  summary: 'remove an alias (all its targets, or only TARGET)',
  flags: ['json'],
  minPositionals: 1,
  maxPositionals: 2,
  async run(ctx, args) {
    const { localDomains } = ctx.config();
    const alias = aliasAddress(args.positionals[0]!, localDomains);
    const targetText = args.positionals[1];
    const target = targetText === undefined ? undefined : targetAddress(targetText);
    const deleted = await ctx.withServices(['directory'], ({ directory }) =>
      target === undefined ? directory.deleteAlias(alias) : directory.deleteAlias(alias, target),
    );
    const what = target === undefined ? alias : `${alias} -> ${target}`;
    if (!deleted) throw new CliError(`no such alias: ${what}`);
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify({ alias, target: target ?? null }));
    } else {
      await writeLine(ctx.io.stdout, `deleted alias ${what}`);
    }
    return 0;
  },
};

export const aliasCommands: readonly Command[] = [aliasAdd, aliasList, aliasDel];
