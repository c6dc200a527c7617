import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Comparator, MatchSpec, MatchType } from './ast.ts';
import { MatchBudgetExceeded, compareWith, globMatch, matchValues, type MatchBudget } from './match.ts';

const budget = (): MatchBudget => ({ steps: 50_000_000 });
const spec = (type: MatchType, comparator: Comparator = 'i;ascii-casemap'): MatchSpec => ({
  type,
  comparator,
});
const matches = (value: string, pattern: string, fold = true): string[] | null =>
  globMatch(value, pattern, fold, budget());

describe('sieve matching', () => {
  test(':matches wildcards and escapes (RFC 5228 §2.7.1)', () => {
    assert.ok(matches('hello', 'h*o'));
    assert.ok(matches('hello', 'h?llo'));
    assert.ok(matches('', '*'));
    assert.equal(matches('', '?'), null);
    assert.equal(matches('hello', 'h*x'), null);
    assert.ok(matches('a*b', 'a\\*b'));
    assert.equal(matches('axb', 'a\\*b'), null);
    assert.ok(matches('a?b', 'a\\?b'));
    assert.ok(matches('a\\b', 'a\\\\b'));
    assert.ok(matches('HeLLo', 'hello'));
    assert.equal(matches('HeLLo', 'hello', false), null);
  });

  test('match variables: each wildcard takes the shortest expansion, left to right (RFC 5229 §3.2)', () => {
    // The RFC 5229 §3.2 example.
    assert.deepEqual(matches('[acme-users] [fwd] version 1.0 is out', '[*] *'), [
      '[acme-users] [fwd] version 1.0 is out',
      'acme-users',
      '[fwd] version 1.0 is out',
    ]);
    assert.deepEqual(matches('aXbXc', '*X*'), ['aXbXc', 'a', 'bXc']);
    // What Pigeonhole gives for the same pattern (checked with sieve-test).
    assert.deepEqual(matches('aXbXc', '?*X*?'), ['aXbXc', 'a', '', 'bX', 'c']);
    assert.deepEqual(matches('jo+tag@example.org', '*+*@*'), [
      'jo+tag@example.org',
      'jo',
      'tag',
      'example.org',
    ]);
  });

  test('code points, not UTF-16 units: "?" takes one character of 日本 or 😀', () => {
    assert.deepEqual(matches('日本@example.jp', '??@*'), ['日本@example.jp', '日', '本', 'example.jp']);
    assert.deepEqual(matches('😀x', '?x'), ['😀x', '😀']);
    assert.deepEqual(matches('jürgen@example.org', 'j?rgen@*'), ['jürgen@example.org', 'ü', 'example.org']);
    // i;ascii-casemap folds ASCII only.
    assert.equal(matches('JÜRGEN', 'jürgen'), null);
    assert.ok(matches('JüRGEN', 'jürgen'));
  });

  test('a hostile pattern against a long value finishes fast (no backtracking blow-up)', () => {
    const pattern = `${'*a'.repeat(30)}*b`;
    const value = 'a'.repeat(100_000);
    const started = performance.now();
    assert.equal(globMatch(value, pattern, true, budget()), null);
    assert.ok(globMatch(`${value}b`, pattern, true, budget()));
    assert.equal(globMatch('a'.repeat(5000), '*?'.repeat(200) + 'b', true, budget()), null);
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
  });

  test('a run that spends its budget stops with MatchBudgetExceeded', () => {
    const small: MatchBudget = { steps: 10_000 };
    assert.throws(
      () => globMatch(`${'a'.repeat(100_000)}c`, '*aaaaaaaaab*c', false, small),
      MatchBudgetExceeded,
    );
  });

  test('comparators (RFC 4790 §9)', () => {
    assert.equal(compareWith('i;octet', 'a', 'A') > 0, true);
    assert.equal(compareWith('i;ascii-casemap', 'abc', 'ABC'), 0);
    assert.ok(compareWith('i;octet', '\uffff', '😀') < 0, 'code point order, as UTF-8 octets');
    assert.equal(compareWith('i;ascii-numeric', '007', '7'), 0);
    assert.ok(compareWith('i;ascii-numeric', '10', '9') > 0);
    assert.ok(compareWith('i;ascii-numeric', '123456789012345678901234567890', '99') > 0);
    assert.ok(compareWith('i;ascii-numeric', 'abc', '99999') > 0, 'no digits is positive infinity');
    assert.equal(compareWith('i;ascii-numeric', 'abc', 'def'), 0);
    assert.equal(compareWith('i;ascii-numeric', '12abc', '12'), 0);
  });

  test(':is, :contains with each comparator', () => {
    const b = budget();
    assert.ok(matchValues(spec({ kind: 'is' }), ['Hello'], ['hello'], b).matched);
    assert.ok(!matchValues(spec({ kind: 'is' }, 'i;octet'), ['Hello'], ['hello'], b).matched);
    assert.ok(matchValues(spec({ kind: 'contains' }), ['Hello World'], ['o w'], b).matched);
    assert.ok(matchValues(spec({ kind: 'contains' }), ['x'], [''], b).matched);
    assert.ok(!matchValues(spec({ kind: 'contains' }), [], [''], b).matched, 'no values never match');
    assert.ok(matchValues(spec({ kind: 'is' }, 'i;ascii-numeric'), ['0042'], ['42'], b).matched);
  });

  test('relational :value and :count (RFC 5231)', () => {
    const b = budget();
    const value = (
      relation: 'gt' | 'lt' | 'eq' | 'ne' | 'ge' | 'le',
      comparator: Comparator = 'i;ascii-numeric',
    ): MatchSpec => spec({ kind: 'value', relation }, comparator);
    assert.ok(matchValues(value('gt'), ['10'], ['9'], b).matched);
    assert.ok(!matchValues(value('gt', 'i;octet'), ['10'], ['9'], b).matched, 'as strings "10" < "9"');
    assert.ok(matchValues(value('ge'), ['9'], ['9'], b).matched);
    assert.ok(matchValues(value('ne'), ['9'], ['8'], b).matched);
    assert.ok(matchValues(value('lt', 'i;ascii-casemap'), ['apple'], ['BANANA'], b).matched);
    const count = (relation: 'gt' | 'eq'): MatchSpec => spec({ kind: 'count', relation }, 'i;ascii-numeric');
    assert.ok(matchValues(count('eq'), ['a', 'b', 'c'], ['3'], b).matched);
    assert.ok(matchValues(count('eq'), [], ['0'], b).matched);
    assert.ok(matchValues(count('gt'), ['a', 'b'], ['5', '1'], b).matched, 'any key');
  });

  test('the first :matches success gives the captures: values outer, keys inner (as Pigeonhole)', () => {
    const r = matchValues(
      spec({ kind: 'matches' }),
      ['me@example.org', 'plain@example.com'],
      ['*example.com', '*@*'],
      budget(),
    );
    assert.deepEqual(r.captures, ['me@example.org', 'me', 'example.org']);
  });
});
