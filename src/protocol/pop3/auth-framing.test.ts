// POP3's SASL framing (RFC 5034, RFC 3206): "+ " challenges, +OK, -ERR with [AUTH] or [SYS/TEMP].
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SASL_FAILURES as ALL_FAILURES } from '../sasl/framing.ts';
import { formatPop3AuthStep, pop3AuthFraming } from './auth-framing.ts';

const wire = formatPop3AuthStep;

describe('POP3 AUTH framing', () => {
  it('challenges are "+ " and base64 ("+ " alone when empty); success is +OK', () => {
    assert.equal(
      wire(pop3AuthFraming.challenge(new TextEncoder().encode('Username:'))),
      '+ VXNlcm5hbWU6\r\n',
    );
    assert.equal(wire(pop3AuthFraming.challenge(new Uint8Array(0))), '+ \r\n');
    assert.match(wire(pop3AuthFraming.success()), /^\+OK [^\r\n]*\r\n$/);
  });

  it('every failure is one -ERR line; credentials get [AUTH], temporary and lockouts [SYS/TEMP]', () => {
    for (const reason of ALL_FAILURES)
      assert.match(wire(pop3AuthFraming.failure(reason)), /^-ERR [^\r\n]+\r\n$/, reason);
    assert.match(wire(pop3AuthFraming.failure('credentials')), /^-ERR \[AUTH\] /);
    assert.deepEqual(pop3AuthFraming.failure('authorization'), pop3AuthFraming.failure('credentials'));
    assert.match(wire(pop3AuthFraming.failure('temporary')), /^-ERR \[SYS\/TEMP\] /);
    assert.match(wire(pop3AuthFraming.failure('locked-out')), /^-ERR \[SYS\/TEMP\] /);
  });
});
