// SECURITY: SCRAM-SHA-256 and SCRAM-SHA-256-PLUS server side (RFC 5802, RFC 7677), channel binding
// tls-exporter (RFC 9266) or tls-unique (RFC 5929) supplied by the driver.
//
//   C: n,,n=user,r=<client nonce>                       client-first (gs2 header + bare)
//   S: r=<client nonce><server nonce>,s=<salt>,i=<count> server-first, after the 'scram' lookup
//   C: c=<base64 gs2 header+cb data>,r=<nonce>,p=<proof> client-final
//   S: v=<ServerSignature>                               server-final, "additional data with success"
//
// The proof is checked in constant time against the stored StoredKey; the server never sees the password.
// Refused: an "m=" mandatory extension, "p" on the non-PLUS mechanism and "n"/"y" on PLUS, "y" while PLUS
// is offered (a downgrade, RFC 5802 §6), a binding type we lack, c= that is not exactly our gs2 header
// plus our binding data, a nonce that is not ours, an authzid other than the username.
// Deliberately NOT here: the e= server-error message (SMTP has no "additional data with failure", so a
// failure is a plain 535 and the reason goes to the log), SCRAM-SHA-1, storing secrets (scram-secrets.ts).

import { timingSafeEqual } from 'node:crypto';
import { assertNever } from '../../core/assert-never.ts';
import { decodeBase64Strict, encodeBase64 } from './codec.ts';
import {
  challenge,
  decodeField,
  decodeSaslName,
  EMPTY,
  encodeUtf8,
  failure,
  outOfTurn,
  sameIdentity,
} from './common.ts';
import { parseGs2Header, type Gs2Header } from './gs2.ts';
import type {
  ChannelBinding,
  ChannelBindingType,
  Mechanism,
  MechanismName,
  ScramSecrets,
  Step,
  VerifyAnswer,
} from './mechanism.ts';
import { hmacSha256, isValidScramSecrets, sha256 } from './scram-secrets.ts';

export interface ScramOptions {
  /** SCRAM-SHA-256-PLUS: the client must bind to the TLS channel. */
  readonly plus: boolean;
  /** This connection's binding data; present exactly when -PLUS is offered here. */
  readonly channelBinding?: ChannelBinding;
  readonly random: (bytes: number) => Uint8Array;
}

/** Characters a nonce may hold (RFC 5802 §7 "printable": %x21-2B / %x2D-7E, i.e. no comma). */
const NONCE_ALPHABET = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i))
  .filter((c) => c !== ',')
  .join('');
/** 30 characters of a 93-letter alphabet: about 190 bits, more than RFC 5802 §5.1 asks of a nonce. */
export const SERVER_NONCE_LENGTH = 30;
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
const EXTENSION = /^[A-Za-z]=./;
const PROOF_BYTES = 32;
const BINDING_TYPES: readonly ChannelBindingType[] = ['tls-exporter', 'tls-unique'];

/** Map random bytes onto the nonce alphabet, one byte per character (the slight modulo bias is harmless). */
export function scramServerNonce(random: (bytes: number) => Uint8Array): string {
  const bytes = random(SERVER_NONCE_LENGTH);
  if (bytes.length < SERVER_NONCE_LENGTH) throw new Error('SCRAM: random() returned too few bytes');
  let nonce = '';
  for (let i = 0; i < SERVER_NONCE_LENGTH; i++)
    nonce += NONCE_ALPHABET[(bytes[i] ?? 0) % NONCE_ALPHABET.length];
  return nonce;
}

interface ClientFirst {
  readonly gs2: Gs2Header;
  readonly bare: string;
  readonly username: string;
  readonly nonce: string;
}

type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly step: Step };

function parseClientFirst(message: Uint8Array): Parsed<ClientFirst> {
  const text = decodeField(message);
  if (text === null)
    return { ok: false, step: failure('malformed', 'SCRAM: client-first not UTF-8 or holds NUL') };
  const gs2 = parseGs2Header(text);
  if (!gs2.ok) return { ok: false, step: failure('malformed', `SCRAM: ${gs2.detail}`) };
  const bare = gs2.rest;
  const attrs = bare.split(',');
  const [user = '', nonce = '', ...extensions] = attrs;
  if (user.startsWith('m=')) {
    return { ok: false, step: failure('unsupported', 'SCRAM: mandatory extension (m=) not supported') };
  }
  const username = user.startsWith('n=') ? decodeSaslName(user.slice(2)) : null;
  if (username === null)
    return { ok: false, step: failure('malformed', 'SCRAM: bad or missing n= username') };
  if (!nonce.startsWith('r=') || !NONCE.test(nonce.slice(2))) {
    return { ok: false, step: failure('malformed', 'SCRAM: bad or missing r= nonce') };
  }
  if (!extensions.every((e) => EXTENSION.test(e))) {
    return { ok: false, step: failure('malformed', 'SCRAM: bad attribute in client-first') };
  }
  return { ok: true, value: { gs2: gs2.header, bare, username, nonce: nonce.slice(2) } };
}

interface ClientFinal {
  readonly binding: Uint8Array;
  readonly nonce: string;
  readonly proof: Uint8Array;
  /** client-final-message-without-proof, part of AuthMessage. */
  readonly withoutProof: string;
}

function parseClientFinal(message: Uint8Array): Parsed<ClientFinal> {
  const bad = (detail: string): Parsed<ClientFinal> => ({ ok: false, step: failure('malformed', detail) });
  const text = decodeField(message);
  if (text === null) return bad('SCRAM: client-final not UTF-8 or holds NUL');
  const lastComma = text.lastIndexOf(',');
  const withoutProof = text.slice(0, Math.max(lastComma, 0));
  const proofAttr = text.slice(lastComma + 1);
  const [cb = '', nonce = '', ...extensions] = withoutProof.split(',');
  if (lastComma < 0 || !proofAttr.startsWith('p=')) return bad('SCRAM: missing p= proof');
  const proof = decodeBase64Strict(proofAttr.slice(2));
  if (proof?.length !== PROOF_BYTES) return bad('SCRAM: proof is not 32 bytes of base64');
  const binding = cb.startsWith('c=') ? decodeBase64Strict(cb.slice(2)) : null;
  if (binding === null) return bad('SCRAM: bad or missing c= channel binding');
  if (!nonce.startsWith('r=') || !NONCE.test(nonce.slice(2))) return bad('SCRAM: bad or missing r= nonce');
  if (!extensions.every((e) => EXTENSION.test(e))) return bad('SCRAM: bad attribute in client-final');
  return { ok: true, value: { binding, nonce: nonce.slice(2), proof, withoutProof } };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function offersBinding(channelBinding: ChannelBinding | undefined): boolean {
  return BINDING_TYPES.some((type) => channelBinding?.[type] !== undefined);
}

function isBindingType(name: string): name is ChannelBindingType {
  return (BINDING_TYPES as readonly string[]).includes(name);
}

export function createScramMechanism(options: ScramOptions): Mechanism {
  const name: MechanismName = options.plus ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256';
  let phase: 'start' | 'client-first' | 'lookup' | 'client-final' | 'done' = 'start';
  let first: ClientFirst | null = null;
  /** gs2 header bytes followed by the binding data: what c= must decode to. */
  let expectedBinding: Uint8Array = EMPTY;
  let serverFirst = '';
  let fullNonce = '';
  let identity = '';
  let secrets: ScramSecrets | null = null;

  /** Check the client's binding choice against the mechanism and connection; returns c='s payload. */
  const bindingFor = (gs2: Gs2Header): Parsed<Uint8Array> => {
    const header = encodeUtf8(gs2.raw);
    const binding = gs2.binding;
    if (binding.kind === 'p') {
      if (!options.plus)
        return { ok: false, step: failure('malformed', `${name}: "p" flag on a non-PLUS mechanism`) };
      const data = isBindingType(binding.name) ? options.channelBinding?.[binding.name] : undefined;
      if (data === undefined) {
        return {
          ok: false,
          step: failure('unsupported', `${name}: channel binding ${binding.name} not available`),
        };
      }
      return { ok: true, value: concat(header, data) };
    }
    if (options.plus) return { ok: false, step: failure('malformed', `${name}: PLUS requires the "p" flag`) };
    if (binding.kind === 'y' && offersBinding(options.channelBinding)) {
      return {
        ok: false,
        step: failure('channel-binding', `${name}: "y" flag while PLUS is offered (downgrade)`),
      };
    }
    return { ok: true, value: header };
  };

  const receiveClientFirst = (message: Uint8Array): Step => {
    phase = 'done';
    const parsed = parseClientFirst(message);
    if (!parsed.ok) return parsed.step;
    const { gs2, username } = parsed.value;
    if (gs2.authzid !== null && !sameIdentity(gs2.authzid, username)) {
      return failure('authorization', `${name}: authzid differs from username`);
    }
    const binding = bindingFor(gs2);
    if (!binding.ok) return binding.step;
    first = parsed.value;
    expectedBinding = binding.value;
    phase = 'lookup';
    return { kind: 'verify', request: { kind: 'scram', username } };
  };

  const receiveSecrets = (answer: VerifyAnswer): Step => {
    phase = 'done';
    switch (answer.kind) {
      case 'scram-secrets':
        break;
      case 'reject':
        return failure('credentials', `${name}: unknown user`);
      case 'temporary':
        return failure('temporary', `${name}: credential lookup unavailable`);
      case 'accept':
        return outOfTurn(name, 'resume(accept)');
      default:
        return assertNever(answer);
    }
    if (first === null) return outOfTurn(name, 'resume');
    if (!isValidScramSecrets(answer.secrets))
      return failure('temporary', `${name}: stored secrets are invalid`);
    secrets = answer.secrets;
    identity = answer.identity;
    fullNonce = first.nonce + scramServerNonce(options.random);
    serverFirst = `r=${fullNonce},s=${encodeBase64(secrets.salt)},i=${secrets.iterations}`;
    phase = 'client-final';
    return challenge(serverFirst);
  };

  const receiveClientFinal = (message: Uint8Array): Step => {
    phase = 'done';
    if (first === null || secrets === null) return outOfTurn(name, 'next');
    const parsed = parseClientFinal(message);
    if (!parsed.ok) return parsed.step;
    const final = parsed.value;
    if (!bytesEqual(final.binding, expectedBinding)) {
      return failure('channel-binding', `${name}: c= does not match the gs2 header and binding data`);
    }
    if (final.nonce !== fullNonce) return failure('malformed', `${name}: nonce differs from the one sent`);
    const authMessage = `${first.bare},${serverFirst},${final.withoutProof}`;
    const clientSignature = hmacSha256(secrets.storedKey, authMessage);
    const clientKey = final.proof.map((byte, i) => byte ^ (clientSignature[i] ?? 0));
    if (!timingSafeEqual(sha256(clientKey), secrets.storedKey)) {
      return failure('credentials', `${name}: client proof does not verify`);
    }
    const serverSignature = hmacSha256(secrets.serverKey, authMessage);
    return { kind: 'success', identity, final: encodeUtf8(`v=${encodeBase64(serverSignature)}`) };
  };

  return {
    name,
    start(initialResponse: Uint8Array | null): Step {
      if (phase !== 'start') return outOfTurn(name, 'start');
      if (initialResponse !== null) return receiveClientFirst(initialResponse);
      phase = 'client-first';
      return challenge(EMPTY);
    },
    next(response: Uint8Array): Step {
      if (phase === 'client-first') return receiveClientFirst(response);
      if (phase === 'client-final') return receiveClientFinal(response);
      return outOfTurn(name, 'next');
    },
    resume(answer: VerifyAnswer): Step {
      if (phase !== 'lookup') return outOfTurn(name, 'resume');
      return receiveSecrets(answer);
    },
  };
}
