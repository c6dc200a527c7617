// IMAP's SASL framing (RFC 9051 §6.2.2, RFC 5530): "+ " continuations, tagged OK / NO / BAD.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SASL_FAILURES as ALL_FAILURES } from '../sasl/framing.ts';
import { imapAuthFraming } from './auth-framing.ts';

describe('IMAP AUTHENTICATE framing', () => {
  const framing = imapAuthFraming('a001');

  it('continuations are "+ " and base64; completions carry the tag', () => {
    assert.equal(framing.challenge(new TextEncoder().encode('Username:')), '+ VXNlcm5hbWU6\r\n');
    assert.equal(framing.challenge(new Uint8Array(0)), '+ \r\n');
    assert.equal(framing.success(), 'a001 OK Authentication successful\r\n');
  });

  it('refusals are NO with a response code, a cancelled or garbled exchange is BAD', () => {
    for (const reason of ALL_FAILURES)
      assert.match(framing.failure(reason), /^a001 (NO|BAD) [^\r\n]+\r\n$/, reason);
    assert.equal(framing.failure('credentials'), 'a001 NO [AUTHENTICATIONFAILED] Authentication failed\r\n');
    assert.equal(framing.failure('authorization'), framing.failure('credentials'));
    assert.match(framing.failure('cancelled'), /^a001 BAD /);
    assert.match(framing.failure('bad-base64'), /^a001 BAD /);
    assert.match(framing.failure('needs-tls'), /^a001 NO \[PRIVACYREQUIRED\] /);
  });
});
