// Tests of the bearer token verifier: JWTs signed here with keys made here (RSA, EC P-256, Ed25519,
// HMAC) against a JWKS file in a temp dir, and RFC 7662 introspection against a real HTTP server on
// 127.0.0.1. The signer below is deliberately independent of the verifier's code.

import { constants, createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { OAuthConfig } from '../config/config.ts';
import type { Clock } from '../core/ports.ts';
import { createTokenVerifier, TokenVerifierConfigError } from './token-verifier.ts';
import type { TokenVerdict } from './token-verifier.ts';

const NOW_S = 1_700_000_000;

function fixedClock(nowS = NOW_S): Clock & { nowS: number } {
  return {
    nowS,
    nowMs() {
      return this.nowS * 1000;
    },
  };
}

function oauthConfig(over: Partial<OAuthConfig> = {}): OAuthConfig {
  return {
    issuer: null,
    audience: [],
    jwksFile: null,
    hmacSecret: null,
    introspectionUrl: null,
    introspectionClientId: null,
    introspectionClientSecret: null,
    usernameClaim: 'email',
    ...over,
  };
}

// --- a small JWS signer (RFC 7515 compact serialization) -------------------------------------------

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

type Signer = (input: Buffer) => Buffer;

const signers = {
  RS256:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign('sha256', input, key),
  PS256:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
  ES256:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign('sha256', input, { key, dsaEncoding: 'ieee-p1363' }),
  ES256der:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign('sha256', input, key),
  EdDSA:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign(null, input, key),
  HS256:
    (secret: string | Buffer): Signer =>
    (input) =>
      createHmac('sha256', secret).update(input).digest(),
};

function signJwt(header: Record<string, unknown>, claims: Record<string, unknown>, signer: Signer): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(signer(Buffer.from(input, 'ascii')))}`;
}

/** Claims that pass every check unless a test changes them. */
function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: 'https://issuer.example',
    aud: 'tern',
    sub: 'u-123',
    email: 'alice@example.org',
    iat: NOW_S - 10,
    exp: NOW_S + 300,
    ...over,
  };
}

// --- keys and a JWKS file ---------------------------------------------------------------------------

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const HMAC_SECRET = 'a shared secret of at least thirty-two bytes!';

const jwk = (key: KeyObject, extra: Record<string, unknown>): Record<string, unknown> => ({
  ...key.export({ format: 'jwk' }),
  ...extra,
});

let dir: string;
let jwksFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tern-token-'));
  jwksFile = join(dir, 'jwks.json');
  await writeFile(
    jwksFile,
    JSON.stringify({
      keys: [
        jwk(rsa.publicKey, { kid: 'rsa-1', use: 'sig' }),
        jwk(rsa2.publicKey, { kid: 'rsa-2' }),
        jwk(ec.publicKey, { kid: 'ec-1', alg: 'ES256' }),
        jwk(ed.publicKey, { kid: 'ed-1' }),
        // Not signing keys for us: skipped, not fatal.
        jwk(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, { kid: 'p384' }),
        jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, { kid: 'enc', use: 'enc' }),
      ],
    }),
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function jwtVerifier(over: Partial<OAuthConfig> = {}, clock: Clock = fixedClock()) {
  return createTokenVerifier(
    oauthConfig({
      issuer: 'https://issuer.example',
      audience: ['tern', 'other'],
      jwksFile,
      hmacSecret: HMAC_SECRET,
      ...over,
    }),
    { clock },
  );
}

function assertRejected(verdict: TokenVerdict, reason: RegExp): void {
  assert.equal(verdict.ok, false, `expected a rejection, got ${JSON.stringify(verdict)}`);
  if (verdict.ok) return;
  assert.match(verdict.reason, reason);
  assert.equal(verdict.temporary, false);
}

// --- JWT ------------------------------------------------------------------------------------------

describe('JWT verification', () => {
  test('a valid token of each algorithm passes and names the user from the email claim', async () => {
    const v = await jwtVerifier();
    const tokens = {
      RS256: signJwt({ alg: 'RS256', kid: 'rsa-1' }, claims(), signers.RS256(rsa.privateKey)),
      PS256: signJwt({ alg: 'PS256', kid: 'rsa-2' }, claims(), signers.PS256(rsa2.privateKey)),
      ES256: signJwt({ alg: 'ES256', kid: 'ec-1' }, claims(), signers.ES256(ec.privateKey)),
      EdDSA: signJwt({ alg: 'EdDSA', kid: 'ed-1' }, claims(), signers.EdDSA(ed.privateKey)),
      Ed25519: signJwt({ alg: 'Ed25519' }, claims(), signers.EdDSA(ed.privateKey)),
      HS256: signJwt({ alg: 'HS256', typ: 'JWT' }, claims(), signers.HS256(HMAC_SECRET)),
    };
    for (const [alg, token] of Object.entries(tokens)) {
      assert.deepEqual(await v.verify(token, null), { ok: true, username: 'alice@example.org' }, alg);
    }
  });

  test('without a kid every key of the right type is tried', async () => {
    const v = await jwtVerifier();
    const token = signJwt({ alg: 'RS256' }, claims(), signers.RS256(rsa2.privateKey));
    assert.deepEqual(await v.verify(token, null), { ok: true, username: 'alice@example.org' });
  });

  test('an unknown kid, or the kid of another key, fails', async () => {
    const v = await jwtVerifier();
    const unknown = signJwt({ alg: 'RS256', kid: 'nope' }, claims(), signers.RS256(rsa.privateKey));
    assertRejected(await v.verify(unknown, null), /kid/);
    const other = signJwt({ alg: 'RS256', kid: 'rsa-2' }, claims(), signers.RS256(rsa.privateKey));
    assertRejected(await v.verify(other, null), /bad signature/);
  });

  test('a key pinned to one alg by its JWK "alg" or type is not used for another', async () => {
    const v = await jwtVerifier();
    // ec-1 is ES256 only; an RS256 header naming it finds no key.
    const wrongType = signJwt({ alg: 'RS256', kid: 'ec-1' }, claims(), signers.RS256(rsa.privateKey));
    assertRejected(await v.verify(wrongType, null), /no RS256 key/);
    // P-384 and use=enc keys were skipped at load.
    const p384 = signJwt({ alg: 'ES256', kid: 'p384' }, claims(), signers.ES256(ec.privateKey));
    assertRejected(await v.verify(p384, null), /kid/);
  });

  test('expired tokens fail; expiry within the 60 s leeway passes; exp is required', async () => {
    const v = await jwtVerifier();
    const sign = (c: Record<string, unknown>) => signJwt({ alg: 'ES256' }, c, signers.ES256(ec.privateKey));
    assertRejected(await v.verify(sign(claims({ exp: NOW_S - 61 })), null), /expired/);
    assert.equal((await v.verify(sign(claims({ exp: NOW_S - 30 })), null)).ok, true);
    const noExp = claims();
    delete noExp['exp'];
    assertRejected(await v.verify(sign(noExp), null), /no exp/);
    assertRejected(await v.verify(sign(claims({ exp: String(NOW_S + 300) })), null), /exp is not a number/);
  });

  test('the clock decides: the same token passes now and fails after it expires', async () => {
    const clock = fixedClock();
    const v = await jwtVerifier({}, clock);
    const token = signJwt({ alg: 'EdDSA' }, claims(), signers.EdDSA(ed.privateKey));
    assert.equal((await v.verify(token, null)).ok, true);
    clock.nowS += 300 + 61;
    assertRejected(await v.verify(token, null), /expired/);
  });

  test('not yet valid (nbf) and issued in the future (iat) fail beyond the leeway', async () => {
    const v = await jwtVerifier();
    const sign = (c: Record<string, unknown>) => signJwt({ alg: 'ES256' }, c, signers.ES256(ec.privateKey));
    assertRejected(await v.verify(sign(claims({ nbf: NOW_S + 120 })), null), /not yet valid/);
    assert.equal((await v.verify(sign(claims({ nbf: NOW_S + 30 })), null)).ok, true);
    assertRejected(await v.verify(sign(claims({ iat: NOW_S + 3600 })), null), /future/);
  });

  test('issuer and audience are checked when configured', async () => {
    const v = await jwtVerifier();
    const sign = (c: Record<string, unknown>) => signJwt({ alg: 'EdDSA' }, c, signers.EdDSA(ed.privateKey));
    assertRejected(await v.verify(sign(claims({ iss: 'https://evil.example' })), null), /issuer/);
    assertRejected(await v.verify(sign(claims({ iss: undefined })), null), /issuer/);
    assertRejected(await v.verify(sign(claims({ aud: 'someone-else' })), null), /audience/);
    assertRejected(await v.verify(sign(claims({ aud: undefined })), null), /audience/);
    assert.equal((await v.verify(sign(claims({ aud: ['x', 'other'] })), null)).ok, true);
    // Not configured: any issuer and audience.
    const open = await jwtVerifier({ issuer: null, audience: [] });
    assert.equal((await open.verify(sign(claims({ iss: 'https://any', aud: 'any' })), null)).ok, true);
  });

  test('a tampered payload or signature fails', async () => {
    const v = await jwtVerifier();
    for (const [alg, signer] of [
      ['RS256', signers.RS256(rsa.privateKey)],
      ['ES256', signers.ES256(ec.privateKey)],
      ['EdDSA', signers.EdDSA(ed.privateKey)],
      ['HS256', signers.HS256(HMAC_SECRET)],
    ] as const) {
      const token = signJwt({ alg }, claims(), signer);
      const [h, , s] = token.split('.') as [string, string, string];
      const forged = `${h}.${b64url(JSON.stringify(claims({ email: 'mallory@example.org' })))}.${s}`;
      assertRejected(await v.verify(forged, null), /bad signature/);
      const sig = Buffer.from(s, 'base64url');
      sig[5]! ^= 1;
      assertRejected(await v.verify(`${h}.${token.split('.')[1]}.${b64url(sig)}`, null), /bad signature/);
    }
  });

  test('alg "none" is never accepted, however spelled and whatever the signature', async () => {
    const v = await jwtVerifier();
    const body = b64url(JSON.stringify(claims()));
    for (const alg of ['none', 'None', 'NONE', 'nOnE', '', 'toString', 'HS512', 'RS384']) {
      const header = b64url(JSON.stringify({ alg }));
      assertRejected(await v.verify(`${header}.${body}.`, null), /algorithm|signature/);
      assertRejected(await v.verify(`${header}.${body}.${b64url('sig')}`, null), /algorithm/);
    }
    assertRejected(await v.verify(`${b64url('{}')}.${body}.${b64url('sig')}`, null), /algorithm/);
  });

  test('HS256 keyed with the public key (algorithm confusion) fails', async () => {
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
    const der = rsa.publicKey.export({ type: 'spki', format: 'der' });
    const jwkText = JSON.stringify(jwk(rsa.publicKey, { kid: 'rsa-1' }));
    for (const secret of [pem, der, jwkText]) {
      // With and without a shared secret configured, with and without the RSA key's kid.
      for (const hmacSecret of [null, HMAC_SECRET]) {
        const v = await jwtVerifier({ hmacSecret });
        for (const header of [{ alg: 'HS256' }, { alg: 'HS256', kid: 'rsa-1' }]) {
          const token = signJwt(header, claims(), signers.HS256(secret));
          assertRejected(
            await v.verify(token, null),
            hmacSecret === null ? /no hmac_secret/ : /bad signature/,
          );
        }
      }
    }
  });

  test('an ES256 signature in DER instead of R||S fails', async () => {
    const v = await jwtVerifier();
    const token = signJwt({ alg: 'ES256' }, claims(), signers.ES256der(ec.privateKey));
    assertRejected(await v.verify(token, null), /bad signature/);
  });

  test('the claimed user must match the token, case-insensitively; the token names the user', async () => {
    const v = await jwtVerifier();
    const token = signJwt({ alg: 'EdDSA' }, claims(), signers.EdDSA(ed.privateKey));
    assert.deepEqual(await v.verify(token, 'Alice@Example.ORG'), { ok: true, username: 'alice@example.org' });
    assertRejected(await v.verify(token, 'bob@example.org'), /claimed user/);
  });

  test('username_claim picks the claim; a token without it fails', async () => {
    const v = await jwtVerifier({ usernameClaim: 'preferred_username' });
    const sign = (c: Record<string, unknown>) => signJwt({ alg: 'EdDSA' }, c, signers.EdDSA(ed.privateKey));
    assert.deepEqual(await v.verify(sign(claims({ preferred_username: 'alice' })), null), {
      ok: true,
      username: 'alice',
    });
    assertRejected(await v.verify(sign(claims()), null), /no preferred_username/);
    assertRejected(await v.verify(sign(claims({ preferred_username: 42 })), null), /no preferred_username/);
  });

  test('malformed tokens fail without throwing', async () => {
    const v = await jwtVerifier();
    const good = signJwt({ alg: 'EdDSA' }, claims(), signers.EdDSA(ed.privateKey));
    const [h, p, s] = good.split('.') as [string, string, string];
    const cases: [string, RegExp][] = [
      ['', /compact JWS/],
      ['abc', /compact JWS/],
      [`${good}.x.y`, /compact JWS/],
      [`${h}+.${p}.${s}`, /header/],
      [`${b64url('[1]')}.${p}.${s}`, /header/],
      [`${h}.${p}.${s}=`, /signature/],
      [`${h}.${p}.`, /signature/],
      ['x'.repeat(20_000), /too long/],
    ];
    for (const [token, reason] of cases) assertRejected(await v.verify(token, null), reason);
    const notJson = signJwt({ alg: 'HS256' }, claims(), signers.HS256(HMAC_SECRET)).split('.');
    const input = `${notJson[0]}.${b64url('not json')}`;
    const bad = `${input}.${b64url(signers.HS256(HMAC_SECRET)(Buffer.from(input)))}`;
    assertRejected(await v.verify(bad, null), /malformed JWT claims/);
  });

  test('critical header extensions and nested JWTs are refused', async () => {
    const v = await jwtVerifier();
    const crit = signJwt({ alg: 'EdDSA', crit: ['b64'], b64: false }, claims(), signers.EdDSA(ed.privateKey));
    assertRejected(await v.verify(crit, null), /critical/);
    const nested = signJwt({ alg: 'EdDSA', cty: 'jwt' }, claims(), signers.EdDSA(ed.privateKey));
    assertRejected(await v.verify(nested, null), /nested/);
  });

  test('a key embedded in the header is ignored', async () => {
    const v = await jwtVerifier();
    const attacker = generateKeyPairSync('ed25519');
    const token = signJwt(
      { alg: 'EdDSA', jwk: attacker.publicKey.export({ format: 'jwk' }) },
      claims(),
      signers.EdDSA(attacker.privateKey),
    );
    assertRejected(await v.verify(token, null), /bad signature/);
  });

  test('HS256 alone works without a JWKS file, and then asymmetric tokens fail', async () => {
    const v = await jwtVerifier({ jwksFile: null });
    const hs = signJwt({ alg: 'HS256' }, claims(), signers.HS256(HMAC_SECRET));
    assert.equal((await v.verify(hs, null)).ok, true);
    const rs = signJwt({ alg: 'RS256' }, claims(), signers.RS256(rsa.privateKey));
    assertRejected(await v.verify(rs, null), /no key for RS256/);
  });
});

describe('JWKS loading', () => {
  const write = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  const expectConfigError = async (path: string, message: RegExp): Promise<void> => {
    await assert.rejects(createTokenVerifier(oauthConfig({ jwksFile: path })), (err: unknown) => {
      assert.ok(err instanceof TokenVerifierConfigError);
      assert.equal(err.key, 'auth.oauth.jwks_file');
      assert.match(err.message, message);
      return true;
    });
  };

  test('a missing, non-JSON or key-less file stops creation with the key named', async () => {
    await expectConfigError(join(dir, 'absent.json'), /cannot read/);
    await expectConfigError(await write('bad.json', '{ nope'), /not JSON/);
    await expectConfigError(await write('nokeys.json', '{"kid":"x"}'), /no "keys" array/);
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    const oct = { kty: 'oct', k: b64url(HMAC_SECRET) };
    await expectConfigError(
      await write('unusable.json', JSON.stringify({ keys: [jwk(weak, {}), oct, 'junk', { kty: 'RSA' }] })),
      /no usable signing key/,
    );
  });

  test('nothing to verify with at all is a configuration error', async () => {
    await assert.rejects(createTokenVerifier(oauthConfig()), TokenVerifierConfigError);
  });

  test('a JWK "alg" restricts its key: an RS256-only key refuses PS256', async () => {
    const path = await write('pinned.json', JSON.stringify({ keys: [jwk(rsa.publicKey, { alg: 'RS256' })] }));
    const v = await createTokenVerifier(oauthConfig({ jwksFile: path }), { clock: fixedClock() });
    const rs = signJwt({ alg: 'RS256' }, claims(), signers.RS256(rsa.privateKey));
    assert.equal((await v.verify(rs, null)).ok, true);
    const ps = signJwt({ alg: 'PS256' }, claims(), signers.PS256(rsa.privateKey));
    assertRejected(await v.verify(ps, null), /no key for PS256/);
  });

  test('a JWKS that carries the private key by mistake still verifies (with the public half)', async () => {
    const path = await write(
      'private.json',
      JSON.stringify({ keys: [ed.privateKey.export({ format: 'jwk' })] }),
    );
    const v = await createTokenVerifier(oauthConfig({ jwksFile: path }), { clock: fixedClock() });
    const token = signJwt({ alg: 'EdDSA' }, claims(), signers.EdDSA(ed.privateKey));
    assert.equal((await v.verify(token, null)).ok, true);
  });
});

// --- introspection --------------------------------------------------------------------------------

interface Seen {
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly headers: IncomingMessage['headers'];
  readonly form: URLSearchParams;
}

type Handler = (seen: Seen, res: ServerResponse) => void;

/** A real HTTP server on 127.0.0.1 (ephemeral port) that records every request and answers via `handler`. */
async function startServer(handler: Handler) {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
      };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    seen,
    url: `http://127.0.0.1:${port}/introspect`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const json = (res: ServerResponse, body: unknown, status = 200): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

describe('introspection', () => {
  test('an active token passes; the request is a form POST with Basic client auth', async () => {
    const srv = await startServer((_s, res) => json(res, { active: true, email: 'alice@example.org' }));
    try {
      const v = await createTokenVerifier(
        oauthConfig({
          introspectionUrl: srv.url,
          introspectionClientId: 'tern client',
          introspectionClientSecret: 's3cr:et',
          // Ignored when introspecting: the endpoint decides.
          hmacSecret: HMAC_SECRET,
        }),
        { clock: fixedClock() },
      );
      assert.deepEqual(await v.verify('opaque-token.123', 'ALICE@example.org'), {
        ok: true,
        username: 'alice@example.org',
      });
      assert.equal(srv.seen.length, 1);
      const req = srv.seen[0]!;
      assert.equal(req.method, 'POST');
      assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.equal(req.form.get('token'), 'opaque-token.123');
      assert.equal(req.form.get('token_type_hint'), 'access_token');
      // RFC 6749 §2.3.1: form-encoded id and secret inside Basic.
      const basic = Buffer.from('tern+client:s3cr%3Aet').toString('base64');
      assert.equal(req.headers['authorization'], `Basic ${basic}`);
    } finally {
      await srv.close();
    }
  });

  test('without client credentials no Authorization header is sent', async () => {
    const srv = await startServer((_s, res) => json(res, { active: true, email: 'alice@example.org' }));
    try {
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), {
        clock: fixedClock(),
      });
      assert.equal((await v.verify('t', null)).ok, true);
      assert.equal(srv.seen[0]!.headers['authorization'], undefined);
    } finally {
      await srv.close();
    }
  });

  test('an inactive token fails (not temporary) and is not cached', async () => {
    const srv = await startServer((_s, res) => json(res, { active: false }));
    try {
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), {
        clock: fixedClock(),
      });
      assertRejected(await v.verify('t', null), /not active/);
      assertRejected(await v.verify('t', null), /not active/);
      assert.equal(srv.seen.length, 2);
    } finally {
      await srv.close();
    }
  });

  test('"active" must be the boolean true', async () => {
    const srv = await startServer((_s, res) => json(res, { active: 'true', email: 'a@example.org' }));
    try {
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), {
        clock: fixedClock(),
      });
      assertRejected(await v.verify('t', null), /not active/);
    } finally {
      await srv.close();
    }
  });

  test('username falls back from username_claim to "username" then "sub"', async () => {
    const answers: Record<string, unknown>[] = [
      { active: true, username: 'bob', sub: 'u-1' },
      { active: true, sub: 'u-1' },
      { active: true },
    ];
    const srv = await startServer((s, res) => json(res, answers[Number(s.form.get('token'))]));
    try {
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), {
        clock: fixedClock(),
      });
      assert.deepEqual(await v.verify('0', null), { ok: true, username: 'bob' });
      assert.deepEqual(await v.verify('1', null), { ok: true, username: 'u-1' });
      assertRejected(await v.verify('2', null), /no email, username or sub/);
      assertRejected(await v.verify('0', 'carol'), /claimed user/);
    } finally {
      await srv.close();
    }
  });

  test('exp, iss and aud in the answer are checked', async () => {
    const answers: Record<string, unknown>[] = [
      { active: true, email: 'a@example.org', exp: NOW_S - 120, iss: 'https://i', aud: 'tern' },
      { active: true, email: 'a@example.org', iss: 'https://other', aud: 'tern' },
      { active: true, email: 'a@example.org', iss: 'https://i', aud: ['x'] },
      { active: true, email: 'a@example.org', iss: 'https://i', aud: ['x', 'tern'], exp: NOW_S + 5 },
    ];
    const srv = await startServer((s, res) => json(res, answers[Number(s.form.get('token'))]));
    try {
      const v = await createTokenVerifier(
        oauthConfig({ introspectionUrl: srv.url, issuer: 'https://i', audience: ['tern'] }),
        { clock: fixedClock() },
      );
      assertRejected(await v.verify('0', null), /expired/);
      assertRejected(await v.verify('1', null), /issuer/);
      assertRejected(await v.verify('2', null), /audience/);
      assert.equal((await v.verify('3', null)).ok, true);
    } finally {
      await srv.close();
    }
  });

  test('a 5xx, a 4xx, a redirect or a non-JSON answer is a temporary failure', async () => {
    const srv = await startServer((s, res) => {
      switch (s.form.get('token')) {
        case '500':
          return json(res, { error: 'boom' }, 500);
        case '401':
          return json(res, { error: 'invalid_client' }, 401);
        case '307':
          res.writeHead(307, { location: '/elsewhere' });
          return res.end();
        case 'html':
          res.writeHead(200, { 'content-type': 'text/html' });
          return res.end('<html>');
        case 'huge':
          return json(res, { active: true, email: 'a@example.org', pad: 'x'.repeat(100_000) });
        default:
          return json(res, { active: true, email: 'a@example.org' });
      }
    });
    try {
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), {
        clock: fixedClock(),
      });
      for (const [token, reason] of [
        ['500', /answered 500/],
        ['401', /answered 401/],
        ['307', /answered 307/],
        ['html', /not JSON/],
        ['huge', /too large/],
      ] as const) {
        const verdict = await v.verify(token, null);
        assert.equal(verdict.ok, false, token);
        if (verdict.ok) continue;
        assert.equal(verdict.temporary, true, token);
        assert.match(verdict.reason, reason);
      }
      // The redirect was not followed with the token.
      assert.ok(srv.seen.every((s) => s.url === '/introspect'));
    } finally {
      await srv.close();
    }
  });

  test('a slow endpoint times out: temporary, and within the bound', async () => {
    const srv = await startServer(() => {
      // Never answers; close() drops the connection.
    });
    try {
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), {
        clock: fixedClock(),
        timeoutMs: 200,
      });
      const started = performance.now();
      const verdict = await v.verify('t', null);
      const elapsedMs = performance.now() - started;
      assert.deepEqual(verdict, { ok: false, reason: 'introspection timed out', temporary: true });
      assert.ok(elapsedMs >= 150 && elapsedMs < 5000, `took ${elapsedMs} ms`);
    } finally {
      await srv.close();
    }
  });

  test('an unreachable endpoint is a temporary failure', async () => {
    const srv = await startServer(() => {});
    const url = srv.url;
    await srv.close();
    const v = await createTokenVerifier(oauthConfig({ introspectionUrl: url }), { clock: fixedClock() });
    const verdict = await v.verify('t', null);
    assert.deepEqual(verdict, { ok: false, reason: 'introspection endpoint unreachable', temporary: true });
  });

  test('a thrown fetch never escapes verify', async () => {
    const v = await createTokenVerifier(oauthConfig({ introspectionUrl: 'http://127.0.0.1:9/x' }), {
      clock: fixedClock(),
      fetch: () => Promise.reject(new Error('boom')),
    });
    assert.deepEqual(await v.verify('t', null), {
      ok: false,
      reason: 'introspection endpoint unreachable',
      temporary: true,
    });
  });

  test('positive answers are cached up to 60 s (less when exp is sooner), keyed by the token', async () => {
    let exp: number | undefined;
    const srv = await startServer((_s, res) => json(res, { active: true, email: 'alice@example.org', exp }));
    try {
      const clock = fixedClock();
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), { clock });
      assert.equal((await v.verify('tok-a', null)).ok, true);
      assert.equal((await v.verify('tok-a', 'alice@example.org')).ok, true);
      assert.equal(srv.seen.length, 1, 'the second verify is answered from the cache');
      // The cache holds the user, not the verdict: a different claimed user still fails.
      assertRejected(await v.verify('tok-a', 'mallory@example.org'), /claimed user/);
      assert.equal(srv.seen.length, 1);
      // Another token is asked about.
      assert.equal((await v.verify('tok-b', null)).ok, true);
      assert.equal(srv.seen.length, 2);
      // After 60 s the endpoint is asked again.
      clock.nowS += 59;
      await v.verify('tok-a', null);
      assert.equal(srv.seen.length, 2);
      clock.nowS += 2;
      await v.verify('tok-a', null);
      assert.equal(srv.seen.length, 3);
      // A token that expires in 10 s is kept only 10 s.
      exp = clock.nowS + 10;
      await v.verify('tok-c', null);
      clock.nowS += 9;
      await v.verify('tok-c', null);
      assert.equal(srv.seen.length, 4);
      clock.nowS += 2;
      await v.verify('tok-c', null);
      assert.equal(srv.seen.length, 5);
    } finally {
      await srv.close();
    }
  });

  test('failures are not cached', async () => {
    let status = 500;
    const srv = await startServer((_s, res) => json(res, { active: true, email: 'a@example.org' }, status));
    try {
      const v = await createTokenVerifier(oauthConfig({ introspectionUrl: srv.url }), {
        clock: fixedClock(),
      });
      assert.equal((await v.verify('t', null)).ok, false);
      status = 200;
      assert.equal((await v.verify('t', null)).ok, true);
      assert.equal(srv.seen.length, 2);
    } finally {
      await srv.close();
    }
  });
});
