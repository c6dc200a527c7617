// The Directory contract: what every implementation must do, as one node:test suite each
// implementation's test file runs with its own harness. Covers users and credentials, address
// normalization, alias expansion (several targets, chains, loops, depth), catch-alls, local vs remote
// domains, errors with stable codes, and persistence across a restart.
// The harness's local domains are always CONTRACT_LOCAL_DOMAINS.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Directory } from './directory.ts';

export interface DirectoryHarness {
  readonly directory: Directory;
  /** Close the current instance and open a new one on the same storage, as after a restart. */
  reopen(): Promise<Directory>;
  /** Close whatever is open and remove the storage. */
  cleanup(): Promise<void>;
}

export const CONTRACT_LOCAL_DOMAINS: readonly string[] = ['example.org', 'Example.NET'];
/** resolve() must follow at least this many alias levels, and stop somewhere below 100. */
export const CONTRACT_MIN_ALIAS_DEPTH = 5;

/** Matches errors with a `code` like DirectoryError's ('exists' | 'not-found' | 'invalid'). */
function code(expected: string): (err: unknown) => boolean {
  return (err) => err instanceof Error && (err as Error & { code?: unknown }).code === expected;
}

export function runDirectoryContract(name: string, make: () => Promise<DirectoryHarness>): void {
  void describe(`Directory contract: ${name}`, () => {
    const withHarness = (title: string, fn: (h: DirectoryHarness) => Promise<void>): void => {
      void it(title, async () => {
        const h = await make();
        try {
          await fn(h);
        } finally {
          await h.cleanup();
        }
      });
    };

    withHarness('local domains are matched case-insensitively', async (h) => {
      const d = h.directory;
      assert.equal(d.isLocalDomain('example.org'), true);
      assert.equal(d.isLocalDomain('EXAMPLE.ORG'), true);
      assert.equal(d.isLocalDomain('example.net'), true);
      assert.equal(d.isLocalDomain('example.com'), false);
      assert.equal(d.isLocalDomain('sub.example.org'), false);
      assert.deepEqual(await d.resolve('someone@example.com'), { kind: 'remote' });
      return Promise.resolve();
    });

    withHarness('users: add, list, resolve (case-insensitively), duplicates refused', async (h) => {
      const d = h.directory;
      await d.addUser('Alice@Example.ORG', null);
      await d.addUser('bob@example.net', '$scrypt$hash');
      await assert.rejects(d.addUser('ALICE@example.org', null), code('exists'));
      const users = await d.listUsers();
      assert.deepEqual(
        users.map((u) => [u.address, u.hasPassword]),
        [
          ['alice@example.org', false],
          ['bob@example.net', true],
        ],
      );
      assert.ok(users.every((u) => Number.isFinite(u.createdMs) && u.createdMs > 0));
      assert.deepEqual(await d.resolve('ALICE@example.ORG'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
      assert.deepEqual(await d.resolve('nobody@example.org'), { kind: 'unknown' });
    });

    withHarness('bad addresses and non-local users are refused as invalid', async (h) => {
      const d = h.directory;
      for (const bad of ['', 'alice', '@example.org', 'alice@', 'a b@example.org', 'alice@exa mple.org']) {
        await assert.rejects(d.addUser(bad, null), code('invalid'), bad);
      }
      await assert.rejects(d.addUser('alice@example.com', null), code('invalid'));
      await assert.rejects(d.addAlias('x@example.com', 'alice@example.org'), code('invalid'));
      await assert.rejects(d.addAlias('x@example.org', 'not an address'), code('invalid'));
      assert.deepEqual(await d.listUsers(), []);
      assert.deepEqual(await d.resolve('not an address'), { kind: 'unknown' });
    });

    withHarness('passwords: get, set, missing users', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      assert.equal(await d.getPasswordHash('alice@example.org'), null);
      await d.setPasswordHash('Alice@example.org', '$scrypt$one');
      assert.equal(await d.getPasswordHash('alice@EXAMPLE.org'), '$scrypt$one');
      assert.equal((await d.listUsers())[0]?.hasPassword, true);
      await assert.rejects(d.setPasswordHash('ghost@example.org', '$scrypt$x'), code('not-found'));
      assert.equal(await d.getPasswordHash('ghost@example.org'), null);
    });

    withHarness('deleteUser reports whether there was one', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      assert.equal(await d.deleteUser('ALICE@example.org'), true);
      assert.equal(await d.deleteUser('alice@example.org'), false);
      assert.deepEqual(await d.resolve('alice@example.org'), { kind: 'unknown' });
      await d.addUser('alice@example.org', null);
    });

    withHarness('an alias with several targets: local users and remote forwards', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addUser('bob@example.net', null);
      await d.addAlias('Team@example.org', 'alice@example.org');
      await d.addAlias('team@example.org', 'BOB@example.net');
      await d.addAlias('team@example.org', 'Carol@Elsewhere.example');
      await assert.rejects(d.addAlias('team@example.org', 'alice@EXAMPLE.org'), code('exists'));
      const r = await d.resolve('TEAM@example.org');
      assert.equal(r.kind, 'local');
      if (r.kind !== 'local') return;
      assert.deepEqual([...r.users].sort(), ['alice@example.org', 'bob@example.net']);
      assert.deepEqual(r.forward, ['carol@elsewhere.example']);
      assert.deepEqual(await d.resolve('fwd@example.org'), { kind: 'unknown' });
      await d.addAlias('fwd@example.org', 'dave@elsewhere.example');
      assert.deepEqual(await d.resolve('fwd@example.org'), {
        kind: 'local',
        users: [],
        forward: ['dave@elsewhere.example'],
      });
    });

    withHarness('aliases expand through chains and across local domains', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addAlias('a@example.net', 'b@example.org');
      await d.addAlias('b@example.org', 'c@example.org');
      await d.addAlias('c@example.org', 'alice@example.org');
      assert.deepEqual(await d.resolve('a@example.net'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
    });

    withHarness('a user wins over an alias of the same name', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addAlias('alice@example.org', 'elsewhere@remote.example');
      assert.deepEqual(await d.resolve('alice@example.org'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
    });

    withHarness('loops end: a pure loop is unknown, a loop with an exit delivers once', async (h) => {
      const d = h.directory;
      await d.addAlias('x@example.org', 'y@example.org');
      await d.addAlias('y@example.org', 'x@example.org');
      assert.deepEqual(await d.resolve('x@example.org'), { kind: 'unknown' });
      await d.addUser('alice@example.org', null);
      await d.addAlias('y@example.org', 'alice@example.org');
      await d.addAlias('x@example.org', 'alice@example.org');
      assert.deepEqual(await d.resolve('x@example.org'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
      await assert.rejects(d.addAlias('z@example.org', 'Z@example.org'), code('invalid'));
    });

    withHarness('alias chains are followed to a depth limit', async (h) => {
      const d = h.directory;
      await d.addUser('end@example.org', null);
      const chain = async (prefix: string, length: number): Promise<string> => {
        for (let i = 0; i < length; i++) {
          await d.addAlias(
            `${prefix}${i}@example.org`,
            i + 1 === length ? 'end@example.org' : `${prefix}${i + 1}@example.org`,
          );
        }
        return `${prefix}0@example.org`;
      };
      const short = await chain('s', CONTRACT_MIN_ALIAS_DEPTH);
      assert.deepEqual(await d.resolve(short), { kind: 'local', users: ['end@example.org'], forward: [] });
      const long = await chain('l', 100);
      assert.deepEqual(await d.resolve(long), { kind: 'unknown' });
    });

    withHarness('a catch-all applies only when nothing else matches, and only in its domain', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addUser('postmaster@example.org', null);
      await d.addAlias('sales@example.org', 'alice@example.org');
      await d.addAlias('@Example.ORG', 'postmaster@example.org');
      const pm = { kind: 'local', users: ['postmaster@example.org'], forward: [] };
      assert.deepEqual(await d.resolve('anything@example.org'), pm);
      assert.deepEqual(await d.resolve('alice@example.org'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
      assert.deepEqual(await d.resolve('sales@example.org'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
      assert.deepEqual(await d.resolve('anything@example.net'), { kind: 'unknown' });
      // An alias whose target does not exist falls to the catch-all of the target's domain.
      await d.addAlias('old@example.net', 'gone@example.org');
      assert.deepEqual(await d.resolve('old@example.net'), pm);
      // A catch-all pointing into its own domain at an unknown address does not loop.
      await d.addAlias('@example.net', 'nobody@example.net');
      assert.deepEqual(await d.resolve('x@example.net'), { kind: 'unknown' });
      await assert.rejects(d.addAlias('@example.com', 'alice@example.org'), code('invalid'));
    });

    withHarness('listAliases and deleteAlias (one target or all)', async (h) => {
      const d = h.directory;
      await d.addAlias('team@example.org', 'a@remote.example');
      await d.addAlias('team@example.org', 'b@remote.example');
      await d.addAlias('@example.org', 'a@remote.example');
      assert.deepEqual(await d.listAliases(), [
        { alias: '@example.org', target: 'a@remote.example' },
        { alias: 'team@example.org', target: 'a@remote.example' },
        { alias: 'team@example.org', target: 'b@remote.example' },
      ]);
      assert.equal(await d.deleteAlias('TEAM@example.org', 'A@remote.example'), true);
      assert.equal(await d.deleteAlias('team@example.org', 'a@remote.example'), false);
      assert.equal(await d.deleteAlias('@EXAMPLE.org'), true);
      assert.equal(await d.deleteAlias('team@example.org'), true);
      assert.equal(await d.deleteAlias('team@example.org'), false);
      assert.deepEqual(await d.listAliases(), []);
    });

    withHarness('everything survives a restart', async (h) => {
      await h.directory.addUser('alice@example.org', '$scrypt$x');
      await h.directory.addAlias('team@example.org', 'alice@example.org');
      const d = await h.reopen();
      assert.equal(await d.getPasswordHash('alice@example.org'), '$scrypt$x');
      assert.deepEqual(await d.resolve('team@example.org'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
    });
  });
}
