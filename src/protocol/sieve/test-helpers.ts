// Shared by the Sieve tests (and test/conformance): a message and a SieveInput built from text, and a
// parse-then-run shorthand that fails loudly when the script does not parse.
// Deliberately NOT here: assertions about outcomes (each test file makes its own).

import type { SieveScript } from './ast.ts';
import { runSieve, type RunOptions, type SieveInput, type SieveOutcome } from './interpret.ts';
import { parseSieve } from './validate.ts';

export const DEFAULT_MESSAGE = [
  'From: "Jo Doe" <jo@example.org>',
  'To: me@example.com',
  'Subject: Hello there',
  'Date: Tue, 1 Apr 2008 13:14:15 +0200',
  'Message-ID: <m1@example.org>',
  '',
  'Hi, this is the body.',
  '',
].join('\r\n');

/** A SieveInput for `message` (LF or CRLF; LF becomes CRLF). */
export function makeInput(
  message: string = DEFAULT_MESSAGE,
  overrides: Partial<SieveInput> = {},
): SieveInput {
  const bytes = new TextEncoder().encode(message.replace(/\r?\n/g, '\r\n'));
  const text = Buffer.from(bytes).toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const headerBlock = end < 0 ? bytes : bytes.subarray(0, end + 4);
  return {
    envelope: { from: 'jo@example.org', to: 'me@example.com' },
    headerBlock,
    body: () => bytes,
    sizeBytes: bytes.length,
    now: { epochMs: Date.UTC(2024, 5, 15, 12, 30, 0), zone: '+0000' },
    mailboxes: new Set(['INBOX', 'Archive']),
    spam: null,
    userAddresses: ['me@example.com'],
    ...overrides,
  };
}

export function compile(script: string): SieveScript {
  const parsed = parseSieve(script);
  if (!parsed.ok) throw new Error(`script does not parse: ${JSON.stringify(parsed.errors)}`);
  return parsed.script;
}

export function run(script: string, input: SieveInput = makeInput(), options: RunOptions = {}): SieveOutcome {
  return runSieve(compile(script), input, options);
}

/** The stores of an outcome as "mailbox" strings, implicit keep included as "INBOX (implicit)". */
export function stores(outcome: SieveOutcome): string[] {
  const out: string[] = [];
  for (const a of outcome.actions) {
    if (a.kind === 'keep') out.push('INBOX');
    else if (a.kind === 'fileinto') out.push(a.mailbox);
  }
  if (outcome.implicitKeep) out.push('INBOX (implicit)');
  return out;
}
