// IMAP argument parsing for the imaptest runner: one parser for both sides of a dialogue, the expected
// lines of a script and the responses a server sends, the way imaptest uses Dovecot's imap-parser with
// LITERAL8 | LITERAL_TYPE | ATOM_ALLCHARS for both. Also the response framer (a line plus the literals
// it announces) and the printer used in failure messages.
//
// Text here is a "byte string": one JS character per byte (latin1 decoding), so that literals with 8-bit
// or binary content compare byte for byte and their sizes are byte counts. UTF-8 text (a user name such as
// jürgen@) is turned into its byte string with utf8ToBytes before it meets server bytes.
//
// Deliberately NOT here: validating that a response is well-formed RFC 9051 syntax (the matcher only needs
// the tokens), and any notion of which command a response belongs to.
//
// RFC 9051 section 4 (data formats: atom, quoted, literal, literal8 from RFC 3516, NIL, list) and 2.2.1.

export type ImapArg =
  /** NIL keeps its spelling: Dovecot's imap_arg_get_atom and _get_astring read it as the text "NIL". */
  | { readonly kind: 'nil'; readonly value: string }
  | { readonly kind: 'atom'; readonly value: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'list'; readonly items: ImapArg[] };

export type ParsedArgs = { ok: true; args: ImapArg[] } | { ok: false; error: string };

/** The byte string of a UTF-8 text (see the header: one character per byte). */
export function utf8ToBytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** A Buffer as a byte string. latin1 is the one Node encoding that maps bytes to characters 1:1. */
export function bufferToBytes(buf: Buffer): string {
  return buf.toString('latin1');
}

export function bytesToBuffer(bytes: string): Buffer {
  return Buffer.from(bytes, 'latin1');
}

/**
 * The text of an atom, string, literal or NIL (Dovecot's imap_arg_get_astring: "RFC 3501 4.5 specifies
 * that NIL is the same as "NIL" when reading astring"); a list has none.
 */
export function astringOf(arg: ImapArg | undefined): string | undefined {
  if (arg === undefined) return undefined;
  switch (arg.kind) {
    case 'atom':
    case 'string':
    case 'literal':
    case 'nil':
      return arg.value;
    case 'list':
      return undefined;
  }
}

/** The text of an atom or NIL (Dovecot's imap_arg_get_atom). */
export function atomOf(arg: ImapArg | undefined): string | undefined {
  return arg?.kind === 'atom' || arg?.kind === 'nil' ? arg.value : undefined;
}

/**
 * Parses one whole line (literals inline, as `{n}\r\n` followed by n bytes). Atoms end at a space, a line
 * break, or `)` inside a list; `[` after an atom's first character opens a section that runs to its
 * matching `]` across spaces and parentheses, so `BODY[HEADER.FIELDS (FROM)]` is one token, as it is one
 * fetch-att. A resp-text-code such as `[CAPABILITY IMAP4rev1 ...]` starts with `[` and stays split in
 * atoms, which the `$]` matcher relies on.
 */
export function parseImapArgs(text: string): ParsedArgs {
  const root: ImapArg[] = [];
  const stack: ImapArg[][] = [];
  let cur = root;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === ' ') {
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') break;
    if (c === '(') {
      const list: ImapArg[] = [];
      cur.push({ kind: 'list', items: list });
      stack.push(cur);
      cur = list;
      i++;
      continue;
    }
    if (c === ')') {
      const parent = stack.pop();
      if (parent === undefined) return { ok: false, error: "Unexpected ')'" };
      cur = parent;
      i++;
      continue;
    }
    if (c === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= n) return { ok: false, error: "Missing '\"'" };
        const ch = text[i]!;
        if (ch === '"') break;
        if (ch === '\r' || ch === '\n') return { ok: false, error: "Missing '\"'" };
        if (ch === '\\' && i + 1 < n) {
          value += text[i + 1];
          i += 2;
          continue;
        }
        value += ch;
        i++;
      }
      i++;
      cur.push({ kind: 'string', value });
      continue;
    }
    if (c === '{' || (c === '~' && text[i + 1] === '{')) {
      const m = /^~?\{(\d+)\+?\}\r?\n/.exec(text.slice(i, i + 40));
      if (m === null) return { ok: false, error: 'Invalid literal size' };
      const size = Number(m[1]);
      const start = i + m[0].length;
      if (start + size > n) return { ok: false, error: 'Missing data' };
      cur.push({ kind: 'literal', value: text.slice(start, start + size) });
      i = start + size;
      continue;
    }
    // An atom.
    const start = i;
    let depth = 0;
    while (i < n) {
      const ch = text[i]!;
      if (depth > 0) {
        if (ch === '[') depth++;
        else if (ch === ']') depth--;
        else if (ch === '\r' || ch === '\n') break;
        i++;
        continue;
      }
      if (ch === ' ' || ch === '\r' || ch === '\n') break;
      if (ch === ')' && stack.length > 0) break;
      if (ch === '[' && i > start) depth++;
      i++;
    }
    const value = text.slice(start, i);
    // NIL is matched without regard to case, as RFC 9051 section 9 makes every keyword.
    if (value.length === 3 && value.toUpperCase() === 'NIL') cur.push({ kind: 'nil', value });
    else cur.push({ kind: 'atom', value });
  }
  if (stack.length > 0) return { ok: false, error: "Missing ')'" };
  return { ok: true, args: root };
}

/** imap_args_to_str: the arguments written back as IMAP, for failure messages. */
export function argsToString(args: readonly ImapArg[]): string {
  return args.map(argToString).join(' ');
}

function argToString(arg: ImapArg): string {
  switch (arg.kind) {
    case 'nil':
      return arg.value;
    case 'atom':
      return arg.value;
    case 'string':
      return `"${arg.value.replace(/(["\\])/g, '\\$1')}"`;
    case 'literal':
      return arg.value.length > 200 || /[\r\n"\\]/.test(arg.value)
        ? `{${arg.value.length}}${JSON.stringify(arg.value.length > 200 ? arg.value.slice(0, 200) + '…' : arg.value)}`
        : `"${arg.value}"`;
    case 'list':
      return `(${argsToString(arg.items)})`;
  }
}

/**
 * Takes one complete response (a line and every literal it announces) off the front of `buf`: returns the
 * response without its final CRLF and the number of bytes it used, or undefined if more bytes are needed.
 */
export function takeResponse(buf: Buffer): { line: string; used: number } | undefined {
  let pos = 0;
  for (;;) {
    const lf = buf.indexOf(0x0a, pos);
    if (lf < 0) return undefined;
    // A literal announcement ends the line: `{n}` or `{n+}` (or `~{n}`) right before the CRLF.
    let end = lf;
    if (end > 0 && buf[end - 1] === 0x0d) end--;
    const tail = buf.subarray(Math.max(pos, end - 24), end).toString('latin1');
    const m = /\{(\d+)\+?\}$/.exec(tail);
    if (m === null) {
      return { line: buf.subarray(0, end).toString('latin1'), used: lf + 1 };
    }
    const next = lf + 1 + Number(m[1]);
    if (next > buf.length) return undefined;
    pos = next;
  }
}
