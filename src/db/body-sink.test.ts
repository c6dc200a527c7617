import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BodySink } from './body-sink.ts';
import type { StorageFs } from './storage-fs.ts';
import { faultyStorageFs, nodeStorageFs } from './storage-fs.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-sink-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Records the order of durable operations. */
function tracingFs(log: string[]): StorageFs {
  return {
    ...nodeStorageFs,
    async createFile(path) {
      const f = await nodeStorageFs.createFile(path);
      log.push('create');
      return {
        write: (b) => f.write(b),
        sync: async () => {
          log.push('sync');
          await f.sync();
        },
        close: async () => {
          log.push('close');
          await f.close();
        },
      };
    },
    async syncDir(path) {
      log.push('syncDir');
      await nodeStorageFs.syncDir(path);
    },
  };
}

describe('BodySink', () => {
  it('keeps a body up to the threshold in memory, copying the chunks', () =>
    withDir(async (dir) => {
      const sink = new BodySink({ path: join(dir, 'b'), spillBytes: 10, fs: nodeStorageFs });
      const chunk = new Uint8Array([1, 2, 3, 4, 5]);
      await sink.write(chunk);
      chunk.fill(9); // the caller reuses its buffer
      await sink.write(new Uint8Array([6, 7, 8, 9, 10]));
      const body = await sink.finish();
      assert.equal(body.kind, 'inline');
      assert.deepEqual(body.kind === 'inline' ? [...body.bytes] : null, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(existsSync(join(dir, 'b')), false);
    }));

  it('spills past the threshold: file written, fsynced, closed, directory fsynced', () =>
    withDir(async (dir) => {
      const log: string[] = [];
      const sink = new BodySink({ path: join(dir, 'b'), spillBytes: 4, fs: tracingFs(log) });
      await sink.write(new Uint8Array([1, 2, 3]));
      await sink.write(new Uint8Array([4, 5]));
      assert.equal(sink.spilled, true);
      await sink.write(new Uint8Array([6]));
      const body = await sink.finish();
      assert.deepEqual(body, { kind: 'file', path: join(dir, 'b'), sizeBytes: 6 });
      assert.deepEqual([...readFileSync(join(dir, 'b'))], [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(log, ['create', 'sync', 'close', 'syncDir']);
    }));

  it('discard removes a spilled file; writes after it fail', () =>
    withDir(async (dir) => {
      const sink = new BodySink({ path: join(dir, 'b'), spillBytes: 1, fs: nodeStorageFs });
      await sink.write(new Uint8Array([1, 2, 3]));
      assert.equal(existsSync(join(dir, 'b')), true);
      await sink.discard();
      await sink.discard();
      assert.equal(existsSync(join(dir, 'b')), false);
      await assert.rejects(sink.write(new Uint8Array([1])), /after discarded/);
    }));

  it('a failed write poisons the sink: later writes and finish fail with the same error', () =>
    withDir(async (dir) => {
      const sink = new BodySink({ path: join(dir, 'b'), spillBytes: 1, fs: faultyStorageFs(() => true) });
      await assert.rejects(sink.write(new Uint8Array([1, 2])), { code: 'ENOSPC' });
      await assert.rejects(sink.write(new Uint8Array([3])), { code: 'ENOSPC' });
      await assert.rejects(sink.finish(), { code: 'ENOSPC' });
      await sink.discard();
      assert.equal(existsSync(join(dir, 'b')), false);
    }));
});
