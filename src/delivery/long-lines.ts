// A queued message with lines over 998 octets (accepted with limits.long_lines = "accept", marked
// envelope.longLines by the session) as it may leave for another host: its parts with long lines encoded
// (protocol/mime/long-lines.ts). It is encoded for every next hop, BINARYMIME or not: the envelope says
// 7BIT or 8BITMIME, whose content RFC 2045 §2.7-2.8 and RFC 5322 §2.1.1 limit to 998 octets a line as
// well, so relabelling it BINARYMIME would be a guess, and the encoding must be chosen before DKIM
// signing and ARC sealing, which happen before the next hop is known.
// Three reads of the queued body, all streaming: a scan for the plan, a count for SIZE=, then each send.
// Deliberately NOT here: local delivery, which keeps the message as it came.

import { LongLineEncoder, LongLineScan } from '../protocol/mime/long-lines.ts';

export interface Content {
  readonly sizeBytes: number;
  readonly body: () => AsyncIterable<Uint8Array>;
}

/** The content with its lines made short, or null when no line needs it after all. */
export async function withShortLines(body: () => AsyncIterable<Uint8Array>): Promise<Content | null> {
  const scan = new LongLineScan();
  for await (const chunk of body()) scan.push(chunk);
  const plan = scan.plan();
  if (!plan.needed) return null;
  const encoded = async function* (): AsyncIterable<Uint8Array> {
    const encoder = new LongLineEncoder(plan);
    for await (const chunk of body()) {
      const out = encoder.push(chunk);
      if (out.length > 0) yield out;
    }
    const last = encoder.finish();
    if (last.length > 0) yield last;
  };
  let sizeBytes = 0;
  for await (const chunk of encoded()) sizeBytes += chunk.length;
  return { sizeBytes, body: encoded };
}
