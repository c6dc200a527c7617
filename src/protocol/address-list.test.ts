import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { extractAddresses } from './address-list.ts';

const cases: Array<[string, string[]]> = [
  ['Alice <alice@example.test>', ['alice@example.test']],
  ['alice@example.test', ['alice@example.test']],
  ['"Doe, John" <john@x.test>, bob@y.test', ['john@x.test', 'bob@y.test']],
  ['undisclosed-recipients:;', []],
  ['Team: a@b.test, "c" <c@d.test>;', ['a@b.test', 'c@d.test']],
  ['a@b.test (Alice <fake@evil.test>)', ['a@b.test']],
  ['=?utf-8?q?J=C3=B6?= <jo@x.test>', ['jo@x.test']],
  ['<@route.test:u@x.test>', ['u@x.test']],
  ['"a@evil.test" <real@x.test>', ['real@x.test']],
  ['x', []],
];

for (const [value, expected] of cases) {
  it(`extractAddresses(${JSON.stringify(value)})`, () => {
    assert.deepEqual(extractAddresses(value), expected);
  });
}

it('never throws on any input', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => Array.isArray(extractAddresses(s))));
});
