// SASL EXTERNAL (RFC 4422 App. A) with TLS client certificates, end to end. Certificates and a client CA
// are made with the openssl command; a self-signed certificate is mapped to a user with
// `tern user cert ADDR --cert-file`, a CA-issued one maps by its rfc822Name SAN without any mapping.
// The EXTERNAL exchange is driven by Python's smtplib with the certificate in its ssl context (swaks
// 20201014 has no EXTERNAL); swaks presents certificates to a listener with client_certificates =
// "require", which refuses clients without one.
// Refused: an unmapped self-signed certificate naming a user, a certificate from an unknown CA, a CA-issued
// certificate for nobody, an authorization identity other than the certificate's user, EXTERNAL without
// a certificate. Deliberately NOT here: password mechanisms (auth-smtplib, auth-swaks).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuthClientResult, AuthTern, CertPair } from './auth-helpers.ts';
import {
  authClient,
  b64,
  haveOpenssl,
  havePythonSsl,
  makeCa,
  makeClientCert,
  startAuthTern,
  swaks,
  swaksSkipReason,
  tempDir,
} from './auth-helpers.ts';

const skip = !haveOpenssl()
  ? 'the openssl command is not available to make certificates'
  : !havePythonSsl()
    ? 'python3 with smtplib and ssl is not available on this machine'
    : false;

// Listener order in the config; ports come back in this order.
const SUBMISSION_REQUEST = 1;
const SUBMISSIONS_REQUEST = 2;
const SUBMISSION_REQUIRE = 3;

function assertRan(r: AuthClientResult): void {
  assert.equal(r.ok, true, `auth_client failed: ${JSON.stringify(r)}`);
}

describe('AUTH EXTERNAL with client certificates', { skip }, () => {
  let tern: AuthTern;
  let ca: CertPair;
  let carol: CertPair; // CA-issued, SAN carol@example.test, not mapped
  let dan: CertPair; // self-signed, mapped to dan@example.test with `tern user cert --cert-file`
  let erin: CertPair; // self-signed, SAN erin@example.test (a user), not mapped
  let foreign: CertPair; // issued by another CA, SAN carol@example.test
  let ghost: CertPair; // CA-issued, SAN for an address that is no user
  const port = (i: number): number => tern.listenerPorts[i]!;

  before(async () => {
    const dir = await tempDir();
    ca = await makeCa(dir);
    const otherCa = await makeCa(dir, 'other-ca');
    [carol, dan, erin, foreign, ghost] = await Promise.all([
      makeClientCert(dir, 'carol', 'carol@example.test', ca),
      makeClientCert(dir, 'dan', 'dan@example.test'),
      makeClientCert(dir, 'erin', 'erin@example.test'),
      makeClientCert(dir, 'foreign', 'carol@example.test', otherCa),
      makeClientCert(dir, 'ghost', 'ghost@example.test', ca),
    ]);
    tern = await startAuthTern({
      listeners: [
        { service: 'smtp' },
        { service: 'submission', tls: 'starttls', client_certificates: 'request' },
        { service: 'submissions', tls: 'implicit', client_certificates: 'request' },
        { service: 'submission', tls: 'starttls', client_certificates: 'require' },
      ],
      tls: { client_ca: ca.cert },
      users: [
        { address: 'carol@example.test', password: 'carol pass' },
        { address: 'dan@example.test' },
        { address: 'erin@example.test' },
        { address: 'box@example.test' },
      ],
      certs: [['dan@example.test', dan.cert]],
      auth: { max_failures_per_connection: 10, lockout_threshold: 100 },
    });
  });
  after(() => tern?.stop());

  test('the mapping made with `tern user cert --cert-file` is listed', async () => {
    const r = await tern.tern(['user', 'cert', 'dan@example.test', '--list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { address: string; fingerprint: string }[];
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.address, 'dan@example.test');
    assert.match(rows[0]!.fingerprint, /^[0-9a-f:]{64,95}$/i);
  });

  test('STARTTLS with a mapped self-signed certificate: EXTERNAL offered, AUTH EXTERNAL = logs in, mail goes', async () => {
    const r = await authClient({
      port: port(SUBMISSION_REQUEST),
      mode: 'starttls',
      ...dan,
      steps: [
        ['cmd', 'AUTH EXTERNAL ='],
        ['sendmail', 'dan@example.test', ['box@example.test'], 'Subject: by certificate\r\n\r\nHi.\r\n'],
      ],
    });
    assertRan(r);
    assert.match(r.features['auth'] ?? '', /\bEXTERNAL\b/);
    assert.deepEqual(r.steps[0], [235, '2.7.0 Authentication successful']);
    assert.deepEqual(r.steps[1], [250, '', {}]);
    const ok = await tern.waitForLog(
      'EXTERNAL success for dan',
      (l) => l.event === 'smtp.auth.succeeded' && l['user'] === 'dan@example.test',
    );
    assert.equal(ok['mechanism'], 'EXTERNAL');
    await tern.waitForMessages('box@example.test', 1);
  });

  test('implicit TLS with a CA-issued certificate whose SAN e-mail is a user: no mapping needed', async () => {
    const r = await authClient({
      port: port(SUBMISSIONS_REQUEST),
      mode: 'ssl',
      ...carol,
      steps: [
        ['cmd', 'AUTH EXTERNAL ='],
        ['mail', 'carol@example.test'],
      ],
    });
    assertRan(r);
    assert.deepEqual(r.steps[0], [235, '2.7.0 Authentication successful']);
    assert.equal(r.steps[1]![0], 250);
    const ok = await tern.waitForLog(
      'EXTERNAL success for carol',
      (l) => l.event === 'smtp.auth.succeeded' && l['user'] === 'carol@example.test',
    );
    assert.equal(ok['mechanism'], 'EXTERNAL');
  });

  test('an authorization identity equal to the certificate user is accepted; another one is refused', async () => {
    const r = await authClient({
      port: port(SUBMISSIONS_REQUEST),
      mode: 'ssl',
      ...carol,
      steps: [
        ['cmd', `AUTH EXTERNAL ${b64('dan@example.test')}`],
        ['cmd', `AUTH EXTERNAL ${b64('carol@example.test')}`],
      ],
    });
    assertRan(r);
    assert.deepEqual(r.steps[0], [535, '5.7.8 Authentication credentials invalid']);
    assert.deepEqual(r.steps[1], [235, '2.7.0 Authentication successful']);
  });

  for (const [name, cert] of [
    ['an unmapped self-signed certificate naming a user', () => erin],
    ['a certificate from a CA that is not tls.client_ca', () => foreign],
    ['a CA-issued certificate for an address that is no user', () => ghost],
  ] as const) {
    test(`${name}: EXTERNAL is refused with 535 5.7.8`, async () => {
      const r = await authClient({
        port: port(SUBMISSIONS_REQUEST),
        mode: 'ssl',
        ...cert(),
        steps: [
          ['cmd', 'AUTH EXTERNAL ='],
          ['cmd', 'MAIL FROM:<carol@example.test>'],
        ],
      });
      assertRan(r);
      assert.deepEqual(r.steps[0], [535, '5.7.8 Authentication credentials invalid']);
      assert.equal(r.steps[1]![0], 530);
    });
  }

  test('no certificate on a "request" listener: EXTERNAL refused, a password still works', async () => {
    const r = await authClient({
      port: port(SUBMISSION_REQUEST),
      mode: 'starttls',
      steps: [
        ['cmd', 'AUTH EXTERNAL ='],
        ['auth', 'PLAIN', 'carol@example.test', 'carol pass'],
      ],
    });
    assertRan(r);
    assert.deepEqual(r.steps[0], [535, '5.7.8 Authentication credentials invalid']);
    assert.equal(r.steps[1]![0], 235);
  });

  test('before STARTTLS EXTERNAL is neither offered nor accepted', async () => {
    const r = await authClient({
      port: port(SUBMISSION_REQUEST),
      mode: 'plain',
      steps: [['cmd', 'AUTH EXTERNAL =']],
    });
    assertRan(r);
    assert.equal(r.features['auth'], undefined);
    assert.equal(r.steps[0]![0], 538);
  });

  test('a "require" listener: smtplib without a certificate is cut after the handshake', async () => {
    const r = await authClient({
      port: port(SUBMISSION_REQUIRE),
      mode: 'starttls',
      steps: [['cmd', 'NOOP']],
    });
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.equal(r.steps.length, 0);
    await tern.waitForLog(
      'the refusal',
      (l) => l.event === 'smtp.tls.failed' && l['error'] === 'client certificate required',
    );
  });

  test('a "require" listener: with a certificate, EXTERNAL works', async () => {
    const r = await authClient({
      port: port(SUBMISSION_REQUIRE),
      mode: 'starttls',
      ...dan,
      steps: [['cmd', 'AUTH EXTERNAL =']],
    });
    assertRan(r);
    assert.equal(r.steps[0]![0], 235);
  });

  describe('swaks with --tls-cert/--tls-key on the "require" listener', { skip: swaksSkipReason() }, () => {
    const send = (extra: readonly string[]): ReturnType<typeof swaks> =>
      swaks(port(SUBMISSION_REQUIRE), [
        '--tls',
        '--auth',
        'PLAIN',
        '--auth-user',
        'carol@example.test',
        '--auth-password',
        'carol pass',
        '--from',
        'carol@example.test',
        '--to',
        'box@example.test',
        '--header',
        'Subject: swaks with a client certificate',
        ...extra,
      ]);

    test('with a certificate: TLS, AUTH PLAIN and the message go through', async () => {
      const r = await send(['--tls-cert', carol.cert, '--tls-key', carol.key]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /<~ {2}235 2\.7\.0/);
      assert.match(r.stdout, /<~ {2}250 2\.0\.0 OK: queued as/);
    });

    test('without a certificate: the connection ends before any command under TLS', async () => {
      const r = await send([]);
      assert.notEqual(r.code, 0, r.stdout);
      assert.doesNotMatch(r.stdout, / ~> AUTH/);
      assert.doesNotMatch(r.stdout, /<~ {2}235/);
    });
  });
});
