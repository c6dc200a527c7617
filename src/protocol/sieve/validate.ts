// parseSieve: a Sieve script's text (or UTF-8 bytes, as uploaded over ManageSieve) to a validated
// script, or every error found with its line and column. Checks the text (size, UTF-8, NUL), the syntax
// (parser.ts), then the meaning: "require" only at the start and only of capabilities Tern has
// (RFC 5228 §3.2), if / elsif / else chaining (§3.1), and each command and test against its signature
// (validate-commands.ts, validate-tests.ts), including that its extension was required.
// PURE and total: never throws, whatever the input. Deliberately NOT here: running a script.

import type { Branch, Command, SieveError, SieveScript, SyntaxCommand, Test } from './ast.ts';
import { checkText } from './lexer.ts';
import { parseSyntax } from './parser.ts';
import { validateCommand } from './validate-commands.ts';
import { ValidationContext, listOf } from './validate-context.ts';
import { validateTest } from './validate-tests.ts';

/** The capabilities Tern implements: what ManageSieve announces as SIEVE (RFC 5804 §1.7). */
export const SIEVE_EXTENSIONS: readonly string[] = Object.freeze([
  'fileinto',
  'reject',
  'ereject',
  'envelope',
  'encoded-character',
  'variables',
  'relational',
  'subaddress',
  'copy',
  'imap4flags',
  'body',
  'date',
  'index',
  'editheader',
  'mailbox',
  'spamtest',
  'spamtestplus',
  'vacation',
  'vacation-seconds',
  'comparator-i;ascii-numeric',
]);

/** Always there (RFC 5228 §2.7.3), so a script may require them, though they are not announced. */
const IMPLICIT = ['comparator-i;octet', 'comparator-i;ascii-casemap'];

/** A capability that brings another with it. */
const IMPLIES: Readonly<Record<string, string>> = {
  'vacation-seconds': 'vacation',
  spamtestplus: 'spamtest',
};

export interface ParseOptions {
  /** Longer scripts are refused before parsing (default 1 MiB). */
  readonly maxScriptBytes?: number;
  /** Deepest nesting of blocks, and separately of tests (default 32). */
  readonly maxNesting?: number;
  /** Errors reported at most (default 20). */
  readonly maxErrors?: number;
  /** The capabilities allowed (default SIEVE_EXTENSIONS): an administrator may switch some off. */
  readonly extensions?: readonly string[];
}

export type ParseResult =
  | { readonly ok: true; readonly script: SieveScript; readonly warnings: readonly SieveError[] }
  | { readonly ok: false; readonly errors: readonly SieveError[] };

const DEFAULTS = { maxScriptBytes: 1024 * 1024, maxNesting: 32, maxErrors: 20 };

/** Offset of the first octet that does not belong to well-formed UTF-8, or -1. */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length;) {
    const c = b[i]!;
    let n: number;
    let min: number;
    if (c < 0x80) n = 0;
    else if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) n = 2;
    else if (c >= 0xf0 && c <= 0xf4) n = 3;
    else return i;
    if (n === 0) {
      i++;
      continue;
    }
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (n === 2) min = 0x800;
    else if (n === 3) min = 0x10000;
    else min = 0x80;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return -1;
}

function positionAt(text: string): { line: number; column: number } {
  const lines = text.split('\n');
  return { line: lines.length, column: [...lines.at(-1)!].length + 1 };
}

/** Parse and validate a Sieve script. */
export function parseSieve(input: string | Uint8Array, options: ParseOptions = {}): ParseResult {
  try {
    return parseChecked(input, options);
  } catch (err) {
    // Nothing above should throw; if a bug does, the script is refused rather than the caller crashed.
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, errors: [{ line: 1, column: 1, message: `internal error: ${message}` }] };
  }
}

function parseChecked(input: string | Uint8Array, options: ParseOptions): ParseResult {
  const limits = { ...DEFAULTS, ...options };
  const fail = (e: SieveError): ParseResult => ({ ok: false, errors: [e] });
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.length;
  if (size > limits.maxScriptBytes) {
    return fail({
      line: 1,
      column: 1,
      message: `script too large: ${size} bytes (limit ${limits.maxScriptBytes})`,
    });
  }
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    const bad = firstInvalidUtf8(input);
    const decoder = new TextDecoder('utf-8');
    if (bad >= 0)
      return fail({
        ...positionAt(decoder.decode(input.subarray(0, bad))),
        message: 'invalid UTF-8 in script',
      });
    text = decoder.decode(input);
  }
  const textError = checkText(text);
  if (textError) return fail(textError);
  const syntax = parseSyntax(text, limits.maxNesting);
  if (!syntax.ok) return fail(syntax.error);
  return validate(syntax.commands, limits.extensions ?? SIEVE_EXTENSIONS, limits.maxErrors);
}

function validate(
  nodes: readonly SyntaxCommand[],
  available: readonly string[],
  maxErrors: number,
): ParseResult {
  const known = new Set([...available, ...IMPLICIT]);
  const requires: string[] = [];
  const enabled = new Set<string>();
  const ctx = new ValidationContext(enabled, maxErrors);
  let start = 0;
  for (; start < nodes.length && nodes[start]!.name === 'require'; start++) {
    const node = nodes[start]!;
    const read = ctx.read(node, 'the require command', { tags: {}, positional: ['list'] });
    if (node.tests.length > 0 || node.block !== null)
      ctx.error(node.pos, 'the require command takes no tests or block');
    for (const cap of listOf(read.positional[0])) {
      if (!known.has(cap)) {
        ctx.error(node.pos, `unknown Sieve capability '${cap}'`);
        continue;
      }
      if (!requires.includes(cap)) requires.push(cap);
      enabled.add(cap);
      const implied = IMPLIES[cap];
      if (implied !== undefined) enabled.add(implied);
    }
  }
  const commands = validateBlock(ctx, nodes.slice(start));
  if (ctx.errors.length > 0) return { ok: false, errors: ctx.errors };
  return { ok: true, script: { requires, commands }, warnings: ctx.warnings };
}

function validateBlock(ctx: ValidationContext, nodes: readonly SyntaxCommand[]): Command[] {
  const out: Command[] = [];
  let chain: Branch[] | null = null;
  for (const node of nodes) {
    switch (node.name) {
      case 'require':
        ctx.error(node.pos, 'require commands can only be placed at the start of the script');
        chain = null;
        break;
      case 'if': {
        chain = [branch(ctx, node, true)];
        out.push({ kind: 'if', branches: chain });
        break;
      }
      case 'elsif':
      case 'else':
        if (chain === null) {
          ctx.error(node.pos, `${node.name} must follow if or elsif`);
          validateBlock(ctx, node.block ?? []);
          break;
        }
        chain.push(branch(ctx, node, node.name === 'elsif'));
        if (node.name === 'else') chain = null;
        break;
      default: {
        chain = null;
        const command = validateCommand(ctx, node);
        if (command) out.push(command);
      }
    }
  }
  return out;
}

function branch(ctx: ValidationContext, node: SyntaxCommand, withTest: boolean): Branch {
  const what = `the ${node.name} command`;
  if (node.args.length > 0) ctx.error(node.args[0]!.pos, `${what} takes no arguments`);
  let test: Test | null = null;
  if (withTest) {
    if (node.testList) ctx.error(node.pos, `${what} takes one test, not a test list`);
    else if (node.tests.length !== 1) ctx.error(node.pos, `${what} needs a test`);
    const t = node.tests[0];
    test = t ? validateTest(ctx, t) : { kind: 'false' };
  } else if (node.tests.length > 0) ctx.error(node.tests[0]!.pos, `${what} takes no test`);
  if (node.block === null) ctx.error(node.pos, `${what} needs a block`);
  return { test, block: validateBlock(ctx, node.block ?? []) };
}
