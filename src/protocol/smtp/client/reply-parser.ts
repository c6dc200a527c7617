// SMTP client side: incremental parser of server replies (RFC 5321 §4.2, multiline §4.2.1) with the
// enhanced status code split off (RFC 2034 §4, RFC 3463). Bytes in, whole replies out; any
// fragmentation of the same stream gives the same replies. Pure and total: hostile input (over-long
// lines, garbage, a code that changes inside a multiline reply, endless replies) ends in an `error`,
// never an exception, and after an error the parser stays dead: the connection must be dropped.
// Deliberately NOT here: what a reply means for the transaction (transaction.ts) or any I/O.
// A bare LF is accepted as a line end in replies (servers differ; reading is lenient, writing never is).

export interface RemoteReply {
  readonly code: number;
  /** Enhanced status code ("5.1.1") when the server gave one whose class matches the code; else null. */
  readonly enhanced: string | null;
  /** The text of all lines, each without code and enhanced code, joined with one space. */
  readonly text: string;
}

/** A reply with its lines kept (EHLO keywords are read from them). */
export interface ParsedReply extends RemoteReply {
  /** Each line's text after "NNN-" / "NNN " (enhanced code not removed). */
  readonly lines: readonly string[];
}

export interface ReplyParserLimits {
  /** Longest reply line including its line end. */
  readonly maxLineBytes: number;
  /** Most lines in one multiline reply. */
  readonly maxLines: number;
  /** Most complete replies held unread: more than any pipelined group can explain. */
  readonly maxPendingReplies: number;
}

export const DEFAULT_REPLY_LIMITS: ReplyParserLimits = {
  maxLineBytes: 8192,
  maxLines: 256,
  maxPendingReplies: 1024,
};

export type ReplyParseResult = { readonly replies: ParsedReply[]; readonly error: string | null };

const LF = 10;
const CR = 13;
const decoder = new TextDecoder('utf-8', { fatal: false });

/** "2.1.5 rest" → ["2.1.5", "rest"] when it is an enhanced code of the reply's class (RFC 3463 §2). */
function splitEnhanced(code: number, text: string): { enhanced: string | null; rest: string } {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?: +|$)/.exec(text);
  if (m === null || Number(m[1]) !== Math.floor(code / 100)) return { enhanced: null, rest: text };
  return { enhanced: `${m[1]}.${Number(m[2])}.${Number(m[3])}`, rest: text.slice(m[0].length) };
}

/** Build a reply from its code and raw line texts (after "NNN-"/"NNN "). */
export function makeReply(code: number, lines: readonly string[]): ParsedReply {
  let enhanced: string | null = null;
  const texts: string[] = [];
  lines.forEach((line, i) => {
    const split = splitEnhanced(code, line);
    if (i === 0) enhanced = split.enhanced;
    // Later lines repeat the code (RFC 2034 §4); strip it only when it is the same one.
    texts.push(split.enhanced !== null && split.enhanced === enhanced ? split.rest : line);
  });
  return { code, enhanced, text: texts.join(' ').trim(), lines: [...lines] };
}

/** The reply as a DSN Diagnostic-Code / log line: "550 5.1.1 No such user". */
export function formatRemoteReply(reply: RemoteReply): string {
  return [String(reply.code), reply.enhanced ?? '', reply.text].filter((s) => s !== '').join(' ');
}

export class ReplyParser {
  readonly limits: ReplyParserLimits;
  private partial: Uint8Array[] = [];
  private partialBytes = 0;
  private code: number | null = null;
  private lines: string[] = [];
  private dead: string | null = null;
  /** Replies parsed and not yet taken. */
  private pending = 0;

  constructor(limits: ReplyParserLimits = DEFAULT_REPLY_LIMITS) {
    this.limits = limits;
  }

  /** Bytes of an unfinished line or reply held now (after STARTTLS this must be thrown away). */
  get bufferedBytes(): number {
    return this.partialBytes + this.lines.reduce((n, l) => n + l.length, 0);
  }

  get error(): string | null {
    return this.dead;
  }

  /** The caller took `n` replies out of its queue (bounds `maxPendingReplies`). */
  taken(n: number): void {
    this.pending = Math.max(0, this.pending - n);
  }

  /** Forget everything held: a partial line, a partial multiline reply and the pending count. */
  discard(): void {
    this.partial = [];
    this.partialBytes = 0;
    this.code = null;
    this.lines = [];
    this.pending = 0;
  }

  push(bytes: Uint8Array): ReplyParseResult {
    const replies: ParsedReply[] = [];
    if (this.dead !== null) return { replies, error: this.dead };
    let start = 0;
    while (start < bytes.length) {
      const lf = bytes.indexOf(LF, start);
      const end = lf < 0 ? bytes.length : lf;
      if (this.partialBytes + (end - start) + 1 > this.limits.maxLineBytes) {
        return this.fail(replies, `reply line longer than ${this.limits.maxLineBytes} bytes`);
      }
      if (lf < 0) {
        this.partial.push(bytes.slice(start));
        this.partialBytes += bytes.length - start;
        break;
      }
      let line = bytes.subarray(start, lf);
      if (this.partial.length > 0) {
        const joined = new Uint8Array(this.partialBytes + line.length);
        let o = 0;
        for (const p of this.partial) {
          joined.set(p, o);
          o += p.length;
        }
        joined.set(line, o);
        line = joined;
        this.partial = [];
        this.partialBytes = 0;
      }
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      start = lf + 1;
      const err = this.takeLine(decoder.decode(line), replies);
      if (err !== null) return this.fail(replies, err);
    }
    return { replies, error: null };
  }

  private takeLine(line: string, out: ParsedReply[]): string | null {
    const m = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/s.exec(line);
    if (m === null) return `malformed reply line ${JSON.stringify(line.slice(0, 80))}`;
    const code = Number(m[1]);
    if (this.code !== null && code !== this.code) {
      return `reply code changed inside a multiline reply (${this.code} then ${code})`;
    }
    this.code = code;
    this.lines.push(m[3] ?? '');
    if (m[2] === '-') {
      if (this.lines.length >= this.limits.maxLines)
        return `multiline reply longer than ${this.limits.maxLines} lines`;
      return null;
    }
    out.push(makeReply(code, this.lines));
    this.code = null;
    this.lines = [];
    this.pending++;
    if (this.pending > this.limits.maxPendingReplies) return 'too many unsolicited replies';
    return null;
  }

  private fail(replies: ParsedReply[], error: string): ReplyParseResult {
    this.dead = error;
    this.discard();
    return { replies, error };
  }
}
