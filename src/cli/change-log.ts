// What the CLI tells the running server about directory changes: the Directory handed to a command is
// wrapped so that every change it makes (a user added, an alias removed, a policy set) is appended to
// the queue database's change log once it succeeded, which the server logs as `cli.<event>`
// (queue/change-log-watcher.ts). Wrapping here, rather than a call in each command, means a new
// command cannot forget it. Details name what changed, never a credential (no hashes, no SCRAM secrets).
// Queue commands record their own entry (one per command, with every id), see commands/queue.ts.

import type { LogFields } from '../core/ports.ts';
import type { Directory } from '../directory/directory.ts';

export interface Change {
  readonly event: string;
  readonly detail: LogFields;
}

type Method = {
  [K in keyof Directory]: Directory[K] extends (...args: never[]) => Promise<unknown> ? K : never;
}[keyof Directory];

/** For each changing method: the change-log entry of a call that returned `result`; null: nothing changed. */
type Describe<K extends Method> = (
  args: Parameters<Directory[K]>,
  result: Awaited<ReturnType<Directory[K]>>,
) => Change | null;

const DIRECTORY_CHANGES: { readonly [K in Method]?: Describe<K> } = {
  addUser: ([address, hash]) => ({ event: 'user.add', detail: { address, password: hash !== null } }),
  setPasswordHash: ([address]) => ({ event: 'user.passwd', detail: { address } }),
  setCredentials: ([address]) => ({ event: 'user.passwd', detail: { address } }),
  deleteUser: ([address], deleted) => (deleted ? { event: 'user.del', detail: { address } } : null),
  addAlias: ([alias, target]) => ({ event: 'alias.add', detail: { alias, target } }),
  deleteAlias: ([alias, target], deleted) =>
    deleted ? { event: 'alias.del', detail: { alias, target: target ?? null } } : null,
  addCertificate: ([address, fingerprint]) => ({ event: 'user.cert.add', detail: { address, fingerprint } }),
  deleteCertificate: ([address, fingerprint], deleted) =>
    deleted ? { event: 'user.cert.del', detail: { address, fingerprint } } : null,
  addSendAs: ([address, pattern]) => ({ event: 'user.sendas.add', detail: { address, pattern } }),
  deleteSendAs: ([address, pattern], deleted) =>
    deleted ? { event: 'user.sendas.del', detail: { address, pattern: pattern ?? null } } : null,
  setUserPolicy: ([address, changes]) => ({ event: 'user.policy', detail: { address, ...changes } }),
  // The limits that apply afterwards (null: unlimited), whichever of them the command named.
  setQuota: ([address], limits) => ({ event: 'user.quota', detail: { address, ...limits } }),
};

function isChangingMethod(name: string | symbol): name is Method {
  return typeof name === 'string' && Object.hasOwn(DIRECTORY_CHANGES, name);
}

/** The directory, with every successful change also passed to `record`. */
export function recordingDirectory(
  directory: Directory,
  record: (change: Change) => Promise<void>,
): Directory {
  return new Proxy(directory, {
    get(target, name) {
      const value: unknown = Reflect.get(target, name, target);
      if (typeof value !== 'function') return value;
      if (!isChangingMethod(name)) return (value as (...a: unknown[]) => unknown).bind(target);
      const describe = DIRECTORY_CHANGES[name] as (args: unknown[], result: unknown) => Change | null;
      return async (...args: unknown[]): Promise<unknown> => {
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        const change = describe(args, result);
        if (change !== null) await record(change);
        return result;
      };
    },
  });
}
