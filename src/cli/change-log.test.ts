import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nullLogger } from '../core/ports.ts';
import { openQueue } from '../main.ts';
import { createSandbox } from './test-harness.ts';

test('directory changes made by the CLI are in the change log: what changed, never a credential', async () => {
  const box = await createSandbox();
  try {
    const run = async (args: string[], stdin?: string): Promise<void> => {
      const r = await box.tern(args, stdin === undefined ? {} : { stdin });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    };
    await run(['user', 'add', 'jürgen@example.test', '--password-stdin'], 'secret-pw\n');
    await run(['user', 'add', '日本@example.test']);
    await run(['user', 'passwd', '日本@example.test', '--password-stdin'], 'other-pw\n');
    await run(['alias', 'add', 'info@example.test', 'jürgen@example.test']);
    await run(['user', 'sendas', 'jürgen@example.test', 'add', '@example.org']);
    await run(['user', 'policy', 'jürgen@example.test', '--max-messages-per-hour', '5']);
    await run(['user', 'policy', 'jürgen@example.test']);
    await run(['user', 'quota', 'jürgen@example.test', '--storage', '2G']);
    await run(['user', 'quota', 'jürgen@example.test']);
    await run(['user', 'list']);
    await run(['alias', 'del', 'info@example.test']);
    await run(['user', 'del', '日本@example.test']);
    // A refused change records nothing.
    assert.equal((await box.tern(['user', 'del', 'nobody@example.test'])).code, 1);

    const queue = await openQueue(box.config(), { nowMs: () => Date.now() }, nullLogger);
    const changes = await queue.changesSince(0, 100).finally(() => queue.close());
    assert.deepEqual(
      changes.map((c) => [c.event, c.detail]),
      [
        ['user.add', { address: 'jürgen@example.test', password: true }],
        ['user.add', { address: '日本@example.test', password: false }],
        ['user.passwd', { address: '日本@example.test' }],
        ['alias.add', { alias: 'info@example.test', target: 'jürgen@example.test' }],
        ['user.sendas.add', { address: 'jürgen@example.test', pattern: '@example.org' }],
        ['user.policy', { address: 'jürgen@example.test', maxMessagesPerHour: 5 }],
        ['user.quota', { address: 'jürgen@example.test', storageBytes: 2 * 1024 ** 3, messages: null }],
        ['alias.del', { alias: 'info@example.test', target: null }],
        ['user.del', { address: '日本@example.test' }],
      ],
    );
    assert.doesNotMatch(JSON.stringify(changes), /scrypt|pw|v=|\$/);
  } finally {
    await box.remove();
  }
});
