import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ClamdAnswerReader,
  END_OF_STREAM,
  INSTREAM_COMMAND,
  MAX_ANSWER_BYTES,
  MAX_NAME_CHARS,
  chunkHeader,
  frameChunks,
  parseClamdAnswer,
  sanitizeName,
  type ClamdAnswer,
} from './clamd.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Reads INSTREAM framing back: the chunks' payloads, and whether the stream ended with a zero chunk. */
function unframe(wire: Uint8Array): { chunks: Uint8Array[]; ended: boolean; rest: number } {
  const view = new DataView(wire.buffer, wire.byteOffset, wire.byteLength);
  const chunks: Uint8Array[] = [];
  let at = 0;
  while (at + 4 <= wire.length) {
    const n = view.getUint32(at, false);
    at += 4;
    if (n === 0) return { chunks, ended: true, rest: wire.length - at };
    chunks.push(wire.subarray(at, at + n));
    at += n;
  }
  return { chunks, ended: false, rest: wire.length - at };
}

function concat(parts: Iterable<Uint8Array>): Uint8Array {
  const list = [...parts];
  const out = new Uint8Array(list.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of list) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function readAll(...pieces: (string | Uint8Array)[]): ClamdAnswer | null {
  const r = new ClamdAnswerReader();
  let a: ClamdAnswer | null = null;
  for (const p of pieces) a = r.push(typeof p === 'string' ? bytes(p) : p);
  return a;
}

describe('clamd INSTREAM framing', () => {
  test('the command is zINSTREAM and NUL; the end is a zero-length chunk', () => {
    assert.deepEqual([...INSTREAM_COMMAND], [...bytes('zINSTREAM\0')]);
    assert.deepEqual([...END_OF_STREAM], [0, 0, 0, 0]);
  });

  test('chunk headers are 4-byte big-endian lengths', () => {
    assert.deepEqual([...chunkHeader(1)], [0, 0, 0, 1]);
    assert.deepEqual([...chunkHeader(65536)], [0, 1, 0, 0]);
    assert.deepEqual([...chunkHeader(0x01020304)], [1, 2, 3, 4]);
    assert.deepEqual([...chunkHeader(0xffffffff)], [255, 255, 255, 255]);
  });

  test('frameChunks: pieces of at most the chunk size, views of the data, reassembling to it', () => {
    const data = new Uint8Array(200_001).map((_, i) => (i * 7) & 255);
    const parts = [...frameChunks(data, 65536)].flat();
    assert.equal(parts.length, 8, '4 chunks, each header + piece');
    assert.equal(parts[1]!.buffer, data.buffer, 'a view, not a copy');
    const wire = concat([...parts, END_OF_STREAM]);
    const { chunks, ended, rest } = unframe(wire);
    assert.ok(ended);
    assert.equal(rest, 0);
    assert.deepEqual(
      chunks.map((c) => c.length),
      [65536, 65536, 65536, 3393],
    );
    assert.deepEqual(concat(chunks), data);
  });

  test('frameChunks: empty data gives no chunk (a zero chunk would end the stream early)', () => {
    assert.deepEqual([...frameChunks(new Uint8Array(0))], []);
    assert.deepEqual(
      [...frameChunks(bytes('abc'), 0)].flat().map((p) => [...p]),
      [[0, 0, 0, 1], [97], [0, 0, 0, 1], [98], [0, 0, 0, 1], [99]],
      'a chunk size below 1 is 1',
    );
  });
});

describe('clamd answers', () => {
  test('every answer form', () => {
    assert.deepEqual(parseClamdAnswer('stream: OK'), { kind: 'clean' });
    assert.deepEqual(parseClamdAnswer('stream: Eicar-Test-Signature FOUND'), {
      kind: 'virus',
      name: 'Eicar-Test-Signature',
    });
    assert.deepEqual(parseClamdAnswer('stream: Eicar-Test-Signature.UNOFFICIAL FOUND'), {
      kind: 'virus',
      name: 'Eicar-Test-Signature.UNOFFICIAL',
    });
    assert.deepEqual(parseClamdAnswer('INSTREAM size limit exceeded. ERROR'), { kind: 'too-large' });
    assert.deepEqual(parseClamdAnswer("stream: Can't allocate memory ERROR"), {
      kind: 'error',
      message: "Can't allocate memory",
    });
    assert.deepEqual(parseClamdAnswer('Error processing command. ERROR'), {
      kind: 'error',
      message: 'Error processing command.',
    });
    assert.deepEqual(parseClamdAnswer('stream: OK\n'), { kind: 'clean' }, 'the newline form');
  });

  test('garbage and near misses are malformed, never a verdict', () => {
    for (const text of [
      '',
      'PONG',
      'UNKNOWN COMMAND',
      'COMMAND READ TIMED OUT',
      'stream: ok',
      'stream:OK',
      ' stream: OK',
      'stream: OK trailing',
      'stream: X found',
      'FOUND',
      'ERROR',
      'HTTP/1.1 400 Bad Request',
    ]) {
      const a = parseClamdAnswer(text);
      assert.equal(a.kind, 'malformed', JSON.stringify(text));
    }
  });

  test('a FOUND with a weird name: control characters, CR LF, UTF-8, overlong, empty', () => {
    const crlf = parseClamdAnswer('stream: Evil\r\n250 OK\u0007 FOUND');
    assert.deepEqual(crlf, { kind: 'virus', name: 'Evil??250 OK?' });
    assert.deepEqual(parseClamdAnswer('stream: Virüs.日本 FOUND'), { kind: 'virus', name: 'Vir?s.??' });
    const long = parseClamdAnswer(`stream: ${'A'.repeat(1000)} FOUND`);
    assert.equal(long.kind, 'virus');
    if (long.kind === 'virus') assert.equal(long.name, `${'A'.repeat(MAX_NAME_CHARS)}...`);
    assert.deepEqual(parseClamdAnswer('stream:   FOUND'), { kind: 'virus', name: 'unnamed' });
    assert.deepEqual(parseClamdAnswer('stream: Two FOUND FOUND'), { kind: 'virus', name: 'Two FOUND' });
    assert.equal(sanitizeName('\u0000\u001f\u007f'), '???');
    assert.deepEqual(parseClamdAnswer(' ERROR'), { kind: 'error', message: 'unspecified' });
  });

  test('the reader: answers split anywhere, bytes after the NUL ignored', () => {
    const wire = bytes('stream: Eicar-Test-Signature FOUND\0');
    for (let cut = 0; cut <= wire.length; cut++) {
      const r = new ClamdAnswerReader();
      const first = r.push(wire.subarray(0, cut));
      const second = r.push(wire.subarray(cut));
      assert.equal(first, cut === wire.length ? second : null, `cut at ${cut}`);
      assert.deepEqual(second, { kind: 'virus', name: 'Eicar-Test-Signature' }, `cut at ${cut}`);
    }
    assert.deepEqual(readAll('stream: A FOUND\0stream: B FOUND\0'), { kind: 'virus', name: 'A' });
    assert.deepEqual(readAll('stream: OK\0', 'garbage after'), { kind: 'clean' });
    // A UTF-8 character split between reads is decoded whole (then made '?').
    const utf8 = bytes('stream: ü FOUND\0');
    assert.deepEqual(readAll(utf8.subarray(0, 9), utf8.subarray(9)), { kind: 'virus', name: '?' });
  });

  test('the reader: no NUL before the end, nothing at all, an oversize answer, invalid UTF-8', () => {
    const noNul = new ClamdAnswerReader();
    assert.equal(noNul.push(bytes('stream: OK')), null);
    assert.deepEqual(noNul.end(), { kind: 'malformed', why: 'answer without its NUL: "stream: OK"' });
    assert.deepEqual(new ClamdAnswerReader().end(), { kind: 'malformed', why: 'closed without answering' });

    const big = new ClamdAnswerReader();
    let a: ClamdAnswer | null = null;
    for (let i = 0; i < 100 && a === null; i++) a = big.push(new Uint8Array(1000).fill(0x41));
    assert.deepEqual(a, { kind: 'malformed', why: `answer longer than ${MAX_ANSWER_BYTES} bytes` });
    assert.deepEqual(big.push(bytes('stream: OK\0')), a, 'decided once');
    assert.deepEqual(big.end(), a);

    const exact = new ClamdAnswerReader();
    assert.equal(
      exact.push(new Uint8Array(MAX_ANSWER_BYTES).fill(0x41)),
      null,
      'the limit itself is allowed',
    );
    assert.equal(exact.push(bytes('\0'))?.kind, 'malformed', 'but AAAA… is no answer');

    assert.deepEqual(readAll(new Uint8Array([0x73, 0xff, 0xfe, 0])), {
      kind: 'malformed',
      why: 'unexpected answer "s??"',
    });
    assert.deepEqual(readAll(new Uint8Array([0])), { kind: 'malformed', why: 'unexpected answer ""' });
  });
});
