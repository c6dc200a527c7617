import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { generate } from 'selfsigned';
import { certificateFingerprint, normalizeFingerprint } from './fingerprint.ts';

const HEX = '0123456789abcdef'.repeat(4);

describe('normalizeFingerprint', () => {
  it('accepts plain hex and the colon form, in any case, and yields lower-case hex', () => {
    const colons = HEX.toUpperCase().match(/../g)!.join(':');
    for (const form of [HEX, HEX.toUpperCase(), colons, colons.toLowerCase(), `  ${colons}\n`]) {
      assert.equal(normalizeFingerprint(form), HEX, form);
    }
  });

  it('accepts what `openssl x509 -noout -fingerprint -sha256` prints', () => {
    const colons = HEX.toUpperCase().match(/../g)!.join(':');
    assert.equal(normalizeFingerprint(`sha256 Fingerprint=${colons}`), HEX);
    assert.equal(normalizeFingerprint(`SHA256 Fingerprint=${colons}`), HEX);
  });

  it('refuses other lengths, other digits and half-separated forms', () => {
    const colons = HEX.match(/../g)!.join(':');
    for (const bad of [
      '',
      HEX.slice(2),
      `${HEX}00`,
      HEX.replace('a', 'g'),
      colons.slice(0, 59), // a SHA-1 fingerprint's length
      colons.replace(':', ''),
      colons.replaceAll(':', '-'),
      `${colons}:`,
      `sha1 Fingerprint=${colons}`,
    ]) {
      assert.equal(normalizeFingerprint(bad), null, bad);
    }
  });
});

describe('certificateFingerprint', () => {
  it('is the SHA-256 of the DER certificate', async () => {
    const { cert } = await generate([{ name: 'commonName', value: 'alice@example.org' }], {
      keySize: 2048,
      algorithm: 'sha256',
    });
    // Decode the PEM by hand, so the expectation does not rely on X509Certificate.
    const der = Buffer.from(cert.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const expected = createHash('sha256').update(der).digest('hex');
    assert.equal(certificateFingerprint(cert), expected);
    assert.equal(certificateFingerprint(der), expected);
  });

  it('throws on what is not a certificate', () => {
    assert.throws(() =>
      certificateFingerprint('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
    );
    assert.throws(() => certificateFingerprint('hello'));
  });
});
