// Validation of each Sieve action command into its typed form: keep, discard, redirect (RFC 5228 §4),
// fileinto (§4.1) with :copy (RFC 3894), :create (RFC 5490 §3.2) and :flags (RFC 5232 §5), reject and
// ereject (RFC 5429), set (RFC 5229 §4), setflag / addflag / removeflag (RFC 5232 §3), addheader and
// deleteheader (RFC 5293), vacation (RFC 5230, :seconds of RFC 6131). Constant arguments are checked
// here (redirect and :from addresses, variable names, field names).
// PURE. Deliberately NOT here: control structure (validate.ts), running the actions (interpret.ts).

import { parseMailbox } from '../../core/address.ts';
import type { Command, SetModifier, SyntaxCommand } from './ast.ts';
import {
  COMPARATOR_TAGS,
  MATCH_TAGS,
  isFieldName,
  listOf,
  stringOf,
  tag,
  type Signature,
  type ValidationContext,
} from './validate-context.ts';
import { MODIFIER_RANK, isVariableName } from './variables.ts';

/** Which capability an action needs; null for the base language. */
export const COMMAND_EXTENSIONS: Readonly<Record<string, string | null>> = {
  keep: null,
  discard: null,
  stop: null,
  redirect: null,
  fileinto: 'fileinto',
  reject: 'reject',
  ereject: 'ereject',
  set: 'variables',
  setflag: 'imap4flags',
  addflag: 'imap4flags',
  removeflag: 'imap4flags',
  addheader: 'editheader',
  deleteheader: 'editheader',
  vacation: 'vacation',
};

const FLAGS = { flags: tag('imap4flags', 'flags', 'list') };
const FLAG_COMMAND: Signature = { tags: {}, positional: ['string', 'list'], optionalLeading: 1 };

const SIGNATURES: Readonly<Record<string, Signature>> = {
  keep: { tags: FLAGS, positional: [] },
  discard: { tags: {}, positional: [] },
  stop: { tags: {}, positional: [] },
  redirect: { tags: { copy: tag('copy', 'copy') }, positional: ['string'] },
  fileinto: {
    tags: { ...FLAGS, copy: tag('copy', 'copy'), create: tag('mailbox', 'create') },
    positional: ['string'],
  },
  reject: { tags: {}, positional: ['string'] },
  ereject: { tags: {}, positional: ['string'] },
  set: {
    tags: {
      lower: tag(null, 'case'),
      upper: tag(null, 'case'),
      lowerfirst: tag(null, 'first'),
      upperfirst: tag(null, 'first'),
      quotewildcard: tag(null, 'quotewildcard'),
      length: tag(null, 'length'),
    },
    positional: ['string', 'string'],
  },
  setflag: FLAG_COMMAND,
  addflag: FLAG_COMMAND,
  removeflag: FLAG_COMMAND,
  addheader: { tags: { last: tag(null, 'last') }, positional: ['string', 'string'] },
  deleteheader: {
    tags: {
      ...COMPARATOR_TAGS,
      ...MATCH_TAGS,
      // RFC 5293 §5 defines :index / :last for deleteheader itself; the index extension is not needed.
      index: tag(null, 'index', 'number'),
      last: tag(null, 'last'),
    },
    positional: ['string', 'list'],
    optionalTrailing: 1,
  },
  vacation: {
    tags: {
      days: tag(null, 'period', 'number'),
      seconds: tag('vacation-seconds', 'period', 'number'),
      subject: tag(null, 'subject', 'string'),
      from: tag(null, 'from', 'string'),
      addresses: tag(null, 'addresses', 'list'),
      mime: tag(null, 'mime'),
      handle: tag(null, 'handle', 'string'),
    },
    positional: ['string'],
  },
};

/** The address inside "Name <addr>" or "<addr>", or the text itself. */
export function bareAddress(text: string): string {
  const m = /<([^<>]*)>\s*$/.exec(text);
  return (m ? m[1]! : text).trim();
}

export function isValidAddress(text: string): boolean {
  return parseMailbox(bareAddress(text), true) !== null;
}

export function validateCommand(ctx: ValidationContext, node: SyntaxCommand): Command | null {
  const what = `the ${node.name} command`;
  const ext = COMMAND_EXTENSIONS[node.name];
  const sig = SIGNATURES[node.name];
  if (ext === undefined || !sig) {
    ctx.error(node.pos, `unknown command '${node.name}'`);
    return null;
  }
  if (ext !== null && !ctx.has(ext)) {
    ctx.error(node.pos, `${what} needs require "${ext}"`);
    return null;
  }
  if (node.tests.length > 0) ctx.error(node.tests[0]!.pos, `${what} takes no tests`);
  if (node.block !== null) ctx.error(node.pos, `${what} takes no block`);
  const read = ctx.read(node, what, sig);
  const [p0, p1] = read.positional;
  const flags = read.tags.get('flags')?.list ?? null;
  const constant = (text: string): boolean => !ctx.isVariable(text);

  switch (node.name) {
    case 'keep':
      return { kind: 'keep', flags };
    case 'discard':
      return { kind: 'discard' };
    case 'stop':
      return { kind: 'stop' };
    case 'redirect': {
      const address = stringOf(p0);
      if (p0 && constant(address) && !isValidAddress(address))
        ctx.error(p0.pos, `invalid redirect address '${address}'`);
      return { kind: 'redirect', address, copy: read.tags.has('copy') };
    }
    case 'fileinto':
      // An empty name passes here, as in Pigeonhole; storing into it is a runtime error.
      return {
        kind: 'fileinto',
        mailbox: stringOf(p0),
        copy: read.tags.has('copy'),
        create: read.tags.has('create'),
        flags,
      };
    case 'reject':
    case 'ereject':
      return { kind: 'reject', reason: stringOf(p0), extended: node.name === 'ereject' };
    case 'set': {
      const name = stringOf(p0);
      if (p0) {
        if (/^[0-9]+$/.test(name)) ctx.error(p0.pos, 'cannot assign to a match variable');
        else if (/^[A-Za-z_][A-Za-z0-9_]*\./.test(name)) {
          ctx.error(
            p0.pos,
            `referring to variable in unknown namespace '${name.slice(0, name.indexOf('.'))}'`,
          );
        } else if (!isVariableName(name)) ctx.error(p0.pos, `invalid variable name '${name}'`);
      }
      const modifiers = [...read.tags.keys()] as SetModifier[];
      modifiers.sort((a, b) => MODIFIER_RANK[b] - MODIFIER_RANK[a]);
      return { kind: 'set', name: name.toLowerCase(), value: stringOf(p1), modifiers };
    }
    case 'setflag':
    case 'addflag':
    case 'removeflag': {
      const variable = p0 === undefined ? null : stringOf(p0);
      if (variable !== null) {
        if (!ctx.has('variables'))
          ctx.error(node.pos, `${what} names a variable only with require "variables"`);
        else if (!isVariableName(variable)) ctx.error(p0!.pos, `invalid variable name '${variable}'`);
      }
      return { kind: node.name, variable: variable?.toLowerCase() ?? null, flags: listOf(p1) };
    }
    case 'addheader': {
      const name = stringOf(p0);
      if (p0 && constant(name) && !isFieldName(name))
        ctx.error(p0.pos, `${what}: invalid field name '${name}'`);
      return { kind: 'addheader', last: read.tags.has('last'), name, value: stringOf(p1) };
    }
    case 'deleteheader': {
      const name = stringOf(p0);
      if (p0 && constant(name) && !isFieldName(name))
        ctx.error(p0.pos, `${what}: invalid field name '${name}'`);
      const last = read.tags.get('last');
      const index = read.tags.get('index');
      if (last && !index) ctx.error(last.pos, `:last for ${what} needs :index`);
      if (index?.number === 0) ctx.error(index.pos, `the :index of ${what} cannot be zero`);
      return {
        kind: 'deleteheader',
        index: index ? { index: index.number, last: last !== undefined } : null,
        match: ctx.matchSpec(read, what),
        name,
        patterns: p1 === undefined ? null : listOf(p1),
      };
    }
    case 'vacation': {
      const from = read.tags.get('from');
      if (from && constant(from.string) && !isValidAddress(from.string)) {
        ctx.error(from.pos, `invalid :from address '${from.string}' for vacation`);
      }
      const days = read.tags.get('days');
      const seconds = read.tags.get('seconds');
      return {
        kind: 'vacation',
        days: days ? days.number : null,
        seconds: seconds ? seconds.number : null,
        subject: read.tags.get('subject')?.string ?? null,
        from: from?.string ?? null,
        addresses: read.tags.get('addresses')?.list ?? [],
        mime: read.tags.has('mime'),
        handle: read.tags.get('handle')?.string ?? null,
        reason: stringOf(p0),
      };
    }
    default:
      ctx.error(node.pos, `unknown command '${node.name}'`);
      return null;
  }
}
