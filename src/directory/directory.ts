// The directory: local users, aliases (incl. a catch-all per domain), credentials, client-certificate
// mappings, sender rights (send-as grants), per-user submission policy and mailbox quota limits (the
// limits only: usage is the mailbox store's, the check is quota.ts's overQuota).
// Local domains come from the config; users and aliases live in the data directory.
// Contract: directory.contract.ts, run by every implementation.

export interface User {
  /** Address key: local part and domain lower-cased. */
  readonly address: string;
  readonly createdMs: number;
  readonly hasPassword: boolean;
  /** A SCRAM-SHA-256 secret is stored (set together with the password by the CLI). */
  readonly hasScram: boolean;
}

export interface Alias {
  /** "alias@domain" or "@domain" for a domain's catch-all. */
  readonly alias: string;
  readonly target: string;
}

/**
 * What a user authenticates with. Both are opaque strings to the directory: `passwordHash` is a PHC
 * string (password.ts), `scram` the serialized SCRAM-SHA-256 secret (`SCRAM-SHA-256$<iter>:<salt>$
 * <StoredKey>:<ServerKey>`, see src/protocol/sasl/). Null: not set.
 */
export interface Credentials {
  readonly passwordHash: string | null;
  readonly scram: string | null;
}

/** A TLS client certificate that authenticates as a user (SASL EXTERNAL). */
export interface CertificateMapping {
  readonly address: string;
  /** SHA-256 of the DER certificate: 64 lower-case hex digits, no colons. */
  readonly fingerprint: string;
  readonly createdMs: number;
}

/** A right to send as addresses other than one's own. */
export interface SendAsGrant {
  readonly user: string;
  /** An address key, or "@domain" for every address in that domain. */
  readonly pattern: string;
  readonly createdMs: number;
}

/**
 * Per-user submission policy, on top of the config's [submission] section. Limits are per hour, with the
 * same meaning as the config keys (0 = unlimited); null means "use the config's value".
 */
export interface UserPolicy {
  /**
   * Check that MAIL FROM / From: are addresses the user owns (ownsAddress). false exempts the user; true
   * leaves it to the config's `sender_check`.
   */
  readonly senderCheck: boolean;
  readonly maxMessagesPerHour: number | null;
  readonly maxRecipientsPerHour: number | null;
}

/** The policy of a user nobody configured (and of an unknown user). */
export const DEFAULT_USER_POLICY: UserPolicy = {
  senderCheck: true,
  maxMessagesPerHour: null,
  maxRecipientsPerHour: null,
};

/**
 * A user's mailbox quota (RFC 9208 STORAGE and MESSAGE over all of the user's folders), as it applies:
 * the per-user override where one is set, else the config's [limits] mailbox_quota_*. null: unlimited.
 * A number is at least 1 (0, as in the config, is unlimited and reads back as null).
 */
export interface QuotaLimits {
  readonly storageBytes: number | null;
  readonly messages: number | null;
}

/** One per-user quota setting: a limit, null (unlimited; 0 means the same), or 'default' (the config's). */
export type QuotaSetting = number | null | 'default';

/** What setQuota changes; a field left out keeps its setting. A QuotaLimits value is one. */
export interface QuotaChange {
  readonly storageBytes?: QuotaSetting;
  readonly messages?: QuotaSetting;
}

/** No limit on anything: the default when the config sets none. */
export const UNLIMITED_QUOTA: QuotaLimits = { storageBytes: null, messages: null };

/** Where a recipient address ends up: local mailboxes (users) and/or forwarded remote addresses. */
export type Resolution =
  | { readonly kind: 'local'; readonly users: readonly string[]; readonly forward: readonly string[] }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'remote' };

export interface Directory {
  isLocalDomain(domain: string): boolean;
  /**
   * Resolve an address: an alias first, even one named like a user (Postfix virtual(5): the user gets a
   * copy only when the alias lists it), expanded loop-safe; then a user; then, for postmaster@<a local
   * domain>, the configured postmaster (RFC 5321 §4.5.1); then the domain's catch-all.
   */
  resolve(address: string): Promise<Resolution>;
  /** Add a user; `scram` (optional) is stored beside the hash. */
  addUser(address: string, passwordHash: string | null, scram?: string | null): Promise<void>;
  /** Set the password hash and drop any SCRAM secret (it would still accept the old password). */
  setPasswordHash(address: string, passwordHash: string): Promise<void>;
  /** Delete a user with its credentials, certificate mappings, send-as grants, policy and quota. */
  deleteUser(address: string): Promise<boolean>;
  listUsers(): Promise<User[]>;
  getPasswordHash(address: string): Promise<string | null>;
  /** Refuses ('invalid') an alias that would close a loop, and a self-reference unless alias is a user. */
  addAlias(alias: string, target: string): Promise<void>;
  deleteAlias(alias: string, target?: string): Promise<boolean>;
  /** By alias, then in the order the targets were added (ties within one millisecond included). */
  listAliases(): Promise<Alias[]>;

  /** A user's credentials, or null when there is no such user. */
  getCredentials(address: string): Promise<Credentials | null>;
  /** Replace both credentials at once (a password change sets both, so they never disagree). */
  setCredentials(address: string, credentials: Credentials): Promise<void>;

  /** Map a certificate fingerprint ("AA:BB:…" or plain hex) to a user; one fingerprint, one user. */
  addCertificate(address: string, fingerprint: string): Promise<void>;
  deleteCertificate(address: string, fingerprint: string): Promise<boolean>;
  /** Every mapping, or one user's, by address then fingerprint. */
  listCertificates(address?: string): Promise<CertificateMapping[]>;
  /** The user a certificate fingerprint (any accepted form) maps to, or null. */
  findUserByCertificate(fingerprint: string): Promise<string | null>;

  /**
   * True when `user` may use `address` as a sender: it is the user's own address, an alias (or chain of
   * aliases; not a catch-all) that delivers to the user, or matches one of the user's send-as grants.
   * False for an unknown user or anything that is not an address (the null sender included).
   */
  ownsAddress(user: string, address: string): Promise<boolean>;
  /** Grant `user` the right to send as `pattern`: an address, or "@domain" for any address there. */
  addSendAs(user: string, pattern: string): Promise<void>;
  /** Remove one grant, or all of the user's grants when pattern is omitted. */
  deleteSendAs(user: string, pattern?: string): Promise<boolean>;
  /** Every grant, or one user's, by user then pattern. */
  listSendAs(user?: string): Promise<SendAsGrant[]>;

  /** The user's policy; DEFAULT_USER_POLICY for an unknown user. */
  getUserPolicy(address: string): Promise<UserPolicy>;
  /** Change the given fields (null: back to the global default); resolves with the whole new policy. */
  setUserPolicy(address: string, policy: Partial<UserPolicy>): Promise<UserPolicy>;

  /** The user's quota limits, the config's default filled in; null when there is no such user. */
  getQuota(address: string): Promise<QuotaLimits | null>;
  /**
   * Change the given limits ('default': back to the config's); resolves with the limits that now apply.
   * A limit must be a whole number of 0 or more ('invalid' otherwise); no such user is 'not-found'.
   */
  setQuota(address: string, change: QuotaChange): Promise<QuotaLimits>;

  close(): Promise<void>;
}
