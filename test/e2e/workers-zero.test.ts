// `[server] workers = 0` (every session on the main thread) against real clients: the e2e suite runs
// with the default ("auto": session threads), so this file runs a cross-section of it again with
// TERN_E2E_WORKERS=0 (the harness writes it into every test server's config): SMTP from smtplib, the
// security cases, local delivery before the 250, AUTH limits, POP3, IMAP (imaplib, NOTIFY), reload and
// delivery to other servers.
// Deliberately NOT here: the scenarios themselves (the files named below hold them).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runProcess } from './harness.ts';

const FILES = [
  'smtp-smtplib.test.ts',
  'smtp-security.test.ts',
  'local-accept.test.ts',
  'auth-limits.test.ts',
  'pop3.test.ts',
  'imap-imaplib.test.ts',
  'imap-notify.test.ts',
  'reload.test.ts',
  'outbound-relay.test.ts',
];

test(
  'a cross-section of the e2e suite with sessions on the main thread (workers = 0)',
  { timeout: 600_000 },
  async () => {
    const r = await runProcess(
      process.execPath,
      [
        '--test',
        '--test-concurrency=1',
        '--test-reporter=spec',
        ...FILES.map((f) => join(import.meta.dirname, f)),
      ],
      // Without NODE_TEST_CONTEXT: with it, a nested runner reports to this one instead of running.
      { env: { ...withoutTestContext(process.env), TERN_E2E_WORKERS: '0' }, timeoutMs: 590_000 },
    );
    assert.equal(r.code, 0, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
    // The runner prints its totals: something ran, nothing failed.
    assert.match(r.stdout, /ℹ pass [1-9]\d*/);
    assert.match(r.stdout, /ℹ fail 0/);
  },
);

function withoutTestContext(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _context, ...rest } = env;
  return rest;
}
