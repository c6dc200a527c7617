import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dummyVerify, hashPassword, needsRehash, verifyPassword } from './password.ts';

describe('password hashing', () => {
  it('produces a PHC scrypt string with the default cost, 16-byte salt and 32-byte hash', async () => {
    const h = await hashPassword('correct horse');
    const m = /^\$scrypt\$ln=15,r=8,p=1\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(h);
    assert.ok(m, h);
    assert.equal(Buffer.from(m[1]!, 'base64').byteLength, 16);
    assert.equal(Buffer.from(m[2]!, 'base64').byteLength, 32);
  });

  it('verifies the right password and rejects others', async () => {
    const h = await hashPassword('correct horse');
    assert.equal(await verifyPassword('correct horse', h), true);
    assert.equal(await verifyPassword('correct horse ', h), false);
    assert.equal(await verifyPassword('Correct horse', h), false);
    assert.equal(await verifyPassword('', h), false);
  });

  it('salts: the same password hashes differently each time', async () => {
    const [a, b] = await Promise.all([hashPassword('pw'), hashPassword('pw')]);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword('pw', b), true);
  });

  it('normalizes to NFC: composed and decomposed forms match', async () => {
    const h = await hashPassword('caf\u00e9');
    assert.equal(await verifyPassword('cafe\u0301', h), true);
  });

  it('verifies hashes made with other parameters', async () => {
    const h = await hashPassword('pw', { ln: 12, r: 8, p: 2 });
    assert.match(h, /^\$scrypt\$ln=12,r=8,p=2\$/);
    assert.equal(await verifyPassword('pw', h), true);
    assert.equal(needsRehash(h), true);
    assert.equal(needsRehash(await hashPassword('pw')), false);
  });

  it('malformed or out-of-bounds hashes never verify and never throw', async () => {
    const good = await hashPassword('pw');
    const bad = [
      '',
      'plain',
      '$2b$10$abcdefghijklmnopqrstuv',
      good.replace('ln=15', 'ln=30'), // would need 128 GiB
      good.replace('r=8', 'r=99'),
      good.replace('$scrypt$', '$argon2id$'),
      good.slice(0, good.lastIndexOf('$')) + '$AAAA',
    ];
    for (const h of bad) assert.equal(await verifyPassword('pw', h), false, h);
  });

  it('dummyVerify is false and costs about as much as a real verification', async () => {
    const h = await hashPassword('pw');
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const t = performance.now();
      for (let i = 0; i < 3; i++) await fn();
      return performance.now() - t;
    };
    assert.equal(await dummyVerify('pw'), false);
    const real = await time(() => verifyPassword('nope', h));
    const dummy = await time(() => dummyVerify('nope'));
    assert.ok(dummy > real / 3 && dummy < real * 3, `real ${real} ms, dummy ${dummy} ms`);
  });
});
