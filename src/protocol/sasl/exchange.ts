// One SASL exchange around one mechanism, as the line protocols carry it (SMTP AUTH RFC 4954 §4, POP3 AUTH
// RFC 5034 §4, IMAP AUTHENTICATE RFC 9051 §6.2.2): the initial response and each client line (base64,
// "*" cancels) in; challenge bytes, credential questions and the outcome out. The driver creates one per
// AUTH command, feeds it lines until it is done, and answers its verify requests after asking the
// directory. A mechanism's final data (SCRAM's v=) goes out as one more challenge that the client answers
// with an empty line: the form every one of these protocols accepts ("additional data with success" is
// not allowed in SMTP and POP3).
// Pure and protocol-neutral: no reply codes here; each protocol's framing (protocol/smtp/auth-replies.ts,
// protocol/pop3/auth-framing.ts, protocol/imap/auth-framing.ts) turns actions into its wire form.
// Deliberately NOT here: which mechanisms a connection may use (index.ts), the protocol's rules on when
// AUTH is allowed, and reading lines (the session).

import { assertNever } from '../../core/assert-never.ts';
import { decodeSaslLine, type SaslLine } from './codec.ts';
import type {
  FailureReason,
  Mechanism,
  MechanismName,
  Step,
  VerifyAnswer,
  VerifyRequest,
} from './mechanism.ts';

/** Why an exchange failed: the mechanism's reasons plus what the line framing adds. */
export type AuthFailureReason = FailureReason | 'cancelled' | 'bad-base64' | 'line-too-long';

export type AuthOutcome =
  | {
      readonly ok: true;
      readonly mechanism: MechanismName;
      readonly identity: string;
    }
  | {
      readonly ok: false;
      readonly mechanism: MechanismName;
      readonly reason: AuthFailureReason;
      /** For the log only; never sent. */
      readonly detail: string;
    };

export type AuthAction =
  /** Send this challenge (the framing base64-encodes it) and feed the client's next line to line(). */
  | { readonly kind: 'challenge'; readonly data: Uint8Array }
  /** Ask the directory, then feed the answer to answer(). */
  | { readonly kind: 'verify'; readonly request: VerifyRequest }
  /** The exchange is over; the framing says how the outcome looks on the wire. */
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
      outcome: { ok: false, mechanism: name, reason, detail },
    };
  };
  const succeed = (): AuthAction => {
    phase = 'done';
    return {
      kind: 'done',
      outcome: { ok: true, mechanism: name, identity },
    };
  };

  const fromStep = (step: Step): AuthAction => {
    switch (step.kind) {
      case 'challenge':
        phase = 'line';
        return { kind: 'challenge', data: step.data };
      case 'verify':
        phase = 'answer';
        return { kind: 'verify', request: step.request };
      case 'success':
        identity = step.identity;
        if (step.final === undefined) return succeed();
        phase = 'final-ack';
        return { kind: 'challenge', data: step.final };
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
