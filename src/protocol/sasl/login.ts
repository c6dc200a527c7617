// LOGIN (draft-murchison-sasl-login): the de-facto mechanism many clients still use. The server asks
// "Username:" then "Password:"; a client may send the username as the initial response and skip the first
// question. Both answers are UTF-8 without NUL, and neither may be empty.
// SECURITY: the password travels in clear inside the exchange; offer LOGIN only under TLS (index.ts).
// Deliberately NOT here: checking the password (the driver answers the 'password' request).

import { challenge, decodeField, failure, outOfTurn, settle } from './common.ts';
import type { Mechanism, Step, VerifyAnswer } from './mechanism.ts';

export const LOGIN_USERNAME_PROMPT = 'Username:';
export const LOGIN_PASSWORD_PROMPT = 'Password:';

export function createLoginMechanism(): Mechanism {
  let phase: 'start' | 'username' | 'password' | 'verify' | 'done' = 'start';
  let username = '';

  const receiveUsername = (response: Uint8Array): Step => {
    const text = decodeField(response);
    if (text === null || text === '') {
      phase = 'done';
      return failure('malformed', 'LOGIN: username empty, not UTF-8 or holds a NUL');
    }
    username = text;
    phase = 'password';
    return challenge(LOGIN_PASSWORD_PROMPT);
  };

  return {
    name: 'LOGIN',
    start(initialResponse: Uint8Array | null): Step {
      if (phase !== 'start') return outOfTurn('LOGIN', 'start');
      if (initialResponse !== null) return receiveUsername(initialResponse);
      phase = 'username';
      return challenge(LOGIN_USERNAME_PROMPT);
    },
    next(response: Uint8Array): Step {
      if (phase === 'username') return receiveUsername(response);
      if (phase !== 'password') return outOfTurn('LOGIN', 'next');
      const password = decodeField(response);
      if (password === null || password === '') {
        phase = 'done';
        return failure('malformed', 'LOGIN: password empty, not UTF-8 or holds a NUL');
      }
      phase = 'verify';
      return { kind: 'verify', request: { kind: 'password', username, password } };
    },
    resume(answer: VerifyAnswer): Step {
      if (phase !== 'verify') return outOfTurn('LOGIN', 'resume');
      phase = 'done';
      return settle('LOGIN', answer);
    },
  };
}
