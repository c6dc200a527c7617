import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { DnsAnswer, Resolver } from '../core/dns.ts';
import { splitHeaderFields } from '../policy/dkim/header-fields.ts';
import { parseDkimSignature } from '../policy/dkim/signature.ts';
import type { DkimResult } from '../policy/dkim/verifier.ts';
import { DkimVerifier } from '../policy/dkim/verifier.ts';
import type { DkimKey } from './dkim-sign.ts';
import {
  DkimSignError,
  chooseSignedHeaders,
  dkimDnsRecord,
  dkimKeyPaths,
  generateDkimKey,
  loadDkimKeys,
  signMessage,
} from './dkim-sign.ts';

const NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);

const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']): string =>
  key.export({ format: 'pem', type: 'pkcs8' }).toString();
const RSA: DkimKey = {
  domain: 'example.org',
  selector: 'r2026',
  algorithm: 'rsa-sha256',
  privateKeyPem: pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
};
const ED: DkimKey = {
  domain: 'example.org',
  selector: 'e2026',
  algorithm: 'ed25519-sha256',
  privateKeyPem: pem(generateKeyPairSync('ed25519').privateKey),
};

const MESSAGE =
  'From: Alice <alice@example.org>\r\n' +
  'To: Bob <bob@example.net>\r\n' +
  'Subject: Lunch\r\n' +
  'Date: Thu, 15 Jan 2026 12:00:00 +0000\r\n' +
  'Message-ID: <lunch@example.org>\r\n' +
  'MIME-Version: 1.0\r\n' +
  'Content-Type: text/plain; charset=utf-8\r\n' +
  'X-Mailer: not signed\r\n' +
  '\r\n' +
  'Noon?  \r\n\r\n';

function content(message: string, chunk = 5): () => AsyncIterable<Uint8Array> {
  const bytes = Buffer.from(message, 'latin1');
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  return () => Readable.from(chunks);
}

function resolverFor(keys: readonly DkimKey[]): Pick<Resolver, 'txt'> {
  return {
    txt(name: string): Promise<DnsAnswer<string>> {
      const key = keys.find((k) => `${k.selector}._domainkey.${k.domain}` === name);
      return Promise.resolve(
        key === undefined
          ? { kind: 'nxdomain' }
          : { kind: 'ok', records: [dkimDnsRecord(key).value], ttlMs: 0 },
      );
    },
  };
}

async function verify(message: string, keys: readonly DkimKey[] = [RSA, ED]): Promise<DkimResult[]> {
  const verifier = new DkimVerifier({ resolver: resolverFor(keys), nowMs: NOW_MS + 5000 });
  verifier.push(Buffer.from(message, 'latin1'));
  return verifier.finish();
}

describe('signMessage', () => {
  test('dual signature (RSA and Ed25519), both verify', async () => {
    const headers = await signMessage({ content: content(MESSAGE), keys: [RSA, ED], nowMs: NOW_MS });
    const results = await verify(headers + MESSAGE);
    assert.deepEqual(
      results.map((r) => [r.result, r.selector, r.algorithm]),
      [
        ['pass', 'r2026', 'rsa-sha256'],
        ['pass', 'e2026', 'ed25519-sha256'],
      ],
    );
  });

  test('tags: v, a, c=relaxed/relaxed, d, s, t, h (oversigned), bh; no l=', async () => {
    const headers = await signMessage({ content: content(MESSAGE), keys: [ED], nowMs: NOW_MS });
    const fields = splitHeaderFields(headers);
    assert.equal(fields.length, 1);
    const parsed = parseDkimSignature(fields[0]!.raw.slice('DKIM-Signature:'.length));
    assert.ok(parsed.ok);
    const sig = parsed.value;
    assert.equal(sig.headerCanon, 'relaxed');
    assert.equal(sig.bodyCanon, 'relaxed');
    assert.equal(sig.timestampS, NOW_MS / 1000);
    assert.equal(sig.bodyLength, null);
    assert.deepEqual(sig.signedHeaders, [
      'from',
      'from',
      'subject',
      'subject',
      'date',
      'date',
      'message-id',
      'to',
      'to',
      'mime-version',
      'content-type',
    ]);
  });

  test('lines are folded to at most 78 characters and the field ends in CRLF', async () => {
    const headers = await signMessage({ content: content(MESSAGE), keys: [RSA], nowMs: NOW_MS });
    assert.ok(headers.endsWith('\r\n'));
    for (const line of headers.slice(0, -2).split('\r\n')) assert.ok(line.length <= 78, line);
    assert.ok(headers.split('\r\n').length > 4);
  });

  test('oversigning: adding From, To, Subject or Date after signing breaks the signature', async () => {
    const headers = await signMessage({ content: content(MESSAGE), keys: [ED], nowMs: NOW_MS });
    for (const extra of [
      'From: Mallory <m@evil.example>',
      'To: x@evil.example',
      'Subject: Win',
      'Date: now',
    ]) {
      const tampered = headers + MESSAGE.replace('\r\n\r\n', `\r\n${extra}\r\n\r\n`);
      const [r] = await verify(tampered);
      assert.notEqual(r!.result, 'pass', extra);
    }
    const [ok] = await verify(headers + MESSAGE.replace('\r\n\r\n', '\r\nX-Later: fine\r\n\r\n'));
    assert.equal(ok!.result, 'pass');
  });

  test('the body is hashed as it streams, for bare-LF input too', async () => {
    const lf = MESSAGE.replace(/\r\n/g, '\n');
    const headers = await signMessage({ content: content(lf, 1), keys: [RSA], nowMs: NOW_MS });
    assert.equal((await verify(headers + MESSAGE))[0]!.result, 'pass');
  });

  test('`headers` chooses the candidates; From is always signed', async () => {
    const headers = await signMessage({
      content: content(MESSAGE),
      keys: [ED],
      nowMs: NOW_MS,
      headers: ['X-Mailer', 'Subject'],
    });
    const parsed = parseDkimSignature(splitHeaderFields(headers)[0]!.raw.slice(15));
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.value.signedHeaders, ['from', 'from', 'x-mailer', 'subject', 'subject']);
  });

  test('no keys: nothing to prepend', async () => {
    assert.equal(await signMessage({ content: content(MESSAGE), keys: [], nowMs: NOW_MS }), '');
  });

  test('a message without From is refused', async () => {
    await assert.rejects(
      signMessage({ content: content('To: a@example.net\r\n\r\nhi\r\n'), keys: [ED], nowMs: NOW_MS }),
      (err: unknown) => err instanceof DkimSignError && /no From/.test(err.message),
    );
  });

  test('a key whose PEM is not of its algorithm is refused by name', async () => {
    const wrong: DkimKey = { ...ED, privateKeyPem: RSA.privateKeyPem };
    await assert.rejects(
      signMessage({ content: content(MESSAGE), keys: [wrong], nowMs: NOW_MS }),
      (err: unknown) =>
        err instanceof DkimSignError && /e2026._domainkey.example.org is rsa/.test(err.message),
    );
  });
});

describe('chooseSignedHeaders', () => {
  test('each present instance once, oversigned names once more, absent oversigned names once', () => {
    const fields = splitHeaderFields('From: a\r\nReceived: x\r\nCc: b\r\nCc: c\r\n');
    assert.deepEqual(chooseSignedHeaders(fields, ['from', 'cc', 'to', 'received', 'reply-to']), [
      'from',
      'from',
      'cc',
      'cc',
      'to',
      'received',
    ]);
  });
});

describe('dkimDnsRecord', () => {
  test('Ed25519: the raw key in one string', () => {
    const record = dkimDnsRecord(ED);
    assert.equal(record.name, 'e2026._domainkey.example.org.');
    assert.match(record.value, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(record.strings, [record.value]);
    assert.equal(record.zoneLine, `e2026._domainkey.example.org. IN TXT "${record.value}"`);
  });

  test('RSA 2048: SubjectPublicKeyInfo, cut into 255-octet strings', () => {
    const record = dkimDnsRecord(RSA);
    assert.match(record.value, /^v=DKIM1; k=rsa; p=MIIBIjAN/);
    assert.equal(record.strings.length, 2);
    assert.equal(record.strings[0]!.length, 255);
    assert.equal(record.strings.join(''), record.value);
    assert.equal(
      record.zoneLine,
      `r2026._domainkey.example.org. IN TXT "${record.strings[0]}" "${record.strings[1]}"`,
    );
  });
});

describe('key files', () => {
  let dataDir = '';
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tern-dkim-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test('generate, store with mode 0600, load back, sign and verify', async () => {
    const made = await generateDkimKey({
      dataDir,
      domain: 'Example.COM',
      selector: 'S1',
      algorithm: 'ed25519-sha256',
      nowMs: NOW_MS,
    });
    assert.equal(made.key.domain, 'example.com');
    assert.equal(made.key.selector, 's1');
    assert.deepEqual(made.paths, dkimKeyPaths(dataDir, 'example.com', 's1'));
    assert.equal((await stat(made.paths.key)).mode & 0o777, 0o600);
    assert.equal((await stat(made.paths.meta)).mode & 0o777, 0o600);
    assert.equal((await stat(made.paths.dir)).mode & 0o777, 0o700);
    assert.deepEqual(JSON.parse(await readFile(made.paths.meta, 'utf8')), {
      version: 1,
      domain: 'example.com',
      selector: 's1',
      algorithm: 'ed25519-sha256',
      createdMs: NOW_MS,
    });
    const rsa = await generateDkimKey({
      dataDir,
      domain: 'example.com',
      selector: 'r1',
      algorithm: 'rsa-sha256',
      nowMs: NOW_MS,
    });
    assert.equal(dkimDnsRecord(rsa.key).strings.length, 2);

    const loaded = await loadDkimKeys(dataDir);
    assert.deepEqual([...loaded.keys()], ['example.com']);
    const keys = loaded.get('example.com')!;
    assert.deepEqual(
      keys.map((k) => [k.selector, k.algorithm]),
      [
        ['r1', 'rsa-sha256'],
        ['s1', 'ed25519-sha256'],
      ],
    );
    const message = MESSAGE.replace('alice@example.org', 'alice@example.com');
    const headers = await signMessage({ content: content(message), keys, nowMs: NOW_MS });
    assert.deepEqual(
      (await verify(headers + message, keys)).map((r) => r.result),
      ['pass', 'pass'],
    );
  });

  test('an existing key is never replaced', async () => {
    await assert.rejects(
      generateDkimKey({
        dataDir,
        domain: 'example.com',
        selector: 's1',
        algorithm: 'rsa-sha256',
        nowMs: NOW_MS,
      }),
      (err: unknown) => err instanceof DkimSignError && /already exists/.test(err.message),
    );
  });

  test('bad names are refused', async () => {
    for (const [domain, selector] of [
      ['localhost', 's'],
      ['exa mple.org', 's'],
      ['example.org', 'a;b'],
      ['../etc', 's'],
    ] as const) {
      await assert.rejects(
        generateDkimKey({ dataDir, domain, selector, algorithm: 'ed25519-sha256', nowMs: NOW_MS }),
        DkimSignError,
        `${domain} ${selector}`,
      );
    }
  });

  test('no dkim folder: no keys', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'tern-dkim-empty-'));
    assert.equal((await loadDkimKeys(empty)).size, 0);
    await rm(empty, { recursive: true });
  });

  test('metadata that does not match its file, or a missing key file, is an error naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-dkim-bad-'));
    const domainDir = join(dir, 'dkim', 'example.net');
    await mkdir(domainDir, { recursive: true });
    const meta = {
      version: 1,
      domain: 'example.org',
      selector: 'x',
      algorithm: 'ed25519-sha256',
      createdMs: 0,
    };
    await writeFile(join(domainDir, 'x.json'), JSON.stringify(meta));
    await assert.rejects(
      loadDkimKeys(dir),
      /x\.json: says x._domainkey.example.org but is stored as example.net\/x/,
    );
    await writeFile(join(domainDir, 'x.json'), JSON.stringify({ ...meta, domain: 'example.net' }));
    await assert.rejects(loadDkimKeys(dir), /x\.key: not readable/);
    await writeFile(join(domainDir, 'x.json'), '{not json');
    await assert.rejects(loadDkimKeys(dir), /x\.json: not readable JSON/);
    await rm(dir, { recursive: true });
  });
});
