import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  dirNameForFolder,
  flagsFromLetters,
  folderFromDirName,
  formatKeywordsFile,
  formatSubscriptions,
  lettersForFlags,
  parseKeywordsFile,
  parseMaildirName,
  parseSubscriptions,
  parseUidList,
} from './maildir.ts';

describe('maildir names', () => {
  test("file names: Dovecot's ,S=/,W= stay in the unique part, info letters apart", () => {
    assert.deepEqual(parseMaildirName('1796603527.M14969P13633.vm,S=43,W=48:2,FSabc'), {
      unique: '1796603527.M14969P13633.vm,S=43,W=48',
      letters: 'FSabc',
    });
    assert.deepEqual(parseMaildirName('1796603535.M714221P13805.vm,S=29,W=32'), {
      unique: '1796603535.M714221P13805.vm,S=29,W=32',
      letters: '',
    });
    assert.deepEqual(parseMaildirName('1700000000.x.host!2,S'), {
      unique: '1700000000.x.host',
      letters: 'S',
    });
  });

  test('letters ↔ flags, keywords through dovecot-keywords; P is $Forwarded', () => {
    const keywords = parseKeywordsFile('0 $Forwarded\n1 custom1\n2 $Junk\n3 日本\n');
    assert.deepEqual(flagsFromLetters('DFPRSTacdz', keywords), {
      flags: [
        '\\Draft',
        '\\Flagged',
        '$Forwarded',
        '\\Answered',
        '\\Seen',
        '\\Deleted',
        '$Forwarded',
        '$Junk',
        '日本',
      ],
      unknown: ['z'],
    });
    const kw: (string | undefined)[] = ['custom1'];
    assert.deepEqual(lettersForFlags(['\\Seen', '$Later', '\\Draft', 'CUSTOM1', '\\Deleted'], kw), {
      letters: 'DSTab',
      lost: [],
    });
    assert.deepEqual(kw, ['custom1', '$Later']);
    assert.equal(formatKeywordsFile(kw), '0 custom1\n1 $Later\n');
    const full = Array.from({ length: 26 }, (_, i) => `k${i}`);
    assert.deepEqual(lettersForFlags(['k25', 'k26'], full), { letters: 'z', lost: ['k26'] });
  });

  test('Maildir++ folder names in modified UTF-7, both ways', () => {
    assert.equal(folderFromDirName('.a.b.c'), 'a/b/c');
    assert.equal(folderFromDirName('.&AOQ-rger'), 'ärger');
    assert.equal(folderFromDirName('.&ZeVnLA-.&Z3FOrA-'), '日本/東京');
    assert.equal(folderFromDirName('.x\\2ey'), 'x.y');
    assert.equal(folderFromDirName('.inbox'), 'INBOX');
    assert.equal(folderFromDirName('cur'), null);
    assert.equal(folderFromDirName('..'), null);
    assert.equal(folderFromDirName('.a..b'), null);
    for (const name of ['a/b/c', 'ärger', '日本/東京', 'x.y', 'R&D']) {
      assert.equal(folderFromDirName(dirNameForFolder(name)), name);
    }
    assert.equal(dirNameForFolder('日本/東京'), '.&ZeVnLA-.&Z3FOrA-');
  });

  test('subscriptions: version 2 (tab-separated levels) and the old one name a line', () => {
    const v2 = 'V\t2\n\na\tb\tc\n&AOQ-rger\nSent\n';
    assert.deepEqual(parseSubscriptions(v2), ['a/b/c', 'ärger', 'Sent']);
    assert.equal(formatSubscriptions(['a/b/c', 'ärger', 'Sent']), v2);
    assert.deepEqual(parseSubscriptions('INBOX\nArchive/2024\n&ZeVnLA-\n'), [
      'INBOX',
      'Archive/2024',
      '日本',
    ]);
  });

  test('dovecot-uidlist gives each file its UID', () => {
    const text = '3 V1796603540 N3 G0d3c\n1 :1796603527.M1P1.vm,S=43,W=48\n2 G12 :1796603528.M2P2.vm:2,S\n';
    assert.deepEqual(
      [...parseUidList(text)],
      [
        ['1796603527.M1P1.vm,S=43,W=48', 1],
        ['1796603528.M2P2.vm', 2],
      ],
    );
  });
});
