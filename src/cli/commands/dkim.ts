// `tern dkim keygen --domain D --selector S [--algo ed25519|rsa]`: create a DKIM signing key under the
// data directory and print the DNS TXT record to publish. Once the key exists, outbound mail from D is
// signed with it; keys for both algorithms under two selectors give dual signatures (RFC 8463 §5).
// RSA (2048 bits) is the default: every verifier reads it, while Ed25519 is still not read everywhere.
// Deliberately NOT here: key rotation and removal (create a new selector, withdraw the old record, then
// delete its files) and the other DNS records (`tern dns records`).

import type { DkimSigningAlgorithm } from '../../delivery/dkim-sign.ts';
import { DkimSignError, dkimDnsRecord, generateDkimKey } from '../../delivery/dkim-sign.ts';
import type { Command } from '../command.ts';
import { usageLine } from '../command.ts';
import { CliError, UsageError, writeLine } from '../io.ts';

const ALGORITHMS: Readonly<Record<string, DkimSigningAlgorithm>> = {
  rsa: 'rsa-sha256',
  'rsa-sha256': 'rsa-sha256',
  ed25519: 'ed25519-sha256',
  'ed25519-sha256': 'ed25519-sha256',
};

export const dkimKeygen: Command = {
  name: 'dkim keygen',
  args: '--domain D --selector S [--algo ed25519|rsa]',
  summary: 'create a DKIM signing key for domain D and print the DNS TXT record to publish',
  flags: [],
  options: ['domain', 'selector', 'algo'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const domain = args.options.get('domain');
    const selector = args.options.get('selector');
    const algoText = (args.options.get('algo') ?? 'rsa').toLowerCase();
    if (domain === undefined) throw new UsageError('missing --domain', usageLine(dkimKeygen));
    if (selector === undefined) throw new UsageError('missing --selector', usageLine(dkimKeygen));
    const algorithm = ALGORITHMS[algoText];
    if (algorithm === undefined) {
      throw new UsageError(`--algo must be rsa or ed25519, not '${algoText}'`, usageLine(dkimKeygen));
    }
    const { dataDir } = ctx.config();
    let created: Awaited<ReturnType<typeof generateDkimKey>>;
    try {
      created = await generateDkimKey({ dataDir, domain, selector, algorithm, nowMs: ctx.clock.nowMs() });
    } catch (err) {
      if (err instanceof DkimSignError) throw new CliError(err.message);
      throw err;
    }
    const record = dkimDnsRecord(created.key);
    // The record alone on stdout (for scripts); where the key went, on stderr.
    await writeLine(ctx.io.stderr, `created ${algorithm} key ${created.paths.key}; publish this record:`);
    await writeLine(ctx.io.stdout, record.zoneLine);
    return 0;
  },
};

export const dkimCommands: readonly Command[] = [dkimKeygen];
