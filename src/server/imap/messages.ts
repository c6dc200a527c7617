// The IMAP commands on messages of the selected folder: STORE (with CONDSTORE's UNCHANGEDSINCE, RFC 7162
// §3.1.3), COPY and MOVE (UIDPLUS COPYUID RFC 4315, MOVE RFC 6851), EXPUNGE and UID EXPUNGE, CLOSE's
// silent expunge, FETCH (fetch.ts builds the data) and SEARCH/SORT/THREAD (search.ts).
// Sequence sets are resolved against the client's view (SelectedView), never the store's present:
// a message expunged by another session keeps its number here until the client is told.

import type { ImapCommand } from '../../protocol/imap/command.ts';
import { formatFlagList, formatUntagged, formatUntaggedStatus } from '../../protocol/imap/format.ts';
import type { SelectedView } from '../../protocol/imap/selected.ts';
import type { SequenceSet } from '../../protocol/imap/syntax.ts';
import { MailboxError, normalizeFlags } from '../../store/mailbox-store.ts';
import {
  Refusals,
  bad,
  completionOf,
  mailboxArg,
  no,
  ok,
  type CommandOf,
  type Completion,
  type ImapContext,
  quotaRefusal,
} from './context.ts';

export { fetch } from './fetch.ts';
export { search } from './search.ts';

type Cmd<K extends ImapCommand['kind']> = CommandOf<K>;

/** The view, or the NO every selected-state command gives without one (cannot happen: the session checks). */
export function selectedView(ctx: ImapContext): SelectedView {
  if (ctx.view === null) throw new Error('no mailbox selected');
  return ctx.view;
}

export const INVALID_SEQUENCE = bad('Invalid message sequence number');

/** The UIDs a command names, or a BAD for numbers beyond the mailbox (RFC 9051 §9 "seq-number"). */
export function targetUids(ctx: ImapContext, set: SequenceSet, uid: boolean): number[] | Completion {
  const view = selectedView(ctx);
  const r = view.resolve(set, uid, ctx.savedResult);
  if (!uid && r.invalidSeq) return INVALID_SEQUENCE;
  return r.uids;
}

export async function store(ctx: ImapContext, cmd: Cmd<'store'>): Promise<Completion> {
  const view = selectedView(ctx);
  if (view.readOnly) return Refusals.readOnly;
  const uids = targetUids(ctx, cmd.set, cmd.uid);
  if (!Array.isArray(uids)) return uids;
  let flags: string[];
  try {
    flags = normalizeFlags(cmd.flags.filter((f) => f.toLowerCase() !== '\\recent'));
  } catch {
    return Refusals.invalidFlag;
  }
  if (cmd.unchangedSince !== null) ctx.enabled.condstore = true;
  const live = uids.filter((u) => !view.isPendingExpunge(u));
  const unchangedSince = cmd.unchangedSince === null ? undefined : Number(cmd.unchangedSince);
  const result = await ctx.store.storeFlags(
    ctx.user,
    view.folder,
    live,
    { mode: cmd.mode, flags },
    unchangedSince,
  );
  const condstore = ctx.enabled.condstore;
  for (const m of result.messages) {
    const seq = view.seqOf(m.uid);
    if (seq === 0) continue;
    view.told(m.uid, m.modseq);
    if (cmd.silent && !(condstore && m.changed)) continue;
    const items: string[] = [];
    if (!cmd.silent) items.push(`FLAGS ${formatFlagList(view.flagsOf(m.uid, m.flags))}`);
    if (cmd.uid || ctx.enabled.qresync) items.push(`UID ${m.uid}`);
    if (condstore) items.push(`MODSEQ (${m.modseq})`);
    ctx.write(formatUntagged(`${seq} FETCH (${items.join(' ')})`));
  }
  // Messages expunged meanwhile cannot be changed (RFC 9051 §7.5.1): the STORE still succeeds for the rest.
  if (result.modified.length > 0) {
    const numbers = cmd.uid
      ? result.modified
      : result.modified.map((u) => view.seqOf(u)).filter((n) => n > 0);
    return ok('Conditional STORE failed for some messages', { kind: 'MODIFIED', numbers });
  }
  return ok('STORE completed');
}

export async function copyOrMove(ctx: ImapContext, cmd: Cmd<'copy'>): Promise<Completion> {
  const view = selectedView(ctx);
  const move = cmd.kind === 'move';
  if (move && view.readOnly) return Refusals.readOnly;
  const target = mailboxArg(ctx, cmd.mailbox);
  if (target === null) return Refusals.badName;
  const uids = targetUids(ctx, cmd.set, cmd.uid);
  if (!Array.isArray(uids)) return uids;
  const live = uids.filter((u) => !view.isPendingExpunge(u));
  if (live.length === 0) {
    if (uids.length > 0) return no('Messages were expunged', { kind: 'EXPUNGEISSUED' });
    return ok(`${cmd.kind.toUpperCase()} completed (no messages)`);
  }
  if (!move || target !== view.folder) {
    // A copy adds its size in full (copies count toward quotas, RFC 9208 §5.1); a move between folders
    // adds nothing, but the check is cheap and RFC 9208 lets MOVE be refused like COPY.
    const metas = move ? [] : await ctx.store.messages(ctx.user, view.folder, live);
    const bytes = metas.reduce((n, m) => n + m.sizeBytes, 0);
    const refused = move ? null : await quotaRefusal(ctx, { bytes, messages: metas.length });
    if (refused !== null) return refused;
  }
  let result;
  try {
    result = move
      ? await ctx.store.move(ctx.user, view.folder, live, target)
      : await ctx.store.copy(ctx.user, view.folder, live, target);
  } catch (err) {
    if (err instanceof MailboxError) return completionOf(err, true);
    throw err;
  }
  const code = {
    kind: 'COPYUID',
    uidValidity: result.uidValidity,
    from: result.mapping.map((m) => m.from),
    to: result.mapping.map((m) => m.to),
  } as const;
  if (!move) return ok('COPY completed', code);
  // RFC 6851 §4.3: COPYUID untagged before the expunges, then the tagged OK.
  ctx.write(formatUntaggedStatus('OK', code, 'Moved'));
  for (const line of view.expungeNow(
    result.mapping.map((m) => m.from),
    ctx.enabled,
  ))
    ctx.write(line);
  ctx.log.event('imap.expunge', { folder: view.folder, moved: result.mapping.length });
  return ok('MOVE completed');
}

/** The UIDs of messages marked \Deleted now, among `within` when given. */
async function deletedUids(
  ctx: ImapContext,
  view: SelectedView,
  within: readonly number[] | null,
): Promise<number[]> {
  const all = await ctx.store.changesSince(ctx.user, view.folder, 0);
  const allowed = within === null ? null : new Set(within);
  return all.changed
    .filter((m) => m.flags.some((f) => f.toLowerCase() === '\\deleted'))
    .map((m) => m.uid)
    .filter((u) => view.seqOf(u) > 0 && (allowed === null || allowed.has(u)));
}

export async function expunge(ctx: ImapContext, cmd: Cmd<'expunge'>): Promise<Completion> {
  const view = selectedView(ctx);
  if (view.readOnly) return Refusals.readOnly;
  let within: number[] | null = null;
  if (cmd.uids !== null) {
    const r = targetUids(ctx, cmd.uids, true);
    if (!Array.isArray(r)) return r;
    within = r;
  }
  const doomed = await deletedUids(ctx, view, within);
  const removed = doomed.length === 0 ? [] : await ctx.store.expunge(ctx.user, view.folder, doomed);
  for (const line of view.expungeNow(removed, ctx.enabled)) ctx.write(line);
  if (removed.length > 0) ctx.log.event('imap.expunge', { folder: view.folder, expunged: removed.length });
  return ok('EXPUNGE completed');
}

/** CLOSE: \Deleted messages go, and nothing is said about it (RFC 9051 §6.4.1). */
export async function closeExpunge(ctx: ImapContext): Promise<void> {
  const view = selectedView(ctx);
  const doomed = await deletedUids(ctx, view, null);
  if (doomed.length > 0) {
    const removed = await ctx.store.expunge(ctx.user, view.folder, doomed);
    ctx.log.event('imap.expunge', { folder: view.folder, expunged: removed.length, close: true });
  }
}
