// rspamd at the end of data, over its HTTP protocol (https://rspamd.com/doc/developers/protocol.html):
// `POST /checkv2` to the normal worker with the envelope in request headers (IP, Helo, Hostname, From,
// one Rcpt per recipient, Queue-Id, User) and the message as the body, streamed from the spool, over
// one HTTP/1.1 connection of our own through the Dial port. rspamd's JSON answer decides:
//   reject → 554 5.7.1; soft reject → 451 4.7.1; greylist → 451 4.7.1 when rspamd's greylist module
//   greylisted (see below); add header and rewrite subject → filed in Junk (junkOnAddHeader) or a
//   score, with X-Spam: Yes and the new Subject; discard, quarantine → the same verdicts; no action →
//   a score. The header edits rspamd's milter_headers module asks for (`milter.remove_headers`, then
//   `milter.add_headers`) are applied as a milter client would; when it asks for none, one
//   X-Rspamd-Action field of ours carries the action and score.
// A "greylist" action without a greylisting (no GREYLIST symbol, no SMTP message) is only a score over
// the greylist threshold with no greylist module (it needs Redis) to clear it on the retry: deferring
// it would defer that message until it bounced, so it is a score.
// Any failure (refused connection, a status other than 200, bad JSON, an answer over 1 MiB, the
// timeout) throws, and the pipeline applies on_failure.
// Deliberately NOT here: the HTTP/1.1 response parser (protocol/filters/http.ts), the exchange over the
// stream (daemon-io.ts), HTTPS and HTTP keep-alive (one connection per message, `Connection: close`),
// rspamd's compressed/encrypted transports, learning (the controller), the rspamd proxy's milter mode.

import { domainToASCII } from 'node:url';
import { assertNever } from '../../core/assert-never.ts';
import { Replies, withText } from '../../core/reply.ts';
import { MAX_HEAD_BYTES, parseHttpResponse, type HttpResponse } from '../../protocol/filters/http.ts';
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

/** rspamd's answers are a few KiB; the bound keeps a broken or hostile peer from filling memory. */
export const MAX_ANSWER_BYTES = 1 << 20;
/** Edits beyond this many are dropped: no real milter_headers configuration comes close. */
const MAX_EDITS = 64;

export interface RspamdOptions {
  /** The normal worker's base URL: `http://host:port`, `http://[v6]:port`, a path prefix allowed. */
  readonly url: string;
  /** Sent as rspamd's `Password` header when set. */
  readonly password: string | null;
  /** "add header" (and "rewrite subject") files the message in Junk rather than only scoring it. */
  readonly junkOnAddHeader: boolean;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly dial: Dial;
}

export class RspamdFilter extends StatelessFilter {
  readonly name = 'rspamd';
  readonly stages: readonly FilterStage[] = ['message'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #target: RspamdTarget;
  readonly #password: string | null;
  readonly #junkOnAddHeader: boolean;
  readonly #dial: Dial;

  constructor(opts: RspamdOptions) {
    super();
    const target = parseRspamdUrl(opts.url);
    if (target === null) throw new Error(`rspamd: "${opts.url}" is not a URL like http://127.0.0.1:11333`);
    if (opts.password !== null && /[\x00-\x1f\x7f]/.test(opts.password))
      throw new Error('rspamd: the password cannot be sent in a header');
    this.#target = target;
    this.#password = opts.password;
    this.#junkOnAddHeader = opts.junkOnAddHeader;
    this.timeoutMs = opts.timeoutMs;
    this.onFailure = opts.onFailure;
    this.#dial = opts.dial;
  }

  async check(_stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    const message = ctx.message;
    if (message === undefined) throw new Error('rspamd runs at the message stage only');
    const head = formatCheckRequest(this.#target, ctx, message.sizeBytes, this.#password);
    const stream = await this.#dial(this.#target.address, signal);
    const response: HttpResponse = await converse(stream, head, message, signal, {
      peer: 'rspamd',
      answerNoun: 'answer',
      parse: (bytes, ended) => parseHttpResponse(bytes, ended, MAX_ANSWER_BYTES),
      maxAnswerBytes: MAX_ANSWER_BYTES + MAX_HEAD_BYTES,
      tooLong: `answer over ${MAX_ANSWER_BYTES} octets`,
      endAfterMessage: false,
    });
    if (response.status !== 200) {
      const parsed = parseRspamdAnswer(response.body);
      const why = parsed.ok ? '' : `: ${parsed.error ?? excerpt(response.body)}`;
      throw new Error(`rspamd answered ${response.status} ${response.reason}${why}`);
    }
    const answer = parseRspamdAnswer(response.body);
    if (!answer.ok) throw new Error(`rspamd: ${answer.error ?? answer.reason}`);
    return rspamdVerdict(answer.value, message.headers, this.#junkOnAddHeader);
  }
}

export interface RspamdTarget {
  /** For the Dial port: `host:port` or `[v6]:port`. */
  readonly address: string;
  /** The Host header. */
  readonly host: string;
  /** The path prefix before /checkv2 ('' for none). */
  readonly path: string;
}

/** `http://host[:port][/prefix]`; null for anything else (https, credentials, a query). */
export function parseRspamdUrl(url: string): RspamdTarget | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' || u.hostname === '' || u.username !== '' || u.password !== '') return null;
  if (u.search !== '' || u.hash !== '') return null;
  const port = u.port === '' ? 80 : Number(u.port);
  return { address: `${u.hostname}:${port}`, host: u.host, path: u.pathname.replace(/\/+$/, '') };
}

/**
 * The request line and headers for one message (rspamd's protocol headers). An envelope address that
 * rspamd 3.4 cannot parse (a UTF-8 local part: its SMTP address parser is ASCII-only and flags the task
 * BROKEN_HEADERS, scored 10 by default) is not sent; a UTF-8 domain is sent as its A-label. rspamd then
 * falls back to the message's own From/To for what is missing.
 */
export function formatCheckRequest(
  target: RspamdTarget,
  ctx: Pick<FilterContext, 'client' | 'queueId' | 'mailFrom' | 'recipients'>,
  sizeBytes: number,
  password: string | null,
): Uint8Array {
  const fields: [string, string][] = [
    ['Host', target.host],
    ['Content-Length', String(sizeBytes)],
    ['Connection', 'close'],
    ['IP', ctx.client.ip],
  ];
  if (ctx.client.helo !== '') fields.push(['Helo', ctx.client.helo]);
  if (ctx.client.hostname !== null) fields.push(['Hostname', ctx.client.hostname]);
  const from = ctx.mailFrom === '' ? '<>' : envelopeAddress(ctx.mailFrom);
  if (from !== null) fields.push(['From', from]);
  for (const rcpt of ctx.recipients) {
    const a = envelopeAddress(rcpt);
    if (a !== null) fields.push(['Rcpt', a]);
  }
  if (ctx.queueId !== null) fields.push(['Queue-Id', ctx.queueId]);
  if (ctx.client.authUser !== null) fields.push(['User', ctx.client.authUser]);
  if (password !== null) fields.push(['Password', password]);
  const lines = fields.map(([name, value]) => `${name}: ${value.replace(/[\x00-\x1f\x7f]/g, '')}`);
  return new TextEncoder().encode(`POST ${target.path}/checkv2 HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
}

/** An address in the form rspamd 3.4 parses, or null when it has none (a UTF-8 local part). */
function envelopeAddress(address: string): string | null {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  let domain = at < 0 ? '' : address.slice(at + 1);
  if (/[^\x20-\x7e]/.test(local)) return null;
  if (/[^\x20-\x7e]/.test(domain)) domain = domainToASCII(domain);
  if (domain === '' && at >= 0) return null;
  return at < 0 ? local : `${local}@${domain}`;
}

// ---- rspamd's JSON answer, pure --------------------------------------------------------------

export type RspamdAction =
  | 'reject'
  | 'soft reject'
  | 'rewrite subject'
  | 'add header'
  | 'greylist'
  | 'no action'
  | 'discard'
  | 'quarantine';

const ACTIONS: readonly RspamdAction[] = [
  'reject',
  'soft reject',
  'rewrite subject',
  'add header',
  'greylist',
  'no action',
  'discard',
  'quarantine',
];

export interface RspamdAnswer {
  readonly action: RspamdAction;
  readonly score: number;
  /** The reject threshold; null when rspamd gave none (a skipped task). */
  readonly requiredScore: number | null;
  /** The new Subject for "rewrite subject". */
  readonly subject: string | null;
  /** `messages.smtp_message`: the text rspamd wants the SMTP client to see. */
  readonly smtpMessage: string | null;
  readonly symbols: readonly { readonly name: string; readonly score: number }[];
  /** milter.remove_headers: occurrence 0 is every one, negative counts from the last. */
  readonly removeHeaders: readonly { readonly name: string; readonly occurrence: number }[];
  /** milter.add_headers, in the answer's order; `order` null appends, a number inserts there. */
  readonly addHeaders: readonly {
    readonly name: string;
    readonly value: string;
    readonly order: number | null;
  }[];
  readonly addRecipients: readonly string[];
  readonly deleteRecipients: readonly string[];
}

export type RspamdAnswerParse =
  | { readonly ok: true; readonly value: RspamdAnswer }
  /** `error` is rspamd's own `error` field, when it sent one. */
  | { readonly ok: false; readonly reason: string; readonly error: string | null };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseRspamdAnswer(body: Uint8Array): RspamdAnswerParse {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(body));
  } catch {
    return { ok: false, reason: `not JSON: ${excerpt(body)}`, error: null };
  }
  if (!isObject(json)) return { ok: false, reason: 'the answer is not a JSON object', error: null };
  const error = typeof json['error'] === 'string' ? printable(json['error']) : null;
  const action = json['action'];
  if (typeof action !== 'string') return { ok: false, reason: 'no action in the answer', error };
  if (!(ACTIONS as readonly string[]).includes(action))
    return { ok: false, reason: `unknown action "${printable(action)}"`, error };
  const score = json['score'];
  if (typeof score !== 'number' || !Number.isFinite(score))
    return { ok: false, reason: 'no score in the answer', error };
  const required = json['required_score'];
  const messages = isObject(json['messages']) ? json['messages'] : {};
  const milter = isObject(json['milter']) ? json['milter'] : {};
  return {
    ok: true,
    value: {
      action: action as RspamdAction,
      score,
      requiredScore: typeof required === 'number' && Number.isFinite(required) ? required : null,
      subject: typeof json['subject'] === 'string' ? headerValue(json['subject']) : null,
      smtpMessage:
        typeof messages['smtp_message'] === 'string' ? printable(messages['smtp_message']) || null : null,
      symbols: readSymbols(json['symbols']),
      removeHeaders: readRemoveHeaders(milter['remove_headers']),
      addHeaders: readAddHeaders(milter['add_headers']),
      addRecipients: readAddresses(milter['add_rcpt']),
      deleteRecipients: readAddresses(milter['del_rcpt']),
    },
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readSymbols(v: unknown): { name: string; score: number }[] {
  if (!isObject(v)) return [];
  const out: { name: string; score: number }[] = [];
  for (const [name, s] of Object.entries(v)) {
    const score = isObject(s) ? s['score'] : undefined;
    if (/^[\w.-]{1,128}$/.test(name)) out.push({ name, score: typeof score === 'number' ? score : 0 });
  }
  return out;
}

/** A header field name (RFC 5322 §3.6.8 ftext). */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]{1,128}$/;

function readRemoveHeaders(v: unknown): { name: string; occurrence: number }[] {
  if (!isObject(v)) return [];
  return Object.entries(v)
    .filter(([name, n]) => FIELD_NAME.test(name) && typeof n === 'number' && Number.isInteger(n))
    .map(([name, n]) => ({ name, occurrence: n as number }));
}

function readAddHeaders(v: unknown): { name: string; value: string; order: number | null }[] {
  if (!isObject(v)) return [];
  const out: { name: string; value: string; order: number | null }[] = [];
  for (const [name, spec] of Object.entries(v)) {
    if (!FIELD_NAME.test(name)) continue;
    for (const one of Array.isArray(spec) ? (spec as unknown[]) : [spec]) {
      if (typeof one === 'string') out.push({ name, value: headerValue(one), order: null });
      else if (isObject(one) && typeof one['value'] === 'string') {
        const order = one['order'];
        out.push({
          name,
          value: headerValue(one['value']),
          order: typeof order === 'number' && Number.isInteger(order) && order >= 0 ? order : null,
        });
      }
    }
  }
  return out;
}

function readAddresses(v: unknown): string[] {
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : [];
  return list.filter((a): a is string => typeof a === 'string' && /^[^\s<>]+@[^\s<>@]+$/.test(a));
}

/** A header value from rspamd, unfolded (its milter_headers fold with CRLF TAB) and with no line break left. */
function headerValue(s: string): string {
  return s.replace(/\r?\n(?=[ \t])/g, '').replace(/[\r\n\0]/g, ' ');
}

// ---- the verdict, pure -------------------------------------------------------------------------

export const SPAM_HEADER = { op: 'add', name: 'X-Spam', value: 'Yes' } as const;
export const ACTION_HEADER = 'X-Rspamd-Action';

/** The verdict for rspamd's answer; `received` are the message's header fields (for occurrences). */
export function rspamdVerdict(
  a: RspamdAnswer,
  received: readonly HeaderField[],
  junkOnAddHeader: boolean,
): Verdict {
  const score = a.score.toFixed(2);
  const required = a.requiredScore === null ? '' : ` / ${a.requiredScore.toFixed(2)}`;
  const top = a.symbols
    .filter((s) => s.score !== 0 || a.symbols.length <= 1)
    .sort((x, y) => Math.abs(y.score) - Math.abs(x.score))
    .slice(0, 8)
    .map((s) => `${s.name}(${s.score.toFixed(2)})`);
  const reason = `rspamd: ${a.action}, score ${score}${required}${top.length > 0 ? ` [${top.join(', ')}]` : ''}`;

  const edits = (extra: readonly HeaderEdit[]): HeaderEdit[] => {
    const out = [...milterEdits(a, received), ...extra];
    if (a.addHeaders.length === 0)
      out.push(...removeAllFields(received, ACTION_HEADER), {
        op: 'add',
        name: ACTION_HEADER,
        value: `${a.action}, score=${score}${a.requiredScore === null ? '' : ` required=${a.requiredScore.toFixed(2)}`}`,
      });
    return out.slice(0, MAX_EDITS);
  };
  const actions = (extra: readonly HeaderEdit[] = []) => ({
    headers: edits(extra),
    ...(a.addRecipients.length > 0 ? { addRecipients: a.addRecipients } : {}),
    ...(a.deleteRecipients.length > 0 ? { deleteRecipients: a.deleteRecipients } : {}),
  });
  const spamHeader = a.addHeaders.some((h) => h.name.toLowerCase() === 'x-spam') ? [] : [SPAM_HEADER];

  switch (a.action) {
    case 'reject':
      return {
        kind: 'reject',
        reply: withText(Replies.spamRejected, a.smtpMessage ?? `Message rejected as spam (score ${score})`),
        reason,
      };
    case 'soft reject':
      return {
        kind: 'defer',
        reply:
          a.smtpMessage === null ? Replies.filterTempfail : withText(Replies.filterTempfail, a.smtpMessage),
        reason,
      };
    case 'greylist': {
      const greylisted = a.smtpMessage !== null || a.symbols.some((s) => s.name === 'GREYLIST');
      if (greylisted)
        return {
          kind: 'defer',
          reply: withText(Replies.filterTempfail, a.smtpMessage ?? 'Greylisted, try again later'),
          reason: `${reason} (greylisted)`,
        };
      return { kind: 'score', score: a.score, reason: `${reason} (no greylisting)`, actions: actions() };
    }
    case 'add header':
    case 'rewrite subject': {
      const subject: HeaderEdit[] =
        a.action === 'rewrite subject' && a.subject !== null
          ? [{ op: 'change', name: 'Subject', occurrence: 1, value: a.subject }]
          : [];
      const acts = actions([...spamHeader, ...subject]);
      return junkOnAddHeader
        ? { kind: 'quarantine', reason, actions: acts }
        : { kind: 'score', score: a.score, reason, actions: acts };
    }
    case 'quarantine':
      return { kind: 'quarantine', reason, actions: actions() };
    case 'discard':
      return { kind: 'discard', reason };
    case 'no action':
      return { kind: 'score', score: a.score, reason, actions: actions() };
    default:
      return assertNever(a.action);
  }
}

/** milter.remove_headers then milter.add_headers, as rspamd's own milter applies them. */
function milterEdits(a: RspamdAnswer, received: readonly HeaderField[]): HeaderEdit[] {
  const out: HeaderEdit[] = [];
  for (const { name, occurrence } of a.removeHeaders) {
    const count = received.filter((h) => h.name.toLowerCase() === name.toLowerCase()).length;
    if (occurrence === 0) out.push(...removeAllFields(received, name));
    else {
      const n = occurrence > 0 ? occurrence : count + 1 + occurrence;
      if (n >= 1 && n <= count) out.push({ op: 'change', name, occurrence: n, value: null });
    }
  }
  for (const h of a.addHeaders)
    out.push(
      h.order === null
        ? { op: 'add', name: h.name, value: h.value }
        : { op: 'insert', index: h.order, name: h.name, value: h.value },
    );
  return out;
}

/** A text from the peer fit for a reply or a log line: no controls, bounded. */
function printable(s: string): string {
  const clean = s.replace(/[\x00-\x1f\x7f-\x9f]/g, ' ').trim();
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}

function excerpt(body: Uint8Array): string {
  return printable(new TextDecoder().decode(body.subarray(0, 200)));
}
