// `tern mailbox list|cat|folders|flags|expunge`: look into a local user's stored mail without POP3/IMAP.
// `cat` writes the message bytes exactly as stored (no decoding, no line-ending changes), so it can be
// piped to other tools. `folders` shows every folder with its counters, `flags` shows or changes one
// message's flags (IMAP STORE's add/remove/replace, RFC 9051 §6.4.6), `expunge` removes messages durably
// (§6.4.3). Message ids are the ones `list` prints: "<uid>" in INBOX, "<folder>/<uid>" elsewhere.
// Deliberately not here: import and export (mailbox-transfer.ts), creating or renaming folders (IMAP's).

import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { assertNever } from '../../core/assert-never.ts';
import type { Directory } from '../../directory/directory.ts';
import type { FlagChange, ImapMailboxStore } from '../../store/mailbox-store.ts';
import { INBOX, MailboxError, normalizeFlags, normalizeMailboxName } from '../../store/mailbox-store.ts';
import { mailboxAddress, userAddress } from '../../ops/addresses.ts';
import type { Command, ParsedArgs } from '../command.ts';
import { CliError, UsageError, writeLine } from '../io.ts';
import { isoTime } from '../time.ts';
import { folderRows, messageJson } from '../../ops/mailbox.ts';
import { OpError } from '../../ops/errors.ts';
import { releaseMessage } from '../../ops/release.ts';
import { systemClock } from '../../core/ports.ts';

export { messageJson, type FolderRow } from '../../ops/mailbox.ts';

/** One line per message: a terminal is narrow, so long fields are cut. */
function shorten(text: string, max: number): string {
  const flat = text.replace(/[\r\n\t]+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

export const mailboxList: Command = {
  name: 'mailbox list',
  args: 'ADDRESS [--folder NAME | --all] [--json]',
  summary: "list a local user's stored messages (INBOX, one folder, or every folder)",
  flags: ['json', 'all'],
  options: ['folder'],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const user = mailboxAddress(args.positionals[0]!);
    const folder = args.options.get('folder');
    const all = args.flags.has('all');
    if (all && folder !== undefined) throw new UsageError('give --folder or --all, not both');
    const messages = await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      await requireUser(directory, user, store, ctx.config().localDomains);
      if (!all) return store.list(user, folder === undefined ? INBOX : normalizeMailboxName(folder));
      const names = (await store.folders(user))
        .filter((f) => !f.attributes.includes('\\Noselect'))
        .map((f) => f.name);
      return (await Promise.all(names.map((n) => store.list(user, n)))).flat();
    });
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify(messages.map(messageJson), null, 2));
      return 0;
    }
    if (messages.length === 0) {
      await writeLine(stdout, `no messages for ${user}`);
      return 0;
    }
    const idWidth = Math.max(2, ...messages.map((m) => m.id.length));
    await writeLine(
      stdout,
      `${'ID'.padEnd(idWidth)}  ${'RECEIVED'.padEnd(24)}  ${'SIZE'.padStart(9)}  FROM / SUBJECT`,
    );
    for (const m of messages) {
      const received = isoTime(m.internalDateMs);
      await writeLine(
        stdout,
        `${m.id.padEnd(idWidth)}  ${received.padEnd(24)}  ${String(m.sizeBytes).padStart(9)}  ` +
          `${shorten(m.from, 40)} / ${shorten(m.subject, 60)}`,
      );
    }
    return 0;
  },
};

export const mailboxCat: Command = {
  name: 'mailbox cat',
  args: 'ADDRESS ID',
  summary: 'write one stored message, byte for byte, to stdout',
  flags: [],
  minPositionals: 2,
  maxPositionals: 2,
  readOnly: true,
  async run(ctx, args) {
    const user = mailboxAddress(args.positionals[0]!);
    const id = args.positionals[1]!;
    await ctx.withServices(['store'], async ({ store }) => {
      const content = store.read(user, id);
      if (content === null) throw new CliError(`no message ${id} for ${user}`);
      // end: false — stdout belongs to the process, not to this command.
      await pipeline(Readable.from(content, { objectMode: false }), ctx.io.stdout, { end: false }).catch(
        (err: unknown) => {
          // A store that finds out only when reading (PostgreSQL) says "nonexistent" then.
          if (err instanceof MailboxError && err.code === 'nonexistent')
            throw new CliError(`no message ${id} for ${user}`);
          throw err;
        },
      );
    });
    return 0;
  },
};

/**
 * The user must be in the directory (a typo would otherwise show an empty mailbox), or have mail kept for
 * it without being a user: catcher mode's mailboxes per recipient (docs/catch.md).
 */
export async function requireUser(
  directory: Directory,
  user: string,
  store?: ImapMailboxStore,
  localDomains?: readonly string[],
): Promise<void> {
  if ((await directory.listUsers()).some((u) => u.address === user)) return;
  if (store !== undefined && (await store.status(user, INBOX)) !== null) return;
  // An address of a domain that is not local, with no kept mail: say that rather than "no such user".
  if (localDomains !== undefined) userAddress(user, localDomains);
  throw new CliError(`no such user: ${user}`);
}

/** A folder name as given on the command line (`--folder`), INBOX in any case. */
export function folderOption(args: Pick<ParsedArgs, 'options'>): string | null {
  const folder = args.options.get('folder');
  if (folder === undefined) return null;
  if (folder === '') throw new UsageError('--folder needs a folder name');
  return normalizeMailboxName(folder);
}

/**
 * A message id as `list` prints it ("7" in INBOX, "Sent/7", "a/b/7") → its folder and UID. A bare
 * number is in `defaultFolder`. The store's own ids follow this scheme (sqlite-mailbox-store.ts
 * messageId); XXX: the store could export its parser instead of the CLI knowing the scheme.
 */
export function parseMessageRef(id: string, defaultFolder: string): { folder: string; uid: number } | null {
  const slash = id.lastIndexOf('/');
  const digits = id.slice(slash + 1);
  if (!/^[1-9][0-9]{0,9}$/.test(digits)) return null;
  const folder = slash < 0 ? defaultFolder : normalizeMailboxName(id.slice(0, slash));
  if (folder === '') return null;
  return { folder, uid: Number(digits) };
}

/** The ids `list` prints for a folder's message. */
export function messageRefId(folder: string, uid: number): string {
  return folder === INBOX ? String(uid) : `${folder}/${uid}`;
}

/** A store refusal (no such folder, a \Noselect one, a bad flag) as the line an operator reads. */
function storeRefusal(err: unknown, user: string, folder: string): unknown {
  if (!(err instanceof MailboxError)) return err;
  switch (err.code) {
    case 'nonexistent':
      return new CliError(`no folder ${folder} for ${user}`);
    case 'noselect':
      return new CliError(`${folder} holds no messages (it only holds other folders)`);
    case 'invalid':
      return new CliError(err.message.replace(/^mailbox store: /, ''));
    case 'alreadyexists':
    case 'cannot':
      return new CliError(err.message.replace(/^mailbox store: /, ''));
    default:
      return assertNever(err.code);
  }
}

/** Run a store call for one folder, turning its refusals into operator errors. */
async function inFolder<T>(user: string, folder: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw storeRefusal(err, user, folder);
  }
}

export const mailboxFolders: Command = {
  name: 'mailbox folders',
  args: 'ADDRESS [--json]',
  summary: "list a local user's folders: messages, size, unseen, special use, subscribed",
  flags: ['json'],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const user = mailboxAddress(args.positionals[0]!);
    const rows = await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      await requireUser(directory, user, store, ctx.config().localDomains);
      return folderRows(store, user);
    });
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify(rows, null, 2));
      return 0;
    }
    const nameWidth = Math.max(6, ...rows.map((r) => r.name.length));
    await writeLine(
      stdout,
      `${'FOLDER'.padEnd(nameWidth)}  ${'MESSAGES'.padStart(8)}  ${'SIZE'.padStart(11)}  ${'UNSEEN'.padStart(6)}  ` +
        'SPECIAL-USE  SUBSCRIBED',
    );
    for (const r of rows) {
      const special = r.selectable ? (r.specialUse ?? '-') : '\\Noselect';
      await writeLine(
        stdout,
        `${r.name.padEnd(nameWidth)}  ${String(r.messages).padStart(8)}  ${String(r.size).padStart(11)}  ` +
          `${String(r.unseen).padStart(6)}  ${special.padEnd(11)}  ${r.subscribed ? 'yes' : 'no'}`,
      );
    }
    return 0;
  },
};

/**
 * The changes `flags` asks for: `+F` adds, `-F` removes, bare flags replace the whole set (as IMAP's
 * STORE FLAGS); bare and signed flags do not mix. Flags are checked as the store checks them.
 */
export function parseFlagArgs(words: readonly string[]): FlagChange[] {
  const add: string[] = [];
  const remove: string[] = [];
  const replace: string[] = [];
  for (const word of words) {
    if (word.startsWith('+')) add.push(word.slice(1));
    else if (word.startsWith('-')) remove.push(word.slice(1));
    else replace.push(word);
  }
  if (replace.length > 0 && add.length + remove.length > 0) {
    throw new UsageError('give flags to set (FLAG...) or changes (+FLAG -FLAG), not both');
  }
  const checked = (flags: string[]): string[] => {
    try {
      for (const f of flags) if (f === '') throw new UsageError("'+' or '-' needs a flag after it");
      return normalizeFlags(flags);
    } catch (err) {
      if (err instanceof MailboxError) throw new UsageError(err.message.replace(/^mailbox store: /, ''));
      throw err;
    }
  };
  if (replace.length > 0) return [{ mode: 'replace', flags: checked(replace) }];
  const changes: FlagChange[] = [];
  if (add.length > 0) changes.push({ mode: 'add', flags: checked(add) });
  if (remove.length > 0) changes.push({ mode: 'remove', flags: checked(remove) });
  return changes;
}

/** One message's flags, or null when the folder has no such UID; a missing folder is an error. */
async function messageFlags(
  store: ImapMailboxStore,
  user: string,
  folder: string,
  uid: number,
): Promise<readonly string[] | null> {
  if (folder === INBOX && (await store.status(user, INBOX)) === null) return null;
  const [meta] = await inFolder(user, folder, () => store.messages(user, folder, [uid]));
  return meta?.flags ?? null;
}

export const mailboxFlags: Command = {
  name: 'mailbox flags',
  args: 'ADDRESS ID [+FLAG|-FLAG|FLAG...] [--json]',
  summary: "show a message's flags, or change them: +\\Seen adds, -\\Seen removes, bare flags replace",
  flags: ['json'],
  dashPositionals: true,
  minPositionals: 2,
  maxPositionals: 100,
  readOnly: (args) => args.positionals.length <= 2,
  async run(ctx, args) {
    const user = mailboxAddress(args.positionals[0]!);
    const id = args.positionals[1]!;
    const changes = parseFlagArgs(args.positionals.slice(2));
    const ref = parseMessageRef(id, INBOX);
    if (ref === null) throw new CliError(`no message ${id} for ${user}`);
    const flags = await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      await requireUser(directory, user, store, ctx.config().localDomains);
      const before = await messageFlags(store, user, ref.folder, ref.uid);
      if (before === null) throw new CliError(`no message ${id} for ${user}`);
      let now = before;
      for (const change of changes) {
        const result = await inFolder(user, ref.folder, () =>
          store.storeFlags(user, ref.folder, [ref.uid], change),
        );
        now = result.messages[0]?.flags ?? now;
      }
      return { before, now };
    });
    if (changes.length > 0) {
      await ctx.recordChange('mailbox.flags', { user, id, before: [...flags.before], flags: [...flags.now] });
    }
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify({ id, flags: flags.now }, null, 2));
    } else {
      await writeLine(ctx.io.stdout, `${id}: ${flags.now.length === 0 ? '(no flags)' : flags.now.join(' ')}`);
    }
    return 0;
  },
};

/** The messages `expunge` was asked to remove, grouped by folder; unknown ids stay as they were typed. */
async function expungeTargets(
  store: ImapMailboxStore,
  user: string,
  ids: readonly string[],
  folder: string | null,
  allDeleted: boolean,
): Promise<{ byFolder: Map<string, { uid: number; id: string }[]>; unknown: string[] }> {
  const byFolder = new Map<string, { uid: number; id: string }[]>();
  const unknown: string[] = [];
  const add = (f: string, uid: number, id: string): void => {
    const list = byFolder.get(f) ?? [];
    list.push({ uid, id });
    byFolder.set(f, list);
  };
  if (allDeleted) {
    const folders =
      folder === null
        ? (await store.folders(user)).filter((f) => !f.attributes.includes('\\Noselect')).map((f) => f.name)
        : [folder];
    for (const f of folders) {
      if (f === INBOX && folder === null && (await store.status(user, INBOX)) === null) continue;
      const { changed } = await inFolder(user, f, () => store.changesSince(user, f, 0));
      for (const m of changed) if (m.flags.includes('\\Deleted')) add(f, m.uid, messageRefId(f, m.uid));
    }
    return { byFolder, unknown };
  }
  for (const id of ids) {
    const ref = parseMessageRef(id, folder ?? INBOX);
    if (ref === null) unknown.push(id);
    else if (folder !== null && id.includes('/') && ref.folder !== folder) {
      throw new UsageError(`message ${id} is not in --folder ${folder}`);
    } else add(ref.folder, ref.uid, id);
  }
  return { byFolder, unknown };
}

export const mailboxExpunge: Command = {
  name: 'mailbox expunge',
  args: 'ADDRESS [--folder F] [--all-deleted | ID...] [--json]',
  summary: 'remove messages for good: the ids given, or every message flagged \\Deleted',
  flags: ['json', 'all-deleted'],
  options: ['folder'],
  minPositionals: 1,
  maxPositionals: 100_000,
  async run(ctx, args) {
    const user = mailboxAddress(args.positionals[0]!);
    const ids = args.positionals.slice(1);
    const allDeleted = args.flags.has('all-deleted');
    if (allDeleted === ids.length > 0) {
      throw new UsageError(allDeleted ? '--all-deleted takes no ids' : 'give message ids or --all-deleted');
    }
    const folder = folderOption(args);
    const result = await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      await requireUser(directory, user, store, ctx.config().localDomains);
      const { byFolder, unknown } = await expungeTargets(store, user, ids, folder, allDeleted);
      const expunged: { id: string; folder: string; uid: number }[] = [];
      for (const [f, wanted] of byFolder) {
        // Resolves once the removal is durable (MailboxStore.expunge's contract).
        const removed = new Set(
          await inFolder(user, f, () =>
            store.expunge(
              user,
              f,
              wanted.map((w) => w.uid),
            ),
          ),
        );
        for (const w of wanted) {
          if (removed.has(w.uid)) expunged.push({ id: w.id, folder: f, uid: w.uid });
          else unknown.push(w.id);
        }
      }
      return { expunged, unknown };
    });
    if (result.expunged.length > 0) {
      await ctx.recordChange('mailbox.expunge', { user, ids: result.expunged.map((e) => e.id) });
    }
    const { stdout, stderr } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(
        stdout,
        JSON.stringify({ user, expunged: result.expunged, unknown: result.unknown }, null, 2),
      );
    } else {
      for (const e of result.expunged) await writeLine(stdout, `${e.id}: expunged`);
      for (const id of result.unknown) await writeLine(stderr, `tern: no message ${id} for ${user}`);
      if (result.expunged.length === 0 && result.unknown.length === 0) {
        await writeLine(stdout, `no messages flagged \\Deleted for ${user}`);
      }
    }
    return result.unknown.length > 0 ? 1 : 0;
  },
};

export const mailboxRelease: Command = {
  name: 'mailbox release',
  args: 'ADDRESS ID [--to ADDRESS[,ADDRESS...]] [--json]',
  summary: 'deliver a kept message for real (catcher mode): to its recipient, or to --to',
  flags: ['json'],
  options: ['to'],
  minPositionals: 2,
  maxPositionals: 2,
  async run(ctx, args) {
    const user = mailboxAddress(args.positionals[0]!);
    const id = args.positionals[1]!;
    const to = (args.options.get('to') ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter((a) => a !== '');
    const released = await ctx.withServices(
      ['directory', 'store', 'queue'],
      async ({ directory, store, queue }) => {
        await requireUser(directory, user, store, ctx.config().localDomains);
        return releaseMessage({ store, queue, clock: systemClock }, user, id, to).catch((err: unknown) => {
          throw err instanceof OpError ? new CliError(err.message) : err;
        });
      },
    );
    // Moves the change counter: a running server's worker looks at the queue within a second.
    await ctx.recordChange('mailbox.release', { user, id, ...released });
    if (args.flags.has('json')) {
      await writeLine(ctx.io.stdout, JSON.stringify({ user, id, ...released }, null, 2));
    } else {
      await writeLine(
        ctx.io.stdout,
        `${user} ${id} released as ${released.queueId} to ${released.recipients.join(', ')}`,
      );
    }
    return 0;
  },
};

export const mailboxCommands: readonly Command[] = [
  mailboxList,
  mailboxCat,
  mailboxFolders,
  mailboxFlags,
  mailboxExpunge,
  mailboxRelease,
];
