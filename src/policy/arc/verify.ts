// SECURITY: ARC chain validation (RFC 8617 §5.2) of a message fed as it arrives: the structure of the
// ARC Sets, the newest ARC-Message-Signature, the oldest-pass instance, and every ARC-Seal from the newest
// down. Only the header section is kept (bounded); the body is hashed once per distinct AMS body
// canonicalization, so memory does not grow with the message.
// Reuses the DKIM pieces (src/policy/dkim): header splitting, canonicalization, body hash, h= selection,
// b= removal and key records. The key lookup is a local copy of the DKIM verifier's (not exported there).
// A key lookup that fails temporarily makes the chain 'fail' with `temperror: true`, so that the caller can
// defer or record arc=temperror instead (RFC 8617 has no temporary result of its own).
// Deliberately NOT here: what a receiver does with the result (local policy, DMARC overrides), sealing
// (seal.ts), and the Authentication-Results line.

import { createHash, verify as cryptoVerify } from 'node:crypto';
import type { Resolver } from '../../core/dns.ts';
import { BodyHash } from '../dkim/canonicalize.ts';
import type { RawHeaderField } from '../dkim/header-fields.ts';
import {
  HeaderBodySplitter,
  headerHashInput,
  selectSignedFields,
  splitHeaderFields,
} from '../dkim/header-fields.ts';
import type { DkimKeyRecord } from '../dkim/key-record.ts';
import { importPublicKey, parseKeyRecord } from '../dkim/key-record.ts';
import type { ArcChainStatus, ArcMessageSignatureFields, ArcSet, ArcSignatureCommon } from './arc-headers.ts';
import { collectArcSets, sealHashInput } from './arc-headers.ts';

export interface ArcSetSummary {
  readonly instance: number;
  /** d= and s= of the seal and of the message signature. */
  readonly sealDomain: string;
  readonly sealSelector: string;
  readonly signatureDomain: string;
  readonly signatureSelector: string;
  /** The AAR's authserv-id and results, as the sealer recorded them (trust them only from known sealers). */
  readonly authservId: string;
  readonly results: string;
}

export interface ArcVerification {
  readonly cv: ArcChainStatus;
  /** The highest instance present (0 without ARC header fields). */
  readonly instance: number;
  /**
   * RFC 8617 §5.2 step 5: the oldest instance from which every AMS still validates; 0 when all of them
   * do (or when the chain did not pass).
   */
  readonly oldestPass: number;
  /** A key lookup failed temporarily: the chain could not be checked (cv is 'fail'). */
  readonly temperror: boolean;
  /** For the log and an A-R comment; never for SMTP replies. */
  readonly reason: string;
  /** The ARC Sets, oldest first, when the structure was valid (cv pass, or fail on a signature). */
  readonly sets: readonly ArcSetSummary[];
}

export interface ArcVerifierOptions {
  readonly resolver: Pick<Resolver, 'txt'>;
  /** RSA keys below this fail (RFC 8301: 1024). */
  readonly minRsaBits?: number;
  /** The header section kept in memory; a larger one is not checked (cv fail). */
  readonly maxHeaderBytes?: number;
}

export const ARC_DEFAULTS = { minRsaBits: 1024, maxHeaderBytes: 256 * 1024 } as const;

type KeyLookup =
  | { readonly kind: 'ok'; readonly record: DkimKeyRecord }
  | { readonly kind: 'temperror' | 'permerror'; readonly reason: string };

type Check =
  { readonly ok: true } | { readonly ok: false; readonly temporary: boolean; readonly reason: string };

function bodyKey(ams: ArcMessageSignatureFields): string {
  return `${ams.bodyCanon}/${ams.bodyLength ?? ''}`;
}

export class ArcVerifier {
  readonly #resolver: Pick<Resolver, 'txt'>;
  readonly #minRsaBits: number;
  readonly #maxHeaderBytes: number;
  readonly #splitter: HeaderBodySplitter;
  #fields: RawHeaderField[] = [];
  readonly #bodyHashes = new Map<string, BodyHash>();
  #chain: ReturnType<typeof collectArcSets> | null = null;
  #finished = false;

  constructor(opts: ArcVerifierOptions) {
    this.#resolver = opts.resolver;
    this.#minRsaBits = opts.minRsaBits ?? ARC_DEFAULTS.minRsaBits;
    this.#maxHeaderBytes = opts.maxHeaderBytes ?? ARC_DEFAULTS.maxHeaderBytes;
    this.#splitter = new HeaderBodySplitter(this.#maxHeaderBytes);
  }

  /** Feed the next chunk of the message (CRLF line ends; bare LF is read as CRLF). */
  push(chunk: Uint8Array): void {
    if (this.#finished) throw new Error('ArcVerifier: push after finish');
    const wasDone = this.#splitter.headerDone;
    const body = this.#splitter.push(chunk);
    if (!wasDone && this.#splitter.headerDone) this.#startBody();
    for (const piece of body) for (const hash of this.#bodyHashes.values()) hash.write(piece);
  }

  /** The message is complete: look up keys and validate the chain. */
  async finish(signal?: AbortSignal): Promise<ArcVerification> {
    if (this.#finished) throw new Error('ArcVerifier: finish called twice');
    this.#finished = true;
    if (!this.#splitter.headerDone) {
      this.#splitter.end();
      if (this.#splitter.headerDone) this.#startBody();
    }
    const empty = { oldestPass: 0, temperror: false, sets: [] };
    if (this.#splitter.overflow) {
      return {
        ...empty,
        cv: 'fail',
        instance: 0,
        reason: `header section larger than ${this.#maxHeaderBytes} octets`,
      };
    }
    const chain = this.#chain!;
    if (chain.kind === 'none') return { ...empty, cv: 'none', instance: 0, reason: 'no ARC Sets' };
    if (chain.kind === 'fail')
      return { ...empty, cv: 'fail', instance: chain.instance, reason: chain.reason };

    const sets = chain.sets;
    const n = sets.length;
    const summaries = sets.map(summarize);
    const keys = new Map<string, Promise<KeyLookup>>();
    const key = (sig: ArcSignatureCommon): Promise<KeyLookup> => {
      const name = `${sig.selector}._domainkey.${sig.domain}`;
      let pending = keys.get(name);
      if (pending === undefined) {
        pending = this.#lookupKey(name, signal);
        keys.set(name, pending);
      }
      return pending;
    };
    const failed = (check: Check & { ok: false }, what: string): ArcVerification => ({
      cv: 'fail',
      instance: n,
      oldestPass: 0,
      temperror: check.temporary,
      reason: `${what}: ${check.reason}`,
      sets: summaries,
    });

    // §5.2 step 4: the newest AMS must validate.
    const newest = await this.#checkSignature(sets[n - 1]!, key);
    if (!newest.ok) return failed(newest, `ARC-Message-Signature i=${n}`);
    // Step 5: walk the older AMS down until one fails.
    let oldestPass = 0;
    for (let i = n - 1; i >= 1; i--) {
      const check = await this.#checkSignature(sets[i - 1]!, key);
      if (!check.ok) {
        oldestPass = i + 1;
        break;
      }
    }
    // Step 6: every seal, newest first.
    for (let i = n; i >= 1; i--) {
      const check = await this.#checkSeal(sets, i, key);
      if (!check.ok) return failed(check, `ARC-Seal i=${i}`);
    }
    return {
      cv: 'pass',
      instance: n,
      oldestPass,
      temperror: false,
      reason: `${n} ARC Set(s) verified`,
      sets: summaries,
    };
  }

  #startBody(): void {
    this.#fields = splitHeaderFields(this.#splitter.section ?? '');
    this.#chain = collectArcSets(this.#fields);
    if (this.#chain.kind !== 'chain') return;
    for (const set of this.#chain.sets) {
      const ams = set.signature.value;
      const k = bodyKey(ams);
      if (!this.#bodyHashes.has(k)) this.#bodyHashes.set(k, new BodyHash(ams.bodyCanon, ams.bodyLength));
    }
  }

  async #checkSignature(set: ArcSet, key: (sig: ArcSignatureCommon) => Promise<KeyLookup>): Promise<Check> {
    const ams = set.signature.value;
    const body = this.#bodyHashes.get(bodyKey(ams))!.digest();
    if (ams.bodyLength !== null && ams.bodyLength > body.canonicalLength) {
      return { ok: false, temporary: false, reason: `l=${ams.bodyLength} is longer than the body` };
    }
    if (!body.digest.equals(ams.bodyHash))
      return { ok: false, temporary: false, reason: 'body hash did not verify' };
    const data = headerHashInput(
      selectSignedFields(this.#fields, ams.signedHeaders, set.signature.index),
      set.signature.field.raw,
      ams.headerCanon,
    );
    return this.#checkCrypto(ams, data, await key(ams));
  }

  async #checkSeal(
    sets: readonly ArcSet[],
    instance: number,
    key: (sig: ArcSignatureCommon) => Promise<KeyLookup>,
  ): Promise<Check> {
    const seal = sets[instance - 1]!.seal.value;
    const fields = sets.map((s) => ({
      seal: s.seal.field,
      signature: s.signature.field,
      results: s.results.field,
    }));
    return this.#checkCrypto(seal, sealHashInput(fields, instance), await key(seal));
  }

  #checkCrypto(sig: ArcSignatureCommon, data: Buffer, found: KeyLookup): Check {
    if (found.kind !== 'ok')
      return { ok: false, temporary: found.kind === 'temperror', reason: found.reason };
    const record = found.record;
    if (record.keyType !== sig.keyType) {
      return {
        ok: false,
        temporary: false,
        reason: `key type k=${record.keyType} does not match a=${sig.algorithm}`,
      };
    }
    if (record.hashAlgorithms !== null && !record.hashAlgorithms.includes('sha256')) {
      return { ok: false, temporary: false, reason: 'key record h= does not allow sha256' };
    }
    if (!record.serviceTypes.includes('*') && !record.serviceTypes.includes('email')) {
      return { ok: false, temporary: false, reason: 'key record s= is not for email' };
    }
    const imported = importPublicKey(record);
    if (!imported.ok) return { ok: false, temporary: false, reason: imported.reason };
    if (sig.keyType === 'rsa' && imported.bits < this.#minRsaBits) {
      return {
        ok: false,
        temporary: false,
        reason: `RSA key of ${imported.bits} bits is below the minimum of ${this.#minRsaBits} (RFC 8301)`,
      };
    }
    let verified = false;
    try {
      verified =
        sig.keyType === 'rsa'
          ? cryptoVerify('sha256', data, imported.key, sig.signature)
          : cryptoVerify(null, createHash('sha256').update(data).digest(), imported.key, sig.signature);
    } catch {
      verified = false;
    }
    return verified ? { ok: true } : { ok: false, temporary: false, reason: 'signature did not verify' };
  }

  async #lookupKey(name: string, signal: AbortSignal | undefined): Promise<KeyLookup> {
    if (signal?.aborted) return { kind: 'temperror', reason: `key lookup for ${name} aborted` };
    let answer: Awaited<ReturnType<Resolver['txt']>>;
    try {
      answer = await this.#resolver.txt(name);
    } catch (err) {
      // The port promises not to throw; if it does anyway, a DNS problem is temporary.
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
    for (const text of answer.records) {
      const parsed = parseKeyRecord(text);
      if (parsed.ok) return { kind: 'ok', record: parsed.value };
      firstFailure ??= parsed.reason;
    }
    return { kind: 'permerror', reason: `${firstFailure ?? 'no key'} at ${name}` };
  }
}

function summarize(set: ArcSet): ArcSetSummary {
  return {
    instance: set.instance,
    sealDomain: set.seal.value.domain,
    sealSelector: set.seal.value.selector,
    signatureDomain: set.signature.value.domain,
    signatureSelector: set.signature.value.selector,
    authservId: set.results.value.authservId,
    results: set.results.value.results,
  };
}

/** Verify a whole message held in memory (tests, tools). */
export async function verifyArc(
  message: Uint8Array,
  opts: ArcVerifierOptions,
  signal?: AbortSignal,
): Promise<ArcVerification> {
  const verifier = new ArcVerifier(opts);
  verifier.push(message);
  return verifier.finish(signal);
}
