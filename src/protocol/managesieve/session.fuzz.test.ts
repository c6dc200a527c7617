// Random and mutated inputs through ManageSieveSession, with every decision resolved at random: the
// session never throws, says nothing after it closed, and every response it writes formats. fast-check
// draws one seed per batch (and shrinks a failing batch to its seed); inside a batch a small PRNG makes the
// inputs, which keeps 10^5 of them within the default test run's budget.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatReply } from './format.ts';
import { ManageSieveSession, type Effect, type Resolution, type StoreResult } from './session.ts';
import { baseOptions, plainResponse } from './test-harness.ts';

const BATCHES = 200;
const INPUTS_PER_BATCH = 500;

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
  'CAPABILITY',
  'STARTTLS',
  'LOGOUT',
  'NOOP',
  'NOOP "tag"',
  'NOOP {3+}\r\nabc',
  `AUTHENTICATE "PLAIN" "${plainResponse('jürgen@example.test', 'pässwörd')}"`,
  'AUTHENTICATE "PLAIN"',
  'AUTHENTICATE "SCRAM-SHA-256-PLUS"',
  'AUTHENTICATE "EXTERNAL" ""',
  '"*"',
  '"dGVzdA=="',
  '{8+}\r\ndGVzdA==',
  'UNAUTHENTICATE',
  'LISTSCRIPTS',
  'PUTSCRIPT "Ferien ü" {6+}\r\nkeep;\n',
  'PUTSCRIPT "日本" "keep;"',
  'PUTSCRIPT "b" {6}\r\nbogus;',
  'PUTSCRIPT "big" {99999+}',
  'PUTSCRIPT "x" {99999999999+}',
  'CHECKSCRIPT "warn;"',
  'SETACTIVE "Ferien ü"',
  'SETACTIVE ""',
  'GETSCRIPT "日本"',
  'DELETESCRIPT "Ferien ü"',
  'RENAMESCRIPT {2+}\r\nab {3+}\r\ncde',
  'HAVESPACE "a" 100',
  'HAVESPACE "a" 99999999999999999999',
  'GETSCRIPT ""',
  '',
  ' ',
  '"',
  '{',
  '{5+}',
  'X'.repeat(300),
];
const SEPARATORS = ['\r\n', '\r\n', '\r\n', '\n', '\r', '', ' '];
const SPECIAL = [0, 10, 13, 32, 34, 42, 43, 92, 123, 125, 0xc3, 0xff, 0x80];
const encoder = new TextEncoder();
const corpusBytes = CORPUS.map((c) => encoder.encode(c));
const separatorBytes = SEPARATORS.map((s) => encoder.encode(s));

function makeInput(rng: Rng): Uint8Array {
  const r = rng();
  if (r < 0.1) {
    const out = new Uint8Array(Math.floor(rng() * 64));
    for (let i = 0; i < out.length; i++) out[i] = rng() < 0.3 ? pick(rng, SPECIAL) : Math.floor(rng() * 256);
    return out;
  }
  const parts: number[] = [];
  const commands = 1 + Math.floor(rng() * 8);
  for (let i = 0; i < commands; i++) parts.push(...pick(rng, corpusBytes), ...pick(rng, separatorBytes));
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

function storeResult(rng: Rng, e: Extract<Effect, { kind: 'store' }>): StoreResult {
  if (rng() < 0.25)
    return {
      kind: 'refused',
      refusal: pick(rng, [
        'nonexistent',
        'already-exists',
        'active',
        'max-scripts',
        'max-size',
        'temporary',
      ] as const),
    };
  switch (e.op.kind) {
    case 'list':
      return {
        kind: 'list',
        scripts: [
          { name: 'a "b"', active: rng() < 0.5 },
          { name: '日本', active: false },
        ],
      };
    case 'get':
      return { kind: 'script', script: rng() < 0.5 ? 'keep;' : 'if true {\r\n  stop;\r\n}\r\n' };
    default:
      return { kind: 'done' };
  }
}

function randomResolution(rng: Rng, e: Effect): Resolution | null {
  const failure = (): { kind: 'failure'; close: boolean } => ({ kind: 'failure', close: rng() < 0.2 });
  switch (e.kind) {
    case 'starttls':
      return rng() < 0.5
        ? { kind: 'tls', ok: rng() < 0.9 }
        : { kind: 'tls', ok: true, authMechanisms: ['PLAIN'] };
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
    case 'store':
      return { kind: 'store', result: storeResult(rng, e) };
    case 'reply':
    case 'challenge':
    case 'close':
    case 'state':
    case 'command':
    case 'violation':
      return null;
    default: {
      const never: never = e;
      throw new Error(`unhandled ${JSON.stringify(never)}`);
    }
  }
}

const seen = new Set<Effect['kind'] | `store:${string}`>();

function handle(rng: Rng, session: ManageSieveSession, effects: Effect[]): void {
  for (const e of effects) {
    seen.add(e.kind);
    if (e.kind === 'store') seen.add(`store:${e.op.kind}`);
    if (e.kind === 'reply') {
      assert.ok(formatReply(e.reply, e.lines).length > 0);
      continue;
    }
    const resolution = randomResolution(rng, e);
    if (resolution !== null) handle(rng, session, session.resolve(resolution));
  }
}

function runOne(rng: Rng, input: Uint8Array): void {
  const session = new ManageSieveSession({
    ...baseOptions,
    starttls: rng() < 0.7,
    tlsActive: rng() < 0.5,
    authMechanisms: rng() < 0.8 ? ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'] : [],
    plaintextAuth: rng() < 0.5,
    maxScriptBytes: rng() < 0.5 ? 16 : baseOptions.maxScriptBytes,
    maxLineBytes: rng() < 0.3 ? 64 : baseOptions.maxLineBytes,
    maxErrors: Math.floor(rng() * 6),
    maxCommandsBeforeAuth: Math.floor(rng() * 12),
  });
  handle(rng, session, session.greet());
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

describe('ManageSieve session: fuzz', () => {
  it(`${BATCHES * INPUTS_PER_BATCH} random and mutated inputs never throw`, () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rng = makeRng(seed);
        for (let i = 0; i < INPUTS_PER_BATCH; i++) runOne(rng, makeInput(rng));
      }),
      { numRuns: BATCHES },
    );
    const kinds = [
      'starttls',
      'auth-start',
      'auth-response',
      'challenge',
      'store:put',
      'store:list',
      'store:get',
      'store:set-active',
      'store:delete',
      'store:rename',
      'store:have-space',
    ] as const;
    assert.deepEqual(
      kinds.filter((k) => !seen.has(k)),
      [],
    );
  });
});
