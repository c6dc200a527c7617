// SECURITY: the ManageSieve server state machine. It sees every byte a client sends.
//
// Pure: bytes in → effects out. No sockets, files, timers or clocks: the driver performs the effects and
// feeds decisions back with resolve(). While a decision is pending the session consumes no input; bytes
// that arrive meanwhile wait in its reader (bufferedBytes), and the shell holds the rest until the
// driver's data handler returns.
//
// Implements RFC 5804: the capability greeting (§1.7), CAPABILITY, STARTTLS with the capabilities
// sent again after the handshake (§2.2; plaintext pipelined after STARTTLS is discarded), AUTHENTICATE with
// an optional initial response, string responses and "*" to cancel (§2.1), UNAUTHENTICATE (§2.14),
// LOGOUT, NOOP with the TAG echo (§2.13), HAVESPACE, PUTSCRIPT, LISTSCRIPTS, SETACTIVE ("" deactivates),
// GETSCRIPT, DELETESCRIPT (never the active script), RENAMESCRIPT, CHECKSCRIPT; script names per §1.6
// (stored in NFC); the response codes NONEXISTENT, ALREADYEXISTS, ACTIVE, QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE,
// WARNINGS, TRYLATER, ENCRYPT-NEEDED, TAG. Client literals "{n+}" and, leniently, "{n}" (reader.ts).
// Deliberately NOT here: SASL mechanisms (the SASL drive), credentials and lockouts, Sieve syntax (the
// `validate` option: this module does not import the Sieve language), storage (the `store` effect: the
// driver runs it against the script store and resolves), timeouts (the driver's clock), REFERRAL, SASL
// security layers, NOTIFY and LANGUAGE capabilities.
//
// The driver's contract, in order of a session's life:
//   greet()                       → the greeting: the capability lines and OK.
//   feed(bytes)                   → effects; resolve(result) → effects. Perform effects in order.
//   reply {reply, lines?}         → write formatReply(reply, lines) (format.ts): data lines, then status.
//   challenge {challenge}         → write formatChallenge(challenge): the base64 as a string line.
//   starttls                      → handshake; resolve {kind:'tls', ok, authMechanisms?} (the list may
//                                   change once TLS is up). ok:false closes; ok:true sends the
//                                   capabilities again.
//   auth-start {mechanism, initialResponse}
//                                 → the SASL drive's start(mechanism, initialResponse): initialResponse
//                                   is base64, "=" for an empty one, null for none (the codec's form).
//   auth-response {response}      → the drive's line(response): base64, "" for an empty response.
//                                   Both resolve {kind:'auth', outcome}: a challenge (continues), success
//                                   {user} or failure {reply?, close}. "*", malformed responses and
//                                   over-long ones are the session's: a `state` effect out of 'auth'
//                                   without a resolve ends the drive's exchange (its next start() resets).
//   store {user, op}              → run op on the user's scripts; resolve {kind:'store', result}:
//                                   list → {kind:'list'}, get → {kind:'script'}, every other op →
//                                   {kind:'done'}; any op may be {kind:'refused', refusal} (a store
//                                   error is refusal 'temporary', its cause logged by the driver).
//   close                         → end the connection.
//   state / command / violation   → log lines ('command' is also the idle timer's activity).

import { assertNever } from '../../core/assert-never.ts';
import { MAX_SASL_LINE_OCTETS } from '../sasl/codec.ts';
import { utf8Length, type DataLine, type SieveResponse } from './format.ts';
import { commandVerb, isScriptPosition, parseCommand, type Item, type SieveCommand } from './parse.ts';
import { SieveReader, type LiteralLimit, type ReadError, type ReaderEvent } from './reader.ts';
import { invalidScript, SieveReplies, taggedNoop, withWarnings } from './replies.ts';

/** A script's size limit unless configured otherwise (RFC 5804 leaves it to the server). */
export const DEFAULT_MAX_SCRIPT_BYTES = 1024 * 1024;

/**
 * One line with its CRLF: a SASL response as a quoted string (12288 octets, RFC 4954's bound the SASL drive
 * keeps) fits, and so does any command with quoted names of MAX_SCRIPT_NAME_BYTES.
 */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;

/** A literal up to this many times its limit is read and dropped (NO); a larger one ends the connection. */
const SKIP_FACTOR = 16;

/** The Sieve validator's answer: errors as one text ("line 3 column 5: ..."), warnings optional. */
export type ScriptCheck =
  { readonly ok: true; readonly warnings?: string } | { readonly ok: false; readonly message: string };

export type ScriptValidator = (script: string) => ScriptCheck;

export interface ManageSieveSessionOptions {
  /** STARTTLS can be offered: a certificate is loaded and the connection is not yet encrypted. */
  readonly starttls: boolean;
  /** The connection is already encrypted (implicit TLS). */
  readonly tlsActive: boolean;
  /** SASL mechanisms; "-PLUS" and EXTERNAL need TLS. Empty: no AUTHENTICATE. */
  readonly authMechanisms: readonly string[];
  /** AUTHENTICATE without TLS (loopback clients with the listener option). */
  readonly plaintextAuth: boolean;
  /** The SIEVE capability: the extensions the validator knows, space-separated ("fileinto vacation"). */
  readonly sieveExtensions: string;
  /** The MAXREDIRECTS capability (RFC 5804 §1.7); null leaves it out. */
  readonly maxRedirects: number | null;
  /** Syntax check for PUTSCRIPT and CHECKSCRIPT. Pure; a throw is answered NO, never propagated. */
  readonly validate: ScriptValidator;
  /** Largest script (UTF-8 octets): larger ones get NO (QUOTA/MAXSIZE). DEFAULT_MAX_SCRIPT_BYTES. */
  readonly maxScriptBytes: number;
  /** One line with CRLF; also the limit of literals other than scripts. DEFAULT_MAX_LINE_BYTES. */
  readonly maxLineBytes: number;
  /** Client errors (NO for bad syntax, sequence, names) before BYE and close. 0 = no limit. */
  readonly maxErrors: number;
  /** Commands allowed before authentication; past it BYE and close. 0 = no limit. */
  readonly maxCommandsBeforeAuth: number;
}

/** The explicit session states; every transition is reported as a `state` effect. */
export type Phase =
  | 'unauthenticated'
  | 'auth' // inside a SASL exchange: what the client sends are responses, not commands
  | 'authenticated'
  | 'closed';

export type Pending = 'tls' | 'auth' | 'store';

/** One entry of LISTSCRIPTS. */
export interface ScriptEntry {
  readonly name: string;
  readonly active: boolean;
}

/** A storage operation on the authenticated user's scripts. Names are valid and NFC (checkScriptName). */
export type StoreOp =
  /** HAVESPACE: would a PUTSCRIPT of this name and size fit the quotas? (Size already checked ≤ max.) */
  | { readonly kind: 'have-space'; readonly name: string; readonly sizeBytes: number }
  /** PUTSCRIPT: create or replace (a replaced active script stays active). The script was validated. */
  | { readonly kind: 'put'; readonly name: string; readonly script: string }
  | { readonly kind: 'list' }
  /** SETACTIVE; null deactivates whatever is active. */
  | { readonly kind: 'set-active'; readonly name: string | null }
  | { readonly kind: 'get'; readonly name: string }
  /** DELETESCRIPT: refused 'active' for the active script. */
  | { readonly kind: 'delete'; readonly name: string }
  /** RENAMESCRIPT: refused 'already-exists' when `to` exists; the active script stays active. */
  | { readonly kind: 'rename'; readonly from: string; readonly to: string };

export type StoreRefusal =
  | 'nonexistent'
  | 'already-exists'
  | 'active'
  | 'max-scripts'
  | 'max-size'
  /** The store failed (I/O, busy): NO (TRYLATER). */
  | 'temporary';

export type StoreResult =
  | { readonly kind: 'done' }
  | { readonly kind: 'list'; readonly scripts: readonly ScriptEntry[] }
  | { readonly kind: 'script'; readonly script: string }
  | { readonly kind: 'refused'; readonly refusal: StoreRefusal };

export type Effect =
  | { readonly kind: 'reply'; readonly reply: SieveResponse; readonly lines?: readonly DataLine[] }
  | { readonly kind: 'challenge'; readonly challenge: string }
  | { readonly kind: 'close' }
  | { readonly kind: 'state'; readonly from: Phase; readonly to: Phase }
  | { readonly kind: 'command'; readonly verb: string }
  | { readonly kind: 'violation'; readonly what: string }
  | { readonly kind: 'starttls' }
  | { readonly kind: 'auth-start'; readonly mechanism: string; readonly initialResponse: string | null }
  | { readonly kind: 'auth-response'; readonly response: string }
  | { readonly kind: 'store'; readonly user: string; readonly op: StoreOp };

export type AuthOutcome =
  /** Base64; the exchange goes on. */
  | { readonly kind: 'challenge'; readonly challenge: string }
  /** `user`: the canonical login (the user's address), whose scripts the session manages. */
  | { readonly kind: 'success'; readonly user: string }
  /**
   * `reply` defaults to SieveReplies.authFailed (the drive's framing gives it: sieveAuthFraming).
   * `close`: the connection's last allowed failure: the reply goes out, then BYE and close.
   */
  | { readonly kind: 'failure'; readonly reply?: SieveResponse; readonly close: boolean };

export type Resolution =
  | { readonly kind: 'tls'; readonly ok: boolean; readonly authMechanisms?: readonly string[] }
  | { readonly kind: 'auth'; readonly outcome: AuthOutcome }
  | { readonly kind: 'store'; readonly result: StoreResult };

const MECHANISM_SYNTAX = /^[A-Za-z0-9_-]{1,20}$/;

const str = (value: string): DataLine[number] => ({ kind: 'string', value });

export class ManageSieveSession {
  readonly options: ManageSieveSessionOptions;
  phase: Phase = 'unauthenticated';
  pending: Pending | null = null;
  tlsActive: boolean;
  /** The authenticated user, whose scripts every store op names. */
  user: string | null = null;
  errors = 0;
  /** Commands while not authenticated (maxCommandsBeforeAuth). */
  commandsBeforeAuth = 0;
  private authMechanisms: readonly string[];
  private readonly reader: SieveReader;
  /** The op of the pending store decision, and the validator's warnings for a PUTSCRIPT. */
  private storeOp: StoreOp | null = null;
  private putWarnings: string | null = null;
  private effects: Effect[] = [];

  constructor(options: ManageSieveSessionOptions) {
    this.options = options;
    this.tlsActive = options.tlsActive;
    this.authMechanisms = options.authMechanisms;
    this.reader = new SieveReader({
      maxLineBytes: options.maxLineBytes,
      literalLimit: (items) => this.literalLimit(items),
    });
  }

  /** The greeting (RFC 5804 §1.7): the capabilities, then OK. */
  greet(): Effect[] {
    this.reply(SieveReplies.greeting, this.capabilities());
    return this.drain();
  }

  /** Feed bytes from the client. Processing stops while a decision is pending. */
  feed(bytes: Uint8Array): Effect[] {
    if (this.phase === 'closed') return [];
    this.reader.push(bytes);
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
      case 'auth':
        this.resolveAuth(result.outcome);
        break;
      case 'store':
        this.resolveStore(result.result);
        break;
      default:
        assertNever(result);
    }
    this.process();
    return this.drain();
  }

  /**
   * Bytes held and not yet consumed, a script literal being collected included (up to maxScriptBytes):
   * a bound on pausing the socket must sit above that, or a large PUTSCRIPT could never complete.
   */
  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  /** SASL mechanisms offered now: none before TLS unless plaintext is allowed; "-PLUS"/EXTERNAL need TLS. */
  offeredMechanisms(): string[] {
    if (!this.tlsActive && !this.options.plaintextAuth) return [];
    const all = this.authMechanisms;
    return this.tlsActive ? [...all] : all.filter((m) => !m.endsWith('-PLUS') && m !== 'EXTERNAL');
  }

  /** The capability lines for the current state (RFC 5804 §1.7). */
  capabilities(): DataLine[] {
    const authenticated = this.user !== null;
    const lines: DataLine[] = [[str('IMPLEMENTATION'), str('Tern')]];
    // Once authenticated there is nothing to offer; an empty list reads as "STARTTLS first", so the line
    // is left out.
    if (!authenticated) lines.push([str('SASL'), str(this.offeredMechanisms().join(' '))]);
    lines.push([str('SIEVE'), str(this.options.sieveExtensions)]);
    if (this.options.starttls && !this.tlsActive && !authenticated) lines.push([str('STARTTLS')]);
    if (this.options.maxRedirects !== null)
      lines.push([str('MAXREDIRECTS'), str(String(this.options.maxRedirects))]);
    if (this.user !== null) lines.push([str('OWNER'), str(this.user)]);
    lines.push([str('UNAUTHENTICATE')], [str('VERSION'), str('1.0')]);
    return lines;
  }

  /** Ends the session (timeouts, shutdown); the driver writes its own BYE first. */
  close(): void {
    if (this.phase === 'closed') return;
    this.setPhase('closed');
    this.pending = null;
    this.storeOp = null;
    this.reader.discard();
    this.out({ kind: 'close' });
  }

  // ---------------------------------------------------------------------------------------------

  private literalLimit(items: readonly Item[]): LiteralLimit {
    const line = this.options.maxLineBytes;
    // Before authentication nothing needs more than a line; skipping is bounded the same way.
    if (this.phase === 'auth') return { maxBytes: MAX_SASL_LINE_OCTETS, maxSkipBytes: 4 * line };
    if (this.phase !== 'authenticated') return { maxBytes: line, maxSkipBytes: 4 * line };
    const script = this.options.maxScriptBytes;
    const maxSkipBytes = SKIP_FACTOR * Math.max(script, line);
    return { maxBytes: isScriptPosition(items) ? script : line, maxSkipBytes };
  }

  private process(): void {
    while (this.pending === null && this.phase !== 'closed') {
      const event = this.reader.next();
      if (event === null) break;
      this.handle(event);
    }
  }

  private handle(event: ReaderEvent): void {
    switch (event.kind) {
      case 'fatal':
        this.out({ kind: 'violation', what: 'literal too large to skip' });
        this.reply(SieveReplies.literalTooLarge);
        return this.close();
      case 'error':
        if (this.phase === 'auth') {
          const tooLong = event.error === 'line-too-long' || event.error === 'literal-too-large';
          return this.authFailed(
            tooLong ? SieveReplies.authLineTooLong : SieveReplies.authMalformed,
            `SASL response: ${event.error}`,
          );
        }
        return this.readError(event.error, event.items);
      case 'command':
        if (this.phase === 'auth') return this.authResponse(event.items);
        return this.command(event.items);
      default:
        return assertNever(event);
    }
  }

  private readError(error: ReadError, items: readonly Item[]): void {
    this.out({ kind: 'command', verb: commandVerb(items) });
    if (this.phase === 'unauthenticated' && this.countCommandBeforeAuth()) return;
    const script = this.phase === 'authenticated' && isScriptPosition(items);
    switch (error) {
      case 'literal-too-large':
        // A script over the quota is an answer the client can act on, not a protocol error.
        if (script) return this.reply(SieveReplies.scriptTooLarge);
        return this.error(SieveReplies.stringTooLong, 'string literal too large');
      case 'line-too-long':
        return this.error(SieveReplies.lineTooLong, 'command line too long');
      case 'not-utf8':
        if (script) return this.error(SieveReplies.scriptNotUtf8, 'script is not UTF-8 text');
        return this.error(SieveReplies.notUtf8, 'command is not UTF-8 text');
      case 'syntax':
      case 'too-many-items':
        return this.error(SieveReplies.syntaxError, `command syntax: ${error}`);
      default:
        return assertNever(error);
    }
  }

  private command(items: readonly Item[]): void {
    const parsed = parseCommand(items);
    this.out({ kind: 'command', verb: parsed.ok ? parsed.command.kind.toUpperCase() : parsed.verb });
    if (this.phase === 'unauthenticated' && this.countCommandBeforeAuth()) return;
    if (!parsed.ok) {
      switch (parsed.error) {
        case 'unknown-command':
          return this.error(SieveReplies.unknownCommand, 'unknown command');
        case 'syntax':
          return this.error(
            parsed.verb === 'AUTHENTICATE' ? SieveReplies.authSyntax : SieveReplies.syntaxError,
            `${parsed.verb} syntax`,
          );
        case 'bad-name':
          return this.error(SieveReplies.invalidName, 'invalid script name');
        default:
          return assertNever(parsed.error);
      }
    }
    const command = parsed.command;
    switch (command.kind) {
      case 'capability':
        return this.reply(SieveReplies.capabilities, this.capabilities());
      case 'logout':
        this.reply(SieveReplies.logout);
        return this.close();
      case 'noop':
        return this.reply(command.tag === null ? SieveReplies.noop : taggedNoop(command.tag));
      case 'starttls':
        return this.cmdStarttls();
      case 'authenticate':
        return this.cmdAuthenticate(command.mechanism, command.initialResponse);
      default:
        break;
    }
    const user = this.user;
    if (this.phase !== 'authenticated' || user === null)
      return this.error(
        command.kind === 'unauthenticate' ? SieveReplies.notAuthenticated : SieveReplies.authenticateFirst,
        `${command.kind.toUpperCase()} before authentication`,
      );
    this.scriptCommand(user, command);
  }

  private scriptCommand(user: string, command: SieveCommand): void {
    switch (command.kind) {
      case 'unauthenticate':
        // RFC 5804 §2.14: back to the non-authenticated state, as if just connected (TLS stays).
        this.user = null;
        this.setPhase('unauthenticated');
        return this.reply(SieveReplies.unauthenticated);
      case 'havespace':
        if (command.sizeBytes === null || command.sizeBytes > this.options.maxScriptBytes)
          return this.reply(SieveReplies.scriptTooLarge);
        return this.store(user, { kind: 'have-space', name: command.name, sizeBytes: command.sizeBytes });
      case 'putscript': {
        const check = this.check(command.script);
        if (check === null) return;
        this.putWarnings = check.warnings ?? null;
        return this.store(user, { kind: 'put', name: command.name, script: command.script });
      }
      case 'checkscript': {
        const check = this.check(command.script);
        if (check === null) return;
        const valid = SieveReplies.scriptValid;
        return this.reply(check.warnings === undefined ? valid : withWarnings(valid, check.warnings));
      }
      case 'listscripts':
        return this.store(user, { kind: 'list' });
      case 'setactive':
        return this.store(user, { kind: 'set-active', name: command.name === '' ? null : command.name });
      case 'getscript':
        return this.store(user, { kind: 'get', name: command.name });
      case 'deletescript':
        return this.store(user, { kind: 'delete', name: command.name });
      case 'renamescript':
        return this.store(user, { kind: 'rename', from: command.from, to: command.to });
      case 'capability':
      case 'logout':
      case 'noop':
      case 'starttls':
      case 'authenticate':
        // Answered in command(), whatever the state.
        return;
      default:
        return assertNever(command);
    }
  }

  /**
   * The size and syntax checks PUTSCRIPT and CHECKSCRIPT share: null when refused (the NO is out), else
   * the validator's warnings (if any).
   */
  private check(script: string): { readonly warnings?: string } | null {
    if (utf8Length(script) > this.options.maxScriptBytes) {
      this.reply(SieveReplies.scriptTooLarge);
      return null;
    }
    let result: ScriptCheck;
    try {
      result = this.options.validate(script);
    } catch (err) {
      this.out({ kind: 'violation', what: `script validator failed: ${String(err)}` });
      this.reply(SieveReplies.scriptUncheckable);
      return null;
    }
    if (!result.ok) {
      // The client's own script: answered with the validator's words, not counted as a protocol error.
      this.reply(invalidScript(result.message));
      return null;
    }
    return result.warnings === undefined || result.warnings === '' ? {} : { warnings: result.warnings };
  }

  private store(user: string, op: StoreOp): void {
    this.storeOp = op;
    this.pending = 'store';
    this.out({ kind: 'store', user, op });
  }

  private resolveStore(result: StoreResult): void {
    const op = this.storeOp;
    const warnings = this.putWarnings;
    this.storeOp = null;
    this.putWarnings = null;
    if (op === null) throw new Error('store result without a store op');
    if (result.kind === 'refused') return this.reply(refusalReply(result.refusal));
    const mismatch = (): never => {
      throw new Error(`store result ${result.kind} for op ${op.kind}`);
    };
    switch (op.kind) {
      case 'list': {
        if (result.kind !== 'list') return mismatch();
        const lines = result.scripts.map((s): DataLine =>
          s.active ? [str(s.name), { kind: 'atom', value: 'ACTIVE' }] : [str(s.name)],
        );
        return this.reply(SieveReplies.listed, lines);
      }
      case 'get':
        if (result.kind !== 'script') return mismatch();
        // RFC 5804 §2.9: the script as a string; a literal always, whatever it holds.
        return this.reply(SieveReplies.got, [[{ kind: 'literal', value: result.script }]]);
      case 'put':
        if (result.kind !== 'done') return mismatch();
        return this.reply(
          warnings === null ? SieveReplies.stored : withWarnings(SieveReplies.stored, warnings),
        );
      case 'have-space':
        return result.kind === 'done' ? this.reply(SieveReplies.haveSpace) : mismatch();
      case 'set-active':
        if (result.kind !== 'done') return mismatch();
        return this.reply(op.name === null ? SieveReplies.deactivated : SieveReplies.activated);
      case 'delete':
        return result.kind === 'done' ? this.reply(SieveReplies.deleted) : mismatch();
      case 'rename':
        return result.kind === 'done' ? this.reply(SieveReplies.renamed) : mismatch();
      default:
        return assertNever(op);
    }
  }

  private cmdStarttls(): void {
    if (this.phase === 'authenticated')
      return this.error(SieveReplies.starttlsAfterAuth, 'STARTTLS after authentication');
    if (this.tlsActive) return this.error(SieveReplies.tlsActive, 'STARTTLS when TLS is active');
    if (!this.options.starttls) return this.error(SieveReplies.tlsUnavailable, 'STARTTLS not offered');
    this.reply(SieveReplies.beginTls);
    // SECURITY: anything pipelined after STARTTLS is plaintext injected before the handshake
    // (CVE-2011-0411 class); it is discarded, never executed.
    const dropped = this.reader.discard();
    if (dropped > 0) this.out({ kind: 'violation', what: 'data pipelined after STARTTLS discarded' });
    this.pending = 'tls';
    this.out({ kind: 'starttls' });
  }

  private resolveTls(ok: boolean, authMechanisms: readonly string[] | undefined): void {
    if (!ok) return this.close();
    this.tlsActive = true;
    if (authMechanisms !== undefined) this.authMechanisms = authMechanisms;
    // RFC 5804 §2.2: the capabilities again (they change: SASL, STARTTLS), then OK.
    this.reply(SieveReplies.tlsCapabilities, this.capabilities());
  }

  private cmdAuthenticate(mechanismArg: string, initialResponse: string | null): void {
    if (this.phase === 'authenticated')
      return this.error(SieveReplies.alreadyAuthenticated, 'AUTHENTICATE when authenticated');
    if (!MECHANISM_SYNTAX.test(mechanismArg))
      return this.error(SieveReplies.authSyntax, 'bad mechanism name');
    const mechanism = mechanismArg.toUpperCase();
    if (!this.offeredMechanisms().includes(mechanism)) {
      const needsTls = !this.tlsActive && this.authMechanisms.includes(mechanism);
      return this.error(
        needsTls ? SieveReplies.authNeedsTls : SieveReplies.authUnknownMechanism,
        'AUTHENTICATE mechanism not offered',
      );
    }
    this.setPhase('auth');
    this.pending = 'auth';
    // ManageSieve sends an empty initial response as "" (a string); the SASL codec's form of it is "=".
    const initial = initialResponse === '' ? '=' : initialResponse;
    this.out({ kind: 'auth-start', mechanism, initialResponse: initial });
  }

  private authResponse(items: readonly Item[]): void {
    const only = items[0];
    if (only === undefined || items.length !== 1)
      return this.authFailed(SieveReplies.authMalformed, 'SASL response is not one string');
    if (only.value === '*') return this.authFailed(SieveReplies.authCancelled, 'AUTHENTICATE cancelled');
    this.pending = 'auth';
    this.out({ kind: 'auth-response', response: only.value });
  }

  /** The session ends an exchange itself (cancel, malformed or over-long response): NO, counted. */
  private authFailed(reply: SieveResponse, what: string): void {
    this.setPhase('unauthenticated');
    this.error(reply, what);
  }

  private resolveAuth(outcome: AuthOutcome): void {
    switch (outcome.kind) {
      case 'challenge':
        this.out({ kind: 'challenge', challenge: outcome.challenge });
        return;
      case 'success':
        this.user = outcome.user;
        this.setPhase('authenticated');
        this.reply(SieveReplies.authSucceeded);
        return;
      case 'failure':
        this.setPhase('unauthenticated');
        this.reply(outcome.reply ?? SieveReplies.authFailed);
        if (outcome.close) {
          this.reply(SieveReplies.tooManyAuthFailures);
          this.close();
        }
        return;
      default:
        assertNever(outcome);
    }
  }

  private setPhase(to: Phase): void {
    if (this.phase === to) return;
    this.out({ kind: 'state', from: this.phase, to });
    this.phase = to;
  }

  private reply(reply: SieveResponse, lines?: readonly DataLine[]): void {
    this.out(lines === undefined ? { kind: 'reply', reply } : { kind: 'reply', reply, lines });
  }

  /** A client error: logged, answered, counted; too many and the connection is closed with BYE. */
  private error(reply: SieveResponse, what: string): void {
    this.out({ kind: 'violation', what });
    this.reply(reply);
    this.errors++;
    const max = this.options.maxErrors;
    if (max > 0 && this.errors >= max && this.phase !== 'closed') {
      this.reply(SieveReplies.tooManyErrors);
      this.close();
    }
  }

  /**
   * Any command before authentication: a client needs a handful (CAPABILITY, STARTTLS, AUTHENTICATE,
   * NOOP); one that loops without authenticating is cut. True when the limit was passed (closed).
   */
  private countCommandBeforeAuth(): boolean {
    this.commandsBeforeAuth++;
    const max = this.options.maxCommandsBeforeAuth;
    if (max <= 0 || this.commandsBeforeAuth <= max) return false;
    this.out({ kind: 'violation', what: `more than ${max} commands without authenticating` });
    this.reply(SieveReplies.tooManyCommandsBeforeAuth);
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

/** The answer to a refused store op (RFC 5804 §1.3 codes). */
export function refusalReply(refusal: StoreRefusal): SieveResponse {
  switch (refusal) {
    case 'nonexistent':
      return SieveReplies.nonexistent;
    case 'already-exists':
      return SieveReplies.alreadyExists;
    case 'active':
      return SieveReplies.active;
    case 'max-scripts':
      return SieveReplies.tooManyScripts;
    case 'max-size':
      return SieveReplies.scriptTooLarge;
    case 'temporary':
      return SieveReplies.storeTemporaryFailure;
    default:
      return assertNever(refusal);
  }
}
