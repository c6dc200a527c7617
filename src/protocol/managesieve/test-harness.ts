// A test driver for ManageSieveSession: performs every effect the way the server's driver will (responses
// to wire text, SASL PLAIN, an in-memory script store with the same quota and active-script rules as the
// real one) without sockets, so dialogues read as the bytes a client would see. Used by the session tests
// only.

import { formatChallenge, formatReply, formatStatusLine } from './format.ts';
import {
  DEFAULT_MAX_LINE_BYTES,
  ManageSieveSession,
  type Effect,
  type ManageSieveSessionOptions,
  type ScriptCheck,
  type StoreOp,
  type StoreResult,
} from './session.ts';

/**
 * A stand-in for the Sieve language's parser: a script is valid unless a line starts with "bogus", which
 * is reported as the real validator would ("line 3 column 5: unknown command foo"); "warn" warns.
 */
export function fakeValidate(script: string): ScriptCheck {
  const lines = script.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const col = lines[i]!.indexOf('bogus');
    if (col >= 0) return { ok: false, message: `line ${i + 1} column ${col + 1}: unknown command bogus` };
  }
  if (script.includes('warn')) return { ok: true, warnings: 'line 1: deprecated' };
  return { ok: true };
}

export const baseOptions: ManageSieveSessionOptions = {
  starttls: true,
  tlsActive: false,
  authMechanisms: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'EXTERNAL'],
  plaintextAuth: false,
  sieveExtensions: 'fileinto reject envelope vacation',
  maxRedirects: null,
  validate: fakeValidate,
  maxScriptBytes: 4096,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  maxErrors: 20,
  maxCommandsBeforeAuth: 30,
};

/** One user's scripts in the in-memory store. */
export interface UserScripts {
  readonly scripts: Map<string, string>;
  active: string | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Harness {
  readonly session: ManageSieveSession;
  readonly effects: Effect[] = [];
  /** Everything written to the client, as text. */
  wire = '';
  readonly passwords = new Map<string, string>([
    ['alice@example.test', 'secret pass'],
    ['jürgen@example.test', 'pässwörd'],
    ['日本@example.test', '秘密'],
  ]);
  readonly users = new Map<string, UserScripts>();
  readonly ops: { user: string; op: StoreOp }[] = [];
  maxScripts = 5;
  tlsFails = false;
  mechanismsAfterTls: readonly string[] | undefined = undefined;
  /** The store fails every op (I/O): the driver resolves refused 'temporary'. */
  storeFails = false;
  failuresBeforeClose = Infinity;
  private failures = 0;

  constructor(options: Partial<ManageSieveSessionOptions> = {}) {
    this.session = new ManageSieveSession({ ...baseOptions, ...options });
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

  /** Only the status lines, in order (a literal text shows as its "{n}" and what follows). */
  get statuses(): string[] {
    return this.of('reply').map((e) => formatStatusLine(e.reply));
  }

  get closed(): boolean {
    return this.effects.some((e) => e.kind === 'close');
  }

  of<K extends Effect['kind']>(kind: K): Extract<Effect, { kind: K }>[] {
    return this.effects.filter((e): e is Extract<Effect, { kind: K }> => e.kind === kind);
  }

  scriptsOf(user: string): UserScripts {
    let u = this.users.get(user);
    if (u === undefined) {
      u = { scripts: new Map(), active: null };
      this.users.set(user, u);
    }
    return u;
  }

  private failure(): { kind: 'failure'; close: boolean } {
    this.failures++;
    return { kind: 'failure', close: this.failures >= this.failuresBeforeClose };
  }

  /** SASL PLAIN (RFC 4616) in miniature: "authzid NUL authcid NUL password", base64. */
  private plain(response: string): Effect[] {
    const [, user = '', password = ''] = Buffer.from(response, 'base64').toString('utf8').split('\0');
    if (this.passwords.get(user) === password && password !== '')
      return this.session.resolve({ kind: 'auth', outcome: { kind: 'success', user } });
    return this.session.resolve({ kind: 'auth', outcome: this.failure() });
  }

  private run(user: string, op: StoreOp): StoreResult {
    if (this.storeFails) return { kind: 'refused', refusal: 'temporary' };
    const u = this.scriptsOf(user);
    switch (op.kind) {
      case 'have-space':
        if (!u.scripts.has(op.name) && u.scripts.size >= this.maxScripts)
          return { kind: 'refused', refusal: 'max-scripts' };
        return { kind: 'done' };
      case 'put':
        if (!u.scripts.has(op.name) && u.scripts.size >= this.maxScripts)
          return { kind: 'refused', refusal: 'max-scripts' };
        u.scripts.set(op.name, op.script);
        return { kind: 'done' };
      case 'list':
        return {
          kind: 'list',
          scripts: [...u.scripts.keys()].map((name) => ({ name, active: name === u.active })),
        };
      case 'set-active':
        if (op.name !== null && !u.scripts.has(op.name)) return { kind: 'refused', refusal: 'nonexistent' };
        u.active = op.name;
        return { kind: 'done' };
      case 'get': {
        const script = u.scripts.get(op.name);
        return script === undefined
          ? { kind: 'refused', refusal: 'nonexistent' }
          : { kind: 'script', script };
      }
      case 'delete':
        if (!u.scripts.has(op.name)) return { kind: 'refused', refusal: 'nonexistent' };
        if (u.active === op.name) return { kind: 'refused', refusal: 'active' };
        u.scripts.delete(op.name);
        return { kind: 'done' };
      case 'rename': {
        const script = u.scripts.get(op.from);
        if (script === undefined) return { kind: 'refused', refusal: 'nonexistent' };
        if (u.scripts.has(op.to)) return { kind: 'refused', refusal: 'already-exists' };
        u.scripts.delete(op.from);
        u.scripts.set(op.to, script);
        if (u.active === op.from) u.active = op.to;
        return { kind: 'done' };
      }
      default: {
        const never: never = op;
        throw new Error(`unhandled ${JSON.stringify(never)}`);
      }
    }
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
        case 'auth-start':
          this.handle(
            e.initialResponse === null
              ? this.session.resolve({ kind: 'auth', outcome: { kind: 'challenge', challenge: '' } })
              : this.plain(e.initialResponse),
          );
          break;
        case 'auth-response':
          this.handle(this.plain(e.response));
          break;
        case 'store':
          this.ops.push({ user: e.user, op: e.op });
          this.handle(this.session.resolve({ kind: 'store', result: this.run(e.user, e.op) }));
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

/** SASL PLAIN's initial response for a user. */
export function plainResponse(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
}

/** A literal from client to server: "{n+}" CRLF and the octets. */
export function literal(text: string, sync = false): string {
  return `{${Buffer.byteLength(text, 'utf8')}${sync ? '' : '+'}}\r\n${text}`;
}
