// APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502) and UIDPLUS's APPENDUID (RFC 4315): each message
// literal streams from the connection into the store as it arrives (ChunkChannel: never a whole message
// in memory), its MIME structure scanned on the way (so FETCH never parses it again), and is durable
// when the store's append resolves. A literal is refused before the client sends it when the target
// does not exist ([TRYCREATE]), is \Noselect, or the message is empty or too large ([TOOBIG]).
// MULTIAPPEND is all or nothing: when one message fails, the ones already stored are expunged again.
// XXX: between those two commits another session may glimpse the first messages; RFC 3502 §6.3.11 asks
// for atomicity as seen by the client that appends, which this keeps.
// CATENATE (RFC 4469): a message made of TEXT literals and URL parts streams into the store the same
// way, its parts pushed in order as the command is read (the parser tells where each literal sits); a
// URL names a message or section of the user's own folders (relative "/folder/;uid=n/;section=s", or
// an absolute URLAUTH URL whose token admits this user: url-data.ts, urlauth.ts), and one that names
// nothing fails the whole command with NO [BADURL url] (§5), before a later literal is sent where the
// client waits for "+". A message with only URL parts is put together when the command ends.

import type {
  AppendMessage,
  AppendMessageHead,
  AppendPosition,
  CatenatePart,
  ImapCommand,
} from '../../protocol/imap/command.ts';
import { parseImapUrl, urlOwner } from '../../protocol/imap/imap-url.ts';
import type { ImapDateTime } from '../../protocol/imap/syntax.ts';
import { headerSummary } from '../../protocol/headers.ts';
import { encodeStructure } from '../../protocol/mime/codec.ts';
import { LongLineEncoder, LongLineScan } from '../../protocol/mime/long-lines.ts';
import { MimeScanner } from '../../protocol/mime/structure.ts';
import { MailboxError, normalizeFlags, normalizeUser } from '../../store/mailbox-store.ts';
import { ChunkChannel } from './chunk-channel.ts';
import { locateUrl, urlData, type UrlData } from './url-data.ts';
import { authorizedTarget } from './urlauth.ts';
import {
  Refusals,
  bad,
  completionOf,
  mailboxArg,
  no,
  ok,
  quotaRefusal,
  type Completion,
  type ImapContext,
} from './context.ts';

/** The header summary the CLI lists is read from this much of a message at most. */
const SUMMARY_BYTES = 64 * 1024;

interface Pending {
  readonly channel: ChunkChannel;
  readonly result: Promise<{ uidValidity: number; uid: number } | { error: unknown }>;
  /** A literal8 message held for the NUL-encoding pass (RFC 3516 §4.4), null for streamed ones. */
  readonly held: Uint8Array[] | null;
}

/** A CATENATE message being fed: its index in the command, how many of its parts went in, its size. */
interface OpenCatenate {
  readonly index: number;
  readonly pending: Pending;
  parts: number;
  bytes: number;
}

/** The internal date an APPEND names ("17-Jul-1996 02:44:25 -0700"), in epoch ms. */
export function dateTimeMs(d: ImapDateTime): number {
  const utc = Date.UTC(d.year, d.month - 1, d.day, d.hour, d.minute, d.second);
  return utc - d.zoneMinutes * 60_000;
}

export class AppendCommand {
  private readonly mailboxWire: string;
  private folder: string | null = null;
  private readonly pending: Pending[] = [];
  /** Where the literal now streaming goes; `catenate`: more parts follow, so its end is not the message's. */
  private current: { readonly pending: Pending; readonly catenate: boolean } | null = null;
  /** Messages of the command started so far (in order: a URL-only CATENATE message waits its turn). */
  private started = 0;
  private open: OpenCatenate | null = null;

  constructor(mailboxWire: string) {
    this.mailboxWire = mailboxWire;
  }

  /** Check and start one message literal (or CATENATE TEXT part); a Completion refuses it. */
  async begin(
    ctx: ImapContext,
    e: {
      readonly sizeBytes: number;
      readonly head: AppendMessageHead;
      readonly binary: boolean;
      readonly position?: AppendPosition | null;
    },
  ): Promise<Completion | null> {
    const position = e.position ?? null;
    if (position !== null) {
      const refused = await this.catchUp(ctx, position.earlier);
      if (refused !== null) return refused;
    }
    if (position === null || position.catenate === null) {
      if (e.sizeBytes === 0) return no('An empty message cannot be appended', { kind: 'CANNOT' });
      const started = await this.start(ctx, e.head, e.sizeBytes, e.binary);
      if (!('result' in started)) return started;
      this.started++;
      this.current = { pending: started, catenate: false };
      return null;
    }
    const index = position.earlier.length;
    let open = this.open;
    if (open === null || open.index !== index) {
      const started = await this.start(ctx, e.head, e.sizeBytes, false);
      if (!('result' in started)) return started;
      this.started++;
      open = this.open = { index, pending: started, parts: 0, bytes: 0 };
    }
    const refused = await this.pushParts(ctx, open, position.catenate);
    if (refused !== null) return refused;
    open.parts++;
    open.bytes += e.sizeBytes;
    if (open.bytes > ctx.appendLimitBytes) return Refusals.tooBig;
    this.current = { pending: open.pending, catenate: true };
    return null;
  }

  async data(chunk: Uint8Array, last: boolean): Promise<void> {
    const cur = this.current;
    if (cur === null) return;
    if (cur.pending.held !== null) {
      // XXX: a literal8 message is held whole (up to APPENDLIMIT) for the second pass; they are rare
      // (BINARY clients appending raw attachments) and the two passes need the same bytes twice.
      if (chunk.length > 0) cur.pending.held.push(Uint8Array.from(chunk));
      if (!last) return;
      for (const piece of encodeNul(cur.pending.held)) await cur.pending.channel.push(piece);
    } else if (chunk.length > 0) await cur.pending.channel.push(chunk);
    if (last) {
      if (!cur.catenate) cur.pending.channel.end();
      this.current = null;
    }
  }

  /** The command is complete: wait for every message to be durable and answer. */
  async finish(ctx: ImapContext, cmd: ImapCommand & { readonly kind: 'append' }): Promise<Completion> {
    const refused = await this.catchUp(ctx, cmd.messages);
    if (refused !== null) {
      await this.abort(ctx);
      return refused;
    }
    const results = await Promise.all(this.pending.map((p) => p.result));
    const stored = results.filter((r): r is { uidValidity: number; uid: number } => !('error' in r));
    const failed = results.find((r): r is { error: unknown } => 'error' in r);
    if (failed !== undefined) {
      await this.undo(
        ctx,
        stored.map((r) => r.uid),
      );
      if (failed.error instanceof MailboxError) return completionOf(failed.error, true);
      throw failed.error;
    }
    if (stored.length === 0) return bad('APPEND without a message');
    ctx.log.event('imap.append', { folder: this.folder, messages: stored.length });
    return ok('APPEND completed', {
      kind: 'APPENDUID',
      uidValidity: stored[0]!.uidValidity,
      uids: stored.map((r) => r.uid),
    });
  }

  /** The connection ended or a literal was refused mid-command: nothing of this APPEND stays. */
  async abort(ctx: ImapContext): Promise<void> {
    // The store sees its content fail, not end: a message cut short is never committed.
    for (const p of this.pending) p.channel.fail(new Error('APPEND abandoned before its literal ended'));
    const results = await Promise.all(this.pending.map((p) => p.result));
    const stored = results.filter((r): r is { uidValidity: number; uid: number } => !('error' in r));
    await this.undo(
      ctx,
      stored.map((r) => r.uid),
    );
  }

  /**
   * Bring the messages before `earlier.length` to their end: the open CATENATE message gets its last
   * URL parts and ends; a CATENATE message of URLs alone (no literal announced it) is made now.
   */
  private async catchUp(ctx: ImapContext, earlier: readonly AppendMessage[]): Promise<Completion | null> {
    const open = this.open;
    if (open !== null && open.index < earlier.length) {
      const m = earlier[open.index]!;
      if (m.data.kind === 'catenate') {
        const refused = await this.pushParts(ctx, open, m.data.parts);
        if (refused !== null) return refused;
      }
      open.pending.channel.end();
      this.open = null;
    }
    while (this.started < earlier.length) {
      const index = this.started;
      const m = earlier[index]!;
      // Literal messages started when their literal came; only URL-only CATENATE ones are left here.
      if (m.data.kind !== 'catenate') return bad('APPEND literal out of order');
      const started = await this.start(ctx, m, 0, false);
      if (!('result' in started)) return started;
      this.started++;
      const msg: OpenCatenate = { index, pending: started, parts: 0, bytes: 0 };
      const refused = await this.pushParts(ctx, msg, m.data.parts);
      if (refused !== null) return refused;
      started.channel.end();
    }
    return null;
  }

  /** Push the URL parts of `parts` the message has not had yet (TEXT parts stream as literals). */
  private async pushParts(
    ctx: ImapContext,
    msg: OpenCatenate,
    parts: readonly CatenatePart[],
  ): Promise<Completion | null> {
    for (; msg.parts < parts.length; msg.parts++) {
      const part = parts[msg.parts]!;
      if (part.kind === 'text') continue;
      const data = await catenateUrl(ctx, part.url);
      if (data === null) return no('URL names nothing', { kind: 'BADURL', url: part.url });
      msg.bytes += data.sizeBytes;
      if (msg.bytes > ctx.appendLimitBytes) return Refusals.tooBig;
      for await (const chunk of data.content()) await msg.pending.channel.push(chunk);
    }
    return null;
  }

  /** Check the target and the message's options, and start the store's append of one message. */
  private async start(
    ctx: ImapContext,
    head: AppendMessageHead,
    sizeBytes: number,
    /** literal8: held whole for the NUL-encoding pass (CATENATE TEXT parts never are). */
    binary: boolean,
  ): Promise<Pending | Completion> {
    const name = mailboxArg(ctx, this.mailboxWire);
    if (name === null) return Refusals.badName;
    if (sizeBytes > ctx.appendLimitBytes) return Refusals.tooBig;
    const overQuota = await quotaRefusal(ctx, { bytes: sizeBytes, messages: 1 });
    if (overQuota !== null) return overQuota;
    let flags: string[];
    try {
      flags = normalizeFlags((head.flags ?? []).filter((f) => f.toLowerCase() !== '\\recent'));
    } catch {
      return Refusals.invalidFlag;
    }
    const folders = await ctx.store.folders(ctx.user);
    const info = folders.find(
      (f) => f.name === name || (f.name === 'INBOX' && name.toUpperCase() === 'INBOX'),
    );
    if (info === undefined || info.attributes.includes('\\NonExistent')) {
      return Refusals.tryCreate;
    }
    if (info.attributes.includes('\\Noselect')) return no('Mailbox cannot hold messages', { kind: 'CANNOT' });
    this.folder = info.name;
    const channel = new ChunkChannel();
    const scanner = new MimeScanner();
    const headChunks: Uint8Array[] = [];
    let headBytes = 0;
    let summary: { from: string; subject: string; date: string } | null = null;
    const summarize = (): { from: string; subject: string; date: string } =>
      (summary ??= headerSummary(Buffer.concat(headChunks)));
    async function* scanned(): AsyncIterable<Uint8Array> {
      for await (const chunk of channel) {
        scanner.push(chunk);
        if (headBytes < SUMMARY_BYTES) {
          headChunks.push(chunk.subarray(0, SUMMARY_BYTES - headBytes));
          headBytes += Math.min(chunk.length, SUMMARY_BYTES - headBytes);
        }
        yield chunk;
      }
    }
    const internalDateMs = head.date === null ? ctx.nowMs() : dateTimeMs(head.date);
    const result = ctx.store
      .append(ctx.user, info.name, {
        flags,
        internalDateMs,
        content: scanned(),
        // Read by the store after the content, before its commit.
        summary: {
          get from() {
            return summarize().from;
          },
          get subject() {
            return summarize().subject;
          },
          get date() {
            return summarize().date;
          },
        },
        structure: () => encodeStructure(scanner.finish()),
      })
      .catch((error: unknown) => {
        channel.abandon();
        return { error };
      });
    const pending: Pending = { channel, result, held: binary ? [] : null };
    this.pending.push(pending);
    return pending;
  }

  private async undo(ctx: ImapContext, uids: number[]): Promise<void> {
    if (uids.length === 0 || this.folder === null) return;
    await ctx.store.expunge(ctx.user, this.folder, uids);
  }
}

/**
 * The octets a CATENATE URL names: a relative URL, or an absolute one of this user, in the user's own
 * folders; an absolute URLAUTH URL wherever its token admits this user. Null: [BADURL].
 */
async function catenateUrl(ctx: ImapContext, text: string): Promise<UrlData | null> {
  const url = parseImapUrl(text);
  if (url === null) return null;
  if (url.access !== null) {
    const target = await authorizedTarget(ctx, text);
    return target === null ? null : urlData(ctx.store, target);
  }
  const owner = urlOwner(url);
  if (owner !== null && normalizeUser(owner) !== normalizeUser(ctx.user)) return null;
  const target = await locateUrl(ctx.store, ctx.user, url);
  return target === null ? null : urlData(ctx.store, target);
}

/**
 * RFC 3516 §4.4: a literal8 message may hold NUL, which a 7bit/8bit/binary part cannot be stored and
 * served with (IMAP literals exclude NUL): such parts are re-encoded as base64, as Dovecot does; every
 * other part stays byte for byte.
 */
function encodeNul(chunks: readonly Uint8Array[]): Uint8Array[] {
  const scan = new LongLineScan({ encodeNul: true });
  for (const c of chunks) scan.push(c);
  const plan = scan.plan();
  if (!plan.needed) return [...chunks];
  const encoder = new LongLineEncoder(plan);
  const out = chunks.map((c) => encoder.push(c));
  out.push(encoder.finish());
  return out.filter((c) => c.length > 0);
}
