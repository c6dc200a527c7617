// PLAIN (RFC 4616): message decoding edge cases, the authzid rule, and the verify round trip.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Step } from './mechanism.ts';
import { createPlainMechanism, parsePlainMessage } from './plain.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

function failureReason(step: Step): string {
  assert.equal(step.kind, 'failure');
  return step.reason;
}

describe('PLAIN', () => {
  it('asks the driver to check authcid and password', () => {
    const plain = createPlainMechanism();
    assert.deepEqual(plain.start(bytes('\0user@example.org\0pencil')), {
      kind: 'verify',
      request: { kind: 'password', username: 'user@example.org', password: 'pencil' },
    });
    assert.deepEqual(plain.resume({ kind: 'accept', identity: 'user@example.org' }), {
      kind: 'success',
      identity: 'user@example.org',
    });
  });

  it('sends an empty challenge when there is no initial response', () => {
    const plain = createPlainMechanism();
    assert.deepEqual(plain.start(null), { kind: 'challenge', data: new Uint8Array(0) });
    const step = plain.next(bytes('\0tim\0tanstaaftanstaaf'));
    assert.equal(step.kind, 'verify');
  });

  it('accepts an authzid equal to the authcid after NFC and case folding', () => {
    const plain = createPlainMechanism();
    const step = plain.start(bytes('Jose\u0301@Example.ORG\0jos\u00e9@example.org\0pw'));
    assert.deepEqual(step, {
      kind: 'verify',
      request: { kind: 'password', username: 'jos\u00e9@example.org', password: 'pw' },
    });
  });

  it('refuses an authzid naming another user', () => {
    const plain = createPlainMechanism();
    assert.equal(
      failureReason(plain.start(bytes('admin@example.org\0user@example.org\0pw'))),
      'authorization',
    );
  });

  it('refuses malformed messages', () => {
    for (const [message, why] of [
      [bytes('user\0pencil'), 'one NUL'],
      [bytes('userpencil'), 'no NUL'],
      [bytes('\0user\0pen\0cil'), 'three NULs'],
      [bytes('\0\0pencil'), 'empty authcid'],
      [bytes('\0user\0'), 'empty password'],
      [new Uint8Array([0, 0x75, 0, 0xff, 0xfe]), 'password not UTF-8'],
      [new Uint8Array([0xc0, 0xaf, 0, 0x75, 0, 0x70]), 'overlong UTF-8 in authzid'],
      [new Uint8Array(0), 'empty message'],
    ] as const) {
      assert.equal(failureReason(createPlainMechanism().start(message)), 'malformed', why);
    }
  });

  it('keeps passwords byte for byte: spaces and non-ASCII are part of them', () => {
    const parsed = parsePlainMessage(bytes('\0u\0 p\u00e4ss word '));
    assert.deepEqual(parsed, {
      ok: true,
      value: { authzid: '', authcid: 'u', password: ' p\u00e4ss word ' },
    });
  });

  it('maps reject and temporary answers to failures', () => {
    const rejected = createPlainMechanism();
    rejected.start(bytes('\0u\0p'));
    assert.equal(failureReason(rejected.resume({ kind: 'reject' })), 'credentials');
    const later = createPlainMechanism();
    later.start(bytes('\0u\0p'));
    assert.equal(failureReason(later.resume({ kind: 'temporary' })), 'temporary');
  });

  it('throws when the driver calls out of turn', () => {
    const plain = createPlainMechanism();
    assert.throws(() => plain.next(bytes('\0u\0p')), /out of turn/);
    plain.start(bytes('\0u\0p'));
    assert.throws(() => plain.start(null), /out of turn/);
    assert.throws(
      () => plain.resume({ kind: 'scram-secrets', identity: 'u', secrets: null! }),
      /out of turn/,
    );
  });
});
