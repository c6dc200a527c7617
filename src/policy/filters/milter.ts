// A milter client (the Sendmail/Postfix milter protocol, version 6) as a filter of the inbound
// pipeline, so any milter (OpenDKIM, OpenDMARC, rspamd's proxy) judges and edits Tern's mail. One milter
// connection per SMTP connection, opened at the first stage that needs it; at each stage the macros
// milters rely on, then the event: connect, HELO, MAIL, each RCPT, and at `message` DATA, the client's
// header fields as stored (folding kept; our own Received: is not shown, as Postfix and Sendmail do not
// show theirs), the end of the header block, the body in chunks read from the spool, the end of the body,
// then the milter's modifications until its final decision. The steps the milter said it does not want
// are not sent, the replies it said it will not send are not awaited, and its SMFIR_SKIP is honoured.
// A transaction the milter took part in and did not finish is aborted (SMFIC_ABORT) at reset; the
// connection ends with SMFIC_QUIT. After an error or a timeout the connection is dropped: the rest of
// that transaction fails (the pipeline applies on_failure), and the next transaction dials anew,
// replaying connect and HELO.
// Replies: SMFIR_REJECT is 550 5.7.1, SMFIR_TEMPFAIL 451 4.7.1, SMFIR_REPLYCODE the milter's own (4xx/5xx
// with printable text; anything else is its generic reply). A decision at connect or HELO holds for the
// whole connection, as in Sendmail.
// Deliberately NOT here: the wire format (protocol/filters/milter.ts), applying the edits (the message
// intake), SMFIR_CHGFROM (the envelope sender is not changed: the verdict's reason says so), SMFIC_UNKNOWN.

import type { Duplex } from 'node:stream';
import { Replies, type Reply } from '../../core/reply.ts';
import {
  ALL_ACTIONS,
  ALL_FLAGS,
  Action,
  Command,
  DEFAULT_MAX_FRAME_BYTES,
  Flag,
  FrameDecoder,
  MAX_BODY_CHUNK_BYTES,
  MessageSplitter,
  MILTER_VERSION,
  encodeAbort,
  encodeBody,
  encodeConnect,
  encodeData,
  encodeEob,
  encodeEoh,
  encodeHeader,
  encodeHelo,
  encodeMacros,
  encodeMail,
  encodeOptneg,
  encodeQuit,
  encodeRcpt,
  milterHeader,
  parseOptneg,
  parseReply,
  parseReplyText,
  type CommandCode,
  type ConnectFamily,
  type Frame,
  type MacroStage,
  type MessagePart,
  type MilterReply,
  type Negotiated,
} from '../../protocol/filters/milter.ts';
import type {
  Dial,
  Filter,
  FilterActions,
  FilterClient,
  FilterContext,
  FilterMessage,
  FilterSession,
  FilterStage,
  HeaderEdit,
  Verdict,
} from './filter.ts';

export interface MilterFilterOptions {
  /** `milter`, or `milter:<table name>` when several milters are configured. */
  readonly name: string;
  /** `host:port`, `[v6]:port` or `unix:/path`. */
  readonly address: string;
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly dial: Dial;
  /** Our host name: the `j` macro. */
  readonly hostname: string;
  /** Bound on one frame from the milter (1 MiB unless given). */
  readonly maxFrameBytes?: number;
  /** Bound on a replacement body (SMFIR_REPLBODY) held for the intake (64 MiB unless given). */
  readonly maxReplacedBodyBytes?: number;
}

/** Flags Tern offers: all of version 6 but SMFIP_RCPT_REJ (only accepted recipients are sent). */
const OFFERED_FLAGS = ALL_FLAGS & ~Flag.rcptRejected;
/** Frames a milter may send ahead of being asked before it is deemed to flood us. */
const MAX_QUEUED_FRAMES = 256;

/** The macros sent when the milter names none for a stage (Postfix's defaults, less what Tern lacks). */
const DEFAULT_MACROS: Readonly<Record<MacroStage, readonly string[]>> = {
  connect: [
    'j',
    '{daemon_name}',
    '{daemon_addr}',
    '{daemon_port}',
    'v',
    '_',
    '{client_addr}',
    '{client_name}',
    '{client_port}',
  ],
  helo: ['{tls_version}', '{cipher}'],
  mail: ['i', '{auth_type}', '{auth_authen}', '{mail_addr}'],
  rcpt: ['{rcpt_addr}'],
  data: ['i'],
  eoh: ['i'],
  eom: ['i'],
};

export class MilterFilter implements Filter {
  readonly name: string;
  readonly stages: readonly FilterStage[] = ['connect', 'helo', 'mail', 'rcpt', 'message'];
  readonly timeoutMs: number;
  readonly onFailure: 'tempfail' | 'accept';
  readonly #options: MilterFilterOptions;

  constructor(options: MilterFilterOptions) {
    this.name = options.name;
    this.timeoutMs = options.timeoutMs;
    this.onFailure = options.onFailure;
    this.#options = options;
  }

  open(client: FilterClient): FilterSession {
    return new MilterSession(this.#options, client);
  }
}

/** The socket to one milter: frames out, frames in, each wait bounded by the caller's signal. */
class MilterLink {
  readonly #stream: Duplex;
  readonly #decoder: FrameDecoder;
  readonly #frames: Frame[] = [];
  #wake: (() => void) | null = null;
  #failure: Error | null = null;

  constructor(stream: Duplex, maxFrameBytes: number) {
    this.#stream = stream;
    this.#decoder = new FrameDecoder(maxFrameBytes);
    stream.on('data', (chunk: Uint8Array) => {
      const r = this.#decoder.push(chunk);
      if (!r.ok) return this.#fail(new Error(`bad frame from milter: ${r.error}`));
      this.#frames.push(...r.value);
      if (this.#frames.length > MAX_QUEUED_FRAMES)
        return this.#fail(new Error('milter sent too many frames'));
      this.#wakeUp();
    });
    stream.on('error', (err: Error) => this.#fail(err));
    stream.on('end', () => this.#fail(new Error('milter closed the connection')));
    stream.on('close', () => this.#fail(new Error('milter connection closed')));
  }

  get failed(): boolean {
    return this.#failure !== null;
  }

  /** Write frames, waiting for the socket to drain when its buffer is full. */
  async send(frames: readonly Uint8Array[], signal: AbortSignal): Promise<void> {
    for (const f of frames) {
      this.#check(signal);
      if (!this.#stream.write(f)) await this.#waitFor('drain', signal);
    }
    this.#check(signal);
  }

  /** Write without waiting (ABORT and QUIT, from the synchronous reset and close). */
  post(frame: Uint8Array): void {
    if (this.#failure === null) this.#stream.write(frame);
  }

  async receive(signal: AbortSignal): Promise<Frame> {
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) return f;
      this.#check(signal);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          this.#wake = null;
          resolve();
        };
        this.#wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** End the connection after `last` (QUIT) is written. */
  close(last: Uint8Array | null): void {
    if (this.#failure !== null || last === null) {
      this.destroy();
      return;
    }
    this.#failure = new Error('closed');
    this.#stream.end(last, () => this.#stream.destroy());
  }

  destroy(): void {
    this.#failure ??= new Error('closed');
    this.#stream.destroy();
  }

  #check(signal: AbortSignal): void {
    if (signal.aborted) {
      // The milter may still answer what we asked: the stream is out of step, so it goes.
      this.#fail(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    }
    if (this.#failure !== null) throw this.#failure;
  }

  #waitFor(event: 'drain', signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.#stream.off(event, done);
        signal.removeEventListener('abort', done);
        if (this.#wake === done) this.#wake = null;
        resolve();
      };
      this.#stream.once(event, done);
      signal.addEventListener('abort', done, { once: true });
      this.#wake = done;
    });
  }

  #fail(err: Error): void {
    if (this.#failure === null) {
      this.#failure = err;
      this.#stream.destroy();
    }
    this.#wakeUp();
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
}

/** What the milter decided for one event. */
type Decision =
  | { readonly kind: 'continue' }
  | { readonly kind: 'skip' }
  | { readonly kind: 'accept' }
  | { readonly kind: 'discard' }
  | { readonly kind: 'refuse'; readonly verdict: Verdict };

/** The transaction as the milter sees it: none, open, or decided by the milter before its end. */
type Transaction = 'none' | 'open' | 'decided';

/** The edits a milter asks for at the end of the message, gathered for the verdict. */
class Edits {
  readonly headers: HeaderEdit[] = [];
  readonly body: Uint8Array[] = [];
  bodyBytes = 0;
  replacesBody = false;
  readonly addRecipients: string[] = [];
  readonly deleteRecipients: string[] = [];
  readonly notes: string[] = [];
  /** The header block's field names as the edits so far leave it, to place SMFIR_ADDHEADER at its end. */
  readonly names: string[];

  constructor(names: readonly string[]) {
    this.names = [...names];
  }

  actions(): FilterActions | undefined {
    const a: {
      headers?: readonly HeaderEdit[];
      body?: readonly Uint8Array[];
      addRecipients?: readonly string[];
      deleteRecipients?: readonly string[];
    } = {};
    if (this.headers.length > 0) a.headers = this.headers;
    if (this.replacesBody) a.body = this.body;
    if (this.addRecipients.length > 0) a.addRecipients = this.addRecipients;
    if (this.deleteRecipients.length > 0) a.deleteRecipients = this.deleteRecipients;
    return Object.keys(a).length > 0 ? a : undefined;
  }
}

class MilterSession implements FilterSession {
  readonly #o: MilterFilterOptions;
  readonly #life = new AbortController();
  #client: FilterClient;
  #link: MilterLink | null = null;
  #neg: Negotiated | null = null;
  #connectSent = false;
  #heloSent: string | null = null;
  /** A decision at connect or HELO: it holds for every later stage of the connection. */
  #final: Verdict | null = null;
  #txn: Transaction = 'none';
  #quarantine: string | null = null;
  /** The command the milter said to skip the rest of (SMFIR_SKIP), until another is sent. */
  #skip: CommandCode | null = null;
  #broken: string | null = null;
  #closed = false;

  constructor(options: MilterFilterOptions, client: FilterClient) {
    this.#o = options;
    this.#client = client;
  }

  async check(stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    if (this.#final !== null) return this.#final;
    if (this.#closed) throw new Error('session closed');
    if (this.#broken !== null)
      throw new Error(`connection lost earlier in this transaction: ${this.#broken}`);
    this.#client = ctx.client;
    try {
      return await this.#stage(stage, ctx, signal);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.#broken = why;
      this.#link?.destroy();
      throw new Error(`${this.#o.address}: ${why}`, { cause: err });
    }
  }

  reset(): void {
    if (this.#broken !== null) {
      // The next transaction starts on a new connection, replaying connect and HELO.
      this.#drop();
      this.#broken = null;
    } else if (this.#txn !== 'none' && this.#link !== null) {
      this.#link.post(encodeAbort());
    }
    this.#txn = 'none';
    this.#quarantine = null;
    this.#skip = null;
  }

  close(): void {
    this.#closed = true;
    this.#link?.close(this.#link.failed ? null : encodeQuit());
    this.#link = null;
    this.#life.abort(new Error('session closed'));
  }

  #drop(): void {
    this.#link?.destroy();
    this.#link = null;
    this.#neg = null;
    this.#connectSent = false;
    this.#heloSent = null;
  }

  async #stage(stage: FilterStage, ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    switch (stage) {
      case 'connect':
        return (await this.#prepare(ctx, signal, false)) ?? ACCEPT;
      case 'helo': {
        const early = await this.#prepare(ctx, signal, false);
        if (early !== null) return early;
        return (await this.#heloEvent(ctx, signal)) ?? ACCEPT;
      }
      case 'mail':
        return this.#mail(ctx, signal);
      case 'rcpt':
        return this.#rcpt(ctx, signal);
      case 'headers':
        return ACCEPT;
      case 'message':
        return this.#message(ctx, signal);
    }
  }

  /** Connected and negotiated, the connect event sent, and (with `helo`) the current HELO name. */
  async #prepare(ctx: FilterContext, signal: AbortSignal, helo: boolean): Promise<Verdict | null> {
    if (this.#link === null || this.#link.failed) await this.#connect(signal);
    if (!this.#connectSent) {
      this.#connectSent = true;
      const v = this.#connectionDecision(await this.#connectEvent(ctx, signal));
      if (v !== null) return v;
    }
    if (helo && this.#heloSent !== ctx.client.helo && ctx.client.helo !== '')
      return this.#heloEvent(ctx, signal);
    return null;
  }

  async #connect(signal: AbortSignal): Promise<void> {
    this.#drop();
    // The stream lives as long as the session: this check's signal may stop the dial, not the stream
    // (each later wait is bounded by its own check's signal).
    const dialing = new AbortController();
    const stop = (): void => dialing.abort(signal.reason);
    signal.addEventListener('abort', stop, { once: true });
    this.#life.signal.addEventListener('abort', () => dialing.abort(this.#life.signal.reason), {
      once: true,
    });
    let stream: Duplex;
    try {
      stream = await this.#o.dial(this.#o.address, dialing.signal);
    } finally {
      signal.removeEventListener('abort', stop);
    }
    const link = new MilterLink(stream, this.#o.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    this.#link = link;
    await link.send(
      [encodeOptneg({ version: MILTER_VERSION, actions: ALL_ACTIONS, flags: OFFERED_FLAGS })],
      signal,
    );
    const r = parseOptneg(await link.receive(signal));
    if (!r.ok) throw new Error(`option negotiation: ${r.error}`);
    // Only what we offered counts; a version 2 to 4 milter knows none of the later flags.
    const known = r.value.version >= 6 ? OFFERED_FLAGS : 0x3ff;
    this.#neg = { ...r.value, flags: r.value.flags & known };
  }

  #wants(flag: number): boolean {
    return (this.#neg!.flags & flag) !== 0;
  }

  async #connectEvent(ctx: FilterContext, signal: AbortSignal): Promise<Decision> {
    const c = ctx.client;
    const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(c.ip);
    const ip = v4mapped?.[1] ?? c.ip;
    const family: ConnectFamily = ip === '' ? 'U' : ip.includes(':') ? '6' : '4';
    const frame = encodeConnect({ hostname: c.hostname ?? `[${ip}]`, family, port: c.port, address: ip });
    return this.#event('connect', Command.connect, ctx, [frame], Flag.noConnect, Flag.noReplyConnect, signal);
  }

  /** HELO, and the milter's decision when it holds for the connection (null to go on). */
  async #heloEvent(ctx: FilterContext, signal: AbortSignal): Promise<Verdict | null> {
    this.#heloSent = ctx.client.helo;
    const frames = [encodeHelo(ctx.client.helo)];
    const d = await this.#event('helo', Command.helo, ctx, frames, Flag.noHelo, Flag.noReplyHelo, signal);
    return this.#connectionDecision(d);
  }

  /** Connect and HELO decisions hold for the connection; libmilter closes its end after them. */
  #connectionDecision(d: Decision): Verdict | null {
    switch (d.kind) {
      case 'continue':
      case 'skip':
      case 'discard':
        // Discard is meaningless before a message (Postfix warns and goes on).
        return null;
      case 'accept':
        this.#final = { kind: 'accept', reason: 'milter accepted the connection' };
        break;
      case 'refuse':
        this.#final = d.verdict;
        break;
    }
    this.#drop();
    return this.#final;
  }

  async #mail(ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    const early = await this.#prepare(ctx, signal, true);
    if (early !== null) return early;
    if (this.#txn !== 'none') {
      // A MAIL with no reset after the last transaction: the milter must forget that one first.
      await this.#link!.send([encodeAbort()], signal);
    }
    this.#txn = 'open';
    this.#quarantine = null;
    this.#skip = null;
    const args = [`<${ctx.mailFrom}>`, ...[...ctx.mailParams].map(([k, v]) => (v === '' ? k : `${k}=${v}`))];
    const d = await this.#event(
      'mail',
      Command.mail,
      ctx,
      [encodeMail(args)],
      Flag.noMail,
      Flag.noReplyMail,
      signal,
    );
    return this.#envelopeVerdict(d);
  }

  async #rcpt(ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    if (this.#txn === 'decided') return ACCEPT;
    if (this.#txn !== 'open') throw new Error('RCPT outside a transaction the milter knows');
    const rcpt = ctx.rcpt ?? '';
    const d = await this.#event(
      'rcpt',
      Command.rcpt,
      ctx,
      [encodeRcpt([`<${rcpt}>`])],
      Flag.noRcpt,
      Flag.noReplyRcpt,
      signal,
    );
    return this.#envelopeVerdict(d);
  }

  #envelopeVerdict(d: Decision): Verdict {
    switch (d.kind) {
      case 'continue':
      case 'skip':
        return this.#takeQuarantine() ?? ACCEPT;
      case 'accept':
        this.#txn = 'decided';
        return this.#takeQuarantine() ?? { kind: 'accept', reason: 'milter accepted the message' };
      case 'discard':
        this.#txn = 'decided';
        return { kind: 'discard', reason: 'milter discarded the message' };
      case 'refuse':
        return d.verdict;
    }
  }

  #takeQuarantine(actions?: FilterActions): Verdict | null {
    if (this.#quarantine === null) return null;
    const reason = `milter quarantined the message: ${this.#quarantine}`;
    this.#quarantine = null;
    return actions === undefined ? { kind: 'quarantine', reason } : { kind: 'quarantine', reason, actions };
  }

  async #message(ctx: FilterContext, signal: AbortSignal): Promise<Verdict> {
    if (this.#txn === 'decided') return ACCEPT;
    if (this.#txn !== 'open') throw new Error('message outside a transaction the milter knows');
    const message = ctx.message;
    if (message === undefined) throw new Error('no message at the message stage');
    const neg = this.#neg!;

    if (neg.version >= 4) {
      const d = await this.#event(
        'data',
        Command.data,
        ctx,
        [encodeData()],
        Flag.noData,
        Flag.noReplyData,
        signal,
      );
      const v = this.#inMessage(d);
      if (v !== null) return v;
    }

    // Our own fields (Received:) lead the stored header block; the milter sees the client's fields.
    const ownFields = Math.max(0, (await countStoredFields(message)) - message.headers.length);
    const leadingSpace = this.#wants(Flag.headerLeadingSpace);
    const wantsBody = !this.#wants(Flag.noBody);
    const splitter = new MessageSplitter();
    let seen = 0;
    let chunk = new Uint8Array(MAX_BODY_CHUNK_BYTES);
    let filled = 0;
    let bodySkipped = !wantsBody;

    const sendChunk = async (): Promise<Verdict | null> => {
      if (filled === 0 || bodySkipped) return null;
      const frames = encodeBody(chunk.subarray(0, filled));
      chunk = new Uint8Array(MAX_BODY_CHUNK_BYTES);
      filled = 0;
      const d = await this.#event('eom', Command.body, ctx, frames, Flag.noBody, Flag.noReplyBody, signal);
      if (d.kind === 'skip') bodySkipped = true;
      return this.#inMessage(d);
    };

    const onPart = async (part: MessagePart): Promise<Verdict | null> => {
      switch (part.kind) {
        case 'field': {
          if (seen++ < ownFields) return null;
          const h = milterHeader(part.raw, leadingSpace);
          const d = await this.#event(
            'eoh',
            Command.header,
            ctx,
            [encodeHeader(h.name, h.value)],
            Flag.noHeaders,
            Flag.noReplyHeader,
            signal,
          );
          return this.#inMessage(d);
        }
        case 'endOfHeaders': {
          const d = await this.#event(
            'eoh',
            Command.eoh,
            ctx,
            [encodeEoh()],
            Flag.noEoh,
            Flag.noReplyEoh,
            signal,
          );
          return this.#inMessage(d);
        }
        case 'body': {
          let at = 0;
          while (at < part.bytes.length && !bodySkipped) {
            const n = Math.min(MAX_BODY_CHUNK_BYTES - filled, part.bytes.length - at);
            chunk.set(part.bytes.subarray(at, at + n), filled);
            filled += n;
            at += n;
            if (filled === MAX_BODY_CHUNK_BYTES) {
              const v = await sendChunk();
              if (v !== null) return v;
            }
          }
          return null;
        }
      }
    };

    let headersDone = false;
    for await (const bytes of message.read()) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      const r = splitter.push(bytes);
      if (!r.ok) throw new Error(`message: ${r.error}`);
      for (const part of r.value) {
        const v = await onPart(part);
        if (v !== null) return v;
        if (part.kind === 'endOfHeaders') headersDone = true;
      }
      // Nothing more to send from the body: stop reading the spool.
      if (headersDone && bodySkipped) break;
    }
    if (!(headersDone && bodySkipped)) {
      const r = splitter.end();
      if (!r.ok) throw new Error(`message: ${r.error}`);
      for (const part of r.value) {
        const v = await onPart(part);
        if (v !== null) return v;
      }
    }
    const last = await sendChunk();
    if (last !== null) return last;
    return this.#endOfMessage(ctx, message, signal);
  }

  /** A decision before the end of the message: anything but continue ends the milter's part. */
  #inMessage(d: Decision): Verdict | null {
    switch (d.kind) {
      case 'continue':
      case 'skip':
        return null;
      case 'accept':
        this.#txn = 'decided';
        return this.#takeQuarantine() ?? { kind: 'accept', reason: 'milter accepted the message' };
      case 'discard':
        this.#txn = 'decided';
        return { kind: 'discard', reason: 'milter discarded the message' };
      case 'refuse':
        this.#txn = 'decided';
        return d.verdict;
    }
  }

  async #endOfMessage(ctx: FilterContext, message: FilterMessage, signal: AbortSignal): Promise<Verdict> {
    const link = this.#link!;
    await link.send([this.#macroFrame('eom', Command.bodyEob, ctx), encodeEob()], signal);
    this.#skip = null;
    const edits = new Edits(message.headers.map((h) => h.name));
    for (;;) {
      const r = parseReply(await link.receive(signal));
      if (!r.ok) throw new Error(`end of message: ${r.error}`);
      const reply = r.value;
      if (this.#edit(reply, edits)) continue;
      const d = this.#decide(reply);
      if (d === null) continue;
      // The milter is done with this message: no abort is owed at reset.
      this.#txn = 'none';
      const reason = edits.notes.length > 0 ? edits.notes.join('; ') : undefined;
      switch (d.kind) {
        case 'continue':
        case 'skip':
        case 'accept': {
          const actions = edits.actions();
          const q = this.#takeQuarantine(actions);
          if (q !== null) return reason === undefined ? q : { ...q, reason: `${q.reason}; ${reason}` };
          return {
            kind: 'accept',
            ...(reason === undefined ? {} : { reason }),
            ...(actions === undefined ? {} : { actions }),
          };
        }
        case 'discard':
          return { kind: 'discard', reason: 'milter discarded the message' };
        case 'refuse':
          return d.verdict;
      }
    }
  }

  /** A modification at the end of the message, gathered in `edits`; false for anything else. */
  #edit(reply: MilterReply, edits: Edits): boolean {
    const neg = this.#neg!;
    const allowed = (action: number, what: string): void => {
      if ((neg.actions & action) === 0) throw new Error(`milter sent ${what} it did not negotiate`);
    };
    switch (reply.kind) {
      case 'addHeader': {
        allowed(Action.addHeaders, 'ADDHEADER');
        // SMFIR_ADDHEADER appends at the END of the header block; HeaderEdit's `add` puts a field on
        // top, so it becomes an insert at the index past the last field (as the edits so far leave it).
        const name = this.#headerName(reply.name);
        edits.headers.push({
          op: 'insert',
          index: edits.names.length,
          name,
          value: this.#headerValue(reply.value),
        });
        edits.names.push(name);
        return true;
      }
      case 'insertHeader': {
        allowed(Action.addHeaders, 'INSHEADER');
        const name = this.#headerName(reply.name);
        const index = Math.min(reply.index, edits.names.length);
        edits.headers.push({ op: 'insert', index, name, value: this.#headerValue(reply.value) });
        edits.names.splice(index, 0, name);
        return true;
      }
      case 'changeHeader': {
        allowed(Action.changeHeaders, 'CHGHEADER');
        const name = this.#headerName(reply.name);
        // Sendmail reads index 0 as the first occurrence, as Postfix does too.
        const occurrence = Math.max(1, reply.index);
        const value = reply.value === '' ? null : this.#headerValue(reply.value);
        edits.headers.push({ op: 'change', name, occurrence, value });
        const at = nthIndex(edits.names, name, occurrence);
        if (value === null && at >= 0) edits.names.splice(at, 1);
        if (value !== null && at < 0) edits.names.push(name);
        return true;
      }
      case 'replaceBody': {
        allowed(Action.changeBody, 'REPLBODY');
        edits.replacesBody = true;
        edits.bodyBytes += reply.chunk.length;
        if (edits.bodyBytes > (this.#o.maxReplacedBodyBytes ?? 64 * 1024 * 1024)) {
          throw new Error('replacement body too large');
        }
        if (reply.chunk.length > 0) edits.body.push(reply.chunk);
        return true;
      }
      case 'addRecipient': {
        allowed(reply.args === null ? Action.addRecipient : Action.addRecipientWithArgs, 'ADDRCPT');
        edits.addRecipients.push(stripBrackets(reply.recipient));
        if (reply.args !== null && reply.args !== '') {
          edits.notes.push(`ESMTP arguments of added recipient ${reply.recipient} ignored: ${reply.args}`);
        }
        return true;
      }
      case 'deleteRecipient':
        allowed(Action.deleteRecipient, 'DELRCPT');
        edits.deleteRecipients.push(stripBrackets(reply.recipient));
        return true;
      case 'changeFrom':
        allowed(Action.changeFrom, 'CHGFROM');
        edits.notes.push(`CHGFROM to ${reply.sender} ignored: changing the envelope sender is not supported`);
        return true;
      default:
        return false;
    }
  }

  #headerName(name: string): string {
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name))
      throw new Error(`bad header name from milter: ${JSON.stringify(name)}`);
    return name;
  }

  /**
   * A header value as HeaderEdit carries it: without the space after the colon (the writer puts one;
   * a milter that negotiated SMFIP_HDR_LEADSPC sends its own), folded lines joined with CRLF (milters
   * fold with a bare LF, as Sendmail stores headers). A line break not followed by blank space would
   * start a new field: refused.
   */
  #headerValue(value: string): string {
    let v = value;
    if (this.#wants(Flag.headerLeadingSpace) && v.startsWith(' ')) v = v.slice(1);
    v = v.replace(/\r?\n/g, '\r\n');
    if (/\r(?!\n)|\r\n(?![ \t])/.test(v))
      throw new Error('header value from milter has a line break that is no folding');
    return v;
  }

  /**
   * Send one event (with its macros) and wait for the milter's decision, unless it said it does not
   * want the event (`noSend`) or will not reply to it (`noReply`), or skipped the rest of its kind.
   */
  async #event(
    stage: MacroStage,
    command: CommandCode,
    ctx: FilterContext,
    frames: readonly Uint8Array[],
    noSend: number,
    noReply: number,
    signal: AbortSignal,
  ): Promise<Decision> {
    const link = this.#link!;
    if (this.#skip !== null && this.#skip !== command) this.#skip = null;
    if (this.#skip === command) return { kind: 'continue' };
    // Macros go even for an event the milter does not want: later callbacks may read them.
    const macros =
      command === Command.header || command === Command.body ? [] : [this.#macroFrame(stage, command, ctx)];
    if (this.#wants(noSend)) {
      await link.send(macros, signal);
      return { kind: 'continue' };
    }
    await link.send([...macros, ...frames], signal);
    if (this.#wants(noReply)) return { kind: 'continue' };
    for (;;) {
      const r = parseReply(await link.receive(signal));
      if (!r.ok) throw new Error(`reply to ${command}: ${r.error}`);
      const d = this.#decide(r.value);
      if (d === null) continue;
      if (d.kind === 'skip') {
        if (!this.#wants(Flag.skip)) throw new Error('milter sent SKIP it did not negotiate');
        this.#skip = command;
      }
      return d;
    }
  }

  /** A reply as a decision; null to keep reading (progress, quarantine noted). Edits here are errors. */
  #decide(reply: MilterReply): Decision | null {
    switch (reply.kind) {
      case 'continue':
        return { kind: 'continue' };
      case 'skip':
        return { kind: 'skip' };
      case 'accept':
        return { kind: 'accept' };
      case 'discard':
        return { kind: 'discard' };
      case 'progress':
        // XXX: progress does not extend the pipeline's timeout, which bounds the whole stage.
        return null;
      case 'quarantine':
        if ((this.#neg!.actions & Action.quarantine) === 0)
          throw new Error('milter sent QUARANTINE it did not negotiate');
        this.#quarantine = reply.reason === '' ? 'no reason given' : reply.reason;
        return null;
      case 'reject':
        return {
          kind: 'refuse',
          verdict: { kind: 'reject', reply: Replies.filterRejected, reason: 'milter rejected' },
        };
      case 'tempfail':
        return {
          kind: 'refuse',
          verdict: { kind: 'defer', reply: Replies.filterTempfail, reason: 'milter tempfailed' },
        };
      case 'shutdown':
      case 'connectionFailure':
        return {
          kind: 'refuse',
          verdict: {
            kind: 'defer',
            reply: Replies.filterTempfail,
            reason: `milter asked to end the connection (${reply.kind})`,
          },
        };
      case 'replyCode':
        return { kind: 'refuse', verdict: replyCodeVerdict(reply.text) };
      case 'addHeader':
      case 'insertHeader':
      case 'changeHeader':
      case 'replaceBody':
      case 'addRecipient':
      case 'deleteRecipient':
      case 'changeFrom':
        throw new Error(`milter sent a modification (${reply.kind}) before the end of the message`);
    }
  }

  /** SMFIC_MACRO for the command: the milter's list for the stage where it gave one, else ours. */
  #macroFrame(stage: MacroStage, command: CommandCode, ctx: FilterContext): Uint8Array {
    const names = this.#neg!.macros.get(stage) ?? DEFAULT_MACROS[stage];
    const pairs: [string, string][] = [];
    for (const name of names) {
      const value = macroValue(name, ctx, this.#o.hostname);
      if (value !== null) pairs.push([name, value]);
    }
    return encodeMacros(command, pairs);
  }
}

const ACCEPT: Verdict = { kind: 'accept' };

/** A macro's value in this context (`{name}` or `name`), or null where Tern has none. */
function macroValue(raw: string, ctx: FilterContext, hostname: string): string | null {
  const name = raw.startsWith('{') && raw.endsWith('}') ? raw.slice(1, -1) : raw;
  const c = ctx.client;
  const ip = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(c.ip)?.[1] ?? c.ip;
  switch (name) {
    case 'j':
      return hostname;
    case 'v':
      return 'Tern';
    case 'daemon_name':
      return c.service;
    case 'daemon_addr':
      return c.localAddress;
    case 'daemon_port':
      return String(c.localPort);
    case '_':
      return c.hostname === null ? `[${ip}]` : `${c.hostname} [${ip}]`;
    case 'client_addr':
      return ip;
    case 'client_name':
      return c.hostname ?? `[${ip}]`;
    case 'client_port':
      return String(c.port);
    case 'client_resolve':
      return c.hostname === null ? 'FAIL' : 'OK';
    case 'i':
      return ctx.queueId;
    case 'auth_authen':
      return c.authUser;
    case 'mail_addr':
      return ctx.mailFrom;
    case 'rcpt_addr':
      return ctx.rcpt ?? null;
    case 'tls_version':
      return c.tlsVersion ?? null;
    case 'cipher':
      return c.tlsCipher ?? null;
    case 'auth_type':
      return c.authMechanism ?? null;
    default:
      return null;
  }
}

/** SMFIR_REPLYCODE as a verdict: the milter's code and text when valid, else its class's generic reply. */
function replyCodeVerdict(text: string): Verdict {
  const r = parseReplyText(text);
  if (r === null) {
    // Malformed: a 5xx keeps its class with our generic text; anything else is temporary (unknown means
    // temporary; Postfix answers 451 4.3.5 here).
    const reason = `milter sent a malformed reply: ${JSON.stringify(text.slice(0, 200))}`;
    return /^5[0-9][0-9][ -]/.test(text)
      ? { kind: 'reject', reply: Replies.filterRejected, reason }
      : { kind: 'defer', reply: Replies.filterTempfail, reason };
  }
  const permanent = r.code >= 500;
  const base = permanent ? Replies.filterRejected : Replies.filterTempfail;
  const reply: Reply = {
    code: r.code,
    enhanced: r.enhanced ?? base.enhanced,
    text: r.lines.join(' ').trim() === '' ? base.text : r.lines.join(' ').trim(),
  };
  const reason = `milter replied ${r.code}`;
  return permanent ? { kind: 'reject', reply, reason } : { kind: 'defer', reply, reason };
}

function stripBrackets(address: string): string {
  const a = address.trim();
  return a.startsWith('<') && a.endsWith('>') ? a.slice(1, -1) : a;
}

function nthIndex(names: readonly string[], name: string, occurrence: number): number {
  let seen = 0;
  const lower = name.toLowerCase();
  for (const [i, n] of names.entries()) {
    if (n.toLowerCase() === lower && ++seen === occurrence) return i;
  }
  return -1;
}

/** How many fields the stored header block has: read from the spool until the block ends. */
async function countStoredFields(message: FilterMessage): Promise<number> {
  const splitter = new MessageSplitter();
  let count = 0;
  for await (const bytes of message.read()) {
    const r = splitter.push(bytes);
    if (!r.ok) throw new Error(`message: ${r.error}`);
    for (const p of r.value) {
      if (p.kind === 'field') count++;
      if (p.kind === 'endOfHeaders') return count;
    }
  }
  const r = splitter.end();
  if (!r.ok) throw new Error(`message: ${r.error}`);
  return count + r.value.filter((p) => p.kind === 'field').length;
}
