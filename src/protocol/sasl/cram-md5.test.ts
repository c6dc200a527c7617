// CRAM-MD5 (RFC 2195): the challenge from injected randomness and time, the RFC example digest.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cramMd5Challenge, cramMd5Digest, createCramMd5Mechanism, verifyCramMd5 } from './cram-md5.ts';

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const options = {
  hostname: 'mx.example.org',
  random: (n: number) => new Uint8Array(n).fill(1),
  nowMs: 1_700_000_000_123,
};

// RFC 2195 §2.
const RFC_CHALLENGE = '<1896.697170952@postoffice.reston.mci.net>';
const RFC_DIGEST = 'b913a602c7eda7a495b4e6e7334d3890';

describe('CRAM-MD5', () => {
  it('computes the RFC 2195 example digest and verifies it', () => {
    assert.equal(cramMd5Digest('tanstaaftanstaaf', RFC_CHALLENGE), RFC_DIGEST);
    assert.equal(verifyCramMd5('tanstaaftanstaaf', RFC_CHALLENGE, RFC_DIGEST), true);
    assert.equal(verifyCramMd5('tanstaaftanstaaf', RFC_CHALLENGE, RFC_DIGEST.toUpperCase()), true);
    assert.equal(verifyCramMd5('wrong', RFC_CHALLENGE, RFC_DIGEST), false);
    assert.equal(verifyCramMd5('tanstaaftanstaaf', RFC_CHALLENGE, 'b913'), false);
  });

  it('builds the challenge from the injected random bytes, time and hostname', () => {
    assert.equal(cramMd5Challenge(options), '<72340172838076673.1700000000123@mx.example.org>');
  });

  it('sends the challenge and asks the driver to check "username digest"', () => {
    const mech = createCramMd5Mechanism(options);
    const first = mech.start(null);
    assert.equal(first.kind, 'challenge');
    const challengeText = new TextDecoder().decode(
      first.kind === 'challenge' ? first.data : new Uint8Array(),
    );
    assert.equal(challengeText, cramMd5Challenge(options));
    assert.deepEqual(mech.next(enc(`tim smith ${RFC_DIGEST.toUpperCase()}`)), {
      kind: 'verify',
      request: { kind: 'cram', username: 'tim smith', challenge: challengeText, digest: RFC_DIGEST },
    });
    assert.deepEqual(mech.resume({ kind: 'accept', identity: 'tim' }), { kind: 'success', identity: 'tim' });
  });

  it('refuses an initial response and malformed answers', () => {
    const withIr = createCramMd5Mechanism(options).start(enc(`tim ${RFC_DIGEST}`));
    assert.equal(withIr.kind === 'failure' && withIr.reason, 'malformed');
    for (const bad of [
      `tim`,
      ` ${RFC_DIGEST}`,
      `tim ${RFC_DIGEST.slice(1)}`,
      `tim ${RFC_DIGEST}0`,
      `tim  g${RFC_DIGEST.slice(1)}`,
      `tim\0 ${RFC_DIGEST}`,
    ]) {
      const mech = createCramMd5Mechanism(options);
      mech.start(null);
      const step = mech.next(enc(bad));
      assert.equal(step.kind === 'failure' && step.reason, 'malformed', bad);
    }
  });
});
