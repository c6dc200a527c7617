// SCRAM-SHA-256(-PLUS): the RFC 7677 §3 exchange byte for byte, wrong passwords, gs2 flags, channel
// binding, saslnames, and the lookup answers. A small client below computes real proofs.
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ChannelBinding, ScramSecrets, Step } from './mechanism.ts';
import { createScramMechanism, SERVER_NONCE_LENGTH } from './scram.ts';
import { decoyScramSecrets, deriveScramSecrets } from './scram-secrets.ts';

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (data: Uint8Array): string => new TextDecoder().decode(data);
const b64 = (data: Uint8Array | string): string => Buffer.from(data).toString('base64');

// RFC 7677 §3.
const RFC_CLIENT_FIRST = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
const RFC_SERVER_NONCE = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const RFC_SERVER_FIRST =
  'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
const RFC_CLIENT_FINAL =
  'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
const RFC_SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';
const RFC_SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');

const NONCE_ALPHABET = Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i))
  .filter((c) => c !== ',')
  .join('');
/** A random source that makes the server choose `nonce`: one byte per nonce character. */
const randomFor = (nonce: string) => (n: number) => {
  assert.equal(n, nonce.length);
  return Uint8Array.from([...nonce].map((c) => NONCE_ALPHABET.indexOf(c)));
};
const randomBytesSeq = (n: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff);

const pencil: ScramSecrets = deriveScramSecrets('pencil', RFC_SALT, 4096);

function text(step: Step, kind: 'challenge'): string {
  assert.equal(step.kind, kind, JSON.stringify(step));
  return step.kind === 'challenge' ? dec(step.data) : '';
}

function failureReason(step: Step): string {
  assert.equal(step.kind, 'failure', JSON.stringify(step));
  return step.kind === 'failure' ? step.reason : '';
}

/** The client side of RFC 5802 §3: the client-final message for a given server-first. */
function clientFinal(
  password: string,
  clientFirstBare: string,
  serverFirst: string,
  cbindInput: Uint8Array,
  extensions = '',
): string {
  const attrs = new Map(serverFirst.split(',').map((a) => [a.slice(0, 1), a.slice(2)]));
  const salted = pbkdf2Sync(
    password,
    Buffer.from(attrs.get('s')!, 'base64'),
    Number(attrs.get('i')),
    32,
    'sha256',
  );
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const withoutProof = `c=${b64(cbindInput)},r=${attrs.get('r')}${extensions}`;
  const signature = createHmac('sha256', storedKey)
    .update(`${clientFirstBare},${serverFirst},${withoutProof}`)
    .digest();
  return `${withoutProof},p=${b64(clientKey.map((b, i) => b ^ signature[i]!))}`;
}

/** Run an exchange up to the server-first challenge. */
function toServerFirst(
  clientFirst: string,
  options: { plus?: boolean; channelBinding?: ChannelBinding } = {},
): { mech: ReturnType<typeof createScramMechanism>; serverFirst: string } {
  const mech = createScramMechanism({ plus: options.plus ?? false, random: randomBytesSeq, ...options });
  const lookup = mech.start(enc(clientFirst));
  assert.equal(lookup.kind, 'verify', JSON.stringify(lookup));
  const serverFirst = text(
    mech.resume({ kind: 'scram-secrets', identity: 'user', secrets: pencil }),
    'challenge',
  );
  return { mech, serverFirst };
}

describe('SCRAM-SHA-256: RFC 7677 §3 example', () => {
  it('reproduces every server message byte for byte', () => {
    const mech = createScramMechanism({ plus: false, random: randomFor(RFC_SERVER_NONCE) });
    assert.equal(RFC_SERVER_NONCE.length, SERVER_NONCE_LENGTH);
    assert.deepEqual(mech.start(enc(RFC_CLIENT_FIRST)), {
      kind: 'verify',
      request: { kind: 'scram', username: 'user' },
    });
    const serverFirst = mech.resume({ kind: 'scram-secrets', identity: 'user', secrets: pencil });
    assert.equal(text(serverFirst, 'challenge'), RFC_SERVER_FIRST);
    const done = mech.next(enc(RFC_CLIENT_FINAL));
    assert.equal(done.kind, 'success');
    assert.equal(done.kind === 'success' && done.identity, 'user');
    assert.equal(done.kind === 'success' && done.final !== undefined && dec(done.final), RFC_SERVER_FINAL);
  });

  it('sends an empty challenge first when the client has no initial response', () => {
    const mech = createScramMechanism({ plus: false, random: randomFor(RFC_SERVER_NONCE) });
    assert.equal(text(mech.start(null), 'challenge'), '');
    assert.equal(mech.next(enc(RFC_CLIENT_FIRST)).kind, 'verify');
    mech.resume({ kind: 'scram-secrets', identity: 'user', secrets: pencil });
    assert.equal(mech.next(enc(RFC_CLIENT_FINAL)).kind, 'success');
  });
});

describe('SCRAM-SHA-256: proofs', () => {
  it('accepts a proof computed from the right password', () => {
    const { mech, serverFirst } = toServerFirst('n,,n=user,r=abcdef');
    assert.ok(serverFirst.startsWith('r=abcdef'));
    const step = mech.next(enc(clientFinal('pencil', 'n=user,r=abcdef', serverFirst, enc('n,,'))));
    assert.equal(step.kind, 'success');
  });

  it('fails a proof computed from a wrong password', () => {
    const { mech, serverFirst } = toServerFirst('n,,n=user,r=abcdef');
    const step = mech.next(enc(clientFinal('pencil2', 'n=user,r=abcdef', serverFirst, enc('n,,'))));
    assert.equal(failureReason(step), 'credentials');
  });

  it('fails a proof with one bit flipped', () => {
    const mech = createScramMechanism({ plus: false, random: randomFor(RFC_SERVER_NONCE) });
    mech.start(enc(RFC_CLIENT_FIRST));
    mech.resume({ kind: 'scram-secrets', identity: 'user', secrets: pencil });
    const tampered = RFC_CLIENT_FINAL.replace('p=dHzb', 'p=dHzc');
    assert.equal(failureReason(mech.next(enc(tampered))), 'credentials');
  });

  it('fails when the client-final nonce is not the combined nonce', () => {
    const { mech, serverFirst } = toServerFirst('n,,n=user,r=abcdef');
    const forged = serverFirst.replace(/^r=abcdef./, 'r=abcdefX');
    const step = mech.next(enc(clientFinal('pencil', 'n=user,r=abcdef', forged, enc('n,,'))));
    assert.equal(failureReason(step), 'malformed');
  });

  it('fails against decoy secrets for an unknown user, whatever the password', () => {
    const mech = createScramMechanism({ plus: false, random: randomBytesSeq });
    mech.start(enc('n,,n=ghost,r=abcdef'));
    const decoy = decoyScramSecrets(new Uint8Array(32).fill(7), 'ghost');
    const serverFirst = text(
      mech.resume({ kind: 'scram-secrets', identity: 'ghost', secrets: decoy }),
      'challenge',
    );
    const step = mech.next(enc(clientFinal('anything', 'n=ghost,r=abcdef', serverFirst, enc('n,,'))));
    assert.equal(failureReason(step), 'credentials');
  });

  it('maps reject and temporary lookups, and refuses invalid stored secrets', () => {
    const rejected = createScramMechanism({ plus: false, random: randomBytesSeq });
    rejected.start(enc('n,,n=user,r=abc'));
    assert.equal(failureReason(rejected.resume({ kind: 'reject' })), 'credentials');
    const later = createScramMechanism({ plus: false, random: randomBytesSeq });
    later.start(enc('n,,n=user,r=abc'));
    assert.equal(failureReason(later.resume({ kind: 'temporary' })), 'temporary');
    const broken = createScramMechanism({ plus: false, random: randomBytesSeq });
    broken.start(enc('n,,n=user,r=abc'));
    const secrets = { ...pencil, storedKey: new Uint8Array(5) };
    assert.equal(
      failureReason(broken.resume({ kind: 'scram-secrets', identity: 'user', secrets })),
      'temporary',
    );
  });
});

describe('SCRAM-SHA-256: gs2 header and client-first syntax', () => {
  it('decodes =2C and =3D in the username', () => {
    const mech = createScramMechanism({ plus: false, random: randomBytesSeq });
    assert.deepEqual(mech.start(enc('n,,n=a=2Cb=3Dc,r=abc')), {
      kind: 'verify',
      request: { kind: 'scram', username: 'a,b=c' },
    });
  });

  it('accepts an authzid naming the same user, refuses another one', () => {
    const same = createScramMechanism({ plus: false, random: randomBytesSeq });
    assert.equal(same.start(enc('n,a=User,n=user,r=abc')).kind, 'verify');
    const other = createScramMechanism({ plus: false, random: randomBytesSeq });
    assert.equal(failureReason(other.start(enc('n,a=admin,n=user,r=abc'))), 'authorization');
  });

  it('accepts "y" when -PLUS is not offered, and binds the "y" header into c=', () => {
    const { mech, serverFirst } = toServerFirst('y,,n=user,r=abcdef');
    assert.equal(
      mech.next(enc(clientFinal('pencil', 'n=user,r=abcdef', serverFirst, enc('y,,')))).kind,
      'success',
    );
    const again = toServerFirst('y,,n=user,r=abcdef');
    const wrongHeader = clientFinal('pencil', 'n=user,r=abcdef', again.serverFirst, enc('n,,'));
    assert.equal(failureReason(again.mech.next(enc(wrongHeader))), 'channel-binding');
  });

  it('refuses "y" when -PLUS is offered on this connection (downgrade)', () => {
    const mech = createScramMechanism({
      plus: false,
      random: randomBytesSeq,
      channelBinding: { 'tls-exporter': new Uint8Array(32).fill(1) },
    });
    assert.equal(failureReason(mech.start(enc('y,,n=user,r=abc'))), 'channel-binding');
  });

  it('refuses "p" on the non-PLUS mechanism', () => {
    const mech = createScramMechanism({
      plus: false,
      random: randomBytesSeq,
      channelBinding: { 'tls-exporter': new Uint8Array(32) },
    });
    assert.equal(failureReason(mech.start(enc('p=tls-exporter,,n=user,r=abc'))), 'malformed');
  });

  it('refuses a mandatory extension and malformed client-first messages', () => {
    const reason = (message: string | Uint8Array) =>
      failureReason(
        createScramMechanism({ plus: false, random: randomBytesSeq }).start(
          typeof message === 'string' ? enc(message) : message,
        ),
      );
    assert.equal(reason('n,,m=ext,n=user,r=abc'), 'unsupported');
    for (const bad of [
      'n,,n=user', // no nonce
      'n,,r=abc,n=user', // wrong order
      'n,,n=,r=abc', // empty username
      'n,,n=us=er,r=abc', // bad escape
      'n,,n=us=2cer,r=abc', // lower-case escape
      'n,,n=user,r=', // empty nonce
      'n,,n=user,r=a b', // space in nonce
      'x,,n=user,r=abc', // bad flag
      'n,n=user,r=abc', // no authzid field
      'n,b=x,n=user,r=abc', // authzid field without a=
      'n,,n=user,r=abc,1=x', // bad extension name
      'n,,n=user,r=abc,', // empty extension
      '',
    ]) {
      assert.equal(reason(bad), 'malformed', bad);
    }
    assert.equal(
      reason(new Uint8Array([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61])),
      'malformed',
    );
    assert.equal(reason('n,,n=us\0er,r=abc'), 'malformed');
  });

  it('ignores unknown optional extensions in client-first and client-final', () => {
    const { mech, serverFirst } = toServerFirst('n,,n=user,r=abcdef,x=extra');
    const final = clientFinal('pencil', 'n=user,r=abcdef,x=extra', serverFirst, enc('n,,'), ',y=1,z=two');
    assert.equal(mech.next(enc(final)).kind, 'success');
  });

  it('refuses malformed client-final messages', () => {
    for (const bad of [
      'c=biws,r=abcdef', // no proof
      'r=abcdef,c=biws,p=AAAA', // order
      'c=biws,r=abcdef,p=AAAA', // proof too short
      'c=b!ws,r=abcdef,p=' + 'A'.repeat(43) + '=',
      'p=' + 'A'.repeat(43) + '=',
    ]) {
      const { mech } = toServerFirst('n,,n=user,r=abcdef');
      assert.equal(failureReason(mech.next(enc(bad))), 'malformed', bad);
    }
  });
});

describe('SCRAM-SHA-256-PLUS: channel binding', () => {
  const exporter = new Uint8Array(32).map((_, i) => i);
  const unique = new Uint8Array(12).fill(9);
  const cb: ChannelBinding = { 'tls-exporter': exporter, 'tls-unique': unique };
  const concat = (a: Uint8Array, b: Uint8Array) => Uint8Array.from([...a, ...b]);

  it('succeeds with tls-exporter when c= carries the header and our binding data', () => {
    const { mech, serverFirst } = toServerFirst('p=tls-exporter,,n=user,r=abcdef', {
      plus: true,
      channelBinding: cb,
    });
    const cbind = concat(enc('p=tls-exporter,,'), exporter);
    const step = mech.next(enc(clientFinal('pencil', 'n=user,r=abcdef', serverFirst, cbind)));
    assert.equal(step.kind, 'success');
  });

  it('succeeds with tls-unique and an authzid in the bound header', () => {
    const header = 'p=tls-unique,a=user,';
    const { mech, serverFirst } = toServerFirst(`${header}n=user,r=abcdef`, {
      plus: true,
      channelBinding: cb,
    });
    const step = mech.next(
      enc(clientFinal('pencil', 'n=user,r=abcdef', serverFirst, concat(enc(header), unique))),
    );
    assert.equal(step.kind, 'success');
  });

  it('fails when the client bound to different channel data (a man in the middle)', () => {
    const { mech, serverFirst } = toServerFirst('p=tls-exporter,,n=user,r=abcdef', {
      plus: true,
      channelBinding: cb,
    });
    const theirs = concat(enc('p=tls-exporter,,'), new Uint8Array(32).fill(0xee));
    const step = mech.next(enc(clientFinal('pencil', 'n=user,r=abcdef', serverFirst, theirs)));
    assert.equal(failureReason(step), 'channel-binding');
  });

  it('refuses a binding type it does not have, and "n"/"y" on PLUS', () => {
    const plus = (channelBinding: ChannelBinding) =>
      createScramMechanism({ plus: true, random: randomBytesSeq, channelBinding });
    assert.equal(failureReason(plus(cb).start(enc('p=tls-server-end-point,,n=user,r=abc'))), 'unsupported');
    assert.equal(
      failureReason(plus({ 'tls-exporter': exporter }).start(enc('p=tls-unique,,n=user,r=abc'))),
      'unsupported',
    );
    assert.equal(failureReason(plus(cb).start(enc('n,,n=user,r=abc'))), 'malformed');
    assert.equal(failureReason(plus(cb).start(enc('y,,n=user,r=abc'))), 'malformed');
  });

  it('is named SCRAM-SHA-256-PLUS', () => {
    assert.equal(createScramMechanism({ plus: true, random: randomBytesSeq }).name, 'SCRAM-SHA-256-PLUS');
    assert.equal(createScramMechanism({ plus: false, random: randomBytesSeq }).name, 'SCRAM-SHA-256');
  });
});
