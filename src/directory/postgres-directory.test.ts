// PostgresDirectory against the PostgreSQL every machine here runs (test/support/postgres.ts), one fresh
// schema per suite: the Directory contract; the same answers as SqliteDirectory for one script of writes
// and lookups (UTF-8 keys, byte order, subaddressing, error codes and messages); two nodes (two pools,
// one schema) seeing each other's users at once and each other's domains within the refresh bound,
// racing on the same user and on the two halves of an alias loop; and the schema's own rules.
// Skipped, with the reason, where PostgreSQL does not answer.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PgPool } from '../db/postgres.ts';
import { openPool } from '../db/postgres.ts';
import { createTestSchema, postgresSkip } from '../../test/support/postgres.ts';
import type { TestSchema } from '../../test/support/postgres.ts';
import type { Directory } from './directory.ts';
import {
  CONTRACT_DEFAULT_QUOTA,
  CONTRACT_LOCAL_DOMAINS,
  CONTRACT_POSTMASTER,
  runDirectoryContract,
} from './directory.contract.ts';
import type { PostgresDirectoryConfig, PostgresDirectoryOptions } from './postgres-directory.ts';
import { DIRECTORY_STEPS, PostgresDirectory } from './postgres-directory.ts';
import { DirectoryError, SqliteDirectory } from './sqlite-directory.ts';

const skip = await postgresSkip();

const TABLES = 'users, aliases, certificates, send_as, domains';

/** One schema for a suite, with a pool per "node"; tables emptied before each test. */
function useSchema(prefix: string, nodes = 1): { readonly pools: PgPool[]; reset(): Promise<void> } {
  let schema: TestSchema | undefined;
  const pools: PgPool[] = [];
  before(async () => {
    schema = await createTestSchema(prefix);
    for (let i = 0; i < nodes; i++) pools.push(openPool({ url: schema.url, schema: schema.schema }));
    // Migrated once here, so every test can empty the tables first.
    await (await PostgresDirectory.open({ pool: pools[0]!, config: { localDomains: [] } })).close();
  });
  after(async () => {
    for (const pool of pools) await pool.end();
    await schema?.drop();
  });
  return {
    pools,
    async reset() {
      await pools[0]!.query(`TRUNCATE ${TABLES}`);
    },
  };
}

const CONTRACT_CONFIG: PostgresDirectoryConfig = {
  localDomains: CONTRACT_LOCAL_DOMAINS,
  postmaster: CONTRACT_POSTMASTER,
  defaultQuota: CONTRACT_DEFAULT_QUOTA,
};

describe('PostgresDirectory', { skip }, () => {
  const db = useSchema('dir_contract');
  runDirectoryContract('postgres', async () => {
    await db.reset();
    const pool = db.pools[0]!;
    let directory = await PostgresDirectory.open({ pool, config: CONTRACT_CONFIG });
    return {
      get directory() {
        return directory;
      },
      async reopen() {
        await directory.close();
        directory = await PostgresDirectory.open({ pool, config: CONTRACT_CONFIG });
        return directory;
      },
      async cleanup() {
        await directory.close();
      },
      async storeAliasUnchecked(alias, target) {
        await pool.query('INSERT INTO aliases (alias, target, created_ms) VALUES ($1, $2, 1)', [
          alias,
          target,
        ]);
      },
    };
  });
});

describe('PostgresDirectory gives the answers SqliteDirectory gives', { skip }, () => {
  const db = useSchema('dir_same');

  it('for one script of writes and lookups (UTF-8, byte order, subaddressing, errors)', async () => {
    await db.reset();
    const config: PostgresDirectoryConfig = {
      localDomains: ['example.org', '例え.jp', 'Example.NET'],
      postmaster: 'postmaster@example.org',
      recipientDelimiter: '+-',
      defaultQuota: { storageBytes: 100, messages: null },
    };
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    const sqlite = await SqliteDirectory.open({ ...config, path: join(dir, 'd.sqlite') });
    const postgres = await PostgresDirectory.open({ pool: db.pools[0]!, config });
    /** What a call gave: its value, or its error's code and message. */
    const outcome = async (call: (d: Directory) => Promise<unknown>, d: Directory): Promise<unknown> => {
      try {
        return { value: await call(d) };
      } catch (err) {
        assert.ok(err instanceof DirectoryError, String(err));
        return { code: err.code, message: err.message };
      }
    };
    const both = async (what: string, call: (d: Directory) => Promise<unknown>): Promise<unknown> => {
      const expected = await outcome(call, sqlite);
      assert.deepEqual(await outcome(call, postgres), expected, what);
      return expected;
    };
    try {
      for (const user of [
        'zed@example.org',
        'Jürgen@Example.org',
        '日本@例え.jp',
        'Émile@example.org',
        'bob@example.org',
      ]) {
        await both(`addUser ${user}`, (d) => d.addUser(user, null));
      }
      await both('addUser bob+exact', (d) =>
        d.addUser('bob+exact@example.org', '$scrypt$x', 'SCRAM-SHA-256$1:a$b:c'),
      );
      for (const bad of ['JÜRGEN@example.org', 'x@example.com', 'a b@example.org', '']) {
        await both(`addUser ${bad}`, (d) => d.addUser(bad, null));
      }
      const aliases: [string, string][] = [
        ['sales@example.org', 'bob@example.org'],
        ['sales@example.org', '日本@例え.jp'],
        ['sales@example.org', 'Ann@Remote.example'],
        ['チーム@例え.jp', 'jürgen@example.org'],
        ['チーム@例え.jp', 'sales@example.org'],
        ['@例え.jp', 'zed@example.org'],
        ['jürgen@example.org', 'jürgen@example.org'],
        ['jürgen@example.org', 'émile@example.org'],
        ['émile@example.org', 'チーム@例え.jp'],
        ['sales@example.org', 'bob@example.org'],
        ['self@example.org', 'self@example.org'],
        ['@example.com', 'bob@example.org'],
      ];
      for (const [alias, target] of aliases) {
        await both(`addAlias ${alias} ${target}`, (d) => d.addAlias(alias, target));
      }
      await both('listUsers', async (d) =>
        (await d.listUsers()).map((u) => [u.address, u.hasPassword, u.hasScram]),
      );
      await both('listAliases', (d) => d.listAliases());
      for (const address of [
        'SALES@example.org',
        'sales+q1@example.org',
        'bob+lists@example.org',
        'BOB-news@Example.ORG',
        'bob+exact@example.org',
        '日本+タグ@例え.jp',
        'チーム@例え.jp',
        'nobody@例え.jp',
        'nobody+x@example.org',
        '+bob@example.org',
        'postmaster@例え.jp',
        'jürgen@example.org',
        'someone@example.com',
        'not an address',
      ]) {
        await both(`resolve ${address}`, (d) => d.resolve(address));
      }
      for (const [user, address] of [
        ['bob@example.org', 'sales@example.org'],
        ['日本@例え.jp', 'sales+x@example.org'],
        ['zed@example.org', 'anyone@例え.jp'],
        ['jürgen@example.org', 'チーム@例え.jp'],
        ['bob@example.org', 'bob+exact@example.org'],
      ] as const) {
        await both(`ownsAddress ${user} ${address}`, (d) => d.ownsAddress(user, address));
      }
      await both('addSendAs', (d) => d.addSendAs('日本@例え.jp', '@Partner.例え.jp'));
      await both('addSendAs again', (d) => d.addSendAs('日本@例え.jp', '@partner.例え.jp.'));
      await both('addCertificate', (d) => d.addCertificate('zed@example.org', 'AB'.repeat(32)));
      await both('addCertificate taken', (d) => d.addCertificate('bob@example.org', 'ab'.repeat(32)));
      await both('setQuota', (d) => d.setQuota('Émile@example.org', { messages: 0, storageBytes: 2 ** 40 }));
      await both('setQuota bad', (d) => d.setQuota('émile@example.org', { storageBytes: -1 }));
      await both('setQuota ghost', (d) => d.setQuota('ghost@例え.jp', { storageBytes: 1 }));
      await both('setUserPolicy', (d) => d.setUserPolicy('日本@例え.jp', { maxRecipientsPerHour: 9 }));
      await both('setUserPolicy ghost', (d) => d.setUserPolicy('ghost@example.org', {}));
      await both('setCredentials ghost', (d) => d.setCredentials('x', { passwordHash: null, scram: null }));
      await both('deleteAlias', (d) => d.deleteAlias('@例え.jp'));
      await both('resolve after', (d) => d.resolve('nobody@例え.jp'));
    } finally {
      await sqlite.close();
      await postgres.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Waits for cond to hold and says how long that took; fails past limitMs. */
async function timeUntil(cond: () => boolean, limitMs: number, what: string): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    assert.ok(performance.now() - start < limitMs, `${what}: not within ${limitMs} ms`);
    await sleep(5);
  }
  return performance.now() - start;
}

describe('PostgresDirectory on two nodes (one schema)', { skip }, () => {
  const db = useSchema('dir_nodes', 2);
  const config: PostgresDirectoryConfig = { localDomains: ['example.org'] };
  const nodes = async (
    options: Partial<Pick<PostgresDirectoryOptions, 'domainRefreshMs' | 'listen'>> = {},
  ): Promise<[PostgresDirectory, PostgresDirectory]> => {
    await db.reset();
    return [
      await PostgresDirectory.open({ pool: db.pools[0]!, config, ...options }),
      await PostgresDirectory.open({ pool: db.pools[1]!, config, ...options }),
    ];
  };

  it('a user or alias written on one node resolves on the other at once', async () => {
    const [a, b] = await nodes();
    try {
      assert.deepEqual(await b.resolve('jürgen@example.org'), { kind: 'unknown' });
      await a.addUser('Jürgen@example.org', '$scrypt$x');
      assert.deepEqual(await b.resolve('jürgen@EXAMPLE.org'), {
        kind: 'local',
        users: ['jürgen@example.org'],
        forward: [],
      });
      await a.addAlias('日本@example.org', 'jürgen@example.org');
      assert.deepEqual(await b.resolve('日本@example.org'), {
        kind: 'local',
        users: ['jürgen@example.org'],
        forward: [],
      });
      assert.equal(await b.getPasswordHash('jürgen@example.org'), '$scrypt$x');
      assert.equal(await b.deleteUser('jürgen@example.org'), true);
      assert.deepEqual(await a.resolve('日本@example.org'), { kind: 'unknown' });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two nodes adding the same user at once: one wins, the other gets exists', async () => {
    const [a, b] = await nodes();
    try {
      const addresses = Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0 ? `u${i}@example.org` : `日本${i}@example.org`,
      );
      const outcomes = await Promise.all(
        addresses.map((address) =>
          Promise.allSettled([a.addUser(address, null), b.addUser(address.toUpperCase(), null)]),
        ),
      );
      for (const [i, pair] of outcomes.entries()) {
        const won = pair.filter((o) => o.status === 'fulfilled');
        const lost = pair.filter((o) => o.status === 'rejected');
        assert.equal(won.length, 1, addresses[i]);
        const err: unknown = lost[0]?.reason;
        assert.ok(err instanceof DirectoryError, String(err));
        assert.equal(err.code, 'exists');
        assert.equal(err.message, `user ${addresses[i]!.toLowerCase()} already exists`);
      }
      assert.equal((await b.listUsers()).length, addresses.length);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two nodes each closing half of an alias loop at once: one is refused', async () => {
    const [a, b] = await nodes();
    try {
      for (let i = 0; i < 10; i++) {
        const [x, y] = [`x${i}@example.org`, `y${i}@example.org`];
        const pair = await Promise.allSettled([a.addAlias(x, y), b.addAlias(y, x)]);
        assert.equal(pair.filter((o) => o.status === 'fulfilled').length, 1, x);
        const err: unknown = pair.find((o) => o.status === 'rejected')?.reason;
        assert.ok(
          err instanceof DirectoryError && err.code === 'invalid' && /loop/.test(err.message),
          String(err),
        );
      }
      assert.equal((await a.listAliases()).length, 10);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a domain added on one node is local on the other within 1 s (NOTIFY), the poll set far off', async () => {
    const [a, b] = await nodes({ domainRefreshMs: 3_600_000 });
    try {
      assert.equal(b.isLocalDomain('例え.jp'), false);
      await a.addDomain('例え.JP');
      assert.equal(a.isLocalDomain('例え.jp'), true, 'the writing node at once');
      const took = await timeUntil(() => b.isLocalDomain('例え.jp'), 1000, 'added');
      assert.ok(took < 1000);
      await b.addUser('日本@例え.jp', null);
      assert.equal((await a.resolve('日本@例え.jp')).kind, 'local');
      assert.equal(await b.deleteDomain('例え.jp'), true);
      await timeUntil(() => !a.isLocalDomain('例え.jp'), 1000, 'deleted');
      assert.deepEqual(await a.resolve('日本@例え.jp'), { kind: 'remote' });
      // Written outside Tern (psql): the trigger notifies all the same.
      await db.pools[0]!.query("INSERT INTO domains (domain, created_ms) VALUES ('example.net', 1)");
      await timeUntil(() => a.isLocalDomain('example.net') && b.isLocalDomain('Example.NET'), 1000, 'psql');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('without LISTEN, the poll bounds it: within domainRefreshMs (+ one query)', async () => {
    const refreshMs = 200;
    const [a, b] = await nodes({ domainRefreshMs: refreshMs, listen: false });
    try {
      await a.addDomain('example.net');
      const took = await timeUntil(() => b.isLocalDomain('example.net'), refreshMs + 500, 'polled');
      assert.ok(took <= refreshMs + 500, `${took} ms`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a write on a node that has not seen the domain yet reads it first (no refusal in the window)', async () => {
    const [a, b] = await nodes({ domainRefreshMs: 3_600_000, listen: false });
    try {
      await a.addDomain('example.net');
      assert.equal(b.isLocalDomain('example.net'), false, 'nothing told b yet');
      await b.addUser('bob@example.net', null);
      await b.addAlias('team@example.net', 'bob@example.net');
      assert.equal(b.isLocalDomain('example.net'), true);
      assert.deepEqual(await b.resolve('team@example.net'), {
        kind: 'local',
        users: ['bob@example.net'],
        forward: [],
      });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('PostgresDirectory specifics', { skip }, () => {
  const db = useSchema('dir_specifics');

  it('stored domains: validated, listed in byte order, the config’s neither stored nor deletable', async () => {
    await db.reset();
    const d = await PostgresDirectory.open({ pool: db.pools[0]!, config: { localDomains: ['Example.ORG'] } });
    try {
      await d.addDomain('例え.jp.');
      await d.addDomain('b.example');
      await d.addDomain('[192.0.2.1]');
      for (const [domain, code] of [
        ['例え.JP', 'exists'],
        ['example.org', 'exists'],
        ['bad domain', 'invalid'],
        ['', 'invalid'],
        ['a@b.example', 'invalid'],
      ] as const) {
        await assert.rejects(
          d.addDomain(domain),
          (e) => e instanceof DirectoryError && e.code === code,
          domain,
        );
      }
      assert.deepEqual(await d.listDomains(), ['[192.0.2.1]', 'b.example', '例え.jp']);
      assert.equal(d.isLocalDomain('[192.0.2.1]'), true);
      assert.equal(await d.deleteDomain('example.org'), false);
      assert.equal(d.isLocalDomain('example.org'), true);
      assert.equal(await d.deleteDomain('B.example'), true);
      assert.equal(await d.deleteDomain('b.example'), false);
      assert.equal(d.isLocalDomain('b.example'), false);
    } finally {
      await d.close();
    }
  });

  it('close() leaves the pool open; opening again migrates nothing', async () => {
    const pool = db.pools[0]!;
    const d = await PostgresDirectory.open({ pool, config: { localDomains: ['example.org'] } });
    await d.close();
    await d.close();
    const r = await pool.query<{ version: number }>(
      "SELECT version FROM tern_migrations WHERE component = 'directory'",
    );
    assert.equal(r.rows[0]?.version, DIRECTORY_STEPS.length);
  });

  it('the schema itself refuses a negative quota or limit', async () => {
    await db.reset();
    const pool = db.pools[0]!;
    await pool.query("INSERT INTO users (address, created_ms) VALUES ('alice@example.org', 1)");
    for (const column of [
      'quota_bytes',
      'quota_messages',
      'max_messages_per_hour',
      'max_recipients_per_hour',
    ]) {
      await assert.rejects(pool.query(`UPDATE users SET ${column} = -1`), /check constraint/, column);
    }
  });

  it('a default quota given as a function is asked on every lookup', async () => {
    await db.reset();
    let current = { storageBytes: 100 as number | null, messages: null as number | null };
    const d = await PostgresDirectory.open({
      pool: db.pools[0]!,
      config: { localDomains: ['example.org'], defaultQuota: () => current },
    });
    try {
      await d.addUser('jürgen@example.org', null);
      await d.setQuota('jürgen@example.org', { messages: 5 });
      assert.deepEqual(await d.getQuota('jürgen@example.org'), { storageBytes: 100, messages: 5 });
      current = { storageBytes: null, messages: 3 };
      assert.deepEqual(await d.getQuota('jürgen@example.org'), { storageBytes: null, messages: 5 });
    } finally {
      await d.close();
    }
  });
});
