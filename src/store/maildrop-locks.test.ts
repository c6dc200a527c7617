import assert from 'node:assert/strict';
import { it } from 'node:test';
import { runMaildropLocksContract } from './maildrop-locks.contract.ts';
import { InProcessMaildropLocks } from './maildrop-locks.ts';

runMaildropLocksContract('in-process', () => Promise.resolve(new InProcessMaildropLocks()));

it('in-process locks hold nothing once every holder released', async () => {
  const locks = new InProcessMaildropLocks();
  const held = await Promise.all(['a@example.org', '日本@example.org'].map((u) => locks.acquire(u, 'INBOX')));
  assert.equal(locks.held, 2);
  for (const lock of held) await lock?.release();
  assert.equal(locks.held, 0);
});
