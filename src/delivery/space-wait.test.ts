import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpaceWait } from './space-wait.ts';

function setup(reserveBytes = 1000): {
  wait: SpaceWait;
  setFree: (n: number | null) => void;
  handed: Promise<readonly string[]>;
  reads: () => number;
} {
  let free: number | null = 0;
  let reads = 0;
  let resolve: (ids: readonly string[]) => void = () => undefined;
  const handed = new Promise<readonly string[]>((r) => (resolve = r));
  const wait = new SpaceWait({
    space: {
      freeBytes: () => {
        reads++;
        return Promise.resolve(free);
      },
    },
    reserveBytes,
    pollMs: 5,
    onSpace: (ids) => resolve(ids),
  });
  return { wait, setFree: (n) => (free = n), handed, reads: () => reads };
}

describe('SpaceWait', () => {
  test('a message that failed below the reserve is handed back once the reserve is met', async () => {
    const s = setup();
    s.setFree(10);
    await s.wait.add('q1');
    await s.wait.add('q2');
    assert.equal(s.wait.size, 2);
    s.setFree(1000);
    assert.deepEqual(await s.handed, ['q1', 'q2']);
    assert.equal(s.wait.size, 0);
    s.wait.stop();
  });

  test('a failure while the reserve looked met (a quota, a huge message) keeps its scheduled retry', async () => {
    const s = setup();
    s.setFree(5000);
    await s.wait.add('q1');
    assert.equal(s.wait.size, 0);
    s.setFree(null);
    await s.wait.add('q2');
    assert.equal(s.wait.size, 0, 'a filesystem that cannot say is not waited on');
    s.wait.stop();
  });

  test('no reserve: an empty disk is still short of space', async () => {
    const s = setup(0);
    await s.wait.add('q1');
    assert.equal(s.wait.size, 1);
    s.setFree(1);
    assert.deepEqual(await s.handed, ['q1']);
    s.wait.stop();
  });

  test('again() hands a message back at the next poll that finds room', async () => {
    const s = setup();
    s.setFree(2000);
    s.wait.again('busy');
    assert.deepEqual(await s.handed, ['busy']);
    s.wait.stop();
  });

  test('stop() forgets the waiting messages and polls no more', async () => {
    const s = setup();
    await s.wait.add('q1');
    s.wait.stop();
    assert.equal(s.wait.size, 0);
    const before = s.reads();
    await s.wait.add('q2');
    s.wait.again('q3');
    assert.equal(s.wait.size, 0);
    assert.equal(s.reads(), before);
  });
});
