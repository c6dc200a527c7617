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
  });
});
