// The postmaster (RFC 5321 §4.5.1): every domain that takes mail MUST accept mail for "postmaster" (any
// case, and "<Postmaster>" without a domain). Tern sends postmaster@<every local domain> that has no alias
// or user of its own to one configured address (queue.postmaster, default postmaster@<first local
// domain>; the directory does the mapping in resolve()), and makes sure at start that mail to it can be
// delivered: a fresh install gets a mailbox for it (a user without a password), and a postmaster that
// cannot be made deliverable is logged as a warning, never a refusal to start.
// postmasterProblem() is the check alone, for `tern serve` and for a configuration check command.
// Not here: the "<Postmaster>" syntax (src/protocol/smtp/command.ts) and its domain (src/policy/relay.ts).

import type { Config } from '../config/config.ts';
import { addressKey, parseMailbox } from '../core/address.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import type { Directory } from './directory.ts';

type PostmasterConfig = Pick<Config, 'queue' | 'localDomains' | 'hostname'>;

/** Where mail to the postmaster (and double bounces) goes: queue.postmaster, else postmaster@<first local domain>. */
export function postmasterAddress(config: PostmasterConfig): string {
  return config.queue.postmaster ?? `postmaster@${config.localDomains[0] ?? config.hostname}`;
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

/**
 * Why mail to the postmaster cannot be delivered, as one line for the operator, or null when it can:
 * the configured postmaster and postmaster@ each local domain must resolve to a mailbox or a forward.
 */
export async function postmasterProblem(
  config: PostmasterConfig,
  directory: Pick<Directory, 'isLocalDomain' | 'resolve'>,
): Promise<string | null> {
  const address = postmasterAddress(config);
  if (config.localDomains.length === 0) {
    return `local_domains is empty: nothing here takes mail for the postmaster (${address})`;
  }
  if (!directory.isLocalDomain(domainOf(address))) {
    return `the postmaster ${address} (queue.postmaster) is not in local_domains`;
  }
  if ((await directory.resolve(address)).kind !== 'local') {
    return (
      `the postmaster ${address} has no mailbox: it is no user, and no alias or catch-all delivers it ` +
      `(add it with: tern user add ${address})`
    );
  }
  for (const domain of config.localDomains) {
    const pm = `postmaster@${domain}`;
    if ((await directory.resolve(pm)).kind !== 'local') {
      return `${pm} has an alias that reaches no mailbox and no forward address (see: tern alias list)`;
    }
  }
  return null;
}

/**
 * At server start: when the configured postmaster is in a local domain and nothing takes its mail (no
 * user, no alias, no catch-all), add it as a user without a password, so a fresh install accepts and
 * keeps postmaster mail (readable with `tern mailbox list`); then warn if the postmaster is still not
 * deliverable. Never throws: a directory error becomes the warning. Resolves with the problem, or null.
 */
export async function ensurePostmaster(
  config: PostmasterConfig,
  directory: Pick<Directory, 'isLocalDomain' | 'resolve' | 'addUser' | 'getCredentials' | 'listAliases'>,
  logger: Logger,
): Promise<string | null> {
  const address = postmasterAddress(config);
  const mailbox = parseMailbox(address, true);
  let problem: string | null;
  try {
    if (
      mailbox !== null &&
      directory.isLocalDomain(mailbox.domain) &&
      (await directory.resolve(address)).kind === 'unknown' &&
      (await directory.getCredentials(address)) === null &&
      // An alias that leads nowhere is the operator's to fix: a user beside it would get nothing.
      !(await directory.listAliases()).some((a) => a.alias === addressKey(mailbox))
    ) {
      await directory.addUser(address, null);
      logger.event(Events.postmasterCreated, { address: addressKey(mailbox), password: false });
    }
    problem = await postmasterProblem(config, directory);
  } catch (err) {
    problem = `cannot check the postmaster ${address}: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (problem !== null) logger.warn(Events.postmasterUndeliverable, { address, problem });
  return problem;
}
