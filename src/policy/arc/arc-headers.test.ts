import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitHeaderFields } from '../dkim/header-fields.ts';
import {
  collectArcSets,
  parseArcAuthResults,
  parseArcMessageSignature,
  parseArcSeal,
  parseStrictTagList,
} from './arc-headers.ts';

const B = 'AAAA';

test('strict tag lists: one trailing ";" only, case-sensitive unique names', () => {
  assert.ok(parseStrictTagList('a=1; b=2;').ok);
  assert.ok(parseStrictTagList(' a = 1 ;\r\n b=2 ').ok);
  assert.equal(parseStrictTagList('a=1;; b=2').ok, false);
  assert.equal(parseStrictTagList('; a=1').ok, false);
  assert.equal(parseStrictTagList('a=1; a=2').ok, false);
  assert.equal(parseStrictTagList('a=1; _=2').ok, false);
  const mixed = parseStrictTagList('s=x; S=y');
  assert.ok(mixed.ok);
  assert.deepEqual([...mixed.value.keys()], ['s', 'S']);
});

test('ARC-Seal: required tags, cv values, no h=, instance 1..50', () => {
  const ok = parseArcSeal(`i=1; a=rsa-sha256; cv=None; d=Example.ORG; s=sel; b=${B}; t=12345`);
  assert.ok(ok.ok);
  assert.equal(ok.value.cv, 'none');
  assert.equal(ok.value.domain, 'example.org');
  assert.equal(ok.value.timestampS, 12345);
  assert.equal(parseArcSeal(`i=1; a=rsa-sha256; cv=none; d=e.org; s=s; b=${B}; h=from`).ok, false);
  assert.equal(parseArcSeal(`i=1; a=rsa-sha256; cv=maybe; d=e.org; s=s; b=${B}`).ok, false);
  assert.equal(parseArcSeal(`i=0; a=rsa-sha256; cv=none; d=e.org; s=s; b=${B}`).ok, false);
  assert.equal(parseArcSeal(`i=51; a=rsa-sha256; cv=none; d=e.org; s=s; b=${B}`).ok, false);
  assert.equal(parseArcSeal(`i=1; a=rsa-sha1; cv=none; d=e.org; s=s; b=${B}`).ok, false);
  assert.equal(parseArcSeal(`i=1; a=rsa-sha256; cv=none; d=e.org; s=s; b=`).ok, false);
  assert.equal(parseArcSeal(`i=1; a=rsa-sha256; cv=none; d=e.org; s=s; b=${B}; t=`).ok, false);
});

test('ARC-Message-Signature: c= default simple/simple, h= may be empty but never names ARC-Seal', () => {
  const ok = parseArcMessageSignature(`i=2; a=rsa-sha256; d=e.org; s=s; b=${B}; bh=${B}; h=From : To`);
  assert.ok(ok.ok);
  assert.equal(ok.value.headerCanon, 'simple');
  assert.equal(ok.value.bodyCanon, 'simple');
  assert.deepEqual(ok.value.signedHeaders, ['From', 'To']);
  const empty = parseArcMessageSignature(`i=1; a=rsa-sha256; d=e.org; s=s; b=${B}; bh=${B}; h=; c=relaxed`);
  assert.ok(empty.ok);
  assert.deepEqual(empty.value.signedHeaders, []);
  assert.equal(empty.value.bodyCanon, 'simple');
  assert.equal(
    parseArcMessageSignature(`i=1; a=rsa-sha256; d=e.org; s=s; b=${B}; bh=${B}; h=from:arc-seal`).ok,
    false,
  );
  assert.equal(parseArcMessageSignature(`i=1; a=rsa-sha256; d=e.org; s=s; b=${B}; bh=${B}`).ok, false);
  assert.equal(
    parseArcMessageSignature(`i=1; a=rsa-sha256; d=e.org; s=s; b=${B}; bh=${B}; h=from; c=`).ok,
    false,
  );
});

test('ARC-Authentication-Results: "i=N;" first, then the authserv-id', () => {
  const ok = parseArcAuthResults(' i=3; mx.example.org;\r\n spf=pass smtp.mailfrom=a@b.example');
  assert.ok(ok.ok);
  assert.equal(ok.value.instance, 3);
  assert.equal(ok.value.authservId, 'mx.example.org');
  assert.equal(ok.value.results, 'spf=pass smtp.mailfrom=a@b.example');
  assert.equal(parseArcAuthResults(' mx.example.org; i=1; spf=pass').ok, false);
  assert.equal(parseArcAuthResults(' i=1 mx.example.org; spf=pass').ok, false);
});

function fields(lines: string[]) {
  return splitHeaderFields(lines.map((l) => `${l}\r\n`).join(''));
}

const set = (n: number, cv: string) => [
  `ARC-Seal: i=${n}; a=rsa-sha256; cv=${cv}; d=e.org; s=s; b=${B}`,
  `ARC-Message-Signature: i=${n}; a=rsa-sha256; d=e.org; s=s; b=${B}; bh=${B}; h=from`,
  `ARC-Authentication-Results: i=${n}; mx.e.org; spf=pass`,
];

test('ARC Sets: none, a whole chain, and each structural failure', () => {
  assert.deepEqual(collectArcSets(fields(['From: a@b.example'])), { kind: 'none' });
  const chain = collectArcSets(fields([...set(2, 'pass'), ...set(1, 'none'), 'From: a@b.example']));
  assert.equal(chain.kind, 'chain');
  assert.deepEqual(chain.kind === 'chain' ? chain.sets.map((s) => s.instance) : [], [1, 2]);
  const gap = collectArcSets(fields([...set(3, 'pass'), ...set(1, 'none')]));
  assert.equal(gap.kind, 'fail');
  const missing = collectArcSets(fields([...set(1, 'none').slice(0, 2)]));
  assert.ok(missing.kind === 'fail' && /lacks ARC-Authentication-Results/.test(missing.reason));
  const dup = collectArcSets(fields([...set(1, 'none'), set(1, 'none')[0]!]));
  assert.ok(dup.kind === 'fail' && /two ARC-Seal/.test(dup.reason));
  const firstPass = collectArcSets(fields(set(1, 'pass')));
  assert.ok(firstPass.kind === 'fail' && !firstPass.declaredFailed);
  const laterNone = collectArcSets(fields([...set(2, 'none'), ...set(1, 'none')]));
  assert.equal(laterNone.kind, 'fail');
  const declared = collectArcSets(fields([...set(2, 'fail'), ...set(1, 'none')]));
  assert.ok(declared.kind === 'fail' && declared.declaredFailed);
  const broken = collectArcSets(
    fields(['ARC-Seal: i=1; a=rsa-sha256;; cv=none; d=e.org; s=s; b=AAAA', ...set(1, 'none').slice(1)]),
  );
  assert.equal(broken.kind, 'fail');
});
