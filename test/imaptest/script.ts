// The parser of Dovecot imaptest's scripted tests (scripted_test.md; imaptest src/test-parser.c): a header
// of `key: value` lines, then command groups. A group is one connection's commands sent together (a tagged
// pipeline, or one command), the untagged replies expected (`*` must, `!` must not, `?` may appear) and the
// tagged reply each command expects. Multiline `{{{ ... }}}` blocks become literals (`~{{{` literal8,
// whose lines end in LF alone), and lists get imaptest's default `$!` directives (FETCH, FLAGS, LIST,
// LSUB, STATUS) when they carry none.
//
// Deliberately NOT here: running anything (runner.ts), expanding `$variables` (match.ts). The error
// messages are imaptest's, with the line number, so a broken script reads the same as in imaptest.

import { atomOf, parseImapArgs, type ImapArg } from './imap-args.ts';

export type StartupState = 'nonauth' | 'auth' | 'created' | 'appended' | 'selected';
export type Existence = 'must' | 'mustNot' | 'may';

export interface ScriptUntagged {
  readonly args: ImapArg[];
  readonly existence: Existence;
}

export interface ScriptCommand {
  readonly linenum: number;
  /** The explicit tag number (`tagN`), 0 for an untagged-form command. */
  readonly tag: number;
  /** The command text sent after the tag, literals included (before $variable expansion). */
  readonly command: string;
  /** The expected tagged reply: `ok`/`no`/`bad` atoms or `""` (anything), then an optional prefix. */
  reply: ImapArg[] | undefined;
}

export interface ScriptGroup {
  /** Index into the connections, 0-based. */
  connectionIdx: number;
  readonly commands: ScriptCommand[];
  readonly untagged: ScriptUntagged[];
  haveUntaggedBye: boolean;
  repliesPending: number;
  sleepMs: number;
  readonly output: string[];
}

export interface Script {
  readonly name: string;
  requiredCapabilities: string[];
  connectionCount: number;
  ignoreExtraUntagged: boolean;
  /** 'all' appends every message of the mbox once; a number appends that many, wrapping around. */
  messageCount: number | 'all';
  startupState: StartupState;
  /** user N: header values by 0-based connection index. */
  readonly connectionUsers: (string | undefined)[];
  requireUser2: boolean;
  haveBannerCheck: boolean;
  readonly groups: ScriptGroup[];
}

export type ParsedScript = { ok: true; script: Script } | { ok: false; error: string };

const MAX_CONNECTIONS = 100;
const REPLY_OK: ImapArg[] = [{ kind: 'atom', value: 'ok' }];
const REPLY_NO: ImapArg[] = [{ kind: 'atom', value: 'no' }];
const REPLY_BAD: ImapArg[] = [{ kind: 'atom', value: 'bad' }];
const REPLY_ANY: ImapArg[] = [{ kind: 'string', value: '' }];

class ScriptError extends Error {}

/** Parses a script's bytes (as a byte string, see imap-args.ts). `env` decides `!ifenv` blocks. */
export function parseScript(
  name: string,
  text: string,
  env: Readonly<Record<string, string | undefined>>,
): ParsedScript {
  const script: Script = {
    name,
    requiredCapabilities: [],
    connectionCount: 1,
    ignoreExtraUntagged: true,
    // imaptest's default (test-parser.c: UINT_MAX): every message of the mbox.
    messageCount: 'all',
    startupState: 'selected',
    connectionUsers: [],
    requireUser2: false,
    haveBannerCheck: false,
    groups: [],
  };
  const parser = new Parser(script, env);
  let linenum = 0;
  try {
    parser.parseFile(text, (n) => (linenum = n));
    parser.addLogout();
  } catch (err) {
    if (err instanceof ScriptError) return { ok: false, error: `${name} line ${linenum}: ${err.message}` };
    throw err;
  }
  return { ok: true, script };
}

interface IfEnv {
  linenum: number;
  elseSeen: boolean;
  skip: boolean;
}

class Parser {
  #script: Script;
  #env: Readonly<Record<string, string | undefined>>;
  #group: ScriptGroup | undefined;
  #ifenv: IfEnv[] = [];
  #skip = false;

  constructor(script: Script, env: Readonly<Record<string, string | undefined>>) {
    this.#script = script;
    this.#env = env;
  }

  parseFile(text: string, setLine: (n: number) => void): void {
    if (text.length > 0 && !text.endsWith('\n')) throw new ScriptError("Last line doesn't end with LF");
    const lines = text.split('\n');
    lines.pop();
    let header = true;
    let continues = false;
    let binary = false;
    let multiline = '';
    let startPos = 0;
    let lastLineEnd = 0;
    let startLinenum = 0;
    for (let idx = 0; idx < lines.length; idx++) {
      let line = lines[idx]!;
      const linenum = idx + 1;
      setLine(linenum);
      if (continues) {
        if (!line.startsWith('}}}')) {
          multiline += line;
          lastLineEnd = multiline.length;
          multiline += binary ? '\n' : '\r\n';
          continue;
        }
        multiline = multiline.slice(0, lastLineEnd);
        line = line.slice(3);
        const size = multiline.length - startPos;
        multiline =
          multiline.slice(0, startPos) + `${binary ? '~' : ''}{${size}}\r\n` + multiline.slice(startPos);
        if (line.endsWith('{{{')) {
          let len = line.length - 3;
          binary = len > 0 && line[len - 1] === '~';
          if (binary) len--;
          multiline += line.slice(0, len);
          startPos = multiline.length;
          lastLineEnd = multiline.length;
          continue;
        }
        line = multiline + line;
        continues = false;
      } else {
        startLinenum = linenum;
        if (line.length === 0) {
          header = false;
          continue;
        }
        if (line.startsWith('#')) continue;
        if (line.endsWith('{{{')) {
          let len = line.length - 3;
          binary = len > 0 && line[len - 1] === '~';
          if (binary) len--;
          multiline = line.slice(0, len);
          startPos = multiline.length;
          lastLineEnd = multiline.length;
          continues = true;
          continue;
        }
      }
      if (header) this.#headerLine(line);
      else this.#commandLine(startLinenum, line);
    }
    if (continues) throw new ScriptError(`Multiline reply at line ${startLinenum} not ended`);
    const group = this.#group;
    if (group === undefined) throw new ScriptError('No commands in file');
    if (group.repliesPending > 0) {
      const cmd = group.commands.find((c) => c.reply === undefined);
      throw new ScriptError(`Missing reply from previous command at line ${cmd?.linenum ?? 0}`);
    }
    if (this.#ifenv.length > 0) {
      throw new ScriptError(`!ifenv at line ${this.#ifenv[0]!.linenum} not closed with !endif`);
    }
  }

  #headerLine(line: string): void {
    const colon = line.indexOf(':');
    if (colon < 0) throw new ScriptError("Missing ':'");
    const key = line.slice(0, colon).trimEnd().toLowerCase();
    const value = line.slice(colon + 1).replace(/^ +/, '');
    const s = this.#script;
    if (key === 'capabilities') {
      s.requiredCapabilities = value.split(' ').filter((c) => c.length > 0);
    } else if (key === 'connections') {
      s.connectionCount = value === 'n' ? 2 : parseUintPrefix(value);
      if (s.connectionCount === 0 || s.connectionCount > MAX_CONNECTIONS)
        throw new ScriptError('Too many connections');
    } else if (key === 'ignore_extra_untagged') {
      s.ignoreExtraUntagged = value.startsWith('y');
    } else if (/^user [1-9][0-9]*$/.test(key)) {
      const idx = Number(key.slice(5));
      if (idx > MAX_CONNECTIONS) throw new ScriptError('Too many connections');
      if (value === '$user2' || value === '${user2}') s.requireUser2 = true;
      s.connectionUsers[idx - 1] = value;
    } else if (key === 'messages') {
      s.messageCount = value === 'all' ? 'all' : parseUintPrefix(value);
    } else if (key === 'state') {
      const v = value.toLowerCase();
      if (v === 'nonauth' || v === 'auth' || v === 'created' || v === 'appended' || v === 'selected') {
        s.startupState = v;
      } else {
        throw new ScriptError('Unknown state value');
      }
    } else {
      throw new ScriptError('Unknown setting');
    }
  }

  #commandLine(linenum: number, line: string): void {
    // Preprocessing: like imaptest, `!ifenv X` skips its block when X is not set, `!ifnenv X` when it is.
    let m = /^!(ifenv|ifnenv) (.*)$/.exec(line);
    if (m !== null) {
      let skipBlock = this.#env[m[2]!] === undefined;
      if (m[1] === 'ifnenv') skipBlock = !skipBlock;
      this.#ifenv.push({ linenum, elseSeen: false, skip: this.#skip });
      if (skipBlock) this.#skip = true;
      return;
    }
    if (line === '!else') {
      const top = this.#ifenv.at(-1);
      if (top === undefined) throw new ScriptError('!else without !ifenv');
      if (top.elseSeen) throw new ScriptError('!else already seen');
      top.elseSeen = true;
      if (!top.skip) this.#skip = !this.#skip;
      return;
    }
    if (line === '!endif') {
      const top = this.#ifenv.pop();
      if (top === undefined) throw new ScriptError('!endif without !ifenv');
      this.#skip = top.skip;
      return;
    }
    if (this.#skip) return;

    const script = this.#script;
    let group = this.#group;
    if (group !== undefined) {
      m = /^!sleep (.*)$/.exec(line);
      if (m !== null) {
        group.sleepMs = parseIntervalMs(m[1]!);
        return;
      }
      if (line.startsWith('!output ')) {
        group.output.push(line.slice(8));
        return;
      }
      const existence = untaggedExistence(line);
      if (existence !== undefined) {
        this.#untagged(group, line.slice(2), existence);
        return;
      }
      if (group.repliesPending > 0) {
        // Waiting for the tagged replies of this group; with several connections a reply line carries
        // the connection number ("1 tag1 ok").
        let rest = line;
        let replyConn = 0;
        if (script.connectionCount > 1) {
          const first = rest.split(' ', 1)[0]!;
          if (/^[0-9]+$/.test(first) && Number(first) > 0) {
            replyConn = Number(first);
            const sp = rest.indexOf(' ');
            rest = sp < 0 ? '' : rest.slice(sp + 1);
          }
        }
        const reply = getCmdReply(rest);
        if (reply?.reply !== undefined) {
          if (script.connectionCount > 1) {
            if (replyConn === 0) throw new ScriptError('Missing client index');
            if (replyConn - 1 !== group.connectionIdx) throw new ScriptError('Reply for wrong connection');
          }
          this.#finishCommand(group, reply.tag, rest);
          return;
        }
      }
    }
    if (group === undefined || group.repliesPending === 0) {
      group = {
        connectionIdx: 0,
        commands: [],
        untagged: [],
        haveUntaggedBye: false,
        repliesPending: 0,
        sleepMs: 0,
        output: [],
      };
      this.#group = group;
      script.groups.push(group);
    }
    if (script.connectionCount > 1) {
      const first = line.split(' ', 1)[0]!;
      const idx = /^[0-9]+$/.test(first) ? Number(first) : 0;
      if (idx === 0) throw new ScriptError('Missing client index');
      if (idx > MAX_CONNECTIONS) throw new ScriptError('Too many connections');
      if (group.commands.length > 0 && group.connectionIdx !== idx - 1) {
        throw new ScriptError('All pipelined commands must use the same connection');
      }
      group.connectionIdx = idx - 1;
      if (script.connectionCount < idx) script.connectionCount = idx;
      const sp = line.indexOf(' ');
      line = sp < 0 ? '' : line.slice(sp + 1);
    }
    const reply = getCmdReply(line);
    const tag = reply?.tag ?? 0;
    if (reply !== undefined) line = reply.rest;
    if (tag === 0) {
      if (group.repliesPending > 0) throw new ScriptError('Missing reply from previous command group');
    } else if (group.commands.some((c) => c.tag === tag)) {
      throw new ScriptError('Tag reused within command group');
    }
    if (group.commands.length === 0) {
      const existence = untaggedExistence(line);
      if (existence !== undefined) {
        script.haveBannerCheck = true;
        this.#untagged(group, line.slice(2), existence);
        return;
      }
    }
    if (reply?.reply === undefined) group.repliesPending++;
    group.commands.push({ linenum, tag, command: line, reply: reply?.reply });
  }

  #finishCommand(group: ScriptGroup, tag: number, line: string): void {
    const cmd = group.commands.find((c) => c.tag === tag);
    if (cmd === undefined) throw new ScriptError('Reply for unknown tag');
    if (cmd.reply !== undefined) throw new ScriptError('Command already has a reply');
    const parsed = parseImapArgs(line);
    if (!parsed.ok) throw new ScriptError(parsed.error);
    cmd.reply = tag === 0 ? parsed.args : parsed.args.slice(1);
    group.repliesPending--;
  }

  #untagged(group: ScriptGroup, line: string, existence: Existence): void {
    const parsed = parseImapArgs(line);
    if (!parsed.ok) throw new ScriptError(parsed.error);
    const args = parsed.args;
    let name = atomOf(args[0]) ?? '';
    if (name.startsWith('$') || /^[0-9]/.test(name)) name = atomOf(args[1]) ?? '';
    handleDirectives(
      { parent: undefined, replyName: name, prevAtom: undefined, parentChainIdx: 0, chainCount: 1 },
      args,
    );
    if (name.slice(0, 3).toUpperCase() === 'BYE') {
      if (existence === 'must') group.haveUntaggedBye = true;
      else if (existence === 'may') throw new ScriptError('? BYE not currently supported');
    }
    group.untagged.push({ args, existence });
  }

  /** imaptest ends every script with a LOGOUT on the first connection, unless the script logs out itself. */
  addLogout(): void {
    const has = this.#script.groups.some(
      (g) => g.haveUntaggedBye || g.commands.some((c) => c.command.toLowerCase() === 'logout'),
    );
    if (has) return;
    this.#script.groups.push({
      connectionIdx: 0,
      commands: [{ linenum: 0, tag: 0, command: 'logout', reply: REPLY_OK }],
      untagged: [],
      haveUntaggedBye: false,
      repliesPending: 0,
      sleepMs: 0,
      output: [],
    });
  }
}

function untaggedExistence(line: string): Existence | undefined {
  if (line.startsWith('* ')) return 'must';
  if (line.startsWith('! ')) return 'mustNot';
  if (line.startsWith('? ')) return 'may';
  return undefined;
}

/** test_get_cmd_reply: an optional `tagN`, then ok / no / bad / "" and what follows it. */
function getCmdReply(line: string): { tag: number; reply: ImapArg[] | undefined; rest: string } | undefined {
  let rest = line;
  let tag = 0;
  let word = rest.split(' ', 1)[0]!;
  const m = /^tag([0-9]+)$/i.exec(word);
  if (m !== null && rest.includes(' ') && Number(m[1]) > 0) {
    tag = Number(m[1]);
    rest = rest.slice(rest.indexOf(' ') + 1);
    word = rest.split(' ', 1)[0]!;
  }
  let reply: ImapArg[] | undefined;
  const lower = word.toLowerCase();
  if (lower === 'ok') reply = REPLY_OK;
  else if (lower === 'no') reply = REPLY_NO;
  else if (lower === 'bad') reply = REPLY_BAD;
  else if (word === '""') reply = REPLY_ANY;
  if (reply === undefined) return tag === 0 ? undefined : { tag, reply: undefined, rest };
  rest = rest.slice(word.length);
  if (rest.startsWith(' ')) rest = rest.slice(1);
  return { tag, reply, rest };
}

function parseUintPrefix(value: string): number {
  const m = /^[0-9]+/.exec(value);
  return m === null ? 0 : Number(m[0]);
}

function parseIntervalMs(value: string): number {
  const m = /^([0-9]+)\s*(ms|msecs?|s|secs?|m|mins?)?$/.exec(value.trim());
  if (m === null) throw new ScriptError(`Invalid !sleep value ${value}`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  if (unit.startsWith('ms')) return n;
  if (unit.startsWith('m')) return n * 60_000;
  return n * 1000;
}

interface DirectivesContext {
  readonly parent: DirectivesContext | undefined;
  readonly replyName: string;
  readonly prevAtom: string | undefined;
  readonly parentChainIdx: number;
  chainCount: number;
}

const DIRECTIVE = /^\$!(unordered(=[0-9]+)?|ordered|noextra|extra|ignore=.*|ban=.*)$/;

/** test_parse_untagged_handle_directives: validates `$!` directives and adds the defaults to bare lists. */
function handleDirectives(ctx: DirectivesContext, args: ImapArg[]): void {
  let directives = false;
  for (const arg of args) {
    const atom = atomOf(arg);
    if (atom === undefined || !atom.startsWith('$!')) break;
    if (!DIRECTIVE.test(atom)) {
      throw new ScriptError(
        atom.startsWith('$!unordered')
          ? 'Broken $!unordered directive'
          : `Unknown directive: ${atom.slice(2)}`,
      );
    }
    const m = /^\$!unordered=([0-9]+)$/.exec(atom);
    if (m !== null) ctx.chainCount = Number(m[1]);
    directives = true;
  }
  if (!directives) addDefaultDirectives(ctx, args);
  let prevAtom: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const atom = atomOf(arg);
    if (atom !== undefined) prevAtom = atom.toLowerCase();
    if (arg.kind !== 'list') continue;
    handleDirectives(
      {
        parent: ctx,
        replyName: ctx.replyName.toLowerCase(),
        prevAtom,
        parentChainIdx: ctx.chainCount === 1 ? i : i % ctx.chainCount,
        chainCount: 1,
      },
      arg.items,
    );
  }
}

function addDefaultDirectives(ctx: DirectivesContext, args: ImapArg[]): void {
  const parent = ctx.parent;
  if (parent === undefined) return;
  const add = (...directives: string[]): void => {
    // imaptest inserts each one at the front, so the last added comes first; the order does not matter
    // to the matcher except that $!unordered must not undo an earlier $!noextra, which it does not.
    for (const d of directives) args.unshift({ kind: 'atom', value: d });
  };
  const topLevel = parent.parent === undefined && parent.parentChainIdx === 0;
  const name = ctx.replyName;
  if (name === 'list' || name === 'lsub') {
    if (topLevel && ctx.parentChainIdx === 1) add('$!unordered');
  } else if (name === 'status') {
    if (topLevel && ctx.parentChainIdx === 2) add('$!unordered=2');
  } else if (name === 'fetch') {
    if (topLevel && ctx.parentChainIdx === 2) {
      add('$!unordered=2');
    } else if (
      parent.parent !== undefined &&
      parent.parent.parent === undefined &&
      parent.parent.parentChainIdx === 0 &&
      parent.parentChainIdx === 2 &&
      ctx.prevAtom === 'flags'
    ) {
      add(
        '$!unordered',
        '$!noextra',
        '$!ignore=\\recent',
        '$!ignore=$HasAttachment',
        '$!ignore=$HasNoAttachment',
      );
    }
  }
}
