// Test support for the CLI: run `tern` in-process against a fresh temporary data directory and capture
// what it writes. Used by src/cli/**/*.test.ts only; nothing in the program imports it.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/config.ts';
import type { CliIo } from './io.ts';
import { run } from './main.ts';

export interface TernResult {
  readonly code: number;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

export interface Sandbox {
  /** The temporary folder: cwd of every run, holds tern.toml and data/. */
  readonly dir: string;
  readonly configPath: string;
  /** The configuration as the CLI sees it (to open services directly and seed data). */
  config(): Config;
  /** Run `tern ARGS --config <sandbox>/tern.toml`, with `stdin` as standard input (a pipe, not a TTY). */
  tern(
    args: readonly string[],
    options?: { stdin?: string | Buffer; withConfig?: boolean },
  ): Promise<TernResult>;
  remove(): Promise<void>;
}

function collect(): { stream: PassThrough; bytes: () => Buffer } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, bytes: () => Buffer.concat(chunks) };
}

/** Run `tern` in-process with in-memory streams. */
export async function runTern(
  args: readonly string[],
  options: { cwd: string; stdin?: string | Buffer; env?: Record<string, string> },
): Promise<TernResult> {
  const out = collect();
  const err = collect();
  const stdinChunks = options.stdin === undefined ? [] : [Buffer.from(options.stdin)];
  const io: CliIo = {
    stdout: out.stream,
    stderr: err.stream,
    stdin: Readable.from(stdinChunks),
    cwd: options.cwd,
    env: options.env ?? {},
  };
  const code = await run(args, io);
  const stdoutBytes = out.bytes();
  return { code, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: err.bytes().toString('utf8') };
}

export async function createSandbox(
  toml = 'local_domains = ["example.test", "localhost"]\n[log]\nlevel = "warn"\n',
): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-cli-'));
  const configPath = join(dir, 'tern.toml');
  await writeFile(configPath, toml);
  return {
    dir,
    configPath,
    config: () => loadConfig({ path: configPath, cwd: dir }),
    tern: (args, options = {}) =>
      runTern(options.withConfig === false ? args : [...args, '--config', configPath], {
        cwd: dir,
        ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
      }),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
