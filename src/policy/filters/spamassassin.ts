// SpamAssassin through its daemon, spamd, at the end of data: the message is streamed from the spool
// with `SYMBOLS SPAMC/1.5` (protocol/filters/spamd.ts) and spamd's score decides. A score at or above
// `rejectScore` is refused with 554 5.7.1; spam below it (spamd's own `required_score` reached) is
// accepted into the recipients' Junk folder with X-Spam-Flag: YES and X-Spam-Status: Yes; the rest is
// a score verdict with X-Spam-Status: No. X-Spam-Flag and X-Spam-Status fields the client sent are
// removed, so that a sender cannot mark its own message clean. Any failure (spamd down, a status
// other than EX_OK, a reply cut short, the timeout) throws, and the pipeline applies `onFailure`.
// Deliberately NOT here: the SPAMC codec (protocol/filters/spamd.ts), sockets (the Dial port), the
// exchange over the stream (daemon-io.ts), PROCESS/HEADERS (spamd rewriting the message: we add only
// our two fields), learning (TELL), a size limit for what is scanned (spamc's 500 KB default is the
// caller's to decide).

import { Replies, withText } from '../../core/reply.ts';
import { formatSpamdRequest, parseSpamdReply, parseSymbols } from '../../protocol/filters/spamd.ts';
import { converse } from './daemon-io.ts';
import {
  removeAllFields,
  StatelessFilter,
  type Dial,
  type FilterContext,
  type FilterStage,
  type HeaderEdit,
  type HeaderField,
  type Verdict,
} from './filter.ts';

/** A SYMBOLS reply is a status line, two fields and a list of rule names. */
const MAX_REPLY_BYTES = 64 * 1024;
/** Keeps X-Spam-Status under RFC 5322's 998-octet line even before folding. */
const MAX_TESTS_CHARS = 800;

export interface SpamAssassinOptions {
  /** spamd's address for the Dial port: `host:port`, `[v6]:port` or `unix:/path`. */
  readonly address: string;
  /** A score at or above this is refused (SpamAssassin's own threshold only files in Junk). */
  readonly rejectScore: number;
  /** The `User` spamd loads preferences for; null sends none (spamd's default user). */
  readonly user: string | null;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly dial: Dial;
  /** Larger messages are not sent to spamd (spamc's own default is 500 KB: spam is small, scans are slow). */
  readonly maxScanBytes?: number;
}

/** What spamd said about one message. */
export interface SpamdResult {
  readonly isSpam: boolean;
  readonly score: number;
  readonly threshold: number;
  readonly tests: readonly string[];
}

export class SpamAssassinFilter extends StatelessFilter {
  readonly name = 'spamassassin';
  readonly stages: readonly FilterStage[] = ['message'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #address: string;
  readonly #rejectScore: number;
  readonly #user: string | null;
  readonly #dial: Dial;
  readonly #maxScanBytes: number;

  constructor(opts: SpamAssassinOptions) {
    super();
    // Checked here so that a bad user is a config error at start, not a tempfail per message.
    if (formatSpamdRequest({ command: 'SYMBOLS', contentLength: 0, user: opts.user }) === null)
      throw new Error(`spamassassin: user ${JSON.stringify(opts.user)} cannot be sent to spamd`);
    if (!Number.isFinite(opts.rejectScore)) throw new Error('spamassassin: reject score must be a number');
    this.#address = opts.address;
    this.#rejectScore = opts.rejectScore;
    this.#user = opts.user;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#dial = opts.dial;
    this.#maxScanBytes = opts.maxScanBytes ?? 512_000;
  }

  async check(_stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    const message = ctx.message;
    if (message === undefined) throw new Error('spamassassin runs at the message stage only');
    if (message.sizeBytes > this.#maxScanBytes)
      return {
        kind: 'accept',
        reason: `not scanned: ${message.sizeBytes} octets is more than max_scan_bytes`,
      };
    const head = formatSpamdRequest({
      command: 'SYMBOLS',
      contentLength: message.sizeBytes,
      user: this.#user,
    });
    if (head === null) throw new Error(`spamassassin: message size ${message.sizeBytes} cannot be sent`);
    const stream = await this.#dial(this.#address, signal);
    const parsed = await converse(stream, head, message, signal, {
      peer: 'spamd',
      answerNoun: 'reply',
      parse: (bytes, ended) => parseSpamdReply(bytes, ended, MAX_REPLY_BYTES),
      maxAnswerBytes: MAX_REPLY_BYTES,
      tooLong: `reply longer than ${MAX_REPLY_BYTES} octets`,
      // spamd reads Content-length octets; the half-close tells it (and spamc-like proxies) nothing more comes.
      endAfterMessage: true,
    });
    const result: SpamdResult = {
      isSpam: parsed.isSpam,
      score: parsed.score,
      threshold: parsed.threshold,
      tests: parseSymbols(parsed.body),
    };
    return spamassassinVerdict(result, this.#rejectScore, message.headers);
  }
}

/** The verdict for spamd's result: refuse, file in Junk, or a score, with the X-Spam-* fields. */
export function spamassassinVerdict(
  r: SpamdResult,
  rejectScore: number,
  received: readonly HeaderField[],
): Verdict {
  const score = r.score.toFixed(1);
  const required = r.threshold.toFixed(1);
  const tests = testsList(r.tests);
  const reason = `spamassassin: score ${score} / ${required}${r.tests.length > 0 ? ` (${tests})` : ''}`;
  if (r.score >= rejectScore) {
    return {
      kind: 'reject',
      reply: withText(Replies.spamRejected, `Message rejected as spam (score ${score})`),
      reason,
    };
  }
  const status = `${r.isSpam ? 'Yes' : 'No'}, score=${score} required=${required} tests=${tests === '' ? 'none' : tests}`;
  const headers: HeaderEdit[] = [
    ...removeAllFields(received, 'X-Spam-Flag'),
    ...removeAllFields(received, 'X-Spam-Status'),
    ...(r.isSpam ? [{ op: 'add', name: 'X-Spam-Flag', value: 'YES' } as const] : []),
    { op: 'add', name: 'X-Spam-Status', value: status },
  ];
  if (r.isSpam) return { kind: 'quarantine', reason, actions: { headers } };
  return { kind: 'score', score: r.score, reason, actions: { headers } };
}

function testsList(tests: readonly string[]): string {
  let out = '';
  for (const t of tests) {
    const next = out === '' ? t : `${out},${t}`;
    if (next.length > MAX_TESTS_CHARS) return `${out},...`;
    out = next;
  }
  return out;
}
