// `tern sendmail`: the sendmail(8) command line that cron, PHP's mail(), git send-email and every script
// that pipes a message into /usr/sbin/sendmail expect (reached through a `sendmail`, `mailq` or
// `newaliases` link to bin/tern.mjs as well: docs/install.md). Like Postfix's sendmail + postdrop, it
// writes the message straight into the queue (the one way in), stamped with the caller's Unix identity
// (a Received: line "from userid N", the envelope sender login@origin), then moves the queue's change
// counter so a running server's worker delivers it within a second; without a running server the
// message waits in the queue for it.
// SECURITY: no listener is opened or trusted here, so nothing remote can use this path: the gate is who
// may write data_dir (the tern user, root, whoever the operator lets). The envelope sender is the
// caller's own address; -f names another only for a trusted caller (root or the owner of data_dir) or
// for an address the caller's Tern user (login@origin) owns, the rule an authenticated submission keeps.
// Root is switched to data_dir's owner before anything is written, so the server can read what it left.
// -bs is a plain SMTP session with the local smtp listener: its rules (no relaying without AUTH) hold.
// Exit codes are sendmail's (sysexits.h): 64 usage, 65 data, 67 unknown user, 70 software, 75 try
// again later, 77 not permitted, 78 configuration.
// Deliberately NOT here: delivery (the worker), alias files (aliases live in the directory: `tern alias`,
// so newaliases has nothing to rebuild), a daemon (-bd, -q30m: `tern serve`), DKIM signing (the worker
// signs mail queued here, service "sendmail", as it signs authenticated submissions).

import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { Config } from '../../config/config.ts';
import { ConfigLoadError } from '../../config/load.ts';
import type { Mailbox } from '../../core/address.ts';
import { formatMailbox, parseMailbox } from '../../core/address.ts';
import { formatRfc5322Date } from '../../core/date.ts';
import type { DsnNotify, EnvelopeRecipient } from '../../core/envelope.ts';
import type { Directory } from '../../directory/directory.ts';
import { decideRecipient } from '../../policy/relay.ts';
import { extractAddresses } from '../../protocol/address-list.ts';
import { isBlindCopyField, isReturnPathField } from '../../protocol/smtp/header-capture.ts';
import type { Queue } from '../../queue/queue.ts';
import { dataPaths } from '../../services.ts';
import type { Command, CommandContext, ParsedArgs } from '../command.ts';
import { CliError, writeLine } from '../io.ts';
import { queueList } from './queue.ts';

/** sysexits.h, the codes callers of sendmail test for. */
export const EX = {
  ok: 0,
  usage: 64,
  dataErr: 65,
  noUser: 67,
  software: 70,
  tempFail: 75,
  noPerm: 77,
  config: 78,
} as const;

export type SendmailMode = 'deliver' | 'smtp' | 'verify' | 'print-queue' | 'rebuild-aliases' | 'flush-queue';

export interface SendmailArgs {
  readonly mode: SendmailMode;
  /** -t: recipients from To:/Cc:/Bcc: (Resent-* when present), added to those on the command line. */
  readonly extractRecipients: boolean;
  /** A line holding only "." ends the message; -i and -oi turn that off. */
  readonly dotEnds: boolean;
  /** -f / -r: the envelope sender as given ("" for the null sender <>); null when not given. */
  readonly sender: string | null;
  /** -F: the full name for a From: that Tern adds. */
  readonly fullName: string | null;
  /** -N: DSN NOTIFY for every recipient; null when not given. */
  readonly notify: readonly DsnNotify[] | null;
  /** -R: DSN RET. */
  readonly ret: 'FULL' | 'HDRS' | null;
  /** -V: DSN ENVID. */
  readonly envid: string | null;
  /** Command-line recipients (or the addresses -bv verifies), as written. */
  readonly recipients: readonly string[];
  /** Options accepted and ignored, as written (Postfix ignores these too). */
  readonly ignored: readonly string[];
}

export type ParsedSendmail = { ok: true; value: SendmailArgs } | { ok: false; error: string };

/** Options that take a value: in the same word (`-fme@x`) or the next one (`-f me@x`). */
const WITH_VALUE = new Set('ABCFLNORVXbefhopr');
/** Options without a value; they may be clustered (`-ti`). */
const WITHOUT_VALUE = new Set('GIUcimntvx');

const MODES: Readonly<Record<string, SendmailMode>> = {
  m: 'deliver',
  s: 'smtp',
  v: 'verify',
  p: 'print-queue',
  i: 'rebuild-aliases',
};

/**
 * sendmail's command line, getopt style as Postfix reads it: options end at the first word that is no
 * option, or at `--`; one-letter options cluster (`-ti`); a value follows its letter or is the next word.
 * Pure and total.
 */
export function parseSendmailArgs(argv: readonly string[]): ParsedSendmail {
  let mode: SendmailMode = 'deliver';
  let extractRecipients = false;
  let dotEnds = true;
  let sender: string | null = null;
  let fullName: string | null = null;
  let notify: DsnNotify[] | null = null;
  let ret: 'FULL' | 'HDRS' | null = null;
  let envid: string | null = null;
  const ignored: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') {
      i++;
      break;
    }
    if (!word.startsWith('-') || word === '-') break;
    for (let j = 1; j < word.length; j++) {
      const letter = word[j]!;
      if (letter === 'q') {
        // -q alone runs the queue once; -q30m (a queue-running daemon) is `tern serve`'s job.
        const interval = word.slice(j + 1);
        if (interval !== '' && !/^[RS]/.test(interval)) {
          return { ok: false, error: `-q${interval}: a queue runner is \`tern serve\`` };
        }
        mode = 'flush-queue';
        break;
      }
      if (WITHOUT_VALUE.has(letter)) {
        if (letter === 't') extractRecipients = true;
        else if (letter === 'i') dotEnds = false;
        else if (letter === 'I') mode = 'rebuild-aliases';
        else ignored.push(`-${letter}`);
        continue;
      }
      if (!WITH_VALUE.has(letter)) return { ok: false, error: `unknown option -${letter}` };
      let value = word.slice(j + 1);
      if (value === '') {
        if (i + 1 >= argv.length) return { ok: false, error: `option -${letter} needs a value` };
        value = argv[++i]!;
      }
      switch (letter) {
        case 'b': {
          const m = MODES[value];
          if (m === undefined) {
            return {
              ok: false,
              error:
                value === 'd' || value === 'D'
                  ? '-bd: the daemon is `tern serve`'
                  : `-b${value}: mode not supported (use -bm, -bs, -bv, -bp or -bi)`,
            };
          }
          mode = m;
          break;
        }
        case 'f':
        case 'r':
          sender = value;
          break;
        case 'F':
          fullName = value;
          break;
        case 'o':
          // -oi is -i; the other -o options (-oem, -odb, -oA...) set things Tern decides itself.
          if (value === 'i') dotEnds = false;
          else ignored.push(`-o${value}`);
          break;
        case 'N': {
          const parsed = parseNotify(value);
          if (parsed === null)
            return { ok: false, error: `-N ${value}: expected never or success,delay,failure` };
          notify = parsed;
          break;
        }
        case 'R': {
          const upper = value.toUpperCase();
          if (upper !== 'FULL' && upper !== 'HDRS')
            return { ok: false, error: `-R ${value}: expected full or hdrs` };
          ret = upper;
          break;
        }
        case 'V':
          if (!/^[\x21-\x7e]{1,100}$/.test(value))
            return { ok: false, error: '-V: envelope id must be printable ASCII' };
          envid = value;
          break;
        default:
          ignored.push(`-${letter}${value}`);
      }
      break;
    }
  }
  return {
    ok: true,
    value: {
      mode,
      extractRecipients,
      dotEnds,
      sender,
      fullName,
      notify,
      ret,
      envid,
      recipients: argv.slice(i),
      ignored,
    },
  };
}

function parseNotify(value: string): DsnNotify[] | null {
  const words = value
    .toUpperCase()
    .split(',')
    .map((w) => w.trim());
  if (words.length === 1 && words[0] === 'NEVER') return [];
  const out: DsnNotify[] = [];
  for (const w of words) {
    if (w !== 'SUCCESS' && w !== 'DELAY' && w !== 'FAILURE') return null;
    if (!out.includes(w)) out.push(w);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Standard input: lines ended by LF (or CRLF) become CRLF lines, a bare CR a line end too (as the SMTP
// side's bare_line_endings = "normalize"); a lone "." ends the message unless -i.

const CRLF = Buffer.from('\r\n');
/** A line longer than this is passed on in pieces (it can no longer be a lone "."). */
const MAX_HELD_LINE_BYTES = 8192;

/** One piece of a line; `eol`: the line ends after it. */
export interface LinePiece {
  readonly bytes: Buffer;
  readonly eol: boolean;
}

export class InputFramer {
  readonly #dotEnds: boolean;
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** Part of the current line was passed on already. */
  #started = false;
  #done = false;

  constructor(dotEnds: boolean) {
    this.#dotEnds = dotEnds;
  }

  /** A lone "." was read: what follows is not the message. */
  get done(): boolean {
    return this.#done;
  }

  feed(chunk: Uint8Array): LinePiece[] {
    const out: LinePiece[] = [];
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let pos = 0;
    while (!this.#done && pos < buf.length) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl === -1) {
        this.#hold(buf.subarray(pos));
        if (this.#heldBytes > MAX_HELD_LINE_BYTES) {
          // Keep a final CR: it may be the first half of a CRLF.
          const held = Buffer.concat(this.#held);
          const keep = held[held.length - 1] === 0x0d ? 1 : 0;
          this.#emit(out, held.subarray(0, held.length - keep), false);
          this.#held = keep === 1 ? [held.subarray(held.length - 1)] : [];
          this.#heldBytes = keep;
          this.#started = true;
        }
        break;
      }
      this.#hold(buf.subarray(pos, nl));
      pos = nl + 1;
      this.#endLine(out);
    }
    return out;
  }

  /** End of input: a last line without its LF still ends with CRLF. */
  finish(): LinePiece[] {
    const out: LinePiece[] = [];
    if (!this.#done && (this.#heldBytes > 0 || this.#started)) this.#endLine(out);
    return out;
  }

  #hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#held.push(bytes);
    this.#heldBytes += bytes.length;
  }

  #endLine(out: LinePiece[]): void {
    let line = Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    if (line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (this.#dotEnds && !this.#started && line.length === 1 && line[0] === 0x2e) {
      this.#done = true;
      return;
    }
    this.#started = false;
    this.#emit(out, line, true);
  }

  #emit(out: LinePiece[], bytes: Buffer, eol: boolean): void {
    // A bare CR inside a line ends a line as well: never pass one on (SMTP smuggling, RFC 5321 §2.3.8).
    let start = 0;
    for (let cr = bytes.indexOf(0x0d); cr !== -1; cr = bytes.indexOf(0x0d, start)) {
      out.push({ bytes: bytes.subarray(start, cr), eol: true });
      start = cr + 1;
    }
    out.push({ bytes: bytes.subarray(start), eol });
  }
}

// ---------------------------------------------------------------------------------------------------
// The header section, and the recipients -t takes from it.

/** Header fields in their raw form (name, value and folds, each line CRLF-ended), as latin1 byte strings. */
export type RawFields = readonly string[];

/** Name of a raw field, lower-cased. */
function fieldName(raw: string): string {
  return raw.slice(0, raw.indexOf(':')).trim().toLowerCase();
}

/** A field's value as UTF-8 text, unfolded. */
function fieldValue(raw: string): string {
  const bytes = Buffer.from(raw.slice(raw.indexOf(':') + 1), 'latin1');
  return new TextDecoder()
    .decode(bytes)
    .replace(/\r\n[ \t]/g, ' ')
    .trim();
}

/**
 * Recipients of To:, Cc: and Bcc: (or of Resent-To:, Resent-Cc:, Resent-Bcc: when the message has any
 * Resent- field: it is being resent, RFC 5322 §3.6.6), as written; unqualified names (`root`) too.
 */
export function headerRecipients(fields: RawFields): string[] {
  const resent = fields.some((f) => fieldName(f).startsWith('resent-'));
  const names = resent ? ['resent-to', 'resent-cc', 'resent-bcc'] : ['to', 'cc', 'bcc'];
  const out: string[] = [];
  for (const f of fields) {
    if (!names.includes(fieldName(f))) continue;
    const value = fieldValue(f);
    out.push(...extractAddresses(value));
    // extractAddresses wants an "@": a bare local name (cron's "To: root") is qualified later.
    for (const part of value.split(',')) {
      const bare = /^\s*<?([A-Za-z0-9._+-]+)>?\s*$/.exec(part);
      if (bare) out.push(bare[1]!);
    }
  }
  return out;
}

const FIELD_START = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

/**
 * Collects whole lines of the header section; anything else returns its pieces unconsumed. At most
 * maxBytes of header section (a header bigger than that is not a message a script meant to send).
 */
export class HeaderReader {
  readonly #maxBytes: number;
  readonly fields: string[] = [];
  #line: Buffer[] = [];
  #bytes = 0;
  #first = true;
  #ended = false;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Take pieces; returns the body pieces that followed the header's end (empty until it ends). */
  take(pieces: readonly LinePiece[]): { body: LinePiece[]; tooBig: boolean } {
    const body: LinePiece[] = [];
    for (const piece of pieces) {
      if (this.#ended) {
        body.push(piece);
        continue;
      }
      this.#line.push(piece.bytes);
      this.#bytes += piece.bytes.length + 2;
      if (this.#bytes > this.#maxBytes) return { body, tooBig: true };
      if (!piece.eol) continue;
      const line = Buffer.concat(this.#line).toString('latin1');
      this.#line = [];
      const first = this.#first;
      this.#first = false;
      if (first && line.startsWith('From ')) continue; // an mbox separator, as sendmail drops it
      if (line === '') {
        this.#ended = true;
      } else if ((line.startsWith(' ') || line.startsWith('\t')) && this.fields.length > 0) {
        this.fields[this.fields.length - 1] += `${line}\r\n`;
      } else if (FIELD_START.test(line)) {
        this.fields.push(`${line}\r\n`);
      } else {
        // The body began without the empty line: it is inserted before this line.
        this.#ended = true;
        body.push({ bytes: Buffer.from(line, 'latin1'), eol: true });
      }
    }
    return { body, tooBig: false };
  }
}

/** RFC 2047 encoded-word for a non-ASCII display name; ASCII is quoted when it holds specials. */
export function formatDisplayName(name: string): string {
  if (/[^\x20-\x7e]/.test(name)) return `=?UTF-8?B?${Buffer.from(name, 'utf8').toString('base64')}?=`;
  if (/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$/.test(name)) return name;
  return `"${name.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The header section as queued: Bcc:/Resent-Bcc: and Return-Path: dropped, From:, Date: and Message-ID:
 * added where missing (RFC 6409 §8.1-8.3), as latin1 byte strings.
 */
export function completeHeader(
  fields: RawFields,
  info: { from: string; fullName: string | null; nowMs: number; messageId: string },
): string[] {
  const kept = fields.filter((f) => !isBlindCopyField(f) && !isReturnPathField(f));
  const has = (name: string): boolean => kept.some((f) => fieldName(f) === name);
  const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
  const added: string[] = [];
  if (!has('from')) {
    const from =
      info.fullName === null || info.fullName === ''
        ? `<${info.from}>`
        : `${formatDisplayName(info.fullName)} <${info.from}>`;
    added.push(utf8(`From: ${from}\r\n`));
  }
  if (!has('date')) added.push(`Date: ${formatRfc5322Date(info.nowMs)}\r\n`);
  if (!has('message-id')) added.push(utf8(`Message-ID: <${info.messageId}>\r\n`));
  return [...kept, ...added];
}

// ---------------------------------------------------------------------------------------------------
// Who is calling, and what it may say it is.

export interface CallerIdentity {
  readonly uid: number;
  readonly login: string;
  /** Root or the owner of data_dir: may set any envelope sender (sendmail's trusted users). */
  readonly trusted: boolean;
}

function callerIdentity(dataRoot: string): CallerIdentity {
  const uid = process.getuid?.() ?? -1;
  let login: string;
  try {
    login = userInfo().username;
  } catch {
    login = `uid${uid}`; // a uid without a passwd entry (containers)
  }
  let owner = -2;
  try {
    owner = statSync(dataRoot).uid;
  } catch {
    // no data_dir yet: only root is trusted
  }
  return { uid, login, trusted: uid === 0 || uid === owner };
}

/** The domain unqualified names and the default sender get: the host name when it is ours. */
export function originDomain(config: Pick<Config, 'hostname' | 'localDomains'>): string {
  const host = config.hostname.toLowerCase();
  if (config.localDomains.some((d) => d.toLowerCase() === host)) return host;
  return config.localDomains[0] ?? host;
}

/** `root` → root@origin; `<a@b>` → a@b; anything with an @ as written. */
export function qualify(address: string, origin: string): string {
  const bare = address.trim().replace(/^<(.*)>$/, '$1');
  return bare.includes('@') || bare === '' ? bare : `${bare}@${origin}`;
}

/**
 * May this caller use `sender` as its envelope sender? Its own login@origin always; another address
 * (or the null sender) when it is trusted, or when its Tern user login@origin owns it (its address, an
 * alias to it, a send-as grant), the same rule an authenticated submission keeps.
 */
export async function senderAllowed(
  caller: CallerIdentity,
  sender: string,
  origin: string,
  directory: Pick<Directory, 'ownsAddress'>,
): Promise<boolean> {
  const own = `${caller.login}@${origin}`;
  if (caller.trusted || sender.toLowerCase() === own.toLowerCase()) return true;
  if (sender === '') return false;
  return await directory.ownsAddress(own, sender).catch(() => false);
}

// ---------------------------------------------------------------------------------------------------
// Submitting one message.

export class SendmailError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'SendmailError';
    this.exitCode = exitCode;
  }
}

/** Recipients as mailboxes, each checked: syntax, and a local one known to the directory. */
async function checkRecipients(
  written: readonly string[],
  origin: string,
  directory: Directory,
  fromHeader: boolean,
): Promise<Mailbox[]> {
  const out: Mailbox[] = [];
  const seen = new Set<string>();
  for (const text of written) {
    const address = qualify(text, origin);
    const mailbox = parseMailbox(address, true);
    if (mailbox === null) {
      throw new SendmailError(`${text}: not a valid address`, fromHeader ? EX.dataErr : EX.usage);
    }
    const key = `${mailbox.local}@${mailbox.domain.toLowerCase()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const decision = await verifyOne(mailbox, origin, directory);
    if (decision.kind === 'unknown') throw new SendmailError(`${address}: user unknown`, EX.noUser);
    out.push(mailbox);
  }
  return out;
}

type Verified =
  | { kind: 'local'; users: readonly string[]; forward: readonly string[] }
  | { kind: 'remote' }
  | { kind: 'unknown' };

async function verifyOne(mailbox: Mailbox, origin: string, directory: Directory): Promise<Verified> {
  // A local caller may send anywhere (Postfix's sendmail too): mayRelay only decides local vs remote here.
  const decision = decideRecipient(mailbox, {
    isLocalDomain: (d) => directory.isLocalDomain(d),
    primaryDomain: origin,
    mayRelay: true,
  });
  if (decision.kind !== 'local') return { kind: 'remote' };
  const resolved = await directory.resolve(decision.address);
  if (resolved.kind === 'local') return resolved;
  return resolved.kind === 'unknown' ? { kind: 'unknown' } : { kind: 'remote' };
}

export interface SubmitRequest {
  readonly args: SendmailArgs;
  readonly caller: CallerIdentity;
  readonly input: Readable;
  readonly config: Pick<Config, 'hostname' | 'localDomains' | 'limits'>;
  readonly nowMs: number;
}

/** Read the message from `input`, check it, queue it (fsynced); the queue id. Throws SendmailError. */
export async function submitMessage(
  deps: { readonly queue: Queue; readonly directory: Directory },
  req: SubmitRequest,
): Promise<{ queueId: string; sender: string; recipients: number }> {
  const { args, caller, config } = req;
  const origin = originDomain(config);
  const sender = args.sender === null ? `${caller.login}@${origin}` : qualify(args.sender, origin);
  if (sender !== '' && parseMailbox(sender, true) === null) {
    throw new SendmailError(`-f ${args.sender ?? ''}: not a valid address`, EX.usage);
  }
  if (!(await senderAllowed(caller, sender, origin, deps.directory))) {
    throw new SendmailError(
      `${caller.login} (uid ${caller.uid}) may not send as <${sender}>: only as ${caller.login}@${origin} or an address that Tern user owns`,
      EX.noPerm,
    );
  }

  const framer = new InputFramer(args.dotEnds);
  const header = new HeaderReader(Math.min(1024 * 1024, config.limits.maxMessageBytes));
  const iterator = (req.input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  let pending: LinePiece[] = [];
  let inputEnded = false;
  // The header section first: -t needs it before anything is queued.
  while (!header.ended) {
    const next = framer.done ? { done: true as const, value: undefined } : await iterator.next();
    const pieces = next.done === true ? framer.finish() : framer.feed(Buffer.from(next.value));
    const taken = header.take(pieces);
    if (taken.tooBig) throw new SendmailError('the header section is too large', EX.dataErr);
    pending = taken.body;
    if (next.done === true || framer.done) {
      inputEnded = next.done === true;
      if (!header.ended) header.take([{ bytes: Buffer.alloc(0), eol: true }]);
    }
  }
  const written = [...args.recipients];
  if (args.extractRecipients) written.push(...headerRecipients(header.fields));
  if (written.length === 0) {
    throw new SendmailError(
      args.extractRecipients
        ? 'no recipient addresses found in the header'
        : 'no recipients given (or use -t)',
      EX.usage,
    );
  }
  const mailboxes = [
    ...(await checkRecipients(args.recipients, origin, deps.directory, false)),
    ...(args.extractRecipients
      ? await checkRecipients(headerRecipients(header.fields), origin, deps.directory, true)
      : []),
  ];
  const unique = new Map(mailboxes.map((m) => [`${m.local}@${m.domain.toLowerCase()}`, m]));
  const recipients: EnvelopeRecipient[] = [...unique.values()].map((m) => ({
    address: formatMailbox(m),
    notify: args.notify,
    orcpt: null,
  }));

  const writer = deps.queue.begin();
  try {
    const hostname = config.hostname;
    const fields = completeHeader(header.fields, {
      from: sender === '' ? `${caller.login}@${origin}` : sender,
      fullName: args.fullName,
      nowMs: req.nowMs,
      messageId: `${randomBytes(12).toString('hex')}@${hostname}`,
    });
    const received =
      `Received: by ${hostname} (Tern sendmail, from userid ${caller.uid})\r\n` +
      `\tid ${writer.id}; ${formatRfc5322Date(req.nowMs)}\r\n`;
    const head = Buffer.from([received, ...fields, '\r\n'].join(''), 'latin1');
    let sizeBytes = 0;
    let eightBit = false;
    let longLines = false;
    let lineBytes = 0;
    const maxBytes = config.limits.maxMessageBytes;
    const put = async (bytes: Buffer): Promise<void> => {
      sizeBytes += bytes.length;
      if (sizeBytes > maxBytes) throw new SendmailError(`message larger than ${maxBytes} bytes`, EX.dataErr);
      if (!eightBit && bytes.some((b) => b > 0x7f)) eightBit = true;
      await writer.write(bytes);
    };
    const putPieces = async (pieces: readonly LinePiece[]): Promise<void> => {
      for (const p of pieces) {
        lineBytes += p.bytes.length;
        if (lineBytes > 998) longLines = true;
        await put(p.eol ? Buffer.concat([p.bytes, CRLF]) : p.bytes);
        if (p.eol) lineBytes = 0;
      }
    };
    await put(head);
    await putPieces(pending);
    while (!inputEnded && !framer.done) {
      const next = await iterator.next();
      if (next.done === true) {
        await putPieces(framer.finish());
        break;
      }
      await putPieces(framer.feed(Buffer.from(next.value)));
    }
    // UTF-8 in an address or a header field needs SMTPUTF8 onward (RFC 6531, RFC 6532); in the body only 8BITMIME.
    const smtputf8 =
      /[^\x00-\x7f]/.test(sender + recipients.map((r) => r.address).join('')) || head.some((b) => b > 0x7f);
    await writer.commit({
      sender,
      body: eightBit ? '8BITMIME' : '7BIT',
      smtputf8,
      ret: args.ret,
      envid: args.envid,
      recipients,
      client: {
        ip: '127.0.0.1',
        port: 0,
        hostname: null,
        helo: hostname,
        esmtp: true,
        tls: null,
        authUser: null,
        service: 'sendmail',
      },
      receivedAtMs: req.nowMs,
      returnPathDropped: true,
      ...(longLines ? { longLines: true } : {}),
    });
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err;
  } finally {
    // The rest of a message cut by a lone "." is not read: let the writer of the pipe go.
    await iterator.return?.();
  }
  return { queueId: writer.id, sender, recipients: recipients.length };
}

// ---------------------------------------------------------------------------------------------------
// The other modes.

/** -bv: one line per address, sendmail's "addr... deliverable" wording; exit 67 if any is not. */
export async function verifyAddresses(
  written: readonly string[],
  origin: string,
  directory: Directory,
  out: Writable,
): Promise<number> {
  if (written.length === 0) throw new SendmailError('no addresses to verify', EX.usage);
  let code: number = EX.ok;
  for (const text of written) {
    const address = qualify(text, origin);
    const mailbox = parseMailbox(address, true);
    if (mailbox === null) {
      await writeLine(out, `${text}... not a valid address`);
      code = code === EX.ok ? EX.usage : code;
      continue;
    }
    const v = await verifyOne(mailbox, origin, directory);
    switch (v.kind) {
      case 'local': {
        const to = [...v.users.map((u) => `mailbox ${u}`), ...v.forward.map((f) => `forward to ${f}`)];
        await writeLine(out, `${address}... deliverable: ${to.join(', ')}`);
        break;
      }
      case 'remote':
        await writeLine(out, `${address}... deliverable: remote (queued for ${mailbox.domain})`);
        break;
      case 'unknown':
        await writeLine(out, `${address}... user unknown`);
        code = EX.noUser;
        break;
    }
  }
  return code;
}

/** After stdin ends, -bs waits for the server to be quiet this long before it closes its side. */
const BS_QUIET_MS = 2000;

/** -bs: an SMTP session with the local smtp listener, bytes relayed both ways. */
async function speakSmtp(config: Config, io: { stdin: Readable; stdout: Writable }): Promise<number> {
  const listener = config.listeners.find((l) => l.service === 'smtp');
  if (!listener) throw new SendmailError('-bs needs an smtp listener in the configuration', EX.config);
  const host = listener.host === '0.0.0.0' ? '127.0.0.1' : listener.host === '::' ? '::1' : listener.host;
  return await new Promise<number>((resolve) => {
    const socket = connect({ host, port: listener.port });
    let connected = false;
    // A caller writes its whole dialogue and closes stdin at once; the server answers pipelined commands
    // in turn. Closing our side with stdin would cut those answers short (a server may end a session at
    // the client's FIN): the socket is ended only once the server has been quiet for a while after it.
    let stdinEnded = false;
    let quiet: NodeJS.Timeout | undefined;
    const armQuiet = (): void => {
      clearTimeout(quiet);
      if (stdinEnded) quiet = setTimeout(() => socket.end(), BS_QUIET_MS);
    };
    socket.once('connect', () => {
      connected = true;
      io.stdin.pipe(socket, { end: false });
      io.stdin.once('end', () => {
        stdinEnded = true;
        armQuiet();
      });
    });
    socket.on('data', (d: Buffer) => {
      io.stdout.write(d);
      armQuiet();
    });
    socket.once('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(quiet);
      io.stdin.unpipe(socket);
      resolve(connected ? EX.ok : EX.tempFail);
    });
  });
}

// ---------------------------------------------------------------------------------------------------

function noArgs(): ParsedArgs {
  return { positionals: [], flags: new Set(), options: new Map() };
}

async function runSendmail(ctx: CommandContext, args: SendmailArgs): Promise<number> {
  const { io } = ctx;
  let config: Config;
  try {
    config = ctx.config();
  } catch (err) {
    if (err instanceof ConfigLoadError) throw new SendmailError(err.message, EX.config);
    throw err;
  }
  switch (args.mode) {
    case 'print-queue':
      return await queueList.run(ctx, noArgs());
    case 'rebuild-aliases':
      await writeLine(
        io.stderr,
        'tern: aliases live in the directory (`tern alias add|list|del`): nothing to rebuild',
      );
      return EX.ok;
    case 'smtp':
      return await speakSmtp(config, io);
    case 'verify':
    case 'flush-queue':
    case 'deliver':
      break;
  }
  const root = dataPaths(config).root;
  if (!existsSync(root)) {
    throw new SendmailError(
      `no data directory at ${root}: has \`tern serve\` run with this configuration?`,
      EX.config,
    );
  }
  const caller = callerIdentity(root);
  dropRoot(root);
  const origin = originDomain(config);
  if (args.mode === 'verify') {
    return await ctx.withServices(['directory'], ({ directory }) =>
      verifyAddresses(args.recipients, origin, directory, io.stdout),
    );
  }
  if (args.mode === 'flush-queue') {
    const count = await ctx.withServices(['queue'], ({ queue }) => queue.flush());
    await ctx.recordChange('queue.flush', { recipients: count, via: 'sendmail -q' });
    if (ctx.verbose) await writeLine(io.stderr, `tern: ${count} recipient(s) due now`);
    return EX.ok;
  }
  const result = await ctx.withServices(['queue', 'directory'], async (services) => {
    const queued = await submitMessage(services, {
      args,
      caller,
      input: io.stdin,
      config,
      nowMs: ctx.clock.nowMs(),
    });
    // Moves the change counter: a running server's worker looks at the queue within a second.
    await ctx.recordChange('sendmail.queued', {
      queueId: queued.queueId,
      uid: caller.uid,
      user: caller.login,
      sender: queued.sender,
      recipients: queued.recipients,
    });
    return queued;
  });
  if (ctx.verbose) await writeLine(io.stderr, `tern: queued as ${result.queueId}`);
  return EX.ok;
}

/**
 * Root writing data_dir would leave files the server (its owner) cannot read: become that owner first.
 * The caller's identity was taken before.
 */
function dropRoot(root: string): void {
  if (process.getuid?.() !== 0) return;
  const st = statSync(root);
  if (st.uid === 0) return;
  process.setgid?.(st.gid);
  process.setuid?.(st.uid);
}

function exitCodeOf(err: unknown): { code: number; message: string } {
  if (err instanceof SendmailError) return { code: err.exitCode, message: err.message };
  if (err instanceof CliError)
    return { code: err.exitCode === 1 ? EX.tempFail : err.exitCode, message: err.message };
  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (e?.code === 'EACCES' || e?.code === 'EPERM' || /readonly|permission/i.test(message)) {
    return { code: EX.noPerm, message: `${message} (the caller may not write data_dir: docs/install.md)` };
  }
  // Unknown means temporary: the caller keeps the message and tries again.
  return { code: EX.tempFail, message };
}

export const sendmail: Command = {
  name: 'sendmail',
  args: '[-t] [-i|-oi] [-f SENDER] [-F NAME] [-bm|-bs|-bv|-bp|-bi] [-q] [RECIPIENT...]',
  summary:
    'sendmail(8) for scripts: queue a message read from standard input as the calling user ' +
    '(also run as `sendmail`, `mailq`, `newaliases`: docs/install.md)',
  flags: [],
  options: [],
  dashPositionals: true,
  minPositionals: 0,
  maxPositionals: Number.POSITIVE_INFINITY,
  readOnly: (args) => {
    const parsed = parseSendmailArgs(args.positionals);
    return parsed.ok && parsed.value.mode === 'print-queue';
  },
  async run(ctx, cli) {
    const parsed = parseSendmailArgs(cli.positionals);
    if (!parsed.ok) {
      await writeLine(ctx.io.stderr, `tern sendmail: ${parsed.error}`);
      await writeLine(ctx.io.stderr, `usage: tern sendmail ${sendmail.args}`);
      return EX.usage;
    }
    try {
      return await runSendmail(ctx, parsed.value);
    } catch (err) {
      const { code, message } = exitCodeOf(err);
      await writeLine(ctx.io.stderr, `tern sendmail: ${message}`);
      return code;
    }
  },
};
