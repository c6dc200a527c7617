// SECURITY: the SMTP server state machine. It sees every byte a client sends.
//
// Pure: bytes in → effects out (replies, data chunks, requests for decisions). No sockets, files, DNS or
// clocks: the driver (src/server/smtp-connection.ts) performs effects and feeds results back. While a
// decision is pending (MAIL/RCPT checks, the commit of a message, a TLS handshake) the session consumes no
// input; bytes that arrive meanwhile wait in its buffer, which the driver bounds by pausing the socket.
//
// Implements RFC 5321 (commands, sequence, reply codes), RFC 1870 SIZE, RFC 2920 PIPELINING, RFC 6152
// 8BITMIME, RFC 3030 CHUNKING/BINARYMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN parameters, RFC 2034/3463
// enhanced status codes, RFC 3207 STARTTLS (buffered plaintext after STARTTLS is discarded, CVE-2011-0411),
// RFC 4468 BURL (a chunk whose octets the driver fetches by URLAUTH URL; BDAT's rules otherwise).
// AUTH (RFC 4954): the session owns the wire side (AUTH command, 334 exchange, "*" cancel, line limits,
// when AUTH may be offered); the SASL conversation itself runs in the driver with src/protocol/sasl.
// Deliberately NOT here: relay and recipient decisions (policy + directory via the driver), SASL
// mechanisms, the Received: header text (received.ts), timeouts (the driver owns the clock).

import type { Mailbox } from '../../core/address.ts';
import { assertNever } from '../../core/assert-never.ts';
import type { EnvelopeRecipient } from '../../core/envelope.ts';
import { Replies, withText, type Reply } from '../../core/reply.ts';
import {
  isAcceptableHelo,
  parseBdat,
  parseCommandLine,
  parseMail,
  parseRcpt,
  type MailParams,
  type RcptCommand,
} from './command.ts';
import { DataScanner } from './data-scanner.ts';
import { parseXclient, XCLIENT_ATTRIBUTES, type XclientAttributes } from './xclient.ts';
import { offeredMechanisms } from '../sasl/index.ts';

export interface SessionOptions {
  readonly hostname: string;
  readonly maxMessageBytes: number;
  readonly maxRecipients: number;
  readonly maxTransactions: number;
  readonly maxCommandLineBytes: number;
  readonly maxTextLineBytes: number;
  readonly longLines: 'reject' | 'accept';
  readonly maxErrors: number;
  /**
   * Commands that move no mail (see countJunk) allowed since the last accepted message; past it, 421 4.7.0
   * and close. 0 = no limit.
   */
  readonly maxJunkCommands: number;
  readonly bareLineEndings: 'reject' | 'normalize';
  readonly vrfy: boolean;
  /** Whether STARTTLS can be offered (a certificate is loaded and the listener is not implicit TLS). */
  readonly starttls: boolean;
  /** The connection is already encrypted (implicit TLS). */
  readonly tlsActive: boolean;
  /** SASL mechanisms this listener offers; empty means no AUTH. "-PLUS" and EXTERNAL need TLS. */
  readonly authMechanisms: readonly string[];
  /** AUTH may be offered without TLS (loopback clients with the listener option). */
  readonly plaintextAuth: boolean;
  /** MAIL needs a successful AUTH first (530 5.7.0). */
  readonly requireAuth: boolean;
  /** BURL (RFC 4468): offered on submission listeners, whose driver can read the mailbox store. */
  readonly burl?: boolean;
  /**
   * LMTP (RFC 2033): LHLO instead of EHLO/HELO, and after the content one reply per accepted recipient,
   * in RCPT order (the driver's `recipientReplies`).
   */
  readonly lmtp?: boolean;
  /** XCLIENT (Postfix's extension) may be used: the client is in [smtp] xclient_from. */
  readonly xclient?: boolean;
  /**
   * FUTURERELEASE (RFC 4865): the longest hold offered, in seconds (0 or absent: not offered), and the
   * clock its EHLO line's latest release date is computed from (time is an input here).
   */
  readonly futureRelease?: { readonly maxSeconds: number; readonly nowMs: () => number };
}

/** RFC 4954 §4: a client's SASL response line may be up to 12288 octets. */
const MAX_AUTH_LINE_BYTES = 12_288;

/** How the driver's SASL conversation went for one step. */
export type AuthOutcome =
  | { readonly kind: 'challenge'; readonly challenge: string }
  | { readonly kind: 'success'; readonly user: string; readonly reply?: Reply }
  /** `close`: this was the connection's last allowed failure; `reply` still goes out, then 421 4.7.0. */
  | { readonly kind: 'failure'; readonly reply: Reply; readonly close: boolean };

/** The explicit session states (OpenSMTPD style); every transition is reported as a `state` effect. */
export type Phase =
  | 'connected' // greeting sent, no EHLO/HELO yet
  | 'ready' // EHLO/HELO done, no transaction
  | 'mail' // MAIL accepted, no recipient yet
  | 'rcpt' // at least one recipient accepted
  | 'data' // receiving DATA content
  | 'bdat' // inside a BDAT chunk
  | 'bdat-wait' // between BDAT chunks of a transaction
  | 'auth' // inside a SASL exchange: lines are responses, not commands
  | 'closed';

export type Pending =
  | { readonly kind: 'mail' }
  | { readonly kind: 'rcpt' }
  | { readonly kind: 'vrfy' }
  | { readonly kind: 'commit' }
  | { readonly kind: 'tls' }
  | { readonly kind: 'auth' }
  | { readonly kind: 'burl' }
  | { readonly kind: 'xclient' };

export interface TransactionInfo {
  readonly sender: Mailbox | null;
  readonly params: MailParams;
  readonly recipients: readonly EnvelopeRecipient[];
}

export type Effect =
  | { readonly kind: 'reply'; readonly reply: Reply; readonly extraLines?: readonly string[] }
  | { readonly kind: 'close' }
  | { readonly kind: 'state'; readonly from: Phase; readonly to: Phase }
  | { readonly kind: 'command'; readonly verb: string }
  /** A protocol violation worth a log line (bare LF, long line, smuggling attempt...). */
  | { readonly kind: 'violation'; readonly what: string }
  | { readonly kind: 'starttls' }
  /** AUTH <mechanism> [initial-response]: the driver starts a SASL mechanism. */
  | { readonly kind: 'auth-start'; readonly mechanism: string; readonly initialResponse: string | null }
  /** One client line of the SASL exchange (base64, not yet decoded). */
  | { readonly kind: 'auth-response'; readonly line: string }
  | { readonly kind: 'check-mail'; readonly sender: Mailbox | null; readonly params: MailParams }
  | { readonly kind: 'check-rcpt'; readonly rcpt: RcptCommand; readonly transaction: TransactionInfo }
  | { readonly kind: 'check-vrfy'; readonly arg: string }
  /**
   * BURL (RFC 4468): the driver fetches the URL's octets as `user` and resolves 'burl' with them, or with
   * null when the URL names nothing this user may submit. `begin-message` comes first when needed.
   */
  | { readonly kind: 'burl'; readonly url: string; readonly user: string }
  /** XCLIENT: the driver checks and takes the attributes, and resolves 'xclient'. */
  | { readonly kind: 'xclient'; readonly attributes: XclientAttributes }
  /** Message content starts (first DATA byte or first BDAT chunk): the driver opens a queue writer. */
  | { readonly kind: 'begin-message'; readonly transaction: TransactionInfo }
  | { readonly kind: 'data'; readonly chunk: Uint8Array }
  /** The message content is refused or the transaction is reset: the driver discards the writer. */
  | { readonly kind: 'abort-message' }
  /**
   * End of content: the driver commits (fsync) and resolves with the reply to send. `longLines`: a line
   * was over 998 octets (longLines 'accept', or maxTextLineBytes over 1000): encoded before it is relayed.
   */
  | {
      readonly kind: 'commit';
      readonly transaction: TransactionInfo;
      readonly sizeBytes: number;
      readonly longLines?: true;
    };

export type Resolution =
  | { readonly kind: 'mail'; readonly reply: Reply | null }
  /** `recipient` is what goes into the envelope when accepted (null: refused with `reply`). */
  | { readonly kind: 'rcpt'; readonly recipient: EnvelopeRecipient | null; readonly reply: Reply }
  | { readonly kind: 'vrfy'; readonly reply: Reply }
  /**
   * `recipientReplies` (LMTP): one per recipient of the transaction, in order; absent: `reply` for each.
   * SMTP sends `reply` alone.
   */
  | { readonly kind: 'commit'; readonly reply: Reply; readonly recipientReplies?: readonly Reply[] }
  | { readonly kind: 'tls'; readonly ok: boolean }
  | { readonly kind: 'auth'; readonly outcome: AuthOutcome }
  /** BURL: the URL's octets (in memory, up to the message size limit), or null with the reply to send. */
  | { readonly kind: 'burl'; readonly content: Uint8Array | null; readonly reply: Reply | null }
  /**
   * XCLIENT: null reply when the attributes were taken (the session starts over with a 220 greeting;
   * `login` the identity LOGIN named, null for none), else the refusal.
   */
  | { readonly kind: 'xclient'; readonly reply: Reply | null; readonly login?: string | null };

/** Verbs that move mail or change the session's footing; the rest is junk (countJunk). */
const MAIL_VERBS: ReadonlySet<string> = new Set([
  'MAIL',
  'RCPT',
  'DATA',
  'BDAT',
  'BURL',
  'STARTTLS',
  'AUTH',
  'QUIT',
]);

const utf8 = new TextDecoder('utf-8', { fatal: true });
const EMPTY = new Uint8Array(0);

interface Transaction {
  sender: Mailbox | null;
  params: MailParams;
  recipients: EnvelopeRecipient[];
  /** Content started (DATA 354 sent or first BDAT chunk consumed). */
  contentStarted: boolean;
  usedBdat: boolean;
  scanner: DataScanner | null;
  /** Content bytes counted against maxMessageBytes (after unstuffing). */
  sizeBytes: number;
  tooBig: boolean;
}

export class SmtpSession {
  readonly options: SessionOptions;
  phase: Phase = 'connected';
  pending: Pending | null = null;
  esmtp = false;
  helo: string | null = null;
  tlsActive: boolean;
  /** The authenticated identity, once AUTH succeeded. */
  authUser: string | null = null;
  /** The phase to return to when a SASL exchange ends. */
  private authReturnPhase: Phase = 'ready';
  transactions = 0;
  errors = 0;
  /** Commands that moved no mail since the session started or the last message was accepted. */
  junkCommands = 0;
  /** Whether the line being handled was already counted as junk (a junk verb that is also refused). */
  private lineCounted = false;
  private tx: Transaction | null = null;
  /** Unconsumed input (command mode). */
  private buffer: Uint8Array = EMPTY;
  /** Bytes still to consume for the current BDAT chunk. */
  private bdatRemaining = 0;
  private bdatLast = false;
  /** Set while skipping the rest of an over-long command line. */
  private skippingLongLine = false;
  private effects: Effect[] = [];

  constructor(options: SessionOptions) {
    this.options = options;
    this.tlsActive = options.tlsActive;
  }

  /** The greeting (RFC 5321 §4.3.1). */
  greet(): Effect[] {
    this.sendGreeting();
    return this.drain();
  }

  private sendGreeting(): void {
    this.out({
      kind: 'reply',
      reply: withText(
        { code: 220, enhanced: '', text: '' },
        `${this.options.hostname} ${this.options.lmtp === true ? 'LMTP' : 'ESMTP'} Tern`,
      ),
    });
  }

  /** The phase in which the driver should apply the data-block timeout rather than the command timeout. */
  get inContent(): boolean {
    return this.phase === 'data' || this.phase === 'bdat';
  }

  /** Feed bytes from the client. Processing stops while a decision is pending. */
  feed(bytes: Uint8Array): Effect[] {
    if (this.phase === 'closed') return [];
    this.buffer = this.buffer.length === 0 ? bytes : concat(this.buffer, bytes);
    this.process();
    return this.drain();
  }

  /** Result of a pending decision; continues with any buffered input. */
  resolve(result: Resolution): Effect[] {
    const pending = this.pending;
    if (!pending || pending.kind !== result.kind)
      throw new Error(`resolve(${result.kind}) while pending ${pending?.kind ?? 'nothing'}`);
    this.pending = null;
    switch (result.kind) {
      case 'mail':
        this.resolveMail(result.reply);
        break;
      case 'rcpt':
        this.resolveRcpt(result.recipient, result.reply);
        break;
      case 'vrfy':
        this.reply(result.reply);
        break;
      case 'auth':
        this.resolveAuth(result.outcome);
        break;
      case 'commit':
        this.finishTransaction(result.reply, result.recipientReplies);
        break;
      case 'burl':
        this.resolveBurl(result.content, result.reply);
        break;
      case 'xclient':
        if (result.reply !== null) {
          this.error(result.reply, 'XCLIENT refused');
          break;
        }
        // XCLIENT_README: the server acts as if the named client had just connected.
        this.esmtp = false;
        this.helo = null;
        this.authUser = result.login ?? null;
        this.tx = null;
        this.setPhase('connected');
        this.sendGreeting();
        break;
      case 'tls':
        if (!result.ok) {
          this.close();
          break;
        }
        // RFC 3207 §4.2: forget everything learned before the handshake; the client must EHLO again.
        this.tlsActive = true;
        this.esmtp = false;
        this.helo = null;
        this.authUser = null;
        this.tx = null;
        this.setPhase('connected');
        break;
      default:
        assertNever(result);
    }
    if (this.phase !== 'closed') this.process();
    return this.drain();
  }

  /** Bytes buffered but not yet consumed (the driver pauses the socket when this grows). */
  get bufferedBytes(): number {
    return this.buffer.length;
  }

  /** The transaction the current content belongs to, for the driver's Received: header. */
  get transaction(): TransactionInfo | null {
    return this.tx ? this.info(this.tx) : null;
  }

  // ---------------------------------------------------------------------------------------------

  private process(): void {
    while (this.pending === null && this.phase !== 'closed' && this.buffer.length > 0) {
      if (this.phase === 'data') this.consumeData();
      else if (this.phase === 'bdat') this.consumeBdat();
      else if (!this.consumeLine()) break; // an incomplete line: wait for more bytes
    }
  }

  /** Consumes one command line; false when no complete line is buffered yet. */
  private consumeLine(): boolean {
    const buf = this.buffer;
    const max = this.phase === 'auth' ? MAX_AUTH_LINE_BYTES : this.options.maxCommandLineBytes;
    const lf = buf.indexOf(10);
    if (lf < 0) {
      if (buf.length > max) {
        // Never buffer a line beyond the limit: drop what we have and skip to its end.
        if (!this.skippingLongLine) {
          this.lineCounted = false;
          this.lineTooLong();
        }
        this.skippingLongLine = true;
        this.buffer = EMPTY;
        return true;
      }
      return false;
    }
    const lineBytes = buf.subarray(0, lf);
    this.buffer = buf.subarray(lf + 1);
    this.lineCounted = false;
    if (this.skippingLongLine) {
      this.skippingLongLine = false;
      return true;
    }
    if (lf + 1 > max) {
      this.lineTooLong();
      return true;
    }
    const properCrlf = lf > 0 && lineBytes[lf - 1] === 13;
    const content = properCrlf ? lineBytes.subarray(0, lf - 1) : lineBytes;
    if (!properCrlf || content.includes(13)) {
      if (this.options.bareLineEndings === 'reject' || content.includes(13)) {
        this.error(Replies.bareLineEndingCommand, 'bare CR or LF in command');
        return true;
      }
    }
    let line: string;
    try {
      line = utf8.decode(content);
    } catch {
      this.error(Replies.syntaxError, 'command is not valid UTF-8');
      return true;
    }
    if (line.includes('\0')) {
      this.error(Replies.syntaxError, 'NUL in command');
      return true;
    }
    if (this.phase === 'auth') this.authResponse(line);
    else this.command(line);
    return true;
  }

  private lineTooLong(): void {
    if (this.phase === 'auth') {
      this.setPhase(this.authReturnPhase);
      return this.error(Replies.authLineTooLong, 'SASL response too long');
    }
    this.error(Replies.lineTooLong, 'command line too long');
  }

  private command(line: string): void {
    const { verb, arg } = parseCommandLine(line);
    this.out({ kind: 'command', verb });
    if (!MAIL_VERBS.has(verb) && this.countJunk()) return;
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        if (this.options.lmtp === true) return this.error(Replies.useLhlo, `${verb} on LMTP`);
        return this.cmdHelo(verb, arg);
      case 'LHLO':
        if (this.options.lmtp !== true) return this.error(Replies.unknownCommand, 'unknown command');
        return this.cmdHelo(verb, arg);
      case 'MAIL':
        return this.cmdMail(arg);
      case 'RCPT':
        return this.cmdRcpt(arg);
      case 'DATA':
        return this.cmdData(arg);
      case 'BDAT':
        return this.cmdBdat(arg);
      case 'BURL':
        return this.cmdBurl(arg);
      case 'RSET':
        if (arg !== '') return this.error(Replies.syntaxError, 'RSET with argument');
        this.abortTransaction();
        if (this.phase !== 'connected') this.setPhase('ready');
        return this.reply(Replies.resetOk);
      case 'NOOP':
        return this.reply(Replies.noopOk);
      case 'QUIT':
        this.reply(Replies.bye);
        return this.close();
      case 'VRFY':
        if (arg === '') return this.error(Replies.syntaxError, 'VRFY without argument');
        if (!this.options.vrfy) return this.reply(Replies.cannotVrfy);
        this.pending = { kind: 'vrfy' };
        this.out({ kind: 'check-vrfy', arg });
        return;
      case 'HELP':
        return this.reply(Replies.help);
      case 'STARTTLS':
        return this.cmdStarttls(arg);
      case 'XCLIENT':
        return this.cmdXclient(arg);
      case 'AUTH':
        return this.cmdAuth(arg);
      case 'EXPN':
      case 'TURN':
      case 'ETRN':
        return this.error(Replies.notImplemented, `${verb} not implemented`);
      default:
        return this.error(Replies.unknownCommand, 'unknown command');
    }
  }

  private cmdHelo(verb: 'EHLO' | 'HELO' | 'LHLO', arg: string): void {
    if (this.tx?.contentStarted && this.tx.usedBdat)
      return this.error(Replies.badSequence, `${verb} inside BDAT`);
    if (!isAcceptableHelo(arg)) return this.error(Replies.badHeloArgument, `bad ${verb} argument`);
    // RFC 5321 §4.1.4: EHLO/HELO in a session resets any transaction, like RSET.
    this.abortTransaction();
    this.helo = arg;
    this.esmtp = verb !== 'HELO';
    this.setPhase('ready');
    const greeting = `${this.options.hostname} greets ${arg}`;
    if (verb === 'HELO') return this.reply(withText(Replies.greets, greeting));
    const ext = [
      'PIPELINING',
      `SIZE ${this.options.maxMessageBytes}`,
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      'CHUNKING',
      'BINARYMIME',
      'DSN',
      // RFC 9422: the limits a client would otherwise learn by being refused (452 4.5.3, 421).
      `LIMITS MAILMAX=${this.options.maxTransactions} RCPTMAX=${this.options.maxRecipients}`,
      // RFC 6710 §9: the MIXER policy (priorities order the queue; untrusted senders' are ignored).
      'MT-PRIORITY MIXER',
      // RFC 2852: any by-time (no minimum) is taken; the queue returns or reports at the deadline.
      'DELIVERBY',
    ];
    const release = this.options.futureRelease;
    if (release !== undefined && release.maxSeconds > 0) {
      const latest = new Date(release.nowMs() + release.maxSeconds * 1000)
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z');
      ext.push(`FUTURERELEASE ${release.maxSeconds} ${latest}`);
    }
    if (this.options.starttls && !this.tlsActive) ext.push('STARTTLS');
    // RFC 8689 §4: only over TLS (after STARTTLS, or on implicit TLS).
    if (this.tlsActive) ext.push('REQUIRETLS');
    // RFC 4468 §3: "imap": URLAUTH URLs of this server's IMAP store are fetched.
    if (this.options.burl === true) ext.push('BURL imap');
    if (this.options.xclient === true) ext.push(`XCLIENT ${XCLIENT_ATTRIBUTES.join(' ')}`);
    const mechanisms = this.offeredMechanisms();
    if (mechanisms.length > 0) ext.push(`AUTH ${mechanisms.join(' ')}`);
    ext.push('HELP');
    this.out({ kind: 'reply', reply: withText(Replies.greets, greeting), extraLines: ext });
  }

  private cmdXclient(arg: string): void {
    if (this.options.xclient !== true) return this.error(Replies.xclientDenied, 'XCLIENT not authorized');
    if (this.tx !== null) return this.error(Replies.badSequence, 'XCLIENT inside a transaction');
    const parsed = parseXclient(arg);
    if (!parsed.ok) return this.error(withText(Replies.syntaxError, parsed.error), 'bad XCLIENT');
    this.pending = { kind: 'xclient' };
    this.out({ kind: 'xclient', attributes: parsed.attributes });
  }

  private cmdStarttls(arg: string): void {
    if (arg !== '') return this.error(Replies.syntaxError, 'STARTTLS with argument');
    if (this.tlsActive) return this.error(Replies.alreadyTls, 'STARTTLS when TLS is active');
    if (!this.options.starttls) return this.error(Replies.notImplemented, 'STARTTLS not offered');
    if (this.phase === 'connected' || this.tx !== null)
      return this.error(Replies.badSequence, 'STARTTLS out of sequence');
    this.reply(Replies.readyForTls);
    // SECURITY: anything the client pipelined after STARTTLS is plaintext injected before the handshake
    // (CVE-2011-0411 class). It is discarded, never executed.
    if (this.buffer.length > 0)
      this.out({ kind: 'violation', what: 'data pipelined after STARTTLS discarded' });
    this.buffer = EMPTY;
    this.pending = { kind: 'tls' };
    this.out({ kind: 'starttls' });
  }

  /** Mechanisms offered now: none before TLS unless plaintext AUTH is allowed; TLS-bound ones need TLS. */
  offeredMechanisms(): string[] {
    return offeredMechanisms(this.options.authMechanisms, {
      tls: this.tlsActive,
      plaintextAllowed: this.options.plaintextAuth,
    });
  }

  private cmdAuth(arg: string): void {
    if (this.options.authMechanisms.length === 0)
      return this.error(Replies.authNotAvailable, 'AUTH not enabled');
    if (this.phase === 'connected' || !this.esmtp) return this.error(Replies.needHelo, 'AUTH before EHLO');
    if (this.authUser !== null) return this.error(Replies.authAlreadyDone, 'AUTH twice');
    if (this.tx !== null) return this.error(Replies.authInTransaction, 'AUTH in a transaction');
    // The initial response is checked by the SASL layer (bad base64 is 501 5.5.2 there, RFC 4954 §4).
    const m = /^([A-Za-z0-9_-]{1,20})(?: (\S+))?$/.exec(arg);
    if (!m) return this.error(Replies.syntaxError, 'bad AUTH arguments');
    const mechanism = m[1]!.toUpperCase();
    const offered = this.offeredMechanisms();
    if (!offered.includes(mechanism)) {
      const needsTls = !this.tlsActive && this.options.authMechanisms.includes(mechanism);
      return this.error(
        needsTls ? Replies.authNeedsEncryption : Replies.authUnknownMechanism,
        'AUTH mechanism not offered',
      );
    }
    this.authReturnPhase = this.phase;
    this.setPhase('auth');
    this.pending = { kind: 'auth' };
    this.out({ kind: 'auth-start', mechanism, initialResponse: m[2] ?? null });
  }

  private authResponse(line: string): void {
    if (line === '*') {
      this.setPhase(this.authReturnPhase);
      return this.error(Replies.authCancelled, 'AUTH cancelled');
    }
    this.pending = { kind: 'auth' };
    this.out({ kind: 'auth-response', line });
  }

  private resolveAuth(outcome: AuthOutcome): void {
    switch (outcome.kind) {
      case 'challenge':
        return this.reply(withText(Replies.authChallenge, outcome.challenge));
      case 'success':
        this.authUser = outcome.user;
        this.setPhase(this.authReturnPhase);
        return this.reply(outcome.reply ?? Replies.authSucceeded);
      case 'failure':
        this.setPhase(this.authReturnPhase);
        // The refusal (535, or 501 5.5.2 for bad base64) goes out before the 421 it may bring.
        this.reply(outcome.reply);
        if (outcome.close) {
          this.reply(Replies.tooManyAuthFailures);
          this.close();
        }
        return;
      default:
        assertNever(outcome);
    }
  }

  private cmdMail(arg: string): void {
    if (this.phase === 'connected') return this.error(Replies.needHelo, 'MAIL before EHLO');
    if (this.tx !== null) return this.error(Replies.nestedMail, 'nested MAIL');
    if (this.options.requireAuth && this.authUser === null) {
      const tlsFirst = !this.tlsActive && !this.options.plaintextAuth;
      return this.error(tlsFirst ? Replies.needTls : Replies.authRequired, 'MAIL without AUTH');
    }
    if (this.transactions >= this.options.maxTransactions) {
      this.reply(Replies.tooManyTransactions);
      return this.close();
    }
    const parsed = parseMail(arg, this.esmtp);
    if (!parsed.ok) return this.error(parsed.reply, 'bad MAIL');
    const { sender, params } = parsed.value;
    if (params.requireTls === true && !this.tlsActive) {
      return this.error(Replies.requireTlsNeedsTls, 'REQUIRETLS without TLS');
    }
    if (params.sizeBytes !== null && params.sizeBytes > this.options.maxMessageBytes) {
      return this.error(Replies.messageTooBigDeclared, 'declared SIZE too big');
    }
    this.pending = { kind: 'mail' };
    this.tx = {
      sender,
      params,
      recipients: [],
      contentStarted: false,
      usedBdat: false,
      scanner: null,
      sizeBytes: 0,
      tooBig: false,
    };
    this.out({ kind: 'check-mail', sender, params });
  }

  private resolveMail(reply: Reply | null): void {
    if (reply !== null && reply.code >= 400) {
      this.tx = null;
      // The refusal goes out before a 421 that counting it may bring.
      this.reply(reply);
      this.countError();
      this.countJunk();
      return;
    }
    this.setPhase('mail');
    this.reply(reply ?? Replies.senderOk);
  }

  private cmdRcpt(arg: string): void {
    if (this.phase === 'connected') return this.error(Replies.needHelo, 'RCPT before EHLO');
    const tx = this.tx;
    if (tx === null || (this.phase !== 'mail' && this.phase !== 'rcpt')) {
      return this.error(Replies.needMail, 'RCPT without MAIL');
    }
    if (tx.recipients.length >= this.options.maxRecipients) {
      this.reply(Replies.tooManyRecipients);
      this.countJunk();
      return;
    }
    const parsed = parseRcpt(arg, this.esmtp, tx.params.smtputf8);
    if (!parsed.ok) return this.error(parsed.reply, 'bad RCPT');
    this.pending = { kind: 'rcpt' };
    this.out({ kind: 'check-rcpt', rcpt: parsed.value, transaction: this.info(tx) });
  }

  private resolveRcpt(recipient: EnvelopeRecipient | null, reply: Reply): void {
    const tx = this.tx;
    if (!tx || recipient === null) {
      this.reply(reply);
      if (reply.code >= 500) this.countError();
      this.countJunk();
      return;
    }
    tx.recipients.push(recipient);
    this.setPhase('rcpt');
    this.reply(reply);
  }

  private cmdData(arg: string): void {
    if (arg !== '') return this.error(Replies.syntaxError, 'DATA with argument');
    if (this.phase === 'connected') return this.error(Replies.needHelo, 'DATA before EHLO');
    const tx = this.tx;
    if (tx === null) return this.error(Replies.needMail, 'DATA without MAIL');
    if (tx.usedBdat) return this.error(Replies.bdatMixed, 'DATA after BDAT');
    if (tx.recipients.length === 0) return this.error(Replies.noValidRecipients, 'DATA without recipients');
    if (tx.params.body === 'BINARYMIME') return this.error(Replies.binaryNeedsBdat, 'DATA with BINARYMIME');
    tx.contentStarted = true;
    tx.scanner = new DataScanner({
      bareLineEndings: this.options.bareLineEndings,
      maxLineBytes: this.options.maxTextLineBytes,
      dotStuffed: true,
    });
    this.out({ kind: 'begin-message', transaction: this.info(tx) });
    this.reply(Replies.startData);
    this.setPhase('data');
  }

  private consumeData(): void {
    const tx = this.tx!;
    const scanner = tx.scanner!;
    const { output, endIndex } = scanner.scan(this.buffer);
    this.buffer = endIndex < 0 ? EMPTY : this.buffer.subarray(endIndex);
    this.emitContent(tx, output);
    if (endIndex >= 0) this.endContent(tx);
  }

  private cmdBdat(arg: string): void {
    const parsed = parseBdat(arg);
    // Without a valid size we cannot know where the chunk ends; treat following bytes as commands.
    if (!parsed.ok) return this.error(parsed.reply, 'bad BDAT');
    const { sizeBytes, last } = parsed.value;
    this.bdatRemaining = sizeBytes;
    this.bdatLast = last;
    // RFC 3030 §2: the chunk is consumed even when the command is refused.
    const tx = this.tx;
    let refusal: Reply | null = null;
    if (this.phase === 'connected') refusal = Replies.needHelo;
    else if (tx === null) refusal = Replies.needMail;
    else if (tx.recipients.length === 0) refusal = Replies.noValidRecipients;
    else if (tx.contentStarted && !tx.usedBdat) refusal = Replies.badSequence;
    if (refusal !== null) {
      this.bdatRefusal = refusal;
    } else {
      this.bdatRefusal = null;
      if (!tx!.contentStarted) {
        tx!.contentStarted = true;
        tx!.usedBdat = true;
        tx!.scanner =
          tx!.params.body === 'BINARYMIME'
            ? null
            : new DataScanner({
                bareLineEndings: this.options.bareLineEndings,
                maxLineBytes: this.options.maxTextLineBytes,
                dotStuffed: false,
              });
        this.out({ kind: 'begin-message', transaction: this.info(tx!) });
      }
    }
    this.setPhase('bdat');
    if (sizeBytes === 0) this.endBdatChunk();
  }

  private bdatRefusal: Reply | null = null;

  /** BURL imap-url [LAST] (RFC 4468 §4): a BDAT chunk whose octets the URL names. */
  private cmdBurl(arg: string): void {
    const m = /^(\S+)(?: (LAST))?$/i.exec(arg);
    if (m === null || this.options.burl !== true) {
      return this.options.burl === true
        ? this.error(Replies.syntaxError, 'bad BURL')
        : this.error(Replies.unknownCommand, 'BURL not offered');
    }
    const tx = this.tx;
    // RFC 4468 §4: only an authenticated client may have the server fetch on its behalf.
    if (this.authUser === null) return this.error(Replies.authRequired, 'BURL before AUTH');
    if (this.phase === 'connected') return this.error(Replies.needHelo, 'BURL before EHLO');
    if (tx === null) return this.error(Replies.needMail, 'BURL without MAIL');
    if (tx.recipients.length === 0) return this.error(Replies.noValidRecipients, 'BURL without recipients');
    if (tx.contentStarted && !tx.usedBdat) return this.error(Replies.badSequence, 'BURL after DATA');
    this.bdatLast = m[2] !== undefined;
    this.bdatRefusal = null;
    this.pending = { kind: 'burl' };
    if (!tx.contentStarted) {
      tx.contentStarted = true;
      tx.usedBdat = true;
      tx.scanner =
        tx.params.body === 'BINARYMIME'
          ? null
          : new DataScanner({
              bareLineEndings: this.options.bareLineEndings,
              maxLineBytes: this.options.maxTextLineBytes,
              dotStuffed: false,
            });
      this.out({ kind: 'begin-message', transaction: this.info(tx) });
    }
    this.out({ kind: 'burl', url: m[1]!, user: this.authUser });
  }

  private resolveBurl(content: Uint8Array | null, reply: Reply | null): void {
    const tx = this.tx;
    if (tx === null) return;
    if (content === null) {
      // The message cannot be what the client meant: the transaction ends, as after a refused chunk.
      this.out({ kind: 'abort-message' });
      this.tx = null;
      this.transactions++;
      this.setPhase('ready');
      return this.error(reply ?? Replies.burlFailed, 'BURL failed');
    }
    this.emitContent(tx, tx.scanner ? tx.scanner.scan(content).output : content);
    this.endBdatChunk();
  }

  private consumeBdat(): void {
    const take = Math.min(this.bdatRemaining, this.buffer.length);
    const chunk = this.buffer.subarray(0, take);
    this.buffer = this.buffer.subarray(take);
    this.bdatRemaining -= take;
    if (this.bdatRefusal === null) {
      const tx = this.tx!;
      const output = tx.scanner ? tx.scanner.scan(chunk).output : chunk;
      this.emitContent(tx, output);
    }
    if (this.bdatRemaining === 0) this.endBdatChunk();
  }

  private endBdatChunk(): void {
    const refusal = this.bdatRefusal;
    if (refusal !== null) {
      this.bdatRefusal = null;
      this.setPhase(this.restingPhase());
      return this.error(refusal, 'BDAT refused');
    }
    const tx = this.tx!;
    if (this.bdatLast) {
      if (tx.scanner) this.emitContent(tx, tx.scanner.flush());
      return this.endContent(tx);
    }
    if (tx.tooBig) {
      // RFC 3030 §2: after an error reply to a chunk the transaction is over; later chunks get 503.
      this.out({ kind: 'abort-message' });
      this.tx = null;
      this.transactions++;
      this.setPhase('ready');
      return this.error(Replies.messageTooBig, 'BDAT message too big');
    }
    this.setPhase('bdat-wait');
    this.reply(withText(Replies.chunkOk, `${tx.sizeBytes} octets received`));
  }

  private emitContent(tx: Transaction, output: Uint8Array): void {
    if (output.length === 0 || tx.tooBig) return;
    tx.sizeBytes += output.length;
    if (tx.sizeBytes > this.options.maxMessageBytes) {
      // Keep consuming to the end of the content, but stop storing it.
      tx.tooBig = true;
      this.out({ kind: 'violation', what: 'message too big' });
      return;
    }
    this.out({ kind: 'data', chunk: output });
  }

  /** End of DATA content or the LAST BDAT chunk: decide, then commit or refuse. */
  private endContent(tx: Transaction): void {
    let refusal: Reply | null = null;
    const scanner = tx.scanner;
    if (tx.tooBig) refusal = Replies.messageTooBig;
    else if (scanner?.bareLineEnding && this.options.bareLineEndings === 'reject') {
      refusal = Replies.bareLineEnding;
      this.out({ kind: 'violation', what: 'bare CR or LF in message content' });
    } else if (scanner?.longLine && this.options.longLines === 'reject') {
      refusal = Replies.textLineTooLong;
      this.out({ kind: 'violation', what: 'message line too long' });
    }
    if (refusal !== null) {
      this.out({ kind: 'abort-message' });
      this.tx = null;
      this.transactions++;
      this.setPhase('ready');
      this.reply(refusal);
      this.countError();
      this.countJunk();
      return;
    }
    this.pending = { kind: 'commit' };
    this.out({
      kind: 'commit',
      transaction: this.info(tx),
      sizeBytes: tx.sizeBytes,
      ...(scanner?.overSmtpLine === true ? { longLines: true as const } : {}),
    });
  }

  private finishTransaction(reply: Reply, recipientReplies?: readonly Reply[]): void {
    const tx = this.tx;
    this.tx = null;
    this.transactions++;
    this.setPhase('ready');
    if (this.options.lmtp === true && tx !== null) {
      // RFC 2033 §4.2: one reply for each RCPT that succeeded, in the order they were given.
      tx.recipients.forEach((_, i) => this.reply(recipientReplies?.[i] ?? reply));
      const anyAccepted = tx.recipients.some((_, i) => (recipientReplies?.[i] ?? reply).code < 400);
      if (anyAccepted) this.junkCommands = 0;
      else this.countJunk();
      return;
    }
    this.reply(reply);
    if (reply.code < 400) this.junkCommands = 0;
    else this.countJunk();
  }

  private abortTransaction(): void {
    if (this.tx?.contentStarted) this.out({ kind: 'abort-message' });
    this.tx = null;
  }

  /** Where a session rests after a refused command, from what the transaction holds. */
  private restingPhase(): Phase {
    const tx = this.tx;
    if (tx === null) return this.helo === null ? 'connected' : 'ready';
    if (tx.contentStarted) return 'bdat-wait';
    return tx.recipients.length > 0 ? 'rcpt' : 'mail';
  }

  private info(tx: Transaction): TransactionInfo {
    return { sender: tx.sender, params: tx.params, recipients: [...tx.recipients] };
  }

  private setPhase(to: Phase): void {
    if (this.phase === to) return;
    this.out({ kind: 'state', from: this.phase, to });
    this.phase = to;
  }

  private reply(reply: Reply): void {
    this.out({ kind: 'reply', reply });
  }

  /** A 5xx for client error: counted; too many and the connection is closed (421). */
  private error(reply: Reply, what: string): void {
    this.out({ kind: 'violation', what });
    this.reply(reply);
    this.countError();
    this.countJunk();
  }

  /**
   * Junk: a command line that moves no mail. Every line except MAIL, RCPT, DATA, BDAT, STARTTLS, AUTH and
   * QUIT (NOOP, RSET, HELP, VRFY, EXPN, EHLO/HELO, unknown verbs), and any line that is refused (syntax,
   * sequence, refused MAIL/RCPT/content). Counted once per line; an accepted message starts again at 0, so
   * RSET between messages on a long connection is fine while a client that loops without sending mail is
   * cut. True when the limit was passed and the session is closed (the line then gets only the 421).
   */
  private countJunk(): boolean {
    if (this.lineCounted || this.phase === 'closed') return this.phase === 'closed';
    this.lineCounted = true;
    this.junkCommands++;
    const max = this.options.maxJunkCommands;
    if (max <= 0 || this.junkCommands <= max) return false;
    this.out({ kind: 'violation', what: `more than ${max} commands without mail` });
    this.reply(Replies.tooManyJunkCommands);
    this.close();
    return true;
  }

  private countError(): void {
    this.errors++;
    if (this.errors >= this.options.maxErrors && this.phase !== 'closed') {
      this.reply(Replies.tooManyErrors);
      this.close();
    }
  }

  close(): void {
    if (this.phase === 'closed') return;
    this.abortTransaction();
    this.setPhase('closed');
    this.buffer = EMPTY;
    this.out({ kind: 'close' });
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

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
