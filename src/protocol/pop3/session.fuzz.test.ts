// 10^6 random and mutated inputs through Pop3Session, with every decision resolved at random: the session
// never throws, never answers after it closed, and every status line it writes fits RFC 2449's 512
// octets. fast-check draws one seed per batch (and shrinks a failing batch to its seed); inside a batch a
// small PRNG makes the inputs, which is what keeps 10^6 of them within the default test run's budget.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatStatusLine, Pop3Replies } from './replies.ts';
import { Pop3Session, RFC2449_MAX_COMMAND_LINE_BYTES, type Effect, type Resolution } from './session.ts';

const BATCHES = 1000;
const INPUTS_PER_BATCH = 1000;

type Rng = () => number;

/** xorshift32: fast and deterministic from the batch seed. */
function makeRng(seed: number): Rng {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

const CORPUS = [
  'USER jürgen@example.test',
  'USER 日本@example.test',
  'USER alice@example.test',
  'PASS secret pass',
  'PASS 秘密',
  'APOP 日本@example.test c4c9334bac560ecc979e58001b3e22fb',
  'AUTH',
  'AUTH PLAIN',
  'AUTH PLAIN =',
  'AUTH PLAIN AGrDvHJnZW5AZXhhbXBsZS50ZXN0AHA=',
  'AUTH SCRAM-SHA-256-PLUS',
  'AUTH EXTERNAL =',
  '*',
  'dGVzdA==',
  'STLS',
  'CAPA',
  'UTF8',
  'STAT',
  'LIST',
  'LIST 1',
  'LIST 2',
  'LIST 0',
  'LIST 99999999999999999999',
  'RETR 1',
  'RETR 3',
  'TOP 1 0',
  'TOP 2 5',
  'TOP 1 -1',
  'DELE 1',
  'DELE 2',
  'NOOP',
  'RSET',
  'UIDL',
  'UIDL 1',
  'QUIT',
  '',
  ' ',
  'list +1',
  'X'.repeat(300),
  `AUTH PLAIN ${'A'.repeat(400)}`,
];
const SEPARATORS = ['\r\n', '\r\n', '\r\n', '\n', '\r', ''];
const SPECIAL = [0, 10, 13, 32, 42, 46, 0xc3, 0xff, 0x80];
const encoder = new TextEncoder();
const corpusBytes = CORPUS.map((c) => encoder.encode(c));
const separatorBytes = SEPARATORS.map((s) => encoder.encode(s));

function makeInput(rng: Rng): Uint8Array {
  const r = rng();
  if (r < 0.1) {
    // Pure noise.
    const out = new Uint8Array(Math.floor(rng() * 64));
    for (let i = 0; i < out.length; i++) out[i] = rng() < 0.3 ? pick(rng, SPECIAL) : Math.floor(rng() * 256);
    return out;
  }
  const parts: number[] = [];
  const commands = 1 + Math.floor(rng() * 8);
  for (let i = 0; i < commands; i++) {
    parts.push(...pick(rng, corpusBytes), ...pick(rng, separatorBytes));
  }
  const mutations = r < 0.5 ? 0 : Math.floor(rng() * 4);
  for (let m = 0; m < mutations && parts.length > 0; m++) {
    const at = Math.floor(rng() * parts.length);
    switch (Math.floor(rng() * 5)) {
      case 0:
        parts[at] = Math.floor(rng() * 256);
        break;
      case 1:
        parts.splice(at, 0, pick(rng, SPECIAL));
        break;
      case 2:
        parts.splice(at, 1 + Math.floor(rng() * 4));
        break;
      case 3:
        parts.splice(at, 0, ...parts.slice(at, at + Math.floor(rng() * 12)));
        break;
      default:
        parts.length = at;
    }
  }
  return Uint8Array.from(parts);
}

function randomResolution(rng: Rng, e: Effect): Resolution | null {
  const failure = (): { kind: 'failure'; close: boolean } => ({ kind: 'failure', close: rng() < 0.2 });
  switch (e.kind) {
    case 'starttls':
      return rng() < 0.5
        ? { kind: 'tls', ok: rng() < 0.9 }
        : { kind: 'tls', ok: true, authMechanisms: ['PLAIN', 'EXTERNAL'] };
    case 'login':
    case 'apop':
      return {
        kind: 'login',
        outcome: rng() < 0.6 ? { kind: 'success', user: 'jürgen@example.test' } : failure(),
      };
    case 'auth-start':
    case 'auth-response': {
      const r = rng();
      return {
        kind: 'auth',
        outcome:
          r < 0.4
            ? { kind: 'challenge', challenge: 'cj1mb28=' }
            : r < 0.8
              ? { kind: 'success', user: '日本@example.test' }
              : failure(),
      };
    }
    case 'open-maildrop': {
      if (rng() < 0.15) return { kind: 'maildrop', outcome: { ok: false, reply: Pop3Replies.maildropInUse } };
      const count = Math.floor(rng() * 4);
      const messages = Array.from({ length: count }, (_, i) => ({ uid: `7.${i + 1}`, sizeBytes: 100 * i }));
      return { kind: 'maildrop', outcome: { ok: true, messages } };
    }
    case 'open-message':
      return { kind: 'message', ok: rng() < 0.8 };
    case 'update':
      return { kind: 'update', ok: rng() < 0.8 };
    case 'reply':
    case 'challenge':
    case 'close':
    case 'state':
    case 'command':
    case 'violation':
    case 'send-message':
      return null;
    default: {
      const never: never = e;
      throw new Error(`unhandled ${JSON.stringify(never)}`);
    }
  }
}

/** Effect kinds seen, so the test proves the inputs reach every state, not just AUTHORIZATION. */
const seen = new Set<Effect['kind']>();

function handle(rng: Rng, session: Pop3Session, effects: Effect[]): void {
  for (const e of effects) {
    seen.add(e.kind);
    if (e.kind === 'reply') {
      // RFC 2449 §4: a status line is at most 512 octets with CRLF.
      assert.ok(formatStatusLine(e.reply).length <= 510);
      continue;
    }
    const resolution = randomResolution(rng, e);
    if (resolution !== null) handle(rng, session, session.resolve(resolution));
  }
}

function runOne(rng: Rng, input: Uint8Array): void {
  const session = new Pop3Session({
    starttls: rng() < 0.7,
    tlsActive: rng() < 0.3,
    authMechanisms: rng() < 0.8 ? ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'] : [],
    plaintextAuth: rng() < 0.5,
    apopTimestamp: rng() < 0.3 ? '<1.2@pop.example.test>' : null,
    maxCommandLineBytes: RFC2449_MAX_COMMAND_LINE_BYTES,
    maxErrors: Math.floor(rng() * 6),
    maxJunkCommands: Math.floor(rng() * 12),
  });
  handle(rng, session, session.greet());
  // Up to three feeds: fragmentation is part of the input space.
  let start = 0;
  for (let f = 0; f < 3 && start < input.length; f++) {
    const end = f === 2 ? input.length : start + Math.floor(rng() * (input.length - start + 1));
    const wasClosed = session.phase === 'closed';
    const effects = session.feed(input.subarray(start, end));
    if (wasClosed) assert.equal(effects.length, 0);
    handle(rng, session, effects);
    start = end;
  }
  if (session.phase !== 'closed') {
    session.close();
    assert.equal(session.phase, 'closed');
  }
}

describe('POP3 session: fuzz', () => {
  it(`${BATCHES * INPUTS_PER_BATCH} random and mutated inputs never throw`, () => {
    let inputs = 0;
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rng = makeRng(seed);
        for (let i = 0; i < INPUTS_PER_BATCH; i++) runOne(rng, makeInput(rng));
        inputs += INPUTS_PER_BATCH;
      }),
      { numRuns: BATCHES },
    );
    assert.equal(inputs, BATCHES * INPUTS_PER_BATCH);
    const kinds: readonly Effect['kind'][] = [
      'starttls',
      'login',
      'apop',
      'auth-start',
      'auth-response',
      'challenge',
      'open-maildrop',
      'open-message',
      'send-message',
      'update',
    ];
    assert.deepEqual(
      kinds.filter((k) => !seen.has(k)),
      [],
    );
  });
});
