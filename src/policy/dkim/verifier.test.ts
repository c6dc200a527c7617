import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import type { DnsAnswer, Resolver } from '../../core/dns.ts';
import type { Canonicalization } from './canonicalize.ts';
import { BodyHash } from './canonicalize.ts';
import { headerHashInput, selectSignedFields, splitHeaderFields } from './header-fields.ts';
import type { DkimResult } from './verifier.ts';
import { DkimVerifier } from './verifier.ts';

const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NOW_S = NOW_MS / 1000;

const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa512 = generateKeyPairSync('rsa', { modulusLength: 512 });
const ed = generateKeyPairSync('ed25519');

const spki = (key: KeyObject): string => key.export({ format: 'der', type: 'spki' }).toString('base64');
const edRaw = (key: KeyObject): string =>
  Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url').toString('base64');

const MESSAGE =
  'From: Joe <joe@example.org>\r\n' +
  'To: Suzie <suzie@example.net>\r\n' +
  'Subject: Is dinner ready?\r\n' +
  'Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n' +
  'Message-ID: <1@example.org>\r\n' +
  '\r\n' +
  'Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n';

interface SignSpec {
  readonly key?: KeyObject;
  readonly a?: string;
  readonly d?: string;
  readonly s?: string;
  readonly c?: `${Canonicalization}/${Canonicalization}`;
  readonly h?: string;
  readonly l?: number;
  /** More tags, written before h=. */
  readonly extra?: string;
}

/**
 * An independent little signer for these tests (policy code may not import the delivery signer): the
 * body and header hashes from this module's own primitives, the signature from node:crypto.
 */
function signed(message: string, spec: SignSpec = {}): string {
  const a = spec.a ?? 'rsa-sha256';
  const c = spec.c ?? 'relaxed/relaxed';
  const [hc, bc] = c.split('/') as [Canonicalization, Canonicalization];
  const h = spec.h ?? 'from:to:subject:date:message-id';
  const split = message.indexOf('\r\n\r\n');
  const headerSection = message.slice(0, split + 2);
  const body = new BodyHash(bc, spec.l ?? null);
  body.write(Buffer.from(message.slice(split + 4), 'latin1'));
  const bh = body.digest().digest.toString('base64');
  const tags = [
    'v=1',
    `a=${a}`,
    `c=${c}`,
    `d=${spec.d ?? 'example.org'}`,
    `s=${spec.s ?? (a.startsWith('ed25519') ? 'ed' : 'rsa')}`,
    ...(spec.extra === undefined ? [] : [spec.extra]),
    ...(spec.l === undefined ? [] : [`l=${spec.l}`]),
    `h=${h}`,
    `bh=${bh}`,
    'b=',
  ];
  const field = `DKIM-Signature: ${tags.join(';\r\n\t')}\r\n`;
  const fields = splitHeaderFields(headerSection);
  const names = h.split(':').map((n) => n.trim());
  const data = headerHashInput(selectSignedFields(fields, names), field, hc);
  const key = spec.key ?? (a.startsWith('ed25519') ? ed.privateKey : rsa2048.privateKey);
  const signature = a.startsWith('ed25519')
    ? sign(null, createHash('sha256').update(data).digest(), key)
    : sign(a === 'rsa-sha1' ? 'sha1' : 'sha256', data, key);
  const b64 = signature.toString('base64');
  return `${field.slice(0, -2)}${b64.slice(0, 40)}\r\n ${b64.slice(40)}\r\n${message}`;
}

type Zone = Record<string, DnsAnswer<string> | string>;

function fakeResolver(zone: Zone): Pick<Resolver, 'txt'> & { queries: string[] } {
  const queries: string[] = [];
  return {
    queries,
    txt(name: string): Promise<DnsAnswer<string>> {
      queries.push(name);
      const entry = zone[name.toLowerCase()];
      if (entry === undefined) return Promise.resolve({ kind: 'nxdomain' });
      if (typeof entry === 'string') return Promise.resolve({ kind: 'ok', records: [entry], ttlMs: 60_000 });
      return Promise.resolve(entry);
    },
  };
}

const ZONE: Zone = {
  'rsa._domainkey.example.org': `v=DKIM1; k=rsa; p=${spki(rsa2048.publicKey)}`,
  'ed._domainkey.example.org': `v=DKIM1; k=ed25519; p=${edRaw(ed.publicKey)}`,
  'short._domainkey.example.org': `v=DKIM1; p=${spki(rsa512.publicKey)}`,
};

async function verify(
  message: string,
  opts: { zone?: Zone; chunk?: number; minRsaBits?: number; nowMs?: number; signal?: AbortSignal } = {},
): Promise<DkimResult[]> {
  const resolver = fakeResolver({ ...ZONE, ...opts.zone });
  const verifier = new DkimVerifier({
    resolver,
    nowMs: opts.nowMs ?? NOW_MS,
    ...(opts.minRsaBits === undefined ? {} : { minRsaBits: opts.minRsaBits }),
  });
  const bytes = Buffer.from(message, 'latin1');
  const size = opts.chunk ?? bytes.length;
  for (let i = 0; i < bytes.length; i += size) verifier.push(bytes.subarray(i, i + size));
  return verifier.finish(opts.signal);
}

async function one(message: string, opts: Parameters<typeof verify>[1] = {}): Promise<DkimResult> {
  const results = await verify(message, opts);
  assert.equal(results.length, 1);
  return results[0]!;
}

describe('DkimVerifier: good signatures pass', () => {
  for (const a of ['rsa-sha256', 'ed25519-sha256']) {
    for (const c of ['simple/simple', 'simple/relaxed', 'relaxed/simple', 'relaxed/relaxed'] as const) {
      test(`${a} ${c}`, async () => {
        const r = await one(signed(MESSAGE, { a, c }));
        assert.equal(r.result, 'pass', r.reason);
        assert.equal(r.domain, 'example.org');
        assert.equal(r.algorithm, a);
        assert.equal(r.bodyLengthLimited, false);
        assert.equal(r.headerB.length, 8);
      });
    }
  }

  test('chunk boundaries do not matter (1, 3, 7 octets at a time)', async () => {
    const message = signed(MESSAGE, { c: 'simple/relaxed' });
    for (const chunk of [1, 3, 7]) assert.equal((await one(message, { chunk })).result, 'pass');
  });

  test('relaxed survives re-folding and whitespace changes of headers and body', async () => {
    const message = signed(MESSAGE)
      .replace('Subject: Is dinner ready?', 'subject:   Is dinner\r\n\tready?  ')
      .replace('We lost the game.  Are', 'We lost the game. \t Are')
      .replace(/Joe\.\r\n$/, 'Joe.   \r\n\r\n\r\n');
    assert.equal((await one(message)).result, 'pass');
  });

  test('a message stored with bare LF verifies as on the wire', async () => {
    const message = signed(MESSAGE, { c: 'simple/simple' }).replace(/\r\n/g, '\n');
    assert.equal((await one(message)).result, 'pass');
  });

  test('an unsigned message gives one "none"', async () => {
    assert.deepEqual(await verify(MESSAGE), [
      {
        result: 'none',
        reason: 'message not signed',
        domain: '',
        selector: '',
        algorithm: '',
        headerB: '',
        bodyLengthLimited: false,
      },
    ]);
  });
});

describe('DkimVerifier: tampering fails', () => {
  test('a changed body: fail, body hash', async () => {
    const r = await one(signed(MESSAGE).replace('hungry', 'thirsty'));
    assert.equal(r.result, 'fail');
    assert.match(r.reason, /body hash/);
  });

  test('a changed signed header: fail, signature', async () => {
    const r = await one(signed(MESSAGE).replace('Subject: Is dinner', 'Subject: Was dinner'));
    assert.equal(r.result, 'fail');
    assert.match(r.reason, /signature did not verify/);
  });

  test('simple canonicalization notices whitespace changes', async () => {
    const message = signed(MESSAGE, { c: 'simple/simple' }).replace('Subject: Is', 'Subject:  Is');
    assert.equal((await one(message)).result, 'fail');
  });

  test('an unsigned header may be added; a second Subject below an oversigned one may not', async () => {
    const message = signed(MESSAGE, { h: 'from:to:subject:subject:date' });
    assert.equal((await one(`X-Added: yes\r\n${message}`)).result, 'pass');
    const added = message.replace('\r\n\r\nHi.', '\r\nSubject: Free money\r\n\r\nHi.');
    assert.equal((await one(added)).result, 'fail');
  });

  test('a From field the signature does not cover: policy (added above the signed one)', async () => {
    const r = await one(`From: Mallory <m@evil.example>\r\n${signed(MESSAGE)}`);
    assert.equal(r.result, 'policy');
    assert.match(r.reason, /From field is not covered/);
  });
});

describe('DkimVerifier: l= (body length)', () => {
  test('content appended after l= still passes, flagged, and the reason counts the unsigned octets', async () => {
    const message = `${signed(MESSAGE, { l: 10 })}Appended by someone else\r\n`;
    const r = await one(message);
    assert.equal(r.result, 'pass');
    assert.equal(r.bodyLengthLimited, true);
    assert.match(r.reason, /l=10: \d+ octets of body not signed/);
  });

  test('l= longer than the body: fail', async () => {
    const message = signed(MESSAGE, { l: 10 });
    const truncated = message.slice(0, message.indexOf('\r\n\r\nHi.') + 4) + 'Hi\r\n';
    const r = await one(truncated);
    assert.equal(r.result, 'fail');
    assert.equal(r.bodyLengthLimited, true);
  });
});

describe('DkimVerifier: algorithms and key sizes (RFC 8301)', () => {
  test('rsa-sha1 is policy, without a DNS query', async () => {
    const resolver = fakeResolver(ZONE);
    const verifier = new DkimVerifier({ resolver, nowMs: NOW_MS });
    verifier.push(Buffer.from(signed(MESSAGE, { a: 'rsa-sha1' })));
    const [r] = await verifier.finish();
    assert.equal(r!.result, 'policy');
    assert.deepEqual(resolver.queries, []);
  });

  test('an RSA key below 1024 bits is a permerror; with a lower minimum it verifies', async () => {
    const message = signed(MESSAGE, { key: rsa512.privateKey, s: 'short' });
    const r = await one(message);
    assert.equal(r.result, 'permerror');
    assert.match(r.reason, /512 bits is below the minimum of 1024/);
    assert.equal((await one(message, { minRsaBits: 512 })).result, 'pass');
  });

  test('a= ed25519 with an RSA key record: permerror', async () => {
    const r = await one(signed(MESSAGE, { a: 'ed25519-sha256', s: 'rsa' }));
    assert.equal(r.result, 'permerror');
    assert.match(r.reason, /key type k=rsa does not match/);
  });
});

describe('DkimVerifier: key records', () => {
  const message = signed(MESSAGE);
  const p = spki(rsa2048.publicKey);
  const withKey = (record: string | DnsAnswer<string>): Promise<DkimResult> =>
    one(message, { zone: { 'rsa._domainkey.example.org': record } });

  test('no key: permerror', async () => {
    const r = await withKey({ kind: 'nxdomain' });
    assert.equal(r.result, 'permerror');
    assert.match(r.reason, /no key at rsa._domainkey.example.org/);
    assert.equal((await withKey({ kind: 'nodata' })).result, 'permerror');
  });

  test('DNS failure: temperror', async () => {
    const r = await withKey({ kind: 'error', temporary: true, reason: 'SERVFAIL' });
    assert.equal(r.result, 'temperror');
    assert.match(r.reason, /SERVFAIL/);
  });

  test('a resolver that throws: temperror, not a crash', async () => {
    const resolver: Pick<Resolver, 'txt'> = { txt: () => Promise.reject(new Error('boom')) };
    const verifier = new DkimVerifier({ resolver, nowMs: NOW_MS });
    verifier.push(Buffer.from(message));
    assert.equal((await verifier.finish())[0]!.result, 'temperror');
  });

  test('revoked key (empty p=): permerror', async () => {
    const r = await withKey('v=DKIM1; k=rsa; p=');
    assert.equal(r.result, 'permerror');
    assert.match(r.reason, /revoked/);
  });

  for (const [record, reason] of [
    [`v=DKIM1: g=*; k=rsa; p=${p}`, /version/],
    [`v=DKIM1; k=ed25519-sha256; p=${p}`, /unknown key type/],
    [`v=DKIM1; h=sha1; p=${p}`, /h= does not allow sha256/],
    [`v=DKIM1; s=tlsrpt; p=${p}`, /not for email/],
    [`v=DKIM1; p=${p.slice(0, 60)}${p.slice(64)}`, /not a valid RSA/],
  ] as const) {
    test(`${record.slice(0, 30)}…: permerror`, async () => {
      const r = await withKey(record);
      assert.equal(r.result, 'permerror');
      assert.match(r.reason, reason);
    });
  }

  test('h=sha256, s=email and unknown tags are fine', async () => {
    assert.equal((await withKey(`v=DKIM1; h=sha1:sha256; s=email; z=1; p=${p}`)).result, 'pass');
  });

  test('t=s: i= must be d= itself', async () => {
    const zone = { 'rsa._domainkey.example.org': `v=DKIM1; t=s; p=${p}` };
    const sub = signed(MESSAGE, { extra: 'i=joe@mail.example.org' });
    const same = signed(MESSAGE, { extra: 'i=joe@example.org' });
    assert.equal((await one(sub, { zone })).result, 'permerror');
    assert.equal((await one(same, { zone })).result, 'pass');
    assert.equal((await one(sub)).result, 'pass');
  });

  test('t=y (testing) still verifies, and says so', async () => {
    const r = await withKey(`v=DKIM1; t=y; p=${p}`);
    assert.equal(r.result, 'pass');
    assert.match(r.reason, /testing/);
  });

  test('several TXT records: the first usable key is taken', async () => {
    const r = await withKey({ kind: 'ok', records: ['v=spf1 -all', `v=DKIM1; p=${p}`], ttlMs: 0 });
    assert.equal(r.result, 'pass');
  });
});

describe('DkimVerifier: time', () => {
  test('x= in the past: permerror (expired)', async () => {
    const r = await one(signed(MESSAGE, { extra: `t=${NOW_S - 7200}; x=${NOW_S - 3600}` }));
    assert.equal(r.result, 'permerror');
    assert.match(r.reason, /expired/);
  });

  test('x= in the future and t= a little ahead of our clock: pass', async () => {
    assert.equal(
      (await one(signed(MESSAGE, { extra: `t=${NOW_S + 60}; x=${NOW_S + 3600}` }))).result,
      'pass',
    );
  });

  test('t= far in the future: permerror', async () => {
    const r = await one(signed(MESSAGE, { extra: `t=${NOW_S + 86400}` }));
    assert.equal(r.result, 'permerror');
    assert.match(r.reason, /future/);
  });
});

describe('DkimVerifier: several signatures', () => {
  test('every signature gets its result, top to bottom, and each key is looked up once', async () => {
    const once = signed(MESSAGE);
    const twice = signed(once, { a: 'ed25519-sha256' });
    const thrice = signed(twice, { d: 'other.example' });
    const resolver = fakeResolver(ZONE);
    const verifier = new DkimVerifier({ resolver, nowMs: NOW_MS });
    verifier.push(Buffer.from(`${signed(thrice)}`));
    const results = await verifier.finish();
    assert.deepEqual(
      results.map((r) => [r.result, r.domain, r.selector]),
      [
        ['pass', 'example.org', 'rsa'],
        ['permerror', 'other.example', 'rsa'],
        ['pass', 'example.org', 'ed'],
        ['pass', 'example.org', 'rsa'],
      ],
    );
    assert.deepEqual(resolver.queries.sort(), [
      'ed._domainkey.example.org',
      'rsa._domainkey.example.org',
      'rsa._domainkey.other.example',
    ]);
  });

  test('beyond ten signatures the rest are not parsed nor checked, and counted in one neutral result', async () => {
    let message = MESSAGE;
    for (let i = 0; i < 12; i++) message = signed(message, { a: 'ed25519-sha256' });
    const results = await verify(`DKIM-Signature: garbage\r\n`.repeat(100) + message);
    assert.equal(results.length, 11);
    assert.deepEqual(
      results.map((r) => r.result),
      [...Array<string>(10).fill('permerror'), 'neutral'],
    );
    assert.equal(results[10]!.reason, '102 more signature(s) not checked: at most 10 are');
    assert.equal(results[10]!.domain, '');
    const fewer = await verify(message);
    assert.deepEqual(
      fewer.map((r) => r.result),
      [...Array<string>(10).fill('pass'), 'neutral'],
    );
  });

  test('header.b is lengthened until it tells two signatures apart', async () => {
    const sig = 'DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=x; h=from; bh=AAAA; b=';
    const message = `${sig}abcdefghAAAA\r\n${sig}abcdefghBBBB\r\n${sig}zzzzzzzzzzzz\r\n${MESSAGE}`;
    const results = await verify(message);
    assert.deepEqual(
      results.map((r) => r.headerB),
      ['abcdefghA', 'abcdefghB', 'zzzzzzzz'],
    );
  });

  test('a malformed signature is a permerror beside a good one', async () => {
    const message = `DKIM-Signature: v=1; a=rsa-sha256; d=example.org\r\n${signed(MESSAGE)}`;
    assert.deepEqual(
      (await verify(message)).map((r) => r.result),
      ['permerror', 'pass'],
    );
  });
});

describe('DkimVerifier: limits and cancellation', () => {
  test('a header section over the limit is not verified: neutral', async () => {
    const resolver = fakeResolver(ZONE);
    const verifier = new DkimVerifier({ resolver, nowMs: NOW_MS, maxHeaderBytes: 1024 });
    verifier.push(Buffer.from(`X-Big: ${'x'.repeat(2000)}\r\n${signed(MESSAGE)}`));
    const results = await verifier.finish();
    assert.equal(results.length, 1);
    assert.equal(results[0]!.result, 'neutral');
    assert.match(results[0]!.reason, /larger than 1024/);
  });

  test('an aborted signal turns pending lookups into temperror', async () => {
    const resolver: Pick<Resolver, 'txt'> = { txt: () => new Promise<never>(() => {}) };
    const verifier = new DkimVerifier({ resolver, nowMs: NOW_MS });
    verifier.push(Buffer.from(signed(MESSAGE)));
    const controller = new AbortController();
    const pending = verifier.finish(controller.signal);
    setTimeout(() => controller.abort(), 5);
    const [r] = await pending;
    assert.equal(r!.result, 'temperror');
    assert.match(r!.reason, /aborted/);
  });

  test('a message without a body and without the empty line is verified as header only', async () => {
    const withBody = signed('From: a@example.org\r\n\r\n', { h: 'from' });
    const headerOnly = withBody.slice(0, -2);
    assert.equal((await one(headerOnly)).result, 'pass');
  });

  test('push after finish is a programming error', async () => {
    const verifier = new DkimVerifier({ resolver: fakeResolver({}), nowMs: NOW_MS });
    await verifier.finish();
    assert.throws(() => verifier.push(Buffer.from('x')));
  });

  test('a 20 MiB body streams through in small memory and verifies', async () => {
    const line = 'The quick brown fox jumps over the lazy dog.  \t \r\n';
    const big = MESSAGE + line.repeat(Math.ceil((20 * 1024 * 1024) / line.length));
    const message = signed(big, { c: 'relaxed/relaxed' });
    assert.equal((await one(message, { chunk: 64 * 1024 })).result, 'pass');
  });
});
