// RFC 5267 contexts, the pure part: PARTIAL windows (§4.4, with imaptest's search-partial and
// sort-partial cases), ADDTO/REMOVEFROM diffs for SEARCH (position 0) and SORT (positions, replayed here
// to prove they rebuild the new order), REMOVEFROM before EXPUNGE through SelectedView, and pinning
// sequence numbers and `$` to UIDs. Programs with UTF-8 strings keep them untouched.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SearchKey } from './command.ts';
import { formatEsearchResponse } from './format.ts';
import {
  diffResults,
  formatContextUpdates,
  formatPartial,
  partialOf,
  pinSequenceKeys,
  removeResults,
  uidSetOf,
  type ContextUpdate,
} from './search-context.ts';
import { esearchResults } from './search.ts';
import { SelectedView } from './selected.ts';
import type { SequenceSet } from './syntax.ts';
import { parseOne } from './test-support.ts';

/** What a client does with the updates (RFC 5267 §4.3.3/§4.3.4), for a sorted context. */
function replay(before: readonly number[], updates: readonly ContextUpdate[]): number[] {
  const list = [...before];
  for (const u of updates) {
    if (u.kind === 'REMOVEFROM') {
      assert.deepEqual(list.slice(u.position - 1, u.position - 1 + u.uids.length), [...u.uids]);
      list.splice(u.position - 1, u.uids.length);
    } else list.splice(u.position - 1, 0, ...u.uids);
  }
  return list;
}

describe('PARTIAL (RFC 5267 §4.4)', () => {
  const all = [1, 2, 3, 4, 5];
  test('a window of the results; past the end, what there is, or NIL', () => {
    assert.deepEqual(partialOf(all, { first: 2, last: 4 }), [2, 3, 4]);
    assert.equal(formatPartial({ first: 1, last: 6 }, partialOf(all, { first: 1, last: 6 })), '(1:6 1:5)');
    assert.equal(formatPartial({ first: 6, last: 6 }, partialOf(all, { first: 6, last: 6 })), '(6:6 NIL)');
    const some = [1, 2, 4, 5];
    assert.equal(formatPartial({ first: 2, last: 3 }, partialOf(some, { first: 2, last: 3 })), '(2:3 2,4)');
    assert.equal(
      formatPartial({ first: 2, last: 10 }, partialOf(some, { first: 2, last: 10 })),
      '(2:10 2,4:5)',
    );
  });

  test('ESEARCH and ESORT carry it; a sorted window keeps sort order', () => {
    const r = esearchResults(all, all, ['PARTIAL'], false, { first: 1, last: 1 });
    assert.equal(formatEsearchResponse('t', false, r.items), '* ESEARCH (TAG "t") PARTIAL (1:1 1)\r\n');
    const sorted = [5, 3, 4, 2, 1];
    const s = esearchResults(sorted, sorted, ['PARTIAL'], true, { first: 2, last: 4 });
    assert.equal(
      formatEsearchResponse('t', true, s.items),
      '* ESEARCH (TAG "t") UID PARTIAL (2:4 3:4,2)\r\n',
    );
  });

  test('with other options, and SAVE keeps only the window', () => {
    const r = esearchResults([10, 20, 30], [10, 20, 30], ['COUNT', 'PARTIAL', 'SAVE'], false, {
      first: 2,
      last: 3,
    });
    assert.deepEqual(r.items, [
      ['COUNT', 3],
      ['PARTIAL', '(2:3 20,30)'],
    ]);
    assert.deepEqual(r.saved, [20, 30]);
  });

  test('UPDATE alone asks for no item; CONTEXT alone is RETURN () (ALL)', () => {
    const u = esearchResults(all, all, ['UPDATE'], false);
    assert.deepEqual(u.items, []);
    assert.equal(u.emit, true);
    assert.equal(formatEsearchResponse('B01', true, u.items), '* ESEARCH (TAG "B01") UID\r\n');
    assert.deepEqual(esearchResults(all, all, ['CONTEXT'], false).items, [['ALL', all]]);
    assert.deepEqual(esearchResults(all, all, ['CONTEXT', 'COUNT'], false).items, [['COUNT', 5]]);
  });
});

describe('ADDTO and REMOVEFROM (RFC 5267 §4.3)', () => {
  test('SEARCH: position 0, mailbox order, removals first', () => {
    assert.deepEqual(diffResults([1, 3, 5], [1, 2, 4, 5], false), [
      { kind: 'REMOVEFROM', position: 0, uids: [3] },
      { kind: 'ADDTO', position: 0, uids: [2, 4] },
    ]);
    assert.deepEqual(diffResults([1, 2], [1, 2], false), []);
  });

  test('SORT: runs at their positions, replaying to the new order', () => {
    const cases: [number[], number[]][] = [
      [
        [2, 1, 4, 3, 5],
        [1, 3, 5],
      ],
      [
        [1, 3, 5],
        [1, 4, 3, 5],
      ],
      [
        [5, 3, 4, 1, 2],
        [6, 5, 4, 7, 8, 2],
      ],
      [[], [9, 8]],
      [[9, 8], []],
    ];
    for (const [before, after] of cases) {
      const updates = diffResults(before, after, true);
      assert.deepEqual(replay(before, updates), after, `${before.join(',')} -> ${after.join(',')}`);
    }
    assert.deepEqual(diffResults([2, 1, 4, 3, 5], [1, 3, 5], true), [
      { kind: 'REMOVEFROM', position: 1, uids: [2] },
      { kind: 'REMOVEFROM', position: 2, uids: [4] },
    ]);
    assert.deepEqual(diffResults([1, 3, 5], [6, 1, 7, 8, 3, 5], true), [
      { kind: 'ADDTO', position: 1, uids: [6] },
      { kind: 'ADDTO', position: 3, uids: [7, 8] },
    ]);
  });

  test('expunged results: REMOVEFROM and what is left', () => {
    assert.deepEqual(removeResults([4, 2, 9], new Set([2, 7]), true), {
      updates: [{ kind: 'REMOVEFROM', position: 2, uids: [2] }],
      rest: [4, 9],
    });
    assert.deepEqual(removeResults([4, 9], new Set([7]), false), { updates: [], rest: [4, 9] });
  });

  test('the ESEARCH response, in the numbers the client knows', () => {
    const updates: ContextUpdate[] = [
      { kind: 'REMOVEFROM', position: 0, uids: [30] },
      { kind: 'ADDTO', position: 0, uids: [10, 20, 40] },
    ];
    assert.equal(
      formatContextUpdates('B01', true, updates, (u) => u),
      '* ESEARCH (TAG "B01") UID REMOVEFROM (0 30) ADDTO (0 10,20,40)\r\n',
    );
    const seqOf = new Map([
      [10, 1],
      [20, 2],
      [30, 3],
      [40, 4],
    ]);
    assert.equal(
      formatContextUpdates('B02', false, updates, (u) => seqOf.get(u)!),
      '* ESEARCH (TAG "B02") REMOVEFROM (0 3) ADDTO (0 1:2,4)\r\n',
    );
  });

  test('REMOVEFROM goes out before the EXPUNGE, with the number still valid (§4.3.4)', () => {
    const v = new SelectedView(
      'INBOX',
      7,
      false,
      [1, 2, 3, 4, 5].map((uid) => ({ uid, modseq: uid })),
      10,
    );
    const results = [2, 4];
    v.beforeExpunge = (uids) => {
      const { updates } = removeResults(results, new Set(uids), false);
      return updates.length === 0 ? [] : [formatContextUpdates('t', false, updates, (u) => v.seqOf(u))];
    };
    assert.deepEqual(v.expungeNow([3, 4, 5], { condstore: false, qresync: false }), [
      '* ESEARCH (TAG "t") REMOVEFROM (0 4)\r\n',
      '* 5 EXPUNGE\r\n',
      '* 4 EXPUNGE\r\n',
      '* 3 EXPUNGE\r\n',
    ]);
  });
});

describe('pinning a program to the messages it named (RFC 5267 §4.3)', () => {
  const seqToUid = [10, 20, 30, 40];
  const resolve = (set: SequenceSet, uid: boolean): number[] => {
    if (set.kind === 'saved') return [20, 40];
    const out: number[] = [];
    for (const r of set.ranges) {
      const a = r.from === '*' ? 4 : r.from;
      const b = r.to === '*' ? 4 : r.to;
      for (let s = Math.min(a, b); s <= Math.max(a, b); s++) out.push(uid ? s : seqToUid[s - 1]!);
    }
    return out;
  };

  test('sequence numbers and $ become UID sets; other keys stay', () => {
    const key = (parseOne('a SEARCH OR 2:3 $ NOT UID $ SUBJECT jürgen') as { program: { key: SearchKey } })
      .program.key;
    assert.deepEqual(pinSequenceKeys(key, resolve), {
      kind: 'and',
      keys: [
        {
          kind: 'or',
          left: { kind: 'uid', set: uidSetOf([20, 30]) },
          right: { kind: 'uid', set: uidSetOf([20, 40]) },
        },
        { kind: 'not', key: { kind: 'uid', set: uidSetOf([20, 40]) } },
        { kind: 'header', field: 'Subject', value: 'jürgen' },
      ],
    });
    const utf8 = (parseOne('a SEARCH CHARSET UTF-8 1,* FROM 日本') as { program: { key: SearchKey } }).program
      .key;
    assert.deepEqual(pinSequenceKeys(utf8, resolve), {
      kind: 'and',
      keys: [
        { kind: 'uid', set: uidSetOf([10, 40]) },
        { kind: 'header', field: 'From', value: '日本' },
      ],
    });
  });

  test('uidSetOf merges runs; no UIDs is a set that names nothing', () => {
    assert.deepEqual(uidSetOf([5, 1, 2, 3, 7]), {
      kind: 'set',
      ranges: [
        { from: 1, to: 3 },
        { from: 5, to: 5 },
        { from: 7, to: 7 },
      ],
    });
    assert.deepEqual(uidSetOf([]), { kind: 'set', ranges: [] });
  });
});
