import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openDirectory } from '../../main.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

describe('tern alias', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    assert.equal((await box.tern(['user', 'add', 'alice@example.test'])).code, 0);
  });
  after(() => box.remove());

  async function aliases(): Promise<{ alias: string; target: string }[]> {
    const r = await box.tern(['alias', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { alias: string; target: string }[];
  }

  test('alias list starts empty', async () => {
    assert.equal((await box.tern(['alias', 'list'])).stdout, 'no aliases\n');
    assert.deepEqual(await aliases(), []);
  });

  test('alias add routes mail: the directory resolves the alias to its targets', async () => {
    const r = await box.tern(['alias', 'add', 'Postmaster@example.test', 'alice@example.test']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'added alias postmaster@example.test -> alice@example.test\n');
    assert.equal((await box.tern(['alias', 'add', 'postmaster@example.test', 'Ops@Remote.example'])).code, 0);
    assert.equal((await box.tern(['alias', 'add', '@example.test', 'alice@example.test'])).code, 0);
    const directory = await openDirectory(box.config());
    try {
      assert.deepEqual(await directory.resolve('postmaster@example.test'), {
        kind: 'local',
        users: ['alice@example.test'],
        forward: ['ops@remote.example'],
      });
      assert.equal((await directory.resolve('anything@example.test')).kind, 'local');
    } finally {
      await directory.close();
    }
    assert.deepEqual(await aliases(), [
      { alias: '@example.test', target: 'alice@example.test' },
      { alias: 'postmaster@example.test', target: 'alice@example.test' },
      { alias: 'postmaster@example.test', target: 'ops@remote.example' },
    ]);
    const text = await box.tern(['alias', 'list']);
    assert.match(text.stdout, /^@example\.test {12}-> alice@example\.test\n/);
  });

  test('a duplicate, a non-local alias and an invalid target are refused', async () => {
    const dup = await box.tern(['alias', 'add', 'postmaster@example.test', 'ALICE@example.test']);
    assert.equal(dup.code, 1);
    assert.equal(dup.stderr, 'tern: alias postmaster@example.test -> alice@example.test already exists\n');
    const remote = await box.tern(['alias', 'add', 'info@example.org', 'alice@example.test']);
    assert.equal(remote.code, 1);
    assert.match(remote.stderr, /^tern: example\.org is not a local domain/);
    const badTarget = await box.tern(['alias', 'add', 'info@example.test', 'nobody']);
    assert.equal(badTarget.code, 1);
    assert.equal(badTarget.stderr, "tern: 'nobody' is not a valid target address (expected local@domain)\n");
    assert.equal((await aliases()).length, 3);
  });

  test('alias del removes one target, then the whole alias; a missing alias is an error', async () => {
    const one = await box.tern(['alias', 'del', 'postmaster@example.test', 'ops@remote.example']);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, 'deleted alias postmaster@example.test -> ops@remote.example\n');
    assert.equal((await box.tern(['alias', 'del', '@example.test'])).code, 0);
    assert.deepEqual(await aliases(), [{ alias: 'postmaster@example.test', target: 'alice@example.test' }]);
    const all = await box.tern(['alias', 'del', 'postmaster@example.test']);
    assert.equal(all.code, 0);
    assert.deepEqual(await aliases(), []);
    const missing = await box.tern(['alias', 'del', 'postmaster@example.test']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'tern: no such alias: postmaster@example.test\n');
  });
});
