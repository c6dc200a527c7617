// The CLI's view of the process: streams, working directory and environment passed in, so every
// command runs in tests against in-memory streams. Also the two error types a command may throw
// (their message is shown as is, never a stack) and stdin helpers: read a password from a pipe, or
// prompt for one on a terminal without echo.

import type { Readable, Writable } from 'node:stream';

/** stdin as the CLI needs it: a readable that may be a terminal (then raw mode hides a password). */
export type CliStdin = Readable & { readonly isTTY?: boolean; setRawMode?(mode: boolean): unknown };

export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stdin: CliStdin;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** A failure the user can act on; `tern: <message>` is printed and the process exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Wrong arguments: the message, then the command's usage line, exit status 2. */
export class UsageError extends CliError {
  readonly usage: string | null;
  constructor(message: string, usage: string | null = null) {
    super(message, 2);
    this.name = 'UsageError';
    this.usage = usage;
  }
}

/** Write and wait when the stream asks for it, so large outputs do not pile up in memory. */
export async function write(stream: Writable, chunk: string | Uint8Array): Promise<void> {
  if (stream.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      stream.off('error', onError);
      resolve();
    };
    const onError = (err: Error): void => {
      stream.off('drain', onDrain);
      reject(err);
    };
    stream.once('drain', onDrain);
    stream.once('error', onError);
  });
}

export function writeLine(stream: Writable, line: string): Promise<void> {
  return write(stream, `${line}\n`);
}

/** Read stdin to the end, refusing more than maxBytes (a password, not a file). */
export async function readAll(stdin: Readable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > maxBytes) throw new CliError(`standard input is longer than ${maxBytes} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const MAX_PASSWORD_BYTES = 4096;

/**
 * The password given on stdin (`--password-stdin`): everything up to the first line ending, like
 * `docker login --password-stdin`, so `echo secret | tern ...` works and stray newlines never become
 * part of the password.
 */
export async function readPasswordFromStdin(stdin: Readable): Promise<string> {
  const text = await readAll(stdin, MAX_PASSWORD_BYTES);
  const password = text.split(/\r?\n/, 1)[0] ?? '';
  if (password === '') throw new CliError('empty password on standard input');
  return password;
}

/**
 * Prompt on stderr and read one line from a terminal with echo off (raw mode). Handles backspace,
 * Ctrl-C (cancel, exit 130) and Ctrl-D; anything else is taken literally.
 */
export async function readHiddenLine(io: Pick<CliIo, 'stdin' | 'stderr'>, prompt: string): Promise<string> {
  const { stdin, stderr } = io;
  if (stdin.setRawMode === undefined) throw new CliError('standard input is not a terminal');
  await write(stderr, prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let line = '';
      const finish = (err: Error | null): void => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdin.pause();
        if (err) reject(err);
        else resolve(line);
      };
      const onEnd = (): void => finish(new CliError('no password given'));
      const onData = (data: string): void => {
        for (const ch of data) {
          if (ch === '\r' || ch === '\n') return finish(null);
          if (ch === '\u0003') return finish(new CliError('cancelled', 130));
          if (ch === '\u0004') return finish(line === '' ? new CliError('no password given') : null);
          if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
          else line += ch;
        }
      };
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      stdin.resume();
    });
  } finally {
    stdin.setRawMode(false);
    await write(stderr, '\n');
  }
}

/** Ask twice on a terminal; the two answers must match and not be empty. */
export async function promptNewPassword(io: Pick<CliIo, 'stdin' | 'stderr'>): Promise<string> {
  const first = await readHiddenLine(io, 'Password: ');
  if (first === '') throw new CliError('empty password');
  const second = await readHiddenLine(io, 'Repeat password: ');
  if (first !== second) throw new CliError('passwords do not match');
  return first;
}
