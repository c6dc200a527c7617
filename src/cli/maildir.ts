// Maildir as Dovecot keeps it, for `tern mailbox import|export`: file names, flags, keywords, folder
// names and subscriptions. Pure functions over names and file contents, plus the directory walk.
//
// - A message file is `<unique>[:2,<letters>]` in cur/ or new/ (https://cr.yp.to/proto/maildir.html).
//   Letters: D \Draft, F \Flagged, P passed (IMAP has no such flag: `$Forwarded`, the keyword clients
//   use, RFC 5788), R \Answered, S \Seen, T \Deleted; a-z are keywords by their line in the folder's
//   `dovecot-keywords` ("0 $Forwarded" is `a`). Dovecot writes `$Forwarded` as a keyword letter, so
//   export does that too; P is only read. Dovecot puts `,S=<size>,W=<crlf size>` into the unique part.
// - Folders are Maildir++: `.a.b` beside cur/ is "a/b", each level in modified UTF-7 (RFC 3501 §5.1.3,
//   Dovecot's default); a `.` inside a level is written `\2e` (Dovecot's listescape convention).
// - `subscriptions`: Dovecot's version 2 file ("V\t2", an empty line, then one name a line with its
//   levels joined by tabs) or the older one name a line.
// - `dovecot-uidlist` gives the order of Dovecot's UIDs: import follows it, so UIDs keep their order.
// Deliberately not here: Dovecot's LAYOUT=fs, index files (dovecot.index*: Dovecot rebuilds them),
// dovecot-uidlist writing (Dovecot assigns UIDs afresh on export), Courier's courierimapkeywords.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeModifiedUtf7, encodeModifiedUtf7 } from '../protocol/imap/mailbox-name.ts';
import { INBOX } from '../store/mailbox-store.ts';

/** Maildir's letters for IMAP's system flags, in the order a file name carries them (ASCII). */
const SYSTEM_LETTERS: readonly (readonly [string, string])[] = [
  ['D', '\\Draft'],
  ['F', '\\Flagged'],
  ['R', '\\Answered'],
  ['S', '\\Seen'],
  ['T', '\\Deleted'],
];
/** Dovecot's limit: keyword letters are a-z. */
export const MAX_KEYWORDS = 26;

/** A message file name taken apart: its unique part and its info letters ("" when it has none). */
export function parseMaildirName(name: string): { unique: string; letters: string } {
  // ':' is the standard separator; ';' and '!' are what tools on file systems without ':' use.
  const m = /^(.*?)[:;!]2,([^:;!]*)$/.exec(name);
  return m === null ? { unique: name, letters: '' } : { unique: m[1]!, letters: m[2]! };
}

/** Flags from info letters, keywords through the folder's `dovecot-keywords`; unknown letters apart. */
export function flagsFromLetters(
  letters: string,
  keywords: readonly (string | undefined)[],
): { flags: string[]; unknown: string[] } {
  const flags: string[] = [];
  const unknown: string[] = [];
  for (const letter of letters) {
    const system = SYSTEM_LETTERS.find(([l]) => l === letter)?.[1];
    if (system !== undefined) flags.push(system);
    else if (letter === 'P') flags.push('$Forwarded');
    else if (letter >= 'a' && letter <= 'z') {
      const keyword = keywords[letter.charCodeAt(0) - 0x61];
      if (keyword === undefined) unknown.push(letter);
      else flags.push(keyword);
    } else unknown.push(letter);
  }
  return { flags, unknown };
}

/**
 * The info letters for flags, sorted as Maildir wants them. Keywords get letters from `keywords`,
 * which is extended (it is the folder's dovecot-keywords, index = letter); a keyword past the 26th
 * cannot be written and is returned in `lost`.
 */
export function lettersForFlags(
  flags: readonly string[],
  keywords: (string | undefined)[],
): { letters: string; lost: string[] } {
  const letters: string[] = [];
  const lost: string[] = [];
  for (const flag of flags) {
    const system = SYSTEM_LETTERS.find(([, f]) => f.toLowerCase() === flag.toLowerCase())?.[0];
    if (system !== undefined) {
      letters.push(system);
      continue;
    }
    if (flag.startsWith('\\')) continue;
    let index = keywords.findIndex((k) => k !== undefined && k.toLowerCase() === flag.toLowerCase());
    if (index < 0) {
      index = keywords.findIndex((k) => k === undefined);
      if (index < 0 && keywords.length < MAX_KEYWORDS) index = keywords.length;
      if (index < 0) {
        lost.push(flag);
        continue;
      }
      keywords[index] = flag;
    }
    letters.push(String.fromCharCode(0x61 + index));
  }
  return { letters: [...new Set(letters)].sort().join(''), lost };
}

/** `dovecot-keywords`: "N name" lines, N 0-25 → the keyword for letter a+N. */
export function parseKeywordsFile(text: string): (string | undefined)[] {
  const keywords: (string | undefined)[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d{1,2}) (\S+)$/.exec(line.trimEnd());
    if (m === null) continue;
    const index = Number(m[1]);
    if (index < MAX_KEYWORDS) keywords[index] = m[2]!;
  }
  return keywords;
}

export function formatKeywordsFile(keywords: readonly (string | undefined)[]): string {
  return keywords.flatMap((k, i) => (k === undefined ? [] : [`${i} ${k}\n`])).join('');
}

/** One level of a folder name on disk → the name, or null when it is not valid modified UTF-7. */
function decodeLevel(level: string): string | null {
  const decoded = decodeModifiedUtf7(level);
  return decoded === null ? null : decoded.replace(/\\2e/gi, '.').replace(/\\5c/gi, '\\');
}

function encodeLevel(level: string): string {
  return encodeModifiedUtf7(level.replace(/\\/g, '\\5c').replace(/\./g, '\\2e'));
}

/** A Maildir++ folder directory (".a.b") → the folder ("a/b"), or null when it is none. */
export function folderFromDirName(dir: string): string | null {
  if (!dir.startsWith('.') || dir === '.' || dir === '..') return null;
  const levels = dir.slice(1).split('.').map(decodeLevel);
  if (levels.some((l) => l === null || l === '')) return null;
  const name = levels.join('/');
  return name.toUpperCase() === INBOX ? INBOX : name;
}

/** A folder ("a/b") → its Maildir++ directory (".a.b"). */
export function dirNameForFolder(folder: string): string {
  return `.${folder.split('/').map(encodeLevel).join('.')}`;
}

/** Subscribed folder names from a `subscriptions` file (either version). */
export function parseSubscriptions(text: string): string[] {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const v2 = lines[0] === 'V\t2';
  const names: string[] = [];
  for (const line of v2 ? lines.slice(2) : lines) {
    if (line === '') continue;
    const levels = (v2 ? line.split('\t') : line.split(/[/.]/)).map((l) => decodeModifiedUtf7(l));
    if (levels.some((l) => l === null || l === '')) continue;
    names.push(levels.join('/'));
  }
  return names;
}

export function formatSubscriptions(names: readonly string[]): string {
  return `V\t2\n\n${names.map((n) => `${n.split('/').map(encodeModifiedUtf7).join('\t')}\n`).join('')}`;
}

/** `dovecot-uidlist` → each unique part's UID (for the import order). */
export function parseUidList(text: string): Map<string, number> {
  const uids = new Map<string, number>();
  for (const line of text.split('\n').slice(1)) {
    const m = /^(\d+)(?: [^:]*)? :(.+)$/.exec(line);
    if (m !== null) uids.set(parseMaildirName(m[2]!).unique, Number(m[1]));
  }
  return uids;
}

/** One message file found in a Maildir folder. */
export interface MaildirFile {
  readonly path: string;
  readonly unique: string;
  readonly letters: string;
}

/** A Maildir folder: where it is, what it is called, and its keyword letters. */
export interface MaildirFolder {
  /** The folder's name relative to the Maildir's root ("" for the root itself, "a/b" for .a.b). */
  readonly relative: string;
  readonly dir: string;
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return null;
    throw err;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await readdir(path)) !== null;
  } catch {
    return false;
  }
}

/** The folders of a Maildir++ root: the root (if it has cur/ or new/) and every `.name` below it. */
export async function maildirFolders(root: string): Promise<MaildirFolder[]> {
  const folders: MaildirFolder[] = [];
  const holdsMail = async (dir: string): Promise<boolean> =>
    (await isDir(join(dir, 'cur'))) || (await isDir(join(dir, 'new')));
  if (await holdsMail(root)) folders.push({ relative: '', dir: root });
  const entries = await readdir(root, { withFileTypes: true });
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!e.isDirectory()) continue;
    const name = folderFromDirName(e.name);
    if (name === null) continue;
    const dir = join(root, e.name);
    if (await holdsMail(dir)) folders.push({ relative: name, dir });
  }
  return folders;
}

/** The message files of one folder (new/ and cur/), in Dovecot's UID order where it kept one. */
export async function maildirFiles(dir: string): Promise<MaildirFile[]> {
  const files: MaildirFile[] = [];
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = await readdir(join(dir, sub));
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') continue;
      throw err;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      files.push({ path: join(dir, sub, name), ...parseMaildirName(name) });
    }
  }
  const uidText = await readOptional(join(dir, 'dovecot-uidlist'));
  const uids = uidText === null ? new Map<string, number>() : parseUidList(uidText);
  // Listed files in UID order, then the rest by their unique part (which starts with the delivery time).
  const rank = (f: MaildirFile): number => uids.get(f.unique) ?? Number.MAX_SAFE_INTEGER;
  return files.sort((a, b) => rank(a) - rank(b) || (a.unique < b.unique ? -1 : a.unique > b.unique ? 1 : 0));
}

/** A folder's `dovecot-keywords` (letter index → keyword); none when the file is missing. */
export async function readKeywords(dir: string): Promise<(string | undefined)[]> {
  const text = await readOptional(join(dir, 'dovecot-keywords'));
  return text === null ? [] : parseKeywordsFile(text);
}

/** The root's `subscriptions` file, or null when there is none. */
export async function readSubscriptions(root: string): Promise<string[] | null> {
  const text = await readOptional(join(root, 'subscriptions'));
  return text === null ? null : parseSubscriptions(text);
}
