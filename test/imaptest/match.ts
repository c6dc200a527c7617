// The matcher of Dovecot imaptest's scripted tests (imaptest src/test-exec.c, test_imap_match_args and its
// helpers), ported rule for rule so that a script passes here exactly when it passes in imaptest:
// - `$name` / `${name}` is bound from the server's bytes the first time it is matched (up to the next
//   character the pattern expects) and compared case-sensitively after that; `$` alone matches anything,
//   a whole list included; `$]` skips to the atom that closes a resp-text-code; `$N` is the current
//   sequence of what was message N when the group started (so EXPUNGEs from another session match);
//   `${case:Text}` makes the comparison case-sensitive; `$modseqN` must grow at least as fast as N;
// - lists are ordered unless `$!unordered[=n]` (chains of n elements, extra elements allowed unless
//   `$!noextra`, `$!ignore=e` excuses an extra, `$!ban=e` forbids one);
// - OK/NO/BAD/BYE untagged and tagged replies match as a prefix (the human-readable text may follow).
// Variables bound during a failed attempt are unbound again, except $modseqN (as in imaptest).
//
// Deliberately NOT here: sockets, scripts, which reply belongs to which command (runner.ts).

import { astringOf, atomOf, type ImapArg } from './imap-args.ts';

/** test_imap_match_args returns how many arguments matched, or FULL for a complete match. */
export const FULL = Number.MAX_SAFE_INTEGER;

export class MatchState {
  readonly variables = new Map<string, string>();
  /** Variables bound during the current attempt (reverted if the attempt fails). */
  added: string[] = [];
  /** Initial sequence number - 1 → current sequence (0 = expunged). */
  seqmap: number[] = [];
  highestModseqIdx = 0;
  highestModseqValue = 0n;
  /** Errors in the script's own use of variables (imaptest's i_error / test_fail during expansion). */
  readonly errors: string[] = [];

  relativeSeq(seq: number): string {
    if (seq === 0) return '<zero seq>';
    if (seq > this.seqmap.length) return '<out of range>';
    const cur = this.seqmap[seq - 1]!;
    return cur === 0 ? '<expunged>' : String(cur);
  }

  /** test_handle_expunge: keep $N pointing at the same message. */
  expunge(seq: number): void {
    const seqs = this.seqmap;
    if (seq > seqs.length) return;
    for (let i = seq - 1; i < seqs.length; i++) {
      if (seqs[i]! >= seq) {
        if (seqs[i] === seq) seqs[i] = 0;
        else seqs[i] = seqs[i]! - 1;
      }
    }
  }

  revertAdded(): void {
    for (const name of this.added) this.variables.delete(name);
    this.added = [];
  }
}

/**
 * imaptest keeps every argument as a C string, so a NUL byte ends it: `~{7}` with NUL first compares as
 * "". The append-binary script depends on it (its expected BINARY[1] literal is a byte shorter than the
 * BINARY.SIZE it also expects), so the port does the same.
 */
function cString<T extends string | undefined>(s: T): T {
  if (s === undefined) return s;
  const nul = s.indexOf('\0');
  return (nul < 0 ? s : s.slice(0, nul)) as T;
}

const upper = (c: string | undefined): string =>
  c === undefined ? '' : c >= 'a' && c <= 'z' ? c.toUpperCase() : c;
const isVarChar = (c: string | undefined): boolean => c !== undefined && /^[A-Za-z0-9_]$/.test(c);

function asciiEqualIgnoreCase(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (upper(a[i]) !== upper(b[i])) return false;
  return true;
}

/**
 * test_expand_all: expands the $variables of a command (or, with skipUninitialized, of a pattern shown in a
 * failure message, leaving `$` for what is not bound yet). `$$` is a literal `$`; `$!directives` vanish.
 */
export function expandAll(
  state: MatchState,
  line: string,
  skipUninitialized: boolean,
): { text: string; error?: string } {
  if (!line.includes('$')) return { text: line };
  let out = '';
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c !== '$' || i === line.length - 1) {
      out += c;
      i++;
      continue;
    }
    i++;
    if (line[i] === '$') {
      out += '$';
      i++;
    } else if (line[i] === '!') {
      while (i + 1 < line.length && line[i + 1] !== ' ') i++;
      i += 2;
    } else {
      let name: string;
      if (line[i] === '{') {
        const close = line.indexOf('}', i + 1);
        if (close < 0) return { text: out, error: "Missing '}'" };
        name = line.slice(i + 1, close);
        i = close + 1;
      } else {
        const start = i;
        while (isVarChar(line[i])) i++;
        name = line.slice(start, i);
      }
      let value: string | undefined;
      if (/^[0-9]+$/.test(name)) value = state.relativeSeq(Number(name));
      else value = state.variables.get(name);
      if (value === undefined) {
        if (!skipUninitialized) return { text: out, error: `Uninitialized variable: ${name}` };
        value = '$';
      }
      out += value;
    }
  }
  return { text: out };
}

/**
 * test_expand_input: walks a pattern string against the server's string, binding unbound variables from
 * it. Returns the expanded pattern (to compare with the input in full or as a prefix) or undefined on a
 * mismatch already seen; icase is false when `${case:...}` asked for a case-sensitive comparison.
 */
export function expandInput(
  state: MatchState,
  pattern: string,
  input: string,
): { expanded: string | undefined; icase: boolean } {
  let icase = true;
  let out = '';
  let s = 0;
  let inp = 0;
  const fail = { expanded: undefined, icase };
  while (s < pattern.length) {
    if (pattern[s] !== '$' || pattern[s + 1] === '$') {
      if (pattern[s] === '$') s++;
      if (upper(pattern[s]) !== upper(input[inp])) return { ...fail, icase };
      inp++;
      out += pattern[s];
      s++;
      continue;
    }
    s++;
    let name: string;
    if (pattern[s] === '{') {
      const close = pattern.indexOf('}', s + 1);
      if (close < 0) return { expanded: '', icase };
      name = pattern.slice(s + 1, close);
      s = close + 1;
    } else {
      const start = s;
      while (isVarChar(pattern[s])) s++;
      name = pattern.slice(start, s);
    }
    let value: string | undefined;
    if (/^[0-9]+$/.test(name)) {
      value = state.relativeSeq(Number(name));
    } else if (name.startsWith('case:')) {
      icase = false;
      value = name.slice(5);
    } else {
      value = name === '' ? undefined : state.variables.get(name);
      if (value === undefined) {
        // Bind up to the first input character equal to what the pattern expects next (imaptest's FIXME:
        // only the first character is looked at).
        const rest = pattern.slice(s);
        let next: string;
        let nextIcase = true;
        if (!rest.startsWith('$')) {
          next = rest;
        } else {
          const sub = expandInput(state, rest, input.slice(inp));
          if (sub.expanded === undefined) return { expanded: undefined, icase };
          next = sub.expanded;
          nextIcase = sub.icase;
        }
        let p = inp;
        const first = next[0];
        if (nextIcase) {
          while (p < input.length && upper(input[p]) !== upper(first)) p++;
        } else {
          while (p < input.length && input[p] !== first) p++;
        }
        const bound = input.slice(inp, p);
        const modseq = /^modseq([0-9]+)$/.exec(name);
        if (name === '') {
          value = bound;
        } else if (modseq !== null) {
          value = newModseq(state, Number(modseq[1]), bound);
          state.variables.set(name, value);
        } else {
          state.variables.set(name, bound);
          state.added.push(name);
          value = bound;
        }
      }
    }
    out += value;
    for (let k = 0; k < value.length; k++, inp++) {
      if (input[inp] !== value[k]) return { expanded: undefined, icase };
    }
  }
  return { expanded: out, icase };
}

/** get_new_var_modseq: $modseqN may only be bound to a value at least (N - last N) above the last one. */
function newModseq(state: MatchState, idx: number, text: string): string {
  if (!/^[0-9]+$/.test(text)) return '$modseq-not-number';
  const value = BigInt(text);
  if (state.highestModseqIdx > idx) {
    state.errors.push(
      `Modseqs defined in wrong order: $modseq${state.highestModseqIdx} followed by $modseq${idx}`,
    );
    return '$modseq-order-mismatch';
  }
  const atLeast = state.highestModseqValue + BigInt(idx - state.highestModseqIdx);
  let result = text;
  let effective = value;
  if (value < atLeast) {
    result = `$modseq-at-least-${atLeast}`;
    effective = atLeast;
  }
  state.highestModseqIdx = idx;
  state.highestModseqValue = effective;
  return result;
}

/** test_imap_match_args: how many of `match` matched `args`, FULL if all did (and args has no more). */
export function matchArgs(
  state: MatchState,
  match: readonly ImapArg[],
  args: readonly ImapArg[],
  max: number,
  prefix: boolean,
): number {
  let ret = 0;
  let mi = 0;
  let ai = 0;
  for (; mi < match.length && max > 0; mi++, ai++, max--) {
    const m = match[mi]!;
    const a = args[ai];
    switch (m.kind) {
      case 'nil':
        if (a?.kind !== 'nil') return ret;
        break;
      case 'atom':
      case 'string':
      case 'literal': {
        if (m.value === '$' && a?.kind === 'list') break;
        if (m.value === '$]') {
          // Skip over a resp-text-code's arguments: `* OK [CAPABILITY $] Capabilities.`
          for (;;) {
            const atom = atomOf(args[ai]);
            if (atom === undefined || atom.includes(']')) break;
            ai++;
          }
          break;
        }
        const astr = cString(astringOf(a));
        if (astr === undefined) return ret;
        const { expanded, icase } = expandInput(state, cString(m.value), astr);
        if (expanded === undefined) return ret;
        if (prefix && mi === match.length - 1) {
          const head = astr.slice(0, expanded.length);
          if (icase ? !asciiEqualIgnoreCase(head, expanded) : head !== expanded) return ret;
        } else if (icase ? !asciiEqualIgnoreCase(astr, expanded) : astr !== expanded) {
          return ret;
        }
        break;
      }
      case 'list': {
        if (a?.kind !== 'list') return ret;
        const sub = matchList(state, m.items, a.items);
        if (sub !== FULL) return ret + sub;
        break;
      }
    }
    ret++;
  }
  if (prefix || ai >= args.length || max === 0) return FULL;
  return ret;
}

/** test_imap_match_list: a list with its leading `$!` directives. */
export function matchList(
  state: MatchState,
  matchWithDirectives: readonly ImapArg[],
  args: readonly ImapArg[],
): number {
  let unordered = false;
  let chainCount = 1;
  let noextra = -1;
  const ignores: string[] = [];
  const bans: string[] = [];
  let start = 0;
  for (; start < matchWithDirectives.length; start++) {
    const atom = atomOf(matchWithDirectives[start]);
    if (atom === undefined || !atom.startsWith('$!')) break;
    const d = atom.slice(2);
    if (d.startsWith('unordered')) {
      unordered = true;
      if (noextra === -1) noextra = 0;
      if (d[9] === '=') chainCount = parseInt(d.slice(10), 10) || 0;
    } else if (d === 'ordered') {
      unordered = false;
    } else if (d === 'extra') {
      noextra = 0;
    } else if (d === 'noextra') {
      noextra = 1;
    } else if (d.startsWith('ignore=')) {
      ignores.push(d.slice(7));
    } else if (d.startsWith('ban=')) {
      bans.push(d.slice(4));
    } else {
      throw new Error(`Unknown directive: ${atom}`);
    }
  }
  if (noextra === -1) noextra = 1;
  const match = matchWithDirectives.slice(start);
  if (!unordered) return matchArgs(state, match, args, FULL, false);
  if (chainCount <= 0) chainCount = 1;

  const argCount = args.length;
  if (argCount % chainCount !== 0) return 0;
  const matched = new Array<boolean>(argCount).fill(false);
  let ret = 0;
  for (let mi = 0; mi < match.length; mi += chainCount, ret++) {
    let i = 0;
    for (; i < argCount; i += chainCount) {
      if (matchArgs(state, match.slice(mi), args.slice(i), chainCount, false) === FULL) {
        matched[i] = true;
        break;
      }
    }
    if (i >= argCount) return ret;
  }
  const listed = (list: string[], s: string): boolean => list.some((x) => asciiEqualIgnoreCase(x, s));
  if (noextra > 0) {
    for (let i = 0; i < argCount; i += chainCount) {
      if (matched[i]) continue;
      const s = cString(astringOf(args[i]));
      if (s === undefined) continue;
      if (!listed(ignores, s)) return ret;
    }
  } else if (bans.length > 0) {
    for (let i = 0; i < argCount; i += chainCount) {
      if (matched[i]) continue;
      const s = cString(astringOf(args[i]));
      if (s === undefined) continue;
      if (listed(bans, s)) return ret;
    }
  }
  return FULL;
}
