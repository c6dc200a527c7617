// `--json` on the commands that change users and aliases (issue 11: every command that prints data
// takes --json). Kept apart from user.test.ts and alias.test.ts, which test what the commands do.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

describe('--json on user and alias changes', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
  });
  after(() => box.remove());

  const json = async (args: string[], stdin?: string): Promise<unknown> => {
    const r = await box.tern([...args, '--json'], stdin === undefined ? {} : { stdin });
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  test('user add, passwd and del', async () => {
    assert.deepEqual(await json(['user', 'add', 'Jürgen@example.test', '--password-stdin'], 'pw\n'), {
      address: 'jürgen@example.test',
      hasPassword: true,
    });
    assert.deepEqual(await json(['user', 'add', '日本@example.test']), {
      address: '日本@example.test',
      hasPassword: false,
    });
    assert.deepEqual(await json(['user', 'passwd', '日本@example.test', '--password-stdin'], 'pw\n'), {
      address: '日本@example.test',
    });
    assert.deepEqual(await json(['user', 'del', '日本@example.test']), {
      address: '日本@example.test',
      messagesKept: 0,
      aliases: [],
    });
  });

  test('alias add and del', async () => {
    assert.deepEqual(await json(['alias', 'add', 'info@example.test', 'jürgen@example.test']), {
      alias: 'info@example.test',
      target: 'jürgen@example.test',
    });
    assert.deepEqual(await json(['alias', 'del', 'info@example.test']), {
      alias: 'info@example.test',
      target: null,
    });
  });

  test('user cert and user sendas changes', async () => {
    const fingerprint = 'AB'.repeat(32);
    await json(['user', 'add', '日本@example.test']);
    assert.deepEqual(await json(['user', 'cert', '日本@example.test', '--fingerprint', fingerprint]), {
      address: '日本@example.test',
      fingerprint: fingerprint.toLowerCase(),
      removed: false,
    });
    assert.deepEqual(
      await json(['user', 'cert', '日本@example.test', '--delete', '--fingerprint', fingerprint]),
      { address: '日本@example.test', fingerprint: fingerprint.toLowerCase(), removed: true },
    );
    assert.deepEqual(await json(['user', 'sendas', '日本@example.test', 'add', 'jürgen@example.org']), {
      user: '日本@example.test',
      pattern: 'jürgen@example.org',
      removed: false,
    });
    assert.deepEqual(await json(['user', 'sendas', '日本@example.test', 'del', 'jürgen@example.org']), {
      user: '日本@example.test',
      pattern: 'jürgen@example.org',
      removed: true,
    });
    await json(['user', 'del', '日本@example.test']);
  });

  test('a failure with --json is still one line on stderr and exit 1, with nothing on stdout', async () => {
    const r = await box.tern(['user', 'del', 'nobody@example.test', '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'tern: no such user: nobody@example.test\n');
  });
});
