// SEARCH and UID SEARCH (RFC 9051 §6.4.4, ESEARCH RFC 4731, SEARCHRES RFC 5182, CONDSTORE MODSEQ RFC 7162
// §3.1.5), SORT with ESORT (RFC 5256, RFC 5267, SORT=DISPLAY RFC 5957) and THREAD (RFC 5256). The pure
// evaluators are in protocol/imap/search.ts, sort.ts and thread.ts; this file reads what they need and
// nothing more: the metadata of every message in one store read, the stored structure only when a key
// or the sort asks for it (decoded lazily), the header section or the whole message only for keys that
// search them (searchNeeds), one message at a time.

import { formatEsearchResponse, formatSearchResponse } from '../../protocol/imap/format.ts';
import {
  compileSearch,
  esearchResults,
  isSupportedCharset,
  searchCharsets,
  searchNeeds,
  usesModseq,
  type SearchMessage,
} from '../../protocol/imap/search.ts';
import { formatSortResponse, sortMessages } from '../../protocol/imap/sort.ts';
import {
  formatThreadResponse,
  isThreadAlgorithm,
  referencesField,
  threadMessages,
  threadNeeds,
} from '../../protocol/imap/thread.ts';
import { decodeStructure, encodeStructure } from '../../protocol/mime/codec.ts';
import { scanMessage, type MessageStructure } from '../../protocol/mime/structure.ts';
import type { SearchKey } from '../../protocol/imap/command.ts';
import { partialOf } from '../../protocol/imap/search-context.ts';
import type { SelectedView } from '../../protocol/imap/selected.ts';
import type { MessageMeta } from '../../store/mailbox-store.ts';
import { bad, no, ok, type CommandOf, type Completion, type ImapContext } from './context.ts';
import { selectedView } from './messages.ts';
import { readStored } from './stored-bytes.ts';
import type { SearchContexts } from './search-context.ts';

export type Found = { readonly seq: number; readonly meta: MessageMeta; readonly message: SearchMessage };

export async function search(
  ctx: ImapContext,
  cmd: CommandOf<'search'> | CommandOf<'sort'> | CommandOf<'thread'>,
  tag: string,
  contexts: SearchContexts,
): Promise<Completion> {
  const view = selectedView(ctx);
  const { program } = cmd;
  // RFC 5267 §4.3: a tag that names an updating context cannot name another.
  const update = cmd.kind !== 'thread' && cmd.returns !== null && cmd.returns.includes('UPDATE');
  if (update && contexts.has(tag)) return bad('Tag reuse');
  if (!isSupportedCharset(program.charset)) {
    return no('Unsupported charset', { kind: 'BADCHARSET', charsets: [...searchCharsets] });
  }
  if (cmd.kind === 'thread' && !isThreadAlgorithm(cmd.algorithm.toUpperCase())) {
    return bad(`Unknown THREAD algorithm ${cmd.algorithm}`);
  }
  const threadHeader =
    cmd.kind === 'thread' && isThreadAlgorithm(cmd.algorithm.toUpperCase())
      ? threadNeeds(cmd.algorithm.toUpperCase() as 'REFERENCES' | 'ORDEREDSUBJECT') === 'header'
      : false;
  const modseqKey = usesModseq(program.key);
  if (modseqKey) ctx.enabled.condstore = true;

  const metas = await ctx.store.messages(ctx.user, view.folder, 'all');
  const headers = new Map<number, Uint8Array>();
  const found = await findMatches(ctx, view, program.key, metas, threadHeader ? headers : null);
  const highestOf = (list: readonly Found[]): bigint | null =>
    modseqKey && list.length > 0 ? BigInt(list.reduce((n, f) => Math.max(n, f.meta.modseq), 0)) : null;
  const modSeq = highestOf(found);
  /**
   * ESEARCH's MODSEQ is the highest of the messages it returns (RFC 7162 §3.1.5): with only MIN/MAX,
   * those messages alone.
   */
  const returnedModSeq = (returns: readonly string[], ordered: readonly Found[]): bigint | null => {
    const all = returns.length === 0 || returns.includes('ALL') || returns.includes('COUNT');
    if (all) return highestOf(ordered);
    if (cmd.kind !== 'thread' && cmd.partial !== undefined) return highestOf(partialOf(ordered, cmd.partial));
    const picked: Found[] = [];
    const byNumber = [...ordered].sort((a, b) => numberOf(a) - numberOf(b));
    if (returns.includes('MIN') && byNumber.length > 0) picked.push(byNumber[0]!);
    if (returns.includes('MAX') && byNumber.length > 0) picked.push(byNumber[byNumber.length - 1]!);
    return highestOf(picked);
  };
  const numberOf = (f: Found): number => (cmd.uid ? f.meta.uid : f.seq);

  switch (cmd.kind) {
    case 'search': {
      const numbers = found.map(numberOf);
      if (cmd.returns === null) {
        ctx.write(formatSearchResponse(numbers, modSeq));
        return ok('SEARCH completed');
      }
      const r = esearchResults(
        numbers,
        found.map((f) => f.meta.uid),
        cmd.returns,
        false,
        cmd.partial ?? null,
      );
      if (r.emit) {
        const m = returnedModSeq(cmd.returns, found);
        const items = m === null || r.items.length === 0 ? r.items : [...r.items, ['MODSEQ', m] as const];
        ctx.write(formatEsearchResponse(tag, cmd.uid, items));
      }
      // Opened before SAVE replaces `$`: a `$` in this very program means the result saved before it.
      if (update) contexts.open(ctx, view, { tag, uid: cmd.uid, key: program.key, criteria: null }, found);
      if (r.saved !== null) ctx.savedResult = r.saved;
      return ok('SEARCH completed');
    }
    case 'sort': {
      const sorted = sortMessages(
        found.map((f) => ({
          seq: f.seq,
          sizeBytes: f.meta.sizeBytes,
          internalDateMs: f.meta.internalDateMs,
          envelope: f.message.structure?.root.envelope ?? null,
          found: f,
        })),
        cmd.criteria,
      );
      const numbers = sorted.map((s) => numberOf(s.found));
      if (cmd.returns === null) {
        ctx.write(formatSortResponse(numbers, modSeq));
        return ok('SORT completed');
      }
      const r = esearchResults(
        numbers,
        sorted.map((s) => s.found.meta.uid),
        cmd.returns,
        true,
        cmd.partial ?? null,
      );
      const ordered = sorted.map((x) => x.found);
      if (r.emit) {
        const m = returnedModSeq(cmd.returns, ordered);
        const items = m === null || r.items.length === 0 ? r.items : [...r.items, ['MODSEQ', m] as const];
        ctx.write(formatEsearchResponse(tag, cmd.uid, items));
      }
      if (update)
        contexts.open(ctx, view, { tag, uid: cmd.uid, key: program.key, criteria: cmd.criteria }, ordered);
      if (r.saved !== null) ctx.savedResult = r.saved;
      return ok('SORT completed');
    }
    case 'thread': {
      const algorithm = cmd.algorithm.toUpperCase() as 'REFERENCES' | 'ORDEREDSUBJECT';
      const threads = threadMessages(
        algorithm,
        found.map((f) => {
          const header = headers.get(f.meta.uid);
          return {
            id: numberOf(f),
            seq: f.seq,
            internalDateMs: f.meta.internalDateMs,
            envelope: f.message.structure?.root.envelope ?? null,
            references: header === undefined ? null : referencesField(header),
          };
        }),
      );
      ctx.write(formatThreadResponse(threads));
      return ok('THREAD completed');
    }
    default:
      return cmd satisfies never;
  }
}

/**
 * The messages of `metas` that match `key`, in the order given, as the client numbers them now
 * (messages it was not told of, or was told are gone, are left out). `headers`, when given, receives
 * each message's header section (THREAD REFERENCES). Shared by SEARCH/SORT/THREAD and the updates of
 * RFC 5267 contexts (search-context.ts), which evaluate only the messages that changed.
 */
export async function findMatches(
  ctx: ImapContext,
  view: SelectedView,
  key: SearchKey,
  metas: readonly MessageMeta[],
  headers: Map<number, Uint8Array> | null,
): Promise<Found[]> {
  const needs = searchNeeds(key);
  const threadHeader = headers !== null;
  const match = compileSearch(key, {
    maxSeq: view.exists,
    maxUid: view.maxUid,
    savedResult: ctx.savedResult,
    nowMs: ctx.nowMs(),
  });
  const found: Found[] = [];
  for (const meta of metas) {
    const seq = view.seqOf(meta.uid);
    // Messages the client has not been told of yet (or told are gone) are not in its numbering.
    if (seq === 0 || view.isPendingExpunge(meta.uid)) continue;
    let structure: MessageStructure | null | undefined;
    const structureOf = (): MessageStructure | null =>
      (structure ??= meta.structure === null ? null : decodeStructure(meta.structure));
    let raw: Uint8Array | null = null;
    if (needs === 'full') raw = await readStored(ctx.store.openMessage(ctx.user, view.folder, meta.uid));
    else if (needs === 'header' || threadHeader) {
      raw = await readHeader(ctx, view.folder, meta, structureOf());
      if (raw !== null && headers !== null) headers.set(meta.uid, raw);
    }
    if ((needs === 'full' || needs === 'header') && raw === null) continue; // expunged meanwhile
    if (structureOf() === null && raw !== null && needs === 'full') {
      // Stored before structures were kept: scan the bytes now and keep the result.
      structure = scanMessage(raw);
      await ctx.store.setStructure(ctx.user, view.folder, meta.uid, encodeStructure(structure));
    }
    const message: SearchMessage = {
      seq,
      uid: meta.uid,
      flags: view.flagsOf(meta.uid, meta.flags),
      modseq: meta.modseq,
      sizeBytes: meta.sizeBytes,
      internalDateMs: meta.internalDateMs,
      saveDateMs: meta.saveDateMs,
      emailId: meta.emailId,
      threadId: meta.threadId,
      get structure() {
        return structureOf();
      },
      raw,
    };
    if (match(message)) found.push({ seq, meta, message });
  }
  return found;
}

/** The top header section: from the structure's offsets, or the whole message when none is kept. */
function readHeader(
  ctx: ImapContext,
  folder: string,
  meta: MessageMeta,
  structure: MessageStructure | null,
): Promise<Uint8Array | null> {
  if (structure === null) return readStored(ctx.store.openMessage(ctx.user, folder, meta.uid));
  const range = { start: structure.root.headerStart, end: structure.root.bodyStart };
  return readStored(ctx.store.openRange(ctx.user, folder, meta.uid, range));
}
