// The MaildropLocks contract, run by every implementation (in-process now, a shared one for several
// nodes later): one holder per maildrop, maildrops named as the mailbox store names them (owner and
// INBOX without case, UTF-8 owners), release frees exactly once, racing acquires get one winner.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MaildropLocks } from './maildrop-locks.ts';

const OWNERS = ['alice@example.org', 'jürgen@exämple.org', '日本@例え.jp'] as const;

export function runMaildropLocksContract(name: string, make: () => Promise<MaildropLocks>): void {
  void describe(`MaildropLocks contract: ${name}`, () => {
    for (const owner of OWNERS) {
      void it(`one holder per maildrop, freed by release (${owner})`, async () => {
        const locks = await make();
        const first = await locks.acquire(owner, 'INBOX');
        assert.ok(first !== null);
        assert.equal(await locks.acquire(owner, 'INBOX'), null);
        assert.equal(await locks.acquire(owner.toUpperCase(), 'inbox'), null, 'owner and INBOX fold case');
        const other = await locks.acquire(owner, 'Archive');
        assert.ok(other !== null, 'another mailbox of the same owner is separate');
        const bob = await locks.acquire('bob@example.org', 'INBOX');
        assert.ok(bob !== null, "another owner's INBOX is separate");
        await first.release();
        const second = await locks.acquire(owner, 'INBOX');
        assert.ok(second !== null, 'free again after release');
        await first.release();
        assert.equal(await locks.acquire(owner, 'INBOX'), null, "a stale handle's release frees nothing");
        await Promise.all([second.release(), other.release(), bob.release()]);
      });
    }

    void it('racing acquires get exactly one lock', async () => {
      const locks = await make();
      const got = await Promise.all(
        Array.from({ length: 20 }, () => locks.acquire('jürgen@example.org', 'INBOX')),
      );
      const winners = got.filter((l) => l !== null);
      assert.equal(winners.length, 1);
      await winners[0]!.release();
      assert.ok(await locks.acquire('jürgen@example.org', 'INBOX'));
    });
  });
}
