// SECURITY: DKIM signing of outbound mail (RFC 6376 §5, RFC 8463 for Ed25519, RFC 8301 for RSA sizes)
// and the signing keys kept under the data directory.
//
// signMessage reads the final message once (call it after every header change: a later edit breaks the
// signature), hashes the body as it streams (relaxed), keeps only the header section, and returns one
// DKIM-Signature field per key (dual signing: RSA for everyone, Ed25519 for those who read it), to be
// prepended to the message. c=relaxed/relaxed survives the re-folding and whitespace changes of relays;
// no l= (a length limit lets anyone append content); From, To, Subject and Date are oversigned (named
// once more than they occur) so that none can be added after signing.
//
// Keys live in <data_dir>/dkim/<domain>/<selector>.key (PKCS#8 PEM) beside <selector>.json (what the
// key is for), both mode 0600 in 0700 folders. `tern dkim keygen` writes them; loadDkimKeys reads them.
// Deliberately NOT here: deciding which messages are ours to sign and with which keys (the caller picks
// them from loadDkimKeys' map, by the From domain) and verification (src/policy/dkim).

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { BodyHash } from '../policy/dkim/canonicalize.ts';
import type { Canonicalization } from '../policy/dkim/canonicalize.ts';
import type { RawHeaderField } from '../policy/dkim/header-fields.ts';
import {
  HeaderBodySplitter,
  headerHashInput,
  selectSignedFields,
  splitHeaderFields,
} from '../policy/dkim/header-fields.ts';
import { normalizeDkimDomain } from '../policy/dkim/signature.ts';

export type DkimSigningAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimKey {
  /** d=: lower-case A-labels. */
  readonly domain: string;
  /** s=. */
  readonly selector: string;
  readonly algorithm: DkimSigningAlgorithm;
  readonly privateKeyPem: string;
}

/** A key that cannot be used, a message that cannot be signed: the message says which and why. */
export class DkimSignError extends Error {
  override readonly name = 'DkimSignError';
}

/** Header fields signed when present, in this order (RFC 6376 §5.4.1's list, plus list and reply fields). */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'in-reply-to',
  'references',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'content-disposition',
  'content-language',
  'resent-date',
  'resent-from',
  'resent-sender',
  'resent-to',
  'resent-cc',
  'resent-message-id',
  'list-id',
  'list-help',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-subscribe',
  'list-post',
  'list-owner',
  'list-archive',
  'feedback-id',
  'autocrypt',
  'openpgp',
];

/** Named once more than they occur, so that a second one cannot be added (RFC 6376 §8.15). */
export const OVERSIGNED_HEADERS: readonly string[] = ['from', 'to', 'subject', 'date'];

/** The header section of a message we sign is ours; this much is plenty. */
const MAX_SIGN_HEADER_BYTES = 1024 * 1024;

/**
 * The h= list for a message: every present instance of each candidate name (bottom-up order does not
 * matter to the hash, only the count), From always, and oversigned names once more.
 */
export function chooseSignedHeaders(
  fields: readonly RawHeaderField[],
  candidates: readonly string[] = DEFAULT_SIGNED_HEADERS,
): string[] {
  const names = candidates.map((name) => name.toLowerCase());
  if (!names.includes('from')) names.unshift('from');
  const out: string[] = [];
  for (const name of new Set(names)) {
    const count = fields.filter((field) => field.key === name).length;
    const times = count + (OVERSIGNED_HEADERS.includes(name) ? 1 : 0);
    for (let i = 0; i < times; i++) out.push(name);
  }
  return out;
}

export interface SignMessageOptions {
  /** The message as it will be sent (CRLF; bare LF is read as CRLF), from the start each time called. */
  readonly content: () => AsyncIterable<Uint8Array>;
  /** One signature per key, in this order. */
  readonly keys: readonly DkimKey[];
  /** Candidate field names to sign (default DEFAULT_SIGNED_HEADERS); From is always signed. */
  readonly headers?: readonly string[];
  /** t=. */
  readonly nowMs: number;
}

/** The DKIM-Signature fields (each folded, each ending in CRLF) to prepend; "" without keys. */
export async function signMessage(opts: SignMessageOptions): Promise<string> {
  if (opts.keys.length === 0) return '';
  const splitter = new HeaderBodySplitter(MAX_SIGN_HEADER_BYTES);
  const body = new BodyHash('relaxed');
  for await (const chunk of opts.content()) {
    for (const piece of splitter.push(chunk)) body.write(piece);
  }
  splitter.end();
  if (splitter.overflow) {
    throw new DkimSignError(`header section larger than ${MAX_SIGN_HEADER_BYTES} octets: not signed`);
  }
  const fields = splitHeaderFields(splitter.section ?? '');
  if (!fields.some((field) => field.key === 'from')) {
    throw new DkimSignError('the message has no From field: not signed (RFC 6376 §5.4)');
  }
  const h = chooseSignedHeaders(fields, opts.headers).join(':');
  const bh = body.digest().digest.toString('base64');
  const t = String(Math.floor(opts.nowMs / 1000));
  return opts.keys
    .map((key) =>
      signHeaderFields(fields, key, [
        ['v', '1'],
        ['a', key.algorithm],
        ['c', 'relaxed/relaxed'],
        ['d', key.domain],
        ['s', key.selector],
        ['t', t],
        ['h', h],
        ['bh', bh],
      ]),
    )
    .join('');
}

/**
 * One DKIM-Signature over `fields` with exactly these tags, in this order (b= is added last). The
 * low-level half of signMessage, exported so that a published signature can be reproduced from its tags
 * (Ed25519 is deterministic: RFC 8463's example comes out byte for byte).
 */
export function signHeaderFields(
  fields: readonly RawHeaderField[],
  key: DkimKey,
  tags: readonly (readonly [string, string])[],
): string {
  const tagMap = new Map(tags);
  const headerCanon = (tagMap.get('c') ?? 'simple/simple').split('/')[0] as Canonicalization;
  const names = (tagMap.get('h') ?? '')
    .split(':')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unsigned = foldSignatureField([...tags, ['b', '']]);
  const data = headerHashInput(selectSignedFields(fields, names), `${unsigned.text}\r\n`, headerCanon);
  const privateKey = privateKeyFor(key);
  const signature =
    key.algorithm === 'rsa-sha256'
      ? sign('sha256', data, privateKey)
      : // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the header data.
        sign(null, createHash('sha256').update(data).digest(), privateKey);
  return `${unsigned.text}${foldBase64(signature.toString('base64'), unsigned.lastLineLength)}\r\n`;
}

const FOLD_WIDTH = 78;

/**
 * "DKIM-Signature: v=1; a=...; b=" folded at the spaces between tags (and within values) and after the
 * colons of h=. Relaxed canonicalization reads a fold at an existing space as that space, so a signature
 * whose tags are written like RFC 8463's hashes the same folded or not.
 */
function foldSignatureField(tags: readonly (readonly [string, string])[]): {
  text: string;
  lastLineLength: number;
} {
  // Tokens with the separator before them: ' ' (an existing space, which a fold replaces) or '' (a place
  // after a colon in h=, where a fold adds whitespace).
  const tokens: { sep: string; text: string }[] = [];
  tags.forEach(([name, value], i) => {
    const last = i === tags.length - 1;
    const words = `${name}=${value}${last ? '' : ';'}`.split(' ');
    words.forEach((word) => {
      const pieces = name === 'h' ? word.split(/(?<=:)(?=.)/) : [word];
      pieces.forEach((piece, k) => tokens.push({ sep: k === 0 ? ' ' : '', text: piece }));
    });
  });
  let text = 'DKIM-Signature:';
  let lineLength = text.length;
  for (const token of tokens) {
    const width = token.sep.length + token.text.length;
    if (lineLength + width > FOLD_WIDTH && lineLength > 1) {
      text += `\r\n ${token.text}`;
      lineLength = 1 + token.text.length;
    } else {
      text += token.sep + token.text;
      lineLength += width;
    }
  }
  return { text, lastLineLength: lineLength };
}

/** The b= value folded to the line width; whitespace in b= is ignored by every verifier (§3.5). */
function foldBase64(value: string, lineLength: number): string {
  let out = '';
  let rest = value;
  let room = Math.max(0, FOLD_WIDTH - lineLength);
  while (rest.length > 0) {
    if (room <= 0) {
      out += '\r\n ';
      room = FOLD_WIDTH - 1;
    }
    out += rest.slice(0, room);
    rest = rest.slice(room);
    room = 0;
  }
  return out;
}

function privateKeyFor(key: DkimKey): KeyObject {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key.privateKeyPem);
  } catch (err) {
    throw new DkimSignError(`DKIM key ${key.selector}._domainkey.${key.domain} is not a private key`, {
      cause: err,
    });
  }
  const want = key.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
  if (privateKey.asymmetricKeyType !== want) {
    throw new DkimSignError(
      `DKIM key ${key.selector}._domainkey.${key.domain} is ${privateKey.asymmetricKeyType ?? 'unknown'}, not ${want}`,
    );
  }
  return privateKey;
}

export interface DkimDnsRecord {
  /** The owner name, fully qualified: "sel._domainkey.example.org.". */
  readonly name: string;
  readonly type: 'TXT';
  /** The record text: "v=DKIM1; k=...; p=...". */
  readonly value: string;
  /** The value cut into character-strings of at most 255 octets (RFC 1035 §3.3.14). */
  readonly strings: readonly string[];
  /** A zone-file line: name IN TXT "..." "...". */
  readonly zoneLine: string;
}

/** The public half of a key, as p= carries it: SPKI for RSA, the raw 32 octets for Ed25519 (RFC 8463 §4). */
export function dkimPublicKey(key: DkimKey): string {
  const publicKey = createPublicKey(privateKeyFor(key));
  if (key.algorithm === 'rsa-sha256') {
    return publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  }
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url').toString('base64');
}

/** The TXT record to publish for a key (pure: for `tern dkim keygen` and `tern dns records`). */
export function dkimDnsRecord(key: DkimKey): DkimDnsRecord {
  const k = key.algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519';
  const value = `v=DKIM1; k=${k}; p=${dkimPublicKey(key)}`;
  const strings: string[] = [];
  for (let i = 0; i < value.length; i += 255) strings.push(value.slice(i, i + 255));
  const name = `${key.selector}._domainkey.${key.domain}.`;
  return {
    name,
    type: 'TXT',
    value,
    strings,
    zoneLine: `${name} IN TXT ${strings.map((s) => `"${s}"`).join(' ')}`,
  };
}

export interface DkimKeyPaths {
  readonly dir: string;
  readonly key: string;
  readonly meta: string;
}

export function dkimKeyPaths(dataDir: string, domain: string, selector: string): DkimKeyPaths {
  const dir = join(dataDir, 'dkim', domain);
  return { dir, key: join(dir, `${selector}.key`), meta: join(dir, `${selector}.json`) };
}

interface KeyMeta {
  readonly version: 1;
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimSigningAlgorithm;
  readonly createdMs: number;
}

/**
 * Why no key can be made for this domain, or null when one can. A name without a dot (localhost, a
 * bare host name) is refused: verifiers look the key up in public DNS, where such a name has none.
 */
export function dkimDomainProblem(domain: string): string | null {
  const d = typedDkimName(domain);
  if (d === null) return `not a domain name: ${domain}`;
  if (!d.includes('.')) {
    return `${domain}: DKIM keys are published in DNS, so the domain must be a DNS name with a dot (${domain} is for local use only)`;
  }
  return null;
}

/** A name as a person typed it (a JS string, U-labels allowed), as the A-labels DKIM uses; null: not a name. */
function typedDkimName(text: string): string | null {
  if (!/[^\x00-\x7f]/.test(text)) return normalizeDkimDomain(text);
  const ascii = domainToASCII(text);
  return ascii === '' ? null : normalizeDkimDomain(ascii);
}

function checkNames(domain: string, selector: string): { domain: string; selector: string } {
  const problem = dkimDomainProblem(domain);
  if (problem !== null) throw new DkimSignError(problem);
  const d = typedDkimName(domain)!;
  const s = typedDkimName(selector);
  if (s === null) throw new DkimSignError(`not a DKIM selector: ${selector}`);
  return { domain: d, selector: s };
}

/**
 * Create a key and store it (refusing to replace one: a published selector must keep its key until its
 * record is withdrawn; rotate by creating a new selector). RSA keys are 2048 bits (RFC 8301 allows 1024
 * to 4096; 2048 fits one TXT record of two strings).
 */
export async function generateDkimKey(opts: {
  readonly dataDir: string;
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: DkimSigningAlgorithm;
  readonly nowMs: number;
}): Promise<{ readonly key: DkimKey; readonly paths: DkimKeyPaths }> {
  const { domain, selector } = checkNames(opts.domain, opts.selector);
  const paths = dkimKeyPaths(opts.dataDir, domain, selector);
  for (const path of [paths.key, paths.meta]) {
    if (await exists(path)) {
      throw new DkimSignError(`a key for ${selector}._domainkey.${domain} already exists: ${path}`);
    }
  }
  const pair =
    opts.algorithm === 'rsa-sha256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 })
      : generateKeyPairSync('ed25519');
  const privateKeyPem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const meta: KeyMeta = { version: 1, domain, selector, algorithm: opts.algorithm, createdMs: opts.nowMs };
  await mkdir(join(opts.dataDir, 'dkim'), { recursive: true, mode: 0o700 });
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await writeExclusive(paths.key, privateKeyPem);
  await writeExclusive(paths.meta, `${JSON.stringify(meta, null, 2)}\n`);
  return { key: { domain, selector, algorithm: opts.algorithm, privateKeyPem }, paths };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Written whole (temporary name, then rename) and never over an existing file. */
async function writeExclusive(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data, { mode: 0o600, flag: 'wx', flush: true });
    if (await exists(path)) throw new DkimSignError(`${path} appeared while it was being written`);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Every key under <dataDir>/dkim, by domain, selectors in name order. A folder without keys is no
 * error; a metadata file that does not describe its key is (signing with the wrong key is worse than
 * not signing), and the error names the file.
 */
export async function loadDkimKeys(dataDir: string): Promise<Map<string, DkimKey[]>> {
  const root = join(dataDir, 'dkim');
  const keys = new Map<string, DkimKey[]>();
  let domains: string[];
  try {
    domains = (await readdir(root, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return keys;
    throw err;
  }
  for (const domainDir of domains.sort()) {
    const files = (await readdir(join(root, domainDir))).filter((f) => f.endsWith('.json')).sort();
    for (const file of files) {
      const key = await loadKey(root, domainDir, file.slice(0, -'.json'.length));
      const list = keys.get(key.domain) ?? [];
      list.push(key);
      keys.set(key.domain, list);
    }
  }
  return keys;
}

/** A stored key as `tern dkim list` shows it. */
export interface DkimKeyInfo {
  readonly key: DkimKey;
  /** When `tern dkim keygen` made it; null for a metadata file that does not say. */
  readonly createdMs: number | null;
  readonly paths: DkimKeyPaths;
}

/** Every stored key with its metadata, by domain then selector (the same keys loadDkimKeys gives). */
export async function listDkimKeys(dataDir: string): Promise<DkimKeyInfo[]> {
  const list: DkimKeyInfo[] = [];
  for (const keys of (await loadDkimKeys(dataDir)).values()) {
    for (const key of keys) {
      const paths = dkimKeyPaths(dataDir, key.domain, key.selector);
      const meta = JSON.parse(await readFile(paths.meta, 'utf8')) as Partial<KeyMeta>;
      list.push({ key, createdMs: typeof meta.createdMs === 'number' ? meta.createdMs : null, paths });
    }
  }
  return list;
}

/**
 * Delete a key (both files, and the domain's folder once empty): mail is no longer signed with it. The
 * caller tells the operator to withdraw the DNS record later, not at once: mail already signed with the
 * key is still being verified for a while.
 */
export async function removeDkimKey(dataDir: string, domain: string, selector: string): Promise<DkimKey> {
  const names = checkNames(domain, selector);
  const key = (await loadDkimKeys(dataDir)).get(names.domain)?.find((k) => k.selector === names.selector);
  if (key === undefined) throw new DkimSignError(`no DKIM key ${names.selector}._domainkey.${names.domain}`);
  const paths = dkimKeyPaths(dataDir, names.domain, names.selector);
  // The metadata first: without it the key is no longer loaded, whatever happens to the .key file.
  await rm(paths.meta, { force: true });
  await rm(paths.key, { force: true });
  if ((await readdir(paths.dir)).length === 0) await rm(paths.dir, { recursive: true, force: true });
  return key;
}

async function loadKey(root: string, domainDir: string, selectorFile: string): Promise<DkimKey> {
  const metaPath = join(root, domainDir, `${selectorFile}.json`);
  const keyPath = join(root, domainDir, `${selectorFile}.key`);
  const bad = (why: string): DkimSignError => new DkimSignError(`DKIM key ${metaPath}: ${why}`);
  let meta: Partial<KeyMeta>;
  try {
    meta = JSON.parse(await readFile(metaPath, 'utf8')) as Partial<KeyMeta>;
  } catch (err) {
    throw new DkimSignError(`DKIM key ${metaPath}: not readable JSON`, { cause: err });
  }
  if (meta.algorithm !== 'rsa-sha256' && meta.algorithm !== 'ed25519-sha256') {
    throw bad(`unknown algorithm ${String(meta.algorithm)}`);
  }
  if (typeof meta.domain !== 'string' || typeof meta.selector !== 'string')
    throw bad('no domain or selector');
  const { domain, selector } = checkNames(meta.domain, meta.selector);
  if (domain !== domainDir || selector !== selectorFile) {
    throw bad(`says ${selector}._domainkey.${domain} but is stored as ${domainDir}/${selectorFile}`);
  }
  let privateKeyPem: string;
  try {
    privateKeyPem = await readFile(keyPath, 'utf8');
  } catch (err) {
    throw new DkimSignError(`DKIM key ${keyPath}: not readable`, { cause: err });
  }
  const key: DkimKey = { domain, selector, algorithm: meta.algorithm, privateKeyPem };
  const privateKey = privateKeyFor(key);
  const bits = privateKey.asymmetricKeyDetails?.modulusLength;
  if (key.algorithm === 'rsa-sha256' && bits !== undefined && bits < 1024) {
    throw bad(`RSA key of ${bits} bits: verifiers refuse keys below 1024 (RFC 8301)`);
  }
  return key;
}
