// A real spamd (Debian's spamd 4.0.1, SpamAssassin) for tests: started in the foreground, in its own
// process group, on a free loopback port, with `-L` (local tests only: no DNS, no network tests), `-x`
// (no per-user config) and a private site config dir: Debian's .pre files less the plugins that talk to
// the network (Razor2, Pyzor, DCC, SpamCop), and a local.cf that turns off Bayes, auto-learning and
// DNS. The rules are Debian's as installed in /usr/share/spamassassin (GTUBE scores 1000 there, and
// works offline). local.cf adds one body rule scoring a marker word 7.0, over the default
// required_score 5.0 and under a reject score of 10: spam to be filed in Junk (SPAMD_MARKER).
//
//   const spamd = await startSpamd()          // throws SPAMD_SKIP's text when spamd is not installed
//   … new SpamAssassinFilter({ address: spamd.address, dial, … }) …
//   await spamd.stop();
//
// Deliberately NOT here: sa-update's rule channels (network), sa-compile, a Unix socket, SSL.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopGroup } from './process.ts';

export const SPAMD_BINARY = '/usr/sbin/spamd';
const DEFAULT_RULES = '/usr/share/spamassassin';
const DEBIAN_SITE = '/etc/spamassassin';

/** Why spamd tests cannot run here, or false when they can (for `test(…, { skip: SPAMD_SKIP })`). */
export const SPAMD_SKIP: string | false = !existsSync(SPAMD_BINARY)
  ? `${SPAMD_BINARY} is not installed (Debian package spamd)`
  : !existsSync(join(DEFAULT_RULES, '50_scores.cf'))
    ? `no SpamAssassin rules in ${DEFAULT_RULES} (Debian package spamassassin)`
    : false;

/** SpamAssassin's GTUBE string (score 1000). */
export const SPAMD_GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/** A word in the body that the test rule TERN_TEST_SPAM scores 7.0. */
export const SPAMD_MARKER = 'TERN-TEST-SPAM-SEVEN';

export interface Spamd {
  /** `127.0.0.1:port`, as `[filters.spamassassin] address` takes it. */
  readonly address: string;
  readonly port: number;
  /** spamd's log so far (stderr). */
  log(): string;
  /** Stops the process group and removes the temp dir. */
  stop(): Promise<void>;
}

const READY_MS = 60_000;
const NETWORK_PLUGINS = /::(Razor2|Pyzor|DCC|SpamCop)\b/;

export async function startSpamd(): Promise<Spamd> {
  if (SPAMD_SKIP !== false) throw new Error(SPAMD_SKIP);
  const dir = await mkdtemp(join(tmpdir(), 'tern-spamd-'));
  try {
    // spamd started as root drops to nobody before it reads the site config: it must be readable.
    await chmod(dir, 0o755);
    const site = join(dir, 'site');
    await mkdir(site);
    await writeSiteConfig(site);
    // A free port can be taken between our probe and spamd's bind: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const started = await launch(dir, site, port);
      if (started !== 'port-taken') return started;
      if (attempt === 3) throw new Error('spamd: no free loopback port after 3 tries');
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function writeSiteConfig(site: string): Promise<void> {
  // The .pre files load the plugins; without them (the Check plugin above all) spamd cannot scan.
  const pres = existsSync(DEBIAN_SITE) ? (await readdir(DEBIAN_SITE)).filter((f) => f.endsWith('.pre')) : [];
  for (const pre of pres) {
    const text = await readFile(join(DEBIAN_SITE, pre), 'utf8');
    const kept = text
      .split('\n')
      .map((line) => (/^\s*loadplugin\b/.test(line) && NETWORK_PLUGINS.test(line) ? `# ${line}` : line));
    await writeFile(join(site, pre), kept.join('\n'));
  }
  if (pres.length === 0)
    await writeFile(join(site, 'v320.pre'), 'loadplugin Mail::SpamAssassin::Plugin::Check\n');
  await writeFile(
    join(site, 'local.cf'),
    [
      'dns_available no',
      'skip_rbl_checks 1',
      'use_bayes 0',
      'bayes_auto_learn 0',
      'required_score 5.0',
      `body TERN_TEST_SPAM /${SPAMD_MARKER}/`,
      'describe TERN_TEST_SPAM Tern test marker',
      'score TERN_TEST_SPAM 7.0',
      '',
    ].join('\n'),
  );
}

async function launch(dir: string, site: string, port: number): Promise<Spamd | 'port-taken'> {
  const args = [
    '-L',
    '-x',
    `--listen=127.0.0.1:${port}`,
    '--allowed-ips=127.0.0.1',
    `--siteconfigpath=${site}`,
    `--configpath=${DEFAULT_RULES}`,
    '--syslog=stderr',
    `--pidfile=${join(dir, `spamd-${port}.pid`)}`,
    '--max-children=2',
    '--min-children=1',
    `--helper-home-dir=${dir}`,
  ];
  const child = spawn(SPAMD_BINARY, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = once(child, 'exit');

  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (/Address already in use|could not create .*socket/i.test(output)) return 'port-taken';
      throw new Error(`spamd exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`);
    }
    if (await ping(port)) {
      let stopped: Promise<void> | null = null;
      return {
        address: `127.0.0.1:${port}`,
        port,
        log: () => output,
        stop: () => (stopped ??= stopGroup(child, exited, dir)),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopGroup(child, exited, null);
  throw new Error(`spamd did not answer PING within ${READY_MS} ms:\n${output}`);
}

/** `PING SPAMC/1.5` → `SPAMD/1.5 0 PONG`: true once a child answers. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(2_000, () => socket.destroy());
    socket.on('connect', () => socket.write('PING SPAMC/1.5\r\n\r\n'));
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(/^SPAMD\/[\d.]+ 0 PONG/.test(answer)));
  });
}
