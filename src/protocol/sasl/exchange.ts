// One SMTP AUTH exchange (RFC 4954 §4) around one SASL mechanism: AUTH's initial response and each client
// line in, 334 challenges / credential questions / the final reply out. The session creates one per AUTH
// command, feeds it lines until it is done, and answers its verify requests after asking the directory.
// SMTP has no "additional data with success", so a mechanism's final data (SCRAM's v=) goes out as one
// more 334 and the client must answer it with an empty line before 235 (RFC 4954 §4).
// Pure: no I/O. Deliberately NOT here: which mechanisms a connection may use (index.ts), the 503 rules
// for AUTH after AUTH or inside a transaction, and reading lines (the session).

import { assertNever } from '../../core/assert-never.ts';
import type { Reply } from '../../core/reply.ts';
import { decodeSaslLine, type SaslLine } from './codec.ts';
import type { Mechanism, MechanismName, Step, VerifyAnswer, VerifyRequest } from './mechanism.ts';
import { AuthReplies, challengeReply, replyForAuthFailure, type AuthFailureReason } from './replies.ts';

export type AuthOutcome =
  | {
      readonly ok: true;
      readonly mechanism: MechanismName;
      readonly identity: string;
      readonly reply: Reply;
    }
  | {
      readonly ok: false;
      readonly mechanism: MechanismName;
      readonly reason: AuthFailureReason;
      /** For the log only; never sent. */
      readonly detail: string;
      readonly reply: Reply;
    };

export type AuthAction =
  /** Send this 334 and feed the client's next line to line(). */
  | { readonly kind: 'challenge'; readonly reply: Reply }
  /** Ask the directory, then feed the answer to answer(). */
  | { readonly kind: 'verify'; readonly request: VerifyRequest }
  /** Send outcome.reply; the exchange is over. */
  | { readonly kind: 'done'; readonly outcome: AuthOutcome };

export interface AuthExchange {
  /** Start with AUTH's second argument (base64, or "=" for empty), or null when there was none. */
  begin(initialResponse: string | null): AuthAction;
  /** A client line (without CRLF) answering the last challenge. */
  line(line: string): AuthAction;
  answer(answer: VerifyAnswer): AuthAction;
}

export function createAuthExchange(mechanism: Mechanism): AuthExchange {
  let phase: 'new' | 'line' | 'answer' | 'final-ack' | 'done' = 'new';
  let identity = '';
  const name = mechanism.name;

  const fail = (reason: AuthFailureReason, detail: string): AuthAction => {
    phase = 'done';
    return {
      kind: 'done',
      outcome: { ok: false, mechanism: name, reason, detail, reply: replyForAuthFailure(reason) },
    };
  };
  const succeed = (): AuthAction => {
    phase = 'done';
    return {
      kind: 'done',
      outcome: { ok: true, mechanism: name, identity, reply: AuthReplies.authSucceeded },
    };
  };

  const fromStep = (step: Step): AuthAction => {
    switch (step.kind) {
      case 'challenge':
        phase = 'line';
        return { kind: 'challenge', reply: challengeReply(step.data) };
      case 'verify':
        phase = 'answer';
        return { kind: 'verify', request: step.request };
      case 'success':
        identity = step.identity;
        if (step.final === undefined) return succeed();
        phase = 'final-ack';
        return { kind: 'challenge', reply: challengeReply(step.final) };
      case 'failure':
        return fail(step.reason, step.detail);
      default:
        return assertNever(step);
    }
  };

  /** Cancel, bad base64 and overlong lines end the exchange the same way wherever they come. */
  const withData = (decoded: SaslLine, use: (data: Uint8Array) => AuthAction): AuthAction => {
    switch (decoded.kind) {
      case 'data':
        return use(decoded.data);
      case 'cancel':
        return fail('cancelled', `${name}: client cancelled`);
      case 'malformed':
        return fail('bad-base64', `${name}: response is not base64`);
      case 'too-long':
        return fail('line-too-long', `${name}: response line too long`);
      default:
        return assertNever(decoded);
    }
  };

  return {
    begin(initialResponse: string | null): AuthAction {
      if (phase !== 'new') throw new Error(`AUTH ${name}: begin called twice`);
      if (initialResponse === null) return fromStep(mechanism.start(null));
      return withData(decodeSaslLine(initialResponse, 'initial'), (data) => fromStep(mechanism.start(data)));
    },
    line(line: string): AuthAction {
      const decoded = decodeSaslLine(line, 'response');
      if (phase === 'line') return withData(decoded, (data) => fromStep(mechanism.next(data)));
      if (phase !== 'final-ack') throw new Error(`AUTH ${name}: line() while not awaiting a line`);
      return withData(decoded, (data) =>
        data.length === 0 ? succeed() : fail('malformed', `${name}: non-empty answer to the final challenge`),
      );
    },
    answer(answer: VerifyAnswer): AuthAction {
      if (phase !== 'answer') throw new Error(`AUTH ${name}: answer() while not awaiting a verification`);
      return fromStep(mechanism.resume(answer));
    },
  };
}
