// `tern mailbox import|export`: move a user's mail in from Dovecot (or any Maildir/mbox writer) and out
// again. Maildir details are in ../maildir.ts, mbox details in ../mbox.ts; this file walks folders, talks
// to the store and reports. Streams throughout: a message goes from its file to the store (and back) in
// chunks; only header sections (for the summary and mbox flags) are held in memory.
//
// Import is idempotent-ish: every message is delivered with a key made of the user, the target folder and
// the message's identity (a Maildir file's unique name, which Dovecot keeps across flag changes; for mbox
// the From_ line and the header section). Re-running an import therefore skips every message it brought
// in before, also one deleted since, and imports only what is new; flags of skipped messages are not
// updated. Bare LF line endings become CRLF (IMAP serves CRLF; Dovecot stores LF), CRLF stays as it is.
// Export skips Maildir files whose name it would write again (a re-run adds only new messages) and
// refuses to overwrite an mbox file.
// Deliberately not here: Dovecot's index files and UIDs (Dovecot rebuilds both), special-use from
// Dovecot's configuration (ensureDefaults gives Sent/Drafts/Trash/Junk/Archive their roles by name),
// quotas, locking of a Maildir or mbox another program is writing.
// RFCs: flags and keywords as RFC 9051 §2.3.2 has them, INTERNALDATE (§2.3.3) from the file's mtime or the
// From_ line, CRLF message text (§2.3.4 sizes count CRLF); mbox per RFC 4155.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import type { Stats } from 'node:fs';
import { mkdir, open, readdir, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { encodeModifiedUtf7, decodeModifiedUtf7 } from '../../protocol/imap/mailbox-name.ts';
import { headerSummary } from '../../protocol/headers.ts';
import type { ImapMailboxStore } from '../../store/mailbox-store.ts';
import { INBOX, MailboxError, normalizeFlags } from '../../store/mailbox-store.ts';
import { userAddress } from '../../ops/addresses.ts';
import type { Command, CommandContext, ParsedArgs } from '../command.ts';
import { CliError, UsageError, write, writeLine } from '../io.ts';
import {
  dirNameForFolder,
  flagsFromLetters,
  formatKeywordsFile,
  formatSubscriptions,
  lettersForFlags,
  maildirFiles,
  maildirFolders,
  parseMaildirName,
  readKeywords,
  readSubscriptions,
} from '../maildir.ts';
import { MboxFormatError, readMbox, toCrlf, writeMboxMessage } from '../mbox.ts';
import { Progress, formatBytes } from '../progress.ts';
import { folderOption, requireUser } from './mailbox.ts';

type Format = 'maildir' | 'mbox';

/** How much of a Maildir file is read for the From/Subject/Date summary. */
const SUMMARY_BYTES = 64 * 1024;

function formatOption(args: ParsedArgs): Format | null {
  const format = args.options.get('format');
  if (format === undefined) return null;
  if (format === 'maildir' || format === 'mbox') return format;
  throw new UsageError(`--format must be maildir or mbox, not '${format}'`);
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return null;
    throw err;
  }
}

/** A folder name inside `root` (--folder) or at the top. */
const under = (root: string | null, name: string): string =>
  root === null ? name : name === '' ? root : `${root}/${name}`;

/** A folder to create (also when it holds no messages), or one message to import into it. */
type Incoming = { readonly kind: 'folder'; readonly folder: string } | IncomingMessage;

/** One message to import: where it goes, what it is, and its bytes. */
interface IncomingMessage {
  readonly kind: 'message';
  readonly folder: string;
  readonly identity: string;
  readonly internalDateMs: number;
  readonly flags: readonly string[];
  readonly head: Uint8Array;
  readonly content: AsyncIterable<Uint8Array>;
}

/** What import found and did, per target folder, and what it had to leave out. */
interface ImportReport {
  readonly folders: Map<string, { imported: number; skipped: number }>;
  imported: number;
  skipped: number;
  bytes: number;
  readonly warnings: string[];
}

/** Flags checked one by one: a keyword that is no IMAP atom is left out with a warning. */
function checkedFlags(flags: readonly string[], where: string, report: ImportReport): string[] {
  const ok: string[] = [];
  for (const flag of flags) {
    try {
      ok.push(...normalizeFlags([flag]));
    } catch (err) {
      if (!(err instanceof MailboxError)) throw err;
      report.warnings.push(`${where}: flag ${JSON.stringify(flag)} is not an IMAP flag: left out`);
    }
  }
  return normalizeFlags(ok);
}

async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(SUMMARY_BYTES);
    const { bytesRead } = await handle.read(buf, 0, SUMMARY_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The messages of a Maildir++ tree, folder by folder (with the folders' subscriptions). */
async function* maildirMessages(
  root: string,
  target: string | null,
  report: ImportReport,
  progress: Progress,
): AsyncGenerator<Incoming> {
  const folders = await maildirFolders(root);
  if (folders.length === 0)
    throw new CliError(`no Maildir at ${root}: no cur/ or new/ in it or in a .folder`);
  const listed = await Promise.all(folders.map(async (f) => ({ f, files: await maildirFiles(f.dir) })));
  let total = 0;
  const stats = new Map<string, Stats>();
  for (const { files } of listed) {
    for (const file of files) {
      const st = await stat(file.path);
      stats.set(file.path, st);
      total += st.size;
    }
  }
  progress.setTotalBytes(total);
  for (const { f, files } of listed) {
    const folder = under(target, f.relative === '' ? (target === null ? INBOX : '') : f.relative);
    const keywords = await readKeywords(f.dir);
    yield { kind: 'folder', folder };
    for (const file of files) {
      const where = relative(root, file.path);
      const { flags, unknown } = flagsFromLetters(file.letters, keywords);
      if (unknown.length > 0) {
        report.warnings.push(
          `${where}: flag letters ${unknown.join('')} are not in dovecot-keywords: left out`,
        );
      }
      yield {
        kind: 'message',
        folder,
        identity: `maildir\0${file.unique}`,
        // Dovecot's received date is the file's mtime (what `doveadm fetch date.received` shows).
        internalDateMs: Math.round(stats.get(file.path)!.mtimeMs),
        flags: checkedFlags(flags, where, report),
        head: await readHead(file.path),
        content: createReadStream(file.path),
      };
    }
  }
}

/** mbox files under a directory (Dovecot's mbox layout: "a/b" is the file a/b, "inbox" is INBOX). */
async function mboxFiles(dir: string): Promise<{ path: string; folder: string }[]> {
  const out: { path: string; folder: string }[] = [];
  const walk = async (path: string): Promise<void> => {
    const entries = await readdir(path, { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      // Dot files are the mail program's own (.imap indexes, .subscriptions).
      if (e.name.startsWith('.')) continue;
      const full = join(path, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile()) {
        const levels = relative(dir, full).split(sep).map(decodeModifiedUtf7);
        if (levels.some((l) => l === null)) continue;
        const name = levels.join('/');
        out.push({ path: full, folder: name.toLowerCase() === 'inbox' ? INBOX : name });
      }
    }
  };
  await walk(dir);
  return out;
}

/** The messages of one mbox file or a directory of them. */
async function* mboxMessages(
  path: string,
  isDirectory: boolean,
  target: string | null,
  report: ImportReport,
  progress: Progress,
): AsyncGenerator<Incoming> {
  const files = isDirectory ? await mboxFiles(path) : [{ path, folder: '' }];
  let total = 0;
  const stats = new Map<string, Stats>();
  for (const f of files) {
    const st = await stat(f.path);
    stats.set(f.path, st);
    total += st.size;
  }
  progress.setTotalBytes(total);
  for (const f of files) {
    // "inbox" goes where a Maildir's root goes: INBOX, or the --folder itself.
    const folder = isDirectory && f.folder !== INBOX ? under(target, f.folder) : (target ?? INBOX);
    const where = isDirectory ? relative(path, f.path) : path;
    let n = 0;
    yield { kind: 'folder', folder };
    try {
      for await (const m of readMbox(createReadStream(f.path))) {
        n++;
        for (const kw of m.droppedKeywords) {
          report.warnings.push(
            `${where}: message ${n}: keyword ${JSON.stringify(kw)} is not an IMAP flag: left out`,
          );
        }
        yield {
          kind: 'message',
          folder,
          identity: `mbox\0${m.fromLine}\0${createHash('sha256').update(m.head).digest('hex')}`,
          internalDateMs: m.internalDateMs ?? Math.round(stats.get(f.path)!.mtimeMs),
          flags: checkedFlags(m.flags, `${where}: message ${n}`, report),
          head: m.head,
          content: m.content,
        };
      }
    } catch (err) {
      if (err instanceof MboxFormatError)
        throw new CliError(`${where} is not an mbox file: it ${err.message}`);
      throw err;
    }
  }
}

/** Make sure a folder can take messages: created (with its parents) unless it is there. */
async function ensureFolder(
  store: ImapMailboxStore,
  user: string,
  folder: string,
  known: Set<string>,
): Promise<void> {
  if (known.has(folder)) return;
  const existing = (await store.folders(user)).find((f) => f.name === folder);
  if (folder !== INBOX && (existing === undefined || existing.attributes.includes('\\Noselect'))) {
    try {
      await store.createFolder(user, folder);
    } catch (err) {
      if (err instanceof MailboxError && err.code === 'invalid') {
        throw new CliError(`cannot import into ${JSON.stringify(folder)}: not a valid folder name`);
      }
      if (!(err instanceof MailboxError && err.code === 'alreadyexists')) throw err;
    }
  }
  known.add(folder);
}

/** Counts the bytes of a message as the store reads them, and notes whether it read them at all. */
function counted(
  content: AsyncIterable<Uint8Array>,
  onBytes: (n: number) => void,
): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      for await (const chunk of toCrlf(content)) {
        onBytes(chunk.length);
        yield chunk;
      }
    },
  };
}

async function runImport(
  store: ImapMailboxStore,
  user: string,
  messages: AsyncIterable<Incoming>,
  progress: Progress,
  report: ImportReport,
): Promise<void> {
  const known = new Set<string>();
  for await (const m of messages) {
    await ensureFolder(store, user, m.folder, known);
    const counts = report.folders.get(m.folder) ?? { imported: 0, skipped: 0 };
    report.folders.set(m.folder, counts);
    if (m.kind === 'folder') continue;
    let bytes = 0;
    let read = false;
    const key = createHash('sha256').update(`tern-import\0${user}\0${m.folder}\0${m.identity}`).digest('hex');
    const summary = headerSummary(m.head);
    await store.deliver({
      user,
      mailbox: m.folder,
      internalDateMs: m.internalDateMs,
      flags: m.flags,
      deliveryKey: `import/${key}`,
      summary: { from: summary.from, subject: summary.subject, date: summary.date },
      content: counted(m.content, (n) => {
        read = true;
        bytes += n;
      }),
    });
    // A repeated key is answered without reading the content: that message was imported before.
    if (read) {
      counts.imported++;
      report.imported++;
      report.bytes += bytes;
    } else {
      counts.skipped++;
      report.skipped++;
    }
    progress.add(1, bytes);
  }
}

export const mailboxImport: Command = {
  name: 'mailbox import',
  args: 'ADDRESS PATH [--folder F] [--format maildir|mbox] [--json]',
  summary:
    "import a Maildir (Dovecot's, with its folders) or mbox into a user's folders; a re-run skips what it imported",
  flags: ['json'],
  options: ['folder', 'format'],
  minPositionals: 2,
  maxPositionals: 2,
  async run(ctx, args) {
    const user = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const path = resolve(ctx.io.cwd, args.positionals[1]!);
    const target = folderOption(args);
    const st = await statOrNull(path);
    if (st === null) throw new CliError(`no such file or directory: ${path}`);
    const format = formatOption(args) ?? (st.isDirectory() ? 'maildir' : 'mbox');
    if (format === 'maildir' && !st.isDirectory())
      throw new CliError(`${path} is a file, not a Maildir folder`);
    const progress = new Progress({ stream: ctx.io.stderr, clock: ctx.clock, verb: 'importing' });
    const report: ImportReport = { folders: new Map(), imported: 0, skipped: 0, bytes: 0, warnings: [] };
    await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      await requireUser(directory, user);
      try {
        const messages =
          format === 'maildir'
            ? maildirMessages(path, target, report, progress)
            : mboxMessages(path, st.isDirectory(), target, report, progress);
        await runImport(store, user, messages, progress, report);
        if (format === 'maildir') await importSubscriptions(store, user, path, target, report);
      } finally {
        progress.finish();
      }
    });
    if (report.imported > 0) {
      await ctx.recordChange('mailbox.import', { user, path, format, messages: report.imported });
    }
    return printImport(ctx, args, { user, path, format }, report);
  },
};

/** Dovecot's subscriptions, for the folders imported; without a subscriptions file, every one of them. */
async function importSubscriptions(
  store: ImapMailboxStore,
  user: string,
  root: string,
  target: string | null,
  report: ImportReport,
): Promise<void> {
  const subscribed = await readSubscriptions(root);
  const names =
    subscribed === null
      ? [...report.folders.keys()]
      : subscribed.map((n) => under(target, n.toUpperCase() === INBOX ? (target === null ? INBOX : '') : n));
  for (const name of names) {
    if (report.folders.has(name)) await store.subscribe(user, name);
  }
}

async function printImport(
  ctx: CommandContext,
  args: ParsedArgs,
  what: { user: string; path: string; format: Format },
  report: ImportReport,
): Promise<number> {
  const { stdout, stderr } = ctx.io;
  const folders = [...report.folders].map(([name, c]) => ({ name, ...c }));
  if (args.flags.has('json')) {
    await writeLine(
      stdout,
      JSON.stringify(
        {
          ...what,
          imported: report.imported,
          skipped: report.skipped,
          bytes: report.bytes,
          folders,
          warnings: report.warnings,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  for (const w of report.warnings) await writeLine(stderr, `tern: warning: ${w}`);
  await writeLine(
    stdout,
    `imported ${report.imported} messages (${formatBytes(report.bytes)}) into ${folders.length} folders of ${what.user}` +
      (report.skipped > 0 ? `; skipped ${report.skipped} imported before` : ''),
  );
  return 0;
}

/** What export wrote. */
interface ExportReport {
  readonly folders: { name: string; exported: number; skipped: number }[];
  exported: number;
  skipped: number;
  bytes: number;
  readonly warnings: string[];
}

/** Write a file whole, durably, under its final name (tmp + fsync + rename). */
async function writeFileDurably(path: string, data: string): Promise<void> {
  const tmp = `${path}.tern-tmp`;
  await writeFile(tmp, data, { flush: true });
  await rename(tmp, path);
}

/** The folders to export: the one named, or every folder that holds messages. */
async function exportFolders(store: ImapMailboxStore, user: string, only: string | null): Promise<string[]> {
  const all = await store.folders(user);
  if (only !== null) {
    const found = all.find((f) => f.name === only);
    if (found === undefined || (only !== INBOX && (await store.status(user, only)) === null)) {
      throw new CliError(`no folder ${only} for ${user}`);
    }
    return [only];
  }
  const names: string[] = [];
  for (const f of all) {
    if (!f.attributes.includes('\\Noselect') && (await store.status(user, f.name)) !== null)
      names.push(f.name);
  }
  return names;
}

async function exportMaildirFolder(
  store: ImapMailboxStore,
  user: string,
  folder: string,
  dir: string,
  isRoot: boolean,
  progress: Progress,
  report: ExportReport,
): Promise<void> {
  for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(dir, sub), { recursive: true });
  // Dovecot marks Maildir++ subfolders with this empty file.
  if (!isRoot) await writeFile(join(dir, 'maildirfolder'), '');
  const have = new Set<string>();
  for (const sub of ['cur', 'new'])
    for (const n of await readdir(join(dir, sub))) have.add(parseMaildirName(n).unique);
  const keywords = await readKeywords(dir);
  const status = await store.status(user, folder);
  const counts = { name: folder, exported: 0, skipped: 0 };
  for (const m of await store.list(user, folder)) {
    // Unique per store: UIDVALIDITY and UID never name two messages; the time first, as Maildir likes.
    const unique = `${Math.floor(m.internalDateMs / 1000)}.V${status?.uidValidity ?? 0}U${m.uid}.tern,S=${m.sizeBytes}`;
    if (have.has(unique)) {
      counts.skipped++;
      report.skipped++;
      continue;
    }
    const { letters, lost } = lettersForFlags(m.flags, keywords);
    for (const k of lost)
      report.warnings.push(`${m.id}: keyword ${k} left out (a Maildir folder holds 26 keywords)`);
    const name = letters === '' ? `${unique}:2,` : `${unique}:2,${letters}`;
    const message = await store.openMessage(user, folder, m.uid);
    if (message === null) continue; // expunged meanwhile
    const tmp = join(dir, 'tmp', name);
    const out = createWriteStream(tmp, { flush: true });
    try {
      for await (const chunk of message.content) await write(out, chunk);
    } finally {
      await new Promise<void>((done, fail) => out.end((err?: Error | null) => (err ? fail(err) : done())));
    }
    await utimes(tmp, m.internalDateMs / 1000, m.internalDateMs / 1000);
    await rename(tmp, join(dir, 'cur', name));
    counts.exported++;
    report.exported++;
    report.bytes += m.sizeBytes;
    progress.add(1, m.sizeBytes);
  }
  if (keywords.length > 0)
    await writeFileDurably(join(dir, 'dovecot-keywords'), formatKeywordsFile(keywords));
  report.folders.push(counts);
}

async function exportMbox(
  store: ImapMailboxStore,
  user: string,
  folder: string,
  file: string,
  progress: Progress,
  report: ExportReport,
): Promise<void> {
  if ((await statOrNull(file)) !== null) throw new CliError(`${file} exists: mbox export writes a new file`);
  await mkdir(dirname(file), { recursive: true });
  const out = createWriteStream(file, { flags: 'wx', flush: true });
  const counts = { name: folder, exported: 0, skipped: 0 };
  try {
    const status = await store.status(user, folder);
    const all = await store.list(user, folder);
    const keywords = [...new Set(all.flatMap((m) => m.flags.filter((f) => !f.startsWith('\\'))))];
    for (const [i, m] of all.entries()) {
      const message = await store.openMessage(user, folder, m.uid);
      if (message === null) continue;
      const base =
        i === 0 && status !== null
          ? { base: { uidValidity: status.uidValidity, uidNext: status.uidNext, keywords } }
          : {};
      const meta = {
        sender: 'MAILER-DAEMON',
        internalDateMs: m.internalDateMs,
        flags: m.flags,
        dovecot: { uid: m.uid, ...base },
      };
      for await (const chunk of writeMboxMessage(meta, message.content)) await write(out, chunk);
      counts.exported++;
      report.exported++;
      report.bytes += m.sizeBytes;
      progress.add(1, m.sizeBytes);
    }
  } finally {
    await new Promise<void>((done, fail) => out.end((err?: Error | null) => (err ? fail(err) : done())));
  }
  report.folders.push(counts);
}

/** Dovecot's mbox layout: INBOX is "inbox", "a/b" the file a/b, each level in modified UTF-7. */
function mboxPathFor(root: string, folder: string): string {
  return folder === INBOX ? join(root, 'inbox') : join(root, ...folder.split('/').map(encodeModifiedUtf7));
}

export const mailboxExport: Command = {
  name: 'mailbox export',
  args: 'ADDRESS PATH [--folder F] [--format maildir|mbox] [--json]',
  summary: "export a user's folders as a Dovecot-readable Maildir (default) or mboxrd",
  flags: ['json'],
  options: ['folder', 'format'],
  minPositionals: 2,
  maxPositionals: 2,
  readOnly: true,
  async run(ctx, args) {
    const user = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const path = resolve(ctx.io.cwd, args.positionals[1]!);
    const only = folderOption(args);
    const format = formatOption(args) ?? 'maildir';
    const progress = new Progress({ stream: ctx.io.stderr, clock: ctx.clock, verb: 'exporting' });
    const report: ExportReport = { folders: [], exported: 0, skipped: 0, bytes: 0, warnings: [] };
    await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      await requireUser(directory, user);
      const folders = await exportFolders(store, user, only);
      let total = 0;
      for (const f of folders) total += (await store.status(user, f))?.sizeBytes ?? 0;
      progress.setTotalBytes(total);
      try {
        if (format === 'maildir') {
          for (const f of folders) {
            const isRoot = only !== null || f === INBOX;
            const dir = isRoot ? path : join(path, dirNameForFolder(f));
            await exportMaildirFolder(store, user, f, dir, isRoot, progress, report);
          }
          if (only === null) {
            const existing = (await readSubscriptions(path)) ?? [];
            const subscribed = (await store.folders(user)).filter((f) => f.subscribed).map((f) => f.name);
            await writeFileDurably(
              join(path, 'subscriptions'),
              formatSubscriptions([...new Set([...existing, ...subscribed])]),
            );
          }
        } else if (only !== null) {
          await exportMbox(store, user, only, path, progress, report);
        } else {
          const parents = new Set(
            folders.flatMap((f) =>
              f
                .split('/')
                .slice(0, -1)
                .map((_, i, l) => l.slice(0, i + 1).join('/')),
            ),
          );
          const files: string[] = [];
          for (const f of folders) {
            if (!parents.has(f)) files.push(f);
            // A parent that holds no messages needs no file of its own: its directory holds the children.
            else if (((await store.status(user, f))?.messages ?? 0) > 0) {
              throw new CliError(
                `${f} holds messages and folders: an mbox tree cannot hold both (export it with --folder)`,
              );
            }
          }
          for (const f of files) await exportMbox(store, user, f, mboxPathFor(path, f), progress, report);
        }
      } finally {
        progress.finish();
      }
    });
    const { stdout, stderr } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify({ user, path, format, ...report }, null, 2));
      return 0;
    }
    for (const w of report.warnings) await writeLine(stderr, `tern: warning: ${w}`);
    await writeLine(
      stdout,
      `exported ${report.exported} messages (${formatBytes(report.bytes)}) from ${report.folders.length} folders of ${user} to ${path}` +
        (report.skipped > 0 ? `; skipped ${report.skipped} exported before` : ''),
    );
    return 0;
  },
};

export const mailboxTransferCommands: readonly Command[] = [mailboxImport, mailboxExport];
