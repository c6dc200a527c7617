// SMTP client side: one mail transaction as a plan and its replies as per-recipient results.
// planTransaction decides, before anything is sent, whether the next hop can take the message at all
// (SIZE, RFC 1870 §6; SMTPUTF8, RFC 6531 §3.2; BINARYMIME, RFC 3030 §3) and writes the MAIL and RCPT
// lines with only the parameters the server offered (DSN, RFC 3461 §4; BODY, RFC 6152). The evaluate
// functions read the replies in the order the commands went out, which is all RFC 2920 §3.1 needs to
// match pipelined replies, and turn them into one verdict per recipient.
// Pure: no I/O, no clocks. Deliberately NOT here: the socket, timeouts, TLS (src/delivery/smtp-client.ts).
// XXX: an 8-bit body to a server without 8BITMIME is sent as it is (no MIME downgrade to
// quoted-printable, RFC 6152 §3); most servers take it, the rest refuse it with a reply we pass on.

import type { Envelope, EnvelopeRecipient } from '../../../core/envelope.ts';
import type { Capabilities } from './capabilities.ts';
import { formatMail, formatRcpt, needsUtf8LocalPart, wireAddress } from './commands.ts';
import type { RemoteReply } from './reply-parser.ts';

export type Verdict = 'delivered' | 'temporary' | 'permanent';

/** Where a transaction stopped (for logs, DSN text and the caller's retry decision). */
export type Stage =
  | 'connect'
  | 'greeting'
  | 'ehlo'
  | 'starttls'
  | 'tls'
  | 'auth'
  | 'plan'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'content'
  | 'end-of-data'
  | 'reset'
  | 'quit';

export interface RecipientResult {
  /** The envelope address (as queued, before any A-label conversion). */
  readonly address: string;
  readonly verdict: Verdict;
  /** Enhanced status for the DSN (RFC 3463): the server's, else derived from the reply class or ours. */
  readonly status: string;
  /** The reply that decided; null when nothing the server said decided it (a timeout, a local check). */
  readonly reply: RemoteReply | null;
  readonly reason: string;
}

export interface Failure {
  readonly stage: Stage;
  readonly temporary: boolean;
  readonly status: string;
  readonly reply: RemoteReply | null;
  readonly reason: string;
}

/**
 * The outcome of one send. `recipients` always holds one entry per recipient asked for: 'sent' means
 * the server took the message for at least one of them (the others carry their own refusal).
 */
export type SendResult =
  | {
      readonly kind: 'sent';
      readonly recipients: readonly RecipientResult[];
      readonly dataReply: RemoteReply;
    }
  | ({ readonly kind: 'failed'; readonly recipients: readonly RecipientResult[] } & Failure);

export type ContentMode = 'data' | 'bdat' | 'bdat-binary';

export interface TransactionRequest {
  readonly envelope: Pick<
    Envelope,
    'sender' | 'body' | 'smtputf8' | 'ret' | 'envid' | 'requireTls' | 'priority' | 'deliverBy'
  >;
  /** Now, for DELIVERBY's time left (BY= says seconds from now). */
  readonly nowMs?: number;
  readonly recipients: readonly EnvelopeRecipient[];
  /** The message size as stored (SIZE= is an estimate, RFC 1870 §3). */
  readonly sizeBytes: number;
  /**
   * Whether the message cannot go without SMTPUTF8. Default: when the client asked for SMTPUTF8 or an
   * address has a non-ASCII local part. A caller that knows the headers are ASCII may pass false.
   */
  readonly smtputf8Required?: boolean;
}

export interface TransactionPlan {
  readonly mailCommand: string;
  /** Commands for the recipients that can be sent, in order. */
  readonly recipients: ReadonlyArray<{ readonly address: string; readonly command: string }>;
  /** Recipients refused before anything was sent (an address the next hop cannot be given). */
  readonly refused: readonly RecipientResult[];
  readonly content: ContentMode;
  /** Commands may be sent as one group (RFC 2920). */
  readonly pipelining: boolean;
  readonly smtputf8: boolean;
}

export type PlanResult = { ok: true; plan: TransactionPlan } | { ok: false; failure: Failure };

/** Enhanced status of a reply: its own code, or "X.0.0" from the reply's class (RFC 3463 §3.1). */
export function statusOf(reply: RemoteReply): string {
  if (reply.enhanced !== null) return reply.enhanced;
  const cls = Math.floor(reply.code / 100);
  return cls === 2 || cls === 5 ? `${cls}.0.0` : '4.0.0';
}

/** 5xx is permanent; 4xx and anything a server should not have said (1xx, 3xx out of place) is not. */
export function isPermanent(reply: RemoteReply): boolean {
  return reply.code >= 500 && reply.code <= 599;
}

export const isPositive = (reply: RemoteReply): boolean => reply.code >= 200 && reply.code <= 299;

export function failureFromReply(stage: Stage, reply: RemoteReply, reason: string): Failure {
  const permanent = isPermanent(reply);
  return { stage, temporary: !permanent, status: statusOf(reply), reply, reason };
}

/** A failure no reply decided: a timeout, a dropped connection, a local error. Always temporary. */
export function localFailure(stage: Stage, reason: string, status = '4.4.2'): Failure {
  return { stage, temporary: true, status, reply: null, reason };
}

function permanentFailure(stage: Stage, status: string, reason: string): Failure {
  return { stage, temporary: false, status, reply: null, reason };
}

/** Every recipient gets the same fate: a failure before or after the recipients were known. */
export function failAll(
  addresses: readonly string[],
  failure: Failure,
  refused: readonly RecipientResult[] = [],
): SendResult {
  const done = new Set(refused.map((r) => r.address));
  const recipients = [
    ...refused,
    ...addresses
      .filter((a) => !done.has(a))
      .map((address): RecipientResult => ({
        address,
        verdict: failure.temporary ? 'temporary' : 'permanent',
        status: failure.status,
        reply: failure.reply,
        reason: failure.reason,
      })),
  ];
  return { kind: 'failed', recipients, ...failure };
}

export function planTransaction(req: TransactionRequest, caps: Capabilities): PlanResult {
  const { envelope } = req;
  const addresses = [envelope.sender, ...req.recipients.map((r) => r.address)];
  const required =
    req.smtputf8Required ?? (envelope.smtputf8 || addresses.some((a) => needsUtf8LocalPart(a)));
  if (required && !caps.smtputf8) {
    return {
      ok: false,
      failure: permanentFailure('plan', '5.6.7', 'SMTPUTF8 is required but the server does not offer it'),
    };
  }
  const smtputf8 = caps.smtputf8 && (required || envelope.smtputf8);
  if (envelope.body === 'BINARYMIME' && !(caps.chunking && caps.binaryMime)) {
    return {
      ok: false,
      failure: permanentFailure('plan', '5.6.3', 'binary content but the server offers no BINARYMIME'),
    };
  }
  if (caps.sizeLimitBytes !== null && req.sizeBytes > caps.sizeLimitBytes) {
    return {
      ok: false,
      failure: permanentFailure(
        'plan',
        '5.3.4',
        `message of ${req.sizeBytes} bytes exceeds the server's SIZE limit of ${caps.sizeLimitBytes} bytes`,
      ),
    };
  }
  if (envelope.requireTls === true && !caps.requireTls) {
    // RFC 8689 §5: never passed on to a next hop that would not keep the requirement.
    return {
      ok: false,
      failure: permanentFailure(
        'plan',
        '5.7.30',
        'REQUIRETLS support required: the server does not offer REQUIRETLS',
      ),
    };
  }
  const sender = wireAddress(envelope.sender, smtputf8);
  if (sender === null) {
    return {
      ok: false,
      failure: permanentFailure('plan', '5.1.7', 'the sender address cannot be sent to this server'),
    };
  }
  const recipients: Array<{ address: string; command: string }> = [];
  const refused: RecipientResult[] = [];
  for (const r of req.recipients) {
    const wire = wireAddress(r.address, smtputf8);
    if (wire === null || wire === '') {
      refused.push({
        address: r.address,
        verdict: 'permanent',
        status: needsUtf8LocalPart(r.address) ? '5.6.7' : '5.1.3',
        reply: null,
        reason: 'the recipient address cannot be sent to this server',
      });
      continue;
    }
    recipients.push({
      address: r.address,
      command: formatRcpt({
        recipient: wire,
        notify: caps.dsn ? r.notify : null,
        orcpt: caps.dsn ? r.orcpt : null,
      }),
    });
  }
  const body =
    envelope.body === 'BINARYMIME'
      ? 'BINARYMIME'
      : envelope.body === '8BITMIME' && caps.eightBitMime
        ? '8BITMIME'
        : null;
  const mailCommand = formatMail({
    sender,
    sizeBytes: caps.size ? req.sizeBytes : null,
    body,
    smtputf8,
    ret: caps.dsn ? envelope.ret : null,
    envid: caps.dsn ? envelope.envid : null,
    ...(envelope.requireTls === true ? { requireTls: true } : {}),
    // Passed on to a next hop that offers them (RFC 6710 §5.2, RFC 2852 §4.1.2); else kept here.
    ...(caps.mtPriority === true && envelope.priority !== undefined ? { priority: envelope.priority } : {}),
    ...(caps.deliverBy === true && envelope.deliverBy !== undefined && req.nowMs !== undefined
      ? {
          by: {
            seconds: byTimeLeft(envelope.deliverBy, req.nowMs),
            mode: envelope.deliverBy.mode,
            trace: envelope.deliverBy.trace,
          },
        }
      : {}),
  });
  const content: ContentMode =
    envelope.body === 'BINARYMIME' ? 'bdat-binary' : caps.chunking ? 'bdat' : 'data';
  return {
    ok: true,
    plan: { mailCommand, recipients, refused, content, pipelining: caps.pipelining, smtputf8 },
  };
}

/** What the client does after the envelope replies. */
export type EnvelopeOutcome =
  | {
      /** Send the content (DATA already answered 354, or send DATA/BDAT now). */
      readonly next: 'content';
      readonly accepted: readonly string[];
      readonly refused: readonly RecipientResult[];
    }
  | {
      /**
       * The transaction failed. `endEmptyData`: a pipelined DATA got 354 anyway, so the client must
       * send an empty message (".") before RSET (RFC 2920 §3.1); its reply is read and ignored.
       */
      readonly next: 'fail';
      readonly endEmptyData: boolean;
      readonly result: SendResult;
    };

/**
 * The replies to MAIL, to each RCPT sent (in order) and, when DATA was pipelined with them, to DATA.
 * Without PIPELINING the client stops after a refused MAIL; `rcpts` is then shorter than the plan.
 */
export function evaluateEnvelope(
  plan: TransactionPlan,
  replies: {
    readonly mail: RemoteReply;
    readonly rcpts: readonly RemoteReply[];
    readonly data: RemoteReply | null;
  },
): EnvelopeOutcome {
  const endEmptyData = replies.data !== null && replies.data.code === 354;
  const all = plan.recipients.map((r) => r.address);
  if (!isPositive(replies.mail)) {
    const failure = failureFromReply('mail', replies.mail, 'the server refused the sender');
    return { next: 'fail', endEmptyData, result: failAll(all, failure, plan.refused) };
  }
  const accepted: string[] = [];
  const refused: RecipientResult[] = [...plan.refused];
  plan.recipients.forEach((r, i) => {
    const reply = replies.rcpts[i];
    if (reply !== undefined && isPositive(reply)) {
      accepted.push(r.address);
      return;
    }
    refused.push(
      reply === undefined
        ? { address: r.address, ...verdictOf(localFailure('rcpt', 'no reply to RCPT')) }
        : {
            address: r.address,
            ...verdictOf(failureFromReply('rcpt', reply, 'the server refused the recipient')),
          },
    );
  });
  if (accepted.length === 0) {
    const last = refused[refused.length - 1];
    const failure: Failure = {
      stage: 'rcpt',
      temporary: refused.some((r) => r.verdict === 'temporary'),
      status: last?.status ?? '5.5.1',
      reply: last?.reply ?? null,
      reason: 'the server accepted none of the recipients',
    };
    return { next: 'fail', endEmptyData, result: { kind: 'failed', recipients: refused, ...failure } };
  }
  if (replies.data !== null && replies.data.code !== 354) {
    const failure = failureFromReply('data', replies.data, 'the server refused DATA');
    return { next: 'fail', endEmptyData: false, result: failAll(accepted, failure, refused) };
  }
  return { next: 'content', accepted, refused };
}

function verdictOf(f: Failure): Omit<RecipientResult, 'address'> {
  return {
    verdict: f.temporary ? 'temporary' : 'permanent',
    status: f.status,
    reply: f.reply,
    reason: f.reason,
  };
}

/** The reply after the content (end of DATA or BDAT LAST) decides for every accepted recipient. */
/**
 * LMTP's end of data (RFC 2033 §4.2): `replies[i]` is accepted[i]'s own. 'sent' when any recipient was
 * delivered (the others carry their refusals), else 'failed' as one failure per recipient would say.
 */
/** BY='s by-time from now: whole seconds left (R: at least 1, as the worker returns expired mail itself). */
function byTimeLeft(by: NonNullable<Envelope['deliverBy']>, nowMs: number): number {
  const left = Math.ceil((by.deadlineMs - nowMs) / 1000);
  const bounded = Math.max(-999_999_999, Math.min(999_999_999, left));
  return by.mode === 'R' ? Math.max(1, bounded) : bounded;
}

export function evaluateLmtpFinal(
  accepted: readonly string[],
  refused: readonly RecipientResult[],
  replies: readonly RemoteReply[],
): SendResult {
  const results = accepted.map((address, i): RecipientResult => {
    const reply = replies[i]!;
    if (isPositive(reply))
      return {
        address,
        verdict: 'delivered',
        status: statusOf(reply),
        reply,
        reason: 'accepted by the server',
      };
    const f = failureFromReply('end-of-data', reply, 'the server refused the message for this recipient');
    return {
      address,
      verdict: f.temporary ? 'temporary' : 'permanent',
      status: f.status,
      reply,
      reason: f.reason,
    };
  });
  const firstOk = replies.findIndex((r) => isPositive(r));
  if (firstOk >= 0)
    return { kind: 'sent', recipients: [...refused, ...results], dataReply: replies[firstOk]! };
  const first = failureFromReply('end-of-data', replies[0]!, 'the server refused the message');
  // Temporary only when every refusal is: then the whole attempt is retried. Otherwise the caller takes
  // each recipient's own verdict as final (a 4xx among them stays deferred).
  const temporary = results.every((r) => r.verdict === 'temporary');
  return { kind: 'failed', recipients: [...refused, ...results], ...first, temporary };
}

export function evaluateFinal(
  accepted: readonly string[],
  refused: readonly RecipientResult[],
  reply: RemoteReply,
  stage: Stage = 'end-of-data',
): SendResult {
  if (!isPositive(reply)) {
    return failAll(accepted, failureFromReply(stage, reply, 'the server refused the message'), refused);
  }
  const delivered = accepted.map((address): RecipientResult => ({
    address,
    verdict: 'delivered',
    status: statusOf(reply),
    reply,
    reason: 'accepted by the server',
  }));
  return { kind: 'sent', recipients: [...refused, ...delivered], dataReply: reply };
}
