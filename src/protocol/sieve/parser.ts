// The Sieve grammar (RFC 5228 §8.2) over the lexer's tokens: commands with arguments, an optional test
// or parenthesised test-list, and ";" or a block; string-lists in brackets. The result is a syntax tree
// with positions; what the commands mean is validate.ts's business.
// PURE and total: the first syntax error ends the parse and is returned with its position. Block and
// test nesting are bounded (maxNesting each), so the recursion depth is too, whatever the input.

import type { SieveError, SievePosition, SyntaxArgument, SyntaxCommand, SyntaxTest } from './ast.ts';
import { SieveLexer, type Token, type TokenKind } from './lexer.ts';

export type ParseSyntaxResult =
  | { readonly ok: true; readonly commands: SyntaxCommand[] }
  | { readonly ok: false; readonly error: SieveError };

/** Thrown inside the parser only; parseSyntax turns it into a result. */
class SyntaxFailure extends Error {
  readonly error: SieveError;
  constructor(error: SieveError) {
    super(error.message);
    this.error = error;
  }
}

const DESCRIBE: Partial<Record<TokenKind, string>> = {
  identifier: 'an identifier',
  tag: 'a tag',
  number: 'a number',
  string: 'a string',
  eof: 'the end of the script',
};

function at(t: Token): SievePosition {
  return { line: t.line, column: t.column };
}

function describe(t: Token): string {
  if (t.kind === 'identifier') return `identifier "${t.text}"`;
  if (t.kind === 'tag') return `tag ":${t.text}"`;
  return DESCRIBE[t.kind] ?? `"${t.kind}"`;
}

class Parser {
  readonly #lexer: SieveLexer;
  readonly #maxNesting: number;
  #token: Token;

  constructor(src: string, maxNesting: number) {
    this.#lexer = new SieveLexer(src);
    this.#maxNesting = maxNesting;
    this.#token = this.#pull();
  }

  #pull(): Token {
    const t = this.#lexer.next();
    if ('message' in t) throw new SyntaxFailure(t);
    return t;
  }

  #take(): Token {
    const t = this.#token;
    this.#token = this.#pull();
    return t;
  }

  #fail(t: Token, message: string): never {
    throw new SyntaxFailure({ line: t.line, column: t.column, message });
  }

  script(): SyntaxCommand[] {
    const commands = this.#commands(0);
    if (this.#token.kind !== 'eof')
      this.#fail(this.#token, `expected a command, found ${describe(this.#token)}`);
    return commands;
  }

  #commands(depth: number): SyntaxCommand[] {
    const out: SyntaxCommand[] = [];
    while (this.#token.kind === 'identifier') out.push(this.#command(depth));
    return out;
  }

  #command(depth: number): SyntaxCommand {
    const head = this.#take();
    const { args, tests, testList } = this.#arguments(head, 0);
    const t = this.#token;
    if (t.kind === ';') {
      this.#take();
      return { name: head.text, pos: at(head), args, tests, testList, block: null };
    }
    if (t.kind !== '{') {
      this.#fail(t, `expected ";" or "{" after the ${head.text} command, found ${describe(t)}`);
    }
    if (depth + 1 > this.#maxNesting) this.#fail(t, `blocks nested deeper than ${this.#maxNesting}`);
    this.#take();
    const block = this.#commands(depth + 1);
    if (this.#token.kind !== '}') {
      this.#fail(this.#token, `expected "}" to close the ${head.text} block, found ${describe(this.#token)}`);
    }
    this.#take();
    return { name: head.text, pos: at(head), args, tests, testList, block };
  }

  /** argument* [test / test-list] after a command or test identifier. */
  #arguments(
    head: Token,
    testDepth: number,
  ): { args: SyntaxArgument[]; tests: SyntaxTest[]; testList: boolean } {
    const args: SyntaxArgument[] = [];
    for (;;) {
      const t = this.#token;
      if (t.kind === 'tag') args.push({ kind: 'tag', name: this.#take().text, pos: at(t) });
      else if (t.kind === 'number') args.push({ kind: 'number', value: this.#take().value, pos: at(t) });
      else if (t.kind === 'string') args.push({ kind: 'string', value: this.#take().text, pos: at(t) });
      else if (t.kind === '[') args.push({ kind: 'list', values: this.#stringList(), pos: at(t) });
      else break;
    }
    const t = this.#token;
    if (t.kind === 'identifier') {
      this.#nest(t, testDepth);
      return { args, tests: [this.#test(testDepth + 1)], testList: false };
    }
    if (t.kind === '(') {
      this.#nest(t, testDepth);
      this.#take();
      const tests: SyntaxTest[] = [];
      for (;;) {
        if (this.#token.kind !== 'identifier') {
          this.#fail(
            this.#token,
            `expected a test in the test list of ${head.text}, found ${describe(this.#token)}`,
          );
        }
        tests.push(this.#test(testDepth + 1));
        const sep = this.#take();
        if (sep.kind === ')') break;
        if (sep.kind !== ',')
          this.#fail(sep, `expected "," or ")" in the test list of ${head.text}, found ${describe(sep)}`);
      }
      return { args, tests, testList: true };
    }
    return { args, tests: [], testList: false };
  }

  #nest(t: Token, testDepth: number): void {
    if (testDepth + 1 > this.#maxNesting) this.#fail(t, `tests nested deeper than ${this.#maxNesting}`);
  }

  #test(testDepth: number): SyntaxTest {
    const head = this.#take();
    const { args, tests, testList } = this.#arguments(head, testDepth);
    return { name: head.text, pos: at(head), args, tests, testList };
  }

  #stringList(): string[] {
    this.#take(); // "["
    const values: string[] = [];
    for (;;) {
      const t = this.#take();
      if (t.kind !== 'string') this.#fail(t, `expected a string in the string list, found ${describe(t)}`);
      values.push(t.text);
      const sep = this.#take();
      if (sep.kind === ']') return values;
      if (sep.kind !== ',') this.#fail(sep, `expected "," or "]" in the string list, found ${describe(sep)}`);
    }
  }
}

/** The syntax tree of `src`, or the first syntax error. */
export function parseSyntax(src: string, maxNesting: number): ParseSyntaxResult {
  try {
    return { ok: true, commands: new Parser(src, maxNesting).script() };
  } catch (err) {
    if (err instanceof SyntaxFailure) return { ok: false, error: err.error };
    // A bug here must not take the caller down: report it as a script error at the start.
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, error: { line: 1, column: 1, message: `internal parser error: ${message}` } };
  }
}
