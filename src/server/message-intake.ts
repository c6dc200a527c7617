// One message on its way into the queue, for the SMTP driver: the queue writer opened at the first
// content byte, the Received: line (written once the client's name is known, without holding up a
// reply), the header block held until complete (forged Authentication-Results: in our name removed,
// RFC 8601 §5; a submission's Bcc: removed and a missing Date:/Message-ID: added, RFC 6409 §8), the
// inbound checks (SPF/DKIM/ARC/DMARC) fed as content streams, and the commit that resolves only after
// the queue fsynced (the 250 waits for it).
// Deliberately NOT here: whether content may come at all (the session), MAIL/RCPT decisions and sender
// ownership (the driver and submission-policy.ts), timers (the driver's data deadline).

import { randomBytes } from 'node:crypto';
import { formatMailbox } from '../core/address.ts';
import { formatRfc5322Date } from '../core/date.ts';
import type { ClientInfo, Envelope, EnvelopeRecipient } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { DmarcObservation } from '../reports/dmarc-report.ts';
import type { Logger } from '../core/ports.ts';
import { Replies, replyFor, withText, type Reply } from '../core/reply.ts';
import { isForgedAuthResults, type InboundAuth } from '../policy/inbound-auth.ts';
import { headerSummary, type HeaderSummary } from '../protocol/headers.ts';
import { MimeScanner, type MessageStructure } from '../protocol/mime/structure.ts';
import {
  dropHeaderFields,
  HeaderCapture,
  isBlindCopyField,
  isReturnPathField,
  type HeaderFacts,
} from '../protocol/smtp/header-capture.ts';
import { formatReceived } from '../protocol/smtp/received.ts';
import type { TransactionInfo } from '../protocol/smtp/session.ts';
import type { MessageWriter } from '../queue/queue.ts';
import type { ConnectionDeps } from './connection-deps.ts';
import { planLocal, storeLocal, type LocalUsers, type QuotaLimitsMemo } from './local-accept.ts';
import { acceptedFields } from './smtp-log.ts';

/** Above this many bytes handed to the writer and not yet written, content waits (slow disks). */
const MAX_UNWRITTEN_BYTES = 256 * 1024;

export interface CommitRequest {
  readonly tx: TransactionInfo;
  readonly sizeBytes: number;
  readonly longLines: boolean;
  readonly client: ClientInfo;
  /** A submission's From:/Sender: ownership, judged once the header block is known. */
  readonly checkHeaders: (facts: HeaderFacts | null) => Promise<Reply | null>;
  /** The local users a recipient reaches, as RCPT resolved it (local-accept.ts); null for the queue. */
  readonly usersOf: (recipient: EnvelopeRecipient) => LocalUsers;
  /** Quota limits RCPT already read, by user (the usage is read again: it may have grown since). */
  readonly quotaLimits: QuotaLimitsMemo;
}

type IntakeDeps = Pick<ConnectionDeps, 'queue' | 'config' | 'clock' | 'store' | 'directory'>;

export class MessageIntake {
  private readonly deps: IntakeDeps;
  private readonly log: Logger;
  private writer: MessageWriter | null = null;
  /** Writes to the queue writer, chained so content keeps its order. */
  private writeChain: Promise<void> = Promise.resolve();
  private writeError: unknown = null;
  private unwrittenBytes = 0;
  private capture: HeaderCapture | null = null;
  private headerFacts: HeaderFacts | null = null;
  private submission = false;
  /** Scans what is written when the session may store the message itself (a local recipient). */
  private scanner: MimeScanner | null = null;
  private summary: HeaderSummary | null = null;
  /** SPF/DKIM/ARC/DMARC of the current transaction (MX listener, unauthenticated clients); set at MAIL. */
  inbound: InboundAuth | null = null;

  constructor(deps: IntakeDeps, log: Logger) {
    this.deps = deps;
    this.log = log;
  }

  /** A message is being received (between the first content byte and commit or abort). */
  get open(): boolean {
    return this.writer !== null;
  }

  get queueId(): string | null {
    return this.writer?.id ?? null;
  }

  /**
   * Open the queue writer and start with Received:, which waits for the client's name (bounded).
   * `local`: a recipient may be stored by the session itself, so the content is scanned as it goes.
   */
  begin(tx: TransactionInfo, client: ClientInfo, clientName: Promise<string | null>, local: boolean): void {
    this.writeError = null;
    const writer = this.deps.queue.begin();
    this.writer = writer;
    const scanner = local && this.deps.config.queue.localDelivery === 'accept' ? new MimeScanner() : null;
    this.scanner = scanner;
    this.summary = null;
    this.submission = client.authUser !== null;
    const nowMs = this.deps.clock.nowMs();
    this.headerFacts = null;
    // The header block is held until complete: forged Authentication-Results: in our name are removed
    // (RFC 8601 §5), and for authenticated senders RFC 6409 §8 completes it (Date:, Message-ID:).
    this.capture = new HeaderCapture();
    // Content written meanwhile queues behind Received: in writeChain; the session does not wait.
    this.writeChain = clientName
      .then((hostname) => {
        const received = formatReceived({
          client: { ...client, hostname },
          hostname: this.deps.config.hostname,
          queueId: writer.id,
          forRecipient: tx.recipients.length === 1 ? tx.recipients[0]!.address : null,
          smtputf8: tx.params.smtputf8,
          nowMs,
        });
        const bytes = new TextEncoder().encode(received);
        scanner?.push(bytes);
        return writer.write(bytes);
      })
      .catch((err: unknown) => {
        this.writeError ??= err;
      });
  }

  /** Content as it streams; resolves at once unless the writer is too far behind. */
  async push(content: Uint8Array): Promise<void> {
    const writer = this.writer;
    if (!writer) return;
    let chunk = content;
    this.inbound?.push(chunk);
    if (this.capture) {
      const held = this.capture.push(chunk);
      if (held === null) return;
      chunk = this.releaseHeaders(writer.id, held.facts, held.release);
    }
    this.unwrittenBytes += chunk.length;
    const scanner = this.scanner;
    this.writeChain = this.writeChain
      .then(() => {
        // In the order written, so the structure's offsets are the stored bytes'.
        scanner?.push(chunk);
        return writer.write(chunk);
      })
      .catch((err: unknown) => {
        this.writeError ??= err;
      })
      .finally(() => {
        this.unwrittenBytes -= chunk.length;
      });
    // Keep memory bounded on slow disks: stop reading while the writer is behind.
    if (this.unwrittenBytes > MAX_UNWRITTEN_BYTES) await this.writeChain;
  }

  /** Discard the message (refused content, RSET, a dropped connection). */
  abort(): void {
    const writer = this.writer;
    this.writer = null;
    if (!writer) return;
    void this.writeChain
      .then(() => writer.abort())
      .catch((err: unknown) => {
        this.log.warn(Events.smtpInternalError, { error: String(err), queueId: writer.id });
      });
  }

  /** End of content: the final checks, then the queue commit (fsync). The reply to send. */
  async commit(request: CommitRequest): Promise<Reply> {
    const { tx } = request;
    const writer = this.writer;
    this.writer = null;
    if (!writer) return Replies.localError;
    try {
      if (this.capture && !this.capture.done) {
        const held = this.capture.finish();
        const bytes = this.releaseHeaders(writer.id, held.facts, held.release);
        const scanner = this.scanner;
        this.writeChain = this.writeChain.then(() => {
          scanner?.push(bytes);
          return writer.write(bytes);
        });
      }
      this.capture = null;
      const fromRefusal = await request.checkHeaders(this.headerFacts);
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
        const dmarc = verdict.dmarc;
        if (dmarc?.record !== undefined && dmarc.recordDomain !== undefined && dmarc.record.rua.length > 0) {
          // The domain asks for aggregate reports (RFC 7489 §7.2): this message's row (reports/dmarc-store.ts).
          const report: DmarcObservation = {
            policyDomain: dmarc.recordDomain,
            headerFrom: dmarc.domain,
            sourceIp: request.client.ip,
            disposition: dmarc.disposition,
            dkimAligned: dmarc.alignment.dkim,
            spfAligned: dmarc.alignment.spf,
            spf: verdict.spf === null ? null : { domain: verdict.spf.domain, result: verdict.spf.result },
            dkim: verdict.dkim
              .filter((d) => d.domain !== '')
              .map((d) => ({ domain: d.domain, selector: d.selector, result: d.result })),
            policy: {
              p: dmarc.record.p,
              ...(dmarc.record.sp === undefined ? {} : { sp: dmarc.record.sp }),
              pct: dmarc.record.pct,
              adkim: dmarc.record.adkim,
              aspf: dmarc.record.aspf,
            },
            rua: dmarc.record.rua.map((r) => ({
              uri: r.uri,
              ...(r.maxBytes === undefined ? {} : { maxBytes: r.maxBytes }),
            })),
          };
          this.log.debug(Events.dmarcObserved, { queueId: writer.id, report });
        }
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
        client: request.client,
        receivedAtMs: this.deps.clock.nowMs(),
        ...(folder === undefined ? {} : { folder }),
        ...(request.longLines ? { longLines: true } : {}),
        ...(this.headerFacts?.complete === true ? { returnPathDropped: true } : {}),
        ...(tx.params.requireTls === true ? { requireTls: true } : {}),
        ...(tx.params.requireTls !== true && this.headerFacts?.tlsRequiredNo === true
          ? { tlsOptional: true }
          : {}),
      };
      const stored = await this.storeLocal(writer, request, envelope, prefix);
      if (stored === 'over-quota') {
        await writer.abort();
        return Replies.mailboxFull;
      }
      const queued = envelope.recipients.filter((_, i) => !stored.has(i));
      if (queued.length === 0) await writer.abort();
      else await writer.commit({ ...envelope, recipients: queued }, prefix === undefined ? {} : { prefix });
      const messageId = this.headerFacts?.messageId ?? null;
      this.log.event(Events.smtpQueued, {
        ...acceptedFields(writer.id, envelope, request.sizeBytes),
        ...(stored.size === 0 ? {} : { stored: stored.size, queued: queued.length }),
        ...(messageId === null ? {} : { messageId }),
      });
      return withText(Replies.queued, `OK: queued as ${writer.id}`);
    } catch (err) {
      this.log.error(Events.smtpCommitFailed, { queueId: writer.id, error: String(err) });
      await writer.abort().catch(() => undefined);
      return replyFor(err);
    }
  }

  /**
   * The recipients stored by the session itself (local-accept.ts), by index; the rest go to the queue.
   * A store that fails leaves them all to the queue: the worker's path is slower, never worse.
   */
  private async storeLocal(
    writer: MessageWriter,
    request: CommitRequest,
    envelope: Envelope,
    prefix: Uint8Array | undefined,
  ): Promise<ReadonlySet<number> | 'over-quota'> {
    const scanner = this.scanner;
    this.scanner = null;
    // A header block too long to hold was written as it came: a Return-Path: in it may still stand,
    // which the worker's delivery removes as it streams.
    if (scanner === null || this.headerFacts?.complete !== true) return new Set();
    const deps = { directory: this.deps.directory, store: this.deps.store, log: this.log };
    const plan = await planLocal(deps, {
      limits: request.quotaLimits,
      recipients: envelope.recipients,
      usersOf: request.usersOf,
      sender: envelope.sender,
      sizeBytes: request.sizeBytes,
    });
    if (plan.overQuota) return 'over-quota';
    if (plan.direct.size === 0) return new Set();
    let structure: MessageStructure | null = null;
    try {
      structure = scanner.finish();
    } catch (err) {
      // A cache readers rebuild: a scanner bug must not refuse mail.
      this.log.warn(Events.smtpInternalError, { what: 'structure scan', error: String(err) });
    }
    const summary = this.summary ?? { from: '', subject: '', date: '', messageId: '' };
    try {
      const body = await writer.seal();
      await storeLocal(
        {
          store: this.deps.store,
          log: this.log,
          nowMs: this.deps.clock.nowMs(),
        },
        {
          messageId: writer.id,
          plan,
          recipients: envelope.recipients,
          sender: envelope.sender,
          folder: envelope.folder,
          prefix,
          body,
          structure,
          summary,
        },
      );
      return new Set(plan.direct.keys());
    } catch (err) {
      this.log.warn(Events.smtpCommitFailed, { queueId: writer.id, stage: 'local', error: String(err) });
      return new Set();
    }
  }

  /** The held header block, with Date:/Message-ID: added when missing, ready to write. */
  private releaseHeaders(queueId: string, facts: HeaderFacts, held: Uint8Array): Uint8Array {
    this.capture = null;
    this.headerFacts = facts;
    // RFC 8601 §5: results in our name are ours to write; whoever sent them (a logged-in user, a
    // trusted network, a client the checks skip), they are removed.
    const config = this.deps.config;
    const authservId = config.checks.authservId ?? config.hostname;
    const submission = this.submission;
    const bytes = dropHeaderFields(held, (raw) => {
      // A submission's Bcc: goes before queueing (so before DKIM signing), as Postfix's cleanup does.
      if (submission && isBlindCopyField(raw)) return true;
      // RFC 5321 §4.4: the final MTA writes the one Return-Path:, so any the message carries goes now
      // (Postfix's default message_drop_headers): the body then needs no rewrite at final delivery.
      if (isReturnPathField(raw)) return true;
      const forged = isForgedAuthResults(raw, authservId);
      if (forged) this.log.warn(Events.smtpViolation, { what: 'forged Authentication-Results removed' });
      return forged;
    });
    if (this.scanner !== null) this.summary = headerSummary(held);
    if (!submission || !config.submission.addMissingHeaders || !facts.complete) return bytes;
    let added = '';
    if (!facts.hasDate) added += `Date: ${formatRfc5322Date(this.deps.clock.nowMs())}\r\n`;
    if (!facts.hasMessageId) {
      added += `Message-ID: <${queueId}.${randomBytes(6).toString('hex')}@${config.hostname}>\r\n`;
    }
    return added === '' ? bytes : Buffer.concat([Buffer.from(added), bytes]);
  }
}
