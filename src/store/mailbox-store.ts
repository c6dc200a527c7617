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
// the modseq that removed them, for QRESYNC's VANISHED (EARLIER).
//
// IMAP (ImapMailboxStore, below): folders are objects with a `/` hierarchy, NFC names and INBOX without
// case; DELETE of a folder with children keeps it as a \Noselect placeholder (RFC 9051 §6.3.5 lets us
// choose; Dovecot does the same) while its messages go durably; UIDVALIDITY is unique in the whole store,
// so a name reused after a delete, or a rename, never shows a client an old UIDVALIDITY with new UIDs.
// Flag changes, APPEND, COPY and MOVE each raise the folder's modseq by one; changesSince() serves
// CONDSTORE/QRESYNC; watch() is the change feed (in-process after each durable commit, other processes
// by a poll), watchFolderList() the per-user feed of folder creation, deletion, rename and subscription
// changes (IMAP NOTIFY's MailboxName and SubscriptionChange, RFC 5465 §5.4-§5.5). For FETCH/SEARCH/SELECT: messages() (flags, sizes, dates, RFC 8514 save date, RFC 8474
// EMAILID, the stored MIME structure) without reading bodies, openRange() for partial FETCH, and
// folderStatus() with the counts SELECT and STATUS report. Not yet: pruning of old expunged UIDs (then
// changesSince must say how far back it knows), THREADID.

import { assertNever } from '../core/assert-never.ts';
import type { StoredBody } from '../db/body-sink.ts';

export const INBOX = 'INBOX';

/**
 * Names are NFC UTF-8 (RFC 9051 §5.1: one spelling per name, whatever form a client composes), and
 * INBOX is case-insensitive, also as the first level of its children ("inbox/x" is "INBOX/x").
 */
export function normalizeMailboxName(name: string): string {
  const nfc = name.normalize('NFC');
  const slash = nfc.indexOf('/');
  const first = slash < 0 ? nfc : nfc.slice(0, slash);
  return first.toUpperCase() === INBOX ? INBOX + nfc.slice(first.length) : nfc;
}

/**
 * A folder name a client may create: normalized, or a MailboxError('invalid'). No empty levels (so no
 * leading, trailing or doubled separator), no control characters, and no LIST wildcards `*` `%`
 * (a folder so named could never be listed on its own).
 */
export function checkFolderName(name: string): string {
  const normalized = normalizeMailboxName(name);
  const ok =
    normalized !== '' &&
    normalized.split('/').every((level) => level !== '') &&
    !/[\u0000-\u001f\u007f*%]/u.test(normalized) &&
    Buffer.byteLength(normalized) <= 1000;
  if (!ok) throw new MailboxError('invalid', `mailbox store: invalid folder name ${JSON.stringify(name)}`);
  return normalized;
}

/** The names of a folder's ancestors, outermost first: "a/b/c" gives ["a", "a/b"]. */
export function parentNames(name: string): string[] {
  const levels = name.split('/');
  return levels.slice(1).map((_, i) => levels.slice(0, i + 1).join('/'));
}

const SYSTEM_FLAG_BY_LOWER = new Map<string, string>(
  ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'].map((f) => [f.toLowerCase(), f]),
);
/** RFC 9051 atom characters less the specials, so a keyword can be written back unquoted. */
const KEYWORD = /^[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]{1,200}$/;

/**
 * Flags as a client names them, checked and canonical: system flags in their RFC spelling, keywords as
 * first written, each once (flags compare without case, RFC 9051 §2.3.2). Throws MailboxError('invalid')
 * for \Recent, unknown backslash flags and keywords that are not atoms.
 */
export function normalizeFlags(flags: readonly string[]): string[] {
  const out = new Map<string, string>();
  for (const flag of flags) {
    const lower = flag.toLowerCase();
    const system = SYSTEM_FLAG_BY_LOWER.get(lower);
    if (system === undefined && !KEYWORD.test(flag)) {
      throw new MailboxError('invalid', `mailbox store: invalid flag ${JSON.stringify(flag)}`);
    }
    if (!out.has(lower)) out.set(lower, system ?? flag);
  }
  return sortFlags([...out.values()]);
}

/** System flags first in RFC order, then keywords as they came. */
function sortFlags(flags: string[]): string[] {
  const rank = (f: string): number => {
    const i = [...SYSTEM_FLAG_BY_LOWER.values()].indexOf(f);
    return i < 0 ? SYSTEM_FLAG_BY_LOWER.size : i;
  };
  return flags
    .map((f, i) => ({ f, i }))
    .sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i)
    .map((x) => x.f);
}

/** A message's flags after a STORE; `change.flags` already normalized. */
export function applyFlagChange(current: readonly string[], change: FlagChange): string[] {
  switch (change.mode) {
    case 'replace':
      return [...change.flags];
    case 'add': {
      const have = new Set(current.map((f) => f.toLowerCase()));
      return sortFlags([...current, ...change.flags.filter((f) => !have.has(f.toLowerCase()))]);
    }
    case 'remove': {
      const drop = new Set(change.flags.map((f) => f.toLowerCase()));
      return current.filter((f) => !drop.has(f.toLowerCase()));
    }
    default:
      return assertNever(change.mode);
  }
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
  /**
   * The message's MIME structure as an opaque column (protocol/mime/codec.ts), asked for once the
   * content has been read to its end and before the row commits; the caller scans the chunks as the
   * store reads them. Absent: stored without one (readers scan later and call setStructure).
   */
  readonly structure?: (() => string) | undefined;
}

/**
 * One accepted message stored for several owners at once, from a body already durable (the SMTP
 * session's local recipients, before its 250: docs/architecture.md, "one durable step"). The body is
 * shared: a small one is stored per copy behind its head, a file is linked into the store once and every
 * copy's row references it with its own head, so a large message is on disk once from DATA to mailbox.
 */
export interface AcceptedDelivery {
  /** The message as received; a file must stay where it is until this resolves (the store links it). */
  readonly body: StoredBody;
  readonly internalDateMs: number;
  readonly summary: { readonly from: string; readonly subject: string; readonly date: string };
  readonly copies: readonly AcceptedCopy[];
}

export interface AcceptedCopy {
  /** The owner: a local user address key (lower-case). */
  readonly user: string;
  readonly mailbox: string;
  /** Idempotency key, as deliver()'s. */
  readonly deliveryKey: string;
  readonly flags: readonly string[];
  /** Complete header fields stored in front of the body (Return-Path:, Delivered-To:, ...). */
  readonly head: Uint8Array;
  /** The encoded MIME structure of head and body together, or null (readers scan later). */
  readonly structure: string | null;
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
  /**
   * Every copy in one durable commit (all or none), each idempotent per its deliveryKey like deliver().
   * Results in the order of the copies; `repeated` when the key had been delivered before.
   */
  deliverAccepted(req: AcceptedDelivery): Promise<{ uid: number; id: string; repeated: boolean }[]>;
  /** What the user's folders hold together (the usage a quota is judged against). */
  quota(user: string): Promise<QuotaUsage>;
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

// ---------------------------------------------------------------------------------------------------
// IMAP (issue 13): folders, flags, APPEND/COPY/MOVE, changes since a modseq, a change feed, quotas.
// A separate interface so the fakes of delivery and POP3 (which need none of it) stay as they are; IMAP
// depends on ImapMailboxStore, and the SQLite store implements both. mailbox-store.contract.ts tests it all.

/** RFC 9051 §2.3.2's system flags that a client may set (\Recent is gone from IMAP4rev2). */
export const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'] as const;
/** PERMANENTFLAGS: the system flags and `\*`, any keyword may be created (RFC 9051 §7.1). */
export const PERMANENT_FLAGS: readonly string[] = [...SYSTEM_FLAGS, '\\*'];

/** RFC 6154 special-use attributes the store knows. */
export const SPECIAL_USES = ['\\Sent', '\\Drafts', '\\Trash', '\\Junk', '\\Archive'] as const;
export type SpecialUse = (typeof SPECIAL_USES)[number];

/** The folders ensureDefaults() makes for a new user, besides INBOX. */
export const DEFAULT_FOLDERS: readonly { readonly name: string; readonly specialUse: SpecialUse }[] = [
  { name: 'Sent', specialUse: '\\Sent' },
  { name: 'Drafts', specialUse: '\\Drafts' },
  { name: 'Trash', specialUse: '\\Trash' },
  { name: 'Junk', specialUse: '\\Junk' },
  { name: 'Archive', specialUse: '\\Archive' },
];

/** The hierarchy separator (LIST's delimiter). */
export const SEPARATOR = '/';

export type MailboxErrorCode =
  /** No such folder (IMAP [NONEXISTENT], or [TRYCREATE] for APPEND/COPY/MOVE targets). */
  | 'nonexistent'
  /** The name is taken ([ALREADYEXISTS]). */
  | 'alreadyexists'
  /** The folder exists as a \Noselect placeholder: it holds no messages. */
  | 'noselect'
  /** The rules forbid it: delete INBOX, rename a folder into itself, delete a \Noselect parent ([CANNOT]). */
  | 'cannot'
  /** A malformed folder name or flag (IMAP BAD or NO [CANNOT]). */
  | 'invalid';

/** A refusal the IMAP session turns into a tagged NO with the matching response code. */
export class MailboxError extends Error {
  readonly code: MailboxErrorCode;
  constructor(code: MailboxErrorCode, message: string) {
    super(message);
    this.name = 'MailboxError';
    this.code = code;
  }
}

export interface FolderInfo {
  /** NFC UTF-8, `/`-separated; INBOX spelled INBOX. */
  readonly name: string;
  /** \HasChildren or \HasNoChildren, \Noselect when it is a placeholder, \Subscribed when subscribed. */
  readonly attributes: readonly string[];
  readonly specialUse: SpecialUse | null;
  readonly subscribed: boolean;
  /**
   * RFC 8474 MAILBOXID: kept across RENAME, never reused (a folder deleted and created again gets a new
   * one). Null for a name listed only because it has children and no folder of its own.
   */
  readonly mailboxId: string | null;
}

export interface FlagChange {
  /** add (+FLAGS), remove (-FLAGS) or replace (FLAGS). */
  readonly mode: 'add' | 'remove' | 'replace';
  readonly flags: readonly string[];
}

export interface MessageFlags {
  readonly uid: number;
  readonly flags: readonly string[];
  readonly modseq: number;
}

export interface StoreFlagsResult {
  /** Every message found and not refused, with its flags and modseq after the change, UID order. */
  readonly messages: readonly (MessageFlags & { readonly changed: boolean })[];
  /** UIDs whose modseq was above unchangedSince: left alone (RFC 7162 §3.1.3 MODIFIED). */
  readonly modified: readonly number[];
  /** The folder's HIGHESTMODSEQ after the change. */
  readonly highestModseq: number;
}

export interface AppendRequest {
  readonly flags: readonly string[];
  readonly internalDateMs: number;
  readonly content: AsyncIterable<Uint8Array>;
  /** The header summary the CLI lists; the IMAP session parses it, the store does not. */
  readonly summary?: { readonly from: string; readonly subject: string; readonly date: string } | undefined;
  /** As DeliverRequest.structure. */
  readonly structure?: (() => string) | undefined;
}

/** What FETCH, SEARCH and SORT know of a message without reading its body. */
export interface MessageMeta extends MessageFlags {
  readonly sizeBytes: number;
  readonly internalDateMs: number;
  /** When the message was put into this folder (RFC 8514 SAVEDATE): delivery, APPEND, COPY or MOVE. */
  readonly saveDateMs: number;
  /** RFC 8474 EMAILID: the same for every copy of one stored message, never reused. */
  readonly emailId: string;
  /** RFC 8474 THREADID, or null where the store does not thread (FETCH answers NIL). */
  readonly threadId: string | null;
  /** The encoded MIME structure (protocol/mime/codec.ts), or null for a message stored without one. */
  readonly structure: string | null;
}

/** A byte range of a stored message: [start, end), clamped to the message's size. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** What SELECT and STATUS report of a folder, read together (RFC 9051 §6.3.1, §6.3.11; RFC 8438, 8474). */
export interface FolderStatus extends MailboxStatus {
  /** Messages without \Seen (STATUS UNSEEN). */
  readonly unseen: number;
  /** Messages with \Deleted (STATUS DELETED, RFC 9051 §6.3.11). */
  readonly deleted: number;
  /** The lowest UID without \Seen (SELECT's OK [UNSEEN n] once mapped to a number), or null when all are seen. */
  readonly firstUnseenUid: number | null;
  /** Messages above the \Recent mark: recent to the next session that selects (STATUS RECENT). */
  readonly recent: number;
  /** RFC 8474 MAILBOXID. */
  readonly mailboxId: string;
}

export interface CopyResult {
  /** The target's UIDVALIDITY and each source UID with its new UID (UIDPLUS COPYUID, RFC 4315). */
  readonly uidValidity: number;
  readonly mapping: readonly { readonly from: number; readonly to: number }[];
}

export interface FolderChanges {
  readonly uidValidity: number;
  readonly highestModseq: number;
  /** Messages whose modseq is above the one given, UID order (CONDSTORE FETCH CHANGEDSINCE). */
  readonly changed: readonly MessageFlags[];
  /** UIDs expunged (or moved away) above the modseq given, ascending (QRESYNC VANISHED). */
  readonly vanished: readonly number[];
}

export type FolderEvent =
  /** Something in the folder changed durably: read changesSince(the modseq last seen). */
  | {
      readonly kind: 'changed';
      readonly highestModseq: number;
      readonly uidNext: number;
      readonly messages: number;
    }
  /** The folder was deleted or renamed away: a selected session must end its selection. */
  | { readonly kind: 'gone' };

/** A change to a user's folder list or subscriptions, after its durable commit (watchFolderList). */
export type FolderListEvent =
  /** A folder was created (or a \Noselect placeholder became a real folder again). */
  | { readonly kind: 'created'; readonly name: string }
  /** A folder was deleted (it may stay as a \Noselect placeholder for its children). */
  | { readonly kind: 'deleted'; readonly name: string }
  /** A folder now has another name: one event per folder of a renamed tree, the top one first. */
  | { readonly kind: 'renamed'; readonly from: string; readonly to: string }
  | { readonly kind: 'subscribed' | 'unsubscribed'; readonly name: string };

export interface QuotaUsage {
  /** All messages of the user, in every folder (RFC 9208 MESSAGE). */
  readonly messages: number;
  /** Their stored sizes (RFC 9208 STORAGE, in bytes here; IMAP reports KiB). */
  readonly bytes: number;
}

export interface ImapMailboxStore extends MailboxStore {
  /** INBOX and the special-use folders, subscribed, the first time a user logs in (later: nothing). */
  ensureDefaults(user: string): Promise<void>;
  /** Create a folder and any missing parents; a \Noselect placeholder becomes a real folder again. */
  createFolder(user: string, name: string, options?: { readonly specialUse?: SpecialUse }): Promise<void>;
  /** Rename a folder with its children; INBOX's messages move and INBOX stays, empty (RFC 9051 §6.3.6). */
  renameFolder(user: string, from: string, to: string): Promise<void>;
  /** Delete a folder's messages durably; a folder with children stays as \Noselect (RFC 9051 §6.3.5). */
  deleteFolder(user: string, name: string): Promise<void>;
  /** Every folder of the user, by name. */
  folders(user: string): Promise<FolderInfo[]>;
  /** Every owner of a mailbox with its INBOX's message count (catcher mode's list of recipients). */
  owners(): Promise<{ readonly user: string; readonly messages: number }[]>;
  subscribe(user: string, name: string): Promise<void>;
  unsubscribe(user: string, name: string): Promise<void>;
  /** Subscribed names, existing or not (LSUB; LIST (SUBSCRIBED) marks the missing \NonExistent). */
  subscriptions(user: string): Promise<string[]>;
  /** Keywords ever set in the folder (the FLAGS response). */
  keywords(user: string, folder: string): Promise<string[]>;
  /** Change flags in one durable transaction; one new modseq for every message that changed. */
  storeFlags(
    user: string,
    folder: string,
    uids: readonly number[],
    change: FlagChange,
    unchangedSince?: number,
  ): Promise<StoreFlagsResult>;
  /** APPEND: durable before it resolves. The folder must exist ('nonexistent' means [TRYCREATE]). */
  append(user: string, folder: string, req: AppendRequest): Promise<{ uidValidity: number; uid: number }>;
  /**
   * COPY: flags, internal dates, EMAILIDs and structures kept, bodies shared, not copied; the copies'
   * save date is now.
   */
  copy(user: string, from: string, uids: readonly number[], to: string): Promise<CopyResult>;
  /** MOVE: copy and expunge in one durable transaction (RFC 6851). */
  move(user: string, from: string, uids: readonly number[], to: string): Promise<CopyResult>;
  /** What changed above a modseq; 0 gives every message (the SELECT map with flags). */
  changesSince(user: string, folder: string, modseq: number): Promise<FolderChanges>;
  /** Listen for durable changes to one folder, in-process at once, from other processes by polling. */
  watch(user: string, folder: string, listener: (event: FolderEvent) => void): () => void;
  /**
   * Listen for a user's folder list and subscription changes made through this store object. Changes
   * committed by another process (the CLI's import) are not reported.
   */
  watchFolderList(user: string, listener: (event: FolderListEvent) => void): () => void;
  /**
   * IMAP4rev1 \Recent (RFC 3501 §2.3.2): claim the messages no session has been shown yet. Returns the
   * UIDs in (from, to] as recent to the caller alone; the next caller gets only what arrived after.
   */
  claimRecent(user: string, folder: string): Promise<{ from: number; to: number }>;
  /** Metadata of these UIDs (those that exist), UID order; 'all' for the whole folder. */
  messages(user: string, folder: string, uids: readonly number[] | 'all'): Promise<MessageMeta[]>;
  /**
   * Keep a structure found later for a message stored without one (not a change: no new modseq, no
   * event). Copies sharing its EMAILID (the same bytes) that have none get it too. A UID that is gone is
   * skipped; a missing folder is 'nonexistent'.
   */
  setStructure(user: string, folder: string, uid: number, structure: string): Promise<void>;
  /**
   * Only the bytes of `range` of one message (FETCH BODY[section]<partial>), or null when it (or its
   * folder) is gone. The range is clamped to the message: sizeBytes is what content yields, 0 for a range
   * past the end. Opened and then expunged, it still reads whole, as openMessage().
   */
  openRange(user: string, folder: string, uid: number, range: ByteRange): Promise<StoredMessage | null>;
  /**
   * URLAUTH (RFC 4467 §2): the folder's mailbox access key (random, 32 bytes), kept durably. With
   * `create`, a folder without one gets one first; without it, null when there is none. A missing
   * folder is 'nonexistent'. A deleted folder's key goes with it.
   */
  accessKey(user: string, folder: string, create: boolean): Promise<Uint8Array | null>;
  /** RESETKEY: forget the key of one folder, or (null) of every folder of the user. */
  resetAccessKeys(user: string, folder: string | null): Promise<void>;
  /** The counts SELECT and STATUS need, read together; 'nonexistent' or 'noselect' as messages(). */
  folderStatus(user: string, folder: string): Promise<FolderStatus>;
}

/** The CLI id of a message: its UID in INBOX, "<mailbox>/<uid>" in any other mailbox (every store's). */
export function messageId(mailbox: string, uid: number): string {
  return mailbox === INBOX ? String(uid) : `${mailbox}/${uid}`;
}

/** A CLI message id read back; null when it is neither "<uid>" nor "<mailbox>/<uid>". */
export function parseMessageId(id: string): { mailbox: string; uid: number } | null {
  const slash = id.lastIndexOf('/');
  const mailbox = slash < 0 ? INBOX : normalizeMailboxName(id.slice(0, slash));
  const digits = id.slice(slash + 1);
  if (!/^[1-9][0-9]{0,9}$/.test(digits) || mailbox === '') return null;
  return { mailbox, uid: Number(digits) };
}

/** UIDs as a caller may pass them (repeated, unordered, junk): the valid ones, once each, ascending. */
export function distinctUids(uids: readonly number[]): number[] {
  return [...new Set(uids.filter((u) => Number.isSafeInteger(u) && u > 0))].sort((a, b) => a - b);
}
