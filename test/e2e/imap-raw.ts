// A raw IMAP client for end-to-end tests: exact bytes out, responses read whole (a response line with the
// literals it announces, RFC 9051 §4.3 and §7.5), over plain TCP, STARTTLS or implicit TLS, from a chosen
// loopback address; and small helpers to read what comes back (capabilities, IMAP date-times, quoting).
// Deliberately NOT here: assertions about Tern's behaviour beyond "the greeting is an OK" (the *.test.ts
// files make those) and a response parser: tests match the text, which is the point of a raw client.

import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { waitFor } from './harness.ts';

/** One command's answer: the untagged (and continuation) responses before it, and the tagged one. */
export interface Answer {
  readonly untagged: readonly string[];
  readonly tagged: string;
}

/**
 * An IMAP client over a raw socket: exact bytes out, responses read whole (a response line with its
 * literals, RFC 9051 §4.3), for byte-exact dialogues.
 */
export class RawImap {
  #socket: Socket | TLSSocket;
  #buffer = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: Socket | TLSSocket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', this.#onData);
    socket.on('close', this.#onClose);
    socket.on('error', () => undefined);
  }

  readonly #onData = (d: Buffer): void => {
    this.#buffer = Buffer.concat([this.#buffer, d]);
    for (const w of this.#waiters.splice(0)) w();
  };

  readonly #onClose = (): void => {
    this.closed = true;
    for (const w of this.#waiters.splice(0)) w();
  };

  /** Connect without reading the greeting; `localAddress` picks the client's loopback address. */
  static async connect(
    port: number,
    options: { tls?: boolean; localAddress?: string } = {},
  ): Promise<RawImap> {
    const plain = netConnect({ host: '127.0.0.1', port, localAddress: options.localAddress });
    await new Promise<void>((resolve, reject) => {
      plain.once('connect', () => resolve());
      plain.once('error', reject);
    });
    plain.setNoDelay(true);
    if (!options.tls) return new RawImap(plain);
    const socket = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'mx.example.test' });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    return new RawImap(socket);
  }

  /** Connect and read the greeting, which must be an untagged OK. */
  static async open(port: number, options: { tls?: boolean; localAddress?: string } = {}): Promise<RawImap> {
    const c = await RawImap.connect(port, options);
    const greeting = await c.response();
    assert.match(greeting, /^\* OK /);
    return c;
  }

  async write(bytes: string | Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#socket.write(bytes, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Bytes received and not yet read as responses. */
  get pending(): Buffer {
    return this.#buffer;
  }

  async #wait(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The length of the first complete response in the buffer (literals included), or -1. */
  #completeLength(): number {
    let offset = 0;
    for (;;) {
      const end = this.#buffer.indexOf('\r\n', offset);
      if (end < 0) return -1;
      const m = /\{(\d+)\}$/.exec(this.#buffer.subarray(offset, end).toString('latin1'));
      if (m === null) return end + 2;
      const next = end + 2 + Number(m[1]);
      if (this.#buffer.length < next) return -1;
      offset = next;
    }
  }

  /** The next whole response (one line, or lines joined by literals) without its final CRLF. */
  async response(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const n = this.#completeLength();
      if (n >= 0) {
        const text = this.#buffer.subarray(0, n - 2).toString('utf8');
        this.#buffer = this.#buffer.subarray(n);
        return text;
      }
      if (this.closed)
        throw new Error(`closed before a whole response; unread: ${JSON.stringify(this.#buffer.toString())}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `no response within ${timeoutMs} ms; unread: ${JSON.stringify(this.#buffer.toString())}`,
        );
      await this.#wait(left);
    }
  }

  /** Responses up to and including the one tagged `tag`. */
  async answer(tag: string, timeoutMs = 10_000): Promise<Answer> {
    const untagged: string[] = [];
    for (;;) {
      let r: string;
      try {
        r = await this.response(timeoutMs);
      } catch (err) {
        throw withUntagged(err, tag, untagged);
      }
      if (r.startsWith(`${tag} `)) return { untagged, tagged: r };
      untagged.push(r);
    }
  }

  /** Like answer(), but a close before the tagged response is an answer too (tagged null). */
  async answerOrClose(
    tag: string,
    timeoutMs = 10_000,
  ): Promise<{ untagged: string[]; tagged: string | null }> {
    const untagged: string[] = [];
    for (;;) {
      let r: string;
      try {
        r = await this.response(timeoutMs);
      } catch (err) {
        if (!this.closed) throw withUntagged(err, tag, untagged);
        return { untagged, tagged: null };
      }
      if (r.startsWith(`${tag} `)) return { untagged, tagged: r };
      untagged.push(r);
    }
  }

  /** Send `tag text` and read its answer. */
  async command(tag: string, text: string, timeoutMs = 10_000): Promise<Answer> {
    await this.write(`${tag} ${text}\r\n`);
    return this.answer(tag, timeoutMs);
  }

  /** Everything received until the server closes (fails after `timeoutMs`). */
  async untilClosed(timeoutMs = 10_000): Promise<string> {
    await waitFor(
      'the server to close the connection',
      () => (this.closed ? true : undefined),
      timeoutMs,
      10,
    );
    const text = this.#buffer.toString('utf8');
    this.#buffer = Buffer.alloc(0);
    return text;
  }

  /** Wait `ms` and return what arrived meanwhile (tests assert this is empty). */
  async drain(ms: number): Promise<string> {
    await sleep(ms);
    const text = this.#buffer.toString('utf8');
    this.#buffer = Buffer.alloc(0);
    return text;
  }

  /** TLS over this connection (after the OK to STARTTLS); bytes already received stay in `pending`. */
  async startTls(): Promise<void> {
    const plain = this.#socket;
    plain.off('data', this.#onData);
    plain.off('close', this.#onClose);
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'mx.example.test' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.#socket = secure;
    this.#attach(secure);
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** The error of a wait for `tag`, with what came before it (an untagged BAD is often the clue). */
function withUntagged(err: unknown, tag: string, untagged: readonly string[]): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`waiting for ${tag}: ${message}; untagged before it: ${JSON.stringify(untagged)}`);
}

/** An IMAP quoted string (RFC 9051 §4.3; UTF-8 inside is IMAP4rev2's). */
export function quoted(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** An IMAP date-time (RFC 9051 §9: " 1-Jan-2025 09:00:00 +0000") as milliseconds since the epoch. */
export function imapDateMs(text: string): number {
  const m = /^ ?(\d{1,2})-([A-Z][a-z]{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(text);
  assert.ok(m, `not an IMAP date-time: ${JSON.stringify(text)}`);
  const zoneMs = (Number(m[8]) * 60 + Number(m[9])) * 60_000 * (m[7] === '-' ? -1 : 1);
  const local = Date.UTC(
    Number(m[3]),
    MONTHS.indexOf(m[2]!),
    Number(m[1]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
  );
  return local - zoneMs;
}

/** The CAPABILITY words of a greeting or a CAPABILITY response. */
export function capabilitiesIn(response: string): string[] {
  const m = /CAPABILITY ([^\]\r\n]*)/.exec(response);
  assert.ok(m, `no capabilities in ${response}`);
  return m[1]!.trim().split(' ');
}
