import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifyPassword } from '../../directory/password.ts';
import { openDirectory } from '../../main.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

interface UserRow {
  address: string;
  hasPassword: boolean;
  created: string;
}

describe('tern user', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
  });
  after(() => box.remove());

  async function users(): Promise<UserRow[]> {
    const r = await box.tern(['user', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as UserRow[];
  }

  async function storedHash(address: string): Promise<string | null> {
    const directory = await openDirectory(box.config());
    try {
      return await directory.getPasswordHash(address);
    } finally {
      await directory.close();
    }
  }

  test('user list on an empty directory: "no users", and [] as JSON', async () => {
    assert.equal((await box.tern(['user', 'list'])).stdout, 'no users\n');
    assert.deepEqual(await users(), []);
  });

  test('user add --password-stdin stores a hash of the first line of stdin', async () => {
    const r = await box.tern(['user', 'add', 'Alice@Example.TEST', '--password-stdin'], {
      stdin: 'open sesame\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'added user alice@example.test\n');
    const hash = await storedHash('alice@example.test');
    assert.ok(hash !== null && !hash.includes('open sesame'));
    assert.equal(await verifyPassword('open sesame', hash), true);
    assert.equal(await verifyPassword('open sesame\n', hash), false);
    const [row] = await users();
    assert.equal(row?.address, 'alice@example.test');
    assert.equal(row?.hasPassword, true);
    assert.ok(Math.abs(Date.parse(row.created) - Date.now()) < 60_000, row.created);
  });

  test('user add without --password-stdin on a pipe adds a user without a password', async () => {
    const r = await box.tern(['user', 'add', 'bob@localhost'], { stdin: 'ignored\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^added user bob@localhost \(no password: cannot log in\)\n$/);
    assert.equal(await storedHash('bob@localhost'), null);
    assert.deepEqual(
      (await users()).map((u) => [u.address, u.hasPassword]),
      [
        ['alice@example.test', true],
        ['bob@localhost', false],
      ],
    );
  });

  test('adding an existing user fails with a message and changes nothing', async () => {
    const before = await storedHash('alice@example.test');
    const r = await box.tern(['user', 'add', 'ALICE@example.test', '--password-stdin'], { stdin: 'other\n' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tern: user alice@example.test already exists\n');
    assert.equal(r.stdout, '');
    assert.equal(await storedHash('alice@example.test'), before);
  });

  test('users must be in a local domain and have a valid address', async () => {
    const remote = await box.tern(['user', 'add', 'carol@example.org']);
    assert.equal(remote.code, 1);
    assert.equal(
      remote.stderr,
      'tern: example.org is not a local domain (local domains: example.test, localhost); ' +
        'add it to local_domains in the config\n',
    );
    const bad = await box.tern(['user', 'add', 'not-an-address']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "tern: 'not-an-address' is not a valid address (expected local@domain)\n");
    assert.equal((await users()).length, 2);
  });

  test('an empty password on stdin is refused', async () => {
    const r = await box.tern(['user', 'add', 'dave@example.test', '--password-stdin'], { stdin: '\n' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tern: empty password on standard input\n');
    assert.equal((await users()).length, 2);
  });

  test('user passwd replaces the password; on a pipe it needs --password-stdin', async () => {
    const noFlag = await box.tern(['user', 'passwd', 'bob@localhost'], { stdin: 'x\n' });
    assert.equal(noFlag.code, 1);
    assert.match(noFlag.stderr, /--password-stdin/);
    const r = await box.tern(['user', 'passwd', 'bob@localhost', '--password-stdin'], {
      stdin: 'new pass\r\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'password set for bob@localhost\n');
    assert.equal(await verifyPassword('new pass', (await storedHash('bob@localhost'))!), true);
    const ghost = await box.tern(['user', 'passwd', 'ghost@localhost', '--password-stdin'], { stdin: 'x\n' });
    assert.equal(ghost.code, 1);
    assert.equal(ghost.stderr, 'tern: no such user: ghost@localhost\n');
  });

  test('user list text output: one aligned line per user', async () => {
    const r = await box.tern(['user', 'list']);
    assert.equal(r.code, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^alice@example\.test {2}password {2}\d{4}-/);
    assert.match(lines[1]!, /^bob@localhost {7}password {2}\d{4}-/);
  });

  test('user del removes the user; deleting again is an error', async () => {
    const r = await box.tern(['user', 'del', 'bob@LOCALHOST']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'deleted user bob@localhost\n');
    assert.deepEqual(
      (await users()).map((u) => u.address),
      ['alice@example.test'],
    );
    const again = await box.tern(['user', 'del', 'bob@localhost']);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'tern: no such user: bob@localhost\n');
  });
});
