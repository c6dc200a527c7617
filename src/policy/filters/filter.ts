// The filter pipeline's vocabulary (issue 17): checks that run at an SMTP stage and answer a typed
// verdict, each with its own timeout and failure mode, run in the order config gives. A check never
// throws its way into a session: a timeout or an error becomes the configured failure mode (tempfail:
// 451 4.7.1, or accept), so a slow or dead filter never holds a session past its timeout nor loses mail.
// Deliberately NOT here: any one check (dnsbl.ts, …), where stages are called (server/smtp-connection.ts).

import type { Reply } from '../../core/reply.ts';
import { Replies } from '../../core/reply.ts';

/** Where a check runs: the client (connect), then MAIL, RCPT, the header block, the whole message. */
export type FilterStage = 'connect' | 'mail' | 'rcpt' | 'headers' | 'message';

export type Verdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'reject'; readonly reply: Reply; readonly reason: string }
  | { readonly kind: 'defer'; readonly reply: Reply; readonly reason: string }
  | { readonly kind: 'score'; readonly score: number; readonly reason: string };

/** What a check sees at the MAIL stage (more stages add fields). */
export interface FilterContext {
  readonly ip: string;
  readonly helo: string;
  readonly mailFrom: string;
}

export interface Filter {
  /** Its name in `[filters] order` and the logs. */
  readonly name: string;
  readonly stage: FilterStage;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  check(ctx: FilterContext, signal: AbortSignal): Promise<Verdict>;
}

export const TEMPFAIL: Reply = {
  code: 451,
  enhanced: '4.7.1',
  text: 'Service temporarily unavailable; try again later',
};

/** One check's outcome with what the log and the trace need. */
export interface FilterOutcome {
  readonly filter: string;
  readonly verdict: Verdict;
  readonly ms: number;
  /** Set when the check failed or timed out and its failure mode decided. */
  readonly failed?: string;
}

/** Run one check within its timeout; errors and timeouts become its failure mode. */
export async function runFilter(f: Filter, ctx: FilterContext): Promise<FilterOutcome> {
  const started = performance.now();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve('timeout');
    }, f.timeoutMs);
  });
  try {
    const result = await Promise.race([f.check(ctx, controller.signal), timeout]);
    const ms = performance.now() - started;
    if (result !== 'timeout') return { filter: f.name, verdict: result, ms };
    return failed(f, ms, `no answer within ${f.timeoutMs} ms`);
  } catch (err) {
    return failed(f, performance.now() - started, err instanceof Error ? err.message : String(err));
  } finally {
    clearTimeout(timer);
  }
}

function failed(f: Filter, ms: number, why: string): FilterOutcome {
  const verdict: Verdict =
    f.onFailure === 'accept'
      ? { kind: 'accept' }
      : { kind: 'defer', reply: Replies.filterTempfail, reason: `${f.name}: ${why}` };
  return { filter: f.name, verdict, ms, failed: why };
}

/**
 * Run the checks of one stage in order: the first reject or defer ends the stage; scores add up
 * (a check that only scores never refuses by itself). The outcomes say what each check said.
 */
export async function runStage(
  filters: readonly Filter[],
  stage: FilterStage,
  ctx: FilterContext,
): Promise<{ verdict: Verdict; outcomes: FilterOutcome[] }> {
  const outcomes: FilterOutcome[] = [];
  let score = 0;
  for (const f of filters) {
    if (f.stage !== stage) continue;
    const o = await runFilter(f, ctx);
    outcomes.push(o);
    if (o.verdict.kind === 'reject' || o.verdict.kind === 'defer') return { verdict: o.verdict, outcomes };
    if (o.verdict.kind === 'score') score += o.verdict.score;
  }
  return { verdict: score === 0 ? { kind: 'accept' } : { kind: 'score', score, reason: 'scores' }, outcomes };
}
