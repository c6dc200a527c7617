// IMAP command parsing: one command (tag, name, arguments; literals already placed by the reader) → the
// AST of command.ts, or a typed error the session answers with BAD. Grammar: RFC 9051 §9 and RFC 3501
// §9 with the extensions listed in command.ts. Strict where the grammar is (one SP between arguments),
// case-insensitive for keywords.
// Pure and total: parseCommand() returns a result for any items. Deliberately NOT here: which commands a
// state allows, capability checks (a CONDSTORE parameter parses whether or not it was enabled), mailbox
// name decoding, NOTIFY's semantic rules (protocol/imap/notify.ts checks those).

import type {
  AppendData,
  AppendMessage,
  AppendMessageHead,
  AppendPosition,
  CatenatePart,
  FetchItem,
  ImapCommand,
  ListReturnOptions,
  ListSelectOption,
  NotifyEvent,
  NotifyFilter,
  NotifyGroup,
  PartialRange,
  QresyncParams,
  SearchKey,
  SearchProgram,
  SearchReturnOption,
  Section,
  SortCriterion,
  SortKey,
  StatusItem,
  UrlFetchParam,
  UrlFetchRequest,
} from './command.ts';
import type { Cursor } from './syntax.ts';
import { fail, parseWith, type ImapParseError, type Item, type LiteralRole } from './syntax.ts';

export type CommandParse =
  | { readonly ok: true; readonly tag: string; readonly command: ImapCommand }
  | { readonly ok: false; readonly tag: string | null; readonly error: ImapParseError }
  /** The parse reached a literal not yet read: its role (and for a message, its head). */
  | {
      readonly ok: 'pending';
      readonly tag: string;
      readonly role: LiteralRole;
      readonly head: AppendMessageHead | null;
      /** For a message: the APPEND's target mailbox as written. */
      readonly mailbox: string | null;
      /** For a message: where its literal sits in the command (CATENATE). */
      readonly position?: AppendPosition | null;
    };

/** The tag of a command's first text, when readable (for a BAD that must carry it). */
export function readTag(items: readonly Item[]): string | null {
  const r = parseWith(items, (c) => {
    const tag = c.tag();
    // "tä1 NOOP" has no readable tag: echoing "t" would answer a command nobody sent.
    if (!c.atEnd() && c.ch() !== ' ') fail('Missing or invalid tag');
    return tag;
  });
  return r.ok === true ? r.value : null;
}

export function parseCommand(items: readonly Item[]): CommandParse {
  const tag = readTag(items);
  if (tag === null)
    return { ok: false, tag: null, error: { kind: 'syntax', text: 'Missing or invalid tag' } };
  const r = parseWith(items, (c) => {
    c.tag();
    c.sp();
    const command = parseBody(c);
    c.end();
    return command;
  });
  if (r.ok === true) return { ok: true, tag, command: r.value };
  if (r.ok === false) return { ok: false, tag, error: r.error };
  const pending = r.head as { head: AppendMessageHead; mailbox: string; position: AppendPosition } | null;
  return {
    ok: 'pending',
    tag,
    role: r.role,
    head: pending?.head ?? null,
    mailbox: pending?.mailbox ?? null,
    position: pending?.position ?? null,
  };
}

const NO_ARGS = {
  CAPABILITY: 'capability',
  NOOP: 'noop',
  LOGOUT: 'logout',
  STARTTLS: 'starttls',
  NAMESPACE: 'namespace',
  IDLE: 'idle',
  CLOSE: 'close',
  UNSELECT: 'unselect',
  CHECK: 'check',
  UNAUTHENTICATE: 'unauthenticate',
} as const;

function parseBody(c: Cursor): ImapCommand {
  const name = c.word();
  if (Object.hasOwn(NO_ARGS, name)) return { kind: NO_ARGS[name as keyof typeof NO_ARGS] };
  switch (name) {
    case 'AUTHENTICATE': {
      c.sp();
      const mechanism = c.word();
      let initialResponse: string | null = null;
      if (c.eat(' ')) {
        if (c.eat('=')) initialResponse = '';
        else {
          initialResponse = c.atom();
          if (!/^[A-Za-z0-9+/]+={0,2}$/.test(initialResponse)) fail('Initial response is not base64');
        }
      }
      return { kind: 'authenticate', mechanism, initialResponse };
    }
    case 'LOGIN': {
      c.sp();
      const user = c.astring();
      c.sp();
      return { kind: 'login', user, password: c.astring() };
    }
    case 'ENABLE': {
      const capabilities: string[] = [];
      do {
        c.sp();
        capabilities.push(c.word());
      } while (c.ch() === ' ');
      return { kind: 'enable', capabilities };
    }
    case 'SELECT':
    case 'EXAMINE':
      return parseSelect(c, name === 'SELECT' ? 'select' : 'examine');
    case 'CREATE': {
      c.sp();
      const mailbox = c.mailbox();
      const specialUse: string[] = [];
      if (c.eat(' ')) {
        // create-params (RFC 4466) with USE (RFC 6154 §3).
        c.expect('(');
        if (c.word() !== 'USE') fail('Unknown CREATE parameter');
        c.sp();
        specialUse.push(...c.flagList());
        c.expect(')');
      }
      return { kind: 'create', mailbox, specialUse };
    }
    case 'DELETE':
    case 'SUBSCRIBE':
    case 'UNSUBSCRIBE': {
      c.sp();
      const kind = name === 'DELETE' ? 'delete' : name === 'SUBSCRIBE' ? 'subscribe' : 'unsubscribe';
      return { kind, mailbox: c.mailbox() };
    }
    case 'RENAME': {
      c.sp();
      const from = c.mailbox();
      c.sp();
      return { kind: 'rename', from, to: c.mailbox() };
    }
    case 'LIST':
      return parseList(c);
    case 'LSUB': {
      c.sp();
      const reference = c.mailbox();
      c.sp();
      return { kind: 'lsub', reference, pattern: c.listMailbox() };
    }
    case 'STATUS': {
      c.sp();
      const mailbox = c.mailbox();
      c.sp();
      return { kind: 'status', mailbox, items: parseStatusItems(c) };
    }
    case 'APPEND':
      return parseAppend(c);
    case 'EXPUNGE':
      return { kind: 'expunge', uids: null };
    case 'SEARCH':
      return parseSearch(c, false);
    case 'FETCH':
      return parseFetch(c, false);
    case 'STORE':
      return parseStore(c, false);
    case 'COPY':
    case 'MOVE':
      return parseCopy(c, name === 'COPY' ? 'copy' : 'move', false);
    case 'SORT':
      return parseSort(c, false);
    case 'THREAD':
      return parseThread(c, false);
    case 'UID':
      return parseUid(c);
    case 'ID':
      return parseId(c);
    case 'GETQUOTA':
      c.sp();
      return { kind: 'getquota', root: c.astring() };
    case 'GETQUOTAROOT':
      c.sp();
      return { kind: 'getquotaroot', mailbox: c.mailbox() };
    case 'SETQUOTA':
      return parseSetQuota(c);
    case 'COMPRESS':
      c.sp();
      return { kind: 'compress', algorithm: c.word() };
    case 'NOTIFY':
      return parseNotify(c);
    case 'CANCELUPDATE':
      return parseCancelUpdate(c);
    case 'GENURLAUTH':
    case 'RESETKEY':
    case 'URLFETCH':
      return parseUrlauth(c, name);
    default:
      return fail('Unknown command', 'unknown-command');
  }
}

function parseUid(c: Cursor): ImapCommand {
  c.sp();
  const name = c.word();
  switch (name) {
    case 'COPY':
    case 'MOVE':
      return parseCopy(c, name === 'COPY' ? 'copy' : 'move', true);
    case 'FETCH':
      return parseFetch(c, true);
    case 'SEARCH':
      return parseSearch(c, true);
    case 'STORE':
      return parseStore(c, true);
    case 'EXPUNGE':
      c.sp();
      return { kind: 'expunge', uids: c.sequenceSet() };
    case 'SORT':
      return parseSort(c, true);
    case 'THREAD':
      return parseThread(c, true);
    default:
      return fail('Unknown UID command', 'unknown-command');
  }
}

function parseSelect(c: Cursor, kind: 'select' | 'examine'): ImapCommand {
  c.sp();
  const mailbox = c.mailbox();
  let condstore = false;
  let qresync: QresyncParams | null = null;
  if (c.eat(' ')) {
    c.expect('(');
    do {
      const p = c.word();
      if (p === 'CONDSTORE') condstore = true;
      else if (p === 'QRESYNC') {
        c.sp();
        c.expect('(');
        const uidValidity = c.nzNumber();
        c.sp();
        const modSeq = c.modSeq();
        let knownUids = null;
        let seqMatch = null;
        if (c.eat(' ')) {
          if (c.ch() !== '(') knownUids = c.sequenceSet();
          if (c.ch() === '(' || (knownUids !== null && c.eat(' '))) {
            c.expect('(');
            const sequences = c.sequenceSet();
            c.sp();
            const uids = c.sequenceSet();
            c.expect(')');
            seqMatch = { sequences, uids };
          }
        }
        c.expect(')');
        qresync = { uidValidity, modSeq, knownUids, seqMatch };
      } else fail('Unknown SELECT parameter');
    } while (c.eat(' '));
    c.expect(')');
  }
  return { kind, mailbox, condstore, qresync };
}

const STATUS_ITEMS: readonly StatusItem[] = [
  'MESSAGES',
  'UIDNEXT',
  'UIDVALIDITY',
  'UNSEEN',
  'DELETED',
  'SIZE',
  'HIGHESTMODSEQ',
  'APPENDLIMIT',
  'RECENT',
  'MAILBOXID',
];

function parseStatusItems(c: Cursor): StatusItem[] {
  c.expect('(');
  const items: StatusItem[] = [];
  do {
    const w = c.word() as StatusItem;
    if (!STATUS_ITEMS.includes(w)) fail('Unknown STATUS item');
    items.push(w);
  } while (c.eat(' '));
  c.expect(')');
  return items;
}

function parseList(c: Cursor): ImapCommand {
  c.sp();
  const select: ListSelectOption[] = [];
  let extended = false;
  if (c.ch() === '(') {
    extended = true;
    c.expect('(');
    if (!c.eat(')')) {
      do {
        const o = c.word();
        if (o !== 'SUBSCRIBED' && o !== 'REMOTE' && o !== 'RECURSIVEMATCH' && o !== 'SPECIAL-USE')
          fail('Unknown LIST selection option');
        select.push(o);
      } while (c.eat(' '));
      c.expect(')');
    }
    c.sp();
    // RFC 5258 §3: RECURSIVEMATCH alone is an error.
    // REMOTE does not count: it widens the listing, it selects nothing (RFC 5258 §3).
    if (select.includes('RECURSIVEMATCH') && !select.some((o) => o !== 'RECURSIVEMATCH' && o !== 'REMOTE'))
      fail('RECURSIVEMATCH needs another selection option');
  }
  const reference = c.mailbox();
  c.sp();
  const patterns: string[] = [];
  if (c.ch() === '(') {
    extended = true;
    c.expect('(');
    do patterns.push(c.listMailbox());
    while (c.eat(' '));
    c.expect(')');
  } else patterns.push(c.listMailbox());
  let returns: ListReturnOptions | null = null;
  if (c.eat(' ')) {
    if (c.word() !== 'RETURN') fail('Expected RETURN');
    c.sp();
    c.expect('(');
    const r = {
      subscribed: false,
      children: false,
      specialUse: false,
      myRights: false,
      status: null as StatusItem[] | null,
    };
    if (!c.eat(')')) {
      do {
        const o = c.word();
        if (o === 'SUBSCRIBED') r.subscribed = true;
        else if (o === 'CHILDREN') r.children = true;
        else if (o === 'SPECIAL-USE') r.specialUse = true;
        else if (o === 'MYRIGHTS') r.myRights = true;
        else if (o === 'STATUS') {
          c.sp();
          r.status = parseStatusItems(c);
        } else fail('Unknown LIST return option');
      } while (c.eat(' '));
      c.expect(')');
    }
    returns = r;
  } else if (extended)
    returns = { subscribed: false, children: false, specialUse: false, myRights: false, status: null };
  return { kind: 'list', reference, patterns, select, returns };
}

function parseAppend(c: Cursor): ImapCommand {
  c.sp();
  const mailbox = c.mailbox();
  const messages: AppendMessage[] = [];
  // MULTIAPPEND (RFC 3502): one or more append-message after the mailbox.
  do {
    c.sp();
    let flags: string[] | null = null;
    let date = null;
    if (c.ch() === '(') {
      flags = c.flagList();
      c.sp();
    }
    if (c.ch() === '"') {
      date = c.dateTime();
      c.sp();
    }
    const head: AppendMessageHead = { flags, date };
    let data: AppendData;
    if (c.eatWord('CATENATE')) {
      c.sp();
      c.expect('(');
      const parts: CatenatePart[] = [];
      do {
        const w = c.word();
        c.sp();
        if (w === 'TEXT') {
          const position: AppendPosition = { earlier: [...messages], catenate: [...parts] };
          parts.push({ kind: 'text', data: c.messageData({ head, mailbox, position }, false) });
        } else if (w === 'URL') parts.push({ kind: 'url', url: c.astring() });
        else fail('Expected TEXT or URL');
      } while (c.eat(' '));
      c.expect(')');
      data = { kind: 'catenate', parts };
    } else if (c.eatWord('UTF8')) {
      c.sp();
      c.expect('(');
      const position: AppendPosition = { earlier: [...messages], catenate: null };
      data = { kind: 'literal', data: c.messageData({ head, mailbox, position }, true), utf8: true };
      c.expect(')');
    } else {
      const position: AppendPosition = { earlier: [...messages], catenate: null };
      data = { kind: 'literal', data: c.messageData({ head, mailbox, position }, true), utf8: false };
    }
    messages.push({ ...head, data });
  } while (c.ch() === ' ');
  return { kind: 'append', mailbox, messages };
}

/** What RETURN (...) asked: the options, and PARTIAL's range (RFC 5267 §4.4) when given. */
interface ReturnOptions {
  readonly returns: SearchReturnOption[];
  readonly partial: PartialRange | null;
}

function parseReturnOptions(c: Cursor): ReturnOptions {
  c.expect('(');
  const opts: SearchReturnOption[] = [];
  let partial: PartialRange | null = null;
  if (c.eat(')')) return { returns: opts, partial };
  do {
    const o = c.word();
    if (o === 'PARTIAL') {
      // partial-range = nz-number ":" nz-number; "*" has no meaning here, and one PARTIAL at most.
      if (partial !== null) fail('PARTIAL given twice');
      c.sp();
      const a = c.nzNumber();
      c.expect(':');
      const b = c.nzNumber();
      partial = { first: Math.min(a, b), last: Math.max(a, b) };
    } else if (
      o !== 'MIN' &&
      o !== 'MAX' &&
      o !== 'ALL' &&
      o !== 'COUNT' &&
      o !== 'SAVE' &&
      o !== 'UPDATE' &&
      o !== 'CONTEXT'
    )
      fail('Unknown RETURN option');
    if (!opts.includes(o)) opts.push(o);
  } while (c.eat(' '));
  c.expect(')');
  // RFC 5267 §4.4: one PARTIAL or one ALL, not both.
  if (partial !== null && opts.includes('ALL')) fail('PARTIAL and ALL together');
  return { returns: opts, partial };
}

function parseSearch(c: Cursor, uid: boolean): ImapCommand {
  c.sp();
  let r: ReturnOptions | null = null;
  if (c.eatWord('RETURN')) {
    c.sp();
    r = parseReturnOptions(c);
    c.sp();
  }
  const program = parseProgram(c, false);
  return {
    kind: 'search',
    uid,
    returns: r?.returns ?? null,
    program,
    ...(r === null || r.partial === null ? {} : { partial: r.partial }),
  };
}

/** [CHARSET charset SP] 1*search-key; `charsetFirst`: SORT/THREAD's mandatory charset. */
function parseProgram(c: Cursor, charsetFirst: boolean): SearchProgram {
  let charset: string | null = null;
  if (charsetFirst) {
    charset = c.astring().toUpperCase();
    c.sp();
  } else if (c.eatWord('CHARSET')) {
    c.sp();
    charset = c.astring().toUpperCase();
    c.sp();
  }
  const keys: SearchKey[] = [parseSearchKey(c)];
  while (c.eat(' ')) keys.push(parseSearchKey(c));
  return { charset, key: keys.length === 1 ? keys[0]! : { kind: 'and', keys } };
}

const FLAG_KEYS: Record<string, readonly [string, boolean]> = {
  ANSWERED: ['\\Answered', true],
  DELETED: ['\\Deleted', true],
  DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true],
  SEEN: ['\\Seen', true],
  RECENT: ['\\Recent', true],
  OLD: ['\\Recent', false],
  UNANSWERED: ['\\Answered', false],
  UNDELETED: ['\\Deleted', false],
  UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false],
  UNSEEN: ['\\Seen', false],
};
const HEADER_KEYS: Record<string, string> = {
  BCC: 'Bcc',
  CC: 'Cc',
  FROM: 'From',
  SUBJECT: 'Subject',
  TO: 'To',
};
const DATES: Record<string, readonly ['internal' | 'sent' | 'saved', 'before' | 'on' | 'since']> = {
  BEFORE: ['internal', 'before'],
  ON: ['internal', 'on'],
  SINCE: ['internal', 'since'],
  SENTBEFORE: ['sent', 'before'],
  SENTON: ['sent', 'on'],
  SENTSINCE: ['sent', 'since'],
  SAVEDBEFORE: ['saved', 'before'],
  SAVEDON: ['saved', 'on'],
  SAVEDSINCE: ['saved', 'since'],
};

function parseSearchKey(c: Cursor): SearchKey {
  const ch = c.ch();
  if (ch === '(') {
    c.open();
    const keys: SearchKey[] = [parseSearchKey(c)];
    while (c.eat(' ')) keys.push(parseSearchKey(c));
    c.close();
    return keys.length === 1 ? keys[0]! : { kind: 'and', keys };
  }
  if (ch === '$' || ch === '*' || (ch >= '0' && ch <= '9')) return { kind: 'sequence', set: c.sequenceSet() };
  const w = c.word();
  const flag = FLAG_KEYS[w];
  if (flag !== undefined) return { kind: 'flag', flag: flag[0], present: flag[1] };
  const header = HEADER_KEYS[w];
  if (header !== undefined) {
    c.sp();
    return { kind: 'header', field: header, value: c.astring() };
  }
  const date = DATES[w];
  if (date !== undefined) {
    c.sp();
    return { kind: 'date', field: date[0], op: date[1], date: c.date() };
  }
  switch (w) {
    case 'ALL':
      return { kind: 'all' };
    case 'NEW':
      return {
        kind: 'and',
        keys: [
          { kind: 'flag', flag: '\\Recent', present: true },
          { kind: 'flag', flag: '\\Seen', present: false },
        ],
      };
    case 'KEYWORD':
    case 'UNKEYWORD':
      c.sp();
      return { kind: 'flag', flag: c.atom(), present: w === 'KEYWORD' };
    case 'HEADER': {
      c.sp();
      const field = c.astring();
      c.sp();
      return { kind: 'header', field, value: c.astring() };
    }
    case 'BODY':
    case 'TEXT':
      c.sp();
      return { kind: w === 'BODY' ? 'body' : 'text', value: c.astring() };
    case 'LARGER':
    case 'SMALLER':
      c.sp();
      return { kind: 'size', op: w === 'LARGER' ? 'larger' : 'smaller', bytes: c.number64() };
    case 'UID':
      c.sp();
      return { kind: 'uid', set: c.sequenceSet() };
    case 'NOT': {
      c.sp();
      if (++c.depth > 64) fail('Search nested too deeply', 'too-deep');
      const key = parseSearchKey(c);
      c.depth--;
      return { kind: 'not', key };
    }
    case 'OR': {
      c.sp();
      if (++c.depth > 64) fail('Search nested too deeply', 'too-deep');
      const left = parseSearchKey(c);
      c.sp();
      const right = parseSearchKey(c);
      c.depth--;
      return { kind: 'or', left, right };
    }
    case 'MODSEQ': {
      c.sp();
      let entry = null;
      if (!(c.ch() >= '0' && c.ch() <= '9')) {
        const name = c.string();
        c.sp();
        const type = c.word().toLowerCase();
        if (type !== 'priv' && type !== 'shared' && type !== 'all') fail('Invalid MODSEQ entry type');
        c.sp();
        entry = { name, type } as const;
      }
      return { kind: 'modseq', modSeq: c.modSeq(), entry };
    }
    case 'OLDER':
    case 'YOUNGER':
      c.sp();
      return { kind: 'age', op: w === 'OLDER' ? 'older' : 'younger', seconds: c.nzNumber() };
    case 'SAVEDATESUPPORTED':
      return { kind: 'savedatesupported' };
    case 'EMAILID':
    case 'THREADID': {
      c.sp();
      const id = c.atom();
      if (!/^[A-Za-z0-9_-]{1,255}$/.test(id)) fail('Invalid object id');
      return { kind: w === 'EMAILID' ? 'emailid' : 'threadid', id };
    }
    default:
      return fail('Unknown search key');
  }
}

const MACROS = {
  ALL: ['flags', 'internaldate', 'rfc822.size', 'envelope'],
  FAST: ['flags', 'internaldate', 'rfc822.size'],
  FULL: ['flags', 'internaldate', 'rfc822.size', 'envelope', 'body'],
} as const;

const SIMPLE_ATTS: Record<string, FetchItem> = {
  ENVELOPE: { kind: 'envelope' },
  FLAGS: { kind: 'flags' },
  INTERNALDATE: { kind: 'internaldate' },
  'RFC822.SIZE': { kind: 'rfc822.size' },
  BODYSTRUCTURE: { kind: 'bodystructure' },
  UID: { kind: 'uid' },
  MODSEQ: { kind: 'modseq' },
  EMAILID: { kind: 'emailid' },
  THREADID: { kind: 'threadid' },
  SAVEDATE: { kind: 'savedate' },
  RFC822: { kind: 'rfc822' },
  'RFC822.HEADER': { kind: 'rfc822.header' },
  'RFC822.TEXT': { kind: 'rfc822.text' },
};

function parseFetch(c: Cursor, uid: boolean): ImapCommand {
  c.sp();
  const set = c.sequenceSet();
  c.sp();
  let macro: 'ALL' | 'FAST' | 'FULL' | null = null;
  let items: FetchItem[] = [];
  const w = c.peekWord();
  if ((w === 'ALL' || w === 'FAST' || w === 'FULL') && c.eatWord(w)) {
    macro = w;
    items = MACROS[w].map((kind) => ({ kind }));
  } else if (c.eat('(')) {
    do items.push(parseFetchAtt(c));
    while (c.eat(' '));
    c.expect(')');
  } else items.push(parseFetchAtt(c));
  let changedSince: bigint | null = null;
  let vanished = false;
  if (c.eat(' ')) {
    c.expect('(');
    do {
      const m = c.word();
      if (m === 'CHANGEDSINCE') {
        c.sp();
        changedSince = c.modSeq();
      } else if (m === 'VANISHED') vanished = true;
      else fail('Unknown FETCH modifier');
    } while (c.eat(' '));
    c.expect(')');
    // RFC 7162 §3.2.6: VANISHED needs CHANGEDSINCE and UID FETCH.
    if (vanished && (changedSince === null || !uid)) fail('VANISHED needs UID FETCH with CHANGEDSINCE');
  }
  if (uid && !items.some((i) => i.kind === 'uid')) items.push({ kind: 'uid' });
  return { kind: 'fetch', uid, set, macro, items, changedSince, vanished };
}

function parseFetchAtt(c: Cursor): FetchItem {
  const w = c.peekWord();
  const simple = SIMPLE_ATTS[w];
  if (simple !== undefined && c.eatWord(w)) return simple;
  c.advance(w.length);
  switch (w) {
    case 'BODY':
    case 'BODY.PEEK':
    case 'BINARY':
    case 'BINARY.PEEK': {
      const binary = w.startsWith('BINARY');
      if (w === 'BODY' && c.ch() !== '[') return { kind: 'body' };
      const section = binary ? { part: parsePartOnly(c), text: null } : parseSection(c);
      let partial = null;
      if (c.eat('<')) {
        const offset = c.number64();
        c.expect('.');
        const length = c.number64();
        if (length === 0) fail('Partial length must not be zero');
        c.expect('>');
        partial = { offset, length };
      }
      return { kind: 'section', binary, peek: w.endsWith('.PEEK'), section, partial };
    }
    case 'BINARY.SIZE':
      return { kind: 'binary.size', part: parsePartOnly(c) };
    case 'PREVIEW': {
      let lazy = false;
      // A bare PREVIEW may be followed by FETCH modifiers: only "(LAZY" is its own.
      if (/^ \(LAZY[ )]/i.test(c.rest())) {
        c.sp();
        c.expect('(');
        do {
          if (c.word() !== 'LAZY') fail('Unknown PREVIEW modifier');
          lazy = true;
        } while (c.eat(' '));
        c.expect(')');
      }
      return { kind: 'preview', lazy };
    }
    default:
      return fail('Unknown FETCH attribute');
  }
}

/** section-binary = "[" [section-part] "]". */
function parsePartOnly(c: Cursor): number[] {
  c.expect('[');
  const part: number[] = [];
  if (!c.eat(']')) {
    do part.push(c.nzNumber());
    while (c.eat('.'));
    c.expect(']');
  }
  return part;
}

function parseSection(c: Cursor): Section {
  c.expect('[');
  const part: number[] = [];
  const digit = (): boolean => c.ch() >= '0' && c.ch() <= '9';
  // section-part ["." section-text]: after a part, "." leads to another number or to the text.
  let textFollows = !digit() && c.ch() !== ']';
  while (digit()) {
    part.push(c.nzNumber());
    if (!c.eat('.')) break;
    if (!digit()) {
      textFollows = true;
      break;
    }
  }
  let text: Section['text'] = null;
  if (textFollows) {
    const t = c.word();
    if (t === 'HEADER') text = { kind: 'header' };
    else if (t === 'TEXT') text = { kind: 'text' };
    else if (t === 'MIME' && part.length > 0) text = { kind: 'mime' };
    else if (t === 'HEADER.FIELDS' || t === 'HEADER.FIELDS.NOT') {
      c.sp();
      c.expect('(');
      const fields: string[] = [];
      do fields.push(c.astring());
      while (c.eat(' '));
      c.expect(')');
      text = { kind: 'fields', not: t.endsWith('.NOT'), fields };
    } else fail('Invalid section');
  }
  c.expect(']');
  return { part, text };
}

function parseStore(c: Cursor, uid: boolean): ImapCommand {
  c.sp();
  const set = c.sequenceSet();
  c.sp();
  let unchangedSince: bigint | null = null;
  if (c.eat('(')) {
    if (c.word() !== 'UNCHANGEDSINCE') fail('Unknown STORE modifier');
    c.sp();
    unchangedSince = c.modSeq();
    c.expect(')');
    c.sp();
  }
  const mode = c.eat('+') ? 'add' : c.eat('-') ? 'remove' : 'replace';
  const att = c.word();
  if (att !== 'FLAGS' && att !== 'FLAGS.SILENT') fail('Expected FLAGS');
  c.sp();
  let flags: string[];
  if (c.ch() === '(') flags = c.flagList();
  else {
    flags = [c.flag()];
    while (c.eat(' ')) flags.push(c.flag());
  }
  return { kind: 'store', uid, set, unchangedSince, mode, silent: att === 'FLAGS.SILENT', flags };
}

function parseCopy(c: Cursor, kind: 'copy' | 'move', uid: boolean): ImapCommand {
  c.sp();
  const set = c.sequenceSet();
  c.sp();
  return { kind, uid, set, mailbox: c.mailbox() };
}

const SORT_KEYS: readonly SortKey[] = [
  'ARRIVAL',
  'CC',
  'DATE',
  'FROM',
  'SIZE',
  'SUBJECT',
  'TO',
  'DISPLAYFROM',
  'DISPLAYTO',
];

function parseSort(c: Cursor, uid: boolean): ImapCommand {
  c.sp();
  let r: ReturnOptions | null = null;
  if (c.eatWord('RETURN')) {
    c.sp();
    r = parseReturnOptions(c);
    c.sp();
  }
  c.expect('(');
  const criteria: SortCriterion[] = [];
  do {
    const reverse = c.eatWord('REVERSE') && (c.sp(), true);
    const key = c.word() as SortKey;
    if (!SORT_KEYS.includes(key)) fail('Unknown sort key');
    criteria.push({ reverse, key });
  } while (c.eat(' '));
  c.expect(')');
  c.sp();
  const program = parseProgram(c, true);
  return {
    kind: 'sort',
    uid,
    returns: r?.returns ?? null,
    criteria,
    program,
    ...(r === null || r.partial === null ? {} : { partial: r.partial }),
  };
}

/** CANCELUPDATE 1*(SP quoted) (RFC 5267 §5); a literal is taken too, as any string. */
function parseCancelUpdate(c: Cursor): ImapCommand {
  const tags: string[] = [];
  do {
    c.sp();
    tags.push(c.string());
  } while (c.ch() === ' ');
  return { kind: 'cancelupdate', tags };
}

function parseThread(c: Cursor, uid: boolean): ImapCommand {
  c.sp();
  const algorithm = c.word();
  c.sp();
  return { kind: 'thread', uid, algorithm, program: parseProgram(c, true) };
}

function parseId(c: Cursor): ImapCommand {
  c.sp();
  if (c.eatWord('NIL')) return { kind: 'id', params: null };
  c.expect('(');
  const params: [string, string | null][] = [];
  if (!c.eat(')')) {
    do {
      const field = c.string();
      c.sp();
      params.push([field, c.nstring()]);
      // RFC 2971 §3.3: at most 30 pairs.
      if (params.length > 30) fail('Too many ID fields');
    } while (c.eat(' '));
    c.expect(')');
  }
  return { kind: 'id', params };
}

function parseSetQuota(c: Cursor): ImapCommand {
  c.sp();
  const root = c.astring();
  c.sp();
  c.expect('(');
  const limits: { resource: string; limit: number }[] = [];
  if (!c.eat(')')) {
    do {
      const resource = c.word();
      c.sp();
      limits.push({ resource, limit: c.number64() });
    } while (c.eat(' '));
    c.expect(')');
  }
  return { kind: 'setquota', root, limits };
}

/** RFC 5465 §8: "NOTIFY" SP ("NONE" / "SET" [SP "STATUS"] 1*(SP event-group)). */
function parseNotify(c: Cursor): ImapCommand {
  c.sp();
  const w = c.word();
  if (w === 'NONE') return { kind: 'notify', set: null };
  if (w !== 'SET') fail('Expected NOTIFY SET or NOTIFY NONE');
  c.sp();
  let status = false;
  if (c.eatWord('STATUS')) {
    status = true;
    c.sp();
  }
  const groups: NotifyGroup[] = [];
  do groups.push(parseNotifyGroup(c));
  while (c.eat(' '));
  return { kind: 'notify', set: { status, groups } };
}

const NOTIFY_EVENTS: ReadonlyMap<string, string> = new Map(
  [
    'MessageNew',
    'MessageExpunge',
    'FlagChange',
    'AnnotationChange',
    'MailboxName',
    'SubscriptionChange',
    'MailboxMetadataChange',
    'ServerMetadataChange',
  ].map((e) => [e.toUpperCase(), e]),
);

/** event-group = "(" filter-mailboxes SP events ")"; events = ( "(" event *(SP event) ")" ) / "NONE". */
function parseNotifyGroup(c: Cursor): NotifyGroup {
  c.expect('(');
  const filter = parseNotifyFilter(c);
  c.sp();
  const events: NotifyEvent[] = [];
  if (!c.eatWord('NONE')) {
    c.expect('(');
    do {
      const atom = c.atom();
      const name = NOTIFY_EVENTS.get(atom.toUpperCase()) ?? atom;
      let fetch: FetchItem[] | null = null;
      if (name === 'MessageNew' && c.rest().startsWith(' (')) {
        c.sp();
        c.expect('(');
        fetch = [];
        do fetch.push(parseFetchAtt(c));
        while (c.eat(' '));
        c.expect(')');
      }
      events.push({ name, fetch });
    } while (c.eat(' '));
    c.expect(')');
  }
  c.expect(')');
  return { filter, events };
}

function parseNotifyFilter(c: Cursor): NotifyFilter {
  const w = c.word();
  switch (w) {
    case 'SELECTED':
      return { kind: 'selected' };
    case 'SELECTED-DELAYED':
      return { kind: 'selected-delayed' };
    case 'PERSONAL':
      return { kind: 'personal' };
    case 'INBOXES':
      return { kind: 'inboxes' };
    case 'SUBSCRIBED':
      return { kind: 'subscribed' };
    case 'SUBTREE':
    case 'MAILBOXES': {
      // one-or-more-mailbox = "(" mailbox *(SP mailbox) ")" / mailbox
      c.sp();
      const mailboxes: string[] = [];
      if (c.eat('(')) {
        do mailboxes.push(c.mailbox());
        while (c.eat(' '));
        c.expect(')');
      } else mailboxes.push(c.mailbox());
      return { kind: w === 'SUBTREE' ? 'subtree' : 'mailboxes', mailboxes };
    }
    default:
      return fail('Unknown NOTIFY mailbox filter');
  }
}

/** GENURLAUTH, RESETKEY and URLFETCH (RFC 4467 §6, §9; URLFETCH parameters RFC 5524 §4). */
function parseUrlauth(c: Cursor, name: 'GENURLAUTH' | 'RESETKEY' | 'URLFETCH'): ImapCommand {
  if (name === 'RESETKEY') {
    if (!c.eat(' ')) return { kind: 'resetkey', mailbox: null, mechanisms: [] };
    const mailbox = c.mailbox();
    const mechanisms: string[] = [];
    while (c.eat(' ')) mechanisms.push(c.word());
    return { kind: 'resetkey', mailbox, mechanisms };
  }
  if (name === 'GENURLAUTH') {
    const urls: { rump: string; mechanism: string }[] = [];
    do {
      c.sp();
      const rump = c.astring();
      c.sp();
      urls.push({ rump, mechanism: c.word() });
    } while (c.ch() === ' ');
    return { kind: 'genurlauth', urls };
  }
  const urls: UrlFetchRequest[] = [];
  do {
    c.sp();
    if (!c.eat('(')) {
      urls.push({ url: c.astring(), params: null });
      continue;
    }
    const url = c.astring();
    const params: UrlFetchParam[] = [];
    while (c.eat(' ')) {
      const p = c.word();
      if (p !== 'BODY' && p !== 'BINARY' && p !== 'BODYPARTSTRUCTURE') fail('Unknown URLFETCH parameter');
      if (!params.includes(p)) params.push(p);
    }
    // RFC 5524 §4: BODY and BINARY ask for the same octets two ways; one at a time.
    if (params.includes('BODY') && params.includes('BINARY')) fail('BODY and BINARY together');
    c.expect(')');
    urls.push({ url, params });
  } while (c.ch() === ' ');
  return { kind: 'urlfetch', urls };
}
