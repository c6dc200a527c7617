// The SMTP session driver: glues one pure SmtpSession (src/protocol/smtp/session.ts) to one socket and
// to the services (policy, directory, queue). It owns everything the state machine must not touch:
// the socket, TLS upgrade, timers, the queue writer and the log. It is the only writer of replies.
//
// SECURITY: input is fed to the session in arrival order; while the session waits for a decision the
// socket is paused once a bounded amount is buffered. At STARTTLS every byte not yet fed is dropped with
// the session's own buffer (CVE-2011-0411 class). A 250 after DATA is sent only after queue commit, which
// resolves once the message is fsynced.

import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Config, ListenerConfig } from '../config/config.ts';
import { formatMailbox } from '../core/address.ts';
import { assertNever } from '../core/assert-never.ts';
import type { ClientInfo, Envelope, EnvelopeRecipient } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import { formatReply, Replies, replyFor, withText, type Reply } from '../core/reply.ts';
import type { Directory } from '../directory/directory.ts';
import { inNetworks, type Network } from '../policy/networks.ts';
import { decideRecipient } from '../policy/relay.ts';
import { formatReceived } from '../protocol/smtp/received.ts';
import { SmtpSession, type Effect, type TransactionInfo } from '../protocol/smtp/session.ts';
import type { MessageWriter, Queue } from '../queue/queue.ts';

export interface ConnectionDeps {
  readonly config: Config;
  readonly queue: Queue;
  readonly directory: Directory;
  readonly logger: Logger;
  readonly clock: Clock;
  /** For STARTTLS; null when no certificate is available. */
  readonly secureContext: SecureContext | null;
  readonly trustedNetworks: readonly Network[];
}

/** Above this many unfed bytes the socket is paused until the session catches up. */
const MAX_UNFED_BYTES = 256 * 1024;
const TLS_HANDSHAKE_TIMEOUT_MS = 30_000;

export class SmtpConnection {
  readonly id: string;
  private socket: Socket;
  private readonly deps: ConnectionDeps;
  private readonly listener: ListenerConfig;
  private readonly session: SmtpSession;
  private readonly log: Logger;
  private readonly remoteIp: string;
  private readonly remotePort: number;
  private inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  private pumping = false;
  private closed = false;
  private writer: MessageWriter | null = null;
  /** Writes to the queue writer, chained so content keeps its order. */
  private writeChain: Promise<void> = Promise.resolve();
  private writeError: unknown = null;
  private unwrittenBytes = 0;
  private dataDeadline: NodeJS.Timeout | null = null;
  private shuttingDown = false;
  private tlsInfo: ClientInfo['tls'] = null;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(socket: Socket, id: string, listener: ListenerConfig, deps: ConnectionDeps) {
    this.socket = socket;
    this.id = id;
    this.listener = listener;
    this.deps = deps;
    this.remoteIp = normalizeIp(socket.remoteAddress ?? '0.0.0.0');
    this.remotePort = socket.remotePort ?? 0;
    this.log = deps.logger.child({ session: id });
    const implicitTls = listener.tls === 'implicit';
    const limits = deps.config.limits;
    this.session = new SmtpSession({
      hostname: deps.config.hostname,
      maxMessageBytes: limits.maxMessageBytes,
      maxRecipients: limits.maxRecipients,
      maxTransactions: limits.maxTransactionsPerConnection,
      maxCommandLineBytes: limits.maxCommandLineBytes,
      maxTextLineBytes: limits.maxTextLineBytes,
      longLines: limits.longLines,
      maxErrors: limits.maxErrors,
      bareLineEndings: deps.config.smtp.bareLineEndings,
      vrfy: deps.config.smtp.vrfy,
      starttls: listener.tls === 'starttls' && deps.secureContext !== null,
      tlsActive: implicitTls,
    });
    if (implicitTls) this.tlsInfo = describeTls(socket as TLSSocket);
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  get done(): Promise<void> {
    return this.closedPromise;
  }

  start(): void {
    this.log.event(Events.smtpConnect, {
      ip: this.remoteIp,
      port: this.remotePort,
      service: this.listener.service,
      tls: this.tlsInfo,
    });
    this.attach(this.socket);
    this.armIdleTimer();
    void this.perform(this.session.greet());
  }

  /** Graceful shutdown: idle sessions get 421 now; busy ones after their transaction. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.isIdle()) this.closeWith(Replies.shuttingDown);
  }

  /** Hard stop after the grace period. */
  destroy(): void {
    this.socket.destroy();
  }

  private isIdle(): boolean {
    const phase = this.session.phase;
    return this.session.pending === null && (phase === 'connected' || phase === 'ready');
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
    socket.off('timeout', this.onTimeout);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.closed) return;
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    if (this.inboxBytes > MAX_UNFED_BYTES) this.socket.pause();
    void this.pump();
  };

  private readonly onError = (err: Error): void => {
    this.log.event(Events.smtpClose, { reason: 'socket error', error: err.message });
    this.socket.destroy();
  };

  private readonly onClose = (): void => {
    this.finish('client closed');
  };

  private readonly onTimeout = (): void => {
    this.log.warn(Events.smtpTimeout, { phase: this.session.phase });
    this.closeWith(Replies.commandTimeout);
  };

  private armIdleTimer(): void {
    const limits = this.deps.config.limits;
    const ms =
      this.session.phase === 'connected'
        ? limits.greetingTimeoutMs
        : this.session.inContent
          ? limits.dataBlockTimeoutMs
          : limits.commandTimeoutMs;
    this.socket.setTimeout(ms);
  }

  /** Feeds buffered input to the session, one chunk at a time, performing effects in order. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.inbox.length > 0 && this.session.pending === null) {
        const chunk = this.inbox.shift()!;
        this.inboxBytes -= chunk.length;
        await this.perform(this.session.feed(chunk));
      }
      if (!this.closed && this.inboxBytes <= MAX_UNFED_BYTES && this.socket.isPaused()) this.socket.resume();
    } catch (err) {
      this.log.error(Events.smtpInternalError, { error: String(err), stack: (err as Error).stack });
      this.closeWith(Replies.localError);
    } finally {
      this.pumping = false;
    }
  }

  private async perform(effects: Effect[]): Promise<void> {
    const out: string[] = [];
    const flush = (): void => {
      if (out.length > 0 && !this.closed) this.socket.write(out.join(''));
      out.length = 0;
    };
    for (const effect of effects) {
      if (this.closed) return;
      switch (effect.kind) {
        case 'reply':
          out.push(formatReply(effect.reply, true, effect.extraLines));
          if (effect.reply.code >= 400)
            this.log.event(Events.smtpReply, {
              code: effect.reply.code,
              enhanced: effect.reply.enhanced,
              text: effect.reply.text,
            });
          break;
        case 'close':
          flush();
          this.end();
          return;
        case 'state':
          this.armIdleTimer();
          if (effect.to === 'ready' && this.shuttingDown && this.session.pending === null) {
            flush();
            this.closeWith(Replies.shuttingDown);
            return;
          }
          break;
        case 'command':
          this.log.event(Events.smtpCommand, { verb: effect.verb });
          break;
        case 'violation':
          this.log.warn(Events.smtpViolation, { what: effect.what, phase: this.session.phase });
          break;
        case 'starttls':
          flush();
          await this.perform(await this.startTls());
          break;
        case 'check-mail':
          await this.perform(this.session.resolve({ kind: 'mail', reply: null }));
          break;
        case 'check-rcpt':
          flush();
          await this.perform(await this.checkRecipient(effect.rcpt.recipient, effect));
          break;
        case 'check-vrfy':
          await this.perform(this.session.resolve({ kind: 'vrfy', reply: Replies.cannotVrfy }));
          break;
        case 'begin-message':
          this.beginMessage(effect.transaction);
          break;
        case 'data': {
          const writer = this.writer;
          if (!writer) break;
          const chunk = effect.chunk;
          this.unwrittenBytes += chunk.length;
          this.writeChain = this.writeChain
            .then(() => writer.write(chunk))
            .catch((err: unknown) => {
              this.writeError ??= err;
            })
            .finally(() => {
              this.unwrittenBytes -= chunk.length;
            });
          // Keep memory bounded on slow disks: stop reading while the writer is behind.
          if (this.unwrittenBytes > MAX_UNFED_BYTES) await this.writeChain;
          break;
        }
        case 'abort-message':
          this.abortMessage();
          break;
        case 'commit':
          flush();
          await this.perform(
            this.session.resolve({
              kind: 'commit',
              reply: await this.commit(effect.transaction, effect.sizeBytes),
            }),
          );
          break;
        default:
          assertNever(effect);
      }
    }
    flush();
  }

  private async checkRecipient(
    mailbox: Parameters<typeof decideRecipient>[0],
    effect: Extract<Effect, { kind: 'check-rcpt' }>,
  ): Promise<Effect[]> {
    const { rcpt } = effect;
    const reject = (reply: Reply, reason: string): Effect[] => {
      this.log.event(Events.smtpRcptRejected, { rcpt: formatMailbox(mailbox), code: reply.code, reason });
      return this.session.resolve({ kind: 'rcpt', recipient: null, reply });
    };
    const decision = decideRecipient(mailbox, {
      isLocalDomain: (d) => this.deps.directory.isLocalDomain(d),
      primaryDomain: this.deps.config.localDomains[0] ?? this.deps.config.hostname,
      mayRelay: inNetworks(this.remoteIp, this.deps.trustedNetworks),
    });
    if (decision.kind === 'reject') return reject(decision.reply, decision.reason);
    const recipient: EnvelopeRecipient = {
      address: decision.kind === 'local' && mailbox.domain === '' ? decision.address : formatMailbox(mailbox),
      notify: rcpt.notify,
      orcpt: rcpt.orcpt,
    };
    if (decision.kind === 'local') {
      try {
        const resolution = await this.deps.directory.resolve(decision.address);
        if (resolution.kind !== 'local') return reject(Replies.noSuchUser, 'unknown local user');
      } catch (err) {
        this.log.error(Events.smtpInternalError, { error: String(err) });
        return reject(replyFor(err), 'directory error');
      }
    }
    return this.session.resolve({ kind: 'rcpt', recipient, reply: Replies.recipientOk });
  }

  private clientInfo(): ClientInfo {
    return {
      ip: this.remoteIp,
      port: this.remotePort,
      // XXX: reverse DNS comes with the DNS resolver of the outbound issue.
      hostname: null,
      helo: this.session.helo ?? '',
      esmtp: this.session.esmtp,
      tls: this.tlsInfo,
      authUser: null,
      service: this.listener.service,
    };
  }

  private beginMessage(tx: TransactionInfo): void {
    this.writeError = null;
    this.writeChain = Promise.resolve();
    const writer = this.deps.queue.begin();
    this.writer = writer;
    const limits = this.deps.config.limits;
    this.dataDeadline = setTimeout(() => {
      this.log.warn(Events.smtpTimeout, { phase: 'data total', queueId: writer.id });
      this.closeWith(Replies.commandTimeout);
    }, limits.dataTotalTimeoutMs);
    const received = formatReceived({
      client: this.clientInfo(),
      hostname: this.deps.config.hostname,
      queueId: writer.id,
      forRecipient: tx.recipients.length === 1 ? tx.recipients[0]!.address : null,
      smtputf8: tx.params.smtputf8,
      nowMs: this.deps.clock.nowMs(),
    });
    const header = new TextEncoder().encode(received);
    this.writeChain = writer.write(header).catch((err: unknown) => {
      this.writeError ??= err;
    });
  }

  private abortMessage(): void {
    this.clearDataDeadline();
    const writer = this.writer;
    this.writer = null;
    if (!writer) return;
    const chain = this.writeChain;
    void chain
      .then(() => writer.abort())
      .catch((err: unknown) => {
        this.log.warn(Events.smtpInternalError, { error: String(err), queueId: writer.id });
      });
  }

  private async commit(tx: TransactionInfo, sizeBytes: number): Promise<Reply> {
    this.clearDataDeadline();
    const writer = this.writer;
    this.writer = null;
    if (!writer) return Replies.localError;
    try {
      await this.writeChain;
      const writeError = this.writeError;
      if (writeError !== null)
        throw writeError instanceof Error
          ? writeError
          : new Error('queue write failed', { cause: writeError });
      const envelope: Envelope = {
        sender: tx.sender ? formatMailbox(tx.sender) : '',
        body: tx.params.body,
        smtputf8: tx.params.smtputf8,
        ret: tx.params.ret,
        envid: tx.params.envid,
        recipients: tx.recipients,
        client: this.clientInfo(),
        receivedAtMs: this.deps.clock.nowMs(),
      };
      await writer.commit(envelope);
      this.log.event(Events.smtpQueued, {
        queueId: writer.id,
        sender: envelope.sender,
        recipients: envelope.recipients.length,
        sizeBytes,
      });
      return withText(Replies.queued, `OK: queued as ${writer.id}`);
    } catch (err) {
      this.log.error(Events.smtpCommitFailed, { queueId: writer.id, error: String(err) });
      await writer.abort().catch(() => undefined);
      return replyFor(err);
    }
  }

  private async startTls(): Promise<Effect[]> {
    // SECURITY: drop everything received but not yet fed; the session dropped its own buffer.
    if (this.inboxBytes > 0)
      this.log.warn(Events.smtpViolation, { what: 'bytes after STARTTLS discarded', bytes: this.inboxBytes });
    this.inbox = [];
    this.inboxBytes = 0;
    const raw = this.socket;
    this.detach(raw);
    raw.setTimeout(0);
    const secureContext = this.deps.secureContext;
    if (!secureContext) return this.session.resolve({ kind: 'tls', ok: false });
    const tlsSocket = new TLSSocket(raw, { isServer: true, secureContext });
    this.socket = tlsSocket;
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        cleanup();
        resolve(false);
      }, TLS_HANDSHAKE_TIMEOUT_MS);
      const onSecure = (): void => {
        cleanup();
        resolve(true);
      };
      const onFail = (err?: Error): void => {
        cleanup();
        this.log.warn(Events.tlsFailed, { error: err?.message ?? 'closed during handshake' });
        resolve(false);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        tlsSocket.off('secure', onSecure);
        tlsSocket.off('error', onFail);
        tlsSocket.off('close', onFail);
      };
      tlsSocket.once('secure', onSecure);
      tlsSocket.once('error', onFail);
      tlsSocket.once('close', onFail);
    });
    if (!ok) {
      tlsSocket.on('error', () => undefined);
      tlsSocket.destroy();
      raw.destroy();
      this.finish('tls handshake failed');
      return [];
    }
    this.tlsInfo = describeTls(tlsSocket);
    this.log.event(Events.tlsHandshake, { ...this.tlsInfo });
    this.attach(tlsSocket);
    const effects = this.session.resolve({ kind: 'tls', ok: true });
    this.armIdleTimer();
    return effects;
  }

  private clearDataDeadline(): void {
    if (this.dataDeadline) clearTimeout(this.dataDeadline);
    this.dataDeadline = null;
  }

  private closeWith(reply: Reply): void {
    if (this.closed) return;
    this.socket.write(formatReply(reply, true));
    this.end();
  }

  private end(): void {
    if (this.closed) return;
    this.socket.end();
    // A peer that never reads would keep the socket half-open forever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
    this.finish('server closed');
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.clearDataDeadline();
    this.abortMessage();
    this.session.close();
    this.socket.setTimeout(0);
    this.log.event(Events.smtpClose, { reason });
    this.resolveClosed();
  }
}

function describeTls(socket: TLSSocket): ClientInfo['tls'] {
  const cipher = socket.getCipher?.();
  return {
    version: socket.getProtocol?.() ?? 'unknown',
    cipher: cipher?.standardName ?? cipher?.name ?? 'unknown',
  };
}

/** "::ffff:127.0.0.1" → "127.0.0.1" so logs, limits and Received: show the address people expect. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
