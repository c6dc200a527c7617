// runSieve: one validated Sieve script run against one message at delivery, all of its world given as
// data (envelope, header block, a lazy body, size, the time, mailbox names, the spam verdict). It walks
// the commands (RFC 5228 §3-4), evaluates the tests (tests.ts), keeps variables (RFC 5229), flags
// (RFC 5232) and header edits (RFC 5293), and collects actions under the rules of actions.ts.
// A runtime error (RFC 5228 §2.10.6) drops every action and edit and leaves the implicit keep.
// PURE and total: no clock, no I/O; the body is read only if a body test runs.
// Deliberately NOT here: carrying out the actions, vacation's send rules and reply (vacation.ts).

import { assertNever } from '../../core/assert-never.ts';
import type { FieldEdit } from '../header-edit.ts';
import { ActionList, SieveRuntimeError, type SieveAction } from './actions.ts';
import type { BodyTransform, Command, SieveScript } from './ast.ts';
import { bodyTexts } from './body.ts';
import { encodeHeaderText } from './encode-words.ts';
import { addFlags, formatFlags, parseFlags, removeFlags } from './flags.ts';
import { MatchBudgetExceeded, matchValues, type MatchBudget } from './match.ts';
import { decodedValue, fieldsNamed, readFields, type Field } from './message.ts';
import { evaluateTest, type TestHost } from './tests.ts';
import { bareAddress, isValidAddress } from './validate-commands.ts';
import { isFieldName } from './validate-context.ts';
import { applyModifiers, expandVariables, truncateUtf8 } from './variables.ts';

export interface SieveInput {
  readonly envelope: {
    /** "" for the null sender. */
    readonly from: string;
    /** The recipient as addressed (before aliases and subaddress handling). */
    readonly to: string;
    readonly auth?: string;
  };
  /** The message's header block, as received. */
  readonly headerBlock: Uint8Array;
  /** The message's bytes (perhaps cut to a cap); called only when a body test runs. */
  readonly body?: () => Uint8Array | null;
  readonly sizeBytes: number;
  readonly now: { readonly epochMs: number; /** "+0100" */ readonly zone: string };
  readonly mailboxes: ReadonlySet<string>;
  /** The spam filter's verdict; null or absent when the message was not tested. */
  readonly spam?: { readonly score: number; readonly threshold: number } | null;
  /** The script owner's addresses (vacation: was the message sent to me?). */
  readonly userAddresses: readonly string[];
  /** Characters that start a subaddress detail (RFC 5233); default "+". */
  readonly subaddressSeparator?: string;
}

export interface VacationLimits {
  /** Default 1 day, as RFC 5230 §4.1 asks of :days; 0 lets :seconds 0 answer every message. */
  readonly minSeconds?: number;
  readonly maxSeconds?: number;
  /** When neither :days nor :seconds is given (default 7 days). */
  readonly defaultSeconds?: number;
}

export interface RunOptions {
  /** Where keep and the implicit keep store (default "INBOX"). */
  readonly defaultMailbox?: string;
  readonly maxActions?: number;
  readonly maxRedirects?: number;
  readonly maxVariables?: number;
  /** A variable's value is cut to this many UTF-8 octets (RFC 5229 §3 allows a limit). */
  readonly maxVariableBytes?: number;
  /** Character comparisons a run may spend matching. */
  readonly maxMatchSteps?: number;
  /** addheader values longer than this are a runtime error. */
  readonly maxHeaderValueBytes?: number;
  /** Fields editheader may neither add nor delete, beside Received and Auto-Submitted (RFC 5293 §6). */
  readonly protectedHeaders?: readonly string[];
  readonly vacation?: VacationLimits;
}

export interface SieveOutcome {
  readonly actions: readonly SieveAction[];
  /** Store into the default mailbox as well (RFC 5228 §2.10.2). */
  readonly implicitKeep: boolean;
  /** The flags for the implicit keep (RFC 5232 §3: the internal variable at the end). */
  readonly implicitKeepFlags: readonly string[];
  /** Runtime errors; when there are any, actions and edits are empty and implicitKeep is true. */
  readonly errors: readonly string[];
  /** addheader / deleteheader edits, in order, for the delivered copy. */
  readonly headerEdits: readonly FieldEdit[];
}

const DEFAULTS = {
  defaultMailbox: 'INBOX',
  maxActions: 32,
  maxRedirects: 4,
  maxVariables: 255,
  maxVariableBytes: 4096,
  maxMatchSteps: 20_000_000,
  maxHeaderValueBytes: 2048,
};
const DAY = 86400;
/** Longest string variable expansion may build (UTF-16 units). */
const MAX_EXPANDED = 64 * 1024;
const ALWAYS_PROTECTED = ['received', 'auto-submitted'];

type Limits = typeof DEFAULTS & { protectedHeaders: ReadonlySet<string>; vacation: Required<VacationLimits> };

class Run implements TestHost {
  readonly input: SieveInput;
  readonly limits: Limits;
  readonly budget: MatchBudget;
  readonly variables: boolean;
  readonly imap4flags: boolean;
  readonly actions: ActionList;
  readonly named = new Map<string, string>();
  matched: readonly string[] = [];
  internalFlags: string[] = [];
  fields: Field[];
  readonly edits: FieldEdit[] = [];
  #message: Uint8Array | null | undefined;
  readonly #bodyTexts = new Map<string, string[]>();

  constructor(script: SieveScript, input: SieveInput, limits: Limits) {
    this.input = input;
    this.limits = limits;
    this.budget = { steps: limits.maxMatchSteps };
    this.variables = script.requires.includes('variables');
    this.imap4flags = script.requires.includes('imap4flags');
    this.actions = new ActionList(limits);
    this.fields = readFields(input.headerBlock);
  }

  /** A script string as it reads now: variables expanded when the script uses them. */
  expand(text: string): string {
    if (!this.variables) return text;
    return expandVariables(text, { named: this.named, matched: this.matched }, MAX_EXPANDED);
  }

  /** Match, keeping the match variables of a :matches success (RFC 5229 §3.2). */
  match(
    spec: Parameters<typeof matchValues>[0],
    values: readonly string[],
    keys: readonly string[],
    expanded = false,
  ): boolean {
    const r = matchValues(spec, values, expanded ? keys : keys.map((k) => this.expand(k)), this.budget);
    if (r.matched && r.captures) {
      this.matched = r.captures.slice(0, 10).map((c) => truncateUtf8(c, this.limits.maxVariableBytes));
    }
    return r.matched;
  }

  bodyTexts(transform: BodyTransform): readonly string[] | null {
    if (this.#message === undefined) this.#message = this.input.body?.() ?? null;
    if (this.#message === null) return null;
    // Several body tests with one transform read the message once.
    const key = JSON.stringify(transform);
    let texts = this.#bodyTexts.get(key);
    if (texts === undefined) {
      texts = bodyTexts(this.#message, transform);
      if (this.#bodyTexts.size < 16) this.#bodyTexts.set(key, texts);
    }
    return texts;
  }

  flagsOf(variable: string | null): string[] {
    if (variable === null) return this.internalFlags;
    return parseFlags([this.named.get(variable) ?? '']);
  }

  /** Run `commands`; true when "stop" ended the script. */
  exec(commands: readonly Command[]): boolean {
    for (const c of commands) if (this.step(c)) return true;
    return false;
  }

  step(c: Command): boolean {
    switch (c.kind) {
      case 'if':
        for (const b of c.branches) {
          if (b.test === null || evaluateTest(this, b.test)) return this.exec(b.block);
        }
        return false;
      case 'stop':
        return true;
      case 'keep':
        this.actions.add({ kind: 'keep', flags: this.storeFlags(c.flags) });
        return false;
      case 'fileinto': {
        const mailbox = this.expand(c.mailbox);
        if (mailbox === '') throw new SieveRuntimeError('fileinto: empty mailbox name');
        this.actions.add({
          kind: 'fileinto',
          mailbox,
          flags: this.storeFlags(c.flags),
          create: c.create,
          copy: c.copy,
        });
        return false;
      }
      case 'redirect': {
        const address = this.expand(c.address);
        if (!isValidAddress(address)) throw new SieveRuntimeError(`redirect: invalid address '${address}'`);
        this.actions.add({ kind: 'redirect', address: bareAddress(address), copy: c.copy });
        return false;
      }
      case 'reject':
        this.actions.add({ kind: 'reject', reason: this.expand(c.reason), extended: c.extended });
        return false;
      case 'discard':
        this.actions.add({ kind: 'discard' });
        return false;
      case 'set':
        this.setVariable(c.name, applyModifiers(this.expand(c.value), c.modifiers));
        return false;
      case 'setflag':
      case 'addflag':
      case 'removeflag': {
        const given = c.flags.map((f) => this.expand(f));
        const current = this.flagsOf(c.variable);
        const next =
          c.kind === 'setflag'
            ? parseFlags(given)
            : c.kind === 'addflag'
              ? addFlags(current, given)
              : removeFlags(current, given);
        if (c.variable === null) this.internalFlags = next;
        else this.setVariable(c.variable, formatFlags(next));
        return false;
      }
      case 'addheader':
        this.addHeader(c.name, c.value, c.last);
        return false;
      case 'deleteheader':
        this.deleteHeader(c);
        return false;
      case 'vacation':
        this.actions.add(this.vacation(c));
        return false;
      default:
        return assertNever(c);
    }
  }

  storeFlags(flags: readonly string[] | null): string[] {
    if (flags !== null) return parseFlags(flags.map((f) => this.expand(f)));
    return this.imap4flags ? [...this.internalFlags] : [];
  }

  setVariable(name: string, value: string): void {
    if (!this.named.has(name) && this.named.size >= this.limits.maxVariables) {
      throw new SieveRuntimeError(`too many variables (limit ${this.limits.maxVariables})`);
    }
    this.named.set(name, truncateUtf8(value, this.limits.maxVariableBytes));
  }

  /** RFC 5293 §6: some fields must not be added or deleted; Subject may always be. */
  isProtected(name: string): boolean {
    return this.limits.protectedHeaders.has(name.toLowerCase());
  }

  addHeader(nameText: string, valueText: string, last: boolean): void {
    const name = this.expand(nameText);
    if (!isFieldName(name)) throw new SieveRuntimeError(`addheader: invalid field name '${name}'`);
    // A value is one line: line breaks would start new fields (RFC 5293 §4).
    const value = encodeHeaderText(this.expand(valueText).replace(/\r\n|\r|\n/g, ' '));
    if (Buffer.byteLength(value) > this.limits.maxHeaderValueBytes) {
      throw new SieveRuntimeError(`addheader: value longer than ${this.limits.maxHeaderValueBytes} bytes`);
    }
    if (this.isProtected(name)) return;
    if (last) this.fields.push({ name, value });
    else this.fields.unshift({ name, value });
    this.edits.push({ op: 'insert', index: last ? Number.MAX_SAFE_INTEGER : 0, name, value });
  }

  deleteHeader(c: Extract<Command, { kind: 'deleteheader' }>): void {
    const name = this.expand(c.name);
    if (!isFieldName(name)) throw new SieveRuntimeError(`deleteheader: invalid field name '${name}'`);
    if (this.isProtected(name)) return;
    const chosen = new Set(fieldsNamed(this.fields, name, c.index));
    const patterns = c.patterns?.map((p) => this.expand(p)) ?? null;
    const lower = name.toLowerCase();
    // From the last to the first, so the occurrence numbers of those still to go stay right.
    for (let i = this.fields.length - 1; i >= 0; i--) {
      const f = this.fields[i]!;
      if (!chosen.has(f)) continue;
      if (patterns !== null && !matchValues(c.match, [decodedValue(f)], patterns, this.budget).matched)
        continue;
      const occurrence = this.fields.slice(0, i + 1).filter((g) => g.name.toLowerCase() === lower).length;
      this.fields.splice(i, 1);
      this.edits.push({ op: 'change', name: f.name, occurrence, value: null });
    }
  }

  vacation(c: Extract<Command, { kind: 'vacation' }>): SieveAction {
    const reason = this.expand(c.reason);
    const subject = c.subject === null ? null : this.expand(c.subject).replace(/[\r\n]+/g, ' ');
    const from = c.from === null ? null : this.expand(c.from);
    if (from !== null && !isValidAddress(from))
      throw new SieveRuntimeError(`vacation: invalid :from address '${from}'`);
    const v = this.limits.vacation;
    const asked = c.seconds ?? (c.days === null ? v.defaultSeconds : c.days * DAY);
    // RFC 5230 §4.2: the default handle stands for the reply's content, so a changed text answers anew.
    const handle =
      c.handle === null
        ? `${reason}${subject ?? '<default-subject>'}${from ?? '<default-from>'}${c.mime ? '<MIME>' : '<NO-MIME>'}`
        : this.expand(c.handle);
    return {
      kind: 'vacation',
      handle,
      seconds: Math.min(Math.max(asked, v.minSeconds), v.maxSeconds),
      subject: subject ?? this.defaultSubject(),
      from,
      reason,
      mime: c.mime,
      addresses: c.addresses.map((a) => this.expand(a)),
    };
  }

  /** RFC 5230 §4.3 leaves it open; Pigeonhole's choice: "Auto: " and the original subject. */
  defaultSubject(): string {
    const field = fieldsNamed(this.fields, 'subject', null)[0];
    const original = field
      ? decodedValue(field)
          .replace(/[\r\n]+/g, ' ')
          .trim()
      : '';
    return original === '' ? 'Automated reply' : `Auto: ${original}`;
  }
}

/** Run `script` against the message in `input`. */
export function runSieve(script: SieveScript, input: SieveInput, options: RunOptions = {}): SieveOutcome {
  const v = options.vacation ?? {};
  const limits: Limits = {
    ...DEFAULTS,
    ...definedOnly(options),
    protectedHeaders: new Set(
      [...ALWAYS_PROTECTED, ...(options.protectedHeaders ?? []).map((h) => h.toLowerCase())].filter(
        (h) => h !== 'subject',
      ),
    ),
    vacation: {
      minSeconds: v.minSeconds ?? DAY,
      maxSeconds: v.maxSeconds ?? 90 * DAY,
      defaultSeconds: v.defaultSeconds ?? 7 * DAY,
    },
  };
  const run = new Run(script, input, limits);
  try {
    run.exec(script.commands);
  } catch (err) {
    const message =
      err instanceof SieveRuntimeError
        ? err.message
        : err instanceof MatchBudgetExceeded
          ? 'the script spent its matching budget'
          : `internal error: ${err instanceof Error ? err.message : String(err)}`;
    return { actions: [], implicitKeep: true, implicitKeepFlags: [], errors: [message], headerEdits: [] };
  }
  return {
    actions: run.actions.actions,
    implicitKeep: run.actions.implicitKeep,
    implicitKeepFlags: run.imap4flags ? run.internalFlags : [],
    errors: [],
    headerEdits: run.edits,
  };
}

function definedOnly(options: RunOptions): Partial<typeof DEFAULTS> {
  const out: Partial<Record<keyof typeof DEFAULTS, string | number>> = {};
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    const value = options[key];
    if (value !== undefined) out[key] = value;
  }
  return out as Partial<typeof DEFAULTS>;
}
