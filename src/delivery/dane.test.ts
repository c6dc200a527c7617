import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import type { TlsaRecord } from '../core/dns.ts';
import { makeCerts } from '../../test/e2e/outbound-helpers.ts';
import { usableTlsa, verifyDane } from './dane.ts';

const sha = (alg: 'sha256' | 'sha512', b: Buffer): Uint8Array => createHash(alg).update(b).digest();
const spkiOf = (c: X509Certificate): Buffer => c.publicKey.export({ type: 'spki', format: 'der' });
const rec = (usage: number, selector: number, matchingType: number, data: Uint8Array): TlsaRecord => ({
  usage,
  selector,
  matchingType,
  data,
});

describe('DANE verification (RFC 7672 §3, RFC 6698)', () => {
  let leaf: X509Certificate;
  let ca: X509Certificate;
  let self: X509Certificate;
  let otherCa: X509Certificate;
  /** After the certificates are made: they are valid from the second they were made. */
  let NOW = 0;

  before(async () => {
    const chain = await makeCerts(['mx.example.org']);
    leaf = new X509Certificate(chain.cert);
    ca = new X509Certificate(chain.caCert);
    self = new X509Certificate(
      (await generate([{ name: 'commonName', value: 'anything' }], { keyType: 'ec', algorithm: 'sha256' }))
        .cert,
    );
    otherCa = new X509Certificate((await makeCerts(['other.example'])).caCert);
    NOW = Date.now() + 1000;
  });

  test('DANE-EE(3): the leaf, by SPKI or whole certificate, exact, SHA-256 or SHA-512; no name, no CA needed', () => {
    for (const r of [
      rec(3, 1, 1, sha('sha256', spkiOf(self))),
      rec(3, 1, 2, sha('sha512', spkiOf(self))),
      rec(3, 0, 1, sha('sha256', self.raw)),
      rec(3, 1, 0, spkiOf(self)),
    ]) {
      const result = verifyDane([self], [r], ['mx.example.org'], NOW);
      assert.equal(result.ok, true, JSON.stringify(r));
    }
    assert.equal(verifyDane([self], [rec(3, 1, 1, new Uint8Array(32))], ['x'], NOW).ok, false);
  });

  test('DANE-TA(2): a certificate of the chain, the chain verifying up to it, the leaf naming the host', () => {
    const ta = rec(2, 0, 1, sha('sha256', ca.raw));
    assert.deepEqual(verifyDane([leaf, ca], [ta], ['mx.example.org'], NOW), {
      ok: true,
      matched: 'DANE-TA(2) 0 1',
    });
    const wrongName = verifyDane([leaf, ca], [ta], ['mx.other.org'], NOW);
    assert.equal(wrongName.ok, false);
    assert.match((wrongName as { reason: string }).reason, /names none of mx\.other\.org/);
    // The TA is not in what the server sent: no match (the TLSA names a CA the chain does not reach).
    assert.equal(verifyDane([leaf], [ta], ['mx.example.org'], NOW).ok, false);
    // A chain whose "issuer" did not sign the leaf.
    const forged = verifyDane(
      [leaf, otherCa],
      [rec(2, 0, 1, sha('sha256', otherCa.raw))],
      ['mx.example.org'],
      NOW,
    );
    assert.match((forged as { reason: string }).reason, /not signed by/);
    // Out of date (the test certificates are valid from now on).
    const later = verifyDane([leaf, ca], [ta], ['mx.example.org'], NOW + 20 * 365 * 86_400_000);
    assert.match((later as { reason: string }).reason, /not valid now/);
  });

  test('PKIX-TA(0) and PKIX-EE(1), unknown selectors and matching types are unusable for SMTP', () => {
    assert.equal(usableTlsa(rec(0, 0, 1, new Uint8Array())), false);
    assert.equal(usableTlsa(rec(1, 1, 1, new Uint8Array())), false);
    assert.equal(usableTlsa(rec(3, 2, 1, new Uint8Array())), false);
    assert.equal(usableTlsa(rec(3, 1, 3, new Uint8Array())), false);
    assert.equal(usableTlsa(rec(2, 1, 2, new Uint8Array())), true);
    // A PKIX-EE record that names the leaf exactly still does not authenticate it.
    assert.equal(verifyDane([self], [rec(1, 1, 1, sha('sha256', spkiOf(self)))], ['x'], NOW).ok, false);
    assert.equal(verifyDane([], [rec(3, 1, 1, sha('sha256', spkiOf(self)))], ['x'], NOW).ok, false);
  });
});
