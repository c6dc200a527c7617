// The Sieve script store: each user's scripts (RFC 5804's model: named scripts, at most one of them
// active), written by ManageSieve and the admin tools, read by local delivery (getActive). Contract
// (sieve-scripts.contract.ts): every write resolves once it is durable; a refused write changes nothing;
// the active script can be replaced (put) and renamed, but not deleted; quotas (scripts per user, octets
// per script) hold whoever writes, also two connections racing.
// Owners are address keys, compared without case as the mailbox store compares them (normalizeUser).
// Script names are NFC UTF-8 (RFC 5804 §1.6 refers to Net-Unicode, RFC 5198), compared exactly: the
// store normalizes what it is given, so "Ferien u\u0308" and "Ferien ü" are one name.
// Deliberately NOT here: Sieve syntax (the caller validates before put), the ManageSieve protocol, running
// scripts at delivery.

export interface SieveScriptEntry {
  readonly name: string;
  readonly active: boolean;
}

export interface ActiveSieveScript {
  readonly name: string;
  readonly script: string;
}

/** Quotas, checked on every put (and by haveSpace). 0 means no limit. */
export interface SieveScriptLimits {
  readonly maxScripts: number;
  /** UTF-8 octets of one script. */
  readonly maxScriptBytes: number;
}

export const DEFAULT_SIEVE_SCRIPT_LIMITS: SieveScriptLimits = {
  maxScripts: 32,
  maxScriptBytes: 1024 * 1024,
};

/** Why a write was refused; the names are ManageSieve's response codes (RFC 5804 §1.3) in lower case. */
export type SieveRefusal = 'nonexistent' | 'already-exists' | 'active' | 'max-scripts' | 'max-size';

export type SieveWrite<R extends SieveRefusal> =
  { readonly ok: true } | { readonly ok: false; readonly refusal: R };

export interface SieveScriptStore {
  /** The user's scripts, by name (code point order). */
  list(user: string): Promise<SieveScriptEntry[]>;
  /** A script's text, or null when there is none of that name. */
  get(user: string, name: string): Promise<string | null>;
  /** Would put() of a script of this size under this name fit the quotas now? (RFC 5804 HAVESPACE.) */
  haveSpace(user: string, name: string, sizeBytes: number): Promise<SieveWrite<'max-scripts' | 'max-size'>>;
  /** Create or replace. Replacing the active script keeps it active. */
  put(user: string, name: string, script: string): Promise<SieveWrite<'max-scripts' | 'max-size'>>;
  /** The active script cannot be deleted (deactivate it first). */
  delete(user: string, name: string): Promise<SieveWrite<'nonexistent' | 'active'>>;
  /** Fails when `to` exists (even when it is `from`); the active script stays active under its new name. */
  rename(user: string, from: string, to: string): Promise<SieveWrite<'nonexistent' | 'already-exists'>>;
  /** Make `name` the one active script; null deactivates whatever is active. */
  setActive(user: string, name: string | null): Promise<SieveWrite<'nonexistent'>>;
  /** The active script, for delivery; null when none is active. */
  getActive(user: string): Promise<ActiveSieveScript | null>;
  /**
   * Vacation's memory (RFC 5230 §4.2): true, and `sender` remembered as answered now, when this user's
   * vacation `handle` has not answered `sender` within `periodMs`; false otherwise. One transaction, so
   * two deliveries at once answer once.
   */
  vacationDue(
    user: string,
    handle: string,
    sender: string,
    nowMs: number,
    periodMs: number,
  ): Promise<boolean>;
  close(): Promise<void>;
}

/** A name the store cannot hold: a caller's bug (the ManageSieve session checks names first). */
export class SieveScriptNameError extends Error {
  constructor(name: string) {
    super(`sieve scripts: invalid script name ${JSON.stringify(name.slice(0, 64))}`);
    this.name = 'SieveScriptNameError';
  }
}

/** RFC 5804 §1.6 lets a server cap names at no fewer than 128 characters; Tern allows this many octets. */
export const MAX_SIEVE_SCRIPT_NAME_BYTES = 1024;

/**
 * A script name as stored: NFC, not empty, no C0/C1 controls, DEL, U+2028 or U+2029, at most
 * MAX_SIEVE_SCRIPT_NAME_BYTES octets. The same rule as protocol/managesieve/parse.ts (store code may not
 * import protocol code); throws SieveScriptNameError otherwise.
 */
export function checkSieveScriptName(name: string): string {
  const nfc = name.normalize('NFC');
  const ok =
    nfc !== '' &&
    nfc.isWellFormed() &&
    !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u.test(nfc) &&
    Buffer.byteLength(nfc, 'utf8') <= MAX_SIEVE_SCRIPT_NAME_BYTES;
  if (!ok) throw new SieveScriptNameError(name);
  return nfc;
}
