// The SieveScriptStore contract, run by every implementation: per-user scripts with UTF-8 names (NFC),
// owners without case, at most one active script that can be replaced and renamed but not deleted,
// refusals that change nothing, quotas on count and size, and two connections to one store that see each
// other's writes at once and can never together break a quota or the one-active rule.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SieveScriptNameError, type SieveScriptLimits, type SieveScriptStore } from './sieve-scripts.ts';

/** One fresh, empty store; connect() opens another connection to it (another session, another process). */
export interface SieveScriptBackend {
  connect(): Promise<SieveScriptStore>;
}

const CASES = [
  { owner: 'alice@example.org', name: 'vacation', other: 'spam filter' },
  { owner: 'jürgen@exämple.org', name: 'Ferien ü', other: 'Büro' },
  { owner: '日本@例え.jp', name: '日本', other: 'メール' },
] as const;

const SCRIPT =
  'require ["fileinto"];\r\nif header :contains "subject" "Grüße" {\r\n  fileinto "Ärger";\r\n}\r\n';

export function runSieveScriptStoreContract(
  name: string,
  fresh: (limits?: SieveScriptLimits) => Promise<SieveScriptBackend>,
): void {
  const open = async (limits?: SieveScriptLimits): Promise<SieveScriptStore> =>
    (await fresh(limits)).connect();

  void describe(`SieveScriptStore contract: ${name}`, () => {
    for (const c of CASES) {
      void it(`the life of a script: put, replace, activate, rename, deactivate, delete (${c.name})`, async () => {
        const store = await open();
        assert.deepEqual(await store.list(c.owner), []);
        assert.equal(await store.get(c.owner, c.name), null);
        assert.equal(await store.getActive(c.owner), null);

        assert.deepEqual(await store.put(c.owner, c.name, 'keep;'), { ok: true });
        assert.deepEqual(await store.put(c.owner, c.name, SCRIPT), { ok: true }, 'put replaces');
        assert.equal(await store.get(c.owner, c.name), SCRIPT, 'the text comes back byte for byte');
        assert.deepEqual(await store.list(c.owner), [{ name: c.name, active: false }]);

        assert.deepEqual(await store.setActive(c.owner, c.name), { ok: true });
        assert.deepEqual(await store.getActive(c.owner), { name: c.name, script: SCRIPT });
        assert.deepEqual(await store.delete(c.owner, c.name), { ok: false, refusal: 'active' });
        assert.deepEqual(await store.put(c.owner, c.name, 'stop;'), { ok: true });
        assert.deepEqual(
          await store.getActive(c.owner),
          { name: c.name, script: 'stop;' },
          'a replaced active script stays active',
        );

        assert.deepEqual(await store.rename(c.owner, c.name, c.other), { ok: true });
        assert.deepEqual(
          await store.getActive(c.owner),
          { name: c.other, script: 'stop;' },
          'renamed, still active',
        );
        assert.equal(await store.get(c.owner, c.name), null);

        assert.deepEqual(await store.setActive(c.owner, null), { ok: true });
        assert.equal(await store.getActive(c.owner), null);
        assert.deepEqual(await store.list(c.owner), [{ name: c.other, active: false }]);
        assert.deepEqual(await store.delete(c.owner, c.other), { ok: true });
        assert.deepEqual(await store.delete(c.owner, c.other), { ok: false, refusal: 'nonexistent' });
        assert.deepEqual(await store.list(c.owner), []);
        await store.close();
      });
    }

    void it('owners fold case; users are separate; names are NFC and case-sensitive', async () => {
      const store = await open();
      await store.put('Jürgen@Exämple.org', 'Ferien u\u0308', 'keep;');
      assert.equal(await store.get('jürgen@exämple.org', 'Ferien ü'), 'keep;');
      assert.deepEqual(await store.list('JÜRGEN@EXÄMPLE.ORG'), [{ name: 'Ferien ü', active: false }]);
      assert.equal(await store.get('jürgen@exämple.org', 'ferien ü'), null, 'names keep their case');
      assert.deepEqual(await store.list('alice@example.org'), []);
      await store.setActive('jürgen@exämple.org', 'Ferien ü');
      assert.equal(await store.getActive('alice@example.org'), null);
      await store.close();
    });

    void it('lists in name order with the active one marked', async () => {
      const store = await open();
      for (const n of ['b', '日本', 'A', 'Ferien ü', 'a']) await store.put('u@example.org', n, 'keep;');
      await store.setActive('u@example.org', 'Ferien ü');
      assert.deepEqual(await store.list('u@example.org'), [
        { name: 'A', active: false },
        { name: 'Ferien ü', active: true },
        { name: 'a', active: false },
        { name: 'b', active: false },
        { name: '日本', active: false },
      ]);
      await store.close();
    });

    void it('one active script: activating another deactivates the first; a refused change keeps it', async () => {
      const store = await open();
      await store.put('u@example.org', 'one', 'keep;');
      await store.put('u@example.org', 'two', 'discard;');
      await store.setActive('u@example.org', 'one');
      await store.setActive('u@example.org', 'two');
      assert.deepEqual(await store.list('u@example.org'), [
        { name: 'one', active: false },
        { name: 'two', active: true },
      ]);
      assert.deepEqual(await store.setActive('u@example.org', 'three'), {
        ok: false,
        refusal: 'nonexistent',
      });
      assert.deepEqual(await store.getActive('u@example.org'), { name: 'two', script: 'discard;' });
      assert.deepEqual(await store.setActive('u@example.org', 'two'), { ok: true }, 'again is fine');
      assert.deepEqual(await store.setActive('u@example.org', null), { ok: true });
      assert.deepEqual(await store.setActive('u@example.org', null), { ok: true }, 'nothing active is fine');
      await store.close();
    });

    void it('rename refuses a missing source and an existing target, itself included', async () => {
      const store = await open();
      await store.put('u@example.org', 'a', 'keep;');
      await store.put('u@example.org', 'b', 'discard;');
      assert.deepEqual(await store.rename('u@example.org', 'x', 'y'), { ok: false, refusal: 'nonexistent' });
      assert.deepEqual(await store.rename('u@example.org', 'a', 'b'), {
        ok: false,
        refusal: 'already-exists',
      });
      assert.deepEqual(await store.rename('u@example.org', 'a', 'a'), {
        ok: false,
        refusal: 'already-exists',
      });
      assert.equal(await store.get('u@example.org', 'b'), 'discard;', 'the target is untouched');
      await store.close();
    });

    void it('quotas: scripts per user and octets per script; replacing does not count; refusals store nothing', async () => {
      const store = await open({ maxScripts: 2, maxScriptBytes: 10 });
      const u = 'jürgen@exämple.org';
      assert.deepEqual(await store.put(u, 'a', 'keep;'), { ok: true });
      assert.deepEqual(await store.put(u, 'b', 'keep;'), { ok: true });
      assert.deepEqual(await store.put(u, 'c', 'keep;'), { ok: false, refusal: 'max-scripts' });
      assert.deepEqual(await store.haveSpace(u, 'c', 5), { ok: false, refusal: 'max-scripts' });
      assert.deepEqual(await store.haveSpace(u, 'a', 10), { ok: true });
      assert.deepEqual(await store.put(u, 'a', 'discard;'), { ok: true }, 'a replacement fits');
      // 'ü' is two octets in UTF-8: "üüüüüü" is 12 octets, over 10.
      assert.deepEqual(await store.put(u, 'a', 'üüüüüü'), { ok: false, refusal: 'max-size' });
      assert.deepEqual(await store.haveSpace(u, 'a', 11), { ok: false, refusal: 'max-size' });
      assert.equal(await store.get(u, 'a'), 'discard;');
      assert.equal(await store.get(u, 'c'), null);
      assert.deepEqual(
        await store.put('other@example.org', 'c', 'keep;'),
        { ok: true },
        'quotas are per user',
      );
      await store.close();
    });

    void it('invalid names are refused with SieveScriptNameError', async () => {
      const store = await open();
      for (const bad of ['', 'a\nb', 'a\u0000', 'a\u2028', 'x'.repeat(1025)])
        await assert.rejects(store.put('u@example.org', bad, 'keep;'), SieveScriptNameError);
      await assert.rejects(store.get('u@example.org', ''), SieveScriptNameError);
      assert.deepEqual(await store.list('u@example.org'), []);
      await store.close();
    });

    void it('two connections see each other at once', async () => {
      const backend = await fresh();
      const [one, two] = await Promise.all([backend.connect(), backend.connect()]);
      await one.put('日本@例え.jp', '日本', SCRIPT);
      assert.equal(await two.get('日本@例え.jp', '日本'), SCRIPT);
      await two.setActive('日本@例え.jp', '日本');
      assert.deepEqual(await one.getActive('日本@例え.jp'), { name: '日本', script: SCRIPT });
      assert.deepEqual(await one.delete('日本@例え.jp', '日本'), { ok: false, refusal: 'active' });
      await Promise.all([one.close(), two.close()]);
    });

    void it('vacation memory: one reply per sender and period, per handle, across connections', async () => {
      const backend = await fresh();
      const [one, two] = await Promise.all([backend.connect(), backend.connect()]);
      const u = 'jürgen@exämple.org';
      const day = 86_400_000;
      const t0 = Date.UTC(2026, 11, 1);
      assert.equal(await one.vacationDue(u, 'h1', 'Bob@Example.NET', t0, 7 * day), true);
      assert.equal(
        await two.vacationDue(u, 'h1', 'bob@example.net', t0 + day, 7 * day),
        false,
        'sender without case',
      );
      assert.equal(
        await one.vacationDue(u, 'h2', 'bob@example.net', t0 + day, 7 * day),
        true,
        'another handle',
      );
      assert.equal(await one.vacationDue('JÜRGEN@exämple.org', 'h1', '日本@例え.jp', t0, day), true);
      assert.equal(
        await two.vacationDue(u, 'h1', 'bob@example.net', t0 + 7 * day, 7 * day),
        true,
        'the period is over',
      );
      const racing = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 === 0 ? one : two).vacationDue(u, 'h3', 'c@x.test', t0, day),
        ),
      );
      assert.equal(racing.filter(Boolean).length, 1);
      await Promise.all([one.close(), two.close()]);
    });

    void it('racing writers on two connections: the quota and the one-active rule hold', async () => {
      const backend = await fresh({ maxScripts: 5, maxScriptBytes: 1000 });
      const [one, two] = await Promise.all([backend.connect(), backend.connect()]);
      const u = 'alice@example.org';
      const puts = await Promise.all(
        Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? one : two).put(u, `s${i}`, 'keep;')),
      );
      assert.equal(puts.filter((r) => r.ok).length, 5);
      const names = (await one.list(u)).map((e) => e.name);
      assert.equal(names.length, 5);
      await Promise.all(names.map((n, i) => (i % 2 === 0 ? one : two).setActive(u, n)));
      assert.equal((await two.list(u)).filter((e) => e.active).length, 1);
      await Promise.all([one.close(), two.close()]);
    });
  });
}
