// The durable queue: the one way in for every accepted message (Postfix's cleanup → incoming).
// Contract: commit() resolves only once the message bytes and the envelope are on disk and fsynced;
// before that nothing of the message is visible to list()/claimDue(). Implementations: sqlite-queue.ts
// (embedded default). Every implementation runs queue.contract.ts.

import type { Envelope } from '../core/envelope.ts';

export type RecipientStatus = 'queued' | 'deferred' | 'delivered' | 'bounced';

export interface QueuedRecipient {
  readonly index: number;
  readonly address: string;
  readonly status: RecipientStatus;
  readonly attempts: number;
  readonly nextAttemptMs: number;
  /** Last reply or reason, e.g. "250 2.0.0 delivered to mailbox" or "451 4.4.1 connection refused". */
  readonly lastReply: string | null;
}

export interface QueuedMessage {
  readonly id: string;
  readonly envelope: Envelope;
  readonly sizeBytes: number;
  readonly recipients: readonly QueuedRecipient[];
  readonly held: boolean;
}

/** Receives the bytes of one message; exactly one of commit/abort ends it. */
export interface MessageWriter {
  /** Queue id, known from the start so every log line of the transaction can carry it. */
  readonly id: string;
  write(chunk: Uint8Array): Promise<void>;
  /** Durable (fsynced) when this resolves. Throws ReplyError(insufficientStorage) when the disk is full. */
  commit(envelope: Envelope): Promise<void>;
  abort(): Promise<void>;
}

export interface Queue {
  begin(): MessageWriter;
  get(id: string): Promise<QueuedMessage | null>;
  list(): Promise<QueuedMessage[]>;
  /** The message bytes as stored (including the Received: header the session added). */
  readBody(id: string): AsyncIterable<Uint8Array>;
  /** Recipients whose nextAttemptMs <= nowMs, not held, status queued/deferred; grouped by message. */
  due(nowMs: number, limit: number): Promise<QueuedMessage[]>;
  /** Record the outcome for one recipient; when no recipient is left pending the message is removed. */
  settle(id: string, index: number, outcome: RecipientOutcome): Promise<void>;
  /** Wake listeners (the delivery worker) when new mail is committed. */
  onCommit(listener: (id: string) => void): () => void;
  close(): Promise<void>;
}

export type RecipientOutcome =
  | { readonly status: 'delivered'; readonly reply: string }
  | { readonly status: 'bounced'; readonly reply: string }
  | { readonly status: 'deferred'; readonly reply: string; readonly nextAttemptMs: number };
