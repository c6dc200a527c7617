// Test helpers for the IMAP reader and parser: feed bytes in given pieces, collect events with the
// pieces of each streamed message joined (so fragmentations compare equal). Used by tests only.

import type { ImapCommand } from './command.ts';
import { ImapCommandReader, type ImapReaderLimits, type ReaderEvent } from './reader.ts';

export type Collected =
  Exclude<ReaderEvent, { kind: 'append-data' }> | { readonly kind: 'message'; readonly text: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feed the pieces one by one, draining after each; append-data pieces are joined per message. */
export function collect(
  pieces: readonly (string | Uint8Array)[],
  limits: Partial<ImapReaderLimits> = {},
): Collected[] {
  const reader = new ImapCommandReader(limits);
  const out: Collected[] = [];
  let message: Uint8Array[] = [];
  for (const piece of pieces) {
    reader.push(typeof piece === 'string' ? encoder.encode(piece) : piece);
    for (let ev = reader.next(); ev !== null; ev = reader.next()) {
      if (ev.kind === 'append-data') {
        message.push(ev.chunk);
        if (ev.last) {
          out.push({ kind: 'message', text: decoder.decode(Buffer.concat(message)) });
          message = [];
        }
      } else out.push(ev);
    }
  }
  return out;
}

/** Parse one complete command (CRLF added) and return its AST, failing the test otherwise. */
export function parseOne(line: string): ImapCommand {
  const events = collect([line + '\r\n']);
  const ev = events[0];
  if (events.length !== 1 || ev?.kind !== 'command')
    throw new Error(
      `expected one command for ${JSON.stringify(line)}, got ${JSON.stringify(events, replacer)}`,
    );
  return ev.command;
}

/** The error of a bad command. */
export function parseBad(line: string): Collected {
  const events = collect([line + '\r\n']);
  const ev = events[0];
  if (events.length !== 1 || ev?.kind !== 'error')
    throw new Error(`expected an error for ${JSON.stringify(line)}, got ${JSON.stringify(events, replacer)}`);
  return ev;
}

export function replacer(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v;
}
