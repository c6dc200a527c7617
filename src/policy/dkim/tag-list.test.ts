import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTagList, stripWhitespace } from './tag-list.ts';

function tags(text: string): Record<string, string> {
  const parsed = parseTagList(text);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  return Object.fromEntries(parsed.tags);
}

describe('parseTagList (RFC 6376 §3.2)', () => {
  test('values lose folding whitespace at their edges and keep it inside', () => {
    assert.deepEqual(tags(' v=1;\r\n\ta = rsa-sha256 ; h=from :\r\n to; b=ab\r\n cd'), {
      v: '1',
      a: 'rsa-sha256',
      h: 'from :\r\n to',
      b: 'ab\r\n cd',
    });
  });

  test('empty values, a trailing ";" and empty segments are accepted', () => {
    assert.deepEqual(tags('p=; t=y;;'), { p: '', t: 'y' });
  });

  test('the order of tags is kept (key records need v= first)', () => {
    const parsed = parseTagList('k=rsa; v=DKIM1; p=x');
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.order, ['k', 'v', 'p']);
  });

  test('tag names are case-sensitive', () => {
    assert.deepEqual(tags('V=1; v=2'), { V: '1', v: '2' });
  });

  for (const [text, why] of [
    ['v=1; v=1', 'duplicate tag v='],
    ['v=1; novalue', 'tag without "="'],
    ['1v=2', 'bad tag name'],
    ['a b=1', 'bad tag name'],
    ['v=1\x00', 'bad characters'],
  ] as const) {
    test(`"${JSON.stringify(text)}" is refused: ${why}`, () => {
      const parsed = parseTagList(text);
      assert.equal(parsed.ok, false);
      assert.match(parsed.ok ? '' : parsed.reason, new RegExp(why.replace(/[=]/g, '\\=')));
    });
  }

  test('8-bit octets (RFC 8616 UTF-8 domains, as latin1 chars) are allowed in values', () => {
    const utf8 = Buffer.from('d=bücher.example', 'utf8').toString('latin1');
    assert.equal(tags(utf8)['d'], Buffer.from('bücher.example', 'utf8').toString('latin1'));
  });

  test('stripWhitespace removes folds inside base64', () => {
    assert.equal(stripWhitespace('ab\r\n cd\tef gh'), 'abcdefgh');
  });
});
