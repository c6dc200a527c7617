// SECURITY: DKIM verification (RFC 6376 §6, RFC 8463, RFC 8301) of every DKIM-Signature on a message,
// fed as it arrives. Only the header section is kept (bounded); each distinct body canonicalization
// (c=, l=) is hashed incrementally, so a 100 MiB message costs the same memory as a small one.
//
// Results, one per signature, top to bottom, in RFC 8601 terms:
//   pass       signature and body hash verified with an acceptable key
//   fail       body hash or signature did not verify, or l= is longer than the body
//   policy     readable but not accepted: rsa-sha1 (RFC 8301), or more From fields than h= names (a
//              From added above or below the signed one; dkimpy's bug#644046 check, stricter than RFC)
//   permerror  broken signature or key record, no key, revoked key, wrong key type, RSA key below
//              minRsaBits (RFC 8301), expired (x=) or dated in the future (t=)
//   temperror  the key lookup failed temporarily (or was cut short by the AbortSignal)
//   neutral    not checked: a header section larger than maxHeaderBytes, or signatures beyond
//              maxSignatures (one result with empty labels counts them all: a message with thousands
//              of signatures must not turn into thousands of results)
//   none       the message has no DKIM-Signature (a single result with empty labels)
//
// l= (body length): the signature covers only the first l octets of the canonical body. Per RFC 6376
// such a signature still "passes", so the result says pass with `bodyLengthLimited: true` and the
// reason counts the octets after l= that nobody signed. Callers MUST NOT let such a pass authenticate
// the message for DMARC or anything that trusts the whole body (anyone may append content).
// t=y keys (testing) are verified as any other; the reason says so (§3.6.1: treat as unsigned).
// The body hash is compared before the key is looked up: a signature over another body costs no query.
//
// Deliberately NOT here: DMARC alignment, Authentication-Results formatting, ARC.

import { createHash, verify as cryptoVerify } from 'node:crypto';
import type { Resolver } from '../../core/dns.ts';
import { BodyHash } from './canonicalize.ts';
import type { RawHeaderField } from './header-fields.ts';
import {
  HeaderBodySplitter,
  headerHashInput,
  selectSignedFields,
  splitHeaderFields,
} from './header-fields.ts';
import type { DkimKeyRecord } from './key-record.ts';
import { importPublicKey, parseKeyRecord } from './key-record.ts';
import type { DkimSignature, ParsedSignature } from './signature.ts';
import { parseDkimSignature } from './signature.ts';

export type DkimResultKind = 'pass' | 'fail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';

export interface DkimResult {
  readonly result: DkimResultKind;
  /** d= (lower case); "" for `none`. */
  readonly domain: string;
  readonly selector: string;
  /** a= as written (lower case). */
  readonly algorithm: string;
  /** The shortest prefix of b= (at least 8 chars) that tells this signature from the others (RFC 6008). */
  readonly headerB: string;
  /** l= was present: a pass covers only part of the body and must not count for DMARC. */
  readonly bodyLengthLimited: boolean;
  /** For the log and an A-R comment. */
  readonly reason: string;
  /** Alignment is DMARC's business, not this module's. */
  readonly aligned?: never;
}

export interface DkimVerifierOptions {
  /** Only TXT lookups are made. */
  readonly resolver: Pick<Resolver, 'txt'>;
  /** The verification time (x= expiry, t= in the future). */
  readonly nowMs: number;
  /** RSA keys below this are a permerror (RFC 8301: 1024). */
  readonly minRsaBits?: number;
  /** Signatures verified per message; the rest are counted in one `neutral` result. */
  readonly maxSignatures?: number;
  /** The header section kept in memory; a larger one is not verified. */
  readonly maxHeaderBytes?: number;
  /** How far in the future t= may be, for signers with a fast clock. */
  readonly futureSkewMs?: number;
}

export const DKIM_DEFAULTS = {
  minRsaBits: 1024,
  maxSignatures: 10,
  maxHeaderBytes: 256 * 1024,
  futureSkewMs: 60 * 60 * 1000,
} as const;

type KeyLookup =
  | { readonly kind: 'ok'; readonly record: DkimKeyRecord }
  | { readonly kind: 'temperror' | 'permerror'; readonly reason: string };

interface SignatureEntry {
  /** Index of the field among all header fields. */
  readonly index: number;
  readonly field: RawHeaderField;
  readonly parsed: ParsedSignature;
}

const ABORTED = Symbol('aborted');

function bodyHashKey(sig: DkimSignature): string {
  return `${sig.bodyCanon}/${sig.bodyLength ?? ''}`;
}

export class DkimVerifier {
  readonly #resolver: Pick<Resolver, 'txt'>;
  readonly #nowMs: number;
  readonly #minRsaBits: number;
  readonly #maxSignatures: number;
  readonly #futureSkewMs: number;
  readonly #maxHeaderBytes: number;
  readonly #splitter: HeaderBodySplitter;
  #fields: RawHeaderField[] = [];
  #entries: SignatureEntry[] = [];
  /** DKIM-Signature fields beyond maxSignatures: not parsed, not checked. */
  #unchecked = 0;
  readonly #bodyHashes = new Map<string, BodyHash>();
  #finished = false;

  constructor(opts: DkimVerifierOptions) {
    this.#resolver = opts.resolver;
    this.#nowMs = opts.nowMs;
    this.#minRsaBits = opts.minRsaBits ?? DKIM_DEFAULTS.minRsaBits;
    this.#maxSignatures = opts.maxSignatures ?? DKIM_DEFAULTS.maxSignatures;
    this.#futureSkewMs = opts.futureSkewMs ?? DKIM_DEFAULTS.futureSkewMs;
    this.#maxHeaderBytes = opts.maxHeaderBytes ?? DKIM_DEFAULTS.maxHeaderBytes;
    this.#splitter = new HeaderBodySplitter(this.#maxHeaderBytes);
  }

  /** Feed the next chunk of the message as stored (CRLF line ends; bare LF is read as CRLF). */
  push(chunk: Uint8Array): void {
    if (this.#finished) throw new Error('DkimVerifier: push after finish');
    const wasDone = this.#splitter.headerDone;
    const body = this.#splitter.push(chunk);
    if (!wasDone && this.#splitter.headerDone) this.#startBody();
    for (const piece of body) for (const hash of this.#bodyHashes.values()) hash.write(piece);
  }

  /** The message is complete: look up keys and verify. The signal cuts DNS waits short (temperror). */
  async finish(signal?: AbortSignal): Promise<DkimResult[]> {
    if (this.#finished) throw new Error('DkimVerifier: finish called twice');
    this.#finished = true;
    if (!this.#splitter.headerDone) {
      this.#splitter.end();
      if (this.#splitter.headerDone) this.#startBody();
    }
    if (this.#splitter.overflow) {
      return [
        unlabelled('neutral', `header section larger than ${this.#maxHeaderBytes} octets: not verified`),
      ];
    }
    if (this.#entries.length === 0) {
      return [unlabelled('none', 'message not signed')];
    }
    const lookups = new Map<string, Promise<KeyLookup | typeof ABORTED>>();
    const lookup = (name: string): Promise<KeyLookup | typeof ABORTED> => {
      let pending = lookups.get(name);
      if (pending === undefined) {
        pending = abortable(this.#lookupKey(name), signal);
        lookups.set(name, pending);
      }
      return pending;
    };
    const outcomes = await Promise.all(this.#entries.map((entry) => this.#verifyOne(entry, lookup)));
    const bs = this.#entries.map((entry) => entry.parsed.labels.b);
    const results = outcomes.map((outcome, i): DkimResult => ({
      result: outcome.result,
      reason: outcome.reason,
      domain: this.#entries[i]!.parsed.labels.domain,
      selector: this.#entries[i]!.parsed.labels.selector,
      algorithm: this.#entries[i]!.parsed.labels.algorithm,
      bodyLengthLimited: this.#entries[i]!.parsed.labels.bodyLengthLimited,
      headerB: shortestUniquePrefix(bs[i]!, bs),
    }));
    if (this.#unchecked > 0) {
      results.push(
        unlabelled(
          'neutral',
          `${this.#unchecked} more signature(s) not checked: at most ${this.#maxSignatures} are`,
        ),
      );
    }
    return results;
  }

  #startBody(): void {
    this.#fields = splitHeaderFields(this.#splitter.section ?? '');
    this.#fields.forEach((field, index) => {
      if (field.key !== 'dkim-signature') return;
      if (this.#entries.length >= this.#maxSignatures) {
        this.#unchecked++;
        return;
      }
      const colon = field.raw.indexOf(':');
      const parsed = parseDkimSignature(field.raw.slice(colon + 1));
      this.#entries.push({ index, field, parsed });
      if (!parsed.ok) return;
      const key = bodyHashKey(parsed.value);
      if (!this.#bodyHashes.has(key)) {
        this.#bodyHashes.set(key, new BodyHash(parsed.value.bodyCanon, parsed.value.bodyLength));
      }
    });
  }

  async #verifyOne(
    entry: SignatureEntry,
    lookup: (name: string) => Promise<KeyLookup | typeof ABORTED>,
  ): Promise<{ result: DkimResultKind; reason: string }> {
    const parsed = entry.parsed;
    if (!parsed.ok) return { result: parsed.result, reason: parsed.reason };
    const sig = parsed.value;

    if (sig.expiresS !== null && this.#nowMs > sig.expiresS * 1000) {
      return { result: 'permerror', reason: `signature expired (x=${sig.expiresS})` };
    }
    if (sig.timestampS !== null && sig.timestampS * 1000 > this.#nowMs + this.#futureSkewMs) {
      return { result: 'permerror', reason: `signature timestamp t=${sig.timestampS} is in the future` };
    }
    const fromFields = this.#fields.filter((f) => f.key === 'from').length;
    const signedFroms = sig.signedHeaders.filter((name) => name.toLowerCase() === 'from').length;
    if (fromFields > signedFroms) {
      return { result: 'policy', reason: 'a From field is not covered by the signature' };
    }

    const body = this.#bodyHashes.get(bodyHashKey(sig))!.digest();
    if (sig.bodyLength !== null && sig.bodyLength > body.canonicalLength) {
      return {
        result: 'fail',
        reason: `l=${sig.bodyLength} is longer than the body (${body.canonicalLength})`,
      };
    }
    if (!body.digest.equals(sig.bodyHash)) return { result: 'fail', reason: 'body hash did not verify' };

    const name = `${sig.selector}._domainkey.${sig.domain}`;
    const found = await lookup(name);
    if (found === ABORTED) return { result: 'temperror', reason: `key lookup for ${name} aborted` };
    if (found.kind !== 'ok') return { result: found.kind, reason: found.reason };
    const record = found.record;

    if (record.keyType !== sig.keyType) {
      return {
        result: 'permerror',
        reason: `key type k=${record.keyType} does not match a=${sig.algorithm}`,
      };
    }
    if (record.hashAlgorithms !== null && !record.hashAlgorithms.includes('sha256')) {
      return { result: 'permerror', reason: 'key record h= does not allow sha256' };
    }
    if (!record.serviceTypes.includes('*') && !record.serviceTypes.includes('email')) {
      return { result: 'permerror', reason: 'key record s= is not for email' };
    }
    if (record.flags.includes('s') && sig.identityDomain !== sig.domain) {
      return { result: 'permerror', reason: 'key record t=s forbids an i= subdomain of d=' };
    }
    const imported = importPublicKey(record);
    if (!imported.ok) return { result: 'permerror', reason: imported.reason };
    if (sig.keyType === 'rsa' && imported.bits < this.#minRsaBits) {
      return {
        result: 'permerror',
        reason: `RSA key of ${imported.bits} bits is below the minimum of ${this.#minRsaBits} (RFC 8301)`,
      };
    }

    const data = headerHashInput(
      selectSignedFields(this.#fields, sig.signedHeaders, entry.index),
      entry.field.raw,
      sig.headerCanon,
    );
    let verified = false;
    try {
      verified =
        sig.keyType === 'rsa'
          ? cryptoVerify('sha256', data, imported.key, sig.signature)
          : // RFC 8463 §3: Ed25519 (pure) over the SHA-256 hash of the header data.
            cryptoVerify(null, createHash('sha256').update(data).digest(), imported.key, sig.signature);
    } catch {
      verified = false;
    }
    if (!verified) return { result: 'fail', reason: 'signature did not verify' };

    const notes: string[] = [];
    if (sig.bodyLength !== null) {
      notes.push(
        `l=${sig.bodyLength}: ${body.canonicalLength - body.hashedLength} octets of body not signed`,
      );
    }
    if (record.flags.includes('y')) notes.push('key in testing mode (t=y)');
    const bits = sig.keyType === 'rsa' ? `${imported.bits}-bit key` : 'ed25519 key';
    return { result: 'pass', reason: [`verified (${bits})`, ...notes].join('; ') };
  }

  async #lookupKey(name: string): Promise<KeyLookup> {
    let answer: Awaited<ReturnType<Resolver['txt']>>;
    try {
      answer = await this.#resolver.txt(name);
    } catch (err) {
      // The port promises not to throw; if it does anyway, a DNS problem is temporary, never a bounce.
      return { kind: 'temperror', reason: `key lookup for ${name} failed: ${String(err)}` };
    }
    switch (answer.kind) {
      case 'error':
        return { kind: 'temperror', reason: `key lookup for ${name} failed: ${answer.reason}` };
      case 'nxdomain':
      case 'nodata':
        return { kind: 'permerror', reason: `no key at ${name}` };
      case 'ok':
        break;
    }
    let firstFailure: string | null = null;
    let revoked = false;
    for (const text of answer.records) {
      const parsed = parseKeyRecord(text);
      if (parsed.ok) return { kind: 'ok', record: parsed.value };
      revoked ||= parsed.revoked;
      firstFailure ??= parsed.reason;
    }
    const reason = revoked ? 'key revoked (empty p=)' : (firstFailure ?? `no key at ${name}`);
    return { kind: 'permerror', reason: `${reason} at ${name}` };
  }
}

function unlabelled(result: DkimResultKind, reason: string): DkimResult {
  return { result, reason, domain: '', selector: '', algorithm: '', headerB: '', bodyLengthLimited: false };
}

/** RFC 6008 §4: at least 8 characters, more when another signature's b= shares them. */
function shortestUniquePrefix(b: string, all: readonly string[]): string {
  let length = Math.min(8, b.length);
  while (length < b.length && all.some((other) => other !== b && other.startsWith(b.slice(0, length)))) {
    length++;
  }
  return b.slice(0, length);
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABORTED> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
