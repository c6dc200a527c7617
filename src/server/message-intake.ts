// One message on its way into the queue, for the SMTP driver: the queue writer opened at the first
// content byte, the Received: line (written once the client's name is known, without holding up a
// reply), the header block held until complete (forged Authentication-Results: in our name removed,
// RFC 8601 §5; a submission's Bcc: removed and a missing Date:/Message-ID: added, RFC 6409 §8), the
// inbound checks (SPF/DKIM/ARC/DMARC) fed as content streams, and the commit that resolves only after
// the queue fsynced (the 250 waits for it).
// Deliberately NOT here: whether content may come at all (the session), MAIL/RCPT decisions and sender
// ownership (the driver and submission-policy.ts), timers (the driver's data deadline).

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { StoredBody } from '../db/body-sink.ts';
import { formatMailbox } from '../core/address.ts';
import { formatRfc5322Date } from '../core/date.ts';
import type { ClientInfo, Envelope, EnvelopeRecipient } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import { Replies, replyFor, withText, type Reply } from '../core/reply.ts';
import { isForgedAuthResults } from '../policy/inbound-auth.ts';
import type { FilterMessage } from '../policy/filters/filter.ts';
import type { FilterResults, FilterRun, StageInput } from '../policy/filters/pipeline.ts';
import {
  applyFieldEdits,
  fieldOf,
  formatField,
  splitFields,
  type FieldEdit,
} from '../protocol/header-edit.ts';
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

/** The filters' field edits look for the end of the header block this far into the message. */
const MAX_REWRITE_HEADER_BYTES = 1024 * 1024;

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
  /** MAIL FROM's parameters as sent (for the filters). */
  readonly mailParams: ReadonlyMap<string, string>;
  /** LMTP: a reply per recipient, so a recipient over quota is refused alone (RFC 2033 §4.2). */
  readonly perRecipient?: boolean;
  /** An authenticated or trusted-network client: its MT-PRIORITY is honoured (RFC 6710 §5). */
  readonly trusted?: boolean;
}

export interface CommitResult {
  readonly reply: Reply;
  /** With perRecipient: a reply for each recipient of the transaction, in order. */
  readonly recipientReplies?: readonly Reply[];
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
  /** The filter pipeline of the current transaction (SPF/DKIM/DMARC/ARC among its checks); set at MAIL. */
  filters: FilterRun | null = null;
  /** The header block as written after Received: (the fields filters see and edit). */
  private writtenHeaders: Uint8Array | null = null;
  /** Octets written to the queue writer (Received: included). */
  private writtenBytes = 0;

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
    this.writtenHeaders = null;
    this.writtenBytes = 0;
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
        this.writtenBytes += bytes.length;
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
    this.filters?.content(chunk);
    if (this.capture) {
      const held = this.capture.push(chunk);
      if (held === null) return;
      chunk = this.releaseHeaders(writer.id, held.facts, held.release);
    }
    this.unwrittenBytes += chunk.length;
    this.writtenBytes += chunk.length;
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

  /** End of content: the final checks, then the queue commit (fsync). The reply (replies) to send. */
  async commit(request: CommitRequest): Promise<CommitResult> {
    let refused: ReadonlySet<number> = new Set();
    const reply = await this.commitMessage(request, (full) => {
      refused = full;
    });
    if (request.perRecipient !== true || refused.size === 0 || reply.code >= 400) return { reply };
    return {
      reply,
      recipientReplies: request.tx.recipients.map((_, i) => (refused.has(i) ? Replies.mailboxFull : reply)),
    };
  }

  private async commitMessage(
    request: CommitRequest,
    refuse: (full: ReadonlySet<number>) => void,
  ): Promise<Reply> {
    const { tx } = request;
    const writer = this.writer;
    this.writer = null;
    if (!writer) return Replies.localError;
    // The writer the message is committed from: another one when a filter rewrote the message.
    let target: MessageWriter = writer;
    try {
      if (this.capture && !this.capture.done) {
        const held = this.capture.finish();
        const bytes = this.releaseHeaders(writer.id, held.facts, held.release);
        this.writtenBytes += bytes.length;
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
      const filtered = await this.runFilters(writer, request);
      if (filtered.kind === 'refuse') {
        await this.writeChain.catch(() => undefined);
        await writer.abort();
        return filtered.reply;
      }
      const results = filtered.results;
      await this.writeChain;
      const writeError = this.writeError;
      if (writeError !== null)
        throw writeError instanceof Error
          ? writeError
          : new Error('queue write failed', { cause: writeError });
      if (results?.discard != null) {
        await writer.abort();
        this.log.event(Events.smtpDiscarded, { queueId: writer.id, reason: results.discard });
        return withText(Replies.queued, `OK: queued as ${writer.id}`);
      }
      const recipients = results === null ? tx.recipients : editRecipients(tx.recipients, results);
      if (recipients.length === 0) {
        await writer.abort();
        this.log.event(Events.smtpDiscarded, {
          queueId: writer.id,
          reason: 'the filters removed every recipient',
        });
        return withText(Replies.queued, `OK: queued as ${writer.id}`);
      }
      const folder = results?.quarantine != null ? 'Junk' : undefined;
      const edited = await this.applyEdits(writer, results);
      target = edited.writer;
      const prefix = edited.prefix;
      const envelope: Envelope = {
        sender: tx.sender ? formatMailbox(tx.sender) : '',
        body: tx.params.body,
        smtputf8: tx.params.smtputf8,
        ret: tx.params.ret,
        envid: tx.params.envid,
        recipients,
        client: request.client,
        receivedAtMs: this.deps.clock.nowMs(),
        ...(folder === undefined ? {} : { folder }),
        ...(request.longLines ? { longLines: true } : {}),
        ...(this.headerFacts?.complete === true ? { returnPathDropped: true } : {}),
        ...(tx.params.requireTls === true ? { requireTls: true } : {}),
        ...queueTiming(tx.params, request.trusted === true, this.deps.clock.nowMs()),
        ...(tx.params.requireTls !== true && this.headerFacts?.tlsRequiredNo === true
          ? { tlsOptional: true }
          : {}),
      };
      // A rewritten message is not the one the scanner saw, and recipients the filters changed were not
      // resolved at RCPT: the delivery worker stores those.
      if (target !== writer || recipients !== tx.recipients) this.scanner = null;
      const local = await this.storeLocal(target, request, envelope, prefix);
      if (local === 'over-quota') {
        await target.abort();
        return Replies.mailboxFull;
      }
      const stored = local.stored;
      // LMTP refuses a full mailbox's recipient alone; SMTP queues it (the worker bounces it).
      const skipped =
        request.perRecipient === true && recipients === tx.recipients ? local.full : new Set<number>();
      refuse(skipped);
      const queued = envelope.recipients.filter((_, i) => !stored.has(i) && !skipped.has(i));
      if (queued.length === 0) await target.abort();
      else await target.commit({ ...envelope, recipients: queued }, prefix === undefined ? {} : { prefix });
      const messageId = this.headerFacts?.messageId ?? null;
      this.log.event(Events.smtpQueued, {
        ...acceptedFields(target.id, envelope, request.sizeBytes),
        ...(stored.size === 0 ? {} : { stored: stored.size, queued: queued.length }),
        ...(messageId === null ? {} : { messageId }),
      });
      return withText(Replies.queued, `OK: queued as ${target.id}`);
    } catch (err) {
      this.log.error(Events.smtpCommitFailed, { queueId: target.id, error: String(err) });
      await writer.abort().catch(() => undefined);
      if (target !== writer) await target.abort().catch(() => undefined);
      return replyFor(err);
    }
  }

  /**
   * The pipeline's header and end-of-data stages, over the message as written (read back from the spool,
   * never held whole). Null results: no filter runs at those stages.
   */
  private async runFilters(
    writer: MessageWriter,
    request: CommitRequest,
  ): Promise<{ kind: 'refuse'; reply: Reply } | { kind: 'go'; results: FilterResults | null }> {
    const run = this.filters;
    if (run === null) return { kind: 'go', results: null };
    if (!run.has('message') && !run.has('headers')) return { kind: 'go', results: run.results() };
    await this.writeChain;
    if (this.writeError !== null) return { kind: 'go', results: null };
    // Sealed (the spool file flushed and closed) only when a filter reads it.
    let sealed: Promise<StoredBody> | null = null;
    const fields = splitFields(this.writtenHeaders ?? new Uint8Array(0)).fields;
    const message: FilterMessage = {
      headers: fields.map(fieldOf).filter((f) => f !== null),
      fromAddresses: this.headerFacts?.from ?? [],
      sizeBytes: this.writtenBytes,
      read: () => {
        sealed ??= writer.seal();
        const body = sealed;
        return (async function* () {
          yield* storedChunks(await body);
        })();
      },
    };
    const input: StageInput = {
      queueId: writer.id,
      mailFrom: request.tx.sender === null ? '' : formatMailbox(request.tx.sender),
      mailParams: request.mailParams,
      recipients: request.tx.recipients.map((r) => r.address),
      message,
    };
    for (const stage of ['headers', 'message'] as const) {
      const r = await run.run(stage, input);
      if (r.kind === 'refuse') return { kind: 'refuse', reply: r.reply };
    }
    return { kind: 'go', results: run.results() };
  }

  /**
   * The filters' header edits and replaced body: fields added on top go in the prefix stored beside the
   * body (as Authentication-Results: does); inserts, changes and a new body rewrite the message into a
   * new queue writer (the old one is dropped). The X-Tern-Filter field records what the checks said.
   */
  private async applyEdits(
    writer: MessageWriter,
    results: FilterResults | null,
  ): Promise<{ writer: MessageWriter; prefix: Uint8Array | undefined }> {
    if (results === null) return { writer, prefix: undefined };
    let top = '';
    const edits: FieldEdit[] = [];
    for (const e of results.headers) {
      if (e.op === 'add') top += formatField(e.name, e.value);
      else edits.push(e);
    }
    if (results.summary.length > 0) {
      const score = results.score === 0 ? '' : `; score=${Math.round(results.score * 100) / 100}`;
      top += formatField(
        'X-Tern-Filter',
        `${this.deps.config.hostname}; ${results.summary.join(' ')}${score}`,
      );
    }
    const prefix = top === '' ? undefined : Buffer.from(top, 'latin1');
    if (edits.length === 0 && results.body === null) return { writer, prefix };
    const body = await writer.seal();
    const rewritten = this.deps.queue.begin();
    try {
      let head = new Uint8Array(0);
      // The stored message: our Received:, then the header block the filters saw, then the body.
      const chunks = storedChunks(body)[Symbol.asyncIterator]();
      const pending: Uint8Array[] = [];
      let seen = 0;
      let ended = false;
      for (;;) {
        const n = await chunks.next();
        if (n.done === true) {
          ended = true;
          break;
        }
        pending.push(n.value);
        seen += n.value.length;
        head = Buffer.concat(pending, seen);
        if (splitFields(head).complete || seen > MAX_REWRITE_HEADER_BYTES) break;
      }
      const rest: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => chunks };
      const { fields, bodyOffset, complete } = splitFields(head);
      if (!complete && !ended) {
        // A header block this long was never held (HeaderCapture's limit): no field edits on it.
        await chunks.return?.();
        await rewritten.abort();
        this.log.warn(Events.smtpRewritten, { queueId: writer.id, skipped: 'header block too long to edit' });
        return { writer, prefix };
      }
      const [received, ...own] = fields;
      const edited = applyFieldEdits(own, edits);
      await rewritten.write(Buffer.from(`${received ?? ''}${edited.join('')}\r\n`, 'latin1'));
      if (results.body !== null) {
        for (const c of results.body) await rewritten.write(c);
      } else {
        await rewritten.write(head.subarray(bodyOffset));
        for await (const c of rest) await rewritten.write(c);
      }
      await writer.abort();
      // Under both ids, so that `tern trace` finds the way from either.
      const detail = { edits: edits.length, body: results.body !== null };
      this.log.event(Events.smtpRewritten, { queueId: writer.id, newQueueId: rewritten.id, ...detail });
      this.log.event(Events.smtpRewritten, { queueId: rewritten.id, fromQueueId: writer.id, ...detail });
      return { writer: rewritten, prefix };
    } catch (err) {
      await rewritten.abort().catch(() => undefined);
      throw err;
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
  ): Promise<{ stored: ReadonlySet<number>; full: ReadonlySet<number> } | 'over-quota'> {
    const none = { stored: new Set<number>(), full: new Set<number>() };
    const scanner = this.scanner;
    this.scanner = null;
    // A header block too long to hold was written as it came: a Return-Path: in it may still stand,
    // which the worker's delivery removes as it streams.
    // FUTURERELEASE: a held message waits in the queue, even for local mailboxes.
    if (scanner === null || this.headerFacts?.complete !== true || envelope.holdUntilMs !== undefined)
      return none;
    const deps = { directory: this.deps.directory, store: this.deps.store, log: this.log };
    const plan = await planLocal(deps, {
      limits: request.quotaLimits,
      recipients: envelope.recipients,
      usersOf: request.usersOf,
      sender: envelope.sender,
      sizeBytes: request.sizeBytes,
    });
    if (plan.overQuota) return 'over-quota';
    if (plan.direct.size === 0) return { ...none, full: plan.full };
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
      return { stored: new Set(plan.direct.keys()), full: plan.full };
    } catch (err) {
      this.log.warn(Events.smtpCommitFailed, { queueId: writer.id, stage: 'local', error: String(err) });
      return { ...none, full: plan.full };
    }
  }

  /** The held header block, with Date:/Message-ID: added when missing, ready to write (kept for the filters). */
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
      // Our filters' verdicts (X-Tern-Filter: <hostname>; …) are ours to write too.
      const forgedVerdict = !forged && isOurFilterField(raw, config.hostname);
      if (forgedVerdict) this.log.warn(Events.smtpViolation, { what: 'forged X-Tern-Filter removed' });
      return forged || forgedVerdict;
    });
    if (this.scanner !== null) this.summary = headerSummary(held);
    if (!submission || !config.submission.addMissingHeaders || !facts.complete) {
      this.writtenHeaders = bytes;
      return bytes;
    }
    let added = '';
    if (!facts.hasDate) added += `Date: ${formatRfc5322Date(this.deps.clock.nowMs())}\r\n`;
    if (!facts.hasMessageId) {
      added += `Message-ID: <${queueId}.${randomBytes(6).toString('hex')}@${config.hostname}>\r\n`;
    }
    const out = added === '' ? bytes : Buffer.concat([Buffer.from(added), bytes]);
    this.writtenHeaders = out;
    return out;
  }
}

/** MT-PRIORITY (trusted senders only), DELIVERBY's deadline and FUTURERELEASE's release time. */
function queueTiming(
  params: TransactionInfo['params'],
  trusted: boolean,
  nowMs: number,
): Pick<Envelope, 'priority' | 'deliverBy' | 'holdUntilMs'> {
  const out: { -readonly [K in 'priority' | 'deliverBy' | 'holdUntilMs']?: NonNullable<Envelope[K]> } = {};
  if (trusted && params.priority !== undefined && params.priority !== 0) out.priority = params.priority;
  if (params.by !== undefined) {
    const { seconds, mode, trace } = params.by;
    out.deliverBy = { deadlineMs: nowMs + seconds * 1000, mode, trace };
  }
  const hold = params.hold;
  if (hold !== undefined) {
    const atMs = hold.kind === 'for' ? nowMs + hold.seconds * 1000 : hold.atMs;
    if (atMs > nowMs) out.holdUntilMs = atMs;
  }
  return out;
}

/** A stored body's bytes, from memory or from its spool file, in 64 KiB reads. */
async function* storedChunks(body: StoredBody): AsyncIterable<Uint8Array> {
  if (body.kind === 'inline') {
    yield body.bytes;
    return;
  }
  for await (const chunk of createReadStream(body.path, { highWaterMark: 64 * 1024 })) yield chunk as Buffer;
}

/** The transaction's recipients as the filters left them (milter ADDRCPT/DELRCPT). */
function editRecipients(
  recipients: readonly EnvelopeRecipient[],
  results: FilterResults,
): readonly EnvelopeRecipient[] {
  if (results.addRecipients.length === 0 && results.deleteRecipients.length === 0) return recipients;
  const gone = new Set(results.deleteRecipients.map((a) => a.toLowerCase()));
  const kept = recipients.filter((r) => !gone.has(r.address.toLowerCase()));
  const known = new Set(kept.map((r) => r.address.toLowerCase()));
  const added = results.addRecipients
    .filter((a) => !known.has(a.toLowerCase()))
    .map((address): EnvelopeRecipient => ({ address, notify: null, orcpt: null }));
  return [...kept, ...added];
}

/** An X-Tern-Filter: field in our name (as the filters write it: the hostname, then ";"). */
function isOurFilterField(rawField: string, hostname: string): boolean {
  const m = /^x-tern-filter[ \t]*:[ \t\r\n]*([^;\s]+)/i.exec(rawField);
  return m !== null && m[1]!.toLowerCase() === hostname.toLowerCase();
}
