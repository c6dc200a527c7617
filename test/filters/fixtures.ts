// A FilterMessage over bytes for the filter tests: its fields as the intake makes them
// (protocol/header-edit.ts), read() in pieces as often as asked, counting the reads begun and ended.

import type { FilterMessage } from '../../src/policy/filters/filter.ts';
import { fieldOf, splitFields } from '../../src/protocol/header-edit.ts';

export function messageFrom(
  raw: Buffer,
  pieceBytes = 1000,
): FilterMessage & { reads: number; returned: number } {
  const headers = splitFields(raw)
    .fields.map(fieldOf)
    .filter((f) => f !== null);
  const m = {
    headers,
    fromAddresses: headers
      .filter((h) => h.name.toLowerCase() === 'from')
      .map((h) => h.value.replace(/^<|>$/g, '')),
    sizeBytes: raw.length,
    reads: 0,
    returned: 0,
    async *read(): AsyncIterable<Uint8Array> {
      m.reads++;
      try {
        for (let at = 0; at < raw.length; at += pieceBytes) {
          await Promise.resolve();
          yield raw.subarray(at, at + pieceBytes);
        }
      } finally {
        m.returned++;
      }
    },
  };
  return m;
}
