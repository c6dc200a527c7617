// Sieve tokens (RFC 5228 §8.1): identifiers, tags, numbers with K/M/G, quoted strings with "\" escapes,
// "text:" multi-line strings with dot-stuffing, the punctuation [ ] ( ) { } ; , and both comment forms.
// Each token carries its 1-based line and column (in code points). Bare LF is accepted wherever the RFC
// asks for CRLF; lines of a multi-line string come out CRLF-terminated.
// PURE and total: a malformed script yields a SieveError at the offending position, never an exception.
// The lexer is pulled one token at a time, so a hostile script is refused at its first bad token.
// Deliberately NOT here: the grammar (parser.ts), encoded-character and variables (validate.ts).

import type { SieveError, SievePosition } from './ast.ts';

export type TokenKind =
  'identifier' | 'tag' | 'number' | 'string' | '[' | ']' | '(' | ')' | '{' | '}' | ';' | ',' | 'eof';

export interface Token extends SievePosition {
  readonly kind: TokenKind;
  /** identifier / tag: the name in lower case (tags without ":"); string: the value. */
  readonly text: string;
  /** number: the value, quantifier applied. */
  readonly value: number;
}

/** RFC 5228 §2.4.1 asks for 31 bits at least; Pigeonhole takes 64, so a script valid there is valid here. */
const MAX_NUMBER = 2n ** 64n - 1n;
const QUANTIFIERS: Readonly<Record<string, bigint>> = { k: 1024n, m: 1024n ** 2n, g: 1024n ** 3n };

const PUNCTUATION = new Set(['[', ']', '(', ')', '{', '}', ';', ',']);

function isAlpha(c: string | undefined): boolean {
  return c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_');
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** The first NUL or lone surrogate in `text`, as an error; null when the text is clean. */
export function checkText(text: string): SieveError | null {
  let line = 1;
  let column = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) return { line, column, message: 'NUL character in script' };
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return { line, column, message: 'invalid UTF-8 in script' };
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return { line, column, message: 'invalid UTF-8 in script' };
    }
    if (c === 0x0a) {
      line++;
      column = 1;
    } else column++;
  }
  return null;
}

export class SieveLexer {
  readonly #src: string;
  #pos = 0;
  #line = 1;
  #column = 1;

  constructor(src: string) {
    this.#src = src;
  }

  /** Move over `n` UTF-16 units, keeping line and column. */
  #advance(n: number): void {
    const end = Math.min(this.#pos + n, this.#src.length);
    const src = this.#src;
    for (let i = this.#pos; i < end; i++) {
      const c = src.charCodeAt(i);
      if (c === 0x0a) {
        this.#line++;
        this.#column = 1;
      } else if (c < 0xdc00 || c > 0xdfff) this.#column++; // a low surrogate ends a character already counted
    }
    this.#pos = end;
  }

  #here(): SievePosition {
    return { line: this.#line, column: this.#column };
  }

  #error(at: SievePosition, message: string): SieveError {
    return { line: at.line, column: at.column, message };
  }

  /** Skip white space and comments; an error for an unterminated bracket comment. */
  #skipSpace(): SieveError | null {
    const src = this.#src;
    for (;;) {
      const c = src[this.#pos];
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') this.#advance(1);
      else if (c === '#') {
        const nl = src.indexOf('\n', this.#pos);
        this.#advance((nl < 0 ? src.length : nl + 1) - this.#pos);
      } else if (c === '/' && src[this.#pos + 1] === '*') {
        const at = this.#here();
        const end = src.indexOf('*/', this.#pos + 2);
        if (end < 0) return this.#error(at, 'unterminated comment: "/*" without "*/"');
        this.#advance(end + 2 - this.#pos);
      } else return null;
    }
  }

  next(): Token | SieveError {
    const skipped = this.#skipSpace();
    if (skipped) return skipped;
    const src = this.#src;
    const at = this.#here();
    const c = src[this.#pos];
    const token = (kind: TokenKind, text = '', value = 0): Token => ({ kind, text, value, ...at });
    if (c === undefined) return token('eof');
    if (PUNCTUATION.has(c)) {
      this.#advance(1);
      return token(c as TokenKind);
    }
    if (c === '"') return this.#quoted(at);
    if (isDigit(c)) return this.#number(at);
    if (c === ':') {
      if (!isAlpha(src[this.#pos + 1])) return this.#error(at, 'expected a tag name after ":"');
      this.#advance(1);
      return token('tag', this.#identifier());
    }
    if (isAlpha(c)) {
      const name = this.#identifier();
      if (name === 'text' && src[this.#pos] === ':') return this.#multiLine(at);
      return token('identifier', name);
    }
    const shown = String.fromCodePoint(src.codePointAt(this.#pos) ?? 0);
    return this.#error(at, `unexpected character ${JSON.stringify(shown)}`);
  }

  #identifier(): string {
    const src = this.#src;
    let end = this.#pos + 1;
    while (isAlpha(src[end]) || isDigit(src[end])) end++;
    const name = src.slice(this.#pos, end).toLowerCase();
    this.#advance(end - this.#pos);
    return name;
  }

  #number(at: SievePosition): Token | SieveError {
    const src = this.#src;
    let end = this.#pos;
    while (isDigit(src[end])) end++;
    let value = BigInt(src.slice(this.#pos, end));
    const q = src[end]?.toLowerCase();
    if (q !== undefined && q in QUANTIFIERS) {
      value *= QUANTIFIERS[q]!;
      end++;
    }
    if (isAlpha(src[end]) || isDigit(src[end])) return this.#error(at, 'invalid number');
    if (value > MAX_NUMBER) return this.#error(at, `number too large (max ${MAX_NUMBER})`);
    this.#advance(end - this.#pos);
    return { kind: 'number', text: '', value: Number(value), ...at };
  }

  #quoted(at: SievePosition): Token | SieveError {
    const src = this.#src;
    const parts: string[] = [];
    let start = this.#pos + 1;
    for (let i = start; i < src.length; i++) {
      const c = src[i];
      if (c === '"') {
        parts.push(src.slice(start, i));
        this.#advance(i + 1 - this.#pos);
        return { kind: 'string', text: parts.join(''), value: 0, ...at };
      }
      if (c === '\\') {
        // RFC 5228 §2.4.2: "\" quotes the next character, whatever it is.
        parts.push(src.slice(start, i));
        if (i + 1 >= src.length) break;
        const width = (src.codePointAt(i + 1) ?? 0) > 0xffff ? 2 : 1;
        parts.push(src.slice(i + 1, i + 1 + width));
        start = i + 1 + width;
        i = start - 1;
      }
    }
    return this.#error(at, 'unterminated string');
  }

  /** After "text" with the ":" next: RFC 5228 §8.1 multi-line. */
  #multiLine(at: SievePosition): Token | SieveError {
    const src = this.#src;
    let i = this.#pos + 1;
    while (src[i] === ' ' || src[i] === '\t') i++;
    if (src[i] === '#') {
      const nl = src.indexOf('\n', i);
      if (nl < 0) return this.#error(at, 'unterminated multi-line string');
      i = nl + 1;
    } else if (src[i] === '\n') i++;
    else if (src[i] === '\r' && src[i + 1] === '\n') i += 2;
    else return this.#error(at, 'expected a line break after "text:"');
    const lines: string[] = [];
    for (;;) {
      if (i >= src.length) return this.#error(at, 'unterminated multi-line string: no "." line');
      const nl = src.indexOf('\n', i);
      const end = nl < 0 ? src.length : nl;
      let line = src.slice(i, end);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      i = nl < 0 ? src.length : nl + 1;
      if (line === '.') break;
      lines.push(line.startsWith('.') ? line.slice(1) : line);
    }
    this.#advance(i - this.#pos);
    return { kind: 'string', text: lines.map((l) => `${l}\r\n`).join(''), value: 0, ...at };
  }
}
