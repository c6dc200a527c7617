// SCRAM-SHA-256 stored secrets (RFC 5802 §3, RFC 7677): what `tern user add` keeps so SCRAM can verify a
// client without ever holding the password or the SaltedPassword: salt, iteration count, StoredKey and
// ServerKey. Serialized as `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 with
// padding), the layout PostgreSQL uses, so the string says what it is and can sit next to a scrypt hash.
// Also: decoy secrets for unknown users, so a SCRAM lookup does not reveal which accounts exist.
// SECURITY: StoredKey and ServerKey are password-equivalent for this server (a holder of ServerKey can
// impersonate the server, of StoredKey can mount a dictionary attack): keep them as private as hashes.

import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { decodeBase64Strict, encodeBase64 } from './codec.ts';
import type { ScramSecrets } from './mechanism.ts';
import { saslprep } from './saslprep.ts';

export const SCRAM_SHA_256_PREFIX = 'SCRAM-SHA-256';
/** RFC 7677 §4: at least 4096 iterations. */
export const MIN_SCRAM_ITERATIONS = 4096;
/** An upper bound so a mistyped or planted count cannot make clients spin for hours. */
export const MAX_SCRAM_ITERATIONS = 10_000_000;
export const SCRAM_SALT_BYTES = 16;
const KEY_BYTES = 32;
const MAX_SALT_BYTES = 256;

export function hmacSha256(key: Uint8Array, data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHmac('sha256', key).update(data).digest());
}

export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

/**
 * The password as SCRAM hashes it: SASLprep'd (RFC 5802 §2.2), or as typed when SASLprep refuses it
 * (a prohibited character), the fallback PostgreSQL uses, so every password can still be stored.
 */
export function prepareScramPassword(password: string): string {
  return saslprep(password) ?? password;
}

/** Derive what to store for `password`. A fresh random salt unless one is given (tests, migrations). */
export function deriveScramSecrets(
  password: string,
  salt: Uint8Array = randomBytes(SCRAM_SALT_BYTES),
  iterations: number = MIN_SCRAM_ITERATIONS,
): ScramSecrets {
  if (!isValidIterations(iterations)) {
    throw new RangeError(
      `SCRAM iterations must be an integer in [${MIN_SCRAM_ITERATIONS}, ${MAX_SCRAM_ITERATIONS}]`,
    );
  }
  if (salt.length === 0 || salt.length > MAX_SALT_BYTES) {
    throw new RangeError(`SCRAM salt must be 1 to ${MAX_SALT_BYTES} bytes`);
  }
  const salted = pbkdf2Sync(prepareScramPassword(password), salt, iterations, KEY_BYTES, 'sha256');
  const clientKey = hmacSha256(salted, 'Client Key');
  return {
    iterations,
    salt: Uint8Array.from(salt),
    storedKey: sha256(clientKey),
    serverKey: hmacSha256(salted, 'Server Key'),
  };
}

export function formatScramSecrets(secrets: ScramSecrets): string {
  return (
    `${SCRAM_SHA_256_PREFIX}$${secrets.iterations}:${encodeBase64(secrets.salt)}` +
    `$${encodeBase64(secrets.storedKey)}:${encodeBase64(secrets.serverKey)}`
  );
}

export type ScramSecretsParse =
  { readonly ok: true; readonly value: ScramSecrets } | { readonly ok: false; readonly error: string };

const STORED = /^SCRAM-SHA-256\$([1-9][0-9]{0,8}):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

/** Parse the stored form; total, and bounded so a damaged or planted entry is refused, not trusted. */
export function parseScramSecrets(text: string): ScramSecretsParse {
  const match = STORED.exec(text);
  if (match === null) {
    return { ok: false, error: 'not a SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> string' };
  }
  const [, iterText = '', saltText = '', storedText = '', serverText = ''] = match;
  const iterations = Number(iterText);
  if (!isValidIterations(iterations)) {
    return { ok: false, error: `iterations out of [${MIN_SCRAM_ITERATIONS}, ${MAX_SCRAM_ITERATIONS}]` };
  }
  const salt = decodeBase64Strict(saltText);
  const storedKey = decodeBase64Strict(storedText);
  const serverKey = decodeBase64Strict(serverText);
  if (salt === null || salt.length === 0 || salt.length > MAX_SALT_BYTES)
    return { ok: false, error: 'bad salt' };
  if (storedKey === null || storedKey.length !== KEY_BYTES) return { ok: false, error: 'bad StoredKey' };
  if (serverKey === null || serverKey.length !== KEY_BYTES) return { ok: false, error: 'bad ServerKey' };
  return { ok: true, value: { iterations, salt, storedKey, serverKey } };
}

/**
 * Secrets for a user who does not exist, stable per (key, username), so a client probing SCRAM sees a
 * plausible, repeatable salt and iteration count and then simply fails the proof. `key` is a server
 * secret the driver keeps (random, at least 32 bytes); without it the salt would be computable.
 */
export function decoyScramSecrets(
  key: Uint8Array,
  username: string,
  iterations: number = MIN_SCRAM_ITERATIONS,
): ScramSecrets {
  const name = username.normalize('NFC').toLowerCase();
  return {
    iterations,
    salt: hmacSha256(key, `salt\0${name}`).slice(0, SCRAM_SALT_BYTES),
    storedKey: hmacSha256(key, `stored\0${name}`),
    serverKey: hmacSha256(key, `server\0${name}`),
  };
}

/** Whether secrets have the shape SCRAM-SHA-256 needs (the mechanism checks what the driver hands it). */
export function isValidScramSecrets(secrets: ScramSecrets): boolean {
  return (
    isValidIterations(secrets.iterations) &&
    secrets.salt.length > 0 &&
    secrets.salt.length <= MAX_SALT_BYTES &&
    secrets.storedKey.length === KEY_BYTES &&
    secrets.serverKey.length === KEY_BYTES
  );
}

function isValidIterations(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_SCRAM_ITERATIONS && n <= MAX_SCRAM_ITERATIONS;
}
