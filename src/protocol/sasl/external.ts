// EXTERNAL (RFC 4422 Appendix A): the client is already authenticated outside SASL, here by its TLS
// client certificate. Its only message is an optional authorization identity (UTF-8, no NUL; empty means
// "whoever the certificate says"). The driver maps the certificate to a user and decides whether that user
// may act as the authzid, answering the 'certificate' request.
// Deliberately NOT here: certificate validation or mapping (net + directory via the driver).

import { challenge, decodeField, EMPTY, failure, outOfTurn, settle } from './common.ts';
import type { Mechanism, Step, VerifyAnswer } from './mechanism.ts';

export function createExternalMechanism(): Mechanism {
  let phase: 'start' | 'message' | 'verify' | 'done' = 'start';

  const receive = (message: Uint8Array): Step => {
    const authzid = decodeField(message);
    if (authzid === null) {
      phase = 'done';
      return failure('malformed', 'EXTERNAL: authzid not UTF-8 or holds NUL');
    }
    phase = 'verify';
    return { kind: 'verify', request: { kind: 'certificate', authzid: authzid === '' ? null : authzid } };
  };

  return {
    name: 'EXTERNAL',
    start(initialResponse: Uint8Array | null): Step {
      if (phase !== 'start') return outOfTurn('EXTERNAL', 'start');
      if (initialResponse !== null) return receive(initialResponse);
      phase = 'message';
      return challenge(EMPTY);
    },
    next(response: Uint8Array): Step {
      if (phase !== 'message') return outOfTurn('EXTERNAL', 'next');
      return receive(response);
    },
    resume(answer: VerifyAnswer): Step {
      if (phase !== 'verify') return outOfTurn('EXTERNAL', 'resume');
      phase = 'done';
      return settle('EXTERNAL', answer);
    },
  };
}
