// `tern admin add|passwd|del|list|token`: the accounts of the admin web page and HTTP API (docs/admin.md).
// Passwords are read like users' (`--password-stdin`, or a no-echo prompt on a terminal) and kept as a
// scrypt hash; `token NAME` prints a new API token once (sent as `Authorization: Bearer TOKEN`), and
// only its digest is kept. Not here: checking logins and tokens (src/admin/auth.ts).

import { AdminAccountError, validAdminName } from '../../directory/admin-accounts.ts';
import type { SqliteAdminAccounts } from '../../directory/admin-accounts.ts';
import { hashPassword } from '../../directory/password.ts';
import { openAdminAccounts } from '../../services.ts';
import type { Command, CommandContext, ParsedArgs } from '../command.ts';
import { usageLine } from '../command.ts';
import { CliError, promptNewPassword, readPasswordFromStdin, UsageError, writeLine } from '../io.ts';
import { isoTime } from '../time.ts';

async function withAccounts<T>(
  ctx: CommandContext,
  fn: (a: SqliteAdminAccounts) => T | Promise<T>,
): Promise<T> {
  const accounts = await openAdminAccounts(ctx.config(), ctx.clock);
  try {
    return await fn(accounts);
  } catch (err) {
    if (err instanceof AdminAccountError) throw new CliError(err.message);
    throw err;
  } finally {
    accounts.close();
  }
}

async function password(ctx: CommandContext, args: ParsedArgs): Promise<string> {
  if (args.flags.has('password-stdin')) return readPasswordFromStdin(ctx.io.stdin);
  if (ctx.io.stdin.isTTY === true) return promptNewPassword(ctx.io);
  throw new CliError('standard input is not a terminal: pass the password with --password-stdin');
}

function nameArg(args: ParsedArgs, cmd: Command): string {
  const name = args.positionals[0]!.normalize('NFC');
  if (!validAdminName(name))
    throw new UsageError(
      `"${name}" is not an admin name (letters, digits, ._@+-, at most 64)`,
      usageLine(cmd),
    );
  return name;
}

export const adminAdd: Command = {
  name: 'admin add',
  args: 'NAME [--password-stdin] [--json]',
  summary: 'add an account of the admin page and API (password from stdin or a prompt)',
  flags: ['password-stdin', 'json'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const name = nameArg(args, adminAdd);
    await withAccounts(ctx, async (a) => {
      if (a.passwordHash(name) !== null) throw new CliError(`admin ${name} already exists`);
      a.add(name, await hashPassword(await password(ctx, args)));
    });
    if (args.flags.has('json')) await writeLine(ctx.io.stdout, JSON.stringify({ name }));
    else await writeLine(ctx.io.stdout, `added admin ${name}`);
    return 0;
  },
};

export const adminPasswd: Command = {
  name: 'admin passwd',
  args: 'NAME [--password-stdin]',
  summary: "set an admin's password (ends the admin's page logins)",
  flags: ['password-stdin'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const name = nameArg(args, adminPasswd);
    await withAccounts(ctx, async (a) => {
      if (a.passwordHash(name) === null) throw new CliError(`no admin ${name}`);
      a.setPassword(name, await hashPassword(await password(ctx, args)));
    });
    await writeLine(ctx.io.stdout, `password set for admin ${name}`);
    return 0;
  },
};

export const adminDel: Command = {
  name: 'admin del',
  args: 'NAME',
  summary: 'delete an admin account with its tokens and logins',
  flags: [],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const name = nameArg(args, adminDel);
    await withAccounts(ctx, (a) => a.remove(name));
    await writeLine(ctx.io.stdout, `deleted admin ${name}`);
    return 0;
  },
};

export const adminList: Command = {
  name: 'admin list',
  args: '[--json]',
  summary: 'list admin accounts and their API tokens',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const { admins, tokens } = await withAccounts(ctx, (a) => ({
      admins: a.list(),
      tokens: a.tokens(null),
    }));
    if (args.flags.has('json')) {
      const json = admins.map((x) => ({
        name: x.name,
        created: isoTime(x.createdMs),
        tokens: tokens
          .filter((t) => t.name === x.name)
          .map((t) => ({
            id: t.id,
            created: isoTime(t.createdMs),
            lastUsed: t.lastUsedMs === null ? null : isoTime(t.lastUsedMs),
          })),
      }));
      await writeLine(ctx.io.stdout, JSON.stringify(json, null, 2));
      return 0;
    }
    if (admins.length === 0) {
      await writeLine(ctx.io.stdout, 'no admin accounts: add one with tern admin add NAME');
      return 0;
    }
    for (const x of admins) {
      await writeLine(ctx.io.stdout, `${x.name}  created ${isoTime(x.createdMs)}  ${x.tokens} token(s)`);
      for (const t of tokens.filter((t) => t.name === x.name)) {
        const used = t.lastUsedMs === null ? 'never used' : `last used ${isoTime(t.lastUsedMs)}`;
        await writeLine(ctx.io.stdout, `    token ${t.id}  created ${isoTime(t.createdMs)}  ${used}`);
      }
    }
    return 0;
  },
};

export const adminToken: Command = {
  name: 'admin token',
  args: 'NAME [--revoke ID] [--json]',
  summary: 'print a new API token for an admin (shown once), or revoke one',
  flags: ['json'],
  options: ['revoke'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const name = nameArg(args, adminToken);
    const revoke = args.options.get('revoke');
    if (revoke !== undefined) {
      await withAccounts(ctx, (a) => {
        const mine = a.tokens(name).some((t) => t.id === revoke);
        if (!mine || !a.revokeToken(revoke)) throw new CliError(`admin ${name} has no token ${revoke}`);
      });
      await writeLine(ctx.io.stdout, `revoked token ${revoke} of admin ${name}`);
      return 0;
    }
    const created = await withAccounts(ctx, (a) => a.createToken(name));
    if (args.flags.has('json')) await writeLine(ctx.io.stdout, JSON.stringify({ name, ...created }));
    else await writeLine(ctx.io.stdout, created.token);
    return 0;
  },
};

export const adminCommands: readonly Command[] = [adminAdd, adminPasswd, adminDel, adminList, adminToken];
