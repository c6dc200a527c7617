// The milter filter against a scripted milter on a loopback socket (TCP, and a Unix socket once): the
// frames Tern sends at each stage (macros, connect, HELO, MAIL, RCPT, DATA, the client's header fields
// with their folding, EOH, body chunks, EOB, ABORT, QUIT), every reply mapped to its verdict and every
// end-of-message modification to its action, the steps and replies a milter opts out of, SMFIR_SKIP, the
// milter's own macro lists, timeouts (a milter that never answers), a milter that breaks the protocol,
// and reconnecting at the next transaction. The fake milter parses frames with its own few lines of
// Buffer code, not with the codec under test. Every ASCII address has a UTF-8 twin.
// Deliberately NOT here: a real milter (milter-opendkim.test.ts), the codec's byte-level cases
// (src/protocol/filters/milter.test.ts).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { dial } from '../../src/net/dial.ts';
import {
  runFilter,
  type FilterClient,
  type FilterContext,
  type FilterMessage,
  type FilterSession,
  type Verdict,
} from '../../src/policy/filters/filter.ts';
import { MilterFilter } from '../../src/policy/filters/milter.ts';
import { fieldOf, splitFields } from '../../src/protocol/header-edit.ts';

// --- A scripted milter ------------------------------------------------------------------------------

interface Got {
  readonly cmd: string;
  readonly data: Buffer;
}

/** NUL-separated strings of a frame's data (the last NUL dropped). */
const strings = (b: Buffer): string[] => {
  const s = b.toString('utf8');
  return (s.endsWith('\0') ? s.slice(0, -1) : s).split('\0');
};

function frame(cmd: string, ...parts: (Buffer | string)[]): Buffer {
  const data = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(data.length + 1, 0);
  head.write(cmd, 4, 'latin1');
  return Buffer.concat([head, data]);
}
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

const ALL_ACTIONS = 0x1ff;
const F = {
  noConnect: 0x1,
  noHelo: 0x2,
  noMail: 0x4,
  noRcpt: 0x8,
  noBody: 0x10,
  noHeaders: 0x20,
  noEoh: 0x40,
  nrHeader: 0x80,
  noData: 0x200,
  skip: 0x400,
  nrConnect: 0x1000,
  nrHelo: 0x2000,
  nrMail: 0x4000,
  nrRcpt: 0x8000,
  nrData: 0x10000,
  nrEoh: 0x40000,
  nrBody: 0x80000,
  leadingSpace: 0x100000,
};

interface Script {
  readonly version?: number;
  readonly actions?: number;
  readonly flags?: number;
  /** Macro lists after the OPTNEG header: [stage number, names]. */
  readonly macroLists?: readonly (readonly [number, string])[];
  /** A raw OPTNEG reply instead of the one built from the fields above. */
  readonly rawOptneg?: Buffer;
  /**
   * The reply frames to a command (not OPTNEG, macros, ABORT, QUIT); by default 'c' for the commands
   * that take a reply. Return null to send nothing.
   */
  readonly reply?: (got: Got, conn: Conn) => Buffer[] | null;
}

interface Conn {
  readonly got: Got[];
  readonly socket: Socket;
  closed: boolean;
}

const EXPECTS_REPLY = new Set(['C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'E']);

class FakeMilter {
  readonly conns: Conn[] = [];
  readonly #server: Server;
  readonly #script: Script;
  #waiters: (() => void)[] = [];
  address = '';

  constructor(script: Script) {
    this.#script = script;
    this.#server = createServer((socket) => this.#serve(socket));
  }

  async listen(path?: string): Promise<this> {
    if (path === undefined) this.#server.listen(0, '127.0.0.1');
    else this.#server.listen(path);
    await once(this.#server, 'listening');
    const a = this.#server.address();
    this.address = typeof a === 'string' ? `unix:${a}` : `127.0.0.1:${a!.port}`;
    return this;
  }

  /** Resolves once `pred` holds (checked after each frame and close). */
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #serve(socket: Socket): void {
    const conn: Conn = { got: [], socket, closed: false };
    this.conns.push(conn);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const got: Got = { cmd: buf.toString('latin1', 4, 5), data: buf.subarray(5, 4 + len) };
        buf = buf.subarray(4 + len);
        conn.got.push(got);
        this.#answer(got, conn);
      }
      this.#notify();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      this.#notify();
    });
  }

  #answer(got: Got, conn: Conn): void {
    const s = this.#script;
    if (got.cmd === 'O') {
      const lists = (s.macroLists ?? []).map(([stage, names]) => Buffer.concat([u32(stage), cstr(names)]));
      conn.socket.write(
        s.rawOptneg ??
          frame('O', u32(s.version ?? 6), u32(s.actions ?? ALL_ACTIONS), u32(s.flags ?? 0), ...lists),
      );
      return;
    }
    if (!EXPECTS_REPLY.has(got.cmd)) return;
    const out = s.reply !== undefined ? s.reply(got, conn) : [frame('c')];
    if (out !== null) for (const f of out) conn.socket.write(f);
  }
}

/** Commands of a connection, in order, macros shown as `D<for>`. */
const cmds = (c: Conn): string[] =>
  c.got.map((g) => (g.cmd === 'D' ? `D${g.data.toString('latin1', 0, 1)}` : g.cmd));

/** The macros sent for a command: name → value. */
function macrosFor(c: Conn, forCmd: string): Map<string, string> {
  const g = c.got.find((x) => x.cmd === 'D' && x.data.toString('latin1', 0, 1) === forCmd);
  assert.ok(g !== undefined, `no macros for ${forCmd}`);
  const parts = strings(g.data.subarray(1));
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < parts.length; i += 2) m.set(parts[i]!, parts[i + 1]!);
  return m;
}

// --- The Tern side ----------------------------------------------------------------------------------

const CLIENT: FilterClient = {
  ip: '192.0.2.7',
  port: 40001,
  hostname: 'client.example',
  helo: 'client.example',
  tls: false,
  authUser: null,
  service: 'smtp',
  localAddress: '192.0.2.1',
  localPort: 25,
};

const RECEIVED =
  'Received: from client.example ([192.0.2.7])\r\n\tby mx.tern.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n';

function messageOf(client: Buffer | string, chunkBytes = 1000): FilterMessage {
  const c = typeof client === 'string' ? Buffer.from(client, 'utf8') : client;
  const bytes = Buffer.concat([Buffer.from(RECEIVED), c]);
  return {
    headers: splitFields(c).fields.flatMap((f) => fieldOf(f) ?? []),
    fromAddresses: [],
    sizeBytes: bytes.length,
    // eslint-disable-next-line @typescript-eslint/require-await -- an async iterable, as the spool's is
    async *read() {
      for (let i = 0; i < bytes.length; i += chunkBytes) yield bytes.subarray(i, i + chunkBytes);
    },
  };
}

const SIMPLE = 'From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n';

function filterFor(m: FakeMilter, timeoutMs = 5000): MilterFilter {
  return new MilterFilter({
    name: 'milter:test',
    address: m.address,
    timeoutMs,
    onFailure: 'tempfail',
    dial,
    hostname: 'mx.tern.test',
  });
}

interface Tx {
  readonly mailFrom?: string;
  readonly rcpts?: readonly string[];
  readonly message?: FilterMessage;
  readonly client?: FilterClient;
  readonly params?: ReadonlyMap<string, string>;
}

const ctx = (tx: Tx, extra: Partial<FilterContext> = {}): FilterContext => ({
  client: tx.client ?? CLIENT,
  queueId: null,
  mailFrom: tx.mailFrom ?? 'a@example.org',
  mailParams: tx.params ?? new Map(),
  recipients: [],
  facts: {},
  ...extra,
});

const sig = (): AbortSignal => AbortSignal.timeout(5000);

/** connect, helo, mail, each rcpt, message: the verdicts in order (stopping at the first refusal). */
async function transaction(session: FilterSession, tx: Tx, withConnect = true): Promise<Verdict[]> {
  const out: Verdict[] = [];
  const stop = (v: Verdict): boolean => v.kind === 'reject' || v.kind === 'defer' || v.kind === 'discard';
  if (withConnect) {
    for (const stage of ['connect', 'helo'] as const) {
      const v = await session.check(stage, ctx(tx), sig());
      out.push(v);
      if (stop(v)) return out;
    }
  }
  const mail = await session.check('mail', ctx(tx), sig());
  out.push(mail);
  if (stop(mail)) return out;
  const rcpts = tx.rcpts ?? ['b@example.net'];
  for (const rcpt of rcpts) out.push(await session.check('rcpt', ctx(tx, { rcpt }), sig()));
  const message = tx.message ?? messageOf(SIMPLE);
  out.push(await session.check('message', ctx(tx, { queueId: 'Q123', recipients: rcpts, message }), sig()));
  return out;
}

const milters: FakeMilter[] = [];
async function milter(script: Script): Promise<FakeMilter> {
  const m = await new FakeMilter(script).listen();
  milters.push(m);
  return m;
}
after(async () => {
  await Promise.all(milters.map((m) => m.close()));
});

/** Reply to the end of the message with these frames, 'c' to everything else. */
const atEom =
  (...frames: Buffer[]) =>
  (got: Got): Buffer[] =>
    got.cmd === 'E' ? frames : [frame('c')];

// --- What Tern sends ----------------------------------------------------------------------------------

describe('milter: what is sent', () => {
  test('every stage in order, with the usual macros, the client fields (not our Received:) and the body', async () => {
    const m = await milter({});
    const session = filterFor(m).open(CLIENT);
    const body = `${'y'.repeat(98)}\r\n`.repeat(1500); // 150,000 bytes: three BODY chunks
    const client = `From: a@example.org\r\nSubject: a folded\r\n\tsubject\r\nX-Tab:\tvalue\r\nX-Two:  two\r\n\r\n${body}`;
    const verdicts = await transaction(session, {
      params: new Map([
        ['SIZE', '123'],
        ['BODY', '8BITMIME'],
      ]),
      message: messageOf(client, 4096),
    });
    assert.deepEqual(
      verdicts.map((v) => v.kind),
      ['accept', 'accept', 'accept', 'accept', 'accept'],
    );
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    const c = m.conns[0]!;
    assert.deepEqual(cmds(c), [
      'O',
      'DC',
      'C',
      'DH',
      'H',
      'DM',
      'M',
      'DR',
      'R',
      'DT',
      'T',
      'L',
      'L',
      'L',
      'L',
      'DN',
      'N',
      'B',
      'B',
      'B',
      'DE',
      'E',
      'Q',
    ]);
    // OPTNEG: version 6, every action, every flag but SMFIP_RCPT_REJ.
    const o = c.got[0]!.data;
    assert.deepEqual([o.readUInt32BE(0), o.readUInt32BE(4), o.readUInt32BE(8)], [6, 0x1ff, 0x1ff7ff]);
    // CONNECT: hostname NUL, family '4', port (big-endian), address NUL.
    const conn = c.got.find((g) => g.cmd === 'C')!.data;
    assert.deepEqual(
      conn,
      Buffer.concat([cstr('client.example'), Buffer.from('4'), Buffer.from([0x9c, 0x41]), cstr('192.0.2.7')]),
    );
    const cm = macrosFor(c, 'C');
    assert.equal(cm.get('j'), 'mx.tern.test');
    assert.equal(cm.get('{daemon_name}'), 'smtp');
    assert.equal(cm.get('{client_addr}'), '192.0.2.7');
    assert.equal(cm.get('{client_name}'), 'client.example');
    assert.equal(cm.get('_'), 'client.example [192.0.2.7]');
    assert.deepEqual(strings(c.got.find((g) => g.cmd === 'H')!.data), ['client.example']);
    assert.deepEqual(strings(c.got.find((g) => g.cmd === 'M')!.data), [
      '<a@example.org>',
      'SIZE=123',
      'BODY=8BITMIME',
    ]);
    assert.equal(macrosFor(c, 'M').get('{mail_addr}'), 'a@example.org');
    assert.equal(macrosFor(c, 'M').has('i'), false, 'no queue id before DATA');
    assert.deepEqual(strings(c.got.find((g) => g.cmd === 'R')!.data), ['<b@example.net>']);
    assert.equal(macrosFor(c, 'R').get('{rcpt_addr}'), 'b@example.net');
    assert.equal(macrosFor(c, 'T').get('i'), 'Q123');
    assert.equal(macrosFor(c, 'N').get('i'), 'Q123');
    assert.equal(macrosFor(c, 'E').get('i'), 'Q123');
    // Headers: one space after the colon eaten (not a tab, not the second space), folding as LF.
    assert.deepEqual(
      c.got.filter((g) => g.cmd === 'L').map((g) => strings(g.data)),
      [
        ['From', 'a@example.org'],
        ['Subject', 'a folded\n\tsubject'],
        ['X-Tab', '\tvalue'],
        ['X-Two', ' two'],
      ],
    );
    const chunks = c.got.filter((g) => g.cmd === 'B').map((g) => g.data);
    assert.deepEqual(
      chunks.map((b) => b.length),
      [65535, 65535, 150000 - 2 * 65535],
    );
    assert.equal(Buffer.concat(chunks).toString('latin1'), body);
  });

  test('the UTF-8 twin: jürgen@ and 日本@ as UTF-8 in MAIL, RCPT, macros and header values', async () => {
    const m = await milter({});
    const session = filterFor(m).open(CLIENT);
    const client = 'From: Jürgen <jürgen@example.org>\r\nSubject: Grüße 日本\r\n\r\nGrüße\r\n';
    const verdicts = await transaction(session, {
      mailFrom: 'jürgen@example.org',
      rcpts: ['日本@example.net'],
      params: new Map([['SMTPUTF8', '']]),
      message: messageOf(client),
    });
    assert.ok(verdicts.every((v) => v.kind === 'accept'));
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    const c = m.conns[0]!;
    assert.deepEqual(strings(c.got.find((g) => g.cmd === 'M')!.data), ['<jürgen@example.org>', 'SMTPUTF8']);
    assert.deepEqual(strings(c.got.find((g) => g.cmd === 'R')!.data), ['<日本@example.net>']);
    assert.equal(macrosFor(c, 'R').get('{rcpt_addr}'), '日本@example.net');
    assert.deepEqual(
      c.got.filter((g) => g.cmd === 'L').map((g) => strings(g.data)),
      [
        ['From', 'Jürgen <jürgen@example.org>'],
        ['Subject', 'Grüße 日本'],
      ],
    );
    assert.equal(
      Buffer.concat(c.got.filter((g) => g.cmd === 'B').map((g) => g.data)).toString('utf8'),
      'Grüße\r\n',
    );
  });

  test('an IPv6 client is family 6; an unknown name is sent as [address]', async () => {
    const m = await milter({});
    const client: FilterClient = { ...CLIENT, ip: '2001:db8::7', hostname: null };
    const session = filterFor(m).open(client);
    assert.equal((await session.check('connect', ctx({ client }), sig())).kind, 'accept');
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    const conn = m.conns[0]!.got.find((g) => g.cmd === 'C')!.data;
    assert.deepEqual(
      conn,
      Buffer.concat([
        cstr('[2001:db8::7]'),
        Buffer.from('6'),
        Buffer.from([0x9c, 0x41]),
        cstr('2001:db8::7'),
      ]),
    );
    assert.equal(macrosFor(m.conns[0]!, 'C').get('_'), '[2001:db8::7]');
  });

  test('the macro lists the milter names in OPTNEG replace ours', async () => {
    const m = await milter({
      macroLists: [
        [0, '{client_addr} j'],
        [3, '{rcpt_addr} {nonexistent}'],
        [5, '{mail_addr} i'],
      ],
    });
    const session = filterFor(m).open(CLIENT);
    await transaction(session, {});
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    const c = m.conns[0]!;
    assert.deepEqual(
      [...macrosFor(c, 'C')],
      [
        ['{client_addr}', '192.0.2.7'],
        ['j', 'mx.tern.test'],
      ],
    );
    assert.deepEqual([...macrosFor(c, 'R')], [['{rcpt_addr}', 'b@example.net']]);
    assert.deepEqual(
      [...macrosFor(c, 'E')],
      [
        ['{mail_addr}', 'a@example.org'],
        ['i', 'Q123'],
      ],
    );
    // Stages the milter named no list for keep ours.
    assert.equal(macrosFor(c, 'M').get('{mail_addr}'), 'a@example.org');
  });

  test('over a Unix socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-milter-'));
    const m = await new FakeMilter({}).listen(join(dir, 'milter.sock'));
    try {
      assert.match(m.address, /^unix:\//);
      const session = filterFor(m).open(CLIENT);
      assert.ok((await transaction(session, {})).every((v) => v.kind === 'accept'));
      session.close!();
      await m.until(() => m.conns[0]?.closed === true);
      assert.equal(cmds(m.conns[0]!).at(-1), 'Q');
    } finally {
      await m.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// --- Verdicts -----------------------------------------------------------------------------------------

describe('milter: verdicts', () => {
  const refusing =
    (cmd: string, ...reply: Buffer[]) =>
    (got: Got) =>
      got.cmd === cmd ? reply : [frame('c')];

  test('SMFIR_REJECT at RCPT: 550 5.7.1 for that recipient; the transaction goes on', async () => {
    const m = await milter({
      reply: (got) =>
        got.cmd === 'R' && strings(got.data)[0] === '<bad@example.net>' ? [frame('r')] : [frame('c')],
    });
    const session = filterFor(m).open(CLIENT);
    const v = await transaction(session, { rcpts: ['bad@example.net', 'good@example.net'] });
    assert.deepEqual(
      v.map((x) => x.kind),
      ['accept', 'accept', 'accept', 'reject', 'accept', 'accept'],
    );
    const r = v[3]!;
    assert.ok(r.kind === 'reject');
    assert.deepEqual([r.reply.code, r.reply.enhanced], [550, '5.7.1']);
  });

  test('the UTF-8 twin: SMFIR_REJECT for 日本@ only', async () => {
    const m = await milter({
      reply: (got) =>
        got.cmd === 'R' && strings(got.data)[0] === '<日本@example.net>' ? [frame('r')] : [frame('c')],
    });
    const session = filterFor(m).open(CLIENT);
    const v = await transaction(session, {
      mailFrom: 'jürgen@example.org',
      rcpts: ['日本@example.net', 'jürgen@example.net'],
    });
    assert.deepEqual(
      v.map((x) => x.kind),
      ['accept', 'accept', 'accept', 'reject', 'accept', 'accept'],
    );
  });

  test('SMFIR_TEMPFAIL at MAIL: 451 4.7.1; the next MAIL first aborts nothing (reset sent ABORT)', async () => {
    let first = true;
    const m = await milter({
      reply: (got) => {
        if (got.cmd === 'M' && first) {
          first = false;
          return [frame('t')];
        }
        return [frame('c')];
      },
    });
    const session = filterFor(m).open(CLIENT);
    const v = await transaction(session, {});
    const t = v.at(-1)!;
    assert.ok(t.kind === 'defer');
    assert.deepEqual([t.reply.code, t.reply.enhanced], [451, '4.7.1']);
    session.reset!();
    assert.ok((await transaction(session, {}, false)).every((x) => x.kind === 'accept'));
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    assert.deepEqual(cmds(m.conns[0]!).slice(5), [
      'DM',
      'M',
      'A',
      'DM',
      'M',
      'DR',
      'R',
      'DT',
      'T',
      'L',
      'L',
      'L',
      'DN',
      'N',
      'B',
      'DE',
      'E',
      'Q',
    ]);
  });

  for (const [text, kind, code, enhanced, replyText] of [
    ['554 5.7.0 Go away', 'reject', 554, '5.7.0', 'Go away'],
    ['451 4.7.0 Greylisted, 100%% sure', 'defer', 451, '4.7.0', 'Greylisted, 100% sure'],
    ['550-5.7.1 first line\r\n550 5.7.1 second line', 'reject', 550, '5.7.1', 'first line second line'],
    ['550 No enhanced code', 'reject', 550, '5.7.1', 'No enhanced code'],
    ['250 2.0.0 not a refusal', 'defer', 451, '4.7.1', 'Service temporarily unavailable; try again later'],
    ['550 5.7.1 bell\u0007here', 'reject', 550, '5.7.1', 'Command rejected'],
    ['550 4.7.1 class mismatch', 'reject', 550, '5.7.1', 'Command rejected'],
    ['garbage', 'defer', 451, '4.7.1', 'Service temporarily unavailable; try again later'],
  ] as const) {
    test(`SMFIR_REPLYCODE ${JSON.stringify(text)} at the end of the message: ${kind} ${code} ${enhanced}`, async () => {
      const m = await milter({ reply: refusing('E', frame('y', cstr(text))) });
      const session = filterFor(m).open(CLIENT);
      const v = (await transaction(session, {})).at(-1)!;
      assert.equal(v.kind, kind);
      assert.ok(v.kind === 'reject' || v.kind === 'defer');
      assert.deepEqual(v.reply, { code, enhanced, text: replyText });
    });
  }

  test('SMFIR_DISCARD at the end of the message: discard', async () => {
    const m = await milter({ reply: refusing('E', frame('d')) });
    const v = (await transaction(filterFor(m).open(CLIENT), {})).at(-1)!;
    assert.equal(v.kind, 'discard');
  });

  test('SMFIR_ACCEPT at MAIL: the milter is done with the message; nothing more is sent; reset aborts', async () => {
    const m = await milter({ reply: refusing('M', frame('a')) });
    const session = filterFor(m).open(CLIENT);
    const v = await transaction(session, { rcpts: ['b@example.net', 'c@example.net'] });
    assert.deepEqual(
      v.map((x) => x.kind),
      ['accept', 'accept', 'accept', 'accept', 'accept', 'accept'],
    );
    session.reset!();
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    assert.deepEqual(cmds(m.conns[0]!), ['O', 'DC', 'C', 'DH', 'H', 'DM', 'M', 'A', 'Q']);
  });

  test('SMFIR_REJECT at connect holds for the connection; no more is sent', async () => {
    const m = await milter({ reply: refusing('C', frame('r')) });
    const session = filterFor(m).open(CLIENT);
    const v1 = await session.check('connect', ctx({}), sig());
    const v2 = await session.check('mail', ctx({}), sig());
    assert.ok(v1.kind === 'reject' && v2.kind === 'reject');
    assert.equal(v1.reply.code, 550);
    await m.until(() => m.conns[0]!.closed);
    assert.deepEqual(cmds(m.conns[0]!), ['O', 'DC', 'C']);
    session.close!();
  });

  test('SMFIR_ACCEPT at HELO: accepted for the connection, milter connection closed', async () => {
    const m = await milter({ reply: refusing('H', frame('a')) });
    const session = filterFor(m).open(CLIENT);
    const v = await transaction(session, {});
    assert.ok(v.every((x) => x.kind === 'accept'));
    await m.until(() => m.conns[0]!.closed);
    assert.deepEqual(cmds(m.conns[0]!), ['O', 'DC', 'C', 'DH', 'H']);
  });

  test('SMFIR_QUARANTINE then continue at the end of the message: quarantine, with its edits', async () => {
    const m = await milter({
      reply: refusing(
        'E',
        frame('q', cstr('spam score 12')),
        frame('h', cstr('X-Spam'), cstr('yes')),
        frame('c'),
      ),
    });
    const v = (await transaction(filterFor(m).open(CLIENT), {})).at(-1)!;
    assert.ok(v.kind === 'quarantine');
    assert.match(v.reason, /spam score 12/);
    assert.deepEqual(v.actions?.headers, [{ op: 'insert', index: 3, name: 'X-Spam', value: 'yes' }]);
  });

  test('SMFIR_PROGRESS is waited through', async () => {
    const m = await milter({ reply: refusing('E', frame('p'), frame('p'), frame('r')) });
    const v = (await transaction(filterFor(m).open(CLIENT), {})).at(-1)!;
    assert.equal(v.kind, 'reject');
  });

  test('a reject while the body is being sent ends the message there: no EOB', async () => {
    const m = await milter({ reply: refusing('B', frame('r')) });
    const session = filterFor(m).open(CLIENT);
    const big = `From: a@example.org\r\n\r\n${'z'.repeat(200_000)}`;
    const v = (await transaction(session, { message: messageOf(big, 65536) })).at(-1)!;
    assert.equal(v.kind, 'reject');
    session.reset!();
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    const c = cmds(m.conns[0]!);
    assert.equal(c.filter((x) => x === 'B').length, 1);
    assert.ok(!c.includes('E'));
    assert.deepEqual(c.slice(-2), ['A', 'Q']);
  });
});

// --- Modifications ------------------------------------------------------------------------------------

describe('milter: end-of-message modifications', () => {
  test('headers, body, recipients; CHGFROM is ignored with a reason', async () => {
    const m = await milter({
      reply: atEom(
        frame('h', cstr('X-Added'), cstr('one')),
        frame('h', cstr('X-Added'), cstr('two\n\tfolded')),
        frame('i', u32(0), cstr('X-Top'), cstr('top')),
        frame('m', u32(1), cstr('Subject'), cstr('[SPAM] hi')),
        frame('m', u32(0), cstr('To'), cstr('')),
        frame('+', cstr('<new@example.net>')),
        frame('2', cstr('<par@example.net>'), cstr('NOTIFY=NEVER')),
        frame('-', cstr('<b@example.net>')),
        frame('e', cstr('<other@example.org>')),
        frame('b', 'new body\r\n'),
        frame('b', 'second chunk\r\n'),
        frame('a'),
      ),
    });
    const v = (await transaction(filterFor(m).open(CLIENT), {})).at(-1)!;
    assert.ok(v.kind === 'accept');
    assert.deepEqual(v.actions?.headers, [
      // ADDHEADER appends at the end: after the 3 fields of the message, then after that one.
      { op: 'insert', index: 3, name: 'X-Added', value: 'one' },
      { op: 'insert', index: 4, name: 'X-Added', value: 'two\r\n\tfolded' },
      { op: 'insert', index: 0, name: 'X-Top', value: 'top' },
      { op: 'change', name: 'Subject', occurrence: 1, value: '[SPAM] hi' },
      { op: 'change', name: 'To', occurrence: 1, value: null },
    ]);
    assert.deepEqual(
      v.actions?.body?.map((b) => Buffer.from(b).toString()),
      ['new body\r\n', 'second chunk\r\n'],
    );
    assert.deepEqual(v.actions?.addRecipients, ['new@example.net', 'par@example.net']);
    assert.deepEqual(v.actions?.deleteRecipients, ['b@example.net']);
    assert.match(v.reason ?? '', /CHGFROM to <other@example.org> ignored/);
    assert.match(v.reason ?? '', /NOTIFY=NEVER/);
  });

  test('the UTF-8 twin: UTF-8 header values and recipients', async () => {
    const m = await milter({
      reply: atEom(
        frame('h', cstr('X-Note'), cstr('Grüße 日本')),
        frame('+', cstr('<日本@example.net>')),
        frame('-', cstr('<jürgen@example.net>')),
        frame('c'),
      ),
    });
    const v = (
      await transaction(filterFor(m).open(CLIENT), {
        mailFrom: 'jürgen@example.org',
        rcpts: ['jürgen@example.net'],
      })
    ).at(-1)!;
    assert.ok(v.kind === 'accept');
    assert.deepEqual(v.actions?.headers, [{ op: 'insert', index: 3, name: 'X-Note', value: 'Grüße 日本' }]);
    assert.deepEqual(v.actions?.addRecipients, ['日本@example.net']);
    assert.deepEqual(v.actions?.deleteRecipients, ['jürgen@example.net']);
  });

  test('with SMFIP_HDR_LEADSPC: values are sent and taken with their leading space', async () => {
    const m = await milter({
      flags: F.leadingSpace,
      reply: atEom(frame('h', cstr('X-Lead'), cstr(' spaced')), frame('c')),
    });
    const session = filterFor(m).open(CLIENT);
    const v = (
      await transaction(session, { message: messageOf('Subject:  two\r\nX-Tab:\tt\r\n\r\nb\r\n') })
    ).at(-1)!;
    assert.ok(v.kind === 'accept');
    assert.deepEqual(v.actions?.headers, [{ op: 'insert', index: 2, name: 'X-Lead', value: 'spaced' }]);
    assert.deepEqual(
      m.conns[0]!.got.filter((g) => g.cmd === 'L').map((g) => strings(g.data)),
      [
        ['Subject', '  two'],
        ['X-Tab', '\tt'],
      ],
    );
  });

  for (const [what, reply] of [
    [
      'a header value that would start a new field',
      frame('h', cstr('X-Evil'), cstr('a\r\nBcc: x@example.net')),
    ],
    ['a header name with a colon', frame('h', cstr('X-Evil:'), cstr('a'))],
    ['a modification it did not negotiate', frame('b', 'x')],
  ] as const) {
    test(`${what} is a protocol error: the check fails`, async () => {
      const m = await milter({ actions: 0x01 | 0x10, reply: atEom(reply, frame('c')) });
      await assert.rejects(transaction(filterFor(m).open(CLIENT), {}));
    });
  }

  test('a modification before the end of the message is a protocol error', async () => {
    const m = await milter({
      reply: (got) => (got.cmd === 'M' ? [frame('h', cstr('X'), cstr('y')), frame('c')] : [frame('c')]),
    });
    await assert.rejects(transaction(filterFor(m).open(CLIENT), {}), /modification/);
  });
});

// --- Steps and replies the milter opts out of ---------------------------------------------------------

describe('milter: negotiated steps', () => {
  test('no-reply flags: the events are sent and no reply is awaited (the milter sends none)', async () => {
    const flags = F.nrConnect | F.nrHelo | F.nrMail | F.nrRcpt | F.nrData | F.nrHeader | F.nrEoh | F.nrBody;
    const m = await milter({ flags, reply: (got) => (got.cmd === 'E' ? [frame('c')] : null) });
    const session = filterFor(m).open(CLIENT);
    const v = await transaction(session, {});
    assert.ok(v.every((x) => x.kind === 'accept'));
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    assert.deepEqual(cmds(m.conns[0]!), [
      'O',
      'DC',
      'C',
      'DH',
      'H',
      'DM',
      'M',
      'DR',
      'R',
      'DT',
      'T',
      'L',
      'L',
      'L',
      'DN',
      'N',
      'B',
      'DE',
      'E',
      'Q',
    ]);
  });

  test('steps the milter does not want are not sent (macros still are); it never reads the body', async () => {
    const flags = F.noConnect | F.noHelo | F.noMail | F.noRcpt | F.noData | F.noHeaders | F.noEoh | F.noBody;
    const m = await milter({ flags, reply: (got) => (got.cmd === 'E' ? [frame('c')] : [frame('r')]) });
    const session = filterFor(m).open(CLIENT);
    let reads = 0;
    const inner = messageOf(SIMPLE);
    const counting: FilterMessage = {
      ...inner,
      async *read() {
        for await (const c of inner.read()) {
          reads++;
          yield c;
        }
      },
    };
    const v = await transaction(session, { message: counting });
    assert.ok(
      v.every((x) => x.kind === 'accept'),
      JSON.stringify(v),
    );
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    assert.deepEqual(cmds(m.conns[0]!), ['O', 'DC', 'DH', 'DM', 'DR', 'DT', 'DN', 'DE', 'E', 'Q']);
    assert.ok(reads <= 2, `read ${reads} chunks`);
  });

  test('SMFIR_SKIP during the body: the rest of the body is not sent, EOB is', async () => {
    const m = await milter({ flags: F.skip, reply: (got) => [frame(got.cmd === 'B' ? 's' : 'c')] });
    const session = filterFor(m).open(CLIENT);
    const big = `From: a@example.org\r\n\r\n${'z'.repeat(300_000)}`;
    const v = (await transaction(session, { message: messageOf(big, 65536) })).at(-1)!;
    assert.equal(v.kind, 'accept');
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    const c = cmds(m.conns[0]!);
    assert.equal(c.filter((x) => x === 'B').length, 1);
    assert.deepEqual(c.slice(-3), ['DE', 'E', 'Q']);
  });

  test('a version 2 milter is sent no DATA', async () => {
    const m = await milter({ version: 2, actions: 0x0f });
    const session = filterFor(m).open(CLIENT);
    assert.ok((await transaction(session, {})).every((v) => v.kind === 'accept'));
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    assert.ok(!cmds(m.conns[0]!).includes('T'));
  });
});

// --- Failures -----------------------------------------------------------------------------------------

describe('milter: failures', () => {
  test('a milter that never answers: the check stops when its signal aborts and the socket is closed', async () => {
    const m = await milter({ reply: (got) => (got.cmd === 'M' ? null : [frame('c')]) });
    const session = filterFor(m).open(CLIENT);
    await session.check('connect', ctx({}), sig());
    await session.check('helo', ctx({}), sig());
    const started = performance.now();
    await assert.rejects(session.check('mail', ctx({}), AbortSignal.timeout(200)));
    assert.ok(performance.now() - started < 2000);
    await m.until(() => m.conns[0]!.closed);
    // The rest of the transaction fails without waiting.
    await assert.rejects(session.check('rcpt', ctx({}, { rcpt: 'b@example.net' }), sig()), /connection lost/);
    session.close!();
  });

  test("aborting a finished check's signal leaves the connection alone", async () => {
    const m = await milter({});
    const session = filterFor(m).open(CLIENT);
    const first = new AbortController();
    assert.equal((await session.check('connect', ctx({}), first.signal)).kind, 'accept');
    first.abort(new Error('the first check is long over'));
    assert.ok((await transaction(session, {}, false)).every((v) => v.kind === 'accept'));
    session.close!();
    await m.until(() => m.conns[0]!.closed);
    assert.equal(m.conns.length, 1);
    assert.equal(cmds(m.conns[0]!).at(-1), 'Q');
  });

  test('through runFilter: a silent milter becomes the failure mode (451 4.7.1) within the timeout', async () => {
    const m = await milter({ reply: (got) => (got.cmd === 'C' ? null : [frame('c')]) });
    const f = filterFor(m, 300);
    const session = f.open(CLIENT);
    const o = await runFilter(f, session, 'connect', ctx({}));
    assert.equal(o.verdict.kind, 'defer');
    assert.ok(o.verdict.kind === 'defer' && o.verdict.reply.code === 451);
    assert.match(o.failed ?? '', /300 ms/);
    assert.ok(o.ms < 2000);
    await m.until(() => m.conns[0]!.closed);
    session.close!();
  });

  test('after an error the next transaction dials again, replaying connect and HELO', async () => {
    let n = 0;
    const m = await milter({
      reply: (got, conn) => {
        if (got.cmd === 'M' && m.conns.indexOf(conn) === 0 && n++ === 0) return [Buffer.from('garbage!')];
        return [frame('c')];
      },
    });
    const session = filterFor(m).open(CLIENT);
    await assert.rejects(transaction(session, {}));
    session.reset!();
    const v = await transaction(session, {}, false);
    assert.ok(
      v.every((x) => x.kind === 'accept'),
      JSON.stringify(v),
    );
    session.close!();
    await m.until(() => m.conns.length === 2 && m.conns[1]!.closed);
    assert.deepEqual(cmds(m.conns[1]!).slice(0, 7), ['O', 'DC', 'C', 'DH', 'H', 'DM', 'M']);
  });

  const hostile: [string, Script, RegExp][] = [
    ['an oversize frame length', { reply: () => [Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x63])] }, /exceeds/],
    ['a frame of length 0', { reply: () => [Buffer.from([0, 0, 0, 0])] }, /length 0/],
    ['an unknown reply byte', { reply: () => [frame('Z')] }, /unknown reply/],
    ['a continue with data', { reply: () => [frame('c', 'x')] }, /unexpected data/],
    ['OPTNEG version 7', { version: 7 }, /version 7/],
    ['OPTNEG too short', { rawOptneg: frame('O', u32(6)) }, /too short/],
    ['OPTNEG with unknown actions', { actions: 0x1000 }, /unknown actions/],
    ['a reply instead of OPTNEG', { rawOptneg: frame('c') }, /expected OPTNEG/],
    [
      'a closed connection',
      { reply: (_g, conn) => (conn.socket.destroy(), null) },
      /closed|reset|ECONNRESET|EPIPE/i,
    ],
    [
      'a truncated frame, then close',
      { reply: (_g, conn) => (conn.socket.end(Buffer.from([0, 0, 0, 9, 0x63])), null) },
      /closed/,
    ],
  ];
  for (const [what, script, error] of hostile) {
    test(`${what}: the check fails (the pipeline applies on_failure)`, async () => {
      const m = await milter(script);
      const session = filterFor(m).open(CLIENT);
      await assert.rejects(session.check('connect', ctx({}), sig()), error);
      session.close!();
    });
  }

  test('nothing listening: the check fails fast', async () => {
    const m = await milter({});
    const address = m.address;
    await m.close();
    const session = new MilterFilter({
      name: 'milter',
      address,
      timeoutMs: 1000,
      onFailure: 'accept',
      dial,
      hostname: 'mx',
    }).open(CLIENT);
    await assert.rejects(session.check('connect', ctx({}), sig()), /ECONNREFUSED/);
  });
});
