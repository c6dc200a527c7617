import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { DEFAULT_USER_POLICY } from './directory.ts';
import {
  CONTRACT_DEFAULT_QUOTA,
  CONTRACT_LOCAL_DOMAINS,
  CONTRACT_POSTMASTER,
  runDirectoryContract,
} from './directory.contract.ts';
import { DirectoryError, normalizeAddress, SqliteDirectory } from './sqlite-directory.ts';

runDirectoryContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
  const options = {
    path: join(dir, 'directory.sqlite'),
    localDomains: CONTRACT_LOCAL_DOMAINS,
    postmaster: CONTRACT_POSTMASTER,
    defaultQuota: CONTRACT_DEFAULT_QUOTA,
  };
  let directory = await SqliteDirectory.open(options);
  return {
    get directory() {
      return directory;
    },
    async reopen() {
      await directory.close();
      directory = await SqliteDirectory.open(options);
      return directory;
    },
    async cleanup() {
      await directory.close();
      await rm(dir, { recursive: true, force: true });
    },
    storeAliasUnchecked(alias, target) {
      // A second connection, as another process would write: the directory reads every lookup afresh.
      const db = new DatabaseSync(options.path);
      try {
        db.prepare('INSERT INTO aliases (alias, target, created_ms) VALUES (?, ?, ?)').run(alias, target, 1);
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
  };
});

describe('normalizeAddress', () => {
  it('lower-cases local part and domain, drops a trailing dot', () => {
    assert.equal(normalizeAddress('Alice@Example.ORG'), 'alice@example.org');
    assert.equal(normalizeAddress(' bob@example.org. '), 'bob@example.org');
  });

  it('accepts quoted local parts and their unquoted key form alike', () => {
    assert.equal(normalizeAddress('"John Smith"@example.org'), 'john smith@example.org');
    assert.equal(normalizeAddress('john smith@example.org'), 'john smith@example.org');
    assert.equal(normalizeAddress('john smith@example.org', false), null);
  });

  it('refuses what is not an address', () => {
    for (const bad of ['', 'alice', '@example.org', 'alice@', 'a@b@', 'alice@-bad-.org']) {
      assert.equal(normalizeAddress(bad), null, bad);
    }
  });
});

describe('SqliteDirectory specifics', () => {
  it('throws DirectoryError with a code and a message naming the address', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    const d = await SqliteDirectory.open({ path: join(dir, 'd.sqlite'), localDomains: ['example.org'] });
    try {
      await d.addUser('alice@example.org', null);
      const err = await d.addUser('Alice@example.org', null).catch((e: unknown) => e);
      assert.ok(err instanceof DirectoryError);
      assert.equal(err.code, 'exists');
      assert.match(err.message, /alice@example\.org already exists/);
    } finally {
      await d.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('sees changes made by another instance (the CLI) without reopening', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    const options = { path: join(dir, 'd.sqlite'), localDomains: ['example.org'] };
    const server = await SqliteDirectory.open(options);
    const cli = await SqliteDirectory.open(options);
    try {
      assert.deepEqual(await server.resolve('alice@example.org'), { kind: 'unknown' });
      await cli.addUser('alice@example.org', null);
      assert.equal((await server.resolve('alice@example.org')).kind, 'local');
    } finally {
      await cli.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the depth limit is configurable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    const d = await SqliteDirectory.open({
      path: join(dir, 'd.sqlite'),
      localDomains: ['example.org'],
      maxAliasDepth: 2,
    });
    try {
      await d.addUser('end@example.org', null);
      await d.addAlias('a@example.org', 'b@example.org');
      await d.addAlias('b@example.org', 'end@example.org');
      await d.addAlias('x@example.org', 'a@example.org');
      assert.equal((await d.resolve('a@example.org')).kind, 'local');
      assert.equal((await d.resolve('x@example.org')).kind, 'unknown');
    } finally {
      await d.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('migrates a version 1 database (users and aliases only) and keeps its data', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    const path = join(dir, 'd.sqlite');
    // The schema as the first release shipped it.
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE users (address TEXT PRIMARY KEY, password_hash TEXT, created_ms INTEGER NOT NULL) STRICT;
      CREATE TABLE aliases (alias TEXT NOT NULL, target TEXT NOT NULL, created_ms INTEGER NOT NULL,
        PRIMARY KEY (alias, target)) STRICT;
      INSERT INTO users VALUES ('alice@example.org', '$scrypt$old', 1000);
      INSERT INTO aliases VALUES ('team@example.org', 'alice@example.org', 1000);
      PRAGMA user_version = 1;`);
    old.close();
    const d = await SqliteDirectory.open({ path, localDomains: ['example.org'] });
    try {
      assert.deepEqual(await d.listUsers(), [
        { address: 'alice@example.org', createdMs: 1000, hasPassword: true, hasScram: false },
      ]);
      assert.deepEqual(await d.getCredentials('alice@example.org'), {
        passwordHash: '$scrypt$old',
        scram: null,
      });
      assert.deepEqual(await d.getUserPolicy('alice@example.org'), DEFAULT_USER_POLICY);
      // Step 3: no limits of its own, so the default (none given here: unlimited).
      assert.deepEqual(await d.getQuota('alice@example.org'), { storageBytes: null, messages: null });
      assert.deepEqual(await d.setQuota('alice@example.org', { messages: 10 }), {
        storageBytes: null,
        messages: 10,
      });
      assert.equal(await d.ownsAddress('alice@example.org', 'team@example.org'), true);
      await d.addCertificate('alice@example.org', 'ab'.repeat(32));
      assert.equal(await d.findUserByCertificate('ab'.repeat(32)), 'alice@example.org');
    } finally {
      await d.close();
    }
    const check = new DatabaseSync(path);
    try {
      assert.equal(check.prepare('PRAGMA user_version').get()?.['user_version'], 3);
    } finally {
      check.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a default quota given as a function is asked on every lookup (a reloaded config applies)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    let current = { storageBytes: 100 as number | null, messages: null as number | null };
    const d = await SqliteDirectory.open({
      path: join(dir, 'd.sqlite'),
      localDomains: ['example.org'],
      defaultQuota: () => current,
    });
    try {
      await d.addUser('jürgen@example.org', null);
      await d.addUser('日本@example.org', null);
      await d.setQuota('日本@example.org', { storageBytes: 5 });
      assert.deepEqual(await d.getQuota('jürgen@example.org'), { storageBytes: 100, messages: null });
      current = { storageBytes: null, messages: 3 };
      assert.deepEqual(await d.getQuota('jürgen@example.org'), { storageBytes: null, messages: 3 });
      // An override stays; the field left at the default follows it.
      assert.deepEqual(await d.getQuota('日本@example.org'), { storageBytes: 5, messages: 3 });
    } finally {
      await d.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a stored negative quota is refused by the schema, not only by setQuota', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    const path = join(dir, 'd.sqlite');
    const d = await SqliteDirectory.open({ path, localDomains: ['example.org'] });
    const db = new DatabaseSync(path);
    try {
      await d.addUser('alice@example.org', null);
      assert.throws(() =>
        db.prepare("UPDATE users SET quota_bytes = -1 WHERE address = 'alice@example.org'").run(),
      );
    } finally {
      db.close();
      await d.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('subaddressing (RFC 5233)', () => {
  it('user+tag@ reaches the user unless an alias or user has the whole address; then the catch-all', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-directory-'));
    try {
      const d = await SqliteDirectory.open({
        path: join(dir, 'd.sqlite'),
        localDomains: ['example.org'],
        recipientDelimiter: '+-',
      });
      await d.addUser('bob@example.org', null);
      await d.addUser('日本@example.org', null);
      await d.addUser('bob+exact@example.org', null);
      await d.addAlias('sales@example.org', 'bob@example.org');
      const users = async (a: string) => {
        const r = await d.resolve(a);
        return r.kind === 'local' ? [...r.users] : r.kind;
      };
      assert.deepEqual(await users('bob+lists@example.org'), ['bob@example.org']);
      assert.deepEqual(await users('BOB-news@Example.ORG'), ['bob@example.org']);
      assert.deepEqual(await users('日本+タグ@example.org'), ['日本@example.org']);
      assert.deepEqual(await users('bob+exact@example.org'), ['bob+exact@example.org']);
      assert.deepEqual(await users('sales+q1@example.org'), ['bob@example.org']);
      assert.equal(await users('nobody+x@example.org'), 'unknown');
      assert.equal(await users('+bob@example.org'), 'unknown');
      await d.addAlias('@example.org', 'bob@example.org');
      assert.deepEqual(await users('nobody+x@example.org'), ['bob@example.org']);
      await d.close();
      // Without a delimiter (""): a tag is part of the address, which nothing has here.
      const off = await SqliteDirectory.open({
        path: join(dir, 'off.sqlite'),
        localDomains: ['example.org'],
      });
      await off.addUser('bob@example.org', null);
      assert.equal((await off.resolve('bob+lists@example.org')).kind, 'unknown');
      await off.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
