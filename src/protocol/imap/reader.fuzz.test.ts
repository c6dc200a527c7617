// 10^6 random and mutated inputs through ImapCommandReader, in random pieces, with the driver's calls
// (expectLine, refuseLiteral, discard) made at random: the reader never throws, never holds more than
// its limits allow, and every error it reports is one the session can answer. Then 10^6 more through
// the whole ImapSession with a driver that answers at random (states, literals accepted or refused,
// raw lines, TLS and COMPRESS restarts): no throw, bounded buffers, every write a well-formed response. fast-check draws one
// seed per batch (and shrinks a failing batch to its seed); a small PRNG makes the inputs inside it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatParseError } from './format.ts';
import { ImapCommandReader, type ImapReaderLimits } from './reader.ts';
import { ImapSession, type Effect, type ImapState } from './session.ts';

const BATCHES = 1000;
const INPUTS_PER_BATCH = 1000;

const LIMITS: ImapReaderLimits = {
  maxLineBytes: 1024,
  maxLiteralBytes: 512,
  maxMessageBytes: 2048,
  maxCommandBytes: 4096,
  maxLiteralsPerCommand: 20,
};
/** What the reader may hold after next() returned null: a partial line, the command, one literal. */
const MAX_BUFFERED = LIMITS.maxLineBytes + LIMITS.maxCommandBytes + LIMITS.maxLiteralBytes;

type Rng = () => number;

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
  'a1 LOGIN jürgen@example.test "秘密"',
  'a2 LOGIN {20}\r\n日本@example.test x',
  'a3 AUTHENTICATE PLAIN AGrDvHJnZW4AcA==',
  'a4 SELECT "Entw&APw-rfe" (QRESYNC (67890007 20050715194045000 41,43:211 (1:5 2:9)))',
  'a5 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" %) RETURN (STATUS (MESSAGES SIZE) CHILDREN)',
  'a6 APPEND INBOX (\\Seen) "07-Feb-1994 21:52:25 -0800" {10+}\r\n0123456789 (\\Draft) ~{3+}\r\nabc',
  'a7 APPEND x CATENATE (URL "/INBOX;UID=1" TEXT {2}\r\nhi)',
  'a8 UID SEARCH RETURN (MIN SAVE) CHARSET UTF-8 OR (FROM 日本 NOT SEEN) MODSEQ 5 $ 1:*,4:2 SINCE 1-Feb-1994',
  'a9 FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY.SIZE[1] PREVIEW (LAZY)) (CHANGEDSINCE 1)',
  'b1 UID STORE 1:3 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\\Deleted $Junk)',
  'b2 UID MOVE 1:* "日本"',
  'b3 SORT RETURN (COUNT) (REVERSE DATE) UTF-8 ALL',
  'b4 THREAD REFERENCES UTF-8 TEXT {3+}\r\nfoo',
  'b5 ID ("name" "x" "version" NIL)',
  'b6 IDLE',
  'DONE',
  'b7 SETQUOTA "" (STORAGE 512)',
  'b8 ENABLE UTF8=ACCEPT CONDSTORE',
  'b9 STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ APPENDLIMIT)',
  'c1 NOTIFY SET',
  'c2 LOGIN {99999999999999999999}',
  'c3 LOGIN {600+}',
  '*',
  '',
];
const SEPARATORS = ['\r\n', '\r\n', '\r\n', '\n', '\r', ''];
const SPECIAL = [0x00, 0x0a, 0x0d, 0x20, 0x22, 0x28, 0x29, 0x2a, 0x2b, 0x5c, 0x7b, 0x7d, 0x7e, 0xc3, 0xff];
const encoder = new TextEncoder();
const corpusBytes = CORPUS.map((c) => encoder.encode(c));
const separatorBytes = SEPARATORS.map((s) => encoder.encode(s));

function makeInput(rng: Rng): Uint8Array {
  const r = rng();
  if (r < 0.1) {
    const noise = new Uint8Array(1 + Math.floor(rng() * 64));
    for (let k = 0; k < noise.length; k++)
      noise[k] = rng() < 0.5 ? pick(rng, SPECIAL) : Math.floor(rng() * 256);
    return noise;
  }
  if (r < 0.15) {
    // A literal announcement of a random size, maybe followed by that many bytes.
    const n = Math.floor(rng() ** 3 * 5000);
    const head = encoder.encode(
      `x${Math.floor(rng() * 9)} ${pick(rng, ['LOGIN', 'APPEND INBOX', 'SEARCH TEXT'])} ${pick(rng, ['', '~'])}{${n}${pick(rng, ['', '+'])}}\r\n`,
    );
    const body = new Uint8Array(rng() < 0.5 ? n : Math.floor(rng() * n)).fill(0x41);
    return Buffer.concat([head, body]);
  }
  const base = pick(rng, corpusBytes);
  const bytes = Buffer.concat([base, pick(rng, separatorBytes)]);
  if (r < 0.6) return bytes;
  const mutated = Uint8Array.from(bytes);
  const edits = 1 + Math.floor(rng() * 3);
  for (let e = 0; e < edits && mutated.length > 0; e++)
    mutated[Math.floor(rng() * mutated.length)] = rng() < 0.7 ? pick(rng, SPECIAL) : Math.floor(rng() * 256);
  return rng() < 0.2 ? mutated.subarray(0, Math.floor(rng() * mutated.length)) : mutated;
}

function runBatch(seed: number): number {
  const rng = makeRng(seed);
  const reader = new ImapCommandReader(LIMITS);
  let events = 0;
  for (let k = 0; k < INPUTS_PER_BATCH; k++) {
    const input = makeInput(rng);
    // Random pieces: the same stream split anywhere.
    for (let at = 0; at < input.length;) {
      const n = rng() < 0.5 ? input.length - at : 1 + Math.floor(rng() * (input.length - at));
      reader.push(input.subarray(at, at + n));
      at += n;
      for (let ev = reader.next(); ev !== null; ev = reader.next()) {
        events++;
        if (ev.kind === 'error') assert.match(formatParseError(ev.tag, ev.error), /^(\S+) BAD [^\r\n]+\r\n$/);
        else if (ev.kind === 'literal-wanted') {
          assert.ok(ev.sizeBytes <= (ev.message === null ? LIMITS.maxLiteralBytes : LIMITS.maxMessageBytes));
          if (rng() < 0.1) reader.refuseLiteral();
        } else if (ev.kind === 'command' && ev.command.kind === 'idle') reader.expectLine();
        else if (ev.kind === 'append-data') assert.ok(ev.chunk.length > 0);
        if (rng() < 0.002) reader.discard();
      }
      assert.ok(reader.bufferedBytes <= MAX_BUFFERED, `buffered ${reader.bufferedBytes}`);
    }
  }
  return events;
}

describe('IMAP command reader fuzzing', () => {
  it(`${BATCHES * INPUTS_PER_BATCH} random and mutated inputs: no throw, bounded buffers`, () => {
    const started = performance.now();
    let events = 0;
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        events += runBatch(seed);
      }),
      { numRuns: BATCHES },
    );
    assert.ok(events > BATCHES * INPUTS_PER_BATCH * 0.5);
    // Reported, not asserted: the budget is the default test run's, not this machine's speed.
    console.log(
      `imap reader fuzz: ${BATCHES * INPUTS_PER_BATCH} inputs, ${events} events, ${Math.round(performance.now() - started)} ms`,
    );
  });
});

const STATES: readonly (ImapState | undefined)[] = [
  undefined,
  'authenticated',
  'selected',
  'not-authenticated',
];

function runSessionBatch(seed: number): number {
  const rng = makeRng(seed);
  const session = new ImapSession({
    starttls: true,
    tlsActive: rng() < 0.5,
    plaintextAuth: rng() < 0.5,
    maxErrors: 1_000_000,
    limits: LIMITS,
  });
  let writes = 0;
  const perform = (effects: Effect[], depth: number): void => {
    for (const e of effects) {
      switch (e.kind) {
        case 'write':
          writes++;
          assert.match(e.text, /^(\* |\+ |\S+ (OK|NO|BAD) )[^\r\n]*\r\n$/);
          break;
        case 'execute': {
          if (depth > 50) break;
          const k = e.command.kind;
          if (k === 'idle' || k === 'authenticate') perform(session.expectLine(), depth + 1);
          else if (k === 'starttls') {
            session.tlsStarted();
            perform(session.resume(), depth + 1);
          } else if (k === 'compress') {
            session.compressionStarted();
            perform(session.resume(), depth + 1);
          } else perform(session.resume(pick(rng, STATES)), depth + 1);
          break;
        }
        case 'append-literal':
          assert.ok(e.sizeBytes <= LIMITS.maxMessageBytes);
          perform(
            rng() < 0.2
              ? session.refuseLiteral(e.tag, `${e.tag} NO [TRYCREATE] x\r\n`)
              : session.acceptLiteral(e.sync),
            depth + 1,
          );
          break;
        case 'append-data':
          assert.ok(e.chunk.length > 0);
          break;
        case 'line':
          perform(rng() < 0.3 ? session.expectLine() : session.resume(), depth + 1);
          break;
        case 'violation':
        case 'close':
          break;
        default:
          e satisfies never;
      }
    }
  };
  for (let k = 0; k < INPUTS_PER_BATCH; k++) {
    const input = makeInput(rng);
    for (let at = 0; at < input.length;) {
      const n = rng() < 0.5 ? input.length - at : 1 + Math.floor(rng() * (input.length - at));
      perform(session.feed(input.subarray(at, at + n)), 0);
      at += n;
      assert.ok(
        session.bufferedBytes <= MAX_BUFFERED + 2 * LIMITS.maxLineBytes,
        `buffered ${session.bufferedBytes}`,
      );
    }
  }
  return writes;
}

describe('IMAP session fuzzing', () => {
  it(`${BATCHES * INPUTS_PER_BATCH} inputs through the session with a random driver: no throw, bounded`, () => {
    let writes = 0;
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        writes += runSessionBatch(seed);
      }),
      { numRuns: BATCHES },
    );
    assert.ok(writes > 0);
  });
});
