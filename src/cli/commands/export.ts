// `tern export FILE` and `tern import FILE`: a whole installation — users, aliases, admin accounts,
// DKIM keys, TLS files, mailboxes, the queue, traces and reports: everything in data_dir — as one
// gzipped tar archive, for backups and for moving to another machine. Each database goes in as a
// consistent copy (SQLite's VACUUM INTO, its write-ahead log folded in); a manifest (tern-export.json,
// the last entry) lists every file with its size and SHA-256, and the import checks each before
// anything is put in place. Both hold data_dir's lock while they work, so no `tern serve` runs meanwhile
// (an export of a running server could pair a database with files already gone). A progress bar on a
// terminal; `--json` for a summary scripts read.
// Deliberately NOT here: the archive format (cli/tar.ts), the progress bar (cli/progress.ts).

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { DataDirLockedError, lockDataDir, LOCK_FILE } from '../../db/data-dir-lock.ts';
import { dataPaths } from '../../main.ts';
import type { Command, CommandContext } from '../command.ts';
import { CliError, UsageError, writeLine } from '../io.ts';
import { Progress, formatBytes } from '../progress.ts';
import { readTar, tarHeader, tarPadding, TAR_END } from '../tar.ts';

export const MANIFEST = 'tern-export.json';
const FORMAT = 1;

/** The manifest: what `tern import` checks, and what `--json` prints (a contract for scripts). */
export interface ExportManifest {
  readonly format: number;
  readonly createdAt: string;
  readonly hostname: string;
  readonly files: readonly { readonly path: string; readonly bytes: number; readonly sha256: string }[];
  readonly totalBytes: number;
}

/** SQLite files by their names in data_dir (the stores' own extensions). */
function isDatabase(name: string): boolean {
  return /\.(?:sqlite|db)$/.test(name);
}

/** What an export leaves out: the lock, SQLite's side files (folded in by VACUUM INTO), scratch folders. */
function skipped(rel: string): boolean {
  const name = basename(rel);
  return rel === LOCK_FILE || /-(?:wal|shm|journal)$/.test(name) || /(?:^|\/)tmp$/.test(rel);
}

async function walk(root: string, rel = ''): Promise<{ rel: string; dir: boolean }[]> {
  const out: { rel: string; dir: boolean }[] = [];
  const entries = await readdir(join(root, rel), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of entries) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`;
    if (skipped(r)) continue;
    if (e.isDirectory()) {
      out.push({ rel: r, dir: true });
      out.push(...(await walk(root, r)));
    } else if (e.isFile()) out.push({ rel: r, dir: false });
    // Links and devices are no part of an installation Tern made: left out.
  }
  return out;
}

function holdLock(root: string): { release(): void } {
  try {
    return lockDataDir(root);
  } catch (err) {
    if (err instanceof DataDirLockedError)
      throw new CliError(`${err.message} (an export or import needs it stopped)`);
    throw err;
  }
}

async function exportTo(ctx: CommandContext, file: string): Promise<ExportManifest> {
  const config = ctx.config();
  const root = dataPaths(config).root;
  if (!existsSync(root)) throw new CliError(`no data directory at ${root}: nothing to export`);
  const lock = holdLock(root);
  const scratch = await mkdtemp(join(dirname(file), '.tern-export-'));
  try {
    const entries = await walk(root);
    // Consistent copies of the databases first (VACUUM INTO folds in the write-ahead log).
    const sources = new Map<string, string>();
    for (const e of entries) {
      if (e.dir || !isDatabase(e.rel)) continue;
      const copy = join(scratch, e.rel.replaceAll('/', '__'));
      const db = new DatabaseSync(join(root, e.rel));
      try {
        db.exec(`VACUUM INTO '${copy.replaceAll("'", "''")}'`);
      } finally {
        db.close();
      }
      sources.set(e.rel, copy);
    }
    let total = 0;
    for (const e of entries) if (!e.dir) total += (await stat(sources.get(e.rel) ?? join(root, e.rel))).size;
    const progress = new Progress({
      stream: ctx.io.stderr,
      clock: ctx.clock,
      verb: 'exported',
      totalBytes: total,
      unit: 'files',
    });
    const files: { path: string; bytes: number; sha256: string }[] = [];
    const manifestOf = (): ExportManifest => ({
      format: FORMAT,
      createdAt: new Date(ctx.clock.nowMs()).toISOString(),
      hostname: config.hostname,
      files,
      totalBytes: files.reduce((n, f) => n + f.bytes, 0),
    });
    async function* archive(): AsyncGenerator<Buffer> {
      for (const e of entries) {
        const path = sources.get(e.rel) ?? join(root, e.rel);
        const st = await lstat(path);
        if (e.dir) {
          yield tarHeader({ name: e.rel, type: 'dir', size: 0, mode: st.mode, mtimeS: st.mtimeMs / 1000 });
          continue;
        }
        yield tarHeader({
          name: e.rel,
          type: 'file',
          size: st.size,
          mode: st.mode,
          mtimeS: st.mtimeMs / 1000,
        });
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
          const b = chunk as Buffer;
          hash.update(b);
          bytes += b.length;
          progress.add(0, b.length);
          yield b;
        }
        // A file that changed size meanwhile would make the archive lie: the lock should prevent it.
        if (bytes !== st.size) throw new CliError(`${e.rel} changed while it was exported`);
        yield tarPadding(bytes);
        progress.add(1, 0);
        files.push({ path: e.rel, bytes, sha256: hash.digest('hex') });
      }
      const manifest = Buffer.from(`${JSON.stringify(manifestOf(), null, 1)}\n`);
      yield tarHeader({
        name: MANIFEST,
        type: 'file',
        size: manifest.length,
        mode: 0o600,
        mtimeS: ctx.clock.nowMs() / 1000,
      });
      yield manifest;
      yield tarPadding(manifest.length);
      yield TAR_END;
    }
    const partial = `${file}.partial`;
    await pipeline(Readable.from(archive()), createGzip(), createWriteStream(partial, { mode: 0o600 }));
    // Durable before it takes the name: a backup that is not on disk is no backup.
    const fh = await open(partial, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(partial, file);
    progress.finish();
    return manifestOf();
  } finally {
    await rm(scratch, { recursive: true, force: true });
    lock.release();
  }
}

async function importFrom(ctx: CommandContext, file: string, force: boolean): Promise<ExportManifest> {
  const config = ctx.config();
  const root = dataPaths(config).root;
  if (!existsSync(file)) throw new CliError(`no such archive: ${file}`);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const lock = holdLock(root);
  // Unpacked beside data_dir, checked, then swapped in: a bad archive never leaves half an installation.
  const staging = await mkdtemp(join(dirname(root), `.${basename(root)}-import-`));
  try {
    const existing = (await readdir(root)).filter((n) => n !== LOCK_FILE);
    if (existing.length > 0 && !force)
      throw new CliError(`${root} is not empty (${existing.length} entries): give --force to replace it`);
    const progress = new Progress({
      stream: ctx.io.stderr,
      clock: ctx.clock,
      verb: 'imported',
      totalBytes: null,
      unit: 'files',
    });
    const seen = new Map<string, { bytes: number; sha256: string }>();
    let manifestText: string | null = null;
    const source = createReadStream(file).pipe(createGunzip());
    for await (const { entry, body } of readTar(source)) {
      const target = join(staging, ...entry.name.split('/'));
      if (!target.startsWith(staging + sep)) throw new CliError(`archive: refused entry ${entry.name}`);
      if (entry.type === 'dir') {
        await mkdir(target, { recursive: true, mode: 0o700 });
        continue;
      }
      if (entry.name === MANIFEST) {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c));
        manifestText = Buffer.concat(chunks).toString('utf8');
        continue;
      }
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      const hash = createHash('sha256');
      let bytes = 0;
      const out = createWriteStream(target, { mode: entry.mode & 0o700 ? entry.mode & 0o777 : 0o600 });
      await pipeline(
        (async function* () {
          for await (const c of body) {
            hash.update(c);
            bytes += c.length;
            progress.add(0, c.length);
            yield c;
          }
        })(),
        out,
      );
      progress.add(1, 0);
      seen.set(entry.name, { bytes, sha256: hash.digest('hex') });
    }
    if (manifestText === null)
      throw new CliError(`${file} has no ${MANIFEST}: not an archive tern export made`);
    const manifest = JSON.parse(manifestText) as ExportManifest;
    if (manifest.format !== FORMAT)
      throw new CliError(`${file}: archive format ${manifest.format} is not ${FORMAT}`);
    for (const f of manifest.files) {
      const got = seen.get(f.path);
      if (got === undefined) throw new CliError(`${file}: ${f.path} is missing`);
      if (got.bytes !== f.bytes || got.sha256 !== f.sha256)
        throw new CliError(`${file}: ${f.path} does not match its checksum (damaged archive)`);
    }
    if (seen.size !== manifest.files.length) throw new CliError(`${file}: files the manifest does not list`);
    // Everything checked: the old contents go, the new ones take their place.
    for (const name of existing) await rm(join(root, name), { recursive: true, force: true });
    for (const name of await readdir(staging)) await rename(join(staging, name), join(root, name));
    progress.finish();
    return manifest;
  } finally {
    await rm(staging, { recursive: true, force: true });
    lock.release();
  }
}

function summary(m: ExportManifest): string {
  return `${m.files.length} files, ${formatBytes(m.totalBytes)}`;
}

export const exportCommand: Command = {
  name: 'export',
  args: 'FILE [--json]',
  summary: 'write the whole installation (data_dir) to one archive, with tern serve stopped',
  flags: ['json'],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const file = args.positionals[0]!;
    if (existsSync(file)) throw new UsageError(`${file} exists: choose a new name`, 'tern export FILE');
    const m = await exportTo(ctx, file);
    await writeLine(
      ctx.io.stdout,
      args.flags.has('json') ? JSON.stringify({ file, ...m }) : `exported ${summary(m)} to ${file}`,
    );
    return 0;
  },
};

export const importCommand: Command = {
  name: 'import',
  args: 'FILE [--force] [--json]',
  summary: 'put an archive of tern export in place as data_dir, with tern serve stopped',
  flags: ['force', 'json'],
  minPositionals: 1,
  maxPositionals: 1,
  async run(ctx, args) {
    const file = args.positionals[0]!;
    const m = await importFrom(ctx, file, args.flags.has('force'));
    await writeLine(
      ctx.io.stdout,
      args.flags.has('json') ? JSON.stringify({ file, ...m }) : `imported ${summary(m)} from ${file}`,
    );
    return 0;
  },
};
