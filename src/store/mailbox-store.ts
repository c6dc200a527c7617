// The mailbox store: where local delivery puts messages and where POP3/IMAP read them.
// Shaped for IMAP from the start: per-mailbox UIDVALIDITY and UIDNEXT, UIDs that only grow, flags,
// sizes and internal dates. Contract (mailbox-store.contract.ts): deliver() and expunge() resolve once
// their change is durable; a repeated deliveryKey is a no-op returning the first UID (so a crash between
// delivery and queue bookkeeping never makes a duplicate); an expunged UID is never handed out again.
//
// Change tracking, the ground IMAP CONDSTORE/QRESYNC (RFC 7162) stands on: every mailbox has a modseq
// that every change (delivery, expunge; later flag changes, COPY/MOVE) raises by one in its own
// transaction, and each message keeps the modseq of its last change; status() reports it as
// highestModseq, so "has anything changed since I looked?" is one comparison. Expunged UIDs are kept with
// the modseq that removed them, for QRESYNC's VANISHED (EARLIER). Still to come for IMAP (issue 13):
// folders as objects (create, rename, delete, subscribe, special-use), flag updates, COPY/MOVE/APPEND,
// changesSince(modseq) over messages and expunged UIDs, and a change feed (an in-process emitter fed
// after each durable commit, one per data directory as maildrop-locks.ts assumes) waking IDLE sessions.

export const INBOX = 'INBOX';

/** IMAP's INBOX is case-insensitive (RFC 9051 §5.1); other names are kept as given. */
export function normalizeMailboxName(name: string): string {
  return name.toUpperCase() === INBOX ? INBOX : name;
}

/** Owners are address keys: compared without case, as the directory stores them. */
export function normalizeUser(user: string): string {
  return user.toLowerCase();
}

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

export interface MailboxStatus {
  /** RFC 9051 §2.3.1.1: never repeats for a mailbox name within one store. */
  readonly uidValidity: number;
  /** The UID the next message will get; only grows, also across expunges. */
  readonly uidNext: number;
  /** Messages in the mailbox now (POP3 STAT's count, IMAP EXISTS / STATUS MESSAGES). */
  readonly messages: number;
  /** Sum of the stored sizes (POP3 STAT's octets, IMAP STATUS SIZE, RFC 8438). */
  readonly sizeBytes: number;
  /** Raised by every change to the mailbox (IMAP HIGHESTMODSEQ, RFC 7162); at least 1. */
  readonly highestModseq: number;
}

/** One message as POP3 LIST/UIDL and IMAP's UID map see it. */
export interface MessageEntry {
  readonly uid: number;
  /** Exactly the bytes openMessage() streams (POP3 LIST counts these octets before byte-stuffing). */
  readonly sizeBytes: number;
  /** uidl(uidValidity, uid): stable across sessions, the same UIDL a POP3 client saw last time. */
  readonly uidl: string;
}

/** A mailbox at one instant: its status and every message in it, in UID order. */
export interface MailboxSnapshot extends MailboxStatus {
  readonly entries: readonly MessageEntry[];
}

/** A message opened for reading: the size is known before the first byte is read. */
export interface StoredMessage {
  readonly uid: number;
  readonly sizeBytes: number;
  /**
   * The stored bytes, exactly, in chunks (never the whole of a large message at once). Iterate it once,
   * to the end or until a break; a message opened and then expunged still reads whole.
   */
  readonly content: AsyncIterable<Uint8Array>;
  /** Release what the message holds open when content will not be read (safe to call twice). */
  close(): Promise<void>;
}

/**
 * The POP3 unique-id of a message (RFC 1939 §7 UIDL): "<UIDVALIDITY>.<UID>" in decimal, e.g.
 * "1768478400.42". At most 21 characters of 0x21-0x7E (the RFC allows 1-70). It is stable across sessions
 * because both numbers are, never names two messages of one maildrop (UIDs are not reused and
 * UIDVALIDITY never repeats within a store), and it ties POP3 to IMAP: an IMAP client sees the same
 * message as UID 42 under UIDVALIDITY 1768478400. Should a mailbox ever get a new UIDVALIDITY, every UIDL
 * changes with it, which is the right signal: POP3 clients then fetch the mailbox as new, as IMAP ones do.
 */
export function uidl(uidValidity: number, uid: number): string {
  return `${uidValidity}.${uid}`;
}

export interface MailboxStore {
  deliver(req: DeliverRequest): Promise<{ uid: number; id: string }>;
  list(user: string, mailbox?: string): Promise<MessageSummary[]>;
  /** The raw RFC 5322 message, or null when there is no such message. */
  read(user: string, id: string): AsyncIterable<Uint8Array> | null;
  /** The mailbox's counters, or null when it does not exist (no mail was ever delivered to it). */
  status(user: string, mailbox: string): Promise<MailboxStatus | null>;
  /**
   * Status and entries read together (consistent with each other), or null when the mailbox does not
   * exist; POP3 treats null as an empty maildrop.
   */
  snapshot(user: string, mailbox: string): Promise<MailboxSnapshot | null>;
  /** One message by UID with its size up front, or null when there is no such message. */
  openMessage(user: string, mailbox: string, uid: number): Promise<StoredMessage | null>;
  /**
   * Remove exactly these messages in one durable transaction and return the UIDs that were removed
   * (ascending; UIDs not in the mailbox are skipped). Resolves once the removal survives a crash; the
   * bodies' storage is reclaimed afterwards. UIDNEXT is unchanged: removed UIDs are never reused.
   */
  expunge(user: string, mailbox: string, uids: readonly number[]): Promise<number[]>;
  close(): Promise<void>;
}
