import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseHttpResponse, type HttpParse } from './http.ts';

const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');

function response(p: HttpParse) {
  assert.equal(p.kind, 'reply', JSON.stringify(p));
  if (p.kind !== 'reply') throw new Error('unreachable');
  return p.reply;
}
function error(p: HttpParse): string {
  assert.equal(p.kind, 'error', JSON.stringify(p));
  return p.kind === 'error' ? p.reason : '';
}

describe('HTTP/1.1 responses', () => {
  const OK =
    'HTTP/1.1 200 OK\r\nConnection: close\r\nServer: rspamd/3.4\r\nContent-Length: 13\r\nContent-Type: application/json\r\n\r\n{"score":1.0}';

  test('Content-Length: status, headers, body; every split is `more` until complete; cut and closed is an error', () => {
    const r = response(parseHttpResponse(enc(OK), false, 1 << 20));
    assert.equal(r.status, 200);
    assert.equal(r.reason, 'OK');
    assert.equal(r.headers.get('server'), 'rspamd/3.4');
    assert.equal(Buffer.from(r.body).toString(), '{"score":1.0}');
    const whole = enc(OK);
    for (let i = 0; i < whole.length; i++) {
      assert.deepEqual(parseHttpResponse(whole.subarray(0, i), false, 1 << 20), { kind: 'more' }, `at ${i}`);
      assert.equal(parseHttpResponse(whole.subarray(0, i), true, 1 << 20).kind, 'error', `closed at ${i}`);
    }
  });

  test('chunked, with extensions and trailer fields; split anywhere', () => {
    const wire = enc(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{"a":\r\nA\r\n"0123456"}\r\n0\r\nX-Trailer: t\r\n\r\n',
    );
    assert.equal(
      Buffer.from(response(parseHttpResponse(wire, false, 1 << 20)).body).toString(),
      '{"a":"0123456"}',
    );
    for (let i = 0; i < wire.length; i++) {
      assert.deepEqual(parseHttpResponse(wire.subarray(0, i), false, 1 << 20), { kind: 'more' }, `at ${i}`);
      assert.equal(parseHttpResponse(wire.subarray(0, i), true, 1 << 20).kind, 'error', `closed at ${i}`);
    }
  });

  test('a body without a length runs to the close; 1xx interim responses are skipped', () => {
    const wire = enc('HTTP/1.0 200 OK\r\n\r\n{"x":1}');
    assert.deepEqual(parseHttpResponse(wire, false, 1 << 20), { kind: 'more' });
    assert.equal(Buffer.from(response(parseHttpResponse(wire, true, 1 << 20)).body).toString(), '{"x":1}');
    const r = response(parseHttpResponse(enc(`HTTP/1.1 100 Continue\r\n\r\n${OK}`), false, 1 << 20));
    assert.equal(r.status, 200);
  });

  test('oversize: a Content-Length, a chunked body, a body to the close, a head over the bounds', () => {
    assert.match(
      error(parseHttpResponse(enc('HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n'), false, 1 << 20)),
      /2000000 octets is over 1048576/,
    );
    assert.match(
      error(
        parseHttpResponse(
          enc('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFF\r\n'),
          false,
          1 << 20,
        ),
      ),
      /over 1048576/,
    );
    const chunks =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + `400\r\n${'x'.repeat(1024)}\r\n`.repeat(1100);
    assert.match(error(parseHttpResponse(enc(chunks), false, 1 << 20)), /over 1048576/);
    assert.match(
      error(parseHttpResponse(enc('HTTP/1.1 200 OK\r\n\r\n' + 'y'.repeat(70_000)), false, 65536)),
      /over 65536/,
    );
    assert.match(
      error(parseHttpResponse(enc('HTTP/1.1 200 OK\r\nX: ' + 'z'.repeat(20_000)), false, 1 << 20)),
      /head too long/,
    );
  });

  test('garbage and hostile responses are errors', () => {
    const bad: [string, RegExp][] = [
      ['SPAMD/1.1 0 EX_OK\r\n\r\n', /not an HTTP\/1\.1 status line/],
      ['\x00\x01garbage\r\n\r\n', /not an HTTP\/1\.1 status line/],
      ['HTTP/2 200\r\n\r\n', /not an HTTP\/1\.1 status line/],
      ['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /bad response header line/],
      ['HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', /bad response header line/],
      ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /bad Content-Length/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n', /bad Content-Length/],
      ['HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n\r\nx', /gzip body/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', /transfer coding/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /bad chunk size line/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', /chunk not followed by CRLF/],
    ];
    for (const [wire, reason] of bad)
      assert.match(error(parseHttpResponse(enc(wire), false, 1 << 20)), reason, wire);
  });
});
