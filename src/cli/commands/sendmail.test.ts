// `tern sendmail`: the command line in every form callers write it, the framing of standard input (dots,
// line ends, fragmentation), -t's recipients and the header completion, the sender rule, and whole
// submissions into a real SQLite queue and directory in a temporary data_dir (the command object run
// with a context built here while it is not yet registered in main.ts; through `tern` once it is).

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Config } from '../../config/config.ts';
import { parseMailbox } from '../../core/address.ts';
import { systemClock } from '../../core/ports.ts';
import { createLogger } from '../../net/logger.ts';
import type { Queue } from '../../queue/queue.ts';
import { openDirectory, openQueue } from '../../services.ts';
import type { CommandContext, OpenedServices } from '../command.ts';
import { COMMANDS } from '../main.ts';
import { createSandbox, type Sandbox } from '../test-harness.ts';
import {
  completeHeader,
  EX,
  formatDisplayName,
  headerRecipients,
  InputFramer,
  originDomain,
  parseSendmailArgs,
  qualify,
  senderAllowed,
  sendmail,
  type CallerIdentity,
  type LinePiece,
  type SendmailArgs,
} from './sendmail.ts';

function parsed(argv: readonly string[]): SendmailArgs {
  const r = parseSendmailArgs(argv);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value;
}

function parseError(argv: readonly string[]): string {
  const r = parseSendmailArgs(argv);
  assert.ok(!r.ok, 'expected a usage error');
  return r.error;
}

describe('parseSendmailArgs', () => {
  test('no options: deliver mode, dots end the message, recipients as written', () => {
    const a = parsed(['bob@example.test', 'root']);
    assert.equal(a.mode, 'deliver');
    assert.equal(a.dotEnds, true);
    assert.equal(a.extractRecipients, false);
    assert.deepEqual(a.recipients, ['bob@example.test', 'root']);
  });

  test('UTF-8 recipients pass through as written', () => {
    assert.deepEqual(parsed(['jürgen@example.test', '日本@例え.test']).recipients, [
      'jürgen@example.test',
      '日本@例え.test',
    ]);
  });

  test('-t -i, -ti clustered, -it, and PHP default "-t -i"', () => {
    for (const argv of [['-t', '-i'], ['-ti'], ['-it']]) {
      const a = parsed(argv);
      assert.equal(a.extractRecipients, true, argv.join(' '));
      assert.equal(a.dotEnds, false, argv.join(' '));
    }
  });

  test('-oi and -o i turn dot handling off; other -o options are ignored', () => {
    assert.equal(parsed(['-oi']).dotEnds, false);
    assert.equal(parsed(['-o', 'i']).dotEnds, false);
    const a = parsed(['-oem', '-odb', '-oA/etc/aliases', 'bob@example.test']);
    assert.equal(a.dotEnds, true);
    assert.deepEqual(a.ignored, ['-oem', '-odb', '-oA/etc/aliases']);
    assert.deepEqual(a.recipients, ['bob@example.test']);
  });

  test('-f ADDR, -fADDR, -r ADDR, -f "<>" and -f ""', () => {
    assert.equal(parsed(['-f', 'alice@example.test']).sender, 'alice@example.test');
    assert.equal(parsed(['-falice@example.test']).sender, 'alice@example.test');
    assert.equal(parsed(['-r', 'alice@example.test']).sender, 'alice@example.test');
    assert.equal(parsed(['-f', '<>']).sender, '<>');
    assert.equal(parsed(['-f', '']).sender, '');
  });

  test('-f with a UTF-8 address, both forms', () => {
    assert.equal(parsed(['-f', 'jürgen@example.test']).sender, 'jürgen@example.test');
    assert.equal(parsed(['-f日本@example.test']).sender, '日本@example.test');
  });

  test('-F "Full Name" and -FName; a value that looks like an option is still the value', () => {
    assert.equal(parsed(['-F', 'Cron Daemon']).fullName, 'Cron Daemon');
    assert.equal(parsed(['-FJürgen Müller']).fullName, 'Jürgen Müller');
    assert.equal(parsed(['-F', '-t']).fullName, '-t');
    assert.equal(parsed(['-F', '-t']).extractRecipients, false);
  });

  test('a value option ends its cluster: -tif is -t -i -f NEXT', () => {
    const a = parsed(['-tif', 'alice@example.test', 'bob@example.test']);
    assert.equal(a.extractRecipients, true);
    assert.equal(a.dotEnds, false);
    assert.equal(a.sender, 'alice@example.test');
    assert.deepEqual(a.recipients, ['bob@example.test']);
  });

  test('-bm -bs -bv -bp -bi -I -q select the mode', () => {
    assert.equal(parsed(['-bm']).mode, 'deliver');
    assert.equal(parsed(['-bs']).mode, 'smtp');
    assert.equal(parsed(['-b', 's']).mode, 'smtp');
    assert.equal(parsed(['-bv', 'bob@example.test']).mode, 'verify');
    assert.deepEqual(parsed(['-bv', 'bob@example.test', '日本@example.test']).recipients, [
      'bob@example.test',
      '日本@example.test',
    ]);
    assert.equal(parsed(['-bp']).mode, 'print-queue');
    assert.equal(parsed(['-bi']).mode, 'rebuild-aliases');
    assert.equal(parsed(['-I']).mode, 'rebuild-aliases');
    assert.equal(parsed(['-q']).mode, 'flush-queue');
  });

  test('-bd, -q30m, unknown modes and unknown letters are usage errors', () => {
    assert.match(parseError(['-bd']), /tern serve/);
    assert.match(parseError(['-q30m']), /tern serve/);
    assert.match(parseError(['-bz']), /not supported/);
    assert.match(parseError(['-Z']), /unknown option -Z/);
    assert.match(parseError(['-tZ']), /unknown option -Z/);
  });

  test('an option without its value is a usage error', () => {
    assert.match(parseError(['-f']), /-f needs a value/);
    assert.match(parseError(['-t', '-F']), /-F needs a value/);
  });

  test('-- ends options; the first non-option word ends them too (POSIX getopt, as Postfix)', () => {
    assert.deepEqual(parsed(['-t', '--', '-odd@example.test']).recipients, ['-odd@example.test']);
    const a = parsed(['bob@example.test', '-t']);
    assert.equal(a.extractRecipients, false);
    assert.deepEqual(a.recipients, ['bob@example.test', '-t']);
  });

  test('-N, -R, -V set DSN parameters; bad values are usage errors', () => {
    assert.deepEqual(parsed(['-N', 'success,delay']).notify, ['SUCCESS', 'DELAY']);
    assert.deepEqual(parsed(['-Nnever']).notify, []);
    assert.equal(parsed(['-R', 'hdrs']).ret, 'HDRS');
    assert.equal(parsed(['-V', 'env-1']).envid, 'env-1');
    assert.match(parseError(['-N', 'sometimes']), /-N/);
    assert.match(parseError(['-R', 'half']), /-R/);
    assert.match(parseError(['-V', 'ümlaut']), /-V/);
  });

  test('ignored no-value letters (-G -U -m -n -x) are accepted', () => {
    assert.deepEqual(parsed(['-GUmnx', 'bob@example.test']).ignored, ['-G', '-U', '-m', '-n', '-x']);
  });
});

function frame(chunks: readonly (string | Buffer)[], dotEnds: boolean): { text: string; done: boolean } {
  const f = new InputFramer(dotEnds);
  const pieces: LinePiece[] = [];
  for (const c of chunks) pieces.push(...f.feed(Buffer.from(c)));
  pieces.push(...f.finish());
  const text = Buffer.concat(
    pieces.map((p) => (p.eol ? Buffer.concat([p.bytes, Buffer.from('\r\n')]) : p.bytes)),
  );
  return { text: text.toString('utf8'), done: f.done };
}

describe('InputFramer', () => {
  test('LF lines become CRLF lines; CRLF stays; a last line without LF gets CRLF', () => {
    assert.equal(frame(['a\nb\r\nc'], true).text, 'a\r\nb\r\nc\r\n');
  });

  test('a lone "." ends the message (without -i); what follows is not read', () => {
    const r = frame(['Subject: x\n\nbody\n.\nnot this\n'], true);
    assert.equal(r.text, 'Subject: x\r\n\r\nbody\r\n');
    assert.equal(r.done, true);
    assert.equal(frame(['body\r\n.\r\nafter'], true).text, 'body\r\n');
    assert.equal(frame(['body\n.'], true).text, 'body\r\n');
  });

  test('with -i a lone "." is content; ".." and ". " never end the message', () => {
    assert.equal(frame(['body\n.\nmore\n'], false).text, 'body\r\n.\r\nmore\r\n');
    assert.equal(frame(['..\n. \n.x\n'], true).text, '..\r\n. \r\n.x\r\n');
  });

  test('UTF-8 passes through byte for byte', () => {
    assert.equal(
      frame(['To: jürgen@example.test\nSubject: 日本\n\nGrüße\n'], true).text,
      'To: jürgen@example.test\r\nSubject: 日本\r\n\r\nGrüße\r\n',
    );
  });

  test('a bare CR inside a line becomes a line end (no bare CR reaches the queue)', () => {
    const r = frame(['a\rb\n\r.\r\n'], true);
    assert.equal(r.text, 'a\r\nb\r\n\r\n.\r\n');
    assert.ok(!/\r(?!\n)/.test(r.text));
  });

  test('a long line passes in pieces and is never taken for a lone "."', () => {
    const long = 'x'.repeat(20_000);
    const r = frame([`${long}\n.\n`], true);
    assert.equal(r.text, `${long}\r\n`);
    const f = new InputFramer(true);
    const pieces = f.feed(Buffer.from(long));
    assert.ok(pieces.length > 0 && pieces.every((p) => !p.eol), 'passed on before its end');
  });

  test('fragmentation: any split of the input frames the same (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'ü', '.', '\n', '\r', '\r\n', '.\n', 'x'.repeat(9000)), {
          maxLength: 12,
        }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.boolean(),
        (parts, cuts, dotEnds) => {
          const whole = Buffer.from(parts.join(''));
          const at = [...new Set(cuts.map((c) => (whole.length === 0 ? 0 : c % whole.length)))].sort(
            (a, b) => a - b,
          );
          const chunks: Buffer[] = [];
          let prev = 0;
          for (const c of at) {
            chunks.push(whole.subarray(prev, c));
            prev = c;
          }
          chunks.push(whole.subarray(prev));
          assert.deepEqual(frame(chunks, dotEnds), frame([whole], dotEnds));
        },
      ),
      { numRuns: 300 },
    );
  });
});

const raw = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

describe('headerRecipients (-t)', () => {
  test('To, Cc and Bcc with display names, groups, comments and folds', () => {
    const fields = [
      raw('To: Bob <bob@example.test>, carol@example.test\r\n'),
      raw('Cc: "Smith, Dan" <dan@example.test> (work),\r\n\teve@remote.test\r\n'),
      raw('Bcc: friends: frank@example.test;\r\n'),
      raw('Subject: to: nobody@example.test\r\n'),
      raw('Reply-To: zed@example.test\r\n'),
    ];
    assert.deepEqual(headerRecipients(fields), [
      'bob@example.test',
      'carol@example.test',
      'dan@example.test',
      'eve@remote.test',
      'frank@example.test',
    ]);
  });

  test('UTF-8 addresses in raw 8-bit headers (RFC 6532)', () => {
    const fields = [raw('To: Jürgen <jürgen@example.test>\r\n'), raw('Cc: 日本@例え.test\r\n')];
    assert.deepEqual(headerRecipients(fields), ['jürgen@example.test', '日本@例え.test']);
  });

  test('Resent-To/Cc/Bcc replace To/Cc/Bcc when the message is resent', () => {
    const fields = [
      raw('To: old@example.test\r\n'),
      raw('Resent-From: a@example.test\r\n'),
      raw('Resent-To: new@example.test\r\n'),
      raw('Resent-Bcc: 日本@example.test\r\n'),
    ];
    assert.deepEqual(headerRecipients(fields), ['new@example.test', '日本@example.test']);
  });

  test('a bare local name (cron\'s "To: root") is found, to be qualified', () => {
    assert.deepEqual(headerRecipients([raw('To: root\r\n')]), ['root']);
    assert.equal(qualify('root', 'example.test'), 'root@example.test');
    assert.equal(qualify('<jürgen>', 'example.test'), 'jürgen@example.test');
    assert.equal(qualify('<>', 'example.test'), '');
  });

  test('an undisclosed group yields nothing; garbage yields no valid address (the caller refuses it)', () => {
    assert.deepEqual(headerRecipients([raw('To: undisclosed-recipients:;\r\n')]), []);
    const garbage = headerRecipients([raw('To: <<<@@@>>>, "unterminated, \u0000\r\n')]);
    assert.ok(
      garbage.every((a) => parseMailbox(a, true) === null),
      JSON.stringify(garbage),
    );
  });
});

describe('completeHeader', () => {
  const info = {
    from: 'alice@example.test',
    fullName: null,
    nowMs: Date.UTC(2024, 0, 2, 3, 4, 5),
    messageId: 'id1@host.test',
  };

  test('Bcc, Resent-Bcc and Return-Path are dropped; From, Date and Message-ID added when missing', () => {
    const out = completeHeader(
      [
        raw('To: bob@example.test\r\n'),
        raw('Bcc: secret@example.test\r\n'),
        raw('Resent-Bcc: x@example.test\r\n'),
        raw('Return-Path: <forged@evil.test>\r\n'),
      ],
      info,
    );
    assert.deepEqual(out, [
      'To: bob@example.test\r\n',
      'From: <alice@example.test>\r\n',
      'Date: Tue, 2 Jan 2024 03:04:05 +0000\r\n',
      'Message-ID: <id1@host.test>\r\n',
    ]);
  });

  test('fields present are kept as they are; -F does not override a From:', () => {
    const fields = [
      raw('From: Me <me@example.test>\r\n'),
      raw('Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n'),
      raw('Message-ID: <m@x>\r\n'),
    ];
    assert.deepEqual(completeHeader(fields, { ...info, fullName: 'Other' }), fields);
  });

  test('-F names the added From:, encoded when not ASCII, quoted when it has specials', () => {
    assert.equal(
      completeHeader([], { ...info, fullName: 'Cron Daemon' })[0],
      'From: Cron Daemon <alice@example.test>\r\n',
    );
    assert.equal(
      completeHeader([], { ...info, fullName: 'Jürgen' })[0],
      `From: =?UTF-8?B?${Buffer.from('Jürgen').toString('base64')}?= <alice@example.test>\r\n`,
    );
    assert.equal(formatDisplayName('Smith, Dan "D"'), '"Smith, Dan \\"D\\""');
  });

  test('a UTF-8 sender is written as UTF-8 bytes', () => {
    const out = completeHeader([], { ...info, from: '日本@example.test' });
    assert.equal(Buffer.from(out[0]!, 'latin1').toString('utf8'), 'From: <日本@example.test>\r\n');
  });
});

describe('senderAllowed', () => {
  const owns = (pairs: readonly (readonly [string, string])[]) => ({
    ownsAddress: (user: string, address: string): Promise<boolean> =>
      Promise.resolve(pairs.some(([u, a]) => u === user && a === address)),
  });
  const alice: CallerIdentity = { uid: 1000, login: 'alice', trusted: false };
  const root: CallerIdentity = { uid: 0, login: 'root', trusted: true };

  test('anyone may use its own login@origin', async () => {
    assert.equal(await senderAllowed(alice, 'alice@example.test', 'example.test', owns([])), true);
    assert.equal(await senderAllowed(alice, 'ALICE@example.test', 'example.test', owns([])), true);
  });

  test('an untrusted caller may not name another sender or the null sender', async () => {
    assert.equal(await senderAllowed(alice, 'boss@example.test', 'example.test', owns([])), false);
    assert.equal(await senderAllowed(alice, '日本@example.test', 'example.test', owns([])), false);
    assert.equal(await senderAllowed(alice, '', 'example.test', owns([])), false);
  });

  test('an untrusted caller may use what its Tern user owns (ASCII and UTF-8)', async () => {
    const dir = owns([
      ['alice@example.test', 'sales@example.test'],
      ['alice@example.test', 'jürgen@example.test'],
    ]);
    assert.equal(await senderAllowed(alice, 'sales@example.test', 'example.test', dir), true);
    assert.equal(await senderAllowed(alice, 'jürgen@example.test', 'example.test', dir), true);
  });

  test('a trusted caller may use any sender', async () => {
    assert.equal(await senderAllowed(root, 'boss@example.test', 'example.test', owns([])), true);
    assert.equal(await senderAllowed(root, '', 'example.test', owns([])), true);
  });

  test('origin: the host name when it is a local domain, else the first local domain', () => {
    assert.equal(
      originDomain({ hostname: 'mx.example.test', localDomains: ['example.test'] }),
      'example.test',
    );
    assert.equal(
      originDomain({ hostname: 'Example.TEST', localDomains: ['x.test', 'example.test'] }),
      'example.test',
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// The command on a real queue and directory.

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A CommandContext like main.ts's, for the command while it is not registered. */
async function runCommand(
  sandbox: Sandbox,
  argv: readonly string[],
  stdin: string | Buffer = '',
): Promise<Run> {
  const out = new PassThrough();
  const err = new PassThrough();
  const outChunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  out.on('data', (d: Buffer) => outChunks.push(d));
  err.on('data', (d: Buffer) => errChunks.push(d));
  const config = { ...sandbox.config(), dataDir: join(sandbox.dir, 'data') } as Config;
  const logger = createLogger({ level: 'error', format: 'json', destination: err });
  const ctx: CommandContext = {
    io: { stdout: out, stderr: err, stdin: Readable.from([Buffer.from(stdin)]), cwd: sandbox.dir, env: {} },
    config: () => config,
    readConfig: () => config,
    logger: () => logger,
    clock: systemClock,
    verbose: false,
    recordChange: async (event, detail) => {
      const queue = await openQueue(config, systemClock, logger);
      try {
        await queue.recordChange(event, detail);
      } finally {
        await queue.close();
      }
    },
    async withServices(names, fn) {
      const opened: { close(): Promise<void> }[] = [];
      const services: Partial<Record<keyof OpenedServices, unknown>> = {};
      try {
        for (const name of names) {
          if (name === 'queue') opened.push((services.queue = await openQueue(config, systemClock, logger)));
          else if (name === 'directory') opened.push((services.directory = await openDirectory(config)));
          else throw new Error(`not opened here: ${name}`);
        }
        return await fn(services as OpenedServices);
      } finally {
        for (const s of opened.reverse()) await s.close();
      }
    },
  };
  const code = await sendmail.run(ctx, { positionals: argv, flags: new Set(), options: new Map() });
  return {
    code,
    stdout: Buffer.concat(outChunks).toString('utf8'),
    stderr: Buffer.concat(errChunks).toString('utf8'),
  };
}

async function withQueue<T>(sandbox: Sandbox, fn: (queue: Queue) => Promise<T>): Promise<T> {
  const config = { ...sandbox.config(), dataDir: join(sandbox.dir, 'data') } as Config;
  const queue = await openQueue(config, systemClock, createLogger({ level: 'error', format: 'json' }));
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
}

async function bodyOf(queue: Queue, id: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of queue.readBody(id)) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

describe('sendmail on a real queue', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await createSandbox(
      'hostname = "mx.example.test"\nlocal_domains = ["example.test", "localhost"]\n[log]\nlevel = "warn"\n',
    );
    await mkdir(join(sandbox.dir, 'data'), { recursive: true });
    const config = { ...sandbox.config(), dataDir: join(sandbox.dir, 'data') } as Config;
    const directory = await openDirectory(config);
    try {
      for (const u of ['bob@example.test', 'jürgen@example.test', '日本@example.test', 'root@example.test'])
        await directory.addUser(u, null);
      await directory.addAlias('team@example.test', 'bob@example.test');
    } finally {
      await directory.close();
    }
  });
  after(() => sandbox.remove());

  /** Queue ids before and after a run: what the run queued. */
  async function queuedBy(run: () => Promise<Run>): Promise<{ result: Run; ids: string[] }> {
    const before = new Set((await withQueue(sandbox, (q) => q.list())).map((m) => m.id));
    const result = await run();
    const ids = (await withQueue(sandbox, (q) => q.list())).map((m) => m.id).filter((id) => !before.has(id));
    return { result, ids };
  }

  test('-t -i: recipients from the header, Bcc removed, headers completed, caller stamped', async () => {
    const input =
      'To: Bob <bob@example.test>\nCc: remote@elsewhere.test\nBcc: team@example.test\nSubject: hi\n\nline\n.\nafter the dot\n';
    const { result, ids } = await queuedBy(() =>
      runCommand(sandbox, ['-t', '-i', '-F', 'Cron Daemon'], input),
    );
    assert.equal(result.code, EX.ok, result.stderr);
    assert.equal(ids.length, 1);
    await withQueue(sandbox, async (queue) => {
      const m = (await queue.get(ids[0]!))!;
      assert.deepEqual(
        m.envelope.recipients.map((r) => r.address),
        ['bob@example.test', 'remote@elsewhere.test', 'team@example.test'],
      );
      assert.equal(m.envelope.sender, `${userInfo().username}@example.test`);
      assert.equal(m.envelope.client.service, 'sendmail');
      assert.equal(m.envelope.client.authUser, null);
      const body = await bodyOf(queue, m.id);
      assert.match(
        body,
        new RegExp(
          `^Received: by mx\\.example\\.test \\(Tern sendmail, from userid ${process.getuid!()}\\)\\r\\n\\tid ${m.id}; `,
        ),
      );
      assert.doesNotMatch(body, /^Bcc:/im);
      assert.doesNotMatch(body, /team@example\.test/);
      assert.match(body, /\r\nFrom: Cron Daemon <[^>]+@example\.test>\r\n/);
      assert.match(body, /\r\nDate: /);
      assert.match(body, /\r\nMessage-ID: <[0-9a-f]{24}@mx\.example\.test>\r\n/);
      assert.ok(body.endsWith('\r\n\r\nline\r\n.\r\nafter the dot\r\n'), JSON.stringify(body));
      assert.equal(m.envelope.smtputf8, false);
    });
  });

  test('-t with UTF-8 recipients and header: SMTPUTF8 set, addresses kept', async () => {
    const input =
      'From: Jürgen <jürgen@example.test>\nTo: 日本@example.test\nBcc: jürgen@example.test\nSubject: Grüße\n\nGrüße\n';
    const { result, ids } = await queuedBy(() => runCommand(sandbox, ['-ti'], input));
    assert.equal(result.code, EX.ok, result.stderr);
    await withQueue(sandbox, async (queue) => {
      const m = (await queue.get(ids[0]!))!;
      assert.deepEqual(
        m.envelope.recipients.map((r) => r.address),
        ['日本@example.test', 'jürgen@example.test'],
      );
      assert.equal(m.envelope.smtputf8, true);
      assert.equal(m.envelope.body, '8BITMIME');
      const body = await bodyOf(queue, m.id);
      assert.match(body, /\r\nFrom: Jürgen <jürgen@example\.test>\r\n/);
      assert.doesNotMatch(body, /Bcc/);
    });
  });

  test('without -i a lone "." ends the message; command-line recipients; unqualified "root"', async () => {
    const { result, ids } = await queuedBy(() =>
      runCommand(sandbox, ['root'], 'Subject: dot\n\nbefore\n.\nafter\n'),
    );
    assert.equal(result.code, EX.ok, result.stderr);
    await withQueue(sandbox, async (queue) => {
      const m = (await queue.get(ids[0]!))!;
      assert.deepEqual(
        m.envelope.recipients.map((r) => r.address),
        ['root@example.test'],
      );
      const body = await bodyOf(queue, m.id);
      assert.ok(body.endsWith('\r\n\r\nbefore\r\n'), JSON.stringify(body));
    });
  });

  test('-f, -N, -R, -V reach the envelope (the test runs as a trusted caller)', async () => {
    const { result, ids } = await queuedBy(() =>
      runCommand(
        sandbox,
        ['-f', 'jürgen@example.test', '-N', 'failure', '-R', 'hdrs', '-V', 'e1', 'bob@example.test'],
        'x\n',
      ),
    );
    assert.equal(result.code, EX.ok, result.stderr);
    await withQueue(sandbox, async (queue) => {
      const m = (await queue.get(ids[0]!))!;
      assert.equal(m.envelope.sender, 'jürgen@example.test');
      assert.equal(m.envelope.ret, 'HDRS');
      assert.equal(m.envelope.envid, 'e1');
      assert.deepEqual(m.envelope.recipients[0]!.notify, ['FAILURE']);
      // A body that starts without a header: the empty line is put before it.
      assert.match(await bodyOf(queue, m.id), /\r\nMessage-ID: <[^>]+>\r\n\r\nx\r\n$/);
    });
  });

  test('an unknown local recipient: exit 67, nothing queued (ASCII and UTF-8)', async () => {
    for (const rcpt of ['nobody@example.test', 'ничто@example.test']) {
      const { result, ids } = await queuedBy(() =>
        runCommand(sandbox, ['bob@example.test', rcpt], 'Subject: x\n\nx\n'),
      );
      assert.equal(result.code, EX.noUser);
      assert.match(result.stderr, new RegExp(`${rcpt}: user unknown`));
      assert.deepEqual(ids, []);
    }
  });

  test('usage errors: no recipients (64), bad address (64), header address garbage with -t (65), bad option (64)', async () => {
    assert.equal((await runCommand(sandbox, [], 'x\n')).code, EX.usage);
    assert.equal((await runCommand(sandbox, ['-t'], 'Subject: none\n\nx\n')).code, EX.usage);
    assert.equal((await runCommand(sandbox, ['bad@@example.test'], 'x\n')).code, EX.usage);
    assert.equal((await runCommand(sandbox, ['-t'], 'To: a@b@c.test\n\nx\n')).code, EX.dataErr);
    const bad = await runCommand(sandbox, ['-Z'], 'x\n');
    assert.equal(bad.code, EX.usage);
    assert.match(bad.stderr, /unknown option -Z/);
  });

  test('a message over limits.max_message_bytes: exit 65, nothing queued', async () => {
    const small = await createSandbox(
      'local_domains = ["example.test"]\n[limits]\nmax_message_bytes = 2048\n[log]\nlevel = "warn"\n',
    );
    try {
      await mkdir(join(small.dir, 'data'));
      const config = { ...small.config(), dataDir: join(small.dir, 'data') } as Config;
      const directory = await openDirectory(config);
      await directory.addUser('bob@example.test', null);
      await directory.close();
      const r = await runCommand(
        small,
        ['bob@example.test'],
        `Subject: big\n\n${'x'.repeat(100)}\n`.repeat(40),
      );
      assert.equal(r.code, EX.dataErr, r.stderr);
      assert.deepEqual(await withQueue(small, (q) => q.list()), []);
    } finally {
      await small.remove();
    }
  });

  test('-bv: deliverable local, alias, remote, unknown (exit 67)', async () => {
    const ok = await runCommand(sandbox, [
      '-bv',
      'bob@example.test',
      'team@example.test',
      '日本@example.test',
      'x@remote.test',
    ]);
    assert.equal(ok.code, EX.ok, ok.stderr);
    assert.deepEqual(ok.stdout.trim().split('\n'), [
      'bob@example.test... deliverable: mailbox bob@example.test',
      'team@example.test... deliverable: mailbox bob@example.test',
      '日本@example.test... deliverable: mailbox 日本@example.test',
      'x@remote.test... deliverable: remote (queued for remote.test)',
    ]);
    const bad = await runCommand(sandbox, ['-bv', 'jürgen@example.test', 'nobody@example.test']);
    assert.equal(bad.code, EX.noUser);
    assert.match(
      bad.stdout,
      /^jürgen@example\.test\.\.\. deliverable: mailbox jürgen@example\.test\nnobody@example\.test\.\.\. user unknown\n$/,
    );
  });

  test('-bp lists the queue as `tern queue list` does; -bi says there is nothing to rebuild', async () => {
    const list = await runCommand(sandbox, ['-bp']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /bob@example\.test {2}queued/);
    const aliases = await runCommand(sandbox, ['-bi']);
    assert.equal(aliases.code, 0);
    assert.match(aliases.stderr, /nothing to rebuild/);
  });

  test('-q makes pending recipients due now', async () => {
    const r = await runCommand(sandbox, ['-q']);
    assert.equal(r.code, 0, r.stderr);
    const changes = await withQueue(sandbox, async (q) => q.changesSince(0, 1000));
    assert.ok(changes.some((c) => c.event === 'queue.flush'));
    assert.ok(changes.some((c) => c.event === 'sendmail.queued' && typeof c.detail['queueId'] === 'string'));
  });

  test('a missing data_dir: exit 78, nothing created', async () => {
    const empty = await createSandbox();
    try {
      const r = await runCommand(empty, ['bob@example.test'], 'x\n');
      assert.equal(r.code, EX.config);
      assert.match(r.stderr, /no data directory/);
    } finally {
      await empty.remove();
    }
  });

  const registered = COMMANDS.some((c) => c.name === 'sendmail');
  test(
    'through `tern sendmail` (main.ts argv handling: --config, -v, clustered flags)',
    { skip: registered ? false : 'sendmail is not registered in src/cli/main.ts COMMANDS yet' },
    async () => {
      const r = await sandbox.tern(['sendmail', '-oi', '-t', '-v'], {
        stdin: 'To: bob@example.test\nSubject: via tern\n\nhi\n',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /queued as /);
    },
  );
});
