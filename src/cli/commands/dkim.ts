// `tern dkim keygen|list|rm`: the DKIM signing keys under the data directory. keygen creates one and
// prints the DNS TXT record to publish; list shows every key with its DNS name; rm deletes one.
// Every key of a domain signs its outbound mail: two keys give two DKIM-Signature fields. That is how
// both dual signing (RSA and Ed25519, RFC 8463 §5) and a rollover work: publish the new selector's
// record, keygen it, let both sign for a while, `dkim rm` the old one, withdraw its record days later.
// RSA (2048 bits) is the default: every verifier reads it, while Ed25519 is still not read everywhere.
// Deliberately NOT here: the other DNS records (`tern dns records`), publishing anything in DNS.

import type { DkimSigningAlgorithm } from '../../delivery/dkim-sign.ts';
import {
  DkimSignError,
  dkimDnsRecord,
  generateDkimKey,
  listDkimKeys,
  removeDkimKey,
} from '../../delivery/dkim-sign.ts';
import type { Command, CommandContext, ParsedArgs } from '../command.ts';
import { usageLine } from '../command.ts';
import { CliError, UsageError, writeLine } from '../io.ts';
import { existingDataDir } from '../data-dir.ts';
import { dkimKeyJson as keyJson } from '../../ops/dkim.ts';
import { isoTime } from '../time.ts';

const ALGORITHMS: Readonly<Record<string, DkimSigningAlgorithm>> = {
  rsa: 'rsa-sha256',
  'rsa-sha256': 'rsa-sha256',
  ed25519: 'ed25519-sha256',
  'ed25519-sha256': 'ed25519-sha256',
};

/** DkimSignError is written for the operator (a bad name, a key that exists): exit 1 with its words. */
async function dkim<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DkimSignError) throw new CliError(err.message);
    throw err;
  }
}

function requiredNames(args: ParsedArgs, cmd: Command): { domain: string; selector: string } {
  const domain = args.options.get('domain');
  const selector = args.options.get('selector');
  if (domain === undefined) throw new UsageError('missing --domain', usageLine(cmd));
  if (selector === undefined) throw new UsageError('missing --selector', usageLine(cmd));
  return { domain, selector };
}

/** Which selectors sign a domain's mail now: said after every change, so a second key is no surprise. */
async function signingNote(ctx: CommandContext, domain: string): Promise<void> {
  const keys = (await listDkimKeys(ctx.config().dataDir)).filter((k) => k.key.domain === domain);
  const selectors = keys.map((k) => k.key.selector).join(', ');
  if (keys.length > 1) {
    await writeLine(
      ctx.io.stderr,
      `tern: note: ${domain} now has ${keys.length} keys (${selectors}): outbound mail from ${domain} is ` +
        'signed with each of them; remove one with tern dkim rm',
    );
  }
}

export const dkimKeygen: Command = {
  name: 'dkim keygen',
  args: '--domain D --selector S [--algo ed25519|rsa] [--json]',
  summary: 'create a DKIM signing key for domain D and print the DNS TXT record to publish',
  flags: ['json'],
  options: ['domain', 'selector', 'algo'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const { domain, selector } = requiredNames(args, dkimKeygen);
    const algoText = (args.options.get('algo') ?? 'rsa').toLowerCase();
    const algorithm = ALGORITHMS[algoText];
    if (algorithm === undefined) {
      throw new UsageError(`--algo must be rsa or ed25519, not '${algoText}'`, usageLine(dkimKeygen));
    }
    const { dataDir } = ctx.config();
    const nowMs = ctx.clock.nowMs();
    const created = await dkim(() => generateDkimKey({ dataDir, domain, selector, algorithm, nowMs }));
    if (args.flags.has('json')) {
      const json = { ...keyJson({ ...created, createdMs: nowMs }), keyFile: created.paths.key };
      await writeLine(ctx.io.stdout, JSON.stringify(json, null, 2));
    } else {
      // The record alone on stdout (for scripts); where the key went, on stderr.
      await writeLine(ctx.io.stderr, `created ${algorithm} key ${created.paths.key}; publish this record:`);
      await writeLine(ctx.io.stdout, dkimDnsRecord(created.key).zoneLine);
    }
    await signingNote(ctx, created.key.domain);
    return 0;
  },
};

export const dkimList: Command = {
  name: 'dkim list',
  args: '[--json]',
  summary: 'list the DKIM keys: domain, selector, algorithm, created, the DNS name of the record',
  flags: ['json'],
  minPositionals: 0,
  maxPositionals: 0,
  readOnly: true,
  async run(ctx, args) {
    const keys = await dkim(() => listDkimKeys(existingDataDir(ctx.config())));
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify(keys.map(keyJson), null, 2));
      return 0;
    }
    if (keys.length === 0) {
      await writeLine(stdout, 'no DKIM keys (create one with tern dkim keygen)');
      return 0;
    }
    const rows = [
      ['DOMAIN', 'SELECTOR', 'ALGORITHM', 'CREATED', 'DNS NAME'],
      ...keys.map((k) => {
        const created = k.createdMs === null ? '-' : isoTime(k.createdMs);
        return [k.key.domain, k.key.selector, k.key.algorithm, created, dkimDnsRecord(k.key).name];
      }),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows) {
      await writeLine(
        stdout,
        row.map((cell, i) => (i + 1 < row.length ? cell.padEnd(widths[i]!) : cell)).join('  '),
      );
    }
    return 0;
  },
};

export const dkimRm: Command = {
  name: 'dkim rm',
  args: '--domain D --selector S [--json]',
  summary: 'delete a DKIM key: mail from D is no longer signed with it',
  flags: ['json'],
  options: ['domain', 'selector'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const names = requiredNames(args, dkimRm);
    const { dataDir } = ctx.config();
    const key = await dkim(() => removeDkimKey(dataDir, names.domain, names.selector));
    const remaining = (await dkim(() => listDkimKeys(dataDir)))
      .filter((k) => k.key.domain === key.domain)
      .map((k) => k.key.selector);
    const name = `${key.selector}._domainkey.${key.domain}`;
    if (args.flags.has('json')) {
      const json = { domain: key.domain, selector: key.selector, algorithm: key.algorithm, remaining };
      await writeLine(ctx.io.stdout, JSON.stringify(json, null, 2));
      return 0;
    }
    await writeLine(ctx.io.stdout, `removed DKIM key ${name} (${key.algorithm})`);
    const signing =
      remaining.length === 0
        ? `mail from ${key.domain} is no longer signed`
        : `${key.domain} is still signed with: ${remaining.join(', ')}`;
    await writeLine(
      ctx.io.stderr,
      `tern: note: ${signing}; keep the TXT record ${name} published for a few days (mail signed ` +
        'with it may still be verified), then withdraw it',
    );
    return 0;
  },
};

export const dkimCommands: readonly Command[] = [dkimKeygen, dkimList, dkimRm];
