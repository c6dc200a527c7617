// Validation of each Sieve test into its typed form: the base tests of RFC 5228 §5 (address, allof,
// anyof, envelope, exists, false, header, not, size, true) and those of the extensions: string
// (RFC 5229 §5), hasflag (RFC 5232 §4), body (RFC 5173), date and currentdate (RFC 5260 §4-5),
// mailboxexists (RFC 5490 §3.1), spamtest (RFC 5235). Constant arguments are checked here (address
// headers, envelope parts, date parts, zones); ones built from variables are checked when they run.
// PURE. Deliberately NOT here: running the tests (interpret.ts, tests-*.ts).

import type { SyntaxTest, Test, ZoneSpec } from './ast.ts';
import { isDatePart, parseZone } from './date.ts';
import {
  ADDRESS_PART_TAGS,
  COMPARATOR_TAGS,
  INDEX_TAGS,
  MATCH_TAGS,
  isFieldName,
  listOf,
  numberOf,
  stringOf,
  tag,
  type Signature,
  type TagSpec,
  type ValidationContext,
} from './validate-context.ts';
import { isVariableName } from './variables.ts';

/**
 * Headers the address test may name (RFC 5228 §5.1 "MUST restrict the address test to headers that
 * contain addresses"): Pigeonhole's list, so that a script valid there is valid here.
 */
export const ADDRESS_HEADERS: ReadonlySet<string> = new Set([
  'from', 'to', 'cc', 'bcc', 'sender', 'resent-from', 'resent-to', 'reply-to', 'resent-reply-to',
  'resent-sender', 'resent-cc', 'resent-bcc', 'for-approval', 'for-handling', 'for-comment',
  'apparently-to', 'errors-to', 'delivered-to', 'return-receipt-to', 'x-admin', 'read-receipt-to',
  'x-confirm-reading-to', 'return-receipt-requested', 'registered-mail-reply-requested-by',
  'mail-followup-to', 'mail-reply-to', 'abuse-reports-to', 'x-complaints-to', 'x-report-abuse-to',
  'x-beenthere',
]); // prettier-ignore

export const ENVELOPE_PARTS: ReadonlySet<string> = new Set(['from', 'to']);

/** Which capability a test needs; null for the base language. */
export const TEST_EXTENSIONS: Readonly<Record<string, string | null>> = {
  address: null,
  allof: null,
  anyof: null,
  envelope: 'envelope',
  exists: null,
  false: null,
  header: null,
  not: null,
  size: null,
  true: null,
  string: 'variables',
  hasflag: 'imap4flags',
  body: 'body',
  date: 'date',
  currentdate: 'date',
  mailboxexists: 'mailbox',
  spamtest: 'spamtest',
};

const MATCHING: Readonly<Record<string, TagSpec>> = { ...COMPARATOR_TAGS, ...MATCH_TAGS };

const SIGNATURES: Readonly<Record<string, Signature>> = {
  address: { tags: { ...MATCHING, ...ADDRESS_PART_TAGS, ...INDEX_TAGS }, positional: ['list', 'list'] },
  envelope: { tags: { ...MATCHING, ...ADDRESS_PART_TAGS }, positional: ['list', 'list'] },
  header: { tags: { ...MATCHING, ...INDEX_TAGS }, positional: ['list', 'list'] },
  exists: { tags: {}, positional: ['list'] },
  size: { tags: { over: tag(null, 'size'), under: tag(null, 'size') }, positional: ['number'] },
  string: { tags: MATCHING, positional: ['list', 'list'] },
  hasflag: { tags: MATCHING, positional: ['list', 'list'], optionalLeading: 1 },
  body: {
    tags: {
      ...MATCHING,
      raw: tag(null, 'transform'),
      text: tag(null, 'transform'),
      content: tag(null, 'transform', 'list'),
    },
    positional: ['list'],
  },
  date: {
    tags: {
      ...MATCHING,
      ...INDEX_TAGS,
      zone: tag(null, 'zone', 'string'),
      originalzone: tag(null, 'zone'),
    },
    positional: ['string', 'string', 'list'],
  },
  currentdate: { tags: { ...MATCHING, zone: tag(null, 'zone', 'string') }, positional: ['string', 'list'] },
  mailboxexists: { tags: {}, positional: ['list'] },
  spamtest: { tags: { ...MATCHING, percent: tag('spamtestplus', 'percent') }, positional: ['string'] },
  true: { tags: {}, positional: [] },
  false: { tags: {}, positional: [] },
  allof: { tags: {}, positional: [] },
  anyof: { tags: {}, positional: [] },
  not: { tags: {}, positional: [] },
};

export function validateTest(ctx: ValidationContext, node: SyntaxTest): Test {
  const what = `the ${node.name} test`;
  const ext = TEST_EXTENSIONS[node.name];
  const sig = SIGNATURES[node.name];
  if (ext === undefined || !sig) {
    ctx.error(node.pos, `unknown test '${node.name}'`);
    return { kind: 'false' };
  }
  if (ext !== null && !ctx.has(ext)) {
    ctx.error(node.pos, `${what} needs require "${ext}"`);
    return { kind: 'false' };
  }
  const read = ctx.read(node, what, sig);
  const [p0, p1, p2] = read.positional;
  const subTests = (): Test[] => node.tests.map((t) => validateTest(ctx, t));

  switch (node.name) {
    case 'true':
    case 'false':
      noTests(ctx, node, what);
      return { kind: node.name };
    case 'allof':
    case 'anyof':
      if (!node.testList) ctx.error(node.pos, `${what} takes a test list in parentheses`);
      return { kind: node.name, tests: subTests() };
    case 'not':
      if (node.testList || node.tests.length !== 1) ctx.error(node.pos, `${what} takes exactly one test`);
      return { kind: 'not', test: subTests()[0] ?? { kind: 'false' } };
  }
  noTests(ctx, node, what);
  switch (node.name) {
    case 'address': {
      const headers = listOf(p0);
      for (const h of headers) {
        if (!ctx.isVariable(h) && !ADDRESS_HEADERS.has(h.toLowerCase())) {
          ctx.error(p0!.pos, `header '${h}' is not allowed for the address test`);
        }
      }
      return {
        kind: 'address',
        match: ctx.matchSpec(read, what),
        part: ctx.addressPart(read),
        index: ctx.fieldIndex(read, what),
        headers,
        keys: listOf(p1),
      };
    }
    case 'envelope': {
      const parts = listOf(p0);
      for (const p of parts) {
        if (!ctx.isVariable(p) && !ENVELOPE_PARTS.has(p.toLowerCase())) {
          ctx.error(p0!.pos, `envelope part '${p}' is not supported`);
        }
      }
      return {
        kind: 'envelope',
        match: ctx.matchSpec(read, what),
        part: ctx.addressPart(read),
        parts,
        keys: listOf(p1),
      };
    }
    case 'header':
      checkFieldNames(ctx, listOf(p0), p0?.pos ?? node.pos);
      return {
        kind: 'header',
        match: ctx.matchSpec(read, what),
        index: ctx.fieldIndex(read, what),
        headers: listOf(p0),
        keys: listOf(p1),
      };
    case 'exists':
      checkFieldNames(ctx, listOf(p0), p0?.pos ?? node.pos);
      return { kind: 'exists', headers: listOf(p0) };
    case 'size': {
      const comparison = read.groups.get('size');
      if (!comparison) ctx.error(node.pos, `${what} needs :over or :under`);
      return { kind: 'size', over: comparison?.name !== 'under', limit: numberOf(p0) };
    }
    case 'string':
      return { kind: 'string', match: ctx.matchSpec(read, what), sources: listOf(p0), keys: listOf(p1) };
    case 'hasflag': {
      const variables = p0 === undefined ? null : listOf(p0);
      if (variables !== null && !ctx.has('variables')) {
        ctx.error(node.pos, `${what} names variables only with require "variables"`);
      }
      for (const v of variables ?? []) {
        if (!isVariableName(v)) ctx.error(p0!.pos, `invalid variable name '${v}'`);
      }
      return { kind: 'hasflag', match: ctx.matchSpec(read, what), variables, flags: listOf(p1) };
    }
    case 'body': {
      const t = read.groups.get('transform');
      const transform =
        t?.name === 'raw'
          ? ({ kind: 'raw' } as const)
          : t?.name === 'content'
            ? ({ kind: 'content', types: t.list } as const)
            : ({ kind: 'text' } as const);
      return { kind: 'body', match: ctx.matchSpec(read, what), transform, keys: listOf(p0) };
    }
    case 'date': {
      const header = stringOf(p0);
      checkFieldNames(ctx, [header], p0?.pos ?? node.pos);
      return {
        kind: 'date',
        match: ctx.matchSpec(read, what),
        zone: zoneSpec(ctx, read.groups.get('zone')),
        index: ctx.fieldIndex(read, what),
        header,
        datePart: checkDatePart(ctx, stringOf(p1), p1?.pos ?? node.pos),
        keys: listOf(p2),
      };
    }
    case 'currentdate':
      return {
        kind: 'currentdate',
        match: ctx.matchSpec(read, what),
        zone: zoneSpec(ctx, read.groups.get('zone')),
        datePart: checkDatePart(ctx, stringOf(p0), p0?.pos ?? node.pos),
        keys: listOf(p1),
      };
    case 'mailboxexists':
      return { kind: 'mailboxexists', mailboxes: listOf(p0) };
    case 'spamtest':
      return {
        kind: 'spamtest',
        match: ctx.matchSpec(read, what),
        percent: read.tags.has('percent'),
        value: stringOf(p0),
      };
    default:
      ctx.error(node.pos, `unknown test '${node.name}'`);
      return { kind: 'false' };
  }
}

function noTests(ctx: ValidationContext, node: SyntaxTest, what: string): void {
  if (node.tests.length > 0) ctx.error(node.tests[0]!.pos, `${what} takes no tests`);
}

/** An invalid constant field name never matches: a warning, as in Pigeonhole. */
function checkFieldNames(
  ctx: ValidationContext,
  names: readonly string[],
  at: { line: number; column: number },
): void {
  for (const n of names)
    if (!ctx.isVariable(n) && !isFieldName(n)) ctx.warn(at, `invalid header field name '${n}'`);
}

function checkDatePart(ctx: ValidationContext, part: string, at: { line: number; column: number }): string {
  if (!ctx.isVariable(part) && !isDatePart(part)) ctx.warn(at, `unknown date part '${part}'`);
  return part;
}

function zoneSpec(
  ctx: ValidationContext,
  zone: { name: string; string: string; pos: { line: number; column: number } } | undefined,
): ZoneSpec {
  if (!zone) return { kind: 'local' };
  if (zone.name === 'originalzone') return { kind: 'original' };
  if (!ctx.isVariable(zone.string) && parseZone(zone.string) === null) {
    ctx.warn(zone.pos, `invalid :zone '${zone.string}'`);
  }
  return { kind: 'zone', zone: zone.string };
}
