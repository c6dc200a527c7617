// `tern user add|passwd|list|del`: local accounts in the directory. Passwords come from stdin
// (`--password-stdin`, first line) or a no-echo prompt on a terminal, and are stored only as hashes.
// A user without a password can receive mail but cannot log in.

import { hashPassword } from '../../directory/password.ts';
import { userAddress } from '../addresses.ts';
import type { Directory } from '../../directory/directory.ts';
import type { Command, ParsedArgs } from '../command.ts';
import type { CliIo } from '../io.ts';
import { CliError, promptNewPassword, readPasswordFromStdin, writeLine } from '../io.ts';

/** The password for add/passwd: from stdin when asked, by prompt on a terminal, else none. */
async function newPassword(io: CliIo, args: ParsedArgs, required: boolean): Promise<string | null> {
  if (args.flags.has('password-stdin')) return readPasswordFromStdin(io.stdin);
  if (io.stdin.isTTY === true) return promptNewPassword(io);
  if (required)
    throw new CliError('standard input is not a terminal: pass the password with --password-stdin');
  return null;
}

async function userExists(directory: Directory, address: string): Promise<boolean> {
  return (await directory.listUsers()).some((u) => u.address === address);
}

export const userAdd: Command = {
  name: 'user add',
  args: 'ADDRESS [--password-stdin]',
  summary: 'add a local user (password from stdin, a prompt on a terminal, or none)',
  flags: ['password-stdin'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const address = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const hash = await ctx.withServices(['directory'], async ({ directory }) => {
      // Check before asking for a password: nobody wants to type one twice for nothing.
      if (await userExists(directory, address)) throw new CliError(`user ${address} already exists`);
      const password = await newPassword(ctx.io, args, false);
      const passwordHash = password === null ? null : await hashPassword(password);
      await directory.addUser(address, passwordHash);
      return passwordHash;
    });
    await writeLine(
      ctx.io.stdout,
      `added user ${address}${hash === null ? ' (no password: cannot log in)' : ''}`,
    );
    return 0;
  },
};

export const userPasswd: Command = {
  name: 'user passwd',
  args: 'ADDRESS [--password-stdin]',
  summary: "set a user's password (from stdin, or a prompt on a terminal)",
  flags: ['password-stdin'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const address = userAddress(args.positionals[0]!, ctx.config().localDomains);
    await ctx.withServices(['directory'], async ({ directory }) => {
      if (!(await userExists(directory, address))) throw new CliError(`no such user: ${address}`);
      const password = await newPassword(ctx.io, args, true);
      await directory.setPasswordHash(address, await hashPassword(password!));
    });
    await writeLine(ctx.io.stdout, `password set for ${address}`);
    return 0;
  },
};

export const userList: Command = {
  name: 'user list',
  args: '[--json]',
  summary: 'list local users',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const users = await ctx.withServices(['directory'], ({ directory }) => directory.listUsers());
    users.sort((a, b) => a.address.localeCompare(b.address));
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      const rows = users.map((u) => ({
        address: u.address,
        hasPassword: u.hasPassword,
        created: new Date(u.createdMs).toISOString(),
      }));
      await writeLine(stdout, JSON.stringify(rows, null, 2));
      return 0;
    }
    if (users.length === 0) {
      await writeLine(stdout, 'no users');
      return 0;
    }
    const width = Math.max(...users.map((u) => u.address.length));
    for (const u of users) {
      const created = new Date(u.createdMs).toISOString();
      await writeLine(
        stdout,
        `${u.address.padEnd(width)}  ${u.hasPassword ? 'password' : 'no-login'}  ${created}`,
      );
    }
    return 0;
  },
};

export const userDel: Command = {
  name: 'user del',
  args: 'ADDRESS',
  summary: 'delete a local user',
  flags: [],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const address = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const deleted = await ctx.withServices(['directory'], ({ directory }) => directory.deleteUser(address));
    if (!deleted) throw new CliError(`no such user: ${address}`);
    await writeLine(ctx.io.stdout, `deleted user ${address}`);
    return 0;
  },
};

export const userCommands: readonly Command[] = [userAdd, userPasswd, userList, userDel];
