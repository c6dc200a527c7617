// Password hashing for local users: scrypt (RFC 7914) from node:crypto, stored as a PHC-style string
// `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64 without padding), so the cost can be raised later while
// old hashes keep verifying. Verification compares in constant time, and dummyVerify() spends the same
// work for an unknown user so AUTH timing does not reveal which accounts exist.
// Passwords are NFC-normalized first (RFC 8265 OpaqueString's normalization step) so the same password
// typed on different systems matches. Not here: policy on password strength, rate limiting.
// SECURITY: cost parameters read from a stored hash are bounded, so a planted hash cannot exhaust memory.

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { ln: 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
const LIMITS = { ln: [10, 20], r: [1, 32], p: [1, 16] } as const;
const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function derive(password: string, salt: Uint8Array, params: ScryptParams, bytes: number): Promise<Buffer> {
  const N = 2 ** params.ln;
  const options: ScryptOptions = {
    N,
    r: params.r,
    p: params.p,
    // Node's default cap (32 MiB) is exactly 128 * N * r for ln=15, r=8: leave room above it.
    maxmem: 256 * N * params.r + 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, bytes, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/=+$/, '');
}

/** Hash a password with a fresh random salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, params, HASH_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

interface ParsedHash {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

function parseHash(stored: string): ParsedHash | null {
  const m = PHC.exec(stored);
  if (m === null) return null;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  for (const key of ['ln', 'r', 'p'] as const) {
    const [min, max] = LIMITS[key];
    if (params[key] < min || params[key] > max) return null;
  }
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.byteLength < 8 || hash.byteLength < 16 || hash.byteLength > 64) return null;
  return { params, salt, hash };
}

/** True when password matches the stored hash; false for a mismatch or a malformed hash (never throws on input). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (parsed === null) {
    // Same work as a real check: a broken hash must not be told apart by timing either.
    await dummyVerify();
    return false;
  }
  const candidate = await derive(password, parsed.salt, parsed.params, parsed.hash.byteLength);
  return timingSafeEqual(candidate, parsed.hash);
}

const DUMMY_SALT = randomBytes(SALT_BYTES);

/** The work of one verification with the default cost, for an unknown user. Always false. */
export async function dummyVerify(password = ''): Promise<false> {
  const candidate = await derive(password, DUMMY_SALT, DEFAULT_SCRYPT, HASH_BYTES);
  // Compare too, so the tail of the work matches verifyPassword's.
  timingSafeEqual(candidate, Buffer.alloc(HASH_BYTES));
  return false;
}

/** True when a hash was made with weaker parameters than the current default (rehash on next login). */
export function needsRehash(stored: string, params: ScryptParams = DEFAULT_SCRYPT): boolean {
  const parsed = parseHash(stored);
  if (parsed === null) return true;
  return parsed.params.ln < params.ln || parsed.params.r < params.r || parsed.params.p < params.p;
}
