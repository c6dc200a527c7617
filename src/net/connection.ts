// The connection shell: the one owner of an accepted client socket, shared by every protocol driver (SMTP
// today; POP3, IMAP and ManageSieve next). It reads with a bound, delivers input to the driver one chunk
// at a time and pauses the socket while the driver is busy (awaiting a decision) and the backlog grows;
// it upgrades to TLS (STARTTLS, or implicit TLS at connect, RFC 8314), computes channel-binding data and
// reports the client certificate; it runs the driver's idle timer and absolute deadlines; it writes with
// backpressure and closes cleanly (half-close with a destroy fallback, or a cut-off for abusive peers).
// Deliberately NOT here: any protocol text (the driver formats every byte it writes), line framing
// (protocol/framing.ts, pure, so pure sessions can use it too), logging (the driver logs what it is told),
// connection limits (the listener).
//
// SECURITY: startTls() throws away every byte read before the handshake, whatever the driver had not yet
// consumed (CVE-2011-0411 class: plaintext pipelined after STARTTLS must never be read as if encrypted).
// The driver must drop its own unparsed buffer too (SmtpSession does).

import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import {
  constants as zlibConstants,
  createDeflateRaw,
  createInflateRaw,
  type DeflateRaw,
  type InflateRaw,
} from 'node:zlib';
import type { X509Certificate } from 'node:crypto';
import type { ClientInfo } from '../core/envelope.ts';

/** Cipher and version of an encrypted connection, as the logs and Received: show them. */
export type TlsInfo = NonNullable<ClientInfo['tls']>;

/** Channel-binding data of this TLS connection by type (the shape protocol/sasl's ChannelBinding takes). */
export interface TlsChannelBinding {
  'tls-exporter'?: Uint8Array;
  'tls-unique'?: Uint8Array;
}

/** The client's certificate as the handshake left it; `authorized`: verified by the TLS stack itself. */
export interface ClientCertificate {
  readonly x509: X509Certificate;
  readonly authorized: boolean;
}

/** Client certificates during the handshake: not asked for, asked for, or required (closed without one). */
export type ClientCertificateMode = 'none' | 'request' | 'require';

export interface ServerTlsOptions {
  readonly secureContext: SecureContext;
  readonly clientCertificates: ClientCertificateMode;
  readonly timeoutMs: number;
}

export type HandshakeResult =
  | { readonly ok: true; readonly socket: TLSSocket }
  /** The socket (raw and TLS) is destroyed; `error` is for the log. */
  | { readonly ok: false; readonly error: string };

/**
 * The server side of a TLS handshake on an accepted socket: the one implementation, used for STARTTLS and
 * for implicit TLS. Client certificates are requested but never rejected by the handshake: the
 * authenticator judges them (CA or fingerprint mapping); `require` only closes when none was sent.
 */
export function serverHandshake(raw: Socket, options: ServerTlsOptions): Promise<HandshakeResult> {
  const tlsSocket = new TLSSocket(raw, {
    isServer: true,
    secureContext: options.secureContext,
    requestCert: options.clientCertificates !== 'none',
    rejectUnauthorized: false,
  });
  return new Promise<HandshakeResult>((resolve) => {
    const settle = (result: HandshakeResult): void => {
      clearTimeout(timer);
      tlsSocket.off('secure', onSecure);
      tlsSocket.off('error', onError);
      tlsSocket.off('close', onClose);
      if (!result.ok) {
        // Late errors of a socket we gave up on must not become uncaught exceptions.
        tlsSocket.on('error', () => undefined);
        raw.on('error', () => undefined);
        tlsSocket.destroy();
        raw.destroy();
      }
      resolve(result);
    };
    const onSecure = (): void => {
      if (options.clientCertificates === 'require' && !tlsSocket.getPeerX509Certificate())
        return settle({ ok: false, error: 'client certificate required' });
      settle({ ok: true, socket: tlsSocket });
    };
    const onError = (err: Error): void => settle({ ok: false, error: err.message });
    const onClose = (): void => settle({ ok: false, error: 'closed during the TLS handshake' });
    const timer = setTimeout(() => settle({ ok: false, error: 'TLS handshake timeout' }), options.timeoutMs);
    tlsSocket.once('secure', onSecure);
    tlsSocket.once('error', onError);
    tlsSocket.once('close', onClose);
  });
}

/** "::ffff:127.0.0.1" → "127.0.0.1" so logs, limits and Received: show the address people expect. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
}

export function describeTls(socket: TLSSocket): TlsInfo {
  const cipher = socket.getCipher?.();
  return {
    version: socket.getProtocol?.() ?? 'unknown',
    cipher: cipher?.standardName ?? cipher?.name ?? 'unknown',
  };
}

/** What the driver is told; `data` and `tlsFailed` never run after `closed`. */
export interface ConnectionHandlers {
  /** Input, in arrival order; the next chunk waits until the returned promise settles. */
  data(chunk: Uint8Array): void | Promise<void>;
  /** A socket error; the shell destroys the socket next (and `closed` follows with 'client closed'). */
  error?(err: Error): void;
  /** The STARTTLS handshake failed; `closed` follows at once. */
  tlsFailed?(error: string): void;
  /** The connection is over, exactly once; timers are already cleared. */
  closed(reason: string): void;
}

export interface ConnectionOptions {
  /** Above this many unconsumed bytes the socket is paused until the driver catches up. */
  readonly maxBufferedBytes: number;
  /** For STARTTLS; null when no certificate is loaded (startTls then fails). */
  readonly tls: Omit<ServerTlsOptions, 'secureContext'> & { readonly secureContext: SecureContext | null };
  /** The endpoints a PROXY protocol header named (readProxyHeader), in place of the socket's own. */
  readonly proxied?: ProxiedEndpoints;
}

/** The client and the address it connected to, as a PROXY protocol header named them. */
export interface ProxiedEndpoints {
  readonly source: { readonly ip: string; readonly port: number };
  readonly destination: { readonly ip: string; readonly port: number };
}

/** What a preamble decoder says of the bytes so far. */
export type PreambleDecision<T> =
  | 'need-more'
  | { readonly ok: true; readonly value: T; readonly consumed: number }
  | { readonly ok: false; readonly error: string };

export type PreambleResult<T> =
  /** `rest`: bytes read after the preamble (the session's, or its TLS handshake's). */
  | { readonly ok: true; readonly value: T; readonly rest: Uint8Array }
  /** Why there is none; the caller closes the socket. */
  | { readonly ok: false; readonly error: string };

/**
 * Read a preamble (the PROXY protocol header) off a socket nothing has read yet, within `timeoutMs`,
 * before any protocol or TLS sees it. `decide` must give up on its own past a byte limit: it is called
 * on everything read so far. Settles with the socket paused and none of its listeners left.
 */
export function readPreamble<T>(
  socket: Socket,
  options: { readonly timeoutMs: number; readonly decide: (bytes: Uint8Array) => PreambleDecision<T> },
): Promise<PreambleResult<T>> {
  return new Promise<PreambleResult<T>>((resolve) => {
    let buffered: Buffer = Buffer.alloc(0);
    const settle = (result: PreambleResult<T>): void => {
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const decision = options.decide(buffered);
      if (decision === 'need-more') return;
      if (!decision.ok) return settle(decision);
      settle({ ok: true, value: decision.value, rest: buffered.subarray(decision.consumed) });
    };
    const onEnd = (): void => settle({ ok: false, error: 'closed before the end of the preamble' });
    const onError = (err: Error): void => settle({ ok: false, error: err.message });
    const timer = setTimeout(() => settle({ ok: false, error: 'timeout' }), options.timeoutMs);
    // Late errors, after it settled, must not become uncaught exceptions (the caller closes or hands on).
    socket.on('error', () => undefined);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}

export type StartTlsResult =
  | { readonly ok: true; readonly tls: TlsInfo; readonly discardedBytes: number }
  /** The connection is closed (reason 'tls handshake failed' or 'no client certificate'). */
  | { readonly ok: false; readonly error: string; readonly discardedBytes: number };

/** How long a closing socket may linger: a peer that never reads would keep it half-open forever. */
const END_GRACE_MS = 5000;
const CUT_OFF_GRACE_MS = 2000;

export class Connection {
  readonly remoteIp: string;
  readonly remotePort: number;
  /** The address and port the client connected to. */
  readonly localIp: string;
  readonly localPort: number;
  private socket: Socket;
  private readonly options: ConnectionOptions;
  private handlers: ConnectionHandlers | null = null;
  private inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  private pumping = false;
  private held: { readonly maxBytes: number; readonly onOverflow: () => void } | 'plain' | null = null;
  private isClosed = false;
  private tlsInfo: TlsInfo | null = null;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly closedPromise: Promise<string>;
  private resolveClosed!: (reason: string) => void;
  /** COMPRESS=DEFLATE (RFC 4978): both directions through raw DEFLATE once started. */
  private inflate: InflateRaw | null = null;
  private deflate: DeflateRaw | null = null;
  private flushScheduled = false;
  /** The socket is corked until the end of this tick. */
  private corked = false;

  constructor(socket: Socket, options: ConnectionOptions) {
    this.socket = socket;
    this.options = options;
    const proxied = options.proxied;
    this.remoteIp = proxied?.source.ip ?? normalizeIp(socket.remoteAddress ?? '0.0.0.0');
    this.remotePort = proxied?.source.port ?? socket.remotePort ?? 0;
    this.localIp = proxied?.destination.ip ?? normalizeIp(socket.localAddress ?? '0.0.0.0');
    this.localPort = proxied?.destination.port ?? socket.localPort ?? 0;
    if (socket instanceof TLSSocket && socket.encrypted) this.tlsInfo = describeTls(socket);
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /**
   * Implicit TLS (RFC 8314) before anything is read: the handshake, bounded by options.tls.timeoutMs.
   * On failure the socket is destroyed; the connection was never started, so no handler runs.
   */
  static async acceptTls(raw: Socket, options: ConnectionOptions): Promise<Connection | { error: string }> {
    const { secureContext } = options.tls;
    if (secureContext === null) {
      raw.destroy();
      return { error: 'no certificate loaded' };
    }
    raw.on('error', () => undefined);
    const result = await serverHandshake(raw, { ...options.tls, secureContext });
    if (!result.ok) return { error: result.error };
    return new Connection(result.socket, options);
  }

  /** Begin reading; input is delivered to `handlers.data` unless held. */
  start(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
    this.attach(this.socket);
    // Left paused by readPreamble (a PROXY header), with the bytes after it put back to be read first.
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Resolves with the close reason once the connection is over. */
  get done(): Promise<string> {
    return this.closedPromise;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get tls(): TlsInfo | null {
    return this.tlsInfo;
  }

  /** Bytes read and not yet delivered to the driver. */
  get bufferedBytes(): number {
    return this.inboxBytes;
  }

  // --- reading ------------------------------------------------------------------------------------

  /**
   * Keep reading but deliver nothing until release(). With a limit, `onOverflow` runs (once, and the hold
   * ends) as soon as more than `maxBytes` are held: an early talker is not buffered without bound.
   */
  hold(limit?: { readonly maxBytes: number; readonly onOverflow: () => void }): void {
    this.held = limit ?? 'plain';
  }

  release(): void {
    this.held = null;
    void this.pump();
  }

  /** Drop every byte read and not yet delivered; returns how many. */
  discardBuffered(): number {
    const bytes = this.inboxBytes;
    this.inbox = [];
    this.inboxBytes = 0;
    return bytes;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.isClosed) return;
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    const held = this.held;
    if (held !== null && held !== 'plain') {
      if (this.inboxBytes > held.maxBytes) {
        this.held = null;
        held.onOverflow();
      }
      return;
    }
    if (this.inboxBytes > this.options.maxBufferedBytes) this.pauseInput();
    void this.pump();
  };

  /** Stop reading: the socket, and the inflater that could otherwise expand a small input without bound. */
  private pauseInput(): void {
    this.socket.pause();
    this.inflate?.pause();
  }

  private resumeInput(): void {
    this.inflate?.resume();
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Delivers buffered input to the driver, one chunk at a time, each after the previous one settled. */
  private async pump(): Promise<void> {
    if (this.pumping || this.handlers === null) return;
    this.pumping = true;
    try {
      while (!this.isClosed && this.held === null && this.inbox.length > 0) {
        const chunk = this.inbox.shift()!;
        this.inboxBytes -= chunk.length;
        await this.handlers.data(chunk);
      }
      if (!this.isClosed && this.inboxBytes <= this.options.maxBufferedBytes) this.resumeInput();
    } catch {
      // Drivers handle their own failures; this only keeps a bug from becoming an unhandled rejection.
      this.abort('internal error');
    } finally {
      this.pumping = false;
    }
  }

  // --- writing ------------------------------------------------------------------------------------

  /** Queue bytes for the client; false once closed (nothing is written then) or when the buffer is full. */
  write(data: string | Uint8Array): boolean {
    if (this.isClosed) return false;
    const deflate = this.deflate;
    if (deflate !== null) {
      deflate.write(data);
      this.scheduleFlush();
      return !this.socket.writableNeedDrain;
    }
    // Writes of one tick leave in one packet (a FETCH of 10,000 messages is 10,000 writes, not
    // 10,000 system calls); uncorked on the next tick, so nothing waits longer than the code that wrote.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      const socket = this.socket;
      process.nextTick(() => {
        // startTls() may have uncorked already (and swapped the socket): uncork only what was corked.
        if (this.corked && this.socket === socket) {
          this.corked = false;
          socket.uncork();
        }
      });
    }
    return this.socket.write(data);
  }

  /** Compressed output goes out at the end of each burst of writes (a sync flush per burst, not per line). */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.deflate?.flush(zlibConstants.Z_SYNC_FLUSH);
    });
  }

  /**
   * COMPRESS=DEFLATE (RFC 4978): from now on input is inflated and output deflated (raw DEFLATE, RFC
   * 1951), output flushed after each burst. Call it from inside `data` after the OK is written: the OK
   * itself goes out uncompressed. Returns the bytes read and not yet delivered, which are dropped (a
   * client must wait for the OK before it compresses, so they can only be a violation).
   */
  startCompression(): number {
    const dropped = this.discardBuffered();
    if (this.isClosed || this.deflate !== null) return dropped;
    const socket = this.socket;
    const inflate = createInflateRaw();
    const deflate = createDeflateRaw();
    socket.off('data', this.onData);
    socket.on('data', (chunk: Buffer) => {
      if (!this.isClosed) inflate.write(chunk);
    });
    inflate.on('data', this.onData);
    inflate.on('error', () => this.abort('bad compressed data'));
    deflate.on('data', (chunk: Buffer) => {
      if (!socket.destroyed) socket.write(chunk);
    });
    deflate.on('error', () => this.abort('compression failed'));
    this.inflate = inflate;
    this.deflate = deflate;
    return dropped;
  }

  get compressed(): boolean {
    return this.deflate !== null;
  }

  /** Write and wait until the socket can take more (backpressure for streamed output such as RETR). */
  async send(data: string | Uint8Array): Promise<void> {
    if (this.write(data)) return;
    if (this.isClosed) return;
    const socket = this.socket;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  // --- TLS ----------------------------------------------------------------------------------------

  /**
   * STARTTLS (RFC 3207, RFC 2595, RFC 9051 §6.2.1): every byte read so far and not delivered is dropped,
   * then the handshake. On success reading goes on over TLS; on failure the connection is closed.
   * Call it from inside `data` (the reply to STARTTLS already written), so nothing is delivered meanwhile.
   */
  async startTls(): Promise<StartTlsResult> {
    // The reply to STARTTLS must be on the wire, in clear, before the socket is handed to TLS.
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
    const discardedBytes = this.discardBuffered();
    const raw = this.socket;
    this.detach(raw);
    const { secureContext } = this.options.tls;
    if (secureContext === null) {
      this.handlers?.tlsFailed?.('no certificate loaded');
      this.abort('tls handshake failed');
      return { ok: false, error: 'no certificate loaded', discardedBytes };
    }
    const result = await serverHandshake(raw, { ...this.options.tls, secureContext });
    if (!result.ok) {
      if (!this.isClosed) this.handlers?.tlsFailed?.(result.error);
      this.markClosed(
        result.error === 'client certificate required' ? 'no client certificate' : 'tls handshake failed',
      );
      return { ok: false, error: result.error, discardedBytes };
    }
    this.socket = result.socket;
    this.tlsInfo = describeTls(result.socket);
    if (this.isClosed) {
      result.socket.destroy();
      return { ok: false, error: 'closed during the TLS handshake', discardedBytes };
    }
    this.attach(result.socket);
    return { ok: true, tls: this.tlsInfo, discardedBytes };
  }

  /** RFC 9266 tls-exporter (and RFC 5929 tls-unique below TLS 1.3) of this connection; undefined in clear. */
  channelBinding(): TlsChannelBinding | undefined {
    const socket = this.socket;
    if (!(socket instanceof TLSSocket) || !socket.encrypted) return undefined;
    const binding: TlsChannelBinding = {};
    try {
      // RFC 9266: no context value. Node accepts the context as optional; its types say otherwise.
      const exporter = socket as unknown as { exportKeyingMaterial(length: number, label: string): Buffer };
      binding['tls-exporter'] = exporter.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding');
    } catch {
      // not available on this connection
    }
    if (socket.getProtocol() !== 'TLSv1.3') {
      // tls-unique: the first Finished message of the handshake, the client's on a full handshake.
      const finished = socket.isSessionReused() ? socket.getFinished() : socket.getPeerFinished();
      if (finished) binding['tls-unique'] = finished;
    }
    return binding;
  }

  /** The certificate the client presented, if any. A TLSSocket on an accepted socket does not verify it. */
  clientCertificate(): ClientCertificate | null {
    const socket = this.socket;
    if (!(socket instanceof TLSSocket)) return null;
    const x509 = socket.getPeerX509Certificate();
    return x509 ? { x509, authorized: socket.authorized } : null;
  }

  // --- timers -------------------------------------------------------------------------------------

  /**
   * (Re)arm the named timer: an idle timer the driver re-arms at each command, or an absolute deadline
   * (a whole DATA) it arms once. Never fires after close; every timer is cleared at close.
   */
  setTimer(name: string, ms: number, onExpire: () => void): void {
    this.clearTimer(name);
    this.timers.set(
      name,
      setTimeout(() => {
        this.timers.delete(name);
        if (!this.isClosed) onExpire();
      }, ms),
    );
  }

  clearTimer(name: string): void {
    const timer = this.timers.get(name);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(name);
  }

  // --- closing ------------------------------------------------------------------------------------

  /** Write the last words (if any), half-close, and destroy if the peer has not closed within a grace. */
  end(lastWords?: string | Uint8Array, reason = 'server closed'): void {
    if (this.isClosed) return;
    const socket = this.socket;
    const deflate = this.deflate;
    if (deflate !== null) {
      if (lastWords !== undefined) deflate.write(lastWords);
      deflate.flush(zlibConstants.Z_SYNC_FLUSH, () => socket.end());
    } else {
      if (lastWords !== undefined) socket.write(lastWords);
      socket.end();
    }
    setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
    this.markClosed(reason);
  }

  /** For abusive peers: stop reading at once, send the last words, destroy as soon as they are out. */
  cutOff(lastWords: string | Uint8Array, reason = 'cut off'): void {
    if (this.isClosed) return;
    const socket = this.socket;
    this.pauseInput();
    this.discardBuffered();
    const deflate = this.deflate;
    if (deflate !== null) {
      deflate.write(lastWords);
      deflate.flush(zlibConstants.Z_SYNC_FLUSH, () => socket.destroy());
    } else socket.write(lastWords, () => socket.destroy());
    setTimeout(() => socket.destroy(), CUT_OFF_GRACE_MS).unref();
    this.markClosed(reason);
  }

  /** Destroy now, and close with this reason. */
  abort(reason: string): void {
    this.socket.on('error', () => undefined);
    this.socket.destroy();
    this.markClosed(reason);
  }

  /** Hard stop (after a shutdown grace): the socket's own close then ends the connection. */
  destroy(): void {
    this.socket.destroy();
  }

  private markClosed(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.handlers?.closed(reason);
    this.resolveClosed(reason);
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
  }

  private readonly onError = (err: Error): void => {
    this.handlers?.error?.(err);
    this.socket.destroy();
  };

  private readonly onClose = (): void => {
    this.markClosed('client closed');
  };
}
