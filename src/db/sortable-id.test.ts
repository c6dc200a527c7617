import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SORTABLE_ID_PATTERN, SortableIds } from './sortable-id.ts';

describe('SortableIds', () => {
  it('is 20 Crockford base32 characters', () => {
    const id = new SortableIds().next(Date.UTC(2026, 0, 1));
    assert.match(id, SORTABLE_ID_PATTERN);
    assert.equal(id.length, 20);
  });

  it('encodes the time first, so ids from later milliseconds sort later', () => {
    const a = new SortableIds().next(1_000);
    const b = new SortableIds().next(1_001);
    assert.ok(a < b);
    assert.equal(a.slice(0, 10), '00000000Z8'); // 1000 = 31 * 32 + 8
  });

  it('strictly increases within one generator, even when the clock stands still or goes back', () => {
    const ids = new SortableIds();
    const out = [
      ids.next(5000),
      ...Array.from({ length: 1000 }, () => ids.next(5000)),
      ids.next(4000),
      ids.next(5001),
    ];
    for (let i = 1; i < out.length; i++) assert.ok(out[i - 1]! < out[i]!, `${out[i - 1]} < ${out[i]}`);
  });

  it('two generators at the same instant do not collide', () => {
    const seen = new Set<string>();
    for (let g = 0; g < 2000; g++) seen.add(new SortableIds().next(42));
    assert.equal(seen.size, 2000);
  });
});
