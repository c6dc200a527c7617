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

describe('tern alias: loops, missing targets, aliases of users', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    for (const u of ['carol@example.test', 'dave@example.test', 'jürgen@example.test', '日本@example.test']) {
      assert.equal((await box.tern(['user', 'add', u])).code, 0);
    }
  });
  after(() => box.remove());

  test('an alias that would close a loop is refused with the loop named, exit 1', async () => {
    assert.equal((await box.tern(['alias', 'add', 'a@example.test', 'b@example.test'])).code, 0);
    assert.equal((await box.tern(['alias', 'add', 'b@example.test', 'c@localhost'])).code, 0);
    const loop = await box.tern(['alias', 'add', 'C@localhost', 'A@example.test']);
    assert.equal(loop.code, 1);
    assert.equal(loop.stdout, '');
    assert.equal(
      loop.stderr,
      'tern: alias loop: c@localhost -> a@example.test -> b@example.test -> c@localhost\n',
    );
    assert.equal((await box.tern(['alias', 'add', 'ü1@example.test', 'ü2@example.test'])).code, 0);
    const utf8 = await box.tern(['alias', 'add', 'ü2@example.test', 'ü1@example.test']);
    assert.equal(utf8.code, 1);
    assert.equal(utf8.stderr, 'tern: alias loop: ü2@example.test -> ü1@example.test -> ü2@example.test\n');
    const self = await box.tern(['alias', 'add', 'x@example.test', 'X@example.test']);
    assert.equal(self.code, 1);
    assert.match(self.stderr, /^tern: alias x@example\.test cannot point at itself/);
    assert.deepEqual(
      (await box.tern(['alias', 'list'])).stdout.split('\n').filter((l) => /c@localhost|ü2@|x@/.test(l)),
      ['b@example.test   -> c@localhost', 'ü1@example.test  -> ü2@example.test'],
    );
  });

  test('a local target that is no user and no alias: added, with a warning on stderr', async () => {
    for (const [alias, target] of [
      ['team@example.test', 'ghost@example.test'],
      ['チーム@example.test', '幽霊@example.test'],
    ] as const) {
      const r = await box.tern(['alias', 'add', alias, target]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `added alias ${alias} -> ${target}\n`);
      assert.equal(
        r.stderr,
        `tern: warning: ${target} is no user and no alias: mail to ${alias} cannot be delivered to it ` +
          `(add it with: tern user add ${target})\n`,
      );
    }
    // A user, an alias or a remote address is a real target: no warning.
    for (const target of ['dave@example.test', 'a@example.test', 'someone@remote.example']) {
      const r = await box.tern(['alias', 'add', 'team@example.test', target]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '', target);
    }
  });

  test("an alias of a user's own address takes its mail; listing the user keeps a copy", async () => {
    for (const [carol, dave] of [
      ['carol@example.test', 'dave@example.test'],
      ['jürgen@example.test', '日本@example.test'],
    ] as const) {
      const r = await box.tern(['alias', 'add', carol, dave]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `added alias ${carol} -> ${dave}\n`);
      assert.equal(
        r.stderr,
        `tern: warning: ${carol} is a user: its mail now goes to the alias's targets only ` +
          `(to keep a copy: tern alias add ${carol} ${carol})\n`,
      );
      const directory = await openDirectory(box.config());
      try {
        assert.deepEqual(await directory.resolve(carol), { kind: 'local', users: [dave], forward: [] });
      } finally {
        await directory.close();
      }
      const keep = await box.tern(['alias', 'add', carol, carol]);
      assert.equal(keep.code, 0, keep.stderr);
      assert.equal(keep.stdout, `added alias ${carol} -> ${carol}\n`);
      assert.equal(keep.stderr, '');
      const reopened = await openDirectory(box.config());
      try {
        const r2 = await reopened.resolve(carol);
        assert.ok(r2.kind === 'local');
        assert.deepEqual([...r2.users].sort(), [carol, dave].sort());
      } finally {
        await reopened.close();
      }
    }
  });
});
