// Third-party DKIM vectors (test/fixtures/dkim/, read as they are at test time; see its README.md and
// each folder's SOURCE) against Tern's verifier and signer, keys served by a fake Resolver:
// - RFC 8463 Appendix A: the example message (ed25519 + rsa, relaxed) and dkimpy's simple/simple
//   signatures of the same message verify, and the signer reproduces the example's Ed25519 b= byte for
//   byte from the same key, tags and headers (Ed25519 is deterministic);
// - dkimpy's data: third-party signed messages (degenerate folding, Exim's ed25519), its good and broken
//   key records against a fixed signature, its RSA test keys (PKCS#1, PKCS#8; SPKI and bare RSAPublicKey
//   records), a d= with specials, a message without From, extra From fields, windows-1258 octets;
// - MimeKit's real Gmail messages (s=20120113, relaxed/relaxed) verify, and fail once touched;
// - mailauth's body-hash vectors, and every real-world signature in its fixtures has the bh= our body
//   hash computes (their keys are live DNS, not in the suite: with no key they end in "no key").
// Deliberately NOT here: interoperation with a running dkimpy (dkim-interop.test.ts).

import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { DnsAnswer, Resolver } from '../../src/core/dns.ts';
import type { DkimKey } from '../../src/delivery/dkim-sign.ts';
import { DkimSignError, dkimDnsRecord, signHeaderFields, signMessage } from '../../src/delivery/dkim-sign.ts';
import { BodyHash } from '../../src/policy/dkim/canonicalize.ts';
import { splitHeaderFields } from '../../src/policy/dkim/header-fields.ts';
import { parseDkimSignature } from '../../src/policy/dkim/signature.ts';
import { parseTagList, stripWhitespace } from '../../src/policy/dkim/tag-list.ts';
import type { DkimResult } from '../../src/policy/dkim/verifier.ts';
import { DkimVerifier } from '../../src/policy/dkim/verifier.ts';

const SUITE_DIR = new URL('../fixtures/dkim/', import.meta.url);
// The vectors carry their own t= (2003–2020); none has x=, so the clock only matters for t= in the future.
const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);

function read(path: string): Buffer {
  return readFileSync(new URL(path, SUITE_DIR));
}

function text(path: string): string {
  return read(path).toString('latin1').trim();
}

/** The files keep Unix line ends; messages travel (and are stored by Tern) with CRLF. */
function crlf(bytes: Buffer): Buffer {
  return Buffer.from(bytes.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}

type Zone = Record<string, string>;

function fakeResolver(zone: Zone): Pick<Resolver, 'txt'> & { readonly queries: string[] } {
  const queries: string[] = [];
  return {
    queries,
    txt(name: string): Promise<DnsAnswer<string>> {
      queries.push(name);
      const record = zone[name.toLowerCase()];
      return Promise.resolve(
        record === undefined ? { kind: 'nxdomain' } : { kind: 'ok', records: [record], ttlMs: 3_600_000 },
      );
    },
  };
}

async function verify(message: Buffer, zone: Zone, chunk = 4096): Promise<DkimResult[]> {
  const verifier = new DkimVerifier({ resolver: fakeResolver(zone), nowMs: NOW_MS });
  for (let i = 0; i < message.length; i += chunk) verifier.push(message.subarray(i, i + chunk));
  return verifier.finish();
}

function summary(results: readonly DkimResult[]): string[][] {
  return results.map((r) => [r.result, r.domain, r.selector, r.algorithm]);
}

function bodyOf(message: Buffer): Buffer {
  return message.subarray(message.indexOf('\r\n\r\n') + 4);
}

function headerSection(message: Buffer): string {
  return message.toString('latin1', 0, message.indexOf('\r\n\r\n') + 2);
}

function from(message: Buffer): () => AsyncIterable<Uint8Array> {
  return () => Readable.from([message]);
}

/** An Ed25519 private key from its 32-octet seed (base64, as dkimpy keeps it). */
function ed25519Pem(seedBase64: string): string {
  const der = Buffer.concat([
    Buffer.from('302e020100300506032b657004220420', 'hex'),
    Buffer.from(seedBase64, 'base64'),
  ]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString();
}

const FOOTBALL: Zone = {
  'brisbane._domainkey.football.example.com':
    'v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
  'test._domainkey.football.example.com': text('dkimpy/test.txt'),
};
const GMAIL: Zone = { '20120113._domainkey.gmail.com': `k=rsa; p=${pemBody(text('mimekit/gmail.pub'))}` };
const BRISBANE: DkimKey = {
  domain: 'football.example.com',
  selector: 'brisbane',
  algorithm: 'ed25519-sha256',
  privateKeyPem: ed25519Pem(text('dkimpy/rfc8032_7_1.key')),
};
const TEST_RSA: DkimKey = {
  domain: 'football.example.com',
  selector: 'test',
  algorithm: 'rsa-sha256',
  privateKeyPem: text('dkimpy/test.private'),
};

describe('RFC 8463 Appendix A', () => {
  const example = crlf(read('mimekit/rfc8463-example.msg'));
  const unsigned = crlf(read('dkimpy/rfc6376.msg'));

  test('A.3: both signatures of the example verify (relaxed/relaxed)', async () => {
    const results = await verify(example, FOOTBALL);
    assert.deepEqual(summary(results), [
      ['pass', 'football.example.com', 'brisbane', 'ed25519-sha256'],
      ['pass', 'football.example.com', 'test', 'rsa-sha256'],
    ]);
    assert.deepEqual(
      results.map((r) => r.headerB),
      ['/gCrinpc', 'F45dVWDf'],
    );
  });

  test('the same message signed by dkimpy with simple/simple verifies (ed25519 + rsa, rsa alone)', async () => {
    assert.deepEqual(summary(await verify(crlf(read('dkimpy/rfc6376.signed.msg')), FOOTBALL)), [
      ['pass', 'football.example.com', 'brisbane', 'ed25519-sha256'],
      ['pass', 'football.example.com', 'test', 'rsa-sha256'],
    ]);
    assert.deepEqual(summary(await verify(crlf(read('dkimpy/rfc6376.signed.rsa.msg')), FOOTBALL)), [
      ['pass', 'football.example.com', 'test', 'rsa-sha256'],
    ]);
  });

  test('one octet changed in the body or a signed header: both fail', async () => {
    const body = Buffer.from(example.toString('latin1').replace('hungry', 'Hungry'), 'latin1');
    assert.deepEqual(
      (await verify(body, FOOTBALL)).map((r) => [r.result, r.reason]),
      [
        ['fail', 'body hash did not verify'],
        ['fail', 'body hash did not verify'],
      ],
    );
    const header = Buffer.from(example.toString('latin1').replace('Suzie Q', 'Suzie R'), 'latin1');
    assert.deepEqual(
      (await verify(header, FOOTBALL)).map((r) => r.result),
      ['fail', 'fail'],
    );
  });

  test('the brisbane key derived from the RFC 8032 §7.1 TEST 1 seed is the published one', () => {
    assert.equal(dkimDnsRecord(BRISBANE).value, FOOTBALL['brisbane._domainkey.football.example.com']);
  });

  test('our signer reproduces the example Ed25519 signature byte for byte', () => {
    const body = new BodyHash('relaxed');
    body.write(bodyOf(unsigned));
    const bh = body.digest().digest.toString('base64');
    assert.equal(bh, '2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=');
    const field = signHeaderFields(splitHeaderFields(headerSection(unsigned)), BRISBANE, [
      ['v', '1'],
      ['a', 'ed25519-sha256'],
      ['c', 'relaxed/relaxed'],
      ['d', 'football.example.com'],
      ['i', '@football.example.com'],
      ['q', 'dns/txt'],
      ['s', 'brisbane'],
      ['t', '1528637909'],
      ['h', 'from : to : subject : date : message-id : from : subject : date'],
      ['bh', bh],
    ]);
    const ours = parseTagList(field.slice('DKIM-Signature:'.length));
    const theirs = parseTagList(
      headerSection(example).split('\r\nDKIM-Signature:')[0]!.slice('DKIM-Signature:'.length),
    );
    assert.ok(ours.ok && theirs.ok);
    assert.equal(stripWhitespace(ours.tags.get('b')!), stripWhitespace(theirs.tags.get('b')!));
    assert.equal(
      stripWhitespace(ours.tags.get('b')!),
      '/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==',
    );
  });

  test('signMessage with the A.2 keys (dual): both verify, dkimpy-style RSA 1024 included', async () => {
    const headers = await signMessage({
      content: from(unsigned),
      keys: [BRISBANE, TEST_RSA],
      nowMs: NOW_MS,
    });
    const signed = Buffer.concat([Buffer.from(headers, 'latin1'), unsigned]);
    assert.deepEqual(summary(await verify(signed, FOOTBALL, 7)), [
      ['pass', 'football.example.com', 'brisbane', 'ed25519-sha256'],
      ['pass', 'football.example.com', 'test', 'rsa-sha256'],
    ]);
  });
});

describe('dkimpy vectors', () => {
  test('test2.message: degenerate folding (tabs, a space inside b=) by Gmail verifies', async () => {
    assert.deepEqual(summary(await verify(crlf(read('dkimpy/test2.message')), GMAIL)), [
      ['pass', 'gmail.com', '20120113', 'rsa-sha256'],
    ]);
  });

  test('ed25519test2.msg: a signature made by Exim verifies with eximtest.dns', async () => {
    const zone = { 'sed._domainkey.test.ex': text('dkimpy/eximtest.dns') };
    assert.deepEqual(summary(await verify(read('dkimpy/ed25519test2.msg'), zone, 1)), [
      ['pass', 'test.ex', 'sed', 'ed25519-sha256'],
    ]);
  });

  test('test.message.baddomain: d= with specials is a permerror, and nothing is looked up', async () => {
    const resolver = fakeResolver({
      'test._domainkey.legitimate.com(.attacker.com': text('dkimpy/test.txt'),
    });
    const verifier = new DkimVerifier({ resolver, nowMs: NOW_MS });
    verifier.push(crlf(read('dkimpy/test.message.baddomain')));
    const [r] = await verifier.finish();
    assert.equal(r!.result, 'permerror');
    assert.match(r!.reason, /d= is not a domain name/);
    assert.deepEqual(resolver.queries, []);
  });

  describe('key records against a fixed signature (rfc6376.signed.rsa.msg, s=test)', () => {
    const message = crlf(read('dkimpy/rfc6376.signed.rsa.msg'));
    for (const [file, result, reason] of [
      ['test.txt', 'pass', /verified \(1024-bit key\)/],
      ['test2.txt', 'pass', /verified/], // no k=: rsa by default
      ['badversion.txt', 'permerror', /version v=DKIM1: g=\* is not DKIM1/],
      ['badk.txt', 'permerror', /unknown key type k=ed25519-sha256/],
      ['test_bad.txt', 'permerror', /not a valid RSA public key/],
      ['test_tlsrpt.txt', 'permerror', /s= is not for email/],
      ['eximtest.dns', 'permerror', /key type k=ed25519 does not match a=rsa-sha256/],
    ] as const) {
      test(`${file}: ${result}`, async () => {
        const [r] = await verify(message, {
          'test._domainkey.football.example.com': text(`dkimpy/${file}`),
        });
        assert.equal(r!.result, result, r!.reason);
        assert.match(r!.reason, reason);
      });
    }

    test('no record at all: permerror (no key)', async () => {
      const [r] = await verify(message, {});
      assert.equal(r!.result, 'permerror');
      assert.match(r!.reason, /no key at test._domainkey.football.example.com/);
    });
  });

  describe('the RSA test keys, signed by us, verify with each published form', () => {
    const message = crlf(read('dkimpy/test.message'));
    for (const [keyFile, records] of [
      ['1024_testkey.key', ['1024_testkey_wo_markers.pub.txt', '1024_testkey_wo_markers.pub.rsa.txt']],
      ['2048_testkey.key', ['2048_testkey_wo_markers.pub.txt', '2048_testkey_wo_markers.pub.rsa.txt']],
      ['2048_testkey_PKCS8.key', ['2048_testkey_PKCS8.key.pub.txt']],
    ] as const) {
      for (const record of records) {
        test(`${keyFile} with ${record}`, async () => {
          const key: DkimKey = {
            domain: 'example.com',
            selector: 'test',
            algorithm: 'rsa-sha256',
            privateKeyPem: text(`dkimpy/${keyFile}`),
          };
          const headers = await signMessage({ content: from(message), keys: [key], nowMs: NOW_MS });
          const signed = Buffer.concat([Buffer.from(headers), message]);
          const [r] = await verify(signed, { 'test._domainkey.example.com': text(`dkimpy/${record}`) });
          assert.equal(r!.result, 'pass', r!.reason);
        });
      }
    }
  });

  test('test_nofrom.message: no From, no signature (dkimpy raises ParameterError too)', async () => {
    await assert.rejects(
      signMessage({
        content: from(crlf(read('dkimpy/test_nofrom.message'))),
        keys: [TEST_RSA],
        nowMs: NOW_MS,
      }),
      DkimSignError,
    );
  });

  test('an extra From above or below the signed one does not verify (dkimpy bug#644046)', async () => {
    const message = crlf(read('dkimpy/test.message'));
    const key: DkimKey = { ...TEST_RSA, domain: 'example.com' };
    const zone = { 'test._domainkey.example.com': text('dkimpy/test.txt') };
    // Signed From once, without oversigning, as dkimpy signs by default.
    const field = signHeaderFields(splitHeaderFields(headerSection(message)), key, [
      ['v', '1'],
      ['a', 'rsa-sha256'],
      ['c', 'relaxed/simple'],
      ['d', 'example.com'],
      ['s', 'test'],
      ['h', 'from:to:subject:date:message-id'],
      [
        'bh',
        (() => {
          const body = new BodyHash('simple');
          body.write(bodyOf(message));
          return body.digest().digest.toString('base64');
        })(),
      ],
    ]);
    const signed = field + message.toString('latin1');
    assert.equal((await verify(Buffer.from(signed, 'latin1'), zone))[0]!.result, 'pass');
    const evil = 'From: "Resident Evil" <sales@spammer.com>\r\n';
    const below = signed.replace('\r\n\r\n', `\r\n${evil.trimEnd()}\r\n\r\n`);
    const above = evil + signed;
    assert.equal((await verify(Buffer.from(below, 'latin1'), zone))[0]!.result, 'policy');
    assert.equal((await verify(Buffer.from(above, 'latin1'), zone))[0]!.result, 'policy');
    const xFoo = signed.replace('\r\n\r\n', '\r\nX-Foo: bar\r\n\r\n');
    assert.equal((await verify(Buffer.from(xFoo, 'latin1'), zone))[0]!.result, 'pass');
  });

  test('rfc6376.w1258.msg: windows-1258 octets in headers and body are signed and verified as octets', async () => {
    const message = crlf(read('dkimpy/rfc6376.w1258.msg'));
    assert.ok(message.some((b) => b >= 0x80));
    const headers = await signMessage({
      content: from(message),
      keys: [BRISBANE, TEST_RSA],
      nowMs: NOW_MS,
    });
    const signed = Buffer.concat([Buffer.from(headers, 'latin1'), message]);
    assert.deepEqual(
      (await verify(signed, FOOTBALL)).map((r) => r.result),
      ['pass', 'pass'],
    );
  });

  test('message.mbox (a real message, Received fields repeated, signed before by kitterman.com)', async () => {
    const message = crlf(read('dkimpy/message.mbox'));
    const headers = await signMessage({
      content: from(message),
      keys: [TEST_RSA],
      nowMs: NOW_MS,
      headers: ['from', 'to', 'subject', 'date', 'received'],
    });
    const signed = Buffer.concat([Buffer.from(headers, 'latin1'), message]);
    // Its own 2011 signature's key is not in the suite: "no key" shows its bh= matched our body hash.
    assert.deepEqual(
      (await verify(signed, FOOTBALL)).map((r) => [r.result, r.domain, r.reason.replace(/ \(.*/, '')]),
      [
        ['pass', 'football.example.com', 'verified'],
        ['permerror', 'kitterman.com', 'no key at 2007-00._domainkey.kitterman.com'],
      ],
    );
  });
});

describe('MimeKit: real Gmail signatures (s=20120113, rsa-sha256, relaxed/relaxed)', () => {
  for (const file of ['gmail.msg', 'related.msg', 'multipart-no-end-boundary.msg']) {
    test(`${file} verifies, and not once a body octet changes`, async () => {
      const message = crlf(read(`mimekit/${file}`));
      assert.deepEqual(summary(await verify(message, GMAIL, 1000)), [
        ['pass', 'gmail.com', '20120113', 'rsa-sha256'],
      ]);
      const touched = Buffer.from(message);
      const at = touched.length - 10;
      touched[at] = touched[at] === 0x41 ? 0x42 : 0x41;
      assert.equal((await verify(touched, GMAIL))[0]!.result, 'fail');
    });
  }
});

describe('mailauth fixtures', () => {
  const SOURCE = text('mailauth/SOURCE');

  /** "message1.eml body, sha256, relaxed : D2H5..." lines of SOURCE. */
  function vector(label: string): string {
    const line = SOURCE.split('\n').find((l) => l.includes(label));
    assert.ok(line, label);
    return line.split(':').pop()!.trim();
  }

  for (const c of ['relaxed', 'simple'] as const) {
    test(`message1.eml body hash, ${c}`, () => {
      const hash = new BodyHash(c);
      hash.write(bodyOf(crlf(read('mailauth/message1.eml'))));
      assert.equal(hash.digest().digest.toString('base64'), vector(`message1.eml body, sha256, ${c}`));
    });
  }

  const files = readdirSync(new URL('mailauth/', SUITE_DIR)).filter(
    (f) => f.endsWith('.eml') && f !== 'message1.eml',
  );
  for (const file of files) {
    test(`${file}: every DKIM-Signature parses and its bh= is the body hash we compute`, async () => {
      const message = crlf(read(`mailauth/${file}`));
      const fields = splitHeaderFields(headerSection(message)).filter((f) => f.key === 'dkim-signature');
      assert.ok(fields.length > 0);
      for (const field of fields) {
        const parsed = parseDkimSignature(field.raw.slice(field.raw.indexOf(':') + 1));
        assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
      }
      // The body is checked before the key is looked up: with no key served, a matching body hash ends
      // in "no key", a mismatch would end in "body hash did not verify".
      const results = await verify(message, {});
      assert.equal(results.length, fields.length);
      for (const r of results) {
        assert.equal(r.result, 'permerror');
        assert.match(r.reason, /^no key at /);
      }
    });
  }
});
