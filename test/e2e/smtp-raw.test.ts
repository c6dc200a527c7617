// Protocol behaviour end to end over raw sockets, byte for byte: PIPELINING (RFC 2920), CHUNKING with
// several BDAT chunks and BINARYMIME (RFC 3030), the simple commands (VRFY 252, HELP 214, RSET, NOOP,
// QUIT: RFC 5321 §4.1.1), the command, greeting and data timeouts (421 4.4.2, RFC 5321 §4.5.3.2) and the
// per-address connection limit (421 4.7.0), and shutdown on SIGTERM (421 4.3.2 to idle sessions, exit 0).
// Deliberately NOT here: attacks and hostile input (smtp-security) and independent clients.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SmtpReply, Tern } from './harness.ts';
import { RawSmtpClient, ehlo, queueIdOf, splitTrace, startTern, waitFor } from './harness.ts';

const codes = (replies: readonly SmtpReply[]): string[] =>
  replies.map((r) => `${r.code} ${r.enhanced}`.trim());

describe('PIPELINING, CHUNKING and the simple commands', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [
        'alice@example.test',
        'bob@example.test',
        'carol@example.test',
        'bdat@example.test',
        'bin@example.test',
      ],
    });
  });
  after(() => tern?.stop());

  test('a whole transaction in one write: every reply, in order (RFC 2920)', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    const ext = await ehlo(c);
    assert.ok(ext.includes('PIPELINING'));
    const content = 'From: <sender@remote.test>\r\nSubject: pipelined\r\n\r\nOne write.\r\n..stuffed\r\n';
    await c.send(
      'MAIL FROM:<sender@remote.test>\r\n' +
        'RCPT TO:<alice@example.test>\r\n' +
        'RCPT TO:<nobody@example.test>\r\n' +
        'RCPT TO:<bob@example.test>\r\n' +
        'DATA\r\n' +
        content +
        '.\r\n' +
        'QUIT\r\n',
    );
    const replies = await c.readUntilClose();
    assert.deepEqual(codes(replies), [
      '250 2.1.0',
      '250 2.1.5',
      '550 5.1.1',
      '250 2.1.5',
      '354',
      '250 2.0.0',
      '221 2.0.0',
    ]);
    const queueId = queueIdOf(replies[5]!.lines[0]!);
    for (const rcpt of ['alice@example.test', 'bob@example.test']) {
      const [m] = await tern.waitForMessages(rcpt, 1);
      const trace = splitTrace(await tern.storedMessage(rcpt, m!.id));
      assert.match(trace.received, new RegExp(` id ${queueId}\\r\\n`));
      assert.equal(trace.rest.toString(), content.replace('..stuffed', '.stuffed'));
    }
  });

  test('two transactions pipelined back to back give two messages', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    const tx = (n: number): string =>
      `MAIL FROM:<sender@remote.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\nSubject: number ${n}\r\n\r\nbody ${n}\r\n.\r\n`;
    await c.send(tx(1) + tx(2) + 'QUIT\r\n');
    assert.deepEqual(codes(await c.readUntilClose()), [
      '250 2.1.0',
      '250 2.1.5',
      '354',
      '250 2.0.0',
      '250 2.1.0',
      '250 2.1.5',
      '354',
      '250 2.0.0',
      '221 2.0.0',
    ]);
    const list = await tern.waitForMessages('carol@example.test', 2);
    assert.deepEqual(list.map((m) => m.subject).sort(), ['number 1', 'number 2']);
  });

  test('BDAT in several chunks, then BDAT 0 LAST: stored as the chunks joined, no dot handling', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    assert.ok((await ehlo(c)).includes('CHUNKING'));
    const chunks = [
      'From: <sender@remote.test>\r\nSubject: chunked\r\n\r\n',
      'first part\r\n.\r\nnot the end: BDAT has no end marker\r\n',
      '..two dots stay two dots\r\n',
      'last part\r\n',
    ];
    await c.send('MAIL FROM:<sender@remote.test>\r\nRCPT TO:<bdat@example.test>\r\n');
    assert.deepEqual(codes(await c.readReplies(2)), ['250 2.1.0', '250 2.1.5']);
    let total = 0;
    for (const chunk of chunks) {
      total += Buffer.byteLength(chunk);
      await c.send(`BDAT ${Buffer.byteLength(chunk)}\r\n${chunk}`);
      const r = await c.readReply();
      assert.deepEqual(codes([r]), ['250 2.0.0'], r.raw);
      assert.match(r.lines[0]!, new RegExp(`${total} octets`));
    }
    const last = await c.command('BDAT 0 LAST');
    assert.deepEqual(codes([last]), ['250 2.0.0']);
    const queueId = queueIdOf(last.lines[0]!);
    const [m] = await tern.waitForMessages('bdat@example.test', 1);
    const trace = splitTrace(await tern.storedMessage('bdat@example.test', m!.id));
    assert.match(trace.received, new RegExp(` id ${queueId}\\r\\n`));
    assert.equal(trace.rest.toString(), chunks.join(''));
    c.close();
  });

  test('BINARYMIME: arbitrary octets through pipelined BDAT chunks, byte for byte', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    assert.ok((await ehlo(c)).includes('BINARYMIME'));
    const header = Buffer.from(
      'From: <sender@remote.test>\r\nSubject: binary\r\nMIME-Version: 1.0\r\n' +
        'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n',
    );
    const octets = Buffer.alloc(4096);
    for (let i = 0; i < octets.length; i++) octets[i] = (i * 7) % 256; // every byte value, NUL and bare CR/LF too
    const body = Buffer.concat([header, octets]);
    const a = body.subarray(0, 1000);
    const b = body.subarray(1000);
    await c.send(
      Buffer.concat([
        Buffer.from('MAIL FROM:<sender@remote.test> BODY=BINARYMIME\r\nRCPT TO:<bin@example.test>\r\n'),
        Buffer.from(`BDAT ${a.length}\r\n`),
        a,
        Buffer.from(`BDAT ${b.length} LAST\r\n`),
        b,
      ]),
    );
    assert.deepEqual(codes(await c.readReplies(4)), ['250 2.1.0', '250 2.1.5', '250 2.0.0', '250 2.0.0']);
    const [m] = await tern.waitForMessages('bin@example.test', 1);
    assert.deepEqual(splitTrace(await tern.storedMessage('bin@example.test', m!.id)).rest, body);
    // BINARYMIME cannot use DATA (RFC 3030 §3).
    await c.send('MAIL FROM:<sender@remote.test> BODY=BINARYMIME\r\nRCPT TO:<bin@example.test>\r\nDATA\r\n');
    assert.deepEqual(codes(await c.readReplies(3)), ['250 2.1.0', '250 2.1.5', '503 5.5.1']);
    c.close();
  });

  test('BDAT of a 7BIT body with a bare LF is refused like DATA (550 5.6.11)', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    const chunk = 'Subject: bare\r\n\r\nline\nline\r\n';
    await c.send(
      `MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT ${chunk.length} LAST\r\n${chunk}`,
    );
    assert.deepEqual(codes(await c.readReplies(3)), ['250 2.1.0', '250 2.1.5', '550 5.6.11']);
    c.close();
  });

  test('VRFY 252, HELP 214, NOOP 250, RSET 250 (and the transaction is gone), QUIT 221 and close', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    assert.deepEqual(codes([await c.command('VRFY alice@example.test')]), ['252 2.1.5']);
    assert.deepEqual(
      codes([await c.command('VRFY nobody@example.test')]),
      ['252 2.1.5'],
      'VRFY must not reveal users',
    );
    const help = await c.command('HELP');
    assert.equal(help.code, 214);
    assert.deepEqual(codes([await c.command('NOOP')]), ['250 2.0.0']);
    assert.deepEqual(codes([await c.command('MAIL FROM:<sender@remote.test>')]), ['250 2.1.0']);
    assert.deepEqual(codes([await c.command('RSET')]), ['250 2.0.0']);
    assert.deepEqual(codes([await c.command('RCPT TO:<alice@example.test>')]), ['503 5.5.1']);
    assert.deepEqual(
      codes([await c.command('MAIL FROM:<sender@remote.test>')]),
      ['250 2.1.0'],
      'MAIL again after RSET',
    );
    const quit = await c.command('QUIT');
    assert.deepEqual(codes([quit]), ['221 2.0.0']);
    assert.ok(await c.waitForClose(2000), 'the server closes after QUIT');
  });
});

describe('timeouts (RFC 5321 §4.5.3.2): 421 4.4.2 and close', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: ['slow@example.test'],
      limits: { greeting_timeout_seconds: 1, command_timeout_seconds: 1, data_block_timeout_seconds: 1 },
    });
  });
  after(() => tern?.stop());

  const timedOut = async (c: RawSmtpClient): Promise<number> => {
    const started = Date.now();
    const replies = await c.readUntilClose(6000);
    assert.deepEqual(codes(replies), ['421 4.4.2']);
    return Date.now() - started;
  };

  test('no command after EHLO: command timeout', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    const ms = await timedOut(c);
    assert.ok(ms >= 800, `closed after ${ms} ms, before the 1 s timeout`);
  });

  test('no command after the greeting: greeting timeout', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await timedOut(c);
  });

  test('a stalled DATA: data block timeout, and the partial message is not kept', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    await c.send('MAIL FROM:<sender@remote.test>\r\nRCPT TO:<slow@example.test>\r\nDATA\r\n');
    assert.deepEqual(codes(await c.readReplies(3)), ['250 2.1.0', '250 2.1.5', '354']);
    await c.send('Subject: never finished\r\n\r\nhalf a message\r\n');
    await timedOut(c);
    const queue = await tern.tern(['queue', 'list', '--json']);
    assert.deepEqual(JSON.parse(queue.stdout), []);
    assert.equal((await tern.storedMessages('slow@example.test')).length, 0);
  });

  test('a client that keeps talking is not timed out', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.deepEqual(codes([await c.command('NOOP')]), ['250 2.0.0']);
    }
    c.close();
  });
});

describe('connection limit per client address', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ limits: { max_connections_per_ip: 2 } });
  });
  after(() => tern?.stop());

  test('the third connection from one address gets 421 4.7.0; a freed slot is reusable', async () => {
    const first = await RawSmtpClient.open(tern.ports.smtp);
    const second = await RawSmtpClient.open(tern.ports.submission);
    const third = await RawSmtpClient.connect(tern.ports.smtp);
    assert.deepEqual(codes(await third.readUntilClose()), ['421 4.7.0']);
    // Still two sessions working.
    assert.deepEqual(codes([await first.command('NOOP')]), ['250 2.0.0']);
    assert.deepEqual(codes([await second.command('NOOP')]), ['250 2.0.0']);
    assert.deepEqual(codes([await first.command('QUIT')]), ['221 2.0.0']);
    await first.waitForClose();
    // The slot is released once the server has seen the close: poll briefly.
    const again = await waitFor('a free slot', async () => {
      const c = await RawSmtpClient.connect(tern.ports.smtp);
      const greeting = await c.readReply();
      if (greeting.code === 220) return c;
      c.close();
      return undefined;
    });
    assert.deepEqual(codes([await again.command('NOOP')]), ['250 2.0.0']);
    again.close();
    second.close();
  });
});

describe('shutdown on SIGTERM', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: ['late@example.test'] });
  });
  after(() => tern?.stop());

  test('an idle session gets 421 4.3.2, a session inside DATA may finish, and the process exits 0', async () => {
    const idle = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(idle);
    const busy = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(busy);
    await busy.send('MAIL FROM:<sender@remote.test>\r\nRCPT TO:<late@example.test>\r\nDATA\r\n');
    assert.deepEqual(codes(await busy.readReplies(3)), ['250 2.1.0', '250 2.1.5', '354']);
    const exited = tern.kill('SIGTERM');
    assert.deepEqual(codes(await idle.readUntilClose()), ['421 4.3.2']);
    // Within shutdown_grace_seconds the message in flight is still accepted, then the session is closed.
    await busy.send('Subject: just in time\r\n\r\nbody\r\n.\r\n');
    const replies = codes(await busy.readUntilClose());
    assert.deepEqual(await exited, { code: 0, signal: null });
    assert.ok(tern.logs().some((l) => l.event === 'server.stopped'));
    // The client's view must match what the server kept: queued or delivered exactly when it got a 250.
    // A 421 for a message that was in fact queued makes the client send it again: a duplicate.
    const queued = JSON.parse((await tern.tern(['queue', 'list', '--json'])).stdout) as unknown[];
    const delivered = JSON.parse(
      (await tern.tern(['mailbox', 'list', 'late@example.test', '--json'])).stdout,
    ) as unknown[];
    assert.equal(queued.length + delivered.length, 1, 'the message was kept');
    assert.deepEqual(replies, ['250 2.0.0', '421 4.3.2']);
  });
});
