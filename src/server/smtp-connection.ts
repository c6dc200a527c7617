// The SMTP session driver: glues one pure SmtpSession (src/protocol/smtp/session.ts) to one socket and
// to the services (policy, directory, queue). It owns everything the state machine must not touch:
// the socket, TLS upgrade, timers, the queue writer and the log. It is the only writer of replies.
//
// SECURITY: input is fed to the session in arrival order; while the session waits for a decision the
// socket is paused once a bounded amount is buffered. At STARTTLS every byte not yet fed is dropped with
// the session's own buffer (CVE-2011-0411 class). A 250 after DATA is sent only after queue commit, which
// resolves once the message is fsynced.

import { randomBytes, type X509Certificate } from 'node:crypto';
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
import type { AuthGuard, SendRateLimiter } from '../policy/auth-guard.ts';
import { inNetworks, type Network } from '../policy/networks.ts';
import { decideRecipient } from '../policy/relay.ts';
import { formatReceived } from '../protocol/smtp/received.ts';
import { createMechanism, isMechanismName } from '../protocol/sasl/index.ts';
import { createAuthExchange, type AuthAction, type AuthExchange } from '../protocol/sasl/exchange.ts';
import type { ChannelBinding } from '../protocol/sasl/mechanism.ts';
import {
  dropHeaderFields,
  HeaderCapture,
  isBlindCopyField,
  type HeaderFacts,
} from '../protocol/smtp/header-capture.ts';
import { InboundAuth, isForgedAuthResults } from '../policy/inbound-auth.ts';
import type { Resolver } from '../core/dns.ts';
import type { DiskSpace } from '../net/disk-space.ts';
import { SmtpSession, type Effect, type TransactionInfo } from '../protocol/smtp/session.ts';
import { formatRfc5322Date } from '../core/date.ts';
import { DEFAULT_USER_POLICY, type UserPolicy } from '../directory/directory.ts';
import type { Authenticator, PeerCertificate } from './authenticator.ts';
import type { ClientNameLookup } from '../net/reverse-dns.ts';
import { acceptedFields, refusedFields } from './smtp-log.ts';
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
  readonly authenticator: Authenticator;
  readonly authGuard: AuthGuard;
  readonly rateLimiter: SendRateLimiter;
  /** For the inbound authentication checks ([checks]); null turns them off. */
  readonly resolver: Resolver | null;
  readonly skipCheckNetworks: readonly Network[];
  /** The certificates of tls.client_ca, to verify client certificates against. */
  readonly clientCas: readonly X509Certificate[];
  /** Free space of the data directory; absent in tests that do not care. */
  readonly diskSpace?: DiskSpace;
  /** The client's reverse DNS name (FCrDNS) for Received: and the logs; absent: "unknown". */
  readonly clientNames?: ClientNameLookup | null;
}

/** Bytes an early talker may send before the greeting is due before it is cut at once. */
const MAX_PREGREETING_BYTES = 4096;

/** Longest delay before answering a failed AUTH, however many failures came before. */
const MAX_AUTH_DELAY_MS = 8000;

/** Above this many unfed bytes the socket is paused until the session catches up. */
const MAX_UNFED_BYTES = 256 * 1024;

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
  private greetTimer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private exchange: AuthExchange | null = null;
  /** The account named by the current AUTH attempt, for per-account failure counting. */
  private authAccount: string | null = null;
  private authFailures = 0;
  private userPolicy: UserPolicy = DEFAULT_USER_POLICY;
  private capture: HeaderCapture | null = null;
  /** SPF/DKIM/ARC/DMARC of the current transaction, on the MX listener for unauthenticated clients. */
  private inbound: InboundAuth | null = null;
  private headerFacts: HeaderFacts | null = null;
  /** Started at connect, awaited only where the name is written (Received:), so it never delays a reply. */
  private clientName: Promise<string | null> = Promise.resolve(null);
  private rdns: string | null = null;
  /** The transaction whose content is being received, for the log line if it is refused. */
  private messageTx: TransactionInfo | null = null;
  /** Content the session refused (too big, bare LF...): its refusal reply comes next and is logged. */
  private refusedContent: TransactionInfo | null = null;
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
      maxJunkCommands: deps.config.smtp.maxJunkCommands,
      bareLineEndings: deps.config.smtp.bareLineEndings,
      vrfy: deps.config.smtp.vrfy,
      starttls: listener.tls === 'starttls' && deps.secureContext !== null,
      tlsActive: implicitTls,
      authMechanisms: listener.auth
        ? deps.config.auth.mechanisms.filter(
            (m) => m !== 'EXTERNAL' || listener.clientCertificates !== 'none',
          )
        : [],
      plaintextAuth: listener.plaintextAuthOnLoopback && isLoopback(this.remoteIp),
      requireAuth: listener.requireAuth,
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
    const names = this.deps.clientNames;
    if (names) {
      // Never rejects, and ends within its own deadline.
      this.clientName = names.lookup(this.remoteIp).then((found) => {
        this.rdns = found.name;
        this.log.debug(Events.smtpClientName, { ip: this.remoteIp, name: found.name, status: found.status });
        return found.name;
      });
    }
    this.attach(this.socket);
    this.armIdleTimer();
    const delayMs = this.deps.config.limits.greetingDelayMs;
    if (delayMs <= 0) {
      void this.perform(this.session.greet());
      return;
    }
    // Pregreet test: anything the client sends before our greeting marks an early talker.
    this.greetTimer = setTimeout(() => {
      this.greetTimer = null;
      if (this.closed) return;
      if (this.inboxBytes > 0) {
        this.log.warn(Events.smtpViolation, { what: 'early talker', bytes: this.inboxBytes });
        this.inbox = [];
        this.inboxBytes = 0;
        this.cutOff(Replies.earlyTalker);
        return;
      }
      void this.perform(this.session.greet());
    }, delayMs);
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
    if (this.greetTimer !== null) {
      // Judged when the greeting is due; but an early talker is not buffered without bound meanwhile.
      if (this.inboxBytes > MAX_PREGREETING_BYTES) {
        clearTimeout(this.greetTimer);
        this.greetTimer = null;
        this.log.warn(Events.smtpViolation, { what: 'early talker', bytes: this.inboxBytes });
        this.inbox = [];
        this.inboxBytes = 0;
        this.cutOff(Replies.earlyTalker);
      }
      return;
    }
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

  /**
   * An absolute deadline for the next command (or data block), re-armed when one completes — not by
   * every byte, so a client trickling a line one byte at a time still meets it.
   */
  private armIdleTimer(): void {
    const limits = this.deps.config.limits;
    const ms =
      this.session.phase === 'connected'
        ? limits.greetingTimeoutMs
        : this.session.inContent
          ? limits.dataBlockTimeoutMs
          : limits.commandTimeoutMs;
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = setTimeout(this.onTimeout, ms);
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
    let closeAfterBatch = false;
    for (const effect of effects) {
      if (this.closed) return;
      switch (effect.kind) {
        case 'reply': {
          const { reply } = effect;
          out.push(formatReply(reply, true, effect.extraLines));
          this.log.debug(Events.smtpReply, { code: reply.code, enhanced: reply.enhanced, text: reply.text });
          const refused = this.refusedContent;
          this.refusedContent = null;
          if (refused !== null && reply.code >= 400) this.logRefusal(Events.smtpDataRejected, refused, reply);
          break;
        }
        case 'close':
          flush();
          this.end();
          return;
        case 'state':
          this.armIdleTimer();
          // Shutting down: close once this batch's replies (the 250 of a finished transaction) are out.
          if (effect.to === 'ready' && this.shuttingDown) closeAfterBatch = true;
          break;
        case 'command':
          this.armIdleTimer();
          this.log.debug(Events.smtpCommand, { verb: effect.verb });
          break;
        case 'violation':
          this.log.warn(Events.smtpViolation, { what: effect.what, phase: this.session.phase });
          break;
        case 'starttls':
          flush();
          await this.perform(await this.startTls());
          break;
        case 'check-mail': {
          flush();
          const reply =
            (await this.checkDiskSpace(effect.params.sizeBytes)) ?? (await this.checkSender(effect.sender));
          if (reply !== null && reply.code >= 400) {
            const tx = { sender: effect.sender, params: effect.params, recipients: [] };
            this.logRefusal(Events.smtpMailRejected, tx, reply);
          }
          await this.perform(this.session.resolve({ kind: 'mail', reply }));
          break;
        }
        case 'auth-start':
          flush();
          await this.perform(await this.authStart(effect.mechanism, effect.initialResponse));
          break;
        case 'auth-response':
          flush();
          await this.perform(await this.authStep(this.exchange?.line(effect.line) ?? null));
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
          this.armIdleTimer();
          const writer = this.writer;
          if (!writer) break;
          let chunk = effect.chunk;
          this.inbound?.push(chunk);
          if (this.capture) {
            const held = this.capture.push(chunk);
            if (held === null) break;
            chunk = this.releaseHeaders(writer.id, held.facts, held.release);
          }
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
          if (this.writer !== null) this.refusedContent = this.messageTx;
          this.abortMessage();
          break;
        case 'commit': {
          flush();
          const reply = await this.commit(effect.transaction, effect.sizeBytes, effect.longLines === true);
          if (reply.code >= 400) this.logRefusal(Events.smtpDataRejected, effect.transaction, reply);
          await this.perform(this.session.resolve({ kind: 'commit', reply }));
          break;
        }
        default:
          assertNever(effect);
      }
    }
    flush();
    if (closeAfterBatch && this.isIdle()) this.closeWith(Replies.shuttingDown);
  }

  private async checkRecipient(
    mailbox: Parameters<typeof decideRecipient>[0],
    effect: Extract<Effect, { kind: 'check-rcpt' }>,
  ): Promise<Effect[]> {
    const { rcpt } = effect;
    const reject = (reply: Reply, reason: string): Effect[] => {
      this.logRefusal(Events.smtpRcptRejected, effect.transaction, reply, {
        rcpt: formatMailbox(mailbox),
        reason,
      });
      return this.session.resolve({ kind: 'rcpt', recipient: null, reply });
    };
    const decision = decideRecipient(mailbox, {
      isLocalDomain: (d) => this.deps.directory.isLocalDomain(d),
      primaryDomain: this.deps.config.localDomains[0] ?? this.deps.config.hostname,
      mayRelay: this.session.authUser !== null || inNetworks(this.remoteIp, this.deps.trustedNetworks),
    });
    if (decision.kind === 'reject') return reject(decision.reply, decision.reason);
    const user = this.session.authUser;
    if (
      user !== null &&
      !this.withinRate(user, { messages: 1, recipients: effect.transaction.recipients.length + 1 })
    ) {
      return reject(Replies.userRateLimited, 'recipients per hour exceeded');
    }
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

  /**
   * One info line per refused MAIL, RCPT or message content. Written once the client's name is known
   * (at most the lookup's deadline after connect), so the refusal itself is never held up.
   */
  private logRefusal(
    event: string,
    tx: TransactionInfo,
    reply: Reply,
    extra: { readonly rcpt?: string; readonly reason?: string } = {},
  ): void {
    const sender = tx.sender === null ? '' : formatMailbox(tx.sender);
    const to = extra.rcpt === undefined ? tx.recipients.map((r) => r.address) : undefined;
    const helo = this.session.helo ?? '';
    void this.clientName.then((hostname) =>
      this.log.event(
        event,
        refusedFields(
          { ip: this.remoteIp, hostname, helo },
          { sender, reply, ...extra, ...(to === undefined ? {} : { to }) },
        ),
      ),
    );
  }

  private clientInfo(): ClientInfo {
    return {
      ip: this.remoteIp,
      port: this.remotePort,
      hostname: this.rdns,
      helo: this.session.helo ?? '',
      esmtp: this.session.esmtp,
      tls: this.tlsInfo,
      authUser: this.session.authUser,
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
    this.messageTx = tx;
    const client = this.clientInfo();
    const nowMs = this.deps.clock.nowMs();
    this.headerFacts = null;
    // The header block is held until complete: forged Authentication-Results: in our name are removed
    // (RFC 8601 §5), and for authenticated senders RFC 6409 §8 completes it (Date:, Message-ID:).
    this.capture = new HeaderCapture();
    // Received: needs the client's name: the write waits for the lookup (bounded), the session does not;
    // content written meanwhile queues behind it in writeChain.
    this.writeChain = this.clientName
      .then((hostname) => {
        const received = formatReceived({
          client: { ...client, hostname },
          hostname: this.deps.config.hostname,
          queueId: writer.id,
          forRecipient: tx.recipients.length === 1 ? tx.recipients[0]!.address : null,
          smtputf8: tx.params.smtputf8,
          nowMs,
        });
        return writer.write(new TextEncoder().encode(received));
      })
      .catch((err: unknown) => {
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

  private async commit(tx: TransactionInfo, sizeBytes: number, longLines = false): Promise<Reply> {
    this.clearDataDeadline();
    const writer = this.writer;
    this.writer = null;
    if (!writer) return Replies.localError;
    try {
      if (this.capture && !this.capture.done) {
        const held = this.capture.finish();
        const bytes = this.releaseHeaders(writer.id, held.facts, held.release);
        this.writeChain = this.writeChain.then(() => writer.write(bytes));
      }
      this.capture = null;
      const fromRefusal = await this.checkHeaderSenders();
      if (fromRefusal !== null) {
        await this.writeChain.catch(() => undefined);
        await writer.abort();
        return fromRefusal;
      }
      let prefix: Uint8Array | undefined;
      let folder: string | undefined;
      if (this.inbound !== null) {
        const verdict = await this.inbound.atEnd(this.headerFacts?.from ?? [], {
          smtputf8: tx.params.smtputf8,
        });
        this.inbound = null;
        this.log.event(Events.smtpAuthChecks, {
          queueId: writer.id,
          spf: verdict.spf?.result ?? null,
          dkim: verdict.dkim.map((d) => `${d.result}:${d.domain}`),
          arc: verdict.arc?.cv ?? null,
          dmarc: verdict.dmarc
            ? `${verdict.dmarc.result}:${verdict.dmarc.domain}:${verdict.dmarc.disposition}`
            : null,
          junk: verdict.junk,
          refused: verdict.reply?.enhanced ?? null,
        });
        if (verdict.reply !== null) {
          await this.writeChain.catch(() => undefined);
          await writer.abort();
          return verdict.reply;
        }
        // Text to UTF-8 octets (RFC 6532), never one octet per character.
        prefix = new TextEncoder().encode(verdict.header);
        if (verdict.junk) folder = 'Junk';
      }
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
        ...(folder === undefined ? {} : { folder }),
        ...(longLines ? { longLines } : {}),
      };
      await writer.commit(envelope, prefix === undefined ? {} : { prefix });
      if (envelope.client.authUser !== null)
        this.deps.rateLimiter.record(envelope.client.authUser, envelope.recipients.length);
      this.log.event(Events.smtpQueued, acceptedFields(writer.id, envelope, sizeBytes));
      return withText(Replies.queued, `OK: queued as ${writer.id}`);
    } catch (err) {
      this.log.error(Events.smtpCommitFailed, { queueId: writer.id, error: String(err) });
      await writer.abort().catch(() => undefined);
      return replyFor(err);
    }
  }

  // --- submission: sender ownership, rates, header completion (RFC 6409) --------------------------

  private senderCheckApplies(): boolean {
    return this.deps.config.submission.senderCheck && this.userPolicy.senderCheck;
  }

  private withinRate(user: string, add: { messages: number; recipients: number }): boolean {
    const cfg = this.deps.config.submission;
    return this.deps.rateLimiter.allows(
      user,
      {
        maxMessages: this.userPolicy.maxMessagesPerHour ?? cfg.maxMessagesPerHour,
        maxRecipients: this.userPolicy.maxRecipientsPerHour ?? cfg.maxRecipientsPerHour,
      },
      add,
    );
  }

  /** MAIL: an authenticated user may only use addresses it owns, within its hourly rate. */
  private async checkSender(sender: Parameters<typeof formatMailbox>[0] | null): Promise<Reply | null> {
    const user = this.session.authUser;
    this.inbound = null;
    if (user === null) return this.startInboundChecks(sender === null ? '' : formatMailbox(sender));
    if (!this.withinRate(user, { messages: 1, recipients: 0 })) {
      this.log.warn(Events.smtpRateLimited, { user, what: 'messages per hour' });
      return Replies.userRateLimited;
    }
    if (sender === null || !this.senderCheckApplies()) return null;
    const address = formatMailbox(sender);
    if (await this.deps.directory.ownsAddress(user, address)) return null;
    this.log.warn(Events.smtpSenderRefused, { user, sender: address, where: 'MAIL FROM' });
    return Replies.senderNotOwned;
  }

  /** 452 4.3.1 when the data directory's filesystem is below the reserve (or 1.5 × the declared SIZE). */
  private async checkDiskSpace(declaredBytes: number | null): Promise<Reply | null> {
    const free = await this.deps.diskSpace?.freeBytes(this.deps.clock.nowMs());
    if (free === undefined || free === null) return null;
    const need = this.deps.config.limits.minFreeBytes + 1.5 * (declaredBytes ?? 0);
    if (free >= need) return null;
    this.log.warn(Events.smtpDiskLow, { freeBytes: free, needBytes: need });
    return Replies.insufficientStorage;
  }

  /** Inbound checks apply on the MX listener to clients that neither authenticated nor are trusted. */
  private async startInboundChecks(mailFrom: string): Promise<Reply | null> {
    const { config, resolver } = this.deps;
    if (!config.checks.enabled || resolver === null || this.listener.service !== 'smtp') return null;
    if (
      inNetworks(this.remoteIp, this.deps.trustedNetworks) ||
      inNetworks(this.remoteIp, this.deps.skipCheckNetworks)
    ) {
      return null;
    }
    const inbound = new InboundAuth({
      resolver,
      checks: config.checks,
      hostname: config.hostname,
      clock: this.deps.clock,
    });
    this.inbound = inbound;
    const reply = await inbound.atMail({ ip: this.remoteIp, helo: this.session.helo ?? '', mailFrom });
    if (reply !== null) this.log.warn(Events.smtpAuthChecks, { stage: 'mail', reply: reply.enhanced });
    return reply;
  }

  /** From: (and Sender:) of an authenticated submission must be owned too; checked at end of data. */
  private async checkHeaderSenders(): Promise<Reply | null> {
    const user = this.session.authUser;
    const facts = this.headerFacts;
    if (user === null || facts === null || !this.senderCheckApplies()) return null;
    for (const address of [...facts.from, ...facts.sender]) {
      if (!(await this.deps.directory.ownsAddress(user, address))) {
        this.log.warn(Events.smtpSenderRefused, { user, sender: address, where: 'From:' });
        return Replies.senderNotOwned;
      }
    }
    return null;
  }

  /** The held header block, with Date:/Message-ID: added when missing, ready to write. */
  private releaseHeaders(queueId: string, facts: HeaderFacts, held: Uint8Array): Uint8Array {
    this.capture = null;
    this.headerFacts = facts;
    // RFC 8601 §5: results in our name are ours to write; whoever sent them (a logged-in user, a
    // trusted network, a client the checks skip), they are removed.
    const config = this.deps.config;
    const authservId = config.checks.authservId ?? config.hostname;
    const submission = this.session.authUser !== null;
    const bytes = dropHeaderFields(held, (raw) => {
      // A submission's Bcc: goes before queueing (so before DKIM signing), as Postfix's cleanup does.
      if (submission && isBlindCopyField(raw)) return true;
      const forged = isForgedAuthResults(raw, authservId);
      if (forged) this.log.warn(Events.smtpViolation, { what: 'forged Authentication-Results removed' });
      return forged;
    });
    if (!submission || !config.submission.addMissingHeaders || !facts.complete) return bytes;
    let added = '';
    if (!facts.hasDate) added += `Date: ${formatRfc5322Date(this.deps.clock.nowMs())}\r\n`;
    if (!facts.hasMessageId) {
      added += `Message-ID: <${queueId}.${randomBytes(6).toString('hex')}@${config.hostname}>\r\n`;
    }
    return added === '' ? bytes : Buffer.concat([Buffer.from(added), bytes]);
  }

  // --- AUTH -------------------------------------------------------------------------------------

  private async authStart(mechanism: string, initialResponse: string | null): Promise<Effect[]> {
    const lock = this.deps.authGuard.check(this.remoteIp, null);
    if (lock.locked) {
      this.log.warn(Events.smtpAuthLocked, { ip: this.remoteIp, by: lock.by });
      return this.session.resolve({
        kind: 'auth',
        outcome: { kind: 'failure', reply: Replies.authLockedOut, close: false },
      });
    }
    if (!isMechanismName(mechanism)) {
      return this.session.resolve({
        kind: 'auth',
        outcome: { kind: 'failure', reply: Replies.authUnknownMechanism, close: false },
      });
    }
    const plus = mechanism.endsWith('-PLUS');
    const channelBinding =
      plus || this.session.offeredMechanisms().some((m) => m.endsWith('-PLUS'))
        ? this.channelBinding()
        : undefined;
    const m = createMechanism(mechanism, {
      hostname: this.deps.config.hostname,
      ...(channelBinding ? { channelBinding } : {}),
      random: (n) => randomBytes(n),
      nowMs: this.deps.clock.nowMs(),
    });
    this.exchange = createAuthExchange(m);
    this.authAccount = null;
    return this.authStep(this.exchange.begin(initialResponse));
  }

  private async authStep(action: AuthAction | null): Promise<Effect[]> {
    const exchange = this.exchange;
    if (action === null || exchange === null) {
      return this.session.resolve({
        kind: 'auth',
        outcome: { kind: 'failure', reply: Replies.badSequence, close: false },
      });
    }
    switch (action.kind) {
      case 'challenge':
        return this.session.resolve({
          kind: 'auth',
          outcome: { kind: 'challenge', challenge: action.reply.text },
        });
      case 'verify': {
        const result = await this.deps.authenticator.verify(action.request, { peer: this.peerCertificate() });
        this.authAccount = result.account;
        let answer = result.answer;
        if (result.account !== null && this.deps.authGuard.check(this.remoteIp, result.account).locked) {
          // A locked account fails whatever the credentials, so guessing cannot continue.
          this.log.warn(Events.smtpAuthLocked, { ip: this.remoteIp, account: result.account, by: 'account' });
          answer = { kind: 'temporary' };
        }
        this.log.event(Events.smtpAuthVerify, {
          kind: action.request.kind,
          account: result.account,
          detail: result.detail,
        });
        return this.authStep(exchange.answer(answer));
      }
      case 'done': {
        this.exchange = null;
        const { outcome } = action;
        if (outcome.ok) {
          this.deps.authGuard.recordSuccess(this.remoteIp);
          this.userPolicy = await this.deps.directory
            .getUserPolicy(outcome.identity)
            .catch(() => DEFAULT_USER_POLICY);
          this.log.event(Events.smtpAuthSucceeded, { user: outcome.identity, mechanism: outcome.mechanism });
          return this.session.resolve({
            kind: 'auth',
            outcome: { kind: 'success', user: outcome.identity, reply: outcome.reply },
          });
        }
        return this.authFailed(outcome.mechanism, outcome.reason, outcome.detail, outcome.reply);
      }
      default:
        return action satisfies never;
    }
  }

  private async authFailed(
    mechanism: string,
    reason: string,
    detail: string,
    reply: Reply,
  ): Promise<Effect[]> {
    this.authFailures++;
    const lock = this.deps.authGuard.recordFailure(this.remoteIp, this.authAccount);
    this.log.warn(Events.smtpAuthFailed, {
      ip: this.remoteIp,
      account: this.authAccount,
      mechanism,
      reason,
      detail,
      failures: this.authFailures,
    });
    if (lock.locked)
      this.log.warn(Events.smtpAuthLocked, { ip: this.remoteIp, account: this.authAccount, by: lock.by });
    // A growing delay makes guessing slow; the same for every failure reason, so timing tells nothing.
    const delay = Math.min(
      this.deps.config.auth.failureDelayMs * 2 ** (this.authFailures - 1),
      MAX_AUTH_DELAY_MS,
    );
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (this.closed) return [];
    const close = this.authFailures >= this.deps.config.auth.maxFailuresPerConnection;
    return this.session.resolve({
      kind: 'auth',
      outcome: { kind: 'failure', reply, close },
    });
  }

  /** RFC 9266 tls-exporter (and RFC 5929 tls-unique for TLS 1.2) of this connection, if encrypted. */
  private channelBinding(): ChannelBinding | undefined {
    const socket = this.socket;
    if (!(socket instanceof TLSSocket) || !socket.encrypted) return undefined;
    const binding: { 'tls-exporter'?: Uint8Array; 'tls-unique'?: Uint8Array } = {};
    try {
      // RFC 9266: no context value. Node accepts the context as optional; its types say otherwise.
      const exporter = socket as unknown as { exportKeyingMaterial(length: number, label: string): Buffer };
      binding['tls-exporter'] = exporter.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding');
    } catch {
      // not available on this connection
    }
    if (socket.getProtocol() !== 'TLSv1.3') {
      // tls-unique: the first Finished message of the handshake, the client's on a full handshake.
      const finished = socket.isSessionReused() ? socket.getFinished() : socket.getPeerFinished();
      if (finished) binding['tls-unique'] = finished;
    }
    return binding;
  }

  private peerCertificate(): PeerCertificate | null {
    const socket = this.socket;
    if (!(socket instanceof TLSSocket)) return null;
    const x509 = socket.getPeerX509Certificate();
    if (!x509) return null;
    // A TLSSocket made on an accepted socket (STARTTLS, implicit TLS) does not verify the peer itself.
    return {
      x509,
      authorized: socket.authorized || issuedByClientCa(x509, this.deps.clientCas, this.deps.clock.nowMs()),
    };
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
    const clientCerts = this.listener.clientCertificates;
    // Client certificates are checked by the authenticator (CA or fingerprint), so the handshake
    // does not reject unverified ones.
    const tlsSocket = new TLSSocket(raw, {
      isServer: true,
      secureContext,
      requestCert: clientCerts !== 'none',
      rejectUnauthorized: false,
    });
    this.socket = tlsSocket;
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        cleanup();
        resolve(false);
      }, this.deps.config.limits.tlsHandshakeTimeoutMs);
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
    if (clientCerts === 'require' && !tlsSocket.getPeerX509Certificate()) {
      this.log.warn(Events.tlsFailed, { error: 'client certificate required' });
      tlsSocket.on('error', () => undefined);
      tlsSocket.destroy();
      this.finish('no client certificate');
      return [];
    }
    this.attach(tlsSocket);
    const effects = this.session.resolve({ kind: 'tls', ok: true });
    this.armIdleTimer();
    return effects;
  }

  private clearDataDeadline(): void {
    if (this.dataDeadline) clearTimeout(this.dataDeadline);
    this.dataDeadline = null;
  }

  /** For abusive clients: stop reading at once, send the reply, and drop the connection once it is out. */
  private cutOff(reply: Reply): void {
    if (this.closed) return;
    const socket = this.socket;
    socket.pause();
    socket.write(formatReply(reply, true), () => socket.destroy());
    setTimeout(() => socket.destroy(), 2000).unref();
    this.finish('cut off');
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
    if (this.greetTimer !== null) clearTimeout(this.greetTimer);
    if (this.deadline !== null) clearTimeout(this.deadline);
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

/** Issued (and signed) by one of the CAs, and valid now. One level: client CAs issue directly. */
function issuedByClientCa(cert: X509Certificate, cas: readonly X509Certificate[], nowMs: number): boolean {
  if (nowMs < Date.parse(cert.validFrom) || nowMs > Date.parse(cert.validTo)) return false;
  return cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
}

/** "::ffff:127.0.0.1" → "127.0.0.1" so logs, limits and Received: show the address people expect. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
