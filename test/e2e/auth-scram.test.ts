// SCRAM-SHA-256 (RFC 5802, RFC 7677) and SCRAM-SHA-256-PLUS end to end, with a client written
// independently in test/e2e/py/auth_client.py (hashlib, hmac, base64) over smtplib's docmd: the server's
// signature is checked by the client (whose math is first checked against the RFC 7677 §3 example), the
// secret comes from `tern user add --password-stdin`, and channel binding uses tls-unique (RFC 5929)
// over TLS 1.2, the binding Python's ssl can produce.
// Refusals: wrong password and unknown user (both 535 5.7.8 after the proof, the unknown user getting a
// normal-looking server-first message), the "y" flag while -PLUS is offered (downgrade, RFC 5802 §6),
// binding data that does not match the channel, tls-unique over TLS 1.3 (RFC 9266 §3).
// Deliberately NOT here: tls-exporter from an independent client (Python cannot export keying material;
// the unit tests of src/protocol/sasl cover it), SCRAM-SHA-1.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuthClientResult, AuthTern, ScramInfo } from './auth-helpers.ts';
import { authClient, havePythonSsl, scramVector, startAuthTern } from './auth-helpers.ts';

const skip = havePythonSsl() ? false : 'python3 with smtplib and ssl is not available on this machine';

const USER = 'scram@example.test';
const PASSWORD = 'pencil, with = signs';

function scramInfo(r: AuthClientResult, step = 0): ScramInfo {
  assert.equal(r.ok, true, `auth_client failed: ${JSON.stringify(r)}`);
  return r.steps[step]![2] as ScramInfo;
}

describe('SCRAM-SHA-256 with an independent client', { skip }, () => {
  let tern: AuthTern;
  before(async () => {
    tern = await startAuthTern({
      users: [{ address: USER, password: PASSWORD }],
      // Every refusal below counts; keep the connection and the IP usable for all of them.
      auth: { max_failures_per_connection: 10, lockout_threshold: 100 },
    });
  });
  after(() => tern?.stop());

  test('the client itself reproduces the RFC 7677 §3 example (so a pass below is not two bugs agreeing)', async () => {
    const out = await scramVector({
      password: 'pencil',
      client_first_bare: 'n=user,r=rOprNGfwEbeRWgbNEkqO',
      server_first: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    });
    assert.deepEqual(out, {
      client_final:
        'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,' +
        'p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      server_final: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    });
  });

  for (const [name, port, mode] of [
    ['submission + STARTTLS', () => tern.ports.submission, 'starttls'],
    ['submissions (implicit TLS)', () => tern.ports.submissions, 'ssl'],
  ] as const) {
    test(`SCRAM-SHA-256 on ${name}: 235, the server proves it knows the secret, MAIL is accepted`, async () => {
      const r = await authClient({
        port: port(),
        mode,
        steps: [
          ['scram', USER, PASSWORD],
          ['mail', USER],
        ],
      });
      const info = scramInfo(r);
      assert.equal(info.replies[0]![0], 334, 'server-first message');
      assert.equal(info.replies[1]![0], 334, 'server-final message as a challenge (RFC 4954 §4)');
      assert.equal(info.server_signature_ok, true);
      assert.deepEqual(r.steps[0]!.slice(0, 2), [235, '2.7.0 Authentication successful']);
      assert.equal(r.steps[1]![0], 250);
    });
  }

  for (const [name, port, mode] of [
    ['submission + STARTTLS', () => tern.ports.submission, 'starttls'],
    ['submissions', () => tern.ports.submissions, 'ssl'],
  ] as const) {
    test(`SCRAM-SHA-256-PLUS with tls-unique over TLS 1.2 on ${name}`, async () => {
      const r = await authClient({
        port: port(),
        mode,
        tlsMax: 'TLSv1_2',
        steps: [
          ['scram', USER, PASSWORD, { plus: true }],
          ['mail', USER],
        ],
      });
      assert.equal(r.tls, 'TLSv1.2');
      assert.match(r.features['auth'] ?? '', /^SCRAM-SHA-256-PLUS /);
      const info = scramInfo(r);
      assert.equal(info.server_signature_ok, true);
      assert.equal(r.steps[0]![0], 235, JSON.stringify(r.steps[0]));
      assert.equal(r.steps[1]![0], 250);
      const ok = await tern.waitForLog(
        'a -PLUS success',
        (l) => l.event === 'smtp.auth.succeeded' && l['mechanism'] === 'SCRAM-SHA-256-PLUS',
      );
      assert.equal(ok['user'], USER);
    });
  }

  test('a wrong password fails at the proof with 535 5.7.8', async () => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [
        ['scram', USER, 'pencil'],
        ['cmd', `MAIL FROM:<${USER}>`],
      ],
    });
    const info = scramInfo(r);
    assert.equal(info.replies[0]![0], 334);
    assert.deepEqual(info.replies[1], [535, '5.7.8 Authentication credentials invalid']);
    assert.equal(info.server_signature_ok, null, 'no server signature is sent on failure');
    assert.deepEqual(r.steps[1], [530, '5.7.0 Authentication required']);
  });

  test('an unknown user gets a server-first message like anyone (salt, iterations) and fails at the proof', async () => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [['scram', 'nobody@example.test', PASSWORD]],
    });
    const info = scramInfo(r);
    assert.equal(info.replies[0]![0], 334);
    const serverFirst = Buffer.from(info.replies[0]![1], 'base64').toString('utf8');
    assert.match(serverFirst, /^r=[\x21-\x2b\x2d-\x7e]+,s=[A-Za-z0-9+/]+=*,i=\d+$/);
    assert.deepEqual(info.replies[1], [535, '5.7.8 Authentication credentials invalid']);
  });

  test('the "y" flag while -PLUS is offered is a downgrade: refused (RFC 5802 §6)', async () => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [['scram', USER, PASSWORD, { gs2: 'y' }]],
    });
    const info = scramInfo(r);
    assert.notEqual(r.steps[0]![0], 235);
    assert.equal(info.server_signature_ok, null);
    assert.equal(r.steps[0]![0], 535, JSON.stringify(info.replies));
  });

  test('binding data of another channel is refused with 535', async () => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      tlsMax: 'TLSv1_2',
      steps: [
        ['scram', USER, PASSWORD, { plus: true, tamper_cb: true }],
        ['cmd', `MAIL FROM:<${USER}>`],
      ],
    });
    const info = scramInfo(r);
    assert.equal(info.server_signature_ok, null);
    assert.equal(r.steps[0]![0], 535, JSON.stringify(info.replies));
    assert.equal(r.steps[1]![0], 530);
  });

  test('tls-unique over TLS 1.3 is refused (RFC 9266: only tls-exporter is defined there)', async (t) => {
    const r = await authClient({
      port: tern.ports.submissions,
      mode: 'ssl',
      steps: [['scram', USER, PASSWORD, { plus: true }]],
    });
    assert.equal(r.tls, 'TLSv1.3');
    if (!r.ok && r.error === 'RuntimeError' && /no tls-unique/.test(r.text ?? '')) {
      t.skip("this Python's ssl gives no tls-unique on TLS 1.3, so the client cannot even try");
      return;
    }
    const info = scramInfo(r);
    assert.equal(info.server_signature_ok, null);
    assert.equal(r.steps[0]![0], 535, JSON.stringify(info.replies));
  });
});
