import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SelectedView } from './selected.ts';

const plain = { condstore: false, qresync: false };

function view(uids: number[]): SelectedView {
  return new SelectedView(
    'INBOX',
    7,
    false,
    uids.map((uid) => ({ uid, modseq: uid })),
    10,
  );
}

describe('SelectedView: sequence numbers and sets (RFC 9051 §2.3.1.2, §9)', () => {
  test('numbers and UIDs map both ways; sets resolve against the view', () => {
    const v = view([3, 5, 9, 12]);
    assert.equal(v.seqOf(9), 3);
    assert.equal(v.uidAt(4), 12);
    assert.deepEqual(
      v.resolve({ kind: 'set', ranges: [{ from: 2, to: '*' }] }, false, null).uids,
      [5, 9, 12],
    );
    assert.deepEqual(v.resolve({ kind: 'set', ranges: [{ from: 4, to: 10 }] }, true, null).uids, [5, 9]);
    // "*" in a UID set is the highest UID, also when the range's other end is above it (RFC 9051 §6.4.9).
    assert.deepEqual(v.resolve({ kind: 'set', ranges: [{ from: 100, to: '*' }] }, true, null).uids, [12]);
    assert.equal(v.resolve({ kind: 'set', ranges: [{ from: 5, to: 5 }] }, false, null).invalidSeq, true);
    assert.deepEqual(v.resolve({ kind: 'saved' }, true, [9, 99]).uids, [9]);
  });
});

describe('SelectedView: updates in an order that keeps numbers right', () => {
  test('expunges highest number first, then EXISTS, then FETCH of changed flags', () => {
    const v = view([1, 2, 3, 4]);
    const lines = v.applyChanges(
      {
        highestModseq: 20,
        vanished: [2, 3],
        changed: [
          { uid: 4, flags: ['\\Seen'], modseq: 15 },
          { uid: 5, flags: [], modseq: 16 },
        ],
      },
      true,
      plain,
    );
    assert.deepEqual(lines, [
      '* 3 EXPUNGE\r\n',
      '* 2 EXPUNGE\r\n',
      '* 3 EXISTS\r\n',
      '* 2 FETCH (FLAGS (\\Seen))\r\n',
    ]);
    assert.deepEqual(v.allUids(), [1, 4, 5]);
  });

  test('while FETCH/STORE/SEARCH answer, expunges wait and numbers stay', () => {
    const v = view([1, 2, 3]);
    assert.deepEqual(v.applyChanges({ highestModseq: 11, vanished: [2], changed: [] }, false, plain), []);
    assert.equal(v.isPendingExpunge(2), true);
    assert.equal(v.seqOf(3), 3);
    assert.deepEqual(v.applyChanges({ highestModseq: 11, vanished: [], changed: [] }, true, plain), [
      '* 2 EXPUNGE\r\n',
    ]);
  });

  test('QRESYNC: VANISHED instead of EXPUNGE, UID and MODSEQ in FETCH', () => {
    const v = view([1, 2, 3]);
    const lines = v.applyChanges(
      { highestModseq: 30, vanished: [1, 3], changed: [{ uid: 2, flags: ['$Jürgen'], modseq: 30 }] },
      true,
      { condstore: true, qresync: true },
    );
    assert.deepEqual(lines, ['* VANISHED 1,3\r\n', '* 1 FETCH (FLAGS ($Jürgen) UID 2 MODSEQ (30))\r\n']);
  });

  test('a change this client was already told of is not repeated', () => {
    const v = view([1, 2]);
    v.told(2, 40);
    assert.deepEqual(
      v.applyChanges(
        { highestModseq: 40, vanished: [], changed: [{ uid: 2, flags: [], modseq: 40 }] },
        true,
        plain,
      ),
      [],
    );
  });
});
