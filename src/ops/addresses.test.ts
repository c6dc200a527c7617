import assert from 'node:assert/strict';
import { test } from 'node:test';
import { aliasAddress, targetAddress, userAddress } from './addresses.ts';
import { OpError } from './errors.ts';

const local = ['example.test', 'localhost'];

test('userAddress lower-cases the key of a local user', () => {
  assert.equal(userAddress('Alice@Example.TEST', local), 'alice@example.test');
});

test('userAddress refuses a domain that is not local, naming the local ones', () => {
  assert.throws(
    () => userAddress('bob@example.org', local),
    (err: unknown) =>
      err instanceof OpError &&
      /example\.org is not a local domain \(local domains: example\.test, localhost\)/.test(err.message),
  );
});

test('userAddress refuses bad syntax, quoted local parts and address literals', () => {
  for (const bad of [
    'bob',
    'bob@',
    '@example.test',
    'a b@example.test',
    '"a b"@example.test',
    'bob@[127.0.0.1]',
  ]) {
    assert.throws(() => userAddress(bad, local), OpError, bad);
  }
});

test('aliasAddress accepts a catch-all and normalizes its domain', () => {
  assert.equal(aliasAddress('@Example.Test', local), '@example.test');
  assert.equal(aliasAddress('Postmaster@localhost', local), 'postmaster@localhost');
  assert.throws(() => aliasAddress('@example.org', local), /not a local domain/);
  assert.throws(() => aliasAddress('@not_a_domain', local), /not a valid catch-all/);
});

test('targetAddress accepts local and remote addresses, keyed in lower case', () => {
  assert.equal(targetAddress('Bob.Smith@Example.ORG'), 'bob.smith@example.org');
  assert.equal(targetAddress('Alice@LocalHost'), 'alice@localhost');
  assert.throws(() => targetAddress('nobody'), /not a valid target address/);
});
