import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  FrameDecoder,
  MAX_BODY_CHUNK_BYTES,
  MessageSplitter,
  encodeAbort,
  encodeBody,
  encodeConnect,
  encodeData,
  encodeEob,
  encodeEoh,
  encodeHeader,
  encodeHelo,
  encodeMacros,
  encodeMail,
  encodeOptneg,
  encodeQuit,
  encodeQuitNewConnection,
  encodeRcpt,
  milterHeader,
  parseOptneg,
  parseReply,
  parseReplyText,
  type Frame,
  type MessagePart,
} from './milter.ts';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
const u32 = (n: number): Buffer => {
  const x = Buffer.alloc(4);
  x.writeUInt32BE(n);
  return x;
};
/** A frame built by hand: length, command, data. */
const raw = (cmd: string, data: Buffer = Buffer.alloc(0)): Buffer =>
  Buffer.concat([u32(data.length + 1), b(cmd), data]);
const frameOf = (cmd: string, data: Buffer = Buffer.alloc(0)): Frame => ({
  command: cmd.charCodeAt(0),
  data,
});

describe('milter encoders', () => {
  test('OPTNEG: length 13, O, version, actions, flags (big-endian)', () => {
    assert.equal(
      hex(encodeOptneg({ version: 6, actions: 0x1ff, flags: 0x1ff7ff })),
      '0000000d' + '4f' + '00000006' + '000001ff' + '001ff7ff',
    );
  });

  test('CONNECT for IPv4, IPv6, a Unix socket and an unknown family', () => {
    assert.deepEqual(
      Buffer.from(
        encodeConnect({ hostname: 'client.example', family: '4', port: 40001, address: '192.0.2.7' }),
      ),
      raw('C', Buffer.concat([b('client.example\0'), b('4'), Buffer.from([0x9c, 0x41]), b('192.0.2.7\0')])),
    );
    assert.deepEqual(
      Buffer.from(
        encodeConnect({ hostname: '[2001:db8::1]', family: '6', port: 25, address: '2001:db8::1' }),
      ),
      raw('C', Buffer.concat([b('[2001:db8::1]\0'), b('6'), Buffer.from([0, 25]), b('2001:db8::1\0')])),
    );
    assert.deepEqual(
      Buffer.from(encodeConnect({ hostname: 'localhost', family: 'L', port: 999, address: '/run/sock' })),
      raw('C', Buffer.concat([b('localhost\0'), b('L'), Buffer.from([0, 0]), b('/run/sock\0')])),
    );
    assert.deepEqual(
      Buffer.from(encodeConnect({ hostname: 'x', family: 'U', port: 1, address: 'ignored' })),
      raw('C', b('x\0U')),
    );
  });

  test('MACRO: the command it is for, then name NUL value NUL pairs (UTF-8 values as bytes)', () => {
    assert.deepEqual(
      Buffer.from(
        encodeMacros('M', [
          ['i', 'Q1'],
          ['{mail_addr}', 'jürgen@example.org'],
        ]),
      ),
      raw('D', b('Mi\0Q1\0{mail_addr}\0jürgen@example.org\0')),
    );
    assert.deepEqual(Buffer.from(encodeMacros('C', [])), raw('D', b('C')));
  });

  test('HELO, MAIL, RCPT, HEADER; a NUL inside a string is dropped, not sent', () => {
    assert.deepEqual(Buffer.from(encodeHelo('client.example')), raw('H', b('client.example\0')));
    assert.deepEqual(
      Buffer.from(encodeMail(['<a@example.org>', 'SIZE=10'])),
      raw('M', b('<a@example.org>\0SIZE=10\0')),
    );
    assert.deepEqual(Buffer.from(encodeMail(['<>'])), raw('M', b('<>\0')));
    assert.deepEqual(Buffer.from(encodeRcpt(['<日本@example.net>'])), raw('R', b('<日本@example.net>\0')));
    assert.deepEqual(Buffer.from(encodeHeader('Subject', 'a\0b')), raw('L', b('Subject\0ab\0')));
    assert.deepEqual(
      Buffer.from(encodeHeader(b('X'), b('\xff'))),
      raw('L', Buffer.concat([b('X\0'), b('\xff'), b('\0')])),
    );
  });

  test('commands without data', () => {
    assert.equal(hex(encodeData()), '0000000154');
    assert.equal(hex(encodeEoh()), '000000014e');
    assert.equal(hex(encodeEob()), '0000000145');
    assert.equal(hex(encodeAbort()), '0000000141');
    assert.equal(hex(encodeQuit()), '0000000151');
    assert.equal(hex(encodeQuitNewConnection()), '000000014b');
  });

  test('BODY: chunks of at most 65535 bytes, none for an empty body, the bytes kept in order', () => {
    assert.deepEqual(encodeBody(new Uint8Array(0)), []);
    for (const size of [1, MAX_BODY_CHUNK_BYTES, MAX_BODY_CHUNK_BYTES + 1, 3 * MAX_BODY_CHUNK_BYTES - 1]) {
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = i % 251;
      const frames = encodeBody(body);
      assert.equal(frames.length, Math.ceil(size / MAX_BODY_CHUNK_BYTES));
      const dec = new FrameDecoder();
      const out = dec.push(Buffer.concat(frames));
      assert.ok(out.ok);
      assert.ok(out.value.every((f) => f.command === 0x42 && f.data.length <= MAX_BODY_CHUNK_BYTES));
      assert.deepEqual(Buffer.concat(out.value.map((f) => f.data)), body);
    }
  });
});

describe('milter frame decoder', () => {
  const stream = Buffer.concat([raw('c'), raw('h', b('X-A\0v\0')), raw('y', b('550 5.7.1 no\0'))]);

  test('frames out of a stream fed whole, or one byte at a time', () => {
    const whole = new FrameDecoder().push(stream);
    assert.ok(whole.ok);
    assert.deepEqual(
      whole.value.map((f) => [String.fromCharCode(f.command), Buffer.from(f.data).toString()]),
      [
        ['c', ''],
        ['h', 'X-A\0v\0'],
        ['y', '550 5.7.1 no\0'],
      ],
    );
    const dec = new FrameDecoder();
    const frames: Frame[] = [];
    for (const byte of stream) {
      const r = dec.push(Uint8Array.of(byte));
      assert.ok(r.ok);
      frames.push(...r.value);
    }
    assert.deepEqual(frames, whole.value);
    assert.equal(dec.pendingBytes, 0);
  });

  test('a truncated frame waits for the rest', () => {
    const dec = new FrameDecoder();
    const r = dec.push(stream.subarray(0, stream.length - 3));
    assert.ok(r.ok);
    assert.equal(r.value.length, 2);
    assert.ok(dec.pendingBytes > 0);
    const rest = dec.push(stream.subarray(stream.length - 3));
    assert.ok(rest.ok);
    assert.equal(rest.value.length, 1);
  });

  test('an oversize length is an error at once (before its bytes arrive), and the decoder stays failed', () => {
    const dec = new FrameDecoder(1024);
    const r = dec.push(Buffer.concat([raw('c'), u32(1025)]));
    assert.deepEqual(r, { ok: false, error: 'frame of 1025 bytes exceeds 1024' });
    assert.equal(dec.push(raw('c')).ok, false);
    const huge = new FrameDecoder().push(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    assert.equal(huge.ok, false);
  });

  test('a frame at the bound passes; a frame of length 0 is an error', () => {
    const ok = new FrameDecoder(10).push(raw('b', Buffer.alloc(9)));
    assert.ok(ok.ok && ok.value.length === 1);
    assert.deepEqual(new FrameDecoder().push(u32(0)), { ok: false, error: 'frame of length 0' });
  });
});

describe('milter OPTNEG reply', () => {
  test('version, actions, flags, and the per-stage macro lists', () => {
    const data = Buffer.concat([
      u32(6),
      u32(0x21),
      u32(0x1000a0),
      u32(0),
      b('{client_addr} j\0'),
      u32(5),
      b('i,{auth_type}\0'),
    ]);
    const r = parseOptneg(frameOf('O', data));
    assert.ok(r.ok);
    assert.equal(r.value.version, 6);
    assert.equal(r.value.actions, 0x21);
    assert.equal(r.value.flags, 0x1000a0);
    assert.deepEqual(
      [...r.value.macros],
      [
        ['connect', ['{client_addr}', 'j']],
        ['eom', ['i', '{auth_type}']],
      ],
    );
  });

  test('an unknown macro stage is skipped', () => {
    const r = parseOptneg(frameOf('O', Buffer.concat([u32(6), u32(0), u32(0), u32(99), b('x\0')])));
    assert.ok(r.ok);
    assert.equal(r.value.macros.size, 0);
  });

  for (const [what, frame, error] of [
    ['too short', frameOf('O', Buffer.concat([u32(6), u32(0)])), /too short/],
    ['version 1', frameOf('O', Buffer.concat([u32(1), u32(0), u32(0)])), /version 1/],
    ['version 7', frameOf('O', Buffer.concat([u32(7), u32(0), u32(0)])), /version 7/],
    ['unknown actions', frameOf('O', Buffer.concat([u32(6), u32(0x200), u32(0)])), /unknown actions/],
    ['a truncated macro list', frameOf('O', Buffer.concat([u32(6), u32(0), u32(0), u32(0)])), /truncated/],
    [
      'a macro list without NUL',
      frameOf('O', Buffer.concat([u32(6), u32(0), u32(0), u32(0), b('j')])),
      /without NUL/,
    ],
    ['another reply', frameOf('c'), /expected OPTNEG/],
    ['a non-printable command', { command: 0, data: new Uint8Array(0) }, /0x00/],
  ] as const) {
    test(`refused: ${what}`, () => {
      const r = parseOptneg(frame);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.error, error);
    });
  }
});

describe('milter replies', () => {
  test('the decisions without data', () => {
    const kinds = [...'cartdsp4f'].map((c) => {
      const r = parseReply(frameOf(c));
      assert.ok(r.ok);
      return r.value.kind;
    });
    assert.deepEqual(kinds, [
      'continue',
      'accept',
      'reject',
      'tempfail',
      'discard',
      'skip',
      'progress',
      'shutdown',
      'connectionFailure',
    ]);
  });

  test('the replies with data', () => {
    const ok = (f: Frame): unknown => {
      const r = parseReply(f);
      assert.ok(r.ok, r.ok ? '' : r.error);
      return r.value;
    };
    assert.deepEqual(ok(frameOf('y', b('550 5.7.1 no\0'))), { kind: 'replyCode', text: '550 5.7.1 no' });
    assert.deepEqual(ok(frameOf('q', b('spam\0'))), { kind: 'quarantine', reason: 'spam' });
    assert.deepEqual(ok(frameOf('h', b('X-A\0Grüße\0'))), { kind: 'addHeader', name: 'X-A', value: 'Grüße' });
    assert.deepEqual(ok(frameOf('i', Buffer.concat([u32(2), b('X-B\0v\0')]))), {
      kind: 'insertHeader',
      index: 2,
      name: 'X-B',
      value: 'v',
    });
    assert.deepEqual(ok(frameOf('m', Buffer.concat([u32(1), b('Subject\0\0')]))), {
      kind: 'changeHeader',
      index: 1,
      name: 'Subject',
      value: '',
    });
    assert.deepEqual(ok(frameOf('b', b('new\r\n'))), { kind: 'replaceBody', chunk: b('new\r\n') });
    assert.deepEqual(ok(frameOf('+', b('<日本@example.net>\0'))), {
      kind: 'addRecipient',
      recipient: '<日本@example.net>',
      args: null,
    });
    assert.deepEqual(ok(frameOf('2', b('<x@example.net>\0NOTIFY=NEVER\0'))), {
      kind: 'addRecipient',
      recipient: '<x@example.net>',
      args: 'NOTIFY=NEVER',
    });
    assert.deepEqual(ok(frameOf('-', b('<jürgen@example.net>\0'))), {
      kind: 'deleteRecipient',
      recipient: '<jürgen@example.net>',
    });
    assert.deepEqual(ok(frameOf('e', b('<>\0'))), { kind: 'changeFrom', sender: '<>', args: null });
  });

  for (const [what, frame, error] of [
    ['an unknown command', frameOf('Z'), /'Z': unknown reply/],
    ['an unknown control byte', { command: 1, data: new Uint8Array(0) }, /0x01: unknown reply/],
    ['continue with data', frameOf('c', b('x')), /1 unexpected data bytes/],
    ['a reply code without NUL', frameOf('y', b('550 no')), /NUL/],
    ['a reply code with two strings', frameOf('y', b('550\0x\0')), /NUL/],
    ['an added header without value', frameOf('h', b('X-A\0')), /name and value/],
    ['an added header with an empty name', frameOf('h', b('\0v\0')), /name and value/],
    ['an inserted header without index', frameOf('i', b('ab')), /index/],
    ['a changed header with three strings', frameOf('m', Buffer.concat([u32(1), b('a\0b\0c\0')])), /index/],
    ['an empty recipient', frameOf('+', b('\0')), /recipient/],
    ['a recipient without NUL', frameOf('-', b('<x>')), /recipient/],
  ] as const) {
    test(`refused: ${what}`, () => {
      const r = parseReply(frame);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.error, error);
    });
  }
});

describe('milter reply text (SMFIR_REPLYCODE)', () => {
  test('accepted forms', () => {
    assert.deepEqual(parseReplyText('550 5.7.1 Go away'), {
      code: 550,
      enhanced: '5.7.1',
      lines: ['Go away'],
    });
    assert.deepEqual(parseReplyText('451 Try later'), { code: 451, enhanced: null, lines: ['Try later'] });
    assert.deepEqual(parseReplyText('550 5.7.1'), { code: 550, enhanced: '5.7.1', lines: [''] });
    assert.deepEqual(parseReplyText('421 4.3.2 100%% busy\r\n'), {
      code: 421,
      enhanced: '4.3.2',
      lines: ['100% busy'],
    });
    assert.deepEqual(parseReplyText('550-5.7.1 one\r\n550-5.7.1 two\r\n550 5.7.1 three'), {
      code: 550,
      enhanced: '5.7.1',
      lines: ['one', 'two', 'three'],
    });
    assert.deepEqual(parseReplyText('554 5.7.1 Grüße aus 日本'), {
      code: 554,
      enhanced: '5.7.1',
      lines: ['Grüße aus 日本'],
    });
  });

  for (const text of [
    '',
    '250 2.0.0 OK',
    '354 go on',
    '650 5.0.0 no',
    '55 short',
    '550',
    '550x5.7.1 bad separator',
    '550 4.7.1 class mismatch',
    '550-5.7.1 last line continues',
    '550 5.7.1 first\r\n550 5.7.1 second ends early',
    '550-5.7.1 one\r\n451 4.7.1 another code',
    '550 5.7.1 tab\there',
    '550 5.7.1 bell\u0007',
    '550 5.7.1 bare\rCR',
  ]) {
    test(`refused: ${JSON.stringify(text)}`, () => {
      assert.equal(parseReplyText(text), null);
    });
  }
});

describe('message splitter', () => {
  const run = (chunks: readonly Uint8Array[]): { fields: string[]; body: string; ended: number } => {
    const s = new MessageSplitter();
    const parts: MessagePart[] = [];
    for (const c of chunks) {
      const r = s.push(c);
      assert.ok(r.ok, r.ok ? '' : r.error);
      parts.push(...r.value);
    }
    const r = s.end();
    assert.ok(r.ok);
    parts.push(...r.value);
    return {
      fields: parts.flatMap((p) => (p.kind === 'field' ? [Buffer.from(p.raw).toString('utf8')] : [])),
      body: Buffer.concat(parts.flatMap((p) => (p.kind === 'body' ? [p.bytes] : []))).toString('utf8'),
      ended: parts.filter((p) => p.kind === 'endOfHeaders').length,
    };
  };

  const msg = b(
    'Received: from x\r\n\tby y\r\nSubject: Grüße\r\n  folded\r\nX-Empty:\r\n\r\nline 1\r\n\r\nline 3\r\n',
  );
  const expected = {
    fields: ['Received: from x\r\n\tby y', 'Subject: Grüße\r\n  folded', 'X-Empty:'],
    body: 'line 1\r\n\r\nline 3\r\n',
    ended: 1,
  };

  test('fields with their folding and the body after the empty line', () => {
    assert.deepEqual(run([msg]), expected);
  });

  test('the same at every split point', () => {
    for (let i = 0; i <= msg.length; i++)
      assert.deepEqual(run([msg.subarray(0, i), msg.subarray(i)]), expected, `split at ${i}`);
    assert.deepEqual(run([...msg].map((x) => Uint8Array.of(x))), expected);
  });

  test('bare LF line ends', () => {
    assert.deepEqual(run([b('A: 1\n B\nC: 2\n\nbody\n')]), {
      fields: ['A: 1\n B', 'C: 2'],
      body: 'body\n',
      ended: 1,
    });
  });

  test('a line that is no field ends the header block and is the body', () => {
    assert.deepEqual(run([b('A: 1\r\nnot a header\r\nmore\r\n')]), {
      fields: ['A: 1'],
      body: 'not a header\r\nmore\r\n',
      ended: 1,
    });
    assert.deepEqual(run([b(' starts with a blank\r\n')]), {
      fields: [],
      body: ' starts with a blank\r\n',
      ended: 1,
    });
  });

  test('a header block with no body, with or without the last line end', () => {
    assert.deepEqual(run([b('A: 1\r\nB: 2\r\n')]), { fields: ['A: 1', 'B: 2'], body: '', ended: 1 });
    assert.deepEqual(run([b('A: 1\r\nB: 2')]), { fields: ['A: 1', 'B: 2'], body: '', ended: 1 });
    assert.deepEqual(run([]), { fields: [], body: '', ended: 1 });
  });

  test('a field name with blanks before the colon', () => {
    assert.deepEqual(run([b('Subject : x\r\n\r\n')]).fields, ['Subject : x']);
  });

  test('a field over the bound is an error, also when it comes in pieces or has no line end yet', () => {
    const s = new MessageSplitter(100);
    assert.equal(s.push(b(`X: ${'a'.repeat(200)}\r\n`)).ok, false);
    assert.equal(s.push(b('Y: 1\r\n')).ok, false);
    const folded = new MessageSplitter(100);
    let failed = false;
    for (let i = 0; i < 10 && !failed; i++)
      failed = !folded.push(b(`${i === 0 ? 'X:' : ''} ${'a'.repeat(20)}\r\n`)).ok;
    assert.ok(failed);
    assert.equal(new MessageSplitter(100).push(b(`X: ${'a'.repeat(200)}`)).ok, false);
  });
});

describe('header fields as a milter is sent them', () => {
  const h = (s: string, lead: boolean): [string, string] => {
    const r = milterHeader(b(s), lead);
    return [Buffer.from(r.name).toString('utf8'), Buffer.from(r.value).toString('utf8')];
  };
  test('one space after the colon is eaten, not a tab, not two; folding becomes LF', () => {
    assert.deepEqual(h('Subject: hi', false), ['Subject', 'hi']);
    assert.deepEqual(h('Subject:  hi', false), ['Subject', ' hi']);
    assert.deepEqual(h('Subject:\thi', false), ['Subject', '\thi']);
    assert.deepEqual(h('Subject:hi', false), ['Subject', 'hi']);
    assert.deepEqual(h('Subject: a\r\n\tb\r\n c', false), ['Subject', 'a\n\tb\n c']);
    assert.deepEqual(h('Subject \t: x', false), ['Subject', 'x']);
    assert.deepEqual(h('X-Empty:', false), ['X-Empty', '']);
    assert.deepEqual(h('From: Jürgen <jürgen@example.org>', false), ['From', 'Jürgen <jürgen@example.org>']);
  });
  test('with SMFIP_HDR_LEADSPC the value keeps its leading space', () => {
    assert.deepEqual(h('Subject: hi', true), ['Subject', ' hi']);
    assert.deepEqual(h('Subject:hi', true), ['Subject', 'hi']);
  });
});
