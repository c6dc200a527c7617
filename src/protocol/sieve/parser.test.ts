import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseSyntax } from './parser.ts';
import { parseSieve } from './validate.ts';

const syntaxError = (src: string, maxNesting = 32): unknown => {
  const r = parseSyntax(src, maxNesting);
  return r.ok ? null : r.error;
};

describe('sieve grammar', () => {
  test('commands, tagged and positional arguments, string lists, tests and blocks', () => {
    const r = parseSyntax('if anyof (header :is "a" ["b", "c"], size :over 1K) { fileinto "x"; }\nstop;', 32);
    assert.ok(r.ok);
    const [ifc, stop] = r.commands;
    assert.equal(ifc!.name, 'if');
    assert.equal(ifc!.tests[0]!.name, 'anyof');
    assert.equal(ifc!.tests[0]!.testList, true);
    const header = ifc!.tests[0]!.tests[0]!;
    assert.deepEqual(header.args, [
      { kind: 'tag', name: 'is', pos: { line: 1, column: 18 } },
      { kind: 'string', value: 'a', pos: { line: 1, column: 22 } },
      { kind: 'list', values: ['b', 'c'], pos: { line: 1, column: 26 } },
    ]);
    assert.deepEqual(ifc!.tests[0]!.tests[1]!.args[1], {
      kind: 'number',
      value: 1024,
      pos: { line: 1, column: 49 },
    });
    assert.equal(ifc!.block![0]!.name, 'fileinto');
    assert.deepEqual(stop, {
      name: 'stop',
      pos: { line: 2, column: 1 },
      args: [],
      tests: [],
      testList: false,
      block: null,
    });
  });

  test('a single test is not a test list; not takes a test', () => {
    const r = parseSyntax('if not exists "x" {}', 32);
    assert.ok(r.ok);
    assert.equal(r.commands[0]!.testList, false);
    assert.equal(r.commands[0]!.tests[0]!.tests[0]!.name, 'exists');
  });

  test('syntax errors point at the offending token', () => {
    assert.deepEqual(syntaxError('keep'), {
      line: 1,
      column: 5,
      message: 'expected ";" or "{" after the keep command, found the end of the script',
    });
    assert.deepEqual(syntaxError('if true {\n  keep;\n'), {
      line: 3,
      column: 1,
      message: 'expected "}" to close the if block, found the end of the script',
    });
    assert.deepEqual(syntaxError('if anyof () {}'), {
      line: 1,
      column: 11,
      message: 'expected a test in the test list of anyof, found ")"',
    });
    assert.deepEqual(syntaxError('if allof (true,) {}'), {
      line: 1,
      column: 16,
      message: 'expected a test in the test list of allof, found ")"',
    });
    assert.deepEqual(syntaxError('require [];'), {
      line: 1,
      column: 10,
      message: 'expected a string in the string list, found "]"',
    });
    assert.deepEqual(syntaxError('require ["a" "b"];'), {
      line: 1,
      column: 14,
      message: 'expected "," or "]" in the string list, found a string',
    });
    assert.deepEqual(syntaxError('discard;\n ;'), {
      line: 2,
      column: 2,
      message: 'expected a command, found ";"',
    });
    assert.deepEqual(syntaxError('}'), { line: 1, column: 1, message: 'expected a command, found "}"' });
    assert.deepEqual(syntaxError('if true { keep; } }'), {
      line: 1,
      column: 19,
      message: 'expected a command, found "}"',
    });
  });

  test('block nesting is bounded', () => {
    const nested = (n: number): string => `${'if true {'.repeat(n)}keep;${'}'.repeat(n)}`;
    assert.equal(syntaxError(nested(32)), null);
    assert.deepEqual(syntaxError(nested(33)), {
      line: 1,
      column: 33 * 9,
      message: 'blocks nested deeper than 32',
    });
  });

  test('test nesting is bounded', () => {
    const nested = (n: number): string => `if ${'not '.repeat(n)}true {}`;
    assert.equal(syntaxError(nested(31)), null);
    assert.match(
      String((syntaxError(nested(40)) as { message: string }).message),
      /tests nested deeper than 32/,
    );
    const lists = (n: number): string => `if ${'anyof('.repeat(n)}true${')'.repeat(n)} {}`;
    assert.match(
      String((syntaxError(lists(100)) as { message: string }).message),
      /tests nested deeper than 32/,
    );
  });

  test('hostile inputs end quickly in an error: 1 MB of "{", of "if true {", of "not", of "["', () => {
    const started = performance.now();
    assert.ok(!parseSieve('{'.repeat(1_000_000)).ok);
    assert.ok(!parseSieve('if true {'.repeat(110_000)).ok);
    assert.ok(!parseSieve(`if ${'not '.repeat(250_000)}true {}`).ok);
    assert.ok(!parseSieve(`require ${'['.repeat(1_000_000)}`).ok);
    assert.ok(!parseSieve(`if ${'anyof('.repeat(170_000)}`).ok);
    assert.ok(performance.now() - started < 5000);
  });

  test('parseSieve never throws, whatever the input (property)', () => {
    const pieces = fc.constantFrom(
      'if', 'elsif', 'else', 'require', 'keep', 'fileinto', 'header', 'address', 'anyof', 'not', 'set',
      'vacation', 'text:\n', '.\n', ':is', ':matches', ':comparator', ':value', '"ge"', '"x"', '"${1}"',
      '"${hex:40}"', '[', ']', '(', ')', '{', '}', ';', ',', ' ', '\n', '#', '/*', '*/', '1K', '99999999999999999999',
      '"variables"', '"fileinto"', '"\\', '\0', '\ud800', '日本', 'jürgen',
    ); // prettier-ignore
    fc.assert(
      fc.property(fc.array(fc.oneof(pieces, fc.string()), { maxLength: 60 }), (parts) => {
        const r = parseSieve(parts.join(''));
        assert.equal(typeof r.ok, 'boolean');
        if (!r.ok) {
          assert.ok(r.errors.length > 0);
          for (const e of r.errors) assert.ok(e.line >= 1 && e.column >= 1 && e.message !== '');
        }
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assert.equal(typeof parseSieve(bytes).ok, 'boolean');
      }),
      { numRuns: 2000 },
    );
  });
});
