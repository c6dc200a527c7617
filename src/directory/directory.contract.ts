// The Directory contract: what every implementation must do, as one node:test suite each
// implementation's test file runs with its own harness. Covers users and credentials, address
// normalization, alias expansion (several targets, chains, loops, depth), catch-alls, local vs remote
// domains, errors with stable codes, persistence across a restart; SCRAM credentials, certificate
// mappings (fingerprint forms), sender ownership (aliases, chains, send-as grants), per-user policy,
// quota limits (the default, overrides, unlimited, back to the default), and that deleting a user takes
// all of that with it.
// The harness's local domains are always CONTRACT_LOCAL_DOMAINS.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Directory, QuotaLimits, Resolution } from './directory.ts';
import { DEFAULT_USER_POLICY } from './directory.ts';

export interface DirectoryHarness {
  readonly directory: Directory;
  /** Close the current instance and open a new one on the same storage, as after a restart. */
  reopen(): Promise<Directory>;
  /** Close whatever is open and remove the storage. */
  cleanup(): Promise<void>;
  /**
   * Store an alias without addAlias's checks, as an older version (or two racing writers) could have
   * left it: a loop. Resolution must stay safe with whatever is stored.
   */
  storeAliasUnchecked(alias: string, target: string): Promise<void>;
}

export const CONTRACT_LOCAL_DOMAINS: readonly string[] = ['example.org', 'Example.NET'];
/** The configured postmaster (queue.postmaster) every harness opens its directory with. */
export const CONTRACT_POSTMASTER = 'postmaster@example.org';
/** The default quota (the config's [limits] mailbox_quota_*) every harness opens its directory with. */
export const CONTRACT_DEFAULT_QUOTA: QuotaLimits = { storageBytes: 1_000_000, messages: null };
/** resolve() must follow at least this many alias levels, and stop somewhere below 100. */
export const CONTRACT_MIN_ALIAS_DEPTH = 5;

/** One fingerprint in the three forms an operator may type. */
const FP = 'ab'.repeat(16) + '01'.repeat(16);
const FP_COLONS = FP.toUpperCase().match(/../g)!.join(':');
const FP_OTHER = 'cd'.repeat(32);

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

    withHarness(
      'an alias named like a user wins (Postfix virtual): the user keeps mail only when listed',
      async (h) => {
        const d = h.directory;
        const local = (users: string[], forward: string[] = []): Resolution => ({
          kind: 'local',
          users,
          forward,
        });
        const sorted = async (address: string): Promise<Resolution> => {
          const r = await d.resolve(address);
          return r.kind === 'local' ? { ...r, users: [...r.users].sort() } : r;
        };
        for (const [carol, dave] of [
          ['carol@example.org', 'dave@example.org'],
          ['jürgen@example.org', '日本@example.org'],
        ] as const) {
          await d.addUser(carol, null);
          await d.addUser(dave, null);
          await d.addAlias(carol.toUpperCase(), dave);
          assert.deepEqual(await d.resolve(carol), local([dave]), carol);
          // Through a chain too: every resolution applies the alias, not only the first hop.
          await d.addAlias(`team-${carol}`, carol);
          assert.deepEqual(await d.resolve(`team-${carol}`), local([dave]));
          // Listing the user's own name keeps a copy in its mailbox, as in Postfix.
          await d.addAlias(carol, carol);
          assert.deepEqual(await sorted(carol), local([carol, dave].sort()), carol);
          assert.deepEqual(await sorted(`team-${carol}`), local([carol, dave].sort()));
          // Removing the alias gives the user its mail back.
          assert.equal(await d.deleteAlias(carol), true);
          assert.deepEqual(await d.resolve(carol), local([carol]));
        }
        // An alias of a user that forwards only: nothing stays here.
        await d.addUser('alice@example.org', null);
        await d.addAlias('alice@example.org', 'elsewhere@remote.example');
        assert.deepEqual(await d.resolve('alice@example.org'), local([], ['elsewhere@remote.example']));
        // A user reached by two paths gets no copy through the path that is not its own alias.
        await d.addUser('erin@example.org', null);
        await d.addUser('frank@example.org', null);
        await d.addAlias('erin@example.org', 'frank@example.org');
        await d.addAlias('list@example.org', 'erin@example.org');
        await d.addAlias('list@example.org', 'sub@example.org');
        await d.addAlias('sub@example.org', 'erin@example.org');
        assert.deepEqual(await d.resolve('list@example.org'), local(['frank@example.org']));
      },
    );

    withHarness('alias loops are refused; only a user may list itself', async (h) => {
      const d = h.directory;
      await d.addAlias('x@example.org', 'y@example.org');
      const loop = (err: unknown): boolean =>
        code('invalid')(err) &&
        /loop/.test((err as Error).message) &&
        (err as Error).message.includes('x@example.org');
      await assert.rejects(d.addAlias('Y@example.org', 'x@example.org'), loop);
      await d.addAlias('y@example.org', 'z@example.net');
      await assert.rejects(d.addAlias('z@example.net', 'X@EXAMPLE.org'), loop);
      // Through users too: an alias of a user's name is followed, so carol -> dave -> carol is a loop.
      await d.addUser('carol@example.org', null);
      await d.addUser('dave@example.org', null);
      await d.addAlias('carol@example.org', 'dave@example.org');
      await assert.rejects(d.addAlias('dave@example.org', 'carol@example.org'), code('invalid'));
      await d.addAlias('日本@example.org', 'jürgen@example.org');
      await assert.rejects(d.addAlias('jürgen@example.org', '日本@example.org'), code('invalid'));
      // A self-reference is a loop unless the name is a user's, where it keeps a copy.
      await assert.rejects(d.addAlias('z@example.org', 'Z@example.org'), code('invalid'));
      await d.addAlias('carol@example.org', 'CAROL@example.org');
      await d.addUser('jürgen@example.org', null);
      await d.addAlias('jürgen@example.org', 'jürgen@example.org');
      assert.deepEqual(
        (await d.listAliases()).map((a) => `${a.alias} -> ${a.target}`),
        [
          'carol@example.org -> dave@example.org',
          'carol@example.org -> carol@example.org',
          'jürgen@example.org -> jürgen@example.org',
          'x@example.org -> y@example.org',
          'y@example.org -> z@example.net',
          '日本@example.org -> jürgen@example.org',
        ],
      );
    });

    withHarness('postmaster@ every local domain resolves to the configured postmaster', async (h) => {
      const d = h.directory;
      assert.deepEqual(await d.resolve('postmaster@example.net'), { kind: 'unknown' });
      await d.addUser(CONTRACT_POSTMASTER, null);
      const pm: Resolution = { kind: 'local', users: [CONTRACT_POSTMASTER], forward: [] };
      for (const address of [
        'postmaster@example.org',
        'POSTMASTER@example.org',
        'postmaster@example.net',
        'PostMaster@EXAMPLE.NET.',
      ]) {
        assert.deepEqual(await d.resolve(address), pm, address);
      }
      // Only the local part postmaster, and only in local domains.
      assert.deepEqual(await d.resolve('postmasters@example.net'), { kind: 'unknown' });
      assert.deepEqual(await d.resolve('postmaster@example.com'), { kind: 'remote' });
      // It comes before the domain's catch-all...
      await d.addUser('bob@example.net', null);
      await d.addAlias('@example.net', 'bob@example.net');
      assert.deepEqual(await d.resolve('postmaster@example.net'), pm);
      // ...and after what the operator set for that very address.
      await d.addUser('日本@example.net', null);
      await d.addAlias('postmaster@example.net', '日本@example.net');
      assert.deepEqual(await d.resolve('postmaster@example.net'), {
        kind: 'local',
        users: ['日本@example.net'],
        forward: [],
      });
      // The postmaster may itself be an alias.
      await d.deleteUser(CONTRACT_POSTMASTER);
      await d.addAlias(CONTRACT_POSTMASTER, 'ops@remote.example');
      assert.deepEqual(await d.resolve('Postmaster@example.org'), {
        kind: 'local',
        users: [],
        forward: ['ops@remote.example'],
      });
    });

    withHarness('stored loops end: a pure loop is unknown, a loop with an exit delivers once', async (h) => {
      const d = h.directory;
      await h.storeAliasUnchecked('x@example.org', 'y@example.org');
      await h.storeAliasUnchecked('y@example.org', 'x@example.org');
      assert.deepEqual(await d.resolve('x@example.org'), { kind: 'unknown' });
      await h.storeAliasUnchecked('z@example.org', 'z@example.org');
      assert.deepEqual(await d.resolve('z@example.org'), { kind: 'unknown' });
      await d.addUser('alice@example.org', null);
      await d.addAlias('y@example.org', 'alice@example.org');
      await d.addAlias('x@example.org', 'alice@example.org');
      assert.deepEqual(await d.resolve('x@example.org'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
      // Two users aliased at each other: each gets its own mail back, once.
      await d.addUser('carol@example.org', null);
      await d.addUser('dave@example.org', null);
      await h.storeAliasUnchecked('carol@example.org', 'dave@example.org');
      await h.storeAliasUnchecked('dave@example.org', 'carol@example.org');
      assert.deepEqual(await d.resolve('carol@example.org'), {
        kind: 'local',
        users: ['carol@example.org'],
        forward: [],
      });
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
      await h.directory.addUser('alice@example.org', '$scrypt$x', 'SCRAM-SHA-256$4096:c2FsdA==$a:b');
      await h.directory.addAlias('team@example.org', 'alice@example.org');
      await h.directory.addCertificate('alice@example.org', FP);
      await h.directory.addSendAs('alice@example.org', '@example.net');
      await h.directory.setUserPolicy('alice@example.org', { senderCheck: false, maxMessagesPerHour: 5 });
      const d = await h.reopen();
      assert.equal(await d.getPasswordHash('alice@example.org'), '$scrypt$x');
      assert.deepEqual(await d.getCredentials('alice@example.org'), {
        passwordHash: '$scrypt$x',
        scram: 'SCRAM-SHA-256$4096:c2FsdA==$a:b',
      });
      assert.deepEqual(await d.resolve('team@example.org'), {
        kind: 'local',
        users: ['alice@example.org'],
        forward: [],
      });
      assert.equal(await d.findUserByCertificate(FP), 'alice@example.org');
      assert.equal(await d.ownsAddress('alice@example.org', 'anyone@example.net'), true);
      assert.deepEqual(await d.getUserPolicy('alice@example.org'), {
        senderCheck: false,
        maxMessagesPerHour: 5,
        maxRecipientsPerHour: null,
      });
    });

    withHarness('credentials: password hash and SCRAM secret, together', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addUser('bob@example.org', '$scrypt$b', 'SCRAM-SHA-256$4096:YQ==$b:c');
      assert.deepEqual(await d.getCredentials('Alice@Example.org'), { passwordHash: null, scram: null });
      assert.deepEqual(await d.getCredentials('bob@example.org'), {
        passwordHash: '$scrypt$b',
        scram: 'SCRAM-SHA-256$4096:YQ==$b:c',
      });
      await d.setCredentials('ALICE@example.org', {
        passwordHash: '$scrypt$a',
        scram: 'SCRAM-SHA-256$1:x$y:z',
      });
      assert.deepEqual(await d.getCredentials('alice@example.org'), {
        passwordHash: '$scrypt$a',
        scram: 'SCRAM-SHA-256$1:x$y:z',
      });
      assert.equal(await d.getPasswordHash('alice@example.org'), '$scrypt$a');
      assert.deepEqual(
        (await d.listUsers()).map((u) => [u.address, u.hasPassword, u.hasScram]),
        [
          ['alice@example.org', true, true],
          ['bob@example.org', true, true],
        ],
      );
      // A new hash alone drops the SCRAM secret: it would still let the old password in.
      await d.setPasswordHash('bob@example.org', '$scrypt$new');
      assert.deepEqual(await d.getCredentials('bob@example.org'), {
        passwordHash: '$scrypt$new',
        scram: null,
      });
      // Clearing both: the user can no longer log in.
      await d.setCredentials('alice@example.org', { passwordHash: null, scram: null });
      assert.deepEqual(await d.getCredentials('alice@example.org'), { passwordHash: null, scram: null });
      assert.equal((await d.listUsers())[0]?.hasPassword, false);
      assert.equal(await d.getCredentials('ghost@example.org'), null);
      assert.equal(await d.getCredentials('not an address'), null);
      await assert.rejects(
        d.setCredentials('ghost@example.org', { passwordHash: '$scrypt$x', scram: null }),
        code('not-found'),
      );
    });

    withHarness('certificates: fingerprints normalized, one user per certificate', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addUser('bob@example.org', null);
      await d.addCertificate('Alice@example.org', FP_COLONS);
      // The same certificate in another form is the same certificate.
      await assert.rejects(d.addCertificate('alice@example.org', FP), code('exists'));
      await assert.rejects(d.addCertificate('bob@example.org', FP.toUpperCase()), code('exists'));
      await d.addCertificate('alice@example.org', FP_OTHER);
      for (const form of [FP, FP_COLONS, FP.toUpperCase(), FP_COLONS.toLowerCase(), ` ${FP}\n`]) {
        assert.equal(await d.findUserByCertificate(form), 'alice@example.org', form);
      }
      assert.equal(await d.findUserByCertificate('ef'.repeat(32)), null);
      assert.equal(await d.findUserByCertificate('not hex'), null);
      for (const bad of ['', 'ab'.repeat(31), 'ab'.repeat(33), 'zz'.repeat(32), 'ab'.repeat(20)]) {
        await assert.rejects(d.addCertificate('alice@example.org', bad), code('invalid'), bad);
      }
      // SHA-1 fingerprints (20 bytes, colon form) are not SHA-256 ones.
      await assert.rejects(d.addCertificate('alice@example.org', FP_COLONS.slice(0, 59)), code('invalid'));
      await assert.rejects(d.addCertificate('ghost@example.org', 'ef'.repeat(32)), code('not-found'));
      assert.deepEqual(
        (await d.listCertificates()).map((c) => [c.address, c.fingerprint]),
        [
          ['alice@example.org', FP],
          ['alice@example.org', FP_OTHER],
        ],
      );
      const [first] = await d.listCertificates('ALICE@example.org');
      assert.ok(first !== undefined && first.createdMs > 0);
      assert.deepEqual(await d.listCertificates('bob@example.org'), []);
      // Deleting needs the right user; any form of the fingerprint will do.
      assert.equal(await d.deleteCertificate('bob@example.org', FP), false);
      assert.equal(await d.deleteCertificate('alice@example.org', FP_COLONS), true);
      assert.equal(await d.deleteCertificate('alice@example.org', FP), false);
      assert.equal(await d.findUserByCertificate(FP), null);
      await d.addCertificate('bob@example.org', FP);
      assert.equal(await d.findUserByCertificate(FP), 'bob@example.org');
    });

    withHarness('ownsAddress: own address, aliases and alias chains that reach the user', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addUser('bob@example.org', null);
      await d.addAlias('a1@example.net', 'a2@example.org');
      await d.addAlias('a2@example.org', 'a3@example.org');
      await d.addAlias('a3@example.org', 'alice@example.org');
      await d.addAlias('team@example.org', 'alice@example.org');
      await d.addAlias('team@example.org', 'bob@example.org');
      await d.addAlias('fwd@example.org', 'alice@remote.example');
      const owns = (user: string, address: string): Promise<boolean> => d.ownsAddress(user, address);
      assert.equal(await owns('alice@example.org', 'alice@example.org'), true);
      assert.equal(await owns('alice@example.org', 'ALICE@Example.Org'), true);
      assert.equal(await owns('Alice@example.org', 'alice@example.org.'), true);
      assert.equal(await owns('alice@example.org', 'a3@example.org'), true);
      assert.equal(await owns('alice@example.org', 'A1@example.net'), true);
      // Every member of a multi-target alias may send as it.
      assert.equal(await owns('alice@example.org', 'team@example.org'), true);
      assert.equal(await owns('bob@example.org', 'team@example.org'), true);
      assert.equal(await owns('bob@example.org', 'a1@example.net'), false);
      assert.equal(await owns('alice@example.org', 'bob@example.org'), false);
      // An alias forwarding to a remote address the user happens to share a local part with: no.
      assert.equal(await owns('alice@example.org', 'fwd@example.org'), false);
      assert.equal(await owns('alice@example.org', 'alice@remote.example'), false);
      assert.equal(await owns('alice@example.org', 'nobody@example.org'), false);
      assert.equal(await owns('alice@example.org', ''), false);
      assert.equal(await owns('alice@example.org', 'not an address'), false);
      assert.equal(await owns('ghost@example.org', 'ghost@example.org'), false);
    });

    withHarness(
      "ownsAddress follows aliases as delivery does, never to another user's own address",
      async (h) => {
        const d = h.directory;
        for (const [carol, dave] of [
          ['carol@example.org', 'dave@example.org'],
          ['jürgen@example.org', '日本@example.org'],
        ] as const) {
          const sales = `sales-${carol}`;
          await d.addUser(carol, null);
          await d.addUser(dave, null);
          await d.addAlias(sales, carol);
          await d.addAlias(carol, dave);
          // Mail to sales ends with dave (carol's alias wins), so dave may send as sales, carol no longer.
          assert.equal(await d.ownsAddress(dave, sales), true, sales);
          assert.equal(await d.ownsAddress(carol, sales), false, sales);
          // carol's own address stays carol's, and is not dave's to send as.
          assert.equal(await d.ownsAddress(carol, carol), true);
          assert.equal(await d.ownsAddress(dave, carol), false);
          await d.addAlias(carol, carol);
          assert.equal(await d.ownsAddress(carol, sales), true, sales);
          assert.equal(await d.ownsAddress(dave, sales), true, sales);
        }
        // The configured postmaster receives postmaster@ every local domain, and may answer from it.
        await d.addUser(CONTRACT_POSTMASTER, null);
        assert.equal(await d.ownsAddress(CONTRACT_POSTMASTER, 'postmaster@example.net'), true);
        assert.equal(await d.ownsAddress('carol@example.org', 'postmaster@example.net'), false);
      },
    );

    withHarness(
      'ownsAddress: a catch-all, a loop or another user of the same name grant nothing',
      async (h) => {
        const d = h.directory;
        await d.addUser('alice@example.org', null);
        await d.addUser('bob@example.org', null);
        await d.addAlias('@example.org', 'alice@example.org');
        assert.equal((await d.resolve('random@example.org')).kind, 'local');
        assert.equal(await d.ownsAddress('alice@example.org', 'random@example.org'), false);
        // An alias named like another user never applies (the user wins, as in resolve).
        await d.addAlias('bob@example.org', 'alice@example.org');
        assert.equal(await d.ownsAddress('alice@example.org', 'bob@example.org'), false);
        await h.storeAliasUnchecked('x@example.org', 'y@example.org');
        await h.storeAliasUnchecked('y@example.org', 'x@example.org');
        assert.equal(await d.ownsAddress('alice@example.org', 'x@example.org'), false);
        await d.addAlias('y@example.org', 'alice@example.org');
        assert.equal(await d.ownsAddress('alice@example.org', 'x@example.org'), true);
        // Too long a chain is as good as none, as for delivery.
        for (let i = 0; i < 100; i++) {
          await d.addAlias(`l${i}@example.org`, i === 99 ? 'alice@example.org' : `l${i + 1}@example.org`);
        }
        assert.equal(await d.ownsAddress('alice@example.org', 'l0@example.org'), false);
        assert.equal(await d.ownsAddress('alice@example.org', 'l98@example.org'), true);
      },
    );

    withHarness('send-as grants: one address or a whole domain, listed and removed', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      await d.addUser('bob@example.org', null);
      await d.addSendAs('alice@example.org', 'Boss@Example.org');
      await d.addSendAs('alice@example.org', '@Partner.Example');
      await d.addSendAs('bob@example.org', 'alice@remote.example');
      await assert.rejects(d.addSendAs('ALICE@example.org', 'boss@example.org'), code('exists'));
      await assert.rejects(d.addSendAs('alice@example.org', '@partner.example.'), code('exists'));
      await assert.rejects(d.addSendAs('ghost@example.org', 'boss@example.org'), code('not-found'));
      for (const bad of ['', 'boss', '@', '@bad domain', 'a b@example.org', 'x@@example.org']) {
        await assert.rejects(d.addSendAs('alice@example.org', bad), code('invalid'), bad);
      }
      assert.equal(await d.ownsAddress('alice@example.org', 'boss@example.org'), true);
      assert.equal(await d.ownsAddress('alice@example.org', 'BOSS@EXAMPLE.ORG'), true);
      assert.equal(await d.ownsAddress('alice@example.org', 'boss2@example.org'), false);
      assert.equal(await d.ownsAddress('alice@example.org', 'anyone@partner.example'), true);
      assert.equal(await d.ownsAddress('alice@example.org', 'anyone@sub.partner.example'), false);
      assert.equal(await d.ownsAddress('bob@example.org', 'anyone@partner.example'), false);
      assert.equal(await d.ownsAddress('bob@example.org', 'alice@remote.example'), true);
      assert.deepEqual(
        (await d.listSendAs()).map((g) => [g.user, g.pattern]),
        [
          ['alice@example.org', '@partner.example'],
          ['alice@example.org', 'boss@example.org'],
          ['bob@example.org', 'alice@remote.example'],
        ],
      );
      assert.deepEqual(
        (await d.listSendAs('Bob@example.org')).map((g) => g.pattern),
        ['alice@remote.example'],
      );
      assert.ok((await d.listSendAs('bob@example.org'))[0]!.createdMs > 0);
      assert.equal(await d.deleteSendAs('alice@example.org', '@PARTNER.example'), true);
      assert.equal(await d.deleteSendAs('alice@example.org', '@partner.example'), false);
      assert.equal(await d.ownsAddress('alice@example.org', 'anyone@partner.example'), false);
      assert.equal(await d.deleteSendAs('bob@example.org'), true);
      assert.equal(await d.deleteSendAs('bob@example.org'), false);
      assert.deepEqual(
        (await d.listSendAs()).map((g) => [g.user, g.pattern]),
        [['alice@example.org', 'boss@example.org']],
      );
    });

    withHarness('user policy: defaults, partial updates, back to default', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', null);
      assert.deepEqual(await d.getUserPolicy('alice@example.org'), DEFAULT_USER_POLICY);
      assert.deepEqual(DEFAULT_USER_POLICY, {
        senderCheck: true,
        maxMessagesPerHour: null,
        maxRecipientsPerHour: null,
      });
      assert.deepEqual(await d.setUserPolicy('Alice@example.org', { maxMessagesPerHour: 100 }), {
        senderCheck: true,
        maxMessagesPerHour: 100,
        maxRecipientsPerHour: null,
      });
      await d.setUserPolicy('alice@example.org', { senderCheck: false, maxRecipientsPerHour: 0 });
      assert.deepEqual(await d.getUserPolicy('ALICE@example.org'), {
        senderCheck: false,
        maxMessagesPerHour: 100,
        maxRecipientsPerHour: 0,
      });
      await d.setUserPolicy('alice@example.org', { maxMessagesPerHour: null });
      assert.deepEqual(await d.getUserPolicy('alice@example.org'), {
        senderCheck: false,
        maxMessagesPerHour: null,
        maxRecipientsPerHour: 0,
      });
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await assert.rejects(
          d.setUserPolicy('alice@example.org', { maxMessagesPerHour: bad }),
          code('invalid'),
        );
        await assert.rejects(
          d.setUserPolicy('alice@example.org', { maxRecipientsPerHour: bad }),
          code('invalid'),
        );
      }
      assert.equal((await d.getUserPolicy('alice@example.org')).maxRecipientsPerHour, 0);
      await assert.rejects(d.setUserPolicy('ghost@example.org', { senderCheck: false }), code('not-found'));
      assert.deepEqual(await d.getUserPolicy('ghost@example.org'), DEFAULT_USER_POLICY);
    });

    for (const local of ['alice', 'jürgen', '日本']) {
      withHarness(`quota of ${local}@: the default, overrides, unlimited, back to the default`, async (h) => {
        const d = h.directory;
        const address = `${local}@example.org`;
        assert.equal(await d.getQuota(address), null, 'no such user yet');
        await d.addUser(address, null);
        assert.deepEqual(await d.getQuota(address), CONTRACT_DEFAULT_QUOTA);
        // An override of one field keeps the other's setting (here: the default).
        assert.deepEqual(await d.setQuota(address.toUpperCase(), { messages: 500 }), {
          storageBytes: 1_000_000,
          messages: 500,
        });
        assert.deepEqual(await d.setQuota(address, { storageBytes: 2 * 1024 ** 3 }), {
          storageBytes: 2 * 1024 ** 3,
          messages: 500,
        });
        assert.deepEqual(await d.getQuota(address.toUpperCase()), {
          storageBytes: 2 * 1024 ** 3,
          messages: 500,
        });
        // null is unlimited, over the default too; 0 means the same (as in the config).
        assert.deepEqual(await d.setQuota(address, { storageBytes: null, messages: 0 }), {
          storageBytes: null,
          messages: null,
        });
        assert.deepEqual(await d.setQuota(address, { storageBytes: 'default' }), {
          storageBytes: 1_000_000,
          messages: null,
        });
        assert.deepEqual(await d.setQuota(address, {}), { storageBytes: 1_000_000, messages: null });
        assert.deepEqual(await d.setQuota(address, { messages: 'default' }), CONTRACT_DEFAULT_QUOTA);
        // A QuotaLimits value is a change too.
        assert.deepEqual(await d.setQuota(address, { storageBytes: 1, messages: 1 }), {
          storageBytes: 1,
          messages: 1,
        });
        // The other local domain is another user.
        assert.equal(await d.getQuota(`${local}@example.net`), null);
      });
    }

    withHarness('quota: bad limits are invalid, unknown users not-found, and nothing changes', async (h) => {
      const d = h.directory;
      await d.addUser('jürgen@example.org', null);
      await d.setQuota('jürgen@example.org', { storageBytes: 5000 });
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
        await assert.rejects(d.setQuota('jürgen@example.org', { storageBytes: bad }), code('invalid'));
        await assert.rejects(d.setQuota('jürgen@example.org', { messages: bad }), code('invalid'));
        // A bad field refuses the whole change, the good one with it.
        await assert.rejects(
          d.setQuota('jürgen@example.org', { storageBytes: 7, messages: bad }),
          code('invalid'),
        );
      }
      assert.deepEqual(await d.getQuota('jürgen@example.org'), { storageBytes: 5000, messages: null });
      await assert.rejects(d.setQuota('ghost@example.org', { messages: 1 }), code('not-found'));
      await assert.rejects(d.setQuota('日本@example.org', { messages: 1 }), code('not-found'));
      assert.equal(await d.getQuota('日本@example.org'), null);
      assert.equal(await d.getQuota('not an address'), null);
    });

    withHarness('quota limits survive a restart', async (h) => {
      await h.directory.addUser('日本@example.org', null);
      await h.directory.addUser('bob@example.org', null);
      await h.directory.setQuota('日本@example.org', { storageBytes: 123_456, messages: null });
      const d = await h.reopen();
      assert.deepEqual(await d.getQuota('日本@example.org'), { storageBytes: 123_456, messages: null });
      assert.deepEqual(await d.getQuota('bob@example.org'), CONTRACT_DEFAULT_QUOTA);
    });

    withHarness('deleting a user removes its credentials, certificates, grants and policy', async (h) => {
      const d = h.directory;
      await d.addUser('alice@example.org', '$scrypt$a', 'SCRAM-SHA-256$1:x$y:z');
      await d.addUser('bob@example.org', null);
      await d.addCertificate('alice@example.org', FP);
      await d.addCertificate('bob@example.org', FP_OTHER);
      await d.addSendAs('alice@example.org', '@partner.example');
      await d.addSendAs('bob@example.org', '@partner.example');
      await d.setUserPolicy('alice@example.org', { senderCheck: false, maxMessagesPerHour: 1 });
      await d.setQuota('alice@example.org', { storageBytes: 10, messages: 10 });
      assert.equal(await d.deleteUser('alice@example.org'), true);
      assert.equal(await d.getQuota('alice@example.org'), null);
      assert.equal(await d.getCredentials('alice@example.org'), null);
      assert.equal(await d.findUserByCertificate(FP), null);
      assert.equal(await d.ownsAddress('alice@example.org', 'x@partner.example'), false);
      assert.deepEqual(
        (await d.listCertificates()).map((c) => c.address),
        ['bob@example.org'],
      );
      assert.deepEqual(
        (await d.listSendAs()).map((g) => g.user),
        ['bob@example.org'],
      );
      // Re-created under the same address, the user starts from nothing.
      await d.addUser('alice@example.org', null);
      assert.deepEqual(await d.getCredentials('alice@example.org'), { passwordHash: null, scram: null });
      assert.deepEqual(await d.getUserPolicy('alice@example.org'), DEFAULT_USER_POLICY);
      assert.deepEqual(await d.getQuota('alice@example.org'), CONTRACT_DEFAULT_QUOTA);
      assert.deepEqual(await d.listCertificates('alice@example.org'), []);
      assert.deepEqual(await d.listSendAs('alice@example.org'), []);
      await d.addCertificate('alice@example.org', FP);
    });
  });
}
