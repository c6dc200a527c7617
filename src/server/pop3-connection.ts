// The POP3 driver: glues one pure Pop3Session (src/protocol/pop3/session.ts) to one connection shell
// (net/connection.ts) and to the services. It turns the session's effects into replies, log lines and
// decisions: STLS (the shell's upgrade), USER/PASS and AUTH (the one SASL drive, so the delays, failure
// cap and lockouts are submission's), the maildrop (the user's INBOX: an exclusive lock, then a snapshot
// whose numbers and sizes stay fixed for the session), RETR/TOP (the stored bytes streamed, byte-stuffed)
// and the UPDATE state (one durable expunge of the messages marked deleted). It runs the idle timer
// (RFC 1939 §3's autologout, [pop3] idle_timeout_seconds) and is the only writer of POP3 replies.
// Deliberately NOT here: socket handling and TLS (the shell), the SASL exchange (sasl-drive.ts), the
// protocol's rules and texts (the session and replies.ts), connection limits (listeners.ts).
//
// SECURITY: input is fed to the session in arrival order; while a decision is pending the shell holds
// further input. At STLS the shell drops every byte not yet fed and the session its own buffer. A
// connection that ends without QUIT (dropped, timed out, shut down) deletes nothing: only the session's
// `update` effect expunges, and the lock is released on every way out.

import { assertNever } from '../core/assert-never.ts';
import type { ListenerConfig } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import type { Connection } from '../net/connection.ts';
import { pop3AuthFraming, type Pop3AuthStep } from '../protocol/pop3/auth-framing.ts';
import { MessageEncoder } from '../protocol/pop3/message-stream.ts';
import { formatChallenge, formatReply, Pop3Replies, type Pop3Reply } from '../protocol/pop3/replies.ts';
import {
  Pop3Session,
  RFC2449_MAX_COMMAND_LINE_BYTES,
  type Effect,
  type LoginOutcome,
  type MaildropOutcome,
  type MessageRef,
} from '../protocol/pop3/session.ts';
import { INBOX, type StoredMessage } from '../store/mailbox-store.ts';
import type { MaildropLock } from '../store/maildrop-locks.ts';
import type { ConnectionDeps } from './connection-deps.ts';
import type { Driver, DriverFactory } from './driver.ts';
import {
  listenerMechanisms,
  plaintextAuthAllowed,
  SaslDrive,
  type SaslEvents,
  type SaslStep,
} from './sasl-drive.ts';

/** Above this many unfed bytes the socket is paused: POP3 commands are short and answers wait for them. */
export const POP3_MAX_BUFFERED_BYTES = 64 * 1024;

/**
 * Commands before a maildrop is open (CAPA, STLS, UTF8, USER, AUTH...): a client that logs in needs a
 * handful; failed logins are capped separately ([auth] max_failures_per_connection).
 */
export const POP3_MAX_COMMANDS_BEFORE_LOGIN = 50;

const POP3_SASL_EVENTS: SaslEvents = {
  verify: Events.pop3AuthVerify,
  succeeded: Events.pop3AuthSucceeded,
};

/** pop3 (STLS, RFC 2595) and pop3s (implicit TLS, RFC 8314) on the listeners. */
export const pop3Driver: DriverFactory = {
  create: (shell, { id, listener, deps }) => new Pop3Connection(shell, id, listener, deps),
  refusal: (reason) =>
    formatReply(
      reason === 'max-connections-per-ip'
        ? Pop3Replies.tooManyConnectionsFromIp
        : Pop3Replies.tooManyConnections,
    ),
  maxBufferedBytes: POP3_MAX_BUFFERED_BYTES,
  events: { refused: Events.pop3Refused, tlsFailed: Events.pop3TlsFailed },
};

/** The open maildrop: its lock, and the store's UID of each message number (entry n-1). */
interface Maildrop {
  readonly user: string;
  readonly lock: MaildropLock;
  readonly uids: readonly number[];
}

export class Pop3Connection implements Driver {
  readonly id: string;
  private readonly shell: Connection;
  private readonly deps: ConnectionDeps;
  private readonly listener: ListenerConfig;
  private readonly session: Pop3Session;
  private readonly sasl: SaslDrive<Pop3AuthStep>;
  private readonly log: Logger;
  private maildrop: Maildrop | null = null;
  /** The message RETR/TOP opened, waiting for its send-message effect. */
  private opened: StoredMessage | null = null;
  private shuttingDown = false;
  /** A batch of effects is being performed (a decision, a message on its way). */
  private busy = false;

  constructor(shell: Connection, id: string, listener: ListenerConfig, deps: ConnectionDeps) {
    this.shell = shell;
    this.id = id;
    this.listener = listener;
    this.deps = deps;
    this.log = deps.logger.child({ session: id });
    const mechanisms = listenerMechanisms(listener, deps.config);
    const plaintextAllowed = plaintextAuthAllowed(listener, shell.remoteIp);
    this.session = new Pop3Session({
      starttls: listener.tls === 'starttls' && deps.secureContext !== null,
      tlsActive: shell.tls !== null,
      authMechanisms: mechanisms,
      plaintextAuth: plaintextAllowed,
      // APOP needs the plain-text password on the server; Tern keeps only hashes (docs/pop3.md).
      apopTimestamp: null,
      maxCommandLineBytes: RFC2449_MAX_COMMAND_LINE_BYTES,
      maxErrors: deps.config.limits.maxErrors,
      maxJunkCommands: POP3_MAX_COMMANDS_BEFORE_LOGIN,
    });
    this.sasl = new SaslDrive({
      deps,
      shell,
      log: this.log,
      framing: pop3AuthFraming,
      mechanisms,
      plaintextAllowed,
      events: POP3_SASL_EVENTS,
    });
  }

  start(): void {
    this.log.event(Events.pop3Connect, {
      ip: this.shell.remoteIp,
      port: this.shell.remotePort,
      service: this.listener.service,
      tls: this.shell.tls,
    });
    this.shell.start({
      data: this.onData,
      error: (err) => this.log.event(Events.pop3Close, { reason: 'socket error', error: err.message }),
      tlsFailed: (error) => this.log.warn(Events.pop3TlsFailed, { error }),
      closed: (reason) => void this.finish(reason),
    });
    this.armIdleTimer();
    void this.run(this.session.greet());
  }

  /** Graceful shutdown: an idle session is told at once; one at work finishes its command first. */
  shutdown(): void {
    this.shuttingDown = true;
    if (!this.busy) this.closeWith(Pop3Replies.shuttingDown);
  }

  private readonly onData = async (chunk: Uint8Array): Promise<void> => {
    await this.run(this.session.feed(chunk));
  };

  /** Perform a batch; any error becomes -ERR [SYS/TEMP] and a close, its cause logged. */
  private async run(effects: Effect[]): Promise<void> {
    this.busy = true;
    try {
      await this.perform(effects);
    } catch (err) {
      this.log.error(Events.pop3InternalError, { error: String(err), stack: (err as Error).stack });
      this.closeWith(Pop3Replies.localError);
    } finally {
      this.busy = false;
    }
    if (this.shuttingDown && !this.shell.closed) this.closeWith(Pop3Replies.shuttingDown);
  }

  /** RFC 1939 §3: an idle client is logged out after the configured time (at least 10 minutes advised). */
  private armIdleTimer(): void {
    this.shell.setTimer('idle', this.deps.config.pop3.idleTimeoutMs, () => {
      this.log.warn(Events.pop3Timeout, { phase: this.session.phase });
      this.closeWith(Pop3Replies.idleTimeout);
    });
  }

  private async perform(effects: Effect[]): Promise<void> {
    const out: Uint8Array[] = [];
    const flush = (): void => {
      for (const bytes of out) this.shell.write(bytes);
      out.length = 0;
    };
    for (const effect of effects) {
      if (this.shell.closed) return;
      switch (effect.kind) {
        case 'reply':
          out.push(formatReply(effect.reply, effect.lines));
          break;
        case 'challenge':
          out.push(formatChallenge(effect.challenge));
          break;
        case 'close':
          flush();
          await this.releaseMaildrop();
          this.shell.end();
          return;
        case 'state':
          this.log.debug(Events.pop3State, { from: effect.from, to: effect.to });
          break;
        case 'command':
          this.armIdleTimer();
          this.log.debug(Events.pop3Command, { verb: effect.verb });
          break;
        case 'violation':
          this.log.warn(Events.pop3Violation, { what: effect.what, phase: this.session.phase });
          break;
        case 'starttls':
          flush();
          await this.perform(await this.startTls());
          break;
        case 'login':
          flush();
          await this.perform(this.loginResolved(await this.sasl.password(effect.user, effect.password)));
          break;
        case 'apop':
          // Never asked: the session is built with APOP off.
          await this.perform(
            this.session.resolve({
              kind: 'login',
              outcome: { kind: 'failure', reply: Pop3Replies.apopDisabled, close: false },
            }),
          );
          break;
        case 'auth-start':
          flush();
          await this.perform(
            this.authResolved(await this.sasl.start(effect.mechanism, effect.initialResponse)),
          );
          break;
        case 'auth-response':
          flush();
          await this.perform(this.authResolved(await this.sasl.line(effect.line)));
          break;
        case 'open-maildrop':
          flush();
          await this.perform(
            this.session.resolve({ kind: 'maildrop', outcome: await this.openMaildrop(effect.user) }),
          );
          break;
        case 'open-message': {
          flush();
          const ok = await this.openMessage(effect.message);
          await this.perform(this.session.resolve({ kind: 'message', ok }));
          break;
        }
        case 'send-message':
          flush();
          await this.sendMessage(effect.message, effect.topLines);
          break;
        case 'update': {
          flush();
          const ok = await this.update(effect.deleted);
          await this.perform(this.session.resolve({ kind: 'update', ok }));
          break;
        }
        default:
          assertNever(effect);
      }
    }
    flush();
  }

  // --- STLS and logins ----------------------------------------------------------------------------

  private async startTls(): Promise<Effect[]> {
    const result = await this.shell.startTls();
    // SECURITY: the shell dropped everything received but not yet fed; the session dropped its own buffer.
    if (result.discardedBytes > 0)
      this.log.warn(Events.pop3Violation, {
        what: 'bytes after STLS discarded',
        bytes: result.discardedBytes,
      });
    if (!result.ok) return [];
    this.log.event(Events.pop3Tls, { ...result.tls });
    this.armIdleTimer();
    return this.session.resolve({ kind: 'tls', ok: true });
  }

  private outcomeOf(step: SaslStep<Pop3AuthStep>): LoginOutcome {
    switch (step.kind) {
      case 'success':
        return { kind: 'success', user: step.identity };
      case 'failure':
        return { kind: 'failure', reply: replyOf(step.out), close: step.close };
      case 'challenge':
        // A password login is PLAIN with its response given: it never asks for more.
        return { kind: 'failure', reply: Pop3Replies.loginFailed, close: false };
      default:
        return assertNever(step);
    }
  }

  private loginResolved(step: SaslStep<Pop3AuthStep> | null): Effect[] {
    if (step === null) return []; // the client left during the failure delay
    return this.session.resolve({ kind: 'login', outcome: this.outcomeOf(step) });
  }

  private authResolved(step: SaslStep<Pop3AuthStep> | null): Effect[] {
    if (step === null) return [];
    if (step.kind === 'challenge' && step.out.kind === 'challenge') {
      return this.session.resolve({
        kind: 'auth',
        outcome: { kind: 'challenge', challenge: step.out.challenge },
      });
    }
    return this.session.resolve({ kind: 'auth', outcome: this.outcomeOf(step) });
  }

  // --- the maildrop -------------------------------------------------------------------------------

  private async openMaildrop(user: string): Promise<MaildropOutcome> {
    const lock = await this.deps.maildropLocks.acquire(user, INBOX);
    if (lock === null) {
      this.log.event(Events.pop3Maildrop, { user, inUse: true });
      return { ok: false, reply: Pop3Replies.maildropInUse };
    }
    try {
      // null: nothing was ever delivered here, an empty maildrop.
      const snapshot = await this.deps.store.snapshot(user, INBOX);
      const entries = snapshot?.entries ?? [];
      if (this.shell.closed) {
        await lock.release();
        return { ok: false, reply: Pop3Replies.maildropUnavailable };
      }
      this.maildrop = { user, lock, uids: entries.map((e) => e.uid) };
      this.log.event(Events.pop3Maildrop, {
        user,
        messages: entries.length,
        octets: entries.reduce((n, e) => n + e.sizeBytes, 0),
        uidValidity: snapshot?.uidValidity ?? null,
      });
      return { ok: true, messages: entries.map((e) => ({ uid: e.uidl, sizeBytes: e.sizeBytes })) };
    } catch (err) {
      await lock.release();
      this.log.error(Events.pop3InternalError, { what: 'open maildrop', user, error: String(err) });
      return { ok: false, reply: Pop3Replies.maildropUnavailable };
    }
  }

  private storeUid(message: MessageRef): number {
    const uid = this.maildrop?.uids[message.number - 1];
    if (uid === undefined) throw new Error(`message ${message.number} is not in the maildrop`);
    return uid;
  }

  private async openMessage(message: MessageRef): Promise<boolean> {
    const drop = this.maildrop;
    if (drop === null) return false;
    try {
      this.opened = await this.deps.store.openMessage(drop.user, INBOX, this.storeUid(message));
    } catch (err) {
      this.log.error(Events.pop3InternalError, {
        what: 'open message',
        uid: message.uid,
        error: String(err),
      });
      this.opened = null;
    }
    // Gone (expunged elsewhere since the snapshot): the session answers -ERR [SYS/TEMP] and goes on.
    return this.opened !== null;
  }

  /** The opened message, byte-stuffed, with backpressure; a broken stream cuts the connection. */
  private async sendMessage(message: MessageRef, topLines: number | null): Promise<void> {
    const stored = this.opened;
    this.opened = null;
    if (stored === null) throw new Error('send-message without an opened message');
    const encoder = new MessageEncoder(topLines);
    let octets = 0;
    try {
      for await (const chunk of stored.content) {
        const bytes = encoder.push(chunk);
        if (bytes.length > 0) {
          octets += bytes.length;
          await this.shell.send(bytes);
          // A big message to a slow client is progress, not idleness.
          this.armIdleTimer();
        }
        if (encoder.done || this.shell.closed) break;
      }
      if (!this.shell.closed) await this.shell.send(encoder.end());
      this.log.event(Events.pop3Retrieved, { uid: message.uid, top: topLines, octets });
    } catch (err) {
      // The +OK is out: a half-sent message cannot be answered any other way than by closing.
      this.log.error(Events.pop3InternalError, {
        what: 'read message',
        uid: message.uid,
        error: String(err),
      });
      this.shell.destroy();
    } finally {
      await stored.close();
    }
  }

  /** UPDATE (RFC 1939 §6): the marked messages go in one durable expunge; false keeps them all. */
  private async update(deleted: readonly MessageRef[]): Promise<boolean> {
    const drop = this.maildrop;
    if (drop === null || deleted.length === 0) return true;
    try {
      const removed = await this.deps.store.expunge(
        drop.user,
        INBOX,
        deleted.map((m) => this.storeUid(m)),
      );
      this.log.event(Events.pop3Update, { user: drop.user, deleted: removed.length });
      return true;
    } catch (err) {
      this.log.error(Events.pop3UpdateFailed, { user: drop.user, error: String(err) });
      return false;
    }
  }

  private async releaseMaildrop(): Promise<void> {
    const drop = this.maildrop;
    this.maildrop = null;
    await drop?.lock.release();
  }

  // --- closing ------------------------------------------------------------------------------------

  private closeWith(reply: Pop3Reply): void {
    this.session.close();
    this.shell.end(formatReply(reply));
  }

  private async finish(reason: string): Promise<void> {
    this.session.close();
    const opened = this.opened;
    this.opened = null;
    await opened?.close();
    await this.releaseMaildrop();
    this.log.event(Events.pop3Close, { reason });
  }
}

function replyOf(step: Pop3AuthStep): Pop3Reply {
  return step.kind === 'reply' ? step.reply : Pop3Replies.loginFailed;
}
