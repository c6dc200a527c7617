// The outbound SMTP client: one connection to one remote host, on which messages are sent one after
// another (RFC 5321 §3-4). The pure parts live in src/protocol/smtp/client/ (reply parser, EHLO
// capabilities, command lines, the transaction plan and its reply matching, the content encoder); this
// file owns the socket: connecting, timeouts (RFC 5321 §4.5.3.2), STARTTLS (RFC 3207) by policy
// (none | may | encrypt | verify, like Postfix's smtp_tls_security_level), AUTH PLAIN/LOGIN to a smart
// host (RFC 4954), PIPELINING (RFC 2920), DATA and BDAT (RFC 3030) streaming, and turning every failure
// into a typed, per-recipient result. Nothing here throws at a caller for anything a server does.
// Deliberately NOT here: MX lookup, choosing hosts, retries, connection pools, DSNs (the delivery
// worker does that with these results).
//
// SECURITY:
// - After our STARTTLS and the server's 220, every byte already received in plaintext is thrown away
//   before the handshake (CVE-2011-0411 class: injected replies must never be read as answers to
//   commands sent under TLS), and EHLO is sent again: only capabilities read under TLS count.
// - Credentials are only ever sent over TLS.
// - The content is always CRLF-clean and dot-stuffed; a body that cannot be read to its end is never
//   terminated: the connection is dropped so the server cannot take a truncated message.
// - Every read has a timeout and a byte limit; every server reply is parsed by a total parser.

import { randomBytes } from 'node:crypto';
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect, getCACertificates } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { TlsaRecord } from '../core/dns.ts';
import { presentedChain, verifyDane } from './dane.ts';
import type { OutboundConfig, OutboundTlsPolicy } from '../config/config.ts';
import type { Envelope } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import { nullLogger } from '../core/ports.ts';
import { scramClientFinal, scramClientFirst, scramServerFinalValid } from '../protocol/sasl/scram-client.ts';
import type { Capabilities } from '../protocol/smtp/client/capabilities.ts';
import { heloCapabilities, parseEhloReply } from '../protocol/smtp/client/capabilities.ts';
import {
  formatAuthPlain,
  formatBdat,
  formatEhlo,
  formatHelo,
  formatSaslResponse,
  hasControl,
} from '../protocol/smtp/client/commands.ts';
import { ContentEncoder } from '../protocol/smtp/client/dot-stuffer.ts';
import type { ParsedReply, RemoteReply, ReplyParserLimits } from '../protocol/smtp/client/reply-parser.ts';
import {
  DEFAULT_REPLY_LIMITS,
  formatRemoteReply,
  ReplyParser,
} from '../protocol/smtp/client/reply-parser.ts';
import type {
  Failure,
  RecipientResult,
  SendResult,
  Stage,
  TransactionPlan,
} from '../protocol/smtp/client/transaction.ts';
import {
  evaluateEnvelope,
  evaluateFinal,
  evaluateLmtpFinal,
  failAll,
  failureFromReply,
  isPermanent,
  isPositive,
  localFailure,
  planTransaction,
} from '../protocol/smtp/client/transaction.ts';

export type { Capabilities } from '../protocol/smtp/client/capabilities.ts';
export type { RemoteReply } from '../protocol/smtp/client/reply-parser.ts';
export { formatRemoteReply } from '../protocol/smtp/client/reply-parser.ts';
export type {
  Failure,
  RecipientResult,
  SendResult,
  Stage,
  Verdict,
} from '../protocol/smtp/client/transaction.ts';

/** RFC 5321 §4.5.3.2 client timeouts, plus the TCP connect. */
export interface SmtpClientTimeouts {
  readonly connectMs: number;
  readonly greetingMs: number;
  /** MAIL, RCPT, EHLO, STARTTLS (and the handshake), AUTH, RSET. */
  readonly commandMs: number;
  /** The reply to DATA (354). */
  readonly dataInitMs: number;
  /** Each write of content, and each intermediate BDAT reply. */
  readonly dataBlockMs: number;
  /** The reply after the final dot or BDAT LAST. */
  readonly dataDoneMs: number;
}

export function timeoutsFromConfig(c: OutboundConfig): SmtpClientTimeouts {
  return {
    connectMs: c.connectTimeoutMs,
    greetingMs: c.greetingTimeoutMs,
    commandMs: c.commandTimeoutMs,
    dataInitMs: c.dataInitTimeoutMs,
    dataBlockMs: c.dataBlockTimeoutMs,
    dataDoneMs: c.dataDoneTimeoutMs,
  };
}

export interface ConnectOptions {
  /** The host's name (MX or relay name): for logs and, unless `servername` says otherwise, TLS. */
  readonly host: string;
  /** The IP address (or name) to connect to. */
  readonly address: string;
  readonly port: number;
  /** Our name in EHLO/HELO. */
  readonly helo: string;
  readonly tls: OutboundTlsPolicy;
  /** TLS from the first byte (port 465, RFC 8314) instead of STARTTLS; `tls` then only says whether to verify. */
  readonly implicitTls?: boolean;
  /** The name the certificate must match under `verify`, and the SNI name. Default: `host`. */
  readonly servername?: string;
  /** Extra trusted CA certificates (PEM), beside the default store, for `verify`. */
  readonly ca?: string | null;
  /**
   * DANE (RFC 7672): the host's authenticated TLSA records; the chain must match them (dane.ts) or the
   * connection fails. PKIX validation is not used then. `tls` should be "encrypt": DANE means TLS.
   */
  readonly dane?: { readonly records: readonly TlsaRecord[]; readonly names: readonly string[] } | null;
  readonly sourceAddress?: string | null;
  /**
   * LMTP (RFC 2033) instead of SMTP: LHLO, and a reply per accepted recipient after the content (a
   * mailbox store behind, Dovecot or Cyrus, tells each recipient's fate).
   */
  readonly lmtp?: boolean;
  /** A Unix socket to connect to instead of address and port (LMTP on this host). */
  readonly path?: string;
  readonly timeouts: SmtpClientTimeouts;
  /** AUTH to a smart host: PLAIN, else LOGIN; only over TLS. */
  readonly auth?: { readonly username: string; readonly password: string } | null;
  /** Aborting drops the connection; whatever was in progress becomes a temporary failure. */
  readonly signal?: AbortSignal;
  readonly log?: Logger;
  readonly replyLimits?: ReplyParserLimits;
}

export interface ConnectFailure extends Failure {
  /**
   * The TLS handshake failed under policy `may`: the caller may retry this host without TLS (as
   * Postfix does); under `encrypt` and `verify` this is always false.
   */
  readonly retryWithoutTls: boolean;
  /** The server's greeting, when it gave one. */
  readonly banner: string | null;
}

export type ConnectResult =
  | { readonly kind: 'connected'; readonly session: SmtpClientSession }
  | { readonly kind: 'failed'; readonly failure: ConnectFailure };

export interface TlsInfo {
  readonly version: string;
  readonly cipher: string;
  /** The certificate chain verified and matched the server name. */
  readonly verified: boolean;
  /** Why it did not verify (e.g. "DEPTH_ZERO_SELF_SIGNED_CERT"); null when it did. */
  readonly verifyError: string | null;
  /** Verified by DANE: which record type matched ("DANE-EE(3) 1 1"). */
  readonly dane?: string;
}

export interface OutgoingMessage {
  readonly envelope: Pick<
    Envelope,
    'sender' | 'body' | 'smtputf8' | 'ret' | 'envid' | 'recipients' | 'requireTls'
  >;
  /** Recipients to send to now (a subset of the envelope's; NOTIFY and ORCPT are taken from it). */
  readonly recipients: readonly string[];
  readonly sizeBytes: number;
  /** The content, read afresh for each send; streamed, never held whole. */
  readonly body: () => AsyncIterable<Uint8Array>;
  /** See TransactionRequest.smtputf8Required. */
  readonly smtputf8Required?: boolean;
}

export interface SmtpClientSession {
  readonly host: string;
  readonly address: string;
  readonly port: number;
  readonly remoteBanner: string;
  readonly capabilities: Capabilities;
  readonly tls: TlsInfo | null;
  readonly authenticated: boolean;
  /** The SASL mechanism AUTH used (SCRAM-SHA-256, PLAIN or LOGIN); null without AUTH. */
  readonly authMechanism: string | null;
  /** False once the connection failed, timed out, was closed, or a send is in progress. */
  readonly usable: boolean;
  readonly messagesSent: number;
  /** Bytes received in plaintext between our STARTTLS's 220 and the handshake, thrown away. */
  readonly discardedPlaintextBytes: number;
  send(message: OutgoingMessage): Promise<SendResult>;
  /** RSET (before reusing the connection); a failure only makes the session unusable. */
  reset(): Promise<void>;
  /** QUIT, wait briefly for the reply, close. Never throws. */
  quit(): Promise<void>;
  /** Drop the connection at once. */
  close(): void;
}

/** A failure carried out of the socket code; always caught inside this file. */
class ClientError extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    super(failure.reason);
    this.name = 'ClientError';
    this.failure = failure;
  }
}

const errorText = (err: unknown): string => {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
};

/** Why the connection died, with the status it earns (RFC 3463). */
interface Fatal {
  readonly reason: string;
  readonly status: string;
}

/**
 * One socket (plain, then maybe TLS) with a reply parser: reads whole replies, writes with
 * backpressure, and turns close, error, garbage and timeouts into one fatal state.
 */
class Wire {
  socket: Socket;
  private parser: ReplyParser;
  private readonly limits: ReplyParserLimits;
  private readonly replies: ParsedReply[] = [];
  private fatal: Fatal | null = null;
  private readonly wakers = new Set<() => void>();
  private readonly onData = (chunk: Buffer): void => {
    const { replies, error } = this.parser.push(chunk);
    this.replies.push(...replies);
    if (error !== null) this.fail({ reason: `protocol error: ${error}`, status: '4.5.0' });
    else this.wake();
  };
  private readonly onEnd = (): void =>
    this.fail({ reason: 'connection closed by the server', status: '4.4.2' });
  private readonly onError = (err: Error): void =>
    this.fail({ reason: `connection error: ${errorText(err)}`, status: '4.4.2' });
  private readonly onDrain = (): void => this.wake();

  constructor(socket: Socket, limits: ReplyParserLimits) {
    this.socket = socket;
    this.limits = limits;
    this.parser = new ReplyParser(limits);
    this.attach(socket);
  }

  get dead(): boolean {
    return this.fatal !== null;
  }

  get deathReason(): string | null {
    return this.fatal?.reason ?? null;
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
    socket.on('drain', this.onDrain);
  }

  private detach(): void {
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onEnd);
    s.off('error', this.onError);
    s.off('drain', this.onDrain);
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  fail(fatal: Fatal): void {
    if (this.fatal === null) this.fatal = fatal;
    this.socket.destroy();
    this.wake();
  }

  /** Wait until `ready()` or death, at most `timeoutMs` (then the connection is dropped). */
  private waitFor(ready: () => boolean, stage: Stage, timeoutMs: number, what: string): Promise<void> {
    if (ready()) return Promise.resolve();
    if (this.fatal !== null) return Promise.reject(new ClientError(this.failureAt(stage)));
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(check);
      };
      const check = (): void => {
        if (ready()) {
          done();
          resolve();
        } else if (this.fatal !== null) {
          done();
          reject(new ClientError(this.failureAt(stage)));
        }
      };
      const timer = setTimeout(() => {
        this.fail({ reason: `timeout after ${timeoutMs} ms ${what}`, status: '4.4.2' });
      }, timeoutMs);
      this.wakers.add(check);
    });
  }

  private failureAt(stage: Stage): Failure {
    const f = this.fatal ?? { reason: 'connection lost', status: '4.4.2' };
    return localFailure(stage, f.reason, f.status);
  }

  async read(stage: Stage, timeoutMs: number): Promise<ParsedReply> {
    await this.waitFor(() => this.replies.length > 0, stage, timeoutMs, `waiting for the reply (${stage})`);
    this.parser.taken(1);
    return this.replies.shift()!;
  }

  async write(data: string | Uint8Array, stage: Stage, timeoutMs: number): Promise<void> {
    if (this.fatal !== null) throw new ClientError(this.failureAt(stage));
    this.socket.write(data);
    await this.waitFor(() => !this.socket.writableNeedDrain, stage, timeoutMs, `sending (${stage})`);
  }

  /** Throw away every byte and reply received so far; returns how many bytes that was. */
  discardReceived(): number {
    const bytes = this.parser.bufferedBytes + this.replies.reduce((n, r) => n + r.lines.join('').length, 0);
    this.replies.length = 0;
    this.parser = new ReplyParser(this.limits);
    return bytes;
  }

  /** Replace the plain socket by a TLS socket over it; nothing received in plaintext survives. */
  async upgrade(options: Omit<ConnectionOptions, 'socket'>, timeoutMs: number): Promise<TLSSocket> {
    const plain = this.socket;
    this.detach();
    // Errors now surface on the TLS socket; this keeps a late one on the plain socket from crashing us.
    plain.on('error', () => {});
    const secure = tlsConnect({ ...options, socket: plain });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`TLS handshake timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        secure.once('secureConnect', () => {
          clearTimeout(timer);
          resolve();
        });
        secure.once('error', (err: Error) => {
          clearTimeout(timer);
          reject(err);
        });
        secure.once('close', () => {
          clearTimeout(timer);
          reject(new Error('connection closed during the TLS handshake'));
        });
      });
    } catch (err) {
      secure.on('error', () => {});
      secure.destroy();
      plain.destroy();
      this.fatal ??= { reason: `TLS handshake failed: ${errorText(err)}`, status: '4.7.5' };
      throw err;
    }
    this.parser = new ReplyParser(this.limits);
    this.replies.length = 0;
    this.attach(secure);
    return secure;
  }
}

/** Open a TCP connection, or say why not. */
function openSocket(opts: ConnectOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      opts.path === undefined
        ? netConnect({
            host: opts.address,
            port: opts.port,
            ...(opts.sourceAddress ? { localAddress: opts.sourceAddress } : {}),
          })
        : netConnect({ path: opts.path });
    if (opts.path === undefined) socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect timed out after ${opts.timeouts.connectMs} ms`));
    }, opts.timeouts.connectMs);
    const onAbort = (): void => {
      socket.destroy();
      reject(new Error('aborted'));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}

function tlsOptions(opts: ConnectOptions): ConnectionOptions {
  const name = opts.servername ?? opts.host;
  return {
    // SNI takes names only; an address literal is still checked against the certificate's IP SANs.
    ...(isIP(name) === 0 ? { servername: name } : { host: name }),
    // DANE replaces PKIX: the chain is checked against the TLSA records once the handshake is done.
    rejectUnauthorized: opts.tls === 'verify' && (opts.dane === undefined || opts.dane === null),
    minVersion: 'TLSv1.2',
    ...(opts.ca ? { ca: [...getCACertificates('default'), opts.ca] } : {}),
  };
}

/** How long QUIT may take: a polite goodbye is not worth a worker's five minutes. */
const QUIT_TIMEOUT_CAP_MS = 10_000;
/** BDAT chunk size: big enough to keep the pipe full, small enough to bound memory. */
export const BDAT_CHUNK_BYTES = 64 * 1024;
/** BDAT chunks in flight when the server pipelines (RFC 3030 §4.2 allows any number). */
const BDAT_WINDOW = 8;

class Session implements SmtpClientSession {
  readonly host: string;
  readonly address: string;
  readonly port: number;
  remoteBanner = '';
  capabilities: Capabilities = heloCapabilities([]);
  tls: TlsInfo | null = null;
  authenticated = false;
  authMechanism: string | null = null;
  messagesSent = 0;
  discardedPlaintextBytes = 0;
  private busy = false;
  private closed = false;
  private readonly wire: Wire;
  private readonly opts: ConnectOptions;
  private readonly log: Logger;
  private readonly onAbort = (): void => this.wire.fail({ reason: 'aborted', status: '4.3.0' });

  constructor(opts: ConnectOptions, socket: Socket, log: Logger) {
    this.opts = opts;
    this.host = opts.host;
    this.address = opts.address;
    this.port = opts.port;
    this.log = log;
    this.wire = new Wire(socket, opts.replyLimits ?? DEFAULT_REPLY_LIMITS);
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  get usable(): boolean {
    return !this.closed && !this.busy && !this.wire.dead;
  }

  private get t(): SmtpClientTimeouts {
    return this.opts.timeouts;
  }

  /** Greeting, EHLO, STARTTLS, EHLO again, AUTH. Throws ClientError (with a connect-level failure). */
  async open(): Promise<void> {
    const { opts } = this;
    if (opts.implicitTls) await this.startTls();
    const greeting = await this.wire.read('greeting', this.t.greetingMs);
    this.remoteBanner = greeting.text;
    if (greeting.code !== 220) {
      // RFC 5321 §3.1: after a 554 greeting the client should still QUIT.
      if (isPermanent(greeting)) await this.quit();
      throw new ClientError(failureFromReply('greeting', greeting, 'the server refused the connection'));
    }
    await this.hello();
    if (!opts.implicitTls && opts.tls !== 'none') {
      if (this.capabilities.startTls) {
        await this.wire.write('STARTTLS\r\n', 'starttls', this.t.commandMs);
        const reply = await this.wire.read('starttls', this.t.commandMs);
        if (reply.code === 220) {
          await this.startTls();
          await this.hello();
        } else if (opts.tls !== 'may') {
          throw new ClientError({
            ...failureFromReply('starttls', reply, 'the server refused STARTTLS'),
            temporary: true,
          });
        } else {
          this.log.warn(Events.smtpClientTlsFailed, {
            reason: 'STARTTLS refused',
            reply: formatRemoteReply(reply),
          });
        }
      } else if (opts.tls !== 'may') {
        throw new ClientError(localFailure('starttls', 'STARTTLS is required but not offered', '4.7.4'));
      }
    }
    if (opts.auth) await this.authenticate(opts.auth);
  }

  private async startTls(): Promise<void> {
    // SECURITY: nothing the server sent in plaintext before the handshake may be read as a reply.
    const discarded = this.wire.discardReceived();
    if (discarded > 0) {
      this.discardedPlaintextBytes += discarded;
      this.log.warn(Events.smtpClientPlaintextDiscarded, { bytes: discarded });
    }
    let secure: TLSSocket;
    try {
      secure = await this.wire.upgrade(tlsOptions(this.opts), this.t.commandMs);
    } catch (err) {
      this.log.warn(Events.smtpClientTlsFailed, { reason: errorText(err), policy: this.opts.tls });
      throw new ClientError(localFailure('tls', `TLS handshake failed: ${errorText(err)}`, '4.7.5'));
    }
    const cipher = secure.getCipher();
    const verifyError = secure.authorizationError;
    const dane = this.opts.dane ?? null;
    if (dane !== null) {
      const result = verifyDane(
        presentedChain(secure.getPeerCertificate(true)),
        dane.records,
        dane.names,
        Date.now(),
      );
      if (!result.ok) {
        this.log.warn(Events.smtpClientTlsFailed, { reason: `DANE: ${result.reason}`, policy: 'dane' });
        secure.destroy();
        throw new ClientError(localFailure('tls', `DANE authentication failed: ${result.reason}`, '4.7.5'));
      }
      this.tls = {
        version: secure.getProtocol() ?? 'unknown',
        cipher: cipher.standardName ?? cipher.name,
        verified: true,
        verifyError: null,
        dane: result.matched,
      };
      this.log.event(Events.smtpClientTls, { ...this.tls });
      return;
    }
    this.tls = {
      version: secure.getProtocol() ?? 'unknown',
      cipher: cipher.standardName ?? cipher.name,
      verified: secure.authorized,
      verifyError: secure.authorized ? null : String(verifyError ?? 'unverified'),
    };
    this.log.event(Events.smtpClientTls, { ...this.tls });
  }

  /** EHLO, or HELO when EHLO is refused with 5xx (RFC 5321 §3.2). */
  private async hello(): Promise<void> {
    const helo = this.opts.helo;
    if (helo === '' || hasControl(helo) || helo.includes(' ')) {
      throw new ClientError(localFailure('ehlo', `invalid HELO name ${JSON.stringify(helo)}`, '4.3.5'));
    }
    if (this.opts.lmtp === true) {
      // RFC 2033 §4.1: LHLO, no HELO fallback. Content goes as DATA: its per-recipient replies are the
      // one LMTP reply shape every server agrees on (BDAT LAST's are rarer).
      await this.wire.write(`LHLO ${helo}\r\n`, 'ehlo', this.t.commandMs);
      const lhlo = await this.wire.read('ehlo', this.t.commandMs);
      if (lhlo.code !== 250) throw new ClientError(failureFromReply('ehlo', lhlo, 'the server refused LHLO'));
      this.capabilities = { ...parseEhloReply(lhlo.lines), chunking: false, binaryMime: false };
      return;
    }
    await this.wire.write(formatEhlo(helo), 'ehlo', this.t.commandMs);
    const ehlo = await this.wire.read('ehlo', this.t.commandMs);
    if (ehlo.code === 250) {
      this.capabilities = parseEhloReply(ehlo.lines);
      return;
    }
    if (!isPermanent(ehlo)) throw new ClientError(failureFromReply('ehlo', ehlo, 'the server refused EHLO'));
    await this.wire.write(formatHelo(helo), 'ehlo', this.t.commandMs);
    const reply = await this.wire.read('ehlo', this.t.commandMs);
    if (reply.code !== 250) throw new ClientError(failureFromReply('ehlo', reply, 'the server refused HELO'));
    this.capabilities = heloCapabilities(reply.lines);
  }

  private async authenticate(auth: { username: string; password: string }): Promise<void> {
    const encodeUtf8Base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
    const decodeUtf8Base64 = (text: string): string => Buffer.from(text.trim(), 'base64').toString('utf8');
    // A refused login is the operator's problem, not the message's: always temporary (Postfix's
    // smtp_sasl_auth_soft_bounce).
    const fail = (reason: string, reply: RemoteReply | null = null): never => {
      throw new ClientError({
        stage: 'auth',
        temporary: true,
        status: reply?.enhanced?.replace(/^5/, '4') ?? '4.7.0',
        reply,
        reason,
      });
    };
    if (this.tls === null) fail('refusing to send credentials without TLS');
    const mechs = this.capabilities.authMechanisms;
    const t = this.t.commandMs;
    // SCRAM first: the password never crosses the wire and the server proves it knows the account.
    // An account may have no SCRAM secret (made before SCRAM, or elsewhere): on 535 PLAIN/LOGIN get a try.
    const fallback = mechs.includes('PLAIN') || mechs.includes('LOGIN');
    if (mechs.includes('SCRAM-SHA-256')) {
      const first = scramClientFirst(auth.username, randomBytes(18).toString('base64'));
      await this.wire.write(`AUTH SCRAM-SHA-256 ${encodeUtf8Base64(first.message)}\r\n`, 'auth', t);
      const challenge = await this.wire.read('auth', t);
      if (challenge.code !== 334) fail('authentication failed', challenge);
      const final = scramClientFinal(first, decodeUtf8Base64(challenge.text), auth.password);
      if (!final.ok) {
        await this.wire.write('*\r\n', 'auth', t);
        await this.wire.read('auth', t);
        return fail(`SCRAM-SHA-256: ${final.reason}`);
      }
      await this.wire.write(`${encodeUtf8Base64(final.message)}\r\n`, 'auth', t);
      const outcome = await this.wire.read('auth', t);
      if (outcome.code === 535 && fallback) {
        // Refused: PLAIN or LOGIN below, which fail the same way when the password is wrong.
      } else if (outcome.code !== 334) fail('authentication failed', outcome);
      else if (!scramServerFinalValid(decodeUtf8Base64(outcome.text), final.serverSignature)) {
        await this.wire.write('*\r\n', 'auth', t);
        await this.wire.read('auth', t);
        fail('SCRAM-SHA-256: the server did not prove that it knows the password');
      } else {
        await this.wire.write('\r\n', 'auth', t);
        const reply = await this.wire.read('auth', t);
        if (reply.code !== 235) fail('authentication failed', reply);
        this.authMechanism = 'SCRAM-SHA-256';
      }
    }
    if (this.authMechanism !== null) {
      // done: SCRAM
    } else if (mechs.includes('PLAIN')) {
      this.authMechanism = 'PLAIN';
      await this.wire.write(formatAuthPlain(auth.username, auth.password), 'auth', t);
      const reply = await this.wire.read('auth', t);
      if (reply.code !== 235) fail('authentication failed', reply);
    } else if (mechs.includes('LOGIN')) {
      this.authMechanism = 'LOGIN';
      await this.wire.write('AUTH LOGIN\r\n', 'auth', t);
      for (const value of [auth.username, auth.password]) {
        const challenge = await this.wire.read('auth', t);
        if (challenge.code !== 334) fail('authentication failed', challenge);
        await this.wire.write(formatSaslResponse(value), 'auth', t);
      }
      const reply = await this.wire.read('auth', t);
      if (reply.code !== 235) fail('authentication failed', reply);
    } else {
      fail(`the server offers no AUTH mechanism we use (offered: ${mechs.join(' ') || 'none'})`);
    }
    this.authenticated = true;
  }

  async send(message: OutgoingMessage): Promise<SendResult> {
    const byAddress = new Map(message.envelope.recipients.map((r) => [r.address, r]));
    const requested = message.recipients.map(
      (address) => byAddress.get(address) ?? { address, notify: null, orcpt: null },
    );
    const order = (result: SendResult): SendResult => {
      const rank = new Map(message.recipients.map((a, i) => [a, i]));
      const recipients = [...result.recipients].sort(
        (a, b) => (rank.get(a.address) ?? 0) - (rank.get(b.address) ?? 0),
      );
      return { ...result, recipients };
    };
    if (!this.usable) {
      const why = this.busy ? 'the connection is busy with another message' : 'the connection is not usable';
      return failAll(message.recipients, localFailure('mail', why, '4.4.2'));
    }
    const planned = planTransaction(
      {
        envelope: message.envelope,
        recipients: requested,
        sizeBytes: message.sizeBytes,
        nowMs: Date.now(),
        ...(message.smtputf8Required === undefined ? {} : { smtputf8Required: message.smtputf8Required }),
      },
      this.capabilities,
    );
    if (!planned.ok) return order(failAll(message.recipients, planned.failure));
    const plan = planned.plan;
    this.busy = true;
    const progress: { refused: readonly RecipientResult[] } = { refused: plan.refused };
    let result: SendResult;
    try {
      result = order(await this.transact(plan, message, progress));
    } catch (err) {
      const failure =
        err instanceof ClientError
          ? err.failure
          : localFailure('content', `local error: ${errorText(err)}`, '4.3.0');
      this.wire.fail({ reason: failure.reason, status: failure.status });
      result = order(failAll(message.recipients, failure, progress.refused));
    } finally {
      this.busy = false;
    }
    if (result.kind === 'sent') {
      this.messagesSent++;
      this.log.event(Events.smtpClientSent, {
        recipients: result.recipients.filter((r) => r.verdict === 'delivered').length,
        refused: result.recipients.filter((r) => r.verdict !== 'delivered').length,
        reply: formatRemoteReply(result.dataReply),
      });
    } else {
      this.log.event(Events.smtpClientFailed, {
        stage: result.stage,
        temporary: result.temporary,
        status: result.status,
        reason: result.reason,
        ...(result.reply ? { reply: formatRemoteReply(result.reply) } : {}),
      });
    }
    return result;
  }

  private async transact(
    plan: TransactionPlan,
    message: OutgoingMessage,
    progress: { refused: readonly RecipientResult[] },
  ): Promise<SendResult> {
    const w = this.wire;
    const t = this.t;
    const pipelineData = plan.pipelining && plan.content === 'data';
    let mail: RemoteReply;
    const rcpts: RemoteReply[] = [];
    let data: RemoteReply | null = null;
    if (plan.pipelining) {
      // RFC 2920 §3.1: MAIL, every RCPT and DATA in one write; replies come back in the same order.
      const group = [plan.mailCommand, ...plan.recipients.map((r) => r.command)];
      if (pipelineData) group.push('DATA\r\n');
      await w.write(group.join(''), 'mail', t.commandMs);
      mail = await w.read('mail', t.commandMs);
      for (let i = 0; i < plan.recipients.length; i++) rcpts.push(await w.read('rcpt', t.commandMs));
      if (pipelineData) data = await w.read('data', t.dataInitMs);
    } else {
      await w.write(plan.mailCommand, 'mail', t.commandMs);
      mail = await w.read('mail', t.commandMs);
      if (isPositive(mail)) {
        for (const r of plan.recipients) {
          await w.write(r.command, 'rcpt', t.commandMs);
          rcpts.push(await w.read('rcpt', t.commandMs));
        }
      }
    }
    const outcome = evaluateEnvelope(plan, { mail, rcpts, data });
    if (outcome.next === 'fail') {
      if (outcome.endEmptyData) {
        await w.write('.\r\n', 'end-of-data', t.dataBlockMs);
        await w.read('end-of-data', t.dataDoneMs);
      }
      await this.reset();
      return outcome.result;
    }
    const { accepted, refused } = outcome;
    progress.refused = refused;
    let final: RemoteReply;
    let finalStage: Stage = 'end-of-data';
    if (plan.content === 'data') {
      if (!pipelineData) {
        await w.write('DATA\r\n', 'data', t.commandMs);
        const reply = await w.read('data', t.dataInitMs);
        if (reply.code !== 354) {
          await this.reset();
          return failAll(accepted, failureFromReply('data', reply, 'the server refused DATA'), refused);
        }
      }
      const encoder = new ContentEncoder({ dotStuff: true });
      for await (const chunk of readBody(message)) {
        const out = encoder.push(chunk);
        if (out.length > 0) await w.write(out, 'content', t.dataBlockMs);
      }
      await w.write(encoder.end(), 'content', t.dataBlockMs);
      final = await w.read('end-of-data', t.dataDoneMs);
      if (this.opts.lmtp === true) {
        // RFC 2033 §4.2: one reply per recipient RCPT accepted, in order; each decides for its own.
        const replies = [final];
        for (let i = 1; i < accepted.length; i++) replies.push(await w.read('end-of-data', t.dataDoneMs));
        return evaluateLmtpFinal(accepted, refused, replies);
      }
    } else {
      const bdat = await this.sendBdat(message, plan);
      final = bdat.reply;
      finalStage = bdat.stage;
    }
    const result = evaluateFinal(accepted, refused, final, finalStage);
    if (result.kind === 'failed') await this.reset();
    return result;
  }

  /** BDAT chunks (RFC 3030 §2), pipelined up to a window when the server pipelines. */
  private async sendBdat(
    message: OutgoingMessage,
    plan: TransactionPlan,
  ): Promise<{ reply: RemoteReply; stage: Stage }> {
    const w = this.wire;
    const t = this.t;
    const encoder = plan.content === 'bdat' ? new ContentEncoder({ dotStuff: false }) : null;
    const window = plan.pipelining ? BDAT_WINDOW : 1;
    let outstanding = 0;
    let refusal: RemoteReply | null = null;
    const pending: Uint8Array[] = [];
    let pendingBytes = 0;

    const takeReply = async (last: boolean): Promise<RemoteReply> => {
      const reply = await w.read(last ? 'end-of-data' : 'content', last ? t.dataDoneMs : t.dataBlockMs);
      outstanding--;
      if (!isPositive(reply) && refusal === null) refusal = reply;
      return reply;
    };
    const sendChunk = async (bytes: number, last: boolean): Promise<void> => {
      // Take exactly `bytes` from the front of the pending list.
      const parts: Uint8Array[] = [];
      let need = bytes;
      while (need > 0) {
        const head = pending[0]!;
        if (head.length <= need) {
          parts.push(head);
          pending.shift();
          need -= head.length;
        } else {
          parts.push(head.subarray(0, need));
          pending[0] = head.subarray(need);
          need = 0;
        }
      }
      pendingBytes -= bytes;
      await w.write(formatBdat(bytes, last), 'content', t.dataBlockMs);
      for (const p of parts) await w.write(p, 'content', t.dataBlockMs);
      outstanding++;
      if (!last) while (outstanding >= window && refusal === null) await takeReply(false);
    };

    for await (const chunk of readBody(message)) {
      const out = encoder ? encoder.push(chunk) : chunk;
      if (out.length > 0) {
        // The caller may reuse its buffer: keep a copy of what waits for the next chunk.
        pending.push(Uint8Array.from(out));
        pendingBytes += out.length;
      }
      while (pendingBytes >= BDAT_CHUNK_BYTES && refusal === null) await sendChunk(BDAT_CHUNK_BYTES, false);
      if (refusal !== null) break;
    }
    if (refusal === null) {
      const tail = encoder ? encoder.end() : new Uint8Array(0);
      if (tail.length > 0) {
        pending.push(tail);
        pendingBytes += tail.length;
      }
      await sendChunk(pendingBytes, true);
    }
    // Collect the replies still owed; the first refusal decides, else the reply to LAST.
    let last: RemoteReply | null = null;
    while (outstanding > 0) last = await takeReply(outstanding === 1 && refusal === null);
    if (refusal !== null) return { reply: refusal, stage: 'content' };
    return { reply: last!, stage: 'end-of-data' };
  }

  async reset(): Promise<void> {
    if (this.wire.dead || this.closed) return;
    try {
      await this.wire.write('RSET\r\n', 'reset', this.t.commandMs);
      const reply = await this.wire.read('reset', this.t.commandMs);
      if (!isPositive(reply))
        this.wire.fail({ reason: `RSET refused: ${formatRemoteReply(reply)}`, status: '4.4.2' });
    } catch {
      // The wire is dead now and `usable` says so; the transaction's result stands.
    }
  }

  async quit(): Promise<void> {
    if (this.closed) return;
    if (!this.wire.dead) {
      try {
        const timeoutMs = Math.min(this.t.commandMs, QUIT_TIMEOUT_CAP_MS);
        await this.wire.write('QUIT\r\n', 'quit', timeoutMs);
        await this.wire.read('quit', timeoutMs);
      } catch {
        // Whatever the server does now, we are leaving.
      }
    }
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.wire.socket.end();
    // A peer that never closes its side must not keep the socket (and the process) alive.
    setTimeout(() => this.wire.socket.destroy(), QUIT_TIMEOUT_CAP_MS).unref();
  }
}

/** The message body, with read errors marked as ours (a local, temporary failure). */
async function* readBody(message: OutgoingMessage): AsyncGenerator<Uint8Array> {
  let iterator: AsyncIterator<Uint8Array>;
  try {
    iterator = message.body()[Symbol.asyncIterator]();
  } catch (err) {
    throw new ClientError(localFailure('content', `cannot read the message: ${errorText(err)}`, '4.3.0'));
  }
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await iterator.next();
      } catch (err) {
        throw new ClientError(localFailure('content', `cannot read the message: ${errorText(err)}`, '4.3.0'));
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}

/**
 * Connect, read the greeting, EHLO (HELO fallback), STARTTLS by policy, EHLO again, AUTH when asked.
 * Never throws for anything the network or the server does: a failure comes back as a value.
 */
export async function connectSmtp(opts: ConnectOptions): Promise<ConnectResult> {
  const log = (opts.log ?? nullLogger).child({
    remoteHost: opts.host,
    remoteAddress: opts.address,
    port: opts.port,
  });
  const failed = (failure: Failure, banner: string | null): ConnectResult => {
    const retryWithoutTls = failure.stage === 'tls' && opts.tls === 'may' && !opts.implicitTls;
    log.warn(Events.smtpClientConnectFailed, {
      stage: failure.stage,
      reason: failure.reason,
      status: failure.status,
      ...(failure.reply ? { reply: formatRemoteReply(failure.reply) } : {}),
    });
    return { kind: 'failed', failure: { ...failure, retryWithoutTls, banner } };
  };
  if (opts.signal?.aborted) return failed(localFailure('connect', 'aborted', '4.3.0'), null);
  let socket: Socket;
  try {
    socket = await openSocket(opts);
  } catch (err) {
    return failed(localFailure('connect', `cannot connect: ${errorText(err)}`, '4.4.1'), null);
  }
  const session = new Session(opts, socket, log);
  try {
    await session.open();
  } catch (err) {
    session.close();
    const failure =
      err instanceof ClientError
        ? err.failure
        : localFailure('connect', `local error: ${errorText(err)}`, '4.3.0');
    return failed(failure, session.remoteBanner === '' ? null : session.remoteBanner);
  }
  log.event(Events.smtpClientConnected, {
    banner: session.remoteBanner,
    esmtp: session.capabilities.esmtp,
    tls: session.tls?.version ?? null,
    verified: session.tls?.verified ?? false,
  });
  return { kind: 'connected', session };
}
