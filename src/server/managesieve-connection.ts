// The ManageSieve driver (RFC 5804): glues one pure ManageSieveSession (protocol/managesieve/session.ts)
// to one connection shell and to the services. It turns the session's effects into responses, log lines
// and decisions: STARTTLS (the shell's upgrade), AUTHENTICATE (the one SASL drive, so IMAP's delays,
// failure cap and lockouts apply), and the script operations (the user's scripts in data/sieve.sqlite,
// each write durable before its OK). Scripts are validated by the Sieve language module (parseSieve) with
// line and column errors. It runs the idle timer and is the only writer of ManageSieve responses.
// Deliberately NOT here: socket handling and TLS (the shell), the protocol's grammar and replies (the
// session), running scripts (delivery/sieve-delivery.ts), connection limits (listeners.ts).
//
// SECURITY: input is fed to the session in arrival order; while a decision is pending the shell holds
// further input. At STARTTLS the shell drops every byte not yet fed and the session its own buffer.

import { assertNever } from '../core/assert-never.ts';
import type { ListenerConfig } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import type { Connection } from '../net/connection.ts';
import { sieveAuthFraming, type SieveAuthStep } from '../protocol/managesieve/auth-framing.ts';
import { formatChallenge, formatReply, type SieveResponse } from '../protocol/managesieve/format.ts';
import { SieveReplies } from '../protocol/managesieve/replies.ts';
import {
  DEFAULT_MAX_LINE_BYTES,
  ManageSieveSession,
  type AuthOutcome,
  type Effect,
  type ScriptCheck,
  type StoreOp,
  type StoreResult,
} from '../protocol/managesieve/session.ts';
import { parseSieve, SIEVE_EXTENSIONS } from '../protocol/sieve/index.ts';
import type { SieveRefusal, SieveScriptStore, SieveWrite } from '../store/sieve-scripts.ts';
import type { ConnectionDeps } from './connection-deps.ts';
import type { Driver, DriverFactory } from './driver.ts';
import {
  listenerMechanisms,
  plaintextAuthAllowed,
  SaslDrive,
  type SaslEvents,
  type SaslStep,
} from './sasl-drive.ts';

/** Above this many unfed bytes the shell pauses the socket (the session holds a script literal itself). */
export const SIEVE_MAX_BUFFERED_BYTES = 64 * 1024;

/** Commands before AUTHENTICATE: a client needs a handful (CAPABILITY, STARTTLS, CAPABILITY...). */
const MAX_COMMANDS_BEFORE_AUTH = 50;

/** RFC 5804 leaves the idle time to the server; Dovecot and Cyrus keep an idle client 30 minutes. */
const IDLE_TIMEOUT_MS = 30 * 60_000;

const SIEVE_SASL_EVENTS: SaslEvents = {
  verify: Events.sieveAuthVerify,
  succeeded: Events.sieveAuthSucceeded,
};

const encoder = new TextEncoder();

/** `service = "managesieve"` on the listeners. */
export const manageSieveDriver: DriverFactory = {
  create: (shell, { id, listener, deps }) => new ManageSieveConnection(shell, id, listener, deps),
  refusal: (reason) =>
    formatReply(
      reason === 'max-connections-per-ip'
        ? SieveReplies.tooManyConnectionsFromIp
        : SieveReplies.tooManyConnections,
    ),
  maxBufferedBytes: SIEVE_MAX_BUFFERED_BYTES,
  events: { refused: Events.sieveRefused, tlsFailed: Events.sieveTlsFailed },
};

/** parseSieve as the session's validator: the first errors as "line L column C: message". */
export function checkSieveScript(script: string, maxScriptBytes: number): ScriptCheck {
  const r = parseSieve(script, { maxScriptBytes });
  if (!r.ok) {
    const text = r.errors
      .slice(0, 3)
      .map((e) => `line ${e.line} column ${e.column}: ${e.message}`)
      .join('; ');
    return { ok: false, message: text };
  }
  if (r.warnings.length === 0) return { ok: true };
  return {
    ok: true,
    warnings: r.warnings.map((w) => `line ${w.line} column ${w.column}: ${w.message}`).join('; '),
  };
}

export class ManageSieveConnection implements Driver {
  readonly id: string;
  private readonly shell: Connection;
  private readonly deps: ConnectionDeps;
  private readonly listener: ListenerConfig;
  private readonly session: ManageSieveSession;
  private readonly sasl: SaslDrive<SieveAuthStep>;
  private readonly log: Logger;
  private shuttingDown = false;
  private busy = false;

  constructor(shell: Connection, id: string, listener: ListenerConfig, deps: ConnectionDeps) {
    this.shell = shell;
    this.id = id;
    this.listener = listener;
    this.deps = deps;
    this.log = deps.logger.child({ session: id });
    const mechanisms = listenerMechanisms(listener, deps.config);
    const plaintextAllowed = plaintextAuthAllowed(listener, shell.remoteIp);
    const sieve = deps.config.sieve;
    this.session = new ManageSieveSession({
      starttls: listener.tls === 'starttls' && deps.secureContext !== null,
      tlsActive: shell.tls !== null,
      authMechanisms: mechanisms,
      plaintextAuth: plaintextAllowed,
      sieveExtensions: SIEVE_EXTENSIONS.join(' '),
      maxRedirects: sieve.maxRedirects,
      validate: (script) => checkSieveScript(script, sieve.maxScriptBytes),
      maxScriptBytes: sieve.maxScriptBytes,
      maxLineBytes: DEFAULT_MAX_LINE_BYTES,
      maxErrors: deps.config.limits.maxErrors,
      maxCommandsBeforeAuth: MAX_COMMANDS_BEFORE_AUTH,
    });
    this.sasl = new SaslDrive({
      deps,
      shell,
      log: this.log,
      framing: sieveAuthFraming,
      mechanisms,
      plaintextAllowed,
      events: SIEVE_SASL_EVENTS,
    });
  }

  start(): void {
    this.log.event(Events.sieveConnect, {
      ip: this.shell.remoteIp,
      port: this.shell.remotePort,
      service: this.listener.service,
      tls: this.shell.tls,
    });
    this.shell.start({
      data: this.onData,
      error: (err) => this.log.event(Events.sieveClose, { reason: 'socket error', error: err.message }),
      tlsFailed: (error) => this.log.warn(Events.sieveTlsFailed, { error }),
      closed: (reason) => this.finish(reason),
    });
    this.armIdleTimer();
    void this.run(this.session.greet());
  }

  /** Graceful shutdown: an idle session is told at once; one at work finishes its command first. */
  shutdown(): void {
    this.shuttingDown = true;
    if (!this.busy) this.closeWith(SieveReplies.shuttingDown);
  }

  private readonly onData = async (chunk: Uint8Array): Promise<void> => {
    await this.run(this.session.feed(chunk));
  };

  private async run(effects: Effect[]): Promise<void> {
    this.busy = true;
    try {
      await this.perform(effects);
    } catch (err) {
      this.log.error(Events.sieveInternalError, { error: String(err), stack: (err as Error).stack });
      this.closeWith(SieveReplies.localError);
    } finally {
      this.busy = false;
    }
    if (this.shuttingDown && !this.shell.closed) this.closeWith(SieveReplies.shuttingDown);
  }

  private armIdleTimer(): void {
    this.shell.setTimer('idle', IDLE_TIMEOUT_MS, () => {
      this.log.warn(Events.sieveTimeout, { phase: this.session.phase });
      this.closeWith(SieveReplies.idleTimeout);
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
          this.shell.end();
          return;
        case 'state':
          this.log.debug(Events.sieveState, { from: effect.from, to: effect.to });
          break;
        case 'command':
          this.armIdleTimer();
          this.log.debug(Events.sieveCommand, { verb: effect.verb });
          break;
        case 'violation':
          this.log.warn(Events.sieveViolation, { what: effect.what, phase: this.session.phase });
          break;
        case 'starttls':
          flush();
          await this.perform(await this.startTls());
          break;
        case 'auth-start':
          flush();
          await this.perform(
            this.authResolved(await this.sasl.start(effect.mechanism, effect.initialResponse)),
          );
          break;
        case 'auth-response':
          flush();
          await this.perform(this.authResolved(await this.sasl.line(effect.response)));
          break;
        case 'store': {
          flush();
          const result = await this.store(effect.user, effect.op);
          await this.perform(this.session.resolve({ kind: 'store', result }));
          break;
        }
        default:
          assertNever(effect);
      }
    }
    flush();
  }

  private async startTls(): Promise<Effect[]> {
    const result = await this.shell.startTls();
    // SECURITY: the shell dropped everything received but not yet fed; the session dropped its own buffer.
    if (result.discardedBytes > 0)
      this.log.warn(Events.sieveViolation, {
        what: 'bytes after STARTTLS discarded',
        bytes: result.discardedBytes,
      });
    if (!result.ok) return [];
    this.log.event(Events.sieveTls, { ...result.tls });
    this.armIdleTimer();
    return this.session.resolve({ kind: 'tls', ok: true });
  }

  private authResolved(step: SaslStep<SieveAuthStep> | null): Effect[] {
    if (step === null) return []; // the client left during the failure delay
    return this.session.resolve({ kind: 'auth', outcome: outcomeOf(step) });
  }

  // --- scripts ------------------------------------------------------------------------------------

  private scripts(): Promise<SieveScriptStore> {
    const open = this.deps.sieveScripts;
    if (open === undefined) throw new Error('no Sieve script store in this snapshot');
    return open();
  }

  /** One script operation; a store that fails is NO (TRYLATER), its cause logged. */
  private async store(user: string, op: StoreOp): Promise<StoreResult> {
    try {
      const store = await this.scripts();
      switch (op.kind) {
        case 'have-space':
          return written(await store.haveSpace(user, op.name, op.sizeBytes));
        case 'put': {
          const r = written(await store.put(user, op.name, op.script));
          if (r.kind === 'done')
            this.log.event(Events.sieveScriptChanged, {
              user,
              op: 'put',
              name: op.name,
              sizeBytes: encoder.encode(op.script).length,
            });
          return r;
        }
        case 'list':
          return { kind: 'list', scripts: await store.list(user) };
        case 'set-active':
          return this.changed(user, 'set-active', op.name, written(await store.setActive(user, op.name)));
        case 'get': {
          const script = await store.get(user, op.name);
          return script === null ? { kind: 'refused', refusal: 'nonexistent' } : { kind: 'script', script };
        }
        case 'delete':
          return this.changed(user, 'delete', op.name, written(await store.delete(user, op.name)));
        case 'rename':
          return this.changed(
            user,
            'rename',
            `${op.from} → ${op.to}`,
            written(await store.rename(user, op.from, op.to)),
          );
        default:
          return assertNever(op);
      }
    } catch (err) {
      this.log.error(Events.sieveInternalError, { what: `script ${op.kind}`, user, error: String(err) });
      return { kind: 'refused', refusal: 'temporary' };
    }
  }

  private changed(user: string, op: string, name: string | null, result: StoreResult): StoreResult {
    if (result.kind === 'done') this.log.event(Events.sieveScriptChanged, { user, op, name });
    return result;
  }

  // --- closing ------------------------------------------------------------------------------------

  private closeWith(reply: SieveResponse): void {
    this.session.close();
    this.shell.end(formatReply(reply));
  }

  private finish(reason: string): void {
    this.session.close();
    this.log.event(Events.sieveClose, { reason });
  }
}

function outcomeOf(step: SaslStep<SieveAuthStep>): AuthOutcome {
  switch (step.kind) {
    case 'challenge':
      return step.out.kind === 'challenge'
        ? { kind: 'challenge', challenge: step.out.challenge }
        : { kind: 'failure', reply: step.out.reply, close: false };
    case 'success':
      return { kind: 'success', user: step.identity };
    case 'failure':
      return {
        kind: 'failure',
        ...(step.out.kind === 'reply' ? { reply: step.out.reply } : {}),
        close: step.close,
      };
    default:
      return assertNever(step);
  }
}

/** A store write's answer as the session takes it (the store's refusals are the session's codes). */
function written(r: SieveWrite<SieveRefusal>): StoreResult {
  return r.ok ? { kind: 'done' } : { kind: 'refused', refusal: r.refusal };
}
