import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeStructure, encodeStructure } from './codec.ts';
import { scanMessage } from './structure.ts';

const FIXTURES = new URL('../../../test/fixtures/mime/', import.meta.url).pathname;

test('every corpus structure survives encode/decode unchanged', () => {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? walk(p) : /\.(eml|txt)$/.test(f) ? [p] : [];
    });
  const files = walk(FIXTURES);
  assert.ok(files.length > 40);
  for (const f of files) {
    const s = scanMessage(readFileSync(f));
    assert.deepEqual(decodeStructure(encodeStructure(s)), s, f);
  }
});

test('another version, broken JSON or a wrong shape decode to null', () => {
  const good = encodeStructure(scanMessage(Buffer.from('Subject: x\r\n\r\nhi')));
  assert.ok(decodeStructure(good));
  assert.equal(decodeStructure(good.replace('"v":1', '"v":2')), null);
  assert.equal(decodeStructure(good.slice(0, -3)), null);
  assert.equal(decodeStructure('{"v":1,"size":1,"preview":"","root":[1,2]}'), null);
  assert.equal(decodeStructure('null'), null);
});
