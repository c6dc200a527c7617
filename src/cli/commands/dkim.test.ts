import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadDkimKeys } from '../../delivery/dkim-sign.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

describe('tern dkim keygen', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await createSandbox();
  });
  after(async () => {
    await sandbox.remove();
  });

  test('ed25519: stores the key under data_dir and prints the TXT record alone on stdout', async () => {
    const r = await sandbox.tern([
      'dkim',
      'keygen',
      '--domain',
      'example.test',
      '--selector',
      'e1',
      '--algo',
      'ed25519',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^e1\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="\n$/,
    );
    const keyPath = join(sandbox.dir, 'data', 'dkim', 'example.test', 'e1.key');
    assert.match(r.stderr, /created ed25519-sha256 key .*e1\.key/);
    assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
  });

  test('rsa is the default: 2048 bits, the record in 255-octet strings', async () => {
    const r = await sandbox.tern(['dkim', 'keygen', '--domain', 'example.test', '--selector', 'r1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^r1\._domainkey\.example\.test\. IN TXT "v=DKIM1; k=rsa; p=MIIBIjAN[^"]{229}" "[^"]+"\n$/,
    );
    const keys = await loadDkimKeys(join(sandbox.dir, 'data'));
    assert.deepEqual(
      keys.get('example.test')?.map((k) => [k.selector, k.algorithm]),
      [
        ['e1', 'ed25519-sha256'],
        ['r1', 'rsa-sha256'],
      ],
    );
  });

  test('an existing selector is not overwritten', async () => {
    const r = await sandbox.tern(['dkim', 'keygen', '--domain', 'example.test', '--selector', 'r1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
    assert.equal(r.stdout, '');
  });

  test('usage errors', async () => {
    const noDomain = await sandbox.tern(['dkim', 'keygen', '--selector', 's']);
    assert.equal(noDomain.code, 2);
    assert.match(noDomain.stderr, /missing --domain/);
    const badAlgo = await sandbox.tern([
      'dkim',
      'keygen',
      '--domain',
      'example.test',
      '--selector',
      's',
      '--algo',
      'dsa',
    ]);
    assert.equal(badAlgo.code, 2);
    assert.match(badAlgo.stderr, /--algo must be rsa or ed25519/);
    const badDomain = await sandbox.tern(['dkim', 'keygen', '--domain', 'bad domain', '--selector', 's']);
    assert.equal(badDomain.code, 1);
    assert.match(badDomain.stderr, /not a domain name/);
  });

  test('listed in tern help', async () => {
    const r = await sandbox.tern(['help', 'dkim'], { withConfig: false });
    assert.match(r.stdout, /tern dkim keygen --domain D --selector S/);
    assert.match(r.stdout, /tern dkim list/);
    assert.match(r.stdout, /tern dkim rm --domain D --selector S/);
  });
});

describe('tern dkim list, rm, keygen --json (issue 11)', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await createSandbox();
  });
  after(async () => {
    await sandbox.remove();
  });

  test('keygen --json gives the key and its record; a second key for the domain says both sign', async () => {
    const r = await sandbox.tern([
      'dkim',
      'keygen',
      '--domain',
      'example.test',
      '--selector',
      'a1',
      '--algo',
      'ed25519',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const key = JSON.parse(r.stdout) as Record<string, string>;
    assert.equal(key['domain'], 'example.test');
    assert.equal(key['selector'], 'a1');
    assert.equal(key['algorithm'], 'ed25519-sha256');
    assert.match(key['created']!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(key['dnsName'], 'a1._domainkey.example.test.');
    assert.match(key['value']!, /^v=DKIM1; k=ed25519; p=/);
    assert.equal(key['keyFile'], join(sandbox.dir, 'data', 'dkim', 'example.test', 'a1.key'));
    assert.equal(r.stderr, '');
    const second = await sandbox.tern(['dkim', 'keygen', '--domain', 'example.test', '--selector', 'b2']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(
      second.stderr,
      /example\.test now has 2 keys \(a1, b2\): outbound mail from example\.test is signed with each of them/,
    );
  });

  test('list shows domain, selector, algorithm, created (ISO 8601) and the DNS name; --json too', async () => {
    const r = await sandbox.tern(['dkim', 'list']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^DOMAIN +SELECTOR +ALGORITHM +CREATED +DNS NAME$/);
    assert.match(
      lines[1]!,
      /^example\.test +a1 +ed25519-sha256 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +a1\._domainkey\.example\.test\.$/,
    );
    assert.match(lines[2]!, /^example\.test +b2 +rsa-sha256 +\S+ +b2\._domainkey\.example\.test\.$/);
    assert.equal(lines.length, 3);
    const json = await sandbox.tern(['dkim', 'list', '--json']);
    const rows = JSON.parse(json.stdout) as Record<string, string>[];
    assert.deepEqual(
      rows.map((k) => [k['domain'], k['selector'], k['algorithm'], k['dnsName']]),
      [
        ['example.test', 'a1', 'ed25519-sha256', 'a1._domainkey.example.test.'],
        ['example.test', 'b2', 'rsa-sha256', 'b2._domainkey.example.test.'],
      ],
    );
    assert.match(rows[1]!['value']!, /^v=DKIM1; k=rsa; p=/);
  });

  test('rm removes one key (the other keeps signing); an unknown one is exit 1; usage needs both options', async () => {
    const r = await sandbox.tern(['dkim', 'rm', '--domain', 'example.test', '--selector', 'a1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^removed DKIM key a1\._domainkey\.example\.test \(ed25519-sha256\)\n$/);
    assert.match(r.stderr, /example\.test is still signed with: b2/);
    assert.match(r.stderr, /a1\._domainkey\.example\.test/);
    const keys = await loadDkimKeys(join(sandbox.dir, 'data'));
    assert.deepEqual(
      keys.get('example.test')?.map((k) => k.selector),
      ['b2'],
    );
    const again = await sandbox.tern([
      'dkim',
      'rm',
      '--domain',
      'example.test',
      '--selector',
      'a1',
      '--json',
    ]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'tern: no DKIM key a1._domainkey.example.test\n');
    const last = await sandbox.tern(['dkim', 'rm', '--domain', 'example.test', '--selector', 'b2', '--json']);
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual(JSON.parse(last.stdout), {
      domain: 'example.test',
      selector: 'b2',
      algorithm: 'rsa-sha256',
      remaining: [],
    });
    assert.equal((await sandbox.tern(['dkim', 'list', '--json'])).stdout, '[]\n');
    const usage = await sandbox.tern(['dkim', 'rm', '--domain', 'example.test']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^tern: missing --selector\nusage: tern dkim rm /);
  });
});
