// What every command and test validator shares: the script's required capabilities, the error and
// warning lists, reading a node's arguments against a signature (tags with their groups and extensions,
// then positional arguments, RFC 5228 §2.6), strings with encoded-character decoding, and the common
// pieces: COMPARATOR, MATCH-TYPE (with RFC 5231 relations), ADDRESS-PART (RFC 5233) and :index/:last
// (RFC 5260 §6). Messages follow Pigeonhole's wording where that helps a user comparing the two.
// PURE. Deliberately NOT here: the individual commands (validate-commands.ts) and tests (validate-tests.ts).

import type {
  AddressPart,
  Comparator,
  FieldIndex,
  MatchSpec,
  MatchType,
  Relation,
  SieveError,
  SievePosition,
  SyntaxArgument,
  SyntaxTest,
} from './ast.ts';
import { decodeEncodedCharacters } from './encoded-character.ts';
import { hasReference, referencedNamespaces } from './variables.ts';

export type ArgKind = 'string' | 'list' | 'number';

export interface TagSpec {
  /** The capability the tag belongs to; null for the base language. */
  readonly ext: string | null;
  readonly arg: ArgKind | null;
  /** Tags of one group exclude each other (one match type, one address part). */
  readonly group: string;
}

export interface Signature {
  readonly tags: Readonly<Record<string, TagSpec>>;
  readonly positional: readonly ArgKind[];
  /** How many leading positional arguments may be left out (setflag's variable name). */
  readonly optionalLeading?: number;
  /** How many trailing positional arguments may be left out (deleteheader's value patterns). */
  readonly optionalTrailing?: number;
}

export interface ReadTag {
  readonly name: string;
  readonly pos: SievePosition;
  readonly number: number;
  readonly string: string;
  readonly list: readonly string[];
}

export interface ReadArgs {
  /** Tag name → the tag, with its argument when it takes one. */
  readonly tags: ReadonlyMap<string, ReadTag>;
  /** Group → the tag of that group that was given. */
  readonly groups: ReadonlyMap<string, ReadTag>;
  /** The positional arguments in order; undefined for one left out. */
  readonly positional: readonly (PositionalValue | undefined)[];
}

export type PositionalValue =
  | { readonly kind: 'string'; readonly value: string; readonly pos: SievePosition }
  | { readonly kind: 'list'; readonly values: readonly string[]; readonly pos: SievePosition }
  | { readonly kind: 'number'; readonly value: number; readonly pos: SievePosition };

const tag = (ext: string | null, group: string, arg: ArgKind | null = null): TagSpec => ({ ext, group, arg });

export const COMPARATOR_TAGS: Readonly<Record<string, TagSpec>> = {
  comparator: tag(null, 'comparator', 'string'),
};

export const MATCH_TAGS: Readonly<Record<string, TagSpec>> = {
  is: tag(null, 'match'),
  contains: tag(null, 'match'),
  matches: tag(null, 'match'),
  value: tag('relational', 'match', 'string'),
  count: tag('relational', 'match', 'string'),
};

export const ADDRESS_PART_TAGS: Readonly<Record<string, TagSpec>> = {
  all: tag(null, 'address-part'),
  localpart: tag(null, 'address-part'),
  domain: tag(null, 'address-part'),
  user: tag('subaddress', 'address-part'),
  detail: tag('subaddress', 'address-part'),
};

export const INDEX_TAGS: Readonly<Record<string, TagSpec>> = {
  index: tag('index', 'index', 'number'),
  last: tag('index', 'last'),
};

export { tag };

const RELATIONS = new Set<Relation>(['gt', 'ge', 'lt', 'le', 'eq', 'ne']);
const COMPARATORS: Readonly<Record<string, string | null>> = {
  'i;octet': null,
  'i;ascii-casemap': null,
  'i;ascii-numeric': 'comparator-i;ascii-numeric',
};

/** RFC 5322 §3.6.8 field-name: printable US-ASCII but ":". */
export function isFieldName(name: string): boolean {
  return /^[\x21-\x39\x3b-\x7e]+$/.test(name);
}

export class ValidationContext {
  readonly requires: ReadonlySet<string>;
  readonly errors: SieveError[] = [];
  readonly warnings: SieveError[] = [];
  readonly #maxErrors: number;

  constructor(requires: ReadonlySet<string>, maxErrors: number) {
    this.requires = requires;
    this.#maxErrors = maxErrors;
  }

  has(ext: string): boolean {
    return this.requires.has(ext);
  }

  error(at: SievePosition, message: string): void {
    if (this.errors.length < this.#maxErrors) this.errors.push({ line: at.line, column: at.column, message });
  }

  warn(at: SievePosition, message: string): void {
    if (this.warnings.length < this.#maxErrors)
      this.warnings.push({ line: at.line, column: at.column, message });
  }

  /** Does `text` hold a variable reference, so that its value is only known at run time? */
  isVariable(text: string): boolean {
    return this.has('variables') && hasReference(text);
  }

  /** A string as the script means it: encoded characters decoded, namespaces checked. */
  string(text: string, at: SievePosition): string {
    let value = text;
    if (this.has('encoded-character')) {
      const decoded = decodeEncodedCharacters(text);
      if (decoded.ok) value = decoded.value;
      else this.error(at, decoded.message);
    }
    if (this.has('variables')) {
      for (const ns of referencedNamespaces(value))
        this.error(at, `referring to variable in unknown namespace '${ns}'`);
    }
    return value;
  }

  /** Read `node`'s arguments against `sig`; errors are recorded, and whatever could be read is returned. */
  read(node: SyntaxTest, what: string, sig: Signature): ReadArgs {
    const tags = new Map<string, ReadTag>();
    const groups = new Map<string, ReadTag>();
    const positional: PositionalValue[] = [];
    const args = node.args;
    for (let i = 0; i < args.length; i++) {
      const arg = args[i]!;
      if (arg.kind !== 'tag') {
        positional.push(this.#value(arg));
        continue;
      }
      const spec = sig.tags[arg.name];
      if (positional.length > 0) {
        this.error(
          arg.pos,
          `unexpected tagged argument ':${arg.name}' after the positional arguments of ${what}`,
        );
        continue;
      }
      if (!spec) {
        this.error(arg.pos, `unknown tagged argument ':${arg.name}' for ${what}`);
        continue;
      }
      if (spec.ext !== null && !this.has(spec.ext)) {
        this.error(arg.pos, `tagged argument ':${arg.name}' for ${what} needs require "${spec.ext}"`);
        continue;
      }
      const seen = groups.get(spec.group);
      if (seen) {
        this.error(arg.pos, `:${arg.name} conflicts with :${seen.name} given before for ${what}`);
      }
      let read: ReadTag = { name: arg.name, pos: arg.pos, number: 0, string: '', list: [] };
      if (spec.arg !== null) {
        const next = args[i + 1];
        const v = next && next.kind !== 'tag' ? this.#value(next) : null;
        if (v === null || !fits(v.kind, spec.arg)) {
          this.error(arg.pos, `:${arg.name} for ${what} takes ${describeKind(spec.arg)}`);
          continue;
        }
        i++;
        if (v.kind === 'number') read = { ...read, number: v.value };
        else if (v.kind === 'string') read = { ...read, string: v.value, list: [v.value] };
        else read = { ...read, list: v.values };
      }
      if (!seen) {
        tags.set(arg.name, read);
        groups.set(spec.group, read);
      }
    }
    return { tags, groups, positional: this.#positional(node, what, sig, positional) };
  }

  #value(arg: Exclude<SyntaxArgument, { kind: 'tag' }>): PositionalValue {
    if (arg.kind === 'number') return { kind: 'number', value: arg.value, pos: arg.pos };
    if (arg.kind === 'string')
      return { kind: 'string', value: this.string(arg.value, arg.pos), pos: arg.pos };
    return { kind: 'list', values: arg.values.map((v) => this.string(v, arg.pos)), pos: arg.pos };
  }

  #positional(
    node: SyntaxTest,
    what: string,
    sig: Signature,
    given: PositionalValue[],
  ): (PositionalValue | undefined)[] {
    const want = sig.positional;
    const lead = sig.optionalLeading ?? 0;
    const trail = sig.optionalTrailing ?? 0;
    const min = want.length - lead - trail;
    if (given.length < min || given.length > want.length) {
      const n = min === want.length ? `${min}` : `${min} to ${want.length}`;
      this.error(node.pos, `${what} takes ${n} positional argument(s), but ${given.length} given`);
      return want.map(() => undefined);
    }
    const skip = lead > 0 ? Math.min(lead, want.length - trail - given.length) : 0;
    const out: (PositionalValue | undefined)[] = want.map((_, k) =>
      k >= skip ? given[k - skip] : undefined,
    );
    out.forEach((v, k) => {
      if (v && !fits(v.kind, want[k]!)) {
        this.error(v.pos, `argument ${k + 1} of ${what} must be ${describeKind(want[k]!)}`);
        out[k] = undefined;
      }
    });
    return out;
  }

  /** COMPARATOR and MATCH-TYPE (RFC 5228 §2.7.1, §2.7.3; RFC 5231 §4). */
  matchSpec(read: ReadArgs, what: string): MatchSpec {
    let comparator: Comparator = 'i;ascii-casemap';
    const c = read.groups.get('comparator');
    if (c) {
      const name = c.string.toLowerCase();
      const ext = COMPARATORS[name];
      if (ext === undefined) this.error(c.pos, `unknown comparator '${c.string}'`);
      else if (ext !== null && !this.has(ext))
        this.error(c.pos, `comparator '${name}' needs require "${ext}"`);
      else comparator = name as Comparator;
    }
    let type: MatchType = { kind: 'is' };
    const m = read.groups.get('match');
    if (m) {
      if (m.name === 'value' || m.name === 'count') {
        const relation = m.string.toLowerCase() as Relation;
        if (!RELATIONS.has(relation)) {
          this.error(
            m.pos,
            `:${m.name} needs one of "gt", "ge", "lt", "le", "eq" or "ne", not "${m.string}"`,
          );
        } else type = { kind: m.name, relation };
      } else type = { kind: m.name as 'is' | 'contains' | 'matches' };
    }
    if (comparator === 'i;ascii-numeric' && (type.kind === 'contains' || type.kind === 'matches')) {
      this.error(m?.pos ?? c!.pos, `comparator i;ascii-numeric cannot do the :${type.kind} of ${what}`);
    }
    return { type, comparator };
  }

  addressPart(read: ReadArgs): AddressPart {
    return (read.groups.get('address-part')?.name ?? 'all') as AddressPart;
  }

  /** :index N [:last] (RFC 5260 §6). */
  fieldIndex(read: ReadArgs, what: string): FieldIndex | null {
    const index = read.tags.get('index');
    const last = read.tags.get('last');
    if (last && !index) this.error(last.pos, `:last for ${what} needs :index`);
    if (!index) return null;
    if (index.number === 0) this.error(index.pos, `the :index of ${what} cannot be zero`);
    return { index: index.number, last: last !== undefined };
  }
}

function fits(kind: ArgKind, want: ArgKind): boolean {
  return kind === want || (want === 'list' && kind === 'string');
}

function describeKind(kind: ArgKind): string {
  return kind === 'list' ? 'a string list' : kind === 'number' ? 'a number' : 'a string';
}

/** The string out of a positional value read as 'string' (empty when missing or refused). */
export function stringOf(v: PositionalValue | undefined): string {
  return v?.kind === 'string' ? v.value : '';
}

/** The strings out of a positional value read as 'list'. */
export function listOf(v: PositionalValue | undefined): readonly string[] {
  if (v?.kind === 'list') return v.values;
  if (v?.kind === 'string') return [v.value];
  return [];
}

export function numberOf(v: PositionalValue | undefined): number {
  return v?.kind === 'number' ? v.value : 0;
}
