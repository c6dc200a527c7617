// The durable queue: the one way in for every accepted message (Postfix's cleanup → incoming).
// Contract: commit() resolves only once the message bytes and the envelope are on disk and fsynced;
// before that nothing of the message is visible to list()/claimDue(). Implementations: sqlite-queue.ts
// (embedded default). Every implementation runs queue.contract.ts.
// Operator steering (Postfix's postsuper/postqueue): hold, release, remove, flush and bounceNow change
// what the delivery worker sees; changeCounter() is how a running server notices that another process
// (the `tern queue` CLI) did so, without waiting for its next timed look.

import type { Envelope } from '../core/envelope.ts';
import type { StoredBody } from '../db/body-sink.ts';

export type RecipientStatus = 'queued' | 'deferred' | 'delivered' | 'bounced';

export interface QueuedRecipient {
  readonly index: number;
  readonly address: string;
  readonly status: RecipientStatus;
  readonly attempts: number;
  readonly nextAttemptMs: number;
  /** Last reply or reason, e.g. "250 2.0.0 delivered to mailbox" or "451 4.4.1 connection refused". */
  readonly lastReply: string | null;
  /** A delay warning (DSN Action: delayed) went out for this recipient: at most one is sent. */
  readonly delayWarned: boolean;
  /**
   * An operator gave up on this recipient (`tern queue bounce`, bounceNow()). The delivery worker reads
   * it: such a recipient is due at once and is settled as bounced without a delivery attempt (with
   * OPERATOR_BOUNCE_REPLY), so the sender gets a failure DSN. Only ever set on a pending recipient.
   */
  readonly bounceRequested: boolean;
  /** The remote MTA (its DNS name) that gave the last reply; absent when no remote server answered. */
  readonly remoteMta?: string;
  /** The last reply of that remote server verbatim (DSN Diagnostic-Code: smtp; ...); absent likewise. */
  readonly diagnostic?: string;
}

export interface QueuedMessage {
  readonly id: string;
  readonly envelope: Envelope;
  readonly sizeBytes: number;
  readonly recipients: readonly QueuedRecipient[];
  readonly held: boolean;
  /**
   * When the message arrived (the same as envelope.receivedAtMs): the queue lifetime and the delay
   * warning count from here (schedule.ts), and it is the DSN's Arrival-Date.
   */
  readonly arrivalMs: number;
}

/** How full the queue is: messages, recipients by status, and pending messages by age. */
export interface QueueStats {
  readonly messages: number;
  readonly held: number;
  /** Recipients of the messages in the queue by status (settled ones stay until their message is removed). */
  readonly recipients: Readonly<Record<RecipientStatus, number>>;
  /** Messages with a recipient still queued or deferred, by time since they arrived. */
  readonly pendingByAge: Readonly<Record<QueueAge, number>>;
  /** Arrival of the oldest message with a pending recipient; null when none. */
  readonly oldestPendingMs: number | null;
}

export type QueueAge = '5m' | '1h' | '1d' | 'older';

/** The upper bound of each QueueAge, in milliseconds. */
export const QUEUE_AGES: readonly (readonly [QueueAge, number])[] = [
  ['5m', 300_000],
  ['1h', 3_600_000],
  ['1d', 86_400_000],
  ['older', Number.POSITIVE_INFINITY],
];

/** Receives the bytes of one message; exactly one of commit/abort ends it. */
export interface MessageWriter {
  /** Queue id, known from the start so every log line of the transaction can carry it. */
  readonly id: string;
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Durable (fsynced) when this resolves. Throws ReplyError(insufficientStorage) when the disk is full.
   * `prefix`: header fields known only at end of data (Authentication-Results:), stored beside the body
   * and read back in front of it (Postfix's cleanup adds such headers the same way, without a rewrite).
   */
  commit(envelope: Envelope, options?: { readonly prefix?: Uint8Array }): Promise<void>;
  /**
   * End of content without committing: the body made durable where it lies (a spilled file fsynced with
   * its folder), for a caller that stores it elsewhere too (the SMTP session's local copies,
   * MailboxStore.deliverAccepted, which links the file). The writer stays open for commit() of the
   * recipients left to the queue, or abort(), which removes the file (the store keeps its own link).
   */
  seal(): Promise<StoredBody>;
  abort(): Promise<void>;
}

export interface Queue {
  begin(): MessageWriter;
  get(id: string): Promise<QueuedMessage | null>;
  list(): Promise<QueuedMessage[]>;
  /** Counts for metrics and the admin page, without reading any message (one query per part). */
  stats(nowMs: number): Promise<QueueStats>;
  /** The message bytes as stored (including the Received: header the session added). */
  readBody(id: string): AsyncIterable<Uint8Array>;
  /**
   * The spool file that holds a large message's body (without the prefix, given beside it), for a
   * mailbox store that links it instead of copying; null for a body kept in the database. The file
   * stays the queue's: it goes when the message does.
   */
  bodyFile(id: string): Promise<{
    readonly path: string;
    readonly sizeBytes: number;
    readonly prefix: Uint8Array | null;
  } | null>;
  /**
   * Recipients whose nextAttemptMs <= nowMs, not held, status queued/deferred; grouped by message.
   * Messages in `skip` (the worker's deliveries in flight) are left out and do not count to the limit.
   */
  due(nowMs: number, limit: number, skip?: ReadonlySet<string>): Promise<QueuedMessage[]>;
  /**
   * The earliest next attempt after nowMs of a pending recipient of a message not held, or null: when
   * the worker should look again (a FUTURERELEASE hold ends, a retry falls due).
   */
  nextAttemptAfter(nowMs: number): Promise<number | null>;
  /** Record the outcome for one recipient; when no recipient is left pending the message is removed. */
  settle(id: string, index: number, outcome: RecipientOutcome): Promise<void>;
  /** Wake listeners (the delivery worker) when new mail is committed. */
  onCommit(listener: (id: string) => void): () => void;

  /** Keep the message out of due() until released; false when there is no such message. */
  hold(id: string): Promise<boolean>;
  /** Undo hold(): pending recipients already past their next attempt are due at once. */
  release(id: string): Promise<boolean>;
  /**
   * Delete the message (rows and stored bytes) whatever its recipients' state, without any DSN (Postfix
   * `postsuper -d`). A delivery already in flight may still complete; its settle() then fails.
   */
  remove(id: string): Promise<boolean>;
  /**
   * Make pending recipients due now (Postfix `postqueue -f` / `-i`): of one message, or of every message
   * when id is undefined. Held messages are skipped (release them first). Resolves with how many
   * recipients were rescheduled: 0 for an unknown id.
   */
  flush(id?: string): Promise<number>;
  /**
   * Give up on every pending recipient of the message: mark them bounceRequested and due now, and release
   * a hold (the operator wants the message gone, with a DSN). Resolves with how many were marked.
   */
  bounceNow(id: string): Promise<number>;
  /** Remember that a delay warning went out for this recipient. Throws when there is no such recipient. */
  markDelayWarned(id: string, index: number): Promise<void>;
  /**
   * A number that grows whenever hold, release, remove, flush or bounceNow changed the queue, from any
   * process that opened the same storage. The running server's worker polls it (about once a second,
   * one small read) and looks at the queue when it moved, so `tern queue flush` acts within a second.
   * Commits and settles do not move it: the process that makes them wakes its own worker (onCommit).
   */
  changeCounter(): Promise<number>;
  /**
   * Append to the change log (moving the change counter too): what an operator changed from another
   * process (the `tern` CLI: queue actions, directory edits), so the running server can log it. Only the
   * newest CHANGE_LOG_KEEP entries are kept. Never put secrets in `detail`: the server logs it as is.
   */
  recordChange(event: string, detail: Readonly<Record<string, unknown>>): Promise<void>;
  /** Change-log entries with seq > afterSeq, oldest first, at most `limit`. */
  changesSince(afterSeq: number, limit: number): Promise<QueueChange[]>;
  /** The seq of the newest change-log entry (0 when none): where a reader starts. */
  lastChangeSeq(): Promise<number>;

  close(): Promise<void>;
}

/** One change-log entry (recordChange). */
export interface QueueChange {
  /** Grows by one per entry and is never reused, also after old entries were dropped. */
  readonly seq: number;
  readonly atMs: number;
  /** What changed, e.g. `queue.hold` or `user.add`. */
  readonly event: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

/** How many change-log entries are kept: enough for a server that polls every second, never a history. */
export const CHANGE_LOG_KEEP = 1000;

/** What an outcome may say about the remote server that gave it (for the DSN: Remote-MTA, Diagnostic-Code). */
export interface RemoteDetail {
  /** DNS name of the remote MTA that answered. */
  readonly remoteMta?: string;
  /** Its reply verbatim, multi-line replies joined with CRLF or spaces. */
  readonly diagnostic?: string;
}

/**
 * Each settle() replaces the recipient's remote detail: a later attempt that never reached a server
 * clears what an earlier one recorded, so a DSN never pairs one attempt's reason with another's server.
 */
export type RecipientOutcome =
  | ({ readonly status: 'delivered'; readonly reply: string } & RemoteDetail)
  | ({ readonly status: 'bounced'; readonly reply: string } & RemoteDetail)
  | ({ readonly status: 'deferred'; readonly reply: string; readonly nextAttemptMs: number } & RemoteDetail);

/** The reply recorded for a recipient bounced on an operator's request (RFC 3463 5.0.0: other). */
export const OPERATOR_BOUNCE_REPLY = '550 5.0.0 delivery cancelled by the mail system administrator';
