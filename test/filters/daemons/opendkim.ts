// A real OpenDKIM milter (Debian's opendkim 2.11) for tests: started in the foreground, in its own
// process group, on a free loopback TCP port, with a private config and a fresh 2048-bit RSA key in a
// temp dir. It signs mail for `example.org` with selector `sel` from clients in InternalHosts
// (127.0.0.1 and ::1: Tern's test clients) and verifies the rest; it needs no DNS to sign.
//
//   test('…', { skip: OPENDKIM_SKIP }, async () => {
//     const odk = await startOpendkim();
//     … new MilterFilter({ address: odk.address, dial, … }) …
//     … verify with odk.publicKeyTxt served for `${odk.selector}._domainkey.${odk.domain}` …
//     await odk.stop();
//   });
//
// Deliberately NOT here: a Unix socket (TCP is what the filter tests and the e2e tests both reach),
// KeyTable/SigningTable (one domain is enough), verification against real DNS.

import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopGroup } from './process.ts';

export const OPENDKIM_BINARY = '/usr/sbin/opendkim';

/** Why OpenDKIM tests cannot run here, or false when they can (for `test(…, { skip: OPENDKIM_SKIP })`). */
export const OPENDKIM_SKIP: string | false = existsSync(OPENDKIM_BINARY)
  ? false
  : `${OPENDKIM_BINARY} is not installed (Debian package opendkim)`;

export interface Opendkim {
  /** `127.0.0.1:port`, as a milter's `address` takes it. */
  readonly address: string;
  /** The TXT record to serve at `${selector}._domainkey.${domain}`: `v=DKIM1; k=rsa; p=…`. */
  readonly publicKeyTxt: string;
  readonly selector: string;
  readonly domain: string;
  /** What opendkim wrote on stdout and stderr so far. */
  output(): string;
  /** Stops the process group and removes the temp dir. */
  stop(): Promise<void>;
}

export interface OpendkimOptions {
  /** `Canonicalization` (header/body): default `simple/simple`, opendkim's own default and the strictest. */
  readonly canonicalization?: string;
}

const READY_MS = 30_000;

export async function startOpendkim(opts: OpendkimOptions = {}): Promise<Opendkim> {
  if (OPENDKIM_SKIP !== false) throw new Error(OPENDKIM_SKIP);
  const dir = await mkdtemp(join(tmpdir(), 'tern-opendkim-'));
  try {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyFile = join(dir, 'sel.private');
    await writeFile(keyFile, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
    const spki = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const publicKeyTxt = `v=DKIM1; k=rsa; p=${spki}`;
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const started = await launch(dir, keyFile, port, publicKeyTxt, opts);
      if (started !== 'port-taken') return started;
      if (attempt === 3) throw new Error('opendkim: no free loopback port after 3 tries');
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(
  dir: string,
  keyFile: string,
  port: number,
  publicKeyTxt: string,
  opts: OpendkimOptions,
): Promise<Opendkim | 'port-taken'> {
  const conf = join(dir, `opendkim-${port}.conf`);
  await writeFile(
    conf,
    [
      `Socket inet:${port}@127.0.0.1`,
      'Mode sv',
      'Domain example.org',
      'Selector sel',
      `KeyFile ${keyFile}`,
      `Canonicalization ${opts.canonicalization ?? 'simple/simple'}`,
      // The temp dir lives under the world-writable /tmp, which opendkim refuses for keys by default.
      'RequireSafeKeys no',
      'Syslog no',
      'InternalHosts csl:127.0.0.1,::1',
      // Signing asks no DNS; a stray verification must not wait on the outside world.
      'DNSTimeout 1',
      'SoftwareHeader no',
      'AutoRestart no',
      '',
    ].join('\n'),
  );
  const child = spawn(OPENDKIM_BINARY, ['-f', '-x', conf], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = once(child, 'exit');

  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (/address already in use|bind/i.test(output)) return 'port-taken';
      throw new Error(
        `opendkim exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`,
      );
    }
    if (await listening(port)) {
      let stopped: Promise<void> | null = null;
      return {
        address: `127.0.0.1:${port}`,
        publicKeyTxt,
        selector: 'sel',
        domain: 'example.org',
        output: () => output,
        stop: () => (stopped ??= stopGroup(child, exited, dir, 1_000)),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stopGroup(child, exited, null, 1_000);
  throw new Error(`opendkim did not listen within ${READY_MS} ms:\n${output}`);
}

/** Whether something accepts connections on the port (a probe libmilter sees as a client that left). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
