// The SASL exchange, shown through the SMTP framing (its wire texts are the easiest to read): challenges,
// cancel, bad base64, overlong lines, SCRAM's final challenge. The exchange itself speaks no protocol.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatReply } from '../../core/reply.ts';
import { encodeBase64, MAX_SASL_LINE_OCTETS } from './codec.ts';
import { createAuthExchange, type AuthAction } from './exchange.ts';
import { createLoginMechanism } from './login.ts';
import { createOAuthBearerMechanism } from './oauth.ts';
import { createPlainMechanism } from './plain.ts';
import { smtpAuthFraming } from '../smtp/auth-replies.ts';
import { createScramMechanism } from './scram.ts';
import { deriveScramSecrets } from './scram-secrets.ts';

const b64 = (text: string): string => encodeBase64(new TextEncoder().encode(text));

/** What the session would write for an action that sends something. */
function wire(action: AuthAction): string {
  assert.notEqual(action.kind, 'verify');
  if (action.kind === 'challenge') return formatReply(smtpAuthFraming.challenge(action.data), true);
  if (action.kind !== 'done') return '';
  const { outcome } = action;
  return formatReply(outcome.ok ? smtpAuthFraming.success() : smtpAuthFraming.failure(outcome.reason), true);
}

describe('AUTH exchange', () => {
  it('AUTH PLAIN with initial response: verify, then 235 2.7.0', () => {
    const exchange = createAuthExchange(createPlainMechanism());
    assert.deepEqual(exchange.begin(b64('\0user\0pencil')), {
      kind: 'verify',
      request: { kind: 'password', username: 'user', password: 'pencil' },
    });
    const done = exchange.answer({ kind: 'accept', identity: 'user@example.org' });
    assert.equal(wire(done), '235 2.7.0 Authentication successful\r\n');
    assert.deepEqual(done, {
      kind: 'done',
      outcome: { ok: true, mechanism: 'PLAIN', identity: 'user@example.org' },
    });
  });

  it('AUTH PLAIN without initial response sends "334 " and reads the next line', () => {
    const exchange = createAuthExchange(createPlainMechanism());
    assert.equal(wire(exchange.begin(null)), '334 \r\n');
    assert.equal(exchange.line(b64('\0user\0pencil')).kind, 'verify');
    assert.equal(
      wire(exchange.answer({ kind: 'reject' })),
      '535 5.7.8 Authentication credentials invalid\r\n',
    );
  });

  it('AUTH PLAIN = is an empty initial response (and PLAIN refuses it as malformed)', () => {
    const done = createAuthExchange(createPlainMechanism()).begin('=');
    assert.equal(wire(done), '501 5.5.2 Malformed authentication response\r\n');
  });

  it('AUTH LOGIN dialogue with the RFC 4954 wire texts', () => {
    const exchange = createAuthExchange(createLoginMechanism());
    assert.equal(wire(exchange.begin(null)), '334 VXNlcm5hbWU6\r\n');
    assert.equal(wire(exchange.line(b64('user'))), '334 UGFzc3dvcmQ6\r\n');
    assert.equal(exchange.line(b64('pencil')).kind, 'verify');
    assert.equal(
      wire(exchange.answer({ kind: 'temporary' })),
      '454 4.7.0 Temporary authentication failure\r\n',
    );
  });

  it('"*" cancels with 501 5.7.0', () => {
    const exchange = createAuthExchange(createLoginMechanism());
    exchange.begin(null);
    const done = exchange.line('*');
    assert.equal(wire(done), '501 5.7.0 Authentication cancelled\r\n');
    assert.equal(done.kind === 'done' && !done.outcome.ok && done.outcome.reason, 'cancelled');
  });

  it('bad base64 ends the exchange with 501 5.5.2, in the initial response or a later line', () => {
    assert.equal(
      wire(createAuthExchange(createPlainMechanism()).begin('AHVzZXIAcGVuY2ls=')),
      '501 5.5.2 Cannot Base64-decode client response\r\n',
    );
    const exchange = createAuthExchange(createLoginMechanism());
    exchange.begin(null);
    assert.equal(wire(exchange.line('dXNlcg')), '501 5.5.2 Cannot Base64-decode client response\r\n');
  });

  it('an overlong line ends the exchange with 500 5.5.6', () => {
    const exchange = createAuthExchange(createPlainMechanism());
    exchange.begin(null);
    const line = 'A'.repeat(MAX_SASL_LINE_OCTETS + 4);
    assert.equal(wire(exchange.line(line)), '500 5.5.6 Authentication exchange line is too long\r\n');
  });

  describe('SCRAM-SHA-256 (RFC 7677 §3) on the wire', () => {
    const nonce = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    const alphabet = Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i))
      .filter((c) => c !== ',')
      .join('');
    const random = () => Uint8Array.from([...nonce].map((c) => alphabet.indexOf(c)));
    const secrets = deriveScramSecrets('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);
    const clientFinal =
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';

    const toFinal = () => {
      const exchange = createAuthExchange(createScramMechanism({ plus: false, random }));
      assert.equal(exchange.begin(b64('n,,n=user,r=rOprNGfwEbeRWgbNEkqO')).kind, 'verify');
      const serverFirst = exchange.answer({ kind: 'scram-secrets', identity: 'user', secrets });
      assert.equal(
        wire(serverFirst),
        `334 ${b64('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')}\r\n`,
      );
      return exchange;
    };

    it('sends v= as a last 334, and 235 after the empty answer', () => {
      const exchange = toFinal();
      assert.equal(
        wire(exchange.line(b64(clientFinal))),
        `334 ${b64('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')}\r\n`,
      );
      const done = exchange.line('');
      assert.equal(wire(done), '235 2.7.0 Authentication successful\r\n');
      assert.equal(done.kind === 'done' && done.outcome.ok && done.outcome.identity, 'user');
    });

    it('refuses a non-empty answer to v=, and honours "*" there', () => {
      const nonEmpty = toFinal();
      nonEmpty.line(b64(clientFinal));
      assert.equal(wire(nonEmpty.line(b64('x'))), '501 5.5.2 Malformed authentication response\r\n');
      const cancelled = toFinal();
      cancelled.line(b64(clientFinal));
      assert.equal(wire(cancelled.line('*')), '501 5.7.0 Authentication cancelled\r\n');
    });
  });

  it('OAUTHBEARER failure: JSON 334, ^A, then 535', () => {
    const exchange = createAuthExchange(createOAuthBearerMechanism());
    assert.equal(exchange.begin(b64('n,,\x01auth=Bearer bad\x01\x01')).kind, 'verify');
    assert.equal(wire(exchange.answer({ kind: 'reject' })), `334 ${b64('{"status":"invalid_token"}')}\r\n`);
    assert.equal(wire(exchange.line('AQ==')), '535 5.7.8 Authentication credentials invalid\r\n');
  });

  it('throws when the session calls out of turn', () => {
    const exchange = createAuthExchange(createPlainMechanism());
    assert.throws(() => exchange.line(''), /not awaiting a line/);
    assert.throws(() => exchange.answer({ kind: 'reject' }), /not awaiting a verification/);
    exchange.begin(null);
    assert.throws(() => exchange.begin(null), /twice/);
  });
});
