// SMTP's SASL framing: 334 challenges (empty: "334 "), 235, and a 4xx/5xx reply for every failure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatReply } from '../../core/reply.ts';
import { SASL_FAILURES as ALL_FAILURES } from '../sasl/framing.ts';
import { smtpAuthFraming } from './auth-replies.ts';

describe('SMTP AUTH framing', () => {
  it('writes "334 " and the base64, "334 " alone for an empty challenge; 235 2.7.0 on success', () => {
    const wire = (r: Parameters<typeof formatReply>[0]): string => formatReply(r, true);
    assert.equal(
      wire(smtpAuthFraming.challenge(new TextEncoder().encode('Username:'))),
      '334 VXNlcm5hbWU6\r\n',
    );
    assert.equal(wire(smtpAuthFraming.challenge(new Uint8Array(0))), '334 \r\n');
    assert.equal(wire(smtpAuthFraming.success()), '235 2.7.0 Authentication successful\r\n');
  });

  it('answers each failure with its RFC 4954 reply; credential failures all look the same', () => {
    for (const reason of ALL_FAILURES) {
      const reply = smtpAuthFraming.failure(reason);
      assert.ok(reply.code >= 400 && reply.code < 600, reason);
    }
    const same = ['credentials', 'authorization', 'channel-binding', 'unsupported'] as const;
    for (const r of same) assert.equal(smtpAuthFraming.failure(r), smtpAuthFraming.failure('credentials'));
    assert.equal(formatReply(smtpAuthFraming.failure('needs-tls'), true).slice(0, 9), '538 5.7.1');
    assert.equal(formatReply(smtpAuthFraming.failure('locked-out'), true).slice(0, 9), '454 4.7.0');
  });
});
