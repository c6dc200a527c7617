// Users and aliases, the parts `tern user|alias` and the admin API share: what is stored for a password,
// and what an operator should hear about a new alias.

import { addressKey, isValidDomain, normalizeDomain, parseMailbox } from '../core/address.ts';
import type { Alias, Credentials, Directory } from '../directory/directory.ts';
import { OpError } from './errors.ts';
import { hashPassword } from '../directory/password.ts';
import { deriveScramSecrets, formatScramSecrets } from '../protocol/sasl/index.ts';

export /** Everything stored for a password: the scrypt hash (PLAIN, LOGIN) and the SCRAM secret (SCRAM-SHA-256). */
async function credentialsFor(password: string): Promise<Credentials> {
  return {
    passwordHash: await hashPassword(password),
    scram: formatScramSecrets(deriveScramSecrets(password)),
  };
}

export /** What the operator should know about a new alias -> target (`existing`: the aliases before it). */
async function aliasWarnings(
  directory: Directory,
  alias: string,
  target: string,
  existing: readonly Alias[],
): Promise<string[]> {
  const warnings: string[] = [];
  const isUser = async (address: string): Promise<boolean> =>
    (await directory.getCredentials(address)) !== null;
  const targetDomain = target.slice(target.lastIndexOf('@') + 1);
  if (
    directory.isLocalDomain(targetDomain) &&
    !(await isUser(target)) &&
    !existing.some((a) => a.alias === target)
  ) {
    warnings.push(
      `${target} is no user and no alias: mail to ${alias} cannot be delivered to it ` +
        `(add it with: tern user add ${target})`,
    );
  }
  // Before this, the user got its own mail; an alias of its name now sends that mail elsewhere.
  if (target !== alias && !existing.some((a) => a.alias === alias) && (await isUser(alias))) {
    warnings.push(
      `${alias} is a user: its mail now goes to the alias's targets only ` +
        `(to keep a copy: tern alias add ${alias} ${alias})`,
    );
  }
  return warnings;
}

/** A send-as pattern as the directory keys it: `@domain` (any domain, not only local ones) or an address. */
export function sendAsPattern(text: string): string {
  const s = text.trim();
  if (s.startsWith('@')) {
    const domain = s.slice(1);
    if (isValidDomain(domain.replace(/\.$/, ''), true)) return `@${normalizeDomain(domain)}`;
  } else {
    const mailbox = parseMailbox(s, true);
    if (mailbox !== null && !mailbox.domain.startsWith('[')) return addressKey(mailbox);
  }
  throw new OpError('invalid', `'${text}' is not a valid send-as pattern (expected local@domain or @domain)`);
}
