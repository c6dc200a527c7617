// Stored SCRAM secrets: derivation (checked against RFC 7677's example), the serialized form, decoys.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decoyScramSecrets,
  deriveScramSecrets,
  formatScramSecrets,
  parseScramSecrets,
  prepareScramPassword,
} from './scram-secrets.ts';

const RFC_SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');

describe('deriveScramSecrets', () => {
  it('derives the keys of RFC 7677 §3 (pencil), and formats them', () => {
    const secrets = deriveScramSecrets('pencil', RFC_SALT, 4096);
    // StoredKey and ServerKey of the RFC example, as servers such as PostgreSQL store them.
    assert.equal(
      formatScramSecrets(secrets),
      'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==' +
        '$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=',
    );
  });

  it('uses a fresh 16-byte salt when none is given', () => {
    const a = deriveScramSecrets('pencil');
    const b = deriveScramSecrets('pencil');
    assert.equal(a.salt.length, 16);
    assert.notDeepEqual(a.salt, b.salt);
    assert.notDeepEqual(a.storedKey, b.storedKey);
  });

  it('refuses iteration counts below RFC 7677 minimum and empty salts', () => {
    assert.throws(() => deriveScramSecrets('pencil', RFC_SALT, 4095), RangeError);
    assert.throws(() => deriveScramSecrets('pencil', RFC_SALT, 4096.5), RangeError);
    assert.throws(() => deriveScramSecrets('pencil', new Uint8Array(0)), RangeError);
  });

  it('SASLpreps the password, so equivalent spellings derive the same keys', () => {
    const a = deriveScramSecrets('I\u00ADX', RFC_SALT); // soft hyphen is mapped to nothing
    const b = deriveScramSecrets('IX', RFC_SALT);
    assert.deepEqual(a.storedKey, b.storedKey);
    assert.equal(prepareScramPassword('\u2168'), 'IX'); // ROMAN NUMERAL NINE, NFKC
    assert.equal(prepareScramPassword('a\u0007b'), 'a\u0007b'); // prohibited: kept as typed
  });
});

describe('parseScramSecrets', () => {
  it('round-trips formatScramSecrets', () => {
    const secrets = deriveScramSecrets('pencil', RFC_SALT, 8192);
    assert.deepEqual(parseScramSecrets(formatScramSecrets(secrets)), { ok: true, value: secrets });
  });

  it('refuses damaged or out-of-bounds entries', () => {
    const good = formatScramSecrets(deriveScramSecrets('pencil', RFC_SALT));
    const [, iterSalt = '', keys = ''] = good.split('$');
    const [stored = '', server = ''] = keys.split(':');
    for (const bad of [
      '',
      good.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
      good.replace('4096', '1024'), // below the minimum
      good.replace('4096', '04096'),
      good.replace('4096', '99999999999'),
      `SCRAM-SHA-256$${iterSalt}$${stored}`, // one key missing
      `SCRAM-SHA-256$${iterSalt}$${stored}:${server}:${server}`,
      `SCRAM-SHA-256$${iterSalt}$${stored.slice(4)}:${server}`, // short StoredKey
      `SCRAM-SHA-256$4096:$${stored}:${server}`, // empty salt
      `SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ$${stored}:${server}`, // unpadded salt
      `${good}$`,
      `$scrypt$ln=15,r=8,p=1$abc$def`,
    ]) {
      assert.equal(parseScramSecrets(bad).ok, false, bad);
    }
  });

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        assert.equal(typeof parseScramSecrets(text).ok, 'boolean');
        assert.equal(typeof parseScramSecrets(`SCRAM-SHA-256$${text}`).ok, 'boolean');
      }),
    );
  });
});

describe('decoyScramSecrets', () => {
  it('is stable per key and username (case-insensitive) and differs between users and keys', () => {
    const key = new Uint8Array(32).fill(1);
    const a = decoyScramSecrets(key, 'ghost@example.org');
    assert.deepEqual(decoyScramSecrets(key, 'Ghost@Example.org'), a);
    assert.notDeepEqual(decoyScramSecrets(key, 'other@example.org').salt, a.salt);
    assert.notDeepEqual(decoyScramSecrets(new Uint8Array(32).fill(2), 'ghost@example.org').salt, a.salt);
    assert.equal(a.salt.length, 16);
    assert.equal(a.iterations, 4096);
    assert.equal(parseScramSecrets(formatScramSecrets(a)).ok, true);
  });
});
