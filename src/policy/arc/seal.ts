// ARC sealing (RFC 8617 §5.1): when Tern forwards a message (an alias to another domain), it adds one ARC
// Set on top: ARC-Authentication-Results (the results of this hop's checks), ARC-Message-Signature (a
// DKIM-style signature of the message as it leaves, relaxed/relaxed) and ARC-Seal (over all ARC Sets, with
// the chain status this hop found). The message is fed as it is stored; only the header section is kept.
// Fields are written the way the ValiMail suite standardizes them (tags in alphabetical order, lower case,
// "; " between tags) and folded between tags, which relaxed canonicalization undoes.
// When the chain failed, the new seal says cv=fail and covers its own set only (what is below is broken;
// the suite's i1_base_fail / i2_base_fail expect exactly that). No set is added on top of a chain whose
// newest seal already says cv=fail (nothing can repair it), nor beyond 50 sets (§4.2.1).
// Deliberately NOT here: validation (verify.ts gives the cv to seal with), choosing the key (config).

import { createHash, sign as cryptoSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { BodyHash } from '../dkim/canonicalize.ts';
import type { RawHeaderField } from '../dkim/header-fields.ts';
import {
  HeaderBodySplitter,
  headerHashInput,
  selectSignedFields,
  splitHeaderFields,
} from '../dkim/header-fields.ts';
import type { ArcChainStatus, ArcSetFields } from './arc-headers.ts';
import { MAX_ARC_SETS, collectArcSets, sealHashInput } from './arc-headers.ts';

/** Signed when present (each instance of a field once): what a forwarder must not let change unseen. */
export const ARC_SIGNED_HEADERS: readonly string[] = [
  'from',
  'to',
  'cc',
  'subject',
  'date',
  'message-id',
  'reply-to',
  'in-reply-to',
  'references',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'list-id',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'dkim-signature',
];

export interface ArcSealerOptions {
  /** d= and s=: the key is published at <selector>._domainkey.<domain>. */
  readonly domain: string;
  readonly selector: string;
  /** RSA (rsa-sha256) or Ed25519 (ed25519-sha256) private key. */
  readonly privateKey: KeyObject;
  /** This hop's authserv-id (RFC 8601), written into the AAR. */
  readonly authservId: string;
  /**
   * Field names for h=, as given (names of absent fields are kept: they then sign the absence). Default:
   * every present instance of ARC_SIGNED_HEADERS.
   */
  readonly signedHeaders?: readonly string[];
  /** t= of the new set. */
  readonly nowMs: number;
  readonly maxHeaderBytes?: number;
}

export interface ArcSealInput {
  /** The chain status this hop validated (ArcVerifier). */
  readonly cv: ArcChainStatus;
  /** This hop's results, one RFC 8601 resinfo each ("spf=pass smtp.mailfrom=a@example.org"). */
  readonly results: readonly string[];
}

export type ArcSealResult =
  /** `fields`: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results, CRLF-terminated, to prepend. */
  | { readonly kind: 'sealed'; readonly instance: number; readonly fields: string }
  | { readonly kind: 'skipped'; readonly reason: string };

const FOLD_COLUMNS = 78;

/**
 * "Name: tag; tag; ..." folded between tags so that lines stay within 78 columns, except b=: a non-empty
 * b= value sits on a line of its own, unbroken (RFC 5322 allows 998). Whitespace inside b= would be kept by
 * relaxed canonicalization when the next hop's seal covers this field, and the suite's expected seals
 * were computed over unbroken values.
 */
function foldField(name: string, parts: readonly string[]): string {
  let out = `${name}:`;
  let column = out.length;
  parts.forEach((part, i) => {
    const text = i < parts.length - 1 ? `${part};` : part;
    if (column + 1 + text.length > FOLD_COLUMNS || /^b=./.test(text)) {
      out += '\r\n';
      column = 0;
    }
    out += ` ${text}`;
    column += 1 + text.length;
  });
  return `${out}\r\n`;
}

function splitResults(text: string): string[] {
  const out: string[] = [];
  let current = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '\\') current += text[i++] ?? '';
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '(') depth++;
    else if (ch === ')' && depth > 0) depth--;
    else if (ch === ';' && depth === 0) {
      out.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  out.push(current);
  return out.map((r) => r.replace(/\s+/g, ' ').trim()).filter((r) => r !== '' && r.toLowerCase() !== 'none');
}

/**
 * The results of every Authentication-Results field of `authservId` (case-insensitive, RFC 8601 §2.5),
 * in header order, one resinfo each: what this hop's AAR records (the consolidation the ValiMail suite
 * describes). Fields of other authserv-ids are ignored.
 */
export function authResultsFor(fields: readonly RawHeaderField[], authservId: string): string[] {
  const want = authservId.toLowerCase();
  const out: string[] = [];
  for (const field of fields) {
    if (field.key !== 'authentication-results') continue;
    const value = field.raw.slice(field.raw.indexOf(':') + 1).replace(/\r\n/g, '');
    const semi = value.indexOf(';');
    // authserv-id [ version ]: the version (RFC 8601 §2.2) is a second token.
    const id = (semi < 0 ? value : value.slice(0, semi)).trim().split(/\s+/)[0] ?? '';
    if (id.toLowerCase() !== want) continue;
    if (semi >= 0) out.push(...splitResults(value.slice(semi + 1)));
  }
  return out;
}

function signData(key: KeyObject, data: Buffer): string {
  const signature =
    key.asymmetricKeyType === 'ed25519'
      ? cryptoSign(null, createHash('sha256').update(data).digest(), key)
      : cryptoSign('sha256', data, key);
  return signature.toString('base64');
}

function field(name: string, raw: string): RawHeaderField {
  return { name, key: name.toLowerCase(), raw };
}

export class ArcSealer {
  readonly #opts: ArcSealerOptions;
  readonly #splitter: HeaderBodySplitter;
  readonly #body = new BodyHash('relaxed');
  #fields: RawHeaderField[] = [];
  #finished = false;

  constructor(opts: ArcSealerOptions) {
    this.#opts = opts;
    this.#splitter = new HeaderBodySplitter(opts.maxHeaderBytes ?? 256 * 1024);
  }

  /** Feed the next chunk of the message as it will be sent (CRLF line ends; bare LF is read as CRLF). */
  push(chunk: Uint8Array): void {
    if (this.#finished) throw new Error('ArcSealer: push after finish');
    const wasDone = this.#splitter.headerDone;
    const body = this.#splitter.push(chunk);
    if (!wasDone && this.#splitter.headerDone) this.#fields = splitHeaderFields(this.#splitter.section ?? '');
    for (const piece of body) this.#body.write(piece);
  }

  finish(input: ArcSealInput): ArcSealResult {
    if (this.#finished) throw new Error('ArcSealer: finish called twice');
    this.#finished = true;
    if (!this.#splitter.headerDone) {
      this.#splitter.end();
      this.#fields = splitHeaderFields(this.#splitter.section ?? '');
    }
    if (this.#splitter.overflow) return { kind: 'skipped', reason: 'header section too large' };

    const chain = collectArcSets(this.#fields);
    if (chain.kind === 'fail' && chain.declaredFailed) return { kind: 'skipped', reason: chain.reason };
    const highest = chain.kind === 'none' ? 0 : chain.kind === 'fail' ? chain.instance : chain.sets.length;
    if (highest >= MAX_ARC_SETS) return { kind: 'skipped', reason: 'the chain already has 50 ARC Sets' };
    const instance = highest + 1;
    // A first set says none; a chain that exists passes only when it is whole and validated (§4.1.3).
    const cv: ArcChainStatus =
      instance === 1 ? 'none' : chain.kind === 'chain' && input.cv === 'pass' ? 'pass' : 'fail';
    // §5.1.1: the seal covers every ARC Set, except when the chain failed: then only its own.
    const previous: ArcSetFields[] =
      chain.kind === 'chain' && cv === 'pass'
        ? chain.sets.map((s) => ({
            seal: s.seal.field,
            signature: s.signature.field,
            results: s.results.field,
          }))
        : [];

    const { domain, selector, privateKey } = this.#opts;
    const algorithm = privateKey.asymmetricKeyType === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256';
    const t = Math.floor(this.#opts.nowMs / 1000);

    const aarParts = [
      `i=${instance}`,
      this.#opts.authservId,
      ...(input.results.length > 0 ? input.results : ['none']),
    ];
    const aar = field('ARC-Authentication-Results', foldField('ARC-Authentication-Results', aarParts));

    const names = this.#opts.signedHeaders ?? this.#defaultSignedHeaders();
    const bh = this.#body.digest().digest.toString('base64');
    const amsTags = (b: string): string[] => [
      `a=${algorithm}`,
      `b=${b}`,
      `bh=${bh}`,
      'c=relaxed/relaxed',
      `d=${domain}`,
      `h=${names.join(':')}`,
      `i=${instance}`,
      `s=${selector}`,
      `t=${t}`,
    ];
    // The AMS signs the message as it will be: the new AAR on top (h= may name it).
    const amsData = headerHashInput(
      selectSignedFields([aar, ...this.#fields], names),
      foldField('ARC-Message-Signature', amsTags('')),
      'relaxed',
    );
    const ams = field(
      'ARC-Message-Signature',
      foldField('ARC-Message-Signature', amsTags(signData(privateKey, amsData))),
    );

    const asTags = (b: string): string[] => [
      `a=${algorithm}`,
      `b=${b}`,
      `cv=${cv}`,
      `d=${domain}`,
      `i=${instance}`,
      `s=${selector}`,
      `t=${t}`,
    ];
    const own: ArcSetFields = {
      seal: field('ARC-Seal', foldField('ARC-Seal', asTags(''))),
      signature: ams,
      results: aar,
    };
    const asData = sealHashInput([...previous, own], previous.length + 1);
    const seal = foldField('ARC-Seal', asTags(signData(privateKey, asData)));
    return { kind: 'sealed', instance, fields: seal + ams.raw + aar.raw };
  }

  #defaultSignedHeaders(): string[] {
    const names: string[] = [];
    for (const f of this.#fields) if (ARC_SIGNED_HEADERS.includes(f.key)) names.push(f.key);
    return names;
  }
}

/** Seal a whole message held in memory (tests, tools): the header fields to prepend. */
export function sealArc(message: Uint8Array, opts: ArcSealerOptions, input: ArcSealInput): ArcSealResult {
  const sealer = new ArcSealer(opts);
  sealer.push(message);
  return sealer.finish(input);
}
