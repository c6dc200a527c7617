// PLAIN (RFC 4616): one message, [authzid] NUL authcid NUL passwd, each part UTF-8 without NUL.
// The client sends it as the initial response or after an empty challenge. Empty authcid or password is
// refused, and so is an authzid naming anyone other than the authcid: proxy authorization is not offered.
// SECURITY: the password travels in clear inside the exchange; offer PLAIN only under TLS (index.ts).
// Deliberately NOT here: checking the password (the driver answers the 'password' request).

import { challenge, decodeField, EMPTY, failure, outOfTurn, sameIdentity, settle } from './common.ts';
import type { Mechanism, Step, VerifyAnswer } from './mechanism.ts';

export interface PlainMessage {
  /** "" when the client sent none. */
  readonly authzid: string;
  readonly authcid: string;
  readonly password: string;
}

export type PlainParse =
  { readonly ok: true; readonly value: PlainMessage } | { readonly ok: false; readonly detail: string };

/** Split and check a PLAIN message; total. */
export function parsePlainMessage(message: Uint8Array): PlainParse {
  const first = message.indexOf(0);
  const second = first < 0 ? -1 : message.indexOf(0, first + 1);
  if (first < 0 || second < 0) return { ok: false, detail: 'PLAIN: expected two NUL separators' };
  // decodeField refuses any third NUL, which would have to sit inside the password.
  const authzid = decodeField(message.subarray(0, first));
  const authcid = decodeField(message.subarray(first + 1, second));
  const password = decodeField(message.subarray(second + 1));
  if (authzid === null || authcid === null || password === null) {
    return { ok: false, detail: 'PLAIN: a field is not UTF-8 or holds a NUL' };
  }
  if (authcid === '') return { ok: false, detail: 'PLAIN: empty authentication identity' };
  if (password === '') return { ok: false, detail: 'PLAIN: empty password' };
  return { ok: true, value: { authzid, authcid, password } };
}

export function createPlainMechanism(): Mechanism {
  let phase: 'start' | 'message' | 'verify' | 'done' = 'start';

  const receive = (message: Uint8Array): Step => {
    phase = 'done';
    const parsed = parsePlainMessage(message);
    if (!parsed.ok) return failure('malformed', parsed.detail);
    const { authzid, authcid, password } = parsed.value;
    if (authzid !== '' && !sameIdentity(authzid, authcid)) {
      return failure('authorization', 'PLAIN: authzid differs from authcid');
    }
    phase = 'verify';
    return { kind: 'verify', request: { kind: 'password', username: authcid, password } };
  };

  return {
    name: 'PLAIN',
    start(initialResponse: Uint8Array | null): Step {
      if (phase !== 'start') return outOfTurn('PLAIN', 'start');
      if (initialResponse !== null) return receive(initialResponse);
      phase = 'message';
      return challenge(EMPTY);
    },
    next(response: Uint8Array): Step {
      if (phase !== 'message') return outOfTurn('PLAIN', 'next');
      return receive(response);
    },
    resume(answer: VerifyAnswer): Step {
      if (phase !== 'verify') return outOfTurn('PLAIN', 'resume');
      phase = 'done';
      return settle('PLAIN', answer);
    },
  };
}
