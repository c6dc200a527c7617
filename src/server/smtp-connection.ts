// The SMTP driver: glues one pure SmtpSession (src/protocol/smtp/session.ts) to one connection shell
// (net/connection.ts) and to the services. It turns the session's effects into replies, log lines and
// decisions: MAIL (disk space, submission rules, inbound checks), RCPT (relay, rates, the directory),
// AUTH (the SASL drive with SMTP's framing), STARTTLS (the shell's upgrade), content and commit (the
// message intake); it runs SMTP's timers (greeting, command, data block, whole DATA) and its early-talker
// test. It is the only writer of SMTP replies.
// Deliberately NOT here: socket handling and TLS (the shell), the SASL exchange, delays and lockouts
// (sasl-drive.ts), the queue writer and header work (message-intake.ts), submission rules
// (submission-policy.ts), connection limits (listeners.ts).
//
// SECURITY: input is fed to the session in arrival order; while the session waits for a decision the
// shell holds further input, and pauses the socket once a bounded amount is buffered. At STARTTLS the
// shell drops every byte not yet fed and the session its own buffer (CVE-2011-0411 class). A 250 after
// DATA is sent only after queue commit, which resolves once the message is fsynced.

import { formatMailbox, type Mailbox } from '../core/address.ts';
import { assertNever } from '../core/assert-never.ts';
import type { ClientInfo, EnvelopeRecipient } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import { choosePipeline } from '../policy/filters/build.ts';
import type { FilterClient, FilterOutcome } from '../policy/filters/filter.ts';
import { FilterRun, type StageInput } from '../policy/filters/pipeline.ts';
import type { Logger } from '../core/ports.ts';
import { formatReply, Replies, replyFor, withText, type Reply } from '../core/reply.ts';
import { parseXclientAddress, type XclientAttributes } from '../protocol/smtp/xclient.ts';
import type { ListenerConfig } from '../config/config.ts';
import type { Connection } from '../net/connection.ts';
import { inNetworks } from '../policy/networks.ts';
import { decideRecipient } from '../policy/relay.ts';
import { smtpAuthFraming } from '../protocol/smtp/auth-replies.ts';
import type { MailParams } from '../protocol/smtp/command.ts';
import { SmtpSession, type Effect, type TransactionInfo } from '../protocol/smtp/session.ts';
import type { ConnectionDeps } from './connection-deps.ts';
import { isOverQuota, type LocalUsers, type QuotaLimitsMemo } from './local-accept.ts';
import { MessageIntake, type CommitResult } from './message-intake.ts';
import { lmtpTransportOf } from '../config/transports.ts';
import {
  listenerMechanisms,
  plaintextAuthAllowed,
  SaslDrive,
  SMTP_SASL_EVENTS,
  type SaslStep,
} from './sasl-drive.ts';
import { refusedFields, replyText } from './smtp-log.ts';
import { SubmissionPolicy } from './submission-policy.ts';
import { burlContent } from './imap/urlauth.ts';
import type { ImapMailboxStore } from '../store/mailbox-store.ts';
import type { Driver, DriverFactory } from './driver.ts';

export type { ConnectionDeps } from './connection-deps.ts';

/** Bytes an early talker may send before the greeting is due before it is cut at once. */
const MAX_PREGREETING_BYTES = 4096;

/** Above this many unfed bytes the socket is paused until the session catches up. */
export const SMTP_MAX_BUFFERED_BYTES = 256 * 1024;

/** SMTP, submission and submissions (RFC 5321, RFC 6409, RFC 8314), and LMTP (RFC 2033), on the listeners. */
export const smtpDriver: DriverFactory = {
  create: (shell, { id, listener, deps }) => new SmtpConnection(shell, id, listener, deps),
  refusal: (reason) =>
    formatReply(
      reason === 'max-connections-per-ip' ? Replies.tooManyConnectionsFromIp : Replies.tooManyConnections,
      true,
    ),
  maxBufferedBytes: SMTP_MAX_BUFFERED_BYTES,
  events: { refused: Events.smtpRefused, tlsFailed: Events.tlsFailed },
};

export class SmtpConnection implements Driver {
  readonly id: string;
  private readonly shell: Connection;
  private readonly deps: ConnectionDeps;
  private readonly listener: ListenerConfig;
  private readonly session: SmtpSession;
  private readonly log: Logger;
  private readonly sasl: SaslDrive<Reply>;
  private readonly submission: SubmissionPolicy;
  private readonly intake: MessageIntake;
  private shuttingDown = false;
  /** Started at connect, awaited only where the name is written (Received:), so it never delays a reply. */
  private clientName: Promise<string | null> = Promise.resolve(null);
  private rdns: string | null = null;
  /** The transaction whose content is being received, for the log line if it is refused. */
  private messageTx: TransactionInfo | null = null;
  /**
   * The local users each accepted recipient of this transaction reaches, as RCPT resolved them (null:
   * an alias with forwards); the message intake stores those itself (local-accept.ts). By address,
   * cleared at each MAIL.
   */
  private readonly localUsers = new Map<string, LocalUsers>();
  /** Quota limits read at RCPT, kept for the end of data; cleared at each MAIL (a new transaction). */
  private readonly quotaLimits: QuotaLimitsMemo = new Map();
  /** Content the session refused (too big, bare LF...): its refusal reply comes next and is logged. */
  private refusedContent: TransactionInfo | null = null;
  /** The filter pipeline of this connection (chosen again at each MAIL: AUTH may have changed it). */
  private filterRun: FilterRun | null = null;
  private filterChoice = '';
  /** The mechanism of the last AUTH started (the one that succeeded, once authUser is set). */
  private authMechanism: string | null = null;
  /** The current transaction's MAIL parameters, as filters see them. */
  private mailParams: ReadonlyMap<string, string> = new Map();
  /** The client as the policy sees it: the socket's, or whom an authorized XCLIENT named. */
  private peer: { ip: string; port: number; localIp: string; localPort: number };
  /** XCLIENT HELO and PROTO: what the named client said, until it says EHLO/HELO itself. */
  private xclientHelo: string | null = null;
  private xclientProto: boolean | null = null;

  constructor(shell: Connection, id: string, listener: ListenerConfig, deps: ConnectionDeps) {
    this.shell = shell;
    this.id = id;
    this.listener = listener;
    this.deps = deps;
    this.log = deps.logger.child({ session: id });
    this.peer = {
      ip: shell.remoteIp,
      port: shell.remotePort,
      localIp: shell.localIp,
      localPort: shell.localPort,
    };
    const limits = deps.config.limits;
    const mechanisms = listenerMechanisms(listener, deps.config);
    const plaintextAllowed = plaintextAuthAllowed(listener, shell.remoteIp);
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
      tlsActive: shell.tls !== null,
      authMechanisms: mechanisms,
      plaintextAuth: plaintextAllowed,
      // Catcher mode takes mail from anyone (docs/catch.md).
      requireAuth: listener.requireAuth && !deps.config.catch,
      // BURL (RFC 4468) belongs to message submission (RFC 6409), never to the MX listener.
      burl: listener.service !== 'smtp' && listener.service !== 'lmtp',
      lmtp: listener.service === 'lmtp',
      // RFC 4865 §4: holding mail is a submission service; the MX listener does not offer it.
      ...(listener.service === 'smtp' || listener.service === 'lmtp'
        ? {}
        : {
            futureRelease: {
              maxSeconds: deps.config.submission.maxHoldSeconds,
              nowMs: () => deps.clock.nowMs(),
            },
          }),
      xclient:
        deps.xclientNetworks !== undefined &&
        deps.xclientNetworks.length > 0 &&
        inNetworks(shell.remoteIp, deps.xclientNetworks),
    });
    this.sasl = new SaslDrive({
      deps,
      shell,
      log: this.log,
      framing: smtpAuthFraming,
      mechanisms,
      plaintextAllowed,
      events: SMTP_SASL_EVENTS,
    });
    this.submission = new SubmissionPolicy(deps, this.log);
    this.intake = new MessageIntake(deps, this.log);
  }

  get done(): Promise<void> {
    return this.shell.done.then(() => undefined);
  }

  start(): void {
    const ip = this.shell.remoteIp;
    this.log.event(Events.smtpConnect, {
      ip,
      port: this.shell.remotePort,
      service: this.listener.service,
      tls: this.shell.tls,
    });
    const names = this.deps.clientNames;
    if (names) {
      // Never rejects, and ends within its own deadline.
      this.clientName = names.lookup(ip).then((found) => {
        this.rdns = found.name;
        this.log.debug(Events.smtpClientName, { ip, name: found.name, status: found.status });
        return found.name;
      });
    }
    this.shell.start({
      data: this.onData,
      error: (err) => this.log.event(Events.smtpClose, { reason: 'socket error', error: err.message }),
      tlsFailed: (error) => this.log.warn(Events.tlsFailed, { error }),
      closed: (reason) => this.finish(reason),
    });
    this.armIdleTimer();
    const delayMs = this.deps.config.limits.greetingDelayMs;
    if (delayMs <= 0) {
      void this.perform(this.session.greet());
      return;
    }
    // Pregreet test: anything the client sends before our greeting marks an early talker; judged when
    // the greeting is due, but an early talker is not buffered without bound meanwhile.
    this.shell.hold({ maxBytes: MAX_PREGREETING_BYTES, onOverflow: () => this.earlyTalker() });
    this.shell.setTimer('greeting', delayMs, () => {
      if (this.shell.bufferedBytes > 0) return this.earlyTalker();
      void this.perform(this.session.greet());
      this.shell.release();
    });
  }

  /** Graceful shutdown: idle sessions get 421 now; busy ones after their transaction. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.isIdle()) this.closeWith(Replies.shuttingDown);
  }

  /** Hard stop after the grace period. */
  destroy(): void {
    this.shell.destroy();
  }

  private isIdle(): boolean {
    const phase = this.session.phase;
    return this.session.pending === null && (phase === 'connected' || phase === 'ready');
  }

  private earlyTalker(): void {
    this.shell.clearTimer('greeting');
    this.log.warn(Events.smtpViolation, { what: 'early talker', bytes: this.shell.bufferedBytes });
    this.shell.cutOff(formatReply(Replies.earlyTalker, true));
  }

  private readonly onData = async (chunk: Uint8Array): Promise<void> => {
    try {
      await this.perform(this.session.feed(chunk));
    } catch (err) {
      this.log.error(Events.smtpInternalError, { error: String(err), stack: (err as Error).stack });
      this.closeWith(Replies.localError);
    }
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
    this.shell.setTimer('idle', ms, this.onTimeout);
  }

  private async perform(effects: Effect[]): Promise<void> {
    const out: string[] = [];
    const flush = (): void => {
      if (out.length > 0) this.shell.write(out.join(''));
      out.length = 0;
    };
    let closeAfterBatch = false;
    for (const effect of effects) {
      if (this.shell.closed) return;
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
          this.shell.end();
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
          const reply = await this.checkMail(effect.sender, effect.params);
          if (reply !== null && reply.code >= 400) {
            const tx = { sender: effect.sender, params: effect.params, recipients: [] };
            this.logRefusal(Events.smtpMailRejected, tx, reply);
          }
          await this.perform(this.session.resolve({ kind: 'mail', reply }));
          break;
        }
        case 'auth-start':
          flush();
          this.authMechanism = effect.mechanism;
          await this.perform(
            await this.authStep(await this.sasl.start(effect.mechanism, effect.initialResponse)),
          );
          break;
        case 'auth-response':
          flush();
          await this.perform(await this.authStep(await this.sasl.line(effect.line)));
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
        case 'data':
          this.armIdleTimer();
          await this.intake.push(effect.chunk);
          break;
        case 'abort-message':
          if (this.intake.open) this.refusedContent = this.messageTx;
          this.abortMessage();
          break;
        case 'burl': {
          flush();
          const content = await burlContent(
            {
              store: this.deps.store as ImapMailboxStore,
              user: effect.user,
              nowMs: () => this.deps.clock.nowMs(),
            },
            effect.url,
            this.deps.config.limits.maxMessageBytes,
          );
          if (content === null) this.log.warn(Events.smtpViolation, { what: 'BURL URL did not resolve' });
          await this.perform(this.session.resolve({ kind: 'burl', content, reply: null }));
          break;
        }
        case 'xclient':
          flush();
          await this.perform(await this.xclient(effect.attributes));
          break;
        case 'commit': {
          flush();
          const result = await this.commit(effect.transaction, effect.sizeBytes, effect.longLines === true);
          const { reply } = result;
          if (reply.code >= 400) this.logRefusal(Events.smtpDataRejected, effect.transaction, reply);
          await this.perform(this.session.resolve({ kind: 'commit', ...result }));
          break;
        }
        default:
          assertNever(effect);
      }
    }
    flush();
    if (closeAfterBatch && this.isIdle()) this.closeWith(Replies.shuttingDown);
  }

  // --- MAIL and RCPT ------------------------------------------------------------------------------

  private async checkMail(sender: Mailbox | null, params: MailParams): Promise<Reply | null> {
    // A new transaction: what RCPT learns is for it alone.
    this.quotaLimits.clear();
    this.localUsers.clear();
    const disk = await this.checkDiskSpace(params.sizeBytes);
    if (disk !== null) return disk;
    // Catcher mode: no sender rules, rates or filters; every message is kept for its recipients.
    if (this.deps.config.catch) return null;
    const user = this.session.authUser;
    if (user !== null) {
      const refused = await this.submission.checkSender(user, sender);
      if (refused !== null) return refused;
    }
    const hold = this.checkHold(params);
    if (hold !== null) return hold;
    return this.startFilters(sender === null ? '' : formatMailbox(sender), params);
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
    if (this.deps.config.catch) {
      const address =
        mailbox.domain === ''
          ? `postmaster@${this.deps.config.localDomains[0] ?? this.deps.config.hostname}`
          : formatMailbox(mailbox);
      this.localUsers.set(address, null);
      return this.session.resolve({
        kind: 'rcpt',
        recipient: { address, notify: rcpt.notify, orcpt: rcpt.orcpt },
        reply: Replies.recipientOk,
      });
    }
    const decision = decideRecipient(mailbox, {
      isLocalDomain: (d) => this.deps.directory.isLocalDomain(d),
      primaryDomain: this.deps.config.localDomains[0] ?? this.deps.config.hostname,
      // LMTP is final delivery (RFC 2033 §1): its recipients are ours or refused, whoever the client is.
      mayRelay:
        this.listener.service !== 'lmtp' &&
        (this.session.authUser !== null || inNetworks(this.peer.ip, this.deps.trustedNetworks)),
    });
    if (decision.kind === 'reject') return reject(decision.reply, decision.reason);
    const user = this.session.authUser;
    if (
      user !== null &&
      !(await this.submission.allowsRecipient(user, effect.transaction.recipients.length))
    ) {
      return reject(Replies.userRateLimited, 'recipients per hour exceeded');
    }
    const recipient: EnvelopeRecipient = {
      address: decision.kind === 'local' && mailbox.domain === '' ? decision.address : formatMailbox(mailbox),
      notify: rcpt.notify,
      orcpt: rcpt.orcpt,
    };
    this.localUsers.set(recipient.address, null);
    if (decision.kind === 'local') {
      try {
        const resolution = await this.deps.directory.resolve(decision.address);
        if (resolution.kind !== 'local') return reject(Replies.noSuchUser, 'unknown local user');
        // Users whose domain an LMTP transport serves are the worker's to hand over, never stored here.
        const outbound = this.deps.config.outbound;
        // A user with an active Sieve script too: the worker runs it (delivery/sieve-delivery.ts).
        if (
          resolution.forward.length === 0 &&
          !resolution.users.some((u) => lmtpTransportOf(u, outbound) !== null) &&
          !(await this.anySieve(resolution.users))
        )
          this.localUsers.set(recipient.address, resolution.users);
        // A mailbox already full is refused here, as Dovecot's LMTP does: the client learns it for
        // this recipient alone, and the message still goes to the others.
        const [only] = resolution.users;
        if (
          this.deps.config.queue.localDelivery === 'accept' &&
          resolution.forward.length === 0 &&
          resolution.users.length === 1 &&
          only !== undefined &&
          (await isOverQuota(
            {
              directory: this.deps.directory,
              store: this.deps.store,
              log: this.log,
              limits: this.quotaLimits,
            },
            only,
            // At least one octet: a mailbox already at its storage limit has no room for any message.
            Math.max(1, effect.transaction.params.sizeBytes ?? 0),
            recipient.address,
            'rcpt',
          ))
        ) {
          return reject(Replies.mailboxFull, 'mailbox full');
        }
      } catch (err) {
        this.log.error(Events.smtpInternalError, { error: String(err) });
        return reject(replyFor(err), 'directory error');
      }
    }
    const run = this.filterRun;
    if (run !== null && run.has('rcpt')) {
      const r = await run.run('rcpt', { ...this.stageInput(effect.transaction), rcpt: recipient.address });
      if (r.kind === 'refuse') return reject(r.reply, 'filter');
    }
    return this.session.resolve({ kind: 'rcpt', recipient, reply: Replies.recipientOk });
  }

  /** Whether any of these users has an active Sieve script (their mail then goes through the queue). */
  private async anySieve(users: readonly string[]): Promise<boolean> {
    const open = this.deps.sieveScripts;
    if (open === undefined) return false;
    const scripts = await open();
    for (const u of users) if ((await scripts.getActive(u)) !== null) return true;
    return false;
  }

  /** An authenticated user, or a client of trusted_networks: whose MT-PRIORITY and FUTURERELEASE count. */
  private trusted(): boolean {
    return this.session.authUser !== null || inNetworks(this.peer.ip, this.deps.trustedNetworks);
  }

  /** FUTURERELEASE (RFC 4865 §4): only for trusted submitters, and no longer than max_hold_seconds. */
  private checkHold(params: MailParams): Reply | null {
    const hold = params.hold;
    if (hold === undefined) return null;
    const max = this.deps.config.submission.maxHoldSeconds;
    if (max === 0 || this.listener.service === 'smtp' || this.listener.service === 'lmtp')
      return withText(Replies.badParameter, 'FUTURERELEASE is not offered here');
    if (!this.trusted()) return withText(Replies.authRequired, 'FUTURERELEASE needs an authenticated client');
    const seconds = hold.kind === 'for' ? hold.seconds : (hold.atMs - this.deps.clock.nowMs()) / 1000;
    if (seconds > max)
      return withText(Replies.syntaxError, `Hold time is longer than ${max} seconds (RFC 4865)`);
    return null;
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

  /**
   * The transaction's filter pipeline (policy/filters): chosen for this client (its network, its
   * listener, or [filters] order for unauthenticated clients of an smtp listener), reset, then the
   * connect, HELO and MAIL checks. A refusal's reply, or null to go on.
   */
  private async startFilters(mailFrom: string, params: MailParams): Promise<Reply | null> {
    this.intake.filters = null;
    this.mailParams = mailParamMap(params);
    const catalogue = this.deps.filters;
    if (catalogue === undefined) return null;
    const ip = this.peer.ip;
    const choice = choosePipeline(catalogue, {
      ip,
      listener: this.listener,
      authenticated: this.session.authUser !== null,
      skipped: inNetworks(ip, this.deps.trustedNetworks) || inNetworks(ip, this.deps.skipCheckNetworks),
    });
    const key = `${choice.by}:${choice.filters.map((f) => f.name).join(',')}`;
    if (this.filterRun === null || key !== this.filterChoice) {
      this.filterRun?.close();
      this.filterRun =
        choice.filters.length === 0
          ? null
          : new FilterRun(
              choice.filters,
              () => this.filterClient(),
              this.log,
              (o) => this.logFilter(o),
            );
      this.filterChoice = key;
      if (this.filterRun !== null)
        this.log.debug(Events.smtpFilter, { pipeline: choice.filters.map((f) => f.name), by: choice.by });
    }
    const run = this.filterRun;
    if (run === null) return null;
    run.reset();
    this.intake.filters = run;
    const r = await run.mail({ queueId: null, mailFrom, mailParams: this.mailParams, recipients: [] });
    return r.kind === 'refuse' ? r.reply : null;
  }

  private stageInput(tx: TransactionInfo): StageInput {
    return {
      queueId: this.intake.queueId,
      mailFrom: tx.sender === null ? '' : formatMailbox(tx.sender),
      mailParams: this.mailParams,
      recipients: tx.recipients.map((r) => r.address),
    };
  }

  private filterClient(): FilterClient {
    return {
      ip: this.peer.ip,
      port: this.peer.port,
      hostname: this.rdns,
      helo: this.heloName(),
      tls: this.shell.tls !== null,
      tlsVersion: this.shell.tls?.version ?? null,
      tlsCipher: this.shell.tls?.cipher ?? null,
      authUser: this.session.authUser,
      authMechanism: this.session.authUser === null ? null : this.authMechanism,
      service: this.listener.service,
      localAddress: this.peer.localIp,
      localPort: this.peer.localPort,
    };
  }

  /** Every check's verdict: the log (and through it the trace and the metrics). */
  private logFilter(o: FilterOutcome): void {
    const v = o.verdict;
    this.log.event(Events.smtpFilter, {
      filter: o.filter,
      stage: o.stage,
      verdict: v.kind,
      ...(o.queueId === null ? {} : { queueId: o.queueId }),
      ...(v.reason === undefined ? {} : { reason: v.reason }),
      ...(v.kind === 'score' ? { score: v.score } : {}),
      ...(v.kind === 'reject' || v.kind === 'defer' ? { reply: replyText(v.reply) } : {}),
      ...(o.failed === undefined ? {} : { failed: o.failed }),
      ms: Math.round(o.ms),
    });
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
    const helo = this.heloName();
    void this.clientName.then((hostname) =>
      this.log.event(
        event,
        refusedFields(
          { ip: this.peer.ip, hostname, helo },
          { sender, reply, ...extra, ...(to === undefined ? {} : { to }) },
        ),
      ),
    );
  }

  // --- content ------------------------------------------------------------------------------------

  private clientInfo(): ClientInfo {
    return {
      ip: this.peer.ip,
      port: this.peer.port,
      hostname: this.rdns,
      helo: this.heloName(),
      esmtp: this.xclientProto ?? this.session.esmtp,
      tls: this.shell.tls,
      authUser: this.session.authUser,
      service: this.listener.service,
    };
  }

  private beginMessage(tx: TransactionInfo): void {
    const local = tx.recipients.some((r) => (this.localUsers.get(r.address) ?? null) !== null);
    this.intake.begin(tx, this.clientInfo(), this.clientName, local);
    const queueId = this.intake.queueId;
    this.shell.setTimer('data', this.deps.config.limits.dataTotalTimeoutMs, () => {
      this.log.warn(Events.smtpTimeout, { phase: 'data total', queueId });
      this.closeWith(Replies.commandTimeout);
    });
    this.messageTx = tx;
  }

  private abortMessage(): void {
    this.shell.clearTimer('data');
    this.intake.abort();
  }

  private async commit(tx: TransactionInfo, sizeBytes: number, longLines: boolean): Promise<CommitResult> {
    this.shell.clearTimer('data');
    const user = this.session.authUser;
    const result = await this.intake.commit({
      tx,
      sizeBytes,
      longLines,
      client: this.clientInfo(),
      checkHeaders: (facts) =>
        this.deps.config.catch ? Promise.resolve(null) : this.submission.checkHeaderSenders(user, facts),
      usersOf: (r) => this.localUsers.get(r.address) ?? null,
      quotaLimits: this.quotaLimits,
      mailParams: this.mailParams,
      perRecipient: this.listener.service === 'lmtp',
      trusted: this.trusted(),
    });
    const { reply } = result;
    if (reply.code < 400 && user !== null) await this.submission.recordSent(user, tx.recipients.length);
    // Twice the size: the queue's copy now, the mailbox's (or a relay's spool) at delivery, with WAL frames.
    if (reply.code < 400) this.deps.diskSpace?.charge(2 * sizeBytes);
    return result;
  }

  // --- XCLIENT -----------------------------------------------------------------------------------

  /**
   * Take the client an authorized XCLIENT names: its address (limits, trusted networks, SPF, Received:),
   * name, HELO, protocol, login, and the address it connected to. Unknown values ("[UNAVAILABLE]") are
   * unknown, never the proxy's own: a proxy in trusted_networks must not lend its trust.
   */
  private async xclient(attributes: XclientAttributes): Promise<Effect[]> {
    const addr = attributes.get('ADDR');
    let ip = this.peer.ip;
    if (addr !== undefined) {
      const given = addr === null ? null : parseXclientAddress(addr);
      if (addr !== null && given === null) {
        return this.session.resolve({
          kind: 'xclient',
          reply: withText(Replies.syntaxError, 'Bad XCLIENT ADDR'),
        });
      }
      ip = given ?? '0.0.0.0';
    }
    const destAddr = attributes.get('DESTADDR');
    const destIp = destAddr === undefined || destAddr === null ? null : parseXclientAddress(destAddr);
    if (destAddr !== undefined && destAddr !== null && destIp === null) {
      return this.session.resolve({
        kind: 'xclient',
        reply: withText(Replies.syntaxError, 'Bad XCLIENT DESTADDR'),
      });
    }
    const login = attributes.get('LOGIN');
    if (login !== undefined && login !== null) {
      try {
        await this.submission.load(login);
      } catch (err) {
        this.log.error(Events.smtpInternalError, { error: String(err) });
        return this.session.resolve({ kind: 'xclient', reply: replyFor(err) });
      }
    }
    const port = attributes.get('PORT');
    const destPort = attributes.get('DESTPORT');
    this.peer = {
      ip,
      port: port === undefined ? this.peer.port : Number(port ?? 0),
      localIp: destAddr === undefined ? this.peer.localIp : (destIp ?? '0.0.0.0'),
      localPort: destPort === undefined ? this.peer.localPort : Number(destPort ?? 0),
    };
    const name = attributes.get('NAME');
    if (name !== undefined) {
      this.rdns = name;
      this.clientName = Promise.resolve(name);
    } else if (addr !== undefined) {
      this.rdns = null;
      this.clientName = Promise.resolve(null);
    }
    const helo = attributes.get('HELO');
    if (helo !== undefined) this.xclientHelo = helo;
    const proto = attributes.get('PROTO');
    if (proto !== undefined) this.xclientProto = proto === null ? null : proto.toUpperCase() === 'ESMTP';
    this.filterRun?.close();
    this.filterRun = null;
    this.log.event(Events.smtpXclient, {
      realIp: this.shell.remoteIp,
      ip: this.peer.ip,
      port: this.peer.port,
      ...(name === undefined ? {} : { name }),
      ...(helo === undefined ? {} : { helo }),
      ...(login === undefined ? {} : { login }),
    });
    return this.session.resolve({ kind: 'xclient', reply: null, login: login ?? null });
  }

  /** The client's HELO: its own EHLO/HELO, else what XCLIENT said. */
  private heloName(): string {
    return this.session.helo ?? this.xclientHelo ?? '';
  }

  // --- STARTTLS and AUTH --------------------------------------------------------------------------

  private async startTls(): Promise<Effect[]> {
    const result = await this.shell.startTls();
    // SECURITY: the shell dropped everything received but not yet fed; the session dropped its own buffer.
    if (result.discardedBytes > 0)
      this.log.warn(Events.smtpViolation, {
        what: 'bytes after STARTTLS discarded',
        bytes: result.discardedBytes,
      });
    if (!result.ok) return [];
    this.log.event(Events.tlsHandshake, { ...result.tls });
    const effects = this.session.resolve({ kind: 'tls', ok: true });
    this.armIdleTimer();
    return effects;
  }

  private async authStep(step: SaslStep<Reply> | null): Promise<Effect[]> {
    if (step === null) return [];
    switch (step.kind) {
      case 'challenge':
        return this.session.resolve({
          kind: 'auth',
          outcome: { kind: 'challenge', challenge: step.out.text },
        });
      case 'success':
        await this.submission.load(step.identity);
        return this.session.resolve({
          kind: 'auth',
          outcome: { kind: 'success', user: step.identity, reply: step.out },
        });
      case 'failure':
        return this.session.resolve({
          kind: 'auth',
          outcome: { kind: 'failure', reply: step.out, close: step.close },
        });
      default:
        return assertNever(step);
    }
  }

  // --- closing ------------------------------------------------------------------------------------

  private closeWith(reply: Reply): void {
    this.shell.end(formatReply(reply, true));
  }

  private finish(reason: string): void {
    this.abortMessage();
    this.filterRun?.close();
    this.filterRun = null;
    this.session.close();
    this.log.event(Events.smtpClose, { reason });
  }
}

/** MAIL's parameters by their keywords, as the client could have written them (for the filters). */
function mailParamMap(p: MailParams): ReadonlyMap<string, string> {
  const m = new Map<string, string>();
  if (p.sizeBytes !== null) m.set('SIZE', String(p.sizeBytes));
  m.set('BODY', p.body);
  if (p.smtputf8) m.set('SMTPUTF8', '');
  if (p.ret !== null) m.set('RET', p.ret);
  if (p.envid !== null) m.set('ENVID', p.envid);
  if (p.requireTls === true) m.set('REQUIRETLS', '');
  return m;
}
