// CRAM-MD5 (RFC 2195): the server sends `<random.time@hostname>`, the client answers
// `username SP hex(HMAC-MD5(password, challenge))`. Randomness and time are inputs, not taken here.
// SECURITY: the server needs the plaintext password (or an equivalent) to check the digest, and MD5 is
// weak; offer CRAM-MD5 only where it is explicitly enabled (it is off by default, see index.ts).
// Deliberately NOT here: looking up the secret (the driver answers the 'cram' request, using
// verifyCramMd5 below).

import { createHmac, timingSafeEqual } from 'node:crypto';
import { challenge, decodeField, failure, outOfTurn, settle } from './common.ts';
import type { Mechanism, Step, VerifyAnswer } from './mechanism.ts';

export interface CramMd5Options {
  readonly hostname: string;
  readonly random: (bytes: number) => Uint8Array;
  readonly nowMs: number;
}

const RESPONSE = /^(.+) ([0-9A-Fa-f]{32})$/su;

/** The challenge text, e.g. `<8052315146203592213.1700000000000@mx.example.org>`. */
export function cramMd5Challenge(options: CramMd5Options): string {
  const bytes = options.random(8);
  let n = 0n;
  for (const byte of bytes) n = (n << 8n) | BigInt(byte);
  return `<${n}.${Math.trunc(options.nowMs)}@${options.hostname}>`;
}

/** Lower-case hex HMAC-MD5 of the challenge keyed with the secret, as the client computes it. */
export function cramMd5Digest(secret: string, challengeText: string): string {
  return createHmac('md5', secret).update(challengeText).digest('hex');
}

/** Check a client's digest in constant time. */
export function verifyCramMd5(secret: string, challengeText: string, digest: string): boolean {
  const expected = Buffer.from(cramMd5Digest(secret, challengeText), 'latin1');
  const given = Buffer.from(digest.toLowerCase(), 'latin1');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export function createCramMd5Mechanism(options: CramMd5Options): Mechanism {
  let phase: 'start' | 'response' | 'verify' | 'done' = 'start';
  let challengeText = '';

  return {
    name: 'CRAM-MD5',
    start(initialResponse: Uint8Array | null): Step {
      if (phase !== 'start') return outOfTurn('CRAM-MD5', 'start');
      // The server speaks first in CRAM-MD5 (RFC 4422 §5): an initial response cannot be an answer.
      if (initialResponse !== null) {
        phase = 'done';
        return failure('malformed', 'CRAM-MD5: initial response not allowed');
      }
      challengeText = cramMd5Challenge(options);
      phase = 'response';
      return challenge(challengeText);
    },
    next(response: Uint8Array): Step {
      if (phase !== 'response') return outOfTurn('CRAM-MD5', 'next');
      const text = decodeField(response);
      const match = text === null ? null : RESPONSE.exec(text);
      if (match === null) {
        phase = 'done';
        return failure('malformed', 'CRAM-MD5: expected "username digest"');
      }
      const [, username = '', digest = ''] = match;
      phase = 'verify';
      return {
        kind: 'verify',
        request: { kind: 'cram', username, challenge: challengeText, digest: digest.toLowerCase() },
      };
    },
    resume(answer: VerifyAnswer): Step {
      if (phase !== 'verify') return outOfTurn('CRAM-MD5', 'resume');
      phase = 'done';
      return settle('CRAM-MD5', answer);
    },
  };
}
