// End to end: the ManageSieve listener (RFC 5804) driven by Debian's sieve-connect (an independent client:
// STARTTLS, SASL PLAIN, then upload, list, activate, download, check, delete), and by raw dialogues with
// what hostile clients send. Scripts are validated on upload with line and column errors; the active
// script is refused deletion; quotas answer with their response codes. UTF-8 twins: a script named
// "Ferien ü" and the user jürgen@.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Tern } from './harness.ts';
import { runProcess, startTern } from './harness.ts';

const PASSWORD = 'sieve-secret-1';
const USERS = ['alice@example.test', 'jürgen@example.test'];
const haveSieveConnect = spawnSync('sieve-connect', ['--help'], { stdio: 'ignore' }).error === undefined;

const VACATION = `require ["vacation", "fileinto"];
if header :contains "subject" "urgent" { fileinto "INBOX"; stop; }
vacation :days 3 :subject "Away" "I am away until Monday.";
`;

describe(
  'ManageSieve with sieve-connect',
  { skip: !haveSieveConnect && 'sieve-connect is not installed' },
  () => {
    let tern: Tern;
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tern-sieve-'));
      tern = await startTern({
        users: USERS.map((address) => ({ address, password: PASSWORD })),
        managesieve: true,
        tables: { auth: { failure_delay_seconds: 0 }, sieve: { max_scripts: 3, max_script_bytes: 2048 } },
      });
    });
    after(async () => {
      await tern?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    const sieveConnect = (user: string, args: readonly string[]) =>
      runProcess(
        'sieve-connect',
        [
          '--server',
          '127.0.0.1',
          '--port',
          String(tern.ports.managesieve),
          '--user',
          user,
          '--authmech',
          'PLAIN',
          '--passwordfd',
          '0',
          '--notlsverify',
          ...args,
        ],
        { stdin: `${PASSWORD}\n`, timeoutMs: 20_000 },
      );

    for (const user of USERS) {
      test(`upload, list, activate, download and delete over STARTTLS (${user})`, async () => {
        const local = join(dir, 'vacation.sieve');
        await writeFile(local, VACATION);
        const name = user.startsWith('j') ? 'Ferien ü' : 'vacation';
        const up = await sieveConnect(user, ['--localsieve', local, '--remotesieve', name, '--upload']);
        assert.equal(up.code, 0, up.stdout + up.stderr);
        const act = await sieveConnect(user, ['--remotesieve', name, '--activate']);
        assert.equal(act.code, 0, act.stdout + act.stderr);
        const list = await sieveConnect(user, ['--list']);
        assert.equal(list.code, 0, list.stderr);
        assert.ok(list.stdout.includes(`"${name}" ACTIVE`), list.stdout);
        const back = join(dir, 'back.sieve');
        const down = await sieveConnect(user, ['--remotesieve', name, '--localsieve', back, '--download']);
        assert.equal(down.code, 0, down.stderr);
        assert.equal(await readFile(back, 'utf8'), VACATION, 'the script comes back byte for byte');
        const del = await sieveConnect(user, ['--remotesieve', name, '--delete']);
        assert.notEqual(del.code, 0, 'the active script cannot be deleted');
        assert.match(del.stdout + del.stderr, /ACTIVE|active/);
        const deact = await sieveConnect(user, ['--deactivate']);
        assert.equal(deact.code, 0, deact.stderr);
        const del2 = await sieveConnect(user, ['--remotesieve', name, '--delete']);
        assert.equal(del2.code, 0, del2.stdout + del2.stderr);
        const line = await tern.waitForLog(
          'the deletion',
          (l) => l.event === 'managesieve.script' && l['op'] === 'delete' && l['user'] === user,
        );
        assert.equal(line['name'], name);
      });
    }

    test('a script with an error is refused with its line and column; checkscript says the same', async () => {
      const bad = join(dir, 'bad.sieve');
      await writeFile(
        bad,
        'require "fileinto";\nif header :is "subject" "x" {\n  fileinto "Junk";\n  frobnicate;\n}\n',
      );
      const up = await sieveConnect('alice@example.test', [
        '--localsieve',
        bad,
        '--remotesieve',
        'bad',
        '--upload',
      ]);
      assert.notEqual(up.code, 0);
      assert.match(up.stdout + up.stderr, /line 4 column 3/);
      const check = await sieveConnect('alice@example.test', ['--localsieve', bad, '--checkscript']);
      assert.notEqual(check.code, 0);
      assert.match(check.stdout + check.stderr, /line 4 column 3/);
      const list = await sieveConnect('alice@example.test', ['--list']);
      assert.doesNotMatch(list.stdout, /bad/);
    });

    test('a wrong password is refused', async () => {
      const r = await runProcess(
        'sieve-connect',
        [
          '--server',
          '127.0.0.1',
          '--port',
          String(tern.ports.managesieve),
          '--user',
          'alice@example.test',
          '--authmech',
          'PLAIN',
          '--passwordfd',
          '0',
          '--notlsverify',
          '--list',
        ],
        { stdin: 'wrong\n', timeoutMs: 20_000 },
      );
      assert.notEqual(r.code, 0);
    });
  },
);

/** A raw dialogue: send `text` after the greeting, return everything read until `until` matches or 5 s. */
async function raw(port: number, text: string, until: RegExp): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  let got = '';
  let greeted = false;
  return new Promise((resolve, reject) => {
    const done = (): void => {
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 5000);
    socket.on('data', (d: Buffer) => {
      got += d.toString('utf8');
      if (!greeted && /\r\nOK[^\r\n]*\r\n/.test(got)) {
        greeted = true;
        got = '';
        socket.write(text);
        return;
      }
      if (greeted && until.test(got)) {
        clearTimeout(timer);
        done();
      }
    });
    socket.on('error', reject);
  });
}

describe('ManageSieve: what hostile and careless clients send', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [{ address: 'alice@example.test', password: PASSWORD }],
      managesieve: true,
      tables: { auth: { failure_delay_seconds: 0 }, sieve: { max_scripts: 1, max_script_bytes: 2048 } },
    });
  });
  after(() => tern?.stop());

  test('the greeting: the capabilities, SIEVE with the extensions, STARTTLS', async () => {
    const socket = connect({ host: '127.0.0.1', port: tern.ports.managesieve! });
    const greeting = await new Promise<string>((resolve) => {
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d.toString();
        if (/\r\nOK[^\r\n]*\r\n$/.test(got)) resolve(got);
      });
    });
    socket.destroy();
    assert.match(greeting, /^"IMPLEMENTATION" "Tern"\r\n/);
    assert.match(greeting, /"SIEVE" "[^"]*\bfileinto\b[^"]*\bvacation\b/);
    assert.match(greeting, /"STARTTLS"\r\n/);
    assert.match(
      greeting,
      /"SASL" "[^"]*PLAIN/,
      'PLAIN before TLS on loopback (allow_plaintext_auth_on_loopback)',
    );
  });

  test('script commands before AUTHENTICATE, unknown commands, bad literals', async () => {
    const r = await raw(
      tern.ports.managesieve!,
      'LISTSCRIPTS\r\nFROB\r\nPUTSCRIPT "x" {99999999999+}\r\n',
      /(BYE|NO)[^\r\n]*\r\n(?:.*\r\n)*.*(BYE|NO)[^\r\n]*\r\n(?:.*\r\n)*.*(BYE|NO)/,
    );
    const lines = r.split('\r\n').filter((l) => l !== '');
    assert.match(lines[0]!, /^NO/);
    assert.match(lines[1]!, /^NO/);
    assert.match(lines.at(-1)!, /^(NO|BYE)/);
  });

  test('quotas: a script too large gets QUOTA/MAXSIZE, one script too many QUOTA/MAXSCRIPTS', async () => {
    const auth = Buffer.from(`\0alice@example.test\0${PASSWORD}`).toString('base64');
    const big = 'keep;\r\n'.repeat(400);
    const r = await raw(
      tern.ports.managesieve!,
      `AUTHENTICATE "PLAIN" "${auth}"\r\n` +
        `PUTSCRIPT "big" {${Buffer.byteLength(big)}+}\r\n${big}\r\n` +
        `PUTSCRIPT "one" {6+}\r\nkeep;\n\r\n` +
        `PUTSCRIPT "two" {6+}\r\nkeep;\n\r\n` +
        'LOGOUT\r\n',
      /\r\nOK[^\r\n]*\r\n$/,
    );
    const status = r.split('\r\n').filter((l) => /^(OK|NO|BYE)/.test(l));
    assert.match(status[0]!, /^OK/, 'authenticated');
    assert.match(status[1]!, /^NO \(QUOTA\/MAXSIZE\)/);
    assert.match(status[2]!, /^OK/);
    assert.match(status[3]!, /^NO \(QUOTA\/MAXSCRIPTS\)/);
  });
});
