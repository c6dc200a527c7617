// ManageSieve command syntax (RFC 5804 §2, §4): a command is an atom (its name, any case) followed by
// arguments separated by SP: strings (quoted with `\"` and `\\` escapes, or literals `{n+}` / `{n}` at a
// line's end, whose n octets follow the CRLF) and numbers. This file tokenizes one line's text, finds the
// literal announcement at its end, checks script names (§1.6) and turns a command's items into a typed
// command. The reader (reader.ts) does the byte framing.
// Pure and total: never throws on input. Deliberately NOT here: byte framing and limits on sizes
// (reader.ts), which command is allowed when (session.ts), Sieve syntax (the validator the session gets).

/** One argument of a command: an atom (command name, number, a bare SASL token) or a string. */
export type Item =
  | { readonly kind: 'atom'; readonly value: string }
  | { readonly kind: 'string'; readonly value: string; readonly literal: boolean };

export type SieveCommand =
  | { readonly kind: 'capability' }
  | { readonly kind: 'starttls' }
  | { readonly kind: 'authenticate'; readonly mechanism: string; readonly initialResponse: string | null }
  | { readonly kind: 'unauthenticate' }
  | { readonly kind: 'logout' }
  | { readonly kind: 'noop'; readonly tag: string | null }
  /** sizeBytes: null when the number is beyond 32 bits (certainly over any limit). */
  | { readonly kind: 'havespace'; readonly name: string; readonly sizeBytes: number | null }
  | { readonly kind: 'putscript'; readonly name: string; readonly script: string }
  | { readonly kind: 'listscripts' }
  /** name: '' deactivates (RFC 5804 §2.8). */
  | { readonly kind: 'setactive'; readonly name: string }
  | { readonly kind: 'getscript'; readonly name: string }
  | { readonly kind: 'deletescript'; readonly name: string }
  | { readonly kind: 'renamescript'; readonly from: string; readonly to: string }
  | { readonly kind: 'checkscript'; readonly script: string };

export type CommandError = 'unknown-command' | 'syntax' | 'bad-name';

export type ParsedCommand =
  | { readonly ok: true; readonly command: SieveCommand }
  /** verb: the command's name upper-cased, '?' when it was not one. */
  | { readonly ok: false; readonly verb: string; readonly error: CommandError };

/** RFC 5804 §1.6 lets servers cap names (at no fewer than 128 characters); Tern allows this many octets. */
export const MAX_SCRIPT_NAME_BYTES = 1024;

/** RFC 5804 §4: number = 1*DIGIT, a 32-bit unsigned value (literal sizes, HAVESPACE). */
export const MAX_NUMBER = 4_294_967_295;

// §1.6: Net-Unicode (RFC 5198) without 0000-001F, 007F, 0080-009F, 2028, 2029. Unpaired surrogates cannot
// come from UTF-8 that decoded, but a normalized name is checked again after NFC anyway.
const PROHIBITED_IN_NAME = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;

/**
 * A script name as stored: NFC (RFC 5198's one spelling, whatever form a client composes), not empty, no
 * prohibited character, at most MAX_SCRIPT_NAME_BYTES octets. null when the name is not acceptable.
 */
export function checkScriptName(name: string): string | null {
  const nfc = name.normalize('NFC');
  if (nfc === '' || PROHIBITED_IN_NAME.test(nfc) || !nfc.isWellFormed()) return null;
  if (Buffer.byteLength(nfc, 'utf8') > MAX_SCRIPT_NAME_BYTES) return null;
  return nfc;
}

export interface Announcement {
  /** Where "{" starts. */
  readonly start: number;
  readonly sizeBytes: number;
  /** "{n}" rather than "{n+}": accepted the same way (ManageSieve has no continuation to wait for). */
  readonly sync: boolean;
}

/**
 * A literal announcement at a line's end: "{n+}" or "{n}". 'invalid' when the number is beyond 32 bits
 * (the literal's end cannot be found without reading past what any limit allows).
 */
export function literalAnnouncement(line: Uint8Array): Announcement | null | 'invalid' {
  let q = line.length - 1;
  if (q < 2 || line[q] !== 0x7d) return null;
  q--;
  const sync = line[q] !== 0x2b;
  if (!sync) q--;
  const digitsEnd = q + 1;
  while (q >= 0 && line[q]! >= 0x30 && line[q]! <= 0x39) q--;
  if (q < 0 || line[q] !== 0x7b || q + 1 === digitsEnd) return null;
  if (digitsEnd - q - 1 > 10) return 'invalid';
  let size = 0;
  for (let k = q + 1; k < digitsEnd; k++) size = size * 10 + (line[k]! - 0x30);
  if (size > MAX_NUMBER) return 'invalid';
  return { start: q, sizeBytes: size, sync };
}

/**
 * The tokens of one line's text (a literal announcement already cut off). `continued`: the line follows a
 * literal of the same command, so it starts with SP or is empty. `announces`: a literal follows the text,
 * so the text must end with SP (or be empty). null on a syntax error.
 */
export function tokenizeLine(text: string, continued: boolean, announces: boolean): Item[] | null {
  if (continued && text !== '' && text[0] !== ' ') return null;
  if (announces && text !== '' && !text.endsWith(' ')) return null;
  const items: Item[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    if (text[i] === ' ') {
      i++;
      continue;
    }
    if (text[i] === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= n) return null; // unterminated
        const c = text[j]!;
        if (c === '"') break;
        if (c === '\\') {
          const next = text[j + 1];
          if (next !== '"' && next !== '\\') return null;
          value += next;
          j += 2;
          continue;
        }
        if (c === '\r' || c === '\n' || c === '\0') return null;
        value += c;
        j++;
      }
      i = j + 1;
      if (i < n && text[i] !== ' ') return null;
      items.push({ kind: 'string', value, literal: false });
      continue;
    }
    let j = i;
    while (j < n && text[j] !== ' ') {
      const c = text[j]!;
      // An atom never holds quotes, braces or controls; a bare "{5+}" mid-line is not a literal either.
      if (c === '"' || c === '{' || c === '}' || c < ' ' || c === '\u007f') return null;
      j++;
    }
    items.push({ kind: 'atom', value: text.slice(i, j) });
    i = j;
  }
  return items;
}

/** The command's name, upper-cased; '?' when the first item is not an atom of letters. */
export function commandVerb(items: readonly Item[]): string {
  const first = items[0];
  if (first === undefined || first.kind !== 'atom' || !/^[A-Za-z]{1,20}$/.test(first.value)) return '?';
  return first.value.toUpperCase();
}

/** True when the next item of this command is a script (PUTSCRIPT's second argument, CHECKSCRIPT's first). */
export function isScriptPosition(items: readonly Item[]): boolean {
  const verb = commandVerb(items);
  return (verb === 'PUTSCRIPT' && items.length === 2) || (verb === 'CHECKSCRIPT' && items.length === 1);
}

const stringOf = (item: Item | undefined): string | null =>
  item !== undefined && item.kind === 'string' ? item.value : null;

/** A mechanism or a SASL response: a string, or (leniently, as older clients send it) a bare atom. */
const tokenOf = (item: Item | undefined): string | null => (item === undefined ? null : item.value);

type NameArg =
  { readonly ok: true; readonly name: string } | { readonly ok: false; readonly error: CommandError };

/** Argument `item` as a script name: a string that checkScriptName accepts. */
function nameArg(item: Item | undefined): NameArg {
  const s = stringOf(item);
  if (s === null) return { ok: false, error: 'syntax' };
  const name = checkScriptName(s);
  return name === null ? { ok: false, error: 'bad-name' } : { ok: true, name };
}

/** Turn one complete command's items into a command. */
export function parseCommand(items: readonly Item[]): ParsedCommand {
  const verb = commandVerb(items);
  const args = items.slice(1);
  const fail = (error: CommandError): ParsedCommand => ({ ok: false, verb, error });
  const done = (command: SieveCommand): ParsedCommand => ({ ok: true, command });
  const none = (command: SieveCommand): ParsedCommand => (args.length === 0 ? done(command) : fail('syntax'));
  switch (verb) {
    case 'CAPABILITY':
      return none({ kind: 'capability' });
    case 'STARTTLS':
      return none({ kind: 'starttls' });
    case 'LOGOUT':
      return none({ kind: 'logout' });
    case 'LISTSCRIPTS':
      return none({ kind: 'listscripts' });
    case 'UNAUTHENTICATE':
      return none({ kind: 'unauthenticate' });
    case 'NOOP': {
      if (args.length === 0) return done({ kind: 'noop', tag: null });
      const tag = stringOf(args[0]);
      return args.length === 1 && tag !== null ? done({ kind: 'noop', tag }) : fail('syntax');
    }
    case 'AUTHENTICATE': {
      const mechanism = tokenOf(args[0]);
      if (mechanism === null || args.length > 2) return fail('syntax');
      const initial = args.length === 2 ? stringOf(args[1]) : null;
      if (args.length === 2 && initial === null) return fail('syntax');
      return done({ kind: 'authenticate', mechanism, initialResponse: initial });
    }
    case 'HAVESPACE': {
      const size = args[1];
      if (args.length !== 2 || size?.kind !== 'atom' || !/^[0-9]+$/.test(size.value)) return fail('syntax');
      const n = nameArg(args[0]);
      if (!n.ok) return fail(n.error);
      const digits = size.value.replace(/^0+(?=.)/, '');
      const value = digits.length > 10 ? MAX_NUMBER + 1 : Number(digits);
      return done({ kind: 'havespace', name: n.name, sizeBytes: value <= MAX_NUMBER ? value : null });
    }
    case 'PUTSCRIPT': {
      const script = stringOf(args[1]);
      if (args.length !== 2 || script === null) return fail('syntax');
      const n = nameArg(args[0]);
      return n.ok ? done({ kind: 'putscript', name: n.name, script }) : fail(n.error);
    }
    case 'SETACTIVE': {
      if (args.length !== 1) return fail('syntax');
      if (stringOf(args[0]) === '') return done({ kind: 'setactive', name: '' });
      const n = nameArg(args[0]);
      return n.ok ? done({ kind: 'setactive', name: n.name }) : fail(n.error);
    }
    case 'GETSCRIPT':
    case 'DELETESCRIPT': {
      if (args.length !== 1) return fail('syntax');
      const n = nameArg(args[0]);
      if (!n.ok) return fail(n.error);
      return done(
        verb === 'GETSCRIPT' ? { kind: 'getscript', name: n.name } : { kind: 'deletescript', name: n.name },
      );
    }
    case 'RENAMESCRIPT': {
      if (args.length !== 2) return fail('syntax');
      const from = nameArg(args[0]);
      const to = nameArg(args[1]);
      if (!from.ok) return fail(from.error);
      if (!to.ok) return fail(to.error);
      return done({ kind: 'renamescript', from: from.name, to: to.name });
    }
    case 'CHECKSCRIPT': {
      const script = stringOf(args[0]);
      return args.length === 1 && script !== null ? done({ kind: 'checkscript', script }) : fail('syntax');
    }
    default:
      return fail('unknown-command');
  }
}
