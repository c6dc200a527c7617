// SECURITY: the POP3 server state machine. It sees every byte a client sends.
//
// Pure: bytes in → effects out. No sockets, files, timers or clocks: the driver performs the effects and
// feeds decisions back with resolve(). While a decision is pending the session consumes no input; bytes
// that arrive meanwhile wait in its buffer, which the driver bounds by pausing the socket (bufferedBytes).
//
// Implements RFC 1939 (AUTHORIZATION → TRANSACTION → UPDATE; USER, PASS, APOP, QUIT, STAT, LIST, RETR,
// DELE, NOOP, RSET, TOP, UIDL), RFC 2449 (CAPA, RESP-CODES, PIPELINING, EXPIRE, IMPLEMENTATION, the
// 255-octet command line), RFC 2595 §4 (STLS; plaintext pipelined after STLS is discarded), RFC 5034 (AUTH
// with an initial response, "+ " continuations, "*" cancel), RFC 3206 (SYS/TEMP, SYS/PERM, AUTH response
// codes, AUTH-RESP-CODE), RFC 6856 (UTF8, "UTF8 USER": user names and passwords may be UTF-8).
// Deliberately NOT here: SASL mechanisms (the SASL drive), credentials and lockouts (the driver's
// AuthGuard), the maildrop lock, message bytes and the expunge (the store), timeouts (the driver's clock),
// RFC 6856 LANG, RFC 6857 downgrading, LOGIN-DELAY (not enforced, so not advertised).
//
// The driver's contract, in order of a session's life:
//   greet()                       → the greeting reply (with the APOP timestamp when APOP is on).
//   feed(bytes)                   → effects; resolve(result) → effects. Perform effects in order.
//   reply {reply, lines?}         → write formatReply(reply, lines) (replies.ts); lines = multi-line.
//   challenge {challenge}         → write formatChallenge(challenge): "+ <base64>".
//   starttls                      → handshake; resolve {kind:'tls', ok, authMechanisms?} (the list may
//                                   change once TLS is up). ok:false closes.
//   login {user, password}        → USER/PASS: check (AuthGuard, directory; never log the password);
//   apop {user, digest, timestamp}  APOP: the same decision; resolve {kind:'login', outcome}.
//   auth-start {mechanism, initialResponse} / auth-response {line}
//                                 → the SASL drive's next step; resolve {kind:'auth', outcome} with a
//                                   challenge (continues) or success/failure (ends). "*" and over-long
//                                   lines are the session's: a `state` effect out of 'auth' ends the
//                                   drive's exchange without a resolve.
//   open-maildrop {user, utf8}    → lock the user's INBOX and list it; resolve {kind:'maildrop', outcome}
//                                   with the messages in order ({uid, sizeBytes}; message n = entry n-1)
//                                   or a refusal (Pop3Replies.maildropInUse / maildropUnavailable).
//   open-message {message, topLines}
//                                 → RETR (topLines null) / TOP: open the stored message; resolve
//                                   {kind:'message', ok}. On ok the session emits the +OK reply and then
//   send-message {message, topLines}
//                                 → stream the opened message through MessageEncoder (message-stream.ts)
//                                   and write its end(). Not a decision: the next effect follows it.
//   update {deleted}              → QUIT in TRANSACTION: expunge the marked messages in one transaction,
//                                   resolve {kind:'update', ok}; the session replies and closes.
//   close                         → end the connection and release the maildrop lock. A close without an
//                                   update (error limit, timeout, dropped connection) deletes nothing.
//   state / command / violation   → log lines.

import { assertNever } from '../../core/assert-never.ts';
import { Pop3Replies, maildropReply, retrReply, scanReply, statReply, type Pop3Reply } from './replies.ts';

/** RFC 2449 §4: a command line may be up to 255 octets, CRLF included. */
export const RFC2449_MAX_COMMAND_LINE_BYTES = 255;

/**
 * AUTH lines (the command with an initial response, and continuation lines) may be longer: RFC 5034 asks
 * clients to move an initial response that does not fit 255 octets into a continuation, but sets no limit
 * on continuations, and OAUTHBEARER tokens and SCRAM messages with long names exceed 255. 12288 octets
 * is RFC 4954's bound for SMTP, the same SASL drive's limit on submission.
 */
export const MAX_AUTH_LINE_BYTES = 12_288;

export interface Pop3SessionOptions {
  /** STLS can be offered: a certificate is loaded and the listener is not implicit TLS. */
  readonly starttls: boolean;
  /** The connection is already encrypted (implicit TLS, pop3s). */
  readonly tlsActive: boolean;
  /** SASL mechanisms, as for submission; "-PLUS" and EXTERNAL need TLS. Empty: no AUTH. */
  readonly authMechanisms: readonly string[];
  /** USER/PASS and AUTH without TLS (loopback clients with the listener option). */
  readonly plaintextAuth: boolean;
  /**
   * APOP (RFC 1939 §7): the greeting's timestamp, "<unique@host>", made by the driver (the session has no
   * clock or randomness). null: APOP is off, absent from the greeting and CAPA, and answered -ERR.
   */
  readonly apopTimestamp: string | null;
  /** Command line limit, CRLF included (RFC2449_MAX_COMMAND_LINE_BYTES unless there is a reason). */
  readonly maxCommandLineBytes: number;
  /** Client errors (-ERR for bad syntax, sequence, message numbers) before -ERR and close. 0 = no limit. */
  readonly maxErrors: number;
  /** Commands allowed before a maildrop is open (AUTHORIZATION state); past it -ERR and close. 0 = none. */
  readonly maxJunkCommands: number;
}

/** The explicit session states (RFC 1939 §3); every transition is reported as a `state` effect. */
export type Phase =
  | 'authorization'
  | 'auth' // inside a SASL exchange: lines are responses, not commands
  | 'transaction'
  | 'update' // QUIT in TRANSACTION: the expunge is under way
  | 'closed';

export type Pending = 'tls' | 'login' | 'auth' | 'maildrop' | 'message' | 'update';

/** One maildrop entry as the store lists it. `uid`: the UIDL value, 1-70 characters 0x21-0x7E. */
export interface MaildropEntry {
  readonly uid: string;
  readonly sizeBytes: number;
}

/** A message of this session: its number (1-based, fixed for the session) and its maildrop entry. */
export interface MessageRef extends MaildropEntry {
  readonly number: number;
}

export type Effect =
  | { readonly kind: 'reply'; readonly reply: Pop3Reply; readonly lines?: readonly string[] }
  | { readonly kind: 'challenge'; readonly challenge: string }
  | { readonly kind: 'close' }
  | { readonly kind: 'state'; readonly from: Phase; readonly to: Phase }
  | { readonly kind: 'command'; readonly verb: string }
  | { readonly kind: 'violation'; readonly what: string }
  | { readonly kind: 'starttls' }
  | { readonly kind: 'login'; readonly user: string; readonly password: string }
  | { readonly kind: 'apop'; readonly user: string; readonly digest: string; readonly timestamp: string }
  | { readonly kind: 'auth-start'; readonly mechanism: string; readonly initialResponse: string | null }
  | { readonly kind: 'auth-response'; readonly line: string }
  | { readonly kind: 'open-maildrop'; readonly user: string; readonly utf8: boolean }
  | { readonly kind: 'open-message'; readonly message: MessageRef; readonly topLines: number | null }
  | { readonly kind: 'send-message'; readonly message: MessageRef; readonly topLines: number | null }
  | { readonly kind: 'update'; readonly deleted: readonly MessageRef[] };

/** How a login (USER/PASS, APOP) or a whole SASL exchange ended. */
export type LoginOutcome =
  /** `user`: the canonical login (the user's address), whose INBOX is the maildrop. */
  | { readonly kind: 'success'; readonly user: string }
  /**
   * `reply` defaults to Pop3Replies.loginFailed. `close`: the connection's last allowed failure (the
   * AuthGuard's lockout): the reply goes out, then the connection closes.
   */
  | { readonly kind: 'failure'; readonly reply?: Pop3Reply; readonly close: boolean };

export type AuthOutcome = { readonly kind: 'challenge'; readonly challenge: string } | LoginOutcome;

export type MaildropOutcome =
  | { readonly ok: true; readonly messages: readonly MaildropEntry[] }
  | { readonly ok: false; readonly reply: Pop3Reply };

export type Resolution =
  | { readonly kind: 'tls'; readonly ok: boolean; readonly authMechanisms?: readonly string[] }
  | { readonly kind: 'login'; readonly outcome: LoginOutcome }
  | { readonly kind: 'auth'; readonly outcome: AuthOutcome }
  | { readonly kind: 'maildrop'; readonly outcome: MaildropOutcome }
  /** `reply` (on failure) defaults to Pop3Replies.messageUnavailable. */
  | { readonly kind: 'message'; readonly ok: boolean; readonly reply?: Pop3Reply }
  | { readonly kind: 'update'; readonly ok: boolean };

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const EMPTY = new Uint8Array(0);
const LF = 10;
const CR = 13;
/** "AUTH " in either case: such a line gets the longer SASL bound (MAX_AUTH_LINE_BYTES). */
const AUTH_PREFIX = [0x41, 0x55, 0x54, 0x48, 0x20];
const UID_PATTERN = /^[\x21-\x7e]{1,70}$/;

export class Pop3Session {
  readonly options: Pop3SessionOptions;
  phase: Phase = 'authorization';
  pending: Pending | null = null;
  tlsActive: boolean;
  /** RFC 6856 UTF-8 mode: the client may get UTF-8 headers unencoded. */
  utf8 = false;
  /** The maildrop's owner, once logged in. */
  user: string | null = null;
  errors = 0;
  /** Commands in the AUTHORIZATION state (maxJunkCommands). */
  junkCommands = 0;
  private authMechanisms: readonly string[];
  /** The name given by USER, waiting for PASS. */
  private userName: string | null = null;
  private messages: readonly MessageRef[] = [];
  private readonly marked = new Set<number>();
  /** The RETR/TOP waiting for its open-message decision. */
  private retrieving: { message: MessageRef; topLines: number | null } | null = null;
  private buffer: Uint8Array = EMPTY;
  /** Set while skipping the rest of an over-long line. */
  private skippingLongLine = false;
  private effects: Effect[] = [];

  constructor(options: Pop3SessionOptions) {
    this.options = options;
    this.tlsActive = options.tlsActive;
    this.authMechanisms = options.authMechanisms;
  }

  /** The greeting (RFC 1939 §4), with APOP's timestamp when APOP is on. */
  greet(): Effect[] {
    const ts = this.options.apopTimestamp;
    const greeting = Pop3Replies.greeting;
    this.reply(ts === null ? greeting : { ...greeting, text: `${greeting.text} ${ts}` });
    return this.drain();
  }

  /** Feed bytes from the client. Processing stops while a decision is pending. */
  feed(bytes: Uint8Array): Effect[] {
    if (this.phase === 'closed') return [];
    this.buffer = this.buffer.length === 0 ? bytes : concat(this.buffer, bytes);
    this.process();
    return this.drain();
  }

  /** The result of the pending decision; continues with any buffered input. */
  resolve(result: Resolution): Effect[] {
    // The driver closed the session (a timeout) while its decision was under way: nothing left to say.
    if (this.phase === 'closed') return [];
    if (this.pending !== result.kind)
      throw new Error(`resolve(${result.kind}) while pending ${this.pending ?? 'nothing'}`);
    this.pending = null;
    switch (result.kind) {
      case 'tls':
        this.resolveTls(result.ok, result.authMechanisms);
        break;
      case 'login':
        this.resolveLogin(result.outcome);
        break;
      case 'auth':
        if (result.outcome.kind === 'challenge') {
          this.out({ kind: 'challenge', challenge: result.outcome.challenge });
        } else {
          this.setPhase('authorization');
          this.resolveLogin(result.outcome);
        }
        break;
      case 'maildrop':
        this.resolveMaildrop(result.outcome);
        break;
      case 'message':
        this.resolveMessage(result.ok, result.reply);
        break;
      case 'update':
        this.reply(result.ok ? Pop3Replies.updated : Pop3Replies.updateFailed);
        this.close();
        break;
      default:
        assertNever(result);
    }
    this.process();
    return this.drain();
  }

  /** Bytes buffered but not yet consumed (the driver pauses the socket when this grows). */
  get bufferedBytes(): number {
    return this.buffer.length;
  }

  /** SASL mechanisms offered now: none before TLS unless plaintext AUTH is allowed; "-PLUS"/EXTERNAL need TLS. */
  offeredMechanisms(): string[] {
    const all = this.authMechanisms;
    if (!this.loginAllowed()) return [];
    return this.tlsActive ? [...all] : all.filter((m) => !m.endsWith('-PLUS') && m !== 'EXTERNAL');
  }

  /** The CAPA lines for the current state (RFC 2449 §5, §6). */
  capabilities(): string[] {
    const caps = ['TOP', 'UIDL'];
    if (this.phase === 'authorization') {
      if (this.loginAllowed()) caps.push('USER');
      const mechanisms = this.offeredMechanisms();
      if (mechanisms.length > 0) caps.push(`SASL ${mechanisms.join(' ')}`);
      if (this.options.starttls && !this.tlsActive) caps.push('STLS');
    }
    caps.push(
      'RESP-CODES',
      'AUTH-RESP-CODE',
      'PIPELINING',
      'EXPIRE NEVER',
      'UTF8 USER',
      'IMPLEMENTATION Tern',
    );
    return caps;
  }

  /** Ends the session without UPDATE (timeouts, shutdown): nothing marked is deleted. */
  close(): void {
    if (this.phase === 'closed') return;
    this.setPhase('closed');
    this.pending = null;
    this.buffer = EMPTY;
    this.out({ kind: 'close' });
  }

  // ---------------------------------------------------------------------------------------------

  private loginAllowed(): boolean {
    return this.tlsActive || this.options.plaintextAuth;
  }

  private process(): void {
    while (this.pending === null && this.phase !== 'closed' && this.buffer.length > 0) {
      if (!this.consumeLine()) break; // an incomplete line: wait for more bytes
    }
  }

  private lineLimit(): number {
    if (this.phase === 'auth') return MAX_AUTH_LINE_BYTES;
    const buf = this.buffer;
    // The bytes decide, so any fragmentation decides the same once the limit could matter (buf > limit).
    for (let i = 0; i < AUTH_PREFIX.length; i++) {
      const b = buf[i];
      if (b === undefined || (b & 0xdf) !== (AUTH_PREFIX[i]! & 0xdf) || (i === 4 && b !== 0x20))
        return this.options.maxCommandLineBytes;
    }
    return MAX_AUTH_LINE_BYTES;
  }

  /** Consumes one line; false when no complete line is buffered yet. */
  private consumeLine(): boolean {
    const buf = this.buffer;
    const max = this.lineLimit();
    const lf = buf.indexOf(LF);
    if (lf < 0) {
      if (buf.length > max) {
        // Never buffer a line beyond the limit: drop what we have and skip to its end.
        if (!this.skippingLongLine) this.lineTooLong();
        this.skippingLongLine = true;
        this.buffer = EMPTY;
        return true;
      }
      return false;
    }
    const lineBytes = buf.subarray(0, lf);
    this.buffer = buf.subarray(lf + 1);
    if (this.skippingLongLine) {
      this.skippingLongLine = false;
      return true;
    }
    if (lf + 1 > max) {
      this.lineTooLong();
      return true;
    }
    // A bare LF ends a line too (clients typed by hand); a CR anywhere else is refused.
    const content = lf > 0 && lineBytes[lf - 1] === CR ? lineBytes.subarray(0, lf - 1) : lineBytes;
    let line: string | null = null;
    try {
      line = utf8Decoder.decode(content);
    } catch {
      line = null;
    }
    if (line === null || content.includes(CR) || line.includes('\0')) {
      if (this.phase === 'auth') {
        this.setPhase('authorization');
        this.error(Pop3Replies.authBadBase64, 'malformed SASL response');
      } else if (line === null) {
        this.error(Pop3Replies.notUtf8, 'command is not valid UTF-8');
      } else {
        this.error(Pop3Replies.syntaxError, 'CR or NUL in command');
      }
      return true;
    }
    if (this.phase === 'auth') this.authResponse(line);
    else this.command(line);
    return true;
  }

  private lineTooLong(): void {
    if (this.phase === 'auth') {
      this.setPhase('authorization');
      return this.error(Pop3Replies.authLineTooLong, 'SASL response too long');
    }
    if (this.phase === 'authorization' && this.countJunk()) return;
    this.error(Pop3Replies.lineTooLong, 'command line too long');
  }

  private command(line: string): void {
    const space = line.indexOf(' ');
    const word = space < 0 ? line : line.slice(0, space);
    /** PASS takes the rest of the line as it is: a password may contain spaces (RFC 1939 §7). */
    const rest = space < 0 ? '' : line.slice(space + 1);
    const args = rest.split(' ').filter((a) => a !== '');
    const verb = /^[A-Za-z0-9]{1,8}$/.test(word) ? word.toUpperCase() : '?';
    this.out({ kind: 'command', verb });
    if (this.phase === 'authorization' && this.countJunk()) return;
    switch (verb) {
      case 'CAPA':
        if (args.length > 0) return this.error(Pop3Replies.syntaxError, 'CAPA with arguments');
        return this.reply(Pop3Replies.capabilities, this.capabilities());
      case 'QUIT':
        return this.cmdQuit(args);
      case 'USER':
      case 'PASS':
      case 'APOP':
      case 'AUTH':
      case 'STLS':
      case 'UTF8':
        if (this.phase !== 'authorization') return this.error(Pop3Replies.badSequence, `${verb} after login`);
        return this.authorizationCommand(verb, args, rest);
      case 'STAT':
      case 'LIST':
      case 'RETR':
      case 'DELE':
      case 'NOOP':
      case 'RSET':
      case 'TOP':
      case 'UIDL':
        if (this.phase !== 'transaction') return this.error(Pop3Replies.badSequence, `${verb} before login`);
        return this.transactionCommand(verb, args);
      default:
        return this.error(Pop3Replies.unknownCommand, 'unknown command');
    }
  }

  private authorizationCommand(
    verb: 'USER' | 'PASS' | 'APOP' | 'AUTH' | 'STLS' | 'UTF8',
    args: readonly string[],
    rest: string,
  ): void {
    switch (verb) {
      case 'USER':
        if (!this.loginAllowed()) return this.error(Pop3Replies.loginNeedsTls, 'USER without TLS');
        if (args.length !== 1) return this.error(Pop3Replies.syntaxError, 'bad USER arguments');
        // Always +OK: whether the name exists is not told before PASS (no user enumeration).
        this.userName = args[0]!;
        return this.reply(Pop3Replies.userOk);
      case 'PASS': {
        if (!this.loginAllowed()) return this.error(Pop3Replies.loginNeedsTls, 'PASS without TLS');
        const user = this.userName;
        if (user === null) return this.error(Pop3Replies.needUser, 'PASS without USER');
        if (rest === '') return this.error(Pop3Replies.syntaxError, 'PASS without password');
        // RFC 1939 §7: after PASS, success or not, a new attempt starts again with USER.
        this.userName = null;
        this.pending = 'login';
        return this.out({ kind: 'login', user, password: rest });
      }
      case 'APOP': {
        const timestamp = this.options.apopTimestamp;
        if (timestamp === null) return this.error(Pop3Replies.apopDisabled, 'APOP is off');
        if (args.length !== 2 || !/^[0-9A-Fa-f]{32}$/.test(args[1]!))
          return this.error(Pop3Replies.syntaxError, 'bad APOP arguments');
        this.userName = null;
        this.pending = 'login';
        return this.out({ kind: 'apop', user: args[0]!, digest: args[1]!.toLowerCase(), timestamp });
      }
      case 'AUTH':
        return this.cmdAuth(args);
      case 'STLS':
        return this.cmdStls(args);
      case 'UTF8':
        if (args.length > 0) return this.error(Pop3Replies.syntaxError, 'UTF8 with arguments');
        this.utf8 = true;
        return this.reply(Pop3Replies.utf8Enabled);
      default:
        return assertNever(verb);
    }
  }

  private cmdQuit(args: readonly string[]): void {
    if (args.length > 0) return this.error(Pop3Replies.syntaxError, 'QUIT with arguments');
    if (this.phase !== 'transaction') {
      this.reply(Pop3Replies.bye);
      return this.close();
    }
    // RFC 1939 §6: the UPDATE state; the reply waits for the expunge.
    this.setPhase('update');
    this.pending = 'update';
    this.out({ kind: 'update', deleted: this.messages.filter((m) => this.marked.has(m.number)) });
  }

  private cmdStls(args: readonly string[]): void {
    if (args.length > 0) return this.error(Pop3Replies.syntaxError, 'STLS with arguments');
    if (this.tlsActive) return this.error(Pop3Replies.tlsActive, 'STLS when TLS is active');
    if (!this.options.starttls) return this.error(Pop3Replies.tlsUnavailable, 'STLS not offered');
    this.reply(Pop3Replies.beginTls);
    // SECURITY: anything pipelined after STLS is plaintext injected before the handshake (CVE-2011-0411
    // class); it is discarded, never executed.
    if (this.buffer.length > 0) this.out({ kind: 'violation', what: 'data pipelined after STLS discarded' });
    this.buffer = EMPTY;
    this.skippingLongLine = false;
    this.userName = null;
    this.pending = 'tls';
    this.out({ kind: 'starttls' });
  }

  private resolveTls(ok: boolean, authMechanisms: readonly string[] | undefined): void {
    if (!ok) return this.close();
    // RFC 2595 §4: the client forgets what it learned before; the server forgets USER and UTF8.
    this.tlsActive = true;
    this.utf8 = false;
    if (authMechanisms !== undefined) this.authMechanisms = authMechanisms;
  }

  private cmdAuth(args: readonly string[]): void {
    // AUTH alone lists the mechanisms, as Dovecot and Outlook-era clients expect (RFC 1734 practice).
    if (args.length === 0) return this.reply(Pop3Replies.authMechanisms, this.offeredMechanisms());
    const mechanism = args[0]!.toUpperCase();
    if (args.length > 2 || !/^[A-Z0-9_-]{1,20}$/.test(mechanism))
      return this.error(Pop3Replies.syntaxError, 'bad AUTH arguments');
    if (!this.offeredMechanisms().includes(mechanism)) {
      const needsTls = !this.tlsActive && this.authMechanisms.includes(mechanism);
      return this.error(
        needsTls ? Pop3Replies.authNeedsTls : Pop3Replies.authUnknownMechanism,
        'AUTH mechanism not offered',
      );
    }
    this.userName = null;
    this.setPhase('auth');
    this.pending = 'auth';
    // The initial response ("=" for empty, RFC 5034 §4) is checked by the SASL drive.
    this.out({ kind: 'auth-start', mechanism, initialResponse: args[1] ?? null });
  }

  private authResponse(line: string): void {
    if (line === '*') {
      this.setPhase('authorization');
      return this.error(Pop3Replies.authCancelled, 'AUTH cancelled');
    }
    this.pending = 'auth';
    this.out({ kind: 'auth-response', line });
  }

  private resolveLogin(outcome: LoginOutcome): void {
    switch (outcome.kind) {
      case 'success':
        this.pending = 'maildrop';
        this.user = outcome.user;
        this.out({ kind: 'open-maildrop', user: outcome.user, utf8: this.utf8 });
        return;
      case 'failure':
        this.reply(outcome.reply ?? Pop3Replies.loginFailed);
        if (outcome.close) this.close();
        return;
      default:
        assertNever(outcome);
    }
  }

  private resolveMaildrop(outcome: MaildropOutcome): void {
    if (!outcome.ok) {
      // RFC 1939 §4: the client may log in again or QUIT.
      this.user = null;
      return this.reply(outcome.reply);
    }
    this.messages = outcome.messages.map((m, i) => {
      if (!UID_PATTERN.test(m.uid) || !Number.isSafeInteger(m.sizeBytes) || m.sizeBytes < 0)
        throw new Error(`maildrop entry ${i + 1} is not valid for POP3`);
      return { number: i + 1, uid: m.uid, sizeBytes: m.sizeBytes };
    });
    this.marked.clear();
    this.setPhase('transaction');
    this.replyMaildropSize();
  }

  private transactionCommand(
    verb: 'STAT' | 'LIST' | 'RETR' | 'DELE' | 'NOOP' | 'RSET' | 'TOP' | 'UIDL',
    args: readonly string[],
  ): void {
    switch (verb) {
      case 'STAT': {
        if (args.length > 0) return this.error(Pop3Replies.syntaxError, 'STAT with arguments');
        const visible = this.visible();
        return this.reply(statReply(visible.length, octets(visible)));
      }
      case 'LIST':
      case 'UIDL': {
        const value = (m: MessageRef): number | string => (verb === 'LIST' ? m.sizeBytes : m.uid);
        if (args.length > 1) return this.error(Pop3Replies.syntaxError, `${verb} with arguments`);
        if (args.length === 1) {
          const m = this.message(args[0]!);
          if (m === null) return;
          return this.reply(scanReply(m.number, value(m)));
        }
        const visible = this.visible();
        const head =
          verb === 'LIST' ? maildropReply(visible.length, octets(visible)) : Pop3Replies.uidlFollows;
        return this.reply(
          head,
          visible.map((m) => `${m.number} ${value(m)}`),
        );
      }
      case 'RETR':
      case 'TOP': {
        const want = verb === 'RETR' ? 1 : 2;
        if (args.length !== want) return this.error(Pop3Replies.syntaxError, `bad ${verb} arguments`);
        let topLines: number | null = null;
        if (verb === 'TOP') {
          const n = args[1]!;
          if (!/^[0-9]+$/.test(n)) return this.error(Pop3Replies.syntaxError, 'bad TOP line count');
          // A count beyond any message is the whole body; clamp rather than refuse.
          topLines = n.length > 15 ? Number.MAX_SAFE_INTEGER : Number(n);
        }
        const m = this.message(args[0]!);
        if (m === null) return;
        this.retrieving = { message: m, topLines };
        this.pending = 'message';
        return this.out({ kind: 'open-message', message: m, topLines });
      }
      case 'DELE': {
        if (args.length !== 1) return this.error(Pop3Replies.syntaxError, 'bad DELE arguments');
        const m = this.message(args[0]!, Pop3Replies.alreadyDeleted);
        if (m === null) return;
        this.marked.add(m.number);
        return this.reply(Pop3Replies.deleted);
      }
      case 'NOOP':
        if (args.length > 0) return this.error(Pop3Replies.syntaxError, 'NOOP with arguments');
        return this.reply(Pop3Replies.noop);
      case 'RSET':
        if (args.length > 0) return this.error(Pop3Replies.syntaxError, 'RSET with arguments');
        this.marked.clear();
        return this.replyMaildropSize();
      default:
        return assertNever(verb);
    }
  }

  private resolveMessage(ok: boolean, reply: Pop3Reply | undefined): void {
    const r = this.retrieving!;
    this.retrieving = null;
    if (!ok) return this.reply(reply ?? Pop3Replies.messageUnavailable);
    this.reply(r.topLines === null ? retrReply(r.message.sizeBytes) : Pop3Replies.messageFollows);
    this.out({ kind: 'send-message', message: r.message, topLines: r.topLines });
  }

  /**
   * A message-number argument: decimal digits only (no sign, no spaces), 1..count, not marked deleted.
   * null when refused (the -ERR is out).
   */
  private message(arg: string, markedReply: Pop3Reply = Pop3Replies.noSuchMessage): MessageRef | null {
    if (!/^[0-9]+$/.test(arg)) {
      this.error(Pop3Replies.badMessageNumber, 'message number is not a number');
      return null;
    }
    const n = arg.length > 10 ? 0 : Number(arg);
    const m = n >= 1 ? this.messages[n - 1] : undefined;
    if (m === undefined) {
      this.error(Pop3Replies.noSuchMessage, 'no such message');
      return null;
    }
    if (this.marked.has(n)) {
      this.error(markedReply, 'message is marked deleted');
      return null;
    }
    return m;
  }

  private visible(): MessageRef[] {
    return this.messages.filter((m) => !this.marked.has(m.number));
  }

  private replyMaildropSize(): void {
    const visible = this.visible();
    this.reply(maildropReply(visible.length, octets(visible)));
  }

  private setPhase(to: Phase): void {
    if (this.phase === to) return;
    this.out({ kind: 'state', from: this.phase, to });
    this.phase = to;
  }

  private reply(reply: Pop3Reply, lines?: readonly string[]): void {
    this.out(lines === undefined ? { kind: 'reply', reply } : { kind: 'reply', reply, lines });
  }

  /** A client error: logged, answered, counted; too many and the connection is closed. */
  private error(reply: Pop3Reply, what: string): void {
    this.out({ kind: 'violation', what });
    this.reply(reply);
    this.errors++;
    const max = this.options.maxErrors;
    if (max > 0 && this.errors >= max && this.phase !== 'closed') {
      this.reply(Pop3Replies.tooManyErrors);
      this.close();
    }
  }

  /**
   * Junk: any command line before a maildrop is open. A client needs a handful (CAPA, STLS, CAPA, AUTH or
   * USER/PASS, UTF8); one that loops without logging in is cut. After login every command is real work,
   * bounded by the idle timer. True when the limit was passed and the session is closed.
   */
  private countJunk(): boolean {
    this.junkCommands++;
    const max = this.options.maxJunkCommands;
    if (max <= 0 || this.junkCommands <= max) return false;
    this.out({ kind: 'violation', what: `more than ${max} commands without logging in` });
    this.reply(Pop3Replies.tooManyJunkCommands);
    this.close();
    return true;
  }

  private out(effect: Effect): void {
    this.effects.push(effect);
  }

  private drain(): Effect[] {
    const e = this.effects;
    this.effects = [];
    return e;
  }
}

function octets(messages: readonly MessageRef[]): number {
  let sum = 0;
  for (const m of messages) sum += m.sizeBytes;
  return sum;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
