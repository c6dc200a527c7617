// The filter pipeline's vocabulary (issue 17): checks that run at SMTP stages and answer a typed
// verdict, each with its own timeout and failure mode, run in the order config gives. A check never
// throws its way into a session: a timeout or an error becomes the configured failure mode (tempfail:
// 451 4.7.1, or accept), so a slow or dead filter never holds a session past its timeout nor loses mail.
// This module is also the plugin interface (docs/filtering.md, examples/): a plugin module's default
// export is a `FilterFactory`.
// Deliberately NOT here: any one check (dnsbl.ts, …), running a transaction's stages (pipeline.ts),
// where stages are called (server/smtp-connection.ts, server/message-intake.ts).

import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/ports.ts';
import type { Reply } from '../../core/reply.ts';
import { Replies } from '../../core/reply.ts';

/**
 * Where a check runs: the client (connect), its HELO, MAIL, each RCPT, the header block, the whole
 * message. Connect and HELO verdicts are applied at MAIL (as Postfix's smtpd_delay_reject does), so a
 * refused client still learns its sender and recipients were seen and the log names them.
 */
export type FilterStage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'headers' | 'message';

export const FILTER_STAGES: readonly FilterStage[] = [
  'connect',
  'helo',
  'mail',
  'rcpt',
  'headers',
  'message',
];

/** A change to the header block a check asks for (milter SMFIR_ADDHEADER/INSHEADER/CHGHEADER). */
export type HeaderEdit =
  /** A new field on top of the header block (trace-style, where receivers expect ours). */
  | { readonly op: 'add'; readonly name: string; readonly value: string }
  /** A new field at a 0-based position among the message's fields (milter SMFIR_INSHEADER). */
  | { readonly op: 'insert'; readonly index: number; readonly name: string; readonly value: string }
  /**
   * The `occurrence`th (1-based) field of that name replaced by `value`, or removed when `value` is
   * null (milter SMFIR_CHGHEADER); an occurrence that does not exist adds the field (as Sendmail does).
   */
  | {
      readonly op: 'change';
      readonly name: string;
      readonly occurrence: number;
      readonly value: string | null;
    };

/** What a check asks to be done to the message besides its verdict. */
export interface FilterActions {
  readonly headers?: readonly HeaderEdit[];
  /** A replacement body (milter SMFIR_REPLBODY): the bytes after the header block, CRLF lines. */
  readonly body?: readonly Uint8Array[];
  readonly addRecipients?: readonly string[];
  readonly deleteRecipients?: readonly string[];
}

export type Verdict =
  | { readonly kind: 'accept'; readonly reason?: string; readonly actions?: FilterActions }
  /** A score for the message's total (logged, and in the X-Tern-Filter header); never refuses alone. */
  | {
      readonly kind: 'score';
      readonly score: number;
      readonly reason: string;
      readonly actions?: FilterActions;
    }
  | { readonly kind: 'reject'; readonly reply: Reply; readonly reason: string }
  | { readonly kind: 'defer'; readonly reply: Reply; readonly reason: string }
  /** Accepted with 250 and dropped (milter SMFIR_DISCARD): logged and traced, delivered nowhere. */
  | { readonly kind: 'discard'; readonly reason: string }
  /** Accepted and filed in the recipients' Junk folder (milter SMFIR_QUARANTINE, spam verdicts). */
  | { readonly kind: 'quarantine'; readonly reason: string; readonly actions?: FilterActions };

/** The client, as every stage sees it. */
export interface FilterClient {
  readonly ip: string;
  readonly port: number;
  /** Its verified reverse-DNS name, when known by then; null otherwise. */
  readonly hostname: string | null;
  readonly helo: string;
  readonly tls: boolean;
  /** The TLS protocol version and cipher, when TLS is on (milter {tls_version}, {cipher}). */
  readonly tlsVersion?: string | null;
  readonly tlsCipher?: string | null;
  readonly authUser: string | null;
  /** The SASL mechanism the client logged in with (milter {auth_type}). */
  readonly authMechanism?: string | null;
  /** The listener's service: smtp, submission, submissions. */
  readonly service: string;
  /** The address and port the client connected to. */
  readonly localAddress: string;
  readonly localPort: number;
}

/** One header field of the message (protocol/header-edit.ts). */
export type { EditableField as HeaderField } from '../../protocol/header-edit.ts';
import type { EditableField as HeaderField } from '../../protocol/header-edit.ts';

/** The message at the `headers` and `message` stages. */
export interface FilterMessage {
  /**
   * The header block's fields in order, as they will be stored after our Received: (which is not among
   * them): a submission's Bcc: and any Return-Path: already dropped, a missing Date:/Message-ID: added.
   * The 0-based positions an `insert` edit names are positions in this list.
   */
  readonly headers: readonly HeaderField[];
  /** The addresses in From: (the author domains DMARC judges). */
  readonly fromAddresses: readonly string[];
  /** Octets of the whole message as it will be stored (our Received: first). */
  readonly sizeBytes: number;
  /**
   * The whole message as it will be stored, read from the spool as often as asked (never held whole
   * in memory): our Received: line, the client's header block and body.
   */
  read(): AsyncIterable<Uint8Array>;
}

/** What the other checks of the transaction found, for checks that depend on them (greylisting). */
export interface FilterFacts {
  /** SPF for the MAIL FROM identity, when the SPF check ran. */
  spf?: { readonly result: string; readonly domain: string };
  /** Client allow-listed by a check (a DNSWL listing): later reputation checks may skip it. */
  allowListed?: string;
  /** The transaction's score so far (the checks' scores added up). */
  score?: number;
}

export interface FilterContext {
  readonly client: FilterClient;
  /** The queue id once the message is being received; null before DATA. */
  readonly queueId: string | null;
  /** MAIL FROM's address ('' for the null sender, and before MAIL). */
  readonly mailFrom: string;
  /** MAIL FROM's ESMTP parameters as the client sent them (SIZE=…, BODY=…), names upper-case. */
  readonly mailParams: ReadonlyMap<string, string>;
  /** The recipients accepted so far. */
  readonly recipients: readonly string[];
  /** At `rcpt`: the recipient being judged. */
  readonly rcpt?: string;
  /** At `headers` and `message`. */
  readonly message?: FilterMessage;
  /** Shared across the transaction's checks; checks may add to it. */
  readonly facts: FilterFacts;
}

/** One SMTP connection's view of a filter: a milter's socket lives here, a stateless check is one object. */
export interface FilterSession {
  /** Called once per stage listed in the filter's `stages`. */
  check(stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict>;
  /** The content as the client sends it (before any header of ours), for checks that stream. */
  content?(chunk: Uint8Array): void;
  /** The transaction ended (RSET, a new MAIL, the message refused or accepted). */
  reset?(): void;
  /** The connection ended. */
  close?(): void;
}

export interface Filter {
  /** Its name in `[filters] order`, the logs, the trace and the metrics. */
  readonly name: string;
  readonly stages: readonly FilterStage[];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  /**
   * A session for one SMTP connection (a stateless filter returns itself or a shared object); `log` is
   * the connection's logger.
   */
  open(client: FilterClient, log: Logger): FilterSession;
}

/**
 * A plugin module's default export (docs/filtering.md): given its `[[filters.plugin]]` options, the
 * filter to run. Its name is what `[filters] order` lists.
 */
export type FilterFactory = (options: {
  readonly name: string;
  readonly settings: Readonly<Record<string, unknown>>;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
}) => Filter | Promise<Filter>;

/**
 * The port through which filters reach their daemons (net/dial.ts): `host:port`, `[v6]:port` or
 * `unix:/path`. Aborting `signal` (the filter's timeout) destroys the stream.
 */
export type Dial = (address: string, signal: AbortSignal) => Promise<Duplex>;

/** One check's outcome with what the log and the trace need. */
export interface FilterOutcome {
  readonly filter: string;
  readonly stage: FilterStage;
  /** The message's queue id, from the headers stage on. */
  readonly queueId: string | null;
  readonly verdict: Verdict;
  readonly ms: number;
  /** Set when the check failed or timed out and its failure mode decided. */
  readonly failed?: string;
}

/** Run one check within its timeout; errors and timeouts become its failure mode. */
export async function runFilter(
  f: Pick<Filter, 'name' | 'timeoutMs' | 'onFailure'>,
  session: FilterSession,
  stage: FilterStage,
  ctx: FilterContext,
): Promise<FilterOutcome> {
  const started = performance.now();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      // The timeout settles the race first: the check's own rejection on abort comes after.
      resolve('timeout');
      controller.abort(new Error(`${f.name}: timed out`));
    }, f.timeoutMs);
  });
  try {
    const result = await Promise.race([session.check(stage, ctx, controller.signal), timeout]);
    const ms = performance.now() - started;
    if (result !== 'timeout') return { filter: f.name, stage, queueId: ctx.queueId, verdict: result, ms };
    return failed(f, stage, ctx.queueId, ms, `no answer within ${f.timeoutMs} ms`);
  } catch (err) {
    return failed(
      f,
      stage,
      ctx.queueId,
      performance.now() - started,
      err instanceof Error ? err.message : String(err),
    );
  } finally {
    clearTimeout(timer);
  }
}

function failed(
  f: Pick<Filter, 'name' | 'onFailure'>,
  stage: FilterStage,
  queueId: string | null,
  ms: number,
  why: string,
): FilterOutcome {
  const verdict: Verdict =
    f.onFailure === 'accept'
      ? { kind: 'accept', reason: `failed open: ${why}` }
      : { kind: 'defer', reply: Replies.filterTempfail, reason: `${f.name}: ${why}` };
  return { filter: f.name, stage, queueId, verdict, ms, failed: why };
}

/** Edits removing every field called `name` (last first, so that each occurrence number still holds). */
export function removeAllFields(fields: readonly HeaderField[], name: string): HeaderEdit[] {
  const count = fields.filter((h) => h.name.toLowerCase() === name.toLowerCase()).length;
  const edits: HeaderEdit[] = [];
  for (let n = count; n >= 1; n--) edits.push({ op: 'change', name, occurrence: n, value: null });
  return edits;
}

/** A filter without per-connection state: its one object serves every session. */
export abstract class StatelessFilter implements Filter, FilterSession {
  abstract readonly name: string;
  abstract readonly stages: readonly FilterStage[];
  abstract readonly timeoutMs: number;
  abstract readonly onFailure: 'tempfail' | 'accept';
  abstract check(stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict>;
  open(): FilterSession {
    return this;
  }
}
