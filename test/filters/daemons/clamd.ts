// A real clamd (Debian's clamav-daemon) for tests: started in the foreground, in its own process group,
// on a free loopback TCP port, with a private config, temp dir and a tiny signature database written
// here (one body signature for the EICAR test file: no internet, no freshclam, starts in about a second).
// ClamAV 1.4 has no EICAR detection of its own: without this database the test file scans clean.
// clamd names signatures from a database that is not official with `.UNOFFICIAL`: the EICAR file is
// reported as `Eicar-Test-Signature.UNOFFICIAL`.
//
//   if (CLAMD_SKIP) test.skip(...)            // or: test('…', { skip: CLAMD_SKIP }, …)
//   const clamd = await startClamd({ streamMaxLength: '1M' });
//   … new ClamavFilter({ address: clamd.address, dial, … }) …
//   await clamd.stop();
//
// Deliberately NOT here: the official databases (too big, and fetched from the internet), a Unix
// socket (TCP is what the filter's tests and the e2e tests both reach), LocalSocket fd passing.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopGroup } from './process.ts';

export const CLAMD_BINARY = '/usr/sbin/clamd';

/** Why clamd tests cannot run here, or false when they can (for `test(…, { skip: CLAMD_SKIP })`). */
export const CLAMD_SKIP: string | false = existsSync(CLAMD_BINARY)
  ? false
  : `${CLAMD_BINARY} is not installed (Debian package clamav-daemon)`;

/** The name clamd gives the EICAR test file with the database written here. */
export const EICAR_SIGNATURE = 'Eicar-Test-Signature.UNOFFICIAL';

/**
 * The 68-byte EICAR anti-virus test file, put together at run time so that the repository itself holds
 * nothing a scanner would flag.
 */
export function eicar(): string {
  const reversedHead = '$}7)CC7)^P(45XZP\\4[PA@%P!O5X';
  return (
    [...reversedHead].reverse().join('') + ['EICAR', 'STANDARD', 'ANTIVIRUS', 'TEST', 'FILE!$H+H*'].join('-')
  );
}

export interface Clamd {
  /** `127.0.0.1:port`, as `[filters.clamav] address` takes it. */
  readonly address: string;
  readonly port: number;
  /** clamd's log so far (its LogFile). */
  log(): Promise<string>;
  /** Stops the process group and removes the temp dir. */
  stop(): Promise<void>;
}

export interface ClamdOptions {
  /** clamd's StreamMaxLength (`1M`, `25M`…); default 100M. */
  readonly streamMaxLength?: string;
}

const READY_MS = 60_000;

export async function startClamd(opts: ClamdOptions = {}): Promise<Clamd> {
  if (CLAMD_SKIP !== false) throw new Error(CLAMD_SKIP);
  const dir = await mkdtemp(join(tmpdir(), 'tern-clamd-'));
  try {
    const db = join(dir, 'db');
    await mkdir(db);
    // A body signature (.ndb: name, any file type, offset anywhere, hex): it matches the test file
    // inside whatever clamd extracts, such as a decoded MIME part, not only as a file of its own.
    const hex = Buffer.from(eicar(), 'utf8').toString('hex');
    await writeFile(join(db, 'tern-test.ndb'), `Eicar-Test-Signature:0:*:${hex}\n`);
    // A free port can be taken between our probe and clamd's bind: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const started = await launch(dir, db, port, opts);
      if (started !== 'port-taken') return started;
      if (attempt === 3) throw new Error('clamd: no free loopback port after 3 tries');
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  dir: string,
  db: string,
  port: number,
  opts: ClamdOptions,
): Promise<Clamd | 'port-taken'> {
  const logFile = join(dir, `clamd-${port}.log`);
  const conf = join(dir, `clamd-${port}.conf`);
  await writeFile(
    conf,
    [
      'Foreground yes',
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      `DatabaseDirectory ${db}`,
      `TemporaryDirectory ${dir}`,
      `LogFile ${logFile}`,
      'LogSyslog no',
      'LogTime yes',
      'LogClean yes',
      `StreamMaxLength ${opts.streamMaxLength ?? '100M'}`,
      'MaxThreads 4',
      'SelfCheck 0',
      // The default 5 s is short on a busy test machine while a 20 MiB stream is being read.
      'ReadTimeout 60',
      '',
    ].join('\n'),
  );
  const child = spawn(CLAMD_BINARY, ['-c', conf], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = once(child, 'exit');
  const log = async (): Promise<string> => readFile(logFile, 'utf8').catch(() => '');

  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const text = `${output}\n${await log()}`;
      if (/bind|Address already in use/i.test(text)) return 'port-taken';
      throw new Error(`clamd exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${text}`);
    }
    if ((await ping(port)) === 'PONG') {
      let stopped: Promise<void> | null = null;
      return {
        address: `127.0.0.1:${port}`,
        port,
        log,
        stop: () => (stopped ??= stopGroup(child, exited, dir)),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopGroup(child, exited, null);
  throw new Error(`clamd did not answer PING within ${READY_MS} ms:\n${output}\n${await log()}`);
}

/** `zPING` → `PONG`, or null when clamd is not listening yet. */
export function ping(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(2_000, () => socket.destroy());
    socket.on('connect', () => socket.write('zPING\0'));
    socket.on('data', (d: Buffer) => {
      answer += d.toString('utf8');
      if (answer.includes('\0')) socket.end();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer.includes('\0') ? answer.slice(0, answer.indexOf('\0')) : null));
  });
}
