// The IMAP commands about folders, not messages: NAMESPACE, LIST (with LIST-EXTENDED RFC 5258,
// LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154), LSUB, CREATE (with CREATE-SPECIAL-USE), DELETE, RENAME,
// SUBSCRIBE, UNSUBSCRIBE, STATUS (with STATUS=SIZE RFC 8438, OBJECTID RFC 8474, CONDSTORE), the QUOTA
// commands (RFC 9208) and SELECT/EXAMINE (with CONDSTORE/QRESYNC, RFC 7162 §3.2.5).
// Each returns a Completion; untagged data goes through ctx.write. Store rules (names, INBOX, \Noselect)
// are the store's; this file maps them to responses.

import type { ImapCommand, ListReturnOptions, StatusItem } from '../../protocol/imap/command.ts';
import {
  formatFlagList,
  formatFlagsResponse,
  formatListResponse,
  formatMailbox,
  formatStatusResponse,
  formatUntagged,
  formatUntaggedStatus,
  formatVanished,
} from '../../protocol/imap/format.ts';
import { assertNever } from '../../core/assert-never.ts';
import { quotaResources } from '../../directory/quota.ts';
import { compilePattern, joinReference, matchesAny } from '../../protocol/imap/list-match.ts';
import { SelectedView } from '../../protocol/imap/selected.ts';
import { uidSetNames, type SequenceSet } from '../../protocol/imap/syntax.ts';
import {
  checkFolderName,
  INBOX,
  MailboxError,
  PERMANENT_FLAGS,
  SEPARATOR,
  SPECIAL_USES,
  SYSTEM_FLAGS,
  parentNames,
  type SpecialUse,
} from '../../store/mailbox-store.ts';
import {
  Refusals,
  bad,
  completionOf,
  mailboxArg,
  newMailboxArg,
  no,
  ok,
  wire,
  type CommandOf,
  type Completion,
  type ImapContext,
} from './context.ts';
import { folderStatus } from './status.ts';

type Cmd<K extends ImapCommand['kind']> = CommandOf<K>;

export function namespace(ctx: ImapContext): Completion {
  ctx.write(formatUntagged(`NAMESPACE (("" "${SEPARATOR}")) NIL NIL`));
  return ok('NAMESPACE completed');
}

/** LIST and LSUB (and LIST-EXTENDED's forms). */
export async function list(ctx: ImapContext, cmd: Cmd<'list'> | Cmd<'lsub'>): Promise<Completion> {
  const lsub = cmd.kind === 'lsub';
  const patterns = cmd.kind === 'lsub' ? [cmd.pattern] : cmd.patterns;
  const decoded = patterns.map((p) => mailboxArg(ctx, p));
  const reference = mailboxArg(ctx, cmd.reference);
  if (reference === null || decoded.some((p) => p === null)) return Refusals.badName;
  const w = wire(ctx);
  const command = lsub ? 'LSUB' : 'LIST';
  // `LIST "" ""`: the hierarchy delimiter and the root (RFC 9051 §6.3.9).
  if (decoded.length === 1 && decoded[0] === '' && !lsub) {
    ctx.write(formatListResponse('LIST', ['\\Noselect'], SEPARATOR, '', w));
    return ok('LIST completed');
  }
  const select = cmd.kind === 'list' ? cmd.select : [];
  const returns: ListReturnOptions | null = cmd.kind === 'list' ? cmd.returns : null;
  const extended = cmd.kind === 'list' && (select.length > 0 || returns !== null);
  const compiled = (decoded as string[])
    .filter((p) => p !== '')
    .map((p) => compilePattern(joinReference(reference, p, SEPARATOR), SEPARATOR));
  const folders = await ctx.store.folders(ctx.user);
  const byName = new Map(folders.map((f) => [f.name, f]));
  const subscribedOnly = lsub || select.includes('SUBSCRIBED');
  const specialOnly = select.includes('SPECIAL-USE');
  const recursive = select.includes('RECURSIVEMATCH');
  const wantSubscribed = returns?.subscribed === true || select.includes('SUBSCRIBED');
  const wantSpecial = returns === null || returns.specialUse || specialOnly;
  const subs = subscribedOnly ? new Set(await ctx.store.subscriptions(ctx.user)) : null;

  // Names that may be listed: every folder, and with SUBSCRIBED every subscribed name (it may be gone)
  // and their parents (LSUB's \Noselect parents, RFC 3501 §6.3.9; RECURSIVEMATCH's CHILDINFO).
  const names = new Set(folders.map((f) => f.name));
  if (subs !== null) for (const n of subs) for (const p of [...parentNames(n), n]) names.add(p);
  const meets = (name: string): boolean => {
    const f = byName.get(name);
    if (subs !== null && !subs.has(name)) return false;
    if (specialOnly && (f === undefined || f.specialUse === null)) return false;
    return true;
  };
  const out: string[] = [];
  for (const name of sortNames([...names])) {
    if (!matchesAny(name, compiled)) continue;
    const self = meets(name);
    // A descendant that meets the selection: LSUB lists the parent as \Noselect (when % hides the
    // child), RECURSIVEMATCH lists it with CHILDINFO (RFC 5258 §3.5).
    // A descendant that meets the selection but is not listed itself (no pattern matches it): LSUB
    // lists the parent as \\Noselect (RFC 3501 §6.3.9), RECURSIVEMATCH with CHILDINFO (RFC 5258 §3.5).
    const childMeets =
      (lsub || recursive) &&
      [...names].some((c) => c.startsWith(name + SEPARATOR) && meets(c) && !matchesAny(c, compiled));
    if (!self && !childMeets) continue;
    const f = byName.get(name);
    const base = f?.attributes ?? ['\\NonExistent', '\\Noselect'];
    let attributes = base.filter((a) => {
      if (a === '\\Subscribed') return false;
      if ((SPECIAL_USES as readonly string[]).includes(a)) return wantSpecial && !lsub;
      if (lsub) return a === '\\Noselect';
      return true;
    });
    if (extended) {
      // \NonExistent implies \Noselect (RFC 5258 §3): one is enough.
      if (attributes.includes('\\NonExistent')) attributes = attributes.filter((a) => a !== '\\Noselect');
    } else attributes = attributes.filter((a) => a !== '\\NonExistent');
    if (lsub && !self && !attributes.includes('\\Noselect')) attributes.push('\\Noselect');
    if (!lsub && self && subs !== null && wantSubscribed) attributes.push('\\Subscribed');
    else if (!lsub && returns?.subscribed === true && f?.subscribed === true) attributes.push('\\Subscribed');
    const extra = !lsub && recursive && childMeets ? ['"CHILDINFO" ("SUBSCRIBED")'] : [];
    out.push(formatListResponse(command, [...new Set(attributes)], SEPARATOR, name, w, extra));
    if (
      returns?.status != null &&
      f !== undefined &&
      !f.attributes.includes('\\Noselect') &&
      !f.attributes.includes('\\NonExistent')
    ) {
      const status = await statusLine(ctx, name, returns.status);
      if (status !== null) out.push(status);
    }
  }
  for (const line of out) ctx.write(line);
  return ok(`${command} completed`);
}

/** INBOX first, then by name. */
function sortNames(names: string[]): string[] {
  return names.sort((a, b) => (a === INBOX ? -1 : b === INBOX ? 1 : a < b ? -1 : a > b ? 1 : 0));
}

export async function create(ctx: ImapContext, cmd: Cmd<'create'>): Promise<Completion> {
  const raw = newMailboxArg(ctx, cmd.mailbox);
  if (raw === null) return Refusals.cannotName;
  // A trailing separator says "a parent to be" (RFC 9051 §6.3.4): the name is created without it.
  const name = raw.endsWith(SEPARATOR) ? raw.slice(0, -1) : raw;
  let specialUse: SpecialUse | undefined;
  for (const use of cmd.specialUse) {
    const known = SPECIAL_USES.find((u) => u.toLowerCase() === use.toLowerCase());
    if (known === undefined) return no(`Special use ${use} is not supported`, { kind: 'USEATTR' });
    specialUse = known;
  }
  if (cmd.specialUse.length > 1) return no('One special use per folder', { kind: 'USEATTR' });
  try {
    checkFolderName(name);
    if (name.toUpperCase() === INBOX) return no('INBOX always exists', { kind: 'ALREADYEXISTS' });
    await ctx.store.createFolder(ctx.user, name, specialUse === undefined ? {} : { specialUse });
  } catch (err) {
    return completionOf(err);
  }
  return ok('CREATE completed');
}

export async function remove(ctx: ImapContext, cmd: Cmd<'delete'>): Promise<Completion> {
  const name = mailboxArg(ctx, cmd.mailbox);
  if (name === null) return Refusals.badName;
  try {
    await ctx.store.deleteFolder(ctx.user, name);
  } catch (err) {
    return completionOf(err);
  }
  return ok('DELETE completed');
}

export async function rename(ctx: ImapContext, cmd: Cmd<'rename'>): Promise<Completion> {
  const from = mailboxArg(ctx, cmd.from);
  const to = newMailboxArg(ctx, cmd.to);
  if (from === null) return Refusals.badName;
  if (to === null) return Refusals.cannotName;
  try {
    checkFolderName(to);
    await ctx.store.renameFolder(ctx.user, from, to);
  } catch (err) {
    return completionOf(err);
  }
  return ok('RENAME completed');
}

export async function subscription(ctx: ImapContext, cmd: Cmd<'subscribe'>): Promise<Completion> {
  const name = mailboxArg(ctx, cmd.mailbox);
  if (name === null) return Refusals.badName;
  try {
    if (cmd.kind === 'subscribe') await ctx.store.subscribe(ctx.user, name);
    else await ctx.store.unsubscribe(ctx.user, name);
  } catch (err) {
    return completionOf(err);
  }
  return ok(`${cmd.kind.toUpperCase()} completed`);
}

/** The STATUS response for one folder, or null when it cannot be read (LIST-STATUS skips it). */
async function statusLine(
  ctx: ImapContext,
  name: string,
  items: readonly StatusItem[],
): Promise<string | null> {
  let s;
  try {
    s = await folderStatus(ctx.store, ctx.user, name);
  } catch (err) {
    if (err instanceof MailboxError) return null;
    throw err;
  }
  const valueOf = (item: StatusItem): number | string => {
    switch (item) {
      case 'MESSAGES':
        return s.messages;
      case 'UIDNEXT':
        return s.uidNext;
      case 'UIDVALIDITY':
        return s.uidValidity;
      case 'UNSEEN':
        return s.unseen;
      case 'DELETED':
        return s.deleted;
      case 'SIZE':
        return s.sizeBytes;
      case 'HIGHESTMODSEQ':
        ctx.enabled.condstore = true;
        return s.highestModseq;
      case 'APPENDLIMIT':
        return ctx.appendLimitBytes;
      case 'RECENT':
        // IMAP4rev1's \Recent (RFC 3501 §2.3.2); IMAP4rev2 has none (RFC 9051 §2.3.2).
        return ctx.enabled.imap4rev2 ? 0 : s.recent;
      case 'MAILBOXID':
        return s.mailboxId;
      default:
        return assertNever(item);
    }
  };
  const values = items.map((item) => [item, valueOf(item)] as const);
  return formatStatusResponse(name, values, wire(ctx));
}

export async function status(ctx: ImapContext, cmd: Cmd<'status'>): Promise<Completion> {
  const name = mailboxArg(ctx, cmd.mailbox);
  if (name === null) return Refusals.badName;
  try {
    await folderStatus(ctx.store, ctx.user, name);
  } catch (err) {
    return completionOf(err);
  }
  const line = await statusLine(ctx, name, cmd.items);
  if (line === null) return Refusals.nonexistent;
  ctx.write(line);
  return ok('STATUS completed');
}

/** QUOTA (RFC 9208): one root, "", per user, with the limits the directory gives (`tern user quota`). */
export async function quota(
  ctx: ImapContext,
  cmd: Cmd<'getquota'> | Cmd<'getquotaroot'> | Cmd<'setquota'>,
): Promise<Completion> {
  if (cmd.kind === 'setquota') return no('Quotas are set by the administrator', { kind: 'NOPERM' });
  if (cmd.kind === 'getquotaroot') {
    const name = mailboxArg(ctx, cmd.mailbox);
    if (name === null) return Refusals.badName;
    try {
      await folderStatus(ctx.store, ctx.user, name);
    } catch (err) {
      return completionOf(err);
    }
    ctx.write(formatUntagged(`QUOTAROOT ${formatMailbox(name, wire(ctx))} ""`));
  } else if (cmd.root !== '') {
    return no('No such quota root', { kind: 'NONEXISTENT' });
  }
  const limits = await ctx.directory.getQuota(ctx.user);
  const usage = await ctx.store.quota(ctx.user);
  const resources = limits === null ? [] : quotaResources(limits, usage);
  // Unlimited resources are left out: a root with none is unlimited (RFC 9208 §4.2.1).
  ctx.write(
    formatUntagged(`QUOTA "" (${resources.map((r) => `${r.name} ${r.usage} ${r.limit}`).join(' ')})`),
  );
  return ok(`${cmd.kind.toUpperCase()} completed`);
}

/** SELECT / EXAMINE: the new view, or a Completion to answer (the old selection is gone either way). */
export async function select(
  ctx: ImapContext,
  cmd: Cmd<'select'>,
): Promise<{ view: SelectedView | null; completion: Completion }> {
  const name = mailboxArg(ctx, cmd.mailbox);
  if (name === null) return { view: null, completion: Refusals.badName };
  if (cmd.qresync !== null && !ctx.enabled.qresync) {
    return { view: null, completion: bad('QRESYNC must be enabled first (ENABLE QRESYNC)') };
  }
  if (cmd.condstore) ctx.enabled.condstore = true;
  let s;
  let uids: Uint32Array;
  let uidValidity: number;
  let highestModseq: number;
  let keywords: string[];
  try {
    s = await folderStatus(ctx.store, ctx.user, name);
    // Another session holds the UIDs of exactly this state: take them (shared-uids.ts).
    const shared = ctx.sharedUids.get(ctx.user, s.name, s.uidValidity, s.highestModseq);
    if (shared !== null) {
      uids = shared;
      uidValidity = s.uidValidity;
      highestModseq = s.highestModseq;
    } else {
      const changes = await ctx.store.changesSince(ctx.user, name, 0);
      uidValidity = changes.uidValidity;
      highestModseq = changes.highestModseq;
      uids = ctx.sharedUids.share(
        ctx.user,
        s.name,
        uidValidity,
        highestModseq,
        Uint32Array.from(changes.changed, (m) => m.uid),
      );
    }
    keywords = await ctx.store.keywords(ctx.user, name);
  } catch (err) {
    return { view: null, completion: completionOf(err) };
  }
  const readOnly = cmd.kind === 'examine';
  const user = ctx.user;
  const folder = s.name;
  const shared = ctx.sharedUids;
  const view = new SelectedView(folder, uidValidity, readOnly, uids, highestModseq, (built, modseq) =>
    shared.share(user, folder, uidValidity, modseq, built),
  );
  view.showRecent = !ctx.enabled.imap4rev2;
  if (view.showRecent) {
    // SELECT claims what no session has seen; EXAMINE shows it without taking it (RFC 3501 §6.3.2).
    if (readOnly) view.markLastRecent(s.recent);
    else {
      const claimed = await ctx.store.claimRecent(ctx.user, s.name);
      view.markRecent(claimed.from, claimed.to);
    }
  }
  const w = wire(ctx);
  const flags = [...SYSTEM_FLAGS, ...keywords];
  ctx.write(formatUntagged(`${view.exists} EXISTS`));
  if (!ctx.enabled.imap4rev2) ctx.write(formatUntagged(`${view.recentCount} RECENT`));
  ctx.write(formatFlagsResponse(flags));
  ctx.write(
    formatUntaggedStatus(
      'OK',
      {
        kind: 'PERMANENTFLAGS',
        flags: readOnly ? [] : [...PERMANENT_FLAGS.filter((f) => f !== '\\*'), ...keywords, '\\*'],
      },
      readOnly ? 'Read-only mailbox' : 'Flags permitted',
    ),
  );
  ctx.write(formatUntaggedStatus('OK', { kind: 'UIDVALIDITY', value: view.uidValidity }, 'UIDs valid'));
  ctx.write(formatUntaggedStatus('OK', { kind: 'UIDNEXT', value: s.uidNext }, 'Predicted next UID'));
  if (!ctx.enabled.imap4rev2 && s.firstUnseenUid !== null) {
    const seq = view.seqOf(s.firstUnseenUid);
    if (seq > 0) ctx.write(formatUntaggedStatus('OK', { kind: 'UNSEEN', value: seq }, 'First unseen'));
  }
  ctx.write(
    formatUntaggedStatus('OK', { kind: 'HIGHESTMODSEQ', value: BigInt(view.highestModseq) }, 'Highest'),
  );
  ctx.write(formatUntaggedStatus('OK', { kind: 'MAILBOXID', id: s.mailboxId }, 'Ok'));
  if (ctx.enabled.imap4rev2) {
    ctx.write(formatListResponse('LIST', [], SEPARATOR, s.name, w));
  }
  if (cmd.qresync !== null && cmd.qresync.uidValidity === view.uidValidity) {
    await resync(ctx, view, cmd.qresync.modSeq, cmd.qresync.knownUids);
  }
  const code = { kind: readOnly ? 'READ-ONLY' : 'READ-WRITE' } as const;
  return { view, completion: ok(`${cmd.kind.toUpperCase()} completed`, code, 'selected') };
}

/** QRESYNC's SELECT: what vanished and what changed since the client's modseq (RFC 7162 §3.2.5). */
async function resync(
  ctx: ImapContext,
  view: SelectedView,
  modSeq: bigint,
  known: SequenceSet | null,
): Promise<void> {
  const since = Number(modSeq);
  const changes = await ctx.store.changesSince(ctx.user, view.folder, since);
  const vanished =
    known === null || known.kind === 'saved'
      ? changes.vanished
      : changes.vanished.filter((uid) => uidSetNames(known, uid));
  if (vanished.length > 0) ctx.write(formatVanished(vanished, true));
  for (const m of changes.changed) {
    const seq = view.seqOf(m.uid);
    if (seq === 0) continue;
    ctx.write(
      formatUntagged(`${seq} FETCH (UID ${m.uid} FLAGS ${formatFlagList(m.flags)} MODSEQ (${m.modseq}))`),
    );
  }
}
