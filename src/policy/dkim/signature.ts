// The DKIM-Signature header field (RFC 6376 §3.5) parsed and checked: required tags, versions, the
// algorithm (RFC 8301: rsa-sha1 is refused; RFC 8463: ed25519-sha256), canonicalization, d=/s=/i=
// syntax and i= within d=, h= naming From (§5.4), l=, q=, t= and x= (their order; expiry and future
// timestamps are judged by the verifier, which knows the time).
// PURE and total: a bad signature is a result carrying what could be read of it (d=, s=, a=, b=) so the
// Authentication-Results line can still name it.

import { domainToASCII } from 'node:url';
import type { Canonicalization } from './canonicalize.ts';
import { parseTagList, printable, stripWhitespace } from './tag-list.ts';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimSignature {
  readonly algorithm: DkimAlgorithm;
  readonly keyType: 'rsa' | 'ed25519';
  /** b= without whitespace (base64), and decoded. */
  readonly b: string;
  readonly signature: Buffer;
  /** bh= decoded. */
  readonly bodyHash: Buffer;
  readonly headerCanon: Canonicalization;
  readonly bodyCanon: Canonicalization;
  /** d=, lower-case A-labels. */
  readonly domain: string;
  /** s=, lower-case A-labels. */
  readonly selector: string;
  /** The domain part of i= (lower case), or `domain` when i= is absent. */
  readonly identityDomain: string;
  /** i= as written, or null. */
  readonly identity: string | null;
  /** h= names in order, as written (compare case-insensitively). */
  readonly signedHeaders: readonly string[];
  /** l=, or null when the whole body is signed. */
  readonly bodyLength: number | null;
  /** t= and x=, seconds since the epoch, or null. */
  readonly timestampS: number | null;
  readonly expiresS: number | null;
}

/** What could be read of a signature even when it is unusable. */
export interface SignatureLabels {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: string;
  readonly b: string;
  readonly bodyLengthLimited: boolean;
}

export type ParsedSignature =
  | { readonly ok: true; readonly value: DkimSignature; readonly labels: SignatureLabels }
  | {
      readonly ok: false;
      /** `policy`: readable but not acceptable (rsa-sha1); `permerror`: broken or unsupported. */
      readonly result: 'permerror' | 'policy';
      readonly reason: string;
      readonly labels: SignatureLabels;
    };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
// A sub-domain label: letters, digits, hyphens inside (RFC 5321 §4.1.2), plus "_" which selectors and
// some deployed signing domains use.
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A domain name as d= or s= may carry it: lower-case A-labels, or null when it cannot be one. */
export function normalizeDkimDomain(text: string): string | null {
  let name = text;
  if (/[^\x00-\x7f]/.test(name)) {
    // RFC 8616: UTF-8 U-labels; the octets arrive as latin1 chars.
    const ascii = domainToASCII(Buffer.from(name, 'latin1').toString('utf8'));
    if (ascii === '') return null;
    name = ascii;
  }
  name = name.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name === '' || name.length > 253) return null;
  return name.split('.').every((label) => LABEL.test(label)) ? name : null;
}

function decodeBase64(text: string): Buffer | null {
  const clean = stripWhitespace(text);
  if (clean.length % 4 !== 0 || !BASE64.test(clean)) return null;
  return Buffer.from(clean, 'base64');
}

function decimal(text: string, maxDigits: number): number | null {
  if (!/^[0-9]+$/.test(text) || text.length > maxDigits) return null;
  return Number(text);
}

/** Parse the value of one DKIM-Signature field (everything after the colon, folds included). */
export function parseDkimSignature(value: string): ParsedSignature {
  const list = parseTagList(value);
  const tags = list.ok ? list.tags : new Map<string, string>();
  const labels: SignatureLabels = {
    domain: (tags.get('d') ?? '').toLowerCase(),
    selector: (tags.get('s') ?? '').toLowerCase(),
    algorithm: (tags.get('a') ?? '').toLowerCase(),
    b: stripWhitespace(tags.get('b') ?? ''),
    bodyLengthLimited: tags.has('l'),
  };
  const fail = (reason: string, result: 'permerror' | 'policy' = 'permerror'): ParsedSignature => ({
    ok: false,
    result,
    reason,
    labels,
  });
  if (!list.ok) return fail(`signature syntax: ${list.reason}`);

  for (const name of ['v', 'a', 'b', 'bh', 'd', 'h', 's']) {
    if (!tags.has(name)) return fail(`signature lacks the required ${name}= tag`);
  }
  if (tags.get('v') !== '1') return fail(`unsupported signature version v=${printable(tags.get('v')!)}`);

  const algorithmText = labels.algorithm;
  let algorithm: DkimAlgorithm;
  if (algorithmText === 'rsa-sha256' || algorithmText === 'ed25519-sha256') algorithm = algorithmText;
  else if (algorithmText === 'rsa-sha1') {
    return fail('rsa-sha1 signatures are not accepted (RFC 8301)', 'policy');
  } else return fail(`unknown signature algorithm a=${printable(algorithmText)}`);

  const signature = decodeBase64(tags.get('b')!);
  if (signature === null || signature.length === 0) return fail('b= is not base64');
  const bodyHash = decodeBase64(tags.get('bh')!);
  if (bodyHash === null || bodyHash.length === 0) return fail('bh= is not base64');

  const c = (tags.get('c') ?? 'simple/simple').toLowerCase().split('/');
  const headerCanon = c[0];
  const bodyCanon = c[1] ?? 'simple';
  if (
    c.length > 2 ||
    (headerCanon !== 'simple' && headerCanon !== 'relaxed') ||
    (bodyCanon !== 'simple' && bodyCanon !== 'relaxed')
  ) {
    return fail(`unknown canonicalization c=${printable(tags.get('c')!)}`);
  }

  const domain = normalizeDkimDomain(tags.get('d')!);
  if (domain === null) return fail(`d= is not a domain name: "${printable(tags.get('d')!)}"`);
  const selector = normalizeDkimDomain(tags.get('s')!);
  if (selector === null) return fail(`s= is not a selector: "${printable(tags.get('s')!)}"`);

  const identity = tags.get('i') ?? null;
  let identityDomain = domain;
  if (identity !== null) {
    const at = identity.lastIndexOf('@');
    const idDomain = at < 0 ? null : normalizeDkimDomain(identity.slice(at + 1));
    if (idDomain === null) return fail(`i= is not an identity: "${printable(identity)}"`);
    if (idDomain !== domain && !idDomain.endsWith(`.${domain}`)) {
      return fail(`i= domain ${idDomain} is not d= ${domain} or below it`);
    }
    identityDomain = idDomain;
  }

  const signedHeaders = tags
    .get('h')!
    .split(':')
    .map((name) => name.replace(/[ \t\r\n]+/g, ''))
    .filter((name) => name !== '');
  if (!signedHeaders.some((name) => name.toLowerCase() === 'from')) {
    return fail('h= does not include From (RFC 6376 §5.4)');
  }

  let bodyLength: number | null = null;
  if (tags.has('l')) {
    bodyLength = decimal(tags.get('l')!, 76);
    if (bodyLength === null) return fail('l= is not a decimal number');
  }

  const q = tags.get('q');
  if (q !== undefined && !q.split(':').some((method) => trimLower(method) === 'dns/txt')) {
    return fail(`unsupported query method q=${printable(q)}`);
  }

  let timestampS: number | null = null;
  let expiresS: number | null = null;
  if (tags.has('t')) {
    timestampS = decimal(tags.get('t')!, 12);
    if (timestampS === null) return fail('t= is not a timestamp');
  }
  if (tags.has('x')) {
    expiresS = decimal(tags.get('x')!, 12);
    if (expiresS === null) return fail('x= is not a timestamp');
    if (timestampS !== null && expiresS < timestampS) return fail('x= is before t=');
  }

  return {
    ok: true,
    labels: { ...labels, domain, selector },
    value: {
      algorithm,
      keyType: algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519',
      b: labels.b,
      signature,
      bodyHash,
      headerCanon,
      bodyCanon,
      domain,
      selector,
      identityDomain,
      identity,
      signedHeaders,
      bodyLength,
      timestampS,
      expiresS,
    },
  };
}

function trimLower(s: string): string {
  return s.replace(/[ \t\r\n]+/g, '').toLowerCase();
}
