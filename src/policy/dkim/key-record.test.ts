import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import type { DkimKeyRecord } from './key-record.ts';
import { importPublicKey, parseKeyRecord } from './key-record.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
const RSA_SPKI = rsa.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
const RSA_PKCS1 = rsa.publicKey.export({ format: 'der', type: 'pkcs1' }).toString('base64');
const ed = generateKeyPairSync('ed25519');
const ED_RAW = Buffer.from(ed.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64');

function record(text: string): DkimKeyRecord {
  const parsed = parseKeyRecord(text);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  return parsed.value;
}

describe('parseKeyRecord (RFC 6376 §3.6.1)', () => {
  test('defaults: k=rsa, any hash, s=*, no flags', () => {
    assert.deepEqual(record(`p=${RSA_SPKI}`), {
      keyType: 'rsa',
      publicKey: RSA_SPKI,
      hashAlgorithms: null,
      serviceTypes: ['*'],
      flags: [],
    });
  });

  test('every tag, folded p=', () => {
    const r = record(
      `v=DKIM1; k=ed25519; h=sha256 : sha1; s=email:*; t=y:s; n=notes; p=${ED_RAW.slice(0, 10)} ${ED_RAW.slice(10)}`,
    );
    assert.equal(r.keyType, 'ed25519');
    assert.equal(r.publicKey, ED_RAW);
    assert.deepEqual(r.hashAlgorithms, ['sha256', 'sha1']);
    assert.deepEqual(r.serviceTypes, ['email', '*']);
    assert.deepEqual(r.flags, ['y', 's']);
  });

  for (const [text, reason, revoked] of [
    ['v=DKIM1: g=*; k=rsa; p=AAAA', /version/, false],
    ['k=rsa; v=DKIM1; p=AAAA', /first tag/, false],
    ['v=DKIM1; k=ed25519-sha256; p=AAAA', /unknown key type/, false],
    ['v=DKIM1; k=rsa', /no p=/, false],
    ['v=DKIM1; k=rsa; p=', /revoked/, true],
    ['v=DKIM1; p=a; p=b', /duplicate/, false],
  ] as const) {
    test(`"${text}" is refused`, () => {
      const parsed = parseKeyRecord(text);
      assert.equal(parsed.ok, false);
      if (!parsed.ok) {
        assert.match(parsed.reason, reason);
        assert.equal(parsed.revoked, revoked);
      }
    });
  }
});

describe('importPublicKey', () => {
  test('RSA as SubjectPublicKeyInfo and as bare PKCS#1, with its size', () => {
    for (const p of [RSA_SPKI, RSA_PKCS1]) {
      const imported = importPublicKey(record(`p=${p}`));
      assert.ok(imported.ok);
      assert.equal(imported.bits, 1024);
      assert.equal(imported.key.asymmetricKeyType, 'rsa');
    }
  });

  test('Ed25519 as the raw 32 octets (RFC 8463 §4)', () => {
    const imported = importPublicKey(record(`k=ed25519; p=${ED_RAW}`));
    assert.ok(imported.ok);
    assert.equal(imported.key.asymmetricKeyType, 'ed25519');
  });

  test('broken keys', () => {
    const bad = (text: string, reason: RegExp): void => {
      const imported = importPublicKey(record(text));
      assert.equal(imported.ok, false);
      assert.match(imported.ok ? '' : imported.reason, reason);
    };
    bad(`p=${RSA_SPKI.slice(0, -8)}AAAAAAA=`, /not a valid RSA/);
    bad('p=not*base64', /not base64/);
    bad(`k=ed25519; p=${RSA_SPKI}`, /not 32/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    bad(`p=${ec.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`, /not an RSA key/);
  });
});
