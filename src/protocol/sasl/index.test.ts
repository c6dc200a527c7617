// The factory, what each connection may use and advertise, AUTH arguments, and one property over every
// mechanism: no byte sequence from a client makes a mechanism throw.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  advertisedMechanisms,
  beginAuth,
  createMechanism,
  DEFAULT_MECHANISMS,
  deriveScramSecrets,
  MECHANISM_NAMES,
  mechanismRefusal,
  offeredMechanisms,
  parseAuthArguments,
  startAuthExchange,
  type ConnectionSecurity,
  type MechanismContext,
  type Step,
} from './index.ts';

const context: MechanismContext = {
  hostname: 'mx.example.org',
  random: (n) => new Uint8Array(n).fill(0x41),
  nowMs: 1_700_000_000_000,
  channelBinding: { 'tls-exporter': new Uint8Array(32).fill(3) },
};
const plain: ConnectionSecurity = { tls: false, channelBinding: false, clientCertificate: false };
const tls: ConnectionSecurity = { tls: true, channelBinding: true, clientCertificate: false };
const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('createMechanism', () => {
  it('builds every mechanism under its own name', () => {
    for (const name of MECHANISM_NAMES) assert.equal(createMechanism(name, context).name, name);
  });
});

describe('advertising and refusing mechanisms', () => {
  it('advertises only SCRAM before TLS, everything enabled that fits after', () => {
    assert.deepEqual(advertisedMechanisms(DEFAULT_MECHANISMS, plain), ['SCRAM-SHA-256']);
    assert.deepEqual(advertisedMechanisms(DEFAULT_MECHANISMS, tls), [
      'SCRAM-SHA-256-PLUS',
      'SCRAM-SHA-256',
      'PLAIN',
      'LOGIN',
    ]);
    assert.deepEqual(
      advertisedMechanisms(MECHANISM_NAMES, { ...tls, channelBinding: false, clientCertificate: true }),
      ['SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'OAUTHBEARER', 'XOAUTH2', 'EXTERNAL', 'CRAM-MD5'],
    );
  });

  it('answers 538 5.7.11 for a plaintext mechanism before TLS and 504 for one not enabled', () => {
    assert.equal(mechanismRefusal('PLAIN', DEFAULT_MECHANISMS, plain), 'needs-tls');
    assert.equal(mechanismRefusal('CRAM-MD5', DEFAULT_MECHANISMS, tls), 'unknown-mechanism');
    assert.equal(mechanismRefusal('EXTERNAL', MECHANISM_NAMES, tls), 'unknown-mechanism');
    assert.equal(mechanismRefusal('PLAIN', DEFAULT_MECHANISMS, tls), null);
  });
});

describe('offeredMechanisms', () => {
  const configured = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN', 'EXTERNAL'];
  it('offers nothing in clear unless plaintext AUTH is allowed there, and never -PLUS or EXTERNAL in clear', () => {
    assert.deepEqual(offeredMechanisms(configured, { tls: false, plaintextAllowed: false }), []);
    assert.deepEqual(offeredMechanisms(configured, { tls: false, plaintextAllowed: true }), [
      'SCRAM-SHA-256',
      'PLAIN',
    ]);
    assert.deepEqual(offeredMechanisms(configured, { tls: true, plaintextAllowed: false }), configured);
    assert.deepEqual(offeredMechanisms([], { tls: true, plaintextAllowed: true }), []);
  });
});

describe('parseAuthArguments', () => {
  it('reads the mechanism (case-insensitively) and the optional initial response', () => {
    assert.deepEqual(parseAuthArguments('plain AHUAcA=='), {
      ok: true,
      value: { mechanism: 'PLAIN', initialResponse: 'AHUAcA==' },
    });
    assert.deepEqual(parseAuthArguments('LOGIN'), {
      ok: true,
      value: { mechanism: 'LOGIN', initialResponse: null },
    });
  });

  it('answers 501 5.5.4 to bad syntax', () => {
    for (const bad of ['', 'PLAIN  x', 'PLAIN x y', 'PLA!N', 'A'.repeat(21), 'PLAIN ']) {
      assert.deepEqual(parseAuthArguments(bad), { ok: false, refusal: 'syntax' }, bad);
    }
  });
});

describe('beginAuth', () => {
  const options = { enabled: DEFAULT_MECHANISMS, connection: tls, context };

  it('starts an exchange with the initial response', () => {
    const begun = beginAuth(`PLAIN ${b64('\0u\0p')}`, options);
    assert.equal(begun.ok && begun.action.kind, 'verify');
  });

  it('answers 504 to unknown or disabled mechanisms and 538 before TLS', () => {
    assert.deepEqual(beginAuth('GSSAPI', options), { ok: false, refusal: 'unknown-mechanism' });
    assert.deepEqual(beginAuth('XOAUTH2', options), { ok: false, refusal: 'unknown-mechanism' });
    assert.deepEqual(beginAuth('LOGIN', { ...options, connection: plain }), {
      ok: false,
      refusal: 'needs-tls',
    });
  });

  it('treats SCRAM "y" as a downgrade only when -PLUS is really offered', () => {
    const y = `SCRAM-SHA-256 ${b64('y,,n=user,r=abc')}`;
    const offered = beginAuth(y, options);
    assert.equal(
      offered.ok &&
        offered.action.kind === 'done' &&
        !offered.action.outcome.ok &&
        offered.action.outcome.reason,
      'channel-binding',
    );
    const notEnabled = beginAuth(y, { ...options, enabled: ['SCRAM-SHA-256'] });
    assert.equal(notEnabled.ok && notEnabled.action.kind, 'verify');
  });
});

describe('startAuthExchange', () => {
  it('creates and starts the named mechanism', () => {
    const { exchange, action } = startAuthExchange('LOGIN', null, context);
    assert.deepEqual(action, { kind: 'challenge', data: new TextEncoder().encode('Username:') });
    assert.equal(exchange.line(b64('user')).kind, 'challenge');
  });
});

describe('no client bytes make a mechanism throw', () => {
  const secrets = deriveScramSecrets('pencil', new Uint8Array(16).fill(5));
  const isStep = (step: Step) => ['challenge', 'verify', 'success', 'failure'].includes(step.kind);

  it('holds for the first message, a later message, and SCRAM client-final', () => {
    fc.assert(
      fc.property(fc.constantFrom(...MECHANISM_NAMES), fc.uint8Array({ maxLength: 300 }), (name, data) => {
        assert.ok(isStep(createMechanism(name, context).start(data)));
        const later = createMechanism(name, context);
        if (later.start(null).kind === 'challenge') assert.ok(isStep(later.next(data)));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 300 }), (plus, data) => {
        const scram = createMechanism(plus ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256', context);
        const header = plus ? 'p=tls-exporter,,' : 'n,,';
        assert.equal(scram.start(new TextEncoder().encode(`${header}n=user,r=abc`)).kind, 'verify');
        scram.resume({ kind: 'scram-secrets', identity: 'user', secrets });
        assert.ok(isStep(scram.next(data)));
      }),
      { numRuns: 1000 },
    );
  });

  it('holds for structured near-misses of the text formats', () => {
    const pieces = fc.constantFrom(
      'n',
      'y',
      'p=tls-exporter',
      ',',
      '=',
      '=2C',
      '=3D',
      'a=',
      'n=',
      'r=',
      'c=',
      'p=',
      'm=',
      '\x01',
      'auth=',
      'Bearer ',
      'user=',
      '\0',
      ' ',
      'biws',
      'abc',
      '\u00e9',
    );
    fc.assert(
      fc.property(fc.constantFrom(...MECHANISM_NAMES), fc.array(pieces, { maxLength: 20 }), (name, parts) => {
        const data = new TextEncoder().encode(parts.join(''));
        assert.ok(isStep(createMechanism(name, context).start(data)));
      }),
      { numRuns: 3000 },
    );
  });
});
