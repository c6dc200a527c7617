// OAUTHBEARER (RFC 7628) and XOAUTH2: message parsing, success, and the JSON error flow.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Step } from './mechanism.ts';
import {
  createOAuthBearerMechanism,
  createXOAuth2Mechanism,
  parseKvPairs,
  parseOAuthBearerMessage,
  parseXOAuth2Message,
} from './oauth.ts';

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (data: Uint8Array): string => new TextDecoder().decode(data);

function failureReason(step: Step): string {
  assert.equal(step.kind, 'failure', JSON.stringify(step));
  return step.kind === 'failure' ? step.reason : '';
}

// RFC 7628 §4.1, the initial client response of the IMAP example.
const RFC_7628 =
  'n,a=user@example.com,\x01host=server.example.com\x01port=143\x01' +
  'auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01';

describe('OAUTHBEARER parsing', () => {
  it('reads the RFC 7628 §4.1 example', () => {
    assert.deepEqual(parseOAuthBearerMessage(enc(RFC_7628)), {
      ok: true,
      value: { user: 'user@example.com', token: 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==' },
    });
  });

  it('accepts no authzid, the "y" flag and a lower-case scheme', () => {
    assert.deepEqual(parseOAuthBearerMessage(enc('y,,\x01auth=bearer abc.DEF-_~+/\x01\x01')), {
      ok: true,
      value: { user: null, token: 'abc.DEF-_~+/' },
    });
  });

  it('refuses channel binding and malformed messages', () => {
    assert.equal(parseOAuthBearerMessage(enc('p=tls-exporter,,\x01auth=Bearer t\x01\x01')).ok, false);
    for (const bad of [
      'n,,auth=Bearer t\x01\x01', // no ^A after the gs2 header
      'n,,\x01auth=Bearer t\x01', // final ^A missing
      'n,,\x01auth=Bearer t', // no ^A at all after the pair
      'n,,\x01\x01', // no auth
      'n,,\x01auth=Basic dXNlcjpwdw==\x01\x01', // not a bearer credential
      'n,,\x01auth=Bearer\x01\x01', // no token
      'n,,\x01auth=Bearer a b\x01\x01', // space in token
      'n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01', // duplicate key
      'n,,\x01=x\x01auth=Bearer t\x01\x01', // empty key
      'n,,\x01host\x01auth=Bearer t\x01\x01', // pair without "="
      'n,,\x01auth=Bearer t\x01\x01\x01', // an empty pair
      'n,a=,\x01auth=Bearer t\x01\x01', // empty authzid
      'n,,\x01auth=Bearer t\x02\x01\x01', // control character in a value
      '',
    ]) {
      assert.equal(parseOAuthBearerMessage(enc(bad)).ok, false, JSON.stringify(bad));
    }
  });

  it('parses an empty key-value list', () => {
    assert.deepEqual(parseKvPairs('\x01'), { ok: true, pairs: new Map() });
  });
});

describe('OAUTHBEARER exchange', () => {
  it('asks the driver to validate the token and succeeds on accept', () => {
    const mech = createOAuthBearerMechanism();
    assert.deepEqual(mech.start(enc(RFC_7628)), {
      kind: 'verify',
      request: {
        kind: 'token',
        mechanism: 'OAUTHBEARER',
        user: 'user@example.com',
        token: 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==',
      },
    });
    assert.deepEqual(mech.resume({ kind: 'accept', identity: 'user@example.com' }), {
      kind: 'success',
      identity: 'user@example.com',
    });
  });

  it('sends the JSON error, waits for the ^A acknowledgement, then fails', () => {
    const mech = createOAuthBearerMechanism();
    assert.equal(mech.start(null).kind, 'challenge');
    assert.equal(mech.next(enc(RFC_7628)).kind, 'verify');
    const error = mech.resume({
      kind: 'reject',
      oauth: { scope: 'mail', openidConfiguration: 'https://example.com/.well-known/openid-configuration' },
    });
    assert.equal(error.kind, 'challenge');
    assert.deepEqual(JSON.parse(dec(error.kind === 'challenge' ? error.data : new Uint8Array())), {
      status: 'invalid_token',
      scope: 'mail',
      'openid-configuration': 'https://example.com/.well-known/openid-configuration',
    });
    const end = mech.next(new Uint8Array([1]));
    assert.equal(failureReason(end), 'credentials');
    assert.ok(end.kind === 'failure' && !end.detail.includes('unexpected'));
  });

  it('still fails, noting it, when the client answers the error with something else', () => {
    const mech = createOAuthBearerMechanism();
    mech.start(enc(RFC_7628));
    assert.equal(mech.resume({ kind: 'reject' }).kind, 'challenge');
    const end = mech.next(enc('n,,\x01auth=Bearer again\x01\x01'));
    assert.equal(failureReason(end), 'credentials');
    assert.ok(end.kind === 'failure' && end.detail.includes('unexpected'));
  });

  it('fails at once on a temporary answer, without the JSON round trip', () => {
    const mech = createOAuthBearerMechanism();
    mech.start(enc(RFC_7628));
    assert.equal(failureReason(mech.resume({ kind: 'temporary' })), 'temporary');
  });

  it('reports channel binding as unsupported', () => {
    assert.equal(
      failureReason(createOAuthBearerMechanism().start(enc('p=tls-unique,,\x01auth=Bearer t\x01\x01'))),
      'unsupported',
    );
  });
});

describe('XOAUTH2', () => {
  // Google's documented example: user=someuser@example.com^Aauth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg^A^A
  const GOOGLE =
    'user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01';

  it('reads Google’s example', () => {
    assert.deepEqual(parseXOAuth2Message(enc(GOOGLE)), {
      ok: true,
      value: { user: 'someuser@example.com', token: 'ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg' },
    });
  });

  it('accepts an internationalized user', () => {
    const parsed = parseXOAuth2Message(enc('user=j\u00f6rg@b\u00fccher.example\x01auth=Bearer t\x01\x01'));
    assert.deepEqual(parsed, { ok: true, value: { user: 'j\u00f6rg@b\u00fccher.example', token: 't' } });
  });

  it('refuses messages without a user or a bearer token', () => {
    for (const bad of [
      'auth=Bearer t\x01\x01',
      'user=\x01auth=Bearer t\x01\x01',
      'user=u\x01\x01',
      'user=u\x01auth=Bearer t\x01',
      'user=u\x01auth=Bearer t',
    ]) {
      assert.equal(parseXOAuth2Message(enc(bad)).ok, false, JSON.stringify(bad));
    }
  });

  it('sends Google’s JSON error, then fails after the empty answer', () => {
    const mech = createXOAuth2Mechanism();
    assert.equal(mech.start(enc(GOOGLE)).kind, 'verify');
    const error = mech.resume({ kind: 'reject', oauth: { scope: 'https://mail.google.com/' } });
    assert.equal(
      error.kind === 'challenge' && dec(error.data),
      '{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}',
    );
    const end = mech.next(new Uint8Array(0));
    assert.equal(failureReason(end), 'credentials');
    assert.ok(end.kind === 'failure' && !end.detail.includes('unexpected'));
  });

  it('succeeds on accept', () => {
    const mech = createXOAuth2Mechanism();
    mech.start(enc(GOOGLE));
    assert.deepEqual(mech.resume({ kind: 'accept', identity: 'someuser@example.com' }), {
      kind: 'success',
      identity: 'someuser@example.com',
    });
  });
});
