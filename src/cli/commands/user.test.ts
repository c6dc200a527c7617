import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Readable } from 'node:stream';
import { generate } from 'selfsigned';
import { systemClock } from '../../core/ports.ts';
import type { Directory } from '../../directory/directory.ts';
import { verifyPassword } from '../../directory/password.ts';
import { openDirectory, openStore } from '../../main.ts';
import { deriveScramSecrets, parseScramSecrets } from '../../protocol/sasl/index.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

interface UserRow {
  address: string;
  hasPassword: boolean;
  hasScram: boolean;
  certificates: number;
  created: string;
  quota: { storageBytes: number | null; messages: number | null } | null;
}

/** Open the sandbox's directory as the server would, run fn, close it. */
async function withDirectory<T>(box: Sandbox, fn: (d: Directory) => Promise<T>): Promise<T> {
  const directory = await openDirectory(box.config());
  try {
    return await fn(directory);
  } finally {
    await directory.close();
  }
}

/** True when a stored SCRAM-SHA-256 secret accepts password: the keys re-derived from its salt match. */
function scramAccepts(stored: string, password: string): boolean {
  const parsed = parseScramSecrets(stored);
  assert.ok(parsed.ok, stored);
  const { salt, iterations, storedKey, serverKey } = parsed.value;
  const again = deriveScramSecrets(password, salt, iterations);
  return Buffer.from(again.storedKey).equals(storedKey) && Buffer.from(again.serverKey).equals(serverKey);
}

describe('tern user', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
  });
  after(() => box.remove());

  async function users(): Promise<UserRow[]> {
    const r = await box.tern(['user', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as UserRow[];
  }

  async function storedHash(address: string): Promise<string | null> {
    return withDirectory(box, (d) => d.getPasswordHash(address));
  }

  async function storedScram(address: string): Promise<string | null> {
    return withDirectory(box, async (d) => (await d.getCredentials(address))?.scram ?? null);
  }

  test('user list on an empty directory: "no users", and [] as JSON', async () => {
    await withDirectory(box, () => Promise.resolve()); // user list only reads: the directory must exist
    assert.equal((await box.tern(['user', 'list'])).stdout, 'no users\n');
    assert.deepEqual(await users(), []);
  });

  test('user add --password-stdin stores a hash of the first line of stdin', async () => {
    const r = await box.tern(['user', 'add', 'Alice@Example.TEST', '--password-stdin'], {
      stdin: 'open sesame\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'added user alice@example.test\n');
    const hash = await storedHash('alice@example.test');
    assert.ok(hash !== null && !hash.includes('open sesame'));
    assert.equal(await verifyPassword('open sesame', hash), true);
    assert.equal(await verifyPassword('open sesame\n', hash), false);
    const scram = await storedScram('alice@example.test');
    assert.ok(scram !== null && scram.startsWith('SCRAM-SHA-256$4096:'), String(scram));
    assert.equal(scramAccepts(scram, 'open sesame'), true);
    assert.equal(scramAccepts(scram, 'open sesamE'), false);
    const [row] = await users();
    assert.equal(row?.address, 'alice@example.test');
    assert.equal(row?.hasPassword, true);
    assert.equal(row?.hasScram, true);
    assert.equal(row?.certificates, 0);
    assert.ok(Math.abs(Date.parse(row.created) - Date.now()) < 60_000, row.created);
  });

  test('user add without --password-stdin on a pipe adds a user without a password', async () => {
    const r = await box.tern(['user', 'add', 'bob@localhost'], { stdin: 'ignored\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^added user bob@localhost \(no password: cannot log in\)\n$/);
    assert.equal(await storedHash('bob@localhost'), null);
    assert.equal(await storedScram('bob@localhost'), null);
    assert.deepEqual(
      (await users()).map((u) => [u.address, u.hasPassword, u.hasScram]),
      [
        ['alice@example.test', true, true],
        ['bob@localhost', false, false],
      ],
    );
  });

  test('adding an existing user fails with a message and changes nothing', async () => {
    const before = await storedHash('alice@example.test');
    const r = await box.tern(['user', 'add', 'ALICE@example.test', '--password-stdin'], { stdin: 'other\n' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tern: user alice@example.test already exists\n');
    assert.equal(r.stdout, '');
    assert.equal(await storedHash('alice@example.test'), before);
  });

  test('users must be in a local domain and have a valid address', async () => {
    const remote = await box.tern(['user', 'add', 'carol@example.org']);
    assert.equal(remote.code, 1);
    assert.equal(
      remote.stderr,
      'tern: example.org is not a local domain (local domains: example.test, localhost); ' +
        'add it to local_domains in the config\n',
    );
    const bad = await box.tern(['user', 'add', 'not-an-address']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "tern: 'not-an-address' is not a valid address (expected local@domain)\n");
    assert.equal((await users()).length, 2);
  });

  test('an empty password on stdin is refused', async () => {
    const r = await box.tern(['user', 'add', 'dave@example.test', '--password-stdin'], { stdin: '\n' });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tern: empty password on standard input\n');
    assert.equal((await users()).length, 2);
  });

  test('user passwd replaces the password; on a pipe it needs --password-stdin', async () => {
    const noFlag = await box.tern(['user', 'passwd', 'bob@localhost'], { stdin: 'x\n' });
    assert.equal(noFlag.code, 1);
    assert.match(noFlag.stderr, /--password-stdin/);
    const r = await box.tern(['user', 'passwd', 'bob@localhost', '--password-stdin'], {
      stdin: 'new pass\r\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'password set for bob@localhost\n');
    assert.equal(await verifyPassword('new pass', (await storedHash('bob@localhost'))!), true);
    assert.equal(scramAccepts((await storedScram('bob@localhost'))!, 'new pass'), true);
    // A second change replaces both: the old password passes neither check.
    const before = await storedScram('bob@localhost');
    assert.equal(
      (await box.tern(['user', 'passwd', 'bob@localhost', '--password-stdin'], { stdin: 'newer\n' })).code,
      0,
    );
    const after = (await storedScram('bob@localhost'))!;
    assert.notEqual(after, before);
    assert.equal(scramAccepts(after, 'newer'), true);
    assert.equal(scramAccepts(after, 'new pass'), false);
    assert.equal(await verifyPassword('new pass', (await storedHash('bob@localhost'))!), false);
    const ghost = await box.tern(['user', 'passwd', 'ghost@localhost', '--password-stdin'], { stdin: 'x\n' });
    assert.equal(ghost.code, 1);
    assert.equal(ghost.stderr, 'tern: no such user: ghost@localhost\n');
  });

  test('user list text output: one aligned line per user', async () => {
    const r = await box.tern(['user', 'list']);
    assert.equal(r.code, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^alice@example\.test {2}password {2}\d{4}-/);
    assert.match(lines[1]!, /^bob@localhost {7}password {2}\d{4}-/);
  });

  test('user del removes the user; deleting again is an error', async () => {
    const r = await box.tern(['user', 'del', 'bob@LOCALHOST']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'deleted user bob@localhost\nits mailbox is kept (0 messages): adding bob@localhost again gives it back\n',
    );
    assert.deepEqual(
      (await users()).map((u) => u.address),
      ['alice@example.test'],
    );
    const again = await box.tern(['user', 'del', 'bob@localhost']);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'tern: no such user: bob@localhost\n');
  });
});

describe('tern user del: what becomes of the mail', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    for (const u of ['carol@example.test', 'dave@example.test', 'jürgen@example.test']) {
      assert.equal((await box.tern(['user', 'add', u])).code, 0);
    }
    for (const [alias, target] of [
      ['team@example.test', 'carol@example.test'],
      ['team@example.test', 'dave@example.test'],
      ['sales@example.test', 'carol@example.test'],
      ['日本@example.test', 'jürgen@example.test'],
    ]) {
      assert.equal((await box.tern(['alias', 'add', alias!, target!])).code, 0);
    }
    const store = await openStore(box.config(), systemClock);
    try {
      for (const [mailbox, key] of [
        ['INBOX', 'q1/0'],
        ['INBOX', 'q2/0'],
        ['Junk', 'q3/0'],
      ] as const) {
        await store.deliver({
          user: 'carol@example.test',
          mailbox,
          internalDateMs: Date.UTC(2026, 0, 15),
          flags: [],
          deliveryKey: key,
          summary: { from: 'x@remote.example', subject: key, date: '' },
          content: Readable.from([Buffer.from(`Subject: ${key}\r\n\r\nbody\r\n`)]),
        });
      }
    } finally {
      await store.close();
    }
  });
  after(() => box.remove());

  test('names the aliases that still list the user, and keeps its mailbox (counted truthfully)', async () => {
    const r = await box.tern(['user', 'del', 'carol@example.test']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'deleted user carol@example.test\n' +
        'its mailbox is kept (3 messages): adding carol@example.test again gives it back\n' +
        'aliases that still list carol@example.test: sales@example.test, team@example.test ' +
        '(remove with: tern alias del ALIAS carol@example.test)\n',
    );
    assert.equal(r.stderr, '');
    // Kept means kept: the user added again reads its old mail.
    assert.equal((await box.tern(['user', 'add', 'carol@example.test'])).code, 0);
    const list = await box.tern(['mailbox', 'list', 'carol@example.test', '--json']);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { subject: string }[]).map((m) => m.subject),
      ['q1/0', 'q2/0'],
    );
  });

  test('a UTF-8 user: its alias is named too', async () => {
    const r = await box.tern(['user', 'del', 'jürgen@example.test']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'deleted user jürgen@example.test\n' +
        'its mailbox is kept (0 messages): adding jürgen@example.test again gives it back\n' +
        'aliases that still list jürgen@example.test: 日本@example.test ' +
        '(remove with: tern alias del ALIAS jürgen@example.test)\n',
    );
  });

  test('deleting the postmaster says that tern serve adds it again', async () => {
    assert.equal((await box.tern(['user', 'add', 'Postmaster@example.test'])).code, 0);
    const r = await box.tern(['user', 'del', 'postmaster@example.test']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /\npostmaster@example\.test is the postmaster \(RFC 5321 requires it\): tern serve adds it again at start\n$/,
    );
  });
});

const FP = '0123456789abcdef'.repeat(4);
const FP_COLONS = FP.toUpperCase().match(/../g)!.join(':');

describe('tern user cert', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    for (const u of ['alice@example.test', 'bob@example.test']) {
      assert.equal((await box.tern(['user', 'add', u])).code, 0);
    }
  });
  after(() => box.remove());

  test('--fingerprint maps a certificate (colon form accepted, stored as plain hex)', async () => {
    const r = await box.tern(['user', 'cert', 'Alice@example.test', '--fingerprint', FP_COLONS]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `mapped certificate ${FP} to alice@example.test\n`);
    assert.equal(await withDirectory(box, (d) => d.findUserByCertificate(FP)), 'alice@example.test');
  });

  test('a certificate maps to one user only; bad fingerprints and unknown users are refused', async () => {
    const again = await box.tern(['user', 'cert', 'alice@example.test', '--fingerprint', FP]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, `tern: certificate ${FP} is already mapped to alice@example.test\n`);
    const other = await box.tern(['user', 'cert', 'bob@example.test', '--fingerprint', FP]);
    assert.equal(other.code, 1);
    assert.equal(
      other.stderr,
      `tern: certificate ${FP} is already mapped to another user (alice@example.test)\n`,
    );
    const bad = await box.tern(['user', 'cert', 'bob@example.test', '--fingerprint', 'AB:CD']);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      "tern: 'AB:CD' is not a SHA-256 fingerprint (expected 64 hex digits, colons allowed)\n",
    );
    const ghost = await box.tern(['user', 'cert', 'ghost@example.test', '--fingerprint', 'ee'.repeat(32)]);
    assert.equal(ghost.code, 1);
    assert.equal(ghost.stderr, 'tern: no such user: ghost@example.test\n');
    assert.deepEqual(
      (await withDirectory(box, (d) => d.listCertificates())).map((c) => c.address),
      ['alice@example.test'],
    );
  });

  test('--cert-file computes the SHA-256 fingerprint of a PEM certificate', async () => {
    const { cert } = await generate([{ name: 'commonName', value: 'bob' }], { keySize: 2048 });
    await writeFile(join(box.dir, 'bob.pem'), cert);
    const der = Buffer.from(cert.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const expected = createHash('sha256').update(der).digest('hex');
    // Relative to where tern runs.
    const r = await box.tern(['user', 'cert', 'bob@example.test', '--cert-file', 'bob.pem']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `mapped certificate ${expected} to bob@example.test\n`);
    assert.equal(await withDirectory(box, (d) => d.findUserByCertificate(expected)), 'bob@example.test');

    const missing = await box.tern(['user', 'cert', 'bob@example.test', '--cert-file', 'nope.pem']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'tern: cannot read nope.pem: ENOENT\n');
    await writeFile(join(box.dir, 'junk.pem'), 'not a certificate\n');
    const junk = await box.tern(['user', 'cert', 'bob@example.test', '--cert-file', 'junk.pem']);
    assert.equal(junk.code, 1);
    assert.equal(junk.stderr, 'tern: junk.pem does not hold an X.509 certificate (PEM or DER)\n');
  });

  test('exactly one of --fingerprint and --cert-file, else a usage error', async () => {
    const both = await box.tern([
      'user',
      'cert',
      'bob@example.test',
      '--fingerprint',
      FP,
      '--cert-file',
      'x',
    ]);
    assert.equal(both.code, 2);
    assert.match(
      both.stderr,
      /^tern: give the certificate with either --fingerprint or --cert-file\nusage: tern user cert /,
    );
    const neither = await box.tern(['user', 'cert', 'bob@example.test']);
    assert.equal(neither.code, 2);
    const noValue = await box.tern(['user', 'cert', 'bob@example.test', '--fingerprint']);
    assert.equal(noValue.code, 2);
    const noAddress = await box.tern(['user', 'cert', '--fingerprint', FP]);
    assert.equal(noAddress.code, 2);
    assert.match(noAddress.stderr, /^tern: missing ADDRESS\n/);
  });

  test("--list shows one user's mappings or all of them, as text or JSON; user list counts them", async () => {
    const one = await box.tern(['user', 'cert', 'alice@example.test', '--list']);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, new RegExp(`^alice@example\\.test  ${FP}  \\d{4}-\\d\\d-\\d\\dT[^\\n]+\\n$`));
    const all = await box.tern(['user', 'cert', '--list', '--json']);
    assert.equal(all.code, 0, all.stderr);
    const rows = JSON.parse(all.stdout) as { address: string; fingerprint: string; created: string }[];
    assert.deepEqual(
      rows.map((r) => r.address),
      ['alice@example.test', 'bob@example.test'],
    );
    assert.equal(rows[0]?.fingerprint, FP);
    assert.ok(Math.abs(Date.parse(rows[0].created) - Date.now()) < 60_000);
    const listed = JSON.parse((await box.tern(['user', 'list', '--json'])).stdout) as UserRow[];
    assert.deepEqual(
      listed.map((u) => [u.address, u.certificates]),
      [
        ['alice@example.test', 1],
        ['bob@example.test', 1],
      ],
    );
    const text = await box.tern(['user', 'list']);
    assert.match(text.stdout, /^alice@example\.test  no-login  \S+  1 certificate\n/);
    const bad = await box.tern(['user', 'cert', 'alice@example.test', '--list', '--fingerprint', FP]);
    assert.equal(bad.code, 2);
  });

  test('--delete removes a mapping; removing one that is not there fails', async () => {
    const r = await box.tern(['user', 'cert', 'alice@example.test', '--delete', '--fingerprint', FP_COLONS]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `removed certificate ${FP} from alice@example.test\n`);
    assert.equal(await withDirectory(box, (d) => d.findUserByCertificate(FP)), null);
    const again = await box.tern(['user', 'cert', 'alice@example.test', '--delete', '--fingerprint', FP]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, `tern: no certificate ${FP} for alice@example.test\n`);
    assert.equal(
      (await box.tern(['user', 'cert', 'alice@example.test', '--list'])).stdout,
      'no certificates\n',
    );
  });

  test("user del takes the user's certificates with it", async () => {
    assert.equal((await box.tern(['user', 'del', 'bob@example.test'])).code, 0);
    assert.equal((await box.tern(['user', 'cert', '--list'])).stdout, 'no certificates\n');
  });
});

describe('tern user sendas', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    assert.equal((await box.tern(['user', 'add', 'alice@example.test'])).code, 0);
  });
  after(() => box.remove());

  test('add grants an address or a whole domain, and the directory honours it', async () => {
    const one = await box.tern(['user', 'sendas', 'alice@example.test', 'add', 'Boss@Example.TEST']);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, 'alice@example.test may now send as boss@example.test\n');
    const domain = await box.tern(['user', 'sendas', 'alice@example.test', 'add', '@Partner.Example']);
    assert.equal(domain.code, 0, domain.stderr);
    assert.equal(domain.stdout, 'alice@example.test may now send as @partner.example\n');
    await withDirectory(box, async (d) => {
      assert.equal(await d.ownsAddress('alice@example.test', 'boss@example.test'), true);
      assert.equal(await d.ownsAddress('alice@example.test', 'anyone@partner.example'), true);
      assert.equal(await d.ownsAddress('alice@example.test', 'other@example.test'), false);
    });
  });

  test('list shows the grants as text or JSON', async () => {
    const text = await box.tern(['user', 'sendas', 'alice@example.test', 'list']);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, '@partner.example\nboss@example.test\n');
    const json = await box.tern(['user', 'sendas', 'alice@example.test', 'list', '--json']);
    const rows = JSON.parse(json.stdout) as { user: string; pattern: string; created: string }[];
    assert.deepEqual(
      rows.map((r) => [r.user, r.pattern]),
      [
        ['alice@example.test', '@partner.example'],
        ['alice@example.test', 'boss@example.test'],
      ],
    );
    assert.ok(!Number.isNaN(Date.parse(rows[0]!.created)));
  });

  test('duplicates, bad patterns, unknown users and actions are refused', async () => {
    const dup = await box.tern(['user', 'sendas', 'alice@example.test', 'add', 'boss@example.test']);
    assert.equal(dup.code, 1);
    assert.equal(dup.stderr, 'tern: alice@example.test may already send as boss@example.test\n');
    const bad = await box.tern(['user', 'sendas', 'alice@example.test', 'add', '@not a domain']);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      "tern: '@not a domain' is not a valid send-as pattern (expected local@domain or @domain)\n",
    );
    const ghost = await box.tern(['user', 'sendas', 'ghost@example.test', 'add', 'boss@example.test']);
    assert.equal(ghost.code, 1);
    assert.equal(ghost.stderr, 'tern: no such user: ghost@example.test\n');
    const action = await box.tern(['user', 'sendas', 'alice@example.test', 'grant', 'x@example.test']);
    assert.equal(action.code, 2);
    assert.match(action.stderr, /^tern: unknown action 'grant' \(expected add, del or list\)\n/);
    const noPattern = await box.tern(['user', 'sendas', 'alice@example.test', 'add']);
    assert.equal(noPattern.code, 2);
    assert.match(noPattern.stderr, /^tern: missing PATTERN\n/);
    const noAction = await box.tern(['user', 'sendas', 'alice@example.test']);
    assert.equal(noAction.code, 2);
    assert.match(noAction.stderr, /^tern: missing add, del or list\n/);
  });

  test('del removes one grant; removing a missing one fails', async () => {
    const r = await box.tern(['user', 'sendas', 'alice@example.test', 'del', '@PARTNER.example']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'alice@example.test may no longer send as @partner.example\n');
    const again = await box.tern(['user', 'sendas', 'alice@example.test', 'del', '@partner.example']);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'tern: alice@example.test has no send-as grant for @partner.example\n');
    assert.equal(
      await withDirectory(box, (d) => d.ownsAddress('alice@example.test', 'anyone@partner.example')),
      false,
    );
    assert.equal(
      (await box.tern(['user', 'sendas', 'alice@example.test', 'list'])).stdout,
      'boss@example.test\n',
    );
  });
});

describe('tern user policy', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    assert.equal((await box.tern(['user', 'add', 'alice@example.test'])).code, 0);
  });
  after(() => box.remove());

  test('without options it shows the policy: sender check on, global limits', async () => {
    const r = await box.tern(['user', 'policy', 'alice@example.test']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'sender-check             on\nmax-messages-per-hour    default\nmax-recipients-per-hour  default\n',
    );
  });

  test('options change only what they name, and the directory keeps it', async () => {
    const r = await box.tern([
      'user',
      'policy',
      'Alice@example.test',
      '--sender-check',
      'off',
      '--max-messages-per-hour',
      '50',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      address: 'alice@example.test',
      senderCheck: false,
      maxMessagesPerHour: 50,
      maxRecipientsPerHour: null,
    });
    assert.equal(
      (await box.tern(['user', 'policy', 'alice@example.test', '--max-recipients-per-hour', '0'])).code,
      0,
    );
    assert.deepEqual(await withDirectory(box, (d) => d.getUserPolicy('alice@example.test')), {
      senderCheck: false,
      maxMessagesPerHour: 50,
      maxRecipientsPerHour: 0,
    });
    const reset = await box.tern([
      'user',
      'policy',
      'alice@example.test',
      '--max-messages-per-hour',
      'default',
      '--sender-check',
      'on',
    ]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal(
      reset.stdout,
      'sender-check             on\nmax-messages-per-hour    default\nmax-recipients-per-hour  0\n',
    );
  });

  test('bad values are usage errors and change nothing; unknown users fail', async () => {
    for (const [option, value] of [
      ['--sender-check', 'yes'],
      ['--max-messages-per-hour', '-1'],
      ['--max-messages-per-hour', '1.5'],
      ['--max-recipients-per-hour', 'lots'],
      ['--max-recipients-per-hour', ''],
    ] as const) {
      // The = form: parseArgs itself refuses a separate value that starts with a dash.
      const r = await box.tern(['user', 'policy', 'alice@example.test', `${option}=${value}`]);
      assert.equal(r.code, 2, `${option} ${value}`);
      assert.match(r.stderr, new RegExp(`^tern: ${option}: expected `));
    }
    assert.equal(
      (await withDirectory(box, (d) => d.getUserPolicy('alice@example.test'))).maxRecipientsPerHour,
      0,
    );
    const ghost = await box.tern(['user', 'policy', 'ghost@example.test', '--sender-check', 'off']);
    assert.equal(ghost.code, 1);
    assert.equal(ghost.stderr, 'tern: no such user: ghost@example.test\n');
  });
});

describe('tern user quota', () => {
  let box: Sandbox;
  const GIB = 1024 ** 3;
  before(async () => {
    // A default for everyone from the config: 1 GiB, messages unlimited.
    box = await createSandbox(
      'local_domains = ["example.test"]\n[limits]\nmailbox_quota_bytes = 1073741824\n[log]\nlevel = "warn"\n',
    );
    for (const user of ['alice@example.test', 'jürgen@example.test', '日本@example.test']) {
      assert.equal((await box.tern(['user', 'add', user])).code, 0);
    }
  });
  after(() => box.remove());

  for (const user of ['alice@example.test', 'jürgen@example.test', '日本@example.test']) {
    test(`${user}: without options shows the config's default and no usage (no store yet)`, async () => {
      const r = await box.tern(['user', 'quota', user.toUpperCase()]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'resource  used  limit\nstorage   0 B   1 GiB\nmessages  0     unlimited\n');
      const json = await box.tern(['user', 'quota', user, '--json']);
      assert.deepEqual(JSON.parse(json.stdout), {
        address: user,
        storageBytes: GIB,
        messages: null,
        usage: { messages: 0, bytes: 0 },
      });
    });
  }

  test("--storage and --messages set the user's own; user list --json shows the limits", async () => {
    const r = await box.tern([
      'user',
      'quota',
      'jürgen@example.test',
      '--storage',
      '500M',
      '--messages',
      '1000',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      address: 'jürgen@example.test',
      storageBytes: 500 * 1024 ** 2,
      messages: 1000,
      usage: { messages: 0, bytes: 0 },
    });
    assert.deepEqual(await withDirectory(box, (d) => d.getQuota('jürgen@example.test')), {
      storageBytes: 500 * 1024 ** 2,
      messages: 1000,
    });
    const list = await box.tern(['user', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as UserRow[];
    assert.deepEqual(
      rows.map((u) => [u.address, u.quota]),
      [
        ['alice@example.test', { storageBytes: GIB, messages: null }],
        ['jürgen@example.test', { storageBytes: 500 * 1024 ** 2, messages: 1000 }],
        ['日本@example.test', { storageBytes: GIB, messages: null }],
      ],
    );
    // The fields that were there before are all still there.
    assert.deepEqual(Object.keys(rows[0]!).sort(), [
      'address',
      'certificates',
      'created',
      'hasPassword',
      'hasScram',
      'quota',
    ]);
  });

  test("unlimited lifts a limit over the default, default brings the config's back", async () => {
    const r = await box.tern([
      'user',
      'quota',
      '日本@example.test',
      '--storage',
      'unlimited',
      '--messages',
      '0',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'resource  used  limit\nstorage   0 B   unlimited\nmessages  0     unlimited\n');
    const back = await box.tern(['user', 'quota', '日本@example.test', '--storage', 'default', '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(JSON.parse(back.stdout), {
      address: '日本@example.test',
      storageBytes: GIB,
      messages: null,
      usage: { messages: 0, bytes: 0 },
    });
  });

  test('usage is what the mailbox store holds for the user, over its folders', async () => {
    const store = await openStore(box.config(), systemClock);
    const raw = Buffer.from('Subject: Grüße\r\n\r\n日本語のメール\r\n', 'utf8');
    try {
      for (const [i, mailbox] of ['INBOX', 'Junk'].entries()) {
        await store.deliver({
          user: 'alice@example.test',
          mailbox,
          internalDateMs: Date.UTC(2026, 0, 15),
          flags: [],
          deliveryKey: `quota-${i}`,
          summary: { from: '', subject: 'Grüße', date: '' },
          content: Readable.from([raw]),
        });
      }
    } finally {
      await store.close();
    }
    const r = await box.tern(['user', 'quota', 'alice@example.test', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { usage: unknown }).usage, {
      messages: 2,
      bytes: 2 * raw.length,
    });
    const text = await box.tern(['user', 'quota', 'alice@example.test']);
    assert.equal(raw.length, 43);
    assert.equal(text.stdout, 'resource  used  limit\nstorage   86 B  1 GiB\nmessages  2     unlimited\n');
    // Another user's mail is not counted.
    const other = await box.tern(['user', 'quota', 'jürgen@example.test', '--json']);
    assert.deepEqual((JSON.parse(other.stdout) as { usage: unknown }).usage, { messages: 0, bytes: 0 });
  });

  test('bad values are usage errors and change nothing; unknown users fail', async () => {
    for (const [option, value] of [
      ['--storage', '-1'],
      ['--storage', '2X'],
      ['--storage', 'lots'],
      ['--messages', '1.5'],
      ['--messages', '10k'],
      ['--messages', ''],
    ] as const) {
      const r = await box.tern(['user', 'quota', 'jürgen@example.test', `${option}=${value}`]);
      assert.equal(r.code, 2, `${option} ${value}`);
      assert.match(r.stderr, new RegExp(`^tern: ${option}: expected `));
    }
    assert.deepEqual(await withDirectory(box, (d) => d.getQuota('jürgen@example.test')), {
      storageBytes: 500 * 1024 ** 2,
      messages: 1000,
    });
    for (const args of [['ghost@example.test'], ['ghost@example.test', '--messages', '5']]) {
      const ghost = await box.tern(['user', 'quota', ...args]);
      assert.equal(ghost.code, 1);
      assert.equal(ghost.stderr, 'tern: no such user: ghost@example.test\n');
    }
  });
});

describe('tern help user', () => {
  test('lists the new commands; a long command line puts its summary on the next line, aligned', async () => {
    const box = await createSandbox();
    try {
      const r = await box.tern(['help', 'user'], { withConfig: false });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split('\n');
      const summaryColumn = lines.find((l) => l.startsWith('  tern user list'))!.indexOf('list local users');
      assert.ok(summaryColumn > 0);
      // All three take many options: each summary sits below its command, in the summary column.
      for (const [name, summary] of [
        ['cert', 'map a TLS client certificate'],
        ['sendas', 'let a user send as'],
        ['policy', "show or change a user's sender check"],
      ] as const) {
        const i = lines.findIndex((l) => l.startsWith(`  tern user ${name} ADDRESS`));
        assert.ok(i >= 0, name);
        assert.equal(lines[i + 1]!.indexOf(summary), summaryColumn, name);
        assert.equal(lines[i + 1]!.search(/\S/), summaryColumn, name);
      }
    } finally {
      await box.remove();
    }
  });
});
