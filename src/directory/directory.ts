// The directory: local users, aliases (incl. a catch-all per domain) and credentials.
// Local domains come from the config; users and aliases live in the data directory.
// Contract: directory.contract.ts, run by every implementation.

export interface User {
  /** Address key: local part and domain lower-cased. */
  readonly address: string;
  readonly createdMs: number;
  readonly hasPassword: boolean;
}

export interface Alias {
  /** "alias@domain" or "@domain" for a domain's catch-all. */
  readonly alias: string;
  readonly target: string;
}

/** Where a recipient address ends up: local mailboxes (users) and/or forwarded remote addresses. */
export type Resolution =
  | { readonly kind: 'local'; readonly users: readonly string[]; readonly forward: readonly string[] }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'remote' };

export interface Directory {
  isLocalDomain(domain: string): boolean;
  /** Resolve an address: users first, then aliases (expanded, loop-safe), then the domain's catch-all. */
  resolve(address: string): Promise<Resolution>;
  addUser(address: string, passwordHash: string | null): Promise<void>;
  setPasswordHash(address: string, passwordHash: string): Promise<void>;
  deleteUser(address: string): Promise<boolean>;
  listUsers(): Promise<User[]>;
  getPasswordHash(address: string): Promise<string | null>;
  addAlias(alias: string, target: string): Promise<void>;
  deleteAlias(alias: string, target?: string): Promise<boolean>;
  listAliases(): Promise<Alias[]>;
  close(): Promise<void>;
}
