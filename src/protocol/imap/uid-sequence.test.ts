import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMPACT_AT, UidSequence } from './uid-sequence.ts';

describe("UidSequence: a shared base plus this session's changes", () => {
  it('agrees with a plain array under random pushes, removals and compactions', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let run = 0; run < 50; run++) {
      const start = Array.from({ length: rnd(300) }, (_, i) => i * 2 + 1);
      const model = [...start];
      const base = Uint32Array.from(start);
      const seq = new UidSequence(base);
      let next = (start.at(-1) ?? 0) + 1;
      let shared = 0;
      for (let op = 0; op < 2000; op++) {
        const r = rnd(10);
        if (r < 4 && model.length > 0) {
          const s = 1 + rnd(model.length);
          seq.removeAt(s);
          model.splice(s - 1, 1);
        } else if (r < 7) {
          next += 1 + rnd(3);
          seq.push(next);
          model.push(next);
        } else {
          seq.compact((built) => {
            shared++;
            return built;
          });
        }
        assert.equal(seq.length, model.length);
        assert.equal(seq.max, model.at(-1) ?? 0);
        const probe = 1 + rnd(next + 1);
        const at = model.indexOf(probe);
        assert.equal(seq.seqOf(probe), at + 1);
        if (model.length > 0) {
          const s = 1 + rnd(model.length);
          assert.equal(seq.uidAt(s), model[s - 1]);
        }
        const lb = model.findIndex((u) => u >= probe);
        assert.equal(seq.lowerBound(probe), lb < 0 ? model.length : lb);
      }
      assert.deepEqual([...seq.toArray()], model);
      assert.ok(shared >= 0);
    }
  });

  it('the base is never written to, and compaction waits for COMPACT_AT changes', () => {
    const base = Uint32Array.from([1, 2, 3, 4]);
    const seq = new UidSequence(base);
    seq.removeAt(2);
    seq.push(9);
    assert.deepEqual([...base], [1, 2, 3, 4]);
    let calls = 0;
    seq.compact((b) => {
      calls++;
      return b;
    });
    assert.equal(calls, 0);
    for (let i = 0; i < COMPACT_AT; i++) seq.push(100 + i);
    const other = Uint32Array.from(seq.toArray());
    seq.compact(() => other);
    assert.equal(seq.baseArray, other);
    assert.equal(seq.pristine, true);
  });
});
