// HTTP/1.1 responses (RFC 9112) as a client reads them, from the bytes received so far: the status
// line, the header fields, and a body given by Content-Length, chunked, or read to the close (§6.3);
// interim 1xx responses are skipped. Bounded: a head over MAX_HEAD_BYTES or a body over the caller's
// bound is an error.
// PURE and total: bytes in, a parse out; never throws, no I/O, no timers.
// Deliberately NOT here: requests (each client formats its own head), the socket and what an answer
// means (policy/filters/rspamd.ts), keep-alive and pipelining (one response per connection), content
// codings (a compressed body is an error: we ask for none), HTTP/2.

/** The status line and header fields together, and a chunked body's trailer. */
export const MAX_HEAD_BYTES = 16 * 1024;

export interface HttpResponse {
  readonly status: number;
  readonly reason: string;
  /** Field names lower-cased; repeated fields joined with ", ". */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Uint8Array;
}

export type HttpParse =
  | { readonly kind: 'more' }
  | { readonly kind: 'reply'; readonly reply: HttpResponse }
  | { readonly kind: 'error'; readonly reason: string };

const CRLFCRLF = new Uint8Array([13, 10, 13, 10]);
const latin1 = new TextDecoder('latin1');

/**
 * The response in `bytes` (all received so far); `ended` once the peer has closed, so that a response
 * cut short is an error and a body without a length ends there. Never `more` when `ended`. Interim 1xx
 * responses are skipped. A body over `maxBodyBytes` is an error, as is a compressed one (we ask for
 * none). A body given by Content-Length or chunked, or read to the close (RFC 9112 §6.3).
 */
export function parseHttpResponse(bytes: Uint8Array, ended: boolean, maxBodyBytes: number): HttpParse {
  const more = (what: string): HttpParse =>
    ended ? { kind: 'error', reason: `connection closed within the ${what}` } : { kind: 'more' };
  let start = 0;
  for (;;) {
    const headEnd = indexOf(bytes, CRLFCRLF, start);
    if (headEnd < 0) {
      if (bytes.length - start > MAX_HEAD_BYTES) return { kind: 'error', reason: 'response head too long' };
      return more('response head');
    }
    if (headEnd - start > MAX_HEAD_BYTES) return { kind: 'error', reason: 'response head too long' };
    const lines = latin1.decode(bytes.subarray(start, headEnd)).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]!);
    if (m === null) return { kind: 'error', reason: `not an HTTP/1.1 status line: ${printable(lines[0]!)}` };
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0 || /[\s]/.test(line.slice(0, colon)) || /^[ \t]/.test(line))
        return { kind: 'error', reason: `bad response header line: ${printable(line)}` };
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      const prev = headers.get(name);
      headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
    }
    const bodyStart = headEnd + 4;
    if (status >= 100 && status < 200) {
      start = bodyStart;
      continue;
    }
    const reply = (body: Uint8Array): HttpParse => ({
      kind: 'reply',
      reply: { status, reason: printable(m[2] ?? ''), headers, body },
    });
    const encoding = headers.get('content-encoding');
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity')
      return { kind: 'error', reason: `a ${printable(encoding)} body, which was not asked for` };
    if (status === 204 || status === 304) return reply(new Uint8Array(0));
    const transfer = headers.get('transfer-encoding');
    if (transfer !== undefined) {
      if (transfer.toLowerCase() !== 'chunked')
        return { kind: 'error', reason: `transfer coding ${printable(transfer)} not supported` };
      const chunked = dechunk(bytes, bodyStart, maxBodyBytes);
      if (chunked.kind === 'more') return more('chunked body');
      if (chunked.kind === 'error') return chunked;
      return reply(chunked.body);
    }
    const length = headers.get('content-length');
    if (length !== undefined) {
      if (!/^\d{1,15}$/.test(length))
        return { kind: 'error', reason: `bad Content-Length: ${printable(length)}` };
      const n = Number(length);
      if (n > maxBodyBytes) return { kind: 'error', reason: `answer of ${n} octets is over ${maxBodyBytes}` };
      if (bytes.length - bodyStart < n) return more('body');
      return reply(bytes.subarray(bodyStart, bodyStart + n));
    }
    if (bytes.length - bodyStart > maxBodyBytes)
      return { kind: 'error', reason: `answer over ${maxBodyBytes} octets` };
    if (!ended) return { kind: 'more' };
    return reply(bytes.subarray(bodyStart));
  }
}

type Dechunked =
  | { readonly kind: 'more' }
  | { readonly kind: 'error'; readonly reason: string }
  | { readonly kind: 'done'; readonly body: Uint8Array };

/** A chunked body (RFC 9112 §7.1) from `pos`; trailer fields are read past and dropped. */
function dechunk(bytes: Uint8Array, pos: number, maxBodyBytes: number): Dechunked {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const eol = indexOf(bytes, CRLFCRLF.subarray(0, 2), pos);
    if (eol < 0)
      return bytes.length - pos > 1024
        ? { kind: 'error', reason: 'chunk size line too long' }
        : { kind: 'more' };
    const sizeLine = latin1.decode(bytes.subarray(pos, eol));
    const m = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;.*)?$/.exec(sizeLine);
    if (m === null) return { kind: 'error', reason: `bad chunk size line: ${printable(sizeLine)}` };
    const size = parseInt(m[1]!, 16);
    pos = eol + 2;
    if (size === 0) {
      // Trailer fields, then the empty line.
      for (;;) {
        const end = indexOf(bytes, CRLFCRLF.subarray(0, 2), pos);
        if (end < 0)
          return bytes.length - pos > MAX_HEAD_BYTES
            ? { kind: 'error', reason: 'trailer too long' }
            : { kind: 'more' };
        if (end === pos) return { kind: 'done', body: Buffer.concat(parts) };
        pos = end + 2;
      }
    }
    total += size;
    if (total > maxBodyBytes) return { kind: 'error', reason: `answer over ${maxBodyBytes} octets` };
    if (bytes.length < pos + size + 2) return { kind: 'more' };
    if (bytes[pos + size] !== 13 || bytes[pos + size + 1] !== 10)
      return { kind: 'error', reason: 'chunk not followed by CRLF' };
    parts.push(bytes.subarray(pos, pos + size));
    pos += size + 2;
  }
}

function indexOf(bytes: Uint8Array, needle: Uint8Array, from: number): number {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(needle, from);
}

/** A text from the peer fit for a log line: no controls, bounded. */
function printable(s: string): string {
  const clean = s.replace(/[\x00-\x1f\x7f-\x9f]/g, ' ').trim();
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}
