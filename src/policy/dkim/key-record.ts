// DKIM key records (RFC 6376 §3.6.1, RFC 8463 §4) parsed and turned into public keys: v= (DKIM1, first),
// k= (rsa, ed25519), p= (empty: revoked), h= (acceptable hashes), s= (service types: * or email) and
// t= flags (y: testing, s: no subdomains in i=). RSA p= is read as SubjectPublicKeyInfo, as published
// everywhere, and as a bare PKCS#1 RSAPublicKey, which §3.6.1 literally describes and some publish.
// PURE and total: a bad record is a result with a reason, never an exception.
// Deliberately NOT here: the DNS lookup (the verifier asks the Resolver port) and key size policy.

import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { parseTagList, printable, stripWhitespace } from './tag-list.ts';

export interface DkimKeyRecord {
  readonly keyType: 'rsa' | 'ed25519';
  /** p= without whitespace; never empty (an empty p= is a revoked key, reported as such). */
  readonly publicKey: string;
  /** h= values in lower case, or null for "any". */
  readonly hashAlgorithms: readonly string[] | null;
  /** s= values in lower case ("*" by default). */
  readonly serviceTypes: readonly string[];
  /** t= flags in lower case (unknown ones kept, and ignored). */
  readonly flags: readonly string[];
}

export type ParsedKeyRecord =
  | { readonly ok: true; readonly value: DkimKeyRecord }
  | { readonly ok: false; readonly reason: string; readonly revoked: boolean };

function colonList(text: string): string[] {
  return text
    .split(':')
    .map((item) => item.replace(/[ \t\r\n]+/g, '').toLowerCase())
    .filter((item) => item !== '');
}

export function parseKeyRecord(text: string): ParsedKeyRecord {
  const fail = (reason: string, revoked = false): ParsedKeyRecord => ({ ok: false, reason, revoked });
  const list = parseTagList(text);
  if (!list.ok) return fail(`key record syntax: ${list.reason}`);
  const { tags, order } = list;
  const version = tags.get('v');
  if (version !== undefined) {
    if (version !== 'DKIM1') return fail(`key record version v=${printable(version)} is not DKIM1`);
    if (order[0] !== 'v') return fail('key record v= is not the first tag');
  }
  const k = (tags.get('k') ?? 'rsa').toLowerCase();
  if (k !== 'rsa' && k !== 'ed25519') return fail(`unknown key type k=${printable(k)}`);
  const p = tags.get('p');
  if (p === undefined) return fail('key record has no p=');
  const publicKey = stripWhitespace(p);
  if (publicKey === '') return fail('key revoked (empty p=)', true);
  const hashes = tags.get('h');
  const services = tags.get('s');
  const flags = tags.get('t');
  return {
    ok: true,
    value: {
      keyType: k,
      publicKey,
      hashAlgorithms: hashes === undefined ? null : colonList(hashes),
      serviceTypes: services === undefined ? ['*'] : colonList(services),
      flags: flags === undefined ? [] : colonList(flags),
    },
  };
}

export type ImportedKey =
  | {
      readonly ok: true;
      readonly key: KeyObject;
      /** RSA modulus size; 256 for Ed25519. */ readonly bits: number;
    }
  | { readonly ok: false; readonly reason: string };

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function importPublicKey(record: DkimKeyRecord): ImportedKey {
  const clean = record.publicKey;
  if (clean.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) {
    return { ok: false, reason: 'p= is not base64' };
  }
  const der = Buffer.from(clean, 'base64');
  if (record.keyType === 'ed25519') {
    // RFC 8463 §4: p= is the raw 32-octet public key, not a SubjectPublicKeyInfo.
    if (der.length !== 32) return { ok: false, reason: `ed25519 p= is ${der.length} octets, not 32` };
    try {
      const key = createPublicKey({
        key: Buffer.concat([ED25519_SPKI_PREFIX, der]),
        format: 'der',
        type: 'spki',
      });
      return { ok: true, key, bits: 256 };
    } catch {
      return { ok: false, reason: 'p= is not a valid ed25519 key' };
    }
  }
  for (const type of ['spki', 'pkcs1'] as const) {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: der, format: 'der', type });
    } catch {
      continue;
    }
    if (key.asymmetricKeyType !== 'rsa') return { ok: false, reason: 'p= is not an RSA key' };
    return { ok: true, key, bits: key.asymmetricKeyDetails?.modulusLength ?? 0 };
  }
  return { ok: false, reason: 'p= is not a valid RSA public key' };
}
