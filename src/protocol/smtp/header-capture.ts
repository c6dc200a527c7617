// Holds back the start of a message until its header block is complete, so a submission session can
// look at the headers (From: ownership) and add what RFC 6409 §8 lets a submission server add (Date:,
// Message-ID:) before any byte reaches the queue. Bounded: past `maxBytes` it gives up and releases
// what it holds, headers unseen (the message then passes unchanged). Also the field filters that use the
// same framing: Bcc: at submission, Return-Path: at final delivery, on a stream.
// Pure: bytes in, bytes out.

import { parseHeaderBlock } from '../headers.ts';
import { extractAddresses } from '../address-list.ts';

export interface HeaderFacts {
  readonly complete: boolean;
  readonly from: readonly string[];
  readonly sender: readonly string[];
  readonly hasDate: boolean;
  readonly hasMessageId: boolean;
  /** The first Message-ID's msg-id (`<...>`, unfolded), for the log and the trace; null when none. */
  readonly messageId: string | null;
  /** RFC 8689 §5: a `TLS-Required: No` field asks that recipients' TLS policies not stop delivery. */
  readonly tlsRequiredNo?: boolean;
}

export class HeaderCapture {
  private readonly maxBytes: number;
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  done = false;

  constructor(maxBytes = 64 * 1024) {
    this.maxBytes = maxBytes;
  }

  /**
   * Add content. Returns null while still holding; once the header block is complete (or too big), the
   * facts and every byte held so far, in order.
   */
  push(chunk: Uint8Array): { facts: HeaderFacts; release: Uint8Array } | null {
    if (this.done) throw new Error('HeaderCapture: push after release');
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    const all = Buffer.concat(this.held);
    const end = headerEnd(all);
    if (end < 0 && this.heldBytes < this.maxBytes) {
      this.held = [all];
      return null;
    }
    return this.release(all, end >= 0);
  }

  /** End of content reached while still holding (a message that is all headers). */
  finish(): { facts: HeaderFacts; release: Uint8Array } {
    const all = Buffer.concat(this.held);
    return this.release(all, true);
  }

  private release(all: Uint8Array, complete: boolean): { facts: HeaderFacts; release: Uint8Array } {
    this.done = true;
    this.held = [];
    return { facts: inspect(all, complete), release: all };
  }
}

/** Index just after the blank line that ends the header block, 0 for a message with no headers, or -1. */
export function headerEnd(b: Uint8Array): number {
  if (b.length >= 2 && b[0] === 13 && b[1] === 10) return 2;
  const i = Buffer.from(b.buffer, b.byteOffset, b.length).indexOf('\r\n\r\n');
  return i < 0 ? -1 : i + 4;
}

function msgId(value: string | undefined): string | null {
  if (value === undefined) return null;
  const unfolded = value.replace(/\r?\n[ \t]+/g, ' ').trim();
  const bracketed = /<[^<>\s]{1,995}>/.exec(unfolded);
  return bracketed?.[0] ?? (unfolded === '' || unfolded.length > 998 ? null : unfolded);
}

function inspect(bytes: Uint8Array, complete: boolean): HeaderFacts {
  const fields = parseHeaderBlock(bytes);
  const values = (name: string): string[] =>
    fields.filter((f) => f.name.toLowerCase() === name).map((f) => f.value);
  return {
    complete,
    from: values('from').flatMap(extractAddresses),
    sender: values('sender').flatMap(extractAddresses),
    hasDate: values('date').length > 0,
    hasMessageId: values('message-id').length > 0,
    messageId: msgId(values('message-id')[0]),
    ...(values('tls-required').some((v) => v.trim().toLowerCase() === 'no') ? { tlsRequiredNo: true } : {}),
  };
}

/**
 * Drop header fields from the start of a message (`bytes` holds the whole header section, maybe followed
 * by some body): `drop` sees each field's raw text (name, value and folds, CRLF-terminated), as a byte
 * string (one char per octet: the octets are kept exactly, whatever their charset). `whole`: `bytes` is
 * the entire message, so a message that is all header fields, without the empty line, is looked at too.
 */
export function dropHeaderFields(
  bytes: Uint8Array,
  drop: (rawField: string) => boolean,
  whole = false,
): Uint8Array {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const found = headerEnd(bytes);
  const end = found < 0 && whole ? bytes.length + 2 : found;
  if (end <= 0) return bytes;
  const section = buf.toString('latin1', 0, end - 2);
  const kept: string[] = [];
  let current = '';
  for (const line of section.split(/(?<=\r\n)/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && current !== '') current += line;
    else {
      if (current !== '') kept.push(current);
      current = line;
    }
  }
  if (current !== '') kept.push(current);
  const out = kept.filter((f) => !drop(f)).join('');
  if (out.length === section.length) return bytes;
  return Buffer.concat([Buffer.from(out, 'latin1'), buf.subarray(Math.min(end - 2, buf.length))]);
}

/** Bcc: and Resent-Bcc: (RFC 5322 §3.6.3, §3.6.6): blind copies stay blind, so a submission drops them. */
export function isBlindCopyField(rawField: string): boolean {
  return /^(?:resent-)?bcc[ \t]*:/i.test(rawField);
}

/** Return-Path: (RFC 5321 §4.4): only the final delivery's own may stand in a mailbox. */
export function isReturnPathField(rawField: string): boolean {
  return /^return-path[ \t]*:/i.test(rawField);
}

/**
 * A message as it streams, with header fields dropped (see dropHeaderFields): the start is held until the
 * header section is complete, at most `maxBytes`; past that it passes unchanged, headers unseen, so a
 * message is never held whole. The body is passed on chunk by chunk as it comes.
 */
export async function* withoutHeaderFields(
  content: AsyncIterable<Uint8Array>,
  drop: (rawField: string) => boolean,
  maxBytes = 64 * 1024,
): AsyncIterable<Uint8Array> {
  let held: Buffer | null = Buffer.alloc(0);
  for await (const chunk of content) {
    if (held === null) {
      yield chunk;
      continue;
    }
    held = Buffer.concat([held, chunk]);
    if (headerEnd(held) >= 0) {
      yield dropHeaderFields(held, drop);
      held = null;
    } else if (held.length >= maxBytes) {
      yield held;
      held = null;
    }
  }
  if (held !== null && held.length > 0) yield dropHeaderFields(held, drop, true);
}
