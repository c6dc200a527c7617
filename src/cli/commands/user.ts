// `tern user add|passwd|list|del|cert|sendas|policy|quota`: local accounts in the directory and what
// they may do when they submit mail. Passwords come from stdin (`--password-stdin`, first line) or a no-echo
// prompt on a terminal, and are stored only as a scrypt hash plus the SCRAM-SHA-256 secret (RFC 5802 §3,
// RFC 7677) derived from them; a user without a password can receive mail but cannot log in.
// `cert` maps TLS client certificates (by SHA-256 fingerprint) to a user for SASL EXTERNAL, `sendas`
// grants sender addresses beyond the user's own and its aliases, `policy` sets the per-user sender
// check and hourly limits, `quota` the user's mailbox quota (RFC 9208 STORAGE and MESSAGE limits over
// the config's [limits] mailbox_quota_*) beside what the user holds now. Not here: the SCRAM math
// (src/protocol/sasl/), enforcing any of it (the SMTP session; delivery and IMAP for quotas).

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type {
  CertificateMapping,
  Directory,
  QuotaChange,
  QuotaLimits,
  UserPolicy,
} from '../../directory/directory.ts';
import { certificateFingerprint, normalizeFingerprint } from '../../directory/fingerprint.ts';
import { postmasterAddress } from '../../directory/postmaster.ts';
import { formatBytes, parseMessageLimit, parseStorageSize } from '../../directory/quota.ts';
import { normalizeAddress } from '../../directory/sqlite-directory.ts';
import { userAddress } from '../../ops/addresses.ts';
import type { Command, CommandContext, ParsedArgs } from '../command.ts';
import { serviceFile } from '../data-dir.ts';
import { usageLine } from '../command.ts';
import type { CliIo } from '../io.ts';
import { credentialsFor, sendAsPattern } from '../../ops/users.ts';
import { CliError, promptNewPassword, readPasswordFromStdin, UsageError, writeLine } from '../io.ts';

/** The password for add/passwd: from stdin when asked, by prompt on a terminal, else none. */
async function newPassword(io: CliIo, args: ParsedArgs, required: boolean): Promise<string | null> {
  if (args.flags.has('password-stdin')) return readPasswordFromStdin(io.stdin);
  if (io.stdin.isTTY === true) return promptNewPassword(io);
  if (required)
    throw new CliError('standard input is not a terminal: pass the password with --password-stdin');
  return null;
}

async function userExists(directory: Directory, address: string): Promise<boolean> {
  return (await directory.getCredentials(address)) !== null;
}

async function requireUser(directory: Directory, address: string): Promise<void> {
  if (!(await userExists(directory, address))) throw new CliError(`no such user: ${address}`);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Rows as aligned columns, two spaces apart (the last column is not padded). */
async function writeTable(io: CliIo, rows: readonly (readonly string[])[]): Promise<void> {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  for (const row of rows) {
    await writeLine(
      io.stdout,
      row.map((cell, i) => (i + 1 < row.length ? cell.padEnd(widths[i]!) : cell)).join('  '),
    );
  }
}

export const userAdd: Command = {
  name: 'user add',
  args: 'ADDRESS [--password-stdin] [--json]',
  summary: 'add a local user (password from stdin, a prompt on a terminal, or none)',
  flags: ['password-stdin', 'json'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const address = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const credentials = await ctx.withServices(['directory'], async ({ directory }) => {
      // Check before asking for a password: nobody wants to type one twice for nothing.
      if (await userExists(directory, address)) throw new CliError(`user ${address} already exists`);
      const password = await newPassword(ctx.io, args, false);
      const stored = password === null ? null : await credentialsFor(password);
      await directory.addUser(address, stored?.passwordHash ?? null, stored?.scram ?? null);
      return stored;
    });
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify({ address, hasPassword: credentials !== null }));
      return 0;
    }
    await writeLine(
      ctx.io.stdout,
      `added user ${address}${credentials === null ? ' (no password: cannot log in)' : ''}`,
    );
    return 0;
  },
};

export const userPasswd: Command = {
  name: 'user passwd',
  args: 'ADDRESS [--password-stdin] [--json]',
  summary: "set a user's password (from stdin, or a prompt on a terminal)",
  flags: ['password-stdin', 'json'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const address = userAddress(args.positionals[0]!, ctx.config().localDomains);
    await ctx.withServices(['directory'], async ({ directory }) => {
      await requireUser(directory, address);
      const password = await newPassword(ctx.io, args, true);
      await directory.setCredentials(address, await credentialsFor(password!));
    });
    if (args.flags.has('json')) await writeLine(ctx.io.stdout, JSON.stringify({ address }));
    else await writeLine(ctx.io.stdout, `password set for ${address}`);
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
  readOnly: true,
  async run(ctx, args) {
    const { users, certificates, quotas } = await ctx.withServices(['directory'], async ({ directory }) => {
      const users = await directory.listUsers();
      const quotas = new Map<string, QuotaLimits | null>();
      for (const u of users) quotas.set(u.address, await directory.getQuota(u.address));
      return { users, certificates: await directory.listCertificates(), quotas };
    });
    users.sort((a, b) => a.address.localeCompare(b.address));
    const certCount = new Map<string, number>();
    for (const c of certificates) certCount.set(c.address, (certCount.get(c.address) ?? 0) + 1);
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      const rows = users.map((u) => ({
        address: u.address,
        hasPassword: u.hasPassword,
        hasScram: u.hasScram,
        certificates: certCount.get(u.address) ?? 0,
        created: iso(u.createdMs),
        // The limits that apply (the config's default unless set for the user); null: unlimited.
        quota: quotas.get(u.address) ?? null,
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
      const certs = certCount.get(u.address) ?? 0;
      const suffix = certs === 0 ? '' : `  ${certs} certificate${certs === 1 ? '' : 's'}`;
      await writeLine(
        stdout,
        `${u.address.padEnd(width)}  ${u.hasPassword ? 'password' : 'no-login'}  ${iso(u.createdMs)}${suffix}`,
      );
    }
    return 0;
  },
};

/** The mailboxes delivery fills (INBOX, and Junk for mail the inbound checks sent there). */
const KEPT_MAILBOXES = ['INBOX', 'Junk'] as const;

export const userDel: Command = {
  name: 'user del',
  args: 'ADDRESS [--json]',
  summary: 'delete a local user (with its credentials, certificates and send-as grants; its mail is kept)',
  flags: ['json'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const config = ctx.config();
    const address = userAddress(args.positionals[0]!, config.localDomains);
    const report = await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      if (!(await directory.deleteUser(address))) throw new CliError(`no such user: ${address}`);
      // The store is not touched: a user is a directory entry, its mail stays under data/mail.
      let messages = 0;
      for (const mailbox of KEPT_MAILBOXES) messages += (await store.list(address, mailbox)).length;
      const lines = [
        `its mailbox is kept (${messages} message${messages === 1 ? '' : 's'}): ` +
          `adding ${address} again gives it back`,
      ];
      const aliases = (await directory.listAliases()).filter((a) => a.target === address).map((a) => a.alias);
      if (aliases.length > 0) {
        lines.push(
          `aliases that still list ${address}: ${[...new Set(aliases)].sort().join(', ')} ` +
            `(remove with: tern alias del ALIAS ${address})`,
        );
      }
      if (normalizeAddress(postmasterAddress(config)) === address) {
        lines.push(`${address} is the postmaster (RFC 5321 requires it): tern serve adds it again at start`);
      }
      return { messages, aliases: [...new Set(aliases)].sort(), lines };
    });
    if (args.flags.has('json')) {
      await writeLine(
        ctx.io.stdout,
        JSON.stringify({ address, messagesKept: report.messages, aliases: report.aliases }),
      );
      return 0;
    }
    await writeLine(ctx.io.stdout, `deleted user ${address}`);
    for (const line of report.lines) await writeLine(ctx.io.stdout, line);
    return 0;
  },
};

/** The fingerprint named by --fingerprint or --cert-file (exactly one of them). */
async function fingerprintArg(ctx: CommandContext, args: ParsedArgs, cmd: Command): Promise<string> {
  const given = args.options.get('fingerprint');
  const file = args.options.get('cert-file');
  if ((given === undefined) === (file === undefined)) {
    throw new UsageError('give the certificate with either --fingerprint or --cert-file', usageLine(cmd));
  }
  if (given !== undefined) {
    const fp = normalizeFingerprint(given);
    if (fp === null) {
      throw new CliError(`'${given}' is not a SHA-256 fingerprint (expected 64 hex digits, colons allowed)`);
    }
    return fp;
  }
  const path = resolve(ctx.io.cwd, file!);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${file!}: ${code ?? (err instanceof Error ? err.message : String(err))}`);
  }
  try {
    return certificateFingerprint(data);
  } catch {
    throw new CliError(`${file!} does not hold an X.509 certificate (PEM or DER)`);
  }
}

async function listCertificates(ctx: CommandContext, address: string | null, json: boolean): Promise<void> {
  const mappings: CertificateMapping[] = await ctx.withServices(['directory'], async ({ directory }) => {
    if (address === null) return directory.listCertificates();
    await requireUser(directory, address);
    return directory.listCertificates(address);
  });
  if (json) {
    const rows = mappings.map((m) => ({
      address: m.address,
      fingerprint: m.fingerprint,
      created: iso(m.createdMs),
    }));
    await writeLine(ctx.io.stdout, JSON.stringify(rows, null, 2));
  } else if (mappings.length === 0) {
    await writeLine(ctx.io.stdout, 'no certificates');
  } else {
    await writeTable(
      ctx.io,
      mappings.map((m) => [m.address, m.fingerprint, iso(m.createdMs)]),
    );
  }
}

export const userCert: Command = {
  name: 'user cert',
  args: 'ADDRESS (--fingerprint SHA256 | --cert-file FILE) [--delete] [--json] | [ADDRESS] --list [--json]',
  summary: 'map a TLS client certificate to a user (SASL EXTERNAL), remove a mapping, or list them',
  flags: ['delete', 'list', 'json'],
  options: ['fingerprint', 'cert-file'],
  minPositionals: 0,
  maxPositionals: 1,
  readOnly: (args) => args.flags.has('list'),
  async run(ctx, args) {
    const text = args.positionals[0];
    const address = text === undefined ? null : userAddress(text, ctx.config().localDomains);
    if (args.flags.has('list')) {
      if (args.flags.has('delete') || args.options.size > 0) {
        throw new UsageError('--list takes no --delete, --fingerprint or --cert-file', usageLine(userCert));
      }
      await listCertificates(ctx, address, args.flags.has('json'));
      return 0;
    }
    if (address === null) throw new UsageError('missing ADDRESS', usageLine(userCert));
    const fingerprint = await fingerprintArg(ctx, args, userCert);
    const remove = args.flags.has('delete');
    await ctx.withServices(['directory'], async ({ directory }) => {
      await requireUser(directory, address);
      if (!remove) return directory.addCertificate(address, fingerprint);
      if (!(await directory.deleteCertificate(address, fingerprint))) {
        throw new CliError(`no certificate ${fingerprint} for ${address}`);
      }
    });
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify({ address, fingerprint, removed: remove }));
      return 0;
    }
    await writeLine(
      ctx.io.stdout,
      remove
        ? `removed certificate ${fingerprint} from ${address}`
        : `mapped certificate ${fingerprint} to ${address}`,
    );
    return 0;
  },
};

export const userSendAs: Command = {
  name: 'user sendas',
  args: 'ADDRESS add|del PATTERN [--json] | ADDRESS list [--json]',
  summary: 'let a user send as another address, or any address of a domain (PATTERN @domain)',
  flags: ['json'],
  minPositionals: 1,
  maxPositionals: 3,
  readOnly: (args) => args.positionals[1] === 'list',
  async run(ctx, args) {
    const [text, action, patternText] = args.positionals as [string, string | undefined, string | undefined];
    if (action === undefined) throw new UsageError('missing add, del or list', usageLine(userSendAs));
    const address = userAddress(text, ctx.config().localDomains);
    const { stdout } = ctx.io;
    if (action === 'list') {
      if (patternText !== undefined)
        throw new UsageError(`unexpected argument '${patternText}'`, usageLine(userSendAs));
      const grants = await ctx.withServices(['directory'], async ({ directory }) => {
        await requireUser(directory, address);
        return directory.listSendAs(address);
      });
      if (args.flags.has('json')) {
        const rows = grants.map((g) => ({ user: g.user, pattern: g.pattern, created: iso(g.createdMs) }));
        await writeLine(stdout, JSON.stringify(rows, null, 2));
      } else if (grants.length === 0) {
        await writeLine(stdout, `no send-as grants for ${address}`);
      } else {
        for (const g of grants) await writeLine(stdout, g.pattern);
      }
      return 0;
    }
    if (action !== 'add' && action !== 'del') {
      throw new UsageError(`unknown action '${action}' (expected add, del or list)`, usageLine(userSendAs));
    }
    if (patternText === undefined) throw new UsageError('missing PATTERN', usageLine(userSendAs));
    const pattern = sendAsPattern(patternText);
    await ctx.withServices(['directory'], async ({ directory }) => {
      await requireUser(directory, address);
      if (action === 'add') {
        if ((await directory.listSendAs(address)).some((g) => g.pattern === pattern)) {
          throw new CliError(`${address} may already send as ${pattern}`);
        }
        return directory.addSendAs(address, pattern);
      }
      if (!(await directory.deleteSendAs(address, pattern))) {
        throw new CliError(`${address} has no send-as grant for ${pattern}`);
      }
    });
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify({ user: address, pattern, removed: action === 'del' }));
      return 0;
    }
    await writeLine(
      stdout,
      action === 'add'
        ? `${address} may now send as ${pattern}`
        : `${address} may no longer send as ${pattern}`,
    );
    return 0;
  },
};

const POLICY_OPTIONS = ['sender-check', 'max-messages-per-hour', 'max-recipients-per-hour'] as const;

/** The changes the policy options ask for; a bad value is a usage error (exit 2). */
function policyChanges(args: ParsedArgs, cmd: Command): Partial<UserPolicy> {
  const bad = (option: string, value: string, expected: string): UsageError =>
    new UsageError(`--${option}: expected ${expected}, got '${value}'`, usageLine(cmd));
  const limit = (option: (typeof POLICY_OPTIONS)[number]): number | null | undefined => {
    const value = args.options.get(option);
    if (value === undefined) return undefined;
    if (value === 'default') return null;
    const n = /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n)) throw bad(option, value, "a whole number or 'default'");
    return n;
  };
  const changes: { -readonly [K in keyof UserPolicy]?: UserPolicy[K] } = {};
  const check = args.options.get('sender-check');
  if (check !== undefined) {
    if (check !== 'on' && check !== 'off') throw bad('sender-check', check, 'on or off');
    changes.senderCheck = check === 'on';
  }
  const messages = limit('max-messages-per-hour');
  if (messages !== undefined) changes.maxMessagesPerHour = messages;
  const recipients = limit('max-recipients-per-hour');
  if (recipients !== undefined) changes.maxRecipientsPerHour = recipients;
  return changes;
}

export const userPolicy: Command = {
  name: 'user policy',
  args:
    'ADDRESS [--sender-check on|off] [--max-messages-per-hour N|default] ' +
    '[--max-recipients-per-hour N|default] [--json]',
  summary: "show or change a user's sender check and hourly limits (default: the config's [submission])",
  flags: ['json'],
  options: [...POLICY_OPTIONS],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: (args) => POLICY_OPTIONS.every((o) => !args.options.has(o)),
  async run(ctx, args) {
    const address = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const changes = policyChanges(args, userPolicy);
    const policy = await ctx.withServices(['directory'], async ({ directory }) => {
      await requireUser(directory, address);
      return Object.keys(changes).length === 0
        ? directory.getUserPolicy(address)
        : directory.setUserPolicy(address, changes);
    });
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify({ address, ...policy }, null, 2));
      return 0;
    }
    const limitText = (n: number | null): string => (n === null ? 'default' : String(n));
    await writeTable(ctx.io, [
      ['sender-check', policy.senderCheck ? 'on' : 'off'],
      ['max-messages-per-hour', limitText(policy.maxMessagesPerHour)],
      ['max-recipients-per-hour', limitText(policy.maxRecipientsPerHour)],
    ]);
    return 0;
  },
};

/** The changes --storage and --messages ask for; a bad value is a usage error (exit 2). */
function quotaChanges(args: ParsedArgs, cmd: Command): QuotaChange {
  const read = (option: 'storage' | 'messages', expected: string) => {
    const value = args.options.get(option);
    if (value === undefined) return undefined;
    const parsed = option === 'storage' ? parseStorageSize(value) : parseMessageLimit(value);
    if (parsed === undefined) {
      throw new UsageError(`--${option}: expected ${expected}, got '${value}'`, usageLine(cmd));
    }
    return parsed;
  };
  const storage = read('storage', "a size (500M, 2G, bytes), 'unlimited' or 'default'");
  const messages = read('messages', "a whole number, 'unlimited' or 'default'");
  return {
    ...(storage === undefined ? {} : { storageBytes: storage }),
    ...(messages === undefined ? {} : { messages }),
  };
}

export const userQuota: Command = {
  name: 'user quota',
  args: 'ADDRESS [--storage SIZE|unlimited|default] [--messages N|unlimited|default] [--json]',
  summary: "show or set a user's mailbox quota (default: the config's [limits] mailbox_quota_*) and usage",
  flags: ['json'],
  options: ['storage', 'messages'],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: (args) => !args.options.has('storage') && !args.options.has('messages'),
  async run(ctx, args) {
    const config = ctx.config();
    const address = userAddress(args.positionals[0]!, config.localDomains);
    const change = quotaChanges(args, userQuota);
    const limits = await ctx.withServices(['directory'], async ({ directory }) => {
      await requireUser(directory, address);
      return Object.keys(change).length === 0
        ? directory.getQuota(address)
        : directory.setQuota(address, change);
    });
    if (limits === null) throw new CliError(`no such user: ${address}`);
    // No mailbox store yet (no mail was ever delivered here): nothing is used. Not created just to read 0.
    const usage = existsSync(serviceFile(config, 'store').path)
      ? await ctx.withServices(['store'], ({ store }) => store.quota(address))
      : { messages: 0, bytes: 0 };
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify({ address, ...limits, usage }, null, 2));
      return 0;
    }
    const limitText = (limit: number | null, show: (n: number) => string): string =>
      limit === null ? 'unlimited' : show(limit);
    await writeTable(ctx.io, [
      ['resource', 'used', 'limit'],
      ['storage', formatBytes(usage.bytes), limitText(limits.storageBytes, formatBytes)],
      ['messages', String(usage.messages), limitText(limits.messages, String)],
    ]);
    return 0;
  },
};

export const userCommands: readonly Command[] = [
  userAdd,
  userPasswd,
  userList,
  userDel,
  userCert,
  userSendAs,
  userPolicy,
  userQuota,
];
