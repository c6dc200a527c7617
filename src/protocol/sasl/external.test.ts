// EXTERNAL (RFC 4422 Appendix A): the optional authzid, and the certificate question to the driver.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createExternalMechanism } from './external.ts';

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('EXTERNAL', () => {
  it('treats an empty initial response as "no authzid"', () => {
    const mech = createExternalMechanism();
    assert.deepEqual(mech.start(new Uint8Array(0)), {
      kind: 'verify',
      request: { kind: 'certificate', authzid: null },
    });
    assert.deepEqual(mech.resume({ kind: 'accept', identity: 'cert-user@example.org' }), {
      kind: 'success',
      identity: 'cert-user@example.org',
    });
  });

  it('asks with an empty challenge when there is no initial response, and passes the authzid on', () => {
    const mech = createExternalMechanism();
    assert.deepEqual(mech.start(null), { kind: 'challenge', data: new Uint8Array(0) });
    assert.deepEqual(mech.next(enc('user@example.org')), {
      kind: 'verify',
      request: { kind: 'certificate', authzid: 'user@example.org' },
    });
    const step = mech.resume({ kind: 'reject' });
    assert.equal(step.kind === 'failure' && step.reason, 'credentials');
  });

  it('refuses an authzid that is not UTF-8 or holds a NUL', () => {
    for (const bad of [new Uint8Array([0xff]), enc('a\0b')]) {
      const step = createExternalMechanism().start(bad);
      assert.equal(step.kind === 'failure' && step.reason, 'malformed');
    }
  });
});
