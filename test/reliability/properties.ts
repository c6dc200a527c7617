// The fuzz properties (fast-check) shared by the CI run (fuzz.test.ts, a few thousand inputs each) and the
// long run (scripts/fuzz-long.ts, 10^6 inputs each): every parser that meets untrusted or hand-written
// input is total (never throws) and its output keeps its contract.
//   - config: parseConfig on any text; on TOML documents built from real and made-up keys with values of
//     every type, either a config or errors that each name a key of the document;
//   - SASL: the line codec (canonical base64 only), the message parsers (PLAIN, OAUTHBEARER, XOAUTH2,
//     GS2 header, key-value lists, SASLprep), and every mechanism driven through the AUTH exchange with
//     random client lines and random directory answers;
//   - SMTP: the command and path parsers; the session state machine fed random byte streams (commands,
//     fragments, controls, binary, over-long lines) with every decision answered at random: it never
//     throws, every reply it sends is well formed (each line "NNN-" or "NNN ", code 2xx–5xx, no CR or LF
//     inside, at most 512 octets), nothing follows a close, its buffer stays bounded; and random messages
//     sent with DATA (dot-stuffed) and BDAT, cut at random points, give back the same messages and
//     replies as when fed whole.
// Deliberately NOT here: example-based tests (beside each parser), sockets.

import fc from 'fast-check';
import { parseConfig, formatConfigErrors } from '../../src/config/load.ts';
import { parseMailbox, parsePath } from '../../src/core/address.ts';
import { formatReply, Replies, type Reply } from '../../src/core/reply.ts';
import {
  createAuthExchange,
  createMechanism,
  decodeBase64Strict,
  decodeSaslLine,
  encodeBase64,
  saslprep,
  type AuthAction,
  type AuthExchange,
  type MechanismName,
  MECHANISM_NAMES,
  type VerifyAnswer,
  type VerifyRequest,
} from '../../src/protocol/sasl/index.ts';
import { decoyScramSecrets } from '../../src/protocol/sasl/scram-secrets.ts';
import { smtpAuthFraming } from '../../src/protocol/smtp/auth-replies.ts';
import { parseGs2Header } from '../../src/protocol/sasl/gs2.ts';
import { parseKvPairs, parseOAuthBearerMessage, parseXOAuth2Message } from '../../src/protocol/sasl/oauth.ts';
import { parsePlainMessage } from '../../src/protocol/sasl/plain.ts';
import {
  isAcceptableHelo,
  parseBdat,
  parseCommandLine,
  parseMail,
  parseRcpt,
} from '../../src/protocol/smtp/command.ts';
import { SmtpSession, type Effect, type SessionOptions } from '../../src/protocol/smtp/session.ts';

/** One property, runnable with any number of inputs (and a seed, to replay a failure). */
export interface FuzzTarget {
  readonly name: string;
  /** Relative cost of one input, for scripts that share a time budget (1 = a parser call). */
  readonly weight: number;
  check(numRuns: number, seed?: number): fc.RunDetails<unknown>;
}

function target<Ts extends [unknown, ...unknown[]]>(
  name: string,
  weight: number,
  arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => void,
): FuzzTarget {
  const property = fc.property(...arbitraries, predicate);
  return {
    name,
    weight,
    check: (numRuns, seed) =>
      fc.check(property, seed === undefined ? { numRuns } : { numRuns, seed }) as fc.RunDetails<unknown>,
  };
}

function fail(message: string): never {
  throw new Error(message);
}

const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 300 }),
  fc.string({
    unit: fc.constantFrom(
      'a',
      '=',
      '"',
      "'",
      '[',
      ']',
      '.',
      '\n',
      '\r',
      ' ',
      '#',
      '{',
      '}',
      ',',
      '0',
      '-',
      '\\',
    ),
    maxLength: 200,
  }),
);
const bytes = (maxLength: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength });

// -----------------------------------------------------------------------------------------------------
// Config

/** Tables and keys of tern.toml (docs/configuration.md), plus names no version of Tern knows. */
const CONFIG_SCHEMA: Readonly<Record<string, readonly string[]>> = {
  '': ['hostname', 'data_dir', 'local_domains', 'no_such_key'],
  limits: [
    'max_message_bytes',
    'max_recipients',
    'max_connections',
    'max_connections_per_ip',
    'max_errors',
    'greeting_timeout_seconds',
    'command_timeout_seconds',
    'data_total_timeout_seconds',
    'long_lines',
    'greeting_delay_seconds',
    'max_nothing',
  ],
  smtp: ['bare_line_endings', 'vrfy', 'trusted_networks', 'smtp_typo'],
  log: ['level', 'format'],
  auth: ['mechanisms', 'max_failures_per_connection', 'failure_delay_seconds', 'lockout_threshold'],
  submission: ['sender_check', 'max_messages_per_hour'],
  dns: ['servers', 'timeout_seconds', 'attempts'],
  outbound: ['relay', 'tls', 'port', 'max_connections', 'connect_timeout_seconds', 'command_timeout_seconds'],
  queue: [
    'retry_min_seconds',
    'retry_max_seconds',
    'lifetime_seconds',
    'delay_warning_seconds',
    'postmaster',
  ],
  checks: ['enabled', 'dmarc_reject', 'dns_failure', 'spf_timeout_seconds'],
  tls: ['cert', 'key', 'client_ca'],
  unknown_table: ['x'],
};
const LISTENER_KEYS = ['service', 'address', 'tls', 'auth', 'require_auth', 'client_certificates', 'bogus'];

const tomlValue: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: -5, max: 100_000 }).map(String),
  fc.constantFrom('0', '1', '25', '587', '9007199254740993', '1e3', '3.5', 'inf', 'nan', '-0'),
  fc.boolean().map(String),
  fc
    .constantFrom(
      'mx.example.org',
      'example.test',
      './data',
      '',
      'smtp',
      'submission',
      'submissions',
      'starttls',
      'implicit',
      'none',
      'may',
      'encrypt',
      'reject',
      'normalize',
      'accept',
      'json',
      'debug',
      '127.0.0.1:2525',
      '[::1]:25',
      '0.0.0.0:99999',
      '127.0.0.0/8',
      'postmaster@example.test',
      '[10.0.0.1]:587',
      'PLAIN',
      'bad host name',
      'é.example',
    )
    .map((s) => JSON.stringify(s)),
  fc.string({ maxLength: 20 }).map((s) => JSON.stringify(s)),
  fc
    .array(fc.constantFrom('example.test', 'PLAIN', 'LOGIN', '127.0.0.1:53', '10.0.0.0/8', 'x y', ''), {
      maxLength: 4,
    })
    .map((a) => JSON.stringify(a)),
  fc.constantFrom('[]', '{ a = 1 }', '1979-05-27T07:32:00Z'),
);

interface TomlDoc {
  readonly text: string;
  /** Top-level names the document uses (a key, a table or the listeners array). */
  readonly tops: ReadonlySet<string>;
}

const tomlDoc: fc.Arbitrary<TomlDoc> = fc
  .record({
    tables: fc.array(
      fc.tuple(
        fc.constantFrom(...Object.keys(CONFIG_SCHEMA)),
        fc.array(fc.tuple(fc.nat(20), tomlValue), { maxLength: 5 }),
      ),
      { maxLength: 6 },
    ),
    listeners: fc.array(fc.array(fc.tuple(fc.constantFrom(...LISTENER_KEYS), tomlValue), { maxLength: 5 }), {
      maxLength: 3,
    }),
  })
  .map(({ tables, listeners }) => {
    const tops = new Set<string>();
    const lines: string[] = [];
    const seenTables = new Set<string>();
    // Top-level keys must come before any table; a table may appear only once.
    const ordered = [...tables].sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : 0));
    for (const [table, entries] of ordered) {
      if (seenTables.has(table)) continue;
      seenTables.add(table);
      if (table !== '') {
        lines.push(`[${table}]`);
        tops.add(table);
      }
      const keys = CONFIG_SCHEMA[table]!;
      const used = new Set<string>();
      for (const [i, value] of entries) {
        const key = keys[i % keys.length]!;
        if (used.has(key)) continue;
        used.add(key);
        lines.push(`${key} = ${value}`);
        if (table === '') tops.add(key);
      }
    }
    for (const entries of listeners) {
      lines.push('[[listeners]]');
      tops.add('listeners');
      const used = new Set<string>();
      for (const [key, value] of entries) {
        if (used.has(key)) continue;
        used.add(key);
        lines.push(`${key} = ${value}`);
      }
    }
    return { text: lines.join('\n') + '\n', tops };
  });

const configTargets: FuzzTarget[] = [
  target('config: parseConfig never throws on any text', 3, [anyText], (text) => {
    const r = parseConfig(text, 'fuzz.toml');
    if (!r.ok) {
      if (r.errors.length === 0) fail('not ok, yet no error');
      formatConfigErrors(r.errors, 'fuzz.toml');
    }
  }),
  target(
    'config: a TOML document gives a config, or errors that each name one of its keys',
    5,
    [tomlDoc],
    (doc) => {
      const r = parseConfig(doc.text, 'fuzz.toml');
      if (r.ok) return;
      if (r.errors.length === 0) fail('not ok, yet no error');
      for (const e of r.errors) {
        if (e.key === '') {
          // Only the TOML layer may speak of the file as a whole (an integer TOML cannot hold), with a line.
          if (e.line === null || !e.message.startsWith('TOML syntax error'))
            fail(`an error without a key: ${e.message}\n${doc.text}`);
          continue;
        }
        const top = /^[^.[]+/.exec(e.key)?.[0] ?? '';
        if (!doc.tops.has(top)) fail(`error key ${e.key} is not in the document:\n${doc.text}`);
        if (e.message.trim() === '') fail(`an empty message for ${e.key}`);
      }
    },
  ),
];

// -----------------------------------------------------------------------------------------------------
// SASL

const base64Of = (a: fc.Arbitrary<Uint8Array | string>): fc.Arbitrary<string> =>
  a.map((v) => Buffer.from(typeof v === 'string' ? Buffer.from(v, 'utf8') : v).toString('base64'));

/** Client messages that look like the real thing often enough to get past the first checks. */
const saslMessage: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '\0user\0pass',
    'authz\0user\0pass',
    'n,,n=user,r=abcdefgh',
    'y,,n=user,r=abc',
    'p=tls-exporter,,n=user,r=abc',
    'n,a=admin,n=user,r=abc',
    'c=biws,r=abcdefgh,p=AAAA',
    'n,a=u@example.test,\x01auth=Bearer abc.def\x01\x01',
    'user=u@example.test\x01auth=Bearer token\x01\x01',
    'user',
    'pass',
    '',
  ),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc
    .array(
      fc.constantFrom(
        'n',
        'y',
        'p',
        ',',
        '=',
        'a',
        'r',
        'c',
        'biws',
        '\x01',
        '\0',
        'auth=Bearer ',
        '=2C',
        '=3D',
        'é',
      ),
      {
        maxLength: 24,
      },
    )
    .map((a) => a.join('')),
);
const saslLine: fc.Arbitrary<string> = fc.oneof(
  base64Of(saslMessage),
  fc.constantFrom('*', '=', '', 'AAAA', 'AA==', 'AB==', 'A===', 'not base64!'),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  fc.constant('A'.repeat(12_300)),
);

const verifyAnswer: fc.Arbitrary<'accept' | 'reject' | 'temporary' | 'secrets'> = fc.constantFrom(
  'accept',
  'reject',
  'temporary',
  'secrets',
);

/**
 * The directory's answer as the driver gives it: SCRAM asks for secrets (never a bare accept), the
 * others for a verdict (never secrets); the mechanisms throw on any other pairing, a driver bug.
 */
function answerFor(request: VerifyRequest, pick: string): VerifyAnswer {
  if (pick === 'temporary') return { kind: 'temporary' };
  if (pick === 'reject') return { kind: 'reject' };
  if (request.kind === 'scram')
    return {
      kind: 'scram-secrets',
      identity: 'user@example.test',
      secrets: decoyScramSecrets(new Uint8Array(32), 'user@example.test'),
    };
  return { kind: 'accept', identity: 'user@example.test' };
}

function checkReply(reply: Reply, where: string): void {
  if (!Number.isInteger(reply.code) || reply.code < 200 || reply.code > 599)
    fail(`${where}: reply code ${reply.code}`);
  if (/[\r\n]/.test(reply.text) || /[\r\n]/.test(reply.enhanced)) fail(`${where}: CR or LF in reply text`);
}

/** Drive one mechanism through an exchange: true when it ended (success or failure). */
function driveExchange(
  exchange: AuthExchange,
  first: AuthAction,
  lines: readonly string[],
  answers: readonly string[],
): void {
  let action = first;
  let li = 0;
  let ai = 0;
  for (let steps = 0; steps < 20; steps++) {
    switch (action.kind) {
      case 'challenge': {
        const reply = smtpAuthFraming.challenge(action.data);
        checkReply(reply, 'challenge');
        if (reply.code !== 334) fail(`challenge with code ${reply.code}`);
        if (li >= lines.length) return;
        action = exchange.line(lines[li++]!);
        break;
      }
      case 'verify':
        action = exchange.answer(
          answerFor(action.request, answers[ai++ % Math.max(answers.length, 1)] ?? 'reject'),
        );
        break;
      case 'done': {
        const { outcome } = action;
        const reply = outcome.ok ? smtpAuthFraming.success() : smtpAuthFraming.failure(outcome.reason);
        checkReply(reply, 'outcome');
        if (outcome.ok !== (reply.code === 235 || reply.code === 250))
          fail(`outcome ok=${outcome.ok} with ${reply.code}`);
        return;
      }
      default:
        return fail('unknown action');
    }
  }
}

const saslTargets: FuzzTarget[] = [
  target(
    'sasl: decodeSaslLine is total and accepts canonical base64 only',
    1,
    [saslLine, fc.boolean()],
    (line, initial) => {
      const r = decodeSaslLine(line, initial ? 'initial' : 'response');
      if (r.kind === 'data' && line !== '' && line !== '=' && encodeBase64(r.data) !== line)
        fail(`accepted a non-canonical spelling ${JSON.stringify(line)}`);
    },
  ),
  target('sasl: base64 round trip', 1, [bytes(300)], (b) => {
    const text = encodeBase64(b);
    const back = decodeBase64Strict(text);
    if (back === null || !Buffer.from(back).equals(Buffer.from(b))) fail('round trip');
  }),
  target(
    'sasl: PLAIN, OAUTHBEARER, XOAUTH2, GS2 and key-value parsers and SASLprep never throw',
    2,
    [saslMessage, bytes(120)],
    (text, raw) => {
      const enc = new TextEncoder().encode(text);
      for (const b of [enc, raw]) {
        parsePlainMessage(b);
        parseOAuthBearerMessage(b);
        parseXOAuth2Message(b);
      }
      parseGs2Header(text);
      parseKvPairs(text);
      saslprep(text);
      saslprep(Buffer.from(raw).toString('latin1'));
    },
  ),
  target(
    'sasl: every mechanism survives any conversation (random lines, random directory answers)',
    20,
    [
      fc.constantFrom<MechanismName>(...MECHANISM_NAMES),
      fc.option(saslLine, { nil: null }),
      fc.array(saslLine, { maxLength: 5 }),
      fc.array(verifyAnswer, { maxLength: 4 }),
      fc.boolean(),
    ],
    (name, initial, lines, answers, binding) => {
      const mechanism = createMechanism(name, {
        hostname: 'mx.example.test',
        ...(binding ? { channelBinding: { 'tls-exporter': new Uint8Array(32).fill(7) } } : {}),
        random: (n) => new Uint8Array(n).fill(42),
        nowMs: 1_700_000_000_000,
      });
      const exchange = createAuthExchange(mechanism);
      driveExchange(exchange, exchange.begin(initial), lines, answers);
    },
  ),
];

// -----------------------------------------------------------------------------------------------------
// SMTP

const commandTargets: FuzzTarget[] = [
  target(
    'smtp: command, MAIL/RCPT path, BDAT and HELO parsers never throw',
    1,
    [
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 120 }),
        fc.string({
          unit: fc.constantFrom(
            '<',
            '>',
            '@',
            '"',
            '\\',
            ' ',
            ':',
            '=',
            '.',
            'a',
            'é',
            '[',
            ']',
            ',',
            '+',
            '%',
            '!',
          ),
          maxLength: 60,
        }),
      ),
      fc.boolean(),
      fc.boolean(),
    ],
    (line, esmtp, utf8) => {
      const { arg } = parseCommandLine(line);
      parseMail(arg, esmtp);
      parseRcpt(arg, esmtp, utf8);
      parseBdat(arg);
      isAcceptableHelo(arg);
      parsePath(arg, { allowNull: esmtp, utf8 });
      parseMailbox(arg, utf8);
    },
  ),
];

const enc = new TextEncoder();

const SMTP_TOKENS = [
  'EHLO client.example\r\n',
  'HELO client.example\r\n',
  'EHLO [127.0.0.1]\r\n',
  'MAIL FROM:<a@remote.example>\r\n',
  'MAIL FROM:<> BODY=8BITMIME SIZE=100\r\n',
  'MAIL FROM:<a@remote.example> BODY=BINARYMIME SMTPUTF8 RET=HDRS ENVID=x+2By\r\n',
  'MAIL FROM:<é@ü.example> SMTPUTF8\r\n',
  'RCPT TO:<u@example.test>\r\n',
  'RCPT TO:<v@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;v@example.test\r\n',
  'RCPT TO:<Postmaster>\r\n',
  'DATA\r\n',
  'BDAT 10\r\n',
  'BDAT 3 LAST\r\n',
  'BDAT 0 LAST\r\n',
  'BDAT 99999999999999999999\r\n',
  '.\r\n',
  '..\r\n',
  '\r\n.\r\n',
  '\r\n',
  '\r',
  '\n',
  '\0',
  'RSET\r\n',
  'NOOP\r\n',
  'VRFY someone\r\n',
  'HELP\r\n',
  'QUIT\r\n',
  'STARTTLS\r\n',
  'AUTH PLAIN\r\n',
  'AUTH PLAIN AHVzZXJAZXhhbXBsZS50ZXN0AHNlY3JldA==\r\n',
  'AUTH LOGIN\r\n',
  'AUTH CRAM-MD5\r\n',
  'AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM\r\n',
  'AUTH EXTERNAL =\r\n',
  'AUTH XOAUTH2\r\n',
  '*\r\n',
  'dXNlcg==\r\n',
  'Subject: hello\r\n',
  'x'.repeat(600),
  'y'.repeat(1200) + '\r\n',
  '\xff\xfe',
];

const smtpChunk: fc.Arbitrary<Uint8Array> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(...SMTP_TOKENS).map((t) => Buffer.from(t, 'latin1') as Uint8Array),
  },
  {
    weight: 2,
    arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 40 }).map((s) => enc.encode(s + '\r\n')),
  },
  { weight: 1, arbitrary: bytes(64) },
);

const sessionOptions: fc.Arbitrary<SessionOptions> = fc.record({
  hostname: fc.constant('mx.example.test'),
  maxMessageBytes: fc.constantFrom(100, 10_000, 1_000_000),
  maxRecipients: fc.constantFrom(1, 3, 100),
  maxTransactions: fc.constantFrom(1, 5, 100),
  maxCommandLineBytes: fc.constant(512),
  maxTextLineBytes: fc.constant(1000),
  longLines: fc.constantFrom('reject' as const, 'accept' as const),
  maxErrors: fc.constantFrom(3, 20, 1000),
  maxJunkCommands: fc.constantFrom(0, 3, 100),
  bareLineEndings: fc.constantFrom('reject' as const, 'normalize' as const),
  vrfy: fc.boolean(),
  starttls: fc.boolean(),
  tlsActive: fc.boolean(),
  authMechanisms: fc.subarray([
    'PLAIN',
    'LOGIN',
    'SCRAM-SHA-256',
    'SCRAM-SHA-256-PLUS',
    'CRAM-MD5',
    'EXTERNAL',
    'XOAUTH2',
  ]),
  plaintextAuth: fc.boolean(),
  requireAuth: fc.boolean(),
});

/** Decisions the driver makes; drawn once per run and used in turn. */
interface Choices {
  readonly accept: readonly boolean[];
}

/**
 * A synchronous driver: answers every decision the session asks for (MAIL, RCPT, VRFY, commit, TLS,
 * SASL through the real exchange) from `choices`, like src/server/smtp-connection.ts does with I/O.
 * Collects what a client would see and the messages that would be queued.
 */
class Driver {
  readonly session: SmtpSession;
  readonly replies: string[] = [];
  readonly messages: Buffer[] = [];
  closed = false;
  #current: Uint8Array[] | null = null;
  #choice = 0;
  readonly #choices: Choices;
  #exchange: AuthExchange | null = null;

  constructor(options: SessionOptions, choices: Choices) {
    this.session = new SmtpSession(options);
    this.#choices = choices;
    this.#run(this.session.greet());
  }

  #yes(): boolean {
    const list = this.#choices.accept;
    return list.length === 0 ? true : list[this.#choice++ % list.length]!;
  }

  feed(bytes: Uint8Array): void {
    const effects = this.session.feed(bytes);
    if (this.closed && effects.length > 0)
      fail(`effects after close: ${effects.map((e) => e.kind).join(',')}`);
    this.#run(effects);
  }

  /** Performs effects in order; resolutions append their effects to the same work list (no recursion). */
  #run(initial: Effect[]): void {
    const work = [...initial];
    for (let i = 0; i < work.length; i++) {
      const e = work[i]!;
      if (this.closed && e.kind === 'reply') fail(`a reply after close: ${e.reply.code}`);
      const more = this.#perform(e);
      if (more.length > 0) work.splice(i + 1, 0, ...more);
    }
  }

  #perform(e: Effect): Effect[] {
    switch (e.kind) {
      case 'reply': {
        checkReply(e.reply, 'session');
        const wire = formatReply(e.reply, true, e.extraLines);
        const lines = wire.split('\r\n');
        if (lines.pop() !== '') fail(`reply does not end with CRLF: ${JSON.stringify(wire)}`);
        lines.forEach((line, i) => {
          const last = i === lines.length - 1;
          if (!(last ? /^\d{3} / : /^\d{3}-/).test(line) && !(last && /^\d{3}$/.test(line)))
            fail(`malformed reply line ${JSON.stringify(line)} in ${JSON.stringify(wire)}`);
          if (line.slice(0, 3) !== String(e.reply.code)) fail(`mixed codes in ${JSON.stringify(wire)}`);
          if (/[\r\n\0]/.test(line)) fail(`control character in ${JSON.stringify(line)}`);
          if (Buffer.byteLength(line) + 2 > 512) fail(`reply line of ${Buffer.byteLength(line) + 2} octets`);
        });
        this.replies.push(`${e.reply.code}${e.reply.enhanced ? ' ' + e.reply.enhanced : ''}`);
        return [];
      }
      case 'close':
        this.closed = true;
        return [];
      case 'check-mail':
        return this.session.resolve({ kind: 'mail', reply: this.#yes() ? null : Replies.userRateLimited });
      case 'check-rcpt':
        return this.#yes()
          ? this.session.resolve({
              kind: 'rcpt',
              recipient: {
                address: `${e.rcpt.recipient.local}@${e.rcpt.recipient.domain}`,
                notify: e.rcpt.notify,
                orcpt: e.rcpt.orcpt,
              },
              reply: Replies.recipientOk,
            })
          : this.session.resolve({ kind: 'rcpt', recipient: null, reply: Replies.noSuchUser });
      case 'check-vrfy':
        return this.session.resolve({ kind: 'vrfy', reply: Replies.cannotVrfy });
      case 'starttls':
        return this.session.resolve({ kind: 'tls', ok: this.#yes() });
      case 'begin-message':
        this.#current = [];
        return [];
      case 'data':
        if (this.#current === null) fail('data outside a message');
        this.#current.push(e.chunk);
        return [];
      case 'abort-message':
        this.#current = null;
        return [];
      case 'commit': {
        if (this.#current === null) fail('commit without a message');
        const body = Buffer.concat(this.#current);
        this.#current = null;
        if (body.length !== e.sizeBytes && e.sizeBytes < body.length)
          fail(`size ${e.sizeBytes} < ${body.length} bytes`);
        const ok = this.#yes();
        if (ok) this.messages.push(body);
        return this.session.resolve({
          kind: 'commit',
          reply: ok ? Replies.queued : Replies.insufficientStorage,
        });
      }
      case 'auth-start': {
        if (!(MECHANISM_NAMES as readonly string[]).includes(e.mechanism))
          return this.session.resolve({
            kind: 'auth',
            outcome: { kind: 'failure', reply: Replies.authUnknownMechanism, close: false },
          });
        this.#exchange = createAuthExchange(
          createMechanism(e.mechanism as MechanismName, {
            hostname: 'mx.example.test',
            random: (n) => new Uint8Array(n).fill(1),
            nowMs: 0,
          }),
        );
        return this.#authStep(this.#exchange.begin(e.initialResponse));
      }
      case 'auth-response':
        if (this.#exchange === null) fail('auth-response without an exchange');
        return this.#authStep(this.#exchange.line(e.line));
      case 'state':
      case 'command':
      case 'violation':
        return [];
      default:
        return fail(`unknown effect ${JSON.stringify(e)}`);
    }
  }

  #authStep(action: AuthAction): Effect[] {
    const exchange = this.#exchange!;
    for (;;) {
      switch (action.kind) {
        case 'challenge':
          return this.session.resolve({
            kind: 'auth',
            outcome: { kind: 'challenge', challenge: smtpAuthFraming.challenge(action.data).text },
          });
        case 'verify':
          action = exchange.answer(answerFor(action.request, this.#yes() ? 'accept' : 'reject'));
          continue;
        case 'done':
          this.#exchange = null;
          return this.session.resolve({
            kind: 'auth',
            outcome: action.outcome.ok
              ? { kind: 'success', user: action.outcome.identity, reply: smtpAuthFraming.success() }
              : { kind: 'failure', reply: smtpAuthFraming.failure(action.outcome.reason), close: false },
          });
        default:
          return fail('unknown auth action');
      }
    }
  }
}

/** A random message: CRLF lines of printable text, some starting with dots, some empty. */
const messageText: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      fc.string({ unit: fc.constantFrom('a', 'b', ' ', '.', ':', '-', 'z', '~'), maxLength: 30 }),
      fc.constantFrom('.', '..', '.\t', '', 'Subject: x', '. ', '...'),
    ),
    { maxLength: 12 },
  )
  .map((lines) => lines.map((l) => l + '\r\n').join(''));

const dotStuff = (text: string): string => text.replace(/^\./gm, '..');

const sessionTargets: FuzzTarget[] = [
  target(
    'smtp session: random byte streams never throw, replies are well formed and none follows the close, the buffer stays bounded',
    30,
    [
      sessionOptions,
      fc.array(smtpChunk, { maxLength: 40 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
    ],
    (options, chunks, accept) => {
      const d = new Driver(options, { accept });
      for (const chunk of chunks) {
        d.feed(chunk);
        if (d.session.bufferedBytes > 12_288 + 2) fail(`${d.session.bufferedBytes} bytes buffered`);
      }
    },
  ),
  target(
    'smtp session: random messages over DATA and BDAT, cut anywhere, give the same messages and replies',
    15,
    [
      fc.array(fc.tuple(messageText, fc.boolean(), fc.array(fc.nat(40), { maxLength: 3 })), {
        minLength: 1,
        maxLength: 3,
      }),
      fc.array(fc.nat(), { maxLength: 30 }),
    ],
    (messages, cuts) => {
      const options: SessionOptions = {
        hostname: 'mx.example.test',
        maxMessageBytes: 1_000_000,
        maxRecipients: 10,
        maxTransactions: 100,
        maxCommandLineBytes: 512,
        maxTextLineBytes: 1000,
        longLines: 'reject',
        maxErrors: 100,
        maxJunkCommands: 100,
        bareLineEndings: 'reject',
        vrfy: false,
        starttls: false,
        tlsActive: false,
        authMechanisms: [],
        plaintextAuth: false,
        requireAuth: false,
      };
      let stream = 'EHLO client.example\r\n';
      for (const [text, bdat, splits] of messages) {
        stream += 'MAIL FROM:<a@remote.example>\r\nRCPT TO:<u@example.test>\r\n';
        if (!bdat) {
          stream += `DATA\r\n${dotStuff(text)}.\r\n`;
          continue;
        }
        // BDAT chunks at the given (sorted, distinct) offsets, the last one LAST.
        const points = [...new Set(splits.map((s) => s % (text.length + 1)))].sort((a, b) => a - b);
        let prev = 0;
        for (const p of points) {
          stream += `BDAT ${p - prev}\r\n${text.slice(prev, p)}`;
          prev = p;
        }
        stream += `BDAT ${text.length - prev} LAST\r\n${text.slice(prev)}`;
      }
      stream += 'QUIT\r\n';
      const bytes = Buffer.from(stream, 'latin1');
      const whole = new Driver(options, { accept: [true] });
      whole.feed(bytes);
      const expected = messages.map(([text]) => text);
      const got = whole.messages.map((m) => m.toString('latin1'));
      if (JSON.stringify(got) !== JSON.stringify(expected))
        fail(`messages differ:\n${JSON.stringify(got)}\n${JSON.stringify(expected)}`);
      const cut = new Driver(options, { accept: [true] });
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      let prev = 0;
      for (const p of [...points, bytes.length]) {
        cut.feed(bytes.subarray(prev, p));
        prev = p;
      }
      if (JSON.stringify(cut.replies) !== JSON.stringify(whole.replies))
        fail(
          `replies differ when cut at ${points.join(',')}:\n${cut.replies.join(' ')}\n${whole.replies.join(' ')}`,
        );
      if (JSON.stringify(cut.messages.map((m) => m.toString('latin1'))) !== JSON.stringify(got))
        fail(`messages differ when cut at ${points.join(',')}`);
    },
  ),
];

/** Every property, cheapest first. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  ...commandTargets,
  ...saslTargets,
  ...configTargets,
  ...sessionTargets,
];
