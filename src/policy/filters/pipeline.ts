// One SMTP connection's run through the filter pipeline: the filters' sessions (opened on first use),
// each stage's checks in config order, and what the transaction gathered — header edits, a replaced
// body, recipients added or removed, a quarantine or discard, the scores — for the message intake to
// apply at the end of data. Connect and HELO checks are run at the first MAIL and their verdict kept for
// the connection (a new HELO runs the HELO checks again).
// Deliberately NOT here: what any check does (the filters), replies on the wire (the SMTP driver).

import type { Logger } from '../../core/ports.ts';
import type { Reply } from '../../core/reply.ts';
import {
  runFilter,
  type Filter,
  type FilterActions,
  type FilterClient,
  type FilterContext,
  type FilterFacts,
  type FilterOutcome,
  type FilterSession,
  type FilterStage,
  type HeaderEdit,
} from './filter.ts';

/** What a stage decided: go on, or refuse with this reply. */
export type StageResult =
  | { readonly kind: 'continue'; readonly outcomes: readonly FilterOutcome[] }
  | { readonly kind: 'refuse'; readonly reply: Reply; readonly outcomes: readonly FilterOutcome[] };

/** The transaction's filter results, for the message intake at the end of data. */
export interface FilterResults {
  readonly headers: readonly HeaderEdit[];
  readonly body: readonly Uint8Array[] | null;
  readonly addRecipients: readonly string[];
  readonly deleteRecipients: readonly string[];
  /** Filed in Junk, and why. */
  readonly quarantine: string | null;
  /** Dropped after a 250, and why. */
  readonly discard: string | null;
  readonly score: number;
  /** `name=verdict` per check that said more than accept, for the X-Tern-Filter header. */
  readonly summary: readonly string[];
}

export type StageInput = Omit<FilterContext, 'client' | 'facts'>;

export class FilterRun {
  readonly #filters: readonly Filter[];
  readonly #client: () => FilterClient;
  readonly #sessions = new Map<string, FilterSession>();
  readonly #onOutcome: (o: FilterOutcome) => void;
  readonly #log: Logger;
  #facts: FilterFacts = {};
  #connect: StageResult | null = null;
  #helo: { readonly helo: string; readonly result: StageResult } | null = null;
  #headers: HeaderEdit[] = [];
  #body: readonly Uint8Array[] | null = null;
  #addRecipients: string[] = [];
  #deleteRecipients: string[] = [];
  #quarantine: string | null = null;
  #discard: string | null = null;
  #score = 0;
  #summary: string[] = [];

  /**
   * `client` is read at each stage (the HELO name and TLS state change during a connection).
   * `onOutcome` sees every check's outcome (logs, trace, metrics).
   */
  constructor(
    filters: readonly Filter[],
    client: () => FilterClient,
    log: Logger,
    onOutcome: (o: FilterOutcome) => void,
  ) {
    this.#filters = filters;
    this.#log = log;
    this.#client = client;
    this.#onOutcome = onOutcome;
  }

  get empty(): boolean {
    return this.#filters.length === 0;
  }

  /** Whether any filter runs at this stage (the intake reads the spool only for them). */
  has(stage: FilterStage): boolean {
    return this.#filters.some((f) => f.stages.includes(stage));
  }

  get facts(): FilterFacts {
    return this.#facts;
  }

  /** MAIL: the connect and HELO checks (once), then MAIL's. */
  async mail(input: StageInput): Promise<StageResult> {
    this.#connect ??= await this.#stage('connect', input);
    if (this.#connect.kind === 'refuse') return this.#connect;
    const helo = this.#client().helo;
    if (this.#helo?.helo !== helo) this.#helo = { helo, result: await this.#stage('helo', input) };
    if (this.#helo.result.kind === 'refuse') return this.#helo.result;
    return this.#stage('mail', input);
  }

  /** RCPT, HEADERS or MESSAGE. */
  run(stage: 'rcpt' | 'headers' | 'message', input: StageInput): Promise<StageResult> {
    return this.#stage(stage, input);
  }

  /** The content as the client sends it, to the filters that stream. */
  content(chunk: Uint8Array): void {
    for (const s of this.#sessions.values()) s.content?.(chunk);
  }

  results(): FilterResults {
    return {
      headers: this.#headers,
      body: this.#body,
      addRecipients: this.#addRecipients,
      deleteRecipients: this.#deleteRecipients,
      quarantine: this.#quarantine,
      discard: this.#discard,
      score: this.#score,
      summary: this.#summary,
    };
  }

  /** A new transaction (MAIL after RSET or after the last one ended). */
  reset(): void {
    // What the connect checks found (a DNSWL listing) holds for the connection's every transaction.
    const allowListed = this.#facts.allowListed;
    this.#facts = allowListed === undefined ? {} : { allowListed };
    this.#headers = [];
    this.#body = null;
    this.#addRecipients = [];
    this.#deleteRecipients = [];
    this.#quarantine = null;
    this.#discard = null;
    this.#score = 0;
    this.#summary = [];
    for (const s of this.#sessions.values()) s.reset?.();
  }

  close(): void {
    for (const s of this.#sessions.values()) {
      try {
        s.close?.();
      } catch {
        // A filter's own cleanup failing must not stop the others'.
      }
    }
    this.#sessions.clear();
  }

  #session(f: Filter): FilterSession {
    let s = this.#sessions.get(f.name);
    if (s === undefined) {
      s = f.open(this.#client(), this.#log);
      this.#sessions.set(f.name, s);
    }
    return s;
  }

  async #stage(stage: FilterStage, input: StageInput): Promise<StageResult> {
    const outcomes: FilterOutcome[] = [];
    for (const f of this.#filters) {
      if (!f.stages.includes(stage)) continue;
      // A discarded transaction is dropped whatever the others would say.
      if (this.#discard !== null) break;
      let session: FilterSession;
      try {
        session = this.#session(f);
      } catch (err) {
        session = { check: () => Promise.reject(err instanceof Error ? err : new Error(String(err))) };
      }
      const ctx: FilterContext = { ...input, client: this.#client(), facts: this.#facts };
      const o = await runFilter(f, session, stage, ctx);
      outcomes.push(o);
      this.#onOutcome(o);
      const v = o.verdict;
      switch (v.kind) {
        case 'reject':
        case 'defer':
          return { kind: 'refuse', reply: v.reply, outcomes };
        case 'discard':
          this.#discard = `${f.name}: ${v.reason}`;
          this.#summary.push(`${f.name}=discard`);
          break;
        case 'quarantine':
          this.#quarantine ??= `${f.name}: ${v.reason}`;
          this.#summary.push(`${f.name}=quarantine`);
          this.#apply(v.actions);
          break;
        case 'score':
          this.#score += v.score;
          this.#facts.score = this.#score;
          this.#summary.push(`${f.name}=${round(v.score)}`);
          this.#apply(v.actions);
          break;
        case 'accept':
          this.#apply(v.actions);
          break;
      }
    }
    return { kind: 'continue', outcomes };
  }

  #apply(actions: FilterActions | undefined): void {
    if (actions === undefined) return;
    if (actions.headers !== undefined) this.#headers.push(...actions.headers);
    if (actions.body !== undefined) this.#body = actions.body;
    if (actions.addRecipients !== undefined) this.#addRecipients.push(...actions.addRecipients);
    if (actions.deleteRecipients !== undefined) this.#deleteRecipients.push(...actions.deleteRecipients);
  }
}

function round(n: number): string {
  return String(Math.round(n * 100) / 100);
}
