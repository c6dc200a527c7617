// Turning what a person typed (at the CLI or in the admin API) into the address keys the directory stores, with errors that say what
// is wrong. Syntax is RFC 5321 §4.1.2 (UTF-8 allowed, RFC 6531), via src/core/address.ts. Quoted local
// parts are refused for accounts: they are legal on the wire but a trap as login names.

import type { Mailbox } from '../core/address.ts';
import { addressKey, isValidDomain, normalizeDomain, parseMailbox } from '../core/address.ts';
import { OpError } from './errors.ts';

function parse(text: string, what: string): Mailbox {
  const mailbox = parseMailbox(text.trim(), true);
  if (mailbox === null || mailbox.domain.startsWith('[')) {
    throw new OpError('invalid', `'${text}' is not a valid ${what} (expected local@domain)`);
  }
  return mailbox;
}

function requireLocal(domain: string, localDomains: readonly string[]): void {
  const key = normalizeDomain(domain);
  if (!localDomains.some((d) => normalizeDomain(d) === key)) {
    const list = localDomains.length === 0 ? 'none configured' : localDomains.join(', ');
    throw new OpError(
      'invalid',
      `${key} is not a local domain (local domains: ${list}); add it to local_domains in the config`,
    );
  }
}

/** A local user's address key (lower-cased), refusing other domains. */
export function userAddress(text: string, localDomains: readonly string[]): string {
  const mailbox = parse(text, 'address');
  if (mailbox.quoted) throw new OpError('invalid', `'${text}': quoted local parts are not allowed for users`);
  requireLocal(mailbox.domain, localDomains);
  return addressKey(mailbox);
}

/**
 * A mailbox owner's address key: a local user's, or, for mail kept in catcher mode (docs/catch.md), any
 * recipient's. Whether such a mailbox exists is the caller's to check.
 */
export function mailboxAddress(text: string): string {
  return addressKey(parse(text, 'address'));
}

/** An alias: `name@domain`, or `@domain` for the domain's catch-all; the domain must be local. */
export function aliasAddress(text: string, localDomains: readonly string[]): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('@')) {
    const domain = trimmed.slice(1);
    if (!isValidDomain(domain, true))
      throw new OpError('invalid', `'${text}' is not a valid catch-all (expected @domain)`);
    requireLocal(domain, localDomains);
    return `@${normalizeDomain(domain)}`;
  }
  const mailbox = parse(text, 'alias');
  requireLocal(mailbox.domain, localDomains);
  return addressKey(mailbox);
}

/** An alias target: a local user or a remote address, as the directory keys it (lower-cased). */
export function targetAddress(text: string): string {
  return addressKey(parse(text, 'target address'));
}
