// The mailbox store: where local delivery puts messages and where POP3/IMAP will read them.
// Shaped for IMAP from the start: per-mailbox UIDVALIDITY and UIDNEXT, UIDs that only grow, flags,
// sizes and internal dates. Contract (mailbox-store.contract.ts): deliver() resolves once the message is
// durable; a repeated deliveryKey is a no-op returning the first UID (so a crash between delivery and
// queue bookkeeping never makes a duplicate).

export interface MessageSummary {
  /** Stable id for the CLI: "<mailbox uidvalidity>-<uid>" style or similar, opaque to callers. */
  readonly id: string;
  readonly mailbox: string;
  readonly uid: number;
  readonly sizeBytes: number;
  readonly internalDateMs: number;
  readonly flags: readonly string[];
  /** Header summary captured at delivery (decoded): From, Subject, Date (as written). */
  readonly from: string;
  readonly subject: string;
  readonly date: string;
}

export interface DeliverRequest {
  /** The owner: a local user address key (lower-case). */
  readonly user: string;
  readonly mailbox: string;
  readonly internalDateMs: number;
  readonly flags: readonly string[];
  /** Idempotency key, e.g. "<queue id>/<recipient index>". */
  readonly deliveryKey: string;
  readonly summary: { readonly from: string; readonly subject: string; readonly date: string };
  /** The full message bytes (Return-Path already prepended by delivery). */
  readonly content: AsyncIterable<Uint8Array>;
}

export interface MailboxStore {
  deliver(req: DeliverRequest): Promise<{ uid: number; id: string }>;
  list(user: string, mailbox?: string): Promise<MessageSummary[]>;
  /** The raw RFC 5322 message, or null when there is no such message. */
  read(user: string, id: string): AsyncIterable<Uint8Array> | null;
  close(): Promise<void>;
}
