import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeDkimDomain, parseDkimSignature } from './signature.ts';

const GOOD =
  ' v=1; a=rsa-sha256; c=relaxed/simple; d=Example.ORG; s=Sel1; t=1700000000; x=1800000000;\r\n' +
  '\th=From : To:subject; l=42; i=joe@Mail.Example.org; q=dns/txt;\r\n' +
  '\tbh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=dGVz\r\n\tdA==';

function failure(value: string): { result: string; reason: string } {
  const parsed = parseDkimSignature(value);
  assert.equal(parsed.ok, false, 'expected a failure');
  return parsed.ok ? { result: '', reason: '' } : { result: parsed.result, reason: parsed.reason };
}

function replace(tag: string, value: string | null): string {
  const re = new RegExp(`(^|;)([ \\t\\r\\n]*)${tag}=[^;]*`);
  return value === null ? GOOD.replace(re, '$1') : GOOD.replace(re, `$1$2${tag}=${value}`);
}

describe('parseDkimSignature', () => {
  test('every tag is read and normalized', () => {
    const parsed = parseDkimSignature(GOOD);
    assert.ok(parsed.ok);
    const sig = parsed.value;
    assert.equal(sig.algorithm, 'rsa-sha256');
    assert.equal(sig.keyType, 'rsa');
    assert.equal(sig.headerCanon, 'relaxed');
    assert.equal(sig.bodyCanon, 'simple');
    assert.equal(sig.domain, 'example.org');
    assert.equal(sig.selector, 'sel1');
    assert.equal(sig.identityDomain, 'mail.example.org');
    assert.deepEqual(sig.signedHeaders, ['From', 'To', 'subject']);
    assert.equal(sig.bodyLength, 42);
    assert.equal(sig.timestampS, 1700000000);
    assert.equal(sig.expiresS, 1800000000);
    assert.equal(sig.b, 'dGVzdA==');
    assert.equal(sig.signature.toString(), 'test');
    assert.equal(sig.bodyHash.length, 32);
    assert.deepEqual(parsed.labels, {
      domain: 'example.org',
      selector: 'sel1',
      algorithm: 'rsa-sha256',
      b: 'dGVzdA==',
      bodyLengthLimited: true,
    });
  });

  test('defaults: c=simple/simple, no l=, i= is @d', () => {
    const parsed = parseDkimSignature(
      replace('c', null)
        .replace(/ l=42;/, '')
        .replace(/ i=[^;]*;/, ''),
    );
    assert.ok(parsed.ok);
    assert.equal(parsed.value.headerCanon, 'simple');
    assert.equal(parsed.value.bodyCanon, 'simple');
    assert.equal(parsed.value.bodyLength, null);
    assert.equal(parsed.value.identityDomain, 'example.org');
  });

  test('c=relaxed alone means relaxed/simple', () => {
    const parsed = parseDkimSignature(replace('c', 'relaxed'));
    assert.ok(parsed.ok);
    assert.equal(parsed.value.bodyCanon, 'simple');
  });

  test('ed25519-sha256 (RFC 8463)', () => {
    const parsed = parseDkimSignature(replace('a', 'ed25519-sha256'));
    assert.ok(parsed.ok);
    assert.equal(parsed.value.keyType, 'ed25519');
  });

  test('rsa-sha1 is a policy result (RFC 8301), and the labels are still there', () => {
    const parsed = parseDkimSignature(replace('a', 'rsa-sha1'));
    assert.equal(parsed.ok, false);
    assert.equal(parsed.ok ? '' : parsed.result, 'policy');
    assert.equal(parsed.labels.domain, 'example.org');
    assert.equal(parsed.labels.algorithm, 'rsa-sha1');
  });

  for (const [name, value, reason] of [
    ['missing v=', replace('v', null), /required v=/],
    ['missing bh=', replace('bh', null), /required bh=/],
    ['v=2', replace('v', '2'), /version/],
    ['unknown a=', replace('a', 'dsa-sha256'), /unknown signature algorithm/],
    ['h= without From', replace('h', 'to:subject'), /From/],
    ['d= with specials', replace('d', 'legitimate.com(.attacker.com'), /d= is not a domain/],
    ['s= with a space', replace('s', 'a b'), /s= is not a selector/],
    ['i= outside d=', replace('i', 'joe@example.net'), /not d=/],
    ['i= that only ends like d=', replace('i', 'joe@badexample.org'), /not d=/],
    ['i= without @', replace('i', 'example.org'), /i= is not an identity/],
    ['c=fancy', replace('c', 'fancy/simple'), /canonicalization/],
    ['l= not a number', replace('l', '-1'), /l=/],
    ['q=other', replace('q', 'https'), /query method/],
    ['t= not a number', replace('t', 'soon'), /t=/],
    ['x= before t=', replace('x', '1600000000'), /x= is before t=/],
    ['b= not base64', replace('b', 'abc'), /b= is not base64/],
    ['duplicate d=', `${GOOD}; d=example.org`, /duplicate/],
  ] as const) {
    test(`${name} is a permerror`, () => {
      const { result, reason: text } = failure(value);
      assert.equal(result, 'permerror');
      assert.match(text, reason);
    });
  }
});

describe('normalizeDkimDomain', () => {
  test('lower case, trailing dot dropped, U-labels to A-labels', () => {
    assert.equal(normalizeDkimDomain('Mail.Example.ORG.'), 'mail.example.org');
    assert.equal(
      normalizeDkimDomain(Buffer.from('bücher.example', 'utf8').toString('latin1')),
      'xn--bcher-kva.example',
    );
    assert.equal(normalizeDkimDomain('_dmarc.example'), '_dmarc.example');
  });

  test('not a name', () => {
    for (const bad of ['', '.', 'a..b', '-a.example', 'a b', 'a(b).example', `${'a'.repeat(64)}.example`]) {
      assert.equal(normalizeDkimDomain(bad), null, bad);
    }
  });
});
