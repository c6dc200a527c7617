import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scramClientFinal, scramClientFirst, scramServerFinalValid } from './scram-client.ts';

// RFC 7677 §3: user "user", password "pencil".
const NONCE = 'rOprNGfwEbeRWgbNEkqO';
const SERVER_FIRST = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';

test('SCRAM-SHA-256 client: the RFC 7677 example exchange, byte for byte', () => {
  const first = scramClientFirst('user', NONCE);
  assert.equal(first.message, 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  const final = scramClientFinal(first, SERVER_FIRST, 'pencil');
  assert.ok(final.ok);
  assert.equal(
    final.message,
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  );
  assert.ok(scramServerFinalValid('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=', final.serverSignature));
  assert.ok(!scramServerFinalValid('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=', final.serverSignature));
  assert.ok(!scramServerFinalValid('e=invalid-proof', final.serverSignature));
});

test('SCRAM client: names are escaped, a nonce that does not extend ours or a huge count is refused', () => {
  assert.equal(scramClientFirst('a,b=c', 'N').bare, 'n=a=2Cb=3Dc,r=N');
  assert.equal(scramClientFirst('jürgen@example.org', 'N').bare, 'n=jürgen@example.org,r=N');
  const first = scramClientFirst('user', NONCE);
  assert.deepEqual(scramClientFinal(first, 'r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', 'x'), {
    ok: false,
    reason: 'server nonce does not extend the client nonce',
  });
  const huge = scramClientFinal(first, `r=${NONCE}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999`, 'x');
  assert.equal(huge.ok, false);
});
