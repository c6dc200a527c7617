import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { DnsAnswer, Resolver } from '../../core/dns.ts';
import { splitHeaderFields } from '../dkim/header-fields.ts';
import type { ArcChainStatus } from './arc-headers.ts';
import { ArcSealer, authResultsFor, sealArc, type ArcSealerOptions } from './seal.ts';
import { ArcVerifier, verifyArc } from './verify.ts';

function spki(key: KeyObject, ed25519: boolean): string {
  const der = key.export({ type: 'spki', format: 'der' });
  return (ed25519 ? der.subarray(der.length - 32) : der).toString('base64');
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
const ed = generateKeyPairSync('ed25519');
const zone = new Map<string, string>([
  ['hop1._domainkey.list.example', `v=DKIM1; k=rsa; p=${spki(rsa.publicKey, false)}`],
  ['hop2._domainkey.fwd.example', `v=DKIM1; k=ed25519; p=${spki(ed.publicKey, true)}`],
  ['down._domainkey.broken.example', 'error'],
]);
const resolver: Pick<Resolver, 'txt'> = {
  txt(name: string): Promise<DnsAnswer<string>> {
    const v = zone.get(name);
    if (v === 'error') return Promise.resolve({ kind: 'error', temporary: true, reason: 'SERVFAIL' });
    return Promise.resolve(v === undefined ? { kind: 'nxdomain' } : { kind: 'ok', records: [v], ttlMs: 1 });
  },
};

const hop1: ArcSealerOptions = {
  domain: 'list.example',
  selector: 'hop1',
  privateKey: rsa.privateKey,
  authservId: 'mx.list.example',
  nowMs: 1_700_000_000_000,
};
const hop2: ArcSealerOptions = {
  ...hop1,
  domain: 'fwd.example',
  selector: 'hop2',
  privateKey: ed.privateKey,
};

const original = Buffer.from(
  [
    'From: Alice <alice@origin.example>',
    'To: list@list.example',
    'Subject: hello',
    'Date: Tue, 1 Jul 2025 10:00:00 +0000',
    'Message-ID: <1@origin.example>',
    'X-Unsigned: anything',
    '',
    'Body line one  ',
    'line two',
    '',
  ].join('\r\n'),
  'latin1',
);

function seal(message: Buffer, opts: ArcSealerOptions, cv: ArcChainStatus): Buffer {
  const result = sealArc(message, opts, {
    cv,
    results: ['spf=pass smtp.mailfrom=alice@origin.example', 'dkim=none'],
  });
  assert.equal(result.kind, 'sealed', result.kind === 'skipped' ? result.reason : '');
  return result.kind === 'sealed' ? Buffer.concat([Buffer.from(result.fields, 'latin1'), message]) : message;
}

test('a first seal: cv=none, i=1, and the chain then verifies', async () => {
  const once = seal(original, hop1, 'none');
  const head = once.toString('latin1', 0, once.indexOf('\r\n\r\n'));
  assert.match(head, /^ARC-Seal: a=rsa-sha256;\r\n b=\S+;\s+cv=none; d=list\.example; i=1; s=hop1;/);
  assert.match(
    head,
    /ARC-Authentication-Results: i=1; mx\.list\.example;\s+spf=pass smtp\.mailfrom=alice@origin\.example;\s+dkim=none/,
  );
  // Default h=: only the listed fields that are there, not X-Unsigned.
  assert.match(head, /h=from:to:subject:date:message-id;/);
  for (const line of head.split('\r\n')) assert.ok(line.length <= 78 || /^ b=/.test(line), line);
  const r = await verifyArc(once, { resolver });
  assert.equal(r.cv, 'pass', r.reason);
  assert.equal(r.instance, 1);
  assert.deepEqual(
    r.sets.map((s) => [s.sealDomain, s.authservId]),
    [['list.example', 'mx.list.example']],
  );
});

test('two hops (RSA then Ed25519): pass; a later change to a signed field moves oldest-pass', async () => {
  const once = seal(original, hop1, 'none');
  const twice = seal(once, hop2, (await verifyArc(once, { resolver })).cv);
  const r = await verifyArc(twice, { resolver });
  assert.equal(r.cv, 'pass', r.reason);
  assert.equal(r.instance, 2);
  assert.equal(r.oldestPass, 0);

  // Hop 2 rewrote the Subject (a list tag) before sealing: AMS(1) no longer verifies, the chain still does.
  const tagged = Buffer.from(
    once.toString('latin1').replace('Subject: hello', 'Subject: [list] hello'),
    'latin1',
  );
  const resealed = seal(tagged, hop2, 'pass');
  const r2 = await verifyArc(resealed, { resolver });
  assert.equal(r2.cv, 'pass', r2.reason);
  assert.equal(r2.oldestPass, 2);
});

test('changes after the newest seal fail the chain', async () => {
  const twice = seal(seal(original, hop1, 'none'), hop2, 'pass');
  const body = Buffer.from(twice.toString('latin1').replace('line two', 'line 2'), 'latin1');
  const rb = await verifyArc(body, { resolver });
  assert.equal(rb.cv, 'fail');
  assert.match(rb.reason, /ARC-Message-Signature i=2: body hash/);
  const seal1 = Buffer.from(
    twice.toString('latin1').replace('cv=none; d=list.example', 'cv=none;  d=list.example'),
    'latin1',
  );
  // Relaxed canonicalization makes extra spaces harmless…
  assert.equal((await verifyArc(seal1, { resolver })).cv, 'pass');
  const aar1 = Buffer.from(
    twice.toString('latin1').replace('i=1; mx.list.example', 'i=1; mx.evil.example'),
    'latin1',
  );
  // …but a changed AAR(1) breaks the seals that cover it.
  assert.equal((await verifyArc(aar1, { resolver })).cv, 'fail');
});

test('verification does not depend on how the message is cut into chunks', async () => {
  const twice = seal(seal(original, hop1, 'none'), hop2, 'pass');
  const verifier = new ArcVerifier({ resolver });
  for (let i = 0; i < twice.length; i += 7) verifier.push(twice.subarray(i, i + 7));
  const r = await verifier.finish();
  assert.equal(r.cv, 'pass', r.reason);

  const sealer = new ArcSealer(hop1);
  for (let i = 0; i < original.length; i += 5) sealer.push(original.subarray(i, i + 5));
  const chunked = sealer.finish({
    cv: 'none',
    results: ['spf=pass smtp.mailfrom=alice@origin.example', 'dkim=none'],
  });
  const whole = sealArc(original, hop1, {
    cv: 'none',
    results: ['spf=pass smtp.mailfrom=alice@origin.example', 'dkim=none'],
  });
  assert.deepEqual(chunked, whole);
});

test('sealing a failed chain: cv=fail, and nothing is added above a seal that says so', async () => {
  const once = seal(original, hop1, 'none');
  const damaged = Buffer.from(once.toString('latin1').replace('line two', 'line 2'), 'latin1');
  const v = await verifyArc(damaged, { resolver });
  assert.equal(v.cv, 'fail');
  const failed = seal(damaged, hop2, v.cv);
  assert.match(failed.toString('latin1'), /cv=fail; d=fwd\.example; i=2;/);
  assert.equal((await verifyArc(failed, { resolver })).cv, 'fail');
  const again = sealArc(failed, hop1, { cv: 'fail', results: [] });
  assert.equal(again.kind, 'skipped');
});

test('a key lookup that fails temporarily is a failed chain marked temperror', async () => {
  const once = seal(original, { ...hop1, domain: 'broken.example', selector: 'down' }, 'none');
  const r = await verifyArc(once, { resolver });
  assert.equal(r.cv, 'fail');
  assert.equal(r.temperror, true);
  const unknown = await verifyArc(seal(original, { ...hop1, selector: 'nokey' }, 'none'), { resolver });
  assert.equal(unknown.cv, 'fail');
  assert.equal(unknown.temperror, false);
});

test('no ARC fields: none; 50 sets: no 51st', async () => {
  assert.equal((await verifyArc(original, { resolver })).cv, 'none');
  let message: Buffer = original;
  for (let i = 0; i < 50; i++) message = seal(message, hop1, i === 0 ? 'none' : 'pass');
  assert.equal((await verifyArc(message, { resolver })).cv, 'pass');
  assert.equal(sealArc(message, hop1, { cv: 'pass', results: [] }).kind, 'skipped');
});

test('Authentication-Results of our authserv-id are gathered in order, others ignored', () => {
  const fields = splitHeaderFields(
    [
      'Authentication-Results: mx.list.example; arc=none;',
      '  spf=pass smtp.mailfrom=a@b.example (comment; with semicolon)',
      'Authentication-Results: other.example; dkim=fail',
      'Authentication-Results: MX.LIST.EXAMPLE 1; dkim=pass header.d=b.example',
      'Authentication-Results: mx.list.example; none',
      '',
    ].join('\r\n'),
  );
  assert.deepEqual(authResultsFor(fields, 'mx.list.example'), [
    'arc=none',
    'spf=pass smtp.mailfrom=a@b.example (comment; with semicolon)',
    'dkim=pass header.d=b.example',
  ]);
});
