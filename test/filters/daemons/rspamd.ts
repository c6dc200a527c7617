// A real rspamd (Debian's rspamd 3.4) for tests: started in the foreground (`-f`, `-i` since tests may
// run as root), in its own process group, on a free loopback port, with a private configuration and
// data dir under a temp dir. Only the normal worker runs (no controller, proxy or fuzzy storage). It
// never reaches outside: its DNS server is a closed loopback port, and the modules that need the
// network, Redis or DNS answers to score sensibly (RBLs, SPF/DKIM/DMARC, hfilter, fuzzy, multimap's
// remote maps, greylisting, ratelimit, neural…) are off, so a plain message scores about 0.
// The test configuration adds what the tests need:
//   - actions: greylist 4, add header 6, rewrite subject 10 (subject "***SPAM*** %s"), reject 15;
//   - body rules scoring a marker word, so that each action can be had on purpose (MARKERS below);
//   - milter_headers adding X-Spamd-Result, X-Rspamd-Queue-Id and X-Spam-Status (and removing X-Spam);
//   - UTF-8 (RFC 6532) From/To addresses not scored as invalid (see writeConfig).
// rspamd's built-in GTUBE check answers `reject` with the SMTP message "Gtube pattern".
//
//   const rspamd = await startRspamd()       // throws RSPAMD_SKIP's text when rspamd is not installed
//   … new RspamdFilter({ url: rspamd.url, dial, … }) …
//   await rspamd.stop();
//
// Deliberately NOT here: the controller (learning, the web UI), Redis, a Unix socket.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopGroup } from './process.ts';

export const RSPAMD_BINARY = '/usr/bin/rspamd';

/** Why rspamd tests cannot run here, or false when they can (for `test(…, { skip: RSPAMD_SKIP })`). */
export const RSPAMD_SKIP: string | false = existsSync(RSPAMD_BINARY)
  ? false
  : `${RSPAMD_BINARY} is not installed (Debian package rspamd)`;

/** rspamd's GTUBE string: a message carrying it is rejected whatever else it scores. */
export const RSPAMD_GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/** A word in the body that scores the message into that action (with the test actions above). */
export const MARKERS = {
  greylist: 'TERN-TEST-GREYLIST',
  addHeader: 'TERN-TEST-ADD-HEADER',
  rewriteSubject: 'TERN-TEST-REWRITE-SUBJECT',
  reject: 'TERN-TEST-REJECT',
} as const;

export interface Rspamd {
  /** `http://127.0.0.1:port`, as `[filters.rspamd] url` takes it. */
  readonly url: string;
  readonly port: number;
  /** rspamd's console output so far (its log). */
  log(): string;
  /** Stops the process group and removes the temp dir. */
  stop(): Promise<void>;
}

const READY_MS = 60_000;

/** Modules off: they need the network, Redis, DNS answers, or remote maps. */
const DISABLED_MODULES = [
  'antivirus',
  'arc',
  'asn',
  'bimi',
  'clickhouse',
  'dcc',
  'dkim',
  'dmarc',
  'elastic',
  'emails',
  'external_services',
  'fuzzy_check',
  'greylist',
  'hfilter',
  'history_redis',
  'metadata_exporter',
  'metric_exporter',
  'mid',
  'mime_types',
  'multimap',
  'mx_check',
  'neural',
  'p0f',
  'phishing',
  'ratelimit',
  'rbl',
  'replies',
  'reputation',
  'rspamd_update',
  'spf',
  'url_redirector',
  'whitelist',
];

/** Symbols rspamd 3.4 scores for UTF-8 (RFC 6532) header fields; zero in the test configuration. */
export const UTF8_SYMBOLS = [
  'INVALID_FROM_8BIT',
  'INVALID_RCPT_8BIT',
  'FROM_INVALID',
  'TO_INVALID',
  'RCVD_ILLEGAL_CHARS',
  'FROM_NEEDS_ENCODING',
  'TO_NEEDS_ENCODING',
  'SUBJECT_NEEDS_ENCODING',
  'R_MIXED_CHARSET',
];

export async function startRspamd(): Promise<Rspamd> {
  if (RSPAMD_SKIP !== false) throw new Error(RSPAMD_SKIP);
  const dir = await mkdtemp(join(tmpdir(), 'tern-rspamd-'));
  try {
    await writeConfig(dir);
    // A free port can be taken between our probe and rspamd's bind: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const started = await launch(dir, port);
      if (started !== 'port-taken') return started;
      if (attempt === 3) throw new Error('rspamd: no free loopback port after 3 tries');
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function writeConfig(dir: string): Promise<void> {
  const local = join(dir, 'local.d');
  await mkdir(local);
  await mkdir(join(dir, 'db'));
  await writeFile(join(dir, 'tld.dat'), ['com', 'net', 'org', 'de', 'jp', 'example', 'test', ''].join('\n'));
  for (const m of DISABLED_MODULES) await writeFile(join(local, `${m}.conf`), 'enabled = false;\n');
  await writeFile(
    join(local, 'actions.conf'),
    [
      'greylist = 4;',
      'add_header = 6;',
      'rewrite_subject = 10;',
      'reject = 15;',
      'subject = "***SPAM*** %s";',
      '',
    ].join('\n'),
  );
  const rule = (name: string, marker: string, score: number) =>
    `${name} { re = "/${marker}/{sa_body}"; score = ${score}.0; description = "Tern test marker"; }`;
  await writeFile(
    join(local, 'regexp.conf'),
    [
      rule('TERN_TEST_GREYLIST', MARKERS.greylist, 5),
      rule('TERN_TEST_ADD_HEADER', MARKERS.addHeader, 8),
      rule('TERN_TEST_REWRITE_SUBJECT', MARKERS.rewriteSubject, 12),
      rule('TERN_TEST_REJECT', MARKERS.reject, 20),
      '',
    ].join('\n'),
  );
  // rspamd 3.4 takes RFC 6532 UTF-8 headers for broken ones (INVALID_FROM_8BIT 6, RCVD_ILLEGAL_CHARS
  // 4, FROM_INVALID 2, *_NEEDS_ENCODING 1 each…: a plain UTF-8 message scores about 8). A site that
  // accepts SMTPUTF8 mail zeroes them, and so do the tests, so that the UTF-8 twins meet the same
  // actions as the ASCII ones.
  await writeFile(
    join(dir, 'rspamd.conf.local'),
    'group "tern_utf8" {\n  symbols {\n' +
      UTF8_SYMBOLS.map((n) => `    "${n}" { score = 0.0; }\n`).join('') +
      '  }\n}\n',
  );
  await writeFile(
    join(local, 'milter_headers.conf'),
    'use = ["x-spamd-result", "x-rspamd-queue-id", "x-spam-status", "remove-spam-flag"];\n',
  );
}

async function launch(dir: string, port: number): Promise<Rspamd | 'port-taken'> {
  const conf = join(dir, `rspamd-${port}.conf`);
  await writeFile(
    conf,
    [
      '.include "$CONFDIR/common.conf"',
      // Debian's options.inc is not included: its dns block would come first and win over ours.
      'options {',
      `  pidfile = "${join(dir, 'rspamd.pid')}";`,
      '  filters = "chartable,regexp";',
      // Compiling the full public suffix list takes ~20 s per start on a small machine; a few will do.
      `  url_tld = "${join(dir, 'tld.dat')}";`,
      '  allow_raw_input = true;',
      `  hs_cache_dir = "${join(dir, 'db')}/";`,
      '  task_timeout = 8s;',
      // Compiling Hyperscan databases takes ~20 s per start on a small machine; PCRE needs none.
      '  disable_hyperscan = true;',
      '  explicit_modules = ["settings", "bayes_expiry"];',
      // A closed loopback port: every query fails at once, and none leaves the machine.
      '  dns { nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }',
      '}',
      'logging { type = "console"; level = "info"; color = false; }',
      'worker "normal" {',
      `  bind_socket = "127.0.0.1:${port}";`,
      '  .include "$CONFDIR/worker-normal.inc"',
      '  count = 1;',
      '}',
      '',
    ].join('\n'),
  );
  const vars = {
    CONFDIR: '/etc/rspamd',
    LOCAL_CONFDIR: dir,
    DBDIR: join(dir, 'db'),
    RUNDIR: dir,
    LOGDIR: dir,
  };
  const args = ['-f', '-i', '-c', conf, ...Object.entries(vars).map(([k, v]) => `--var=${k}=${v}`)];
  const child = spawn(RSPAMD_BINARY, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = once(child, 'exit');

  const deadline = Date.now() + READY_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (/Address already in use|cannot bind/i.test(output)) return 'port-taken';
      throw new Error(
        `rspamd exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`,
      );
    }
    if (await ping(port)) {
      let stopped: Promise<void> | null = null;
      return {
        url: `http://127.0.0.1:${port}`,
        port,
        log: () => output,
        stop: () => (stopped ??= stopGroup(child, exited, dir)),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopGroup(child, exited, null);
  throw new Error(`rspamd did not answer /ping within ${READY_MS} ms:\n${output}`);
}

/** GET /ping on the normal worker: true once it answers 200. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setTimeout(2_000, () => socket.destroy());
    socket.on('connect', () =>
      socket.write('GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    );
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer.startsWith('HTTP/1.1 200')));
  });
}
