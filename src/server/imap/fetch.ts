// FETCH and UID FETCH (RFC 9051 §6.4.5) with CONDSTORE's CHANGEDSINCE and QRESYNC's VANISHED (RFC 7162
// §3.1.4.1, §3.2.6): the messages' metadata in one store read, \Seen set first for a non-PEEK body
// fetch (one durable STORE for all of them), then each response built by protocol/imap/fetch.ts from the
// stored structure, reading only the ranges it needs and streaming BODY[] literals from the store with
// backpressure. A message stored without a structure (before the store kept one) is scanned once and
// its structure saved.

import { decodeStructure, encodeStructure } from '../../protocol/mime/codec.ts';
import { MimeScanner, type MessageStructure } from '../../protocol/mime/structure.ts';
import {
  fetchNeeds,
  fetchSetsSeen,
  renderFetch,
  withFlags,
  type FetchMessage,
  type LoadedRange,
} from '../../protocol/imap/fetch.ts';
import type { FetchItem } from '../../protocol/imap/command.ts';
import { formatVanished } from '../../protocol/imap/format.ts';
import { uidSetNames } from '../../protocol/imap/syntax.ts';
import type { MessageMeta } from '../../store/mailbox-store.ts';
import { bad, ok, type CommandOf, type Completion, type ImapContext } from './context.ts';
import { selectedView, targetUids } from './messages.ts';
import { readStored } from './stored-bytes.ts';

/** Items answered from the metadata alone: no structure decoded, no body read. */
const META_ONLY = new Set<FetchItem['kind']>([
  'flags',
  'uid',
  'internaldate',
  'rfc822.size',
  'modseq',
  'emailid',
  'threadid',
  'savedate',
]);

const EMPTY_STRUCTURE: MessageStructure = {
  size: 0,
  preview: '',
  root: {
    headerStart: 0,
    bodyStart: 0,
    bodyEnd: 0,
    type: 'text',
    subtype: 'plain',
    params: [],
    id: null,
    description: null,
    encoding: '7BIT',
    md5: null,
    disposition: null,
    language: null,
    location: null,
    lines: 0,
    parts: [],
    message: null,
    envelope: null,
  },
};

export async function fetch(ctx: ImapContext, cmd: CommandOf<'fetch'>): Promise<Completion> {
  const view = selectedView(ctx);
  const target = targetUids(ctx, cmd.set, cmd.uid);
  if (!Array.isArray(target)) return target;
  if (cmd.vanished && (!cmd.uid || !ctx.enabled.qresync || cmd.changedSince === null)) {
    return bad('VANISHED needs UID FETCH with CHANGEDSINCE and QRESYNC enabled');
  }
  let items = cmd.items;
  if (cmd.changedSince !== null || items.some((i) => i.kind === 'modseq')) ctx.enabled.condstore = true;
  // UID FETCH always answers UID (RFC 9051 §6.4.9).
  if (cmd.uid && !items.some((i) => i.kind === 'uid')) items = [{ kind: 'uid' }, ...items];
  const uids = target.filter((u) => !view.isPendingExpunge(u));
  if (cmd.vanished && cmd.changedSince !== null) {
    const changes = await ctx.store.changesSince(ctx.user, view.folder, Number(cmd.changedSince));
    const gone = changes.vanished.filter((u) => uidSetNames(cmd.set, u));
    if (gone.length > 0) ctx.write(formatVanished(gone, true));
  }
  let metas = uids.length === 0 ? [] : await ctx.store.messages(ctx.user, view.folder, uids);
  if (cmd.changedSince !== null) {
    const since = Number(cmd.changedSince);
    metas = metas.filter((m) => m.modseq > since);
    if (!items.some((i) => i.kind === 'modseq')) items = [...items, { kind: 'modseq' }];
  }
  // \Seen first, in one durable change, so the responses show the flags as they now are.
  const seen = new Set<number>();
  if (fetchSetsSeen(items) && !view.readOnly) {
    const unseen = metas.filter((m) => !m.flags.some((f) => f.toLowerCase() === '\\seen')).map((m) => m.uid);
    if (unseen.length > 0) {
      const r = await ctx.store.storeFlags(ctx.user, view.folder, unseen, { mode: 'add', flags: ['\\Seen'] });
      const after = new Map(r.messages.map((m) => [m.uid, m]));
      metas = metas.map((m) => {
        const changed = after.get(m.uid);
        if (changed === undefined) return m;
        seen.add(m.uid);
        return { ...m, flags: changed.flags, modseq: changed.modseq };
      });
    }
  }
  const withSeen = withFlags(items);
  const metaOnly = items.every((i) => META_ONLY.has(i.kind));
  const options = {
    utf8: ctx.enabled.utf8,
    condstore: ctx.enabled.condstore,
    imap4rev2: ctx.enabled.imap4rev2,
  };
  for (const meta of metas) {
    const seq = view.seqOf(meta.uid);
    if (seq === 0) continue;
    const these = seen.has(meta.uid) ? withSeen : items;
    const structure = metaOnly ? EMPTY_STRUCTURE : await structureOf(ctx, view.folder, meta);
    if (structure === null) continue; // expunged meanwhile
    const loaded: LoadedRange[] = [];
    for (const range of metaOnly ? [] : fetchNeeds(these, structure)) {
      const bytes = await readStored(ctx.store.openRange(ctx.user, view.folder, meta.uid, range));
      if (bytes === null) break;
      loaded.push({ ...range, bytes });
    }
    const message: FetchMessage = { ...meta, flags: view.flagsOf(meta.uid, meta.flags), structure };
    const result = renderFetch(seq, these, message, loaded, options);
    if (!result.ok) return { status: 'NO', code: result.code, text: result.text };
    for (const chunk of result.chunks) {
      if (chunk.kind === 'bytes') ctx.write(chunk.bytes);
      else await streamRange(ctx, view.folder, meta.uid, chunk.start, chunk.end);
    }
    if (these.some((i) => i.kind === 'flags')) view.told(meta.uid, meta.modseq);
  }
  return ok('FETCH completed');
}

/** The stored structure, or a scan of the message (saved for next time); null when it is gone. */
async function structureOf(
  ctx: ImapContext,
  folder: string,
  meta: MessageMeta,
): Promise<MessageStructure | null> {
  if (meta.structure !== null) {
    const decoded = decodeStructure(meta.structure);
    if (decoded !== null) return decoded;
  }
  const stored = await ctx.store.openMessage(ctx.user, folder, meta.uid);
  if (stored === null) return null;
  const scanner = new MimeScanner();
  try {
    for await (const chunk of stored.content) scanner.push(chunk);
  } finally {
    await stored.close();
  }
  const structure = scanner.finish();
  await ctx.store.setStructure(ctx.user, folder, meta.uid, encodeStructure(structure));
  return structure;
}

/** Copy stored octets into the response; a message gone meanwhile still reads whole (store rule). */
async function streamRange(
  ctx: ImapContext,
  folder: string,
  uid: number,
  start: number,
  end: number,
): Promise<void> {
  if (end <= start) return;
  const stored = await ctx.store.openRange(ctx.user, folder, uid, { start, end });
  if (stored === null) throw new Error(`message ${uid} vanished while its literal was being sent`);
  let sent = 0;
  try {
    for await (const chunk of stored.content) {
      sent += chunk.length;
      await ctx.send(chunk);
    }
  } finally {
    await stored.close();
  }
  // The literal's length is promised already: a short read cannot be answered but by closing.
  if (sent !== end - start) throw new Error(`message ${uid}: read ${sent} of ${end - start} octets`);
}
