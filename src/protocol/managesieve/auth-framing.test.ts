// ManageSieve's SASL framing (RFC 5804 §2.1): challenges as strings, OK, NO with ENCRYPT-NEEDED / TRYLATER.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SASL_FAILURES } from '../sasl/framing.ts';
import { formatSieveAuthStep, sieveAuthFraming } from './auth-framing.ts';

const wire = formatSieveAuthStep;

describe('ManageSieve AUTHENTICATE framing', () => {
  it('challenges are base64 strings on their own line ("" when empty); success is OK', () => {
    assert.equal(
      wire(sieveAuthFraming.challenge(new TextEncoder().encode('Username:'))),
      '"VXNlcm5hbWU6"\r\n',
    );
    assert.equal(wire(sieveAuthFraming.challenge(new Uint8Array(0))), '""\r\n');
    assert.equal(wire(sieveAuthFraming.success()), 'OK "Authentication successful"\r\n');
  });

  it('a long challenge goes out as a literal', () => {
    const data = new Uint8Array(1000).fill(0x61);
    const line = wire(sieveAuthFraming.challenge(data));
    assert.match(line, /^\{1336\}\r\n[A-Za-z0-9+/=]{1336}\r\n$/);
  });

  it('every failure is one NO line, never BAD or BYE', () => {
    for (const reason of SASL_FAILURES)
      assert.match(wire(sieveAuthFraming.failure(reason)), /^NO (\([A-Z/-]+\) )?"[^"\r\n]+"\r\n$/, reason);
  });

  it('credentials, authorization, channel binding and unsupported features get one answer', () => {
    const answer = wire(sieveAuthFraming.failure('credentials'));
    assert.equal(answer, 'NO "Authentication failed"\r\n');
    for (const reason of ['authorization', 'channel-binding', 'unsupported'] as const)
      assert.equal(wire(sieveAuthFraming.failure(reason)), answer, reason);
  });

  it('temporary failures and lockouts are TRYLATER; a mechanism needing TLS is ENCRYPT-NEEDED', () => {
    assert.match(wire(sieveAuthFraming.failure('temporary')), /^NO \(TRYLATER\) /);
    assert.match(wire(sieveAuthFraming.failure('locked-out')), /^NO \(TRYLATER\) /);
    assert.match(wire(sieveAuthFraming.failure('needs-tls')), /^NO \(ENCRYPT-NEEDED\) /);
    assert.equal(wire(sieveAuthFraming.failure('cancelled')), 'NO "Authentication cancelled"\r\n');
  });
});
