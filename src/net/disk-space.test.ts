// DiskSpace: the cached statfs reading, and the bytes charged against it until the next reading.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DiskSpace } from './disk-space.ts';

const dir = mkdtempSync(join(tmpdir(), 'tern-disk-space-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('bytes charged after a reading count against it until the next reading', async () => {
  const space = new DiskSpace(dir, 1000);
  const first = await space.freeBytes(10_000);
  assert.ok(first !== null && first > 1_000_000, `a real filesystem: ${first}`);
  space.charge(300_000);
  space.charge(200_000);
  assert.equal(
    await space.freeBytes(10_500),
    first - 500_000,
    'within the cache period: reading minus charges',
  );
  // A new reading (the period is over) starts again from what the filesystem says.
  const fresh = await space.freeBytes(11_001);
  assert.ok(fresh !== null && Math.abs(fresh - first) < 50_000_000, `${fresh} vs ${first}`);
  assert.ok(fresh > first - 500_000, 'the charges are not counted twice');
});

test('charges never take the figure below zero; an unreadable path stays null', async () => {
  const space = new DiskSpace(dir, 1000);
  const first = await space.freeBytes(0);
  space.charge((first ?? 0) * 2);
  assert.equal(await space.freeBytes(1), 0);
  const none = new DiskSpace(join(dir, 'missing', 'deeper'));
  none.charge(1);
  assert.equal(await none.freeBytes(), null);
});
