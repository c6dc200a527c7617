// The imaptest runner from the command line: plays Dovecot imaptest's scripts against any IMAP server,
// one line per script and a total.
//   npx node test/imaptest/run-cli.ts --host 127.0.0.1 --port 143 --user U --password P [--tls]
//        [--user2 U2 --password2 P2] [--mailbox imaptest] [--timeout-ms 30000] [--verbose] [script...]
// A script is a name from test/imaptest/scripts (`fetch`) or a path. With --tls the connection is implicit
// TLS and the certificate is not verified (the point is the IMAP dialogue, not the PKI). Exit status 0 when
// nothing failed. Deliberately NOT here: STARTTLS, SASL mechanisms other than LOGIN.

import { existsSync } from 'node:fs';
import { isIP, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { parseArgs } from 'node:util';
import { listScripts, runScript, SCRIPTS_DIR, type ImaptestTarget } from './runner.ts';

const { values, positionals } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    user: { type: 'string' },
    password: { type: 'string' },
    user2: { type: 'string' },
    password2: { type: 'string' },
    mailbox: { type: 'string' },
    tls: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});

if (values.port === undefined || values.user === undefined || values.password === undefined) {
  process.stderr.write('usage: run-cli.ts --host H --port N --user U --password P [--tls] [script...]\n');
  process.exit(2);
}
const host = values.host;
const port = Number(values.port);
const tls = values.tls;

function connect(): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = tls
      ? tlsConnect(
          { host, port, rejectUnauthorized: false, ...(isIP(host) === 0 ? { servername: host } : {}) },
          () => resolve(socket),
        )
      : netConnect({ host, port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

const target: ImaptestTarget = {
  connect,
  user: values.user,
  password: values.password,
  ...(values.user2 !== undefined ? { user2: { user: values.user2, password: values.password2 ?? '' } } : {}),
  ...(values.mailbox !== undefined ? { mailbox: values.mailbox } : {}),
  ...(values['timeout-ms'] !== undefined ? { replyTimeoutMs: Number(values['timeout-ms']) } : {}),
};

const paths =
  positionals.length === 0
    ? await listScripts()
    : positionals.map((p) => (existsSync(p) ? p : join(SCRIPTS_DIR, p)));

const counts = { pass: 0, fail: 0, skip: 0 };
for (const path of paths) {
  const r = await runScript(path, target);
  counts[r.status]++;
  const detail =
    r.status === 'pass' ? '' : `  ${values.verbose ? r.detail : (r.detail.split('\n', 1)[0] ?? '')}`;
  process.stdout.write(`${r.status.padEnd(4)} ${r.name}${detail}\n`);
}
process.stdout.write(
  `total ${paths.length}: ${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped\n`,
);
process.exitCode = counts.fail === 0 ? 0 : 1;
