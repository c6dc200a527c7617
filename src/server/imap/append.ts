// APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502) and UIDPLUS's APPENDUID (RFC 4315): each message
// literal streams from the connection into the store as it arrives (ChunkChannel: never a whole message
// in memory), its MIME structure scanned on the way (so FETCH never parses it again), and is durable
// when the store's append resolves. A literal is refused before the client sends it when the target
// does not exist ([TRYCREATE]), is \Noselect, or the message is empty or too large ([TOOBIG]).
// MULTIAPPEND is all or nothing: when one message fails, the ones already stored are expunged again.
// XXX: between those two commits another session may glimpse the first messages; RFC 3502 §6.3.11 asks
// for atomicity as seen by the client that appends, which this keeps.

import type { AppendMessageHead, ImapCommand } from '../../protocol/imap/command.ts';
import type { ImapDateTime } from '../../protocol/imap/syntax.ts';
import { headerSummary } from '../../protocol/headers.ts';
import { encodeStructure } from '../../protocol/mime/codec.ts';
import { LongLineEncoder, LongLineScan } from '../../protocol/mime/long-lines.ts';
import { MimeScanner } from '../../protocol/mime/structure.ts';
import { MailboxError, normalizeFlags } from '../../store/mailbox-store.ts';
import { ChunkChannel } from './chunk-channel.ts';
import {
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

/** The internal date an APPEND names ("17-Jul-1996 02:44:25 -0700"), in epoch ms. */
export function dateTimeMs(d: ImapDateTime): number {
  const utc = Date.UTC(d.year, d.month - 1, d.day, d.hour, d.minute, d.second);
  return utc - d.zoneMinutes * 60_000;
}

export class AppendCommand {
  private readonly mailboxWire: string;
  private folder: string | null = null;
  private readonly pending: Pending[] = [];
  private current: Pending | null = null;

  constructor(mailboxWire: string) {
    this.mailboxWire = mailboxWire;
  }

  /** Check and start one message; a Completion refuses its literal. */
  async begin(
    ctx: ImapContext,
    e: { readonly sizeBytes: number; readonly head: AppendMessageHead; readonly binary: boolean },
  ): Promise<Completion | null> {
    const name = mailboxArg(ctx, this.mailboxWire);
    if (name === null) return bad('Mailbox name is not valid in this client mode');
    if (e.sizeBytes === 0) return no('An empty message cannot be appended', { kind: 'CANNOT' });
    if (e.sizeBytes > ctx.appendLimitBytes) return no('Message too large', { kind: 'TOOBIG' });
    const overQuota = await quotaRefusal(ctx, { bytes: e.sizeBytes, messages: 1 });
    if (overQuota !== null) return overQuota;
    let flags: string[];
    try {
      flags = normalizeFlags((e.head.flags ?? []).filter((f) => f.toLowerCase() !== '\\recent'));
    } catch {
      return bad('Invalid flag');
    }
    const folders = await ctx.store.folders(ctx.user);
    const info = folders.find(
      (f) => f.name === name || (f.name === 'INBOX' && name.toUpperCase() === 'INBOX'),
    );
    if (info === undefined || info.attributes.includes('\\NonExistent')) {
      return no('Mailbox does not exist', { kind: 'TRYCREATE' });
    }
    if (info.attributes.includes('\\Noselect')) return no('Mailbox cannot hold messages', { kind: 'CANNOT' });
    this.folder = info.name;
    const channel = new ChunkChannel();
    const scanner = new MimeScanner();
    const head: Uint8Array[] = [];
    let headBytes = 0;
    let summary: { from: string; subject: string; date: string } | null = null;
    const summarize = (): { from: string; subject: string; date: string } =>
      (summary ??= headerSummary(Buffer.concat(head)));
    async function* scanned(): AsyncIterable<Uint8Array> {
      for await (const chunk of channel) {
        scanner.push(chunk);
        if (headBytes < SUMMARY_BYTES) {
          head.push(chunk.subarray(0, SUMMARY_BYTES - headBytes));
          headBytes += Math.min(chunk.length, SUMMARY_BYTES - headBytes);
        }
        yield chunk;
      }
    }
    const internalDateMs = e.head.date === null ? ctx.nowMs() : dateTimeMs(e.head.date);
    const held = e.binary ? [] : null;
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
    this.current = { channel, result, held };
    this.pending.push(this.current);
    return null;
  }

  async data(chunk: Uint8Array, last: boolean): Promise<void> {
    const cur = this.current;
    if (cur === null) return;
    if (cur.held !== null) {
      // XXX: a literal8 message is held whole (up to APPENDLIMIT) for the second pass; they are rare
      // (BINARY clients appending raw attachments) and the two passes need the same bytes twice.
      if (chunk.length > 0) cur.held.push(Uint8Array.from(chunk));
      if (!last) return;
      for (const piece of encodeNul(cur.held)) await cur.channel.push(piece);
    } else if (chunk.length > 0) await cur.channel.push(chunk);
    if (last) {
      cur.channel.end();
      this.current = null;
    }
  }

  /** The command is complete: wait for every message to be durable and answer. */
  async finish(ctx: ImapContext, cmd: ImapCommand & { readonly kind: 'append' }): Promise<Completion> {
    void cmd;
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
    for (const p of this.pending) {
      p.channel.abandon();
      p.channel.end();
    }
    const results = await Promise.all(this.pending.map((p) => p.result));
    const stored = results.filter((r): r is { uidValidity: number; uid: number } => !('error' in r));
    await this.undo(
      ctx,
      stored.map((r) => r.uid),
    );
  }

  private async undo(ctx: ImapContext, uids: number[]): Promise<void> {
    if (uids.length === 0 || this.folder === null) return;
    await ctx.store.expunge(ctx.user, this.folder, uids);
  }
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
