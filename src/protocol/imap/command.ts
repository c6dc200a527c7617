// The IMAP command AST: one kind per command of RFC 9051 and RFC 3501 and of the extensions Tern serves
// (CONDSTORE/QRESYNC RFC 7162, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154,
// MULTIAPPEND RFC 3502, CATENATE RFC 4469, BINARY RFC 3516, ESEARCH RFC 4731, SEARCHRES RFC 5182,
// SORT/THREAD RFC 5256, ESORT RFC 5267, SORT=DISPLAY RFC 5957, WITHIN RFC 5032, SAVEDATE RFC 8514,
// OBJECTID RFC 8474, PREVIEW RFC 8970, QUOTA RFC 9208, ID RFC 2971, COMPRESS RFC 4978, UNAUTHENTICATE
// RFC 8437, UTF8=ACCEPT RFC 6855, NOTIFY RFC 5465, CONTEXT=SEARCH/SORT RFC 5267, URLAUTH RFC 4467 with
// URLAUTH=BINARY RFC 5524). Types only. Mailbox names are as the client wrote them: decoding modified
// UTF-7 depends on the session (mailbox-name.ts).

import type { ImapDate, ImapDateTime, SequenceSet } from './syntax.ts';

export type StatusItem =
  | 'MESSAGES'
  | 'UIDNEXT'
  | 'UIDVALIDITY'
  | 'UNSEEN'
  | 'DELETED'
  | 'SIZE'
  | 'HIGHESTMODSEQ'
  | 'APPENDLIMIT'
  | 'RECENT'
  | 'MAILBOXID';

export interface QresyncParams {
  readonly uidValidity: number;
  readonly modSeq: bigint;
  readonly knownUids: SequenceSet | null;
  /** seq-match-data: message sequence numbers and the UIDs the client knows for them. */
  readonly seqMatch: { readonly sequences: SequenceSet; readonly uids: SequenceSet } | null;
}

export interface ListReturnOptions {
  readonly subscribed: boolean;
  readonly children: boolean;
  readonly specialUse: boolean;
  readonly myRights: boolean;
  /** RETURN (STATUS (...)) (RFC 5819); null when not asked. */
  readonly status: readonly StatusItem[] | null;
}

export type ListSelectOption = 'SUBSCRIBED' | 'REMOTE' | 'RECURSIVEMATCH' | 'SPECIAL-USE';

/** An APPEND message's options, known before its data arrives. */
export interface AppendMessageHead {
  readonly flags: readonly string[] | null;
  readonly date: ImapDateTime | null;
}

/** A message literal streamed to the driver: `index` counts the command's streamed literals from 0. */
export interface StreamRef {
  readonly index: number;
  readonly sizeBytes: number;
  /** literal8 (~{n}, RFC 3516): the bytes may hold NUL. */
  readonly binary: boolean;
}

/** One part of a CATENATE message (RFC 4469 §5): a literal streamed in, or an IMAP URL's octets. */
export type CatenatePart =
  { readonly kind: 'text'; readonly data: StreamRef } | { readonly kind: 'url'; readonly url: string };

export type AppendData =
  | {
      readonly kind: 'literal';
      readonly data: StreamRef;
      /** UTF8 (literal8) of RFC 6855 §4 */ readonly utf8: boolean;
    }
  | { readonly kind: 'catenate'; readonly parts: readonly CatenatePart[] };

/**
 * Where a streamed APPEND literal sits, as far as the command was read when it was announced, so the
 * driver can put CATENATE parts (RFC 4469) together in order while their literals stream.
 */
export interface AppendPosition {
  /** The command's messages before this literal's message, complete. */
  readonly earlier: readonly AppendMessage[];
  /** For a CATENATE TEXT part: the parts of its message before it; null for a plain message literal. */
  readonly catenate: readonly CatenatePart[] | null;
}

export interface AppendMessage extends AppendMessageHead {
  readonly data: AppendData;
}

/** UPDATE, CONTEXT and PARTIAL are RFC 5267's (CONTEXT=SEARCH/SORT); PARTIAL's range is in `partial`. */
export type SearchReturnOption = 'MIN' | 'MAX' | 'ALL' | 'COUNT' | 'SAVE' | 'UPDATE' | 'CONTEXT' | 'PARTIAL';

/** RETURN (PARTIAL first:last) (RFC 5267 §4.4): result positions from 1, first ≤ last. */
export interface PartialRange {
  readonly first: number;
  readonly last: number;
}

export type DateField = 'internal' | 'sent' | 'saved';

export type SearchKey =
  | { readonly kind: 'all' }
  /** Nested keys and the top-level program: all must match. */
  | { readonly kind: 'and'; readonly keys: readonly SearchKey[] }
  | { readonly kind: 'or'; readonly left: SearchKey; readonly right: SearchKey }
  | { readonly kind: 'not'; readonly key: SearchKey }
  /** A system flag ("\Seen") or a keyword, present or absent (ANSWERED, UNSEEN, KEYWORD, NEW, ...). */
  | { readonly kind: 'flag'; readonly flag: string; readonly present: boolean }
  /** BCC/CC/FROM/SUBJECT/TO and HEADER: a substring of the named field; "" matches any such field. */
  | { readonly kind: 'header'; readonly field: string; readonly value: string }
  | { readonly kind: 'body' | 'text'; readonly value: string }
  | {
      readonly kind: 'date';
      readonly field: DateField;
      readonly op: 'before' | 'on' | 'since';
      readonly date: ImapDate;
    }
  | { readonly kind: 'size'; readonly op: 'larger' | 'smaller'; readonly bytes: number }
  | { readonly kind: 'sequence'; readonly set: SequenceSet }
  | { readonly kind: 'uid'; readonly set: SequenceSet }
  | {
      readonly kind: 'modseq';
      readonly modSeq: bigint;
      readonly entry: { readonly name: string; readonly type: 'priv' | 'shared' | 'all' } | null;
    }
  /** WITHIN (RFC 5032): internal date older / younger than n seconds. */
  | { readonly kind: 'age'; readonly op: 'older' | 'younger'; readonly seconds: number }
  | { readonly kind: 'savedatesupported' }
  | { readonly kind: 'emailid' | 'threadid'; readonly id: string };

export interface SearchProgram {
  readonly charset: string | null;
  /** The keys, ANDed ("and" when several, the key itself when one). */
  readonly key: SearchKey;
}

export type SectionText =
  | { readonly kind: 'header' | 'text' | 'mime' }
  | { readonly kind: 'fields'; readonly not: boolean; readonly fields: readonly string[] };

export interface Section {
  /** Part numbers ("1.2" → [1, 2]); empty for the whole message. */
  readonly part: readonly number[];
  readonly text: SectionText | null;
}

export type FetchItem =
  | {
      readonly kind:
        | 'envelope'
        | 'flags'
        | 'internaldate'
        | 'rfc822.size'
        | 'bodystructure'
        /** BODY without a section: the non-extensible BODYSTRUCTURE. */
        | 'body'
        | 'uid'
        | 'modseq'
        | 'emailid'
        | 'threadid'
        | 'savedate'
        /** IMAP4rev1 only: BODY[], BODY[HEADER], BODY[TEXT] with their own response names. */
        | 'rfc822'
        | 'rfc822.header'
        | 'rfc822.text';
    }
  | {
      /** BODY[...] / BODY.PEEK[...] / BINARY[...] / BINARY.PEEK[...]. */
      readonly kind: 'section';
      readonly binary: boolean;
      readonly peek: boolean;
      readonly section: Section;
      readonly partial: { readonly offset: number; readonly length: number } | null;
    }
  | { readonly kind: 'binary.size'; readonly part: readonly number[] }
  | { readonly kind: 'preview'; readonly lazy: boolean };

export type SortKey =
  'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO' | 'DISPLAYFROM' | 'DISPLAYTO';

export interface SortCriterion {
  readonly reverse: boolean;
  readonly key: SortKey;
}

/** RFC 5465 §6 filter-mailboxes; mailbox names as written. */
export type NotifyFilter =
  | { readonly kind: 'selected' | 'selected-delayed' | 'personal' | 'inboxes' | 'subscribed' }
  | { readonly kind: 'subtree' | 'mailboxes'; readonly mailboxes: readonly string[] };

/** An RFC 5465 §5 event: a known name in its RFC spelling, else the atom as written (event-ext). */
export interface NotifyEvent {
  readonly name: string;
  /** MessageNew's fetch attributes; null when none were given (and for every other event). */
  readonly fetch: readonly FetchItem[] | null;
}

export interface NotifyGroup {
  readonly filter: NotifyFilter;
  /** Empty for NONE. */
  readonly events: readonly NotifyEvent[];
}

export type ImapCommand =
  | { readonly kind: 'capability' | 'noop' | 'logout' | 'starttls' | 'namespace' | 'idle' }
  | { readonly kind: 'close' | 'unselect' | 'check' | 'unauthenticate' }
  /** initialResponse (SASL-IR): the base64 text, "" for "=", null when absent. */
  | { readonly kind: 'authenticate'; readonly mechanism: string; readonly initialResponse: string | null }
  | { readonly kind: 'login'; readonly user: string; readonly password: string }
  | { readonly kind: 'enable'; readonly capabilities: readonly string[] }
  | {
      readonly kind: 'select' | 'examine';
      readonly mailbox: string;
      readonly condstore: boolean;
      readonly qresync: QresyncParams | null;
    }
  | { readonly kind: 'create'; readonly mailbox: string; readonly specialUse: readonly string[] }
  | { readonly kind: 'delete' | 'subscribe' | 'unsubscribe'; readonly mailbox: string }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string }
  | {
      readonly kind: 'list';
      readonly reference: string;
      readonly patterns: readonly string[];
      readonly select: readonly ListSelectOption[];
      /** null: no RETURN options (and no selection options): a plain RFC 3501 LIST. */
      readonly returns: ListReturnOptions | null;
    }
  | { readonly kind: 'lsub'; readonly reference: string; readonly pattern: string }
  | { readonly kind: 'status'; readonly mailbox: string; readonly items: readonly StatusItem[] }
  | { readonly kind: 'append'; readonly mailbox: string; readonly messages: readonly AppendMessage[] }
  /** EXPUNGE, or UID EXPUNGE with its UID set (RFC 4315). */
  | { readonly kind: 'expunge'; readonly uids: SequenceSet | null }
  | {
      readonly kind: 'search';
      readonly uid: boolean;
      /** null: no RETURN (a SEARCH response); a list (maybe empty = ALL): ESEARCH (RFC 4731). */
      readonly returns: readonly SearchReturnOption[] | null;
      readonly program: SearchProgram;
      /** RETURN (PARTIAL m:n) (RFC 5267 §4.4); absent without it. */
      readonly partial?: PartialRange;
    }
  | {
      readonly kind: 'fetch';
      readonly uid: boolean;
      readonly set: SequenceSet;
      /** The macro as written (ALL, FAST, FULL), or null; items hold its expansion either way. */
      readonly macro: 'ALL' | 'FAST' | 'FULL' | null;
      readonly items: readonly FetchItem[];
      readonly changedSince: bigint | null;
      readonly vanished: boolean;
    }
  | {
      readonly kind: 'store';
      readonly uid: boolean;
      readonly set: SequenceSet;
      readonly unchangedSince: bigint | null;
      readonly mode: 'replace' | 'add' | 'remove';
      readonly silent: boolean;
      readonly flags: readonly string[];
    }
  | {
      readonly kind: 'copy' | 'move';
      readonly uid: boolean;
      readonly set: SequenceSet;
      readonly mailbox: string;
    }
  /** ID (RFC 2971): field/value pairs, null for "ID NIL". */
  | { readonly kind: 'id'; readonly params: readonly (readonly [string, string | null])[] | null }
  | { readonly kind: 'getquota'; readonly root: string }
  | { readonly kind: 'getquotaroot'; readonly mailbox: string }
  | {
      readonly kind: 'setquota';
      readonly root: string;
      readonly limits: readonly { readonly resource: string; readonly limit: number }[];
    }
  | {
      readonly kind: 'sort';
      readonly uid: boolean;
      /** ESORT (RFC 5267): RETURN options, null without them. */
      readonly returns: readonly SearchReturnOption[] | null;
      readonly criteria: readonly SortCriterion[];
      readonly program: SearchProgram;
      /** RETURN (PARTIAL m:n) (RFC 5267 §4.4); absent without it. */
      readonly partial?: PartialRange;
    }
  | {
      readonly kind: 'thread';
      readonly uid: boolean;
      readonly algorithm: string;
      readonly program: SearchProgram;
    }
  | { readonly kind: 'compress'; readonly algorithm: string }
  /** NOTIFY SET [STATUS] groups (RFC 5465 §3.1), or NOTIFY NONE: `set` null. */
  | {
      readonly kind: 'notify';
      readonly set: { readonly status: boolean; readonly groups: readonly NotifyGroup[] } | null;
    }
  /** CANCELUPDATE (RFC 5267 §4.3.5): the tags of the searches whose updates stop. */
  | { readonly kind: 'cancelupdate'; readonly tags: readonly string[] }
  /** GENURLAUTH (RFC 4467 §6.1): URL rumps, each with its mechanism (upper-cased). */
  | {
      readonly kind: 'genurlauth';
      readonly urls: readonly { readonly rump: string; readonly mechanism: string }[];
    }
  /** RESETKEY (RFC 4467 §6.2): one mailbox's key (null: all), for these mechanisms (empty: all). */
  | { readonly kind: 'resetkey'; readonly mailbox: string | null; readonly mechanisms: readonly string[] }
  /** URLFETCH (RFC 4467 §6.3) with RFC 5524's fetch parameters (empty: the plain form). */
  | { readonly kind: 'urlfetch'; readonly urls: readonly UrlFetchRequest[] };

export type UrlFetchParam = 'BODY' | 'BINARY' | 'BODYPARTSTRUCTURE';

export interface UrlFetchRequest {
  readonly url: string;
  /** null: the plain form "URLFETCH url"; a list (maybe empty): "URLFETCH (url ...)" of RFC 5524. */
  readonly params: readonly UrlFetchParam[] | null;
}

export type ImapCommandKind = ImapCommand['kind'];
