// A small raw-socket IMAP client for the benchmark (bench/imap.ts): it frames server responses
// (lines, literals inside them, continuation requests), matches tagged completions to the commands
// that sent them, lets several commands be in flight at once, and speaks just enough of the protocol
// for the measurements: LOGIN, SELECT, FETCH, SEARCH, APPEND (LITERAL+ when offered, else a
// synchronizing literal), IDLE/DONE, LOGOUT. A general-purpose client (imapflow) would parse every
// response into objects; on a 10,000-message FETCH that work would be measured instead of the server.
// Also a minimal SMTP client, for delivering mail to Tern while an IMAP client IDLEs.
// Deliberately NOT here: parsing response contents (the caller looks at the few tokens it needs),
// TLS (the bench talks plaintext on loopback), SASL beyond LOGIN, reconnects.
// RFC 9051 §2.2 (commands and responses), §4.3 (literals), §6.3.13 (IDLE), §7.5 (completion);
// RFC 7888 (LITERAL+); RFC 5321 §3.3 (the SMTP transaction used for delivery).

import { connect } from 'node:net';
import type { Socket } from 'node:net';

/** One server response: its text with each literal's `{n}` marker left in place, and the literals. */
export interface ImapResponse {
  /** The response's text, lines joined with CRLF where a literal ended one; literals not included. */
  readonly text: string;
  /** Total bytes of the literals this response carried. */
  readonly literalBytes: number;
  /** The literals themselves, when the reader keeps them (else empty). */
  readonly literals: readonly Buffer[];
}

const LF = 0x0a;
/** `{123}` or `{123+}` at the end of a line: a literal of that many bytes follows (RFC 9051 §4.3, RFC 7888). */
const LITERAL_AT_END = /\{(\d+)\+?\}$/;

/**
 * Splits a byte stream from an IMAP server into responses. Pure and incremental: any split of the
 * same bytes into chunks gives the same responses. Literal bytes are never decoded as text.
 */
export class ResponseReader {
  readonly #keepLiterals: () => boolean;
  #pending: Buffer = Buffer.alloc(0);
  #parts: string[] = [];
  #literals: Buffer[] = [];
  #literalBytes = 0;
  /** Bytes of the current literal still to come; 0 while reading a line. */
  #remaining = 0;
  /** The pieces of the current literal, when it is kept. */
  #current: Buffer[] | null = null;

  /** keepLiterals is asked at the start of each literal, so a caller can keep some and count others. */
  constructor(keepLiterals: () => boolean = () => false) {
    this.#keepLiterals = keepLiterals;
  }

  /** Feeds bytes; returns the responses they completed. */
  feed(chunk: Buffer): ImapResponse[] {
    const out: ImapResponse[] = [];
    let data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, data.length);
        this.#current?.push(data.subarray(0, n));
        this.#remaining -= n;
        data = data.subarray(n);
        if (this.#remaining === 0) this.#endLiteral();
        continue;
      }
      const lf = data.indexOf(LF);
      if (lf < 0) {
        // A partial line: copied, so that the chunk it came in can be let go.
        this.#pending = Buffer.from(data);
        break;
      }
      const end = lf > 0 && data[lf - 1] === 0x0d ? lf - 1 : lf;
      const line = data.toString('utf8', 0, end);
      data = data.subarray(lf + 1);
      this.#parts.push(line);
      const m = LITERAL_AT_END.exec(line);
      if (m === null) {
        out.push(this.#finish());
        continue;
      }
      const n = Number(m[1]);
      this.#literalBytes += n;
      this.#current = this.#keepLiterals() ? [] : null;
      this.#remaining = n;
      if (n === 0) this.#endLiteral();
    }
    return out;
  }

  #endLiteral(): void {
    if (this.#current !== null) this.#literals.push(Buffer.concat(this.#current));
    this.#current = null;
  }

  #finish(): ImapResponse {
    const r: ImapResponse = {
      text: this.#parts.join('\r\n'),
      literalBytes: this.#literalBytes,
      literals: this.#literals,
    };
    this.#parts = [];
    this.#literals = [];
    this.#literalBytes = 0;
    return r;
  }
}

// ---------------------------------------------------------------------------------------------------
// The IMAP client

export type Completion = 'OK' | 'NO' | 'BAD';

export interface CommandResult {
  readonly status: Completion;
  /** The tagged completion line. */
  readonly text: string;
  /** Untagged responses that arrived while this was the oldest command in flight (when collected). */
  readonly untagged: readonly ImapResponse[];
  /** Untagged responses counted, collected or not. */
  readonly untaggedCount: number;
  /** From the command's write to its tagged completion (ms). */
  readonly ms: number;
  /** performance.now() when the completion was read. */
  readonly at: number;
}

export interface CommandOptions {
  /** Keep the untagged responses (else only count them). */
  readonly collect?: boolean;
  /** Keep the literals of those responses (else only count their bytes). */
  readonly keepLiterals?: boolean;
}

interface Pending {
  readonly tag: string;
  readonly o: CommandOptions;
  readonly t0: number;
  readonly untagged: ImapResponse[];
  count: number;
  readonly resolve: (r: CommandResult) => void;
  readonly reject: (e: Error) => void;
}

/** IMAP quoted string (RFC 9051 §4.3): backslash and double quote escaped; no CR or LF allowed. */
export function quoted(s: string): string {
  if (/[\r\n]/.test(s)) throw new Error('a quoted string cannot hold CR or LF');
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export class ImapClient {
  readonly #socket: Socket;
  readonly #reader: ResponseReader;
  readonly #pending: Pending[] = [];
  readonly #continuations: ((r: ImapResponse) => void)[] = [];
  #tags = 0;
  #error: Error | null = null;
  #writes: Promise<unknown> = Promise.resolve();
  /** Capabilities from the latest CAPABILITY response or response code. */
  capabilities: ReadonlySet<string> = new Set();
  /** Every untagged response is also given here (IDLE's EXISTS, for one). */
  onUntagged: ((r: ImapResponse, at: number) => void) | null = null;
  readonly greeting: string;

  private constructor(socket: Socket, reader: ResponseReader, greeting: string) {
    this.#socket = socket;
    this.#reader = reader;
    this.greeting = greeting;
    this.#noteCapabilities(greeting);
  }

  /** Connects and waits for the server's greeting (`* OK`); a `* BYE` or `* PREAUTH` is an error. */
  static open(port: number, host = '127.0.0.1'): Promise<ImapClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.setNoDelay(true);
      let client: ImapClient | null = null;
      const reader = new ResponseReader(() => (client === null ? false : client.#keepLiterals()));
      const fail = (err: Error): void => {
        if (client === null) {
          socket.destroy();
          reject(err);
        } else client.#fail(err);
      };
      socket.on('error', fail);
      socket.on('close', () => fail(new Error('connection closed')));
      socket.on('data', (chunk: Buffer) => {
        const at = performance.now();
        for (const r of reader.feed(chunk)) {
          if (client !== null) {
            client.#dispatch(r, at);
          } else if (r.text.startsWith('* OK')) {
            client = new ImapClient(socket, reader, r.text);
            resolve(client);
          } else {
            fail(new Error(`unexpected greeting: ${r.text.slice(0, 200)}`));
          }
        }
      });
    });
  }

  #keepLiterals(): boolean {
    return this.#pending[0]?.o.keepLiterals === true;
  }

  #noteCapabilities(text: string): void {
    const m = /^\* (?:OK \[)?CAPABILITY ([^\]\r\n]*)/i.exec(text) ?? /\[CAPABILITY ([^\]]*)\]/i.exec(text);
    if (m !== null) this.capabilities = new Set(m[1]!.toUpperCase().split(' '));
  }

  #dispatch(r: ImapResponse, at: number): void {
    if (r.text.startsWith('+')) {
      this.#continuations.shift()?.(r);
      return;
    }
    if (r.text.startsWith('* ')) {
      this.#noteCapabilities(r.text);
      const p = this.#pending[0];
      if (p !== undefined) {
        p.count += 1;
        if (p.o.collect === true) p.untagged.push(r);
      }
      this.onUntagged?.(r, at);
      return;
    }
    const sp = r.text.indexOf(' ');
    const tag = r.text.slice(0, sp);
    const i = this.#pending.findIndex((p) => p.tag === tag);
    if (i < 0) return;
    const p = this.#pending.splice(i, 1)[0]!;
    this.#noteCapabilities(r.text);
    const word = r.text.slice(sp + 1, sp + 4).toUpperCase();
    const status: Completion = word.startsWith('OK') ? 'OK' : word.startsWith('NO') ? 'NO' : 'BAD';
    p.resolve({
      status,
      text: r.text,
      untagged: p.untagged,
      untaggedCount: p.count,
      ms: at - p.t0,
      at,
    });
  }

  #fail(err: Error): void {
    if (this.#error !== null) return;
    this.#error = err;
    for (const p of this.#pending.splice(0)) p.reject(err);
    this.#continuations.length = 0;
    this.#socket.destroy();
  }

  #start(o: CommandOptions): { tag: string; done: Promise<CommandResult> } {
    if (this.#error !== null) throw this.#error;
    this.#tags += 1;
    const tag = `b${this.#tags}`;
    const done = new Promise<CommandResult>((resolve, reject) => {
      this.#pending.push({ tag, o, t0: performance.now(), untagged: [], count: 0, resolve, reject });
    });
    return { tag, done };
  }

  #continuation(): Promise<ImapResponse> {
    return new Promise((resolve) => this.#continuations.push(resolve));
  }

  /**
   * Writes go out in the order commands were started, one step at a time: a synchronizing literal (or
   * IDLE) holds back every later write until the server's continuation request, since anything sent
   * meanwhile would be read as the literal's bytes.
   */
  #enqueue(step: () => Promise<unknown> | void): void {
    this.#writes = this.#writes.then(step).catch(() => undefined);
  }

  /** Sends `TAG line` and resolves with its completion (NO and BAD resolve too: check status). */
  command(line: string, o: CommandOptions = {}): Promise<CommandResult> {
    const { tag, done } = this.#start(o);
    this.#enqueue(() => void this.#socket.write(`${tag} ${line}\r\n`));
    return done;
  }

  /** A command that must succeed. */
  async ok(line: string, o: CommandOptions = {}): Promise<CommandResult> {
    const r = await this.command(line, o);
    if (r.status !== 'OK') throw new Error(`${line.slice(0, 60)}: ${r.text.slice(0, 200)}`);
    return r;
  }

  async login(user: string, password: string): Promise<void> {
    await this.ok(`LOGIN ${quoted(user)} ${quoted(password)}`);
  }

  /**
   * A command whose last argument is a literal (RFC 9051 §4.3): `TAG prefix {n}` CRLF literal suffix
   * CRLF. With LITERAL+ (RFC 7888) everything goes in one write; without it the client waits for the
   * server's continuation request before sending the literal.
   */
  async withLiteral(
    prefix: string,
    literal: Buffer,
    suffix = '',
    o: CommandOptions = {},
  ): Promise<CommandResult> {
    const plus = this.capabilities.has('LITERAL+');
    const head = `${prefix} {${literal.length}${plus ? '+' : ''}}\r\n`;
    const { tag, done } = this.#start(o);
    const tail = Buffer.from(`${suffix}\r\n`);
    if (plus) {
      this.#enqueue(
        () => void this.#socket.write(Buffer.concat([Buffer.from(`${tag} ${head}`), literal, tail])),
      );
      return done;
    }
    // A server that refuses the literal completes the command instead of asking for it.
    const go = this.#continuation();
    const ready = Promise.race([go.then(() => null), done]);
    this.#enqueue(async () => {
      this.#socket.write(`${tag} ${head}`);
      if ((await ready) === null) this.#socket.write(Buffer.concat([literal, tail]));
    });
    return done;
  }

  /** APPEND one message (RFC 9051 §6.3.12) with its flags and internal date. */
  append(
    mailbox: string,
    message: Buffer,
    flags: readonly string[] = [],
    internalDate: string | null = null,
  ): Promise<CommandResult> {
    return this.withLiteral(
      `APPEND ${quoted(mailbox)}` +
        (flags.length > 0 ? ` (${flags.join(' ')})` : '') +
        (internalDate === null ? '' : ` ${quoted(internalDate)}`),
      message,
    );
  }

  /** Starts IDLE (RFC 9051 §6.3.13); resolves once the server's continuation says it is idling. */
  async idle(): Promise<{ done: () => Promise<CommandResult> }> {
    const go = this.#continuation();
    const { tag, done } = this.#start({});
    const ready = Promise.race([go.then(() => null), done]);
    this.#enqueue(async () => {
      this.#socket.write(`${tag} IDLE\r\n`);
      await ready;
    });
    const first = await ready;
    if (first !== null) throw new Error(`IDLE refused: ${first.text.slice(0, 200)}`);
    return {
      done: () => {
        this.#enqueue(() => void this.#socket.write('DONE\r\n'));
        return done;
      },
    };
  }

  /** LOGOUT and close; errors are ignored (the benchmark is done with this connection). */
  async logout(): Promise<void> {
    try {
      await this.command('LOGOUT');
    } catch {
      // The server may close before the completion arrives.
    }
    this.close();
  }

  close(): void {
    this.#error ??= new Error('closed by the client');
    this.#socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// A minimal SMTP client: delivers one message at a time on one connection and says when the 250
// after DATA arrived (the commit point of a durable server).

export class SmtpSender {
  readonly #socket: Socket;
  #buffer = '';
  #waiter: ((reply: { code: number; text: string; at: number }) => void) | null = null;
  #error: Error | null = null;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      const at = performance.now();
      this.#buffer += d;
      // A reply ends with a line whose code is followed by a space (RFC 5321 §4.2.1).
      for (;;) {
        const m = /(?:^|\n)(\d{3}) [^\n]*\n/.exec(this.#buffer);
        if (m === null) break;
        const text = this.#buffer.slice(0, m.index + m[0].length);
        this.#buffer = this.#buffer.slice(m.index + m[0].length);
        const w = this.#waiter;
        this.#waiter = null;
        w?.({ code: Number(m[1]), text, at });
      }
    });
    const fail = (err: Error): void => {
      this.#error ??= err;
      const w = this.#waiter;
      this.#waiter = null;
      w?.({ code: 0, text: err.message, at: performance.now() });
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static async open(port: number, host = '127.0.0.1'): Promise<SmtpSender> {
    const socket = connect({ host, port });
    socket.setNoDelay(true);
    const s = new SmtpSender(socket);
    await s.#expect(null, 220);
    await s.#expect('EHLO bench.client.test', 250);
    return s;
  }

  #reply(): Promise<{ code: number; text: string; at: number }> {
    if (this.#error !== null) return Promise.reject(this.#error);
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  async #expect(line: string | Buffer | null, code: number): Promise<number> {
    const reply = this.#reply();
    if (line !== null) this.#socket.write(typeof line === 'string' ? `${line}\r\n` : line);
    const r = await reply;
    if (r.code !== code) throw new Error(`SMTP: expected ${code}, got ${r.text.trim().slice(0, 200)}`);
    return r.at;
  }

  /** Sends one message (CRLF line ends, dot-stuffed here); resolves with when the 250 after DATA arrived. */
  async send(from: string, to: string, message: Buffer): Promise<number> {
    await this.#expect(`MAIL FROM:<${from}>`, 250);
    await this.#expect(`RCPT TO:<${to}>`, 250);
    await this.#expect('DATA', 354);
    const body = message.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
    const end = body.endsWith('\r\n') ? '.\r\n' : '\r\n.\r\n';
    return this.#expect(Buffer.from(body + end, 'latin1'), 250);
  }

  close(): void {
    this.#socket.end('QUIT\r\n');
    this.#socket.destroy();
  }
}
