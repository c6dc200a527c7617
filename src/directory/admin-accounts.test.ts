import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AdminAccountError, SqliteAdminAccounts, validAdminName } from './admin-accounts.ts';

const root = mkdtempSync(join(tmpdir(), 'tern-admins-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function open(clock: { now: number }): SqliteAdminAccounts {
  return SqliteAdminAccounts.open({ path: join(root, `a${n++}.sqlite`), nowMs: () => clock.now });
}

describe('admin accounts', () => {
  test('names: letters (any script), digits and ._@+-, NFC, at most 64', () => {
    for (const ok of ['root', 'jürgen', '日本', 'ops.team+1', 'a@b-c_d']) assert.ok(validAdminName(ok), ok);
    for (const bad of ['', 'with space', 'a/b', 'x'.repeat(65), 'ju\u0308rgen', 'tab\t', 'semi;colon'])
      assert.ok(!validAdminName(bad), bad);
  });

  test('add, list, a second add of the same name, passwords, remove', () => {
    const a = open({ now: 1000 });
    a.add('jürgen', 'hash-1');
    assert.throws(
      () => a.add('jürgen', 'hash-2'),
      (e) => e instanceof AdminAccountError && e.kind === 'exists',
    );
    assert.throws(
      () => a.add('bad name', 'h'),
      (e) => e instanceof AdminAccountError && e.kind === 'invalid',
    );
    assert.equal(a.count(), 1);
    assert.equal(a.passwordHash('jürgen'), 'hash-1');
    assert.equal(a.passwordHash('nobody'), null);
    assert.deepEqual(a.list(), [{ name: 'jürgen', createdMs: 1000, tokens: 0 }]);
    a.remove('jürgen');
    assert.throws(
      () => a.remove('jürgen'),
      (e) => e instanceof AdminAccountError && e.kind === 'unknown',
    );
    a.close();
  });

  test('tokens: verified by digest, last use recorded, revoked; near misses refused', () => {
    const clock = { now: 5000 };
    const a = open(clock);
    a.add('root', 'h');
    const { id, token } = a.createToken('root');
    assert.match(token, /^tern_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    clock.now = 6000;
    assert.equal(a.verifyToken(token), 'root');
    assert.equal(a.tokens('root')[0]!.lastUsedMs, 6000);
    assert.equal(a.verifyToken(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`), null);
    assert.equal(a.verifyToken(token.replace(id, '000000000000')), null);
    assert.equal(a.verifyToken('not a token'), null);
    assert.equal(a.revokeToken(id), true);
    assert.equal(a.verifyToken(token), null);
    assert.throws(() => a.createToken('nobody'), AdminAccountError);
    a.close();
  });

  test('sessions: idle time slides with use, expires, ends with a new password or logout', () => {
    const clock = { now: 0 };
    const a = open(clock);
    a.add('root', 'h');
    const s = a.createSession('root', 1000);
    assert.notEqual(s.id, s.csrf);
    clock.now = 900;
    assert.deepEqual(a.session(s.id, 1000), { name: 'root', csrf: s.csrf });
    clock.now = 1800; // 900 after the last use: still within the idle time
    assert.ok(a.session(s.id, 1000));
    clock.now = 2900;
    assert.equal(a.session(s.id, 1000), null, 'idle too long');
    const t = a.createSession('root', 1000);
    a.setPassword('root', 'h2');
    assert.equal(a.session(t.id, 1000), null, 'a new password ends the logins');
    const u = a.createSession('root', 1000);
    a.endSession(u.id);
    assert.equal(a.session(u.id, 1000), null);
    assert.equal(a.session('x'.repeat(500), 1000), null);
    a.close();
  });

  test('what is stored is digests: neither a token nor a session id is in the file', () => {
    const clock = { now: 0 };
    const path = join(root, 'digests.sqlite');
    const a = SqliteAdminAccounts.open({ path, nowMs: () => clock.now });
    a.add('root', 'h');
    const { token } = a.createToken('root');
    const s = a.createSession('root', 1000);
    a.close();
    const bytes = readFileSync(path);
    assert.equal(bytes.includes(token.split('_')[2]!), false);
    assert.equal(bytes.includes(s.id), false);
  });
});
