import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { Replies, ReplyError } from '../core/reply.ts';
import { errnoError, isDiskFull, storageError } from './storage-fs.ts';

function sqliteFullError(): unknown {
  const db = new DatabaseSync(':memory:');
  db.exec('CREATE TABLE t (v BLOB)');
  const pages = db.prepare('PRAGMA page_count').get()!['page_count'] as number;
  db.exec(`PRAGMA max_page_count = ${pages}`);
  try {
    db.prepare('INSERT INTO t VALUES (?)').run(new Uint8Array(100_000));
  } catch (err) {
    return err;
  } finally {
    db.close();
  }
  assert.fail('expected SQLITE_FULL');
}

describe('disk-full detection', () => {
  it('recognises ENOSPC, EDQUOT and SQLITE_FULL, also as a cause', () => {
    assert.equal(isDiskFull(errnoError('ENOSPC', 'write')), true);
    assert.equal(isDiskFull(errnoError('EDQUOT', 'write')), true);
    assert.equal(isDiskFull(sqliteFullError()), true);
    assert.equal(isDiskFull(new Error('wrapped', { cause: errnoError('ENOSPC', 'fsync') })), true);
    assert.equal(isDiskFull(errnoError('EIO', 'write')), false);
    assert.equal(isDiskFull(new Error('x')), false);
    assert.equal(isDiskFull(null), false);
  });

  it('storageError maps a full disk to 452 4.3.1 and keeps everything else', () => {
    const full = storageError(errnoError('ENOSPC', 'write'));
    assert.ok(full instanceof ReplyError);
    assert.equal(full.reply, Replies.insufficientStorage);
    assert.equal((full.cause as NodeJS.ErrnoException).code, 'ENOSPC');
    const io = errnoError('EIO', 'write');
    assert.equal(storageError(io), io);
    const reply = new ReplyError(Replies.localError);
    assert.equal(storageError(reply), reply);
  });
});
