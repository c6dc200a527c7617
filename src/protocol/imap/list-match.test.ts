import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compilePattern, joinReference } from './list-match.ts';

describe('LIST patterns (RFC 9051 §6.3.9)', () => {
  const names = [
    'INBOX',
    'INBOX/Sub',
    'Sent',
    'Archive',
    'Archive/2024',
    'Archive/2024/Q1',
    'Entwürfe',
    '日本/東京',
  ];
  const match = (p: string): string[] => names.filter((n) => compilePattern(p, '/').test(n));

  test('* crosses the separator, % does not', () => {
    assert.deepEqual(match('*'), names);
    assert.deepEqual(match('%'), ['INBOX', 'Sent', 'Archive', 'Entwürfe']);
    assert.deepEqual(match('Archive/%'), ['Archive/2024']);
    assert.deepEqual(match('Archive/*'), ['Archive/2024', 'Archive/2024/Q1']);
  });

  test('INBOX without case at the first level; other names with case', () => {
    assert.deepEqual(match('inbox'), ['INBOX']);
    assert.deepEqual(match('Inbox/%'), ['INBOX/Sub']);
    assert.deepEqual(match('sent'), []);
  });

  test('UTF-8 names and regex characters are literal', () => {
    assert.deepEqual(match('Entw%'), ['Entwürfe']);
    assert.deepEqual(match('日本/%'), ['日本/東京']);
    assert.equal(compilePattern('a.b', '/').test('axb'), false);
    assert.equal(compilePattern('(x)+', '/').test('(x)+'), true);
  });

  test('the reference joins without a doubled separator', () => {
    assert.equal(joinReference('Archive/', '%', '/'), 'Archive/%');
    assert.equal(joinReference('Archive', '%', '/'), 'Archive/%');
    assert.equal(joinReference('', 'Sent', '/'), 'Sent');
    assert.equal(joinReference('Archive', '/x', '/'), '/x');
  });
});
