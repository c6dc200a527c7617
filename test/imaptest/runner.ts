// Plays one of Dovecot imaptest's scripted tests against an IMAP server over a real socket, the way
// imaptest's test-exec.c does: connect every connection the script names and read the greetings (matching
// a banner check if the script has one); unless the state is `nonauth`, LOGIN, fetch the capabilities and
// skip the script when one it requires is missing; then, on the first connection, delete every mailbox
// matching `imaptest*` and unsubscribe every subscription matching it, CREATE `imaptest`, APPEND the
// script's messages from its mbox, and SELECT it on every connection, as far as the script's `state`
// asks. Then each command group is sent on its connection (pipelined when it has several commands) while
// the other connections' input waits, untagged replies are matched against the group's `*`/`!`/`?`
// lines and tagged replies against each command's ok/no/bad/"" (match.ts), and a failure is recorded and
// the script goes on, as imaptest does. A LOGOUT on the first connection ends a script that has none.
//
// Literals in commands are sent as LITERAL+ when the server offers it (imaptest requires that); otherwise
// the runner waits for each continuation, so it works against a LITERAL- or plain IMAP4rev1 server too.
//
// Deliberately NOT here: imaptest's mailbox-state tracking (its per-message flag and \Recent bookkeeping
// that flags, for example, a \Recent given to two sessions), its benchmark and profile modes, checkpoints,
// and QRESYNC offline caches. Scripts are trusted test data; only the server's bytes are checked.
//
// RFC 9051 (IMAP4rev2) and 3501, as the scripts exercise them; RFC 7888 (LITERAL+/LITERAL-).

import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  argsToString,
  astringOf,
  atomOf,
  bufferToBytes,
  bytesToBuffer,
  parseImapArgs,
  takeResponse,
  utf8ToBytes,
  type ImapArg,
} from './imap-args.ts';
import { expandAll, FULL, matchArgs, MatchState } from './match.ts';
import { MboxSource, parseMbox } from './mbox.ts';
import { MailboxView } from './view.ts';
import { parseScript, type Script, type ScriptCommand, type ScriptGroup } from './script.ts';

/** Where and as whom to play the scripts. connect() gives a fresh plain or TLS socket each time. */
export interface ImaptestTarget {
  connect(): Promise<Duplex>;
  readonly user: string;
  readonly password: string;
  /** A second user, for scripts with `user 2: $user2` (skipped without one, as in imaptest). */
  readonly user2?: { readonly user: string; readonly password: string };
  /** The test mailbox (imaptest's `box`); `imaptest` unless given. */
  readonly mailbox?: string;
  /** How long to wait for any one reply before giving up on the script; 30 s (imaptest's delay timeout). */
  readonly replyTimeoutMs?: number;
  /** Environment for `!ifenv`; process.env unless given. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export type ScriptStatus = 'pass' | 'fail' | 'skip';

export interface ScriptResult {
  readonly name: string;
  readonly status: ScriptStatus;
  /** Why it failed or was skipped; empty on a pass. */
  readonly detail: string;
}

/** Runs the script at `path` (its mbox beside it: `<path>.mbox`, else `default.mbox`). */
export async function runScript(path: string, target: ImaptestTarget): Promise<ScriptResult> {
  const name = basename(path);
  const text = bufferToBytes(await readFile(path));
  const parsed = parseScript(name, text, target.env ?? process.env);
  if (!parsed.ok) return { name, status: 'fail', detail: `script error: ${parsed.error}` };
  const mbox = await readMbox(path);
  const run = new Execution(parsed.script, target, mbox);
  try {
    await run.execute();
  } catch (err) {
    if (!(err instanceof Abort))
      run.fail(`runner error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    run.closeAll();
  }
  return run.result();
}

async function readMbox(scriptPath: string): Promise<MboxSource> {
  let data: Buffer;
  try {
    data = await readFile(`${scriptPath}.mbox`);
  } catch {
    data = await readFile(join(dirname(scriptPath), 'default.mbox'));
  }
  return new MboxSource(parseMbox(bufferToBytes(data)));
}

type Response =
  | { readonly kind: 'untagged'; readonly args: ImapArg[]; readonly raw: string }
  | { readonly kind: 'tagged'; readonly tag: string; readonly args: ImapArg[]; readonly raw: string }
  | { readonly kind: 'continue'; readonly raw: string };

/** Thrown to stop a script after a failure it cannot go on from (a dead connection, a timeout). */
class Abort extends Error {}

/** One IMAP connection: framing of responses, and the little state imaptest keeps per client. */
class Connection {
  readonly id: number;
  readonly #socket: Duplex;
  #buf: Buffer = Buffer.alloc(0);
  readonly #queue: Response[] = [];
  #wake: (() => void) | undefined;
  closed = false;
  #tagCounter = 1;
  capabilities: string[] = [];
  /** The LOGIN reply carried the capabilities (else imaptest asks for them with CAPABILITY). */
  postLoginCapabilities = false;
  preauth = false;
  seenBye = false;
  /** LOGOUT sent: extra untagged replies no longer count against the script. */
  logoutSent = false;
  /** The selected mailbox as far as the processed replies tell, checked as imaptest checks it. */
  readonly view = new MailboxView();

  constructor(id: number, socket: Duplex) {
    this.id = id;
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      for (;;) {
        const r = takeResponse(this.#buf);
        if (r === undefined) break;
        this.#buf = this.#buf.subarray(r.used);
        this.#queue.push(toResponse(r.line));
      }
      this.#notify();
    });
    const onEnd = (): void => {
      this.closed = true;
      this.#notify();
    };
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onEnd);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  nextTag(): string {
    return `${this.id}.${this.#tagCounter++}`;
  }

  write(bytes: string): void {
    if (!this.closed) this.#socket.write(bytesToBuffer(bytes));
  }

  /** The next response, 'closed' once the server hung up and everything it sent was read, or 'timeout'. */
  async next(timeoutMs: number): Promise<Response | 'closed' | 'timeout'> {
    for (;;) {
      const r = this.#queue.shift();
      if (r !== undefined) return r;
      if (this.closed) return 'closed';
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          this.#wake = undefined;
          resolve(false);
        }, timeoutMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      if (!woke) return 'timeout';
    }
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

function toResponse(line: string): Response {
  const sp = line.indexOf(' ');
  const tag = sp < 0 ? line : line.slice(0, sp);
  const rest = sp < 0 ? '' : line.slice(sp + 1);
  if (tag === '+') return { kind: 'continue', raw: line };
  const parsed = parseImapArgs(rest);
  // A response the parser cannot read still has to reach the matcher: keep it as one atom, which no
  // reasonable expectation matches, so the failure names it.
  const args: ImapArg[] = parsed.ok ? parsed.args : [{ kind: 'atom', value: rest }];
  if (tag === '*') return { kind: 'untagged', args, raw: line };
  return { kind: 'tagged', tag, args, raw: line };
}

/** A command of the current group that is waiting for its tagged reply. */
interface Pending {
  readonly cmd: ScriptCommand;
  readonly cmdline: string;
  readonly expectBad: boolean;
}

/** The state of one script run (imaptest's test_exec_context). */
class Execution {
  readonly #script: Script;
  readonly #target: ImaptestTarget;
  readonly #source: MboxSource;
  readonly #mailbox: string;
  readonly #timeoutMs: number;
  readonly #state = new MatchState();
  readonly #conns: Connection[] = [];
  readonly #failures: string[] = [];
  readonly #output: string[] = [];
  #skipped: string | undefined;
  #initFinished = false;

  // The group being played.
  #groupIdx = 0;
  #found: boolean[] = [];
  #maybes: { count: number; text: string }[] = [];
  #mismatchCount = 0;
  #firstExtra: string | undefined;
  readonly #pending = new Map<string, Pending>();
  /** The tag the group's first command was sent with, while it has no reply yet (the `$tag` variable). */
  #firstTag: string | undefined;
  /** Waiting for a continuation to send a literal: set to true when one arrives. */
  #continuation: { got: boolean; tag: string } | undefined;
  /** Mailboxes seen in LIST / LSUB replies during set-up. */
  #listed: string[] = [];
  #subscribed: string[] = [];

  constructor(script: Script, target: ImaptestTarget, source: MboxSource) {
    this.#script = script;
    this.#target = target;
    this.#source = source;
    this.#mailbox = utf8ToBytes(target.mailbox ?? 'imaptest');
    this.#timeoutMs = target.replyTimeoutMs ?? 30_000;
  }

  result(): ScriptResult {
    const name = this.#script.name;
    if (this.#failures.length > 0) {
      const more = this.#failures.length > 5 ? `\n(${this.#failures.length - 5} more failures)` : '';
      return { name, status: 'fail', detail: this.#failures.slice(0, 5).join('\n\n') + more };
    }
    if (this.#skipped !== undefined) return { name, status: 'skip', detail: this.#skipped };
    return { name, status: 'pass', detail: this.#output.join('\n') };
  }

  /** test_fail: records a failure with the group and the command it was in; the script goes on. */
  fail(message: string): void {
    if (!this.#initFinished) {
      this.#failures.push(`initialization failed: ${message}`);
      return;
    }
    const group = this.#script.groups[this.#groupIdx];
    const cmd = group?.commands[0];
    const where = `command ${this.#groupIdx + 1}/${this.#script.groups.length} (line ${cmd?.linenum ?? 0})`;
    this.#failures.push(
      `${where}: ${message}\n - Command: ${cmd?.command.split('\r\n', 1)[0] ?? '(banner)'}`,
    );
  }

  #abort(message: string): never {
    this.fail(message);
    throw new Abort(message);
  }

  closeAll(): void {
    for (const c of this.#conns) c.destroy();
  }

  async execute(): Promise<void> {
    const script = this.#script;
    if (script.requireUser2 && this.#target.user2 === undefined) {
      this.#skipped = 'needs a second user (user 2: $user2) and none was given';
      return;
    }
    const users: { user: string; password: string }[] = [];
    for (let i = 0; i < script.connectionCount; i++) {
      const header = script.connectionUsers[i];
      const u2 = this.#target.user2;
      users.push(
        header !== undefined && u2 !== undefined && /^\$\{?user2\}?$/.test(header)
          ? u2
          : { user: this.#target.user, password: this.#target.password },
      );
    }
    for (let i = 0; i < users.length; i++) {
      const { user, password } = users[i]!;
      const sfx = i === 0 ? '' : String(i + 1);
      const u = utf8ToBytes(user);
      const at = u.indexOf('@');
      this.#state.variables.set(`user${sfx}`, u);
      this.#state.variables.set(`username${sfx}`, at < 0 ? u : u.slice(0, at));
      this.#state.variables.set(`domain${sfx}`, at < 0 ? '' : u.slice(at + 1));
      this.#state.variables.set(`password${sfx}`, utf8ToBytes(password));
    }
    this.#state.variables.set('mailbox', this.#mailbox);
    this.#state.variables.set('mailbox_url', mailboxUrl(this.#mailbox));

    for (let i = 0; i < script.connectionCount; i++) {
      const conn = new Connection(i + 1, await this.#target.connect());
      this.#conns.push(conn);
      await this.#greeting(conn, i === 0);
    }
    if (script.startupState === 'nonauth') {
      for (const conn of this.#conns) {
        if (conn.capabilities.length === 0) await this.#initCommand(conn, 'CAPABILITY');
        if (!this.#haveCapabilities(conn)) return this.#skip(conn);
      }
    } else {
      for (let i = 0; i < this.#conns.length; i++) {
        const conn = this.#conns[i]!;
        if (!conn.preauth) await this.#login(conn, users[i]!);
      }
      const first = this.#conns[0]!;
      if (!first.postLoginCapabilities) await this.#initCommand(first, 'CAPABILITY');
      if (!this.#haveCapabilities(first)) return this.#skip(first);
      await this.#setUpMailbox(first);
    }
    this.#initFinished = true;
    while (this.#groupIdx < script.groups.length) await this.#playGroup(script.groups[this.#groupIdx]!);
  }

  async #skip(conn: Connection): Promise<void> {
    const missing = this.#script.requiredCapabilities.filter(
      (c) => !conn.capabilities.some((have) => have.toUpperCase() === c.toUpperCase()),
    );
    this.#skipped = `server lacks ${missing.join(' ')}`;
    for (const c of this.#conns) {
      c.logoutSent = true;
      c.write(`${c.nextTag()} LOGOUT\r\n`);
    }
    return Promise.resolve();
  }

  #haveCapabilities(conn: Connection): boolean {
    return this.#script.requiredCapabilities.every((c) =>
      conn.capabilities.some((have) => have.toUpperCase() === c.toUpperCase()),
    );
  }

  async #greeting(conn: Connection, first: boolean): Promise<void> {
    const r = await conn.next(this.#timeoutMs);
    if (r === 'closed' || r === 'timeout') this.#abort(`no greeting (${r})`);
    if (r.kind !== 'untagged') this.#abort(`bad greeting: ${r.raw}`);
    const status = atomOf(r.args[0])?.toUpperCase();
    if (status === 'PREAUTH') conn.preauth = true;
    else if (status !== 'OK') this.#abort(`greeting: ${r.raw}`);
    this.#noteCapabilities(conn, r.args);
    if (first && this.#script.haveBannerCheck) {
      // The first group holds only untagged lines: they are matched against the greeting.
      const group = this.#script.groups[0]!;
      this.#startGroupState(group, conn);
      this.#initFinished = true;
      this.#matchUntagged(conn, group, r.args);
      this.#finishGroup(group);
      this.#initFinished = false;
    }
  }

  /** `[CAPABILITY ...]` in a status response, or a CAPABILITY response. */
  #noteCapabilities(conn: Connection, args: readonly ImapArg[]): void {
    const first = atomOf(args[0]);
    if (first?.toUpperCase() === 'CAPABILITY') {
      conn.capabilities = args.slice(1).flatMap((a) => astringOf(a) ?? []);
      return;
    }
    const code = atomOf(args[1]);
    if (code !== undefined && code.toUpperCase() === '[CAPABILITY') {
      const caps: string[] = [];
      for (const a of args.slice(2)) {
        const s = atomOf(a);
        if (s === undefined) break;
        if (s.endsWith(']')) {
          if (s.length > 1) caps.push(s.slice(0, -1));
          break;
        }
        caps.push(s);
      }
      conn.capabilities = caps;
    }
  }

  async #login(conn: Connection, who: { user: string; password: string }): Promise<void> {
    // As imaptest: quoted strings, raw UTF-8 included (RFC 9051 allows it in quoted strings; a literal
    // would be the IMAP4rev1 way).
    const quote = (t: string): string => `"${utf8ToBytes(t).replace(/(["\\])/g, '\\$1')}"`;
    const text = `LOGIN ${quote(who.user)} ${quote(who.password)}`;
    const reply = await this.#initCommand(conn, text);
    if (reply.status !== 'OK') this.#abort(`LOGIN failed: ${reply.raw}`);
    if (reply.args.length > 1 && atomOf(reply.args[1])?.toUpperCase() === '[CAPABILITY') {
      this.#noteCapabilities(conn, reply.args);
      conn.postLoginCapabilities = true;
    }
  }

  /** Delete what an earlier run left, then create, fill and select the test mailbox, as `state` says. */
  async #setUpMailbox(first: Connection): Promise<void> {
    const wanted = this.#script.startupState;
    const mask = imapString(this.#mailbox + '*');
    this.#listed = [];
    this.#subscribed = [];
    await this.#initCommand(first, `LIST "" ${mask}`);
    await this.#initCommand(first, `LSUB "" ${mask}`);
    // Children before parents: reverse order, as imaptest sorts them.
    const byNameDesc = (a: string, b: string): number =>
      a.toLowerCase() < b.toLowerCase() ? 1 : a.toLowerCase() > b.toLowerCase() ? -1 : 0;
    for (const box of [...this.#listed].sort(byNameDesc)) {
      await this.#initCommand(first, `DELETE ${imapString(box)}`, true);
    }
    for (const box of [...this.#subscribed].sort(byNameDesc)) {
      await this.#initCommand(first, `UNSUBSCRIBE ${imapString(box)}`, true);
    }
    if (wanted === 'auth') return;
    if (this.#mailbox.toUpperCase() !== 'INBOX')
      await this.#initCommand(first, `CREATE ${imapString(this.#mailbox)}`);
    if (wanted === 'created') return;
    const count = this.#script.messageCount;
    for (
      let left = count === 'all' ? Infinity : count;
      left > 0 && (count !== 'all' || !this.#source.eof);
      left--
    ) {
      const msg = this.#source.next();
      await this.#initCommand(
        first,
        `APPEND ${imapString(this.#mailbox)} "${msg.internalDate}" ${this.#literal(first, msg.body)}`,
      );
    }
    if (wanted === 'appended') return;
    for (const [i, conn] of this.#conns.entries()) {
      conn.view.reset();
      // A second user (urlauth2's `user 2: $user2`) has a mailbox of that name too, empty, to select.
      if (i > 0 && this.#script.connectionUsers[i] !== undefined && this.#mailbox.toUpperCase() !== 'INBOX')
        await this.#initCommand(conn, `CREATE ${imapString(this.#mailbox)}`, true);
      await this.#initCommand(conn, `SELECT ${imapString(this.#mailbox)}`);
    }
  }

  /** A literal announcing `body`, `{n+}` where the server takes non-synchronizing literals. */
  #literal(conn: Connection, body: string): string {
    return `${nonSync(conn, body.length) ? `{${body.length}+}` : `{${body.length}}`}\r\n${body}`;
  }

  /**
   * Sends one set-up command and reads to its tagged reply. A NO fails the set-up (a BAD always does),
   * except for DELETE / UNSUBSCRIBE of what LIST / LSUB showed, which may be \Noselect or already gone.
   */
  async #initCommand(
    conn: Connection,
    text: string,
    noIsFine = false,
  ): Promise<{ status: string; args: ImapArg[]; raw: string }> {
    const tag = conn.nextTag();
    await this.#send(conn, tag, text);
    for (;;) {
      const r = await this.#read(conn);
      if (r.kind === 'continue') continue;
      if (r.kind === 'untagged') {
        this.#noteUntagged(conn, r.args);
        continue;
      }
      if (r.tag !== tag) this.#abort(`unexpected tagged reply: ${r.raw}`);
      const status = atomOf(r.args[0])?.toUpperCase() ?? '';
      if (status === 'BAD' || (status === 'NO' && !noIsFine && !text.startsWith('LOGIN '))) {
        this.#abort(`${text.split('\r\n', 1)[0]} (tag ${tag}) failed: ${argsToString(r.args)}`);
      }
      return { status, args: r.args, raw: r.raw };
    }
  }

  async #read(conn: Connection): Promise<Response> {
    const r = await conn.next(this.#timeoutMs);
    if (r === 'timeout')
      this.#abort(`timed out after ${this.#timeoutMs} ms waiting for a reply on connection ${conn.id}`);
    if (r === 'closed') this.#abort(`Unexpected disconnection of connection ${conn.id}`);
    return r;
  }

  /**
   * Writes `tag text`, the literals in `text` included: at once where they may be non-synchronizing,
   * else each after the server's continuation. Returns false if the server answered the command before
   * asking for a literal (it refused it), after which the rest is not sent.
   */
  async #send(conn: Connection, tag: string, text: string): Promise<boolean> {
    const parts = splitLiterals(text);
    let out = `${tag} `;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part.literalSize === undefined) {
        out += part.text;
        continue;
      }
      if (part.nonSync || nonSync(conn, part.literalSize)) {
        out += part.text.replace(/\{([0-9]+)\}$/, '{$1+}') + '\r\n';
        continue;
      }
      conn.write(out + part.text + '\r\n');
      out = '';
      if (!(await this.#awaitContinuation(conn, tag))) return false;
    }
    conn.write(out + '\r\n');
    return true;
  }

  async #awaitContinuation(conn: Connection, tag: string): Promise<boolean> {
    this.#continuation = { got: false, tag };
    try {
      for (;;) {
        const r = await this.#read(conn);
        if (r.kind === 'continue') return true;
        if (this.#initFinished) this.#process(conn, r);
        else if (r.kind === 'untagged') this.#noteUntagged(conn, r.args);
        if (r.kind === 'tagged' && r.tag === tag) {
          if (!this.#initFinished) this.#abort(`${tag} refused before its literal: ${r.raw}`);
          return false;
        }
      }
    } finally {
      this.#continuation = undefined;
    }
  }

  /**
   * imap_client_handle_untagged, the part the runner needs: the view and its checks (an error there is
   * one imaptest drops the connection for, which ends the script), capabilities, BYE, LIST/LSUB.
   */
  #noteUntagged(conn: Connection, args: readonly ImapArg[]): void {
    const error = conn.view.untagged(args);
    if (error !== undefined)
      this.#abort(`${error} (imaptest drops the connection): ${argsToString(args).slice(0, 300)}`);
    const a0 = atomOf(args[0]);
    if (a0 !== undefined && /^[0-9]+$/.test(a0)) return;
    const name = a0?.toUpperCase();
    if (name === 'BYE') conn.seenBye = true;
    this.#noteCapabilities(conn, args);
    if (!this.#initFinished && (name === 'LIST' || name === 'LSUB') && args[1]?.kind === 'list') {
      const box = astringOf(args[3]);
      if (box !== undefined) (name === 'LIST' ? this.#listed : this.#subscribed).push(box);
    }
  }

  #startGroupState(group: ScriptGroup, conn: Connection): void {
    this.#found = new Array<boolean>(group.untagged.length).fill(false);
    this.#maybes = group.untagged.map(() => ({ count: 0, text: '' }));
    this.#mismatchCount = 0;
    this.#firstExtra = undefined;
    this.#pending.clear();
    this.#firstTag = undefined;
    this.#state.seqmap = Array.from({ length: conn.view.count }, (_, i) => i + 1);
  }

  async #playGroup(group: ScriptGroup): Promise<void> {
    const conn = this.#conns[group.connectionIdx];
    if (conn === undefined) this.#abort(`no connection ${group.connectionIdx + 1}`);
    this.#startGroupState(group, conn);
    const sends: { tag: string; cmdline: string; cmd: ScriptCommand }[] = [];
    for (const cmd of group.commands) {
      const expanded = expandAll(this.#state, cmd.command, false);
      if (expanded.error !== undefined) this.#abort(expanded.error);
      let cmdline = expanded.text;
      const lower = cmdline.toLowerCase();
      // A bare APPEND (or one without a message) takes the next message of the mbox, as in imaptest.
      if (lower === 'append') {
        const msg = this.#source.next();
        cmdline = `APPEND ${imapString(this.#mailbox)} "${msg.internalDate}" {${msg.body.length}}\r\n${msg.body}`;
      } else {
        const m = /^(append|replace|uid replace) /i.exec(cmdline);
        if (
          m !== null &&
          !appendHasBody(cmdline.slice(m[0].length), !m[1]!.toLowerCase().startsWith('append'))
        ) {
          const msg = this.#source.next();
          cmdline = `${m[1]!.toUpperCase()} ${cmdline.slice(m[0].length)} {${msg.body.length}}\r\n${msg.body}`;
        } else if (cmd.linenum === 0 || lower === 'logout' || group.haveUntaggedBye) {
          conn.logoutSent = true;
        }
      }
      if (/^(select|examine) /i.test(cmdline)) conn.view.reset();
      const tag = conn.nextTag();
      this.#firstTag ??= tag;
      this.#pending.set(tag, { cmd, cmdline, expectBad: atomOf(cmd.reply?.[0])?.toLowerCase() === 'bad' });
      sends.push({ tag, cmdline, cmd });
    }
    for (const s of sends) {
      if (!this.#pending.has(s.tag)) continue;
      if (conn.closed) break;
      await this.#send(conn, s.tag, s.cmdline);
    }
    while (this.#pending.size > 0) {
      const r = await conn.next(this.#timeoutMs);
      if (r === 'timeout') this.#abort(`timed out after ${this.#timeoutMs} ms waiting for a reply`);
      if (r === 'closed') {
        // test_exec_client_disconnected: a BYE the group expects may end it, if every reply is "".
        if (group.haveUntaggedBye && conn.seenBye) {
          for (const cmd of group.commands) {
            const reply = cmd.reply ?? [];
            if (!(reply.length === 1 && astringOf(reply[0]) === '' && reply[0]?.kind === 'string')) {
              this.fail(
                `Command expected '${argsToString(reply)}' as tagged reply - only "" allowed when BYE happens`,
              );
            }
          }
          this.#pending.clear();
          this.#finishGroup(group);
          return;
        }
        this.#abort('Unexpected disconnection');
      }
      this.#process(conn, r);
    }
    this.#finishGroup(group);
    if (group.sleepMs > 0) await sleep(group.sleepMs);
  }

  /** One response on the group's connection while the group plays. */
  #process(conn: Connection, r: Response): void {
    const group = this.#script.groups[this.#groupIdx]!;
    switch (r.kind) {
      case 'continue':
        return;
      case 'untagged': {
        this.#noteUntagged(conn, r.args);
        this.#matchUntagged(conn, group, r.args);
        const seq = atomOf(r.args[0]);
        if (seq !== undefined && /^[0-9]+$/.test(seq) && atomOf(r.args[1])?.toUpperCase() === 'EXPUNGE') {
          this.#state.expunge(Number(seq));
        }
        return;
      }
      case 'tagged': {
        const pending = this.#pending.get(r.tag);
        if (pending === undefined) this.#abort(`Unexpected tagged reply: ${r.raw}`);
        this.#pending.delete(r.tag);
        if (r.tag === this.#firstTag) this.#firstTag = undefined;
        const status = atomOf(r.args[0])?.toUpperCase();
        if (status === 'OK' && /^(close|unselect)$/i.test(pending.cmdline)) conn.view.reset();
        if (status === 'BAD' && !pending.expectBad) {
          // imaptest treats an unexpected BAD as an input error: it drops the connection, which ends the
          // script ("Unexpected disconnection").
          this.#abort(`BAD reply for command: ${pending.cmdline.split('\r\n', 1)[0]}: ${r.raw}`);
        }
        const vars = this.#state.variables;
        vars.set('tag', r.tag);
        const reply = pending.cmd.reply ?? [];
        const n = matchArgs(this.#state, reply, r.args, FULL, true);
        vars.delete('tag');
        if (n !== FULL)
          this.fail(`Expected tagged reply '${argsToString(reply)}', got '${argsToString(r.args)}'`);
        return;
      }
    }
  }

  /** test_handle_untagged_match. */
  #matchUntagged(conn: Connection, group: ScriptGroup, args: ImapArg[]): void {
    const untagged = group.untagged;
    if (untagged.length === 0 && (this.#script.ignoreExtraUntagged || conn.logoutSent)) return;
    const first = atomOf(args[0])?.toUpperCase();
    const prefix = first === 'OK' || first === 'NO' || first === 'BAD' || first === 'BYE';
    const tag = group.commands.length === 0 ? undefined : this.#firstTag;
    const state = this.#state;
    state.added = [];
    let foundSome = false;
    for (let i = 0; i < untagged.length; i++) {
      if (this.#found[i]) continue;
      const ut = untagged[i]!;
      if (tag !== undefined) state.variables.set('tag', tag);
      const n = matchArgs(state, ut.args, args, FULL, prefix);
      if (tag !== undefined) state.variables.delete('tag');
      if (n === FULL) {
        if (ut.existence === 'mustNot') {
          this.fail(
            `Unexpected untagged match:\nMatch: ${argsToString(ut.args)}\nReply: ${argsToString(args)}`,
          );
          return;
        }
        this.#found[i] = true;
        foundSome = true;
        state.added = [];
        continue;
      }
      if (this.#maybes[i]!.count < n) this.#maybes[i] = { count: n, text: argsToString(args) };
      state.revertAdded();
    }
    if (!foundSome) {
      this.#mismatchCount++;
      if (!this.#script.ignoreExtraUntagged && this.#firstExtra === undefined)
        this.#firstExtra = argsToString(args);
    }
  }

  /** test_group_finished: missing untagged replies, unexpected ones, !output, !sleep; next group. */
  #finishGroup(group: ScriptGroup): void {
    const missing = group.untagged.flatMap((ut, i) =>
      ut.existence === 'must' && !this.#found[i] ? [i] : [],
    );
    if (missing.length > 0) {
      const i = missing[0]!;
      const unexpanded = argsToString(group.untagged[i]!.args);
      const expanded = expandAll(this.#state, unexpanded, true).text;
      this.fail(
        `Missing ${missing.length} untagged replies (${this.#mismatchCount} mismatches)\n` +
          ` - first unexpanded: ${unexpanded}\n - first expanded: ${expanded}\n - best match: ${this.#maybes[i]?.text ?? ''}`,
      );
    }
    if (this.#firstExtra !== undefined) {
      this.fail(`${this.#mismatchCount} unexpected untagged replies received, first: ${this.#firstExtra}`);
    }
    for (const line of group.output) {
      const out = expandAll(this.#state, line, false);
      if (out.error !== undefined) this.fail(out.error);
      this.#output.push(out.text);
    }
    for (const err of this.#state.errors.splice(0)) this.fail(err);
    this.#groupIdx++;
  }
}

/** Whether a literal of `size` bytes may be sent without waiting (RFC 7888: LITERAL+, or LITERAL- to 4096). */
function nonSync(conn: Connection, size: number): boolean {
  const caps = conn.capabilities.map((c) => c.toUpperCase());
  return caps.includes('LITERAL+') || (caps.includes('LITERAL-') && size <= 4096);
}

/** A command split at its literals: text ending in `{n}` (the announcement) followed by the n bytes. */
function splitLiterals(text: string): { text: string; literalSize?: number; nonSync?: boolean }[] {
  const parts: { text: string; literalSize?: number; nonSync?: boolean }[] = [];
  let pos = 0;
  let searchFrom = 0;
  for (;;) {
    const lf = text.indexOf('\n', searchFrom);
    if (lf < 0) break;
    const end = lf > 0 && text[lf - 1] === '\r' ? lf - 1 : lf;
    const m = /\{([0-9]+)(\+?)\}$/.exec(text.slice(Math.max(pos, end - 24), end));
    if (m === null) {
      searchFrom = lf + 1;
      continue;
    }
    const size = Number(m[1]);
    parts.push({ text: text.slice(pos, end), literalSize: size, nonSync: m[2] === '+' });
    pos = lf + 1;
    parts.push({ text: text.slice(pos, pos + size) });
    pos += size;
    searchFrom = pos;
  }
  parts.push({ text: text.slice(pos) });
  return parts;
}

/** append_has_body: `mailbox [(flags)] ["date"]` followed by a literal or CATENATE. */
function appendHasBody(args: string, replace: boolean): boolean {
  const parsed = parseImapArgs(args);
  if (!parsed.ok) return false;
  let a = parsed.args;
  if (a.length === 0) return false;
  if (replace) a = a.slice(1);
  if (a.length === 0) return false;
  let i = 0;
  if (a[i + 1]?.kind === 'list') i++;
  if (a[i + 1]?.kind === 'string') i++;
  const next = a[i + 1];
  return next?.kind === 'literal' || atomOf(next)?.toLowerCase() === 'catenate';
}

/** An IMAP string for a byte string: quoted where it can be, else a literal. */
function imapString(bytes: string): string {
  if (/^[\x20-\x7e]*$/.test(bytes)) return `"${bytes.replace(/(["\\])/g, '\\$1')}"`;
  return `{${bytes.length}}\r\n${bytes}`;
}

/** $mailbox_url: the mailbox as the path of an IMAP URL (RFC 5092), from modified UTF-7 to %-escaped UTF-8. */
function mailboxUrl(mailboxBytes: string): string {
  const utf8 = utf8ToBytes(decodeModifiedUtf7(mailboxBytes));
  let out = '';
  for (const ch of utf8) {
    if (/[A-Za-z0-9\-._~!$&'()*+,=:@/]/.test(ch)) out += ch;
    else out += '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function decodeModifiedUtf7(s: string): string {
  return s.replace(/&([A-Za-z0-9+,]*)-/g, (_, b64: string) => {
    if (b64 === '') return '&';
    const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
    let out = '';
    for (let i = 0; i + 1 < bytes.length; i += 2)
      out += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
    return out;
  });
}

export type { Script };

/** The directory of the scripts this repository carries (from Dovecot imaptest, see scripts/SOURCE). */
export const SCRIPTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'scripts');

/**
 * The runnable scripts of a directory, sorted, as imaptest scans it: every plain file but the `.mbox`
 * files; sub-directories (`broken/`) are not descended into. The licence and provenance files that sit
 * beside the scripts here (COPYING, COPYING.MIT, SOURCE, scripted_test.md) are not scripts.
 */
export async function listScripts(dir: string = SCRIPTS_DIR): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const notScripts = new Set(['COPYING', 'COPYING.MIT', 'SOURCE', 'scripted_test.md']);
  return entries
    .filter(
      (e) => e.isFile() && !e.name.startsWith('.') && !e.name.endsWith('.mbox') && !notScripts.has(e.name),
    )
    .map((e) => join(dir, e.name))
    .sort();
}
