// Tests of the IMAP benchmark's own parts that need no real server: the response framing of the raw
// client (any split of the bytes gives the same responses, literals counted or kept, UTF-8 text
// decoded), the client and the SMTP sender against small scripted servers (LITERAL+ and synchronizing
// literals, pipelining, IDLE, dot-stuffing), the corpus (the same bytes every time, sizes in range,
// search words exactly where expected, exact fixed-size messages), and issue 13's goals and the report
// section. The measurements themselves run in `npm run bench -- --only imap`.
// Not part of `npm test` (bench/ is outside its globs): `npx node --test bench/imap.test.ts`.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ImapClient, quoted, ResponseReader, SmtpSender } from './imap-client.ts';
import type { ImapResponse } from './imap-client.ts';
import { corpusMessage, expectedHits, fixedMessage, imapDateTime, SEARCH_WORDS } from './imap-corpus.ts';
import { renderMarkdown } from './report.ts';
import type { BenchResults, CaseRun } from './results.ts';
import { IMAP_CASES, judgeImapTargets, summarize } from './results.ts';

const simplify = (rs: readonly ImapResponse[]) =>
  rs.map((r) => ({
    text: r.text,
    literalBytes: r.literalBytes,
    literals: r.literals.map((l) => l.toString('utf8')),
  }));

function feedAll(bytes: Buffer, cuts: readonly number[], keep: boolean): ImapResponse[] {
  const reader = new ResponseReader(() => keep);
  const out: ImapResponse[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...reader.feed(bytes.subarray(from, cut)));
    from = cut;
  }
  return out;
}

const STREAM = Buffer.from(
  '* 2 EXISTS\r\n' +
    '* 1 FETCH (UID 7 BODY[] {12}\r\nhello\r\nworld FLAGS (\\Seen))\r\n' +
    '+ idling\r\n' +
    '* 3 FETCH (ENVELOPE ("date" {14}\r\nJürgen 日本 NIL))\r\n' +
    '* 4 FETCH (BODY[] {0}\r\n)\r\n' +
    'b1 OK done\r\n',
  'utf8',
);

test('responses with literals, kept: text around them, the literal bytes whole, UTF-8 decoded', () => {
  const rs = simplify(feedAll(STREAM, [], true));
  assert.deepEqual(rs, [
    { text: '* 2 EXISTS', literalBytes: 0, literals: [] },
    {
      text: '* 1 FETCH (UID 7 BODY[] {12}\r\n FLAGS (\\Seen))',
      literalBytes: 12,
      literals: ['hello\r\nworld'],
    },
    { text: '+ idling', literalBytes: 0, literals: [] },
    // 14 bytes: "Jürgen 日本" is 7 + 1 + 6 UTF-8 bytes.
    { text: '* 3 FETCH (ENVELOPE ("date" {14}\r\n NIL))', literalBytes: 14, literals: ['Jürgen 日本'] },
    { text: '* 4 FETCH (BODY[] {0}\r\n)', literalBytes: 0, literals: [''] },
    { text: 'b1 OK done', literalBytes: 0, literals: [] },
  ]);
});

test('literals only counted when not kept', () => {
  const rs = simplify(feedAll(STREAM, [], false));
  assert.equal(rs[1]!.literalBytes, 12);
  assert.deepEqual(rs[1]!.literals, []);
  assert.equal(rs.length, 6);
});

test('any split of the stream gives the same responses (every single cut, and byte by byte)', () => {
  const whole = simplify(feedAll(STREAM, [], true));
  for (let cut = 1; cut < STREAM.length; cut++)
    assert.deepEqual(simplify(feedAll(STREAM, [cut], true)), whole, `cut at ${cut}`);
  const every = Array.from({ length: STREAM.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(simplify(feedAll(STREAM, every, true)), whole);
});

test('a LITERAL+ marker {n+} in a response is framed too; bare LF line ends are tolerated', () => {
  const rs = simplify(feedAll(Buffer.from('* 1 FETCH (X {3+}\r\nabc)\n* OK\n'), [], true));
  assert.deepEqual(rs, [
    { text: '* 1 FETCH (X {3+}\r\n)', literalBytes: 3, literals: ['abc'] },
    { text: '* OK', literalBytes: 0, literals: [] },
  ]);
});

test('quoted strings escape backslash and double quote, and refuse CR/LF', () => {
  assert.equal(quoted('user@bench.test'), '"user@bench.test"');
  assert.equal(quoted('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(quoted('jürgen@例え.jp'), '"jürgen@例え.jp"');
  assert.throws(() => quoted('a\r\nb'));
});

test('the corpus is deterministic, 1–100 KiB, CRLF only, with UTF-8 headers in encoded and raw form', () => {
  const a = corpusMessage(1234);
  assert.ok(a.raw.equals(corpusMessage(1234).raw));
  assert.ok(!a.raw.equals(corpusMessage(1234, 2).raw));
  const sizes: number[] = [];
  let encoded = 0;
  let raw8 = 0;
  const kinds = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const m = corpusMessage(i);
    sizes.push(m.raw.length);
    const text = m.raw.toString('utf8');
    assert.ok(!/(^|[^\r])\n/.test(text), `bare LF in message ${i}`);
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    if (head.includes('=?UTF-8?B?')) encoded += 1;
    if (/[^\x00-\x7f]/.test(head)) raw8 += 1;
    const kind = /Content-Type: ([a-z/]+)/.exec(head)?.[1] ?? '?';
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    assert.ok(m.messageId.endsWith('@corpus.bench.test>'));
  }
  assert.ok(
    Math.min(...sizes) >= 900 && Math.max(...sizes) <= 110 * 1024,
    `${Math.min(...sizes)}…${Math.max(...sizes)}`,
  );
  assert.ok(encoded > 100, `encoded words in ${encoded}`);
  assert.ok(raw8 >= 5, `raw UTF-8 headers in ${raw8}`);
  for (const kind of ['text/plain', 'multipart/alternative', 'multipart/mixed'])
    assert.ok((kinds.get(kind) ?? 0) > 30, `${kind}: ${kinds.get(kind)}`);
  // The UTF-8 sender decodes back to the name it encodes.
  const jürgen = corpusMessage(5 * 5 + 2).raw.toString('utf8');
  const b64 = /From: =\?UTF-8\?B\?([^?]+)\?=/.exec(jürgen)?.[1];
  assert.ok(b64 !== undefined);
  assert.equal(Buffer.from(b64, 'base64').toString('utf8'), 'Jürgen Weiß');
});

test('each search word is in exactly the messages expectedHits names', () => {
  for (const [id, w] of Object.entries(SEARCH_WORDS) as [
    keyof typeof SEARCH_WORDS,
    (typeof SEARCH_WORDS)[keyof typeof SEARCH_WORDS],
  ][]) {
    const found: number[] = [];
    for (let i = 0; i < 500; i++)
      if (corpusMessage(i).raw.includes(Buffer.from(w.word, 'utf8'))) found.push(i);
    assert.deepEqual(found, expectedHits(id, 500), id);
  }
  assert.equal(expectedHits('ascii', 10_000).length, 100);
  assert.equal(expectedHits('utf8', 10_000).length, 100);
});

test('fixed-size messages are exactly the size asked, CRLF only; dates in IMAP form', () => {
  for (const n of [300, 1024, 1025, 4096, 100 * 1024])
    for (const tag of ['a', 'r1-1024-1999', 'jürgen-日本']) {
      const m = fixedMessage(n, tag);
      assert.equal(m.length, n, `${n} ${tag}`);
      assert.ok(!/(^|[^\r])\n/.test(m.toString('utf8')));
    }
  assert.equal(imapDateTime(new Date(Date.UTC(2026, 0, 5, 8, 3, 9))), '05-Jan-2026 08:03:09 +0000');
});

// ---------------------------------------------------------------------------------------------------
// The client against small scripted servers: what it writes, and how it reads what they answer.

/** A scripted IMAP server: LOGIN, APPEND (synchronizing or LITERAL+ literals), IDLE/DONE, LOGOUT. */
async function fakeImap(
  literalPlus: boolean,
): Promise<{ port: number; appended: Buffer[]; close: () => void }> {
  const appended: Buffer[] = [];
  const server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    let literal: { tag: string; n: number } | null = null;
    let idleTag: string | null = null;
    socket.write(`* OK [CAPABILITY IMAP4rev2 ${literalPlus ? 'LITERAL+ ' : ''}IDLE] fake ready\r\n`);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (literal !== null) {
          if (buf.length < literal.n + 2) return;
          appended.push(Buffer.from(buf.subarray(0, literal.n)));
          buf = buf.subarray(literal.n + 2);
          socket.write(
            `* ${appended.length} EXISTS\r\n${literal.tag} OK [APPENDUID 1 ${appended.length}] done\r\n`,
          );
          literal = null;
          continue;
        }
        const lf = buf.indexOf('\r\n');
        if (lf < 0) return;
        const line = buf.toString('utf8', 0, lf);
        buf = buf.subarray(lf + 2);
        if (idleTag !== null && line === 'DONE') {
          socket.write(`${idleTag} OK IDLE done\r\n`);
          idleTag = null;
          continue;
        }
        const [tag = '', verb = ''] = line.split(' ');
        const m = /\{(\d+)(\+?)\}$/.exec(line);
        if (verb === 'APPEND' && m !== null) {
          if (m[2] === '+' && !literalPlus) throw new Error('LITERAL+ used though not offered');
          if (m[2] === '' && literalPlus)
            throw new Error('synchronizing literal though LITERAL+ was offered');
          if (m[2] === '') socket.write('+ go ahead\r\n');
          literal = { tag, n: Number(m[1]) };
        } else if (verb === 'IDLE') {
          idleTag = tag;
          socket.write('+ idling\r\n');
          // New mail while idling.
          setTimeout(() => socket.write('* 9 EXISTS\r\n'), 5);
        } else if (verb === 'LOGIN') {
          socket.write(
            `${tag} ${line.includes('"jürgen@例え.jp"') || line.includes('"user@bench.test"') ? 'OK' : 'NO'} login\r\n`,
          );
        } else if (verb === 'LOGOUT') {
          socket.end(`* BYE\r\n${tag} OK bye\r\n`);
          return;
        } else socket.write(`${tag} BAD unknown\r\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, appended, close: () => server.close() };
}

for (const literalPlus of [true, false]) {
  test(`ImapClient: LOGIN, APPEND ${literalPlus ? 'with LITERAL+' : 'with a synchronizing literal'}, IDLE sees EXISTS, NO resolves`, async () => {
    const srv = await fakeImap(literalPlus);
    try {
      const c = await ImapClient.open(srv.port);
      assert.equal(c.capabilities.has('LITERAL+'), literalPlus);
      await c.login('user@bench.test', 'pw');
      await c.login('jürgen@例え.jp', 'pässword');
      const no = await c.command('LOGIN "x" "y"');
      assert.equal(no.status, 'NO');
      const body = Buffer.from('Subject: Grüße 日本\r\n\r\nhello\r\n', 'utf8');
      const r = await c.append('INBOX', body, ['\\Seen'], '01-Jan-2026 08:00:02 +0000');
      assert.equal(r.status, 'OK');
      assert.equal(r.untaggedCount, 1);
      // Several in flight at once, each completed by its own tag.
      const many = await Promise.all([1, 2, 3].map((i) => c.append('INBOX', Buffer.from(`m${i}\r\n`))));
      assert.deepEqual(
        many.map((x) => /APPENDUID 1 (\d+)/.exec(x.text)?.[1]),
        ['2', '3', '4'],
      );
      assert.ok(srv.appended[0]!.equals(body));
      assert.equal(srv.appended.length, 4);
      const seen: string[] = [];
      c.onUntagged = (u) => seen.push(u.text);
      const idle = await c.idle();
      while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 2));
      assert.deepEqual(seen, ['* 9 EXISTS']);
      assert.equal((await idle.done()).status, 'OK');
      await c.logout();
    } finally {
      srv.close();
    }
  });
}

test('SmtpSender: one transaction per message, dot-stuffed, resolves at the 250 after DATA', async () => {
  const received: string[] = [];
  const server = createServer((socket) => {
    let text = '';
    let inData = false;
    socket.write('220 fake ESMTP\r\n');
    socket.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      for (;;) {
        if (inData) {
          const end = text.indexOf('\r\n.\r\n');
          if (end < 0) return;
          received.push(text.slice(0, end + 2));
          text = text.slice(end + 5);
          inData = false;
          socket.write('250 2.0.0 queued\r\n');
          continue;
        }
        const eol = text.indexOf('\r\n');
        if (eol < 0) return;
        const line = text.slice(0, eol);
        text = text.slice(eol + 2);
        if (line.startsWith('EHLO')) socket.write('250-fake\r\n250 8BITMIME\r\n');
        else if (line === 'DATA') {
          inData = true;
          socket.write('354 go\r\n');
        } else socket.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const s = await SmtpSender.open((server.address() as AddressInfo).port);
    const before = performance.now();
    const at = await s.send(
      'a@example.org',
      'jürgen@例え.jp',
      Buffer.from('Subject: x\r\n\r\n.leading dot\r\nGrüße\r\n', 'utf8'),
    );
    assert.ok(at >= before);
    await s.send('a@example.org', 'user@bench.test', fixedMessage(1024, 'second'));
    s.close();
    assert.equal(received.length, 2);
    assert.equal(received[0], 'Subject: x\r\n\r\n..leading dot\r\nGrüße\r\n');
    assert.equal(Buffer.byteLength(received[1]!), 1024);
  } finally {
    server.close();
  }
});

// ---------------------------------------------------------------------------------------------------
// Issue 13's goals and the IMAP section of the report, from made-up runs.

test('IMAP goals judged on medians (rates higher, times lower, memory only at 10,000) and rendered', () => {
  const run = (caseId: string, peer: CaseRun['peer'], metrics: Record<string, number>): CaseRun => ({
    caseId,
    scenario: 'imap',
    peer,
    round: 1,
    failure: null,
    metrics,
    errorSamples: [],
  });
  const runs = [
    run(IMAP_CASES.fetchAll, 'tern', { msgsPerSec: 50_000, ms: 200, firstMs: 300 }),
    run(IMAP_CASES.fetchAll, 'dovecot', { msgsPerSec: 40_000, ms: 250, firstMs: 1000 }),
    run(IMAP_CASES.searchAscii, 'tern', { ms: 7000, hits: 100 }),
    run(IMAP_CASES.searchAscii, 'dovecot', { ms: 5000, hits: 100 }),
    run(IMAP_CASES.pushSmtp, 'tern', { p50Ms: 3, p99Ms: 12 }),
    run(IMAP_CASES.pushAppend, 'dovecot', { p50Ms: 490, p99Ms: 550 }),
    run(IMAP_CASES.idle, 'tern', { rssMiB: 150, pssMiB: 140, connections: 500, kibPerConnection: 100 }),
  ];
  const summary = summarize(runs);
  const goals = judgeImapTargets(summary);
  const goal = (prefix: string) => goals.find((g) => g.text.startsWith(prefix))!;
  assert.equal(goal('SELECT + FETCH').met, true);
  assert.match(goal('SELECT + FETCH').measured, /1\.25× Dovecot/);
  assert.equal(goal('UID SEARCH TEXT (ASCII').met, false); // 7 s against 5 s
  assert.equal(goal('UID SEARCH TEXT (UTF-8').met, null); // not measured
  assert.equal(goal('IDLE push').met, true);
  assert.equal(goal('10,000').met, null); // 500 connections: not the figure
  assert.equal(judgeImapTargets(summarize([])).length, 0);

  const results = {
    version: 1,
    startedAt: '2026-12-07T00:00:00.000Z',
    finishedAt: '2026-12-07T00:10:00.000Z',
    durationS: 600,
    mode: 'custom',
    command: 'npm run bench -- --only imap',
    settings: { rounds: 1, imap: { messages: 10_000, bodies: 1000, appendClients: 4, connections: 500 } },
    machine: {
      nproc: 2,
      cpuModel: 'test',
      memoryGiB: 24,
      disk: 'vda',
      fsyncPerSecond: 1000,
      kernel: 'k',
      node: 'v24',
      postfix: null,
      haraka: null,
      dovecot: '2.3.19.1',
      ternCommit: 'abc',
    },
    peers: ['tern', 'dovecot'],
    problems: [],
    cases: [],
    runs,
    summary,
    targets: [],
    profile: null,
  } satisfies BenchResults;
  const md = renderMarkdown(results, { json: 'r.json', svg: 'r.svg' });
  assert.match(md, /### 7\. IMAP \(issue 13\)/);
  assert.match(md, /Dovecot 2\.3\.19\.1/);
  assert.match(
    md,
    /\| … again \(compared\) \| 200 ms, 50,000 msgs\/s \| 250 ms, 40,000 msgs\/s \| 1\.25× \|/,
  );
  assert.match(md, /UID SEARCH CHARSET UTF-8 TEXT kühlschrank/);
  // No SMTP case ran: neither issue 6's targets nor the SMTP chart.
  assert.doesNotMatch(md, /Targets \(issue 6\)/);
  assert.doesNotMatch(md, /r\.svg/);
});
