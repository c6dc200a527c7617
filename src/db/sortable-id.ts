// Identifiers that sort by creation time and are unique without coordination: 10 characters of
// millisecond timestamp and 10 of randomness (50 bits), Crockford base32, ULID-like but shorter (20
// characters; a queue id appears on every log line). Within one generator ids are strictly increasing
// even when the clock stands still or steps back, so "sort by id" is "sort by arrival" in one process.
// Safe in file names and URLs, case-insensitive by construction (upper case only, no I L O U).

import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_CHARS = 10;
const RANDOM_CHARS = 10;
const RANDOM_MAX = 2 ** (5 * RANDOM_CHARS); // 2^50, exact in a double

export const SORTABLE_ID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{20}$/;

function encode(value: number, chars: number): string {
  let out = '';
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[value % 32]! + out;
    value = Math.floor(value / 32);
  }
  return out;
}

// Random bytes fetched in blocks: one randomBytes() call per id showed in the accept profile.
const POOL_BYTES = 7 * 512;
let pool = randomBytes(POOL_BYTES);
let poolAt = 0;

function random7(): Uint8Array {
  if (poolAt + 7 > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  poolAt += 7;
  return pool.subarray(poolAt - 7, poolAt);
}

function random50(): number {
  const b = random7();
  // 7 bytes = 56 bits; keep 50. Built from two exact halves to stay within double precision.
  const high = (b[0]! << 18) | (b[1]! << 10) | (b[2]! << 2) | (b[3]! >> 6); // 26 bits
  const low = ((b[3]! & 0x3f) << 18) | (b[4]! << 10) | (b[5]! << 2) | (b[6]! >> 6); // 24 bits
  return high * 2 ** 24 + low;
}

/** A generator of ids; `next(nowMs)` takes the time as an input (a Clock reading). */
export class SortableIds {
  #lastMs = -1;
  #lastRandom = 0;

  next(nowMs: number): string {
    let ms = Math.max(0, Math.floor(nowMs));
    let random: number;
    if (ms <= this.#lastMs) {
      // Same (or earlier) millisecond: keep the last time and count up so order is kept.
      ms = this.#lastMs;
      random = this.#lastRandom + 1;
      if (random >= RANDOM_MAX) {
        ms += 1;
        random = random50();
      }
    } else {
      random = random50();
    }
    this.#lastMs = ms;
    this.#lastRandom = random;
    return encode(ms, TIME_CHARS) + encode(random, RANDOM_CHARS);
  }
}
