import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalDomain, organizationalDomain, publicSuffix } from './psl.ts';

test('organizational domain is the public suffix plus one label (RFC 7489 §3.2)', () => {
  assert.equal(organizationalDomain('mail.example.com'), 'example.com');
  assert.equal(organizationalDomain('a.b.example.co.uk'), 'example.co.uk');
  assert.equal(organizationalDomain('example.com'), 'example.com');
  // Wildcard and exception rules of the list: *.ck, !www.ck.
  assert.equal(organizationalDomain('a.b.c.ck'), 'b.c.ck');
  assert.equal(organizationalDomain('a.www.ck'), 'www.ck');
});

test('the private section counts: different owners under one registrar suffix stay apart', () => {
  assert.equal(organizationalDomain('a.alice.github.io'), 'alice.github.io');
  assert.equal(organizationalDomain('bob.github.io'), 'bob.github.io');
  assert.equal(publicSuffix('bob.github.io'), 'github.io');
});

test('a public suffix, or an unlisted TLD, is its own organizational domain', () => {
  assert.equal(organizationalDomain('co.uk'), 'co.uk');
  assert.equal(organizationalDomain('com'), 'com');
  assert.equal(organizationalDomain('x.y.unlistedtld'), 'y.unlistedtld');
  assert.equal(publicSuffix('x.y.unlistedtld'), 'unlistedtld');
});

test('case, trailing dot and U-labels are normalized to lower-case A-labels', () => {
  assert.equal(organizationalDomain('Mail.EXAMPLE.com.'), 'example.com');
  assert.equal(organizationalDomain('mail.bücher.de'), 'xn--bcher-kva.de');
  assert.equal(organizationalDomain('a.example.公司.cn'), 'example.xn--55qx5d.cn');
  assert.equal(organizationalDomain('a.example.xn--55qx5d.cn'), 'example.xn--55qx5d.cn');
  assert.equal(canonicalDomain('_dmarc.Example.com'), '_dmarc.example.com');
});

test('names that are not domains give ""', () => {
  assert.equal(organizationalDomain(''), '');
  assert.equal(organizationalDomain('a..example.com'), '');
  assert.equal(organizationalDomain('.'), '');
});
