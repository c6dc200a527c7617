// The shapes a Sieve script takes: the syntax tree the parser builds (RFC 5228 §8: commands, tests,
// arguments, with their positions) and the validated script the interpreter runs, where every command
// and test is a typed record with its tags resolved. Strings stay as written (after encoded-character
// decoding, RFC 5228 §2.4.2.4): "${...}" variable references (RFC 5229) are expanded at run time.
// PURE: types only. Deliberately NOT here: parsing (parser.ts), checking (validate.ts), running.

export interface SievePosition {
  /** 1-based. */
  readonly line: number;
  /** 1-based, in characters (code points). */
  readonly column: number;
}

export interface SieveError extends SievePosition {
  readonly message: string;
}

// --- Syntax tree (RFC 5228 §8.2) ---

export type SyntaxArgument =
  | { readonly kind: 'tag'; readonly name: string; readonly pos: SievePosition }
  | { readonly kind: 'number'; readonly value: number; readonly pos: SievePosition }
  | { readonly kind: 'string'; readonly value: string; readonly pos: SievePosition }
  | { readonly kind: 'list'; readonly values: readonly string[]; readonly pos: SievePosition };

export interface SyntaxTest {
  /** Lower case: identifiers are case-insensitive. */
  readonly name: string;
  readonly pos: SievePosition;
  readonly args: readonly SyntaxArgument[];
  readonly tests: readonly SyntaxTest[];
  /** The tests were written as a parenthesised test-list (even of one test). */
  readonly testList: boolean;
}

export interface SyntaxCommand extends SyntaxTest {
  /** null when the command ended with ";". */
  readonly block: readonly SyntaxCommand[] | null;
}

// --- Validated script ---

export type Comparator = 'i;octet' | 'i;ascii-casemap' | 'i;ascii-numeric';
export type Relation = 'gt' | 'ge' | 'lt' | 'le' | 'eq' | 'ne';

export type MatchType =
  | { readonly kind: 'is' }
  | { readonly kind: 'contains' }
  | { readonly kind: 'matches' }
  | { readonly kind: 'value'; readonly relation: Relation }
  | { readonly kind: 'count'; readonly relation: Relation };

export interface MatchSpec {
  readonly type: MatchType;
  readonly comparator: Comparator;
}

export type AddressPart = 'all' | 'localpart' | 'domain' | 'user' | 'detail';

/** RFC 5260 §6: which occurrence of a header field; null means all of them. */
export interface FieldIndex {
  /** 1-based. */
  readonly index: number;
  /** Count from the last occurrence. */
  readonly last: boolean;
}

export type ZoneSpec =
  | { readonly kind: 'local' }
  | { readonly kind: 'zone'; readonly zone: string }
  | { readonly kind: 'original' };

export type BodyTransform =
  | { readonly kind: 'raw' }
  | { readonly kind: 'text' }
  | { readonly kind: 'content'; readonly types: readonly string[] };

export type SetModifier = 'lower' | 'upper' | 'lowerfirst' | 'upperfirst' | 'quotewildcard' | 'length';

export type Test =
  | { readonly kind: 'true' }
  | { readonly kind: 'false' }
  | { readonly kind: 'not'; readonly test: Test }
  | { readonly kind: 'allof' | 'anyof'; readonly tests: readonly Test[] }
  | {
      readonly kind: 'address';
      readonly match: MatchSpec;
      readonly part: AddressPart;
      readonly index: FieldIndex | null;
      readonly headers: readonly string[];
      readonly keys: readonly string[];
    }
  | {
      readonly kind: 'envelope';
      readonly match: MatchSpec;
      readonly part: AddressPart;
      readonly parts: readonly string[];
      readonly keys: readonly string[];
    }
  | {
      readonly kind: 'header';
      readonly match: MatchSpec;
      readonly index: FieldIndex | null;
      readonly headers: readonly string[];
      readonly keys: readonly string[];
    }
  | { readonly kind: 'exists'; readonly headers: readonly string[] }
  | { readonly kind: 'size'; readonly over: boolean; readonly limit: number }
  | {
      readonly kind: 'string';
      readonly match: MatchSpec;
      readonly sources: readonly string[];
      readonly keys: readonly string[];
    }
  | {
      readonly kind: 'hasflag';
      readonly match: MatchSpec;
      /** null: the internal variable. */
      readonly variables: readonly string[] | null;
      readonly flags: readonly string[];
    }
  | {
      readonly kind: 'body';
      readonly match: MatchSpec;
      readonly transform: BodyTransform;
      readonly keys: readonly string[];
    }
  | {
      readonly kind: 'date';
      readonly match: MatchSpec;
      readonly zone: ZoneSpec;
      readonly index: FieldIndex | null;
      readonly header: string;
      readonly datePart: string;
      readonly keys: readonly string[];
    }
  | {
      readonly kind: 'currentdate';
      readonly match: MatchSpec;
      readonly zone: ZoneSpec;
      readonly datePart: string;
      readonly keys: readonly string[];
    }
  | { readonly kind: 'mailboxexists'; readonly mailboxes: readonly string[] }
  | {
      readonly kind: 'spamtest';
      readonly match: MatchSpec;
      readonly percent: boolean;
      readonly value: string;
    };

export interface Branch {
  /** null for "else". */
  readonly test: Test | null;
  readonly block: readonly Command[];
}

export type Command =
  | { readonly kind: 'if'; readonly branches: readonly Branch[] }
  | { readonly kind: 'stop' }
  | { readonly kind: 'keep'; readonly flags: readonly string[] | null }
  | { readonly kind: 'discard' }
  | {
      readonly kind: 'fileinto';
      readonly mailbox: string;
      readonly copy: boolean;
      readonly create: boolean;
      readonly flags: readonly string[] | null;
    }
  | { readonly kind: 'redirect'; readonly address: string; readonly copy: boolean }
  | { readonly kind: 'reject'; readonly reason: string; readonly extended: boolean }
  | {
      readonly kind: 'set';
      /** Lower case. */
      readonly name: string;
      readonly value: string;
      /** In the order they apply (RFC 5229 §4.1 precedence). */
      readonly modifiers: readonly SetModifier[];
    }
  | {
      readonly kind: 'setflag' | 'addflag' | 'removeflag';
      /** null: the internal variable. */
      readonly variable: string | null;
      readonly flags: readonly string[];
    }
  | { readonly kind: 'addheader'; readonly last: boolean; readonly name: string; readonly value: string }
  | {
      readonly kind: 'deleteheader';
      readonly index: FieldIndex | null;
      readonly match: MatchSpec;
      readonly name: string;
      /** null: every occurrence. */
      readonly patterns: readonly string[] | null;
    }
  | {
      readonly kind: 'vacation';
      readonly days: number | null;
      readonly seconds: number | null;
      readonly subject: string | null;
      readonly from: string | null;
      readonly addresses: readonly string[];
      readonly mime: boolean;
      readonly handle: string | null;
      readonly reason: string;
    };

export interface SieveScript {
  /** Capabilities named by require, lower case, in order. */
  readonly requires: readonly string[];
  readonly commands: readonly Command[];
}
