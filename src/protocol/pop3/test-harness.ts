// A test driver for Pop3Session: performs every effect the way the server's driver will (replies to
// wire text, SASL PLAIN, a maildrop with a lock, RETR/TOP through MessageEncoder, the expunge) without
// sockets, so dialogues read as the bytes a client would see. Used by session.test.ts and
// session.fuzz.test.ts only.

import { MessageEncoder } from './message-stream.ts';
import { Pop3Replies, formatChallenge, formatReply } from './replies.ts';
import {
  Pop3Session,
  RFC2449_MAX_COMMAND_LINE_BYTES,
  type Effect,
  type MessageRef,
  type Pop3SessionOptions,
} from './session.ts';

export const baseOptions: Pop3SessionOptions = {
  starttls: true,
  tlsActive: false,
  authMechanisms: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'EXTERNAL'],
  plaintextAuth: false,
  apopTimestamp: null,
  maxCommandLineBytes: RFC2449_MAX_COMMAND_LINE_BYTES,
  maxErrors: 20,
  maxJunkCommands: 30,
};

export interface StoredMessage {
  readonly uid: string;
  readonly content: string;
}

export interface Account {
  readonly password: string;
  readonly messages: StoredMessage[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Harness {
  readonly session: Pop3Session;
  readonly effects: Effect[] = [];
  /** Everything written to the client, as text. */
  wire = '';
  readonly accounts = new Map<string, Account>();
  /** Maildrops locked by "another session". */
  readonly locked = new Set<string>();
  readonly updates: (readonly MessageRef[])[] = [];
  tlsFails = false;
  mechanismsAfterTls: readonly string[] | undefined = undefined;
  openMessageFails = false;
  updateFails = false;
  /** Login failures that make the next one close the connection (the AuthGuard's limit). */
  failuresBeforeClose = Infinity;
  /** Size of the chunks a message is streamed in (chunk-boundary safety). */
  chunkBytes = 7;
  private failures = 0;
  private user: string | null = null;

  constructor(options: Partial<Pop3SessionOptions> = {}, accounts?: Record<string, Account>) {
    this.session = new Pop3Session({ ...baseOptions, ...options });
    for (const [name, account] of Object.entries(accounts ?? defaultAccounts()))
      this.accounts.set(name, account);
    this.handle(this.session.greet());
  }

  send(input: string | Uint8Array): this {
    this.handle(this.session.feed(typeof input === 'string' ? encoder.encode(input) : input));
    return this;
  }

  /** The wire split in lines (without CRLF). */
  get lines(): string[] {
    const parts = this.wire.split('\r\n');
    parts.pop();
    return parts;
  }

  /** Only the status lines ("+OK ...", "-ERR ...", "+ ..."), in order. */
  get statuses(): string[] {
    const out: string[] = [];
    for (const e of this.effects) {
      if (e.kind === 'reply') out.push(decoder.decode(formatReply(e.reply)).slice(0, -2));
      else if (e.kind === 'challenge') out.push(decoder.decode(formatChallenge(e.challenge)).slice(0, -2));
    }
    return out;
  }

  get closed(): boolean {
    return this.effects.some((e) => e.kind === 'close');
  }

  of<K extends Effect['kind']>(kind: K): Extract<Effect, { kind: K }>[] {
    return this.effects.filter((e): e is Extract<Effect, { kind: K }> => e.kind === kind);
  }

  private login(user: string, password: string): Effect[] {
    const account = this.accounts.get(user);
    if (account !== undefined && account.password === password) {
      this.user = user;
      return this.session.resolve({ kind: 'login', outcome: { kind: 'success', user } });
    }
    return this.session.resolve({ kind: 'login', outcome: this.failure() });
  }

  private failure(): { kind: 'failure'; close: boolean } {
    this.failures++;
    return { kind: 'failure', close: this.failures >= this.failuresBeforeClose };
  }

  /** SASL PLAIN (RFC 4616) in miniature: "authzid NUL authcid NUL password". */
  private plain(response: string): Effect[] {
    const [, user = '', password = ''] = Buffer.from(response, 'base64').toString('utf8').split('\0');
    const account = this.accounts.get(user);
    if (account !== undefined && account.password === password) {
      this.user = user;
      return this.session.resolve({ kind: 'auth', outcome: { kind: 'success', user } });
    }
    return this.session.resolve({ kind: 'auth', outcome: this.failure() });
  }

  private handle(effects: Effect[]): void {
    for (const e of effects) {
      this.effects.push(e);
      switch (e.kind) {
        case 'reply':
          this.wire += decoder.decode(formatReply(e.reply, e.lines));
          break;
        case 'challenge':
          this.wire += decoder.decode(formatChallenge(e.challenge));
          break;
        case 'starttls':
          this.handle(
            this.session.resolve({
              kind: 'tls',
              ok: !this.tlsFails,
              ...(this.mechanismsAfterTls ? { authMechanisms: this.mechanismsAfterTls } : {}),
            }),
          );
          break;
        case 'login':
          this.handle(this.login(e.user, e.password));
          break;
        case 'apop':
          // Tern keeps no plain-text secrets, so an APOP digest can never be checked.
          this.handle(this.session.resolve({ kind: 'login', outcome: this.failure() }));
          break;
        case 'auth-start':
          this.handle(
            e.initialResponse === null
              ? this.session.resolve({ kind: 'auth', outcome: { kind: 'challenge', challenge: '' } })
              : this.plain(e.initialResponse),
          );
          break;
        case 'auth-response':
          this.handle(this.plain(e.line));
          break;
        case 'open-maildrop': {
          const account = this.accounts.get(e.user)!;
          if (this.locked.has(e.user)) {
            this.handle(
              this.session.resolve({
                kind: 'maildrop',
                outcome: { ok: false, reply: Pop3Replies.maildropInUse },
              }),
            );
          } else {
            const messages = account.messages.map((m) => ({
              uid: m.uid,
              sizeBytes: encoder.encode(m.content).length,
            }));
            this.handle(this.session.resolve({ kind: 'maildrop', outcome: { ok: true, messages } }));
          }
          break;
        }
        case 'open-message':
          this.handle(this.session.resolve({ kind: 'message', ok: !this.openMessageFails }));
          break;
        case 'send-message': {
          const stored = this.accounts.get(this.user!)!.messages[e.message.number - 1]!;
          const bytes = encoder.encode(stored.content);
          const enc = new MessageEncoder(e.topLines);
          const out: Uint8Array[] = [];
          for (let i = 0; i < bytes.length && !enc.done; i += this.chunkBytes) {
            out.push(enc.push(bytes.subarray(i, i + this.chunkBytes)));
          }
          out.push(enc.end());
          this.wire += decoder.decode(Buffer.concat(out));
          break;
        }
        case 'update':
          this.updates.push(e.deleted);
          if (!this.updateFails) {
            const account = this.accounts.get(this.user!)!;
            const gone = new Set(e.deleted.map((m) => m.uid));
            account.messages.splice(
              0,
              account.messages.length,
              ...account.messages.filter((m) => !gone.has(m.uid)),
            );
          }
          this.handle(this.session.resolve({ kind: 'update', ok: !this.updateFails }));
          break;
        case 'close':
        case 'state':
        case 'command':
        case 'violation':
          break;
        default: {
          const never: never = e;
          throw new Error(`unhandled ${JSON.stringify(never)}`);
        }
      }
    }
  }
}

export const MESSAGE_1 =
  'From: a@example.org\r\nSubject: one\r\n\r\nline 1\r\n.starts with a dot\r\nline 3\r\n';
export const MESSAGE_2 = 'From: b@example.org\r\nSubject: zwei\r\n\r\nGrüße\r\n';

export function defaultAccounts(): Record<string, Account> {
  const messages = (): StoredMessage[] => [
    { uid: '1700000000.1', content: MESSAGE_1 },
    { uid: '1700000000.2', content: MESSAGE_2 },
  ];
  return {
    'alice@example.test': { password: 'secret pass', messages: messages() },
    'jürgen@example.test': { password: 'pässwörd', messages: messages() },
    '日本@example.test': { password: '秘密', messages: messages() },
  };
}

/** SASL PLAIN's initial response for a user. */
export function plainResponse(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
}
