import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SieveError } from './ast.ts';
import { SieveLexer, checkText, type Token } from './lexer.ts';

function lex(src: string): (Token | SieveError)[] {
  const lexer = new SieveLexer(src);
  const out: (Token | SieveError)[] = [];
  for (;;) {
    const t = lexer.next();
    out.push(t);
    if ('message' in t || t.kind === 'eof') return out;
  }
}

const kinds = (src: string): string[] =>
  lex(src).map((t) =>
    'message' in t
      ? `error: ${t.message}`
      : t.kind === 'identifier' || t.kind === 'tag'
        ? `${t.kind}:${t.text}`
        : t.kind,
  );

describe('sieve lexer', () => {
  test('identifiers and tags are case-insensitive; punctuation', () => {
    assert.deepEqual(kinds('IF Header :IS [ "a" , "b" ] ( ) { } ;'), [
      'identifier:if',
      'identifier:header',
      'tag:is',
      '[',
      'string',
      ',',
      'string',
      ']',
      '(',
      ')',
      '{',
      '}',
      ';',
      'eof',
    ]);
  });

  test('numbers with K, M and G quantifiers (either case)', () => {
    const values = lex('1 10K 2m 3G 0').flatMap((t) => ('kind' in t && t.kind === 'number' ? [t.value] : []));
    assert.deepEqual(values, [1, 10 * 1024, 2 * 1024 ** 2, 3 * 1024 ** 3, 0]);
  });

  test('numbers past 2^64-1 are refused; a number glued to letters too', () => {
    assert.match(kinds('99999999999999999999').at(-1)!, /number too large/);
    assert.match(kinds('18446744073709551615G').at(-1)!, /number too large/);
    assert.deepEqual(kinds('18446744073709551615'), ['number', 'eof']);
    assert.match(kinds('12X').at(-1)!, /invalid number/);
  });

  test('quoted strings: \\" and \\\\ escapes, any other escaped character stands for itself', () => {
    const t = lex('"a\\"b\\\\c\\d" "日本\\語"')
      .filter((x): x is Token => 'kind' in x && x.kind === 'string')
      .map((x) => x.text);
    assert.deepEqual(t, ['a"b\\cd', '日本語']);
  });

  test('a quoted string may span lines', () => {
    const [s, next] = lex('"one\r\ntwo" x');
    assert.equal((s as Token).text, 'one\r\ntwo');
    assert.deepEqual([(next as Token).line, (next as Token).column], [2, 6]);
  });

  test('text: multi-line strings with dot-stuffing and a hash comment after text:', () => {
    const [s] = lex('text: # a comment\n..dot\nline two\r\n.\n;');
    assert.equal((s as Token).text, '.dot\r\nline two\r\n');
    const [empty] = lex('text:\n.\n');
    assert.equal((empty as Token).text, '');
  });

  test('comments of both kinds are skipped, positions stay right', () => {
    const toks = lex('# hash\n/* bracket\n comment */ keep').filter((t): t is Token => 'kind' in t);
    assert.equal(toks[0]!.text, 'keep');
    assert.deepEqual([toks[0]!.line, toks[0]!.column], [3, 13]);
  });

  test('columns count characters, not UTF-16 units', () => {
    const toks = lex('"😀日本" keep').filter((t): t is Token => 'kind' in t);
    assert.deepEqual([toks[1]!.line, toks[1]!.column], [1, 7]);
  });

  test('errors carry the position of what is wrong', () => {
    const last = (src: string): SieveError => lex(src).at(-1) as SieveError;
    assert.deepEqual(last('keep;\n  "never closed'), { line: 2, column: 3, message: 'unterminated string' });
    assert.deepEqual(last('keep;\n/* open'), {
      line: 2,
      column: 1,
      message: 'unterminated comment: "/*" without "*/"',
    });
    assert.deepEqual(last('x text:\nabc\n'), {
      line: 1,
      column: 3,
      message: 'unterminated multi-line string: no "." line',
    });
    assert.deepEqual(last('text: junk\n.\n'), {
      line: 1,
      column: 1,
      message: 'expected a line break after "text:"',
    });
    assert.deepEqual(last('keep @'), { line: 1, column: 6, message: 'unexpected character "@"' });
    assert.deepEqual(last(': x'), { line: 1, column: 1, message: 'expected a tag name after ":"' });
    assert.deepEqual(last('"\\'), { line: 1, column: 1, message: 'unterminated string' });
  });

  test('checkText finds NUL and lone surrogates', () => {
    assert.deepEqual(checkText('keep;\n ke\0ep;'), {
      line: 2,
      column: 4,
      message: 'NUL character in script',
    });
    assert.deepEqual(checkText('"\ud800"'), { line: 1, column: 2, message: 'invalid UTF-8 in script' });
    assert.deepEqual(checkText('"\udc00"'), { line: 1, column: 2, message: 'invalid UTF-8 in script' });
    assert.equal(checkText('"😀 jürgen 日本"'), null);
  });

  test('a long string full of escapes is read in linear time', () => {
    const src = `"${'\\a'.repeat(200_000)}"`;
    const started = performance.now();
    const [s] = lex(src);
    assert.equal((s as Token).text.length, 200_000);
    assert.ok(performance.now() - started < 1000);
  });
});
