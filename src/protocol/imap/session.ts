// SECURITY: the IMAP session's protocol rules, before and after login. Pure: bytes in, effects out.
//
// It owns the command reader (reader.ts) and decides, for each thing the client sends, whether it may be
// run now: the state rules of RFC 9051 §3 and §6 (which command in which state), LOGINDISABLED before
// TLS (§6.2.3: LOGIN answered NO [PRIVACYREQUIRED]), STARTTLS only where offered and not yet active,
// the continuation of synchronizing literals ("+ Ready" only for a literal it accepts, RFC 9051 §7.5),
// parse errors answered BAD, and a cap on consecutive bad commands (a client that only sends junk is
// closed with BYE). A command that may run becomes an `execute` effect and the session PAUSES: nothing
// more is read until the driver calls resume(), so a pipelined "a LOGIN ...", "b SELECT ..." is judged
// in the state the first one leaves. An APPEND's message literal pauses it too (`append-literal`), so the
// driver can refuse it (TRYCREATE, TOOBIG, OVERQUOTA) before the client is told to send it; its bytes
// then flow as `append-data`. In raw-line mode (IDLE's DONE, AUTHENTICATE's responses) each line is a
// `line` effect, also paused.
// Deliberately NOT here: running commands (the driver and server/imap/*), mailbox views (selected.ts),
// response data (format.ts, fetch.ts), SASL (the one SASL drive), time (idle timers are the driver's).

import { assertNever } from '../../core/assert-never.ts';
import type { AppendMessageHead, AppendPosition, ImapCommand, ImapCommandKind } from './command.ts';
import { formatContinuation, formatParseError, formatTagged, formatUntaggedStatus } from './format.ts';
import { ImapCommandReader, type ImapReaderLimits } from './reader.ts';

export type ImapState = 'not-authenticated' | 'authenticated' | 'selected' | 'logout';

export interface ImapSessionOptions {
  /** STARTTLS is offered on this connection (a starttls listener with a certificate). */
  readonly starttls: boolean;
  /** The connection is already encrypted (implicit TLS). */
  readonly tlsActive: boolean;
  /** LOGIN/AUTHENTICATE allowed before TLS (loopback with plaintext_auth_on_loopback). */
  readonly plaintextAuth: boolean;
  /** Bad commands in a row before the session ends with BYE. */
  readonly maxErrors: number;
  readonly limits?: Partial<ImapReaderLimits>;
}

export type Effect =
  /** Bytes to send, in order, before anything that follows. */
  | { readonly kind: 'write'; readonly text: string }
  /** Run this command (legal in the current state); the session is paused until resume(). */
  | { readonly kind: 'execute'; readonly tag: string; readonly command: ImapCommand }
  /**
   * An APPEND message literal is announced: call acceptLiteral() or refuseLiteral(); paused until then.
   * `mailbox` is the target as the client wrote it.
   */
  | {
      readonly kind: 'append-literal';
      readonly tag: string;
      readonly mailbox: string;
      readonly index: number;
      readonly sizeBytes: number;
      /** The client waits for "+" (pass it to acceptLiteral). */
      readonly sync: boolean;
      readonly binary: boolean;
      readonly head: AppendMessageHead;
      /** Where the literal sits in the command (CATENATE parts, RFC 4469); null when not known. */
      readonly position: AppendPosition | null;
    }
  | { readonly kind: 'append-data'; readonly chunk: Uint8Array; readonly last: boolean }
  /** A raw line (after expectLine()); paused until resume() or expectLine(). `tooLong`: dropped, empty. */
  | { readonly kind: 'line'; readonly line: Uint8Array; readonly tooLong: boolean }
  /** Protocol abuse worth a log line. */
  | { readonly kind: 'violation'; readonly what: string }
  /** Close the connection after the writes before it. */
  | { readonly kind: 'close' };

/** Commands valid in any state (RFC 9051 §6.1; ID RFC 2971). */
const ANY_STATE: ReadonlySet<ImapCommandKind> = new Set(['capability', 'noop', 'logout', 'id']);
const NOT_AUTHENTICATED: ReadonlySet<ImapCommandKind> = new Set(['starttls', 'authenticate', 'login']);
/** Authenticated state; also valid when selected (RFC 9051 §6.3). */
const AUTHENTICATED: ReadonlySet<ImapCommandKind> = new Set([
  'enable',
  'select',
  'examine',
  'create',
  'delete',
  'rename',
  'subscribe',
  'unsubscribe',
  'list',
  'lsub',
  'namespace',
  'status',
  'append',
  'idle',
  'getquota',
  'getquotaroot',
  'setquota',
  'compress',
  'unauthenticate',
  'notify',
  'genurlauth',
  'resetkey',
  'urlfetch',
]);
const SELECTED: ReadonlySet<ImapCommandKind> = new Set([
  'close',
  'unselect',
  'expunge',
  'search',
  'fetch',
  'store',
  'copy',
  'move',
  'check',
  'sort',
  'thread',
  'cancelupdate',
]);

type Pause = 'none' | 'execute' | 'literal' | 'line';

export class ImapSession {
  private readonly options: ImapSessionOptions;
  private readonly reader: ImapCommandReader;
  private stateNow: ImapState = 'not-authenticated';
  private tls: boolean;
  private pause: Pause = 'none';
  private errors = 0;
  private closed = false;
  /** The tag of an APPEND whose literal was refused: its remaining events are dropped. */
  private refusedTag: string | null = null;

  constructor(options: ImapSessionOptions) {
    this.options = options;
    this.tls = options.tlsActive;
    this.reader = new ImapCommandReader(options.limits ?? {});
  }

  get state(): ImapState {
    return this.stateNow;
  }

  get tlsActive(): boolean {
    return this.tls;
  }

  /** LOGIN and AUTHENTICATE are refused until TLS (the LOGINDISABLED capability). */
  get loginDisabled(): boolean {
    return !this.tls && !this.options.plaintextAuth;
  }

  get starttlsOffered(): boolean {
    return this.options.starttls && !this.tls && this.stateNow === 'not-authenticated';
  }

  /** Bytes held by the reader (the driver pauses the socket above a bound). */
  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  /** The greeting: OK, with the capabilities the driver names (RFC 9051 §7.1.1 CAPABILITY code). */
  greet(capabilities: readonly string[]): Effect[] {
    return [
      {
        kind: 'write',
        text: formatUntaggedStatus('OK', { kind: 'CAPABILITY', capabilities }, 'Tern IMAP4rev2 ready'),
      },
    ];
  }

  feed(bytes: Uint8Array): Effect[] {
    if (this.closed) return [];
    this.reader.push(bytes);
    return this.drain();
  }

  /** The command (or line) is finished: go on reading, in `state` when it changed. */
  resume(state?: ImapState): Effect[] {
    if (state !== undefined) this.stateNow = state;
    this.pause = 'none';
    if (this.closed) return [];
    return this.drain();
  }

  /** Raw lines next (IDLE, AUTHENTICATE); the next line comes as a `line` effect. */
  expectLine(): Effect[] {
    this.reader.expectLine();
    this.pause = 'none';
    return this.drain();
  }

  /** Take the announced APPEND literal: "+ Ready" when the client waits for it. */
  acceptLiteral(sync: boolean): Effect[] {
    this.pause = 'none';
    const out: Effect[] = sync ? [{ kind: 'write', text: formatContinuation() }] : [];
    return [...out, ...this.drain()];
  }

  /** Refuse it: the client hears `text` (a tagged NO with its code), the command's rest is dropped. */
  refuseLiteral(tag: string, response: string): Effect[] {
    this.reader.refuseLiteral();
    this.refusedTag = tag;
    this.pause = 'none';
    return [{ kind: 'write', text: response }, ...this.drain()];
  }

  /** After the TLS handshake: anything read before it is dropped (STARTTLS injection). */
  tlsStarted(): number {
    this.tls = true;
    this.pause = 'none';
    return this.reader.discard();
  }

  /** COMPRESS (RFC 4978): what was read before it is not compressed data of the new layer: dropped. */
  compressionStarted(): number {
    this.pause = 'none';
    return this.reader.discard();
  }

  /** The connection is over (LOGOUT, BYE, a drop): no more effects. */
  close(): void {
    this.closed = true;
    this.stateNow = 'logout';
  }

  /** Read events until something needs the driver, or input runs out. */
  private drain(): Effect[] {
    const out: Effect[] = [];
    while (this.pause === 'none' && !this.closed) {
      const ev = this.reader.next();
      if (ev === null) break;
      switch (ev.kind) {
        case 'command':
          if (this.refusedTag !== null && ev.tag === this.refusedTag) {
            this.refusedTag = null;
            break;
          }
          this.refusedTag = null;
          this.onCommand(ev.tag, ev.command, out);
          break;
        case 'error':
          this.refusedTag = null;
          out.push({ kind: 'write', text: formatParseError(ev.tag, ev.error) });
          this.countError(out);
          break;
        case 'literal-wanted':
          if (ev.message === null) {
            // A string literal: small, counted in the reader's limits.
            if (ev.sync) out.push({ kind: 'write', text: formatContinuation() });
            break;
          }
          if (!this.mayRun('append')) {
            out.push(...this.refuseLiteral(ev.tag, this.wrongState(ev.tag, 'append')));
            // refuseLiteral drained already
            return out;
          }
          this.pause = 'literal';
          out.push({
            kind: 'append-literal',
            tag: ev.tag,
            mailbox: ev.mailbox ?? '',
            index: ev.index,
            sizeBytes: ev.sizeBytes,
            sync: ev.sync,
            binary: ev.binary,
            head: ev.message,
            position: ev.position ?? null,
          });
          break;
        case 'append-data':
          if (this.refusedTag === null) out.push({ kind: 'append-data', chunk: ev.chunk, last: ev.last });
          break;
        case 'line':
          this.pause = 'line';
          out.push({ kind: 'line', line: ev.line, tooLong: ev.tooLong });
          break;
        default:
          assertNever(ev);
      }
    }
    return out;
  }

  private mayRun(kind: ImapCommandKind): boolean {
    if (ANY_STATE.has(kind)) return true;
    switch (this.stateNow) {
      case 'not-authenticated':
        return NOT_AUTHENTICATED.has(kind);
      case 'authenticated':
        return AUTHENTICATED.has(kind);
      case 'selected':
        return AUTHENTICATED.has(kind) || SELECTED.has(kind);
      case 'logout':
        return false;
      default:
        return assertNever(this.stateNow);
    }
  }

  private wrongState(tag: string, kind: ImapCommandKind): string {
    const text =
      this.stateNow === 'not-authenticated' && !NOT_AUTHENTICATED.has(kind)
        ? 'Authenticate first'
        : SELECTED.has(kind)
          ? 'No mailbox selected'
          : 'Command not valid in this state';
    return formatTagged(tag, 'BAD', null, text);
  }

  private onCommand(tag: string, command: ImapCommand, out: Effect[]): void {
    if (!this.mayRun(command.kind)) {
      out.push({ kind: 'write', text: this.wrongState(tag, command.kind) });
      this.countError(out);
      return;
    }
    if (command.kind === 'starttls' && !this.starttlsOffered) {
      const text = this.tls ? 'TLS is already active' : 'STARTTLS is not offered here';
      out.push({ kind: 'write', text: formatTagged(tag, 'BAD', null, text) });
      this.countError(out);
      return;
    }
    if (command.kind === 'login' && this.loginDisabled) {
      out.push({
        kind: 'write',
        text: formatTagged(tag, 'NO', { kind: 'PRIVACYREQUIRED' }, 'LOGIN needs TLS first (STARTTLS)'),
      });
      return;
    }
    if (command.kind === 'enable' && this.stateNow !== 'authenticated') {
      // RFC 5161 §3.1: ENABLE is for the authenticated state only.
      out.push({ kind: 'write', text: formatTagged(tag, 'BAD', null, 'ENABLE is valid only before SELECT') });
      return;
    }
    this.errors = 0;
    this.pause = 'execute';
    out.push({ kind: 'execute', tag, command });
  }

  private countError(out: Effect[]): void {
    if (++this.errors < this.options.maxErrors) return;
    out.push({ kind: 'violation', what: 'too many bad commands' });
    out.push({ kind: 'write', text: formatUntaggedStatus('BYE', null, 'Too many invalid commands') });
    out.push({ kind: 'close' });
    this.close();
  }
}
